//! Where calibration samples come from: the `--calibration` spellings and the data files they
//! read.

use anyhow::{bail, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// The accepted spellings, for error messages and `--help`.
pub const SOURCE_FORMS: &str = "open-platypus | alpaca-eval | random | jsonl:PATH | tokens:PATH";

/// A calibration sample source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `open-platypus`: `<data_dir>/open_platypus/train.{jsonl,jsonl.gz,parquet}` (the first that
    /// exists), Hugging Face `garage-bAInd/Open-Platypus` schema (`instruction`, `input`,
    /// `output`, `data_source`), rendered with [`Template`](crate::Template). The paper's
    /// calibration set (section 3.2).
    OpenPlatypus,
    /// `alpaca-eval`: `<data_dir>/alpaca_eval/eval.jsonl.gz` (`instruction`, `output`), rendered
    /// like Open-Platypus. The stand-in for Open-Platypus on a machine without it (it ships in
    /// `shared/data`).
    AlpacaEval,
    /// `random`: seeded uniform random token ids over the tokenizer's ordinary (non-special) ids,
    /// exactly as `torch.randint` draws them.
    Random,
    /// `jsonl:PATH`: any `.jsonl`, `.jsonl.gz`, `.json` (an array of objects) or `.parquet` file of
    /// records; each record gives its text through `--text-field F`, a `text` field, a `messages`
    /// chat list (rendered with the chat template) or `instruction`/`output` pairs.
    Jsonl { path: PathBuf },
    /// `tokens:PATH`: a JSON object with `"input_ids": [[id, ...], ...]`, used as is (the first
    /// `samples` rows, each cut to `seq_len`); e.g. the llm-compressor fixtures in
    /// `shared/reference/llmcompressor/`.
    Tokens { path: PathBuf },
}

impl Source {
    /// Parse a `--calibration` value. Names are case-insensitive and `_` may stand for `-`;
    /// `jsonl:` and `tokens:` need a path after the colon. Errors list the accepted forms.
    pub fn parse(s: &str) -> Result<Source> {
        let t = s.trim();
        if let Some((kind, path)) = t.split_once(':') {
            let path = path.trim();
            let kind_l = kind.trim().to_ascii_lowercase();
            if kind_l == "jsonl" || kind_l == "tokens" {
                if path.is_empty() {
                    bail!(
                        "calibration source `{s}`: `{kind_l}:` needs a file path after the colon \
                         (accepted: {SOURCE_FORMS})"
                    );
                }
                let path = PathBuf::from(path);
                return Ok(if kind_l == "jsonl" {
                    Source::Jsonl { path }
                } else {
                    Source::Tokens { path }
                });
            }
        }
        match t.to_ascii_lowercase().replace('_', "-").as_str() {
            "open-platypus" | "openplatypus" | "garage-baind/open-platypus" => {
                Ok(Source::OpenPlatypus)
            }
            "alpaca-eval" | "alpacaeval" => Ok(Source::AlpacaEval),
            "random" => Ok(Source::Random),
            _ => bail!(
                "unknown calibration source `{s}` (accepted: {SOURCE_FORMS}; a data file needs the \
                 `jsonl:` or `tokens:` prefix)"
            ),
        }
    }

    /// Whether the source is text that goes through the tokenizer (not `random` or `tokens:`).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Source::OpenPlatypus | Source::AlpacaEval | Source::Jsonl { .. }
        )
    }
}

impl std::str::FromStr for Source {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Source> {
        Source::parse(s)
    }
}

impl fmt::Display for Source {
    /// The spelling [`Source::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::OpenPlatypus => f.write_str("open-platypus"),
            Source::AlpacaEval => f.write_str("alpaca-eval"),
            Source::Random => f.write_str("random"),
            Source::Jsonl { path } => write!(f, "jsonl:{}", path.display()),
            Source::Tokens { path } => write!(f, "tokens:{}", path.display()),
        }
    }
}

/// File names tried, in order, for Open-Platypus under `<data_dir>/open_platypus/`.
pub const OPEN_PLATYPUS_FILES: [&str; 3] = ["train.jsonl", "train.jsonl.gz", "train.parquet"];

/// The AlpacaEval file under the data folder.
pub const ALPACA_EVAL_FILE: &str = "alpaca_eval/eval.jsonl.gz";

/// The data file a text source reads. Errors: the named dataset's file is missing (saying where
/// to put it and that `alpaca-eval` or `random` need no download), or a `jsonl:` path is missing.
pub(crate) fn resolve_text_file(source: &Source, data_dir: &Path) -> Result<PathBuf> {
    match source {
        Source::OpenPlatypus => {
            let dir = data_dir.join("open_platypus");
            for name in OPEN_PLATYPUS_FILES {
                let p = dir.join(name);
                if p.is_file() {
                    return Ok(p);
                }
            }
            bail!(
                "Open-Platypus calibration data is missing: none of {}/{{{}}} exists. Put the \
                 Hugging Face `garage-bAInd/Open-Platypus` train split there (its parquet file \
                 renamed train.parquet, or JSON lines with fields instruction, input, output), or \
                 set QUANTLAB_DATA to a folder that has open_platypus/; without a download, \
                 `--calibration alpaca-eval` (AlpacaEval text in the same Alpaca template) or \
                 `--calibration random` work",
                dir.display(),
                OPEN_PLATYPUS_FILES.join(",")
            )
        }
        Source::AlpacaEval => {
            let p = data_dir.join(ALPACA_EVAL_FILE);
            if !p.is_file() {
                bail!(
                    "AlpacaEval calibration data is missing: {} does not exist. It ships in \
                     shared/data/{ALPACA_EVAL_FILE}; set QUANTLAB_DATA to that data folder, or use \
                     `--calibration random`, which needs no data",
                    p.display()
                );
            }
            Ok(p)
        }
        Source::Jsonl { path } => {
            if !path.is_file() {
                bail!(
                    "calibration file {} does not exist (source `jsonl:{}`); `--calibration \
                     alpaca-eval` or `--calibration random` work without a file",
                    path.display(),
                    path.display()
                );
            }
            Ok(path.clone())
        }
        Source::Random | Source::Tokens { .. } => {
            bail!("internal: `{source}` is not a text source")
        }
    }
}
