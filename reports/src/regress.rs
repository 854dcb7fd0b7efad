//! The nightly regression gate (`quantlab regress`): compare this night's recovery % per task and
//! per suite average with a stored baseline snapshot and say what moved.
//!
//! - A [`Snapshot`] is what a passing night leaves behind: per compressed scheme, the recovery %
//!   of every task and of the suite average against the BF16 run of the same night, with the
//!   bootstrap 95% interval of each task's recovery when samples files were there, the near-random
//!   flags, and the version of every task spec. `--write-baseline FILE` writes one; `regress.json`
//!   (the summary) carries one under `snapshot`, so a night's summary can be promoted to the next
//!   baseline as it is.
//! - Each stored entry is checked ([`compare`]): `delta = current − stored` in percentage points
//!   of recovery. A *regression* is `delta < −tolerance` (default 1 pp; per task or suite from the
//!   `--per-task` file); with `require_significant` it must also lie outside the current 95%
//!   interval of that recovery. Entries whose baseline is near random are reported, not gated. An
//!   entry missing tonight is a failure; a new one is reported.
//! - A `leaderboard-v2` night also gives the recoveries of its Open LLM Leaderboard V2 view
//!   ([`crate::leaderboard`]): per benchmark of the leaderboard-normalised score and of their
//!   Average ([`EntryKind::LeaderboardV2`]), so a gate can hold "BBH recovery" as the paper's
//!   Table 3 reports it. A night whose benchmarks are incomplete gets none (a warning says why),
//!   so a stored baseline that has them reports them missing.
//! - A snapshot made with another version of a task spec is refused ([`check_versions`]): the
//!   recoveries measure different prompts or metrics and cannot be compared.

use crate::recovery::AVERAGE_ROW;
use crate::report::{annotate, ReportOptions};
use crate::{load_run, recovery_table, RunResults};
use anyhow::{anyhow, bail, Context, Result};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Value of [`Snapshot::format`].
pub const SNAPSHOT_FORMAT: &str = "quantlab-recovery-snapshot/1";

/// Default tolerance, percentage points of recovery.
pub const DEFAULT_TOLERANCE_PP: f64 = 1.0;

/// Whether an entry is one task or a suite's average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// One task's recovery (Table 10 of the paper).
    Task,
    /// The recovery of the suite's average score (Table 2).
    Suite,
    /// A similarity mean (`eval --suite similarity`): the compressed model's answers against the
    /// BF16 answers, in percent (ROUGE-1 F, ROUGE-L F, BERTScore F1, STS 0–1). Not a recovery:
    /// `recovery_pct` holds the mean score itself, and a drop is gated the same way.
    Similarity,
    /// A recovery of the Open LLM Leaderboard V2 view of a `leaderboard-v2` night
    /// ([`crate::leaderboard`]): a benchmark's leaderboard-normalised score (name `ifeval`, `bbh`,
    /// `math_lvl5`, `gpqa`, `musr`, `mmlu_pro`) or their Average (name `average`), as the paper's
    /// Table 3 reports them.
    LeaderboardV2,
}

/// One recovery in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Scheme of the compressed run (`w4a16`, `w8a8-fp8`, ...).
    pub scheme: String,
    /// Task or suite.
    pub kind: EntryKind,
    /// Task name, or suite name for [`EntryKind::Suite`].
    pub name: String,
    /// Metric the recovery is of (the task's primary metric; `average` for suites).
    pub metric: String,
    /// Recovery % against the BF16 run of the same snapshot ([`EntryKind::Similarity`]: the
    /// similarity mean in percent).
    pub recovery_pct: f64,
    /// Bootstrap 95% interval of the recovery, when the samples files were there.
    #[serde(default)]
    pub ci95: Option<[f64; 2]>,
    /// Whether the baseline is near random on this task (not gated).
    #[serde(default)]
    pub near_random: bool,
}

/// The recoveries of one night, as stored for the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_FORMAT`].
    pub format: String,
    /// quantlab version that wrote it.
    pub quantlab_version: String,
    /// RFC 3339 time of writing.
    pub created_at: String,
    /// `run_id` of the BF16 run the recoveries are against.
    pub baseline_run: String,
    /// Model of that run.
    pub baseline_model: String,
    /// Task name -> version of its spec (`version` in `tasks/specs/<task>.yaml`).
    pub task_versions: BTreeMap<String, String>,
    /// Every recovery.
    pub entries: Vec<Entry>,
}

