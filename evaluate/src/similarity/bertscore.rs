//! BERTScore (Zhang et al., "BERTScore: Evaluating Text Generation with BERT", ICLR 2020) as the
//! `bert-score` package 0.3.13 computes it (`bert_score.score(cands, refs, model_type=...,
//! num_layers=..., idf=..., rescale_with_baseline=...)`).
//!
//! For a candidate x̂ (the quantized answer) and a reference x (the BF16 answer), with token
//! embeddings from layer `L` of the encoder, each divided by its L2 norm:
//!
//! ```text
//! P = Σ_{j ∈ x̂} w(x̂_j) · max_{i ∈ x} cos(x_i, x̂_j) / Σ_{j ∈ x̂} w(x̂_j)
//! R = Σ_{i ∈ x}  w(x_i) · max_{j ∈ x̂} cos(x_i, x̂_j) / Σ_{i ∈ x}  w(x_i)
//! F = 2 P R / (P + R)
//! ```
//!
//! The maxima run over every token of the other side, special tokens included; the weights `w`
//! are 1 for every token and 0 for the special tokens (`[CLS]`, `[SEP]`), or with `idf` the
//! inverse document frequency over the references, `ln((M + 1) / (df + 1))` (`ln(M + 1)` for a
//! token no reference has), M the number of references (`bert_score.utils.get_idf_dict`).
//! Baseline rescaling (optional): `(s - b) / (1 - b)` for each of P, R, F with the baseline row of
//! the chosen layer (`bert-score`'s `rescale_baseline/<lang>/<model>.tsv` format).
//!
//! Text preparation as `bert_score.utils.sent_encode`: the text is stripped of surrounding
//! whitespace (Python `str.strip`), RoBERTa-family models get a leading space (`add_prefix_space`),
//! and the tokens are truncated to the model's `model_max_length` (512) including the special
//! tokens; the rest of a longer text is not seen ([`super::encoder::Tokenized::dropped`]).
//!
//! The RoBERTa path (leading space, `<s>`/`</s>`, positions from 2) follows bert-score's code
//! but has not been checked against the peer here: no RoBERTa checkpoint is on this machine.
//!
//! Edge cases as the peer: a candidate or reference that is empty after stripping has P = R = F = 0
//! (before rescaling); F is 0 where P + R = 0.
//!
//! Differences from the peer, on purpose:
//! - bert-score pads a batch of pairs and multiplies the similarity matrix by the padding mask
//!   before the max, so a token whose best cosine is negative gets 0 instead when its partner
//!   text was padded in that batch (it depends on the batch composition). We take the max over
//!   real tokens only. Contextual embeddings of real text have positive cosines in practice; the
//!   reference pairs agree to 1e-6.
//! - where all weights of a side are 0 (possible only with idf), bert-score returns NaN for P or
//!   R; we return 0.

use super::encoder::{Encoder, TokenStates, Tokenized};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// BERTScore of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BertScore {
    /// Precision: weighted mean over candidate tokens of their best cosine to a reference token.
    pub precision: f64,
    /// Recall: weighted mean over reference tokens of their best cosine to a candidate token.
    pub recall: f64,
    /// `2PR / (P + R)`, 0 when undefined.
    pub f1: f64,
}

/// bert-score's `model2layers` for the encoders we can run (BERT, RoBERTa, XLM-R), plus the MiniLM
/// sentence encoder (its last layer, 6). Keys are the model's name without the organisation.
pub fn default_layer(model_name: &str) -> Option<usize> {
    Some(match model_name {
        "bert-base-uncased" | "bert-base-multilingual-cased" | "bert-base-cased-finetuned-mrpc" => {
            9
        }
        "bert-large-uncased" => 18,
        "bert-base-chinese" => 8,
        "roberta-base" => 10,
        "roberta-large" => 17,
        "roberta-large-mnli" => 19,
        "roberta-base-openai-detector" => 7,
        "roberta-large-openai-detector" => 15,
        "distilroberta-base" => 5,
        "xlm-roberta-base" => 9,
        "xlm-roberta-large" => 17,
        "all-MiniLM-L6-v2" => 6,
        _ => return None,
    })
}

