//! The MSE observer's clipping search (see [`crate::observer`]) fused into one pass on the host:
//! for each group and each shrink candidate `p`, the candidate's scale (and zero point) and the
//! group's error `Σ |fake_quantize(x) - x|^norm`, without materialising the
//! `[candidates, rows, G, g]` temporaries of the tensor version. Same arithmetic as
//! [`crate::quantize::calculate_qparams`] and [`crate::quantize::fake_quantize`] in fp32, step by
//! step (candidate `p = 1 - c/grid`, ranges `p·min`, `p·max` clamped to include 0, scale rounded
//! through the scale dtype, `x / s` rounded half to even, clamped, rescaled); only the power and
//! the order of the sums differ from libtorch's (`|d|^norm` as `|d|^⌊norm⌋ · 2^(frac · log2|d|)`
//! with a relative error below 1e-6 for norms below 4, 1e-5 above; sums in 16 lanes). Powers past
//! fp32's range saturate near 2^127 instead of becoming infinite (weights are checked finite
//! before GPTQ). Groups wider than [`MAX_GROUP`] (per-tensor scales) take the tensor search.
//!
//! Source of the search: GPTQ reference code `quant.py::Quantizer.find_params(mse=True)`;
//! llm-compressor `observers/mse.py`.

use rayon::prelude::*;

/// How candidate scales are rounded (the checkpoint's scale dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleRound {
    F32,
    Bf16,
    F16,
}

/// One integer grid and search.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// Integer range `[qmin, qmax]` (e.g. -8, 7 for int4).
    pub qmin: f32,
    pub qmax: f32,
    pub symmetric: bool,
    pub round: ScaleRound,
    /// Candidates `c = 0 .. steps`, `p = 1 - c / grid`.
    pub grid: f32,
    pub steps: usize,
    /// Error exponent (2.4 in the paper-era search).
    pub norm: f32,
}

/// Best candidate index per group (the first with the least error), for `x` `[groups, g]`
/// row-major fp32 and the groups' `min`/`max` `[groups]`.
///
/// # Panics
/// When `x.len() != min.len() * g` or `min.len() != max.len()` (caller's shapes).
pub fn best_candidates(x: &[f32], g: usize, min: &[f32], max: &[f32], s: &Search) -> Vec<i64> {
    assert_eq!(min.len(), max.len());
    assert_eq!(x.len(), min.len() * g);
    let mut best = vec![0i64; min.len()];
    best.par_chunks_mut(LANES).enumerate().for_each(|(b, out)| {
        let g0 = b * LANES;
        // The block's groups transposed, `xt[j][lane]`; missing lanes repeat the last group.
        let mut xt = vec![[0f32; LANES]; g];
        let mut mn = [0f32; LANES];
        let mut mx = [0f32; LANES];
        for lane in 0..LANES {
            let gi = g0 + lane.min(out.len() - 1);
            for (j, row) in xt.iter_mut().enumerate() {
                row[lane] = x[gi * g + j];
            }
            mn[lane] = min[gi];
            mx[lane] = max[gi];
        }
        let picked = dispatch(&xt, &mn, &mx, s);
        for (o, &c) in out.iter_mut().zip(&picked) {
            *o = c as i64;
        }
    });
    best
}

/// The widest group searched here: a block copies `16 × g` floats (per-tensor scales of a large
/// Linear would copy gigabytes for one group).
pub const MAX_GROUP: usize = 1 << 16;

/// Groups searched together, one per vector lane.
const LANES: usize = 16;
type Lanes = [f32; LANES];

fn dispatch(xt: &[Lanes], mn: &Lanes, mx: &Lanes, s: &Search) -> [u32; LANES] {
    // The integer part of the exponent as a constant, so that the inner loop has no inner loop.
    match s.norm.floor() as i32 {
        0 => dispatch_isa::<0>(xt, mn, mx, s),
        1 => dispatch_isa::<1>(xt, mn, mx, s),
        2 => dispatch_isa::<2>(xt, mn, mx, s),
        3 => dispatch_isa::<3>(xt, mn, mx, s),
        _ => dispatch_isa::<-1>(xt, mn, mx, s),
    }
}

