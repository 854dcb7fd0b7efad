//! A compiled task: templates, filters and metrics ready to turn documents into requests and
//! responses into scores (lm-eval `ConfigurableTask`: `doc_to_text`, `doc_to_target`,
//! `doc_to_choice`, `construct_requests`, `process_results`).
//!
//! Templates are rendered with minijinja configured like lm-eval's Jinja2 environment
//! (`lm_eval/utils.py`: `StrictUndefined`, `keep_trailing_newline=True`, a `regex_replace`
//! filter), plus the Python string methods of `minijinja_contrib::pycompat` and `list.index`.
//! A template that is a bare field name (`choices`, `choices.text`) is evaluated as an expression,
//! so it yields the field's value itself, as lm-eval does for a `doc_to_*` that names a feature.

use anyhow::{anyhow, bail, Context, Result};
use minijinja::value::{Value as JValue, ValueKind};
use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use crate::dataset::load_task_records;
use crate::filters::Filter;
use crate::metrics::{score_choices, ExactMatch};
use crate::spec::{DocToChoice, MetricSpec, OutputType, TaskSpec};

/// The gold answer of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    /// Index into the choices (multiple choice).
    Index(usize),
    /// Reference text (generation).
    Text(String),
}

/// One document made ready for requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedDoc {
    /// Position in the data file (lm-eval `doc_id`).
    pub doc_id: usize,
    /// The document after `preprocess`.
    pub doc: Value,
    /// `doc_to_text` (before any chat template).
    pub text: String,
    /// `doc_to_choice` (empty for generation tasks).
    pub choices: Vec<String>,
    /// `doc_to_target`.
    pub target: Target,
}

/// Scores of one generation: the answer each filter extracted and the metric values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationScores {
    /// Filter name -> extracted answer (key `none` when the task has no filters).
    pub filtered: BTreeMap<String, String>,
    /// Metric key (`exact_match,strict-match`) -> 0.0 / 1.0.
    pub metrics: BTreeMap<String, f64>,
}

/// A task spec compiled for use.
pub struct Task {
    /// The spec it was built from.
    pub spec: TaskSpec,
    env: Environment<'static>,
    filters: Vec<Filter>,
    exact_match: Vec<ExactMatch>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("spec", &self.spec).finish()
    }
}

/// The template environment lm-eval's `apply_template` uses, in minijinja.
pub fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_unknown_method_callback(|state, value, method, args| {
        if method == "index" && value.kind() == ValueKind::Seq {
            let [needle] = args else {
                return Err(JError::new(
                    ErrorKind::InvalidOperation,
                    "list.index takes one argument",
                ));
            };
            for (i, item) in value.try_iter()?.enumerate() {
                if &item == needle {
                    return Ok(JValue::from(i));
                }
            }
            return Err(JError::new(
                ErrorKind::InvalidOperation,
                format!("{needle} is not in list"),
            ));
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env.add_filter(
        "regex_replace",
        |s: String, pattern: String, repl: String| -> Result<String, JError> {
            let re = regex::Regex::new(&pattern)
                .map_err(|e| JError::new(ErrorKind::InvalidOperation, e.to_string()))?;
            Ok(re.replace_all(&s, repl.as_str()).into_owned())
        },
    );
    env
}

/// True for a bare (dotted) field name such as `choices` or `choices.text`.
fn is_field_path(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut cs = part.chars();
            matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `{{ expr }}` with nothing around it -> `expr`.
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(
        inner
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim(),
    )
}

/// Python `str(value)` for the JSON-ish values documents hold.
fn value_to_string(v: &JValue) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    }
}

impl Task {
    /// Compile a spec (templates, filters, metric options).
    pub fn new(spec: TaskSpec) -> Result<Task> {
        spec.validate()?;
        let mut env = template_env();
        for (name, src) in [
            ("doc_to_text", &spec.doc_to_text),
            ("doc_to_target", &spec.doc_to_target),
        ] {
            env.add_template_owned(name, src.clone())
                .with_context(|| format!("task `{}`: bad {name} template", spec.task))?;
        }
        if let Some(DocToChoice::Expr(e)) = &spec.doc_to_choice {
            let expr = single_expression(e).unwrap_or(e);
            env.compile_expression(expr)
                .with_context(|| format!("task `{}`: bad doc_to_choice {e:?}", spec.task))?;
        }
        let filters = spec
            .filters
            .iter()
            .map(|f| Filter::new(f).with_context(|| format!("task `{}`", spec.task)))
            .collect::<Result<Vec<_>>>()?;
        let mut exact_match = Vec::new();
        for m in &spec.metrics {
            if let MetricSpec::ExactMatch {
                ignore_case,
                ignore_punctuation,
                regexes_to_ignore,
            } = m
            {
                exact_match.push(ExactMatch::new(
                    regexes_to_ignore,
                    *ignore_case,
                    *ignore_punctuation,
                )?);
            }
        }
        Ok(Task {
            spec,
            env,
            filters,
            exact_match,
        })
    }

    /// Task name.
    pub fn name(&self) -> &str {
        &self.spec.task
    }

