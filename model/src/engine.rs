//! The engine: a loaded model + tokenizer with batched scoring and greedy generation.
//!
//! `score` follows lm-evaluation-harness's `HFLM._loglikelihood_tokens`: the input is
//! `(context + continuation)[-(max_length + 1):][:-1]`, log-softmax in fp32 over the positions
//! that predict the continuation, the sum of the continuation's log-probs, and `is_greedy` when
//! every continuation token is the argmax. Requests are sorted by length (longest first) and
//! right-padded into batches, so padding never sits before a real token.
//! `generate` decodes with a KV cache over left-padded batches (positions count real tokens
//! only), stopping at EOS ids, stop strings or `max_new_tokens`: greedily, or per prompt by
//! temperature + nucleus (top-p) sampling ([`Sampling`]) with a seeded stream per prompt.

use crate::config::LlamaConfig;
use crate::cuda_graph;
use crate::error::{ModelError, Result};
use crate::llama::{causal_mask, KvCache, Llama};
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    pub device: String,
    /// `float32`, `bfloat16`, `float16`, or `auto` (float32 on CPU, bfloat16 on CUDA).
    pub dtype: String,
    /// Most sequences per forward pass; 0 = auto (64 on CPU; 256 on CUDA). Greedy decoding of a
    /// small model is bound by per-operation overhead, so larger batches are nearly free.
    pub batch_size: usize,
    /// Most tokens (batch × padded length) per forward pass; 0 = auto (32768 on CPU, 262144 on CUDA).
    pub max_batch_tokens: usize,
    /// Context window used for scoring (defaults to the config's max_position_embeddings).
    pub max_length: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            device: "auto".into(),
            dtype: "auto".into(),
            batch_size: 0,
            max_batch_tokens: 0,
            max_length: None,
        }
    }
}

/// Parse a device string. Errors on unknown names or CUDA requested but unavailable.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(ModelError::Other("device 'cuda' requested but CUDA is not available (is LD_LIBRARY_PATH pointing at torch/lib?)".into()))
            }
        }
        s if s.starts_with("cuda:") => {
            let n: usize = s[5..]
                .parse()
                .map_err(|_| ModelError::Other(format!("bad device '{s}'")))?;
            if (n as i64) < tch::Cuda::device_count() {
                Ok(Device::Cuda(n))
            } else {
                Err(ModelError::Other(format!("device '{s}' not available")))
            }
        }
        other => Err(ModelError::Other(format!(
            "unknown device '{other}' (cpu, cuda, cuda:N, auto)"
        ))),
    }
}

/// Parse a dtype string for `device`.
pub fn parse_dtype(s: &str, device: Device) -> Result<Kind> {
    match s {
        "auto" => Ok(if device.is_cuda() {
            Kind::BFloat16
        } else {
            Kind::Float
        }),
        "float32" | "fp32" | "f32" => Ok(Kind::Float),
        "bfloat16" | "bf16" => Ok(Kind::BFloat16),
        "float16" | "fp16" | "f16" => Ok(Kind::Half),
        other => Err(ModelError::Other(format!(
            "unknown dtype '{other}' (float32, bfloat16, float16, auto)"
        ))),
    }
}

/// Result of scoring one (context, continuation) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Sum of natural-log probabilities of the continuation tokens.
    pub logprob: f64,
    /// Whether greedy decoding would produce exactly the continuation.
    pub is_greedy: bool,
}

/// Output of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids (including the EOS that ended it, if any).
    pub ids: Vec<i64>,
    /// Decoded text without special tokens, cut before the first stop string.
    pub text: String,
}

/// Temperature + nucleus (top-p) sampling for one prompt, as vLLM's and transformers' samplers
/// define it (EvalPlus samples with `top_p = 0.95` and the user's temperature): the next token is
/// drawn from `softmax(logits / temperature)` (fp32) restricted to the smallest set of most
/// probable tokens whose probability reaches `top_p` (the most probable token is always kept),
/// renormalised.
///
/// Randomness: one uniform per generated token from a ChaCha8 stream seeded with `seed`, turned
/// into a token by inverse-CDF over the sorted probabilities. So a prompt's sample depends only on
/// its seed and logits, not on which other prompts share its batch (logits themselves can move in
/// the last bits with batch composition in bfloat16).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sampling {
    /// Softmax temperature, > 0.
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    pub top_p: f64,
    /// Seed of this prompt's random stream.
    pub seed: u64,
}

