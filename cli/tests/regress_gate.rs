//! The regression gate through the real binary: a baseline snapshot from one night's runs, then
//! exit 1 on a planted 2-point recovery drop, 0 within tolerance (global or per task), and a clear
//! refusal (exit 2) of a baseline made with another task version.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn quantlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A run folder with `results.json` (scores as fractions; task version `version`).
fn write_run(root: &Path, id: &str, scheme: &str, scores: &[(&str, f64)], version: &str) {
    write_suite_run(root, id, scheme, "smoke", scores, version)
}

/// [`write_run`] for a run of suite `suite`.
fn write_suite_run(
    root: &Path,
    id: &str,
    scheme: &str,
    suite: &str,
    scores: &[(&str, f64)],
    version: &str,
) {
    let tasks: serde_json::Map<String, serde_json::Value> = scores
        .iter()
        .map(|&(t, v)| {
            (
                t.to_string(),
                json!({"version": version, "n_docs": 500, "primary_metric": "acc_norm",
                       "metrics": {"acc_norm": {"value": v, "stderr": 0.02}}}),
            )
        })
        .collect();
    let record = json!({
        "quantlab_version": "0.1.0", "run_id": id,
        "model": {"name": format!("m-{scheme}"), "path": "/m", "scheme": scheme,
                  "config_sha256": "00", "quantization_config": null},
        "suite": suite, "backend": {"backend": "local"}, "limit": null,
        "started_at": "2026-11-30T00:00:00Z", "wall_time_s": 1.0, "tasks": tasks,
    });
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), record.to_string()).unwrap();
}

/// One night: bf16 and w4a16 on arc_easy and hellaswag; `w4_arc` is w4a16's arc_easy score.
fn night(root: &Path, name: &str, w4_arc: f64, version: &str) -> PathBuf {
    let dir = root.join(name);
    write_run(
        &dir,
        "bf16-run",
        "bf16",
        &[("arc_easy", 0.50), ("hellaswag", 0.80)],
        version,
    );
    write_run(
        &dir,
        "w4-run",
        "w4a16",
        &[("arc_easy", w4_arc), ("hellaswag", 0.78)],
        version,
    );
    dir
}