/// Run folders (those holding a `results.json`) directly under `dir`, sorted by name.
pub fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read runs folder {}", dir.display()))?
    {
        let p = e
            .with_context(|| format!("cannot read runs folder {}", dir.display()))?
            .path();
        if p.join(crate::load::RESULTS_FILE).is_file() {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        bail!(
            "{}: no run folders (sub-folders holding results.json)",
            dir.display()
        );
    }
    Ok(out)
}

/// Build the snapshot of the runs in `runs_dir`, suite by suite: the runs of one suite (their
/// `suite` field) are compared with that suite's BF16 run (unless `baseline` names another), so a
/// night may hold a leaderboard suite, a code suite and the similarity suite side by side.
/// Similarity runs give their means ([`EntryKind::Similarity`]). Bootstraps per `opts`.
///
/// Errors: no runs; a suite without or with several baseline runs; two compressed runs of one
/// suite with the same scheme; runs whose task versions disagree; nothing to gate (only baseline
/// runs, or similarity runs that only stored answers).
pub fn snapshot(runs_dir: &Path, baseline: Option<&str>, opts: &ReportOptions) -> Result<Snapshot> {
    let all_dirs = run_dirs(runs_dir)?;
    let all = all_dirs
        .iter()
        .map(|p| load_run(p))
        .collect::<Result<Vec<_>>>()?;
    let task_versions = task_versions(&all, &all_dirs)?;
    // Similarity runs are gated on their means; the others on recoveries, per suite.
    let mut groups: BTreeMap<String, (Vec<RunResults>, Vec<PathBuf>)> = BTreeMap::new();
    let (mut sim_records, mut sim_dirs) = (Vec::new(), Vec::new());
    for (r, d) in all.into_iter().zip(all_dirs) {
        if crate::similarity::is_similarity(&r) {
            sim_records.push(r);
            sim_dirs.push(d);
        } else {
            let g = groups.entry(r.suite.clone()).or_default();
            g.0.push(r);
            g.1.push(d);
        }
    }
    let mut entries = Vec::new();
    let mut baselines: Vec<(String, String)> = Vec::new();
    for (suite, (records, dirs)) in &groups {
        let mut table = recovery_table(records, baseline)
            .with_context(|| format!("suite `{suite}` in {}", runs_dir.display()))?;
        annotate(&mut table, records, dirs, opts)?;
        let mismatches = crate::report::doc_count_mismatches(records, &table.baseline().run_id);
        if !mismatches.is_empty() {
            bail!(
                "{}: suite `{suite}`: {}; evaluate every run of a night with the same --limit",
                runs_dir.display(),
                mismatches.join("; ")
            );
        }
        let base = records
            .iter()
            .find(|r| r.run_id == table.baseline().run_id)
            .expect("baseline is one of the records");
        baselines.push((base.run_id.clone(), base.model.name.clone()));
        let mut seen = BTreeMap::new();
        for run in table.compared() {
            if let Some(other) = seen.insert(run.scheme.clone(), run.run_id.clone()) {
                bail!(
                    "{}: runs `{other}` and `{}` of suite `{suite}` both have scheme `{}`; the \
                     gate compares one run per scheme and suite",
                    runs_dir.display(),
                    run.run_id,
                    run.scheme
                );
            }
            for task in table.tasks() {
                let Some(rec) = table.recovery(&task, &run.label) else {
                    continue;
                };
                let is_avg = task == AVERAGE_ROW;
                let boot = table.bootstrap(&task, &run.label);
                entries.push(Entry {
                    scheme: run.scheme.clone(),
                    kind: if is_avg {
                        EntryKind::Suite
                    } else {
                        EntryKind::Task
                    },
                    name: if is_avg { suite.clone() } else { task.clone() },
                    metric: if is_avg {
                        "average".into()
                    } else {
                        base.tasks[&task].primary_metric.clone()
                    },
                    recovery_pct: rec,
                    ci95: boot.and_then(|b| Some([b.recovery_ci_lo?, b.recovery_ci_hi?])),
                    near_random: !is_avg && table.is_near_random(&task),
                });
            }
        }
        if suite == crate::leaderboard::SUITE {
            match crate::leaderboard::section(&table, records) {
                crate::leaderboard::LeaderboardV2Section::Table(lb) => {
                    entries.extend(leaderboard_entries(&lb));
                }
                crate::leaderboard::LeaderboardV2Section::Skipped(why) => eprintln!(
                    "warning: {}: suite `{suite}`: no {} entries: {why}",
                    runs_dir.display(),
                    crate::leaderboard::TITLE
                ),
            }
        }
    }
    entries.extend(similarity_entries(runs_dir, &sim_records, &sim_dirs)?);
    if let Some(b) = sim_records.iter().find(|r| r.tasks.is_empty()) {
        baselines.push((b.run_id.clone(), b.model.name.clone()));
    }
    if entries.is_empty() {
        bail!(
            "{}: nothing to gate: no compressed run beside the baseline run(s) {}; a snapshot \
             without entries would pass every night",
            runs_dir.display(),
            baselines
                .iter()
                .map(|(id, _)| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let join = |f: &dyn Fn(&(String, String)) -> &str| {
        let mut v: Vec<&str> = baselines.iter().map(f).collect();
        v.dedup();
        v.join(", ")
    };
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT.into(),
        quantlab_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339(),
        baseline_run: join(&|b| b.0.as_str()),
        baseline_model: join(&|b| b.1.as_str()),
        task_versions,
        entries,
    })
}

/// The Leaderboard V2 recoveries of `lb` as gate entries ([`EntryKind::LeaderboardV2`]): per
/// compressed run, one per benchmark (metric `normalised`) and one for the Average (name and
/// metric `average`; the recovery of the average). Undefined recoveries (baseline score 0) give
/// no entry, as for tasks.
fn leaderboard_entries(lb: &crate::leaderboard::LeaderboardV2Table) -> Vec<Entry> {
    let mut out = Vec::new();
    for run in lb.compared() {
        for key in lb.rows() {
            let Some(rec) = lb.recovery(&key, &run.label) else {
                continue;
            };
            let is_avg = key == crate::leaderboard::AVERAGE_KEY;
            out.push(Entry {
                scheme: run.scheme.clone(),
                kind: EntryKind::LeaderboardV2,
                metric: if is_avg { "average" } else { "normalised" }.into(),
                name: key.clone(),
                recovery_pct: rec,
                ci95: None,
                near_random: lb.is_near_random(&key),
            });
        }
    }
    out
}

/// The similarity means of the scored similarity runs as gate entries (one per scheme and metric
/// of [`crate::similarity::COLUMNS`]), with their 95% intervals. Errors: two scored runs with the
/// same scheme.
fn similarity_entries(
    runs_dir: &Path,
    records: &[RunResults],
    dirs: &[PathBuf],
) -> Result<Vec<Entry>> {
    let rows = crate::similarity::rows(records, dirs)?;
    // A scored run belongs to tonight only with its baseline run beside it.
    for r in &rows {
        if !records.iter().any(|x| x.run_id == r.baseline_run) {
            bail!(
                "{}: similarity run `{}` was scored against run `{}`, which is not in this folder; \
                 put tonight's BF16 similarity run beside it",
                runs_dir.display(),
                r.run_id,
                r.baseline_run
            );
        }
    }
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for r in rows {
        if let Some(other) = seen.insert(r.scheme.clone(), r.run_id.clone()) {
            bail!(
                "{}: similarity runs `{other}` and `{}` both have scheme `{}`; the gate compares \
                 one run per scheme",
                runs_dir.display(),
                r.run_id,
                r.scheme
            );
        }
        for ((metric, _), cell) in crate::similarity::COLUMNS.iter().zip(&r.cells) {
            if let Some(c) = cell {
                out.push(Entry {
                    scheme: r.scheme.clone(),
                    kind: EntryKind::Similarity,
                    name: metric.to_string(),
                    metric: metric.to_string(),
                    recovery_pct: c.mean,
                    ci95: c.ci95,
                    near_random: false,
                });
            }
        }
    }
    Ok(out)
}

/// Task name -> spec version over all runs; an error when two runs evaluated a task with
/// different versions (naming both run folders).
fn task_versions(records: &[RunResults], dirs: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    let mut out: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        for (task, t) in &r.tasks {
            match out.get(task) {
                Some((v, j)) if *v != t.version => bail!(
                    "task `{task}` has version {v} in {} but {} in {}; evaluate every run with \
                     the same task specs",
                    dirs[*j].display(),
                    t.version,
                    dirs[i].display()
                ),
                Some(_) => {}
                None => {
                    out.insert(task.clone(), (t.version.clone(), i));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

/// Read a stored baseline: a [`Snapshot`] file, or a `regress.json` summary (its `snapshot`).
/// Errors name the file and the offending field.
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read baseline {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))?;
    let value = match value.get("snapshot") {
        Some(s) if value.get("format").is_none() => s.clone(),
        _ => value,
    };
    let snap: Snapshot = serde_path_to_error::deserialize(value).map_err(|e| {
        anyhow!(
            "{}: not a quantlab recovery snapshot: field `{}`: {}",
            path.display(),
            e.path(),
            e.inner()
        )
    })?;
    if snap.format != SNAPSHOT_FORMAT {
        bail!(
            "{}: field `format` is `{}`; this quantlab reads `{SNAPSHOT_FORMAT}`",
            path.display(),
            snap.format
        );
    }
    Ok(snap)
}

/// Refuse a baseline whose task versions differ from tonight's (tasks in both). The message names
/// the file, the tasks and both versions.
pub fn check_versions(stored: &Snapshot, current: &Snapshot, baseline_file: &Path) -> Result<()> {
    let diffs: Vec<String> = stored
        .task_versions
        .iter()
        .filter_map(|(task, v)| {
            let now = current.task_versions.get(task)?;
            (now != v).then(|| format!("`{task}` (baseline {v}, runs {now})"))
        })
        .collect();
    if !diffs.is_empty() {
        bail!(
            "refusing baseline {}: it was made with other task versions: {}; recoveries of \
             different task versions are not comparable. Make a new baseline with \
             `quantlab regress --runs DIR --write-baseline FILE`",
            baseline_file.display(),
            diffs.join(", ")
        );
    }
    Ok(())
}

/// Per task or suite tolerances (`--per-task FILE`): a YAML or JSON mapping of task or suite
/// name to percentage points, e.g. `gsm8k: 3.0`; a key `kind:name` (`leaderboard_v2:bbh`) applies
/// to that kind of entry only and wins over the bare name. Errors name the file and the entry.
pub fn read_tolerances(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read tolerances {}", path.display()))?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid YAML/JSON: {e}", path.display()))?;
    let map = value.as_mapping().ok_or_else(|| {
        anyhow!(
            "{}: expected a mapping of task or suite name to tolerance in pp",
            path.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let name = k
            .as_str()
            .ok_or_else(|| anyhow!("{}: key {k:?} is not a task name", path.display()))?;
        let tol = v.as_f64().filter(|t| t.is_finite() && *t >= 0.0).ok_or_else(|| {
            anyhow!(
                "{}: field `{name}`: expected a non-negative number of percentage points, got {v:?}",
                path.display()
            )
        })?;
        out.insert(name.to_string(), tol);
    }
    Ok(out)
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within tolerance.
    Ok,
    /// Dropped by more than the tolerance (and beyond the CI when that is required).
    Regressed,
    /// Rose by more than the tolerance (reported, not a failure).
    Improved,
    /// Dropped beyond tolerance but within the CI while significance is required.
    Noise,
    /// The baseline is near random here: reported, not gated.
    NearRandom,
    /// In the stored baseline but not tonight: a failure.
    Missing,
    /// Tonight but not in the stored baseline: reported.
    New,
}

/// One compared entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Scheme of the compressed run.
    pub scheme: String,
    /// Task or suite.
    pub kind: EntryKind,
    /// Task or suite name.
    pub name: String,
    /// Stored recovery %.
    pub stored_pct: Option<f64>,
    /// Tonight's recovery %.
    pub current_pct: Option<f64>,
    /// current − stored, percentage points.
    pub delta_pp: Option<f64>,
    /// Tolerance applied, percentage points.
    pub tolerance_pp: f64,
    /// Tonight's bootstrap 95% interval of the recovery, when known.
    pub current_ci95: Option<[f64; 2]>,
    /// Whether the stored value lies outside tonight's interval.
    pub beyond_ci: bool,
    /// Verdict.
    pub status: Status,
}

impl Check {
    /// Whether this check fails the gate.
    pub fn fails(&self) -> bool {
        matches!(self.status, Status::Regressed | Status::Missing)
    }

    /// `scheme/kind:name`, the test-case name in JUnit.
    pub fn id(&self) -> String {
        format!("{}/{}:{}", self.scheme, self.kind.as_str(), self.name)
    }
}

impl EntryKind {
    /// The kind's name as in JSON and in [`Check::id`]: `task`, `suite`, `similarity`,
    /// `leaderboard_v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Task => "task",
            EntryKind::Suite => "suite",
            EntryKind::Similarity => "similarity",
            EntryKind::LeaderboardV2 => "leaderboard_v2",
        }
    }
}