impl Eq for Sampling {}

impl std::hash::Hash for Sampling {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.temperature.to_bits().hash(h);
        self.top_p.to_bits().hash(h);
        self.seed.hash(h);
    }
}

impl Sampling {
    /// Check the ranges: temperature finite and > 0, top_p in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(ModelError::Other(format!(
                "sampling temperature must be finite and > 0 (got {}); use greedy decoding for 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::Other(format!(
                "top_p must be in (0, 1] (got {})",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// Next tokens for a batch of last-position logits `[b, vocab]` (any float dtype): the argmax for
/// rows without sampling; for the others, inverse-CDF sampling of [`Sampling`] with the uniform
/// `u[r]` in [0, 1). Returns `b` token ids (on the host).
pub fn next_tokens(logits: &Tensor, sampling: &[Option<Sampling>], u: &[f64]) -> Result<Vec<i64>> {
    let argmax = || -> Result<Vec<i64>> {
        Ok(Vec::<i64>::try_from(
            logits.argmax(-1, false).to_device(Device::Cpu),
        )?)
    };
    if sampling.iter().all(|s| s.is_none()) {
        return argmax();
    }
    let dev = logits.device();
    let rows: Vec<i64> = (0..sampling.len() as i64)
        .filter(|&r| sampling[r as usize].is_some())
        .collect();
    let pick = |f: &dyn Fn(&Sampling) -> f64| -> Tensor {
        let v: Vec<f64> = rows
            .iter()
            .map(|&r| f(sampling[r as usize].as_ref().expect("sampled row")))
            .collect();
        Tensor::from_slice(&v)
            .to_kind(Kind::Float)
            .view([-1, 1])
            .to_device(dev)
    };
    let temp = pick(&|s| s.temperature);
    let top_p = pick(&|s| s.top_p);
    let uu: Vec<f64> = rows.iter().map(|&r| u[r as usize]).collect();
    let uu = Tensor::from_slice(&uu)
        .to_kind(Kind::Float)
        .view([-1, 1])
        .to_device(dev);
    let idx_rows = Tensor::from_slice(&rows).to_device(dev);
    let l = logits.index_select(0, &idx_rows).to_kind(Kind::Float) / temp;
    let (sorted, order) = l.sort(-1, true);
    let probs = sorted.softmax(-1, Kind::Float);
    let cum = probs.cumsum(-1, Kind::Float);
    // Keep the smallest prefix whose mass reaches top_p (the first token always).
    let keep = (&cum - &probs).lt_tensor(&top_p);
    let n_keep = keep.sum_dim_intlist(-1, true, Kind::Int64);
    let mass = (&probs * keep.to_kind(Kind::Float)).sum_dim_intlist(-1, true, Kind::Float);
    let target = uu * mass;
    let j = cum
        .lt_tensor(&target)
        .logical_and(&keep)
        .sum_dim_intlist(-1, true, Kind::Int64)
        .minimum(&(n_keep - 1));
    let tok = order.gather(-1, &j, false).squeeze_dim(-1);
    let tok = Vec::<i64>::try_from(tok.to_device(Device::Cpu))?;
    // The argmax only when some row decodes greedily.
    let mut out = if rows.len() < sampling.len() {
        argmax()?
    } else {
        vec![0; sampling.len()]
    };
    for (k, &r) in rows.iter().enumerate() {
        out[r as usize] = tok[k];
    }
    Ok(out)
}

/// Whether decoding on `device` replays CUDA graphs: CUDA, a build with the shim, and
/// `QUANTLAB_CUDA_GRAPH` not `0`.
pub fn decode_graphs_enabled(device: Device) -> bool {
    device.is_cuda()
        && cuda_graph::available()
        && std::env::var("QUANTLAB_CUDA_GRAPH").map_or(true, |v| v != "0")
}

/// How the decode loop runs its steps: eagerly, or (CUDA, shim built, `QUANTLAB_CUDA_GRAPH` not
/// `0`, more than two steps) the first step eagerly on the capture stream as the warm-up, the
/// step captured once, and every later step a replay. A failed capture falls back to eager steps
/// with a warning.
struct DecodeGraph {
    graph: Option<cuda_graph::Graph>,
    out: Option<Tensor>,
}

impl DecodeGraph {
    fn new(device: Device, steps: usize) -> DecodeGraph {
        let graph = match device {
            Device::Cuda(i) if steps > 2 && decode_graphs_enabled(device) => {
                match cuda_graph::Graph::new(i) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        tracing::warn!("decoding without a CUDA graph: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        DecodeGraph { graph, out: None }
    }

    /// Run one step; returns its output (for a replay, a shallow copy of the captured output,
    /// which the next replay overwrites: use it before the next step).
    fn step(&mut self, f: &mut dyn FnMut() -> Tensor) -> Result<Tensor> {
        let Some(g) = self.graph.as_mut() else {
            return Ok(f());
        };
        if let Some(out) = &self.out {
            g.replay()?;
            return Ok(out.shallow_clone());
        }
        match g.capture(f) {
            Ok((warm, out)) => {
                self.out = Some(out);
                Ok(warm)
            }
            Err(e) => {
                tracing::warn!("decoding without a CUDA graph: {e}");
                self.graph = None;
                Ok(f())
            }
        }
    }
}

/// A model ready to score and generate.
pub struct Engine {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub dir: PathBuf,
    pub opts: EngineOptions,
    pub device: Device,
    pub kind: Kind,
}

impl Engine {
    /// Load the checkpoint folder `dir` (config.json, safetensors, tokenizer files).
    pub fn load(dir: &Path, mut opts: EngineOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::Format {
                file: dir.to_path_buf(),
                msg: "model folder not found".into(),
            });
        }
        let cfg = LlamaConfig::from_file(&dir.join("config.json"))?;
        let device = parse_device(&opts.device)?;
        let kind = parse_dtype(&opts.dtype, device)?;
        if opts.batch_size == 0 {
            opts.batch_size = if device.is_cuda() { 256 } else { 64 };
        }
        if opts.max_batch_tokens == 0 {
            opts.max_batch_tokens = if device.is_cuda() { 262_144 } else { 32_768 };
        }
        let weights = Weights::open(dir)?;
        let tokenizer = Tokenizer::load(dir, &cfg.eos_ids())?;
        let mut model = Llama::load(dir, cfg, &weights, kind, device)?;
        model.fuse_projections();
        Ok(Engine {
            model,
            tokenizer,
            dir: dir.to_path_buf(),
            opts,
            device,
            kind,
        })
    }

    fn max_length(&self) -> usize {
        self.opts
            .max_length
            .unwrap_or(self.model.cfg.max_position_embeddings)
    }

    /// Score token-level requests `(context_ids, continuation_ids)`. An empty context is an error
    /// (callers put a prefix token there, as lm-eval does). `progress(n)` is called after each
    /// batch with the number of requests finished in it.
    pub fn score(
        &self,
        reqs: &[(Vec<i64>, Vec<i64>)],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Score>> {
        let max_len = self.max_length();
        // Build model inputs (lm-eval: inp = (ctx + cont)[-(max_len+1):][:-1]).
        let mut items: Vec<(usize, Vec<i64>, usize)> = Vec::with_capacity(reqs.len()); // (req idx, inp, cont_len)
        for (i, (ctx, cont)) in reqs.iter().enumerate() {
            if ctx.is_empty() || cont.is_empty() {
                return Err(ModelError::Other(format!(
                    "score request {i}: context and continuation must each have at least one token"
                )));
            }
            let mut all: Vec<i64> = ctx.iter().chain(cont.iter()).copied().collect();
            if all.len() > max_len + 1 {
                all = all[all.len() - (max_len + 1)..].to_vec();
            }
            all.pop();
            items.push((i, all, cont.len()));
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[b].1.len().cmp(&items[a].1.len()).then(a.cmp(&b)));
        let mut out = vec![
            Score {
                logprob: 0.0,
                is_greedy: false
            };
            reqs.len()
        ];
        let _guard = tch::no_grad_guard();
        let mut pos = 0;
        while pos < order.len() {
            let longest = items[order[pos]].1.len();
            let cap = (self.opts.max_batch_tokens / longest.max(1)).clamp(1, self.opts.batch_size);
            let batch: Vec<usize> = order[pos..(pos + cap).min(order.len())].to_vec();
            pos += batch.len();
            let b = batch.len() as i64;
            let t = longest as i64;
            let mut ids = vec![0i64; (b * t) as usize];
            for (r, &k) in batch.iter().enumerate() {
                let inp = &items[k].1;
                ids[r * longest..r * longest + inp.len()].copy_from_slice(inp);
            }
            let ids_t = Tensor::from_slice(&ids).view([b, t]).to_device(self.device);
            let positions = Tensor::arange(t, (Kind::Int64, self.device))
                .unsqueeze(0)
                .expand([b, t], false);
            // Rows are right-padded, so plain causal attention is exact for every real token
            // (and lets SDPA take its flash kernel); padded positions are never read.
            // Only the continuation positions are read: the last layer computes just those.
            let from = batch
                .iter()
                .map(|&k| items[k].1.len() - items[k].2)
                .min()
                .unwrap_or(0);
            let hidden = self.model.forward_tail(&ids_t, &positions, from as i64);
            let w = longest - from;
            // Continuation positions of the batch's rows, through the LM head in chunks of at
            // most SCORE_CHUNK tokens (one GEMM per chunk instead of one per row, and one copy
            // to the host).
            const SCORE_CHUNK: usize = 4096;
            let flat = hidden.view([b * w as i64, -1]);
            let mut r0 = 0;
            while r0 < batch.len() {
                let mut r1 = r0;
                let mut n = 0;
                while r1 < batch.len() && (r1 == r0 || n + items[batch[r1]].2 <= SCORE_CHUNK) {
                    n += items[batch[r1]].2;
                    r1 += 1;
                }
                let mut rows = Vec::with_capacity(n);
                let mut targets = Vec::with_capacity(n);
                for (r, &k) in batch.iter().enumerate().take(r1).skip(r0) {
                    let (ri, inplen, cl) = (items[k].0, items[k].1.len(), items[k].2);
                    rows.extend((inplen - cl..inplen).map(|p| (r * w + p - from) as i64));
                    targets.extend_from_slice(&reqs[ri].1);
                }
                let rows_t = Tensor::from_slice(&rows).to_device(self.device);
                let tgt_t = Tensor::from_slice(&targets).to_device(self.device);
                let logp = self
                    .model
                    .logits(&flat.index_select(0, &rows_t))
                    .log_softmax(-1, Kind::Float);
                let picked = logp.gather(1, &tgt_t.unsqueeze(1), false).squeeze_dim(1);
                let greedy = logp.argmax(-1, false).eq_tensor(&tgt_t);
                let picked = Vec::<f32>::try_from(picked.to_device(Device::Cpu))?;
                let greedy = Vec::<bool>::try_from(greedy.to_device(Device::Cpu))?;
                let mut at = 0;
                for &k in &batch[r0..r1] {
                    let (ri, cl) = (items[k].0, items[k].2);
                    let logprob = picked[at..at + cl].iter().map(|&x| x as f64).sum();
                    let is_greedy = greedy[at..at + cl].iter().all(|&g| g);
                    out[ri] = Score { logprob, is_greedy };
                    at += cl;
                }
                r0 = r1;
            }
            progress(batch.len());
        }
        Ok(out)
    }

    /// Generation for token prompts, batched. Stops per sequence at an EOS id, when the decoded
    /// text contains one of `stop`, or after `max_new_tokens`. `sampling[i]` samples prompt `i`
    /// ([`Sampling`]); `None`, or an empty `sampling`, decodes greedily. Errors: an empty prompt,
    /// a prompt + `max_new_tokens` beyond the context window, a `sampling` of another length than
    /// `prompts`, or sampling settings out of range.
    pub fn generate(
        &self,
        prompts: &[Vec<i64>],
        max_new_tokens: usize,
        stop: &[String],
        sampling: &[Option<Sampling>],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Generation>> {
        if !sampling.is_empty() && sampling.len() != prompts.len() {
            return Err(ModelError::Other(format!(
                "generate: {} sampling settings for {} prompts",
                sampling.len(),
                prompts.len()
            )));
        }
        for s in sampling.iter().flatten() {
            s.validate()?;
        }
        let mut out: Vec<Option<Generation>> = vec![None; prompts.len()];
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by(|&a, &b| prompts[b].len().cmp(&prompts[a].len()).then(a.cmp(&b)));
        let _guard = tch::no_grad_guard();
        let mut pos = 0;
        while pos < order.len() {
            let longest = prompts[order[pos]].len() + max_new_tokens;
            let cap = (self.opts.max_batch_tokens / longest.max(1)).clamp(1, self.opts.batch_size);
            let batch: Vec<usize> = order[pos..(pos + cap).min(order.len())].to_vec();
            pos += batch.len();
            let batch_prompts: Vec<&Vec<i64>> = batch.iter().map(|&i| &prompts[i]).collect();
            let batch_sampling: Vec<Option<Sampling>> = batch
                .iter()
                .map(|&i| sampling.get(i).copied().flatten())
                .collect();
            let gens =
                self.generate_batch(&batch_prompts, max_new_tokens, stop, &batch_sampling)?;
            for (&i, g) in batch.iter().zip(gens) {
                out[i] = Some(g);
            }
            progress(batch.len());
        }
        Ok(out
            .into_iter()
            .map(|g| g.expect("every prompt generated"))
            .collect())
    }

    fn generate_batch(
        &self,
        prompts: &[&Vec<i64>],
        max_new: usize,
        stop: &[String],
        sampling: &[Option<Sampling>],
    ) -> Result<Vec<Generation>> {
        use rand::{Rng, SeedableRng};
        let b = prompts.len() as i64;
        let mut rngs: Vec<Option<rand_chacha::ChaCha8Rng>> = sampling
            .iter()
            .map(|s| s.map(|s| rand_chacha::ChaCha8Rng::seed_from_u64(s.seed)))
            .collect();
        let t = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        if prompts.iter().any(|p| p.is_empty()) {
            return Err(ModelError::Other("generate: empty prompt".into()));
        }
        let max_len = self.max_length();
        if t + max_new > max_len {
            return Err(ModelError::Other(format!(
                "generate: prompt of {t} tokens + {max_new} new exceeds the context window of {max_len}"
            )));
        }
        let pad = self.tokenizer.eos_ids.first().copied().unwrap_or(0);
        let mut ids = vec![pad; (b as usize) * t];
        let mut valid = vec![false; (b as usize) * t];
        let mut pos = vec![0i64; (b as usize) * t];
        for (r, p) in prompts.iter().enumerate() {
            let off = t - p.len();
            ids[r * t + off..(r + 1) * t].copy_from_slice(p);
            for j in 0..p.len() {
                valid[r * t + off + j] = true;
                pos[r * t + off + j] = j as i64;
            }
        }
        let dev = self.device;
        let bt = [b, t as i64];
        let key_valid = Tensor::from_slice(&valid).view(bt).to_device(dev);
        let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
        let ids_t = Tensor::from_slice(&ids).view(bt).to_device(dev);
        let pos_t = Tensor::from_slice(&pos).view(bt).to_device(dev);
        // Prefill: the whole left-padded prompt at once.
        let mut prefill = KvCache::default();
        let mask = causal_mask(&key_valid, 0, t as i64);
        let hidden = self
            .model
            .forward(&ids_t, &pos_t, Some(&mask), Some(&mut prefill));
        let mut last = self
            .model
            .logits(&hidden.narrow(1, t as i64 - 1, 1).squeeze_dim(1));
        drop((hidden, mask));
        // Decode over a preallocated cache, one slot per step, with step inputs in fixed
        // buffers so the step can be one CUDA graph replay.
        let capacity = (t + max_new) as i64;
        let mut cache = self.model.static_cache(b, capacity);
        cache.fill_from(&prefill);
        drop(prefill);
        let step_mask = Tensor::zeros([b, 1, 1, capacity], (Kind::Bool, dev));
        step_mask
            .narrow(3, 0, t as i64)
            .copy_(&key_valid.view([b, 1, 1, t as i64]));
        let mut step_ids = Tensor::zeros([b, 1], (Kind::Int64, dev));
        let mut step_pos = Tensor::zeros([b, 1], (Kind::Int64, dev));
        let mut step_slot = Tensor::zeros([1], (Kind::Int64, dev));
        let mut graph = DecodeGraph::new(dev, max_new);
        let mut gen: Vec<Vec<i64>> = vec![Vec::new(); b as usize];
        let mut done = vec![false; b as usize];
        let mut texts: Vec<Option<String>> = vec![None; b as usize];
        for step in 0..max_new {
            // One uniform per sampled row and step, drawn whether or not the row is done, so a
            // stream never depends on its neighbours.
            let u: Vec<f64> = rngs
                .iter_mut()
                .map(|r| r.as_mut().map(|r| r.random::<f64>()).unwrap_or(0.0))
                .collect();
            let next = next_tokens(&last, sampling, &u)?;
            for r in 0..b as usize {
                if done[r] {
                    continue;
                }
                gen[r].push(next[r]);
                if self.tokenizer.eos_ids.contains(&next[r]) {
                    done[r] = true;
                    continue;
                }
                if !stop.is_empty() {
                    let text = self.tokenizer.decode(&gen[r], false)?;
                    if stop.iter().any(|s| text.contains(s.as_str())) {
                        done[r] = true;
                    }
                }
            }
            if done.iter().all(|&d| d) || step + 1 == max_new {
                break;
            }
            let feed: Vec<i64> = (0..b as usize)
                .map(|r| if done[r] { pad } else { next[r] })
                .collect();
            let slot = (t + step) as i64;
            step_ids.copy_(&Tensor::from_slice(&feed).view([b, 1]));
            step_pos.copy_(&Tensor::from_slice(&next_pos).view([b, 1]));
            step_slot.copy_(&Tensor::from_slice(&[slot]));
            let _ = step_mask.narrow(3, slot, 1).fill_(1);
            next_pos.iter_mut().for_each(|p| *p += 1);
            last = graph.step(&mut || {
                self.model
                    .decode_step(&step_ids, &step_pos, &step_mask, &step_slot, &cache)
            })?;
        }
        let mut res = Vec::with_capacity(b as usize);
        for r in 0..b as usize {
            let mut text = match texts[r].take() {
                Some(t) => t,
                None => self.tokenizer.decode(&gen[r], true)?,
            };
            if let Some(cut) = stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(cut);
            }
            res.push(Generation {
                ids: std::mem::take(&mut gen[r]),
                text,
            });
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(logits: &[f32], s: Sampling, u: f64) -> i64 {
        let t = Tensor::from_slice(logits).view([1, -1]);
        next_tokens(&t, &[Some(s)], &[u]).unwrap()[0]
    }

    /// Inverse-CDF over the probabilities sorted high to low, checked against the distribution
    /// written out by hand: p = (0.1, 0.2, 0.3, 0.4) gives token 3 for u in [0, 0.4), 2 for
    /// [0.4, 0.7), 1 for [0.7, 0.9), 0 for [0.9, 1).
    #[test]
    fn sampling_follows_the_softmax_cdf() {
        let p = [0.1f32, 0.2, 0.3, 0.4];
        let logits: Vec<f32> = p.iter().map(|x| x.ln()).collect();
        let s = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        for (u, want) in [
            (0.0, 3),
            (0.39, 3),
            (0.41, 2),
            (0.69, 2),
            (0.71, 1),
            (0.89, 1),
            (0.91, 0),
            (0.999, 0),
        ] {
            assert_eq!(one(&logits, s, u), want, "u = {u}");
        }
        // top_p 0.7 keeps {3, 2} (mass 0.7): u < 4/7 gives 3, else 2.
        let s7 = Sampling { top_p: 0.7, ..s };
        assert_eq!(one(&logits, s7, 0.56), 3);
        assert_eq!(one(&logits, s7, 0.58), 2);
        assert_eq!(one(&logits, s7, 0.999), 2);
        // A tiny top_p is greedy.
        let s0 = Sampling { top_p: 1e-9, ..s };
        assert_eq!(one(&logits, s0, 0.999), 3);
        // Temperature 2: p ~ sqrt(p) = (0.316, 0.447, 0.548, 0.632) / 1.943; token 3 up to 0.3254.
        let s2 = Sampling {
            temperature: 2.0,
            ..s
        };
        assert_eq!(one(&logits, s2, 0.32), 3);
        assert_eq!(one(&logits, s2, 0.33), 2);
    }

    /// Greedy rows keep the argmax when other rows of the batch sample.
    #[test]
    fn greedy_rows_beside_sampled_rows() {
        let t = Tensor::from_slice(&[0.0f32, 5.0, 1.0, 0.0, 5.0, 1.0]).view([2, 3]);
        let s = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        // Row 1 samples with u = 0.999, past the cumulative 0.9934 of tokens 1 and 2: token 0.
        let got = next_tokens(&t, &[None, Some(s)], &[0.999, 0.999]).unwrap();
        assert_eq!(got, vec![1, 0]);
        assert!(Sampling {
            temperature: 0.0,
            ..s
        }
        .validate()
        .is_err());
        assert!(Sampling { top_p: 1.01, ..s }.validate().is_err());
    }
}
