//! Tokenizer (`tokenizer.json` through the `tokenizers` crate) and chat template
//! (`tokenizer_config.json`'s `chat_template`, or `chat_template.jinja`, rendered with minijinja
//! in Python-compatible mode, as transformers' `apply_chat_template` renders it with Jinja2).

use crate::error::{ModelError, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One chat message.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A loaded tokenizer with its special tokens and chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The chat template source, if the model has one.
    pub chat_template: Option<String>,
    /// Where the chat template was looked for (for error messages).
    config_path: PathBuf,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Ids that end generation (tokenizer's eos plus config.json's eos ids).
    pub eos_ids: Vec<i64>,
}

fn token_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl Tokenizer {
    /// Load `tokenizer.json` and `tokenizer_config.json` from `dir`; `extra_eos` are config.json's
    /// eos ids. Errors: missing/corrupt tokenizer.json, unreadable tokenizer_config.json.
    pub fn load(dir: &Path, extra_eos: &[i64]) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        if !tj.exists() {
            return Err(ModelError::Format {
                file: tj,
                msg: "missing (a model folder needs tokenizer.json)".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&tj).map_err(|e| ModelError::Format {
            file: tj.clone(),
            msg: format!("cannot load tokenizer: {e}"),
        })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.exists() {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
            serde_json::from_str(&text).map_err(|e| ModelError::Format {
                file: cfg_path.clone(),
                msg: format!("not valid JSON: {e}"),
            })?
        } else {
            serde_json::Value::Null
        };
        let mut chat_template = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template").and_then(|s| s.as_str()).map(String::from)),
            Some(serde_json::Value::Null) | None => None,
            Some(_) => {
                return Err(ModelError::Config {
                    file: cfg_path,
                    field: "chat_template".into(),
                    msg: "must be a string or a list of {name, template}".into(),
                })
            }
        };
        let jinja = dir.join("chat_template.jinja");
        if chat_template.is_none() && jinja.exists() {
            chat_template =
                Some(std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?);
        }
        let bos_token = token_str(cfg.get("bos_token"));
        let eos_token = token_str(cfg.get("eos_token"));
        let mut eos_ids: Vec<i64> = extra_eos.to_vec();
        if let Some(e) = &eos_token {
            if let Some(id) = inner.token_to_id(e) {
                eos_ids.push(id as i64);
            }
        }
        eos_ids.sort();
        eos_ids.dedup();
        Ok(Tokenizer {
            inner,
            chat_template,
            config_path: dir.join("tokenizer_config.json"),
            bos_token,
            eos_token,
            eos_ids,
        })
    }

    /// Token ids of `text`, without adding special tokens (lm-eval's default for causal models).
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Other(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Text of `ids`; `skip_special` drops special tokens like `<|im_end|>`.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, skip_special)
            .map_err(|e| ModelError::Other(format!("tokenizer: {e}")))
    }

    /// Id of a token string.
    pub fn token_to_id(&self, t: &str) -> Option<i64> {
        self.inner.token_to_id(t).map(|i| i as i64)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Render `messages` with the chat template; `add_generation_prompt` appends the assistant
    /// turn opener. Errors: no chat template (naming tokenizer_config.json), template errors.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let src = self
            .chat_template
            .as_ref()
            .ok_or_else(|| ModelError::Config {
                file: self.config_path.clone(),
                field: "chat_template".into(),
                msg: "this model has no chat template, but the task needs one".into(),
            })?;
        render_chat_template(
            src,
            messages,
            add_generation_prompt,
            self.bos_token.as_deref(),
            self.eos_token.as_deref(),
        )
        .map_err(|e| ModelError::Config {
            file: self.config_path.clone(),
            field: "chat_template".into(),
            msg: e,
        })
    }
}

/// Render a Hugging Face chat template (Jinja2) with minijinja. The error is the template error text.
pub fn render_chat_template(
    src: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: Option<&str>,
    eos_token: Option<&str>,
) -> std::result::Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", src).map_err(|e| e.to_string())?;
    let tmpl = env.get_template("chat").map_err(|e| e.to_string())?;
    tmpl.render(minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token.unwrap_or(""),
        eos_token => eos_token.unwrap_or(""),
    })
    .map_err(|e| e.to_string())
}
