//! The interface every model backend implements (the built-in engine in `local.rs`, an
//! OpenAI-compatible server, test doubles). Request semantics are lm-evaluation-harness's
//! (`lm_eval/api/model.py`: `loglikelihood`, `generate_until`, `apply_chat_template`).

use serde::{Deserialize, Serialize};

/// Score `continuation` after `context` (lm-eval `loglikelihood` request). The backend
/// tokenizes context and continuation the way lm-eval's HF model does (whole string, then split
/// at the context's token boundary).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoglikelihoodRequest {
    /// Prompt text.
    pub context: String,
    /// Text whose log-probability is summed (starts with the task's target delimiter).
    pub continuation: String,
}

/// Answer to a [`LoglikelihoodRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loglikelihood {
    /// Sum of the natural-log probabilities of the continuation tokens.
    pub logprob: f64,
    /// Whether every continuation token is the argmax at its position (greedy continuation).
    pub is_greedy: bool,
}

/// Generation request (lm-eval `generate_until`): greedy, or sampled when `sampling` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// Prompt text (already chat-templated when the task asks for it).
    pub context: String,
    /// Stop strings; generation also stops at the model's EOS token.
    pub until: Vec<String>,
    /// Maximum number of new tokens.
    pub max_gen_toks: usize,
    /// Temperature / top-p / seed of this request's sample; `None` decodes greedily. Left out of
    /// the serialized request when `None`, so greedy requests keep their request-cache keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<quantlab_model::Sampling>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Message text.
    pub content: String,
}

impl ChatMessage {
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "user".to_string(),
            content: content.into(),
        }
    }
}

/// A model that answers lm-eval style requests.
pub trait Backend {
    /// Settings recorded in the run (backend name, device, dtype, batch size, ...).
    fn describe(&self) -> serde_json::Value;

    /// Sum of log-probs of `continuation` given `context`, and whether it is the greedy
    /// continuation (lm-eval `loglikelihood`). Answers are in request order. `progress(n)` is
    /// called as requests complete, `n` being the number just completed (an increment).
    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>>;

    /// Generation of `context` (greedy, or sampled as the request's `sampling` says) until one
    /// of `until` or `max_gen_toks`; the returned text
    /// excludes the stop string (lm-eval `generate_until`: the text is cut before the first
    /// occurrence of any stop string). Answers are in request order; `progress(n)` as above.
    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>>;

    /// lm-eval `loglikelihood_rolling`: the summed log-likelihood of each whole text, scored in
    /// disjoint windows of the model's context (the first token predicted from the prefix token).
    /// Backends that cannot score token windows keep this default, which refuses.
    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<f64>> {
        let _ = (texts, progress);
        anyhow::bail!("this backend does not support loglikelihood_rolling requests")
    }

    /// Render messages with the model's chat template, generation prompt appended. Err if the
    /// model has no chat template (the message names the tokenizer_config.json file).
    fn apply_chat_template(&self, messages: &[ChatMessage]) -> anyhow::Result<String>;

    /// Requests answered from / sent past the request cache so far, for a cached backend
    /// ([`crate::cache::CachedBackend`]); `None` for the others.
    fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        None
    }
}
