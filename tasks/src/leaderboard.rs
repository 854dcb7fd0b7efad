//! Open LLM Leaderboard V2 scoring: each sub-task's raw score `v` (a fraction) is normalised
//! against its random baseline `b` as `max(0, (v - b) / (1 - b)) * 100`, a benchmark's score is
//! the mean of its sub-tasks' normalised scores, and the leaderboard average is the mean of the
//! six benchmarks (IFEval, BBH, MATH Lvl 5, GPQA, MuSR, MMLU-Pro). Source:
//! huggingface/leaderboards `open_llm_leaderboard/normalization.md` (`normalize_within_range`,
//! a value below the lower bound counts 0); the paper (arXiv 2411.02355) reports Table 3 this way.
//!
//! Baselines are 1 / number of choices for the multiple-choice tasks (GPQA 4, MMLU-Pro 10,
//! BBH and MuSR per sub-task) and 0 for the generation tasks (IFEval, MATH).
//!
//! MATH Lvl 5 is the exception to "mean of the sub-tasks": normalization.md reads the group
//! `leaderboard_math_hard`'s `exact_match`, which lm-eval aggregates over its seven sub-tasks
//! weighted by their sizes (`lm_eval/tasks/leaderboard/math/_leaderboard_math.yaml`,
//! `weight_by_size: true`), i.e. the mean over all Level 5 documents; that raw value is then
//! normalised (baseline 0). [`Benchmark::weight_by_size`] marks it.

use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// A Leaderboard V2 benchmark: its name and its sub-tasks as `(our task name, metric, random
/// baseline)`; the benchmark's score is the mean of the sub-tasks' normalised scores.
#[derive(Debug, Clone, Copy)]
pub struct Benchmark {
    /// Benchmark name as the leaderboard and the paper's Table 3 show it.
    pub name: &'static str,
    /// `(task, metric, baseline)`; `metric` is the key in the task's results.
    pub subtasks: &'static [(&'static str, &'static str, f64)],
    /// The raw sub-task scores are first averaged weighted by the sub-tasks' document counts (an
    /// lm-eval group with `weight_by_size: true`), and that one value is normalised; the
    /// sub-tasks then share one baseline.
    pub weight_by_size: bool,
}

const fn inv(n: u32) -> f64 {
    1.0 / n as f64
}

/// The six benchmarks with their sub-tasks and baselines, in the paper's Table 3 order. IFEval's
/// two "sub-tasks" are its prompt- and instruction-level strict accuracies of one task.
pub const BENCHMARKS: &[Benchmark] = &[
    Benchmark {
        name: "ifeval",
        subtasks: &[
            ("ifeval", "inst_level_strict_acc", 0.0),
            ("ifeval", "prompt_level_strict_acc", 0.0),
        ],
        weight_by_size: false,
    },
    Benchmark {
        name: "bbh",
        subtasks: &[
            ("bbh_boolean_expressions", "acc_norm", inv(2)),
            ("bbh_causal_judgement", "acc_norm", inv(2)),
            ("bbh_date_understanding", "acc_norm", inv(6)),
            ("bbh_disambiguation_qa", "acc_norm", inv(3)),
            ("bbh_formal_fallacies", "acc_norm", inv(2)),
            ("bbh_geometric_shapes", "acc_norm", inv(11)),
            ("bbh_hyperbaton", "acc_norm", inv(2)),
            ("bbh_logical_deduction_five_objects", "acc_norm", inv(5)),
            ("bbh_logical_deduction_seven_objects", "acc_norm", inv(7)),
            ("bbh_logical_deduction_three_objects", "acc_norm", inv(3)),
            ("bbh_movie_recommendation", "acc_norm", inv(6)),
            ("bbh_navigate", "acc_norm", inv(2)),
            ("bbh_object_counting", "acc_norm", inv(19)),
            ("bbh_penguins_in_a_table", "acc_norm", inv(5)),
            ("bbh_reasoning_about_colored_objects", "acc_norm", inv(18)),
            ("bbh_ruin_names", "acc_norm", inv(6)),
            (
                "bbh_salient_translation_error_detection",
                "acc_norm",
                inv(6),
            ),
            ("bbh_snarks", "acc_norm", inv(2)),
            ("bbh_sports_understanding", "acc_norm", inv(2)),
            ("bbh_temporal_sequences", "acc_norm", inv(4)),
            (
                "bbh_tracking_shuffled_objects_five_objects",
                "acc_norm",
                inv(5),
            ),
            (
                "bbh_tracking_shuffled_objects_seven_objects",
                "acc_norm",
                inv(7),
            ),
            (
                "bbh_tracking_shuffled_objects_three_objects",
                "acc_norm",
                inv(3),
            ),
            ("bbh_web_of_lies", "acc_norm", inv(2)),
        ],
        weight_by_size: false,
    },
    Benchmark {
        name: "math_lvl5",
        subtasks: &[
            ("math_algebra_hard", MATH_METRIC, 0.0),
            ("math_counting_and_prob_hard", MATH_METRIC, 0.0),
            ("math_geometry_hard", MATH_METRIC, 0.0),
            ("math_intermediate_algebra_hard", MATH_METRIC, 0.0),
            ("math_num_theory_hard", MATH_METRIC, 0.0),
            ("math_prealgebra_hard", MATH_METRIC, 0.0),
            ("math_precalculus_hard", MATH_METRIC, 0.0),
        ],
        weight_by_size: true,
    },
    Benchmark {
        name: "gpqa",
        subtasks: &[("gpqa_diamond", "acc_norm", inv(4))],
        weight_by_size: false,
    },
    Benchmark {
        name: "musr",
        subtasks: &[
            ("musr_murder_mysteries", "acc_norm", inv(2)),
            ("musr_object_placements", "acc_norm", inv(5)),
            ("musr_team_allocation", "acc_norm", inv(3)),
        ],
        weight_by_size: false,
    },
    Benchmark {
        name: "mmlu_pro",
        subtasks: &[("mmlu_pro", "acc", inv(10))],
        weight_by_size: false,
    },
];

