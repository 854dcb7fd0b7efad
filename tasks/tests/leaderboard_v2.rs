//! Leaderboard-v2 tasks: the prompts, choices and targets lm-eval's `leaderboard_*` tasks build,
//! checked on the real data in `../shared/data`.

mod common;

use quantlab_tasks::{load_jsonl, resolve_task, Target, Task};
use serde_json::Value;

/// lm-eval `leaderboard/mmlu_pro/utils.py::doc_to_text`, written out independently of our
/// template: question, `"{letter}. {option}\n"` per option, `"Answer:"`.
fn mmlu_pro_text(doc: &Value) -> String {
    let mut s = format!("{}\n", doc["question"].as_str().unwrap());
    for (i, o) in doc["options"].as_array().unwrap().iter().enumerate() {
        s.push_str(&format!(
            "{}. {}\n",
            char::from(b'A' + i as u8),
            o.as_str().unwrap()
        ));
    }
    s.push_str("Answer:");
    s
}

#[test]
fn mmlu_pro_prompts_choices_and_fewshot() {
    let data = common::data_dir();
    let spec = resolve_task("mmlu_pro").unwrap();
    assert_eq!(spec.num_fewshot, 5);
    let task = Task::new(spec).unwrap();
    let raw = load_jsonl(&data.join("mmlu_pro/test.jsonl.gz"), Some(8)).unwrap();
    let docs = task.load_prepared(&data, Some(8)).unwrap();
    assert_eq!(docs.len(), 8);

    // doc 0 (question_id 70): 9 options, gold "I" = index 8
    let d0 = &docs[0];
    assert!(d0
        .text
        .starts_with("Typical advertising regulatory bodies suggest, for example that adverts"));
    assert!(d0
        .text
        .ends_with("\nI. Unsafe practices, Distress, Fear, Serious\nAnswer:"));
    assert_eq!(d0.choices, ["A", "B", "C", "D", "E", "F", "G", "H", "I"]);
    assert_eq!(d0.target, Target::Index(8));
    // empty target delimiter: the continuation is the bare letter
    assert_eq!(task.continuations(d0)[8], "I");

    for (d, r) in docs.iter().zip(&raw) {
        assert_eq!(d.text, mmlu_pro_text(r), "doc {}", d.doc_id);
        let n = r["options"].as_array().unwrap().len();
        assert_eq!(d.choices.len(), n);
        assert_eq!(
            d.target,
            Target::Index(r["answer_index"].as_u64().unwrap() as usize)
        );
        // few-shot: first six test questions with the evaluated one dropped, first five kept
        let pool: Vec<usize> = d.fewshot.iter().map(|e| e.pool_index).collect();
        let want: Vec<usize> = (0..6).filter(|&i| i != d.doc_id).take(5).collect();
        assert_eq!(pool, want, "doc {}", d.doc_id);
        // the whole context: examples as "text" + "" + gold letter + "\n\n", then the question
        let mut ctx = String::new();
        for &k in &want {
            ctx.push_str(&mmlu_pro_text(&raw[k]));
            ctx.push_str(raw[k]["answer"].as_str().unwrap());
            ctx.push_str("\n\n");
        }
        ctx.push_str(&mmlu_pro_text(r));
        assert_eq!(task.plain_context(d), ctx, "doc {}", d.doc_id);
        let reqs = task.requests(d, &ctx);
        assert_eq!(reqs.len(), n);
        assert_eq!(reqs[1], (ctx.clone(), "B".to_string()));
    }

    // acc: argmax of the raw log-likelihoods (not length-normalised)
    let mut lls = vec![-5.0; 9];
    lls[8] = -1.0;
    assert_eq!(task.score_choices(d0, &lls).unwrap()["acc"], 1.0);
    lls[0] = -0.5;
    assert_eq!(task.score_choices(d0, &lls).unwrap()["acc"], 0.0);
}

