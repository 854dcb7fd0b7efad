//! An interrupted `quantlab compress` resumes from its last finished layer (`OUT.partial/`) and
//! writes the same checkpoint, byte for byte, as an uninterrupted run; a partial folder made with
//! another calibration set is not reused.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn args<'a>(model: &'a str, out: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "compress",
        model,
        "w8a8-int8",
        "--out",
        out,
        "--calibration",
        "random",
        "--samples",
        "8",
        "--seq-len",
        "64",
        "--seed",
        seed,
        "--device",
        "cpu",
    ]
}

fn run(a: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .args(a)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "quantlab {a:?} failed: {err}");
    err
}

fn layers_done(partial: &Path) -> usize {
    std::fs::read_to_string(partial.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["layers"].as_array().map(|l| l.len()))
        .unwrap_or(0)
}

/// Copy the files of folder `from` into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn killed_run_resumes_and_writes_the_same_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::default_model();
    let model = model.to_str().unwrap();
    let full = tmp.path().join("full");
    run(&args(model, full.to_str().unwrap(), "0"));
    assert!(
        !tmp.path().join("full.partial").exists(),
        "partial folder left behind"
    );

    // Start again elsewhere and kill it once three layers are saved.
    let out = tmp.path().join("resumed");
    let partial = tmp.path().join("resumed.partial");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .args(args(model, out.to_str().unwrap(), "0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while layers_done(&partial) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no progress in {}",
            partial.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = layers_done(&partial);
    assert!(
        (3..30).contains(&done),
        "{done} layers saved at the interruption"
    );
    assert!(
        !out.exists(),
        "an interrupted run must not leave an output folder"
    );

    // A partial run made with another calibration set is started over, not mixed in.
    let other = tmp.path().join("other");
    copy_dir(&partial, &tmp.path().join("other.partial"));
    let log = run(&args(model, other.to_str().unwrap(), "1"));
    assert!(
        log.contains("starting over"),
        "stale partial folder reused: {log}"
    );

    // So is one made with another forward dtype (the same recipe and tokens otherwise).
    let f32_out = tmp.path().join("f32");
    copy_dir(&partial, &tmp.path().join("f32.partial"));
    let mut a32 = args(model, f32_out.to_str().unwrap(), "0");
    a32.extend(["--dtype", "float32"]);
    let log = run(&a32);
    assert!(
        log.contains("starting over"),
        "a bf16 partial folder was reused by a float32 run: {log}"
    );

    // The same command again resumes and gives the same bytes as the uninterrupted run.
    let _ = run(&args(model, out.to_str().unwrap(), "0"));
    assert!(
        !partial.exists(),
        "partial folder left behind after completion"
    );
    let a = std::fs::read(full.join("model.safetensors")).unwrap();
    let b = std::fs::read(out.join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed checkpoint differs from the uninterrupted one"
    );
    let c = std::fs::read(other.join("model.safetensors")).unwrap();
    assert!(
        a != c,
        "another calibration seed should change the checkpoint"
    );
}
