//! Recovery table built from run records made in code, with known scores.

mod common;

use common::{close, md_row, md_rows, run};
use quantlab_reports::{load_run, recovery_table, write_report, RunResults, AVERAGE_ROW};

/// bf16 baseline, w8a8-fp8 and w4a16 with hand-picked scores (fractions, as in results.json).
fn three_runs() -> Vec<RunResults> {
    vec![
        run(
            "run-bf16",
            "smollm2-135m",
            "bf16",
            &[
                ("arc_challenge", "acc_norm", 0.50, 0.02),
                ("hellaswag", "acc_norm", 0.80, 0.01),
                ("mmlu", "acc", 0.40, 0.03),
                ("winogrande", "acc", 0.70, 0.02),
                ("gsm8k", "exact_match", 0.30, 0.04),
            ],
        ),
        run(
            "run-fp8",
            "models/smollm2-fp8",
            "w8a8-fp8",
            &[
                ("arc_challenge", "acc_norm", 0.49, 0.02),
                ("hellaswag", "acc_norm", 0.80, 0.01),
                ("mmlu", "acc", 0.41, 0.03),
                ("winogrande", "acc", 0.70, 0.02),
                ("gsm8k", "exact_match", 0.33, 0.04),
            ],
        ),
        run(
            "run-w4",
            "models/smollm2-w4a16",
            "w4a16",
            &[
                ("arc_challenge", "acc_norm", 0.45, 0.02),
                ("hellaswag", "acc_norm", 0.76, 0.01),
                ("mmlu", "acc", 0.30, 0.03),
                ("winogrande", "acc", 0.66, 0.02),
                // no gsm8k: excluded from the Average; ifeval is not in the baseline: no row.
                ("ifeval", "prompt_strict", 0.25, 0.02),
            ],
        ),
    ]
}

