//! quantlab-calibration: the calibration token sequences that GPTQ, SmoothQuant and AWQ run the
//! model on (paper section 3.2: Open-Platypus for W4A16 and the larger W8A8 models, random
//! tokens being adequate for W8A8 at 8B).
//!
//! [`load`] turns a [`Source`] into a [`CalibrationSet`] of `samples` sequences of at most
//! `seq_len` token ids each (ragged, no padding), mirroring llm-compressor 0.14's calibration
//! data handling:
//! - text sources render each record ([`render`]), tokenize it without adding special tokens,
//!   truncate it to `seq_len` (`truncation=True, max_length=seq_len`) and drop empty ones;
//!   with `shuffle` the records are visited in a seeded order, else in file order, and the first
//!   `samples` usable ones are kept. Too few records is not an error: the set is smaller, the
//!   description says so and a warning is logged (llm-compressor warns the same way).
//! - `random` draws `samples × seq_len` ids exactly as `torch.randint` does ([`torch_rng`]).
//! - `tokens:` reads ids from a JSON fixture.
//!
//! Differences from llm-compressor: its shuffle is `datasets.Dataset.shuffle()` (numpy, and
//! unseeded in 0.14's `format_calibration_data`); ours is `torch.randperm` with `seed`, so a
//! run is reproducible. It shuffles after tokenizing and filtering every record; we permute
//! the records first and tokenize lazily, so with `shuffle` the chosen set can differ from
//! "filter, then permute" when some records are empty (never for the shipped data, which has
//! no empty records).

pub mod records;
pub mod render;
pub mod source;
pub mod torch_rng;

pub use render::{alpaca_text, Template, ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT};
pub use source::{Source, SOURCE_FORMS};

use anyhow::{anyhow, bail, Context, Result};
use quantlab_model::Tokenizer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Environment variable naming the data folder (shared with quantlab-tasks).
pub const DATA_ENV: &str = "QUANTLAB_DATA";

/// The default data folder: `$QUANTLAB_DATA` if set (and not empty), else `../shared/data`
/// relative to the current directory when it exists, else `../shared/data` beside the quantlab
/// checkout this binary was built from, else `../shared/data` (so the missing-file error names
/// it). The same rule as `quantlab_tasks::dataset::default_data_dir`.
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

/// What to load.
#[derive(Debug, Clone)]
pub struct CalibrationOptions {
    pub source: Source,
    /// Number of sequences wanted (llm-compressor's `num_calibration_samples`).
    pub samples: usize,
    /// Maximum tokens per sequence (`max_seq_length`); longer ones are truncated, shorter text
    /// sequences stay short (no padding, no packing).
    pub seq_len: usize,
    /// Seed of the shuffle (text sources) and of the random ids (`random`).
    pub seed: u64,
    /// For text sources: take each record's text from this field (overrides the other rules of
    /// [`render::render_record`]).
    pub text_field: Option<String>,
    /// How instruction/output pairs are rendered.
    pub template: Template,
    /// Where `open-platypus` and `alpaca-eval` are looked for ([`default_data_dir`]).
    pub data_dir: PathBuf,
    /// Visit text records in seeded random order (`torch.randperm(n)` seeded with `seed`)
    /// rather than file order; llm-compressor's `shuffle_calibration_samples`, default true.
    pub shuffle: bool,
}

impl Default for CalibrationOptions {
    /// Open-Platypus in the Alpaca template, 512 samples of up to 2048 tokens, seed 0, shuffled,
    /// from [`default_data_dir`].
    fn default() -> Self {
        CalibrationOptions {
            source: Source::OpenPlatypus,
            samples: 512,
            seq_len: 2048,
            seed: 0,
            text_field: None,
            template: Template::Alpaca,
            data_dir: default_data_dir(),
            shuffle: true,
        }
    }
}

/// The calibration sequences: each a non-empty list of token ids, at most `seq_len` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationSet {
    /// `[n][len_i]` token ids, `1 <= len_i <= seq_len`, `n <= samples`.
    pub sequences: Vec<Vec<i64>>,
    /// One line: source, number of sequences, `seq_len`, seed, token count (and a shortfall).
    pub description: String,
}

