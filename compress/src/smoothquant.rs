//! SmoothQuant (Xiao et al. 2022, "SmoothQuant: Accurate and Efficient Post-Training Quantization
//! for Large Language Models", §4 Eq. 4; llm-compressor `modifiers/smoothquant/base.py`).
//!
//! For a norm `N` feeding Linears `L₁..L_k` (Llama: input_layernorm → q/k/v,
//! post_attention_layernorm → gate/up), per input channel `j`:
//! `s_j = act_range_j^α / w_range_j^(1-α)`, where `act_range_j = max_j - min_j` of the norm's output
//! over the calibration tokens and `w_range_j = 2 · max_k max_rows |W_k[:, j]|` (llm-compressor's
//! ranges); `s_j = act_range_j` where `w_range_j = 0`; `s ≥ 1e-5`. Folding: `N.weight /= s`,
//! `W_k[:, j] *= s_j`, which leaves the layer's output unchanged in exact arithmetic and moves
//! activation outliers into the weights. A Hessian collected on the unsmoothed inputs becomes
//! `diag(1/s) H diag(1/s)` (so no second calibration pass is needed).
//!
//! Shapes: norm weight `[in]`, Linear weights `[out_k, in]`, ranges `[in]`, all fp32.

use tch::{Kind, Tensor};

/// Smallest smoothing scale (llm-compressor `MINIMUM_SMOOTHING_SCALE`).
pub const MIN_SCALE: f64 = 1e-5;

/// Running per-channel min/max of an activation `[.., in]`.
#[derive(Debug)]
pub struct ChannelRange {
    pub min: Tensor,
    pub max: Tensor,
}

impl ChannelRange {
    /// Empty range for `cols` channels.
    pub fn new(cols: i64, device: tch::Device) -> Self {
        ChannelRange {
            min: Tensor::full([cols], f64::INFINITY, (Kind::Float, device)),
            max: Tensor::full([cols], f64::NEG_INFINITY, (Kind::Float, device)),
        }
    }

    /// Fold in activations `x` `[tokens, in]` (or any leading shape).
    pub fn add(&mut self, x: &Tensor) {
        let cols = *x.size().last().unwrap_or(&1);
        let x = x.reshape([-1, cols]).to_kind(Kind::Float);
        self.min = self.min.minimum(&x.amin([0i64].as_slice(), false));
        self.max = self.max.maximum(&x.amax([0i64].as_slice(), false));
    }

    /// `max - min` per channel (0 where nothing was seen).
    pub fn dynamic_range(&self) -> Tensor {
        (&self.max - &self.min)
            .nan_to_num(0.0, 0.0, 0.0)
            .clamp_min(0.0)
    }
}

/// Smoothing scales `s` `[in]` for activation ranges `act_range` `[in]` and the balanced Linears'
/// weights (each `[out_k, in]`), with migration strength `alpha` in [0, 1].
pub fn smoothing_scales(act_range: &Tensor, weights: &[&Tensor], alpha: f64) -> Tensor {
    let per: Vec<Tensor> = weights
        .iter()
        .map(|w| w.to_kind(Kind::Float).abs().amax([0i64].as_slice(), false))
        .collect();
    let w_range = Tensor::stack(&per, 0).amax([0i64].as_slice(), false) * 2.0;
    let act = act_range.to_kind(Kind::Float);
    let s = act.pow_tensor_scalar(alpha) / w_range.pow_tensor_scalar(1.0 - alpha);
    let s = s.where_self(&w_range.gt(0.0), &act);
    s.clamp_min(MIN_SCALE)
}

/// Fold `s` into the norm weight (divide) and the Linears (multiply their columns), in place.
pub fn fold(norm: &mut Tensor, linears: &mut [&mut Tensor], s: &Tensor) {
    let s = s.to_kind(Kind::Float);
    *norm = (norm.to_kind(Kind::Float) / &s).to_kind(norm.kind());
    for w in linears.iter_mut() {
        **w = (w.to_kind(Kind::Float) * s.unsqueeze(0)).to_kind(w.kind());
    }
}

/// The Hessian of the smoothed inputs `x / s`: `diag(1/s) H diag(1/s)`.
pub fn smooth_hessian(h: &Tensor, s: &Tensor) -> Tensor {
    let inv = s.to_kind(h.kind()).reciprocal();
    h * inv.unsqueeze(0) * inv.unsqueeze(1)
}
