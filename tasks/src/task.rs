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

use crate::dataset::{load_jsonl, load_task_records};
use crate::fewshot::Sampler;
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
    /// A multiple-choice target text that is none of the choices (only with
    /// `allow_unmatched_gold`): every prediction is wrong, as lm-eval's gold index -100.
    /// Serialized as `{"unmatched": text}`.
    Unmatched {
        /// The target text.
        unmatched: String,
    },
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
    /// The few-shot examples put before this document, in prompt order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fewshot: Vec<FewshotExample>,
    /// `description` rendered for this document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `multiple_input` tasks: the continuation scored after each choice (`doc_to_target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

/// One few-shot example as it appears in the prompt (lm-eval `get_context` /
/// `get_chat_context`): the question text and the answer text (with `gen_prefix`, if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewshotExample {
    /// Position of the example in its pool (few-shot file or literal samples).
    pub pool_index: usize,
    /// `doc_to_text` of the example (the gold choice for `multiple_input` tasks).
    pub question: String,
    /// The gold answer text: the gold choice, the target text, or the continuation.
    pub answer: String,
}

/// One chat message of a prompt (role `system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// Role.
    pub role: String,
    /// Text.
    pub content: String,
}

/// Corpus-level perplexities (lm-eval `weighted_perplexity` and `bits_per_byte` aggregations).
pub fn perplexities(spec: &TaskSpec, items: &[(f64, usize, usize)]) -> BTreeMap<String, f64> {
    let ll: f64 = crate::metrics::py_sum(&items.iter().map(|x| x.0).collect::<Vec<_>>());
    let words: usize = items.iter().map(|x| x.1).sum();
    let bytes: usize = items.iter().map(|x| x.2).sum();
    let mut out = BTreeMap::new();
    for m in &spec.metrics {
        let v = match m {
            MetricSpec::WordPerplexity => (-ll / words as f64).exp(),
            MetricSpec::BytePerplexity => (-ll / bytes as f64).exp(),
            MetricSpec::BitsPerByte => -ll / bytes as f64 / std::f64::consts::LN_2,
            _ => continue,
        };
        out.insert(m.name().to_string(), v);
    }
    out
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
        let description = spec.description.clone().unwrap_or_default();
        for (name, src) in [
            ("doc_to_text", &spec.doc_to_text),
            ("doc_to_target", &spec.doc_to_target),
            ("description", &description),
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

    /// Load the first `limit` documents from `data_dir` (of the selected sub-task, if any) and
    /// apply `preprocess`.
    pub fn load_docs(&self, data_dir: &Path, limit: Option<usize>) -> Result<Vec<Value>> {
        let task = &self.spec.task;
        let raw = if self.subtask_filter().is_none() && self.spec.doc_filter.is_none() {
            load_task_records(&self.spec, data_dir, limit)?
        } else {
            let expr = match &self.spec.doc_filter {
                Some(e) => Some(
                    self.env
                        .compile_expression(e)
                        .with_context(|| format!("task `{task}`: bad doc_filter {e:?}"))?,
                ),
                None => None,
            };
            let mut kept = Vec::new();
            for (i, d) in load_task_records(&self.spec, data_dir, None)?
                .into_iter()
                .enumerate()
            {
                if limit.is_some_and(|n| kept.len() >= n) {
                    break;
                }
                if let Some((field, value)) = self.subtask_filter() {
                    if field_str(&d, field).as_deref() != Some(value) {
                        continue;
                    }
                }
                if let Some(x) = &expr {
                    let keep = x
                        .eval(JValue::from_serialize(&d))
                        .map_err(|e| anyhow!("task `{task}`: doc_filter on record {i}: {e:#}"))?;
                    if !keep.is_true() {
                        continue;
                    }
                }
                kept.push(d);
            }
            if kept.is_empty() {
                bail!(
                    "task `{task}`: no document of {} passes the sub-task / doc_filter selection",
                    self.spec.data_path(data_dir).display()
                );
            }
            kept
        };
        let mut docs = self.preprocess_all(raw, "doc")?;
        // a transform may make several documents of one record (MuSR): `limit` counts documents
        if let Some(n) = limit {
            docs.truncate(n);
        }
        Ok(docs)
    }

    fn preprocess_all(&self, raw: Vec<Value>, what: &str) -> Result<Vec<Value>> {
        match self.spec.preprocess {
            None => Ok(raw),
            Some(kind) => crate::preprocess::apply_all(kind, &raw)
                .with_context(|| format!("task `{}`: preprocess of the {what}s", self.spec.task)),
        }
    }

    /// `(field, value)` when the spec is restricted to one sub-task.
    fn subtask_filter(&self) -> Option<(&str, &str)> {
        match (&self.spec.subtasks, &self.spec.subtask) {
            (Some(st), Some(v)) => Some((st.field.as_str(), v.as_str())),
            _ => None,
        }
    }

    /// Load, preprocess and prepare the first `limit` documents, with their few-shot examples.
    pub fn load_prepared(&self, data_dir: &Path, limit: Option<usize>) -> Result<Vec<PreparedDoc>> {
        let docs = self.load_docs(data_dir, limit)?;
        let mut docs = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| self.prepare(i, d))
            .collect::<Result<Vec<_>>>()?;
        self.attach_fewshot(&mut docs, data_dir)?;
        Ok(docs)
    }

    /// The few-shot pool: literal `fewshot_config.samples` (not preprocessed) or the documents of
    /// `fewshot_split` (preprocessed), prepared.
    fn fewshot_pool(&self, data_dir: &Path) -> Result<Vec<PreparedDoc>> {
        let task = &self.spec.task;
        let raw = if let Some(samples) = &self.spec.fewshot_config.samples {
            samples.clone()
        } else {
            let file = self.spec.fewshot_split.as_deref().unwrap_or_default();
            let path = data_dir.join(file);
            if !path.is_file() {
                let full = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
                bail!(
                    "task `{task}`: few-shot data file {} not found (fewshot_split {file}); pass \
                     --data-dir <folder that holds {file}>",
                    full.display()
                );
            }
            let raw = load_jsonl(&path, None)
                .with_context(|| format!("task `{task}`: loading few-shot data"))?;
            self.preprocess_all(raw, "few-shot doc")?
        };
        raw.into_iter()
            .enumerate()
            .map(|(i, d)| {
                self.prepare(i, d)
                    .with_context(|| format!("task `{task}`: few-shot example {i}"))
            })
            .collect()
    }

    /// The prompt text of a prepared example's answer (lm-eval `get_context`: the gold choice for
    /// multiple choice, the target text for generation, the continuation for multiple input),
    /// after `gen_prefix` and a space when the task has one.
    fn example_answer(&self, ex: &PreparedDoc) -> String {
        let answer = match (&ex.continuation, &ex.target) {
            (Some(c), _) => c.clone(),
            (None, Target::Index(i)) => ex.choices[*i].clone(),
            (None, Target::Text(t)) | (None, Target::Unmatched { unmatched: t }) => t.clone(),
        };
        match &self.spec.gen_prefix {
            Some(p) if !p.is_empty() => format!("{p} {answer}"),
            _ => answer,
        }
    }

    /// Choose and render the few-shot examples of each document, in document order (one sampler
    /// per sub-task value, as lm-eval has one per sub-task).
    pub fn attach_fewshot(&self, docs: &mut [PreparedDoc], data_dir: &Path) -> Result<()> {
        let n = self.spec.num_fewshot;
        if n == 0 {
            return Ok(());
        }
        let task = &self.spec.task;
        let pool = self.fewshot_pool(data_dir)?;
        let same_split = self.spec.fewshot_config.samples.is_none()
            && self.spec.fewshot_split.as_deref() == Some(self.spec.dataset.as_str());
        let group_field = self.spec.subtasks.as_ref().map(|s| s.field.as_str());
        let group_of = |d: &Value| {
            group_field
                .and_then(|f| field_str(d, f))
                .unwrap_or_default()
        };
        let mut groups: BTreeMap<String, (Vec<usize>, Sampler)> = BTreeMap::new();
        for (i, ex) in pool.iter().enumerate() {
            groups
                .entry(group_of(&ex.doc))
                .or_insert_with(|| {
                    (
                        Vec::new(),
                        Sampler::new(
                            self.spec.fewshot_config.sampler,
                            self.spec.fewshot_config.seed,
                        ),
                    )
                })
                .0
                .push(i);
        }
        for doc in docs.iter_mut() {
            let g = group_of(&doc.doc);
            let Some((members, sampler)) = groups.get_mut(&g) else {
                bail!(
                    "task `{task}` doc {}: no few-shot examples with {} = {g:?}",
                    doc.doc_id,
                    group_field.unwrap_or_default()
                );
            };
            let picked = sampler
                .pick(
                    members.len(),
                    |k| pool[members[k]].doc == doc.doc,
                    n,
                    same_split,
                )
                .map_err(|e| anyhow!("task `{task}` doc {}: {e}", doc.doc_id))?;
            doc.fewshot = picked
                .into_iter()
                .map(|k| {
                    let ex = &pool[members[k]];
                    FewshotExample {
                        pool_index: members[k],
                        question: ex.text.clone(),
                        answer: self.example_answer(ex),
                    }
                })
                .collect();
        }
        Ok(())
    }

    /// The plain-text prompt before the document's own question: `description`, then each
    /// example as `question + target_delimiter + answer + fewshot_delimiter` (lm-eval).
    pub fn plain_prefix(&self, doc: &PreparedDoc) -> String {
        let mut out = doc.description.clone().unwrap_or_default();
        for ex in &doc.fewshot {
            out.push_str(&ex.question);
            out.push_str(&self.spec.target_delimiter);
            out.push_str(&ex.answer);
            out.push_str(&self.spec.fewshot_delimiter);
        }
        out
    }

    /// The whole plain-text prompt of a document: [`Task::plain_prefix`], its question, and for
    /// generation with `gen_prefix` the delimiter (when neither side has whitespace there) and
    /// the prefix. For `multiple_input` tasks this is the shared prefix only (each choice is then
    /// appended by [`Task::requests`]).
    pub fn plain_context(&self, doc: &PreparedDoc) -> String {
        let mut out = self.plain_prefix(doc);
        if self.spec.multiple_input {
            return out;
        }
        out.push_str(&doc.text);
        if let Some(p) = self.spec.gen_prefix.as_deref().filter(|p| !p.is_empty()) {
            let ends_space = doc.text.chars().last().is_some_and(char::is_whitespace);
            let starts_space = p.chars().next().is_some_and(char::is_whitespace);
            if !ends_space && !starts_space {
                out.push_str(&self.spec.target_delimiter);
            }
            out.push_str(p);
        }
        out
    }

    /// The chat messages of a document (`chat_template: true`): `description` as a system
    /// message, then the examples as user/assistant turns (or, without `fewshot_as_multiturn`,
    /// together with the question in one user message), then the question. The caller renders
    /// them with the model's template and appends `gen_prefix`.
    pub fn chat_messages(&self, doc: &PreparedDoc) -> Vec<PromptMessage> {
        let msg = |role: &str, content: String| PromptMessage {
            role: role.to_string(),
            content,
        };
        let mut out = Vec::new();
        if let Some(d) = doc.description.as_ref().filter(|d| !d.is_empty()) {
            out.push(msg("system", d.clone()));
        }
        if self.spec.fewshot_as_multiturn {
            for ex in &doc.fewshot {
                out.push(msg("user", ex.question.clone()));
                out.push(msg("assistant", ex.answer.clone()));
            }
            out.push(msg("user", doc.text.clone()));
        } else {
            let mut text = String::new();
            for ex in &doc.fewshot {
                text.push_str(&ex.question);
                text.push_str(&self.spec.target_delimiter);
                text.push_str(&ex.answer);
                text.push_str(&self.spec.fewshot_delimiter);
            }
            text.push_str(&doc.text);
            out.push(msg("user", text));
        }
        out
    }

    /// The `(context, continuation)` log-likelihood requests of a multiple-choice document given
    /// its rendered context (lm-eval `construct_requests`): `(ctx, target_delimiter + choice)` per
    /// choice, or for `multiple_input` `(ctx + choice, target_delimiter + continuation)`.
    pub fn requests(&self, doc: &PreparedDoc, ctx: &str) -> Vec<(String, String)> {
        match &doc.continuation {
            Some(cont) if self.spec.multiple_input => doc
                .choices
                .iter()
                .map(|c| {
                    (
                        format!("{ctx}{c}"),
                        format!("{}{cont}", self.spec.target_delimiter),
                    )
                })
                .collect(),
            _ => self
                .continuations(doc)
                .into_iter()
                .map(|c| (ctx.to_string(), c))
                .collect(),
        }
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
        let mut text = self
            .eval_field("doc_to_text", &self.spec.doc_to_text, &ctx)
            .map(|v| value_to_string(&v))
            .map_err(|e| anyhow!("task `{task}` doc {doc_id}: doc_to_text: {e:#}"))?;
        let description = match &self.spec.description {
            None => None,
            Some(_) => Some(
                self.env
                    .get_template("description")
                    .and_then(|t| t.render(&ctx))
                    .map_err(|e| anyhow!("task `{task}` doc {doc_id}: description: {e:#}"))?,
            ),
        };
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
        let mut continuation = None;
        let target = match self.spec.output_type {
            OutputType::MultipleChoice if self.spec.multiple_input => {
                let gold = text
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < choices.len());
                let Some(gold) = gold else {
                    bail!(
                        "task `{task}` doc {doc_id}: multiple_input needs doc_to_text to give a \
                         choice index, got {text:?} ({} choices)",
                        choices.len()
                    );
                };
                continuation = Some(value_to_string(&tv));
                text = choices[gold].clone();
                Target::Index(gold)
            }
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
                    None if self.spec.allow_unmatched_gold => Target::Unmatched {
                        unmatched: value_to_string(&tv),
                    },
                    _ => bail!(
                        "task `{task}` doc {doc_id}: target {tv} is not a valid choice index \
                         (there are {} choices)",
                        choices.len()
                    ),
                }
            }
            OutputType::GenerateUntil | OutputType::LoglikelihoodRolling => {
                Target::Text(value_to_string(&tv))
            }
        };
        Ok(PreparedDoc {
            doc_id,
            doc,
            text,
            choices,
            target,
            fewshot: Vec::new(),
            description,
            continuation,
        })
    }

    /// The continuation of each choice: `target_delimiter + choice` (lm-eval
    /// `construct_requests` for `multiple_choice`); see [`Task::requests`] for the pairs with
    /// their contexts.
    pub fn continuations(&self, doc: &PreparedDoc) -> Vec<String> {
        doc.choices
            .iter()
            .map(|c| format!("{}{}", self.spec.target_delimiter, c))
            .collect()
    }

    /// Score one multiple-choice document from its per-choice log-likelihoods: `acc` and/or
    /// `acc_norm` as the spec lists them.
    pub fn score_choices(&self, doc: &PreparedDoc, lls: &[f64]) -> Result<BTreeMap<String, f64>> {
        let gold = match doc.target {
            Target::Index(gold) => gold,
            // lm-eval's gold index -100: no prediction equals it
            Target::Unmatched { .. } => usize::MAX,
            Target::Text(_) => {
                bail!("task `{}`: not a multiple-choice document", self.spec.task)
            }
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
                MetricSpec::Mc2 { labels_field } => {
                    let labels = self.mc2_labels(doc, labels_field)?;
                    out.insert("mc2".to_string(), crate::metrics::mc2(lls, &labels))
                }
                _ => None,
            };
        }
        Ok(out)
    }

    /// The 0/1 labels list of a TruthfulQA MC2 document, one per choice, with a `0` somewhere.
    fn mc2_labels(&self, doc: &PreparedDoc, field: &str) -> Result<Vec<i64>> {
        let task = &self.spec.task;
        let mut v = &doc.doc;
        for part in field.split('.') {
            v = v.get(part).ok_or_else(|| {
                anyhow!(
                    "task `{task}` doc {}: mc2 labels field `{field}` is missing",
                    doc.doc_id
                )
            })?;
        }
        let labels: Vec<i64> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        if labels.len() != doc.choices.len() || !labels.contains(&0) {
            bail!(
                "task `{task}` doc {}: `{field}` must be one 0/1 label per choice with a 0 \
                 ({} labels, {} choices)",
                doc.doc_id,
                labels.len(),
                doc.choices.len()
            );
        }
        Ok(labels)
    }

    /// Score the generations of several documents, one per document (what the runner calls):
    /// [`Task::score_generation`] for each, except for the `math_hard` metric, whose symbolic
    /// checks for all the documents go to one Python subprocess ([`crate::math::judge`]).
    pub fn score_generations(
        &self,
        docs: &[PreparedDoc],
        generations: &[String],
    ) -> Result<Vec<GenerationScores>> {
        let task = &self.spec.task;
        if docs.len() != generations.len() {
            bail!(
                "task `{task}`: {} generations for {} documents",
                generations.len(),
                docs.len()
            );
        }
        if !self.spec.metrics.contains(&MetricSpec::MathHard) {
            return docs
                .iter()
                .zip(generations)
                .map(|(d, g)| self.score_generation(d, g))
                .collect();
        }
        let cases = docs
            .iter()
            .zip(generations)
            .map(|(d, g)| {
                let solution = d
                    .doc
                    .get("solution")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        anyhow!(
                            "task `{task}` doc {}: field `solution` is missing or not a string",
                            d.doc_id
                        )
                    })?;
                Ok(crate::math::MathCase {
                    generation: g.clone(),
                    solution: solution.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let verdicts = crate::math::judge(&cases).with_context(|| format!("task `{task}`"))?;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        Ok(verdicts
            .into_iter()
            .map(|v| GenerationScores {
                filtered: BTreeMap::from([("none".to_string(), v.answer)]),
                metrics: BTreeMap::from([
                    (
                        crate::math::KEY_MATH_VERIFY.to_string(),
                        flag(v.math_verify),
                    ),
                    (crate::math::KEY_ORIGINAL.to_string(), flag(v.original)),
                ]),
            })
            .collect())
    }

    /// Score one generation: each filter pipeline extracts an answer, each metric compares it to
    /// the target (lm-eval `process_results` per filter). A `math_hard` task starts one Python
    /// subprocess per call: score many documents with [`Task::score_generations`].
    pub fn score_generation(
        &self,
        doc: &PreparedDoc,
        generation: &str,
    ) -> Result<GenerationScores> {
        let Target::Text(reference) = &doc.target else {
            bail!("task `{}`: not a generation document", self.spec.task);
        };
        if self.spec.metrics.contains(&MetricSpec::MathHard) {
            let mut v = self.score_generations(
                std::slice::from_ref(doc),
                std::slice::from_ref(&generation.to_string()),
            )?;
            return Ok(v.remove(0));
        }
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
        if self.spec.metrics.contains(&MetricSpec::Ifeval) {
            let r = crate::ifeval::score_doc(&doc.doc, generation)
                .with_context(|| format!("task `{}` doc {}: ifeval", self.spec.task, doc.doc_id))?;
            let n = r.strict.len();
            let frac = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / n.max(1) as f64;
            let all = |v: &[bool]| if v.iter().all(|&b| b) { 1.0 } else { 0.0 };
            let [ps, is, pl, il] = crate::spec::IFEVAL_KEYS;
            metrics.insert(ps.to_string(), all(&r.strict));
            metrics.insert(is.to_string(), frac(&r.strict));
            metrics.insert(pl.to_string(), all(&r.loose));
            metrics.insert(il.to_string(), frac(&r.loose));
            metrics.insert(crate::spec::IFEVAL_COUNT_KEY.to_string(), n as f64);
        }
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

/// A document field as a string (strings as they are, other values in JSON form).
fn field_str(doc: &Value, field: &str) -> Option<String> {
    match doc.get(field)? {
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}
