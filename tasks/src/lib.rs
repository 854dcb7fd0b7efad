//! quantlab-tasks: benchmark definitions with lm-evaluation-harness semantics.
//!
//! A task is a YAML spec ([`TaskSpec`], one file per task in `tasks/specs/`, embedded in the
//! binary and also loadable from a path). [`Task`] compiles a spec; it loads the documents
//! ([`dataset`]), applies a built-in transform ([`preprocess`]), renders prompts, choices and
//! targets with minijinja, and scores the backend's answers ([`filters`], [`metrics`]). The runner
//! in `quantlab-evaluate` turns [`PreparedDoc`]s into backend requests:
//!
//! - `multiple_choice`: one `loglikelihood(context, target_delimiter + choice)` per choice, the
//!   context being the description, the few-shot examples ([`fewshot`]) and `doc_to_text`
//!   (through the chat template when `chat_template: true`); with `multiple_input` (Winogrande)
//!   each choice ends its own context and the shared continuation is scored;
//! - `generate_until`: one greedy generation of the context (opened with `gen_prefix`, if any)
//!   until `generation_kwargs.until`;
//! - `loglikelihood_rolling`: the whole `doc_to_target` text, scored in rolling windows.

pub mod dataset;
pub mod fewshot;
pub mod filters;
pub mod ifeval;
pub mod leaderboard;
pub mod math;
pub mod metrics;
pub mod preprocess;
pub mod spec;
pub mod task;

use anyhow::{bail, Context, Result};
use std::path::Path;

pub use dataset::{default_data_dir, load_jsonl, DATA_ENV};
pub use spec::{
    DocToChoice, FewshotConfig, FilterPipeline, FilterStep, GenerationKwargs, MetricSpec,
    OutputType, Preprocess, Subtasks, TaskSpec, IFEVAL_COUNT_KEY, IFEVAL_KEYS, MATH_KEYS,
};
pub use task::{
    perplexities, FewshotExample, GenerationScores, PreparedDoc, PromptMessage, Target, Task,
};

