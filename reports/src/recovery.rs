//! The recovery table: per-task scores of several runs side by side, and each run's accuracy
//! recovery against a baseline run.
//!
//! Source of the formulas: Kurtic et al., arXiv 2411.02355 (`shared/paper-2411.02355.md`),
//! Table 2 (Open LLM Leaderboard V1), Table 10 (per-task recoveries) and Section 4:
//!
//! - score (%) = metric value × 100, printed with two decimals as in the paper;
//! - per-task recovery % = score(quantized) / score(baseline) × 100 (Table 10);
//! - Average = arithmetic mean of the task scores, over the tasks that every run has;
//! - average recovery % = Average(quantized) / Average(baseline) × 100, i.e. the recovery of the
//!   average score, not the mean of the per-task recoveries.
//!
//! Why the ratio of the averages: the paper's "Recovery %" column of Table 2 lies, for all nine
//! quantized rows, inside the interval that the ratio of its printed averages allows once their
//! ±0.005 rounding is accounted for, and for 8 of 9 it equals the ratio of the printed averages
//! to two decimals. The mean of the per-task recoveries of Table 10 does not match (8B W8A8-INT:
//! mean of Table 10 = 100.27, printed 100.31; 8B W4A16-INT: 98.61 vs 98.72; 70B W8A8-INT: 99.93 vs
//! 99.87). `tests/paper_table2.rs` checks this against the transcribed table.
//!
//! Standard errors are carried in percent as well; the Average's standard error is
//! sqrt(Σ se_i²) / k, which assumes the k task means are independent.
//!
//! A recovery is undefined when the baseline score is 0 (or missing): the frame holds null there,
//! the renderers print `n/a` (never `inf` or `NaN`).

use crate::stats::{ci95, near_random, PairedBootstrap};
use anyhow::{bail, Result};
use polars::prelude::*;
use quantlab_evaluate::results::RunResults;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Task name of the row holding the mean over the tasks every run has.
pub const AVERAGE_ROW: &str = "Average";

/// `model.scheme` of the run taken as the baseline when none is named.
pub const BASELINE_SCHEME: &str = "bf16";

/// Text printed where a recovery is undefined (baseline score 0).
pub const NOT_AVAILABLE: &str = "n/a";

/// Text printed instead of a recovery when the baseline is near random on the task.
pub const NEAR_RANDOM: &str = "near random";

/// Marker appended to a recovery whose difference from the baseline is significant (95%, paired
/// bootstrap over documents).
pub const SIGNIFICANT: &str = " *";

/// Text printed where a run has no score for a row's task and metric.
pub const MISSING: &str = "—";

const TASK_COL: &str = "task";
const METRIC_COL: &str = "metric";

/// Name of the frame column holding a run's standard error (percent).
pub fn stderr_column(label: &str) -> String {
    format!("{label} stderr")
}

/// Name of the frame column holding a run's recovery % against the baseline.
pub fn recovery_column(label: &str) -> String {
    format!("{label} recovery %")
}

/// One run's column group in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunColumn {
    /// Column header: `model.scheme`, or `scheme (run_id)` when several runs share a scheme.
    pub label: String,
    /// `run_id` of the run.
    pub run_id: String,
    /// `model.name` of the run.
    pub model: String,
    /// `model.scheme` of the run.
    pub scheme: String,
}

/// Scores, standard errors and recoveries of several runs against one baseline run.
///
/// Underneath is a polars [`DataFrame`] ([`RecoveryTable::frame`]) with one row per
/// (task, primary metric) of the baseline, in the baseline's task order, plus the
/// [`AVERAGE_ROW`], and the columns `task`, `metric`, `<baseline>`, `<baseline> stderr`, then for
/// every other run `<label>`, `<label> stderr`, `<label> recovery %`. All numbers are percent;
/// undefined or missing numbers are null.
#[derive(Debug, Clone)]
pub struct RecoveryTable {
    frame: DataFrame,
    baseline: RunColumn,
    compared: Vec<RunColumn>,
    average_tasks: Vec<String>,
    excluded_tasks: Vec<String>,
    /// Task -> chance level (fraction) of the raw task, when known.
    chance: BTreeMap<String, f64>,
    /// Tasks whose baseline is near random (their recoveries are not quoted).
    near_random: BTreeSet<String>,
    /// (task, run label) -> paired bootstrap of that run against the baseline.
    bootstrap: BTreeMap<(String, String), PairedBootstrap>,
    /// Lines printed above the table (e.g. runs made with different `--limit`).
    warnings: Vec<String>,
}

