//! The inner GPTQ column sweep of one block on the host (Frantar et al. 2022, Algorithm 1, the
//! loop over the columns of a block; llm-compressor `gptq_quantize.py`, the `for i in
//! range(count)` loop). Rows are independent given `Hinv`, so they run in parallel (rayon); each
//! row walks the block's columns in order:
//!
//! ```text
//! q_i  = fake_quantize(w_i)                   (the column's scale / zero point, integer grid)
//! e_i  = (q_i - w_i) / Hinv[i, i]             (stored negated, as the lazy update adds it)
//! w_j += e_i · Hinv[i, j]   for j > i in the block
//! ```
//!
//! The default on the CPU. On a GPU it would replace ~9 small kernels per column by one copy of
//! the block to the host and back (`QUANTLAB_GPTQ_HOST_SWEEP=1`), but the CUDA-graph replay of
//! the tensor loop is faster there (see `gptq::host_sweep_enabled`); the lazy batch update of the
//! columns after the block stays a matrix product on the device. The arithmetic is the same as
//! [`crate::quantize::fake_quantize`]'s for integer types: `x / scale`, round half to even,
//! clamp to the integer range, then `(q - zp) · scale`.

use rayon::prelude::*;

/// f32 or f64 arithmetic for the sweep.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
{
    fn from_f64(x: f64) -> Self;
    fn round_ties_even(self) -> Self;
}

impl Real for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn round_ties_even(self) -> Self {
        f32::round_ties_even(self)
    }
}

impl Real for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn round_ties_even(self) -> Self {
        f64::round_ties_even(self)
    }
}

/// One block of the sweep.
///
/// - `w1`: `[rows, n]` row-major, the block's current weights; updated in place by the in-block
///   error feedback (its final values are not needed by the caller).
/// - `hinv1`: `[n, n]` row-major, the block of the upper Cholesky factor of `H⁻¹`.
/// - `scale`, `zp`: `[rows, k]` row-major qparams of the `k` groups the block touches; column `i`
///   uses group `col_g[i]` (`< k`). `zp` is `None` for symmetric quantization.
/// - `qmin`, `qmax`: the integer range.
/// - `q1`, `err1`: `[rows, n]` outputs, the fake-quantized columns and the negated scaled errors
///   `(q - w) / Hinv[i, i]`.
#[allow(clippy::too_many_arguments)]
pub fn sweep_block<T: Real>(
    w1: &mut [T],
    hinv1: &[T],
    n: usize,
    scale: &[T],
    zp: Option<&[T]>,
    k: usize,
    col_g: &[usize],
    qmin: f64,
    qmax: f64,
    q1: &mut [T],
    err1: &mut [T],
) {
    let (lo, hi) = (T::from_f64(qmin), T::from_f64(qmax));
    let rows = w1.len() / n.max(1);
    // Enough rows per task to amortise scheduling; a few tasks per thread.
    let per = (rows / (rayon::current_num_threads() * 4)).clamp(8, 1024);
    let ctx = Rows {
        hinv1,
        n,
        scale,
        zp,
        k,
        col_g,
        lo,
        hi,
    };
    w1.par_chunks_mut(n * per)
        .zip(q1.par_chunks_mut(n * per))
        .zip(err1.par_chunks_mut(n * per))
        .enumerate()
        .for_each(|(c, ((w, q), e))| {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature is present.
                unsafe { rows_avx512(&ctx, c * per, w, q, e) };
                return;
            }
            sweep_rows(&ctx, c * per, w, q, e);
        });
}

/// What every row of a block shares.
struct Rows<'a, T> {
    hinv1: &'a [T],
    n: usize,
    scale: &'a [T],
    zp: Option<&'a [T]>,
    k: usize,
    col_g: &'a [usize],
    lo: T,
    hi: T,
}

/// [`sweep_rows`] compiled for AVX-512 (wider vectors for the in-block update; no fused multiply-adds
/// are formed, so the results are bit-identical).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512<T: Real>(ctx: &Rows<T>, first: usize, w: &mut [T], q: &mut [T], e: &mut [T]) {
    sweep_rows(ctx, first, w, q, e)
}

/// Sweep the rows `first..` held in `w`, `q`, `e` (`[rows, n]` each).
#[inline(always)]
fn sweep_rows<T: Real>(ctx: &Rows<T>, first: usize, w: &mut [T], q: &mut [T], e: &mut [T]) {
    let Rows {
        hinv1,
        n,
        scale,
        zp,
        k,
        col_g,
        lo,
        hi,
    } = *ctx;
    for (r, ((w, q), e)) in w
        .chunks_mut(n)
        .zip(q.chunks_mut(n))
        .zip(e.chunks_mut(n))
        .enumerate()
    {
        let row = first + r;
        let s_row = &scale[row * k..(row + 1) * k];
        let z_row = zp.map(|z| &z[row * k..(row + 1) * k]);
        for i in 0..n {
            let g = col_g[i];
            let s = s_row[g];
            let x = w[i];
            let mut v = (x / s).round_ties_even();
            let qi = match z_row {
                None => clamp(v, lo, hi) * s,
                Some(z) => {
                    v += z[g];
                    (clamp(v, lo, hi) - z[g]) * s
                }
            };
            q[i] = qi;
            let ei = (qi - x) / hinv1[i * n + i];
            e[i] = ei;
            let h = &hinv1[i * n + i + 1..(i + 1) * n];
            for (wj, &hj) in w[i + 1..].iter_mut().zip(h) {
                *wj += ei * hj;
            }
        }
    }
}

