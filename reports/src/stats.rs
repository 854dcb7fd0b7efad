//! Statistics the recovery tables carry besides the point estimates: 95% confidence intervals of
//! each score, a paired bootstrap over documents for each recovery, and the "near random" flag.
//!
//! - **Confidence interval of a score**: mean ± z·stderr with z = 1.959964 (two-sided 95%, normal
//!   approximation). The stderr is lm-eval's `mean_stderr` (sample std / √n) from `results.json`.
//! - **Paired bootstrap** ([`paired_bootstrap`]): the per-document values of the task's primary
//!   metric of the baseline and of the compared run, matched by `doc_id` (the position of the
//!   document in the data file, `samples_<task>.jsonl`). Each of `resamples` draws picks n
//!   documents with replacement (the same documents for both runs, which is what makes the test
//!   paired) and records the difference of means and the ratio of means. The 95% intervals are
//!   the 2.5th/97.5th percentiles of those draws; the difference is *significant* when its
//!   interval excludes 0. The two-sided p-value is 2·min(P(d* ≤ 0), P(d* ≥ 0)), capped at 1.
//!   Seeded (default seed 0), so a report is reproducible. Documents present in only one of the
//!   two runs are left out, and the count of matched documents is reported.
//! - **Near random** ([`near_random`]): the paper (arXiv 2411.02355, §4.2 and Table 11) declines
//!   to read recoveries of GPQA and MuSR because the BF16 baseline itself is close to random
//!   guessing. We flag a task when it can be guessed (chance level > 0: multiple choice) and the
//!   baseline closes less than [`NEAR_RANDOM_HEADROOM`] of the gap between chance and a perfect
//!   score, i.e. (score − chance) / (1 − chance) < 0.20 (the Leaderboard V2 normalisation), or
//!   when the lower end of its 95% CI does not clear the chance level. Generation tasks (chance 0:
//!   an answer cannot be guessed) are never flagged. On the paper's Table 3 this flags exactly
//!   GPQA and MuSR, at all three model sizes (`tests/paper_table3.rs`).
//! - **Chance level** of a run's task ([`chance_level`]): the mean over documents of
//!   1 / number of choices for multiple-choice records, 0 for generation records.

use anyhow::{bail, Context, Result};
use quantlab_evaluate::runner::{read_samples, SampleRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Two-sided 95% quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Default number of bootstrap resamples.
pub const DEFAULT_RESAMPLES: usize = 10_000;

/// Default fraction of the chance-to-perfect gap a baseline must close for its recoveries to be
/// read (see the module documentation).
pub const NEAR_RANDOM_HEADROOM: f64 = 0.20;

/// 95% normal confidence interval `(lo, hi)` of a mean with standard error `stderr` (same units).
pub fn ci95(value: f64, stderr: f64) -> (f64, f64) {
    (value - Z95 * stderr, value + Z95 * stderr)
}

/// Settings of the statistics attached to a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsOptions {
    /// Bootstrap resamples per (task, run) pair; 0 switches the bootstrap off.
    pub resamples: usize,
    /// Seed of the bootstrap's random number generator.
    pub seed: u64,
    /// See [`NEAR_RANDOM_HEADROOM`].
    pub near_random_headroom: f64,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            resamples: DEFAULT_RESAMPLES,
            seed: 0,
            near_random_headroom: NEAR_RANDOM_HEADROOM,
        }
    }
}

/// Result of a paired bootstrap of one compared run against the baseline on one task. Differences
/// are in percentage points (metric × 100), recoveries in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// Documents present in both runs (the pairs resampled).
    pub n_docs: usize,
    /// Resamples drawn.
    pub resamples: usize,
    /// mean(run) − mean(baseline) over the matched documents, percentage points.
    pub diff_pp: f64,
    /// 2.5th percentile of the resampled differences, percentage points.
    pub diff_ci_lo: f64,
    /// 97.5th percentile of the resampled differences, percentage points.
    pub diff_ci_hi: f64,
    /// Two-sided bootstrap p-value of "no difference".
    pub p_value: f64,
    /// Whether the 95% interval of the difference excludes 0.
    pub significant: bool,
    /// mean(run) / mean(baseline) × 100 over the matched documents; `None` when the baseline
    /// mean is 0.
    pub recovery_pct: Option<f64>,
    /// 2.5th percentile of the resampled recoveries (resamples whose baseline mean is 0 are left
    /// out); `None` when no resample had a non-zero baseline.
    pub recovery_ci_lo: Option<f64>,
    /// 97.5th percentile of the resampled recoveries.
    pub recovery_ci_hi: Option<f64>,
}

/// Percentile (linear interpolation between closest ranks, numpy's default) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] + (sorted[i + 1] - sorted[i]) * frac
    } else {
        sorted[i]
    }
}

