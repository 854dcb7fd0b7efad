//! The Open LLM Leaderboard V2 view of a group of `leaderboard-v2` runs: one row per benchmark
//! (IFEval, BBH, MATH Lvl 5, GPQA, MuSR, MMLU-Pro, in the paper's Table 3 order) with the
//! leaderboard-normalised score of every run, the Average of the benchmarks, and each compressed
//! run's recovery.
//!
//! Formulas (computed by [`quantlab_tasks::leaderboard::leaderboard_v2`], the same function that
//! writes a run's `leaderboard_v2.json`):
//!
//! - per sub-task, raw score `v` and random baseline `b` (1 / choices; 0 for IFEval and MATH):
//!   `max(0, (v − b) / (1 − b)) × 100` (huggingface/leaderboards,
//!   `open_llm_leaderboard/normalization.md`, `normalize_within_range`);
//! - a benchmark's score is the mean of its sub-tasks' normalised scores; MATH Lvl 5 normalises
//!   the mean of its seven sub-tasks' raw scores weighted by their document counts (lm-eval's
//!   `leaderboard_math_hard` group, `weight_by_size: true`);
//! - Average = arithmetic mean of the benchmark scores (the paper's Table 3, arXiv 2411.02355);
//! - recovery % = run / baseline × 100 per benchmark; the Average's recovery is
//!   Average(run) / Average(baseline) × 100, the recovery of the average (see
//!   [`crate::recovery`] for why the paper's "Recovery %" is the ratio of the averages). A
//!   recovery is undefined (`n/a`) where the baseline's normalised score is 0, which happens: a
//!   score at or below chance normalises to 0.
//!
//! Rows are the benchmarks complete in every run; a benchmark that some run has only in part
//! (a `--tasks` subset of its sub-tasks) is not the leaderboard's benchmark, and the section is
//! then skipped with a one-line reason ([`LeaderboardV2Section::Skipped`]) instead of failing the
//! report. Runs made with `--limit` are scored, with a note that the scores cover a subset of the
//! documents. A benchmark is flagged near random when the recovery table flagged every one of its
//! sub-tasks (see [`crate::stats::near_random`]; the paper's GPQA and MuSR): its recovery is then
//! not quoted in Markdown and HTML, and the gate reports it without gating it.

use crate::recovery::{RecoveryTable, RunColumn, AVERAGE_ROW, NEAR_RANDOM, NOT_AVAILABLE};
use anyhow::{Context, Result};
use polars::prelude::*;
use quantlab_evaluate::results::RunResults;
use quantlab_tasks::leaderboard::{leaderboard_v2, BENCHMARKS};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The suite whose runs get the section.
pub const SUITE: &str = "leaderboard-v2";

/// Title of the section in `report.md` and `report.html`.
pub const TITLE: &str = "Open LLM Leaderboard V2 (normalised)";

/// Key of the section in `report.json`, and base name of its CSV (`report_leaderboard_v2.csv`).
pub const KEY: &str = "leaderboard_v2";

/// Name of the Average row's entry in the regression gate (the benchmarks use their keys:
/// `ifeval`, `bbh`, `math_lvl5`, `gpqa`, `musr`, `mmlu_pro`).
pub const AVERAGE_KEY: &str = "average";

/// The benchmark's name as the paper's Table 3 prints it, for a key of
/// [`quantlab_tasks::leaderboard::BENCHMARKS`] (the key itself for an unknown one).
pub fn display_name(key: &str) -> &str {
    match key {
        "ifeval" => "IFEval",
        "bbh" => "BBH",
        "math_lvl5" => "MATH Lvl 5",
        "gpqa" => "GPQA",
        "musr" => "MuSR",
        "mmlu_pro" => "MMLU-Pro",
        other => other,
    }
}

/// The section of one group of `leaderboard-v2` runs: the table, or why there is none.
#[derive(Debug, Clone)]
pub enum LeaderboardV2Section {
    /// Every run has the benchmarks of the table complete.
    Table(Box<LeaderboardV2Table>),
    /// One line saying why the section is left out (a partial benchmark, a score outside [0, 1],
    /// no benchmark common to all runs).
    Skipped(String),
}

