//! Fidelity against lm-evaluation-harness without a model: for the first 300 documents of
//! HellaSwag and ARC-Challenge, our requests must equal the `arguments` lm-eval logged, and
//! scoring lm-eval's own log-likelihoods must reproduce its per-document `acc`/`acc_norm` and the
//! aggregates in its results JSON (`reference/lmeval/bf16/float32/limit300/`).

mod common;

use quantlab_tasks::metrics::{mean, mean_stderr};
use quantlab_tasks::{builtin_task, load_jsonl, Target, Task};
use serde_json::Value;

/// lm-eval's per-document record, the fields we check.
struct RefDoc {
    doc_id: usize,
    args: Vec<(String, String)>,
    lls: Vec<f64>,
    target: String,
    acc: f64,
    acc_norm: f64,
}

fn load_ref(task: &str) -> (Vec<RefDoc>, Value) {
    let dir = common::lmeval_limit300();
    let samples = common::find_one(&dir, &format!("samples_ref_{task}_"), ".jsonl");
    let results = common::find_one(&dir, "results_", ".json");
    let mut docs: Vec<RefDoc> = load_jsonl(&samples, None)
        .unwrap()
        .into_iter()
        .map(|r| {
            let mut args: Vec<(usize, String, String)> = r["arguments"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let i: usize = k.trim_start_matches("gen_args_").parse().unwrap();
                    (
                        i,
                        v["arg_0"].as_str().unwrap().to_string(),
                        v["arg_1"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            args.sort_by_key(|a| a.0);
            let lls = r["filtered_resps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[0].as_str().unwrap().parse::<f64>().unwrap())
                .collect();
            RefDoc {
                doc_id: r["doc_id"].as_u64().unwrap() as usize,
                args: args.into_iter().map(|(_, c, t)| (c, t)).collect(),
                lls,
                target: r["target"].as_str().unwrap().to_string(),
                acc: r["acc"].as_f64().unwrap(),
                acc_norm: r["acc_norm"].as_f64().unwrap(),
            }
        })
        .collect();
    docs.sort_by_key(|d| d.doc_id);
    let results: Value = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    (docs, results["results"][format!("ref_{task}")].clone())
}

fn check_task(task_name: &str) {
    let (refs, agg) = load_ref(task_name);
    assert_eq!(refs.len(), 300);
    assert!(refs.iter().enumerate().all(|(i, r)| r.doc_id == i));
    let task = Task::new(builtin_task(task_name).unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(300)).unwrap();
    assert_eq!(docs.len(), 300);
    let (mut accs, mut norms) = (Vec::new(), Vec::new());
    for (doc, r) in docs.iter().zip(&refs) {
        let ours: Vec<(String, String)> = task
            .continuations(doc)
            .into_iter()
            .map(|c| (doc.text.clone(), c))
            .collect();
        assert_eq!(
            ours, r.args,
            "{task_name} doc {}: requests differ",
            doc.doc_id
        );
        assert_eq!(
            doc.target,
            Target::Index(r.target.parse().unwrap()),
            "{task_name} doc {}: gold",
            doc.doc_id
        );
        let m = task.score_choices(doc, &r.lls).unwrap();
        assert_eq!(m["acc"], r.acc, "{task_name} doc {}: acc", doc.doc_id);
        assert_eq!(
            m["acc_norm"], r.acc_norm,
            "{task_name} doc {}: acc_norm",
            doc.doc_id
        );
        accs.push(m["acc"]);
        norms.push(m["acc_norm"]);
    }
    for (key, xs) in [("acc", &accs), ("acc_norm", &norms)] {
        let want = agg[format!("{key},none")].as_f64().unwrap();
        let want_se = agg[format!("{key}_stderr,none")].as_f64().unwrap();
        assert_eq!(mean(xs), want, "{task_name} {key}");
        assert_eq!(mean_stderr(xs), want_se, "{task_name} {key} stderr");
    }
}

#[test]
fn hellaswag_requests_and_scores_match_lm_eval() {
    check_task("hellaswag");
}

#[test]
fn arc_challenge_requests_and_scores_match_lm_eval() {
    check_task("arc_challenge");
}

/// The sharpest HellaSwag preprocessing cases in the full validation set: every document
/// preprocesses and renders, and known lm-eval outputs hold.
#[test]
fn hellaswag_whole_split_prepares() {
    let task = Task::new(builtin_task("hellaswag").unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), None).unwrap();
    assert_eq!(docs.len(), 10042);
    assert!(docs.iter().all(|d| d.choices.len() == 4));
    // doc 1 (lm-eval sample): ctx_b "the lady" capitalised
    assert_eq!(
        docs[1].text,
        "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The lady"
    );
}
