//! Record files: JSON Lines (`.jsonl`, gzip `.jsonl.gz`), a JSON array of objects (`.json`,
//! `.json.gz`) and Parquet (`.parquet`, through the `parquet` crate's row API: snappy and zstd
//! pages, nested lists and structs become JSON arrays and objects). Every record must be a JSON
//! object; errors name `file:line` (or `file: row N`).

use anyhow::{anyhow, bail, Context, Result};
use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Where a record came from, for error messages: `file:line` for JSON lines, `file: row N`
/// (0-based) otherwise.
#[derive(Debug, Clone)]
pub struct RecordPos {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub row: usize,
}

impl fmt::Display for RecordPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.file.display()),
            None => write!(f, "{}: row {}", self.file.display(), self.row),
        }
    }
}

/// One record with its position.
#[derive(Debug, Clone)]
pub struct Record {
    pub pos: RecordPos,
    pub value: Map<String, Value>,
}

/// Read every record of `path`, choosing the reader by the file name's ending.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".parquet") {
        read_parquet(path)
    } else if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
        read_jsonl(path)
    } else if name.ends_with(".json") || name.ends_with(".json.gz") {
        read_json_array(path)
    } else {
        bail!(
            "{}: unsupported calibration file type (expected .jsonl, .jsonl.gz, .json, .json.gz or \
             .parquet)",
            path.display()
        )
    }
}

fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(
        if path.to_string_lossy().to_ascii_lowercase().ends_with(".gz") {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        },
    )
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

fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let reader = BufReader::with_capacity(1 << 20, open_maybe_gz(path)?);
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line = line.with_context(|| format!("{}:{lineno}: read error", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{}:{lineno}: malformed JSON line: {e}", path.display()))?;
        let Value::Object(value) = v else {
            bail!(
                "{}:{lineno}: expected a JSON object per line, got {}",
                path.display(),
                kind(&v)
            );
        };
        let row = out.len();
        out.push(Record {
            pos: RecordPos {
                file: path.to_path_buf(),
                line: Some(lineno),
                row,
            },
            value,
        });
    }
    Ok(out)
}

fn read_json_array(path: &Path) -> Result<Vec<Record>> {
    let mut text = String::new();
    open_maybe_gz(path)?
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))?;
    let Value::Array(items) = v else {
        bail!(
            "{}: expected a JSON array of objects (or use .jsonl for one object per line), got {}",
            path.display(),
            kind(&v)
        );
    };
    items
        .into_iter()
        .enumerate()
        .map(|(row, v)| match v {
            Value::Object(value) => Ok(Record {
                pos: RecordPos {
                    file: path.to_path_buf(),
                    line: None,
                    row,
                },
                value,
            }),
            other => bail!(
                "{}: row {row}: expected a JSON object, got {}",
                path.display(),
                kind(&other)
            ),
        })
        .collect()
}

fn read_parquet(path: &Path) -> Result<Vec<Record>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| anyhow!("{}: not a readable parquet file: {e}", path.display()))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| anyhow!("{}: cannot read parquet rows: {e}", path.display()))?;
    let mut out = Vec::new();
    for (row, r) in rows.enumerate() {
        let r = r.map_err(|e| anyhow!("{}: row {row}: {e}", path.display()))?;
        let mut value = Map::new();
        for (name, field) in r.get_column_iter() {
            value.insert(name.clone(), field_to_json(field));
        }
        out.push(Record {
            pos: RecordPos {
                file: path.to_path_buf(),
                line: None,
                row,
            },
            value,
        });
    }
    Ok(out)
}

fn field_to_json(f: &parquet::record::Field) -> Value {
    use parquet::record::Field;
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float(v) => Value::from(*v as f64),
        Field::Double(v) => Value::from(*v),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Null,
        },
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| (k.clone(), field_to_json(v)))
                .collect(),
        ),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match field_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, field_to_json(v))
                })
                .collect(),
        ),
        // Dates, timestamps, decimals, float16: no text to calibrate on; keep their display form.
        other => Value::String(other.to_string()),
    }
}