/// Leaderboard-normalised scores (percent) of the runs of a [`RecoveryTable`], per benchmark and
/// their Average, with the recoveries against the table's baseline.
#[derive(Debug, Clone)]
pub struct LeaderboardV2Table {
    baseline: RunColumn,
    compared: Vec<RunColumn>,
    /// Benchmark keys of the rows, in the paper's order.
    benchmarks: Vec<String>,
    /// `scores[run][row]`, run 0 the baseline, row `benchmarks.len()` the Average.
    scores: Vec<Vec<f64>>,
    /// Benchmarks complete in some runs but absent from others (not rows, not in the Average).
    left_out: Vec<String>,
    /// Benchmarks whose every sub-task the recovery table flagged near random.
    near_random: BTreeSet<String>,
    /// `run_id (limit N)` of the runs made with `--limit`.
    limited: Vec<String>,
}

/// The section for `table` (a recovery table of `records`, the runs of one `leaderboard-v2`
/// group): same baseline and column labels. Never fails: what prevents the table is the
/// [`LeaderboardV2Section::Skipped`] reason.
pub fn section(table: &RecoveryTable, records: &[RunResults]) -> LeaderboardV2Section {
    match build(table, records) {
        Ok(t) => LeaderboardV2Section::Table(Box::new(t)),
        Err(e) => LeaderboardV2Section::Skipped(format!("{e:#}")),
    }
}

/// A benchmark only partly present in `run`: the reason, naming the run, the benchmark, how many
/// sub-tasks it has and the first missing ones.
fn partial_benchmark(run: &RunResults) -> Option<String> {
    for b in BENCHMARKS {
        let missing: Vec<&str> = b
            .subtasks
            .iter()
            .filter(|(task, metric, _)| {
                !run.tasks
                    .get(*task)
                    .is_some_and(|t| t.metrics.contains_key(*metric))
            })
            .map(
                |(task, metric, _)| {
                    if b.name == "ifeval" {
                        *metric
                    } else {
                        *task
                    }
                },
            )
            .collect();
        if missing.is_empty() || missing.len() == b.subtasks.len() {
            continue;
        }
        const SHOWN: usize = 3;
        let mut list = missing[..missing.len().min(SHOWN)].join(", ");
        if missing.len() > SHOWN {
            list += &format!(" and {} more", missing.len() - SHOWN);
        }
        return Some(format!(
            "run `{}` has {} of the {} sub-tasks of {} (missing {list}); the leaderboard scores \
             whole benchmarks",
            run.run_id,
            b.subtasks.len() - missing.len(),
            b.subtasks.len(),
            display_name(b.name),
        ));
    }
    None
}

fn build(table: &RecoveryTable, records: &[RunResults]) -> Result<LeaderboardV2Table> {
    let columns: Vec<&RunColumn> = std::iter::once(table.baseline())
        .chain(table.compared())
        .collect();
    let mut per_run: Vec<BTreeMap<String, f64>> = Vec::new();
    let mut limited = Vec::new();
    for c in &columns {
        let run = records
            .iter()
            .find(|r| r.run_id == c.run_id)
            .with_context(|| format!("run `{}` is not among the records", c.run_id))?;
        if let Some(reason) = partial_benchmark(run) {
            anyhow::bail!(reason);
        }
        let (scores, sizes) = run.scores_and_sizes();
        let lb =
            leaderboard_v2(&scores, &sizes).with_context(|| format!("run `{}`", run.run_id))?;
        per_run.push(lb.benchmarks.into_iter().collect());
        if let Some(l) = run.limit {
            limited.push(format!("{} (limit {l})", run.run_id));
        }
    }
    let present = |key: &str| per_run.iter().filter(|m| m.contains_key(key)).count();
    let benchmarks: Vec<String> = BENCHMARKS
        .iter()
        .map(|b| b.name.to_string())
        .filter(|k| present(k) == per_run.len())
        .collect();
    let left_out: Vec<String> = BENCHMARKS
        .iter()
        .map(|b| b.name.to_string())
        .filter(|k| (1..per_run.len()).contains(&present(k)))
        .collect();
    if benchmarks.is_empty() {
        anyhow::bail!("no benchmark is complete in every run");
    }
    let scores = per_run
        .iter()
        .map(|m| {
            let mut row: Vec<f64> = benchmarks.iter().map(|k| m[k]).collect();
            row.push(row.iter().sum::<f64>() / benchmarks.len() as f64);
            row
        })
        .collect();
    let near_random = BENCHMARKS
        .iter()
        .filter(|b| {
            benchmarks.iter().any(|k| k == b.name)
                && b.subtasks
                    .iter()
                    .all(|(task, _, _)| table.is_near_random(task))
        })
        .map(|b| b.name.to_string())
        .collect();
    Ok(LeaderboardV2Table {
        baseline: table.baseline().clone(),
        compared: table.compared().to_vec(),
        benchmarks,
        scores,
        left_out,
        near_random,
        limited,
    })
}