/// The MATH Lvl 5 metric the leaderboard normalises: `exact_match_original`, lm-eval 0.4.9.1's
/// name for the Minerva-normalised answer checked with sympy, which is the `exact_match` of the
/// leaderboard's own runs (lm-eval's leaderboard tasks before 0.4.9, version 1.0/2.0) and of the
/// paper. lm-eval 0.4.9.1's `exact_match` (math_verify) is reported per task but not used here.
pub const MATH_METRIC: &str = crate::math::KEY_ORIGINAL;

/// `max(0, (v - b) / (1 - b)) * 100` for a raw score `v` and baseline `b`, both fractions in
/// [0, 1]; the result is in percent. Errors when `v` is not in [0, 1] or `b` not in [0, 1).
pub fn normalize(v: f64, b: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        bail!("score {v} is not a fraction in [0, 1]");
    }
    if !(0.0..1.0).contains(&b) {
        bail!("baseline {b} is not in [0, 1)");
    }
    Ok(((v - b) / (1.0 - b)).max(0.0) * 100.0)
}

/// The Leaderboard V2 scores of one run: per benchmark (percent, mean of normalised sub-tasks)
/// and their average over the benchmarks present.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardV2 {
    /// Benchmark name -> normalised score (percent), in [`BENCHMARKS`] order of presence.
    pub benchmarks: Vec<(String, f64)>,
    /// Mean of `benchmarks` (percent).
    pub average: f64,
    /// Benchmarks with none of their sub-tasks in the input (left out of the average).
    pub missing: Vec<String>,
}

/// Score a run from its raw results: `scores` maps `(task, metric)` to the raw value (a
/// fraction), e.g. `("gpqa_diamond", "acc_norm") -> 0.2727`; `sizes` maps a task to its number of
/// documents, needed for the sub-tasks of a [`Benchmark::weight_by_size`] benchmark (MATH). A
/// benchmark counts when all of its sub-tasks are present; one with only some of them is an
/// error naming the missing ones (a partial BBH would not be the leaderboard's BBH). Errors also
/// for values outside [0, 1] (naming the task), a missing or zero size of a weighted sub-task,
/// and when no benchmark is complete.
pub fn leaderboard_v2(
    scores: &BTreeMap<(String, String), f64>,
    sizes: &BTreeMap<String, usize>,
) -> Result<LeaderboardV2> {
    let mut benchmarks = Vec::new();
    let mut missing = Vec::new();
    for b in BENCHMARKS {
        // (task, metric, raw value, baseline)
        let mut have = Vec::new();
        let mut lacking = Vec::new();
        for &(task, metric, base) in b.subtasks {
            match scores.get(&(task.to_string(), metric.to_string())) {
                Some(&v) => {
                    normalize(v, base)
                        .map_err(|e| anyhow::anyhow!("task `{task}` metric `{metric}`: {e}"))?;
                    have.push((task, v, base));
                }
                None => lacking.push(format!("{task} ({metric})")),
            }
        }
        if have.is_empty() {
            missing.push(b.name.to_string());
            continue;
        }
        if !lacking.is_empty() {
            bail!(
                "benchmark `{}` is incomplete: no score for {}",
                b.name,
                lacking.join(", ")
            );
        }
        let score = if b.weight_by_size {
            let (mut sum, mut n) = (0.0, 0usize);
            for &(task, v, _) in &have {
                let k = sizes.get(task).copied().unwrap_or(0);
                if k == 0 {
                    bail!(
                        "benchmark `{}`: no document count for task `{task}` (its sub-tasks are \
                         weighted by size)",
                        b.name
                    );
                }
                sum += v * k as f64;
                n += k;
            }
            normalize(sum / n as f64, have[0].2)?
        } else {
            let normed: Vec<f64> = have
                .iter()
                .map(|&(_, v, base)| normalize(v, base))
                .collect::<Result<_>>()?;
            normed.iter().sum::<f64>() / normed.len() as f64
        };
        benchmarks.push((b.name.to_string(), score));
    }
    if benchmarks.is_empty() {
        bail!("no Leaderboard V2 benchmark is complete in the scores given");
    }
    let average = benchmarks.iter().map(|(_, v)| v).sum::<f64>() / benchmarks.len() as f64;
    Ok(LeaderboardV2 {
        benchmarks,
        average,
        missing,
    })
}
