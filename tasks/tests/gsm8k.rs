//! GSM8K: prompt, target and answer extraction (lm-eval gsm8k-cot-llama filters + exact_match).

mod common;

use quantlab_tasks::{builtin_task, Target, Task};

fn task() -> Task {
    Task::new(builtin_task("gsm8k").unwrap()).unwrap()
}

fn score(task: &Task, target: &str, generation: &str) -> (String, String, f64, f64) {
    let doc = quantlab_tasks::PreparedDoc {
        doc_id: 0,
        doc: serde_json::json!({}),
        text: String::new(),
        choices: vec![],
        target: Target::Text(target.to_string()),
        fewshot: vec![],
        description: None,
        continuation: None,
    };
    let s = task.score_generation(&doc, generation).unwrap();
    (
        s.filtered["strict-match"].clone(),
        s.filtered["flexible-extract"].clone(),
        s.metrics["exact_match,strict-match"],
        s.metrics["exact_match,flexible-extract"],
    )
}

#[test]
fn prompt_and_target_from_real_data() {
    let t = task();
    let docs = t.load_prepared(&common::data_dir(), Some(3)).unwrap();
    assert_eq!(
        docs[0].text,
        "Given the following problem, reason and give a final answer to the problem.\n\
         Problem: Janet\u{2019}s ducks lay 16 eggs per day. She eats three for breakfast every morning \
         and bakes muffins for her friends every day with four. She sells the remainder at the \
         farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every \
         day at the farmers' market?\n\
         Your response should end with \"The final answer is [answer]\" where [answer] is the \
         response to the problem.\n"
    );
    assert_eq!(docs[0].target, Target::Text("18".into()));
    assert_eq!(docs[1].target, Target::Text("3".into()));
    // thousands separators are dropped from the gold answer
    let all = t.load_prepared(&common::data_dir(), None).unwrap();
    assert_eq!(all.len(), 1319);
    let with_comma = all
        .iter()
        .find(|d| {
            d.doc["answer"]
                .as_str()
                .unwrap()
                .rsplit("####")
                .next()
                .unwrap()
                .contains(',')
        })
        .expect("a gold answer with a thousands separator");
    let Target::Text(t) = &with_comma.target else {
        panic!()
    };
    assert!(
        !t.contains(',')
            && t.chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == '.'),
        "{t}"
    );
}

#[test]
fn strict_and_flexible_match() {
    let t = task();
    // the model follows the format
    let g = "Janet's ducks lay 16 eggs. She uses 3 + 4 = 7, so 16 - 7 = 9 remain.\n\
             She sells them for 9 * $2 = $18.\nThe final answer is 18";
    assert_eq!(score(&t, "18", g), ("18".into(), "18".into(), 1.0, 1.0));
    // format missing: strict fails, flexible takes the last number
    let g = "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars.\nSo she makes 18 dollars a day.";
    assert_eq!(
        score(&t, "18", g),
        ("[invalid]".into(), "18".into(), 0.0, 1.0)
    );
    // the last number is not the answer
    let g = "The final answer is 18. (That is 9 eggs at 2 dollars.)";
    let (s, f, sm, fm) = score(&t, "18", g);
    assert_eq!((s.as_str(), sm), ("18.", 1.0));
    assert_eq!((f.as_str(), fm), ("2", 0.0));
    // several "final answer" statements: strict takes the last
    let g = "The final answer is 5\nWait, recount.\nThe final answer is 7";
    assert_eq!(score(&t, "7", g).0, "7");
}

#[test]
fn dollar_comma_and_trailing_period_are_normalised() {
    let t = task();
    let g = "Total: 1,000 + 234 = 1,234 dollars.\nThe final answer is $1,234.";
    assert_eq!(
        score(&t, "1234", g),
        ("$1,234.".into(), "$1,234.".into(), 1.0, 1.0)
    );
    // a gold answer still written with commas compares the same
    assert_eq!(score(&t, "1,234", g).2, 1.0);
    // negative and decimal numbers
    assert_eq!(score(&t, "-3", "so the change is -3.").3, 1.0);
    assert_eq!(score(&t, "2.5", "The final answer is 2.5").2, 1.0);
    // case-insensitive comparison (ignore_case) of what remains
    assert_eq!(score(&t, "18", "The final answer is 18.00").2, 0.0);
}

#[test]
fn no_number_gives_invalid() {
    let t = task();
    let g = "I cannot solve this problem without more information.";
    assert_eq!(
        score(&t, "18", g),
        ("[invalid]".into(), "[invalid]".into(), 0.0, 0.0)
    );
    assert_eq!(score(&t, "18", "").1, "[invalid]");
}