/// Name of the CSV column holding a run's recovery % (as in `report.csv`).
fn recovery_column(label: &str) -> String {
    crate::recovery::recovery_column(label)
}

impl LeaderboardV2Table {
    /// The baseline run's column (the recovery table's).
    pub fn baseline(&self) -> &RunColumn {
        &self.baseline
    }

    /// The compared runs' columns (the recovery table's).
    pub fn compared(&self) -> &[RunColumn] {
        &self.compared
    }

    /// Benchmark keys of the rows (paper order), without the Average.
    pub fn benchmarks(&self) -> &[String] {
        &self.benchmarks
    }

    /// Benchmarks some runs have and others lack: not rows, not in the Average.
    pub fn left_out(&self) -> &[String] {
        &self.left_out
    }

    /// Whether benchmark `key` is flagged near random (every sub-task's baseline is).
    pub fn is_near_random(&self, key: &str) -> bool {
        self.near_random.contains(key)
    }

    /// Row keys: the benchmarks, then [`AVERAGE_KEY`].
    pub fn rows(&self) -> Vec<String> {
        let mut r = self.benchmarks.clone();
        r.push(AVERAGE_KEY.to_string());
        r
    }

    fn row_index(&self, key: &str) -> Option<usize> {
        if key == AVERAGE_KEY || key == AVERAGE_ROW {
            return Some(self.benchmarks.len());
        }
        self.benchmarks.iter().position(|b| b == key)
    }

    fn run_index(&self, label: &str) -> Option<usize> {
        std::iter::once(&self.baseline)
            .chain(&self.compared)
            .position(|c| c.label == label)
    }

    /// Normalised score (percent) of run `label` on benchmark `key` (or [`AVERAGE_KEY`]).
    pub fn score(&self, key: &str, label: &str) -> Option<f64> {
        Some(self.scores[self.run_index(label)?][self.row_index(key)?])
    }

    /// Recovery % of run `label` on `key`: run / baseline × 100 (for the Average, the ratio of
    /// the averages); `None` for the baseline itself or where the baseline's score is 0.
    pub fn recovery(&self, key: &str, label: &str) -> Option<f64> {
        let ri = self.run_index(label).filter(|&i| i > 0)?;
        let i = self.row_index(key)?;
        let (q, b) = (self.scores[ri][i], self.scores[0][i]);
        (b != 0.0).then(|| q / b * 100.0)
    }

    fn row_label(key: &str) -> &str {
        if key == AVERAGE_KEY {
            AVERAGE_ROW
        } else {
            display_name(key)
        }
    }

