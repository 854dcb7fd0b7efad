//! Means with 95% confidence intervals for per-pair similarity scores.
//!
//! `mean ± t(0.975, n-1) · s / √n` with `s` the sample standard deviation (`n - 1` in the
//! denominator, as lm-eval's `mean_stderr`) and `t` Student's quantile, so the interval is right
//! for the small prompt sets (20 pairs here) as well as for Arena-Hard's 500. The t quantile is
//! found by bisection on the t CDF, written through the regularized incomplete beta function
//! (continued fraction, Numerical Recipes §6.4); accurate to ~1e-10.

use serde::{Deserialize, Serialize};

/// Mean of one metric over the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard error of the mean; `None` for fewer than two values.
    pub stderr: Option<f64>,
    /// 95% confidence interval (Student t); `None` for fewer than two values.
    pub ci95: Option<[f64; 2]>,
    /// Number of values.
    pub n: usize,
}

impl MeanCi {
    /// The same with the interval clipped to `[lo, hi]`, the range the metric can take (a
    /// Student-t interval over a handful of values can reach past it).
    pub fn clipped(mut self, lo: f64, hi: f64) -> MeanCi {
        if let Some([a, b]) = self.ci95 {
            self.ci95 = Some([a.max(lo), b.min(hi)]);
        }
        self
    }
}

/// Mean, standard error and 95% CI of `xs`. An empty slice gives a NaN mean (callers do not
/// summarise empty sets: pairing rejects empty files).
pub fn mean_ci(xs: &[f64]) -> MeanCi {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanCi {
            mean,
            stderr: None,
            ci95: None,
            n,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    let t = student_t_quantile(0.975, (n - 1) as f64);
    MeanCi {
        mean,
        stderr: Some(se),
        ci95: Some([mean - t * se, mean + t * se]),
        n,
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error < 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Regularized incomplete beta I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// CDF of Student's t with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, x);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Quantile `p` in (0.5, 1) of Student's t with `df > 0` degrees of freedom.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_scipy() {
        // scipy.stats.t.ppf(0.975, df)
        for (df, q) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (10.0, 2.228_138_852),
            (19.0, 2.093_024_054),
            (499.0, 1.964_729_391),
            (1e7, 1.959_964_222),
        ] {
            let t = student_t_quantile(0.975, df);
            assert!((t - q).abs() < 1e-6, "df {df}: {t} vs {q}");
        }
    }

    #[test]
    fn mean_ci_small_sets() {
        let m = mean_ci(&[1.0, 2.0, 3.0]);
        assert_eq!(m.mean, 2.0);
        let se = (1.0f64 / 3.0).sqrt();
        assert!((m.stderr.unwrap() - se).abs() < 1e-12);
        let t = 4.302_652_730;
        let [lo, hi] = m.ci95.unwrap();
        assert!((lo - (2.0 - t * se)).abs() < 1e-6 && (hi - (2.0 + t * se)).abs() < 1e-6);
        let one = mean_ci(&[0.5]);
        assert_eq!(
            (one.mean, one.stderr, one.ci95, one.n),
            (0.5, None, None, 1)
        );
        // Three ROUGE values far apart: the t interval reaches past [0, 1] and is clipped.
        let r = mean_ci(&[0.05, 0.95, 0.98]).clipped(0.0, 1.0);
        assert_eq!(r.ci95.unwrap(), [0.0, 1.0]);
        assert!((r.mean - 0.66).abs() < 1e-12);
    }
}