#[test]
fn three_runs_every_number() {
    let t = recovery_table(&three_runs(), None).unwrap();
    assert_eq!(t.baseline().run_id, "run-bf16");
    assert_eq!(t.baseline().label, "bf16");
    let labels: Vec<_> = t.compared().iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["w8a8-fp8", "w4a16"]);
    assert_eq!(
        t.tasks(),
        [
            "arc_challenge",
            "gsm8k",
            "hellaswag",
            "mmlu",
            "winogrande",
            AVERAGE_ROW
        ]
    );
    assert_eq!(
        t.average_tasks(),
        ["arc_challenge", "hellaswag", "mmlu", "winogrande"]
    );
    assert_eq!(t.excluded_tasks(), ["gsm8k"]);

    // (task, bf16, fp8, fp8 recovery, w4, w4 recovery), percent.
    type Expected<'a> = (&'a str, f64, f64, f64, Option<f64>, Option<f64>);
    let expected: [Expected; 5] = [
        ("arc_challenge", 50.0, 49.0, 98.0, Some(45.0), Some(90.0)),
        ("gsm8k", 30.0, 33.0, 110.0, None, None),
        ("hellaswag", 80.0, 80.0, 100.0, Some(76.0), Some(95.0)),
        ("mmlu", 40.0, 41.0, 102.5, Some(30.0), Some(75.0)),
        (
            "winogrande",
            70.0,
            70.0,
            100.0,
            Some(66.0),
            Some(6600.0 / 70.0),
        ),
    ];
    for (task, b, f, fr, w, wr) in expected {
        assert!(close(t.score(task, "bf16").unwrap(), b), "{task}");
        assert!(close(t.score(task, "w8a8-fp8").unwrap(), f), "{task}");
        assert!(close(t.recovery(task, "w8a8-fp8").unwrap(), fr), "{task}");
        assert_eq!(t.score(task, "w4a16").is_some(), w.is_some(), "{task}");
        if let (Some(w), Some(wr)) = (w, wr) {
            assert!(close(t.score(task, "w4a16").unwrap(), w), "{task}");
            assert!(close(t.recovery(task, "w4a16").unwrap(), wr), "{task}");
        } else {
            assert_eq!(t.recovery(task, "w4a16"), None, "{task}");
        }
        assert_eq!(
            t.recovery(task, "bf16"),
            None,
            "no recovery column for the baseline"
        );
    }

    // Average over the 4 common tasks; recovery = ratio of the averages (not the mean of the
    // per-task recoveries, which would be 100.125 for fp8 and 88.57 for w4a16).
    assert!(close(t.score(AVERAGE_ROW, "bf16").unwrap(), 60.0));
    assert!(close(t.score(AVERAGE_ROW, "w8a8-fp8").unwrap(), 60.0));
    assert!(close(t.score(AVERAGE_ROW, "w4a16").unwrap(), 54.25));
    assert!(close(t.recovery(AVERAGE_ROW, "w8a8-fp8").unwrap(), 100.0));
    assert!(close(
        t.recovery(AVERAGE_ROW, "w4a16").unwrap(),
        54.25 / 60.0 * 100.0
    ));
    // Average stderr = sqrt(sum se^2) / k = sqrt(2² + 1² + 3² + 2²) / 4.
    assert!(close(
        t.stderr(AVERAGE_ROW, "bf16").unwrap(),
        18f64.sqrt() / 4.0
    ));
    assert!(close(t.stderr("mmlu", "w4a16").unwrap(), 3.0));

    let md = t.to_markdown();
    // The delimiter row is valid GitHub markdown: every cell is `:?-+:?`.
    let rule = md
        .lines()
        .find(|l| l.starts_with("| :-") || l.starts_with("| -"))
        .expect("delimiter row");
    for cell in rule.trim_matches('|').split('|') {
        let c = cell.trim();
        let body = c.trim_start_matches(':').trim_end_matches(':');
        assert!(
            !body.is_empty() && body.chars().all(|ch| ch == '-'),
            "bad delimiter cell {c:?} in {rule}"
        );
    }
    let cells = md_rows(&md);
    assert_eq!(
        cells[0],
        [
            "task",
            "metric",
            "bf16",
            "w8a8-fp8",
            "w8a8-fp8 recovery %",
            "w4a16",
            "w4a16 recovery %"
        ]
    );
    assert_eq!(
        md_row(&md, "arc_challenge"),
        [
            "arc_challenge",
            "acc_norm",
            "50.00",
            "49.00",
            "98.00",
            "45.00",
            "90.00"
        ]
    );
    assert_eq!(
        md_row(&md, "gsm8k"),
        ["gsm8k", "exact_match", "30.00", "33.00", "110.00", "—", "—"]
    );
    assert_eq!(
        md_row(&md, "mmlu"),
        ["mmlu", "acc", "40.00", "41.00", "102.50", "30.00", "75.00"]
    );
    assert_eq!(
        md_row(&md, "winogrande"),
        [
            "winogrande",
            "acc",
            "70.00",
            "70.00",
            "100.00",
            "66.00",
            "94.29"
        ]
    );
    assert_eq!(
        md_row(&md, AVERAGE_ROW),
        [
            "Average",
            "mean of 4 tasks",
            "60.00",
            "60.00",
            "100.00",
            "54.25",
            "90.42"
        ]
    );
    assert_eq!(
        cells.len(),
        7,
        "header + 5 tasks + Average, no row for ifeval:\n{md}"
    );
    assert!(md.contains("Not in the Average (missing from some run): gsm8k."));
    assert!(!md.contains("n/a"), "{md}");
    // Every table line has the same width (padded for the terminal).
    let widths: Vec<usize> = md
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{md}");

    let json = t.to_json();
    assert_eq!(json["baseline"]["run_id"], "run-bf16");
    let avg = &json["rows"][5];
    assert_eq!(avg["task"], AVERAGE_ROW);
    let w4 = &avg["runs"]["w4a16"];
    assert!(close(
        w4["recovery_pct"].as_f64().unwrap(),
        54.25 / 60.0 * 100.0
    ));
    assert!(close(
        avg["baseline"]["stderr"].as_f64().unwrap(),
        18f64.sqrt() / 4.0
    ));
    assert!(json["rows"][1]["runs"]["w4a16"]["score"].is_null());
    assert_eq!(json["excluded_from_average"], serde_json::json!(["gsm8k"]));
}

