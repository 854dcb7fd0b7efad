//! Fidelity against lm-evaluation-harness without a model: for the first 300 documents of
//! HellaSwag, ARC-Challenge and Winogrande (`reference/lmeval/bf16/float32/limit300/`) and every
//! document of five MMLU subjects (`.../full/`), our requests must equal the `arguments` lm-eval
//! logged, and scoring lm-eval's own log-likelihoods must reproduce its per-document metrics and
//! the aggregates in its results JSON. Also: few-shot prompts (MMLU first_n, seeded sampler).

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

fn load_ref_in(dir: &std::path::Path, task: &str) -> (Vec<RefDoc>, Value) {
    let samples = common::find_one(dir, &format!("samples_ref_{task}_"), ".jsonl");
    let results = common::find_one(dir, "results_", ".json");
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
                target: match &r["target"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                },
                acc: r["acc"].as_f64().unwrap(),
                acc_norm: r["acc_norm"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect();
    docs.sort_by_key(|d| d.doc_id);
    let results: Value = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    (docs, results["results"][format!("ref_{task}")].clone())
}

fn load_ref(task: &str) -> (Vec<RefDoc>, Value) {
    load_ref_in(&common::lmeval_limit300(), task)
}

/// Our requests and scores for `ours` against lm-eval's `ref_<theirs>` records: requests equal,
/// gold equal, per-document `metrics` equal, aggregates (value and stderr) equal.
fn check_against(ours: &str, dir: &std::path::Path, theirs: &str, n: usize, metrics: &[&str]) {
    let (refs, agg) = load_ref_in(dir, theirs);
    assert_eq!(refs.len(), n, "{theirs}");
    assert!(refs.iter().enumerate().all(|(i, r)| r.doc_id == i));
    let task = Task::new(builtin_task(ours).unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(n)).unwrap();
    assert_eq!(docs.len(), n);
    let mut per_metric: Vec<Vec<f64>> = vec![Vec::new(); metrics.len()];
    for (doc, r) in docs.iter().zip(&refs) {
        let reqs = task.requests(doc, &task.plain_context(doc));
        assert_eq!(reqs, r.args, "{ours} doc {}: requests differ", doc.doc_id);
        // lm-eval logs the gold as an index, or for Winogrande as the continuation text
        let gold_ok = match r.target.parse::<usize>() {
            Ok(i) => doc.target == Target::Index(i),
            Err(_) => doc.continuation.as_deref() == Some(r.target.as_str()),
        };
        assert!(gold_ok, "{ours} doc {}: gold", doc.doc_id);
        let m = task.score_choices(doc, &r.lls).unwrap();
        for (k, key) in metrics.iter().enumerate() {
            let want = if *key == "acc" { r.acc } else { r.acc_norm };
            assert_eq!(m[*key], want, "{ours} doc {}: {key}", doc.doc_id);
            per_metric[k].push(m[*key]);
        }
    }
    for (key, xs) in metrics.iter().zip(&per_metric) {
        let want = agg[format!("{key},none")].as_f64().unwrap();
        let want_se = agg[format!("{key}_stderr,none")].as_f64().unwrap();
        assert_eq!(mean(xs), want, "{ours} {key}");
        assert!(
            (mean_stderr(xs) - want_se).abs() < 1e-15,
            "{ours} {key} stderr {} vs {want_se}",
            mean_stderr(xs)
        );
    }
}

fn check_task(task_name: &str) {
    check_against(
        task_name,
        &common::lmeval_limit300(),
        task_name,
        300,
        &["acc", "acc_norm"],
    );
    // the old single-context path gives the same requests
    let (refs, _) = load_ref(task_name);
    let task = Task::new(builtin_task(task_name).unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(300)).unwrap();
    for (doc, r) in docs.iter().zip(&refs) {
        let ours: Vec<(String, String)> = task
            .continuations(doc)
            .into_iter()
            .map(|c| (doc.text.clone(), c))
            .collect();
        assert_eq!(ours, r.args, "{task_name} doc {}", doc.doc_id);
    }
}

/// Winogrande: partial contexts (each option ends the context, the rest of the sentence is the
/// continuation), 300 documents.
#[test]
fn winogrande_requests_and_scores_match_lm_eval() {
    check_against(
        "winogrande",
        &common::lmeval_limit300(),
        "winogrande",
        300,
        &["acc"],
    );
}

/// MMLU, classic log-likelihood: every document of the five reference subjects, as
/// `mmlu:<subject>` tasks (description, question, options, " A".." D").
#[test]
fn mmlu_subjects_requests_and_scores_match_lm_eval() {
    let full = common::shared_dir().join("reference/lmeval/bf16/float32/full");
    for (subject, n) in [
        ("high_school_geography", 198),
        ("high_school_psychology", 545),
        ("marketing", 234),
        ("us_foreign_policy", 100),
        ("sociology", 201),
    ] {
        check_against(
            &format!("mmlu:{subject}"),
            &full,
            &format!("mmlu_{subject}"),
            n,
            &["acc"],
        );
    }
}

/// MMLU 5-shot: the first five dev questions of the same subject (lm-eval first_n), each as
/// question + " " + gold letter + "\n\n", after the subject's description.
#[test]
fn mmlu_five_shot_prompt_is_lm_evals() {
    let mut spec = builtin_task("mmlu:marketing").unwrap();
    spec.num_fewshot = 5;
    let task = Task::new(spec).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(2)).unwrap();
    let dev = load_jsonl(
        &common::shared_dir().join("reference/lmeval/data/mmlu/marketing_dev.jsonl"),
        None,
    )
    .unwrap();
    let q = |d: &Value| {
        let c = d["choices"].as_array().unwrap();
        format!(
            "{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:",
            d["question"].as_str().unwrap().trim(),
            c[0].as_str().unwrap(),
            c[1].as_str().unwrap(),
            c[2].as_str().unwrap(),
            c[3].as_str().unwrap()
        )
    };
    let mut want =
        "The following are multiple choice questions (with answers) about marketing.\n\n"
            .to_string();
    for d in &dev {
        let letter = ["A", "B", "C", "D"][d["answer"].as_u64().unwrap() as usize];
        want.push_str(&format!("{} {letter}\n\n", q(d)));
    }
    for doc in &docs {
        assert_eq!(task.plain_context(doc), format!("{want}{}", q(&doc.doc)));
        assert_eq!(
            doc.fewshot.iter().map(|e| e.pool_index).collect::<Vec<_>>(),
            // marketing's dev rows in the all-subject dev file
            (0..5)
                .map(|k| {
                    let all =
                        load_jsonl(&common::data_dir().join("mmlu/dev.jsonl.gz"), None).unwrap();
                    all.iter()
                        .enumerate()
                        .filter(|(_, d)| d["subject"] == "marketing")
                        .nth(k)
                        .unwrap()
                        .0
                })
                .collect::<Vec<_>>()
        );
    }
}

