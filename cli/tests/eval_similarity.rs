//! `quantlab eval --suite similarity` through the binary, on the reference of
//! `../shared/reference/similarity/` (the first 20 IFEval prompts, chat template, greedy, 64 new
//! tokens, float32; answers of the BF16 model and of llm-compressor's W4A16 g64 GPTQ model, and
//! the peers' per-pair scores: rouge-score 0.1.2, bert-score 0.3.13 with MiniLM layer 6,
//! sentence-transformers 6.2.0).
//!
//! - The default model's generated answers equal transformers' greedy answers, text for text.
//! - The W4A16 answers (as `--samples`) scored against that run (as `--baseline`) give the peers'
//!   per-pair scores: ROUGE exactly, BERTScore and STS within 1e-4; results.json holds the means.
//! - A killed generation resumes and ends with the same answers.
//! - A wrong baseline (another suite, fewer answers, other settings) fails before the model loads.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The generating tests share the 2 CPU cores; one at a time keeps their wall time predictable.
static SERIAL: Mutex<()> = Mutex::new(());

fn ref_dir() -> PathBuf {
    common::shared().join("reference/similarity")
}

fn quantlab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quantlab"));
    // No request cache: the resume test must really generate.
    c.env("QUANTLAB_CACHE", "off");
    c.arg("eval")
        .arg("--data-dir")
        .arg(common::shared().join("data"));
    c
}

fn generate_cmd(out: &Path, limit: usize, batch: usize) -> Command {
    generate_cmd_with(out, limit, batch, 64)
}

