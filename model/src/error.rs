//! Errors of the model crate. Every variant names the file (and field or tensor) it is about,
//! so the CLI can print one clear line.

use std::path::{Path, PathBuf};

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// What went wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: field '{field}': {msg}", file.display())]
    Config {
        file: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{}: tensor '{tensor}': {msg}", file.display())]
    Tensor {
        file: PathBuf,
        tensor: String,
        msg: String,
    },
    #[error("{}: {msg}", file.display())]
    Format { file: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl ModelError {
    /// An I/O error about `file`.
    pub fn io(file: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}
