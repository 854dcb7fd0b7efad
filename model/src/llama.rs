//! The Llama-family decoder (Llama 2/3/3.1, Mistral, Qwen2, SmolLM), written to be read next to
//! transformers' `modeling_llama.py`: weight names walk the same module paths
//! (`model.layers.N.self_attn.q_proj`, ...), RMSNorm computes in fp32 and casts back, rotary
//! embeddings use the rotate-half layout with fp32 frequencies (incl. `rope_type: llama3`),
//! attention is `scaled_dot_product_attention` with grouped-query heads.
//!
//! Shapes: token ids `[batch, seq]` i64; hidden states `[batch, seq, hidden]` in the compute dtype;
//! KV cache per layer `[batch, kv_heads, past, head_dim]`; attention masks are boolean
//! `[batch, 1, q_len, k_len]` (true = may attend).
//! Differences from transformers: none intended in the math; Mistral's sliding window is not
//! applied (only matters beyond `sliding_window` tokens, longer than our evaluation prompts).

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::quant::{load_linear, Linear, QuantizationConfig};
use crate::weights::Weights;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Per-layer key/value cache: `[batch, kv_heads, past, head_dim]` each.
#[derive(Debug, Default)]
pub struct KvCache {
    pub layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of cached positions (0 when empty).
    pub fn past_len(&self) -> i64 {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map(|(k, _)| k.size()[2])
            .unwrap_or(0)
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Layer {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    mlp: Mlp,
}

/// A loaded decoder, ready for forward passes on `device` in `kind`.
pub struct Llama {
    pub cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Tensor,
    kind: Kind,
    device: Device,
}

/// Rotary inverse frequencies `[head_dim/2]` f32, with llama3 / linear scaling applied
/// (transformers `modeling_rope_utils._compute_llama3_parameters`).
pub fn rope_inv_freq(cfg: &LlamaConfig) -> Result<Vec<f32>> {
    let d = cfg.head_dim();
    let theta = cfg.rope_theta();
    // transformers: 1 / base ** (arange(0, dim, 2, int64).float() / dim), computed in fp32.
    let mut inv: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0f32 / (theta as f32).powf(i as f32 / d as f32))
        .collect();
    if let Some(rs) = cfg.rope_scaling() {
        match rs.rope_type.as_str() {
            "linear" => {
                let f = rs.factor.unwrap_or(1.0) as f32;
                inv.iter_mut().for_each(|x| *x /= f);
            }
            "llama3" => {
                let factor = rs.factor.unwrap_or(8.0);
                let low = rs.low_freq_factor.unwrap_or(1.0);
                let high = rs.high_freq_factor.unwrap_or(4.0);
                let old = rs.original_max_position_embeddings.unwrap_or(8192.0);
                let low_wl = old / low;
                let high_wl = old / high;
                for x in inv.iter_mut() {
                    let f = *x as f64;
                    let wl = 2.0 * std::f64::consts::PI / f;
                    let nf = if wl > low_wl {
                        f / factor
                    } else if wl < high_wl {
                        f
                    } else {
                        let smooth = (old / wl - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    *x = nf as f32;
                }
            }
            other => {
                return Err(ModelError::Other(format!(
                    "config.json: field 'rope_scaling.rope_type': '{other}' is not supported (default, linear, llama3)"
                )))
            }
        }
    }
    Ok(inv)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let kind = x.kind();
    let xf = x.to_kind(Kind::Float);
    let var = xf
        .pow_tensor_scalar(2)
        .mean_dim([-1i64].as_slice(), true, Kind::Float);
    let y = xf * (var + eps).rsqrt();
    w * y.to_kind(kind)
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(&[x2.neg(), x1], 3)
}

impl Llama {
    /// Load from an opened checkpoint. `dir` is only used in error messages.
    ///
    /// Errors: a missing tensor, a tensor of the wrong shape, an unsupported quantization format
    /// or rope type, each naming the file and the tensor or field.
    pub fn load(
        dir: &Path,
        cfg: LlamaConfig,
        w: &Weights,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let qcfg = match &cfg.quantization_config {
            Some(v) => Some(QuantizationConfig::from_value(v, &dir.join("config.json"))?),
            None => None,
        };
        let h = cfg.hidden_size as i64;
        let load_vec = |name: &str, n: i64| -> Result<Tensor> {
            Ok(w.get_shaped(name, &[n])?.to_kind(kind).to_device(device))
        };
        let embed = w
            .get_shaped("model.embed_tokens.weight", &[cfg.vocab_size as i64, h])?
            .to_kind(kind)
            .to_device(device);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        let (qb, ob) = (cfg.qkv_bias(), cfg.o_bias());
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let lin = |name: &str, bias: bool| {
                load_linear(w, &format!("{p}.{name}"), bias, qcfg.as_ref(), kind, device)
            };
            let attn = Attention {
                q: lin("self_attn.q_proj", qb)?,
                k: lin("self_attn.k_proj", qb)?,
                v: lin("self_attn.v_proj", qb)?,
                o: lin("self_attn.o_proj", ob)?,
            };
            let mlp = Mlp {
                gate: lin("mlp.gate_proj", false)?,
                up: lin("mlp.up_proj", false)?,
                down: lin("mlp.down_proj", false)?,
            };
            let (nh, nkv, hd) = (
                cfg.num_attention_heads as i64,
                cfg.num_kv_heads() as i64,
                cfg.head_dim() as i64,
            );
            for (name, t, rows) in [
                ("q_proj", &attn.q.weight, nh * hd),
                ("k_proj", &attn.k.weight, nkv * hd),
                ("v_proj", &attn.v.weight, nkv * hd),
            ] {
                if t.size() != [rows, h] {
                    return Err(ModelError::Tensor {
                        file: dir.join("config.json"),
                        tensor: format!("{p}.self_attn.{name}.weight"),
                        msg: format!(
                            "shape {:?} disagrees with config (expected [{rows}, {h}])",
                            t.size()
                        ),
                    });
                }
            }
            layers.push(Layer {
                input_norm: load_vec(&format!("{p}.input_layernorm.weight"), h)?,
                attn,
                post_norm: load_vec(&format!("{p}.post_attention_layernorm.weight"), h)?,
                mlp,
            });
        }
        let norm = load_vec("model.norm.weight", h)?;
        // Tied (or no separate head): the output projection is the embedding matrix.
        let lm_head = if w.contains("lm_head.weight") && !cfg.tie_word_embeddings {
            w.get_shaped("lm_head.weight", &[cfg.vocab_size as i64, h])?
                .to_kind(kind)
                .to_device(device)
        } else {
            embed.shallow_clone()
        };
        let inv_freq = Tensor::from_slice(&rope_inv_freq(&cfg)?).to_device(device);
        Ok(Llama {
            cfg,
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            kind,
            device,
        })
    }

    /// Compute dtype.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Run the decoder over `ids` `[b, t]` at `positions` `[b, t]` with boolean `mask`
    /// `[b, 1, t, past + t]`, appending to `cache` if given. Returns the final-normed hidden
    /// states `[b, t, hidden]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let nh = self.cfg.num_attention_heads as i64;
        let nkv = self.cfg.num_kv_heads() as i64;
        let hd = self.cfg.head_dim() as i64;
        let eps = self.cfg.rms_norm_eps;
        // Rotary cos/sin [b, 1, t, hd] in fp32, cast to the compute dtype like transformers.
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * self.inv_freq.view([1, 1, -1]);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        let cos = emb.cos().to_kind(self.kind).unsqueeze(1);
        let sin = emb.sin().to_kind(self.kind).unsqueeze(1);
        if let Some(c) = cache.as_deref_mut() {
            if c.layers.len() != self.layers.len() {
                c.layers = (0..self.layers.len()).map(|_| None).collect();
            }
        }
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for (li, layer) in self.layers.iter().enumerate() {
            let hn = rms_norm(&x, &layer.input_norm, eps);
            let q = layer
                .attn
                .q
                .forward(&hn)
                .view([b, t, nh, hd])
                .transpose(1, 2);
            let k = layer
                .attn
                .k
                .forward(&hn)
                .view([b, t, nkv, hd])
                .transpose(1, 2);
            let v = layer
                .attn
                .v
                .forward(&hn)
                .view([b, t, nkv, hd])
                .transpose(1, 2);
            let q = &q * &cos + rotate_half(&q) * &sin;
            let k = &k * &cos + rotate_half(&k) * &sin;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => {
                    let (k, v) = match c.layers[li].take() {
                        Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
                        None => (k, v),
                    };
                    c.layers[li] = Some((k.shallow_clone(), v.shallow_clone()));
                    (k, v)
                }
                None => (k, v),
            };
            let a = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(mask),
                0.0,
                false,
                None::<f64>,
                nkv != nh,
            );
            let a = a.transpose(1, 2).reshape([b, t, nh * hd]);
            let h = &x + layer.attn.o.forward(&a);
            let hn = rms_norm(&h, &layer.post_norm, eps);
            let m = layer.mlp.gate.forward(&hn).silu() * layer.mlp.up.forward(&hn);
            x = h + layer.mlp.down.forward(&m);
        }
        rms_norm(&x, &self.norm, eps)
    }

    /// Logits `[..., vocab]` in fp32 from final hidden states `[..., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden
            .linear::<&Tensor>(&self.lm_head, None)
            .to_kind(Kind::Float)
    }
}

/// Boolean attention mask `[b, 1, t, past + t]`: query i (absolute index past + i) may attend key j
/// when j <= past + i and key j is real (`key_valid [b, past + t]`); the diagonal is always allowed
/// so padding rows never become all-masked (which would give NaN).
pub fn causal_mask(key_valid: &Tensor, past: i64, t: i64) -> Tensor {
    let device = key_valid.device();
    let total = past + t;
    let qi = Tensor::arange_start(past, total, (Kind::Int64, device)).view([t, 1]);
    let kj = Tensor::arange(total, (Kind::Int64, device)).view([1, total]);
    let causal = kj.le_tensor(&qi); // [t, total]
    let diag = kj.eq_tensor(&qi);
    let valid = key_valid.to_kind(Kind::Bool).unsqueeze(1); // [b, 1, total]
    let m = causal
        .unsqueeze(0)
        .logical_and(&valid)
        .logical_or(&diag.unsqueeze(0));
    m.unsqueeze(1)
}