#[test]
fn gate_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let base = root.join("baseline.json");
    let s = |p: &Path| p.display().to_string();

    // Last night: w4a16 recovers 98 % on arc_easy (0.49 / 0.50).
    let n1 = night(root, "n1", 0.49, "1.0");
    let (code, out, err) = quantlab(&["regress", "--runs", &s(&n1), "--write-baseline", &s(&base)]);
    assert_eq!(code, 0, "{out}{err}");
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    assert_eq!(snap["task_versions"]["arc_easy"], "1.0");
    let arc = snap["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "arc_easy")
        .unwrap();
    assert!((arc["recovery_pct"].as_f64().unwrap() - 98.0).abs() < 1e-9);

    // Tonight: 0.48 / 0.50 = 96 %, a planted 2-point drop. The suite average moves
    // 97.69 -> 96.92 (-0.77 pp), within the default 1 pp.
    let n2 = night(root, "n2", 0.48, "1.0");
    let (code, out, err) = quantlab(&["regress", "--baseline", &s(&base), "--runs", &s(&n2)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("REGRESSED")
            && out.contains("w4a16/task:arc_easy")
            && out.contains("-2.00 pp"),
        "{out}"
    );
    assert!(!out.contains("REGRESSED    w4a16/suite:smoke"), "{out}");
    assert!(out.contains("1 of 3 checks failed"), "{out}");
    let junit = std::fs::read_to_string(n2.join("regress-junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuites name=\"quantlab regress\" tests=\"3\" failures=\"1\""),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"w4a16/task:arc_easy\"") && junit.contains("<failure"),
        "{junit}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(n2.join("regress.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["failures"], 1);
    let failed: Vec<_> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "regressed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!((failed[0]["delta_pp"].as_f64().unwrap() + 2.0).abs() < 1e-9);

    // Within tolerance: a wider global tolerance, or a per-task one for arc_easy.
    let (code, out, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&base),
        "--runs",
        &s(&n2),
        "--tolerance-pp",
        "2.5",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASSED"), "{out}");
    let per_task = root.join("tolerances.yaml");
    std::fs::write(&per_task, "arc_easy: 3.0\n").unwrap();
    let (code, out, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&base),
        "--runs",
        &s(&n2),
        "--per-task",
        &s(&per_task),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // A 0.5-point drop is within the default tolerance; the summary of a passing night is itself a
    // usable baseline.
    let n3 = night(root, "n3", 0.4875, "1.0");
    let (code, out, err) = quantlab(&["regress", "--baseline", &s(&base), "--runs", &s(&n3)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&n3.join("regress.json")),
        "--runs",
        &s(&n1),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // Another task version: refused with a clear message, exit 2, not a pass or a regression.
    let n4 = night(root, "n4", 0.49, "2.0");
    let (code, out, err) = quantlab(&["regress", "--baseline", &s(&base), "--runs", &s(&n4)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("refusing baseline")
            && err.contains(&s(&base))
            && err.contains("`arc_easy` (baseline 1.0, runs 2.0)"),
        "{err}"
    );

    // Bad input: a tolerance file with a non-number names the file and the field.
    std::fs::write(&per_task, "arc_easy: lots\n").unwrap();
    let (code, _, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&base),
        "--runs",
        &s(&n2),
        "--per-task",
        &s(&per_task),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&s(&per_task)) && err.contains("`arc_easy`"),
        "{err}"
    );
    // A baseline that is not a snapshot.
    std::fs::write(root.join("bad.json"), "{\"format\": \"x\"}").unwrap();
    let (code, _, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&root.join("bad.json")),
        "--runs",
        &s(&n2),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.json") && err.contains("not a quantlab recovery snapshot"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

/// The fresh-user review's edge cases: a night with several suites gates each against its own
/// BF16 run; a night with only the BF16 run cannot become a baseline (it would pass everything);
/// a per-task tolerance naming no task is a typo, not a silent default.
#[test]
fn suites_side_by_side_and_empty_or_mistyped_gates() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let n = root.join("night");
    write_run(
        &n,
        "bf16-smoke",
        "bf16",
        &[("arc_easy", 0.50), ("hellaswag", 0.80)],
        "1.0",
    );
    write_run(
        &n,
        "w4-smoke",
        "w4a16",
        &[("arc_easy", 0.49), ("hellaswag", 0.78)],
        "1.0",
    );
    write_suite_run(
        &n,
        "bf16-code",
        "bf16",
        "humaneval",
        &[("humaneval", 0.30)],
        "evalplus-0.3",
    );
    write_suite_run(
        &n,
        "w4-code",
        "w4a16",
        "humaneval",
        &[("humaneval", 0.27)],
        "evalplus-0.3",
    );
    let snap = root.join("snap.json");
    let (code, out, err) = quantlab(&["regress", "--runs", &s(&n), "--write-baseline", &s(&snap)]);
    assert_eq!(code, 0, "{out}{err}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap();
    let names: Vec<String> = stored["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "task:humaneval",
            "suite:humaneval",
            "task:arc_easy",
            "task:hellaswag",
            "suite:smoke"
        ],
        "{stored}"
    );
    let rec = |name: &str| {
        stored["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name && e["kind"] == "task")
            .unwrap()["recovery_pct"]
            .as_f64()
            .unwrap()
    };
    assert!((rec("humaneval") - 90.0).abs() < 1e-9);
    assert!((rec("arc_easy") - 98.0).abs() < 1e-9);
    assert_eq!(stored["baseline_run"], "bf16-code, bf16-smoke");

    // The report of the same runs: one table per suite, each against its own BF16 run.
    let rep = root.join("report");
    let runs: Vec<String> = ["bf16-smoke", "w4-smoke", "bf16-code", "w4-code"]
        .iter()
        .map(|r| s(&n.join(r)))
        .collect();
    let mut args = vec!["report"];
    args.extend(runs.iter().map(String::as_str));
    let out_s = s(&rep);
    args.extend(["--out", out_s.as_str()]);
    let (code, out, err) = quantlab(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("# Suite `humaneval`") && out.contains("# Suite `smoke`"),
        "{out}"
    );
    assert!(out.contains("(run `bf16-code`"), "{out}");
    for f in [
        "report-humaneval.csv",
        "report-smoke.csv",
        "report-smoke.html",
        "report.json",
    ] {
        assert!(rep.join(f).is_file(), "{f}");
    }

    // Tonight humaneval drops 2 points of recovery: the code suite's entries fail, smoke's pass.
    let t = root.join("tonight");
    write_run(
        &t,
        "bf16-smoke",
        "bf16",
        &[("arc_easy", 0.50), ("hellaswag", 0.80)],
        "1.0",
    );
    write_run(
        &t,
        "w4-smoke",
        "w4a16",
        &[("arc_easy", 0.49), ("hellaswag", 0.78)],
        "1.0",
    );
    write_suite_run(
        &t,
        "bf16-code",
        "bf16",
        "humaneval",
        &[("humaneval", 0.30)],
        "evalplus-0.3",
    );
    write_suite_run(
        &t,
        "w4-code",
        "w4a16",
        "humaneval",
        &[("humaneval", 0.264)],
        "evalplus-0.3",
    );
    let (code, out, err) = quantlab(&["regress", "--baseline", &s(&snap), "--runs", &s(&t)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("REGRESSED    w4a16/task:humaneval"), "{out}");
    assert!(out.contains("REGRESSED    w4a16/suite:humaneval"), "{out}");
    assert!(out.contains("2 of 5 checks failed; 2 moved"), "{out}");

    // A per-task tolerance for a name that is nowhere: exit 2, the names listed.
    let per_task = root.join("tol.yaml");
    std::fs::write(&per_task, "humanevl: 5.0\n").unwrap();
    let (code, out, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&snap),
        "--runs",
        &s(&t),
        "--per-task",
        &s(&per_task),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("`humanevl`") && err.contains("names: arc_easy, hellaswag, humaneval, smoke"),
        "{err}"
    );
    std::fs::write(&per_task, "humaneval: 5.0\n").unwrap();
    let (code, out, err) = quantlab(&[
        "regress",
        "--baseline",
        &s(&snap),
        "--runs",
        &s(&t),
        "--per-task",
        &s(&per_task),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // Runs over different documents (another --limit): report warns, the gate refuses.
    let uneven = root.join("uneven");
    write_run(&uneven, "bf16-smoke", "bf16", &[("arc_easy", 0.50)], "1.0");
    write_run(&uneven, "w4-smoke", "w4a16", &[("arc_easy", 0.49)], "1.0");
    let w4 = uneven.join("w4-smoke/results.json");
    let text = std::fs::read_to_string(&w4).unwrap();
    std::fs::write(&w4, text.replace("\"n_docs\":500", "\"n_docs\":100")).unwrap();
    let (code, out, err) = quantlab(&[
        "report",
        &s(&uneven.join("bf16-smoke")),
        &s(&uneven.join("w4-smoke")),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("> **warning:** task arc_easy: baseline run `bf16-smoke` has 500 documents (limit none), run `w4-smoke` has 100"),
        "{out}"
    );
    let (code, out, err) = quantlab(&[
        "regress",
        "--runs",
        &s(&uneven),
        "--write-baseline",
        &s(&root.join("u.json")),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("same --limit"), "{err}");

    // Only the BF16 run: no snapshot is written, and an empty stored snapshot is refused.
    let lonely = root.join("lonely");
    write_run(&lonely, "bf16-smoke", "bf16", &[("arc_easy", 0.50)], "1.0");
    let empty = root.join("empty.json");
    let (code, out, err) = quantlab(&[
        "regress",
        "--runs",
        &s(&lonely),
        "--write-baseline",
        &s(&empty),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("nothing to gate") && err.contains("`bf16-smoke`"),
        "{err}"
    );
    assert!(!empty.exists());
    let mut hollow = stored.clone();
    hollow["entries"] = json!([]);
    std::fs::write(&empty, hollow.to_string()).unwrap();
    let (code, out, err) = quantlab(&["regress", "--baseline", &s(&empty), "--runs", &s(&t)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("has no entries"), "{err}");
}

/// `quantlab report ... | head -1` ends quietly when the pipe closes (no panic, no error line).
#[test]
fn report_into_a_closed_pipe_is_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let n = tmp.path().join("n");
    // Enough tasks that the report outgrows the pipe's buffer after `head` has gone.
    let names: Vec<String> = (0..3000).map(|i| format!("task_{i:04}")).collect();
    let b: Vec<(&str, f64)> = names.iter().map(|t| (t.as_str(), 0.5)).collect();
    let q: Vec<(&str, f64)> = names.iter().map(|t| (t.as_str(), 0.49)).collect();
    write_run(&n, "bf16-smoke", "bf16", &b, "1.0");
    write_run(&n, "w4-smoke", "w4a16", &q, "1.0");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' report --resamples 0 '{}' '{}' | head -c 10",
            env!("CARGO_BIN_EXE_quantlab"),
            n.join("bf16-smoke").display(),
            n.join("w4-smoke").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Recovery a");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