/// Build the recovery table of `runs` against a baseline.
///
/// The baseline is the run whose `model.scheme` is `bf16` when `baseline` is `None`, else the run
/// whose `run_id` (or, failing that, `model.name`) equals `baseline`; it is an error when no run
/// or several runs match. Rows: one per task of the baseline, scored with the baseline's
/// `primary_metric` (looked up under the same task and metric name in the other runs), then the
/// Average row over the tasks all runs have. Formulas: see the module documentation
/// (arXiv 2411.02355, Tables 2 and 10).
pub fn recovery_table(runs: &[RunResults], baseline: Option<&str>) -> Result<RecoveryTable> {
    if runs.is_empty() {
        bail!("no runs to report");
    }
    let bi = select_baseline(runs, baseline)?;
    let labels = column_labels(runs);
    // Baseline first, then the other runs in the order given.
    let order: Vec<usize> = std::iter::once(bi)
        .chain((0..runs.len()).filter(|&i| i != bi))
        .collect();
    let base = &runs[bi];
    if base.tasks.is_empty() {
        bail!(
            "baseline run `{}` ({}) has no tasks",
            base.run_id,
            base.model.name
        );
    }

    let mut tasks = Vec::new();
    let mut metrics = Vec::new();
    let mut scores: Vec<Vec<Option<f64>>> = vec![Vec::new(); order.len()];
    let mut stderrs: Vec<Vec<Option<f64>>> = vec![Vec::new(); order.len()];
    let mut average_tasks = Vec::new();
    let mut excluded_tasks = Vec::new();
    for (task, result) in &base.tasks {
        tasks.push(task.clone());
        metrics.push(result.primary_metric.clone());
        let mut everywhere = true;
        for (k, &ri) in order.iter().enumerate() {
            let value = runs[ri]
                .tasks
                .get(task)
                .and_then(|t| t.metrics.get(&result.primary_metric));
            everywhere &= value.is_some();
            scores[k].push(value.map(|m| m.value * 100.0));
            stderrs[k].push(value.map(|m| m.stderr * 100.0));
        }
        if everywhere {
            average_tasks.push(task.clone());
        } else {
            excluded_tasks.push(task.clone());
        }
    }

    let mut columns = vec![
        Column::new(TASK_COL.into(), tasks.as_slice()),
        Column::new(METRIC_COL.into(), metrics.as_slice()),
    ];
    for (k, &ri) in order.iter().enumerate() {
        let label = labels[ri].as_str();
        columns.push(Column::new(label.into(), scores[k].as_slice()));
        columns.push(Column::new(
            stderr_column(label).into(),
            stderrs[k].as_slice(),
        ));
    }
    let per_task = DataFrame::new(columns)?;

    // Average row: mean over the rows where every run has a score (polars filter + mean).
    let k = average_tasks.len();
    let all_present: Vec<Expr> = order
        .iter()
        .map(|&ri| col(labels[ri].as_str()).is_not_null())
        .collect();
    let mut aggregates = vec![
        lit(AVERAGE_ROW).alias(TASK_COL),
        lit(format!("mean of {k} tasks")).alias(METRIC_COL),
    ];
    for &ri in &order {
        let label = labels[ri].as_str();
        let se = stderr_column(label);
        aggregates.push(col(label).mean().cast(DataType::Float64).alias(label));
        let se_mean = if k == 0 {
            lit(NULL).cast(DataType::Float64)
        } else {
            (col(se.as_str()).pow(2).sum().sqrt() / lit(k as f64)).cast(DataType::Float64)
        };
        aggregates.push(se_mean.alias(se.as_str()));
    }
    let average = per_task
        .clone()
        .lazy()
        .filter(all_horizontal(all_present)?)
        .select(aggregates)
        .collect()?;
    let with_average = per_task.vstack(&average)?;

    // Recovery columns: run / baseline × 100, null where the baseline is 0 or a score is missing.
    let base_label = labels[bi].as_str();
    let b = col(base_label);
    let mut select = vec![
        col(TASK_COL),
        col(METRIC_COL),
        col(base_label),
        col(stderr_column(base_label).as_str()),
    ];
    for &ri in order.iter().skip(1) {
        let label = labels[ri].as_str();
        let q = col(label);
        let undefined = b
            .clone()
            .is_null()
            .or(q.clone().is_null())
            .or(b.clone().eq(lit(0.0)));
        select.push(q.clone());
        select.push(col(stderr_column(label).as_str()));
        select.push(
            when(undefined)
                .then(lit(NULL).cast(DataType::Float64))
                .otherwise(q / b.clone() * lit(100.0))
                .alias(recovery_column(label).as_str()),
        );
    }
    let mut frame = with_average.lazy().select(select).collect()?;
    frame.as_single_chunk_par();

    let column = |ri: usize| RunColumn {
        label: labels[ri].clone(),
        run_id: runs[ri].run_id.clone(),
        model: runs[ri].model.name.clone(),
        scheme: runs[ri].model.scheme.clone(),
    };
    Ok(RecoveryTable {
        frame,
        baseline: column(bi),
        compared: order.iter().skip(1).map(|&ri| column(ri)).collect(),
        average_tasks,
        excluded_tasks,
        chance: BTreeMap::new(),
        near_random: BTreeSet::new(),
        bootstrap: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Index of the baseline run: see [`recovery_table`].
fn select_baseline(runs: &[RunResults], baseline: Option<&str>) -> Result<usize> {
    let describe = |idx: &[usize]| {
        idx.iter()
            .map(|&i| {
                format!(
                    "{} (model {}, scheme {})",
                    runs[i].run_id, runs[i].model.name, runs[i].model.scheme
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<usize> = (0..runs.len()).collect();
    let find = |pred: &dyn Fn(&RunResults) -> bool| -> Vec<usize> {
        (0..runs.len()).filter(|&i| pred(&runs[i])).collect()
    };
    match baseline {
        None => {
            let hits = find(&|r| r.model.scheme.eq_ignore_ascii_case(BASELINE_SCHEME));
            match hits.len() {
                1 => Ok(hits[0]),
                0 => bail!(
                    "no baseline run: none of the runs has model.scheme `{BASELINE_SCHEME}` \
                     (runs: {}); name the baseline by its run_id or model name",
                    describe(&all)
                ),
                _ => bail!(
                    "ambiguous baseline: several runs have model.scheme `{BASELINE_SCHEME}` ({}); \
                     name the baseline by its run_id",
                    describe(&hits)
                ),
            }
        }
        Some(name) => {
            let by_id = find(&|r| r.run_id == name);
            match by_id.len() {
                1 => return Ok(by_id[0]),
                0 => {}
                _ => bail!(
                    "ambiguous baseline `{name}`: several runs have this run_id ({})",
                    describe(&by_id)
                ),
            }
            let by_model = find(&|r| r.model.name == name);
            match by_model.len() {
                1 => Ok(by_model[0]),
                0 => bail!(
                    "no baseline run: no run has run_id or model name `{name}` (runs: {})",
                    describe(&all)
                ),
                _ => bail!(
                    "ambiguous baseline `{name}`: several runs have this model name ({}); \
                     name the baseline by its run_id",
                    describe(&by_model)
                ),
            }
        }
    }
}

/// Column labels, one per run: the scheme, `scheme (run_id)` when the scheme is shared (or would
/// clash with the `task`/`metric` columns), and a `#n` suffix if that is still not unique.
fn column_labels(runs: &[RunResults]) -> Vec<String> {
    let mut per_scheme: HashMap<&str, usize> = HashMap::new();
    for r in runs {
        *per_scheme.entry(r.model.scheme.as_str()).or_default() += 1;
    }
    let first: Vec<String> = runs
        .iter()
        .map(|r| {
            let s = r.model.scheme.as_str();
            if per_scheme[s] == 1 && s != TASK_COL && s != METRIC_COL && !s.is_empty() {
                s.to_string()
            } else {
                format!("{s} ({})", r.run_id)
            }
        })
        .collect();
    let mut per_label: HashMap<&str, usize> = HashMap::new();
    for l in &first {
        *per_label.entry(l.as_str()).or_default() += 1;
    }
    first
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if per_label[l.as_str()] == 1 {
                l.clone()
            } else {
                format!("{l} #{}", i + 1)
            }
        })
        .collect()
}

impl RecoveryTable {
    /// The underlying polars frame (percent; null where undefined or missing).
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// The baseline run's column.
    pub fn baseline(&self) -> &RunColumn {
        &self.baseline
    }

    /// The other runs' columns, in the order the runs were given.
    pub fn compared(&self) -> &[RunColumn] {
        &self.compared
    }

    /// Tasks the Average row is taken over (present in every run).
    pub fn average_tasks(&self) -> &[String] {
        &self.average_tasks
    }

    /// Baseline tasks left out of the Average because some run lacks them.
    pub fn excluded_tasks(&self) -> &[String] {
        &self.excluded_tasks
    }

    /// Record the chance level of each task (fraction in [0, 1): 1 / number of choices for
    /// multiple choice, 0 for generation) and flag the tasks whose baseline is near random (see
    /// [`crate::stats::near_random`]; `headroom` is the fraction of the chance-to-perfect gap the
    /// baseline must close). `normalized`: the scores are already Leaderboard-V2 normalised,
    /// (v − chance) / (1 − chance) × 100, as in the paper's Table 3; they are mapped back to the
    /// raw scale before the test. Tasks absent from `chance` are left unflagged.
    pub fn flag_near_random(
        &mut self,
        chance: &BTreeMap<String, f64>,
        normalized: bool,
        headroom: f64,
    ) {
        let base = self.baseline.label.clone();
        for (task, &c) in chance {
            let (Some(score), Some(se)) = (self.score(task, &base), self.stderr(task, &base))
            else {
                continue;
            };
            self.chance.insert(task.clone(), c);
            let (raw, raw_se) = if normalized {
                (c * 100.0 + score * (1.0 - c), se * (1.0 - c))
            } else {
                (score, se)
            };
            if near_random(raw, raw_se, c * 100.0, 100.0, headroom) {
                self.near_random.insert(task.clone());
            } else {
                self.near_random.remove(task);
            }
        }
    }

    /// Attach the paired bootstrap of the run labelled `label` against the baseline on `task`.
    pub fn set_bootstrap(&mut self, task: &str, label: &str, b: PairedBootstrap) {
        self.bootstrap
            .insert((task.to_string(), label.to_string()), b);
    }

    /// The paired bootstrap of run `label` on `task`, if one was attached.
    pub fn bootstrap(&self, task: &str, label: &str) -> Option<&PairedBootstrap> {
        self.bootstrap.get(&(task.to_string(), label.to_string()))
    }

    /// Tasks whose baseline is near random (recoveries not quoted), sorted.
    pub fn near_random_tasks(&self) -> Vec<String> {
        self.near_random.iter().cloned().collect()
    }

    /// Whether `task`'s baseline is flagged near random.
    pub fn is_near_random(&self, task: &str) -> bool {
        self.near_random.contains(task)
    }

    /// Chance level (fraction) of `task`, when known.
    pub fn chance(&self, task: &str) -> Option<f64> {
        self.chance.get(task).copied()
    }

    /// 95% normal confidence interval (percent) of the score of run `label` on `task`
    /// (score ± 1.96 stderr), clipped to the metric's range: never below 0, and not above 100
    /// for proportions (every metric but perplexities and bits per byte).
    pub fn ci95(&self, task: &str, label: &str) -> Option<(f64, f64)> {
        let (lo, hi) = ci95(self.score(task, label)?, self.stderr(task, label)?);
        let metric = (0..self.frame.height())
            .find(|&i| self.text(TASK_COL, i) == task)
            .map(|i| self.text(METRIC_COL, i))
            .unwrap_or_default();
        let unbounded = metric.contains("perplexity") || metric.contains("bits_per_byte");
        Some((lo.max(0.0), if unbounded { hi } else { hi.min(100.0) }))
    }

    /// Row names (`task` column), the [`AVERAGE_ROW`] last.
    pub fn tasks(&self) -> Vec<String> {
        (0..self.frame.height())
            .map(|i| self.text(TASK_COL, i))
            .collect()
    }

    /// Score in percent of the run labelled `label` on `task` (or [`AVERAGE_ROW`]).
    pub fn score(&self, task: &str, label: &str) -> Option<f64> {
        self.number(task, label)
    }

    /// Standard error in percent of the run labelled `label` on `task` (or [`AVERAGE_ROW`]).
    pub fn stderr(&self, task: &str, label: &str) -> Option<f64> {
        self.number(task, &stderr_column(label))
    }

    /// Recovery % of the run labelled `label` on `task` (or [`AVERAGE_ROW`]); `None` where it is
    /// undefined (baseline score 0 or a missing score) or for the baseline itself.
    pub fn recovery(&self, task: &str, label: &str) -> Option<f64> {
        self.number(task, &recovery_column(label))
    }

    fn row(&self, task: &str) -> Option<usize> {
        let tasks = self.frame.column(TASK_COL).ok()?.str().ok()?;
        tasks.into_iter().position(|t| t == Some(task))
    }

    fn number(&self, task: &str, column: &str) -> Option<f64> {
        let i = self.row(task)?;
        self.cell(column, i)
    }

    fn cell(&self, column: &str, i: usize) -> Option<f64> {
        self.frame
            .column(column)
            .ok()?
            .f64()
            .ok()?
            .get(i)
            .filter(|v| v.is_finite())
    }

    fn text(&self, column: &str, i: usize) -> String {
        self.frame
            .column(column)
            .ok()
            .and_then(|c| c.str().ok().and_then(|s| s.get(i).map(str::to_string)))
            .unwrap_or_default()
    }

    /// Set the warnings printed above the Markdown table (and returned by [`Self::warnings`]).
    pub fn set_warnings(&mut self, warnings: Vec<String>) {
        self.warnings = warnings;
    }

    /// Warnings about the comparison (runs over different documents, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A GitHub-flavoured Markdown table, padded so that it also reads well in a terminal, with
    /// the [warnings](Self::warnings) above it as quoted lines.
    ///
    /// Scores and recoveries in percent with two decimals (the paper's style); `n/a` where the
    /// baseline score is 0, `—` where a run lacks the task. Standard errors are in the CSV/JSON.
    pub fn to_markdown(&self) -> String {
        let base = &self.baseline.label;
        let mut header = vec![TASK_COL.to_string(), METRIC_COL.to_string(), base.clone()];
        for run in &self.compared {
            header.push(run.label.clone());
            header.push(recovery_column(&run.label));
        }
        let mut rows = Vec::new();
        let (mut any_na, mut any_missing) = (false, false);
        let (mut any_near_random, mut any_significant) = (false, false);
        for i in 0..self.frame.height() {
            let b = self.cell(base, i);
            let mut row = vec![self.text(TASK_COL, i), self.text(METRIC_COL, i), fmt_pct(b)];
            any_missing |= b.is_none();
            for run in &self.compared {
                let q = self.cell(&run.label, i);
                let r = self.cell(&recovery_column(&run.label), i);
                row.push(fmt_pct(q));
                any_missing |= q.is_none();
                let task = self.text(TASK_COL, i);
                let boot = self.bootstrap(&task, &run.label);
                row.push(match (r, q, b) {
                    (Some(_), _, _) if self.near_random.contains(&task) => {
                        any_near_random = true;
                        NEAR_RANDOM.to_string()
                    }
                    (Some(r), _, _) if boot.is_some_and(|b| b.significant) => {
                        any_significant = true;
                        format!("{r:.2}{SIGNIFICANT}")
                    }
                    (Some(r), _, _) => format!("{r:.2}"),
                    (None, Some(_), Some(_)) => {
                        any_na = true;
                        NOT_AVAILABLE.to_string()
                    }
                    _ => MISSING.to_string(),
                });
            }
            rows.push(row);
        }

        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&format!("> **warning:** {w}\n"));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "Recovery against baseline `{}` (run `{}`, model `{}`). Scores in %; \
             recovery % = run / baseline × 100 (arXiv 2411.02355, Tables 2 and 10).\n\n",
            base, self.baseline.run_id, self.baseline.model
        ));
        out.push_str(&markdown_table(&header, &rows, 2));
        out.push('\n');
        out.push_str(&format!(
            "{AVERAGE_ROW}: mean over the {} task(s) every run has ({}); its recovery is \
             Average(run) / Average(baseline) × 100 (recovery of the average score, as the \
             paper's Table 2).\n",
            self.average_tasks.len(),
            self.average_tasks.join(", ")
        ));
        if !self.excluded_tasks.is_empty() {
            out.push_str(&format!(
                "Not in the {AVERAGE_ROW} (missing from some run): {}.\n",
                self.excluded_tasks.join(", ")
            ));
        }
        if any_na {
            out.push_str(&format!(
                "{NOT_AVAILABLE}: the baseline score is 0, so the recovery is undefined.\n"
            ));
        }
        if any_missing {
            out.push_str(&format!("{MISSING}: the run has no score for this task.\n"));
        }
        if any_near_random {
            out.push_str(&format!(
                "{NEAR_RANDOM}: the baseline is close to random guessing on this task ({}), so \
                 its recovery is not quoted (as the paper does for GPQA and MuSR); it still \
                 counts in the {AVERAGE_ROW}.\n",
                self.near_random_tasks().join(", ")
            ));
        }
        if any_significant {
            out.push_str(&format!(
                "{SIGNIFICANT}: the difference from the baseline is significant at the 95% level \
                 (paired bootstrap over documents).\n"
            ));
        }
        out
    }

    /// A Markdown table of the statistics behind the recovery table: per task and run, the
    /// score with its 95% confidence interval (score ± 1.96 stderr), and for the compared runs
    /// the paired bootstrap (difference from the baseline in percentage points with its 95%
    /// interval, p-value, recovery's 95% interval, matched documents). Empty cells where the
    /// bootstrap was not run (no samples files).
    pub fn to_markdown_stats(&self) -> String {
        let mut out = String::from(
            "| task | run | score % | 95% CI | Δ pp vs baseline | Δ 95% CI | p | recovery 95% CI | docs paired | note |\n\
             | :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- |\n",
        );
        let f2 = |v: f64| format!("{v:.2}");
        for task in self.tasks() {
            let runs = std::iter::once(&self.baseline).chain(self.compared.iter());
            for (k, run) in runs.enumerate() {
                let Some(score) = self.score(&task, &run.label) else {
                    continue;
                };
                let ci = self
                    .ci95(&task, &run.label)
                    .map_or(String::new(), |(lo, hi)| format!("[{lo:.2}, {hi:.2}]"));
                let boot = self.bootstrap(&task, &run.label);
                let cell = |f: &dyn Fn(&PairedBootstrap) -> String| boot.map_or(String::new(), f);
                let mut note = Vec::new();
                if k == 0 {
                    note.push("baseline".to_string());
                    if let Some(c) = self.chance(&task) {
                        if c > 0.0 {
                            note.push(format!("chance {:.2}", c * 100.0));
                        }
                    }
                }
                if self.is_near_random(&task) {
                    note.push(NEAR_RANDOM.to_string());
                }
                if boot.is_some_and(|b| b.significant) {
                    note.push("significant".into());
                }
                out.push_str(&format!(
                    "| {task} | {} | {} | {ci} | {} | {} | {} | {} | {} | {} |\n",
                    run.label,
                    f2(score),
                    cell(&|b| format!("{:+.2}", b.diff_pp)),
                    cell(&|b| format!("[{:+.2}, {:+.2}]", b.diff_ci_lo, b.diff_ci_hi)),
                    cell(&|b| format!("{:.4}", b.p_value)),
                    cell(&|b| match (b.recovery_ci_lo, b.recovery_ci_hi) {
                        (Some(lo), Some(hi)) => format!("[{lo:.2}, {hi:.2}]"),
                        _ => NOT_AVAILABLE.into(),
                    }),
                    cell(&|b| b.n_docs.to_string()),
                    note.join("; "),
                ));
            }
        }
        out
    }

    /// Write the frame as CSV (polars `CsvWriter`), atomically: a temporary file in the same
    /// folder, renamed over `path`. Numbers are percent with 4 decimals (1e-6 in metric units,
    /// far below any standard error; the JSON keeps full precision); undefined or missing values
    /// are written as `n/a`.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_percent_csv(self.frame.clone(), path)
    }

    /// The table as JSON: baseline and runs, the definitions used, and per row each run's
    /// `score`, `stderr` (percent) and `recovery_pct`; `null` where undefined or missing.
    pub fn to_json(&self) -> Value {
        let run_json = |r: &RunColumn| json!({"label": r.label, "run_id": r.run_id, "model": r.model, "scheme": r.scheme});
        let rows: Vec<Value> = (0..self.frame.height())
            .map(|i| {
                let base = &self.baseline.label;
                let mut runs = serde_json::Map::new();
                for run in &self.compared {
                    let task = self.text(TASK_COL, i);
                    runs.insert(
                        run.label.clone(),
                        json!({
                            "score": self.cell(&run.label, i),
                            "stderr": self.cell(&stderr_column(&run.label), i),
                            "ci95": self.ci95(&task, &run.label).map(|(lo, hi)| [lo, hi]),
                            "recovery_pct": self.cell(&recovery_column(&run.label), i),
                            "bootstrap": self.bootstrap(&task, &run.label),
                        }),
                    );
                }
                json!({
                    "task": self.text(TASK_COL, i),
                    "metric": self.text(METRIC_COL, i),
                    "baseline": {
                        "score": self.cell(base, i),
                        "stderr": self.cell(&stderr_column(base), i),
                        "ci95": self.ci95(&self.text(TASK_COL, i), base).map(|(lo, hi)| [lo, hi]),
                    },
                    "chance": self.chance(&self.text(TASK_COL, i)),
                    "near_random": self.is_near_random(&self.text(TASK_COL, i)),
                    "runs": runs,
                })
            })
            .collect();
        json!({
            "baseline": run_json(&self.baseline),
            "runs": self.compared.iter().map(run_json).collect::<Vec<_>>(),
            "units": "percent",
            "definitions": {
                "score": "metric value x 100",
                "recovery_pct": "run score / baseline score x 100 (arXiv 2411.02355, Table 10); \
                                 null when the baseline score is 0",
                "average": "mean of the task scores over the tasks every run has",
                "average_recovery_pct": "Average(run) / Average(baseline) x 100, the recovery of \
                                         the average score (arXiv 2411.02355, Table 2)",
                "average_stderr": "sqrt(sum of squared task stderrs) / number of tasks",
                "ci95": "score +- 1.959964 x stderr (normal approximation)",
                "bootstrap": "paired bootstrap over documents matched by doc_id: diff_pp = run - \
                              baseline in percentage points, 95% percentile intervals, \
                              significant when the difference's interval excludes 0",
                "near_random": "the task can be guessed (chance > 0) and the baseline closes \
                                less than 20% of the chance-to-perfect gap, or its 95% CI \
                                reaches chance; its recovery is not quoted",
            },
            "average_tasks": self.average_tasks,
            "excluded_from_average": self.excluded_tasks,
            "rows": rows,
        })
    }
}

fn fmt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| MISSING.to_string(), |v| format!("{v:.2}"))
}

/// Write a table of percentages as CSV (polars `CsvWriter`), atomically (a temporary file in the
/// same folder, renamed over `path`): 4 decimals, `n/a` for undefined or missing values.
pub(crate) fn write_percent_csv(mut df: DataFrame, path: &Path) -> Result<()> {
    crate::report::write_atomic(path, |file| {
        CsvWriter::new(file)
            .include_header(true)
            .with_float_precision(Some(4))
            .with_null_value(NOT_AVAILABLE.to_string())
            .finish(&mut df)?;
        Ok(())
    })
}

/// An aligned Markdown table: `header` and `rows` (same number of cells each), the first `left`
/// columns left-aligned (names), the others right-aligned (numbers); each column at least 3 wide.
pub(crate) fn markdown_table(header: &[String], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = " ".repeat(widths[c] - s.chars().count());
                if c < left {
                    format!("{s}{pad}")
                } else {
                    format!("{pad}{s}")
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(c, &w)| {
            if c < left {
                format!(":{}", "-".repeat(w - 1))
            } else {
                format!("{}:", "-".repeat(w - 1))
            }
        })
        .collect();
    let mut out = line(header);
    out += &format!("| {} |\n", rule.join(" | "));
    for r in rows {
        out += &line(r);
    }
    out
}
