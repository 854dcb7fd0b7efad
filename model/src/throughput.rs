//! Engine throughput on fixed token requests, for `quantlab bench` (issue "bench-eval": scoring
//! tokens/s for a batch of long log-likelihood requests, and batched greedy generation tokens/s),
//! measured the same way as the peer script `bench/eval/hf_bench.py` measures transformers.
//!
//! The requests file is JSON: `{"score": [[ids...], ...], "continuation": C, "generate":
//! [[ids...], ...], "new_tokens": N}`. Each `score` row is scored as context = all but the last
//! `C` ids, continuation = the last `C` ids (lm-eval's loglikelihood request); scoring throughput
//! counts every input token of every row. Each `generate` row is a prompt; generation runs exactly
//! `N` new tokens per prompt (EOS ignored, no stop strings), and throughput counts generated tokens.

use crate::engine::Engine;
use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The requests of one benchmark (see the module documentation). Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchRequests {
    /// Token rows to score (each at least `continuation + 1` ids).
    #[serde(default)]
    pub score: Vec<Vec<i64>>,
    /// Continuation length of every score row, in tokens.
    #[serde(default = "default_continuation")]
    pub continuation: usize,
    /// Prompts to generate from.
    #[serde(default)]
    pub generate: Vec<Vec<i64>>,
    /// New tokens per prompt.
    #[serde(default)]
    pub new_tokens: usize,
}

fn default_continuation() -> usize {
    1
}

impl BenchRequests {
    /// Read and check a requests file. Errors name the file and the field.
    pub fn read(path: &Path) -> Result<BenchRequests> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Format {
            file: path.to_path_buf(),
            msg: format!("cannot read: {e}"),
        })?;
        let r: BenchRequests = serde_json::from_str(&text).map_err(|e| ModelError::Format {
            file: path.to_path_buf(),
            msg: format!("not a requests file: {e}"),
        })?;
        let bad = |msg: String| ModelError::Format {
            file: path.to_path_buf(),
            msg,
        };
        if r.score.is_empty() && r.generate.is_empty() {
            return Err(bad(
                "field 'score' and field 'generate' are both empty".into()
            ));
        }
        if r.continuation == 0 {
            return Err(bad("field 'continuation' must be at least 1".into()));
        }
        if let Some(i) = r.score.iter().position(|s| s.len() <= r.continuation) {
            return Err(bad(format!(
                "field 'score' row {i} is not longer than the continuation ({} ids)",
                r.continuation
            )));
        }
        if !r.generate.is_empty() && r.new_tokens == 0 {
            return Err(bad("field 'new_tokens' must be at least 1".into()));
        }
        if let Some(i) = r.generate.iter().position(|s| s.is_empty()) {
            return Err(bad(format!("field 'generate' row {i} is empty")));
        }
        Ok(r)
    }
}

impl BenchRequests {
    /// Check the requests against a loaded model before any work: token ids in `[0, vocab)`,
    /// score rows within the context window `max_len`, prompt + `new_tokens` within it too.
    /// Errors name `path` and the field.
    pub fn check_for(&self, path: &Path, vocab: usize, max_len: usize) -> Result<()> {
        let bad = |msg: String| ModelError::Format {
            file: path.to_path_buf(),
            msg,
        };
        for (field, rows) in [("score", &self.score), ("generate", &self.generate)] {
            for (i, row) in rows.iter().enumerate() {
                if let Some(t) = row.iter().find(|&&t| t < 0 || t as usize >= vocab) {
                    return Err(bad(format!(
                        "field '{field}' row {i}: token id {t} is outside the model's vocabulary (0..{vocab})"
                    )));
                }
            }
        }
        if let Some((i, r)) = self
            .score
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() > max_len + 1)
        {
            return Err(bad(format!(
                "field 'score' row {i} has {} ids; the context window is {max_len}",
                r.len()
            )));
        }
        if let Some((i, r)) = self
            .generate
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() + self.new_tokens > max_len)
        {
            return Err(bad(format!(
                "field 'generate' row {i} ({} ids) + field 'new_tokens' ({}) exceed the context window of {max_len}",
                r.len(),
                self.new_tokens
            )));
        }
        Ok(())
    }
}