#[test]
fn csv_and_json_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let t = recovery_table(&three_runs(), None).unwrap();
    let path = dir.path().join("table.csv");
    t.write_csv(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "task,metric,bf16,bf16 stderr,w8a8-fp8,w8a8-fp8 stderr,w8a8-fp8 recovery %,\
         w4a16,w4a16 stderr,w4a16 recovery %"
    );
    assert_eq!(lines.len(), 7);
    let gsm: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(&gsm[..2], ["gsm8k", "exact_match"]);
    assert_eq!(&gsm[7..], ["n/a", "n/a", "n/a"]);
    let avg: Vec<&str> = lines[6].split(',').collect();
    assert_eq!(avg[0], "Average");
    assert_eq!(avg[1], "mean of 4 tasks");
    // Percent with 4 decimals: 60, sqrt(18)/4 = 1.06066.., 54.25/60 = 90.41666..
    assert_eq!(
        &avg[2..],
        ["60.0000", "1.0607", "60.0000", "1.0607", "100.0000", "54.2500", "1.0607", "90.4167"]
    );
    assert_eq!(
        lines[1],
        "arc_challenge,acc_norm,50.0000,2.0000,49.0000,2.0000,98.0000,45.0000,2.0000,90.0000"
    );
    // No temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("table.csv")]);
}

#[test]
fn zero_baseline_is_not_available() {
    let runs = vec![
        run(
            "b",
            "m",
            "bf16",
            &[("gpqa", "acc", 0.0, 0.0), ("mmlu", "acc", 0.5, 0.01)],
        ),
        run(
            "q",
            "m-q",
            "w4a16",
            &[("gpqa", "acc", 0.05, 0.01), ("mmlu", "acc", 0.45, 0.01)],
        ),
        run(
            "z",
            "m-z",
            "w8a8-int8",
            &[("gpqa", "acc", 0.0, 0.0), ("mmlu", "acc", 0.5, 0.01)],
        ),
    ];
    let t = recovery_table(&runs, None).unwrap();
    assert_eq!(t.recovery("gpqa", "w4a16"), None);
    assert_eq!(t.recovery("gpqa", "w8a8-int8"), None, "0 / 0");
    assert!(close(t.recovery("mmlu", "w4a16").unwrap(), 90.0));
    // The zero task still counts in the Average: (0 + 50) / 2 = 25 vs (5 + 45) / 2 = 25.
    assert!(close(t.recovery(AVERAGE_ROW, "w4a16").unwrap(), 100.0));

    let md = t.to_markdown();
    assert_eq!(
        md_row(&md, "gpqa"),
        ["gpqa", "acc", "0.00", "5.00", "n/a", "0.00", "n/a"]
    );
    assert!(md.contains("n/a: the baseline score is 0"));
    let dir = tempfile::tempdir().unwrap();
    t.write_csv(&dir.path().join("r.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
    let json = serde_json::to_string(&t.to_json()).unwrap();
    for text in [&md, &csv, &json] {
        let lower = text.to_lowercase();
        assert!(!lower.contains("inf") && !lower.contains("nan"), "{text}");
    }
    let gpqa_csv: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(gpqa_csv[6], "n/a");
    assert!(t.to_json()["rows"][0]["runs"]["w4a16"]["recovery_pct"].is_null());
}

#[test]
fn baseline_selection() {
    // No bf16 run.
    let runs = vec![
        run("q1", "m-fp8", "w8a8-fp8", &[("mmlu", "acc", 0.5, 0.01)]),
        run("q2", "m-w4", "w4a16", &[("mmlu", "acc", 0.4, 0.01)]),
    ];
    let err = recovery_table(&runs, None).unwrap_err().to_string();
    assert!(
        err.contains("no baseline run") && err.contains("`bf16`"),
        "{err}"
    );
    assert!(err.contains("q1") && err.contains("q2"), "{err}");

    // Named baseline by run_id, then by model name.
    let t = recovery_table(&runs, Some("q1")).unwrap();
    assert_eq!(t.baseline().label, "w8a8-fp8");
    assert!(close(t.recovery("mmlu", "w4a16").unwrap(), 80.0));
    let t = recovery_table(&runs, Some("m-w4")).unwrap();
    assert_eq!(t.baseline().run_id, "q2");
    assert!(close(t.recovery("mmlu", "w8a8-fp8").unwrap(), 125.0));
    let err = recovery_table(&runs, Some("nope")).unwrap_err().to_string();
    assert!(
        err.contains("no run has run_id or model name `nope`"),
        "{err}"
    );

    // Two bf16 runs: ambiguous unless named; duplicate schemes get the run_id in the header.
    let runs = vec![
        run("b1", "m", "bf16", &[("mmlu", "acc", 0.5, 0.01)]),
        run("b2", "m", "bf16", &[("mmlu", "acc", 0.4, 0.01)]),
        run("w-a", "m-w4", "w4a16", &[("mmlu", "acc", 0.45, 0.01)]),
        run("w-b", "m-w4b", "w4a16", &[("mmlu", "acc", 0.25, 0.01)]),
    ];
    let err = recovery_table(&runs, None).unwrap_err().to_string();
    assert!(
        err.contains("ambiguous baseline") && err.contains("b1") && err.contains("b2"),
        "{err}"
    );
    let err = recovery_table(&runs, Some("m")).unwrap_err().to_string();
    assert!(err.contains("several runs have this model name"), "{err}");
    let t = recovery_table(&runs, Some("b2")).unwrap();
    assert_eq!(t.baseline().label, "bf16 (b2)");
    let labels: Vec<_> = t.compared().iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["bf16 (b1)", "w4a16 (w-a)", "w4a16 (w-b)"]);
    assert!(close(t.recovery("mmlu", "bf16 (b1)").unwrap(), 125.0));
    assert!(close(t.recovery("mmlu", "w4a16 (w-b)").unwrap(), 62.5));
    let md = t.to_markdown();
    assert_eq!(
        md_rows(&md)[0],
        [
            "task",
            "metric",
            "bf16 (b2)",
            "bf16 (b1)",
            "bf16 (b1) recovery %",
            "w4a16 (w-a)",
            "w4a16 (w-a) recovery %",
            "w4a16 (w-b)",
            "w4a16 (w-b) recovery %"
        ]
    );
    assert!(recovery_table(&[], None).is_err());
}

fn write_run(dir: &std::path::Path, r: &RunResults) -> std::path::PathBuf {
    let folder = dir.join(&r.run_id);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("results.json"),
        serde_json::to_string_pretty(r).unwrap(),
    )
    .unwrap();
    folder
}

