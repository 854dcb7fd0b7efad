//! MATH Level 5 (`math_*_hard`, leaderboard-v2) against lm-eval 0.4.9.1's
//! `lm_eval/tasks/leaderboard/math/utils.py`: the extraction and normalisation on real gold
//! solutions, the verdicts of lm-eval's own `process_results` on 305 (document, generation) pairs
//! (`fixtures/math/`, README there says how they were made), the prompt lm-eval builds for
//! document 0, and the seven tasks' documents.
//!
//! The symbolic checks need a Python with sympy, antlr4-python3-runtime==4.11 and
//! math-verify==0.9.0 (`$QUANTLAB_MATH_PYTHON`, else `python3` on PATH; `just venv` installs them
//! into `.venv`): without it these tests fail with the error that says what to install.

mod common;

use quantlab_tasks::math::{
    get_unnormalized_answer, gold_answer, judge, last_boxed_only_string, normalize_final_answer,
    remove_boxed, MathCase, INVALID_ANSWER,
};
use quantlab_tasks::{load_jsonl, resolve_task, Task};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/math")
}

fn math_rows() -> Vec<Value> {
    load_jsonl(&common::data_dir().join("math/test.jsonl.gz"), None).unwrap()
}

/// Gold answers of real MATH test solutions (row = position in ../shared/data/math/test.jsonl.gz)
/// through `remove_boxed(last_boxed_only_string(solution))` and `normalize_final_answer`; the
/// expected strings are what lm-eval 0.4.9.1's functions give on the same rows.
#[test]
fn gold_answers_of_real_solutions_normalise_as_lm_eval() {
    let rows = math_rows();
    assert_eq!(rows.len(), 5000);
    let cases: &[(usize, &str, &str, &str)] = &[
        // (row, last boxed, boxed content, normalised)
        (481, r"\boxed{\frac{1}{2}}", r"\frac{1}{2}", r"\frac{1}{2}"),
        (808, r"\boxed{\text{(C)}}", r"\text{(C)}", "(C)"),
        (1673, r"\boxed{39^\circ}", r"39^\circ", "39"),
        (21, r"\boxed{\$40}", r"\$40", "40"),
        (259, r"\boxed{\$15,\!000}", r"\$15,\!000", "15000"),
        (
            406,
            r"\boxed{118 \text{ dollars}}",
            r"118 \text{ dollars}",
            "118",
        ),
        (2, r"\boxed{\dfrac{9}{7}}", r"\dfrac{9}{7}", r"\dfrac{9}{7}"),
        (1468, r"\boxed{15,600}", "15,600", "15600"),
        (
            1901,
            r"\boxed{864 \mbox{ inches}^2}",
            r"864 \mbox{ inches}^2",
            "864",
        ),
        (
            110,
            r"\boxed{\frac{\sqrt7}{14}}",
            r"\frac{\sqrt7}{14}",
            r"\frac{\sqrt{7}}{14}",
        ),
        (123, r"\boxed{\frac56}", r"\frac56", r"\frac{5}{6}"),
    ];
    for &(row, boxed, inner, norm) in cases {
        let sol = rows[row]["solution"].as_str().unwrap();
        assert_eq!(last_boxed_only_string(sol), boxed, "row {row}");
        assert_eq!(remove_boxed(boxed), inner, "row {row}");
        assert_eq!(gold_answer(sol), inner, "row {row}");
        assert_eq!(normalize_final_answer(inner), norm, "row {row}");
    }
}