impl CalibrationSet {
    /// Total number of token ids over all sequences.
    pub fn num_tokens(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    /// SHA-256 (lowercase hex) of the ids, to tell whether a resumed run calibrates on the same
    /// data: the number of sequences as little-endian u64, then for each sequence its length as
    /// little-endian u64 followed by its ids as little-endian i64.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update((self.sequences.len() as u64).to_le_bytes());
        for s in &self.sequences {
            h.update((s.len() as u64).to_le_bytes());
            for id in s {
                h.update(id.to_le_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// Load the calibration set `opts` describes, tokenizing with `tokenizer`.
///
/// Errors (each names the file and, where there is one, the field): `samples` or `seq_len` of 0;
/// a missing data file (saying where to put it, and that `alpaca-eval` / `random` need no
/// download); malformed records or a record without usable text; a `tokens:` file that is not
/// `{"input_ids": [[int, ...], ...]}` or holds ids outside `[0, vocab)`; a tokenizer whose ids
/// are all special (`random`).
pub fn load(opts: &CalibrationOptions, tokenizer: &Tokenizer) -> Result<CalibrationSet> {
    if opts.samples == 0 {
        bail!("calibration: `samples` must be at least 1");
    }
    if opts.seq_len == 0 {
        bail!("calibration: `seq_len` must be at least 1");
    }
    let (sequences, origin) = match &opts.source {
        Source::Random => {
            let (lo, hi) = random_token_range(tokenizer)?;
            let seqs = torch_rng::randint(opts.seed, lo, hi, opts.samples, opts.seq_len)?;
            (seqs, format!("ids uniform in [{lo}, {hi})"))
        }
        Source::Tokens { path } => (
            load_tokens(path, opts, tokenizer.vocab_size())?,
            path.display().to_string(),
        ),
        text => {
            let path = source::resolve_text_file(text, &opts.data_dir)?;
            let seqs = load_text(&path, opts, tokenizer)?;
            let how = match (&opts.text_field, text) {
                (Some(f), _) => format!("field `{f}`"),
                _ => format!("{} template", opts.template),
            };
            (seqs, format!("{}, {how}", path.display()))
        }
    };
    let got = sequences.len();
    let shortfall = if got < opts.samples {
        tracing::warn!(
            "calibration source `{}` has only {got} usable samples of the {} requested; \
             calibrating on {got}",
            opts.source,
            opts.samples
        );
        format!(" (only {got} of {} requested available)", opts.samples)
    } else {
        String::new()
    };
    let order = match (&opts.source, opts.shuffle) {
        (Source::Random, _) => format!("seed {}", opts.seed),
        (Source::Tokens { .. }, _) => "file order".to_string(),
        (_, true) => format!("shuffled, seed {}", opts.seed),
        (_, false) => "file order".to_string(),
    };
    let set = CalibrationSet {
        sequences,
        description: String::new(),
    };
    let description = format!(
        "calibration: {} ({origin}): {got} sequences x <= {} tokens, {order}, {} tokens{shortfall}",
        opts.source,
        opts.seq_len,
        set.num_tokens()
    );
    Ok(CalibrationSet { description, ..set })
}

/// The ids `random` draws from: `[lo, hi)` where `lo` is the first id that is not a special
/// token and `hi - 1` the last (so special tokens appended after the base vocabulary, as in
/// Llama 3, are left out, like Hugging Face's `tokenizer.vocab_size`). A special token is one
/// that decodes to text but to nothing with `skip_special_tokens`. SmolLM2: `[17, 49152)`.
pub fn random_token_range(tokenizer: &Tokenizer) -> Result<(i64, i64)> {
    let vocab = tokenizer.vocab_size() as i64;
    let is_special = |id: i64| -> Result<bool> {
        let plain = tokenizer.decode(&[id], false)?;
        let skipped = tokenizer.decode(&[id], true)?;
        Ok(!plain.is_empty() && skipped.is_empty())
    };
    let mut lo = 0;
    while lo < vocab && is_special(lo)? {
        lo += 1;
    }
    let mut hi = vocab;
    while hi > lo && is_special(hi - 1)? {
        hi -= 1;
    }
    if lo >= hi {
        bail!("the tokenizer has no ordinary (non-special) token ids to draw random tokens from");
    }
    Ok((lo, hi))
}

fn load_text(
    path: &Path,
    opts: &CalibrationOptions,
    tokenizer: &Tokenizer,
) -> Result<Vec<Vec<i64>>> {
    let records = records::read_records(path)?;
    let order: Vec<usize> = if opts.shuffle {
        torch_rng::randperm(opts.seed, records.len())?
    } else {
        (0..records.len()).collect()
    };
    let mut out = Vec::with_capacity(opts.samples.min(records.len()));
    let mut empty = 0usize;
    for i in order {
        if out.len() >= opts.samples {
            break;
        }
        let rec = &records[i];
        let text =
            render::render_record(rec, opts.text_field.as_deref(), opts.template, tokenizer)?;
        let mut ids = tokenizer
            .encode(&text)
            .map_err(|e| anyhow!("{}: tokenizing: {e}", rec.pos))?;
        ids.truncate(opts.seq_len);
        if ids.is_empty() {
            empty += 1;
            continue;
        }
        out.push(ids);
    }
    if empty > 0 {
        tracing::info!(
            "{}: skipped {empty} records with empty text",
            path.display()
        );
    }
    Ok(out)
}

fn load_tokens(path: &Path, opts: &CalibrationOptions, vocab: usize) -> Result<Vec<Vec<i64>>> {
    if !path.is_file() {
        bail!(
            "calibration token file {} does not exist (source `tokens:{}`); `--calibration \
             alpaca-eval` or `--calibration random` work without a file",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading calibration token file {} (source `tokens:{}`)",
            path.display(),
            path.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))?;
    let rows = match v.get("input_ids") {
        Some(Value::Array(rows)) => rows,
        Some(other) => bail!(
            "{}: field `input_ids` must be a list of lists of token ids, got {}",
            path.display(),
            json_kind(other)
        ),
        None => bail!(
            "{}: field `input_ids` is missing (expected a JSON object {{\"input_ids\": [[id, ...], \
             ...]}})",
            path.display()
        ),
    };
    let mut out = Vec::with_capacity(opts.samples.min(rows.len()));
    for (r, row) in rows.iter().take(opts.samples).enumerate() {
        let Value::Array(ids) = row else {
            bail!(
                "{}: field `input_ids[{r}]` must be a list of token ids, got {}",
                path.display(),
                json_kind(row)
            );
        };
        if ids.is_empty() {
            bail!("{}: field `input_ids[{r}]` is empty", path.display());
        }
        let mut seq = Vec::with_capacity(ids.len().min(opts.seq_len));
        for (c, id) in ids.iter().take(opts.seq_len).enumerate() {
            let Some(id) = id.as_i64() else {
                bail!(
                    "{}: field `input_ids[{r}][{c}]` must be an integer token id, got {id}",
                    path.display()
                );
            };
            if id < 0 || id as u64 >= vocab as u64 {
                bail!(
                    "{}: field `input_ids[{r}][{c}]` = {id} is outside the tokenizer's vocabulary \
                     [0, {vocab})",
                    path.display()
                );
            }
            seq.push(id);
        }
        out.push(seq);
    }
    Ok(out)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
