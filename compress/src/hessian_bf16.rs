//! `H += XᵀX` for bf16 calibration inputs on x86-64 CPUs with AVX-512 BF16 (`VDPBF16PS`): exact
//! bf16 products, fp32 sums, without widening `X` to fp32 first.
//!
//! GPTQ's Hessian (Frantar et al. 2022, §3.1: `H = 2XXᵀ`; llm-compressor
//! `modifiers/quantization/gptq/gptq_quantize.py::accumulate_hessian`, which widens the inputs to
//! fp32 and calls `matmul`) is the largest cost of GPTQ calibration on a CPU. libtorch on the CPU
//! has no bf16-in, fp32-out matrix product (MKL's `gemm_bf16bf16f32` widens internally and runs at
//! fp32 speed on AMD), so fp32 `sgemm` bounds it at the CPU's fp32 FMA rate. `VDPBF16PS` computes,
//! in each of 16 fp32 lanes, `acc += a₀b₀ + a₁b₁` over a pair of bf16 values, twice the fp32 FMA
//! rate; a bf16 product is exact in fp32 (8-bit × 8-bit significands), so the result is the fp32
//! sum of the exact products, as with the widened `sgemm` (up to the order of the sums).
//!
//! Layout. Tokens are taken two at a time: a chunk of `X` `[tokens, n]` (bf16, row-major) is
//! packed into `P` `[pairs, stride]` of u32, `P[p][j] = X[2p][j] | X[2p+1][j] << 16` (an odd last
//! token is paired with zeros, columns past `n` are zeros). The micro-kernel computes a tile of
//! [`MR`] rows × [`NR`] columns of `H`: for each pair, [`NR`]`/16` vector loads of `P[p][j0..]`
//! and [`MR`] broadcasts of `P[p][i]`, one `VDPBF16PS` per (row, vector). Only tiles that reach
//! the upper triangle (`j0 + NR > i0`) are computed; [`crate::gptq::Hessian::finish`] mirrors
//! the upper triangle. Column strips of `H` are independent and run in parallel (rayon).
//!
//! Denormal bf16 inputs (|x| < 1.2e-38) count as zero and denormal sums are flushed to zero (the
//! instruction's DAZ/FTZ behaviour).

use rayon::prelude::*;

/// Rows of `H` per micro-kernel tile.
pub const MR: usize = 8;
/// Columns of `H` per micro-kernel tile (three 16-lane vectors; 8 × 3 accumulators).
pub const NR: usize = 48;
/// Token pairs per packed chunk: a strip's `P` panel is `KC × NR × 4` bytes = 96 KiB, resident
/// in L2 while the strip's row tiles reuse it. (Measured on 2 Zen 4 cores, 65536 tokens: 64 pairs
/// 0.69 s, 128 pairs 0.48 s, 512 pairs 0.42 s for 1536 inputs, with 8 × 48 tiles; 6 × 64, 4 × 96,
/// 12 × 32 and 7 × 64 tiles were 3-7% slower.)
const KC: usize = 512;