/// Edge cases of the extraction and normalisation, with lm-eval 0.4.9.1's outputs.
#[test]
fn extraction_and_normalisation_edge_cases_match_lm_eval() {
    let unnorm = [
        (
            "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
            "$\\frac{1}{2}$",
            "\\frac{1}{2}",
        ),
        ("no answer here", INVALID_ANSWER, INVALID_ANSWER),
        // a truncated generation: the appended "I hope it is correct." needs ". " before it
        (
            "Final Answer: The final answer is 5",
            INVALID_ANSWER,
            INVALID_ANSWER,
        ),
        (
            "Final Answer: The final answer is 5.",
            INVALID_ANSWER,
            INVALID_ANSWER,
        ),
        // the first answer counts, and only the text after its last '='
        (
            "Final Answer: The final answer is $x = 3$. I hope it is correct.\nFinal Answer: The \
             final answer is $4$. I hope it is correct.",
            "$x = 3$",
            "3",
        ),
        // '.' does not cross a newline
        (
            "Final Answer: The final answer is\n$7$. I hope it is correct.",
            INVALID_ANSWER,
            INVALID_ANSWER,
        ),
    ];
    for (g, a, n) in unnorm {
        assert_eq!(get_unnormalized_answer(g), a, "{g:?}");
        assert_eq!(normalize_final_answer(a), n, "{g:?}");
    }
    let boxed = [
        ("so \\boxed 5$ and", "\\boxed 5", "5"),
        ("\\fbox{3}", "\\fbox{3}", INVALID_ANSWER),
        ("x \\boxed{3", INVALID_ANSWER, INVALID_ANSWER),
        (
            "\\boxed{a}{b} \\boxed{\\frac{1}{2}} end",
            "\\boxed{\\frac{1}{2}}",
            "\\frac{1}{2}",
        ),
        ("}\\boxed}{x}", INVALID_ANSWER, INVALID_ANSWER),
    ];
    for (s, b, r) in boxed {
        assert_eq!(last_boxed_only_string(s), b, "{s:?}");
        assert_eq!(remove_boxed(b), r, "{s:?}");
    }
    let norm = [
        ("a $5$ b $6$ c", "5"),
        ("\\text{(A)}, \\text{(B)}", "(A),(B)"),
        ("\\sqrt2\\frac34", "\\sqrt{2}\\frac{3}{4}"),
        ("1,000,000", "1000000"),
        ("10^\\circ \\text{C}", "10C"),
        ("an apple", "apple"),
    ];
    for (x, n) in norm {
        assert_eq!(normalize_final_answer(x), n, "{x:?}");
    }
}

/// lm-eval 0.4.9.1's `process_results` verdicts on 305 pairs (61 Level 5 documents of all seven
/// types × correct answer, two equivalent rewritings, a wrong answer, an answer only boxed):
/// ours must agree on every pair, for both metrics and the normalised strings.
#[test]
fn verdicts_agree_with_lm_eval_process_results_on_every_fixture_pair() {
    let recs = load_jsonl(&fixtures().join("lmeval_process_results.jsonl"), None).unwrap();
    assert_eq!(recs.len(), 305);
    let s = |r: &Value, k: &str| r[k].as_str().unwrap().to_string();
    let cases: Vec<MathCase> = recs
        .iter()
        .map(|r| MathCase {
            generation: s(r, "generation"),
            solution: s(r, "solution"),
        })
        .collect();
    let verdicts = judge(&cases).unwrap();
    assert_eq!(verdicts.len(), recs.len());
    let mut counts = [0usize; 4];
    for (i, (r, v)) in recs.iter().zip(&verdicts).enumerate() {
        let what = format!(
            "pair {i} ({} {}): {:?}",
            s(r, "type"),
            s(r, "kind"),
            s(r, "generation")
        );
        assert_eq!(
            gold_answer(&s(r, "solution")),
            s(r, "gold_answer"),
            "{what}"
        );
        assert_eq!(v.answer, s(r, "answer"), "{what}");
        assert_eq!(v.gold, s(r, "gold"), "{what}");
        assert_eq!(v.math_verify, r["exact_match"] == 1, "exact_match, {what}");
        assert_eq!(
            v.original,
            r["exact_match_original"] == 1,
            "exact_match_original, {what}"
        );
        counts[(v.math_verify as usize) * 2 + v.original as usize] += 1;
    }
    // the fixture exercises every combination of the two verdicts
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

/// The prompt of document 0 of `math_algebra_hard` is the one lm-eval 0.4.9.1 builds for
/// `leaderboard_math_algebra_hard` (its TaskManager on the same local rows), and the generation
/// settings and the target are lm-eval's.
#[test]
fn prompt_of_doc0_equals_lm_eval() {
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("lmeval_prompt_algebra_doc0.json")).unwrap(),
    )
    .unwrap();
    let task = Task::new(resolve_task("math_algebra_hard").unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), None).unwrap();
    assert_eq!(docs.len() as u64, want["n_docs"].as_u64().unwrap());
    let d = &docs[0];
    assert_eq!(d.doc["problem"], want["doc0_problem"]);
    assert_eq!(d.doc["answer"], want["doc0_answer"]);
    assert_eq!(
        d.target,
        quantlab_tasks::Target::Text(want["target"].as_str().unwrap().to_string())
    );
    assert_eq!(task.plain_context(d), want["prompt"].as_str().unwrap());
    let gk = task.spec.generation();
    assert_eq!(gk.until, ["Problem:"]);
    assert_eq!(want["until"], serde_json::json!(["Problem:"]));
    assert_eq!(
        gk.max_gen_toks as u64,
        want["max_gen_toks"].as_u64().unwrap()
    );
    assert!(!task.spec.chat_template);
}

