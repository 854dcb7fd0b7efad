//! Quantization arithmetic (DESIGN.md "Numerics"; compressed-tensors `quantization/utils/helpers.py::
//! calculate_qparams` and `lifecycle/forward.py::_quantize/_dequantize`).
//!
//! Integer types: range `[qmin, qmax] = [-2^(b-1), 2^(b-1)-1]`, `bit_range = qmax - qmin`.
//! The observed `min`/`max` are first widened to include 0. Symmetric: scale =
//! max(|min|, |max|) / (bit_range / 2) (÷7.5 for int4, ÷127.5 for int8), zero point 0.
//! Asymmetric: scale = (max - min) / bit_range, zero point = clamp(qmin - round(min / scale),
//! qmin, qmax). Scales are clamped below by f32 epsilon and rounded to the checkpoint's scale dtype
//! (bf16 for bf16 models) *before* use, so the codes we write are exactly the ones the stored
//! scale reproduces. q = clamp(round_half_even(x / scale) + zp, qmin, qmax); x̂ = (q - zp) · scale.
//! FP8 E4M3: scale = absmax / 448, q = cast_to_fp8(clamp(x / scale, ±448)) (round to nearest even).
//!
//! Shapes: weights `[out, in]` fp32; "grouped" views `[rows, G, g]` where (rows, G, g) is
//! (1, 1, out·in) for tensor, (out, 1, in) for channel and (out, in/g, g) for group strategy;
//! qparams `[rows, G]` fp32 (values representable in the scale dtype).

use crate::scheme::{Strategy, WeightType};
use tch::{Kind, Tensor};

/// Quantized weight: codes and scales.
#[derive(Debug)]
pub struct QuantizedWeight {
    /// `[out, in]`: Int8 for integer types (int4 values fit in int8), Float8e4m3fn for fp8.
    pub codes: Tensor,
    /// `[out, 1]` (channel), `[out, in / group]` (group) or `[1]` (tensor), in the checkpoint's
    /// scale dtype.
    pub scale: Tensor,
    /// Asymmetric zero points, the scale's shape, Int8; `None` when symmetric.
    pub zero_point: Option<Tensor>,
}

/// Scale (and zero point) of a quantizer, `[rows, G]` fp32.
#[derive(Debug)]
pub struct QParams {
    pub scale: Tensor,
    /// Integer-valued fp32, `None` for symmetric quantization.
    pub zero_point: Option<Tensor>,
}

impl QParams {
    /// Select one group column `gi` of every row: `[rows]` views.
    pub fn column(&self, gi: i64) -> (Tensor, Option<Tensor>) {
        (
            self.scale.select(1, gi),
            self.zero_point.as_ref().map(|z| z.select(1, gi)),
        )
    }
}

/// Integer limits `(qmin, qmax)` for `bits`.
pub fn int_range(bits: u32) -> (f64, f64) {
    let qmax = (1i64 << (bits - 1)) as f64 - 1.0;
    (-qmax - 1.0, qmax)
}

/// `[out, in]` -> `[rows, G, g]` view for `strategy` (see module doc). The caller guarantees that
/// a group size divides `in` (the pipeline checks it and names the Linear otherwise).
pub fn grouped(w: &Tensor, strategy: Strategy) -> Tensor {
    let (out, inf) = (w.size()[0], w.size()[1]);
    match strategy {
        Strategy::Tensor => w.reshape([1, 1, out * inf]),
        Strategy::Channel => w.reshape([out, 1, inf]),
        Strategy::Group(g) => w.reshape([out, inf / g as i64, g as i64]),
    }
}

/// Compute qparams from per-group `min`/`max` (`[rows, G]`, fp32), as compressed-tensors'
/// `calculate_qparams` does, rounding the scale through `scale_kind`.
pub fn calculate_qparams(
    min: &Tensor,
    max: &Tensor,
    t: WeightType,
    symmetric: bool,
    scale_kind: Kind,
) -> QParams {
    let min = min.clamp_max(0.0);
    let max = max.clamp_min(0.0);
    let round_scale = |s: Tensor| {
        s.clamp_min(f32::EPSILON as f64)
            .to_kind(scale_kind)
            .to_kind(Kind::Float)
    };
    match t {
        WeightType::Fp8E4M3 => {
            let amax = min.abs().maximum(&max);
            QParams {
                scale: round_scale(amax / 448.0),
                zero_point: None,
            }
        }
        WeightType::Int { bits } => {
            let (qmin, qmax) = int_range(bits);
            let range = qmax - qmin;
            if symmetric {
                let amax = min.abs().maximum(&max);
                QParams {
                    scale: round_scale(amax / (range / 2.0)),
                    zero_point: None,
                }
            } else {
                let scale = round_scale((&max - &min) / range);
                let zp = (-(&min / &scale).round() + qmin).clamp(qmin, qmax);
                QParams {
                    scale,
                    zero_point: Some(zp),
                }
            }
        }
    }
}

