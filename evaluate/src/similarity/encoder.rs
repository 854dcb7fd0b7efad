//! A BERT- or RoBERTa-family text encoder (transformers `BertModel` / `RobertaModel`) run with
//! tch on the checkpoint's safetensors weights, and its tokenizer (`tokenizer.json` through the
//! `tokenizers` crate). Used for BERTScore's contextual token embeddings and for the STS sentence
//! embeddings.
//!
//! Architecture (read next to transformers' `modeling_bert.py`; post-LayerNorm encoder):
//!
//! ```text
//! x0 = LayerNorm(word_emb[ids] + pos_emb[offset + 0..t] + type_emb[0])
//! per layer:  a = softmax(Q Kᵀ / √d_head + mask) V          (12 or 16 heads)
//!             h = LayerNorm(x + W_o a)
//!             x = LayerNorm(h + W_2 act(W_1 h))             (act = exact erf GELU for "gelu")
//! ```
//!
//! Weight names walk `embeddings.*` and `encoder.layer.N.*` as in PyTorch (an optional `bert.` or
//! `roberta.` prefix is accepted). RoBERTa differs only in its position ids, which start at
//! `pad_token_id + 1` (= 2). Dropout is off (inference). Compute is fp32 on any device.
//!
//! Shapes: token ids `[batch, seq]` i64, attention mask `[batch, seq]` (1 real, 0 padding; a
//! boolean `[batch, 1, 1, seq]` mask is given to `scaled_dot_product_attention`, so padded keys get
//! zero weight), hidden states `[batch, seq, hidden]` f32. Layer 0 is the embedding output,
//! layer `k` the output of the k-th encoder layer (transformers' `hidden_states[k]`).
//!
//! Windowing: the encoder sees at most [`Encoder::max_length`] tokens including the special
//! tokens (`model_max_length` from `tokenizer_config.json`, capped by the position table, 512 for
//! BERT and RoBERTa). Longer texts are truncated at the end, keeping the leading tokens, exactly
//! as the peers do (`bert_score.utils.sent_encode`: `truncation=True,
//! max_length=model_max_length`; sentence-transformers: `max_seq_length`); [`Tokenized::dropped`]
//! says how many tokens were cut.

use anyhow::{anyhow, bail, Context, Result};
use quantlab_model::Weights;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The fields of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    /// `bert` or `roberta` (also `xlm-roberta`, same network).
    pub model_type: String,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers in the checkpoint.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (`hidden_size` must be a multiple).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// `gelu` (erf), `gelu_new` / `gelu_pytorch_tanh` (tanh approximation) or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon (BERT 1e-12, RoBERTa 1e-5).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Rows of the position table (512, RoBERTa 514).
    pub max_position_embeddings: usize,
    /// Rows of the token-type table (only row 0 is used).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Padding id (RoBERTa's positions start after it).
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}

impl EncoderConfig {
    fn is_roberta(&self) -> bool {
        matches!(self.model_type.as_str(), "roberta" | "xlm-roberta")
    }

    /// First position id: RoBERTa numbers positions from `padding_idx + 1`.
    pub fn position_offset(&self) -> i64 {
        if self.is_roberta() {
            self.pad_token_id.unwrap_or(1) + 1
        } else {
            0
        }
    }
}

/// A tokenized text ready for the encoder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tokenized {
    /// Token ids including the special tokens (`[CLS] … [SEP]` / `<s> … </s>`).
    pub ids: Vec<i64>,
    /// Content tokens cut off the end to fit the window (0 when the text fit).
    pub dropped: usize,
}

/// Hidden states of one sequence at one layer: `len` rows of `dim` f32 values, row-major, no
/// padding rows.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStates {
    /// Number of tokens (rows).
    pub len: usize,
    /// Hidden size (columns).
    pub dim: usize,
    /// `len × dim` values, row-major.
    pub data: Vec<f32>,
}

impl TokenStates {
    /// Row `i` (token `i`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

struct Layer {
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    attn_out: (Tensor, Tensor),
    attn_ln: (Tensor, Tensor),
    inter: (Tensor, Tensor),
    out: (Tensor, Tensor),
    out_ln: (Tensor, Tensor),
}

/// A loaded encoder and its tokenizer.
pub struct Encoder {
    /// The model folder.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub cfg: EncoderConfig,
    tokenizer: tokenizers::Tokenizer,
    /// Special tokens before / after the content of a single sequence.
    prefix: Vec<i64>,
    suffix: Vec<i64>,
    /// Most tokens (specials included) one sequence may have.
    pub max_length: usize,
    pad_id: i64,
    word: Tensor,
    pos: Tensor,
    token_type: Option<Tensor>,
    emb_ln: (Tensor, Tensor),
    layers: Vec<Layer>,
    device: Device,
}

/// Read a JSON file into `T`, errors naming the file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid config", path.display()))
}