fn clamp<T: Real>(v: T, lo: T, hi: T) -> T {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows, three columns, int4 symmetric, scale 0.25 (values exact in binary), Hinv =
    /// [[2, 0.5, 0.25], [0, 1, 0.5], [0, 0, 4]], by hand.
    #[test]
    fn one_block_by_hand() {
        let hinv = [2.0f64, 0.5, 0.25, 0.0, 1.0, 0.5, 0.0, 0.0, 4.0];
        let mut w = vec![0.75, -0.5, 0.125, 0.875, 0.0, 0.0];
        let scale = [0.25, 0.25];
        let mut q = vec![9.0; 6];
        let mut e = vec![9.0; 6];
        sweep_block(
            &mut w,
            &hinv,
            3,
            &scale,
            None,
            1,
            &[0, 0, 0],
            -8.0,
            7.0,
            &mut q,
            &mut e,
        );
        // Row 0: 3 and -2 steps exactly (no error); 0.125 is half a step and rounds to even 0,
        // e = (0 - 0.125) / 4.
        assert_eq!(&q[..3], &[0.75, -0.5, 0.0]);
        assert_eq!(&e[..3], &[0.0, 0.0, -0.03125]);
        // Row 1: 3.5 steps rounds to 4 (even): q = 1, e0 = 0.125 / 2; column 1 becomes
        // 0 + e0 * 0.5 = 0.03125 (an eighth of a step) -> 0, e1 = -0.03125; column 2 becomes
        // e0 * 0.25 + e1 * 0.5 = 0 -> 0.
        assert_eq!(&q[3..], &[1.0, 0.0, 0.0]);
        assert_eq!(&e[3..], &[0.0625, -0.03125, 0.0]);
        assert_eq!(w[4], 0.03125);
    }

    /// Asymmetric: zero point 8 on a uint4-like grid [-8, 7] shifted; the clamp applies after
    /// adding the zero point and the zero point is removed before scaling back.
    #[test]
    fn zero_point_is_added_then_removed() {
        let hinv = [1.0f32];
        let mut w = vec![0.5f32, -3.0];
        let scale = [0.25f32, 0.25];
        let zp = [-6.0f32, -6.0];
        let mut q = vec![0.0; 2];
        let mut e = vec![0.0; 2];
        sweep_block(
            &mut w,
            &hinv,
            1,
            &scale,
            Some(&zp),
            1,
            &[0],
            -8.0,
            7.0,
            &mut q,
            &mut e,
        );
        // 0.5 -> 2 steps, + zp = -4 (in range) -> (-4 + 6) * 0.25 = 0.5
        // -3.0 -> -12 steps, + zp = -18 -> clamped to -8 -> (-8 + 6) * 0.25 = -0.5
        assert_eq!(q, vec![0.5, -0.5]);
        assert_eq!(e, vec![0.0, 2.5]);
    }

    /// The AVX-512 build of the row loop gives the same bits as the baseline build (no fused
    /// multiply-adds are formed), f32 and f64, with a zero point.
    #[test]
    fn avx512_rows_are_bit_identical() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::is_x86_feature_detected!("avx512f") {
                eprintln!("no AVX-512 on this CPU: only the baseline build runs");
                return;
            }
            fn check<T: Real + std::fmt::Debug>() {
                let (rows, n) = (37usize, 100usize);
                let mut s = 99u64;
                let mut rnd = move || {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    T::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                };
                let w: Vec<T> = (0..rows * n).map(|_| rnd()).collect();
                let hinv: Vec<T> = (0..n * n).map(|_| rnd() + T::from_f64(1.0)).collect();
                let scale: Vec<T> = (0..rows * 2)
                    .map(|_| rnd() * T::from_f64(0.1) + T::from_f64(0.1))
                    .collect();
                let zp: Vec<T> = (0..rows * 2)
                    .map(|i| T::from_f64((i % 5) as f64 - 2.0))
                    .collect();
                let col_g: Vec<usize> = (0..n).map(|i| i * 2 / n).collect();
                let ctx = Rows {
                    hinv1: &hinv,
                    n,
                    scale: &scale,
                    zp: Some(&zp),
                    k: 2,
                    col_g: &col_g,
                    lo: T::from_f64(-8.0),
                    hi: T::from_f64(7.0),
                };
                let (mut w1, mut q1, mut e1) =
                    (w.clone(), vec![w[0]; rows * n], vec![w[0]; rows * n]);
                sweep_rows(&ctx, 0, &mut w1, &mut q1, &mut e1);
                let (mut w2, mut q2, mut e2) =
                    (w.clone(), vec![w[0]; rows * n], vec![w[0]; rows * n]);
                // SAFETY: checked above.
                unsafe { rows_avx512(&ctx, 0, &mut w2, &mut q2, &mut e2) };
                assert!(w1
                    .iter()
                    .zip(&w2)
                    .all(|(a, b)| a.partial_cmp(b) == Some(std::cmp::Ordering::Equal)));
                assert!(q1
                    .iter()
                    .zip(&q2)
                    .all(|(a, b)| a.partial_cmp(b) == Some(std::cmp::Ordering::Equal)));
                assert!(e1
                    .iter()
                    .zip(&e2)
                    .all(|(a, b)| a.partial_cmp(b) == Some(std::cmp::Ordering::Equal)));
                // The error feedback did move the weights.
                assert!(
                    w1.iter()
                        .zip(&w)
                        .filter(|(a, b)| a.partial_cmp(b) != Some(std::cmp::Ordering::Equal))
                        .count()
                        > rows * n / 2
                );
            }
            check::<f32>();
            check::<f64>();
        }
    }
}
