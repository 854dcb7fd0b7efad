//! The similarity section of `quantlab report`: for each run of `eval --suite similarity` that was
//! scored against a baseline run, the means over the prompts of ROUGE-1 F, ROUGE-L F, BERTScore F1
//! and STS (0–1, the paper's Figure 6 scale), each with its 95% confidence interval (Student t
//! over the prompts, from the run's `similarity.json`; mean ± 1.96 × stderr from `results.json`
//! when that file is absent). Scores are in percent. Similarity runs have no recovery: the BF16
//! answers are the reference, so they are not rows of the recovery table.

use anyhow::{Context, Result};
use polars::prelude::*;
use quantlab_evaluate::results::RunResults;
use quantlab_evaluate::similarity::suite::SUITE;
use serde::Serialize;
use std::path::Path;

/// The metrics shown, with their column labels.
pub const COLUMNS: [(&str, &str); 4] = [
    ("rouge1_f", "ROUGE-1 F"),
    ("rougeL_f", "ROUGE-L F"),
    ("bertscore_f1", "BERTScore F1"),
    ("sts_01", "STS (0-1)"),
];

/// Whether a run record is a similarity run (its suite is `similarity`).
pub fn is_similarity(r: &RunResults) -> bool {
    r.suite == SUITE
}

/// One metric of one run, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cell {
    /// Mean over the prompts.
    pub mean: f64,
    /// 95% interval, when there are at least two prompts.
    pub ci95: Option<[f64; 2]>,
}

/// One scored similarity run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarityRow {
    /// Run folder name.
    pub run_id: String,
    /// Model name.
    pub model: String,
    /// Its scheme.
    pub scheme: String,
    /// The baseline run it was scored against (`backend.similarity_baseline.run_id`).
    pub baseline_run: String,
    /// Prompts scored.
    pub n: usize,
    /// Per [`COLUMNS`] entry (absent when not computed).
    pub cells: Vec<Option<Cell>>,
}

/// The rows for the similarity runs among `records` (whose run folders are `dirs`). Runs that only
/// stored their answers (the baseline's own run) have no row.
///
/// Errors: an unreadable or malformed `similarity.json` (naming it).
pub fn rows(records: &[RunResults], dirs: &[impl AsRef<Path>]) -> Result<Vec<SimilarityRow>> {
    let mut out = Vec::new();
    for (r, dir) in records.iter().zip(dirs) {
        if !is_similarity(r) {
            continue;
        }
        let Some(task) = r.tasks.get(SUITE) else {
            continue;
        };
        let file = dir.as_ref().join("similarity.json");
        let detail: Option<serde_json::Value> = if file.is_file() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not JSON", file.display()))?,
            )
        } else {
            None
        };
        let cells = COLUMNS
            .iter()
            .map(|(m, _)| {
                let from_detail = detail.as_ref().and_then(|d| {
                    let v = &d["metrics"][*m];
                    Some(Cell {
                        mean: v["mean"].as_f64()? * 100.0,
                        ci95: v["ci95"].as_array().and_then(|a| {
                            Some([a.first()?.as_f64()? * 100.0, a.get(1)?.as_f64()? * 100.0])
                        }),
                    })
                });
                from_detail.or_else(|| {
                    task.metrics.get(*m).map(|v| Cell {
                        mean: v.value * 100.0,
                        ci95: (task.n_docs >= 2).then_some([
                            (v.value - 1.96 * v.stderr) * 100.0,
                            (v.value + 1.96 * v.stderr) * 100.0,
                        ]),
                    })
                })
            })
            .collect();
        out.push(SimilarityRow {
            run_id: r.run_id.clone(),
            model: r.model.name.clone(),
            scheme: r.model.scheme.clone(),
            baseline_run: r
                .backend
                .get("similarity_baseline")
                .and_then(|b| b.get("run_id"))
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string(),
            n: task.n_docs,
            cells,
        });
    }
    Ok(out)
}

fn cell_text(c: &Option<Cell>) -> String {
    match c {
        Some(Cell {
            mean,
            ci95: Some([lo, hi]),
        }) => format!("{mean:.2} [{lo:.2}, {hi:.2}]"),
        Some(Cell { mean, ci95: None }) => format!("{mean:.2}"),
        None => "-".into(),
    }
}

