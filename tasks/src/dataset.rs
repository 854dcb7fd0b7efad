//! Dataset files: JSON Lines, plain (`.jsonl`) or gzip-compressed (`.jsonl.gz`), one JSON object
//! per line (blank lines are skipped), or CSV with a header row (`.csv`, `.csv.gz`; GPQA ships
//! as CSV), one object of string fields per row.

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

/// Read the first `limit` records (all when `None`) of a `.jsonl` / `.jsonl.gz` file (or of a
/// `.csv` / `.csv.gz` file, see [`load_csv`]).
/// A malformed line is an error naming `file:line`; every record must be a JSON object.
pub fn load_jsonl(path: &Path, limit: Option<usize>) -> Result<Vec<Value>> {
    let name = path.to_string_lossy();
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        return load_csv(path, limit);
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(MultiGzDecoder::new(file))
    } else if name.ends_with(".jsonl") || name.ends_with(".json") {
        Box::new(file)
    } else {
        bail!(
            "{}: unsupported data file type (expected .jsonl, .jsonl.gz, .csv or .csv.gz)",
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

/// Read the first `limit` rows (all when `None`) of a `.csv` / `.csv.gz` file with a header row
/// (RFC 4180: comma-separated, fields in double quotes may hold commas and line breaks, `""` is a
/// quote). Each row becomes an object `{header: value}`; an empty field is `null`, as the
/// Hugging Face `datasets` CSV loader (pandas) gives `None` for it. A row whose field count differs
/// from the header's, or an unterminated quote, is an error naming `file:line`.
pub fn load_csv(path: &Path, limit: Option<usize>) -> Result<Vec<Value>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    let mut reader: Box<dyn Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("{}: not UTF-8 text", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // rows of (first line number, fields)
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut fields)));
                line += 1;
                row_line = line;
                any = false;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        bail!("{}:{row_line}: unterminated quoted field", path.display());
    }
    if any {
        fields.push(field);
        rows.push((row_line, fields));
    }
    rows.retain(|(_, f)| !(f.len() == 1 && f[0].is_empty()));
    let mut rows = rows.into_iter();
    let Some((_, header)) = rows.next() else {
        bail!("{}: empty CSV file (no header row)", path.display());
    };
    let mut out = Vec::new();
    for (lineno, f) in rows {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        if f.len() != header.len() {
            bail!(
                "{}:{lineno}: {} fields, the header has {}",
                path.display(),
                f.len(),
                header.len()
            );
        }
        let obj: serde_json::Map<String, Value> = header
            .iter()
            .zip(f)
            .map(|(h, v)| {
                let v = if v.is_empty() {
                    Value::Null
                } else {
                    Value::String(v)
                };
                (h.clone(), v)
            })
            .collect();
        out.push(Value::Object(obj));
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
