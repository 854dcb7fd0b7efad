//! The task spec: one YAML file per benchmark in `tasks/specs/`, modelled on lm-evaluation-harness
//! task configs (`lm_eval/api/task.py`, `TaskConfig`). Field names follow lm-eval where the concept
//! is the same (`doc_to_text`, `doc_to_target`, `doc_to_choice`, `target_delimiter`,
//! `generation_kwargs`, `regex_pattern`, `group_select`, `regexes_to_ignore`, ...).
//!
//! Differences from lm-eval, on purpose:
//! - `dataset` is one local file (`.jsonl` / `.jsonl.gz`) relative to the data folder instead of a
//!   Hugging Face dataset path + split.
//! - `process_docs: !function ...` becomes `preprocess: <name>`, a built-in transform
//!   ([`crate::preprocess`]).
//! - lm-eval's `filter_list` is `filters`, each entry `{name, filter: [steps]}` as in lm-eval.
//! - `metric_list` is `metrics`; aggregation is always `mean` (with lm-eval's `mean_stderr`).
//! - `chat_template: true` replaces lm-eval's command-line `--apply_chat_template`.
//! - `primary_metric` names the metric tables report by default.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// How documents are turned into requests (lm-eval `output_type`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    /// One `loglikelihood` request per choice; scored with `acc` / `acc_norm`.
    MultipleChoice,
    /// One greedy `generate_until` request per document; scored after filters.
    GenerateUntil,
}

/// Built-in document transforms, applied to every raw record before templating (the role of
/// lm-eval's `process_docs`). See [`crate::preprocess`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// lm-eval `tasks/hellaswag/utils.py::process_docs`: adds `query`, `choices`, `gold`.
    Hellaswag,
}

/// `doc_to_choice`: an expression (a field name such as `choices`, a dotted path, or
/// `{{ choices.text }}`) that evaluates to a list, or a literal list of strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DocToChoice {
    /// Expression or field name evaluated against the document; must yield a list.
    Expr(String),
    /// The same choices for every document.
    List(Vec<String>),
}

/// Generation settings of a `generate_until` task (lm-eval `generation_kwargs`; greedy only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenerationKwargs {
    /// Stop strings; the returned text excludes them. The backend also stops at EOS.
    #[serde(default)]
    pub until: Vec<String>,
    /// Maximum number of generated tokens (lm-eval's default is 256).
    #[serde(default = "default_max_gen_toks")]
    pub max_gen_toks: usize,
}

impl Default for GenerationKwargs {
    fn default() -> Self {
        GenerationKwargs {
            until: Vec::new(),
            max_gen_toks: default_max_gen_toks(),
        }
    }
}

fn default_max_gen_toks() -> usize {
    256
}

/// One step of a filter pipeline (lm-eval `lm_eval/filters/`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "function", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterStep {
    /// lm-eval `RegexFilter` (`filters/extraction.py`): `re.findall(regex_pattern, resp)`, pick
    /// match `group_select` (negative counts from the end); when the pattern has several groups
    /// the first non-empty group is taken; the result is stripped. No match -> `fallback`.
    Regex {
        /// Python-compatible regular expression (Rust `regex` syntax).
        regex_pattern: String,
        /// Index into the list of matches; -1 = last.
        #[serde(default)]
        group_select: i64,
        /// Value when nothing matches (lm-eval default `[invalid]`).
        #[serde(default = "default_fallback")]
        fallback: String,
    },
    /// lm-eval `TakeFirstFilter` (`filters/selection.py`): keep the first response of each doc.
    TakeFirst,
    /// Python `str.strip()` of each response.
    Strip,
}

fn default_fallback() -> String {
    "[invalid]".to_string()
}

/// A named filter pipeline; metric keys of generation tasks are `<metric>,<name>`
/// (lm-eval reports `exact_match,strict-match`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterPipeline {
    /// Pipeline name, e.g. `strict-match`.
    pub name: String,
    /// Steps applied in order.
    pub filter: Vec<FilterStep>,
}

