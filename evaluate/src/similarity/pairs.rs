//! Reading the texts to compare: two JSONL files, one object per line with an id and a text
//! (field names configurable, `id` and `text` by default), paired by id.
//!
//! Every problem is an error naming the file, the line (1-based) and the field: a line that is not
//! JSON or not an object, a missing field, an id that is not a string or an integer, a text that
//! is not a string, an id used twice in one file, an id present in one file only, a file without
//! records. Blank lines are skipped.

use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

/// One record of a JSONL file.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRecord {
    /// The id as written (a JSON string or integer).
    pub id: serde_json::Value,
    /// The text.
    pub text: String,
    /// 1-based line number.
    pub line: usize,
}

/// A candidate (quantized model's answer) and its reference (BF16 answer) with their shared id.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPair {
    /// The id as written in the candidates file.
    pub id: serde_json::Value,
    /// Candidate text (quantized model).
    pub candidate: String,
    /// Reference text (BF16 baseline).
    pub reference: String,
}

/// The canonical key of an id: strings as themselves, integers in decimal (so `7` and `"7"` pair).
fn id_key(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Read every record of `path`, taking the id from `id_field` and the text from `text_field`.
///
/// Errors: see the module documentation; duplicate ids are reported here with both lines.
pub fn read_texts(path: &Path, id_field: &str, text_field: &str) -> Result<Vec<TextRecord>> {
    let f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let ln = i + 1;
        let line = line
            .with_context(|| format!("{}:{ln}: cannot read line (not UTF-8?)", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{ln}: not valid JSON", path.display()))?;
        let Some(obj) = v.as_object() else {
            bail!(
                "{}:{ln}: expected a JSON object, found {}",
                path.display(),
                type_name(&v)
            );
        };
        let Some(id) = obj.get(id_field) else {
            bail!("{}:{ln}: field '{id_field}' is missing", path.display());
        };
        let Some(key) = id_key(id) else {
            bail!(
                "{}:{ln}: field '{id_field}' must be a string or an integer, found {}",
                path.display(),
                type_name(id)
            );
        };
        let text = match obj.get(text_field) {
            None => bail!("{}:{ln}: field '{text_field}' is missing", path.display()),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => bail!(
                "{}:{ln}: field '{text_field}' must be a string, found {}",
                path.display(),
                type_name(other)
            ),
        };
        if let Some(prev) = seen.insert(key.clone(), ln) {
            bail!(
                "{}:{ln}: field '{id_field}': id {key:?} already used on line {prev}",
                path.display()
            );
        }
        out.push(TextRecord {
            id: id.clone(),
            text,
            line: ln,
        });
    }
    if out.is_empty() {
        bail!("{}: no records", path.display());
    }
    Ok(out)
}

/// Pair candidates with references by id, in the candidates' order.
///
/// Errors: an id of either file that the other lacks (naming the id, its file and line).
pub fn pair_up(
    candidates: &[TextRecord],
    cand_path: &Path,
    references: &[TextRecord],
    ref_path: &Path,
) -> Result<Vec<TextPair>> {
    let refs: HashMap<String, &TextRecord> = references
        .iter()
        .map(|r| (id_key(&r.id).unwrap_or_default(), r))
        .collect();
    let pairs = candidates
        .iter()
        .map(|c| {
            let key = id_key(&c.id).unwrap_or_default();
            let Some(r) = refs.get(&key) else {
                bail!(
                    "{}:{}: id {} has no reference in {}",
                    cand_path.display(),
                    c.line,
                    c.id,
                    ref_path.display()
                );
            };
            Ok(TextPair {
                id: c.id.clone(),
                candidate: c.text.clone(),
                reference: r.text.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cand_keys: HashSet<String> = candidates
        .iter()
        .map(|c| id_key(&c.id).unwrap_or_default())
        .collect();
    if let Some(r) = references
        .iter()
        .find(|r| !cand_keys.contains(&id_key(&r.id).unwrap_or_default()))
    {
        bail!(
            "{}:{}: id {} has no candidate in {}",
            ref_path.display(),
            r.line,
            r.id,
            cand_path.display()
        );
    }
    Ok(pairs)
}

/// [`read_texts`] both files and [`pair_up`] them.
pub fn read_pairs(
    candidates: &Path,
    references: &Path,
    id_field: &str,
    text_field: &str,
) -> Result<Vec<TextPair>> {
    let c = read_texts(candidates, id_field, text_field)?;
    let r = read_texts(references, id_field, text_field)?;
    pair_up(&c, candidates, &r, references)
}
