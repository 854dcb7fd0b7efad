//! IFEval run as a task of the leaderboard-v2 suite: the runner sends each prompt as is (no stop
//! string, 1280 new tokens) and aggregates prompt-level metrics as means and instruction-level
//! metrics pooled over all instructions (lm-eval `agg_inst_level_acc`), equal to the IFEval
//! module's own aggregation of the same responses.

mod common;

use quantlab_evaluate::{
    new_run_dir, run_tasks, Backend, ChatMessage, GenerateRequest, Loglikelihood,
    LoglikelihoodRequest, RunOptions,
};
use quantlab_tasks::ifeval::{aggregate, score_doc};
use quantlab_tasks::{load_jsonl, resolve_task};
use serde_json::{json, Value};

/// A response that follows some instructions and not others: the prompt upper-cased for prompts
/// of even length, a short lower-case line otherwise.
fn respond(prompt: &str) -> String {
    if prompt.len().is_multiple_of(2) {
        prompt.to_uppercase()
    } else {
        "a short answer without much in it".to_string()
    }
}

#[derive(Default)]
struct Fake {
    gen_requests: Vec<GenerateRequest>,
}

impl Backend for Fake {
    fn describe(&self) -> Value {
        json!({"backend": "fake", "device": "cpu", "batch_size": 1})
    }
    fn loglikelihood(
        &mut self,
        _reqs: &[LoglikelihoodRequest],
        _progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>> {
        anyhow::bail!("ifeval asks for no log-likelihoods")
    }
    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>> {
        self.gen_requests.extend_from_slice(reqs);
        progress(reqs.len());
        Ok(reqs.iter().map(|r| respond(&r.context)).collect())
    }
    fn apply_chat_template(&self, _messages: &[ChatMessage]) -> anyhow::Result<String> {
        anyhow::bail!("no chat template in this test")
    }
}

#[test]
fn ifeval_task_pools_instruction_level_metrics() {
    let n = 60;
    let root = tempfile::tempdir().unwrap();
    let dir = new_run_dir(&root.path().join("runs"), "models/fake-model").unwrap();
    let opts = RunOptions {
        data_dir: common::data_dir(),
        limit: Some(n),
        out_dir: dir.clone(),
        model: common::model_info(),
        suite: "leaderboard-v2".into(),
    };
    let mut backend = Fake::default();
    let run = run_tasks(&mut backend, &[resolve_task("ifeval").unwrap()], &opts).unwrap();
    let r = &run.tasks["ifeval"];
    assert_eq!(r.n_docs, n);
    assert_eq!(r.primary_metric, "prompt_level_strict_acc");

    // the requests: the prompts as they are, no stop string, 1280 tokens
    let docs = load_jsonl(&common::data_dir().join("ifeval/train.jsonl.gz"), Some(n)).unwrap();
    assert_eq!(backend.gen_requests.len(), n);
    for (q, d) in backend.gen_requests.iter().zip(&docs) {
        assert_eq!(q.context, d["prompt"].as_str().unwrap());
        assert!(q.until.is_empty());
        assert_eq!(q.max_gen_toks, 1280);
    }

    // the IFEval module's own aggregation of the same responses
    let results: Vec<_> = docs
        .iter()
        .map(|d| score_doc(d, &respond(d["prompt"].as_str().unwrap())).unwrap())
        .collect();
    let want = aggregate(&results);
    assert_eq!(want.num_docs, n);
    for (key, value) in want.named() {
        let got = r.metrics[key].value;
        assert!((got - value).abs() < 1e-12, "{key}: {got} vs {value}");
    }
    // pooled differs from the mean of per-document fractions here (documents have 1 to 3+
    // instructions), so the test tells the two apart
    let per_doc_mean: f64 = results
        .iter()
        .map(|x| x.strict.iter().filter(|&&b| b).count() as f64 / x.strict.len() as f64)
        .sum::<f64>()
        / n as f64;
    assert!((per_doc_mean - want.inst_level_strict_acc).abs() > 1e-6);
    // not all or nothing: the responses follow some instructions
    assert!(want.inst_level_loose_acc > 0.0 && want.inst_level_loose_acc < 1.0);
    assert!(r.metrics["prompt_level_strict_acc"].stderr > 0.0);
}

/// Scores a continuation by its length (shorter = likelier) and answers every prompt alike.
struct ByLength;

impl Backend for ByLength {
    fn describe(&self) -> Value {
        json!({"backend": "fake", "device": "cpu", "batch_size": 1})
    }
    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>> {
        progress(reqs.len());
        Ok(reqs
            .iter()
            .map(|r| Loglikelihood {
                logprob: -(r.continuation.chars().count() as f64) * 0.5,
                is_greedy: false,
            })
            .collect())
    }
    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>> {
        progress(reqs.len());
        Ok(reqs
            .iter()
            .map(|r| {
                if r.context.ends_with("\n\nSolution:") {
                    // MATH: the answer of the first Level 5 Algebra problem, i
                    MATH_ANSWER.to_string()
                } else {
                    respond(&r.context)
                }
            })
            .collect())
    }
    fn apply_chat_template(&self, _messages: &[ChatMessage]) -> anyhow::Result<String> {
        anyhow::bail!("no chat template in this test")
    }
}

/// What [`ByLength`] answers every MATH problem.
const MATH_ANSWER: &str = " We add.\nFinal Answer: The final answer is $i$. I hope it is correct.";

/// Needs the MATH checks' Python (sympy, antlr4-python3-runtime==4.11, math-verify; see
/// quantlab_tasks::math): the suite's seven MATH tasks are scored too.
#[test]
fn leaderboard_v2_suite_runs_and_writes_normalised_scores() {
    let root = tempfile::tempdir().unwrap();
    let dir = new_run_dir(&root.path().join("runs"), "models/fake-model").unwrap();
    let opts = RunOptions {
        data_dir: common::data_dir(),
        limit: Some(4),
        out_dir: dir.clone(),
        model: common::model_info(),
        suite: "leaderboard-v2".into(),
    };
    let specs = quantlab_tasks::suite("leaderboard-v2").unwrap();
    let run = run_tasks(&mut ByLength, &specs, &opts).unwrap();
    assert_eq!(run.tasks.len(), 37);
    let text =
        std::fs::read_to_string(dir.join(quantlab_evaluate::runner::LEADERBOARD_V2_FILE)).unwrap();
    let lb: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(lb["missing"], json!([]));
    // recompute from results.json: per sub-task max(0, (v - b) / (1 - b)) * 100, mean per
    // benchmark, mean of the six benchmarks
    let norm = |v: f64, b: f64| ((v - b) / (1.0 - b)).max(0.0) * 100.0;
    let v = |t: &str, m: &str| run.tasks[t].metrics[m].value;
    let gpqa = norm(v("gpqa_diamond", "acc_norm"), 0.25);
    let pro = norm(v("mmlu_pro", "acc"), 0.1);
    let musr = (norm(v("musr_murder_mysteries", "acc_norm"), 0.5)
        + norm(v("musr_object_placements", "acc_norm"), 0.2)
        + norm(v("musr_team_allocation", "acc_norm"), 1.0 / 3.0))
        / 3.0;
    let ifeval =
        (v("ifeval", "inst_level_strict_acc") + v("ifeval", "prompt_level_strict_acc")) * 50.0;
    let bbh_tasks: Vec<&String> = run.tasks.keys().filter(|t| t.starts_with("bbh_")).collect();
    assert_eq!(bbh_tasks.len(), 24);
    let bbh = bbh_tasks
        .iter()
        .map(|t| {
            let spec = specs.iter().find(|s| &&s.task == t).unwrap();
            let Some(quantlab_tasks::DocToChoice::List(l)) = &spec.doc_to_choice else {
                panic!("{t}")
            };
            norm(v(t, "acc_norm"), 1.0 / l.len() as f64)
        })
        .sum::<f64>()
        / 24.0;
    // MATH: the raw exact_match_original of the seven sub-tasks weighted by their documents;
    // the answer "i" is right for the first Algebra problem only
    let math_tasks: Vec<&String> = run
        .tasks
        .keys()
        .filter(|t| t.starts_with("math_"))
        .collect();
    assert_eq!(math_tasks.len(), 7);
    let (right, n) = math_tasks.iter().fold((0.0, 0usize), |(s, n), t| {
        let r = &run.tasks[t.as_str()];
        (
            s + r.metrics["exact_match_original"].value * r.n_docs as f64,
            n + r.n_docs,
        )
    });
    assert_eq!(n, 28);
    assert_eq!(right, 1.0);
    assert_eq!(v("math_algebra_hard", "exact_match_original"), 0.25);
    assert_eq!(v("math_algebra_hard", "exact_match"), 0.25);
    let math = right / n as f64 * 100.0;
    let samples = std::fs::read_to_string(dir.join("samples_math_algebra_hard.jsonl")).unwrap();
    let first: Value = serde_json::from_str(samples.lines().next().unwrap()).unwrap();
    assert_eq!(first["generation"], MATH_ANSWER);
    assert_eq!(first["filtered"]["none"], "i");
    assert_eq!(first["metrics"]["exact_match_original"], 1.0);
    let b = &lb["benchmarks"];
    for (name, want) in [
        ("ifeval", ifeval),
        ("bbh", bbh),
        ("math_lvl5", math),
        ("gpqa", gpqa),
        ("musr", musr),
        ("mmlu_pro", pro),
    ] {
        let got = b[name].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{name}: {got} vs {want}");
    }
    let avg = (ifeval + bbh + math + gpqa + musr + pro) / 6.0;
    assert!((lb["average"].as_f64().unwrap() - avg).abs() < 1e-9);
    // the shortest choice always wins here: a benchmark where that is not the gold scores
    // below chance somewhere, which the normalisation floors at 0, not negative
    assert!(b
        .as_object()
        .unwrap()
        .values()
        .all(|x| x.as_f64().unwrap() >= 0.0));
}
