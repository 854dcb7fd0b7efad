//! Statistics of the report from run folders with samples files whose per-document values are
//! known: confidence intervals, the paired bootstrap over documents (matched by doc_id), the
//! near-random flag, and the files `write_report` writes (HTML, CSV, SVG, PNG).

mod common;

use common::{close, md_row, run};
use quantlab_reports::stats::{ci95, paired_bootstrap};
use quantlab_reports::{build_report, write_report, ReportOptions, RunResults, NEAR_RANDOM};
use std::path::{Path, PathBuf};

/// `samples_<task>.jsonl` lines: one 4-choice multiple-choice document per (doc_id, acc).
fn samples(task: &str, docs: &[(usize, f64)]) -> String {
    docs.iter()
        .map(|&(id, acc)| {
            let choices: Vec<_> = (0..4)
                .map(|c| serde_json::json!({"continuation": format!(" {c}"), "loglikelihood": -1.0 - c as f64, "is_greedy": false}))
                .collect();
            serde_json::json!({
                "task": task, "doc_id": id, "doc": {}, "context": "Q:", "target": 0,
                "choices": choices, "metrics": {"acc": acc},
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn write_run(root: &Path, r: &RunResults, files: &[(&str, String)]) -> PathBuf {
    let dir = root.join(&r.run_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), serde_json::to_string(r).unwrap()).unwrap();
    for (task, text) in files {
        std::fs::write(dir.join(format!("samples_{task}.jsonl")), text).unwrap();
    }
    dir
}

/// 200 documents. easy: baseline right on 0..150 (75 %); w4a16 right on 0..130 (65 %), so 20
/// documents flip 1 -> 0 and none 0 -> 1; fp8 swaps two documents (doc 0 wrong, doc 199 right).
/// hard: baseline 30 % on a 4-choice task (chance 25 %): near random.
fn fixture(root: &Path) -> Vec<PathBuf> {
    let acc = |n_right: usize| -> Vec<(usize, f64)> {
        (0..200)
            .map(|i| (i, f64::from(u8::from(i < n_right))))
            .collect()
    };
    let mut fp8_easy = acc(150);
    fp8_easy[0].1 = 0.0;
    fp8_easy[199].1 = 1.0;
    // The compressed run's file in another order and without doc 7: matched by doc_id.
    let mut w4_easy = acc(130);
    w4_easy.reverse();
    w4_easy.retain(|d| d.0 != 7);
    let se = |p: f64, n: f64| (p * (1.0 - p) / (n - 1.0)).sqrt();
    let base = run(
        "base",
        "m",
        "bf16",
        &[
            ("easy", "acc", 0.75, se(0.75, 200.0)),
            ("hard", "acc", 0.30, se(0.3, 200.0)),
        ],
    );
    let fp8 = run(
        "fp8",
        "m-fp8",
        "w8a8-fp8",
        &[
            ("easy", "acc", 0.75, se(0.75, 200.0)),
            ("hard", "acc", 0.29, se(0.29, 200.0)),
        ],
    );
    let w4 = run(
        "w4",
        "m-w4",
        "w4a16",
        &[
            ("easy", "acc", 129.0 / 199.0, 0.03),
            ("hard", "acc", 0.27, 0.03),
        ],
    );
    vec![
        write_run(
            root,
            &base,
            &[
                ("easy", samples("easy", &acc(150))),
                ("hard", samples("hard", &acc(60))),
            ],
        ),
        write_run(
            root,
            &fp8,
            &[
                ("easy", samples("easy", &fp8_easy)),
                ("hard", samples("hard", &acc(58))),
            ],
        ),
        write_run(
            root,
            &w4,
            &[
                ("easy", samples("easy", &w4_easy)),
                ("hard", samples("hard", &acc(54))),
            ],
        ),
    ]
}

#[test]
fn bootstrap_against_the_normal_approximation() {
    // 20 of 200 pairs differ by -1: mean -0.1, sd of the pair differences sqrt(0.09), so the
    // bootstrap interval of the mean difference should be close to -10 ± 1.96 × 2.121 pp.
    let base: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i < 150))).collect();
    let run: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i < 130))).collect();
    let b = paired_bootstrap(&base, &run, 10_000, 0).unwrap();
    let se = (0.09f64 / 200.0).sqrt() * 100.0;
    assert!(close(b.diff_pp, -10.0));
    assert!((b.diff_ci_lo - (-10.0 - 1.96 * se)).abs() < 0.6, "{b:?}");
    assert!((b.diff_ci_hi - (-10.0 + 1.96 * se)).abs() < 0.6, "{b:?}");
    assert!(b.significant && b.p_value < 1e-3, "{b:?}");
    assert!(close(b.recovery_pct.unwrap(), 130.0 / 150.0 * 100.0));
    let (lo, hi) = (b.recovery_ci_lo.unwrap(), b.recovery_ci_hi.unwrap());
    assert!(lo < 86.67 && 86.67 < hi && hi < 100.0, "{b:?}");
    // Same seed, same answer; the difference 0 is not significant.
    assert_eq!(paired_bootstrap(&base, &run, 10_000, 0).unwrap(), b);
    let same = paired_bootstrap(&base, &base, 1000, 1).unwrap();
    assert!(!same.significant && same.p_value == 1.0 && same.diff_pp == 0.0);
    // Bad input is an error, not a panic.
    assert!(paired_bootstrap(&base, &run[..10], 100, 0).is_err());
    assert!(paired_bootstrap(&[], &[], 100, 0).is_err());
}