/// Tolerance of entry `kind`/`name`: the `--per-task` value for `kind:name` (e.g.
/// `leaderboard_v2:ifeval`, to tell IFEval's normalised benchmark from the task `ifeval`), else
/// for `name`, else the default.
fn tolerance(opts: &GateOptions, kind: EntryKind, name: &str) -> f64 {
    opts.per_task
        .get(&format!("{}:{name}", kind.as_str()))
        .or_else(|| opts.per_task.get(name))
        .copied()
        .unwrap_or(opts.tolerance_pp)
}

/// How the gate judges a drop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateOptions {
    /// Default tolerance, pp of recovery ([`DEFAULT_TOLERANCE_PP`] when built by the CLI).
    pub tolerance_pp: f64,
    /// Task or suite name -> tolerance, overriding the default.
    pub per_task: BTreeMap<String, f64>,
    /// Count a drop only when the stored value is also outside tonight's 95% interval (entries
    /// without an interval are judged on the tolerance alone).
    pub require_significant: bool,
}

/// Compare every entry of `stored` with `current` (see the module documentation).
pub fn compare(stored: &Snapshot, current: &Snapshot, opts: &GateOptions) -> Vec<Check> {
    let key = |e: &Entry| (e.scheme.clone(), e.kind, e.name.clone());
    let now: BTreeMap<_, &Entry> = current.entries.iter().map(|e| (key(e), e)).collect();
    let before: BTreeMap<_, &Entry> = stored.entries.iter().map(|e| (key(e), e)).collect();
    let mut checks = Vec::new();
    for (k, s) in &before {
        let tol = tolerance(opts, s.kind, &s.name);
        let c = now.get(k);
        let (current_pct, ci) = (c.map(|c| c.recovery_pct), c.and_then(|c| c.ci95));
        let delta = current_pct.map(|v| v - s.recovery_pct);
        let beyond_ci = ci.is_some_and(|[lo, hi]| s.recovery_pct < lo || s.recovery_pct > hi);
        let status = match (c, delta) {
            (None, _) | (_, None) => Status::Missing,
            (Some(c), _) if c.near_random || s.near_random => Status::NearRandom,
            (Some(_), Some(d)) if d < -tol => {
                if opts.require_significant && ci.is_some() && !beyond_ci {
                    Status::Noise
                } else {
                    Status::Regressed
                }
            }
            (Some(_), Some(d)) if d > tol => Status::Improved,
            _ => Status::Ok,
        };
        checks.push(Check {
            scheme: s.scheme.clone(),
            kind: s.kind,
            name: s.name.clone(),
            stored_pct: Some(s.recovery_pct),
            current_pct,
            delta_pp: delta,
            tolerance_pp: tol,
            current_ci95: ci,
            beyond_ci,
            status,
        });
    }
    for (k, c) in &now {
        if !before.contains_key(k) {
            checks.push(Check {
                scheme: c.scheme.clone(),
                kind: c.kind,
                name: c.name.clone(),
                stored_pct: None,
                current_pct: Some(c.recovery_pct),
                delta_pp: None,
                tolerance_pp: tolerance(opts, c.kind, &c.name),
                current_ci95: c.ci95,
                beyond_ci: false,
                status: Status::New,
            });
        }
    }
    checks
}

