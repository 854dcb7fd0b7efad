//! Few-shot prompts through a chat template (lm-eval `--apply_chat_template
//! --fewshot_as_multiturn`): each example a user turn and an assistant turn, `gen_prefix` opening
//! the answer turn and prefixing the examples' answers; the samples file keeps the prompt, the
//! generation, the filtered answer and the few-shot pool positions.

mod common;

use quantlab_evaluate::{
    read_samples, run_tasks, Backend, ChatMessage, GenerateRequest, Loglikelihood,
    LoglikelihoodRequest, RunOptions,
};
use quantlab_tasks::{builtin_task, load_jsonl};
use serde_json::{json, Value};

/// Renders ChatML and answers every generation with a fixed text.
struct Chat {
    answer: String,
    prompts: Vec<String>,
}

impl Backend for Chat {
    fn describe(&self) -> Value {
        json!({"backend": "fake"})
    }
    fn loglikelihood(
        &mut self,
        _: &[LoglikelihoodRequest],
        _: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<Loglikelihood>> {
        anyhow::bail!("not used")
    }
    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> anyhow::Result<Vec<String>> {
        self.prompts.extend(reqs.iter().map(|r| r.context.clone()));
        progress(reqs.len());
        Ok(reqs.iter().map(|_| self.answer.clone()).collect())
    }
    fn apply_chat_template(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
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

fn opts(out: &std::path::Path, limit: usize) -> RunOptions {
    RunOptions {
        data_dir: common::data_dir(),
        limit: Some(limit),
        out_dir: out.to_path_buf(),
        model: common::model_info(),
        suite: "custom".into(),
    }
}

#[test]
fn mmlu_llama_five_shot_multiturn_with_gen_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut be = Chat {
        answer: " B".into(),
        prompts: vec![],
    };
    let spec = builtin_task("mmlu_llama:marketing").unwrap();
    let run = run_tasks(&mut be, &[spec], &opts(dir.path(), 2)).unwrap();
    let dev: Vec<Value> = load_jsonl(&common::data_dir().join("mmlu/dev.jsonl.gz"), None)
        .unwrap()
        .into_iter()
        .filter(|d| d["subject"] == "marketing")
        .collect();
    assert_eq!(dev.len(), 5);
    let q = |d: &Value| {
        let c = d["choices"].as_array().unwrap();
        format!(
            "Given the following question and four candidate answers (A, B, C and D), choose the \
             best answer.\n{}\nA. {}\nB. {}\nC. {}\nD. {}\nYour response should end with \"The \
             best answer is [the_answer_letter]\" where the [the_answer_letter] is one of A, B, C \
             or D.",
            d["question"].as_str().unwrap().trim(),
            c[0].as_str().unwrap(),
            c[1].as_str().unwrap(),
            c[2].as_str().unwrap(),
            c[3].as_str().unwrap()
        )
    };
    let samples = read_samples(&dir.path().join("samples_mmlu_llama:marketing.jsonl")).unwrap();
    let mut want = String::new();
    for d in &dev {
        let letter = ["A", "B", "C", "D"][d["answer"].as_u64().unwrap() as usize];
        want.push_str(&format!(
            "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\nThe best answer is {letter}.<|im_end|>\n",
            q(d)
        ));
    }
    for (s, p) in samples.iter().zip(&be.prompts) {
        let full = format!(
            "{want}<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\nThe best answer is",
            q(&s.doc)
        );
        assert_eq!(&s.context, p);
        assert_eq!(s.context, full);
        assert_eq!(s.fewshot_ids.len(), 5);
        assert_eq!(s.generation.as_deref(), Some(" B"));
        assert_eq!(s.filtered.as_ref().unwrap()["strict_match"], "B");
        let gold_b = s.doc["answer"] == 1;
        assert_eq!(
            s.metrics["exact_match,strict_match"],
            if gold_b { 1.0 } else { 0.0 }
        );
    }
    assert_eq!(run.tasks["mmlu_llama:marketing"].n_docs, 2);
}

#[test]
fn gsm8k_cot_llama_eight_fixed_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut be = Chat {
        answer: "So 9 - 3 = 6. The final answer is 18".into(),
        prompts: vec![],
    };
    run_tasks(
        &mut be,
        &[builtin_task("gsm8k_cot_llama").unwrap()],
        &opts(dir.path(), 1),
    )
    .unwrap();
    let p = &be.prompts[0];
    assert_eq!(p.matches("<|im_start|>user\n").count(), 9);
    assert_eq!(p.matches("<|im_start|>assistant\n").count(), 9);
    assert!(p.starts_with(
        "<|im_start|>user\nGiven the following problem, reason and give a final answer to the \
         problem.\nProblem: There are 15 trees in the grove."
    ));
    assert!(p.contains(
        "<|im_start|>assistant\nOlivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 \
         = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The final answer is 8<|im_end|>\n"
    ));
    assert!(p.ends_with("<|im_start|>assistant\n"));
    let s = &read_samples(&dir.path().join("samples_gsm8k_cot_llama.jsonl")).unwrap()[0];
    // test doc 0's answer is 18 (Janet's ducks)
    assert_eq!(s.filtered.as_ref().unwrap()["strict-match"], "18");
    assert_eq!(s.metrics["exact_match,strict-match"], 1.0);
    assert_eq!(s.fewshot_ids, (0..8).collect::<Vec<_>>());
}