/// Timings of one benchmark run (seconds, tokens per second).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// Device and compute dtype the engine ran on (`--device`, `--dtype` as resolved).
    pub device: String,
    pub dtype: String,
    /// Whether decode steps were CUDA-graph replays (`QUANTLAB_CUDA_GRAPH`, CUDA builds only).
    pub cuda_graph: bool,
    /// Rows scored and their total input tokens.
    pub score_rows: usize,
    pub score_tokens: usize,
    /// Wall seconds of the timed scoring pass (after one warm-up pass).
    pub score_s: f64,
    /// Input tokens scored per second.
    pub score_tokens_per_s: f64,
    /// Sum of the continuation log-probabilities (to compare engines on the same weights).
    pub score_logprob_sum: f64,
    /// Prompts and new tokens per prompt.
    pub generate_rows: usize,
    pub new_tokens: usize,
    /// Wall seconds of the timed generation (after a warm-up of 8 new tokens).
    pub generate_s: f64,
    /// Generated tokens per second (rows × new tokens / seconds).
    pub generate_tokens_per_s: f64,
    /// sha256 of the generated ids (little-endian i64, prompt order), to check that two runs
    /// (e.g. with and without CUDA graphs) generated the same tokens.
    pub generate_ids_sha256: String,
}

/// Run the benchmark: one warm-up and one timed pass of scoring, then of generation. The engine's
/// EOS ids are ignored during generation, so every prompt gets exactly `new_tokens`.
pub fn run(engine: &mut Engine, req: &BenchRequests) -> Result<BenchReport> {
    let mut rep = BenchReport {
        device: format!("{:?}", engine.device),
        dtype: format!("{:?}", engine.kind),
        cuda_graph: crate::engine::decode_graphs_enabled(engine.device),
        ..BenchReport::default()
    };
    if !req.score.is_empty() {
        let pairs: Vec<(Vec<i64>, Vec<i64>)> = req
            .score
            .iter()
            .map(|row| {
                let cut = row.len() - req.continuation;
                (row[..cut].to_vec(), row[cut..].to_vec())
            })
            .collect();
        engine.score(&pairs, &|_| {})?;
        let t = Instant::now();
        let scores = engine.score(&pairs, &|_| {})?;
        rep.score_s = t.elapsed().as_secs_f64();
        rep.score_rows = pairs.len();
        rep.score_tokens = req.score.iter().map(Vec::len).sum();
        rep.score_tokens_per_s = rep.score_tokens as f64 / rep.score_s;
        rep.score_logprob_sum = scores.iter().map(|s| s.logprob).sum();
    }
    if !req.generate.is_empty() {
        let eos = std::mem::take(&mut engine.tokenizer.eos_ids);
        let res = (|| {
            engine.generate(&req.generate, 8.min(req.new_tokens), &[], &[], &|_| {})?;
            let t = Instant::now();
            let gens = engine.generate(&req.generate, req.new_tokens, &[], &[], &|_| {})?;
            Ok::<_, ModelError>((t.elapsed().as_secs_f64(), gens))
        })();
        engine.tokenizer.eos_ids = eos;
        let (secs, gens) = res?;
        let produced: usize = gens.iter().map(|g| g.ids.len()).sum();
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for id in gens.iter().flat_map(|g| g.ids.iter()) {
            h.update(id.to_le_bytes());
        }
        rep.generate_ids_sha256 = hex::encode(h.finalize());
        rep.generate_rows = req.generate.len();
        rep.new_tokens = req.new_tokens;
        rep.generate_s = secs;
        rep.generate_tokens_per_s = produced as f64 / secs;
    }
    Ok(rep)
}
