//! Weight observers: how the scale (and zero point) of each row / group is chosen.
//!
//! - **min-max**: the group's min and max (llm-compressor `memoryless_minmax`).
//! - **MSE** (GPTQ paper code `quant.py::Quantizer.find_params(mse=True)`; llm-compressor
//!   `observers/mse.py`): try the shrunk ranges `p·[min, max]` for `p = 1 - i/grid`,
//!   `i = 0 .. ⌊max_shrink · grid⌋`, fake-quantize the group with each, and keep per group the
//!   range with the least `Σ |x̂ - x|^norm`. With `patience = Some(k)` the search stops after `k`
//!   candidates in a row improve no group (today's peer default); `None` tries every candidate
//!   (the paper-era search: grid 100, max-shrink 0.80, norm 2.4, §3.2 "MSE-optimal clipping").
//!
//! Input: a grouped weight `[rows, G, g]` fp32 (see [`crate::quantize::grouped`]); output qparams
//! `[rows, G]`. Candidates are evaluated in chunks so that at most ~32 M elements are live at once.

use crate::mse_kernel::{best_candidates, ScaleRound, Search};
use crate::quantize::{calculate_qparams, fake_quantize, QParams};
use crate::scheme::WeightType;
use tch::{Kind, Tensor};

/// Which observer picks the weight qparams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observer {
    /// Plain min-max.
    MinMax,
    /// Clipping search minimising the `norm`-power error.
    Mse {
        grid: f64,
        max_shrink: f64,
        norm: f64,
        patience: Option<usize>,
    },
}

impl Observer {
    /// The paper-era MSE search (GPTQ reference code as used for the paper's W4A16 models):
    /// grid 100, max-shrink 0.80, norm 2.4, no early stop.
    pub const MSE_PAPER: Observer = Observer::Mse {
        grid: 100.0,
        max_shrink: 0.80,
        norm: 2.4,
        patience: None,
    };
    /// llm-compressor's current `mse` observer defaults: grid 100, max-shrink 0.20, norm 2.4,
    /// patience 5.
    pub const MSE_PEER: Observer = Observer::Mse {
        grid: 100.0,
        max_shrink: 0.20,
        norm: 2.4,
        patience: Some(5),
    };

    /// The name written to `quantization_config.weights.observer`.
    pub fn name(&self) -> &'static str {
        match self {
            Observer::MinMax => "memoryless_minmax",
            Observer::Mse { .. } => "memoryless_mse",
        }
    }

    /// qparams `[rows, G]` for the grouped weight `x` `[rows, G, g]`.
    pub fn qparams(&self, x: &Tensor, t: WeightType, symmetric: bool, scale_kind: Kind) -> QParams {
        let x = x.to_kind(Kind::Float);
        let min = x.amin([2i64].as_slice(), false);
        let max = x.amax([2i64].as_slice(), false);
        match *self {
            Observer::MinMax => calculate_qparams(&min, &max, t, symmetric, scale_kind),
            Observer::Mse {
                grid,
                max_shrink,
                norm,
                patience,
            } => mse_search(
                &x, &min, &max, t, symmetric, scale_kind, grid, max_shrink, norm, patience,
            ),
        }
    }
}

/// Elements (candidates x rows x group) per slice of the host MSE search: 2 MiB of fp32 per
/// temporary, which stays in a core's L2/L3.
const HOST_CHUNK_ELEMENTS: i64 = 1 << 19;