#[test]
fn load_run_folder_file_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = three_runs().remove(0);
    let folder = write_run(dir.path(), &r);
    assert_eq!(load_run(&folder).unwrap(), r);
    assert_eq!(load_run(&folder.join("results.json")).unwrap(), r);

    // Wrong-typed field: the error names the file and the field's path.
    let mut v = serde_json::to_value(&r).unwrap();
    v["tasks"]["hellaswag"]["n_docs"] = serde_json::json!("ten");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let err = format!("{:#}", load_run(&bad).unwrap_err());
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(err.contains("field `tasks.hellaswag.n_docs`"), "{err}");
    assert!(err.contains("invalid type: string \"ten\""), "{err}");

    let mut v = serde_json::to_value(&r).unwrap();
    v["tasks"]["mmlu"]["metrics"]["acc"]["value"] = serde_json::json!("high");
    std::fs::write(&bad, v.to_string()).unwrap();
    let err = format!("{:#}", load_run(&bad).unwrap_err());
    assert!(
        err.contains("field `tasks.mmlu.metrics.acc.value`"),
        "{err}"
    );

    let mut v = serde_json::to_value(&r).unwrap();
    v["model"].as_object_mut().unwrap().remove("scheme");
    std::fs::write(&bad, v.to_string()).unwrap();
    let err = format!("{:#}", load_run(&bad).unwrap_err());
    assert!(
        err.contains("field `model`") && err.contains("scheme"),
        "{err}"
    );

    let missing = dir.path().join("no-such-run");
    let err = format!("{:#}", load_run(&missing).unwrap_err());
    assert!(err.contains("no-such-run"), "{err}");
}

#[test]
fn write_report_writes_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let folders: Vec<_> = three_runs()
        .iter()
        .map(|r| write_run(dir.path(), r))
        .collect();
    let out = dir.path().join("out/report");
    let md = write_report(&folders, None, Some(&out)).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    assert_eq!(
        md_row(&md, AVERAGE_ROW),
        [
            "Average",
            "mean of 4 tasks",
            "60.00",
            "60.00",
            "100.00",
            "54.25",
            "90.42"
        ]
    );
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["runs"][1]["run_id"], "run-w4");
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

    // Without out_dir nothing is written; a baseline named on the command line is honoured.
    let md = write_report(&folders, Some("run-fp8"), None).unwrap();
    assert_eq!(md_rows(&md)[0][2], "w8a8-fp8");
    // A broken record is reported with its file.
    std::fs::write(folders[1].join("results.json"), "{\"run_id\": 3}").unwrap();
    let err = format!("{:#}", write_report(&folders, None, None).unwrap_err());
    assert!(
        err.contains("run-fp8") && err.contains("results.json"),
        "{err}"
    );
}
