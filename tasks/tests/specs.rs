//! Spec loading: shipped specs parse, errors name the file/key/task/path.

mod common;

use quantlab_tasks::{
    builtin_specs, list_tasks, load_jsonl, resolve_task, suite, OutputType, Task, TaskSpec,
    BUILTIN_SPECS,
};
use std::path::Path;

#[test]
fn every_shipped_spec_parses_and_matches_its_file() {
    let specs = builtin_specs().unwrap();
    assert_eq!(specs.len(), BUILTIN_SPECS.len());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    // every file in specs/ is embedded, and the embedded text is the file's
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = BUILTIN_SPECS.iter().map(|(f, _)| f.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    for (file, _) in BUILTIN_SPECS {
        let from_path = TaskSpec::from_path(&dir.join(file)).unwrap();
        assert_eq!(
            format!("{}.yaml", from_path.task),
            *file,
            "task name = file name"
        );
        let spec = specs.iter().find(|s| s.task == from_path.task).unwrap();
        assert_eq!(spec, &from_path);
        Task::new(spec.clone()).unwrap();
        assert!(spec.metric_keys().contains(&spec.primary_metric));
    }
    let tasks = list_tasks();
    let plain: Vec<&str> = tasks
        .iter()
        .map(String::as_str)
        .filter(|t| !t.contains(':'))
        .collect();
    assert_eq!(
        plain,
        [
            "arc_challenge",
            "arc_challenge_llama",
            "arc_easy",
            "bbh_boolean_expressions",
            "bbh_causal_judgement",
            "bbh_date_understanding",
            "bbh_disambiguation_qa",
            "bbh_formal_fallacies",
            "bbh_geometric_shapes",
            "bbh_hyperbaton",
            "bbh_logical_deduction_five_objects",
            "bbh_logical_deduction_seven_objects",
            "bbh_logical_deduction_three_objects",
            "bbh_movie_recommendation",
            "bbh_navigate",
            "bbh_object_counting",
            "bbh_penguins_in_a_table",
            "bbh_reasoning_about_colored_objects",
            "bbh_ruin_names",
            "bbh_salient_translation_error_detection",
            "bbh_snarks",
            "bbh_sports_understanding",
            "bbh_temporal_sequences",
            "bbh_tracking_shuffled_objects_five_objects",
            "bbh_tracking_shuffled_objects_seven_objects",
            "bbh_tracking_shuffled_objects_three_objects",
            "bbh_web_of_lies",
            "gpqa_diamond",
            "gsm8k",
            "gsm8k_cot_llama",
            "hellaswag",
            "hellaswag_10shot",
            "ifeval",
            "math_algebra_hard",
            "math_counting_and_prob_hard",
            "math_geometry_hard",
            "math_intermediate_algebra_hard",
            "math_num_theory_hard",
            "math_prealgebra_hard",
            "math_precalculus_hard",
            "mmlu",
            "mmlu_cot_llama",
            "mmlu_llama",
            "mmlu_pro",
            "musr_murder_mysteries",
            "musr_object_placements",
            "musr_team_allocation",
            "truthfulqa_mc2",
            "winogrande",
            "winogrande_5shot"
        ]
    );
    // 57 MMLU subjects for each of the three MMLU tasks
    for t in ["mmlu", "mmlu_llama", "mmlu_cot_llama"] {
        let n = tasks
            .iter()
            .filter(|x| x.starts_with(&format!("{t}:")))
            .count();
        assert_eq!(n, 57, "{t}");
    }
    assert!(tasks.contains(&"mmlu_llama:marketing".to_string()));
}

#[test]
fn leaderboard_v1_suite_and_subtasks() {
    let s = suite("leaderboard-v1").unwrap();
    let shots: Vec<(&str, usize)> = s.iter().map(|t| (t.task.as_str(), t.num_fewshot)).collect();
    assert_eq!(
        shots,
        [
            ("mmlu_llama", 5),
            ("mmlu_cot_llama", 0),
            ("arc_challenge_llama", 0),
            ("gsm8k_cot_llama", 8),
            ("hellaswag_10shot", 10),
            ("winogrande_5shot", 5),
            ("truthfulqa_mc2", 0)
        ]
    );
    let m = resolve_task("mmlu_llama:marketing").unwrap();
    assert_eq!(m.task, "mmlu_llama:marketing");
    assert_eq!(m.subtask.as_deref(), Some("marketing"));
    let err = format!("{:#}", resolve_task("mmlu:cooking").unwrap_err());
    assert!(err.contains("cooking") && err.contains("mmlu"), "{err}");
    let err = format!("{:#}", resolve_task("hellaswag:x").unwrap_err());
    assert!(err.contains("no sub-tasks"), "{err}");
}

#[test]
fn missing_fewshot_file_names_task_and_path() {
    let mut spec = resolve_task("mmlu:marketing").unwrap();
    spec.num_fewshot = 5;
    spec.fewshot_split = Some("mmlu/nowhere.jsonl.gz".into());
    let task = Task::new(spec).unwrap();
    let err = format!(
        "{:#}",
        task.load_prepared(&common::data_dir(), Some(1))
            .unwrap_err()
    );
    assert!(
        err.contains("mmlu:marketing") && err.contains("mmlu/nowhere.jsonl.gz"),
        "{err}"
    );
}

#[test]
fn smoke_suite_and_metric_keys() {
    let s = suite("smoke").unwrap();
    let names: Vec<&str> = s.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(names, ["hellaswag", "arc_easy", "gsm8k"]);
    assert_eq!(s[0].metric_keys(), ["acc", "acc_norm"]);
    assert_eq!(s[0].primary_metric, "acc_norm");
    assert_eq!(s[1].primary_metric, "acc_norm");
    assert_eq!(s[2].output_type, OutputType::GenerateUntil);
    assert_eq!(
        s[2].metric_keys(),
        ["exact_match,strict-match", "exact_match,flexible-extract"]
    );
    assert_eq!(s[2].primary_metric, "exact_match,flexible-extract");
    assert!(s[2].chat_template);
    let g = s[2].generation();
    assert_eq!(g.max_gen_toks, 256);
    assert_eq!(g.until, ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>"]);
    assert!(suite("nope").unwrap_err().to_string().contains("smoke"));
    assert!(resolve_task("nope")
        .unwrap_err()
        .to_string()
        .contains("hellaswag"));
}

#[test]
fn unknown_key_is_an_error_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = quantlab_tasks::BUILTIN_SPECS
        .iter()
        .find(|(f, _)| *f == "arc_easy.yaml")
        .unwrap()
        .1
        .replace("target_delimiter:", "target_delimeter:");
    let path = dir.path().join("my_task.yaml");
    std::fs::write(&path, yaml).unwrap();
    let err = format!("{:#}", TaskSpec::from_path(&path).unwrap_err());
    assert!(err.contains("my_task.yaml"), "{err}");
    assert!(err.contains("target_delimeter"), "{err}");
    // also inside nested structs (a metric option)
    let yaml = BUILTIN_SPECS
        .iter()
        .find(|(f, _)| *f == "gsm8k.yaml")
        .unwrap()
        .1
        .replace("ignore_case: true", "ignore_kase: true");
    std::fs::write(&path, yaml).unwrap();
    let err = format!("{:#}", resolve_task(path.to_str().unwrap()).unwrap_err());
    assert!(
        err.contains("my_task.yaml") && err.contains("ignore_kase"),
        "{err}"
    );
    // and in a filter step
    let yaml = BUILTIN_SPECS
        .iter()
        .find(|(f, _)| *f == "gsm8k.yaml")
        .unwrap()
        .1
        .replacen(
            "group_select: -1",
            "group_select: -1\n        groupselect: 1",
            1,
        );
    std::fs::write(&path, yaml).unwrap();
    let err = format!("{:#}", TaskSpec::from_path(&path).unwrap_err());
    assert!(
        err.contains("my_task.yaml") && err.contains("groupselect"),
        "{err}"
    );
}

#[test]
fn invalid_specs_are_rejected() {
    let base = BUILTIN_SPECS
        .iter()
        .find(|(f, _)| *f == "hellaswag.yaml")
        .unwrap()
        .1;
    let bad_primary = base.replace("primary_metric: acc_norm", "primary_metric: f1");
    let err = format!(
        "{:#}",
        TaskSpec::from_yaml_str(&bad_primary, "x.yaml").unwrap_err()
    );
    assert!(err.contains("x.yaml") && err.contains("f1"), "{err}");
    let fewshot = base.replace("num_fewshot: 0", "num_fewshot: 10");
    let err = format!(
        "{:#}",
        TaskSpec::from_yaml_str(&fewshot, "x.yaml").unwrap_err()
    );
    assert!(err.contains("num_fewshot"), "{err}");
    let em = base.replace("- metric: acc_norm", "- metric: exact_match");
    assert!(TaskSpec::from_yaml_str(&em, "x.yaml").is_err());
}

#[test]
fn missing_data_file_names_task_and_path() {
    let spec = resolve_task("hellaswag").unwrap();
    let task = Task::new(spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", task.load_docs(dir.path(), Some(3)).unwrap_err());
    let full = dir.path().join("hellaswag/validation.jsonl.gz");
    assert!(err.contains("`hellaswag`"), "{err}");
    assert!(err.contains(&full.display().to_string()), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    std::fs::write(&p, "{\"a\": 1}\n\n{\"a\": 2,}\n").unwrap();
    let err = format!("{:#}", load_jsonl(&p, None).unwrap_err());
    assert!(err.contains(&format!("{}:3", p.display())), "{err}");
    assert_eq!(load_jsonl(&p, Some(1)).unwrap().len(), 1);
    std::fs::write(&p, "[1, 2]\n").unwrap();
    let err = format!("{:#}", load_jsonl(&p, None).unwrap_err());
    assert!(err.contains(":1") && err.contains("object"), "{err}");
}

#[test]
fn gzip_and_limit_on_real_data() {
    let data = common::data_dir();
    let all = load_jsonl(&data.join("arc_easy/test.jsonl.gz"), None).unwrap();
    assert_eq!(all.len(), 2376);
    let first = load_jsonl(&data.join("arc_easy/test.jsonl.gz"), Some(7)).unwrap();
    assert_eq!(first[..], all[..7]);
}