#[test]
fn report_statistics_from_samples() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let t = build_report(&runs, None, &ReportOptions::default()).unwrap();

    // Chance 1/4 from the samples; hard is near random ((30 - 25) / 75 = 6.7 % < 20 %).
    assert!(close(t.chance("easy").unwrap(), 0.25));
    assert_eq!(t.near_random_tasks(), ["hard"]);
    // CI of a score: ± 1.96 stderr, in percent.
    let (lo, hi) = t.ci95("easy", "bf16").unwrap();
    let se = (0.75f64 * 0.25 / 199.0).sqrt() * 100.0;
    assert!(close(lo, 75.0 - 1.959963984540054 * se) && close(hi, 75.0 + 1.959963984540054 * se));
    assert_eq!(ci95(75.0, se), (lo, hi));

    // w4a16 on easy: 199 pairs (doc 7 missing), 20 flipped 1 -> 0 (docs 130..150): -9.55 pp.
    let b = t.bootstrap("easy", "w4a16").unwrap();
    assert_eq!(b.n_docs, 199);
    assert!(close(b.diff_pp, -20.0 / 199.0 * 100.0), "{b:?}");
    assert!(b.significant);
    // fp8 on easy: one document each way, no difference.
    let b = t.bootstrap("easy", "w8a8-fp8").unwrap();
    assert_eq!(b.n_docs, 200);
    assert!(
        close(b.diff_pp, 0.0) && !b.significant && b.p_value > 0.5,
        "{b:?}"
    );

    // Markdown: significant recoveries marked, near-random recoveries not quoted.
    let md = write_report(&runs, None, None).unwrap();
    let rec = t.recovery("easy", "w4a16").unwrap();
    assert_eq!(md_row(&md, "easy")[6], format!("{rec:.2} *"));
    assert_eq!(md_row(&md, "easy")[4], "100.00");
    assert_eq!(md_row(&md, "hard")[4], NEAR_RANDOM);
    assert_eq!(md_row(&md, "hard")[6], NEAR_RANDOM);
    assert!(md.contains("## Statistics"), "{md}");
    assert!(md.contains("| easy | w4a16 | 64.82 |"), "{md}");

    // Without samples files: no bootstrap, no flags, the table as before.
    for r in &runs {
        std::fs::remove_file(r.join("samples_easy.jsonl")).unwrap();
        std::fs::remove_file(r.join("samples_hard.jsonl")).unwrap();
    }
    let t = build_report(&runs, None, &ReportOptions::default()).unwrap();
    assert!(t.bootstrap("easy", "w4a16").is_none() && t.near_random_tasks().is_empty());
}

#[test]
fn malformed_samples_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let bad = runs[2].join("samples_easy.jsonl");
    std::fs::write(
        &bad,
        samples("easy", &[(0, 1.0)]).replace("\"acc\"", "\"accuracy\""),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        build_report(&runs, None, &ReportOptions::default()).unwrap_err()
    );
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("metrics.acc"),
        "{err}"
    );
    std::fs::write(&bad, "{not json\n").unwrap();
    let err = format!(
        "{:#}",
        build_report(&runs, None, &ReportOptions::default()).unwrap_err()
    );
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

