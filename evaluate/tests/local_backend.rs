//! The local engine backend against lm-eval 0.4 (HF model, float32, CPU) on the real
//! SmolLM2-135M-Instruct: for the first 40 HellaSwag and ARC-Challenge documents, 20 Winogrande
//! documents and the first 4 documents of five MMLU subjects, every per-choice log-likelihood within 1e-3 and
//! every is_greedy equal; rolling log-likelihoods of the 50 HellaSwag contexts and of their
//! concatenation within 1e-3 (relative 1e-6 for the 3k-token text) and lm-eval's perplexities
//! (`reference/lmeval/bf16/float32/{limit300,full}/samples_*.jsonl`).
mod common;

use quantlab_evaluate::local::LocalBackend;
use quantlab_evaluate::{Backend, LoglikelihoodRequest};
use serde_json::Value;

fn default_model() -> std::path::PathBuf {
    let p = std::env::var("QUANTLAB_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/smollm2-135m-instruct")
        });
    assert!(
        p.join("config.json").is_file(),
        "default model not found at {}: run `just setup`",
        p.display()
    );
    p
}

fn load_backend() -> LocalBackend {
    let engine = quantlab_model::Engine::load(
        &default_model(),
        quantlab_model::EngineOptions {
            device: "cpu".into(),
            dtype: "float32".into(),
            ..Default::default()
        },
    )
    .unwrap();
    LocalBackend::new(engine)
}

/// lm-eval's requests and answers for the first `n` documents of a samples file.
fn ref_requests(path: &std::path::Path, n: usize) -> (Vec<LoglikelihoodRequest>, Vec<(f64, bool)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut reqs = Vec::new();
    let mut want = Vec::new();
    for line in text.lines().take(n) {
        let d: Value = serde_json::from_str(line).unwrap();
        let args = d["arguments"].as_object().unwrap();
        for (k, a) in args {
            let i: usize = k.trim_start_matches("gen_args_").parse().unwrap();
            reqs.push(LoglikelihoodRequest {
                context: a["arg_0"].as_str().unwrap().to_string(),
                continuation: a["arg_1"].as_str().unwrap().to_string(),
            });
            let r = &d["resps"][i][0];
            want.push((
                r[0].as_str().unwrap().parse().unwrap(),
                r[1].as_str().unwrap() == "True",
            ));
        }
    }
    (reqs, want)
}

/// Winogrande (partial contexts) and MMLU subjects: our log-likelihoods within 1e-3 of lm-eval's,
/// is_greedy and the per-document prediction equal.
#[test]
fn winogrande_and_mmlu_loglikelihoods_match_lm_eval() {
    let mut be = load_backend();
    let shared = common::shared_dir().join("reference/lmeval/bf16/float32");
    let mut files = vec![(
        "winogrande".to_string(),
        common::find_one(
            &shared.join("limit300"),
            "samples_ref_winogrande_",
            ".jsonl",
        ),
        20,
    )];
    for s in [
        "high_school_geography",
        "high_school_psychology",
        "marketing",
        "us_foreign_policy",
        "sociology",
    ] {
        files.push((
            format!("mmlu_{s}"),
            common::find_one(
                &shared.join("full"),
                &format!("samples_ref_mmlu_{s}_"),
                ".jsonl",
            ),
            4,
        ));
    }
    for (name, path, n) in files {
        let (reqs, want) = ref_requests(&path, n);
        let got = be.loglikelihood(&reqs, &|_| {}).unwrap();
        let mut worst = 0.0f64;
        for (i, (g, (w, greedy))) in got.iter().zip(&want).enumerate() {
            let d = (g.logprob - w).abs();
            worst = worst.max(d);
            assert!(
                d < 1e-3,
                "{name} request {i}: ours {} vs lm-eval {w}",
                g.logprob
            );
            assert_eq!(g.is_greedy, *greedy, "{name} request {i}: is_greedy");
        }
        eprintln!(
            "{name}: {} requests, max |Δ loglikelihood| = {worst:.2e}",
            reqs.len()
        );
    }
}

