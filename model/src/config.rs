//! `config.json` of a Hugging Face Llama-family checkpoint, read with serde.
//!
//! Covers Llama 2/3/3.1 (incl. `rope_scaling` of type `llama3`), Mistral, Qwen2 (q/k/v bias) and
//! SmolLM (Llama architecture, tied embeddings). Both the transformers 4 spelling (`rope_theta`,
//! `rope_scaling`) and the transformers 5 spelling (`rope_parameters`) are accepted.

use crate::error::{ModelError, Result};
use serde::Deserialize;
use std::path::Path;

/// Rope scaling parameters (`rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RopeScaling {
    /// `default`, `linear` or `llama3`; other types are refused at model build time.
    #[serde(alias = "type", default = "default_rope_type")]
    pub rope_type: String,
    /// Present in transformers 5's `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<f64>,
}

fn default_rope_type() -> String {
    "default".into()
}

/// A token id field that may be a single id or a list (Llama 3.1 lists several EOS ids).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    /// All ids as a vector.
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// The fields of config.json the engine uses. Unknown fields are ignored (HF configs carry many).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub rope_parameters: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// q/k/v/o bias (Llama `attention_bias`); Qwen2 always has q/k/v bias.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// compressed-tensors `quantization_config`, kept as JSON (see `quant::QuantizationConfig`).
    #[serde(default)]
    pub quantization_config: Option<serde_json::Value>,
}

fn default_max_pos() -> usize {
    4096
}

/// Model types whose weights and forward pass this engine implements.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2"];

impl LlamaConfig {
    /// Read and validate `config.json`.
    ///
    /// Errors: the file is missing or unreadable ([`ModelError::Io`]), a field is missing or of the
    /// wrong type ([`ModelError::Config`] naming the field path), or the `model_type` is not one
    /// of [`SUPPORTED_MODEL_TYPES`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parse from a JSON string; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: LlamaConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ModelError::Config {
                file: path.to_path_buf(),
                field,
                msg: e.into_inner().to_string(),
            }
        })?;
        if !SUPPORTED_MODEL_TYPES.contains(&cfg.model_type.as_str()) {
            return Err(ModelError::Config {
                file: path.to_path_buf(),
                field: "model_type".into(),
                msg: format!(
                    "unknown architecture '{}' (supported: {})",
                    cfg.model_type,
                    SUPPORTED_MODEL_TYPES.join(", ")
                ),
            });
        }
        if let Some(act) = &cfg.hidden_act {
            if act != "silu" {
                return Err(ModelError::Config {
                    file: path.to_path_buf(),
                    field: "hidden_act".into(),
                    msg: format!("unsupported activation '{act}' (only silu)"),
                });
            }
        }
        if cfg.num_attention_heads == 0
            || (!cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) && cfg.head_dim.is_none())
        {
            return Err(ModelError::Config {
                file: path.to_path_buf(),
                field: "num_attention_heads".into(),
                msg: "must be > 0 and divide hidden_size (or set head_dim)".into(),
            });
        }
        if !cfg.num_attention_heads.is_multiple_of(cfg.num_kv_heads()) {
            return Err(ModelError::Config {
                file: path.to_path_buf(),
                field: "num_key_value_heads".into(),
                msg: "must divide num_attention_heads".into(),
            });
        }
        Ok(cfg)
    }

    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads
            .unwrap_or(self.num_attention_heads)
            .max(1)
    }

    /// Per-head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Rope base frequency θ (default 10000).
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref().and_then(|r| r.rope_theta))
            .unwrap_or(10000.0)
    }

    /// The effective rope scaling, if any (`rope_scaling` wins over `rope_parameters`).
    pub fn rope_scaling(&self) -> Option<&RopeScaling> {
        self.rope_scaling
            .as_ref()
            .or(self.rope_parameters.as_ref())
            .filter(|r| r.rope_type != "default")
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias.unwrap_or(false)
    }

    /// Whether o_proj carries a bias.
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias.unwrap_or(false)
    }

    /// EOS token ids from config.json (may be empty).
    pub fn eos_ids(&self) -> Vec<i64> {
        self.eos_token_id
            .as_ref()
            .map(|t| t.to_vec())
            .unwrap_or_default()
    }
}