#[test]
fn report_files_html_csv_charts() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let out = dir.path().join("report");
    let md = write_report(&runs, None, Some(&out)).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "recovery.png",
            "recovery.svg",
            "report.csv",
            "report.html",
            "report.json",
            "report.md",
            "report_stats.csv",
            "scores.svg"
        ]
    );
    // Long CSV: 3 rows (easy, hard, Average) x 3 runs.
    let csv = std::fs::read_to_string(out.join("report_stats.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 9);
    assert!(
        lines[0].starts_with("task,run,score,stderr,ci95_lo,ci95_hi,recovery_pct,diff_pp"),
        "{}",
        lines[0]
    );
    let w4 = lines.iter().find(|l| l.starts_with("easy,w4a16,")).unwrap();
    assert!(w4.contains(",199.0000,25.0000,"), "{w4}");
    assert!(w4.ends_with(",true,false"), "{w4}");
    // HTML: self-contained (no external script, stylesheet or image), both tables, inline SVG.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for banned in ["<script", "<link", "src=\"http", "@import"] {
        assert!(!html.contains(banned), "{banned}");
    }
    assert!(html.contains("id=\"recovery\"") && html.contains("id=\"statistics\""));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("near random"));
    // SVG bars: the recovery chart has one bar per (run, quoted category); PNG signature.
    let svg = std::fs::read_to_string(out.join("recovery.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("w4a16") && svg.contains("easy"));
    let png = std::fs::read(out.join("recovery.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 5_000, "{} bytes", png.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rows"][1]["task"], "hard");
    assert_eq!(json["rows"][1]["near_random"], true);
    assert_eq!(json["rows"][0]["runs"]["w4a16"]["bootstrap"]["n_docs"], 199);
}

/// Code-suite runs (`samples_<suite>.jsonl` holds per-sample verdicts, not per-document metrics)
/// are tabulated with their pass@1 and recovery, without a paired bootstrap.
#[test]
fn code_suite_runs_are_reported_without_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let verdicts = |statuses: &[&str]| -> String {
        statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{{\"task_id\":\"HumanEval/{i}\",\"completion_id\":0,\"status\":\"{s}\",\"solution\":\"\"}}\n"
                )
            })
            .collect()
    };
    let b = write_run(
        dir.path(),
        &run("b", "m", "bf16", &[("humaneval", "pass@1", 0.5, 0.25)]),
        &[("humaneval", verdicts(&["pass", "fail", "pass", "fail"]))],
    );
    let q = write_run(
        dir.path(),
        &run("q", "m-w4", "w4a16", &[("humaneval", "pass@1", 0.25, 0.22)]),
        &[("humaneval", verdicts(&["pass", "fail", "fail", "fail"]))],
    );
    let md = write_report(&[b, q], None, None).unwrap();
    let row = md_row(&md, "humaneval");
    // BF16 50.00, W4A16 25.00, recovery 50.00 %.
    assert!(
        row.iter().filter(|c| c.starts_with("50.00")).count() >= 2,
        "{row:?}"
    );
    assert!(row.iter().any(|c| c.starts_with("25.00")), "{row:?}");
}

/// Score intervals stay inside the metric's range: a 99 % accuracy with a 2-point stderr has its
/// upper bound at 100, a 1 % one its lower bound at 0; perplexities are not capped at 100.
#[test]
fn score_intervals_are_clipped_to_the_metric_range() {
    let run = |id: &str, scheme: &str, acc: f64, ppl: f64| -> quantlab_reports::RunResults {
        serde_json::from_value(serde_json::json!({
            "quantlab_version": "0.1.0", "run_id": id,
            "model": {"name": id, "path": "/m", "scheme": scheme, "config_sha256": "00",
                      "quantization_config": null},
            "suite": "custom", "backend": {}, "limit": null,
            "started_at": "2026-11-30T00:00:00Z", "wall_time_s": 1.0,
            "tasks": {
                "a": {"version": "1", "n_docs": 30, "primary_metric": "acc",
                      "metrics": {"acc": {"value": acc, "stderr": 0.02}}},
                "wiki": {"version": "1", "n_docs": 30, "primary_metric": "word_perplexity",
                         "metrics": {"word_perplexity": {"value": ppl, "stderr": 0.5}}}
            }
        }))
        .unwrap()
    };
    let t = quantlab_reports::recovery_table(
        &[run("b", "bf16", 0.99, 0.9), run("q", "w4a16", 0.01, 1.0)],
        None,
    )
    .unwrap();
    let (lo, hi) = t.ci95("a", "bf16").unwrap();
    assert!(
        close(lo, 99.0 - 1.959963984540054 * 2.0) && hi == 100.0,
        "{lo} {hi}"
    );
    let (lo, hi) = t.ci95("a", "w4a16").unwrap();
    assert!(
        lo == 0.0 && close(hi, 1.0 + 1.959963984540054 * 2.0),
        "{lo} {hi}"
    );
    let (_, hi) = t.ci95("wiki", "bf16").unwrap();
    assert!(close(hi, 90.0 + 1.959963984540054 * 50.0), "{hi}");
}
