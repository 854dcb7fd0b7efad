//! Greedy generation end to end on the real SmolLM2-135M-Instruct (`just setup`): EvalPlus's
//! instruct prompt with the assistant turn prefilled, the code judged in the sandbox, pass@1 in
//! results.json. The model is too small to be expected to solve the problems; the test checks the
//! pipeline: every sample gets a verdict, the prompt carries the prefill, the code is extracted.

use quantlab_evaluate::codeeval::{self, generate, CodeEval, CodeRunOptions, Suite};
use quantlab_evaluate::local::LocalBackend;
use quantlab_evaluate::Backend;

#[test]
fn greedy_pass_at_1_on_two_humaneval_problems() {
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
    let engine = quantlab_model::Engine::load(
        &dir,
        quantlab_model::EngineOptions {
            device: "cpu".into(),
            dtype: "float32".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut be = LocalBackend::new(engine);
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
    let describe = be.describe();
    let (res, verdicts) = codeeval::run_code_eval(CodeEval {
        suite: Suite::HumanEval,
        data_dir: data,
        limit: Some(2),
        samples: None,
        backend: Some(&mut be),
        max_new_tokens: 128,
        run: CodeRunOptions {
            out_dir: out.path().join("run"),
            model: quantlab_evaluate::model_info::model_info("smollm2-135m", &dir).unwrap(),
            backend: describe,
            limit: Some(2),
        },
    })
    .unwrap();
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