/// Quantize-dequantize `x` with `scale` / `zero_point` broadcastable to it (fp32 in and out).
pub fn fake_quantize(
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
    t: WeightType,
) -> Tensor {
    match t {
        WeightType::Int { bits } => {
            let (qmin, qmax) = int_range(bits);
            match zero_point {
                None => (x / scale).round().clamp(qmin, qmax) * scale,
                Some(zp) => (((x / scale).round() + zp).clamp(qmin, qmax) - zp) * scale,
            }
        }
        WeightType::Fp8E4M3 => {
            (x / scale)
                .clamp(-448.0, 448.0)
                .to_kind(Kind::Float8e4m3fn)
                .to_kind(Kind::Float)
                * scale
        }
    }
}

/// Codes of `x` with broadcastable `scale` / `zero_point`: Int8 (int types) or Float8e4m3fn.
pub fn quantize_codes(
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
    t: WeightType,
) -> Tensor {
    match t {
        WeightType::Int { bits } => {
            let (qmin, qmax) = int_range(bits);
            let q = (x / scale).round();
            let q = match zero_point {
                None => q,
                Some(zp) => q + zp,
            };
            q.clamp(qmin, qmax).to_kind(Kind::Int8)
        }
        WeightType::Fp8E4M3 => (x / scale).clamp(-448.0, 448.0).to_kind(Kind::Float8e4m3fn),
    }
}

/// Expand `[rows, G]` qparams to the `[out, in]` weight they describe. `g_idx` (`[in]` i64, the
/// group of every input column) overrides the contiguous grouping (act-order "group").
pub fn expand_qparam(
    p: &Tensor,
    strategy: Strategy,
    out: i64,
    inf: i64,
    g_idx: Option<&Tensor>,
) -> Tensor {
    match (strategy, g_idx) {
        (Strategy::Tensor, _) => p.reshape([1, 1]).expand([out, inf], false),
        (Strategy::Channel, _) => p.reshape([out, 1]).expand([out, inf], false),
        (Strategy::Group(_), Some(g)) => p.index_select(1, g),
        (Strategy::Group(g), None) => p.repeat_interleave_self_int(g as i64, 1, None),
    }
}

/// Min-max qparams of a `[out, in]` weight (`[rows, G]`).
pub fn minmax_qparams(
    w: &Tensor,
    t: WeightType,
    strategy: Strategy,
    symmetric: bool,
    scale_kind: Kind,
) -> QParams {
    let g = grouped(&w.to_kind(Kind::Float), strategy);
    let min = g.amin([2i64].as_slice(), false);
    let max = g.amax([2i64].as_slice(), false);
    calculate_qparams(&min, &max, t, symmetric, scale_kind)
}

/// Shape of the stored scale for `strategy`: `[1]`, `[out, 1]` or `[out, in/g]`.
pub fn stored_scale(p: &Tensor, strategy: Strategy, scale_kind: Kind) -> Tensor {
    let p = match strategy {
        Strategy::Tensor => p.reshape([1]),
        _ => p.shallow_clone(),
    };
    p.to_kind(scale_kind)
}

/// Round-to-nearest symmetric quantization of `w` `[out, in]` with min-max scales.
/// Callers check that the group size divides `in` (see `pipeline`).
pub fn quantize_rtn(
    w: &Tensor,
    t: WeightType,
    strategy: Strategy,
    scale_kind: Kind,
) -> QuantizedWeight {
    quantize_rtn_with(w, t, strategy, true, scale_kind)
}

/// Round-to-nearest quantization of `w` `[out, in]` with min-max qparams, symmetric or
/// asymmetric (zero points as compressed-tensors computes them, see the module doc).
pub fn quantize_rtn_with(
    w: &Tensor,
    t: WeightType,
    strategy: Strategy,
    symmetric: bool,
    scale_kind: Kind,
) -> QuantizedWeight {
    let w = w.to_kind(Kind::Float);
    let (out, inf) = (w.size()[0], w.size()[1]);
    let qp = minmax_qparams(&w, t, strategy, symmetric, scale_kind);
    let s = expand_qparam(&qp.scale, strategy, out, inf, None);
    let z = qp
        .zero_point
        .as_ref()
        .map(|z| expand_qparam(z, strategy, out, inf, None));
    QuantizedWeight {
        codes: quantize_codes(&w, &s, z.as_ref(), t),
        scale: stored_scale(&qp.scale, strategy, scale_kind),
        zero_point: qp
            .zero_point
            .as_ref()
            .map(|z| stored_scale(z, strategy, Kind::Float).to_kind(Kind::Int8)),
    }
}

/// Dequantize codes back to fp32 `[out, in]`.
pub fn dequantize(q: &QuantizedWeight, strategy: Strategy) -> Tensor {
    let (out, inf) = (q.codes.size()[0], q.codes.size()[1]);
    let codes = q.codes.to_kind(Kind::Float);
    let codes = match &q.zero_point {
        Some(z) => codes - expand_qparam(&z.to_kind(Kind::Float), strategy, out, inf, None),
        None => codes,
    };
    codes * expand_qparam(&q.scale.to_kind(Kind::Float), strategy, out, inf, None)
}