/// A metric and its options (lm-eval `metric_list` entries; aggregation is always the mean).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "metric", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricSpec {
    /// argmax of the choice log-likelihoods equals the gold index.
    Acc,
    /// argmax of log-likelihood / character length of the choice equals the gold index.
    AccNorm,
    /// lm-eval `exact_match_hf_evaluate` (`api/metrics.py`): remove `regexes_to_ignore` from
    /// prediction and reference (in order), optionally lowercase and drop ASCII punctuation, then
    /// compare.
    ExactMatch {
        /// Lowercase both sides.
        #[serde(default)]
        ignore_case: bool,
        /// Remove `string.punctuation` characters from both sides.
        #[serde(default)]
        ignore_punctuation: bool,
        /// Regexes replaced by "" in both sides, in order.
        #[serde(default)]
        regexes_to_ignore: Vec<String>,
    },
}

impl MetricSpec {
    /// The metric's base name (`acc`, `acc_norm`, `exact_match`).
    pub fn name(&self) -> &'static str {
        match self {
            MetricSpec::Acc => "acc",
            MetricSpec::AccNorm => "acc_norm",
            MetricSpec::ExactMatch { .. } => "exact_match",
        }
    }
}

/// A benchmark definition, read from YAML (`deny_unknown_fields`: a misspelt key is an error).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task name (`hellaswag`); the key in `results.json`.
    pub task: String,
    /// Spec version, recorded with the results (a YAML number is kept as written, e.g. `1.0`).
    #[serde(deserialize_with = "version_string")]
    pub version: String,
    /// Data file relative to the data folder, e.g. `hellaswag/validation.jsonl.gz`.
    pub dataset: String,
    /// Data file (relative to the data folder) few-shot examples are drawn from.
    #[serde(default)]
    pub fewshot_split: Option<String>,
    /// Number of few-shot examples; only 0 is supported for now.
    #[serde(default)]
    pub num_fewshot: usize,
    /// `multiple_choice` or `generate_until`.
    pub output_type: OutputType,
    /// Built-in doc transform applied before templating.
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    /// Prompt: minijinja template (Jinja2 semantics, strict undefined, trailing newline kept) or a
    /// field name.
    pub doc_to_text: String,
    /// Gold answer: template or field name. For multiple choice it must give an index (an integer
    /// or a string of digits) or one of the choices.
    pub doc_to_target: String,
    /// Choices of a multiple-choice task.
    #[serde(default)]
    pub doc_to_choice: Option<DocToChoice>,
    /// Put between the context and each choice (lm-eval default " ").
    #[serde(default = "default_target_delimiter")]
    pub target_delimiter: String,
    /// Render the prompt as one user message with the model's chat template.
    #[serde(default)]
    pub chat_template: bool,
    /// Generation settings (`generate_until` only).
    #[serde(default)]
    pub generation_kwargs: Option<GenerationKwargs>,
    /// Named filter pipelines applied to generations before scoring.
    #[serde(default)]
    pub filters: Vec<FilterPipeline>,
    /// Metrics computed per document and averaged.
    pub metrics: Vec<MetricSpec>,
    /// Metric key tables report by default (one of [`TaskSpec::metric_keys`]).
    pub primary_metric: String,
}

fn default_target_delimiter() -> String {
    " ".to_string()
}

fn version_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = serde_yaml::Value::deserialize(d)?;
    match v {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "version must be a string or a number, got {other:?}"
        ))),
    }
}

impl TaskSpec {
    /// Parse a spec from YAML text; `source` (a file name) is used in error messages.
    /// The spec is validated ([`TaskSpec::validate`]).
    pub fn from_yaml_str(yaml: &str, source: &str) -> Result<TaskSpec> {
        let spec: TaskSpec =
            serde_yaml::from_str(yaml).map_err(|e| anyhow::anyhow!("task spec {source}: {e}"))?;
        spec.validate()
            .with_context(|| format!("task spec {source}"))?;
        Ok(spec)
    }

