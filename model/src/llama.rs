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

/// Where the inputs of a decoder layer's Linears can be observed (calibration taps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// `input_layernorm` output, input of q/k/v `[b, t, hidden]`.
    Qkv,
    /// Attention output, input of o_proj `[b, t, heads·head_dim]`.
    O,
    /// `post_attention_layernorm` output, input of gate/up `[b, t, hidden]`.
    GateUp,
    /// `silu(gate) · up`, input of down_proj `[b, t, intermediate]`.
    Down,
}

/// One decoder layer (`model.layers.N`): norms `[hidden]` and Linears, in the compute dtype.
pub struct DecoderLayer {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// A loaded decoder, ready for forward passes on `device` in `kind`.
pub struct Llama {
    pub cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<DecoderLayer>,
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

/// RMSNorm as transformers' `LlamaRMSNorm`: variance in fp32, cast back, then `w ·`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let kind = x.kind();
    let xf = x.to_kind(Kind::Float);
    let var = xf
        .pow_tensor_scalar(2)
        .mean_dim([-1i64].as_slice(), true, Kind::Float);
    let y = xf * (var + eps).rsqrt();
    w * y.to_kind(kind)
}

/// Rotary tables `(cos, sin)`, each `[b, 1, t, head_dim]` in `kind`, for `positions` `[b, t]`
/// (computed in fp32 and cast, like transformers).
pub fn rope_cos_sin(inv_freq: &Tensor, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
    let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * inv_freq.view([1, 1, -1]);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (
        emb.cos().to_kind(kind).unsqueeze(1),
        emb.sin().to_kind(kind).unsqueeze(1),
    )
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(&[x2.neg(), x1], 3)
}

impl DecoderLayer {
    /// Load `model.layers.{i}` from `w` (dequantizing compressed Linears per `qcfg`).
    ///
    /// Errors: a missing tensor or one whose shape disagrees with `cfg`, naming the tensor.
    pub fn load(
        dir: &Path,
        cfg: &LlamaConfig,
        w: &Weights,
        i: usize,
        qcfg: Option<&QuantizationConfig>,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let h = cfg.hidden_size as i64;
        let p = format!("model.layers.{i}");
        let (qb, ob) = (cfg.qkv_bias(), cfg.o_bias());
        let lin = |name: &str, bias: bool| {
            load_linear(w, &format!("{p}.{name}"), bias, qcfg, kind, device)
        };
        let load_vec = |name: &str| -> Result<Tensor> {
            Ok(w.get_shaped(name, &[h])?.to_kind(kind).to_device(device))
        };
        let layer = DecoderLayer {
            input_norm: load_vec(&format!("{p}.input_layernorm.weight"))?,
            q: lin("self_attn.q_proj", qb)?,
            k: lin("self_attn.k_proj", qb)?,
            v: lin("self_attn.v_proj", qb)?,
            o: lin("self_attn.o_proj", ob)?,
            post_norm: load_vec(&format!("{p}.post_attention_layernorm.weight"))?,
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
            ("q_proj", &layer.q.weight, nh * hd),
            ("k_proj", &layer.k.weight, nkv * hd),
            ("v_proj", &layer.v.weight, nkv * hd),
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
        Ok(layer)
    }

    /// Input of q/k/v: `input_layernorm(x)`, `[b, t, hidden]`.
    pub fn attn_input(&self, cfg: &LlamaConfig, x: &Tensor) -> Tensor {
        rms_norm(x, &self.input_norm, cfg.rms_norm_eps)
    }

    /// Self-attention up to (not including) o_proj: q/k/v projections of the normed input `hn`
    /// `[b, t, hidden]`, rotary embedding, grouped-query SDPA with `mask` (`None`: causal, no
    /// padding), appending keys/values to `kv` if given. Returns `[b, t, heads·head_dim]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        cfg: &LlamaConfig,
        hn: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Tensor {
        let (b, t) = (hn.size()[0], hn.size()[1]);
        let nh = cfg.num_attention_heads as i64;
        let nkv = cfg.num_kv_heads() as i64;
        let hd = cfg.head_dim() as i64;
        let q = self.q.forward(hn).view([b, t, nh, hd]).transpose(1, 2);
        let k = self.k.forward(hn).view([b, t, nkv, hd]).transpose(1, 2);
        let v = self.v.forward(hn).view([b, t, nkv, hd]).transpose(1, 2);
        let q = &q * cos + rotate_half(&q) * sin;
        let k = &k * cos + rotate_half(&k) * sin;
        let (k, v) = match kv {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some((k.shallow_clone(), v.shallow_clone()));
                (k, v)
            }
            None => (k, v),
        };
        let a = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask,
            0.0,
            mask.is_none(),
            None::<f64>,
            nkv != nh,
        );
        a.transpose(1, 2).reshape([b, t, nh * hd])
    }

    /// Input of gate/up: `post_attention_layernorm(h)`, `[b, t, hidden]`.
    pub fn mlp_input(&self, cfg: &LlamaConfig, h: &Tensor) -> Tensor {
        rms_norm(h, &self.post_norm, cfg.rms_norm_eps)
    }

    /// Input of down_proj: `silu(gate(hn)) · up(hn)`, `[b, t, intermediate]`.
    pub fn mlp_hidden(&self, hn: &Tensor) -> Tensor {
        self.gate.forward(hn).silu() * self.up.forward(hn)
    }

    /// Run the layer on `x` `[b, t, hidden]` with rotary tables from [`rope_cos_sin`] and a boolean
    /// `mask` `[b, 1, t, past + t]` (`None`: plain causal attention, no padding), appending
    /// keys/values to `kv` if given. `tap` sees the input of each group of Linears ([`Site`])
    /// before they run. Returns `[b, t, hidden]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        cfg: &LlamaConfig,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: Option<&mut Option<(Tensor, Tensor)>>,
        tap: &mut dyn FnMut(Site, &Tensor),
    ) -> Tensor {
        let hn = self.attn_input(cfg, x);
        tap(Site::Qkv, &hn);
        let a = self.attention(cfg, &hn, cos, sin, mask, kv);
        tap(Site::O, &a);
        let h = x + self.o.forward(&a);
        let hn = self.mlp_input(cfg, &h);
        tap(Site::GateUp, &hn);
        let m = self.mlp_hidden(&hn);
        tap(Site::Down, &m);
        h + self.down.forward(&m)
    }
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
        for i in 0..cfg.num_hidden_layers {
            layers.push(DecoderLayer::load(
                dir,
                &cfg,
                w,
                i,
                qcfg.as_ref(),
                kind,
                device,
            )?);
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
        let (cos, sin) = rope_cos_sin(&self.inv_freq, positions, self.kind);
        if let Some(c) = cache.as_deref_mut() {
            if c.layers.len() != self.layers.len() {
                c.layers = (0..self.layers.len()).map(|_| None).collect();
            }
        }
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for (li, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[li]);
            x = layer.forward(&self.cfg, &x, &cos, &sin, Some(mask), slot, &mut |_, _| {});
        }
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Token embeddings `[b, t, hidden]` of `ids` `[b, t]`.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed, ids, -1, false, false)
    }

    /// Rotary inverse frequencies `[head_dim/2]` f32 on the model's device.
    pub fn inv_freq(&self) -> &Tensor {
        &self.inv_freq
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
