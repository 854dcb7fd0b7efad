//! A killed `quantlab eval` resumes: the default model on ARC-Easy (40 documents, CPU, checkpoints
//! of 8 documents) is killed once two checkpoints are on disk, then the same command finishes the
//! run. The resumed run does not evaluate the finished documents again (`resumed_docs` in
//! results.json) and its per-document samples and scores are identical to an uninterrupted run's.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn eval_cmd(out: &Path) -> Command {
    eval_cmd_cached(out, &out.with_extension("cache"))
}

/// The eval command with its request cache in `cache` (each test run its own, so the resumed
/// run really computes its documents).
fn eval_cmd_cached(out: &Path, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quantlab"));
    c.env("QUANTLAB_CACHE", cache);
    c.args(["eval"])
        .arg(common::default_model())
        .args([
            "--tasks",
            "arc_easy",
            "--limit",
            "40",
            "--device",
            "cpu",
            "--batch-size",
            "16",
        ])
        .arg("--data-dir")
        .arg(common::shared().join("data"))
        .arg("--out")
        .arg(out)
        .env("QUANTLAB_EVAL_CHECKPOINT_DOCS", "8");
    c
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

#[test]
fn killed_eval_resumes_with_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (fresh, resumed) = (tmp.path().join("fresh"), tmp.path().join("resumed"));

    let t0 = Instant::now();
    let out = eval_cmd(&fresh).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("uninterrupted run: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(!fresh.join(".resume").exists(), "resume state left behind");

    // Start again elsewhere and kill it once 2 checkpoints (16 documents) are written.
    let state = resumed.join(".resume/samples_arc_easy.jsonl");
    let mut child = eval_cmd(&resumed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines(&state) < 1 + 16 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "eval finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_at_kill = lines(&state) - 1;
    assert!(
        (16..40).contains(&done_at_kill),
        "{done_at_kill} documents at the kill"
    );
    assert!(!resumed.join("results.json").exists());

    // Same command: continues after the last whole checkpoint.
    let out = eval_cmd(&resumed).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming the interrupted run"), "{stderr}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(resumed.join("results.json")).unwrap())
            .unwrap();
    let reused = rec["resumed_docs"]["arc_easy"].as_u64().unwrap() as usize;
    assert_eq!(reused, done_at_kill / 8 * 8, "whole checkpoints reused");
    assert!(stderr.contains(&format!(
        "{reused} of 40 documents taken from the resume state"
    )));
    assert!(!resumed.join(".resume").exists());

    // Identical per-document records and aggregates.
    let a = std::fs::read_to_string(fresh.join("samples_arc_easy.jsonl")).unwrap();
    let b = std::fs::read_to_string(resumed.join("samples_arc_easy.jsonl")).unwrap();
    assert_eq!(a.lines().count(), 40);
    assert_eq!(a, b, "samples differ after resume");
    let fresh_rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fresh.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(fresh_rec["tasks"], rec["tasks"]);
    assert!(fresh_rec.get("resumed_docs").is_none());
    // Identity and the lm-eval layout.
    assert_eq!(rec["model"]["weights_sha256"].as_str().unwrap().len(), 64);
    let lm: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(resumed.join("results_lm_eval.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        lm["results"]["arc_easy"]["acc_norm,none"],
        rec["tasks"]["arc_easy"]["metrics"]["acc_norm"]["value"]
    );
    assert_eq!(lm["versions"]["arc_easy"], 1.0);
    assert_eq!(lm["n-samples"]["arc_easy"]["effective"], 40);

    // An unchanged task on an unchanged model, run again with the first run's request cache:
    // every answer is reused and the records are the same.
    let again = tmp.path().join("again");
    let t0 = Instant::now();
    let out = eval_cmd_cached(&again, &fresh.with_extension("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    eprintln!("cached re-run: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        stderr.contains("request cache: 160 of 160 answers reused, 0 computed"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(again.join("samples_arc_easy.jsonl")).unwrap(),
        a
    );
    // Other numerics (bfloat16) never share answers with float32.
    let out = eval_cmd_cached(&tmp.path().join("bf16"), &fresh.with_extension("cache"))
        .args(["--dtype", "bfloat16"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("request cache: 0 of 160 answers reused, 160 computed"),
        "{stderr}"
    );

    // A finished run folder is still refused.
    let out = eval_cmd(&resumed).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run folder exists and is not empty"));
}

/// A request cache that cannot be used (here its folder would have to be made inside a file)
/// costs speed, not the run: one warning, then the eval goes on without it.
#[test]
fn an_unusable_cache_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = eval_cmd_cached(&tmp.path().join("run"), &file.join("sub"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot create the request cache folder")
            && stderr.contains("evaluating without the request cache"),
        "{stderr}"
    );
    assert!(!stderr.contains("request cache: "), "{stderr}");
}
