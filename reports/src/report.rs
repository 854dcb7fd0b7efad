//! `quantlab report RUN...`: load run records, build the recovery table, write the renderings.

use crate::leaderboard::{self, LeaderboardV2Section};
use crate::load::results_file;
use crate::stats::{self, StatsOptions};
use crate::{load_run, recovery_table, RecoveryTable, RunResults};
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `quantlab report` computes besides the table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReportOptions {
    /// Bootstrap and near-random settings.
    pub stats: StatsOptions,
}

/// Load the runs (folders or `results.json` files) and build the recovery table against
/// `baseline` (see [`recovery_table`](crate::recovery_table)) with its statistics: chance levels
/// and the near-random flag from the baseline's `samples_<task>.jsonl`, and for every compared run
/// and task a paired bootstrap over the documents both runs have (matched by `doc_id`). Runs
/// without samples files get no bootstrap (and their tasks no chance level). Errors name the file
/// (and field) of a malformed record or samples file.
pub fn build_report(
    runs: &[PathBuf],
    baseline: Option<&str>,
    opts: &ReportOptions,
) -> Result<RecoveryTable> {
    let records = runs
        .iter()
        .map(|p| load_run(p))
        .collect::<Result<Vec<_>>>()?;
    let dirs: Vec<PathBuf> = runs
        .iter()
        .map(|p| {
            results_file(p)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
        .collect();
    let mut table = recovery_table(&records, baseline)?;
    annotate(&mut table, &records, &dirs, opts)?;
    table.set_warnings(doc_count_mismatches(&records, &table.baseline().run_id));
    Ok(table)
}

/// Attach chance levels, near-random flags and paired bootstraps to `table` (built from
/// `records`, whose run folders are `dirs`).
pub fn annotate(
    table: &mut RecoveryTable,
    records: &[RunResults],
    dirs: &[PathBuf],
    opts: &ReportOptions,
) -> Result<()> {
    let find = |run_id: &str| records.iter().position(|r| r.run_id == run_id);
    let bi = find(&table.baseline().run_id).context("baseline run not among the records")?;
    let base = &records[bi];
    let mut chance = BTreeMap::new();
    let mut base_samples = BTreeMap::new();
    for (task, result) in &base.tasks {
        if let Some(s) = stats::load_task_samples(&dirs[bi], task)? {
            if let Some(c) = stats::chance_level(&s) {
                chance.insert(task.clone(), c);
            }
            let file = dirs[bi].join(format!("samples_{task}.jsonl"));
            base_samples.insert(
                task.clone(),
                stats::metric_by_doc(&s, &result.primary_metric, &file)?,
            );
        }
    }
    table.flag_near_random(&chance, false, opts.stats.near_random_headroom);
    if opts.stats.resamples == 0 {
        return Ok(());
    }
    let compared = table.compared().to_vec();
    for run in &compared {
        let ri = find(&run.run_id).context("compared run not among the records")?;
        for (task, base_docs) in &base_samples {
            let metric = &base.tasks[task].primary_metric;
            let Some(s) = stats::load_task_samples(&dirs[ri], task)? else {
                continue;
            };
            let file = dirs[ri].join(format!("samples_{task}.jsonl"));
            let docs = stats::metric_by_doc(&s, metric, &file)?;
            let (b, q): (Vec<f64>, Vec<f64>) = base_docs
                .iter()
                .filter_map(|(id, &bv)| docs.get(id).map(|&qv| (bv, qv)))
                .unzip();
            if b.is_empty() {
                bail!(
                    "{}: no document in common with the baseline's samples_{task}.jsonl \
                     (matched by doc_id)",
                    file.display()
                );
            }
            let boot = stats::paired_bootstrap(&b, &q, opts.stats.resamples, opts.stats.seed)?;
            table.set_bootstrap(task, &run.label, boot);
        }
    }
    Ok(())
}

/// Tasks where a compared run evaluated another number of documents than the baseline (runs made
/// with different `--limit`): one line each, naming the task, both runs and both counts. Their
/// recoveries compare different documents.
pub fn doc_count_mismatches(records: &[RunResults], baseline_run_id: &str) -> Vec<String> {
    let Some(base) = records.iter().find(|r| r.run_id == baseline_run_id) else {
        return vec![];
    };
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.run_id != baseline_run_id) {
        for (task, t) in &r.tasks {
            if let Some(b) = base.tasks.get(task) {
                if b.n_docs != t.n_docs {
                    out.push(format!(
                        "task {task}: baseline run `{}` has {} documents (limit {}), run `{}` has {} \
                         (limit {}); its recovery compares different documents",
                        base.run_id,
                        b.n_docs,
                        base.limit.map_or("none".into(), |l| l.to_string()),
                        r.run_id,
                        t.n_docs,
                        r.limit.map_or("none".into(), |l| l.to_string())
                    ));
                }
            }
        }
    }
    out
}

/// Names of the files [`write_report`] writes into its output folder (charts only when a font is
/// available; see [`crate::render::ensure_font`]).
pub const REPORT_FILES: &[&str] = &[
    "report.md",
    "report.csv",
    "report_stats.csv",
    "report.json",
    "report.html",
    "recovery.svg",
    "scores.svg",
    "recovery.png",
];

/// `quantlab report` with default options: see [`write_report_with`].
pub fn write_report(
    runs: &[PathBuf],
    baseline: Option<&str>,
    out_dir: Option<&Path>,
) -> Result<String> {
    write_report_with(runs, baseline, out_dir, &ReportOptions::default())
}

/// Build the report ([`build_report`]) and, when `out_dir` is given, write there (each file
/// atomically): `report.md` (recovery table and statistics), `report.csv` (the wide table),
/// `report_stats.csv` (one row per task and run: score, CI, recovery, bootstrap), `report.json`,
/// `report.html` (self-contained), and the charts `recovery.svg`, `scores.svg`, `recovery.png`.
/// Runs of the `leaderboard-v2` suite also get the Open LLM Leaderboard V2 section
/// ([`crate::leaderboard`]) above their per-sub-task table in `report.md` and `report.html`,
/// `report_leaderboard_v2.csv`, and the key `leaderboard_v2` in `report.json` (or, when a
/// benchmark is incomplete, a one-line note and `{"skipped": reason}` instead). With several
/// suites the files are suffixed `-<suite>` (`report-<suite>.csv`, ...) and `report.json` holds
/// one object per suite. Returns the Markdown.
pub fn write_report_with(
    runs: &[PathBuf],
    baseline: Option<&str>,
    out_dir: Option<&Path>,
    opts: &ReportOptions,
) -> Result<String> {
    // Similarity runs (`eval --suite similarity`) have no recovery: they get their own section.
    // The other runs are grouped by suite, each group against its own baseline run.
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let (mut sim_records, mut sim_dirs) = (Vec::new(), Vec::new());
    for p in runs {
        let r = load_run(p)?;
        if crate::similarity::is_similarity(&r) {
            sim_records.push(r);
            sim_dirs.push(
                results_file(p)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            );
        } else {
            groups.entry(r.suite.clone()).or_default().push(p.clone());
        }
    }
    let sim_rows = crate::similarity::rows(&sim_records, &sim_dirs)?;
    if groups.is_empty() && sim_rows.is_empty() {
        bail!(
            "nothing to report: the similarity runs given ({}) only stored their answers; score a \
             model against them with `quantlab eval MODEL --suite similarity --baseline RUN`",
            sim_records
                .iter()
                .map(|r| r.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut tables = Vec::new();
    // Leaderboard V2 section of the `leaderboard-v2` group, by suite.
    let mut lb: BTreeMap<String, LeaderboardV2Section> = BTreeMap::new();
    for (suite, paths) in &groups {
        let t = if groups.len() > 1 {
            build_report(paths, baseline, opts).with_context(|| format!("suite `{suite}`"))?
        } else {
            build_report(paths, baseline, opts)?
        };
        if suite == leaderboard::SUITE {
            let records = paths
                .iter()
                .map(|p| load_run(p))
                .collect::<Result<Vec<_>>>()?;
            lb.insert(suite.clone(), leaderboard::section(&t, &records));
        }
        tables.push((suite.clone(), t));
    }
    let several = tables.len() > 1;
    let mut markdown = String::new();
    for (suite, t) in &tables {
        if several {
            markdown += &format!("# Suite `{suite}`\n\n");
        }
        match lb.get(suite) {
            Some(s @ LeaderboardV2Section::Table(_)) => {
                markdown += &format!("{}\n## Per sub-task\n\n", s.to_markdown());
            }
            Some(s @ LeaderboardV2Section::Skipped(_)) => {
                markdown += &format!("{}\n", s.to_markdown());
            }
            None => {}
        }
        markdown += &format!(
            "{}\n## Statistics\n\n{}",
            t.to_markdown(),
            t.to_markdown_stats()
        );
        if several {
            markdown.push('\n');
        }
    }
    if !sim_rows.is_empty() {
        if !markdown.is_empty() {
            markdown.push('\n');
        }
        markdown += &crate::similarity::to_markdown(&sim_rows);
    }
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create report folder {}", dir.display()))?;
        let text = |name: &str, body: &str| {
            write_atomic(&dir.join(name), |f| {
                f.write_all(body.as_bytes())?;
                Ok(())
            })
        };
        text("report.md", &markdown)?;
        if !sim_rows.is_empty() {
            text(
                "report_similarity.html",
                &crate::similarity::to_html(&sim_rows)?,
            )?;
            let mut df = crate::similarity::to_frame(&sim_rows)?;
            write_atomic(&dir.join("report_similarity.csv"), |file| {
                CsvWriter::new(file)
                    .include_header(true)
                    .with_float_precision(Some(4))
                    .finish(&mut df)?;
                Ok(())
            })?;
        }
        // One suite: report.csv, report.html, ...; several: report-<suite>.csv, ...
        let name = |suite: &str, base: &str, ext: &str| {
            if several {
                format!("{base}-{suite}.{ext}")
            } else {
                format!("{base}.{ext}")
            }
        };
        let mut json = serde_json::Map::new();
        for (suite, table) in &tables {
            table.write_csv(&dir.join(name(suite, "report", "csv")))?;
            write_stats_csv(table, &dir.join(name(suite, "report_stats", "csv")))?;
            let mut tj = table.to_json();
            let mut lead = String::new();
            if let Some(s) = lb.get(suite) {
                if let Some(t) = s.table() {
                    t.write_csv(&dir.join(name(suite, "report_leaderboard_v2", "csv")))?;
                }
                tj[leaderboard::KEY] = s.to_json();
                lead = s.to_html()?;
            }
            json.insert(suite.clone(), tj);
            text(
                &name(suite, "report", "html"),
                &crate::render::to_html_sections(
                    table,
                    &lead,
                    &if sim_rows.is_empty() {
                        String::new()
                    } else {
                        crate::similarity::html_section(&sim_rows)?
                    },
                )?,
            )?;
            match crate::render::recovery_svg(table) {
                Ok(svg) => {
                    text(&name(suite, "recovery", "svg"), &svg)?;
                    text(
                        &name(suite, "scores", "svg"),
                        &crate::render::scores_svg(table)?,
                    )?;
                    crate::render::write_recovery_png(
                        table,
                        &dir.join(name(suite, "recovery", "png")),
                    )?;
                }
                Err(e) => eprintln!("warning: charts skipped: {e:#}"),
            }
        }
        let mut json = match (several, json.values().next()) {
            (false, Some(t)) => t.clone(),
            _ => serde_json::Value::Object(json),
        };
        if !sim_rows.is_empty() {
            json["similarity"] = serde_json::to_value(&sim_rows)?;
        }
        text(
            "report.json",
            &(serde_json::to_string_pretty(&json)? + "\n"),
        )?;
    }
    Ok(markdown)
}

/// Long-format statistics CSV (polars): one row per task (Average included) and run with score,
/// stderr, 95% CI, recovery, bootstrap difference and its interval, p-value, significance,
/// recovery interval, matched documents, chance level and the near-random flag. Percent units;
/// empty cells where a value does not apply.
pub fn write_stats_csv(table: &RecoveryTable, path: &Path) -> Result<()> {
    let mut cols: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    let (mut task_c, mut run_c, mut sig_c, mut nr_c) = (vec![], vec![], vec![], vec![]);
    let names = [
        "score",
        "stderr",
        "ci95_lo",
        "ci95_hi",
        "recovery_pct",
        "diff_pp",
        "diff_ci_lo",
        "diff_ci_hi",
        "p_value",
        "recovery_ci_lo",
        "recovery_ci_hi",
        "docs_paired",
        "chance_pct",
    ];
    for task in table.tasks() {
        let runs = std::iter::once(table.baseline()).chain(table.compared().iter());
        for run in runs {
            let l = run.label.as_str();
            let b = table.bootstrap(&task, l);
            let ci = table.ci95(&task, l);
            let vals = [
                table.score(&task, l),
                table.stderr(&task, l),
                ci.map(|c| c.0),
                ci.map(|c| c.1),
                table.recovery(&task, l),
                b.map(|b| b.diff_pp),
                b.map(|b| b.diff_ci_lo),
                b.map(|b| b.diff_ci_hi),
                b.map(|b| b.p_value),
                b.and_then(|b| b.recovery_ci_lo),
                b.and_then(|b| b.recovery_ci_hi),
                b.map(|b| b.n_docs as f64),
                table.chance(&task).map(|c| c * 100.0),
            ];
            for (n, v) in names.iter().zip(vals) {
                cols.entry(*n).or_default().push(v);
            }
            task_c.push(task.clone());
            run_c.push(run.label.clone());
            sig_c.push(b.map(|b| b.significant));
            nr_c.push(table.is_near_random(&task));
        }
    }
    let mut columns = vec![
        Column::new("task".into(), task_c),
        Column::new("run".into(), run_c),
    ];
    for n in names {
        columns.push(Column::new(n.into(), cols.remove(n).unwrap_or_default()));
    }
    columns.push(Column::new("significant".into(), sig_c));
    columns.push(Column::new("near_random".into(), nr_c));
    let mut df = DataFrame::new(columns)?;
    write_atomic(path, |file| {
        CsvWriter::new(file)
            .include_header(true)
            .with_float_precision(Some(4))
            .finish(&mut df)?;
        Ok(())
    })
}

/// Write `path` through a temporary file in the same folder, then rename it over `path`, so a
/// reader never sees a half-written file.
pub(crate) fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".quantlab-report-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
