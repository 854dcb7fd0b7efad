//! The built-in backend: quantlab's own engine (`quantlab_model::Engine`) answering lm-eval
//! requests with lm-eval's HF-model semantics (`lm_eval/models/huggingface.py`):
//! - `_encode_pair`: trailing whitespace of the context moves to the continuation; the
//!   continuation's tokens are those of `tok(context + continuation)` after `len(tok(context))`.
//! - An empty context is replaced by the prefix token (EOS), as lm-eval does for rolling requests.
//! - `loglikelihood_rolling`: `get_rolling_token_windows` + `make_disjoint_window`
//!   (`lm_eval/utils.py`) over the whole text with context length 1, the first window predicted
//!   from the prefix token (BOS when the tokenizer has one, else EOS: `HFLM.prefix_token_id`).
//! - `generate_until`: the prompt is left-truncated to `max_length - max_gen_toks`; generation
//!   stops at EOS or a stop string; the decoded text (special tokens skipped) is cut before the
//!   first stop string.

use crate::backend::{Backend, ChatMessage, GenerateRequest, Loglikelihood, LoglikelihoodRequest};
use anyhow::Result;
use quantlab_model::{Engine, Message};

/// The engine as a [`Backend`].
pub struct LocalBackend {
    pub engine: Engine,
}

impl LocalBackend {
    /// Wrap a loaded engine.
    pub fn new(engine: Engine) -> Self {
        LocalBackend { engine }
    }

    /// lm-eval `_encode_pair`: `(context_ids, continuation_ids)`.
    pub fn encode_pair(&self, context: &str, continuation: &str) -> Result<(Vec<i64>, Vec<i64>)> {
        let tok = &self.engine.tokenizer;
        if context.is_empty() {
            let prefix = *tok.eos_ids.first().ok_or_else(|| {
                anyhow::anyhow!("empty context and the model has no EOS token to use as prefix")
            })?;
            return Ok((vec![prefix], tok.encode(continuation)?));
        }
        let trimmed = context.trim_end();
        let n_spaces = context.len() - trimmed.len();
        let (ctx, cont) = if n_spaces > 0 {
            (
                trimmed.to_string(),
                format!("{}{}", &context[trimmed.len()..], continuation),
            )
        } else {
            (context.to_string(), continuation.to_string())
        };
        let whole = tok.encode(&format!("{ctx}{cont}"))?;
        let ctx_enc = tok.encode(&ctx)?;
        let cont_enc = whole[ctx_enc.len().min(whole.len())..].to_vec();
        Ok((ctx_enc, cont_enc))
    }
}

/// lm-eval `get_rolling_token_windows(tokens, prefix, max_len, context_len=1)` followed by
/// `make_disjoint_window`: `(context, continuation)` token pairs that together predict every token
/// of `tokens` exactly once, each input at most `max_len` tokens.
pub fn rolling_windows(tokens: &[i64], prefix: i64, max_len: usize) -> Vec<(Vec<i64>, Vec<i64>)> {
    let mut out = Vec::new();
    if tokens.is_empty() || max_len == 0 {
        return out;
    }
    let first = max_len.min(tokens.len());
    let mut ctx = vec![prefix];
    ctx.extend_from_slice(&tokens[..first - 1]);
    out.push((ctx, tokens[..first].to_vec()));
    let mut predicted = first;
    while predicted < tokens.len() {
        let n = (tokens.len() - predicted).min(max_len);
        let end = predicted + n;
        let ctx_start = end.saturating_sub(max_len + 1);
        out.push((
            tokens[ctx_start..end - 1].to_vec(),
            tokens[end - n..end].to_vec(),
        ));
        predicted += n;
    }
    // make_disjoint_window: the context keeps only what the continuation does not cover
    out.into_iter()
        .map(|(a, b)| {
            let keep = a.len() - (b.len() - 1);
            (a[..keep].to_vec(), b)
        })
        .collect()
}