/// The model's name from its folder: `NAME` of an HF cache path `models--ORG--NAME/snapshots/REV`,
/// else the folder's own name.
pub fn model_name(dir: &Path) -> String {
    for c in dir.components().rev() {
        let s = c.as_os_str().to_string_lossy();
        if let Some(rest) = s.strip_prefix("models--") {
            return rest.rsplit("--").next().unwrap_or(rest).to_string();
        }
    }
    dir.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Python's `str.strip()`: removes the characters Python calls whitespace (Unicode White_Space
/// plus the information separators U+001C..U+001F) from both ends.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Tokenize a text the way `bert_score.utils.sent_encode` does for this encoder.
///
/// Errors: the tokenizer fails.
pub fn sent_encode(enc: &Encoder, text: &str) -> Result<Tokenized> {
    let s = python_strip(text);
    if s.is_empty() {
        return enc.tokenize("", enc.max_length);
    }
    if enc.cfg.model_type == "roberta" {
        enc.tokenize(&format!(" {s}"), enc.max_length)
    } else {
        enc.tokenize(s, enc.max_length)
    }
}

/// Inverse document frequencies over the references' token-id sets (`get_idf_dict`).
#[derive(Debug, Clone)]
pub struct Idf {
    map: HashMap<i64, f64>,
    unseen: f64,
}

impl Idf {
    /// `idf(t) = ln((M + 1) / (df(t) + 1))` over the `M` references (duplicates count).
    pub fn from_references(refs: &[&Tokenized]) -> Self {
        let m = refs.len() as f64;
        let mut df: HashMap<i64, usize> = HashMap::new();
        for r in refs {
            let set: HashSet<i64> = r.ids.iter().copied().collect();
            for t in set {
                *df.entry(t).or_insert(0) += 1;
            }
        }
        Idf {
            map: df
                .into_iter()
                .map(|(t, c)| (t, ((m + 1.0) / (c as f64 + 1.0)).ln()))
                .collect(),
            unseen: (m + 1.0).ln(),
        }
    }

    /// The weight of token `id`.
    pub fn get(&self, id: i64) -> f64 {
        self.map.get(&id).copied().unwrap_or(self.unseen)
    }
}

/// Baseline values of one layer for rescaling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Baseline precision.
    pub precision: f64,
    /// Baseline recall.
    pub recall: f64,
    /// Baseline F1.
    pub f1: f64,
}

impl Baseline {
    /// Read row `layer` (0-based data row, as `pd.read_csv(path).iloc[layer]`) of a bert-score
    /// baseline file: a header `LAYER,P,R,F` then one comma-separated row per layer.
    ///
    /// Errors: unreadable file, no such row, a row without four numbers (naming file and line).
    pub fn read(path: &Path, layer: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read baseline file", path.display()))?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            bail!("{}: empty baseline file", path.display());
        };
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        if cols.len() != 4 || cols[1..] != ["P", "R", "F"] {
            bail!(
                "{}:1: header must be 'LAYER,P,R,F', found '{header}'",
                path.display()
            );
        }
        let Some((ln, row)) = lines.nth(layer) else {
            bail!("{}: no row for layer {layer}", path.display());
        };
        let v: Vec<f64> = row
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{}:{}: not four numbers: '{row}'", path.display(), ln + 1))?;
        if v.len() != 4 {
            bail!(
                "{}:{}: expected 4 columns, found {}",
                path.display(),
                ln + 1,
                v.len()
            );
        }
        Ok(Baseline {
            precision: v[1],
            recall: v[2],
            f1: v[3],
        })
    }

    /// `(s - b) / (1 - b)` per component.
    pub fn rescale(&self, s: BertScore) -> BertScore {
        BertScore {
            precision: (s.precision - self.precision) / (1.0 - self.precision),
            recall: (s.recall - self.recall) / (1.0 - self.recall),
            f1: (s.f1 - self.f1) / (1.0 - self.f1),
        }
    }
}

/// Divide every row by its L2 norm (`ref_embedding.div_(torch.norm(ref_embedding, dim=-1))`).
pub fn unit_rows(s: &TokenStates) -> TokenStates {
    let mut out = s.clone();
    for row in out.data.chunks_mut(s.dim.max(1)) {
        let n = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32;
        row.iter_mut().for_each(|x| *x /= n);
    }
    out
}