    /// Load the first `limit` documents from `data_dir` and apply `preprocess`.
    pub fn load_docs(&self, data_dir: &Path, limit: Option<usize>) -> Result<Vec<Value>> {
        let raw = load_task_records(&self.spec, data_dir, limit)?;
        match self.spec.preprocess {
            None => Ok(raw),
            Some(kind) => raw
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    crate::preprocess::apply(kind, d).with_context(|| {
                        format!("task `{}`: preprocess of doc {i}", self.spec.task)
                    })
                })
                .collect(),
        }
    }

    /// Load, preprocess and prepare the first `limit` documents.
    pub fn load_prepared(&self, data_dir: &Path, limit: Option<usize>) -> Result<Vec<PreparedDoc>> {
        let docs = self.load_docs(data_dir, limit)?;
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| self.prepare(i, d))
            .collect()
    }

    /// Evaluate a `doc_to_*` field: a bare field name yields the value, anything else is
    /// rendered as a template (string).
    fn eval_field(&self, template_name: &str, src: &str, ctx: &JValue) -> Result<JValue> {
        if is_field_path(src) {
            let expr = self.env.compile_expression(src.trim())?;
            Ok(expr.eval(ctx)?)
        } else {
            let tmpl = self.env.get_template(template_name)?;
            Ok(JValue::from(tmpl.render(ctx)?))
        }
    }

    /// Build the prompt text, choices and target of one (preprocessed) document.
    pub fn prepare(&self, doc_id: usize, doc: Value) -> Result<PreparedDoc> {
        let task = &self.spec.task;
        let ctx = JValue::from_serialize(&doc);
        let text = self
            .eval_field("doc_to_text", &self.spec.doc_to_text, &ctx)
            .map(|v| value_to_string(&v))
            .map_err(|e| anyhow!("task `{task}` doc {doc_id}: doc_to_text: {e:#}"))?;
        let choices = match &self.spec.doc_to_choice {
            None => Vec::new(),
            Some(DocToChoice::List(l)) => l.clone(),
            Some(DocToChoice::Expr(e)) => {
                let expr = single_expression(e).unwrap_or(e);
                let v = self
                    .env
                    .compile_expression(expr)
                    .and_then(|x| x.eval(&ctx))
                    .map_err(|err| anyhow!("task `{task}` doc {doc_id}: doc_to_choice: {err:#}"))?;
                if v.kind() != ValueKind::Seq {
                    bail!("task `{task}` doc {doc_id}: doc_to_choice {e:?} gave {v}, not a list");
                }
                v.try_iter()
                    .map_err(|err| anyhow!("task `{task}` doc {doc_id}: {err}"))?
                    .map(|c| value_to_string(&c))
                    .collect()
            }
        };
        let tv = self
            .eval_field("doc_to_target", &self.spec.doc_to_target, &ctx)
            .map_err(|e| anyhow!("task `{task}` doc {doc_id}: doc_to_target: {e:#}"))?;
        let target = match self.spec.output_type {
            OutputType::MultipleChoice => {
                let idx = if let Some(i) = tv.as_i64() {
                    usize::try_from(i).ok()
                } else {
                    let s = value_to_string(&tv);
                    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                        s.parse().ok()
                    } else {
                        choices.iter().position(|c| *c == s)
                    }
                };
                match idx {
                    Some(i) if i < choices.len() => Target::Index(i),
                    _ => bail!(
                        "task `{task}` doc {doc_id}: target {tv} is not a valid choice index \
                         (there are {} choices)",
                        choices.len()
                    ),
                }
            }
            OutputType::GenerateUntil => Target::Text(value_to_string(&tv)),
        };
        Ok(PreparedDoc {
            doc_id,
            doc,
            text,
            choices,
            target,
        })
    }

    /// The continuation of each choice: `target_delimiter + choice` (lm-eval
    /// `construct_requests` for `multiple_choice`). The context is the prompt itself (no
    /// few-shot examples yet).
    pub fn continuations(&self, doc: &PreparedDoc) -> Vec<String> {
        doc.choices
            .iter()
            .map(|c| format!("{}{}", self.spec.target_delimiter, c))
            .collect()
    }

    /// Score one multiple-choice document from its per-choice log-likelihoods: `acc` and/or
    /// `acc_norm` as the spec lists them.
    pub fn score_choices(&self, doc: &PreparedDoc, lls: &[f64]) -> Result<BTreeMap<String, f64>> {
        let Target::Index(gold) = doc.target else {
            bail!("task `{}`: not a multiple-choice document", self.spec.task);
        };
        if lls.len() != doc.choices.len() {
            bail!(
                "task `{}` doc {}: {} log-likelihoods for {} choices",
                self.spec.task,
                doc.doc_id,
                lls.len(),
                doc.choices.len()
            );
        }
        let s = score_choices(lls, &doc.choices, gold);
        let mut out = BTreeMap::new();
        for m in &self.spec.metrics {
            match m {
                MetricSpec::Acc => out.insert("acc".to_string(), s.acc),
                MetricSpec::AccNorm => out.insert("acc_norm".to_string(), s.acc_norm),
                MetricSpec::ExactMatch { .. } => None,
            };
        }
        Ok(out)
    }

    /// Score one generation: each filter pipeline extracts an answer, each metric compares it to
    /// the target (lm-eval `process_results` per filter).
    pub fn score_generation(
        &self,
        doc: &PreparedDoc,
        generation: &str,
    ) -> Result<GenerationScores> {
        let Target::Text(reference) = &doc.target else {
            bail!("task `{}`: not a generation document", self.spec.task);
        };
        let responses = vec![generation.to_string()];
        let answers: Vec<(Option<String>, String)> = if self.filters.is_empty() {
            vec![(None, generation.to_string())]
        } else {
            self.filters
                .iter()
                .map(|f| (Some(f.name.clone()), f.apply(&responses)))
                .collect()
        };
        let mut filtered = BTreeMap::new();
        let mut metrics = BTreeMap::new();
        for (name, answer) in &answers {
            filtered.insert(
                name.clone().unwrap_or_else(|| "none".to_string()),
                answer.clone(),
            );
            for em in &self.exact_match {
                let key = match name {
                    Some(n) => format!("exact_match,{n}"),
                    None => "exact_match".to_string(),
                };
                metrics.insert(key, em.score(answer, reference));
            }
        }
        Ok(GenerationScores { filtered, metrics })
    }
}