/// The section as Markdown (a heading, one row per run, scores in percent with 95% CIs).
pub fn to_markdown(rows: &[SimilarityRow]) -> String {
    let mut s = String::from(
        "## Similarity to the baseline's answers\n\nMeans over the prompts, percent, with 95% CIs.\n\n| run | scheme | vs | n |",
    );
    for (_, label) in COLUMNS {
        s += &format!(" {label} |");
    }
    s += "\n| --- | --- | --- | ---: |";
    for _ in COLUMNS {
        s += " ---: |";
    }
    s.push('\n');
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} |",
            r.run_id, r.scheme, r.baseline_run, r.n
        );
        for c in &r.cells {
            s += &format!(" {} |", cell_text(c));
        }
        s.push('\n');
    }
    s
}

/// The section as a polars frame (one row per run; per metric its mean and CI bounds, percent).
pub fn to_frame(rows: &[SimilarityRow]) -> Result<DataFrame> {
    let mut columns = vec![
        Column::new(
            "run".into(),
            rows.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "model".into(),
            rows.iter().map(|r| r.model.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "scheme".into(),
            rows.iter().map(|r| r.scheme.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "baseline_run".into(),
            rows.iter()
                .map(|r| r.baseline_run.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "n".into(),
            rows.iter().map(|r| r.n as u64).collect::<Vec<_>>(),
        ),
    ];
    for (k, (m, _)) in COLUMNS.iter().enumerate() {
        let get = |f: &dyn Fn(&Cell) -> Option<f64>| -> Vec<Option<f64>> {
            rows.iter()
                .map(|r| r.cells[k].as_ref().and_then(f))
                .collect()
        };
        columns.push(Column::new((*m).into(), get(&|c| Some(c.mean))));
        columns.push(Column::new(
            format!("{m}_ci95_lo").into(),
            get(&|c| c.ci95.map(|x| x[0])),
        ));
        columns.push(Column::new(
            format!("{m}_ci95_hi").into(),
            get(&|c| c.ci95.map(|x| x[1])),
        ));
    }
    Ok(DataFrame::new(columns)?)
}

/// The section as HTML (a heading and one table, scores in percent with 95% CIs), for
/// `report.html` and `report_similarity.html`; text is escaped.
pub fn html_section(rows: &[SimilarityRow]) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template(
        "s",
        r#"<h2>Similarity to the baseline's answers</h2>
<p class="note">Means over the prompts, percent, with 95% CIs (the quantized model's greedy answers against the baseline's stored answers; arXiv 2411.02355 &sect;4.3).</p>
<table id="similarity">
<thead><tr><th>run</th><th>scheme</th><th>vs</th><th>n</th>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in rows %}<tr><td>{{ r.run_id }}</td><td>{{ r.scheme }}</td><td>{{ r.baseline_run }}</td><td class="num">{{ r.n }}</td>{% for c in r.cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
"#,
    )?;
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "run_id": r.run_id, "scheme": r.scheme, "baseline_run": r.baseline_run, "n": r.n,
                "cells": r.cells.iter().map(cell_text).collect::<Vec<_>>(),
            })
        })
        .collect();
    let columns: Vec<&str> = COLUMNS.iter().map(|(_, l)| *l).collect();
    Ok(env
        .get_template("s")?
        .render(minijinja::context! { rows => rows, columns => columns })?)
}

/// A self-contained HTML page holding only [`html_section`] (a report of similarity runs alone).
pub fn to_html(rows: &[SimilarityRow]) -> Result<String> {
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>quantlab similarity report</title>\n<style>\nbody {{ font-family: sans-serif; margin: 2em; }}\ntable {{ border-collapse: collapse; }}\nth, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; }}\ntd.num {{ text-align: right; }}\n.note {{ color: #555; font-size: 0.9em; }}\n</style>\n</head>\n<body>\n{}<p class=\"note\">Generated by quantlab {}.</p>\n</body>\n</html>\n",
        html_section(rows)?,
        env!("CARGO_PKG_VERSION")
    ))
}
