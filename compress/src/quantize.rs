//! Quantization arithmetic (DESIGN.md "Numerics"; compressed-tensors `quantization/lifecycle/forward.py`
//! and `utils/helpers.py::calculate_qparams`).
//!
//! Symmetric integer: range `[qmin, qmax] = [-2^(b-1), 2^(b-1)-1]`, scale = absmax / ((qmax - qmin) / 2)
//! (÷7.5 for int4, ÷127.5 for int8), clamped below by f32 epsilon, stored in the checkpoint's dtype
//! (bf16); q = round_half_even(w / scale) clamped to the range, computed with the stored scale.
//! FP8 E4M3: scale = absmax / 448, q = cast_to_fp8(clamp(w / scale, ±448)) (round to nearest even).
//! Tensors: weights `[out, in]` fp32 in, codes `[out, in]` (i8 / f8e4m3), scales `[out, 1]` or
//! `[out, in / group]` in `scale_kind`.

use crate::scheme::{Strategy, WeightType};
use tch::{Kind, Tensor};

/// Quantized weight: codes and scales.
#[derive(Debug)]
pub struct QuantizedWeight {
    /// `[out, in]`: Int8 for integer types (int4 values fit in int8), Float8e4m3fn for fp8.
    pub codes: Tensor,
    /// `[out, 1]` (channel) or `[out, in / group]` (group), in the checkpoint's scale dtype.
    pub scale: Tensor,
}

/// Integer limits `(qmin, qmax)` for `bits`.
pub fn int_range(bits: u32) -> (f64, f64) {
    let qmax = (1i64 << (bits - 1)) as f64 - 1.0;
    (-qmax - 1.0, qmax)
}

/// Absolute max per row (`[out, 1]`) or per group (`[out, in/g]`) of a `[out, in]` fp32 tensor.
fn absmax(w: &Tensor, strategy: Strategy) -> Tensor {
    let (out, inf) = (w.size()[0], w.size()[1]);
    match strategy {
        Strategy::Channel => w.abs().amax([1i64].as_slice(), true),
        Strategy::Group(g) => {
            let g = g as i64;
            w.abs()
                .view([out, inf / g, g])
                .amax([2i64].as_slice(), false)
        }
    }
}

/// Expand scales to `[out, in]`.
pub fn expand_scale(scale: &Tensor, strategy: Strategy, in_features: i64) -> Tensor {
    match strategy {
        Strategy::Channel => scale.expand([scale.size()[0], in_features], false),
        Strategy::Group(g) => scale.repeat_interleave_self_int(g as i64, 1, None),
    }
}

/// Round-to-nearest quantization of `w` `[out, in]` with min-max scales.
/// Panics never; callers check that the group size divides `in` (see `pipeline`).
pub fn quantize_rtn(
    w: &Tensor,
    t: WeightType,
    strategy: Strategy,
    scale_kind: Kind,
) -> QuantizedWeight {
    let w = w.to_kind(Kind::Float);
    let inf = w.size()[1];
    let amax = absmax(&w, strategy);
    let raw = match t {
        WeightType::Int { bits } => {
            let (qmin, qmax) = int_range(bits);
            amax / ((qmax - qmin) / 2.0)
        }
        WeightType::Fp8E4M3 => amax / 448.0,
    };
    let scale = raw.clamp_min(f32::EPSILON as f64).to_kind(scale_kind);
    let codes = quantize_with_scale(&w, &scale, t, strategy, inf);
    QuantizedWeight { codes, scale }
}

/// Quantize `w` with given scales (`scale` in its stored dtype; arithmetic in fp32).
pub fn quantize_with_scale(
    w: &Tensor,
    scale: &Tensor,
    t: WeightType,
    strategy: Strategy,
    in_features: i64,
) -> Tensor {
    let s = expand_scale(&scale.to_kind(Kind::Float), strategy, in_features);
    let x = w.to_kind(Kind::Float) / s;
    match t {
        WeightType::Int { bits } => {
            let (qmin, qmax) = int_range(bits);
            // torch.round rounds half to even.
            x.round().clamp(qmin, qmax).to_kind(Kind::Int8)
        }
        WeightType::Fp8E4M3 => x.clamp(-448.0, 448.0).to_kind(Kind::Float8e4m3fn),
    }
}

/// Dequantize codes back to fp32 `[out, in]`.
pub fn dequantize(q: &QuantizedWeight, strategy: Strategy) -> Tensor {
    let inf = q.codes.size()[1];
    q.codes.to_kind(Kind::Float) * expand_scale(&q.scale.to_kind(Kind::Float), strategy, inf)
}
