//! The runner end to end with a small fake backend: the smoke suite on `--limit 5` writes a run
//! folder whose results.json and samples files parse back, with the expected shapes and values.

mod common;

use quantlab_evaluate::results::RunResults;
use quantlab_evaluate::{
    new_run_dir, read_results, read_samples, run_tasks, Backend, ChatMessage, GenerateRequest,
    Loglikelihood, LoglikelihoodRequest, RunOptions,
};
use quantlab_tasks::{suite, Target, TaskSpec};
use serde_json::{json, Value};
use std::cell::RefCell;

/// Scores a continuation by its length (shorter = likelier), generates a fixed answer, and
/// renders a ChatML template. Records what it was asked.
#[derive(Default)]
struct Fake {
    ll_requests: Vec<LoglikelihoodRequest>,
    gen_requests: Vec<GenerateRequest>,
    progressed: RefCell<usize>,
    no_template: bool,
}

impl Backend for Fake {
    fn describe(&self) -> Value {
        json!({"backend": "fake", "device": "cpu", "batch_size": 1})
    }
    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>> {
        self.ll_requests.extend_from_slice(reqs);
        let out = reqs
            .iter()
            .map(|r| Loglikelihood {
                logprob: -(r.continuation.chars().count() as f64) * 0.25,
                is_greedy: false,
            })
            .collect();
        for _ in reqs {
            progress(1);
            *self.progressed.borrow_mut() += 1;
        }
        Ok(out)
    }
    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>> {
        self.gen_requests.extend_from_slice(reqs);
        progress(reqs.len());
        Ok(reqs
            .iter()
            .map(|_| {
                "Step 1: 16 - 3 - 4 = 9.\nStep 2: 9 * $2 = $18.\nThe final answer is $18.".into()
            })
            .collect())
    }
    fn apply_chat_template(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
        if self.no_template {
            anyhow::bail!(
                "model has no chat template (tokenizer_config.json has no chat_template)"
            );
        }
        let mut s = String::new();
        for m in messages {
            s.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role, m.content
            ));
        }
        s.push_str("<|im_start|>assistant\n");
        Ok(s)
    }
}

fn opts(out: &std::path::Path) -> RunOptions {
    RunOptions {
        data_dir: common::data_dir(),
        limit: Some(5),
        out_dir: out.to_path_buf(),
        model: common::model_info(),
        suite: "smoke".into(),
    }
}

