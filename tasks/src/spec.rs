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
//! - `multiple_input: true` replaces lm-eval's "doc_to_text returns an int" convention (Winogrande's
//!   partial contexts): `doc_to_text` gives the gold index, each choice is a context and
//!   `doc_to_target` the shared continuation.
//! - `subtasks` splits one data file into named sub-tasks by a field (MMLU's subjects): the task
//!   `mmlu:marketing` keeps the documents whose `subject` is `marketing`, and few-shot examples of
//!   any document come from pool documents with the same field value.
//! - few-shot: `fewshot_split` is a data file; when it is the evaluated file itself the evaluated
//!   document is left out of its own examples (lm-eval's rule when `fewshot_split == test_split`).

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
    /// One `loglikelihood_rolling` request per document (the whole `doc_to_target` text scored in
    /// disjoint windows of the model's context); scored as perplexities.
    LoglikelihoodRolling,
}

/// Built-in document transforms, applied to every raw record before templating (the role of
/// lm-eval's `process_docs`). See [`crate::preprocess`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// lm-eval `tasks/hellaswag/utils.py::process_docs`: adds `query`, `choices`, `gold`.
    Hellaswag,
    /// lm-eval `tasks/winogrande/preprocess_winogrande.py`: adds `gold` (0/1 from `answer`),
    /// `partial_contexts` (the sentence up to the blank with each option) and `continuation` (the
    /// sentence after the blank, stripped).
    Winogrande,
    /// lm-eval `tasks/leaderboard/gpqa/utils.py::process_docs`: the four answers cleaned and
    /// shuffled with Python's global `random` (seeded 0, as lm-eval's `simple_evaluate` seeds it;
    /// one `random.shuffle` per document in file order); adds `choice1`..`choice4` and `answer`
    /// (`"(A)"`..`"(D)"`, the correct answer's place).
    Gpqa,
    /// MuSR in the schema of its GitHub repository (`context` + a list of `questions`, each with
    /// `question`, `choices`, `answer`), flattened to one document per question with the fields of
    /// the Hugging Face `TAUR-Lab/MuSR` rows lm-eval's `leaderboard_musr_*` read: `narrative`,
    /// `question`, `choices` (a list), `answer_index`, `answer_choice`.
    Musr,
    /// lm-eval 0.4.9.1 `tasks/leaderboard/math/utils.py::process_docs`: adds `answer`, the
    /// content of the solution's last `\boxed{..}` ([`crate::math::gold_answer`]; the Level 5
    /// filter is the spec's `doc_filter`).
    MathHard,
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
    /// lm-eval `WhitespaceFilter` (`filters/extraction.py`): leading whitespace removed.
    RemoveWhitespace,
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
    /// TruthfulQA MC2 (lm-eval `tasks/truthfulqa/utils.py::process_results_mc2`): the choices
    /// before the first `0` in the labels list `labels_field` are true; the value is the share of
    /// probability (`exp` of the log-likelihoods) on the true choices. lm-eval reports it as `acc`.
    Mc2 {
        /// Dotted path of the 0/1 labels list in the document, e.g. `mc2_targets.labels`.
        labels_field: String,
    },
    /// IFEval (lm-eval `leaderboard/ifeval/utils.py::process_results`, checkers in
    /// [`crate::ifeval`]): the document's instructions checked on the raw generation, giving
    /// `prompt_level_strict_acc`, `inst_level_strict_acc`, `prompt_level_loose_acc` and
    /// `inst_level_loose_acc`. The per-document instruction-level values are fractions; the
    /// runner pools them over instructions (lm-eval `agg_inst_level_acc`), using the per-document
    /// count [`IFEVAL_COUNT_KEY`]. `generate_until` only; filters do not apply.
    Ifeval,
    /// MATH Level 5 (lm-eval 0.4.9.1 `tasks/leaderboard/math/utils.py::process_results`, ported
    /// in [`crate::math`]): the document's `solution` against the raw generation, giving
    /// `exact_match` (math_verify) and `exact_match_original` (the answer after "Final Answer:
    /// The final answer is", Minerva-normalised, equal strings or sympy-equivalent). The symbolic
    /// checks run in one Python subprocess per batch of documents. `generate_until` only, alone
    /// (no other metric, no filters).
    MathHard,
    /// lm-eval `word_perplexity` (`weighted_perplexity`): `exp(-Σ ll / Σ words)`, words counted
    /// as `len(re.split(r"\s+", text))`.
    WordPerplexity,
    /// lm-eval `byte_perplexity`: `exp(-Σ ll / Σ utf-8 bytes)`.
    BytePerplexity,
    /// lm-eval `bits_per_byte`: `-Σ ll / Σ bytes / ln 2`.
    BitsPerByte,
}