#[test]
fn mmlu_pro_whole_file_has_up_to_ten_letters() {
    let data = common::data_dir();
    let task = Task::new(resolve_task("mmlu_pro").unwrap()).unwrap();
    let docs = task.load_docs(&data, None).unwrap();
    assert_eq!(docs.len(), 12032);
    let mut ten = 0;
    for (i, d) in docs.into_iter().enumerate().step_by(97) {
        let p = task.prepare(i, d).unwrap();
        assert!(p.choices.len() <= 10 && p.choices.len() >= 3);
        if p.choices.len() == 10 {
            assert_eq!(p.choices[9], "J");
            assert!(p.text.contains("\nJ. "));
            ten += 1;
        }
    }
    assert!(ten > 50, "{ten} ten-option questions among the sampled 125");
}

/// The gold letter of each of the 198 GPQA diamond questions after lm-eval's shuffle, made by
/// CPython 3 (`random.seed(0)`, then per row of `csv.DictReader` in file order
/// `random.shuffle([pre(I1), pre(I2), pre(I3), pre(C)])` with `pre` = lm-eval's
/// `leaderboard/gpqa/utils.py::preprocess`, and `chr(65 + choices.index(pre(C)))`).
const GPQA_GOLD_CPYTHON: &str = "DCDCCACADBBDBAAACBCDCCADBBDAACBBAAABADABCBBCBBDBAAABDCABCABDBADCBDCBCBBDACBDCBBBABBCCBDABBBCADDCCBCCBBAABABAADBDABCABADDCDCDABACDABDBAABCDDCBABCBACDBCABDACCDBADCABACCCACBDDCBBBDCCADAACAABABAADCABBAA";

#[test]
fn gpqa_diamond_shuffle_matches_cpython_random() {
    let data = common::data_dir();
    let task = Task::new(resolve_task("gpqa_diamond").unwrap()).unwrap();
    let docs = task.load_prepared(&data, None).unwrap();
    assert_eq!(docs.len(), 198);
    let golds: String = docs
        .iter()
        .map(|d| match d.target {
            Target::Index(i) => char::from(b'A' + i as u8),
            _ => panic!("not multiple choice"),
        })
        .collect();
    assert_eq!(golds, GPQA_GOLD_CPYTHON);
    // doc 0, choices in CPython's shuffled order
    let d0 = &docs[0];
    assert!(d0.text.starts_with(
        "What is the correct answer to this question:Two quantum states with energies E1 and E2"
    ));
    assert!(
        d0.text.ends_with(
            "\nChoices:\n(A) 10^-9 eV\n(B) 10^-11 eV\n(C) 10^-8 eV\n(D) 10^-4 eV\nAnswer: "
        ),
        "{:?}",
        d0.text
    );
    assert_eq!(task.continuations(d0), [" (A)", " (B)", " (C)", " (D)"]);
    // a limited run sees the same shuffles as the full file (one stream in file order)
    let first = task.load_prepared(&data, Some(5)).unwrap();
    for (a, b) in first.iter().zip(&docs) {
        assert_eq!(a.text, b.text);
        assert_eq!(a.target, b.target);
    }
    // acc_norm divides by the characters of " (X)": equal lengths, so it is the plain argmax
    let s = task
        .score_choices(&docs[1], &[-3.0, -2.0, -1.0, -4.0])
        .unwrap();
    assert_eq!(s["acc_norm"], 1.0, "doc 1 gold is C");
}

#[test]
fn csv_errors_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("ql-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.csv");
    std::fs::write(&p, "a,b\n1,\"x\ny\",3\n").unwrap();
    let err = format!("{:#}", load_jsonl(&p, None).unwrap_err());
    assert!(
        err.contains("bad.csv:2") && err.contains("3 fields"),
        "{err}"
    );
    std::fs::write(&p, "a,b\n1,\"x\n").unwrap();
    let err = format!("{:#}", load_jsonl(&p, None).unwrap_err());
    assert!(
        err.contains("bad.csv:2") && err.contains("unterminated"),
        "{err}"
    );
    std::fs::write(&p, "a,b\r\n\"q,\"\"r\"\"\",\r\n").unwrap();
    let rows = load_jsonl(&p, None).unwrap();
    assert_eq!(rows[0]["a"], "q,\"r\"");
    assert!(rows[0]["b"].is_null());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The 24 BIG-Bench-Hard sub-tasks of lm-eval's `leaderboard_bbh` (all but dyck_languages,
