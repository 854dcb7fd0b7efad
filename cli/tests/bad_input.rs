//! Bad input through the real binary: one clear `error:` line naming the file and field,
//! a non-zero exit, and no output folder left behind.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn quantlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .env("QUANTLAB_CACHE", "off")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the default model folder with links to its big files and editable JSON files.
fn model_copy(tmp: &Path) -> PathBuf {
    let src = common::default_model();
    let dst = tmp.join("model");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if p.extension().is_some_and(|x| x == "json" || x == "jinja") {
            std::fs::copy(&p, dst.join(name)).unwrap();
        } else {
            std::os::unix::fs::symlink(&p, dst.join(name)).unwrap();
        }
    }
    dst
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

fn assert_one_error_line(code: i32, stderr: &str, needles: &[&str]) {
    assert_ne!(code, 0, "exit code should be non-zero; stderr: {stderr}");
    let errs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errs.len(),
        1,
        "exactly one error line expected, got: {stderr}"
    );
    for n in needles {
        assert!(
            errs[0].contains(n),
            "error line should mention {n:?}: {}",
            errs[0]
        );
    }
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

#[test]
fn unknown_scheme() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = quantlab(&[
        "compress",
        common::default_model().to_str().unwrap(),
        "w3a7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["unknown scheme 'w3a7'", "w4a16"]);
    assert!(!out.exists());
}

#[test]
fn config_field_of_the_wrong_type() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    edit_json(&m.join("config.json"), |v| {
        v["hidden_size"] = serde_json::json!("576")
    });
    let out = tmp.path().join("out");
    let (code, _, err) = quantlab(&[
        "compress",
        m.to_str().unwrap(),
        "w8a8-fp8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["config.json", "field 'hidden_size'"]);
    assert!(!out.exists());
    let (code, _, err) = quantlab(&[
        "eval",
        m.to_str().unwrap(),
        "--tasks",
        "hellaswag",
        "--limit",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["config.json", "hidden_size"]);
    assert!(!out.exists());
}

#[test]
fn unknown_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    edit_json(&m.join("config.json"), |v| {
        v["model_type"] = serde_json::json!("gpt_neox")
    });
    let out = tmp.path().join("out");
    let (code, _, err) = quantlab(&[
        "compress",
        m.to_str().unwrap(),
        "w4a16",
        "--group-size",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["config.json", "model_type", "gpt_neox"]);
    assert!(!out.exists());
}

#[test]
fn corrupt_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::copy(
        common::default_model().join("config.json"),
        m.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        m.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = quantlab(&[
        "compress",
        m.to_str().unwrap(),
        "w8a8-int8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["model.safetensors", "corrupt"]);
    assert!(!out.exists());
    let (code, _, err) = quantlab(&[
        "compress",
        "no/such/model",
        "w8a8-int8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["no/such/model"]);
    let (code, _, err) = quantlab(&[
        "import-gguf",
        "no/such.gguf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["no/such.gguf"]);
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "stray files left in {}",
        tmp.path().display()
    );
}

#[test]
fn missing_chat_template_when_the_task_needs_one() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    edit_json(&m.join("tokenizer_config.json"), |v| {
        v.as_object_mut().unwrap().remove("chat_template");
    });
    let _ = std::fs::remove_file(m.join("chat_template.jinja"));
    let out = tmp.path().join("run");
    let (code, _, err) = quantlab(&[
        "eval",
        m.to_str().unwrap(),
        "--tasks",
        "gsm8k",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["tokenizer_config.json", "chat_template"]);
    assert!(!out.exists(), "half-written run folder left behind");
}

#[test]
fn unknown_suite_and_missing_data() {
    let (code, _, err) = quantlab(&[
        "eval",
        common::default_model().to_str().unwrap(),
        "--suite",
        "nope",
    ]);
    assert_one_error_line(code, &err, &["unknown suite", "smoke"]);
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = quantlab(&[
        "eval",
        common::default_model().to_str().unwrap(),
        "--tasks",
        "hellaswag",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--runs-dir",
        tmp.path().join("runs").to_str().unwrap(),
    ]);
    assert_one_error_line(
        code,
        &err,
        &["hellaswag", "validation.jsonl.gz", "--data-dir"],
    );
    assert!(!tmp.path().join("runs").exists());
}

#[test]
fn force_never_destroys_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    std::fs::write(tmp.path().join("notes.txt"), "keep me").unwrap();
    // The source itself, its parent, and the current folder are refused even with --force.
    for out in [m.to_str().unwrap(), tmp.path().to_str().unwrap()] {
        let (code, _, err) = quantlab(&[
            "compress",
            m.to_str().unwrap(),
            "w8a8-fp8",
            "--out",
            out,
            "--force",
        ]);
        assert_one_error_line(code, &err, &["overlaps the input"]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .args([
            "compress",
            m.to_str().unwrap(),
            "w8a8-fp8",
            "--out",
            ".",
            "--force",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_one_error_line(
        out.status.code().unwrap(),
        &String::from_utf8_lossy(&out.stderr),
        &["current folder"],
    );
    assert!(
        tmp.path().join("notes.txt").is_file() && m.join("config.json").is_file(),
        "inputs were deleted"
    );
    // import-gguf into the folder that holds the GGUF.
    let gdir = tmp.path().join("gg");
    std::fs::create_dir_all(&gdir).unwrap();
    std::fs::write(gdir.join("m.gguf"), b"GGUF").unwrap();
    let (code, _, err) = quantlab(&[
        "import-gguf",
        gdir.join("m.gguf").to_str().unwrap(),
        "--out",
        gdir.to_str().unwrap(),
        "--force",
    ]);
    assert_one_error_line(code, &err, &["holds the input GGUF"]);
    assert!(gdir.join("m.gguf").is_file());
}

#[test]
fn non_finite_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    // Rewrite the weights with one NaN in layer 3's q_proj.
    let w = quantlab_model::Weights::open(&common::default_model()).unwrap();
    let mut tensors: Vec<(String, tch::Tensor)> = w
        .names()
        .map(|n| (n.to_string(), w.get(n).unwrap()))
        .collect();
    for (n, t) in tensors.iter_mut() {
        if n == "model.layers.3.self_attn.q_proj.weight" {
            let _ = t.get(0).get(0).fill_(f64::NAN);
        }
    }
    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    quantlab_model::weights::save_safetensors(&m.join("model.safetensors"), &tensors, None)
        .unwrap();
    let out = tmp.path().join("out");
    // Both the data-free path (RTN) and the calibrated one (SmoothQuant + GPTQ) refuse it.
    for args in [
        &["w8a8-fp8"][..],
        &[
            "w8a8-int8",
            "--calibration",
            "random",
            "--samples",
            "2",
            "--seq-len",
            "16",
        ][..],
    ] {
        let mut a = vec!["compress", m.to_str().unwrap()];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let (code, _, err) = quantlab(&a);
        assert_one_error_line(
            code,
            &err,
            &["model.layers.3.self_attn.q_proj.weight", "NaN"],
        );
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    let run = tmp.path().join("run");
    let (code, _, err) = quantlab(&[
        "eval",
        m.to_str().unwrap(),
        "--tasks",
        "arc_easy",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["non-finite log-likelihood"]);
    assert!(!run.exists());
}

/// Degenerate values and misplaced outputs found by the fresh-user review: each refused with one
/// error line before any work, nothing written.
#[test]
fn degenerate_values_and_outputs_inside_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy(tmp.path());
    let ms = m.to_str().unwrap();
    // An eval run folder inside the checkpoint.
    let inside = m.join("runs/x");
    let (code, _, err) = quantlab(&[
        "eval",
        ms,
        "--tasks",
        "arc_easy",
        "--limit",
        "2",
        "--out",
        inside.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["overlaps the input"]);
    assert!(!m.join("runs").exists());
    let (code, _, err) = quantlab(&[
        "eval",
        ms,
        "--suite",
        "humaneval",
        "--limit",
        "2",
        "--out",
        inside.to_str().unwrap(),
    ]);
    assert_one_error_line(code, &err, &["overlaps the input"]);
    // Calibration sequences longer than the model's context (8192 for SmolLM2).
    let out = tmp.path().join("q");
    let (code, _, err) = quantlab(&[
        "compress",
        ms,
        "w4a16",
        "--group-size",
        "64",
        "--calibration",
        "random",
        "--samples",
        "2",
        "--seq-len",
        "9000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_error_line(
        code,
        &err,
        &["--seq-len 9000", "max_position_embeddings 8192"],
    );
    assert!(!out.exists());
    // Zero-sized knobs.
    let (code, _, err) = quantlab(&[
        "eval",
        ms,
        "--suite",
        "similarity",
        "--max-new-tokens",
        "0",
        "--samples",
        "x.jsonl",
    ]);
    assert_one_error_line(code, &err, &["--max-new-tokens must be at least 1"]);
    let (code, _, err) = quantlab(&[
        "similarity",
        "--candidates",
        "a.jsonl",
        "--references",
        "b.jsonl",
        "--batch-tokens",
        "0",
    ]);
    assert_one_error_line(code, &err, &["--batch-tokens must be at least 1"]);
}

/// Code-suite sampling flags: N greedy samples, a temperature with a samples file, sampling flags
/// on a non-code suite and out-of-range settings are refused before anything is generated.
#[test]
fn sampling_flags_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let m = common::default_model();
    let m = m.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--suite", "humaneval", "--samples", "10"],
            &["--samples 10", "identical", "--temperature"],
        ),
        (
            &[
                "--suite",
                "humaneval",
                "--samples",
                "5",
                "--temperature",
                "-1",
            ],
            &["temperature must be finite and > 0"],
        ),
        (
            &[
                "--suite",
                "humaneval",
                "--samples",
                "5",
                "--temperature",
                "0.8",
                "--top-p",
                "0",
            ],
            &["top_p"],
        ),
        (
            &[
                "--suite",
                "humaneval",
                "--samples",
                "0",
                "--temperature",
                "0.8",
            ],
            &["--samples must be at least 1"],
        ),
        (
            &[
                "--suite",
                "smoke",
                "--samples",
                "10",
                "--temperature",
                "0.8",
            ],
            &["code suites"],
        ),
        (
            &[
                "--suite",
                "humaneval",
                "--samples",
                "x.jsonl",
                "--temperature",
                "0.8",
            ],
            &["--temperature", "samples FILE"],
        ),
        (
            &["--suite", "humaneval", "--top-p", "0.9"],
            &["--top-p and --seed", "--temperature"],
        ),
        (
            &["--suite", "humaneval", "--seed", "3", "--temperature", "0"],
            &["--top-p and --seed", "greedy"],
        ),
    ];
    for (args, needles) in cases {
        let mut a = vec!["eval", m, "--out", o];
        a.extend_from_slice(args);
        let (code, _, err) = quantlab(&a);
        assert_one_error_line(code, &err, needles);
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
}

/// MATH Level 5 needs a Python with sympy, ANTLR 4.11 and math-verify for its checks: a missing
/// interpreter is one error at the start of the run, before the model is loaded or any answer
/// generated, and no run folder is left.
#[test]
fn math_checks_python_is_checked_before_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .env("QUANTLAB_CACHE", "off")
        .env(
            "QUANTLAB_MATH_PYTHON",
            tmp.path().join("no-python").to_str().unwrap(),
        )
        .args([
            "eval",
            common::default_model().to_str().unwrap(),
            "--tasks",
            "math_algebra_hard",
            "--limit",
            "2",
            "--runs-dir",
            tmp.path().join("runs").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_one_error_line(
        out.status.code().unwrap_or(-1),
        &err,
        &["no-python", "QUANTLAB_MATH_PYTHON", "math-verify"],
    );
    assert!(!err.contains("loading"), "the model was loaded: {err}");
    assert!(!tmp.path().join("runs").exists());
}
