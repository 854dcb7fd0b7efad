//! The local engine backend against lm-eval 0.4 (HF model, float32, CPU) on the real
//! SmolLM2-135M-Instruct: for the first 40 HellaSwag and 40 ARC-Challenge documents, every
//! per-choice log-likelihood within 1e-3 and every is_greedy equal
//! (`reference/lmeval/bf16/float32/limit300/samples_*.jsonl`).
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
