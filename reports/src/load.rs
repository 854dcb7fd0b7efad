//! Reading run records (`results.json`, a serialized
//! [`RunResults`](quantlab_evaluate::results::RunResults)).

use anyhow::{anyhow, Context, Result};
use quantlab_evaluate::results::RunResults;
use std::path::{Path, PathBuf};

/// File name of the run record inside a run folder.
pub const RESULTS_FILE: &str = "results.json";

/// The record file a path names: `path/results.json` for a folder, `path` itself otherwise.
pub fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(RESULTS_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Load one run record from a run folder (`runs/<run-id>/`) or from a `results.json` file.
///
/// Errors name the file and, for malformed records, the JSON path of the offending field
/// (e.g. `tasks.hellaswag.n_docs: invalid type: string "ten", expected usize`), found with
/// `serde_path_to_error`.
pub fn load_run(path: &Path) -> Result<RunResults> {
    let file = results_file(path);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read run record {}", file.display()))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let run: RunResults = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        if field == "." {
            anyhow!("{}: invalid run record: {}", file.display(), e.inner())
        } else {
            anyhow!(
                "{}: invalid run record: field `{field}`: {}",
                file.display(),
                e.inner()
            )
        }
    })?;
    de.end()
        .map_err(|e| anyhow!("{}: invalid run record: {e}", file.display()))?;
    Ok(run)
}
