//! Greedy generation end to end on the real SmolLM2-135M-Instruct (`just setup`): EvalPlus's
//! instruct prompt with the assistant turn prefilled, the code judged in the sandbox, pass@1 in
//! results.json. The model is too small to be expected to solve the problems; the test checks the
//! pipeline: every sample gets a verdict, the prompt carries the prefill, the code is extracted.

use quantlab_evaluate::codeeval::{self, generate, CodeEval, CodeRunOptions, Suite};
use quantlab_evaluate::local::LocalBackend;
use quantlab_evaluate::Backend;

fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var("QUANTLAB_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/smollm2-135m-instruct")
        });
    assert!(
        dir.join("config.json").is_file(),
        "default model missing at {}",
        dir.display()
    );
    dir
}

fn backend(dir: &std::path::Path) -> LocalBackend {
    let engine = quantlab_model::Engine::load(
        dir,
        quantlab_model::EngineOptions {
            device: "cpu".into(),
            dtype: "float32".into(),
            ..Default::default()
        },
    )
    .unwrap();
    LocalBackend::new(engine)
}

/// `run_code_eval` on the first two HumanEval problems, generating with `be`, into `out/run`.
fn run_two(
    be: &mut LocalBackend,
    dir: &std::path::Path,
    data: &std::path::Path,
    max_new_tokens: usize,
    decoding: generate::Decoding,
    out: &std::path::Path,
) -> (quantlab_evaluate::RunResults, Vec<codeeval::Verdict>) {
    let describe = be.describe();
    codeeval::run_code_eval(CodeEval {
        suite: Suite::HumanEval,
        data_dir: data.to_path_buf(),
        limit: Some(2),
        samples: None,
        backend: Some(be),
        max_new_tokens,
        decoding,
        run: CodeRunOptions {
            out_dir: out.join("run"),
            model: quantlab_evaluate::model_info::model_info("smollm2-135m", dir).unwrap(),
            backend: describe,
            limit: Some(2),
        },
    })
    .unwrap()
}

#[test]
fn greedy_pass_at_1_on_two_humaneval_problems() {
    let dir = model_dir();
    let mut be = backend(&dir);
    let data = quantlab_tasks::default_data_dir();
    let probs = codeeval::load_problems(Suite::HumanEval, &data, Some(2)).unwrap();
    let (req, chat) = generate::request(&be, Suite::HumanEval, &probs[0], 128);
    assert!(chat);
    assert!(req.context.contains(generate::INSTRUCTION_PREFIX));
    assert!(
        req.context
            .ends_with(&format!("{}\n```python\n", generate::RESPONSE_PREFIX)),
        "{}",
        req.context
    );
    let out = tempfile::tempdir().unwrap();
    let (res, verdicts) = run_two(
        &mut be,
        &dir,
        &data,
        128,
        generate::Decoding::GREEDY,
        out.path(),
    );
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0].task_id, "HumanEval/0");
    assert!(!verdicts[0].solution.contains("```"));
    let t = &res.tasks["humaneval"];
    let p1 = t.metrics["pass@1"].value;
    let passes = verdicts
        .iter()
        .filter(|v| v.status == codeeval::Status::Pass)
        .count();
    assert!((p1 - passes as f64 / 2.0).abs() < 1e-12);
    assert_eq!(res.backend["generation"]["decoding"], "greedy");
    eprintln!(
        "pass@1 {p1}; {:?}",
        verdicts
            .iter()
            .map(|v| (&v.task_id, v.status, &v.reason))
            .collect::<Vec<_>>()
    );
}

/// Sampling (temperature 0.8, top-p 0.95): n samples per problem in problem order, pass@1 as the
/// unbiased estimator over them, settings recorded, each sample reproducible from (seed, task,
/// index) whatever else is in its batch, and the seed changing the samples.
#[test]
fn sampled_solutions_are_seeded_per_sample() {
    let dir = model_dir();
    let mut be = backend(&dir);
    let data = quantlab_tasks::default_data_dir();
    let probs = codeeval::load_problems(Suite::HumanEval, &data, Some(2)).unwrap();
    let decoding = generate::Decoding {
        n_samples: 3,
        sampling: Some((0.8, 0.95)),
        seed: 7,
    };
    let out = tempfile::tempdir().unwrap();
    let (res, verdicts) = run_two(&mut be, &dir, &data, 48, decoding, out.path());
    let ids: Vec<&str> = verdicts.iter().map(|v| v.task_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "HumanEval/0",
            "HumanEval/0",
            "HumanEval/0",
            "HumanEval/1",
            "HumanEval/1",
            "HumanEval/1"
        ]
    );
    let t = &res.tasks["humaneval"];
    let per_task: Vec<f64> = verdicts
        .chunks(3)
        .map(|c| {
            c.iter()
                .filter(|v| v.status == codeeval::Status::Pass)
                .count() as f64
                / 3.0
        })
        .collect();
    assert!((t.metrics["pass@1"].value - (per_task[0] + per_task[1]) / 2.0).abs() < 1e-12);
    assert!(
        !t.metrics.contains_key("pass@10"),
        "3 samples cannot give pass@10"
    );
    let g = &res.backend["generation"];
    assert_eq!(g["decoding"], "sampling");
    assert_eq!(g["n_samples"], 3);
    assert_eq!(g["temperature"], 0.8);
    assert_eq!(g["top_p"], 0.95);
    assert_eq!(g["seed"], 7);
    // Three samples of one problem at temperature 0.8 over 48 tokens are not all one text.
    assert!(
        verdicts[0].solution != verdicts[1].solution
            || verdicts[1].solution != verdicts[2].solution,
        "samples identical: {:?}",
        verdicts[0].solution
    );
    // HumanEval/1's samples again, alone in their batch: the same texts.
    let again = generate::generate(
        &mut be,
        Suite::HumanEval,
        &probs[1..],
        48,
        decoding,
        &|_| {},
    )
    .unwrap();
    let again: Vec<&str> = again.iter().map(|g| g.sample.solution.as_str()).collect();
    let first: Vec<&str> = verdicts[3..].iter().map(|v| v.solution.as_str()).collect();
    assert_eq!(again, first);
    // Another seed, other samples.
    let other = generate::generate(
        &mut be,
        Suite::HumanEval,
        &probs[1..],
        48,
        generate::Decoding {
            seed: 8,
            ..decoding
        },
        &|_| {},
    )
    .unwrap();
    let other: Vec<&str> = other.iter().map(|g| g.sample.solution.as_str()).collect();
    assert_ne!(other, first);
}