impl MetricSpec {
    /// The metric's base name (`acc`, `acc_norm`, `exact_match`).
    pub fn name(&self) -> &'static str {
        match self {
            MetricSpec::Acc => "acc",
            MetricSpec::AccNorm => "acc_norm",
            MetricSpec::ExactMatch { .. } => "exact_match",
            MetricSpec::Mc2 { .. } => "mc2",
            MetricSpec::Ifeval => "ifeval",
            MetricSpec::MathHard => "math_hard",
            MetricSpec::WordPerplexity => "word_perplexity",
            MetricSpec::BytePerplexity => "byte_perplexity",
            MetricSpec::BitsPerByte => "bits_per_byte",
        }
    }

    /// True for the corpus-level perplexity metrics of `loglikelihood_rolling` tasks.
    pub fn is_perplexity(&self) -> bool {
        matches!(
            self,
            MetricSpec::WordPerplexity | MetricSpec::BytePerplexity | MetricSpec::BitsPerByte
        )
    }
}

/// The metric keys of [`MetricSpec::Ifeval`], in lm-eval's order.
pub const IFEVAL_KEYS: [&str; 4] = [
    "prompt_level_strict_acc",
    "inst_level_strict_acc",
    "prompt_level_loose_acc",
    "inst_level_loose_acc",
];

/// The metric keys of [`MetricSpec::MathHard`], in lm-eval 0.4.9.1's order (`exact_match` by
/// math_verify, `exact_match_original` by the normalised answer and sympy).
pub const MATH_KEYS: [&str; 2] = [crate::math::KEY_MATH_VERIFY, crate::math::KEY_ORIGINAL];

/// Per-document metric holding the number of IFEval instructions of the document (the weight of
/// its instruction-level fractions when they are pooled).
pub const IFEVAL_COUNT_KEY: &str = "ifeval_instructions";

/// lm-eval `fewshot_config`: how few-shot examples are chosen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    /// `default` (seeded random, lm-eval's default) or `first_n`.
    #[serde(default)]
    pub sampler: crate::fewshot::SamplerKind,
    /// Seed of the `default` sampler (lm-eval `fewshot_random_seed`, default 1234).
    #[serde(default = "default_fewshot_seed")]
    pub seed: u64,
    /// Literal example documents (lm-eval `fewshot_config.samples`), used instead of
    /// `fewshot_split`; they are templated like data documents but not preprocessed.
    #[serde(default)]
    pub samples: Option<Vec<serde_json::Value>>,
}

fn default_fewshot_seed() -> u64 {
    1234
}

impl Default for FewshotConfig {
    fn default() -> Self {
        FewshotConfig {
            sampler: Default::default(),
            seed: default_fewshot_seed(),
            samples: None,
        }
    }
}

/// Splits one data file into sub-tasks named `<task>:<value>` by a document field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subtasks {
    /// The document field holding the sub-task name (`subject`).
    pub field: String,
    /// All values, in the order `--list-tasks` shows them.
    pub values: Vec<String>,
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
    /// Number of few-shot examples put before each document.
    #[serde(default)]
    pub num_fewshot: usize,
    /// How the examples are chosen (sampler, seed, literal samples).
    #[serde(default)]
    pub fewshot_config: FewshotConfig,
    /// Put after each few-shot example (lm-eval default `"\n\n"`).
    #[serde(default = "default_fewshot_delimiter")]
    pub fewshot_delimiter: String,
    /// Template rendered against each document and put before the examples (lm-eval
    /// `description`); a system message when `chat_template: true`.
    #[serde(default)]
    pub description: Option<String>,
    /// Start of the answer (lm-eval `gen_prefix`, e.g. `The best answer is`): with a chat template
    /// the assistant turn begins with it; few-shot answers are `gen_prefix + " " + target`.
    #[serde(default)]
    pub gen_prefix: Option<String>,
    /// With `chat_template: true`: each few-shot example is a user turn and an assistant turn
    /// (lm-eval `--fewshot_as_multiturn`, the default here); `false` puts the examples and the
    /// question in one user message.
    #[serde(default = "default_true")]
    pub fewshot_as_multiturn: bool,
    /// Winogrande-style partial contexts: `doc_to_text` gives the gold index, each choice is a
    /// context, `doc_to_target` the continuation scored after each.
    #[serde(default)]
    pub multiple_input: bool,
    /// lm-eval's `gold_index_error` rule (`api/task.py::process_results`): a multiple-choice
    /// target text that is neither an index nor one of the choices (three BIG-Bench-Hard
    /// documents) keeps the document, which then scores 0 on `acc` and `acc_norm`. Without it
    /// (the default) such a document is an error naming the task and document.
    #[serde(default)]
    pub allow_unmatched_gold: bool,
    /// Keep only the documents for which this minijinja expression is true, evaluated on the raw
    /// document before `limit` (lm-eval `process_docs` filters, e.g. ARC's 4-choice questions:
    /// `choices.label | length == 4`). Few-shot pools are not filtered.
    #[serde(default)]
    pub doc_filter: Option<String>,
    /// Sub-tasks by a document field (MMLU subjects).
    #[serde(default)]
    pub subtasks: Option<Subtasks>,
    /// The one sub-task value this spec is restricted to (set when the task is named
    /// `<task>:<value>`; `None` runs every document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtask: Option<String>,
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