    /// Read and parse a spec file.
    pub fn from_path(path: &Path) -> Result<TaskSpec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading task spec {}", path.display()))?;
        TaskSpec::from_yaml_str(&text, &path.display().to_string())
    }

    /// The metric keys this task reports, in order: `acc`, `acc_norm` for multiple choice;
    /// `<metric>,<filter name>` for each filter pipeline of a generation task (just `<metric>`
    /// when it has no filters).
    pub fn metric_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for m in &self.metrics {
            match self.output_type {
                OutputType::MultipleChoice => keys.push(m.name().to_string()),
                OutputType::GenerateUntil => {
                    if self.filters.is_empty() {
                        keys.push(m.name().to_string());
                    } else {
                        for f in &self.filters {
                            keys.push(format!("{},{}", m.name(), f.name));
                        }
                    }
                }
            }
        }
        keys
    }

    /// Generation settings, defaulted when absent.
    pub fn generation(&self) -> GenerationKwargs {
        self.generation_kwargs.clone().unwrap_or_default()
    }

    /// Full path of the data file under `data_dir`.
    pub fn data_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dataset)
    }

    /// Check the spec's internal consistency (called by the parsers).
    pub fn validate(&self) -> Result<()> {
        if self.task.trim().is_empty() {
            bail!("`task` is empty");
        }
        if self.num_fewshot > 0 {
            bail!(
                "task `{}`: num_fewshot {} is not supported yet (only 0-shot)",
                self.task,
                self.num_fewshot
            );
        }
        if self.metrics.is_empty() {
            bail!("task `{}`: `metrics` is empty", self.task);
        }
        match self.output_type {
            OutputType::MultipleChoice => {
                if self.doc_to_choice.is_none() {
                    bail!(
                        "task `{}`: multiple_choice needs `doc_to_choice`",
                        self.task
                    );
                }
                if self.generation_kwargs.is_some() || !self.filters.is_empty() {
                    bail!(
                        "task `{}`: `generation_kwargs` and `filters` apply only to generate_until",
                        self.task
                    );
                }
                for m in &self.metrics {
                    if matches!(m, MetricSpec::ExactMatch { .. }) {
                        bail!(
                            "task `{}`: exact_match needs output_type generate_until",
                            self.task
                        );
                    }
                }
            }
            OutputType::GenerateUntil => {
                for m in &self.metrics {
                    if !matches!(m, MetricSpec::ExactMatch { .. }) {
                        bail!(
                            "task `{}`: metric {} needs output_type multiple_choice",
                            self.task,
                            m.name()
                        );
                    }
                }
            }
        }
        for m in &self.metrics {
            if let MetricSpec::ExactMatch {
                regexes_to_ignore, ..
            } = m
            {
                for r in regexes_to_ignore {
                    regex::Regex::new(r).with_context(|| {
                        format!(
                            "task `{}`: bad regex in regexes_to_ignore: {r:?}",
                            self.task
                        )
                    })?;
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.filters {
            if !names.insert(f.name.as_str()) {
                bail!("task `{}`: duplicate filter name `{}`", self.task, f.name);
            }
            for step in &f.filter {
                if let FilterStep::Regex { regex_pattern, .. } = step {
                    regex::Regex::new(regex_pattern).with_context(|| {
                        format!(
                            "task `{}`: filter `{}`: bad regex_pattern {regex_pattern:?}",
                            self.task, f.name
                        )
                    })?;
                }
            }
        }
        let keys = self.metric_keys();
        if !keys.contains(&self.primary_metric) {
            bail!(
                "task `{}`: primary_metric `{}` is not one of the reported metrics {:?}",
                self.task,
                self.primary_metric,
                keys
            );
        }
        Ok(())
    }
}