#[allow(clippy::too_many_arguments)]
fn mse_search(
    x: &Tensor,
    min: &Tensor,
    max: &Tensor,
    t: WeightType,
    symmetric: bool,
    scale_kind: Kind,
    grid: f64,
    max_shrink: f64,
    norm: f64,
    patience: Option<usize>,
) -> QParams {
    let steps = ((max_shrink * grid) as i64).max(1);
    // On the host, the exhaustive search (no early stop) for integer grids runs fused, group by
    // group ([`crate::mse_kernel`]): the same candidates and arithmetic without the
    // `[candidates, rows, G, g]` temporaries, about 6x faster on 2 cores.
    let round = match scale_kind {
        Kind::Float => Some(ScaleRound::F32),
        Kind::BFloat16 => Some(ScaleRound::Bf16),
        Kind::Half => Some(ScaleRound::F16),
        _ => None,
    };
    let g = *x.size().last().unwrap_or(&1);
    if let (None, tch::Device::Cpu, WeightType::Int { bits }, Some(round), true) = (
        patience,
        x.device(),
        t,
        round,
        g as usize <= crate::mse_kernel::MAX_GROUP,
    ) {
        let (qmin, qmax) = crate::quantize::int_range(bits);
        let search = Search {
            qmin: qmin as f32,
            qmax: qmax as f32,
            symmetric,
            round,
            grid: grid as f32,
            steps: steps as usize,
            norm: norm as f32,
        };
        let host = |t: &Tensor| Vec::<f32>::try_from(t.contiguous().view([-1]));
        if let (Ok(xs), Ok(mins), Ok(maxs)) = (host(x), host(min), host(max)) {
            let best = best_candidates(&xs, g as usize, &mins, &maxs, &search);
            let best = Tensor::from_slice(&best).view(min.size().as_slice());
            return candidate_qparams(&best, min, max, grid, t, symmetric, scale_kind);
        }
    }
    mse_search_tensors(
        x, min, max, t, symmetric, scale_kind, grid, max_shrink, norm, patience,
    )
}

/// The search as tensor operations (any device, dtype and early stop).
#[allow(clippy::too_many_arguments)]
fn mse_search_tensors(
    x: &Tensor,
    min: &Tensor,
    max: &Tensor,
    t: WeightType,
    symmetric: bool,
    scale_kind: Kind,
    grid: f64,
    max_shrink: f64,
    norm: f64,
    patience: Option<usize>,
) -> QParams {
    let steps = ((max_shrink * grid) as i64).max(1);
    // On the host, rows are searched a slice at a time, so that every candidate's temporaries
    // stay in cache (about 5x faster on 2 cores than one pass over the whole weight). Rows are
    // independent and each row's arithmetic is unchanged, so the result is identical. The early
    // stop (`patience`) is global over rows and keeps the single pass.
    let rows = x.size()[0];
    let per_row = steps * (x.numel() as i64 / rows.max(1));
    if patience.is_none() && x.device() == tch::Device::Cpu && rows > 1 && per_row > 0 {
        let rc = (HOST_CHUNK_ELEMENTS / per_row).clamp(1, rows);
        if rc < rows {
            let parts: Vec<QParams> = (0..rows)
                .step_by(rc as usize)
                .map(|r0| {
                    let n = rc.min(rows - r0);
                    mse_search_tensors(
                        &x.narrow(0, r0, n),
                        &min.narrow(0, r0, n),
                        &max.narrow(0, r0, n),
                        t,
                        symmetric,
                        scale_kind,
                        grid,
                        max_shrink,
                        norm,
                        None,
                    )
                })
                .collect();
            let scales: Vec<&Tensor> = parts.iter().map(|q| &q.scale).collect();
            let zps: Option<Vec<&Tensor>> = parts.iter().map(|q| q.zero_point.as_ref()).collect();
            return QParams {
                scale: Tensor::cat(&scales, 0),
                zero_point: zps.map(|z| Tensor::cat(&z, 0)),
            };
        }
    }
    let numel = x.numel().max(1) as i64;
    let chunk = (32_000_000 / numel).clamp(1, steps);
    let dev = x.device();
    // errs[c] = per-group error of candidate c, [C, rows, G]
    let mut errs: Vec<Tensor> = Vec::new();
    let mut c0 = 0;
    let mut best_so_far: Option<Tensor> = None;
    let mut no_improve = 0usize;
    'outer: while c0 < steps {
        let c1 = (c0 + chunk).min(steps);
        let p = (-Tensor::arange_start(c0, c1, (Kind::Float, dev)) / grid + 1.0).view([-1, 1, 1]);
        let mins = min.unsqueeze(0) * &p; // [C, rows, G]
        let maxs = max.unsqueeze(0) * &p;
        let qp = calculate_qparams(&mins, &maxs, t, symmetric, scale_kind);
        let s = qp.scale.unsqueeze(-1);
        let zp = qp.zero_point.as_ref().map(|z| z.unsqueeze(-1));
        let xq = fake_quantize(&x.unsqueeze(0), &s, zp.as_ref(), t);
        let e = (xq - x.unsqueeze(0))
            .abs()
            .pow_tensor_scalar(norm)
            .sum_dim_intlist([3i64].as_slice(), false, Kind::Float);
        if let Some(k) = patience {
            // Replay the sequential early stop candidate by candidate.
            for c in 0..(c1 - c0) {
                let ec = e.get(c);
                let improved = match &best_so_far {
                    None => true,
                    Some(b) => bool::try_from(ec.lt_tensor(b).any()).unwrap_or(false),
                };
                errs.push(ec.shallow_clone());
                best_so_far = Some(match &best_so_far {
                    None => ec,
                    Some(b) => b.minimum(&ec),
                });
                if improved {
                    no_improve = 0;
                } else {
                    no_improve += 1;
                    if no_improve >= k {
                        break 'outer;
                    }
                }
            }
        } else {
            errs.push(e);
        }
        c0 = c1;
    }
    let all = if patience.is_some() {
        Tensor::stack(&errs, 0)
    } else {
        Tensor::cat(&errs, 0)
    };
    // First candidate with the least error (strict `<` in the peers keeps the earliest).
    let best = all.argmin(0, false); // [rows, G] i64 in 0..C
    candidate_qparams(&best, min, max, grid, t, symmetric, scale_kind)
}