/// The specs shipped in `tasks/specs/`, as (file name, YAML text), embedded at build time.
pub const BUILTIN_SPECS: &[(&str, &str)] = &[
    (
        "arc_challenge.yaml",
        include_str!("../specs/arc_challenge.yaml"),
    ),
    (
        "arc_challenge_llama.yaml",
        include_str!("../specs/arc_challenge_llama.yaml"),
    ),
    ("arc_easy.yaml", include_str!("../specs/arc_easy.yaml")),
    (
        "bbh_boolean_expressions.yaml",
        include_str!("../specs/bbh_boolean_expressions.yaml"),
    ),
    (
        "bbh_causal_judgement.yaml",
        include_str!("../specs/bbh_causal_judgement.yaml"),
    ),
    (
        "bbh_date_understanding.yaml",
        include_str!("../specs/bbh_date_understanding.yaml"),
    ),
    (
        "bbh_disambiguation_qa.yaml",
        include_str!("../specs/bbh_disambiguation_qa.yaml"),
    ),
    (
        "bbh_formal_fallacies.yaml",
        include_str!("../specs/bbh_formal_fallacies.yaml"),
    ),
    (
        "bbh_geometric_shapes.yaml",
        include_str!("../specs/bbh_geometric_shapes.yaml"),
    ),
    (
        "bbh_hyperbaton.yaml",
        include_str!("../specs/bbh_hyperbaton.yaml"),
    ),
    (
        "bbh_logical_deduction_five_objects.yaml",
        include_str!("../specs/bbh_logical_deduction_five_objects.yaml"),
    ),
    (
        "bbh_logical_deduction_seven_objects.yaml",
        include_str!("../specs/bbh_logical_deduction_seven_objects.yaml"),
    ),
    (
        "bbh_logical_deduction_three_objects.yaml",
        include_str!("../specs/bbh_logical_deduction_three_objects.yaml"),
    ),
    (
        "bbh_movie_recommendation.yaml",
        include_str!("../specs/bbh_movie_recommendation.yaml"),
    ),
    (
        "bbh_navigate.yaml",
        include_str!("../specs/bbh_navigate.yaml"),
    ),
    (
        "bbh_object_counting.yaml",
        include_str!("../specs/bbh_object_counting.yaml"),
    ),
    (
        "bbh_penguins_in_a_table.yaml",
        include_str!("../specs/bbh_penguins_in_a_table.yaml"),
    ),
    (
        "bbh_reasoning_about_colored_objects.yaml",
        include_str!("../specs/bbh_reasoning_about_colored_objects.yaml"),
    ),
    (
        "bbh_ruin_names.yaml",
        include_str!("../specs/bbh_ruin_names.yaml"),
    ),
    (
        "bbh_salient_translation_error_detection.yaml",
        include_str!("../specs/bbh_salient_translation_error_detection.yaml"),
    ),
    ("bbh_snarks.yaml", include_str!("../specs/bbh_snarks.yaml")),
    (
        "bbh_sports_understanding.yaml",
        include_str!("../specs/bbh_sports_understanding.yaml"),
    ),
    (
        "bbh_temporal_sequences.yaml",
        include_str!("../specs/bbh_temporal_sequences.yaml"),
    ),
    (
        "bbh_tracking_shuffled_objects_five_objects.yaml",
        include_str!("../specs/bbh_tracking_shuffled_objects_five_objects.yaml"),
    ),
    (
        "bbh_tracking_shuffled_objects_seven_objects.yaml",
        include_str!("../specs/bbh_tracking_shuffled_objects_seven_objects.yaml"),
    ),
    (
        "bbh_tracking_shuffled_objects_three_objects.yaml",
        include_str!("../specs/bbh_tracking_shuffled_objects_three_objects.yaml"),
    ),
    (
        "bbh_web_of_lies.yaml",
        include_str!("../specs/bbh_web_of_lies.yaml"),
    ),
    (
        "gpqa_diamond.yaml",
        include_str!("../specs/gpqa_diamond.yaml"),
    ),
    ("gsm8k.yaml", include_str!("../specs/gsm8k.yaml")),
    (
        "gsm8k_cot_llama.yaml",
        include_str!("../specs/gsm8k_cot_llama.yaml"),
    ),
    ("hellaswag.yaml", include_str!("../specs/hellaswag.yaml")),
    (
        "hellaswag_10shot.yaml",
        include_str!("../specs/hellaswag_10shot.yaml"),
    ),
    ("ifeval.yaml", include_str!("../specs/ifeval.yaml")),
    (
        "math_algebra_hard.yaml",
        include_str!("../specs/math_algebra_hard.yaml"),
    ),
    (
        "math_counting_and_prob_hard.yaml",
        include_str!("../specs/math_counting_and_prob_hard.yaml"),
    ),
    (
        "math_geometry_hard.yaml",
        include_str!("../specs/math_geometry_hard.yaml"),
    ),
    (
        "math_intermediate_algebra_hard.yaml",
        include_str!("../specs/math_intermediate_algebra_hard.yaml"),
    ),
    (
        "math_num_theory_hard.yaml",
        include_str!("../specs/math_num_theory_hard.yaml"),
    ),
    (
        "math_prealgebra_hard.yaml",
        include_str!("../specs/math_prealgebra_hard.yaml"),
    ),
    (
        "math_precalculus_hard.yaml",
        include_str!("../specs/math_precalculus_hard.yaml"),
    ),
    ("mmlu.yaml", include_str!("../specs/mmlu.yaml")),
    (
        "mmlu_cot_llama.yaml",
        include_str!("../specs/mmlu_cot_llama.yaml"),
    ),
    ("mmlu_llama.yaml", include_str!("../specs/mmlu_llama.yaml")),
    ("mmlu_pro.yaml", include_str!("../specs/mmlu_pro.yaml")),
    (
        "musr_murder_mysteries.yaml",
        include_str!("../specs/musr_murder_mysteries.yaml"),
    ),
    (
        "musr_object_placements.yaml",
        include_str!("../specs/musr_object_placements.yaml"),
    ),
    (
        "musr_team_allocation.yaml",
        include_str!("../specs/musr_team_allocation.yaml"),
    ),
    (
        "truthfulqa_mc2.yaml",
        include_str!("../specs/truthfulqa_mc2.yaml"),
    ),
    ("winogrande.yaml", include_str!("../specs/winogrande.yaml")),
    (
        "winogrande_5shot.yaml",
        include_str!("../specs/winogrande_5shot.yaml"),
    ),
];

