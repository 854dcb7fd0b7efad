//! Dataset files: JSON Lines, plain (`.jsonl`) or gzip-compressed (`.jsonl.gz`), one JSON object
//! per line. Blank lines are skipped.

use anyhow::{anyhow, bail, Context, Result};
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::spec::TaskSpec;

/// Environment variable naming the data folder.
pub const DATA_ENV: &str = "QUANTLAB_DATA";

/// The default data folder: `$QUANTLAB_DATA` if set (and not empty), else `../shared/data`
/// relative to the current directory when it exists, else `../shared/data` beside the quantlab
/// checkout this binary was built from, else `../shared/data` (so the missing-file error names it).
pub fn default_data_dir() -> PathBuf {
    if let Some(v) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let cwd = PathBuf::from("../shared/data");
    if cwd.is_dir() {
        return cwd;
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if beside.is_dir() {
        return beside;
    }
    cwd
}

/// Read the first `limit` records (all when `None`) of a `.jsonl` / `.jsonl.gz` file.
/// A malformed line is an error naming `file:line`; every record must be a JSON object.
pub fn load_jsonl(path: &Path, limit: Option<usize>) -> Result<Vec<Value>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy();
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(MultiGzDecoder::new(file))
    } else if name.ends_with(".jsonl") || name.ends_with(".json") {
        Box::new(file)
    } else {
        bail!(
            "{}: unsupported data file type (expected .jsonl or .jsonl.gz)",
            path.display()
        );
    };
    let reader = BufReader::with_capacity(1 << 20, reader);
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        let lineno = i + 1;
        let line = line.with_context(|| format!("{}:{lineno}: read error", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{}:{lineno}: malformed JSON line: {e}", path.display()))?;
        if !v.is_object() {
            bail!(
                "{}:{lineno}: expected a JSON object, got {}",
                path.display(),
                kind(&v)
            );
        }
        out.push(v);
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Load a task's raw documents (before `preprocess`) from `data_dir`. A missing file is an error
/// naming the task and the full path and pointing at `--data-dir` / `$QUANTLAB_DATA`.
pub fn load_task_records(
    spec: &TaskSpec,
    data_dir: &Path,
    limit: Option<usize>,
) -> Result<Vec<Value>> {
    let path = spec.data_path(data_dir);
    if !path.is_file() {
        let full = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        bail!(
            "task `{}`: data file {} not found; pass --data-dir <folder that holds {}> \
             (or set ${DATA_ENV}; default ../shared/data)",
            spec.task,
            full.display(),
            spec.dataset
        );
    }
    load_jsonl(&path, limit).with_context(|| format!("task `{}`: loading data", spec.task))
}