/// The qparams of each group's chosen candidate `best` (`[rows, G]` i64): the range
/// `p·[min, max]`, `p = 1 - best/grid`.
fn candidate_qparams(
    best: &Tensor,
    min: &Tensor,
    max: &Tensor,
    grid: f64,
    t: WeightType,
    symmetric: bool,
    scale_kind: Kind,
) -> QParams {
    let p = (-best.to_kind(Kind::Float) / grid) + 1.0;
    calculate_qparams(&(min * &p), &(max * &p), t, symmetric, scale_kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused host search picks the tensor version's candidate, symmetric and asymmetric, with
    /// bf16 and fp32 scales (int4 groups of 64 with outliers, and int8 channels).
    #[test]
    fn fused_host_search_agrees_with_the_tensor_search() {
        tch::manual_seed(11);
        let w = Tensor::randn([300, 4 * 64], (Kind::Float, tch::Device::Cpu)) * 0.02;
        let _ = w.narrow(1, 3, 2).narrow(0, 0, 60).g_mul_scalar_(8.0);
        let _ = w.narrow(1, 70, 64).g_add_scalar_(0.01);
        for (t, g, symmetric, kind) in [
            (WeightType::Int { bits: 4 }, 64, true, Kind::BFloat16),
            (WeightType::Int { bits: 4 }, 64, false, Kind::BFloat16),
            (WeightType::Int { bits: 4 }, 64, false, Kind::Float),
            (WeightType::Int { bits: 8 }, 256, true, Kind::BFloat16),
        ] {
            let x = w.view([300, 256 / g, g]);
            let fused = Observer::MSE_PAPER.qparams(&x, t, symmetric, kind);
            let min = x.amin([2i64].as_slice(), false);
            let max = x.amax([2i64].as_slice(), false);
            let tensors =
                mse_search_tensors(&x, &min, &max, t, symmetric, kind, 100.0, 0.8, 2.4, None);
            let differ =
                i64::try_from(fused.scale.ne_tensor(&tensors.scale).sum(Kind::Int64)).unwrap();
            let total = fused.scale.numel() as i64;
            // A different pick needs two candidates within the power's 1e-6 of each other.
            assert!(
                differ * 200 <= total,
                "{t:?} g{g} sym {symmetric}: {differ} of {total} scales differ"
            );
            let clipped = i64::try_from(
                fused
                    .scale
                    .lt_tensor(&calculate_qparams(&min, &max, t, symmetric, kind).scale)
                    .sum(Kind::Int64),
            )
            .unwrap();
            assert!(
                clipped > total / 10,
                "{t:?} g{g}: only {clipped} of {total} groups clipped"
            );
            if !symmetric {
                let zdiff = i64::try_from(
                    fused
                        .zero_point
                        .as_ref()
                        .unwrap()
                        .ne_tensor(tensors.zero_point.as_ref().unwrap())
                        .sum(Kind::Int64),
                )
                .unwrap();
                assert!(
                    zdiff * 200 <= total,
                    "{zdiff} of {total} zero points differ"
                );
            }
        }
    }
}