fn dispatch_isa<const W: i32>(xt: &[Lanes], mn: &Lanes, mx: &Lanes, s: &Search) -> [u32; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the features are present.
            return unsafe { block_avx512::<W>(xt, mn, mx, s) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features are present.
            return unsafe { block_avx2::<W>(xt, mn, mx, s) };
        }
    }
    block::<W>(xt, mn, mx, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn block_avx512<const W: i32>(
    xt: &[Lanes],
    mn: &Lanes,
    mx: &Lanes,
    s: &Search,
) -> [u32; LANES] {
    block::<W>(xt, mn, mx, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const W: i32>(
    xt: &[Lanes],
    mn: &Lanes,
    mx: &Lanes,
    s: &Search,
) -> [u32; LANES] {
    block::<W>(xt, mn, mx, s)
}

/// The search over [`LANES`] groups at once, one per lane (inlined into each instruction-set
/// variant); `W` is `⌊norm⌋`, or -1 for exponents of 4 and more (then the power is one
/// `exp2(norm · log2 d)`). Each group's error is summed over its elements in order.
#[inline(always)]
fn block<const W: i32>(xt: &[Lanes], mn: &Lanes, mx: &Lanes, s: &Search) -> [u32; LANES] {
    let range = s.qmax - s.qmin;
    let frac = if W < 0 { s.norm } else { s.norm - W as f32 };
    let mut best_err = [f32::INFINITY; LANES];
    let mut best = [0u32; LANES];
    for c in 0..s.steps {
        let p = -(c as f32) / s.grid + 1.0;
        let mut scale = [0f32; LANES];
        let mut zp = [0f32; LANES];
        for l in 0..LANES {
            let lo = (mn[l] * p).min(0.0);
            let hi = (mx[l] * p).max(0.0);
            if s.symmetric {
                scale[l] = round_scale(lo.abs().max(hi) / (range / 2.0), s.round);
            } else {
                scale[l] = round_scale((hi - lo) / range, s.round);
                zp[l] = (-(lo / scale[l]).round_ties_even() + s.qmin)
                    .max(s.qmin)
                    .min(s.qmax);
            }
        }
        let mut err = [0f32; LANES];
        for row in xt {
            for l in 0..LANES {
                err[l] += err_pow::<W>(row[l], scale[l], zp[l], s.qmin, s.qmax, frac);
            }
        }
        for l in 0..LANES {
            if err[l] < best_err[l] {
                best_err[l] = err[l];
                best[l] = c as u32;
            }
        }
    }
    best
}

/// `|fake_quantize(v) - v|^(W + frac)` (`W = -1`: `^frac`).
#[inline(always)]
fn err_pow<const W: i32>(v: f32, scale: f32, zp: f32, qmin: f32, qmax: f32, frac: f32) -> f32 {
    let q = (((v / scale).round_ties_even() + zp).max(qmin).min(qmax) - zp) * scale;
    let d = (q - v).abs();
    let mut r = if frac == 0.0 {
        1.0
    } else {
        exp2(frac * log2(d))
    };
    if W >= 1 {
        r *= d;
    }
    if W >= 2 {
        r *= d;
    }
    if W >= 3 {
        r *= d;
    }
    if d == 0.0 {
        0.0
    } else {
        r
    }
}

/// `max(s, eps)` rounded to the scale dtype and back (compressed-tensors' `calculate_qparams`).
#[inline(always)]
fn round_scale(s: f32, r: ScaleRound) -> f32 {
    let s = s.max(f32::EPSILON);
    match r {
        ScaleRound::F32 => s,
        ScaleRound::Bf16 => {
            let u = s.to_bits();
            f32::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1))) & 0xffff_0000)
        }
        ScaleRound::F16 => f32::from(half::f16::from_f32(s)),
    }
}

/// `log2(a)` for finite `a > 0` (the series' error is below 1e-9; the result carries the fp32
/// rounding of `exponent + log2(mantissa)`, up to 2^-24 · |log2 a|; denormals give a finite
/// value below -126): exponent plus `2/ln 2 · atanh(z)`, `z = (m - 1)/(m + 1)`, `m ∈ [√½, √2)`.
#[inline(always)]
fn log2(a: f32) -> f32 {
    let bits = a.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    // 2·(z + z³/3 + z⁵/5 + z⁷/7 + z⁹/9), |z| ≤ 0.1716: truncation below 4e-10.
    // Horner steps as fused multiply-adds (one rounding each, half the latency).
    let poly = z2
        .mul_add(1.0 / 9.0, 1.0 / 7.0)
        .mul_add(z2, 1.0 / 5.0)
        .mul_add(z2, 1.0 / 3.0)
        .mul_add(z2, 1.0);
    let ln = 2.0 * z * poly;
    ln.mul_add(std::f32::consts::LOG2_E, e as f32)
}

