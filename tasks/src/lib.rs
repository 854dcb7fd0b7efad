//! quantlab-tasks: benchmark definitions with lm-evaluation-harness semantics.
//!
//! A task is a YAML spec ([`TaskSpec`], one file per task in `tasks/specs/`, embedded in the
//! binary and also loadable from a path). [`Task`] compiles a spec; it loads the documents
//! ([`dataset`]), applies a built-in transform ([`preprocess`]), renders prompts, choices and
//! targets with minijinja, and scores the backend's answers ([`filters`], [`metrics`]). The runner
//! in `quantlab-evaluate` turns [`PreparedDoc`]s into backend requests:
//!
//! - `multiple_choice`: one `loglikelihood(context, target_delimiter + choice)` per choice, the
//!   context being `doc_to_text` (through the chat template when `chat_template: true`);
//! - `generate_until`: one greedy generation of the context until `generation_kwargs.until`.

pub mod dataset;
pub mod filters;
pub mod ifeval;
pub mod metrics;
pub mod preprocess;
pub mod spec;
pub mod task;

use anyhow::{bail, Result};
use std::path::Path;

pub use dataset::{default_data_dir, load_jsonl, DATA_ENV};
pub use spec::{
    DocToChoice, FilterPipeline, FilterStep, GenerationKwargs, MetricSpec, OutputType, Preprocess,
    TaskSpec,
};
pub use task::{GenerationScores, PreparedDoc, Target, Task};

/// The specs shipped in `tasks/specs/`, as (file name, YAML text), embedded at build time.
pub const BUILTIN_SPECS: &[(&str, &str)] = &[
    (
        "arc_challenge.yaml",
        include_str!("../specs/arc_challenge.yaml"),
    ),
    ("arc_easy.yaml", include_str!("../specs/arc_easy.yaml")),
    ("gsm8k.yaml", include_str!("../specs/gsm8k.yaml")),
    ("hellaswag.yaml", include_str!("../specs/hellaswag.yaml")),
];

/// Suites: name -> task names.
pub const SUITES: &[(&str, &[&str])] = &[("smoke", &["hellaswag", "arc_easy", "gsm8k"])];

/// Parse every built-in spec (file name -> spec).
pub fn builtin_specs() -> Result<Vec<TaskSpec>> {
    BUILTIN_SPECS
        .iter()
        .map(|(file, yaml)| TaskSpec::from_yaml_str(yaml, &format!("tasks/specs/{file}")))
        .collect()
}

/// Names of the built-in tasks, sorted.
pub fn list_tasks() -> Vec<String> {
    let mut names: Vec<String> = BUILTIN_SPECS
        .iter()
        .map(|(file, _)| file.trim_end_matches(".yaml").to_string())
        .collect();
    names.sort();
    names
}

/// Names of the suites.
pub fn list_suites() -> Vec<String> {
    SUITES.iter().map(|(n, _)| n.to_string()).collect()
}

/// A built-in task by name.
pub fn builtin_task(name: &str) -> Result<TaskSpec> {
    for (file, yaml) in BUILTIN_SPECS {
        if file.trim_end_matches(".yaml") == name {
            return TaskSpec::from_yaml_str(yaml, &format!("tasks/specs/{file}"));
        }
    }
    bail!(
        "unknown task `{name}`; built-in tasks: {}",
        list_tasks().join(", ")
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
