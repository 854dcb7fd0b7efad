//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared folder with data and reference figures: `$QUANTLAB_SHARED`, else
/// `<workspace>/../shared`. Panics (test failure, never a skip) when it is missing.
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("QUANTLAB_SHARED") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    assert!(
        dir.join("data").is_dir(),
        "shared folder not found at {} (needs data/ and reference/); set QUANTLAB_SHARED",
        dir.display()
    );
    dir
}

/// `<shared>/data`.
pub fn data_dir() -> PathBuf {
    shared_dir().join("data")
}

/// The single file in `dir` whose name starts with `prefix` and ends with `suffix`.
pub fn find_one(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one {prefix}*{suffix} in {}, found {hits:?}",
        dir.display()
    );
    hits.pop().unwrap()
}

/// A model identity for test runs.
pub fn model_info() -> quantlab_evaluate::ModelInfo {
    quantlab_evaluate::ModelInfo {
        name: "fake-model".into(),
        path: "/nowhere/fake-model".into(),
        scheme: "bf16".into(),
        config_sha256: "00".repeat(32),
        quantization_config: None,
        weights_sha256: None,
    }
}