/// The seven tasks split the 1324 Level 5 rows by `type` as lm-eval's dataset configs do, with
/// the four fixed examples, and report lm-eval's two metric keys.
#[test]
fn the_seven_tasks_cover_the_level5_rows() {
    let want = [
        ("math_algebra_hard", "Algebra", 307),
        ("math_counting_and_prob_hard", "Counting & Probability", 123),
        ("math_geometry_hard", "Geometry", 132),
        (
            "math_intermediate_algebra_hard",
            "Intermediate Algebra",
            280,
        ),
        ("math_num_theory_hard", "Number Theory", 154),
        ("math_prealgebra_hard", "Prealgebra", 193),
        ("math_precalculus_hard", "Precalculus", 135),
    ];
    let data = common::data_dir();
    let mut total = 0;
    for (name, typ, n) in want {
        let task = Task::new(resolve_task(name).unwrap()).unwrap();
        assert_eq!(
            task.spec.metric_keys(),
            ["exact_match", "exact_match_original"]
        );
        assert_eq!(task.spec.primary_metric, "exact_match_original");
        let docs = task.load_prepared(&data, None).unwrap();
        assert_eq!(docs.len(), n, "{name}");
        for d in &docs {
            assert_eq!(d.doc["level"], "Level 5", "{name}");
            assert_eq!(d.doc["type"], typ, "{name}");
            assert_eq!(d.fewshot.len(), 4);
            assert!(d.fewshot[1].answer.ends_with(
                "= \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct."
            ));
        }
        total += n;
    }
    assert_eq!(total, 1324);
}

/// The task scores a batch of generations in one call with lm-eval's two metrics, and one
/// generation alone the same way.
#[test]
fn task_scores_generations_with_both_metrics() {
    let task = Task::new(resolve_task("math_algebra_hard").unwrap()).unwrap();
    let docs = task.load_prepared(&common::data_dir(), Some(3)).unwrap();
    // doc 0's answer is i
    let gens = vec![
        "So the sum is $i$.\nFinal Answer: The final answer is $i$. I hope it is correct."
            .to_string(),
        "Final Answer: The final answer is $12345$. I hope it is correct.".to_string(),
        "I give up.".to_string(),
    ];
    let scores = task.score_generations(&docs, &gens).unwrap();
    assert_eq!(scores[0].metrics["exact_match"], 1.0);
    assert_eq!(scores[0].metrics["exact_match_original"], 1.0);
    assert_eq!(scores[0].filtered["none"], "i");
    assert_eq!(scores[1].metrics["exact_match_original"], 0.0);
    assert_eq!(scores[1].filtered["none"], "12345");
    assert_eq!(scores[2].metrics["exact_match"], 0.0);
    assert_eq!(scores[2].metrics["exact_match_original"], 0.0);
    assert_eq!(scores[2].filtered["none"], INVALID_ANSWER);
    let one = task.score_generation(&docs[0], &gens[0]).unwrap();
    assert_eq!(one, scores[0]);
    assert!(task.score_generations(&docs, &gens[..2]).is_err());
}

/// Without a usable interpreter the error says what to install and where.
#[test]
fn a_missing_python_is_one_clear_error() {
    let cases = [MathCase {
        generation: "Final Answer: The final answer is $3$. I hope it is correct.".into(),
        solution: "\\boxed{4}".into(),
    }];
    let err = format!(
        "{:#}",
        quantlab_tasks::math::judge_with("/nonexistent/python3", &cases).unwrap_err()
    );
    assert!(
        err.contains("/nonexistent/python3")
            && err.contains("antlr4-python3-runtime==4.11")
            && err.contains("math-verify==0.9.0")
            && err.contains("QUANTLAB_MATH_PYTHON"),
        "{err}"
    );
}