/// The seeded sampler draws what CPython's `random.Random(1234).sample` draws, one generator for
/// the task, document after document; with the pool being the evaluated file, n+1 are drawn and
/// the document itself dropped. Expected values from CPython 3.11:
/// `r = random.Random(1234); r.sample(range(10042), 11); r.sample(range(10042), 11)`.
#[test]
fn seeded_fewshot_sampler_is_cpythons() {
    let task = Task::new(builtin_task("hellaswag_10shot").unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(2)).unwrap();
    let ids = |d: &quantlab_tasks::PreparedDoc| {
        d.fewshot.iter().map(|e| e.pool_index).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&docs[0]),
        [7220, 1914, 122, 1485, 9539, 572, 1375, 1612, 5810, 3879]
    );
    assert_eq!(
        ids(&docs[1]),
        [504, 259, 5670, 7933, 7594, 2433, 1495, 2999, 1874, 239]
    );
    // the examples are the preprocessed documents: query + " " + gold ending + "\n\n"
    let pool = task.load_docs(&common::data_dir(), None).unwrap();
    let ex = &pool[7220];
    let gold = ex["gold"].as_u64().unwrap() as usize;
    let first = format!(
        "{} {}\n\n",
        ex["query"].as_str().unwrap(),
        ex["choices"][gold].as_str().unwrap()
    );
    let ctx = task.plain_context(&docs[0]);
    assert!(ctx.starts_with(&first), "{ctx}");
    assert!(ctx.ends_with(&docs[0].text));
    // Winogrande 5-shot: random.Random(1234).sample(range(1267), 6) = [902, 239, 15, 185, 1192, 71]
    // for doc 0, then [171, 201, 726, 484, 35, 63] for doc 1; examples are the filled sentence,
    // " ", the rest; every choice's context is that prefix + the partial sentence
    let w = Task::new(builtin_task("winogrande_5shot").unwrap()).unwrap();
    let wd = w.load_prepared(&common::data_dir(), Some(2)).unwrap();
    assert_eq!(ids(&wd[0]), [902, 239, 15, 185, 1192]);
    assert_eq!(ids(&wd[1]), [171, 201, 726, 484, 35]);
    let reqs = w.requests(&wd[0], &w.plain_context(&wd[0]));
    let wpool = w.load_docs(&common::data_dir(), None).unwrap();
    let e = &wpool[902];
    let g = e["gold"].as_u64().unwrap() as usize;
    let prefix0 = format!(
        "{} {}\n\n",
        e["partial_contexts"][g].as_str().unwrap(),
        e["continuation"].as_str().unwrap()
    );
    assert!(reqs[0].0.starts_with(&prefix0));
    assert!(reqs[0]
        .0
        .ends_with("\n\nSarah was a much better surgeon than Maria so Sarah"));
    assert_eq!(reqs[1].1, " always got the easier cases.");
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