fn generate_cmd_with(out: &Path, limit: usize, batch: usize, max_new: usize) -> Command {
    let mut c = quantlab();
    c.arg(common::default_model())
        .args(["--suite", "similarity", "--prompts", "ifeval", "--limit"])
        .arg(limit.to_string())
        .args(["--max-new-tokens", &max_new.to_string()])
        .args(["--dtype", "float32", "--device", "cpu"])
        .args(["--batch-size", &batch.to_string()])
        .arg("--out")
        .arg(out);
    c
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn reference_texts(file: &str) -> Vec<(String, String)> {
    jsonl(&ref_dir().join(file))
        .into_iter()
        .map(|r| {
            (
                r["key"].to_string(),
                r["generation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn generated_answers_equal_transformers_and_score_like_the_peers() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("bf16");
    let t0 = Instant::now();
    // Generating only (no --baseline) needs no encoder: the GPU machine that makes the answers
    // often has none (QUANTLAB_MINILM pointing nowhere proves it is not looked for).
    let stdout = ok(generate_cmd(&base, 20, 8)
        .env("QUANTLAB_MINILM", tmp.path().join("no-encoder-here"))
        .output()
        .unwrap());
    eprintln!(
        "20 answers × 64 tokens: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("stored 20 answers"), "{stdout}");

    // Text for text what transformers generated greedily.
    let ours: Vec<(String, String)> = jsonl(&base.join("generations.jsonl"))
        .into_iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_string(),
                g["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ours, reference_texts("gen_bf16_float32.jsonl"));
    let rec = json(&base.join("results.json"));
    assert_eq!(rec["suite"], "similarity");
    assert_eq!(rec["tasks"], serde_json::json!({}));
    assert_eq!(rec["backend"]["generation"]["max_new_tokens"], 64);
    assert_eq!(rec["backend"]["generation"]["prompts"], "ifeval");
    assert_eq!(rec["backend"]["generation"]["chat_template"], true);
    assert!(!base.join(".resume").exists());

    // The W4A16 model's answers scored against the stored BF16 answers.
    let q = tmp.path().join("w4a16");
    let stdout = ok(quantlab()
        .args(["--suite", "similarity", "--device", "cpu", "--samples"])
        .arg(ref_dir().join("gen_w4a16g64_gptq_text_float32.jsonl"))
        .arg("--baseline")
        .arg(&base)
        .arg("--out")
        .arg(&q)
        .output()
        .unwrap());
    assert!(stdout.contains("| ROUGE-L F | 0.2387 |"), "{stdout}");
    let peers: HashMap<String, Value> =
        jsonl(&ref_dir().join("scores_bf16_vs_w4a16g64_gptq_text_float32_pairs.jsonl"))
            .into_iter()
            .map(|r| (r["key"].to_string(), r))
            .collect();
    let sim = json(&q.join("similarity.json"));
    let pairs = sim["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 20);
    for p in pairs {
        let id = p["id"].as_str().unwrap();
        let peer = &peers[id];
        for (ours, theirs) in [
            ("rouge1_f", "rouge1_nostem_f"),
            ("rougeL_f", "rougeL_nostem_f"),
            ("rouge1_p", "rouge1_nostem_p"),
            ("rougeL_r", "rougeL_nostem_r"),
        ] {
            assert_eq!(p[ours].as_f64(), peer[theirs].as_f64(), "{id} {ours}");
        }
        for m in ["bertscore_p", "bertscore_r", "bertscore_f1", "sts_cosine"] {
            let (a, b) = (p[m].as_f64().unwrap(), peer[m].as_f64().unwrap());
            assert!((a - b).abs() < 1e-4, "{id} {m}: {a} vs peer {b}");
        }
    }
    let summary = json(&ref_dir().join("scores_bf16_vs_w4a16g64_gptq_text_float32_summary.json"));
    let rec = json(&q.join("results.json"));
    let m = &rec["tasks"]["similarity"]["metrics"];
    assert_eq!(rec["tasks"]["similarity"]["n_docs"], 20);
    for (ours, theirs, tol) in [
        ("rouge1_f", "rouge1_nostem_f", 1e-12),
        ("rougeL_f", "rougeL_nostem_f", 1e-12),
        ("bertscore_f1", "bertscore_f1", 1e-4),
        ("sts_cosine", "sts_cosine", 1e-4),
    ] {
        let (a, b) = (
            m[ours]["value"].as_f64().unwrap(),
            summary[theirs].as_f64().unwrap(),
        );
        assert!((a - b).abs() < tol, "{ours}: {a} vs peer {b}");
        assert!(m[ours]["stderr"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        rec["backend"]["similarity_baseline"]["run_id"], "bf16",
        "{rec}"
    );

    // The report's similarity section, and the gate on the similarity means.
    let bin = || Command::new(env!("CARGO_BIN_EXE_quantlab"));
    let night = tmp.path().join("night");
    std::fs::create_dir(&night).unwrap();
    for d in [&base, &q] {
        let to = night.join(d.file_name().unwrap());
        std::fs::create_dir(&to).unwrap();
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let rep = tmp.path().join("report");
    let md = ok(bin()
        .arg("report")
        .arg(night.join("bf16"))
        .arg(night.join("w4a16"))
        .arg("--out")
        .arg(&rep)
        .output()
        .unwrap());
    assert!(
        md.contains(
            "| w4a16 | samples | bf16 | 20 | 26.23 [15.71, 36.74] | 23.87 [13.78, 33.96] | 49.08 ["
        ),
        "{md}"
    );
    let html = std::fs::read_to_string(rep.join("report_similarity.html")).unwrap();
    assert!(
        html.contains("<td class=\"num\">23.87 [13.78, 33.96]</td>"),
        "{html}"
    );
    let csv = std::fs::read_to_string(rep.join("report_similarity.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("w4a16,"), "{csv}");
    let err = fails(bin().arg("report").arg(&base).output().unwrap());
    assert!(err.contains("only stored their answers"), "{err}");

    let snap = tmp.path().join("snap.json");
    ok(bin()
        .args(["regress", "--runs"])
        .arg(&night)
        .arg("--write-baseline")
        .arg(&snap)
        .output()
        .unwrap());
    let stored = json(&snap);
    let entries = stored["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{stored}");
    assert!(entries.iter().all(|e| e["kind"] == "similarity"));
    let pass = bin()
        .args(["regress", "--runs"])
        .arg(&night)
        .arg("--baseline")
        .arg(&snap)
        .output()
        .unwrap();
    assert_eq!(pass.status.code(), Some(0));
    // Plant a 3-point drop of the mean BERTScore F1.
    let sim_file = night.join("w4a16/similarity.json");
    let mut sim = json(&sim_file);
    let f1 = sim["metrics"]["bertscore_f1"]["mean"].as_f64().unwrap();
    sim["metrics"]["bertscore_f1"]["mean"] = (f1 - 0.03).into();
    std::fs::write(&sim_file, sim.to_string()).unwrap();
    let fail = bin()
        .args(["regress", "--runs"])
        .arg(&night)
        .arg("--baseline")
        .arg(&snap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fail.stdout);
    assert_eq!(fail.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REGRESSED")
            && text.contains("samples/similarity:bertscore_f1: mean 49.08 -> 46.08"),
        "{text}"
    );

    // A baseline without answers for every prompt, a non-similarity baseline and other generation
    // settings are refused before the model loads (stderr names the problem, no run folder).
    let small = tmp.path().join("small");
    ok(quantlab()
        .args([
            "--suite",
            "similarity",
            "--device",
            "cpu",
            "--limit",
            "5",
            "--samples",
        ])
        .arg(ref_dir().join("gen_bf16_float32.jsonl"))
        .arg("--out")
        .arg(&small)
        .output()
        .unwrap());
    let bad = tmp.path().join("bad");
    let err = fails(
        generate_cmd(&bad, 20, 8)
            .arg("--baseline")
            .arg(&small)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("no answer for prompt 102 ") && err.contains("smaller --limit"),
        "{err}"
    );
    assert!(!err.contains("loading"), "{err}");
    assert!(!bad.exists());

    let err = fails(
        generate_cmd_with(&bad, 3, 8, 32)
            .arg("--baseline")
            .arg(&base)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("max_new_tokens 64") && err.contains("max_new_tokens 32"),
        "{err}"
    );
    assert!(!bad.join("results.json").exists());

    // Pre-generated answers must answer every baseline prompt (or the first --limit of them).
    let partial = tmp.path().join("partial.jsonl");
    let lines: Vec<String> =
        std::fs::read_to_string(ref_dir().join("gen_w4a16g64_gptq_text_float32.jsonl"))
            .unwrap()
            .lines()
            .take(7)
            .map(String::from)
            .collect();
    std::fs::write(&partial, lines.join("\n") + "\n").unwrap();
    let err = fails(
        quantlab()
            .args(["--suite", "similarity", "--device", "cpu", "--samples"])
            .arg(&partial)
            .arg("--baseline")
            .arg(&base)
            .arg("--out")
            .arg(&bad)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("answers for 7 of the baseline's 20 prompts"),
        "{err}"
    );
    ok(quantlab()
        .args([
            "--suite",
            "similarity",
            "--device",
            "cpu",
            "--limit",
            "7",
            "--samples",
        ])
        .arg(&partial)
        .arg("--baseline")
        .arg(&base)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap());
    assert_eq!(
        json(&bad.join("results.json"))["tasks"]["similarity"]["n_docs"],
        7
    );
    // A prompt-set name with a typo is not taken for a file.
    let err = fails(
        quantlab()
            .arg(common::default_model())
            .args([
                "--suite",
                "similarity",
                "--prompts",
                "arenahard",
                "--device",
                "cpu",
            ])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("--prompts arenahard: not a prompt set"),
        "{err}"
    );
    // The gate refuses a scored similarity run whose baseline run is not beside it.
    let lone = tmp.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    let to = lone.join("w4a16");
    std::fs::create_dir(&to).unwrap();
    for e in std::fs::read_dir(&q).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let o = bin()
        .args(["regress", "--runs"])
        .arg(&lone)
        .arg("--write-baseline")
        .arg(tmp.path().join("lone.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("scored against run `bf16`, which is not in this folder"),
        "{err}"
    );

    let code_run = tmp.path().join("code");
    std::fs::create_dir(&code_run).unwrap();
    let mut other = json(&base.join("results.json"));
    other["suite"] = "humaneval".into();
    std::fs::write(code_run.join("results.json"), other.to_string()).unwrap();
    let err = fails(
        generate_cmd(&bad, 3, 8)
            .arg("--baseline")
            .arg(&code_run)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("a `humaneval` run, not a similarity run"),
        "{err}"
    );
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

/// Start `cmd` and kill it once the checkpoint file `state` holds `n` answers.
fn kill_after(mut cmd: Command, state: &Path, n: usize) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines(state) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "eval finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_generation_resumes_with_the_same_answers() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let state = out.join(".resume/generations.jsonl");
    kill_after(generate_cmd(&out, 12, 3), &state, 6);
    let at_kill = lines(&state);
    assert!((6..12).contains(&at_kill), "{at_kill} answers at the kill");
    assert!(!out.join("results.json").exists());

    let o = generate_cmd(&out, 12, 3).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(stderr.contains("resuming the interrupted run"), "{stderr}");
    let rec = json(&out.join("results.json"));
    assert_eq!(rec["resumed_docs"]["similarity"], at_kill as u64);
    let texts: Vec<(String, String)> = jsonl(&out.join("generations.jsonl"))
        .into_iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_string(),
                g["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = reference_texts("gen_bf16_float32.jsonl");
    want.truncate(12);
    assert_eq!(texts, want);
    assert!(!out.join(".resume").exists());

    // Interrupted again, then re-run with other settings (2 new tokens): the old answers are
    // discarded with a warning, not an error, and not mixed in.
    let out2 = tmp.path().join("run2");
    let state2 = out2.join(".resume/generations.jsonl");
    kill_after(generate_cmd(&out2, 12, 3), &state2, 3);
    let o = generate_cmd_with(&out2, 6, 3, 2).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(stderr.contains("its answers are discarded"), "{stderr}");
    let rec = json(&out2.join("results.json"));
    assert!(rec.get("resumed_docs").is_none(), "{rec}");
    assert_eq!(rec["backend"]["generation"]["max_new_tokens"], 2);
    assert_eq!(jsonl(&out2.join("generations.jsonl")).len(), 6);
}