/// `2^y` (relative error < 3e-7 for `-126 ≤ y ≤ 127`; 0 below -126.5, `y` above 127 taken as 127).
#[inline(always)]
fn exp2(y: f32) -> f32 {
    let y = y.clamp(-127.0, 127.0);
    let n = y.round_ties_even();
    let f = (y - n) * std::f32::consts::LN_2; // |f| ≤ 0.347
                                              // e^f by its Taylor series to f⁷/7! (truncation below 3e-9).
    let p = f
        .mul_add(1.0 / 5040.0, 1.0 / 720.0)
        .mul_add(f, 1.0 / 120.0)
        .mul_add(f, 1.0 / 24.0)
        .mul_add(f, 1.0 / 6.0)
        .mul_add(f, 1.0 / 2.0)
        .mul_add(f, 1.0)
        .mul_add(f, 1.0);
    // 2^n from the bits of `n + 127 + 2^23` (exact for integral |n| ≤ 127; a float-to-int `as`
    // would not vectorise).
    let biased = (n + (127.0 + 8_388_608.0)).to_bits() & 0x00ff;
    let scale = if n < -126.0 {
        0.0
    } else {
        f32::from_bits(biased << 23)
    };
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_agrees_with_f64_powf() {
        let mut worst = 0f64;
        let mut v = 1e-12f32;
        while v < 1e6 {
            // (exponent as the kernel sees it: W + the fp32 fraction, result, tolerance); the
            // whole exponent as `exp2(norm · log2 d)` (norms ≥ 4) carries the rounding of the
            // product, up to 2^-24 · |norm · log2 d| · ln 2.
            for (norm, got, tol) in [
                (
                    2.0 + 0.4f32 as f64,
                    err_pow::<2>(v, 1e30, 0.0, -8.0, 7.0, 0.4),
                    1e-6,
                ),
                (2.0, err_pow::<2>(v, 1e30, 0.0, -8.0, 7.0, 0.0), 1e-6),
                (1.0, err_pow::<1>(v, 1e30, 0.0, -8.0, 7.0, 0.0), 1e-6),
                (0.5, err_pow::<0>(v, 1e30, 0.0, -8.0, 7.0, 0.5), 1e-6),
                (
                    3.0 + 0.7f32 as f64,
                    err_pow::<3>(v, 1e30, 0.0, -8.0, 7.0, 0.7),
                    1e-6,
                ),
                (4.5, err_pow::<-1>(v, 1e30, 0.0, -8.0, 7.0, 4.5), 1e-5),
            ] {
                // v / 1e30 rounds to 0, so q = 0 and d = v.
                let want = (v as f64).powf(norm);
                if !(1e-36..1e36).contains(&want) {
                    // Outside fp32's normal range: only finite and not negative.
                    assert!(got.is_finite() && got >= 0.0, "{v}^{norm} = {got}");
                    continue;
                }
                let rel = (got as f64 - want).abs() / want;
                assert!(rel < tol, "{v}^{norm}: {got} against {want}");
                if tol < 1e-5 {
                    worst = worst.max(rel);
                }
            }
            v *= 1.37;
        }
        assert!(worst < 1e-6, "relative error {worst}");
        assert_eq!(err_pow::<2>(0.5, 0.25, 0.0, -8.0, 7.0, 0.4), 0.0);
    }

    #[test]
    fn scale_rounding_is_round_half_to_even() {
        // The last two are halfway between two bf16 values (1 + 2^-8, 1 + 3 * 2^-8).
        for v in [
            1.0f32,
            0.1,
            3.3e-5,
            1234.5678,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
        ] {
            assert_eq!(
                round_scale(v, ScaleRound::Bf16),
                f32::from(half::bf16::from_f32(v))
            );
        }
        assert_eq!(round_scale(0.0, ScaleRound::F32), f32::EPSILON);
    }
}