/// Whether this CPU runs [`accumulate`] (AVX-512 F and BF16, detected at run time).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `h[i][j] += Σ_t x[t][i] · x[t][j]` for every `i ≤ j` (entries below the diagonal may also
/// be written, with the same sums).
///
/// - `x`: `[tokens, n]` row-major bf16 bit patterns (`tokens = x.len() / n`).
/// - `h`: `[n, n]` row-major fp32, accumulated into.
///
/// Returns `false` (and leaves `h` untouched) when the CPU lacks AVX-512 BF16 ([`available`]);
/// the caller then takes the widened fp32 product.
///
/// # Panics
/// When `x.len()` is not a multiple of `n` or `h.len() != n * n` (caller's shapes).
pub fn accumulate(x: &[u16], n: usize, h: &mut [f32]) -> bool {
    assert!(n > 0 && x.len().is_multiple_of(n), "x is not [tokens, {n}]");
    assert_eq!(h.len(), n * n, "h is not [{n}, {n}]");
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let tokens = x.len() / n;
        let n_pad = n.div_ceil(NR) * NR;
        // Room for the last row tile's broadcasts past `n_pad`.
        let stride = n_pad + MR;
        let mut packed = vec![0u32; KC * stride];
        let strips = n_pad / NR;
        let hp = SendPtr(h.as_mut_ptr());
        let mut t0 = 0;
        while t0 < tokens {
            let count = (tokens - t0).min(2 * KC);
            let pairs = count.div_ceil(2);
            pack(
                &x[t0 * n..(t0 + count) * n],
                n,
                stride,
                &mut packed[..pairs * stride],
            );
            let p = &packed[..pairs * stride];
            // Strips in reverse: the widest (most row tiles) start first.
            (0..strips).into_par_iter().rev().for_each(|s| {
                let j0 = s * NR;
                let cols = NR.min(n - j0.min(n));
                if cols == 0 {
                    return;
                }
                let h = hp.get();
                let mut i0 = 0;
                while i0 < (j0 + NR).min(n) {
                    let rows = MR.min(n - i0);
                    // SAFETY: the CPU has AVX-512 F and BF16 (checked above); `p` holds `pairs`
                    // rows of `stride ≥ i0 + MR` and `≥ j0 + NR` u32; the strip's columns
                    // `j0..j0 + cols` of `h` are written by this task alone.
                    unsafe { tile(p, pairs, stride, i0, j0, rows, cols, n, h) };
                    i0 += MR;
                }
            });
            t0 += count;
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, h);
        false
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column strips of `h` (see `accumulate`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Pack `x` `[count, n]` into `out` `[count/2 rounded up, stride]`, pairs of tokens interleaved.
fn pack(x: &[u16], n: usize, stride: usize, out: &mut [u32]) {
    let count = x.len() / n;
    out.par_chunks_mut(stride).enumerate().for_each(|(p, row)| {
        let a = &x[2 * p * n..(2 * p + 1) * n];
        if 2 * p + 1 < count {
            let b = &x[(2 * p + 1) * n..(2 * p + 2) * n];
            for ((o, &lo), &hi) in row.iter_mut().zip(a).zip(b) {
                *o = lo as u32 | (hi as u32) << 16;
            }
        } else {
            for (o, &lo) in row.iter_mut().zip(a) {
                *o = lo as u32;
            }
        }
        for o in &mut row[n..] {
            *o = 0;
        }
    });
}

/// One `MR × NR` tile of `h` (`rows ≤ MR`, `cols ≤ NR` of it stored) over `pairs` packed pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    p: &[u32],
    pairs: usize,
    stride: usize,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
    n: usize,
    h: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NR / 16]; MR];
    let base = p.as_ptr();
    for k in 0..pairs {
        let row = base.add(k * stride);
        let b: [__m512bh; NR / 16] = std::array::from_fn(|v| {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                row.add(j0 + 16 * v) as *const _
            ))
        });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let a = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                *row.add(i0 + r) as i32
            ));
            for v in 0..NR / 16 {
                acc_r[v] = _mm512_dpbf16_ps(acc_r[v], a, b[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        let dst = h.add((i0 + r) * n + j0);
        for (v, &a) in acc_r.iter().enumerate() {
            let c0 = 16 * v;
            if c0 >= cols {
                break;
            }
            let m: __mmask16 = if cols - c0 >= 16 {
                0xffff
            } else {
                ((1u32 << (cols - c0)) - 1) as u16
            };
            let old = _mm512_maskz_loadu_ps(m, dst.add(c0));
            _mm512_mask_storeu_ps(dst.add(c0), m, _mm512_add_ps(old, a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(f: f32) -> u16 {
        // Round to nearest even (finite inputs).
        let u = f.to_bits();
        ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
    }

    /// Against an f64 sum of the same bf16 values, for an odd token count and widths that are not
    /// multiples of the tile (tails in rows and columns).
    #[test]
    fn matches_an_f64_sum_of_the_bf16_products() {
        if !available() {
            eprintln!("no AVX-512 BF16 on this CPU: accumulate must decline");
            let mut h = vec![0f32; 9];
            assert!(!accumulate(&[0u16; 9], 3, &mut h));
            return;
        }
        for &(tokens, n) in &[(301usize, 100usize), (257, 64), (3, 7), (600, 130)] {
            let mut s = 0x2545F491u64;
            let x: Vec<u16> = (0..tokens * n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    bf16(((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0)
                })
                .collect();
            let xf: Vec<f64> = x
                .iter()
                .map(|&b| f32::from_bits((b as u32) << 16) as f64)
                .collect();
            let mut h = vec![1.5f32; n * n];
            assert!(accumulate(&x, n, &mut h));
            let mut worst = 0f64;
            for i in 0..n {
                for j in i..n {
                    let exact: f64 = 1.5
                        + (0..tokens)
                            .map(|t| xf[t * n + i] * xf[t * n + j])
                            .sum::<f64>();
                    let abs: f64 = (0..tokens)
                        .map(|t| (xf[t * n + i] * xf[t * n + j]).abs())
                        .sum::<f64>();
                    let err = (h[i * n + j] as f64 - exact).abs() / (abs + 1.5);
                    worst = worst.max(err);
                }
            }
            // fp32 sums of `tokens` terms: a few units of 2^-24 per term at most.
            assert!(
                worst < 1e-6 * (tokens as f64).sqrt().max(1.0),
                "tokens {tokens} n {n}: relative error {worst}"
            );
            // The diagonal of a sum of squares with these inputs is far from zero: the kernel
            // did write it.
            assert!(
                h[0] > 10.0 && h[(n - 1) * n + n - 1] > 10.0,
                "{} {}",
                h[0],
                h[n * n - 1]
            );
        }
    }
}