fn fmt_opt(v: Option<f64>, signed: bool) -> String {
    match v {
        Some(v) if signed => format!("{v:+.2}"),
        Some(v) => format!("{v:.2}"),
        None => "—".into(),
    }
}

/// Human-readable lines: what moved beyond tolerance or beyond its CI, and the verdict.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    let moved: Vec<&Check> = checks
        .iter()
        .filter(|c| c.status != Status::Ok || c.beyond_ci)
        .collect();
    for c in &moved {
        let what = match c.status {
            Status::Regressed => "REGRESSED",
            Status::Missing => "MISSING",
            Status::Improved => "improved",
            Status::Noise => "dropped within CI (not counted)",
            Status::NearRandom => "near random (not gated)",
            Status::New => "new (not in baseline)",
            Status::Ok => "within tolerance",
        };
        let ci = c
            .current_ci95
            .map_or(String::new(), |[lo, hi]| format!(", CI [{lo:.2}, {hi:.2}]"));
        let quantity = if c.kind == EntryKind::Similarity {
            "mean"
        } else {
            "recovery"
        };
        out.push_str(&format!(
            "{:<12} {}: {quantity} {} -> {} % ({} pp, tolerance {:.2} pp{ci}{})\n",
            what,
            c.id(),
            fmt_opt(c.stored_pct, false),
            fmt_opt(c.current_pct, false),
            fmt_opt(c.delta_pp, true),
            c.tolerance_pp,
            if c.beyond_ci {
                "; stored value outside tonight's 95% CI"
            } else {
                ""
            }
        ));
    }
    let failed = checks.iter().filter(|c| c.fails()).count();
    let count = |st: Status| checks.iter().filter(|c| c.status == st).count();
    let (new, near_random) = (count(Status::New), count(Status::NearRandom));
    let really_moved = moved
        .iter()
        .filter(|c| !matches!(c.status, Status::New | Status::NearRandom))
        .count();
    out.push_str(&format!(
        "{} of {} checks failed; {} moved beyond tolerance or CI",
        failed,
        checks.len(),
        really_moved
    ));
    if new + near_random > 0 {
        out.push_str(&format!(
            "; not gated: {new} new, {near_random} near random"
        ));
    }
    out.push('\n');
    out
}