#[test]
fn smoke_suite_limit_5_writes_a_readable_run_folder() {
    let root = tempfile::tempdir().unwrap();
    let dir = new_run_dir(&root.path().join("runs"), "models/fake-model").unwrap();
    let mut backend = Fake::default();
    let specs = suite("smoke").unwrap();
    let run = run_tasks(&mut backend, &specs, &opts(&dir)).unwrap();

    // results.json parses back into the same RunResults
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let back: RunResults = serde_json::from_str(&text).unwrap();
    assert_eq!(back, run);
    assert_eq!(read_results(&dir.join("results.json")).unwrap(), run);
    assert_eq!(run.run_id, dir.file_name().unwrap().to_string_lossy());
    assert!(run.run_id.ends_with("-fake-model"), "{}", run.run_id);
    assert_eq!(run.suite, "smoke");
    assert_eq!(run.limit, Some(5));
    assert_eq!(run.backend["backend"], "fake");
    assert!(chrono::DateTime::parse_from_rfc3339(&run.started_at).is_ok());
    assert_eq!(
        run.tasks.keys().collect::<Vec<_>>(),
        ["arc_easy", "gsm8k", "hellaswag"]
    );
    // no temporary files left behind
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "results.json",
            "results_lm_eval.json",
            "samples_arc_easy.jsonl",
            "samples_gsm8k.jsonl",
            "samples_hellaswag.jsonl"
        ]
    );

    // requests: 5 docs x 4 choices each for the MC tasks (continuations start with " ")
    assert_eq!(
        backend.ll_requests.len(),
        40,
        "{:?}",
        backend.ll_requests.len()
    );
    assert!(backend
        .ll_requests
        .iter()
        .all(|r| r.continuation.starts_with(' ')));
    assert_eq!(*backend.progressed.borrow(), 40);
    assert_eq!(backend.gen_requests.len(), 5);
    let g = &backend.gen_requests[0];
    assert!(g
        .context
        .starts_with("<|im_start|>user\nGiven the following problem"));
    assert!(g
        .context
        .ends_with("problem.\n<|im_end|>\n<|im_start|>assistant\n"));
    assert_eq!(g.max_gen_toks, 256);
    assert_eq!(g.until, ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>"]);

    for (task, spec) in ["hellaswag", "arc_easy", "gsm8k"]
        .iter()
        .zip(suite("smoke").unwrap())
    {
        let samples = read_samples(&dir.join(format!("samples_{task}.jsonl"))).unwrap();
        assert_eq!(samples.len(), 5);
        assert_eq!(
            samples.iter().map(|s| s.doc_id).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let r = &run.tasks[*task];
        assert_eq!(r.n_docs, 5);
        assert_eq!(r.primary_metric, spec.primary_metric);
        assert_eq!(
            r.metrics
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            spec.metric_keys().into_iter().collect()
        );
        // aggregates are the means of the per-document values
        for (key, m) in &r.metrics {
            let xs: Vec<f64> = samples.iter().map(|s| s.metrics[key]).collect();
            let mean = xs.iter().sum::<f64>() / 5.0;
            assert!((m.value - mean).abs() < 1e-12, "{task} {key}");
            assert!(m.stderr >= 0.0 && m.stderr.is_finite());
        }
    }

    // multiple choice: the fake prefers the shortest continuation -> check acc per doc
    let hs = read_samples(&dir.join("samples_hellaswag.jsonl")).unwrap();
    for s in &hs {
        let ch = s.choices.as_ref().unwrap();
        assert_eq!(ch.len(), 4);
        let lens: Vec<usize> = ch.iter().map(|c| c.continuation.chars().count()).collect();
        let min = *lens.iter().min().unwrap();
        let pred = lens.iter().position(|&l| l == min).unwrap();
        let Target::Index(gold) = s.target else {
            panic!()
        };
        assert_eq!(s.metrics["acc"], if pred == gold { 1.0 } else { 0.0 });
        assert!(s.generation.is_none());
    }
    // doc 0 of hellaswag: gold 3 (lm-eval's sample), shortest ending is choice 2
    assert_eq!(hs[0].target, Target::Index(3));
    assert_eq!(
        hs[0].context,
        "Roof shingle removal: A man is sitting on a roof. He"
    );

    // generation: doc 0's gold is 18, the others are not
    let gs = read_samples(&dir.join("samples_gsm8k.jsonl")).unwrap();
    assert_eq!(gs[0].target, Target::Text("18".into()));
    let f = gs[0].filtered.as_ref().unwrap();
    assert_eq!(f["strict-match"], "$18.");
    assert_eq!(f["flexible-extract"], "$18.");
    assert_eq!(gs[0].metrics["exact_match,strict-match"], 1.0);
    assert_eq!(gs[0].metrics["exact_match,flexible-extract"], 1.0);
    assert_eq!(gs[1].metrics["exact_match,strict-match"], 0.0);
    let em = &run.tasks["gsm8k"].metrics["exact_match,flexible-extract"];
    assert_eq!(em.value, 0.2);
    // lm-eval mean_stderr of [1,0,0,0,0]: sqrt(0.2 * 0.8 * 5 / 4) / sqrt(5) = 0.2
    assert!((em.stderr - 0.2).abs() < 1e-15, "{}", em.stderr);
    assert!(gs[0].choices.is_none());
}

#[test]
fn identical_requests_are_sent_once_and_literal_choices_work() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("toy")).unwrap();
    std::fs::write(
        data.path().join("toy/test.jsonl"),
        "{\"q\": \"Is it?\", \"a\": \"no\"}\n{\"q\": \"Is it?\", \"a\": \"yes\"}\n{\"q\": \"Really?\", \"a\": 0}\n",
    )
    .unwrap();
    let spec = TaskSpec::from_yaml_str(
        r#"
task: toy
version: 2
dataset: toy/test.jsonl
output_type: multiple_choice
doc_to_text: "Q: {{q}}\nA:"
doc_to_target: a
doc_to_choice: ["yes", "no", "yes"]
metrics: [{metric: acc}, {metric: acc_norm}]
primary_metric: acc
"#,
        "toy.yaml",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut backend = Fake::default();
    let o = RunOptions {
        data_dir: data.path().to_path_buf(),
        limit: None,
        ..opts(out.path())
    };
    let run = run_tasks(&mut backend, &[spec], &o).unwrap();
    // 3 docs x 3 choices, but only 2 distinct prompts x 2 distinct continuations
    assert_eq!(backend.ll_requests.len(), 4);
    let r = &run.tasks["toy"];
    assert_eq!(r.version, "2");
    assert_eq!(r.n_docs, 3);
    // the fake picks the shortest continuation: " no" (index 1); golds are 1, 0, 0
    assert_eq!(r.metrics["acc"].value, 1.0 / 3.0);
    let s = read_samples(&out.path().join("samples_toy.jsonl")).unwrap();
    assert_eq!(s[0].target, Target::Index(1));
    assert_eq!(s[1].target, Target::Index(0));
    assert_eq!(s[2].choices.as_ref().unwrap()[2].continuation, " yes");
}

#[test]
fn missing_chat_template_and_missing_data_are_errors() {
    let out = tempfile::tempdir().unwrap();
    let mut backend = Fake {
        no_template: true,
        ..Fake::default()
    };
    let gsm = quantlab_tasks::builtin_task("gsm8k").unwrap();
    let err = format!(
        "{:#}",
        run_tasks(&mut backend, std::slice::from_ref(&gsm), &opts(out.path())).unwrap_err()
    );
    assert!(
        err.contains("gsm8k") && err.contains("tokenizer_config.json"),
        "{err}"
    );
    assert!(!out.path().join("results.json").exists());

    let mut backend = Fake::default();
    let o = RunOptions {
        data_dir: out.path().join("no-data"),
        ..opts(out.path())
    };
    let err = format!("{:#}", run_tasks(&mut backend, &[gsm], &o).unwrap_err());
    assert!(
        err.contains("gsm8k/test.jsonl.gz") && err.contains("--data-dir"),
        "{err}"
    );
}