/// Suites: name -> task names. `leaderboard-v1` is the paper's first academic suite (Meta's
/// Llama-3.1 prompts where lm-eval uses them): MMLU 5-shot generative, MMLU CoT 0-shot,
/// ARC-Challenge 0-shot generative, GSM8K CoT 8-shot, HellaSwag 10-shot, Winogrande 5-shot,
/// TruthfulQA MC2 0-shot. `leaderboard-v2` is the Open LLM Leaderboard V2 as lm-eval's
/// `leaderboard_*` tasks define it: IFEval, BBH (24 sub-tasks, 3-shot), MATH Lvl 5 (seven
/// sub-tasks, 4-shot, [`math`]), GPQA diamond, MuSR (three sub-tasks) and MMLU-Pro 5-shot. Its
/// scores are normalised and averaged by [`leaderboard::leaderboard_v2`].
pub const SUITES: &[(&str, &[&str])] = &[
    ("smoke", &["hellaswag", "arc_easy", "gsm8k"]),
    (
        "leaderboard-v1",
        &[
            "mmlu_llama",
            "mmlu_cot_llama",
            "arc_challenge_llama",
            "gsm8k_cot_llama",
            "hellaswag_10shot",
            "winogrande_5shot",
            "truthfulqa_mc2",
        ],
    ),
    (
        "leaderboard-v2",
        &[
            "ifeval",
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
            "math_algebra_hard",
            "math_counting_and_prob_hard",
            "math_geometry_hard",
            "math_intermediate_algebra_hard",
            "math_num_theory_hard",
            "math_prealgebra_hard",
            "math_precalculus_hard",
            "gpqa_diamond",
            "musr_murder_mysteries",
            "musr_object_placements",
            "musr_team_allocation",
            "mmlu_pro",
        ],
    ),
];

/// Parse every built-in spec (file name -> spec).
pub fn builtin_specs() -> Result<Vec<TaskSpec>> {
    BUILTIN_SPECS
        .iter()
        .map(|(file, yaml)| TaskSpec::from_yaml_str(yaml, &format!("tasks/specs/{file}")))
        .collect()
}

/// Names of the built-in tasks, sorted; a task with `subtasks` is listed as itself (all
/// documents) and as `<task>:<value>` for each sub-task.
pub fn list_tasks() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (file, yaml) in BUILTIN_SPECS {
        let name = file.trim_end_matches(".yaml").to_string();
        if let Ok(spec) = TaskSpec::from_yaml_str(yaml, file) {
            if let Some(st) = &spec.subtasks {
                names.extend(st.values.iter().map(|v| format!("{name}:{v}")));
            }
        }
        names.push(name);
    }
    names.sort();
    names
}

/// Names of the suites.
pub fn list_suites() -> Vec<String> {
    SUITES.iter().map(|(n, _)| n.to_string()).collect()
}

/// A built-in task by name; `<task>:<value>` selects one sub-task of a task with `subtasks`
/// (its name in results is `<task>:<value>`).
pub fn builtin_task(name: &str) -> Result<TaskSpec> {
    let (base, sub) = match name.split_once(':') {
        Some((b, s)) => (b, Some(s)),
        None => (name, None),
    };
    for (file, yaml) in BUILTIN_SPECS {
        if file.trim_end_matches(".yaml") == base {
            let mut spec = TaskSpec::from_yaml_str(yaml, &format!("tasks/specs/{file}"))?;
            if let Some(sub) = sub {
                spec.subtask = Some(sub.to_string());
                spec.task = name.to_string();
                spec.validate()
                    .with_context(|| format!("tasks/specs/{file}"))?;
            }
            return Ok(spec);
        }
    }
    bail!(
        "unknown task `{name}`; built-in tasks: {}",
        list_tasks()
            .into_iter()
            .filter(|t| !t.contains(':'))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A task by built-in name, or a spec file when `name_or_path` is an existing file.
pub fn resolve_task(name_or_path: &str) -> Result<TaskSpec> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return TaskSpec::from_path(p);
    }
    builtin_task(name_or_path)
}

/// The task specs of a suite, in the suite's order.
pub fn suite(name: &str) -> Result<Vec<TaskSpec>> {
    match SUITES.iter().find(|(n, _)| *n == name) {
        Some((_, tasks)) => tasks.iter().map(|t| builtin_task(t)).collect(),
        None => bail!(
            "unknown suite `{name}`; suites: {}",
            list_suites().join(", ")
        ),
    }
}
