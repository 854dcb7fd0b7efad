//! Semantic textual similarity (STS) as sentence-transformers computes it with
//! `all-MiniLM-L6-v2` (Reimers & Gurevych 2019; the paper's section 4.3):
//! `SentenceTransformer(dir).encode(texts)` then `util.cos_sim`.
//!
//! The model folder's `modules.json` chains Transformer → Pooling → Normalize:
//!
//! - tokens: the text as given (no stripping), truncated to `max_seq_length` tokens including
//!   `[CLS]`/`[SEP]` (`sentence_bert_config.json`: 256 for MiniLM, below the 512 positions the
//!   network has); the rest of a longer text is not seen;
//! - pooling (`1_Pooling/config.json`): the mean of the last layer's token embeddings over the real
//!   tokens, special tokens included (`pooling_mode_mean_tokens`), or the `[CLS]` embedding
//!   (`pooling_mode_cls_token`);
//! - `e / max(‖e‖₂, 1e-12)`, and the score is the cosine `e_cand · e_ref` in `[-1, 1]`.
//!
//! The paper plots STS "normalised to the 0-1 range"; we report that as `(cos + 1) / 2`
//! ([`to_unit_interval`]) beside the raw cosine.
//!
//! An empty text is the sequence `[CLS] [SEP]` and has a well-defined embedding, as in the peer.

use super::encoder::TokenStates;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// How token embeddings become one sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over real tokens.
    Mean,
    /// The first token's embedding.
    Cls,
}

/// The sentence-transformers settings of a model folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StsConfig {
    /// Most tokens per text including specials (`max_seq_length`).
    pub max_seq_length: usize,
    /// Mean or CLS pooling.
    pub pooling: Pooling,
}

impl StsConfig {
    /// Read `sentence_bert_config.json` and `1_Pooling/config.json` from `dir`. Without them:
    /// `max_seq_length` = `fallback_max` (the encoder's window), mean pooling.
    ///
    /// Errors: a file that exists but is not valid JSON, or a pooling mode other than mean or CLS
    /// (naming the file and the field).
    pub fn read(dir: &Path, fallback_max: usize) -> Result<Self> {
        let read = |p: &Path| -> Result<Option<serde_json::Value>> {
            if !p.is_file() {
                return Ok(None);
            }
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            Ok(Some(serde_json::from_str(&t).with_context(|| {
                format!("{}: not valid JSON", p.display())
            })?))
        };
        let sb = dir.join("sentence_bert_config.json");
        let max_seq_length = match read(&sb)? {
            Some(v) => match v.get("max_seq_length") {
                None | Some(serde_json::Value::Null) => fallback_max,
                Some(x) => x
                    .as_u64()
                    .map(|x| x as usize)
                    .filter(|&x| x > 2)
                    .with_context(|| {
                        format!(
                            "{}: field 'max_seq_length' must be an integer above 2, found {x}",
                            sb.display()
                        )
                    })?,
            },
            None => fallback_max,
        };
        let pc = dir.join("1_Pooling/config.json");
        let pooling = match read(&pc)? {
            None => Pooling::Mean,
            Some(v) => {
                let on = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
                let others = [
                    "pooling_mode_max_tokens",
                    "pooling_mode_mean_sqrt_len_tokens",
                    "pooling_mode_weightedmean_tokens",
                    "pooling_mode_lasttoken",
                ];
                if let Some(k) = others.iter().find(|k| on(k)) {
                    bail!(
                        "{}: field '{k}' is set; only mean or CLS pooling is supported",
                        pc.display()
                    );
                }
                match (on("pooling_mode_mean_tokens"), on("pooling_mode_cls_token")) {
                    (true, false) => Pooling::Mean,
                    (false, true) => Pooling::Cls,
                    _ => bail!(
                        "{}: exactly one of 'pooling_mode_mean_tokens' and 'pooling_mode_cls_token' must be true",
                        pc.display()
                    ),
                }
            }
        };
        Ok(StsConfig {
            max_seq_length: max_seq_length.min(fallback_max),
            pooling,
        })
    }
}

/// Sentence embedding (`dim` f32 values, unit L2 norm) from one text's last-layer token
/// embeddings (no padding rows).
pub fn sentence_embedding(tokens: &TokenStates, pooling: Pooling) -> Vec<f32> {
    let e: Vec<f32> = match pooling {
        Pooling::Mean => {
            let mut acc = vec![0f64; tokens.dim];
            for i in 0..tokens.len {
                for (a, &x) in acc.iter_mut().zip(tokens.row(i)) {
                    *a += x as f64;
                }
            }
            acc.iter()
                .map(|a| (a / tokens.len.max(1) as f64) as f32)
                .collect()
        }
        Pooling::Cls => tokens.row(0).to_vec(),
    };
    let n = (e.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32).max(1e-12);
    e.into_iter().map(|x| x / n).collect()
}

/// Cosine of two unit-norm sentence embeddings (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// The paper's 0-1 STS scale: `(cos + 1) / 2`.
pub fn to_unit_interval(cos: f64) -> f64 {
    (cos + 1.0) / 2.0
}