    /// The section as Markdown: an explanation line, the padded table (scores and recoveries
    /// with two decimals; `n/a` where the baseline's score is 0, `near random` where the
    /// benchmark's baseline is near random), and the notes that apply.
    pub fn to_markdown(&self) -> String {
        let base = &self.baseline.label;
        let mut header = vec!["benchmark".to_string(), base.clone()];
        for c in &self.compared {
            header.push(c.label.clone());
            header.push(recovery_column(&c.label));
        }
        let (mut any_na, mut any_nr) = (false, false);
        let rows: Vec<Vec<String>> = self
            .rows()
            .iter()
            .map(|key| {
                let mut row = vec![
                    Self::row_label(key).to_string(),
                    format!("{:.2}", self.score(key, base).unwrap_or(f64::NAN)),
                ];
                for c in &self.compared {
                    row.push(format!(
                        "{:.2}",
                        self.score(key, &c.label).unwrap_or(f64::NAN)
                    ));
                    row.push(match self.recovery(key, &c.label) {
                        Some(_) if self.is_near_random(key) => {
                            any_nr = true;
                            NEAR_RANDOM.to_string()
                        }
                        Some(r) => format!("{r:.2}"),
                        None => {
                            any_na = true;
                            NOT_AVAILABLE.to_string()
                        }
                    });
                }
                row
            })
            .collect();
        let mut out = format!(
            "Leaderboard-normalised scores against baseline `{}` (run `{}`, model `{}`), as the \
             paper's Table 3: per sub-task max(0, (v − b) / (1 − b)) × 100 with b its random \
             baseline, mean per benchmark (MATH Lvl 5: raw scores weighted by document counts, \
             then normalised); recovery % = run / baseline × 100.\n\n",
            base, self.baseline.run_id, self.baseline.model
        );
        out += &crate::recovery::markdown_table(&header, &rows, 1);
        out.push('\n');
        out += &format!(
            "{AVERAGE_ROW}: mean of the {} benchmark(s) above; its recovery is Average(run) / \
             Average(baseline) × 100 (recovery of the average, as the paper's Table 3).\n",
            self.benchmarks.len()
        );
        if !self.left_out.is_empty() {
            out += &format!(
                "Not in the table (missing from some run): {}.\n",
                self.left_out
                    .iter()
                    .map(|k| display_name(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if any_na {
            out += &format!(
                "{NOT_AVAILABLE}: the baseline's normalised score is 0, so the recovery is \
                 undefined.\n"
            );
        }
        if any_nr {
            out += &format!(
                "{NEAR_RANDOM}: the baseline is close to random guessing on every sub-task of \
                 this benchmark, so its recovery is not quoted; it still counts in the \
                 {AVERAGE_ROW}.\n"
            );
        }
        if !self.limited.is_empty() {
            out += &format!(
                "Runs made with --limit score a subset of the documents, not the leaderboard's: \
                 {}.\n",
                self.limited.join(", ")
            );
        }
        out
    }

    /// The table as a polars frame: `benchmark` (display name), `<baseline>`, then per compared
    /// run `<label>` and `<label> recovery %`; null where a recovery is undefined.
    pub fn frame(&self) -> Result<DataFrame> {
        let rows = self.rows();
        let names: Vec<&str> = rows.iter().map(|k| Self::row_label(k)).collect();
        let mut columns = vec![Column::new("benchmark".into(), names)];
        let base = &self.baseline.label;
        let col = |label: &str| -> Vec<Option<f64>> {
            rows.iter().map(|k| self.score(k, label)).collect()
        };
        columns.push(Column::new(base.as_str().into(), col(base)));
        for c in &self.compared {
            columns.push(Column::new(c.label.as_str().into(), col(&c.label)));
            let rec: Vec<Option<f64>> = rows.iter().map(|k| self.recovery(k, &c.label)).collect();
            columns.push(Column::new(recovery_column(&c.label).into(), rec));
        }
        Ok(DataFrame::new(columns)?)
    }

    /// Write [`Self::frame`] as CSV (polars), atomically; 4 decimals, `n/a` where undefined.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        crate::recovery::write_percent_csv(self.frame()?, path)
    }

    /// The section as JSON: baseline and runs, definitions, the rows (`key`, `benchmark`,
    /// `near_random`, the baseline's `score`, per run `score` and `recovery_pct`, null where
    /// undefined), the benchmarks left out and the runs made with `--limit`.
    pub fn to_json(&self) -> Value {
        let run_json = |r: &RunColumn| json!({"label": r.label, "run_id": r.run_id, "model": r.model, "scheme": r.scheme});
        let rows: Vec<Value> = self
            .rows()
            .iter()
            .map(|k| {
                let runs: serde_json::Map<String, Value> = self
                    .compared
                    .iter()
                    .map(|c| {
                        (
                            c.label.clone(),
                            json!({"score": self.score(k, &c.label), "recovery_pct": self.recovery(k, &c.label)}),
                        )
                    })
                    .collect();
                json!({
                    "key": k,
                    "benchmark": Self::row_label(k),
                    "near_random": self.is_near_random(k),
                    "baseline": {"score": self.score(k, &self.baseline.label)},
                    "runs": runs,
                })
            })
            .collect();
        json!({
            "title": TITLE,
            "baseline": run_json(&self.baseline),
            "runs": self.compared.iter().map(run_json).collect::<Vec<_>>(),
            "units": "percent, leaderboard-normalised",
            "definitions": {
                "score": "per sub-task max(0, (v - b) / (1 - b)) x 100, b = random baseline \
                          (huggingface/leaderboards normalization.md); mean per benchmark; MATH \
                          Lvl 5: raw sub-task scores weighted by document counts, then normalised",
                "average": "mean of the benchmark scores (arXiv 2411.02355, Table 3)",
                "recovery_pct": "run score / baseline score x 100; null when the baseline score \
                                 is 0",
                "average_recovery_pct": "Average(run) / Average(baseline) x 100, the recovery of \
                                         the average",
            },
            "benchmarks": self.benchmarks,
            "left_out": self.left_out,
            "limited_runs": self.limited,
            "rows": rows,
        })
    }

    /// The section as an HTML fragment (`<h2>`, the table, the notes), text escaped.
    pub fn to_html(&self) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_filter("pct", |v: minijinja::Value| -> String {
            f64::try_from(v).map_or(NOT_AVAILABLE.into(), |x| format!("{x:.2}"))
        });
        env.add_template("lb.html", HTML_TEMPLATE)?;
        let mut ctx = self.to_json();
        ctx["average_key"] = json!(AVERAGE_KEY);
        ctx["markdown_note"] = json!(format!(
            "Average: mean of the {} benchmark(s); its recovery is Average(run) / \
             Average(baseline) × 100.",
            self.benchmarks.len()
        ));
        env.get_template("lb.html")?
            .render(minijinja::Value::from_serialize(&ctx))
            .context("rendering the Leaderboard V2 section")
    }
}

const HTML_TEMPLATE: &str = r#"<h2>{{ title }}</h2>
<p class="meta">Leaderboard-normalised scores (per sub-task max(0, (v &minus; b) / (1 &minus; b)) &times; 100, b its random baseline; mean per benchmark) against <code>{{ baseline.label }}</code>, as the paper's Table 3.</p>
<table id="leaderboard-v2">
<thead><tr><th>benchmark</th><th>{{ baseline.label }}</th>{% for r in runs %}<th>{{ r.label }}</th><th>{{ r.label }} recovery %</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr{% if row.key == average_key %} class="avg"{% endif %}><td>{{ row.benchmark }}</td><td class="num">{{ row.baseline.score | pct }}</td>
{% for r in runs %}{% set c = row.runs[r.label] %}<td class="num">{{ c.score | pct }}</td>{% if row.near_random and c.recovery_pct is not none %}<td class="flag">near random</td>{% else %}<td class="num">{{ c.recovery_pct | pct }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
<p class="note">{{ markdown_note }}{% if left_out %} Not in the table (missing from some run): {{ left_out | join(", ") }}.{% endif %}{% if limited_runs %} Runs made with --limit score a subset of the documents: {{ limited_runs | join(", ") }}.{% endif %}</p>
"#;

impl LeaderboardV2Section {
    /// Markdown: `## {TITLE}` and the table, or one quoted note line saying why it is skipped.
    pub fn to_markdown(&self) -> String {
        match self {
            Self::Table(t) => format!("## {TITLE}\n\n{}", t.to_markdown()),
            Self::Skipped(why) => format!("> **note:** {TITLE} section skipped: {why}.\n"),
        }
    }

    /// JSON under `report.json`'s [`KEY`]: the table, or `{"skipped": reason}`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Table(t) => t.to_json(),
            Self::Skipped(why) => json!({"title": TITLE, "skipped": why}),
        }
    }

    /// HTML fragment: the table, or the note.
    pub fn to_html(&self) -> Result<String> {
        match self {
            Self::Table(t) => t.to_html(),
            Self::Skipped(why) => {
                let mut env = minijinja::Environment::new();
                env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
                env.add_template(
                    "skip.html",
                    "<p class=\"note\">{{ title }} section skipped: {{ why }}.</p>\n",
                )?;
                Ok(env
                    .get_template("skip.html")?
                    .render(minijinja::context! { title => TITLE, why => why })?)
            }
        }
    }

    /// The table, when there is one.
    pub fn table(&self) -> Option<&LeaderboardV2Table> {
        match self {
            Self::Table(t) => Some(t),
            Self::Skipped(_) => None,
        }
    }
}