impl Backend for LocalBackend {
    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f64>> {
        let tok = &self.engine.tokenizer;
        let prefix = tok
            .bos_token
            .as_deref()
            .and_then(|b| tok.token_to_id(b))
            .or_else(|| tok.eos_ids.first().copied())
            .ok_or_else(|| {
                anyhow::anyhow!("loglikelihood_rolling needs a BOS or EOS token as prefix")
            })?;
        let max_len = self
            .engine
            .opts
            .max_length
            .unwrap_or(self.engine.model.cfg.max_position_embeddings);
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let ids = tok.encode(t)?;
            if ids.is_empty() {
                anyhow::bail!("loglikelihood_rolling: text {t:?} encodes to no tokens");
            }
            let windows = rolling_windows(&ids, prefix, max_len);
            let scores = self.engine.score(&windows, &|_| {})?;
            out.push(scores.iter().map(|s| s.logprob).sum::<f64>());
            progress(1);
        }
        Ok(out)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": "local",
            "device": match self.engine.device {
                tch::Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".to_string(),
            },
            "dtype": match self.engine.kind {
                tch::Kind::BFloat16 => "bfloat16",
                tch::Kind::Half => "float16",
                _ => "float32",
            },
            "batch_size": self.engine.opts.batch_size,
            "max_batch_tokens": self.engine.opts.max_batch_tokens,
        })
    }

    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Loglikelihood>> {
        let mut toks = Vec::with_capacity(reqs.len());
        for r in reqs {
            let (c, x) = self.encode_pair(&r.context, &r.continuation)?;
            if x.is_empty() {
                anyhow::bail!(
                    "continuation {:?} encodes to no tokens after context {:?}",
                    r.continuation,
                    r.context
                );
            }
            toks.push((c, x));
        }
        let scores = self.engine.score(&toks, progress)?;
        if let Some(i) = scores.iter().position(|s| !s.logprob.is_finite()) {
            anyhow::bail!(
                "the model gives a non-finite log-likelihood ({}) for context {:?} / continuation {:?}: its weights or activations overflow",
                scores[i].logprob,
                reqs[i].context.chars().take(80).collect::<String>(),
                reqs[i].continuation
            );
        }
        Ok(scores
            .into_iter()
            .map(|s| Loglikelihood {
                logprob: s.logprob,
                is_greedy: s.is_greedy,
            })
            .collect())
    }

    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<String>> {
        let max_len = self
            .engine
            .opts
            .max_length
            .unwrap_or(self.engine.model.cfg.max_position_embeddings);
        let mut out = vec![String::new(); reqs.len()];
        // Group by (until, max_gen_toks) so one engine call shares its stop settings.
        let mut groups: std::collections::BTreeMap<(Vec<String>, usize), Vec<usize>> =
            Default::default();
        for (i, r) in reqs.iter().enumerate() {
            groups
                .entry((r.until.clone(), r.max_gen_toks))
                .or_default()
                .push(i);
        }
        for ((until, max_new), idx) in groups {
            let mut prompts = Vec::with_capacity(idx.len());
            for &i in &idx {
                let mut ids = self.engine.tokenizer.encode(&reqs[i].context)?;
                let keep = max_len.saturating_sub(max_new).max(1);
                if ids.len() > keep {
                    ids = ids[ids.len() - keep..].to_vec();
                }
                prompts.push(ids);
            }
            let sampling: Vec<Option<quantlab_model::Sampling>> =
                idx.iter().map(|&i| reqs[i].sampling).collect();
            let gens = self
                .engine
                .generate(&prompts, max_new, &until, &sampling, progress)?;
            for (&i, g) in idx.iter().zip(gens) {
                out[i] = g.text;
            }
        }
        Ok(out)
    }

    fn apply_chat_template(&self, messages: &[ChatMessage]) -> Result<String> {
        let msgs: Vec<Message> = messages
            .iter()
            .map(|m| Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        Ok(self.engine.tokenizer.apply_chat_template(&msgs, true)?)
    }
}

#[cfg(test)]
mod tests {
    use super::rolling_windows;

    #[test]
    fn rolling_windows_cover_every_token_once() {
        // lm-eval: get_rolling_token_windows(list(range(1, 11)), prefix=0, max_seq_len=4,
        // context_len=1) through make_disjoint_window
        let toks: Vec<i64> = (1..=10).collect();
        let w = rolling_windows(&toks, 0, 4);
        assert_eq!(
            w,
            vec![
                (vec![0], vec![1, 2, 3, 4]),
                (vec![4], vec![5, 6, 7, 8]),
                (vec![6, 7, 8], vec![9, 10]),
            ]
        );
        // one window when the text fits
        assert_eq!(rolling_windows(&[5, 6], 1, 8), vec![(vec![1], vec![5, 6])]);
    }
}
