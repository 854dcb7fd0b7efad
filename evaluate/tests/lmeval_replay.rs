//! Replay lm-eval's own log-likelihoods through our runner: a backend that answers each request
//! with the value lm-eval logged for the same (context, continuation) must reproduce lm-eval's
//! per-document acc/acc_norm and its aggregates (value and stderr) exactly.
//! Reference: `reference/lmeval/bf16/float32/limit300/` (lm-eval, SmolLM2-135M, fp32, CPU) for
//! HellaSwag, ARC-Challenge and Winogrande; `.../full/` for the MMLU subjects.

mod common;

use quantlab_evaluate::{
    read_results, read_samples, run_tasks, Backend, ChatMessage, GenerateRequest, Loglikelihood,
    LoglikelihoodRequest, RunOptions,
};
use quantlab_tasks::builtin_task;
use serde_json::Value;
use std::collections::HashMap;

/// Answers loglikelihood requests from lm-eval's logged responses; fails on anything unknown.
struct Replay {
    table: HashMap<(String, String), Loglikelihood>,
    asked: usize,
}

impl Backend for Replay {
    fn describe(&self) -> Value {
        serde_json::json!({"backend": "lm-eval replay"})
    }
    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>> {
        self.asked += reqs.len();
        let out = reqs
            .iter()
            .map(|r| {
                self.table
                    .get(&(r.context.clone(), r.continuation.clone()))
                    .copied()
                    .ok_or_else(|| anyhow::anyhow!("request not in lm-eval's log: {r:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        progress(reqs.len());
        Ok(out)
    }
    fn generate_until(
        &mut self,
        _: &[GenerateRequest],
        _: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>> {
        anyhow::bail!("not used")
    }
    fn apply_chat_template(&self, _: &[ChatMessage]) -> anyhow::Result<String> {
        anyhow::bail!("not used")
    }
}

fn ref_dir() -> std::path::PathBuf {
    common::shared_dir().join("reference/lmeval/bf16/float32/limit300")
}

fn full_dir() -> std::path::PathBuf {
    common::shared_dir().join("reference/lmeval/bf16/float32/full")
}

/// lm-eval's per-doc records of one task, by doc_id.
fn ref_samples(task: &str) -> Vec<Value> {
    ref_samples_in(&ref_dir(), task)
}

fn ref_samples_in(dir: &std::path::Path, task: &str) -> Vec<Value> {
    let p = common::find_one(dir, &format!("samples_ref_{task}_"), ".jsonl");
    let mut v: Vec<Value> = std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|r| r["doc_id"].as_u64().unwrap());
    v
}

#[test]
fn replayed_lm_eval_loglikelihoods_give_lm_eval_scores() {
    let tasks = ["hellaswag", "arc_challenge"];
    let mut table = HashMap::new();
    let mut distinct = 0;
    for t in tasks {
        let before = table.len();
        for r in ref_samples(t) {
            let args = r["arguments"].as_object().unwrap();
            for (k, a) in args {
                let i: usize = k.trim_start_matches("gen_args_").parse().unwrap();
                let resp = &r["resps"][i][0];
                let ll = Loglikelihood {
                    logprob: resp[0].as_str().unwrap().parse().unwrap(),
                    is_greedy: resp[1].as_str().unwrap() == "True",
                };
                let key = (
                    a["arg_0"].as_str().unwrap().to_string(),
                    a["arg_1"].as_str().unwrap().to_string(),
                );
                if let Some(prev) = table.insert(key, ll) {
                    assert_eq!(
                        prev, ll,
                        "lm-eval logged one request twice with different answers"
                    );
                }
            }
        }
        distinct += table.len() - before;
    }
    let mut backend = Replay { table, asked: 0 };
    let out = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        data_dir: common::data_dir(),
        limit: Some(300),
        out_dir: out.path().join("run"),
        model: common::model_info(),
        suite: "custom".into(),
    };
    let specs: Vec<_> = tasks.iter().map(|t| builtin_task(t).unwrap()).collect();
    let run = run_tasks(&mut backend, &specs, &opts).unwrap();
    // each distinct request was sent exactly once
    assert_eq!(backend.asked, distinct);
    assert_eq!(
        read_results(&opts.out_dir.join("results.json")).unwrap(),
        run
    );

    let lm: Value = serde_json::from_str(
        &std::fs::read_to_string(common::find_one(&ref_dir(), "results_", ".json")).unwrap(),
    )
    .unwrap();
    for t in tasks {
        let agg = &lm["results"][format!("ref_{t}")];
        let ours = &run.tasks[t];
        assert_eq!(ours.n_docs, 300);
        assert_eq!(ours.primary_metric, "acc_norm");
        for key in ["acc", "acc_norm"] {
            let m = &ours.metrics[key];
            assert_eq!(
                m.value,
                agg[format!("{key},none")].as_f64().unwrap(),
                "{t} {key}"
            );
            assert_eq!(
                m.stderr,
                agg[format!("{key}_stderr,none")].as_f64().unwrap(),
                "{t} {key} stderr"
            );
        }
        // per document, from the samples file we wrote
        let samples = read_samples(&opts.out_dir.join(format!("samples_{t}.jsonl"))).unwrap();
        let refs = ref_samples(t);
        assert_eq!(samples.len(), refs.len());
        for (s, r) in samples.iter().zip(&refs) {
            assert_eq!(s.doc_id as u64, r["doc_id"].as_u64().unwrap());
            assert_eq!(
                s.metrics["acc"],
                r["acc"].as_f64().unwrap(),
                "{t} doc {}",
                s.doc_id
            );
            assert_eq!(
                s.metrics["acc_norm"],
                r["acc_norm"].as_f64().unwrap(),
                "{t} doc {}",
                s.doc_id
            );
            let choices = s.choices.as_ref().unwrap();
            for (i, c) in choices.iter().enumerate() {
                let a = &r["arguments"][format!("gen_args_{i}")];
                assert_eq!(s.context, a["arg_0"].as_str().unwrap());
                assert_eq!(c.continuation, a["arg_1"].as_str().unwrap());
                let want: f64 = r["resps"][i][0][0].as_str().unwrap().parse().unwrap();
                assert_eq!(c.loglikelihood, want);
            }
        }
    }
}

/// The lm-eval answers of every request in `records`, keyed by (context, continuation).
fn replay_table(records: &[Value]) -> HashMap<(String, String), Loglikelihood> {
    let mut table = HashMap::new();
    for r in records {
        for (k, a) in r["arguments"].as_object().unwrap() {
            let i: usize = k.trim_start_matches("gen_args_").parse().unwrap();
            let resp = &r["resps"][i][0];
            table.insert(
                (
                    a["arg_0"].as_str().unwrap().to_string(),
                    a["arg_1"].as_str().unwrap().to_string(),
                ),
                Loglikelihood {
                    logprob: resp[0].as_str().unwrap().parse().unwrap(),
                    is_greedy: resp[1].as_str().unwrap() == "True",
                },
            );
        }
    }
    table
}

/// Winogrande (one context per choice) and MMLU subjects (`mmlu:<subject>`) through the runner:
/// per-document acc, the per-choice contexts in the samples file, and the aggregates equal
/// lm-eval's.
#[test]
fn replayed_winogrande_and_mmlu_give_lm_eval_scores() {
    let cases: Vec<(String, std::path::PathBuf, String, usize)> = vec![
        ("winogrande".into(), ref_dir(), "winogrande".into(), 300),
        (
            "mmlu:marketing".into(),
            full_dir(),
            "mmlu_marketing".into(),
            234,
        ),
        (
            "mmlu:us_foreign_policy".into(),
            full_dir(),
            "mmlu_us_foreign_policy".into(),
            100,
        ),
    ];
    let mut table = HashMap::new();
    for (_, dir, theirs, _) in &cases {
        table.extend(replay_table(&ref_samples_in(dir, theirs)));
    }
    let mut backend = Replay { table, asked: 0 };
    let out = tempfile::tempdir().unwrap();
    for (ours, dir, theirs, n) in &cases {
        let opts = RunOptions {
            data_dir: common::data_dir(),
            limit: Some(*n),
            out_dir: out.path().join(theirs),
            model: common::model_info(),
            suite: "custom".into(),
        };
        let run = run_tasks(&mut backend, &[builtin_task(ours).unwrap()], &opts).unwrap();
        let lm: Value = serde_json::from_str(
            &std::fs::read_to_string(common::find_one(dir, "results_", ".json")).unwrap(),
        )
        .unwrap();
        let agg = &lm["results"][format!("ref_{theirs}")];
        let m = &run.tasks[ours.as_str()].metrics["acc"];
        assert_eq!(m.value, agg["acc,none"].as_f64().unwrap(), "{ours}");
        assert!((m.stderr - agg["acc_stderr,none"].as_f64().unwrap()).abs() < 1e-15);
        let file = format!("samples_{ours}.jsonl");
        let samples = read_samples(&opts.out_dir.join(file)).unwrap();
        let refs = ref_samples_in(dir, theirs);
        assert_eq!(samples.len(), *n);
        for (s, r) in samples.iter().zip(&refs) {
            assert_eq!(
                s.metrics["acc"],
                r["acc"].as_f64().unwrap(),
                "{ours} doc {}",
                s.doc_id
            );
            for (i, c) in s.choices.as_ref().unwrap().iter().enumerate() {
                let a = &r["arguments"][format!("gen_args_{i}")];
                let ctx = c.context.as_deref().unwrap_or(&s.context);
                assert_eq!(ctx, a["arg_0"].as_str().unwrap());
                assert_eq!(c.continuation, a["arg_1"].as_str().unwrap());
            }
        }
    }
}