/// Rolling log-likelihoods (perplexity) of the 50 HellaSwag contexts, one by one and joined.
#[test]
fn rolling_loglikelihoods_match_lm_eval() {
    let mut be = load_backend();
    let full = common::shared_dir().join("reference/lmeval/bf16/float32/full");
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(common::find_one(&full, "results_", ".json")).unwrap(),
    )
    .unwrap();
    for task in ["ref_ppl_hs50_docs", "ref_ppl_hs50_concat"] {
        let path = common::find_one(&full, &format!("samples_{task}_"), ".jsonl");
        let docs: Vec<Value> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let texts: Vec<String> = docs
            .iter()
            .map(|d| d["doc"]["page"].as_str().unwrap().to_string())
            .collect();
        let got = be.loglikelihood_rolling(&texts, &|_| {}).unwrap();
        let mut worst = 0.0f64;
        let mut items = Vec::new();
        for (d, (g, t)) in docs.iter().zip(got.iter().zip(&texts)) {
            let w: f64 = d["resps"][0][0].as_str().unwrap().parse().unwrap();
            let diff = (g - w).abs();
            worst = worst.max(diff);
            assert!(
                diff < 1e-3f64.max(1e-6 * w.abs()),
                "{task} doc {}: ours {g} vs lm-eval {w}",
                d["doc_id"]
            );
            // lm-eval's word and byte counts
            assert_eq!(
                quantlab_tasks::preprocess::py_word_count(t) as u64,
                d["word_perplexity"][1].as_u64().unwrap()
            );
            assert_eq!(t.len() as u64, d["byte_perplexity"][1].as_u64().unwrap());
            items.push((*g, quantlab_tasks::preprocess::py_word_count(t), t.len()));
        }
        let spec = quantlab_tasks::TaskSpec::from_yaml_str(
            "task: ppl\nversion: 1\ndataset: x.jsonl\noutput_type: loglikelihood_rolling\n\
             doc_to_text: ''\ndoc_to_target: '{{page}}'\nmetrics:\n  - metric: word_perplexity\n\
             \x20 - metric: byte_perplexity\n  - metric: bits_per_byte\nprimary_metric: word_perplexity\n",
            "ppl.yaml",
        )
        .unwrap();
        let ppl = quantlab_tasks::perplexities(&spec, &items);
        for key in ["word_perplexity", "byte_perplexity", "bits_per_byte"] {
            let want = results["results"][task][format!("{key},none")]
                .as_f64()
                .unwrap();
            let rel = (ppl[key] - want).abs() / want;
            assert!(
                rel < 1e-5,
                "{task} {key}: ours {} vs lm-eval {want}",
                ppl[key]
            );
        }
        eprintln!(
            "{task}: {} texts, max |Δ loglikelihood| = {worst:.2e}, word ppl {:.4}",
            texts.len(),
            ppl["word_perplexity"]
        );
    }
}

#[test]
fn loglikelihoods_match_lm_eval() {
    let engine = quantlab_model::Engine::load(
        &default_model(),
        quantlab_model::EngineOptions {
            device: "cpu".into(),
            dtype: "float32".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut be = LocalBackend::new(engine);
    let dir = common::shared_dir().join("reference/lmeval/bf16/float32/limit300");
    for task in ["ref_hellaswag", "ref_arc_challenge"] {
        let path = common::find_one(&dir, &format!("samples_{task}_"), ".jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut reqs = Vec::new();
        let mut want: Vec<(f64, bool)> = Vec::new();
        for line in text.lines().take(40) {
            let d: Value = serde_json::from_str(line).unwrap();
            let args = d["arguments"].as_object().unwrap();
            for (k, a) in args {
                let i: usize = k.trim_start_matches("gen_args_").parse().unwrap();
                reqs.push(LoglikelihoodRequest {
                    context: a["arg_0"].as_str().unwrap().to_string(),
                    continuation: a["arg_1"].as_str().unwrap().to_string(),
                });
                let r = &d["resps"][i][0];
                want.push((
                    r[0].as_str().unwrap().parse().unwrap(),
                    r[1].as_str().unwrap() == "True",
                ));
            }
        }
        let got = be.loglikelihood(&reqs, &|_| {}).unwrap();
        let mut worst = 0.0f64;
        for (i, (g, (w, greedy))) in got.iter().zip(&want).enumerate() {
            let d = (g.logprob - w).abs();
            worst = worst.max(d);
            assert!(
                d < 1e-3,
                "{task} request {i} {:?}: ours {} vs lm-eval {w}",
                reqs[i],
                g.logprob
            );
            assert_eq!(g.is_greedy, *greedy, "{task} request {i}: is_greedy");
        }
        eprintln!(
            "{task}: {} requests, max |Δ loglikelihood| = {worst:.2e}",
            reqs.len()
        );
    }
}