impl Encoder {
    /// Load the encoder in `dir` (`config.json`, `*.safetensors`, `tokenizer.json`, optional
    /// `tokenizer_config.json`) onto `device`, keeping the first `n_layers` encoder layers
    /// (`None`: all, as bert-score drops the layers above the one it reads).
    ///
    /// Errors: a missing or malformed file, an unsupported `model_type` / `hidden_act` /
    /// `position_embedding_type`, a missing tensor or one of the wrong shape (each naming the file
    /// and the field or tensor), `n_layers` above the model's layer count.
    pub fn load(dir: &Path, device: Device, n_layers: Option<usize>) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            bail!("{}: missing (an encoder folder needs config.json, model.safetensors and tokenizer.json)", cfg_path.display());
        }
        let cfg: EncoderConfig = read_json(&cfg_path)?;
        if !matches!(cfg.model_type.as_str(), "bert" | "roberta" | "xlm-roberta") {
            bail!(
                "{}: field 'model_type': '{}' is not a supported encoder (bert, roberta, xlm-roberta)",
                cfg_path.display(),
                cfg.model_type
            );
        }
        if let Some(p) = &cfg.position_embedding_type {
            if p != "absolute" {
                bail!(
                    "{}: field 'position_embedding_type': '{p}' is not supported (absolute)",
                    cfg_path.display()
                );
            }
        }
        if !matches!(
            cfg.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu"
        ) {
            bail!(
                "{}: field 'hidden_act': '{}' is not supported (gelu, gelu_new, relu)",
                cfg_path.display(),
                cfg.hidden_act
            );
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            bail!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                cfg_path.display(),
                cfg.hidden_size,
                cfg.num_attention_heads
            );
        }
        let n_layers = n_layers.unwrap_or(cfg.num_hidden_layers);
        if n_layers > cfg.num_hidden_layers {
            bail!(
                "{}: layer {n_layers} requested but the model has {} layers",
                dir.display(),
                cfg.num_hidden_layers
            );
        }

        // Tokenizer: tokenizer.json's own truncation/padding (MiniLM ships 128 / fixed 128) are
        // dropped; transformers overrides them on every call too. We truncate ourselves.
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| anyhow!("{}: cannot load tokenizer: {e}", tok_path.display()))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow!("{}: {e}", tok_path.display()))?;
        tokenizer.with_padding(None);
        let enc = |t: &str, special: bool| -> Result<Vec<i64>> {
            Ok(tokenizer
                .encode_fast(t, special)
                .map_err(|e| anyhow!("{}: cannot encode: {e}", tok_path.display()))?
                .get_ids()
                .iter()
                .map(|&i| i as i64)
                .collect())
        };
        let with = enc("a", true)?;
        let without = enc("a", false)?;
        let start = (0..=with.len().saturating_sub(without.len()))
            .find(|&s| with[s..].starts_with(&without))
            .ok_or_else(|| {
                anyhow!(
                    "{}: cannot locate the content between the special tokens",
                    tok_path.display()
                )
            })?;
        let prefix = with[..start].to_vec();
        let suffix = with[start + without.len()..].to_vec();

        let offset = cfg.position_offset() as usize;
        let positions = cfg.max_position_embeddings.saturating_sub(offset);
        let tc_path = dir.join("tokenizer_config.json");
        let model_max = if tc_path.is_file() {
            let v: serde_json::Value = read_json(&tc_path)?;
            v.get("model_max_length")
                .and_then(|x| x.as_f64())
                .filter(|&x| x > 0.0 && x < 1e9)
                .map(|x| x as usize)
        } else {
            None
        };
        let max_length = model_max.unwrap_or(positions).min(positions);
        if max_length <= prefix.len() + suffix.len() {
            bail!(
                "{}: a window of {max_length} tokens leaves no room for text",
                dir.display()
            );
        }
        // Padded positions are masked out, so the pad id only has to be a valid row.
        let pad_id = cfg.pad_token_id.unwrap_or(0);

        let w = Weights::open(dir)
            .with_context(|| format!("loading encoder weights from {}", dir.display()))?;
        let prefix_name = ["", "bert.", "roberta."]
            .into_iter()
            .find(|p| w.contains(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                anyhow!(
                    "{}: tensor 'embeddings.word_embeddings.weight' missing (not a BERT/RoBERTa checkpoint)",
                    dir.display()
                )
            })?;
        let (h, ff) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let get = |name: &str, shape: &[i64]| -> Result<Tensor> {
            Ok(w.get_shaped(&format!("{prefix_name}{name}"), shape)?
                .to_kind(Kind::Float)
                .to_device(device))
        };
        let lin = |name: &str, rows: i64, cols: i64| -> Result<(Tensor, Tensor)> {
            Ok((
                get(&format!("{name}.weight"), &[rows, cols])?,
                get(&format!("{name}.bias"), &[rows])?,
            ))
        };
        let ln = |name: &str| -> Result<(Tensor, Tensor)> {
            Ok((
                get(&format!("{name}.weight"), &[h])?,
                get(&format!("{name}.bias"), &[h])?,
            ))
        };
        let word = get(
            "embeddings.word_embeddings.weight",
            &[cfg.vocab_size as i64, h],
        )?;
        let pos = get(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings as i64, h],
        )?;
        let token_type = if cfg.type_vocab_size > 0 {
            Some(
                get(
                    "embeddings.token_type_embeddings.weight",
                    &[cfg.type_vocab_size as i64, h],
                )?
                .get(0),
            )
        } else {
            None
        };
        let emb_ln = ln("embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                q: lin(&format!("{p}.attention.self.query"), h, h)?,
                k: lin(&format!("{p}.attention.self.key"), h, h)?,
                v: lin(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: lin(&format!("{p}.attention.output.dense"), h, h)?,
                attn_ln: ln(&format!("{p}.attention.output.LayerNorm"))?,
                inter: lin(&format!("{p}.intermediate.dense"), ff, h)?,
                out: lin(&format!("{p}.output.dense"), h, ff)?,
                out_ln: ln(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Encoder {
            dir: dir.to_path_buf(),
            cfg,
            tokenizer,
            prefix,
            suffix,
            max_length,
            pad_id,
            word,
            pos,
            token_type,
            emb_ln,
            layers,
            device,
        })
    }

    /// Number of encoder layers loaded (the deepest layer [`Encoder::forward`] can return).
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The special-token ids wrapped around every sequence (`[CLS]`, `[SEP]` for BERT).
    pub fn special_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.prefix.iter().chain(self.suffix.iter()).copied()
    }

    /// Tokenize `text` with the special tokens, truncating the content so the whole sequence has
    /// at most `max_len` tokens (clamped to [`Encoder::max_length`]).
    ///
    /// Errors: the tokenizer fails on the input (it does not for valid UTF-8 in practice).
    pub fn tokenize(&self, text: &str, max_len: usize) -> Result<Tokenized> {
        let enc = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| anyhow!("{}: tokenizer failed: {e}", self.dir.display()))?;
        let content = enc.get_ids();
        let room = max_len
            .min(self.max_length)
            .saturating_sub(self.prefix.len() + self.suffix.len());
        let keep = content.len().min(room);
        let mut ids = Vec::with_capacity(keep + self.prefix.len() + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend(content[..keep].iter().map(|&i| i as i64));
        ids.extend_from_slice(&self.suffix);
        Ok(Tokenized {
            ids,
            dropped: content.len() - keep,
        })
    }

    /// Hidden states of a padded batch: `ids` `[b, t]` i64 and `mask` `[b, t]` (1 real, 0 pad) on
    /// the encoder's device; returns one `[b, t, hidden]` f32 tensor per entry of `layers` (0 =
    /// embedding output, k = after encoder layer k). Every entry must be at most
    /// [`Encoder::n_layers`] (checked by the callers in this module; larger ones panic).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, layers: &[usize]) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let h = self.cfg.hidden_size as i64;
        let nh = self.cfg.num_attention_heads as i64;
        let hd = h / nh;
        let eps = self.cfg.layer_norm_eps;
        let deepest = layers.iter().copied().max().unwrap_or(0);
        assert!(deepest <= self.layers.len(), "layer {deepest} not loaded");
        let off = self.cfg.position_offset();
        let pos_ids = Tensor::arange_start(off, off + t, (Kind::Int64, self.device));
        let mut x = Tensor::embedding(&self.word, ids, -1, false, false)
            + Tensor::embedding(&self.pos, &pos_ids, -1, false, false).unsqueeze(0);
        if let Some(tt) = &self.token_type {
            x += tt;
        }
        let norm = |x: &Tensor, (w, bias): &(Tensor, Tensor)| {
            x.layer_norm([h], Some(w), Some(bias), eps, true)
        };
        let lin = |x: &Tensor, (w, bias): &(Tensor, Tensor)| x.linear(w, Some(bias));
        let mut x = norm(&x, &self.emb_ln);
        let attn_mask = mask.to_kind(Kind::Bool).view([b, 1, 1, t]);
        let mut out: Vec<Option<Tensor>> = layers.iter().map(|_| None).collect();
        let keep = |k: usize, x: &Tensor, out: &mut Vec<Option<Tensor>>| {
            for (slot, &l) in out.iter_mut().zip(layers) {
                if l == k {
                    *slot = Some(x.shallow_clone());
                }
            }
        };
        keep(0, &x, &mut out);
        for (i, l) in self.layers.iter().take(deepest).enumerate() {
            let heads = |p: &(Tensor, Tensor)| lin(&x, p).view([b, t, nh, hd]).transpose(1, 2);
            let (q, k, v) = (heads(&l.q), heads(&l.k), heads(&l.v));
            let a = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&attn_mask),
                0.0,
                false,
                None::<f64>,
                false,
            );
            let a = a.transpose(1, 2).reshape([b, t, h]);
            let hs = norm(&(lin(&a, &l.attn_out) + &x), &l.attn_ln);
            let inter = lin(&hs, &l.inter);
            let inter = match self.cfg.hidden_act.as_str() {
                "gelu" => inter.gelu("none"),
                "relu" => inter.relu(),
                _ => inter.gelu("tanh"),
            };
            x = norm(&(lin(&inter, &l.out) + &hs), &l.out_ln);
            keep(i + 1, &x, &mut out);
        }
        out.into_iter()
            .map(|o| o.expect("every requested layer was kept"))
            .collect()
    }

    /// Hidden states of many sequences: for each of `seqs` (token ids with specials), one
    /// [`TokenStates`] per entry of `layers`, copied to the CPU.
    ///
    /// Sequences are sorted by length and packed into batches of at most `batch_tokens` padded
    /// tokens (and at least one sequence), so padding stays small; the attention mask makes the
    /// result independent of the batching up to float rounding. One device-to-host copy per batch
    /// and layer.
    ///
    /// Errors: a requested layer above [`Encoder::n_layers`]; an empty sequence or one longer than
    /// the window.
    pub fn embed(
        &self,
        seqs: &[&[i64]],
        layers: &[usize],
        batch_tokens: usize,
    ) -> Result<Vec<Vec<TokenStates>>> {
        if let Some(&l) = layers.iter().find(|&&l| l > self.layers.len()) {
            bail!(
                "{}: layer {l} requested, {} loaded",
                self.dir.display(),
                self.layers.len()
            );
        }
        if let Some(s) = seqs
            .iter()
            .find(|s| s.len() > self.max_length || s.is_empty())
        {
            bail!(
                "a sequence of {} tokens does not fit the {}-token window",
                s.len(),
                self.max_length
            );
        }
        let dim = self.cfg.hidden_size;
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let mut result: Vec<Vec<TokenStates>> = seqs.iter().map(|_| Vec::new()).collect();
        let mut start = 0;
        while start < order.len() {
            let t = seqs[order[start]].len();
            let n = (batch_tokens / t).max(1).min(order.len() - start);
            let batch = &order[start..start + n];
            let mut ids = vec![self.pad_id; n * t];
            let mut mask = vec![0i64; n * t];
            for (r, &i) in batch.iter().enumerate() {
                let s = seqs[i];
                ids[r * t..r * t + s.len()].copy_from_slice(s);
                mask[r * t..r * t + s.len()].iter_mut().for_each(|m| *m = 1);
            }
            let ids = Tensor::from_slice(&ids)
                .view([n as i64, t as i64])
                .to_device(self.device);
            let mask = Tensor::from_slice(&mask)
                .view([n as i64, t as i64])
                .to_device(self.device);
            for h in self.forward(&ids, &mask, layers) {
                let flat: Vec<f32> =
                    Vec::try_from(h.to_device(Device::Cpu).contiguous().view([-1]))
                        .context("copying hidden states to the host")?;
                for (r, &i) in batch.iter().enumerate() {
                    let len = seqs[i].len();
                    let at = r * t * dim;
                    result[i].push(TokenStates {
                        len,
                        dim,
                        data: flat[at..at + len * dim].to_vec(),
                    });
                }
            }
            start += n;
        }
        Ok(result)
    }
}