/// JUnit XML: one `<testsuite>` per scheme, one `<testcase>` per check; regressions and missing
/// entries are `<failure>`, near-random ones `<skipped>`.
pub fn junit_xml(checks: &[Check]) -> Result<String> {
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let failures = checks.iter().filter(|c| c.fails()).count();
    let skipped = checks
        .iter()
        .filter(|c| c.status == Status::NearRandom)
        .count();
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "quantlab regress"));
    root.push_attribute(("tests", checks.len().to_string().as_str()));
    root.push_attribute(("failures", failures.to_string().as_str()));
    root.push_attribute(("skipped", skipped.to_string().as_str()));
    w.write_event(Event::Start(root))?;
    let mut schemes: Vec<&str> = checks.iter().map(|c| c.scheme.as_str()).collect();
    schemes.dedup();
    schemes.sort();
    schemes.dedup();
    for scheme in schemes {
        let mine: Vec<&Check> = checks.iter().filter(|c| c.scheme == scheme).collect();
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", format!("recovery.{scheme}").as_str()));
        suite.push_attribute(("tests", mine.len().to_string().as_str()));
        suite.push_attribute((
            "failures",
            mine.iter()
                .filter(|c| c.fails())
                .count()
                .to_string()
                .as_str(),
        ));
        w.write_event(Event::Start(suite))?;
        for c in mine {
            let mut case = BytesStart::new("testcase");
            case.push_attribute(("classname", format!("recovery.{scheme}").as_str()));
            case.push_attribute(("name", c.id().as_str()));
            let message = format!(
                "recovery {} -> {} % ({} pp, tolerance {:.2} pp)",
                fmt_opt(c.stored_pct, false),
                fmt_opt(c.current_pct, false),
                fmt_opt(c.delta_pp, true),
                c.tolerance_pp
            );
            let child = match c.status {
                Status::Regressed | Status::Missing => Some(("failure", "regression")),
                Status::NearRandom => Some(("skipped", "near random")),
                _ => None,
            };
            match child {
                None => w.write_event(Event::Empty(case))?,
                Some((tag, kind)) => {
                    w.write_event(Event::Start(case))?;
                    let mut el = BytesStart::new(tag);
                    el.push_attribute(("message", message.as_str()));
                    el.push_attribute(("type", kind));
                    w.write_event(Event::Start(el))?;
                    w.write_event(Event::Text(BytesText::new(&message)))?;
                    w.write_event(Event::End(BytesEnd::new(tag)))?;
                    w.write_event(Event::End(BytesEnd::new("testcase")))?;
                }
            }
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let mut out = String::from_utf8(w.into_inner())?;
    out.push('\n');
    Ok(out)
}

/// What [`run_gate`] decided and where it wrote.
#[derive(Debug, Clone)]
pub struct GateResult {
    /// Every check.
    pub checks: Vec<Check>,
    /// Whether no check failed.
    pub passed: bool,
    /// Text for the terminal.
    pub text: String,
}

/// `quantlab regress`: snapshot the runs in `runs_dir`, refuse a baseline from other task
/// versions, compare, write the JSON summary (with tonight's snapshot under `snapshot`) and the
/// JUnit XML (both atomically).
pub fn run_gate(
    baseline_file: &Path,
    runs_dir: &Path,
    baseline_run: Option<&str>,
    gate: &GateOptions,
    report: &ReportOptions,
    summary_path: &Path,
    junit_path: &Path,
) -> Result<GateResult> {
    let stored = read_snapshot(baseline_file)?;
    if stored.entries.is_empty() {
        bail!(
            "{}: the stored baseline has no entries, so it would pass any night; write a new one \
             from a night with compressed runs (`quantlab regress --runs DIR --write-baseline FILE`)",
            baseline_file.display()
        );
    }
    let current = snapshot(runs_dir, baseline_run, report)?;
    // A tolerance for a name that is nowhere is a typo that would silently gate with the default.
    for name in gate.per_task.keys() {
        let known = |s: &Snapshot| {
            s.entries
                .iter()
                .any(|e| &e.name == name || *name == format!("{}:{}", e.kind.as_str(), e.name))
        };
        if !known(&stored) && !known(&current) {
            let mut names: Vec<&str> = stored
                .entries
                .iter()
                .chain(&current.entries)
                .map(|e| e.name.as_str())
                .collect();
            names.sort();
            names.dedup();
            bail!(
                "per-task tolerance for `{name}`: no task or suite of that name in the baseline or \
                 tonight's runs (names: {})",
                names.join(", ")
            );
        }
    }
    check_versions(&stored, &current, baseline_file)?;
    let checks = compare(&stored, &current, gate);
    let passed = !checks.iter().any(Check::fails);
    let text = render_text(&checks);
    let summary = serde_json::json!({
        "passed": passed,
        "failures": checks.iter().filter(|c| c.fails()).count(),
        "baseline_file": baseline_file.display().to_string(),
        "runs_dir": runs_dir.display().to_string(),
        "tolerance_pp": gate.tolerance_pp,
        "per_task_tolerance_pp": gate.per_task,
        "require_significant": gate.require_significant,
        "baseline_snapshot": {"created_at": stored.created_at, "baseline_run": stored.baseline_run},
        "checks": checks,
        "snapshot": current,
    });
    write_text(
        summary_path,
        &(serde_json::to_string_pretty(&summary)? + "\n"),
    )?;
    write_text(junit_path, &junit_xml(&checks)?)?;
    Ok(GateResult {
        checks,
        passed,
        text,
    })
}

/// Write `snapshot` as JSON to `path` (atomically).
pub fn write_snapshot(snapshot: &Snapshot, path: &Path) -> Result<()> {
    write_text(path, &(serde_json::to_string_pretty(snapshot)? + "\n"))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    crate::report::write_atomic(path, |f| {
        f.write_all(text.as_bytes())?;
        Ok(())
    })
}