/// multistep_arithmetic_two and word_sorting, which have no multiple-choice form).
const BBH: [&str; 24] = [
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
];

/// The description and the three (question, final answer) pairs of a cot-prompts file:
/// after the `-----` line, the description up to the first blank line before `Q: `, then blocks
/// `Q: <input>\nA: <reasoning> So the answer is <answer>.`
fn cot_prompt(text: &str) -> (String, Vec<(String, String)>) {
    let body = text.split_once("-----\n").unwrap().1;
    let (desc, rest) = body.split_once("\n\nQ: ").unwrap();
    let mut out = Vec::new();
    for block in rest.trim().split("\n\nQ: ") {
        let (q, a) = block.split_once("\nA: ").unwrap();
        let tail = a.trim_end();
        let at = tail.rfind("So the answer is ").unwrap();
        let ans = tail[at + "So the answer is ".len()..].trim_end_matches('.');
        out.push((q.to_string(), ans.to_string()));
    }
    (format!("{}\n", desc.trim()), out)
}

#[test]
fn bbh_specs_follow_cot_prompts_and_build_lm_eval_prompts() {
    let data = common::data_dir();
    let mut unmatched = 0;
    let mut total = 0;
    for sub in BBH {
        let name = format!("bbh_{sub}");
        let spec = resolve_task(&name).unwrap();
        assert_eq!(spec.num_fewshot, 3, "{name}");
        assert_eq!(spec.target_delimiter, "", "{name}");
        assert_eq!(spec.primary_metric, "acc_norm", "{name}");
        let text =
            std::fs::read_to_string(data.join(format!("bbh/cot-prompts/{sub}.txt"))).unwrap();
        let (desc, shots) = cot_prompt(&text);
        assert_eq!(shots.len(), 3, "{name}");
        let samples = spec.fewshot_config.samples.clone().unwrap();
        let got: Vec<(String, String)> = samples
            .iter()
            .map(|s| {
                (
                    s["input"].as_str().unwrap().to_string(),
                    s["target"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got, shots,
            "{name}: few-shot examples = cot-prompts answers"
        );
        let task = Task::new(spec).unwrap();
        let docs = task.load_prepared(&data, None).unwrap();
        let raw = load_jsonl(&data.join(format!("bbh/{sub}.jsonl.gz")), None).unwrap();
        assert_eq!(docs.len(), raw.len(), "{name}");
        total += docs.len();
        // the whole prompt: description, "Q: x\nA:" + answer + "\n\n" per example, the question
        let mut prefix = desc.clone();
        for (q, a) in &shots {
            prefix.push_str(&format!("Q: {q}\nA:{a}\n\n"));
        }
        for (d, r) in docs.iter().zip(&raw) {
            let want = format!("{prefix}Q: {}\nA:", r["input"].as_str().unwrap());
            assert_eq!(task.plain_context(d), want, "{name} doc {}", d.doc_id);
            let gold = r["target"].as_str().unwrap();
            match &d.target {
                Target::Index(i) => assert_eq!(d.choices[*i], gold, "{name} doc {}", d.doc_id),
                Target::Unmatched { unmatched: t } => {
                    assert_eq!(t, gold);
                    assert!(!d.choices.iter().any(|c| c == gold));
                    unmatched += 1;
                    let s = task.score_choices(d, &vec![0.0; d.choices.len()]).unwrap();
                    assert_eq!(s["acc_norm"], 0.0);
                }
                other => panic!("{name}: {other:?}"),
            }
            // continuations are the bare choices (empty target delimiter)
            assert_eq!(task.continuations(d), d.choices, "{name}");
        }
    }
    // ruin_names 2 + movie_recommendation 1, as the data has them
    assert_eq!(unmatched, 3);
    assert_eq!(total, 5761);
}

#[test]
fn bbh_acc_norm_divides_by_choice_characters() {
    let data = common::data_dir();
    let task = Task::new(resolve_task("bbh_sports_understanding").unwrap()).unwrap();
    let docs = task.load_prepared(&data, Some(1)).unwrap();
    let d = &docs[0];
    assert_eq!(d.choices, ["yes", "no"]);
    // "yes": -3.3/3 = -1.1 ; "no": -2.4/2 = -1.2 -> acc_norm picks "yes", acc would pick "no"
    let s = task.score_choices(d, &[-3.3, -2.4]).unwrap();
    let gold_yes = d.target == Target::Index(0);
    assert_eq!(s["acc_norm"], if gold_yes { 1.0 } else { 0.0 });
}

/// lm-eval `leaderboard/musr/utils.py::doc_to_text`, written out for one question of a GitHub
/// MuSR record: `f"{narrative}\n\n{question}\n\n{choices}\nAnswer:"` with `choices` the lines
/// `f"{i+1} - {choice}\n"`.
fn musr_text(context: &str, q: &Value) -> String {
    let mut choices = String::new();
    for (i, c) in q["choices"].as_array().unwrap().iter().enumerate() {
        choices.push_str(&format!("{} - {}\n", i + 1, c.as_str().unwrap()));
    }
    format!(
        "{context}\n\n{}\n\n{choices}\nAnswer:",
        q["question"].as_str().unwrap()
    )
}

#[test]
fn musr_flattens_questions_and_builds_lm_eval_prompts() {
    let data = common::data_dir();
    // gold indices per question, in file order (read from the files with Python's json)
    let cases: [(&str, &str, &[usize]); 3] = [
        (
            "musr_murder_mysteries",
            "small_murder_mystery",
            &[0, 0, 0, 0, 0],
        ),
        (
            "musr_object_placements",
            "small_object_placements",
            &[1, 0, 2, 0, 0, 1, 3, 3, 0, 2, 1, 2, 1, 2, 3, 1, 0, 2, 1, 0],
        ),
        (
            "musr_team_allocation",
            "small_team_allocation",
            &[1, 2, 2, 1, 1],
        ),
    ];
    for (name, file, golds) in cases {
        let task = Task::new(resolve_task(name).unwrap()).unwrap();
        let docs = task.load_prepared(&data, None).unwrap();
        let got: Vec<usize> = docs
            .iter()
            .map(|d| match d.target {
                Target::Index(i) => i,
                _ => panic!("{name}"),
            })
            .collect();
        assert_eq!(got, golds, "{name}");
        let raw = load_jsonl(&data.join(format!("musr_sample/{file}.jsonl.gz")), None).unwrap();
        let mut k = 0;
        for r in &raw {
            let ctx = r["context"].as_str().unwrap();
            for q in r["questions"].as_array().unwrap() {
                let d = &docs[k];
                assert_eq!(d.doc_id, k);
                assert_eq!(task.plain_context(d), musr_text(ctx, q), "{name} doc {k}");
                let choices: Vec<String> = q["choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                // continuations are the choice texts right after "Answer:"
                assert_eq!(task.continuations(d), choices, "{name} doc {k}");
                k += 1;
            }
        }
        assert_eq!(k, docs.len());
    }
    // `limit` counts questions, not stories
    let task = Task::new(resolve_task("musr_object_placements").unwrap()).unwrap();
    assert_eq!(task.load_prepared(&data, Some(6)).unwrap().len(), 6);
}

#[test]
fn musr_bad_record_names_question_and_field() {
    let bad = serde_json::json!({"context": "c", "questions": [
        {"question": "q", "choices": ["a", "b"], "answer": 0},
        {"question": "q", "choices": ["a", "b"], "answer": 2}
    ]});
    let err = format!(
        "{:#}",
        quantlab_tasks::preprocess::apply_all(quantlab_tasks::Preprocess::Musr, &[bad])
            .unwrap_err()
    );
    assert!(
        err.contains("document 0") && err.contains("questions[1]") && err.contains("answer"),
        "{err}"
    );
}

#[test]
fn leaderboard_v2_suite_lists_the_tasks_and_baselines_match_their_choices() {
    use quantlab_tasks::leaderboard::BENCHMARKS;
    use quantlab_tasks::DocToChoice;
    let suite = quantlab_tasks::suite("leaderboard-v2").unwrap();
    let names: Vec<&str> = suite.iter().map(|s| s.task.as_str()).collect();
    assert_eq!(names.len(), 1 + 24 + 7 + 1 + 3 + 1);
    assert_eq!(names[0], "ifeval");
    assert!(names[1..25].iter().all(|n| n.starts_with("bbh_")));
    assert_eq!(
        names[25..32],
        [
            "math_algebra_hard",
            "math_counting_and_prob_hard",
            "math_geometry_hard",
            "math_intermediate_algebra_hard",
            "math_num_theory_hard",
            "math_prealgebra_hard",
            "math_precalculus_hard",
        ]
    );
    assert_eq!(
        names[32..],
        [
            "gpqa_diamond",
            "musr_murder_mysteries",
            "musr_object_placements",
            "musr_team_allocation",
            "mmlu_pro"
        ]
    );
    let shots: Vec<usize> = suite.iter().map(|s| s.num_fewshot).collect();
    assert!(shots[1..25].iter().all(|&n| n == 3));
    assert!(shots[25..32].iter().all(|&n| n == 4));
    assert_eq!(shots[32..], [0, 0, 0, 0, 5]);
    // every suite task is a sub-task of a benchmark, with the task's primary metric
    for spec in &suite {
        if spec.task == "ifeval" {
            assert_eq!(spec.primary_metric, "prompt_level_strict_acc");
            continue;
        }
        let (_, metric, base) = BENCHMARKS
            .iter()
            .flat_map(|b| b.subtasks.iter())
            .find(|(t, _, _)| *t == spec.task)
            .unwrap_or_else(|| panic!("{} is in no benchmark", spec.task));
        assert_eq!(*metric, spec.primary_metric, "{}", spec.task);
        // a fixed choice list: the baseline is 1 / its length
        if let Some(DocToChoice::List(l)) = &spec.doc_to_choice {
            assert!((base - 1.0 / l.len() as f64).abs() < 1e-12, "{}", spec.task);
        }
    }
    let bbh = BENCHMARKS.iter().find(|b| b.name == "bbh").unwrap();
    assert_eq!(bbh.subtasks.len(), 24);
    assert!(!bbh.weight_by_size);
    // MATH: the seven sub-tasks, baseline 0, weighted by size as lm-eval's group is
    let math = BENCHMARKS.iter().find(|b| b.name == "math_lvl5").unwrap();
    assert_eq!(math.subtasks.len(), 7);
    assert!(math.weight_by_size);
    assert!(math
        .subtasks
        .iter()
        .all(|(t, m, b)| t.starts_with("math_") && *m == "exact_match_original" && *b == 0.0));
    // MMLU-Pro: at most ten letters, baseline 1/10
    let pro = BENCHMARKS.iter().find(|b| b.name == "mmlu_pro").unwrap();
    assert_eq!(pro.subtasks, [("mmlu_pro", "acc", 0.1)]);
}

#[test]
fn leaderboard_v2_normalisation_figures() {
    use quantlab_tasks::leaderboard::normalize;
    // GPQA: 54 of 198 right = 0.272727..; (0.272727 - 0.25) / 0.75 * 100 = 3.0303
    assert!((normalize(54.0 / 198.0, 0.25).unwrap() - 3.030_303).abs() < 1e-6);
    // below chance counts 0
    assert_eq!(normalize(0.2, 0.25).unwrap(), 0.0);
    assert_eq!(normalize(1.0, 0.1).unwrap(), 100.0);
    // generation tasks: baseline 0 -> percent
    assert!((normalize(0.7786, 0.0).unwrap() - 77.86).abs() < 1e-9);
    assert!(normalize(1.5, 0.25).is_err());
    assert!(normalize(0.5, 1.0).is_err());
}

/// The paper's Table 3 prints normalised per-benchmark scores and their average. Raw scores
/// that give those normalised values (every sub-task of a benchmark at the same normalised
/// level, raw = b + n/100 * (1 - b) with each sub-task's own baseline) must give back the printed
/// average to its two decimals (±0.005; the 8B BF16 average 27.615 is a rounding tie).
#[test]
fn leaderboard_v2_reproduces_paper_table3_averages() {
    use quantlab_tasks::leaderboard::{leaderboard_v2, BENCHMARKS};
    use std::collections::BTreeMap;
    let path = common::shared_dir().join("reference/paper/table3_leaderboard_v2_realworld.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cols = [
        ("ifeval", "ifeval_0shot"),
        ("bbh", "bbh_3shot"),
        ("math_lvl5", "math_lvl5_4shot"),
        ("gpqa", "gpqa_0shot"),
        ("musr", "musr_0shot"),
        ("mmlu_pro", "mmlu_pro_5shot"),
    ];
    let mut rows = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = line.split(',').collect();
        let get = |name: &str| -> f64 {
            let i = header.iter().position(|h| *h == name).unwrap();
            c[i].parse().unwrap()
        };
        let mut scores = BTreeMap::new();
        for b in BENCHMARKS {
            let col = cols.iter().find(|(n, _)| *n == b.name).unwrap().1;
            let n = get(col);
            for &(task, metric, base) in b.subtasks {
                scores.insert(
                    (task.to_string(), metric.to_string()),
                    base + n / 100.0 * (1.0 - base),
                );
            }
        }
        let lb = leaderboard_v2(&scores, &math_sizes()).unwrap();
        assert!(lb.missing.is_empty());
        assert_eq!(lb.benchmarks.len(), 6);
        for (name, v) in &lb.benchmarks {
            let col = cols.iter().find(|(n, _)| n == name).unwrap().1;
            assert!((v - get(col)).abs() < 1e-9, "{line}: {name}");
        }
        let printed = get("average");
        assert!(
            (lb.average - printed).abs() <= 0.005 + 1e-9,
            "{line}: average {} vs printed {printed}",
            lb.average
        );
        rows += 1;
    }
    assert_eq!(rows, 12);
}

/// Level 5 documents per MATH sub-task (lm-eval's `leaderboard_math_*_hard` sizes; the
/// counts of `../shared/data/math/test.jsonl.gz`, checked in tests/math.rs).
fn math_sizes() -> std::collections::BTreeMap<String, usize> {
    [
        ("math_algebra_hard", 307),
        ("math_counting_and_prob_hard", 123),
        ("math_geometry_hard", 132),
        ("math_intermediate_algebra_hard", 280),
        ("math_num_theory_hard", 154),
        ("math_prealgebra_hard", 193),
        ("math_precalculus_hard", 135),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect()
}

/// MATH Lvl 5 is lm-eval's size-weighted group mean of the raw sub-task scores (then normalised
/// with baseline 0), not the mean of the seven normalised scores.
#[test]
fn leaderboard_v2_math_is_the_size_weighted_mean() {
    use quantlab_tasks::leaderboard::leaderboard_v2;
    use std::collections::BTreeMap;
    let sizes = math_sizes();
    let raw = [0.30, 0.10, 0.05, 0.02, 0.20, 0.40, 0.01];
    let mut s = BTreeMap::new();
    for ((t, _), v) in sizes.iter().zip(raw) {
        s.insert((t.clone(), "exact_match_original".to_string()), v);
        // lm-eval 0.4.9.1's math_verify exact_match is reported but not what is normalised
        s.insert((t.clone(), "exact_match".to_string()), 1.0);
    }
    let lb = leaderboard_v2(&s, &sizes).unwrap();
    assert_eq!(lb.benchmarks.len(), 1);
    assert_eq!(lb.benchmarks[0].0, "math_lvl5");
    // sorted by task name: algebra 307, counting 123, geometry 132, intermediate 280,
    // num_theory 154, prealgebra 193, precalculus 135 -> 225.95 of 1324 right
    let right: f64 = 0.30 * 307.0
        + 0.10 * 123.0
        + 0.05 * 132.0
        + 0.02 * 280.0
        + 0.20 * 154.0
        + 0.40 * 193.0
        + 0.01 * 135.0;
    assert!((right - 225.95).abs() < 1e-9, "{right}");
    let want = right / 1324.0 * 100.0;
    assert!((lb.benchmarks[0].1 - want).abs() < 1e-9, "{lb:?}");
    // the unweighted mean of the sub-tasks would be 15.43, not 17.07
    assert!((want - 17.065_710).abs() < 1e-5, "{want}");
    assert!((lb.average - want).abs() < 1e-9);
    assert_eq!(lb.missing, ["ifeval", "bbh", "gpqa", "musr", "mmlu_pro"]);
    // a sub-task without a document count cannot be weighted
    let mut partial = sizes.clone();
    partial.remove("math_geometry_hard");
    let err = format!("{:#}", leaderboard_v2(&s, &partial).unwrap_err());
    assert!(
        err.contains("math_geometry_hard") && err.contains("math_lvl5"),
        "{err}"
    );
    // six of seven sub-tasks is not MATH
    s.remove(&(
        "math_precalculus_hard".to_string(),
        "exact_match_original".to_string(),
    ));
    let err = format!("{:#}", leaderboard_v2(&s, &sizes).unwrap_err());
    assert!(err.contains("math_precalculus_hard"), "{err}");
}

#[test]
fn leaderboard_v2_partial_and_bad_inputs() {
    use quantlab_tasks::leaderboard::leaderboard_v2;
    use std::collections::BTreeMap;
    let key = |t: &str, m: &str| (t.to_string(), m.to_string());
    let mut s = BTreeMap::new();
    s.insert(key("gpqa_diamond", "acc_norm"), 0.4);
    s.insert(key("mmlu_pro", "acc"), 0.1);
    let none = BTreeMap::new();
    let lb = leaderboard_v2(&s, &none).unwrap();
    // gpqa (0.4-0.25)/0.75 = 20; mmlu_pro 0 -> average 10 over the two present
    assert_eq!(lb.benchmarks.len(), 2);
    assert!((lb.benchmarks[0].1 - 20.0).abs() < 1e-9);
    assert!((lb.average - 10.0).abs() < 1e-9);
    assert_eq!(lb.missing, ["ifeval", "bbh", "math_lvl5", "musr"]);
    // one BBH sub-task alone is not BBH
    s.insert(key("bbh_navigate", "acc_norm"), 0.6);
    let err = format!("{:#}", leaderboard_v2(&s, &none).unwrap_err());
    assert!(
        err.contains("bbh") && err.contains("bbh_web_of_lies"),
        "{err}"
    );
    s.remove(&key("bbh_navigate", "acc_norm"));
    s.insert(key("gpqa_diamond", "acc_norm"), 40.0);
    let err = format!("{:#}", leaderboard_v2(&s, &none).unwrap_err());
    assert!(err.contains("gpqa_diamond") && err.contains("40"), "{err}");
    assert!(leaderboard_v2(&BTreeMap::new(), &none).is_err());
}

#[test]
fn ifeval_task_scores_generations_with_the_checkers() {
    let data = common::data_dir();
    let task = Task::new(resolve_task("ifeval").unwrap()).unwrap();
    assert_eq!(
        task.spec.metric_keys(),
        quantlab_tasks::IFEVAL_KEYS.map(String::from)
    );
    let docs = task.load_prepared(&data, Some(3)).unwrap();
    let raw = load_jsonl(&data.join("ifeval/train.jsonl.gz"), Some(3)).unwrap();
    for (d, r) in docs.iter().zip(&raw) {
        assert_eq!(d.text, r["prompt"].as_str().unwrap());
        assert_eq!(task.plain_context(d), d.text);
        let g = "A response, with a comma and no title.";
        let s = task.score_generation(d, g).unwrap();
        let want = quantlab_tasks::ifeval::score_doc(r, g).unwrap();
        let n = want.strict.len() as f64;
        let k = want.strict.iter().filter(|&&b| b).count() as f64;
        assert_eq!(s.metrics["inst_level_strict_acc"], k / n);
        assert_eq!(
            s.metrics["prompt_level_strict_acc"],
            if k == n { 1.0 } else { 0.0 }
        );
        assert_eq!(s.metrics[quantlab_tasks::IFEVAL_COUNT_KEY], n);
    }
    // doc 0 (key 1000) asks for 300+ words among others: a one-line answer fails it
    let s = task.score_generation(&docs[0], "Too short.").unwrap();
    assert_eq!(s.metrics["prompt_level_strict_acc"], 0.0);
}