/// Paired bootstrap over documents: `base[i]` and `run[i]` are the same document's metric value
/// (in metric units, e.g. 0/1 accuracy) under the baseline and the compared run. Errors: the
/// slices differ in length or are empty, or `resamples` is 0.
pub fn paired_bootstrap(
    base: &[f64],
    run: &[f64],
    resamples: usize,
    seed: u64,
) -> Result<PairedBootstrap> {
    if base.len() != run.len() {
        bail!(
            "paired bootstrap: {} baseline values but {} run values",
            base.len(),
            run.len()
        );
    }
    if base.is_empty() {
        bail!("paired bootstrap: no documents in common");
    }
    if resamples == 0 {
        bail!("paired bootstrap: resamples must be at least 1");
    }
    let n = base.len();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (mb, mr) = (mean(base), mean(run));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut diffs = Vec::with_capacity(resamples);
    let mut ratios = Vec::with_capacity(resamples);
    let (mut le0, mut ge0) = (0usize, 0usize);
    for _ in 0..resamples {
        let (mut sb, mut sr) = (0.0, 0.0);
        for _ in 0..n {
            let i = rng.random_range(0..n);
            sb += base[i];
            sr += run[i];
        }
        let d = (sr - sb) / n as f64 * 100.0;
        le0 += usize::from(d <= 0.0);
        ge0 += usize::from(d >= 0.0);
        diffs.push(d);
        if sb != 0.0 {
            ratios.push(sr / sb * 100.0);
        }
    }
    diffs.sort_by(f64::total_cmp);
    ratios.sort_by(f64::total_cmp);
    let (lo, hi) = (percentile(&diffs, 0.025), percentile(&diffs, 0.975));
    let p = (2.0 * le0.min(ge0) as f64 / resamples as f64).min(1.0);
    let (rlo, rhi) = if ratios.is_empty() {
        (None, None)
    } else {
        (
            Some(percentile(&ratios, 0.025)),
            Some(percentile(&ratios, 0.975)),
        )
    };
    Ok(PairedBootstrap {
        n_docs: n,
        resamples,
        diff_pp: (mr - mb) * 100.0,
        diff_ci_lo: lo,
        diff_ci_hi: hi,
        p_value: p,
        significant: lo > 0.0 || hi < 0.0,
        recovery_pct: (mb != 0.0).then(|| mr / mb * 100.0),
        recovery_ci_lo: rlo,
        recovery_ci_hi: rhi,
    })
}

/// Per-document values of `metric` from `samples_<task>.jsonl` records, by `doc_id`. Errors name
/// the file: a record without the metric, or a `doc_id` seen twice.
pub fn metric_by_doc(
    records: &[SampleRecord],
    metric: &str,
    file: &Path,
) -> Result<BTreeMap<usize, f64>> {
    let mut out = BTreeMap::new();
    for r in records {
        let v = r.metrics.get(metric).with_context(|| {
            format!(
                "{}: doc_id {}: field `metrics.{metric}` is missing",
                file.display(),
                r.doc_id
            )
        })?;
        if out.insert(r.doc_id, *v).is_some() {
            bail!("{}: doc_id {} appears twice", file.display(), r.doc_id);
        }
    }
    Ok(out)
}

/// Chance level of a task's records: mean over documents of 1 / number of choices for
/// multiple-choice records, 0 for generation records. `None` for no records.
pub fn chance_level(records: &[SampleRecord]) -> Option<f64> {
    if records.is_empty() {
        return None;
    }
    let sum: f64 = records
        .iter()
        .map(|r| match &r.choices {
            Some(c) if !c.is_empty() => 1.0 / c.len() as f64,
            _ => 0.0,
        })
        .sum();
    Some(sum / records.len() as f64)
}

/// Whether a baseline score is too close to random guessing for a recovery to mean anything (see
/// the module documentation). `score`, `stderr` and `chance` are in the same units (fractions or
/// percent, with `scale` = 1 or 100 the score of a perfect model). Never true when `chance` is 0.
pub fn near_random(score: f64, stderr: f64, chance: f64, scale: f64, headroom: f64) -> bool {
    if chance <= 0.0 || chance >= scale {
        return false;
    }
    let normalized = (score - chance) / (scale - chance);
    normalized < headroom || score - Z95 * stderr <= chance
}

/// Load `samples_<task>.jsonl` of a run folder, or `None` when the file does not exist or holds
/// the code suites' per-sample verdicts (`task_id`, `status`: HumanEval/MBPP runs), which carry
/// no per-document metric to bootstrap; their pass@k is tabulated without a paired test.
pub fn load_task_samples(run_dir: &Path, task: &str) -> Result<Option<Vec<SampleRecord>>> {
    let path = run_dir.join(format!("samples_{task}.jsonl"));
    if !path.is_file() {
        return Ok(None);
    }
    let first: Option<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| serde_json::from_str(l).ok()));
    if first.is_some_and(|v| v.get("task").is_none() && v.get("task_id").is_some()) {
        return Ok(None);
    }
    read_samples(&path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], 25) == 1.75, 97.5 -> 3.925
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 0.25) - 1.75).abs() < 1e-12);
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn ci95_is_symmetric() {
        let (lo, hi) = ci95(50.0, 1.0);
        assert!(
            (hi - 50.0 - 1.959963984540054).abs() < 1e-12
                && (50.0 - lo - (hi - 50.0)).abs() < 1e-12
        );
    }
}