fn default_fewshot_delimiter() -> String {
    "\n\n".to_string()
}

fn default_true() -> bool {
    true
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
            if matches!(m, MetricSpec::Ifeval) {
                keys.extend(IFEVAL_KEYS.iter().map(|k| k.to_string()));
                continue;
            }
            if matches!(m, MetricSpec::MathHard) {
                keys.extend(MATH_KEYS.iter().map(|k| k.to_string()));
                continue;
            }
            match self.output_type {
                OutputType::MultipleChoice | OutputType::LoglikelihoodRolling => {
                    keys.push(m.name().to_string())
                }
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
        if self.num_fewshot > 0
            && self.fewshot_split.is_none()
            && self.fewshot_config.samples.is_none()
        {
            bail!(
                "task `{}`: num_fewshot {} needs `fewshot_split` (a data file) or \
                 `fewshot_config.samples`",
                self.task,
                self.num_fewshot
            );
        }
        if let Some(samples) = &self.fewshot_config.samples {
            if samples.len() < self.num_fewshot {
                bail!(
                    "task `{}`: fewshot_config.samples has {} documents, num_fewshot is {}",
                    self.task,
                    samples.len(),
                    self.num_fewshot
                );
            }
            if let Some(i) = samples.iter().position(|d| !d.is_object()) {
                bail!(
                    "task `{}`: fewshot_config.samples[{i}] is not a mapping",
                    self.task
                );
            }
        }
        if self.multiple_input
            && (self.output_type != OutputType::MultipleChoice || self.chat_template)
        {
            bail!(
                "task `{}`: multiple_input needs output_type multiple_choice without chat_template",
                self.task
            );
        }
        if self.gen_prefix.is_some() && self.output_type != OutputType::GenerateUntil {
            bail!(
                "task `{}`: gen_prefix applies only to generate_until",
                self.task
            );
        }
        if let Some(st) = &self.subtasks {
            if st.values.is_empty() || st.field.trim().is_empty() {
                bail!(
                    "task `{}`: subtasks needs a `field` and at least one value",
                    self.task
                );
            }
        }
        if let Some(v) = &self.subtask {
            match &self.subtasks {
                Some(st) if st.values.contains(v) => {}
                Some(_) => bail!(
                    "task `{}`: unknown sub-task `{v}` (see --list-tasks)",
                    self.task
                ),
                None => bail!("task `{}` has no sub-tasks (asked for `{v}`)", self.task),
            }
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
                    if matches!(
                        m,
                        MetricSpec::ExactMatch { .. } | MetricSpec::Ifeval | MetricSpec::MathHard
                    ) || m.is_perplexity()
                    {
                        bail!(
                            "task `{}`: metric {} does not apply to multiple_choice",
                            self.task,
                            m.name()
                        );
                    }
                }
            }
            OutputType::LoglikelihoodRolling => {
                if let Some(m) = self.metrics.iter().find(|m| !m.is_perplexity()) {
                    bail!(
                        "task `{}`: metric {} does not apply to loglikelihood_rolling \
                         (word_perplexity, byte_perplexity, bits_per_byte do)",
                        self.task,
                        m.name()
                    );
                }
                if self.num_fewshot > 0 || self.chat_template || !self.filters.is_empty() {
                    bail!(
                        "task `{}`: loglikelihood_rolling takes no few-shot examples, chat \
                         template or filters",
                        self.task
                    );
                }
            }
            OutputType::GenerateUntil => {
                if self.metrics.contains(&MetricSpec::Ifeval) && !self.filters.is_empty() {
                    bail!("task `{}`: the ifeval metric takes no filters", self.task);
                }
                if self.metrics.contains(&MetricSpec::MathHard)
                    && (self.metrics.len() > 1 || !self.filters.is_empty())
                {
                    bail!(
                        "task `{}`: the math_hard metric takes no filters and no other metric",
                        self.task
                    );
                }
                for m in &self.metrics {
                    if !matches!(
                        m,
                        MetricSpec::ExactMatch { .. } | MetricSpec::Ifeval | MetricSpec::MathHard
                    ) {
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
