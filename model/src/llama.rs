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

/// Preallocated decode cache: per layer keys `k[l]` and values `v[l]`, each
/// `[batch, kv_heads, capacity, head_dim]` in the compute dtype; slot `j` holds position `j` of
/// the left-padded rows. Shapes never change, so a decode step over it can be a CUDA graph.
pub struct StaticKv {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl StaticKv {
    /// Copy a prefill's [`KvCache`] (`past` positions) into slots `[0, past)`.
    pub fn fill_from(&mut self, cache: &KvCache) {
        for (l, slot) in cache.layers.iter().enumerate() {
            if let Some((k, v)) = slot {
                let past = k.size()[2];
                self.k[l].narrow(2, 0, past).copy_(k);
                self.v[l].narrow(2, 0, past).copy_(v);
            }
        }
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
    /// q/k/v as one Linear `[(heads + 2·kv_heads)·head_dim, hidden]`, and gate/up as one
    /// `[2·intermediate, hidden]`, after [`DecoderLayer::fuse_projections`] (the separate
    /// Linears then hold views of these weights). One larger GEMM instead of three or two.
    pub qkv: Option<Linear>,
    pub gate_up: Option<Linear>,
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
///
/// libtorch's `rms_norm` op: on the CPU its composite is exactly that sequence (fp32 upcast,
/// `pow(2).mean`, `rsqrt`, cast back, then the weight); on CUDA it is one fused kernel instead of
/// six passes over an fp32 copy.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let h = *x.size().last().expect("rms_norm of a 0-d tensor");
    x.rms_norm([h].as_slice(), Some(w), eps)
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
            qkv: None,
            gate_up: None,
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

    /// This layer with `f` applied to every tensor (weights, biases, norms), e.g. a copy to
    /// another device or into pinned host memory. Meant for unfused layers: fused q/k/v and
    /// gate/up weights ([`DecoderLayer::fuse_projections`]) are mapped too, but the separate
    /// Linears then stop being views of them.
    pub fn map_tensors(&self, f: impl Fn(&Tensor) -> Tensor) -> DecoderLayer {
        let lin = |l: &Linear| Linear {
            weight: f(&l.weight),
            bias: l.bias.as_ref().map(&f),
            act_quant: l.act_quant,
        };
        DecoderLayer {
            input_norm: f(&self.input_norm),
            q: lin(&self.q),
            k: lin(&self.k),
            v: lin(&self.v),
            o: lin(&self.o),
            post_norm: f(&self.post_norm),
            gate: lin(&self.gate),
            up: lin(&self.up),
            down: lin(&self.down),
            qkv: self.qkv.as_ref().map(&lin),
            gate_up: self.gate_up.as_ref().map(&lin),
        }
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
        let (q, k, v) = self.qkv_proj(cfg, hn);
        let q = q.view([b, t, nh, hd]).transpose(1, 2);
        let k = k.view([b, t, nkv, hd]).transpose(1, 2);
        let v = v.view([b, t, nkv, hd]).transpose(1, 2);
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

    /// Decoder layer for one new token per row over a [`StaticKv`] layer (`k_cache`, `v_cache`
    /// `[b, kv_heads, capacity, head_dim]`): see [`Llama::decode_step`]. Grouped-query attention
    /// without repeating keys: the `heads / kv_heads` queries that share a key/value head are the
    /// query rows of one SDPA head, `q` `[b, kv_heads, group, head_dim]` (the same head order as
    /// transformers' `repeat_kv`). Returns `[b, 1, hidden]`.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_step(
        &self,
        cfg: &LlamaConfig,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        slot: &Tensor,
        k_cache: &Tensor,
        v_cache: &Tensor,
    ) -> Tensor {
        let b = x.size()[0];
        let nh = cfg.num_attention_heads as i64;
        let nkv = cfg.num_kv_heads() as i64;
        let hd = cfg.head_dim() as i64;
        let hn = self.attn_input(cfg, x);
        let (q, k, v) = self.qkv_proj(cfg, &hn);
        let q = q.view([b, 1, nh, hd]).transpose(1, 2);
        let k = k.view([b, 1, nkv, hd]).transpose(1, 2);
        let v = v.view([b, 1, nkv, hd]).transpose(1, 2);
        let q = &q * cos + rotate_half(&q) * sin;
        let k = &k * cos + rotate_half(&k) * sin;
        let mut kc = k_cache.shallow_clone();
        let mut vc = v_cache.shallow_clone();
        let _ = kc.index_copy_(2, slot, &k);
        let _ = vc.index_copy_(2, slot, &v);
        let q = q.reshape([b, nkv, nh / nkv, hd]);
        let a = Tensor::scaled_dot_product_attention(
            &q,
            &kc,
            &vc,
            Some(mask),
            0.0,
            false,
            None::<f64>,
            false,
        );
        let a = a.reshape([b, 1, nh * hd]);
        let h = x + self.o.forward(&a);
        let hn = self.mlp_input(cfg, &h);
        h + self.down.forward(&self.mlp_hidden(&hn))
    }

    /// The layer's outputs at positions `[from, t)` only, `[b, t - from, hidden]`, for right-padded
    /// rows under plain causal attention (`x` `[b, t, hidden]`, rotary tables for all `t`
    /// positions). Keys and values come from every position; queries, o_proj and the MLP run for
    /// the tail alone. Used for the last layer when only the tail is scored.
    pub fn forward_tail(
        &self,
        cfg: &LlamaConfig,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        from: i64,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let w = t - from;
        let nh = cfg.num_attention_heads as i64;
        let nkv = cfg.num_kv_heads() as i64;
        let hd = cfg.head_dim() as i64;
        let g = nh / nkv;
        let hn = self.attn_input(cfg, x);
        let (q, k, v) = self.qkv_proj(cfg, &hn);
        let q = q.narrow(1, from, w).view([b, w, nh, hd]).transpose(1, 2);
        let k = k.view([b, t, nkv, hd]).transpose(1, 2);
        let v = v.view([b, t, nkv, hd]).transpose(1, 2);
        let (cq, sq) = (cos.narrow(2, from, w), sin.narrow(2, from, w));
        let q = &q * &cq + rotate_half(&q) * &sq;
        let k = &k * cos + rotate_half(&k) * sin;
        // Query `from + i` sees keys `j <= from + i`; the `g` query heads that share a key/value
        // head are stacked as the rows of one SDPA head (no repeated keys).
        let dev = x.device();
        let qi = Tensor::arange_start(from, t, (Kind::Int64, dev)).view([w, 1]);
        let kj = Tensor::arange(t, (Kind::Int64, dev)).view([1, t]);
        let mask = kj.le_tensor(&qi).repeat([g, 1]).view([1, 1, g * w, t]);
        let a = Tensor::scaled_dot_product_attention(
            &q.reshape([b, nkv, g * w, hd]),
            &k,
            &v,
            Some(&mask),
            0.0,
            false,
            None::<f64>,
            false,
        );
        let a = a
            .view([b, nh, w, hd])
            .transpose(1, 2)
            .reshape([b, w, nh * hd]);
        let h = x.narrow(1, from, w) + self.o.forward(&a);
        let hn = self.mlp_input(cfg, &h);
        h + self.down.forward(&self.mlp_hidden(&hn))
    }

    /// Input of gate/up: `post_attention_layernorm(h)`, `[b, t, hidden]`.
    pub fn mlp_input(&self, cfg: &LlamaConfig, h: &Tensor) -> Tensor {
        rms_norm(h, &self.post_norm, cfg.rms_norm_eps)
    }

    /// Input of down_proj: `silu(gate(hn)) · up(hn)`, `[b, t, intermediate]`.
    pub fn mlp_hidden(&self, hn: &Tensor) -> Tensor {
        match &self.gate_up {
            Some(gu) => {
                let y = gu.forward(hn);
                let i = y.size().last().copied().unwrap_or(0) / 2;
                y.narrow(-1, 0, i).silu() * y.narrow(-1, i, i)
            }
            None => self.gate.forward(hn).silu() * self.up.forward(hn),
        }
    }

    /// q, k, v projections of the normed input `hn` `[b, t, hidden]`: `[b, t, heads·head_dim]`,
    /// `[b, t, kv_heads·head_dim]` twice (views of one GEMM's output when fused).
    fn qkv_proj(&self, cfg: &LlamaConfig, hn: &Tensor) -> (Tensor, Tensor, Tensor) {
        match &self.qkv {
            Some(f) => {
                let y = f.forward(hn);
                let nq = (cfg.num_attention_heads * cfg.head_dim()) as i64;
                let nk = (cfg.num_kv_heads() * cfg.head_dim()) as i64;
                (
                    y.narrow(-1, 0, nq),
                    y.narrow(-1, nq, nk),
                    y.narrow(-1, nq + nk, nk),
                )
            }
            None => (self.q.forward(hn), self.k.forward(hn), self.v.forward(hn)),
        }
    }

    /// Fuse q/k/v and gate/up into one Linear each (see [`DecoderLayer::qkv`]); the separate
    /// Linears keep working, as views of the fused weights, so no memory is added. Linears that
    /// differ in activation quantization or bias presence stay separate.
    pub fn fuse_projections(&mut self) {
        fn fuse(parts: &mut [&mut Linear]) -> Option<Linear> {
            let aq = parts[0].act_quant;
            let has_bias = parts[0].bias.is_some();
            if parts
                .iter()
                .any(|l| l.act_quant != aq || l.bias.is_some() != has_bias)
            {
                return None;
            }
            let weight = Tensor::cat(&parts.iter().map(|l| &l.weight).collect::<Vec<_>>(), 0);
            let bias = has_bias.then(|| {
                Tensor::cat(
                    &parts
                        .iter()
                        .map(|l| l.bias.as_ref().expect("checked"))
                        .collect::<Vec<_>>(),
                    0,
                )
            });
            let mut row = 0;
            for l in parts.iter_mut() {
                let n = l.weight.size()[0];
                l.weight = weight.narrow(0, row, n);
                if let Some(b) = &bias {
                    l.bias = Some(b.narrow(0, row, n));
                }
                row += n;
            }
            Some(Linear {
                weight,
                bias,
                act_quant: aq,
            })
        }
        if self.qkv.is_none() {
            self.qkv = fuse(&mut [&mut self.q, &mut self.k, &mut self.v]);
        }
        if self.gate_up.is_none() {
            self.gate_up = fuse(&mut [&mut self.gate, &mut self.up]);
        }
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
    /// `[b, 1, t, past + t]` (`None`: plain causal attention, which is exact for right-padded
    /// rows: a real token never sees the padding after it), appending to `cache` if given.
    /// Returns the final-normed hidden states `[b, t, hidden]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
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
            x = layer.forward(&self.cfg, &x, &cos, &sin, mask, slot, &mut |_, _| {});
        }
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// [`Llama::forward`] for right-padded rows under plain causal attention, returning only
    /// positions `[from, t)`: `[b, t - from, hidden]`, final-normed. The last layer computes
    /// queries, o_proj and MLP for those positions alone ([`DecoderLayer::forward_tail`]), which
    /// is all log-likelihood scoring reads.
    pub fn forward_tail(&self, ids: &Tensor, positions: &Tensor, from: i64) -> Tensor {
        let t = ids.size()[1];
        let n = self.layers.len();
        if from <= 0 || n == 0 {
            return self.forward(ids, positions, None, None);
        }
        let (cos, sin) = rope_cos_sin(&self.inv_freq, positions, self.kind);
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for layer in &self.layers[..n - 1] {
            x = layer.forward(&self.cfg, &x, &cos, &sin, None, None, &mut |_, _| {});
        }
        let x = self.layers[n - 1].forward_tail(&self.cfg, &x, &cos, &sin, from.min(t - 1));
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Fuse every layer's q/k/v and gate/up GEMMs ([`DecoderLayer::fuse_projections`]): the
    /// engine does this after loading; compression keeps the separate Linears it quantizes.
    pub fn fuse_projections(&mut self) {
        self.layers
            .iter_mut()
            .for_each(DecoderLayer::fuse_projections);
    }

    /// Zeroed decode cache for `b` rows and `capacity` positions on the model's device.
    pub fn static_cache(&self, b: i64, capacity: i64) -> StaticKv {
        let shape = [
            b,
            self.cfg.num_kv_heads() as i64,
            capacity,
            self.cfg.head_dim() as i64,
        ];
        let z = || Tensor::zeros(shape, (self.kind, self.device));
        StaticKv {
            k: (0..self.layers.len()).map(|_| z()).collect(),
            v: (0..self.layers.len()).map(|_| z()).collect(),
        }
    }

    /// One decode step over the static cache: token `ids` `[b, 1]` at rotary `positions`
    /// `[b, 1]` write their keys/values at cache slot `slot` (`[1]` i64, the same slot for every
    /// row: prompts are left-padded to one length) and attend to every slot allowed by `mask`
    /// (`[b, 1, 1, capacity]` bool, true = may attend; the caller sets `slot` true before the
    /// step). Returns fp32 logits `[b, vocab]`. Only device operations on tensors that keep their
    /// shape, so the step can be captured in a CUDA graph ([`crate::cuda_graph`]).
    pub fn decode_step(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        slot: &Tensor,
        cache: &StaticKv,
    ) -> Tensor {
        let (cos, sin) = rope_cos_sin(&self.inv_freq, positions, self.kind);
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for (li, layer) in self.layers.iter().enumerate() {
            x = layer.decode_step(
                &self.cfg,
                &x,
                &cos,
                &sin,
                mask,
                slot,
                &cache.k[li],
                &cache.v[li],
            );
        }
        let h = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps);
        self.logits(&h.squeeze_dim(1))
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