/// One pair to match: unit-norm token embeddings ([`unit_rows`]) and per-token weights of the
/// candidate and the reference; `empty` says one side had no content tokens (the score is then
/// 0, as the peer's `hyp_zero_mask` / `ref_zero_mask`).
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// Candidate token embeddings, unit rows.
    pub cand: &'a TokenStates,
    /// Candidate token weights (0 for special tokens, or idf).
    pub cand_w: &'a [f64],
    /// Reference token embeddings, unit rows.
    pub refr: &'a TokenStates,
    /// Reference token weights.
    pub ref_w: &'a [f64],
    /// One side has no content tokens: the score is 0.
    pub empty: bool,
}

/// `Σ w·best / Σ w`, 0 when the weights sum to 0.
fn weighted(best: &[f32], w: &[f64]) -> f64 {
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    best.iter().zip(w).map(|(&s, &w)| s as f64 * w).sum::<f64>() / total
}

/// Greedy cosine matching of many pairs, before rescaling.
///
/// Pairs are packed into padded batches of at most `budget` similarity entries
/// (`pairs × max cand len × max ref len`) on `device`: `sim = C Rᵀ` `[b, n, m]` (f32, `bmm`),
/// padded rows/columns set to -inf, then the row and column maxima are copied back and weighted
/// on the host in f64. A handful of tensor operations per batch instead of per pair.
pub fn greedy_match(pairs: &[MatchInput], device: Device, budget: usize) -> Vec<BertScore> {
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(pairs.len());
    let mut start = 0;
    while start < pairs.len() {
        let (mut n, mut m, mut end) = (0usize, 0usize, start);
        while end < pairs.len() {
            let (n2, m2) = (n.max(pairs[end].cand.len), m.max(pairs[end].refr.len));
            if end > start && (end - start + 1) * n2 * m2 > budget {
                break;
            }
            (n, m, end) = (n2, m2, end + 1);
        }
        let chunk = &pairs[start..end];
        let (b, d) = (chunk.len(), chunk[0].cand.dim);
        let mut cbuf = vec![0f32; b * n * d];
        let mut rbuf = vec![0f32; b * m * d];
        let mut clen = Vec::with_capacity(b);
        let mut rlen = Vec::with_capacity(b);
        for (k, p) in chunk.iter().enumerate() {
            cbuf[k * n * d..k * n * d + p.cand.data.len()].copy_from_slice(&p.cand.data);
            rbuf[k * m * d..k * m * d + p.refr.data.len()].copy_from_slice(&p.refr.data);
            clen.push(p.cand.len as i64);
            rlen.push(p.refr.len as i64);
        }
        let (bi, ni, mi, di) = (b as i64, n as i64, m as i64, d as i64);
        let c = Tensor::from_slice(&cbuf)
            .view([bi, ni, di])
            .to_device(device);
        let r = Tensor::from_slice(&rbuf)
            .view([bi, mi, di])
            .to_device(device);
        let sim = c.bmm(&r.transpose(1, 2));
        let pad = |lens: &[i64], len: i64| {
            Tensor::arange(len, (Kind::Int64, device))
                .unsqueeze(0)
                .ge_tensor(&Tensor::from_slice(lens).to_device(device).unsqueeze(1))
        };
        let (cpad, rpad) = (pad(&clen, ni), pad(&rlen, mi));
        let host = |t: Tensor| -> Vec<f32> {
            Vec::try_from(t.to_device(Device::Cpu).contiguous().view([-1]))
                .expect("f32 similarity maxima")
        };
        let best_c = host(
            sim.masked_fill(&rpad.unsqueeze(1), f64::NEG_INFINITY)
                .amax([2i64].as_slice(), false),
        );
        let best_r = host(
            sim.masked_fill(&cpad.unsqueeze(2), f64::NEG_INFINITY)
                .amax([1i64].as_slice(), false),
        );
        for (k, p) in chunk.iter().enumerate() {
            if p.empty {
                out.push(BertScore::default());
                continue;
            }
            let precision = weighted(&best_c[k * n..k * n + p.cand.len], p.cand_w);
            let recall = weighted(&best_r[k * m..k * m + p.refr.len], p.ref_w);
            let f1 = 2.0 * precision * recall / (precision + recall);
            out.push(BertScore {
                precision,
                recall,
                f1: if f1.is_finite() { f1 } else { 0.0 },
            });
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_layers() {
        assert_eq!(
            model_name(Path::new(
                "/x/hub/models--FacebookAI--roberta-large/snapshots/abc"
            )),
            "roberta-large"
        );
        assert_eq!(
            model_name(Path::new(".cache/models/all-MiniLM-L6-v2")),
            "all-MiniLM-L6-v2"
        );
        assert_eq!(default_layer("roberta-large"), Some(17));
        assert_eq!(default_layer("all-MiniLM-L6-v2"), Some(6));
        assert_eq!(default_layer("unknown"), None);
    }

    #[test]
    fn strip_like_python() {
        assert_eq!(python_strip(" \t\n a b \u{a0}\u{3000}\u{1f}"), "a b");
        assert_eq!(python_strip("\u{200b}x"), "\u{200b}x"); // zero-width space is not whitespace
        assert_eq!(python_strip("   "), "");
    }

    fn states(rows: &[&[f32]]) -> TokenStates {
        TokenStates {
            len: rows.len(),
            dim: rows[0].len(),
            data: rows.concat(),
        }
    }

    #[test]
    fn greedy_matching_by_hand() {
        // Candidate: tokens along e0 and e1; reference: e0 only (then a longer pair, so the
        // first is padded in the batch and padding must not win any max).
        let cand = states(&[&[1., 0., 0.], &[0., 1., 0.]]);
        let refr = states(&[&[1., 0., 0.]]);
        let neg = states(&[&[-1., 0., 0.], &[0., -1., 0.], &[0., 0., -1.]]);
        let one = [1.0; 3];
        let pairs = [
            MatchInput {
                cand: &cand,
                cand_w: &one[..2],
                refr: &refr,
                ref_w: &one[..1],
                empty: false,
            },
            MatchInput {
                cand: &neg,
                cand_w: &one,
                refr: &neg,
                ref_w: &one,
                empty: false,
            },
            MatchInput {
                cand: &cand,
                cand_w: &[0.0, 0.0],
                refr: &refr,
                ref_w: &[0.0],
                empty: false,
            },
            MatchInput {
                cand: &cand,
                cand_w: &one[..2],
                refr: &refr,
                ref_w: &one[..1],
                empty: true,
            },
            MatchInput {
                cand: &refr,
                cand_w: &one[..1],
                refr: &neg,
                ref_w: &one,
                empty: false,
            },
        ];
        for budget in [1, 1 << 20] {
            let s = greedy_match(&pairs, Device::Cpu, budget);
            assert!((s[0].precision - 0.5).abs() < 1e-7, "{budget}: {:?}", s[0]);
            assert!((s[0].recall - 1.0).abs() < 1e-7);
            assert!((s[0].f1 - 2.0 / 3.0).abs() < 1e-7);
            assert!((s[1].f1 - 1.0).abs() < 1e-7);
            assert_eq!(s[2], BertScore::default());
            assert_eq!(s[3], BertScore::default());
            // Best cosines are 0 (e1, e2 against e0) and -1: negative maxima stay negative.
            assert!(
                (s[4].precision - 0.0).abs() < 1e-7 && (s[4].recall - (-1.0 / 3.0)).abs() < 1e-7,
                "{:?}",
                s[4]
            );
        }
    }

    #[test]
    fn idf_as_bert_score() {
        let a = Tokenized {
            ids: vec![101, 7, 8, 102],
            dropped: 0,
        };
        let b = Tokenized {
            ids: vec![101, 7, 7, 102],
            dropped: 0,
        };
        let idf = Idf::from_references(&[&a, &b]);
        assert!((idf.get(101) - 0.0).abs() < 1e-12);
        assert!((idf.get(7) - 0.0).abs() < 1e-12);
        assert!((idf.get(8) - (3.0f64 / 2.0).ln()).abs() < 1e-12);
        assert!((idf.get(9) - 3.0f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn baseline_rescaling() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.tsv");
        std::fs::write(&p, "LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.5,0.5,0.5\n").unwrap();
        let b = Baseline::read(&p, 1).unwrap();
        let s = b.rescale(BertScore {
            precision: 0.75,
            recall: 1.0,
            f1: 0.5,
        });
        assert_eq!(
            s,
            BertScore {
                precision: 0.5,
                recall: 1.0,
                f1: 0.0
            }
        );
        let e = Baseline::read(&p, 5).unwrap_err().to_string();
        assert!(e.contains("no row for layer 5"), "{e}");
    }
}
