//! Scoring pre-generated samples end to end (what `quantlab eval --suite S --samples FILE` runs):
//! verdicts per sample, pass@1 / pass@10 in results.json, the run folder layout.

use quantlab_evaluate::codeeval::{self, CodeEval, CodeRunOptions, Status, Suite};
use quantlab_evaluate::read_results;

fn run(
    suite: Suite,
    lines: &[serde_json::Value],
    limit: usize,
) -> (tempfile::TempDir, Vec<codeeval::Verdict>) {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&samples, text.join("\n") + "\n").unwrap();
    let out = dir.path().join("run");
    let (res, verdicts) = codeeval::run_code_eval(CodeEval {
        suite,
        data_dir: quantlab_tasks::default_data_dir(),
        limit: Some(limit),
        samples: Some(samples.clone()),
        backend: None,
        max_new_tokens: 16,
        decoding: codeeval::generate::Decoding::GREEDY,
        run: CodeRunOptions {
            out_dir: out.clone(),
            model: codeeval::samples_model_info(&samples).unwrap(),
            backend: serde_json::json!({"backend": "samples"}),
            limit: Some(limit),
        },
    })
    .unwrap();
    let back = read_results(&out.join("results.json")).unwrap();
    assert_eq!(back, res);
    let n_lines = std::fs::read_to_string(out.join(format!("samples_{}.jsonl", suite.name())))
        .unwrap()
        .lines()
        .count();
    assert_eq!(n_lines, verdicts.len());
    (dir, verdicts)
}

#[test]
fn humanevalplus_pass_fail_timeout() {
    let probs = codeeval::load_problems(
        Suite::HumanEvalPlus,
        &quantlab_tasks::default_data_dir(),
        Some(3),
    )
    .unwrap();
    let lines = vec![
        serde_json::json!({"task_id": "HumanEval/0", "solution": probs[0].reference}),
        // Wrong on the base inputs already.
        serde_json::json!({"task_id": "HumanEval/1", "completion": "    return []\n"}),
        serde_json::json!({"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n"}),
    ];
    let (dir, v) = run(Suite::HumanEvalPlus, &lines, 3);
    assert_eq!(v[0].status, Status::Pass);
    assert_eq!(v[0].plus_status, Some(Status::Pass));
    assert!(v[0].passed["plus"][0] > 100 && v[0].passed["plus"][0] == v[0].passed["plus"][1]);
    assert_eq!(v[1].status, Status::Fail);
    assert_eq!(v[1].base_status, Status::Fail);
    assert!(
        v[1].reason.starts_with("base: input 0: wrong output"),
        "{}",
        v[1].reason
    );
    assert_eq!(v[2].status, Status::Timeout, "{}", v[2].reason);
    let res = read_results(&dir.path().join("run/results.json")).unwrap();
    let t = &res.tasks["humanevalplus"];
    assert_eq!(t.n_docs, 3);
    assert_eq!(t.primary_metric, "pass@1");
    assert!((t.metrics["pass@1"].value - 1.0 / 3.0).abs() < 1e-12);
    assert!((t.metrics["base_pass@1"].value - 1.0 / 3.0).abs() < 1e-12);
    assert!(!t.metrics.contains_key("pass@10"));
}

#[test]
fn humaneval_pass_at_10_from_ten_samples() {
    let probs = codeeval::load_problems(
        Suite::HumanEval,
        &quantlab_tasks::default_data_dir(),
        Some(2),
    )
    .unwrap();
    let mut lines = Vec::new();
    for i in 0..10 {
        let good = i < 3;
        lines.push(if good {
            serde_json::json!({"task_id": "HumanEval/0", "solution": probs[0].reference})
        } else {
            serde_json::json!({"task_id": "HumanEval/0", "completion": "    return False\n"})
        });
        lines
            .push(serde_json::json!({"task_id": "HumanEval/1", "completion": "    return None\n"}));
    }
    let (_dir, v) = run(Suite::HumanEval, &lines, 2);
    assert_eq!(v.iter().filter(|x| x.status == Status::Pass).count(), 3);
    assert_eq!(v[2].completion_id, 1);
    let m = codeeval::pass_metrics(Suite::HumanEval, &v);
    // HumanEval/0: n=10, c=3 -> pass@1 0.3, pass@10 1; HumanEval/1: 0 and 0.
    assert!((m["pass@1"].value - 0.15).abs() < 1e-12);
    assert!((m["pass@10"].value - 0.5).abs() < 1e-12);
}

#[test]
fn bad_samples_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.jsonl");
    std::fs::write(&p, "{\"task_id\": \"HumanEval/0\"}\n").unwrap();
    let probs = codeeval::load_problems(
        Suite::HumanEval,
        &quantlab_tasks::default_data_dir(),
        Some(1),
    )
    .unwrap();
    let e = codeeval::read_samples(&p, &probs, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("s.jsonl:1") && e.contains("`solution` or `completion`"),
        "{e}"
    );
    std::fs::write(
        &p,
        "{\"task_id\": \"HumanEval/999\", \"solution\": \"x\"}\n",
    )
    .unwrap();
    let e = codeeval::read_samples(&p, &probs, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("HumanEval/999"), "{e}");
    // Samples for 1 of the 2 problems scored: refused, as EvalPlus does, naming the missing one.
    let two = codeeval::load_problems(
        Suite::HumanEval,
        &quantlab_tasks::default_data_dir(),
        Some(2),
    )
    .unwrap();
    std::fs::write(&p, "{\"task_id\": \"HumanEval/0\", \"solution\": \"x\"}\n").unwrap();
    let e = codeeval::read_samples(&p, &two, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cover 1 of 2 problems (missing HumanEval/1)") && e.contains("--limit N"),
        "{e}"
    );
}
