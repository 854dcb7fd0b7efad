//! The built-in backend: quantlab's own engine (`quantlab_model::Engine`) answering lm-eval
//! requests with lm-eval's HF-model semantics (`lm_eval/models/huggingface.py`):
//! - `_encode_pair`: trailing whitespace of the context moves to the continuation; the
//!   continuation's tokens are those of `tok(context + continuation)` after `len(tok(context))`.
//! - An empty context is replaced by the prefix token (EOS), as lm-eval does for rolling requests.
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

impl Backend for LocalBackend {
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
            let gens = self.engine.generate(&prompts, max_new, &until, progress)?;
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
