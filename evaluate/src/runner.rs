//! The evaluation runner: task specs -> backend requests -> per-document scores -> the run folder
//! (`samples_<task>.jsonl` per task, then `results.json`).
//!
//! Per task, as lm-evaluation-harness's `evaluator.evaluate` does for one task: documents are
//! loaded (first `limit`), each becomes requests (`multiple_choice`: one log-likelihood per
//! choice, `generate_until`: one generation), identical log-likelihood requests are sent once,
//! per-document metrics come from `quantlab_tasks::Task`, and each metric is aggregated with
//! `mean` and `mean_stderr` (`lm_eval/api/metrics.py`).

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quantlab_tasks::{OutputType, PreparedDoc, Target, Task, TaskSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backend::{Backend, ChatMessage, GenerateRequest, LoglikelihoodRequest};
use crate::results::{MetricValue, ModelInfo, RunResults, TaskResult};

/// What to evaluate and where to write it.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder the task data files are under (see `quantlab_tasks::default_data_dir`).
    pub data_dir: PathBuf,
    /// Evaluate only the first N documents of each task.
    pub limit: Option<usize>,
    /// The run folder (created if missing); its name is the run id.
    pub out_dir: PathBuf,
    /// The evaluated model.
    pub model: ModelInfo,
    /// Suite name, or `custom`.
    pub suite: String,
}

/// One choice of a multiple-choice document in `samples_<task>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// The continuation scored (target delimiter + choice).
    pub continuation: String,
    /// Its summed log-probability.
    pub loglikelihood: f64,
    /// Whether it was the greedy continuation.
    pub is_greedy: bool,
    /// The context of this choice when it is not the document's (`multiple_input` tasks such as
    /// Winogrande: the shared prefix followed by the choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// A `loglikelihood_rolling` document's raw figures (lm-eval's per-document `(ll, count)` pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingRecord {
    /// Summed log-likelihood of the whole text over its rolling windows.
    pub loglikelihood: f64,
    /// Words (`len(re.split(r"\s+", text))`).
    pub words: usize,
    /// UTF-8 bytes.
    pub bytes: usize,
}

/// One line of `samples_<task>.jsonl`: everything needed to re-score or audit one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Task name.
    pub task: String,
    /// Position of the document in the data file.
    pub doc_id: usize,
    /// The document after preprocessing.
    pub doc: serde_json::Value,
    /// The prompt as sent to the backend (after the chat template, if any).
    pub context: String,
    /// Gold answer: choice index or reference text.
    pub target: Target,
    /// Multiple choice: one entry per choice, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<ChoiceRecord>>,
    /// Generation: the raw generated text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// Generation: filter name -> extracted answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered: Option<BTreeMap<String, String>>,
    /// `loglikelihood_rolling`: the document's log-likelihood, words and bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingRecord>,
    /// Pool positions of the few-shot examples in the prompt (their text is in `context`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fewshot_ids: Vec<usize>,
    /// Metric key -> this document's value.
    pub metrics: BTreeMap<String, f64>,
}

/// Read a `samples_<task>.jsonl` file back.
pub fn read_samples(path: &Path) -> Result<Vec<SampleRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Read a run's `results.json`.
pub fn read_results(path: &Path) -> Result<RunResults> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Write `bytes` to `path` atomically: `path.tmp` first, then rename over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// `[A-Za-z0-9._-]` kept, anything else `_`; the last path component of a model path; at most
/// 64 characters; `model` if nothing is left.
fn sanitize_model_name(name: &str) -> String {
    let base = name
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name);
    let s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let s = s.trim_matches(['.', '_']).to_string();
    if s.is_empty() {
        "model".to_string()
    } else {
        s
    }
}

/// Create and return a new, unique run folder `<runs_root>/<UTC yyyymmdd-HHMMSS>-<model>`
/// (`-2`, `-3`, ... appended if that name is taken). `model_name` is sanitized: its last path
/// component, characters outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn new_run_dir(runs_root: &Path, model_name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(runs_root)
        .with_context(|| format!("creating {}", runs_root.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let base = format!("{stamp}-{}", sanitize_model_name(model_name));
    for i in 1.. {
        let name = if i == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let dir = runs_root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!()
}

fn progress_bar(len: usize, task: &str, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>14} {msg} [{bar:40}] {pos}/{len} ({elapsed} < {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix(task.to_string());
    pb.set_message(what.to_string());
    pb
}

/// Aggregate per-document values of each metric key: lm-eval `mean` and `mean_stderr`; IFEval's
/// instruction-level keys (documents carrying `IFEVAL_COUNT_KEY`) are pooled over instructions
/// as lm-eval's `agg_inst_level_acc` does, with no stderr (lm-eval reports "N/A"; recorded as 0).
fn aggregate(keys: &[String], samples: &[SampleRecord]) -> Result<BTreeMap<String, MetricValue>> {
    let mut out = BTreeMap::new();
    let counts: Option<Vec<f64>> = samples
        .iter()
        .map(|s| {
            s.metrics
                .get(quantlab_tasks::spec::IFEVAL_COUNT_KEY)
                .copied()
        })
        .collect();
    for key in keys {
        if let (Some(counts), true) = (&counts, key.starts_with("inst_level_")) {
            let (mut followed, mut total) = (0.0, 0.0);
            for (s, n) in samples.iter().zip(counts) {
                let frac = s.metrics.get(key).copied().with_context(|| {
                    format!("doc {} of task {} has no metric {key}", s.doc_id, s.task)
                })?;
                followed += (frac * n).round();
                total += n;
            }
            out.insert(
                key.clone(),
                MetricValue {
                    value: if total > 0.0 {
                        followed / total
                    } else {
                        f64::NAN
                    },
                    stderr: 0.0,
                },
            );
            continue;
        }
        let xs = samples
            .iter()
            .map(|s| {
                s.metrics.get(key).copied().with_context(|| {
                    format!("doc {} of task {} has no metric {key}", s.doc_id, s.task)
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        out.insert(
            key.clone(),
            MetricValue {
                value: quantlab_tasks::metrics::mean(&xs),
                stderr: quantlab_tasks::metrics::mean_stderr(&xs),
            },
        );
    }
    Ok(out)
}

/// Corpus-level perplexities of a `loglikelihood_rolling` task (lm-eval `weighted_perplexity`,
/// `bits_per_byte`); lm-eval reports no stderr for them ("N/A"), recorded as 0.
fn aggregate_rolling(spec: &TaskSpec, samples: &[SampleRecord]) -> BTreeMap<String, MetricValue> {
    let items: Vec<(f64, usize, usize)> = samples
        .iter()
        .filter_map(|s| s.rolling.as_ref())
        .map(|r| (r.loglikelihood, r.words, r.bytes))
        .collect();
    quantlab_tasks::perplexities(spec, &items)
        .into_iter()
        .map(|(k, value)| (k, MetricValue { value, stderr: 0.0 }))
        .collect()
}

/// The prompt sent for each document: the plain-text prompt (description, few-shot examples,
/// `doc_to_text`; `Task::plain_context`), or with `chat_template: true` the task's messages
/// (`Task::chat_messages`) through the model's chat template, followed by `gen_prefix`.
fn contexts(backend: &dyn Backend, task: &Task, docs: &[PreparedDoc]) -> Result<Vec<String>> {
    let spec = &task.spec;
    docs.iter()
        .map(|d| {
            if spec.chat_template {
                let msgs: Vec<ChatMessage> = task
                    .chat_messages(d)
                    .into_iter()
                    .map(|m| ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect();
                let mut ctx = backend.apply_chat_template(&msgs).with_context(|| {
                    format!("task `{}` needs the model's chat template", spec.task)
                })?;
                if let Some(p) = &spec.gen_prefix {
                    ctx.push_str(p);
                }
                Ok(ctx)
            } else {
                Ok(task.plain_context(d))
            }
        })
        .collect()
}

fn run_multiple_choice(
    backend: &mut dyn Backend,
    task: &Task,
    docs: Vec<PreparedDoc>,
    ctxs: Vec<String>,
) -> Result<Vec<SampleRecord>> {
    let name = task.name();
    // one request per (doc, choice); identical requests are sent once
    let mut unique: Vec<LoglikelihoodRequest> = Vec::new();
    let mut index: HashMap<LoglikelihoodRequest, usize> = HashMap::new();
    let mut per_doc: Vec<Vec<(String, String, usize)>> = Vec::with_capacity(docs.len());
    for (doc, ctx) in docs.iter().zip(&ctxs) {
        let mut slots = Vec::new();
        for (context, cont) in task.requests(doc, ctx) {
            let req = LoglikelihoodRequest {
                context: context.clone(),
                continuation: cont.clone(),
            };
            let i = *index.entry(req.clone()).or_insert_with(|| {
                unique.push(req);
                unique.len() - 1
            });
            slots.push((context, cont, i));
        }
        per_doc.push(slots);
    }
    let answers = call_backend(name, "loglikelihood", unique.len(), |p| {
        backend.loglikelihood(&unique, p)
    })?;
    let mut samples = Vec::with_capacity(docs.len());
    for ((doc, ctx), slots) in docs.into_iter().zip(ctxs).zip(per_doc) {
        let lls: Vec<f64> = slots.iter().map(|(_, _, i)| answers[*i].logprob).collect();
        let metrics = task.score_choices(&doc, &lls)?;
        let choices = slots
            .into_iter()
            .map(|(context, continuation, i)| ChoiceRecord {
                context: (context != ctx).then_some(context),
                continuation,
                loglikelihood: answers[i].logprob,
                is_greedy: answers[i].is_greedy,
            })
            .collect();
        let fewshot_ids = doc.fewshot.iter().map(|e| e.pool_index).collect();
        samples.push(SampleRecord {
            task: name.to_string(),
            doc_id: doc.doc_id,
            doc: doc.doc,
            context: ctx,
            target: doc.target,
            choices: Some(choices),
            generation: None,
            filtered: None,
            rolling: None,
            fewshot_ids,
            metrics,
        });
    }
    Ok(samples)
}

/// Send `n` requests of one kind through `call` with a progress bar, and check that the backend
/// answered every one of them.
fn call_backend<T>(
    name: &str,
    kind: &str,
    n: usize,
    call: impl FnOnce(&dyn Fn(usize)) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let pb = progress_bar(n, name, kind);
    let answers =
        call(&|k| pb.inc(k as u64)).with_context(|| format!("task `{name}`: {kind} requests"))?;
    pb.finish_and_clear();
    if answers.len() != n {
        bail!(
            "task `{name}`: backend answered {} of {n} {kind} requests",
            answers.len()
        );
    }
    Ok(answers)
}

fn run_generation(
    backend: &mut dyn Backend,
    task: &Task,
    docs: Vec<PreparedDoc>,
    ctxs: Vec<String>,
) -> Result<Vec<SampleRecord>> {
    let name = task.name();
    let gk = task.spec.generation();
    let reqs: Vec<GenerateRequest> = ctxs
        .iter()
        .map(|c| GenerateRequest {
            context: c.clone(),
            until: gk.until.clone(),
            max_gen_toks: gk.max_gen_toks,
            sampling: None,
        })
        .collect();
    let gens = call_backend(name, "generate_until", reqs.len(), |p| {
        backend.generate_until(&reqs, p)
    })?;
    let all_scores = task.score_generations(&docs, &gens)?;
    let mut samples = Vec::with_capacity(docs.len());
    for (((doc, ctx), generation), scores) in docs.into_iter().zip(ctxs).zip(gens).zip(all_scores) {
        let fewshot_ids = doc.fewshot.iter().map(|e| e.pool_index).collect();
        samples.push(SampleRecord {
            task: name.to_string(),
            doc_id: doc.doc_id,
            doc: doc.doc,
            context: ctx,
            target: doc.target,
            choices: None,
            generation: Some(generation),
            filtered: Some(scores.filtered),
            rolling: None,
            fewshot_ids,
            metrics: scores.metrics,
        });
    }
    Ok(samples)
}

/// `loglikelihood_rolling`: one request per document, the text being `doc_to_target`; the
/// per-document metrics are that document's own perplexities, the aggregates are corpus-level.
fn run_rolling(
    backend: &mut dyn Backend,
    task: &Task,
    docs: Vec<PreparedDoc>,
) -> Result<Vec<SampleRecord>> {
    let name = task.name();
    let texts: Vec<String> = docs
        .iter()
        .map(|d| match &d.target {
            Target::Text(t) => t.clone(),
            Target::Index(_) | Target::Unmatched { .. } => String::new(),
        })
        .collect();
    let lls = call_backend(name, "loglikelihood_rolling", texts.len(), |p| {
        backend.loglikelihood_rolling(&texts, p)
    })?;
    let mut samples = Vec::with_capacity(docs.len());
    for ((doc, text), ll) in docs.into_iter().zip(texts).zip(lls) {
        let r = RollingRecord {
            loglikelihood: ll,
            words: quantlab_tasks::preprocess::py_word_count(&text),
            bytes: text.len(),
        };
        let metrics = quantlab_tasks::perplexities(&task.spec, &[(ll, r.words, r.bytes)]);
        samples.push(SampleRecord {
            task: name.to_string(),
            doc_id: doc.doc_id,
            doc: doc.doc,
            context: String::new(),
            target: doc.target,
            choices: None,
            generation: None,
            filtered: None,
            rolling: Some(r),
            fewshot_ids: Vec::new(),
            metrics,
        });
    }
    Ok(samples)
}

/// Evaluate one task: requests, backend calls, per-document scores; writes
/// `<out_dir>/samples_<task>.jsonl` and returns the aggregates. No resume state is kept (see
/// [`run_tasks`] for that).
pub fn run_task(
    backend: &mut dyn Backend,
    spec: &TaskSpec,
    data_dir: &Path,
    limit: Option<usize>,
    out_dir: &Path,
) -> Result<TaskResult> {
    run_task_resumable(backend, spec, data_dir, limit, out_dir, None).map(|(r, _)| r)
}

/// Folder inside a run folder holding the resume state of an unfinished run.
pub const RESUME_DIR: &str = ".resume";

/// Environment variable: documents per checkpoint of the resume state (default
/// [`DEFAULT_CHECKPOINT_DOCS`]).
pub const CHECKPOINT_ENV: &str = "QUANTLAB_EVAL_CHECKPOINT_DOCS";

/// Default documents per checkpoint.
pub const DEFAULT_CHECKPOINT_DOCS: usize = 256;

fn checkpoint_docs() -> Result<usize> {
    match std::env::var(CHECKPOINT_ENV) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("{CHECKPOINT_ENV}={v:?}: expected a positive integer")),
        Err(_) => Ok(DEFAULT_CHECKPOINT_DOCS),
    }
}

/// The resume state of one task: `<run>/.resume/samples_<task>.jsonl`, whose first line is
/// `{"resume_key": KEY}` and every further line a finished [`SampleRecord`], appended one
/// checkpoint (a run of documents in data-file order) at a time and synced to disk. KEY is the
/// sha256 of everything the answers depend on: the model identity (config and weights hashes,
/// quantization_config), the task spec (with its version), `--limit`, the backend settings and the
/// checkpoint size. A state with another key, or whose documents no longer match the data file
/// (doc_id and prompt), is discarded; a torn last line (the process died mid-write) is ignored.
fn load_resume(path: &Path, key: &str, docs: &[PreparedDoc], ctxs: &[String]) -> Vec<SampleRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let header: Option<serde_json::Value> = lines.next().and_then(|l| serde_json::from_str(l).ok());
    if header
        .as_ref()
        .and_then(|h| h.get("resume_key"))
        .and_then(|k| k.as_str())
        != Some(key)
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for line in lines {
        let Ok(rec) = serde_json::from_str::<SampleRecord>(line) else {
            break;
        };
        let i = out.len();
        if i >= docs.len() || rec.doc_id != docs[i].doc_id || rec.context != ctxs[i] {
            return Vec::new();
        }
        out.push(rec);
    }
    out
}

fn append_records(file: &mut std::fs::File, path: &Path, records: &[SampleRecord]) -> Result<()> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    file.write_all(&buf)
        .and_then(|_| file.sync_data())
        .with_context(|| format!("writing {}", path.display()))
}

/// [`run_task`] with a resume state when `identity` (the model's identity, as JSON) is given:
/// documents are evaluated in checkpoints of `$QUANTLAB_EVAL_CHECKPOINT_DOCS` (default 256), each
/// appended to `<out_dir>/.resume/samples_<task>.jsonl`; an earlier, interrupted call with the
/// same key continues after its last finished checkpoint. The checkpoints are the same whether or
/// not the run was interrupted, so the results are identical. Returns the aggregates and the
/// number of documents taken from the resume state.
pub fn run_task_resumable(
    backend: &mut dyn Backend,
    spec: &TaskSpec,
    data_dir: &Path,
    limit: Option<usize>,
    out_dir: &Path,
    identity: Option<&serde_json::Value>,
) -> Result<(TaskResult, usize)> {
    let task = Task::new(spec.clone())?;
    let docs = task.load_prepared(data_dir, limit)?;
    if docs.is_empty() {
        bail!("task `{}`: no documents to evaluate", spec.task);
    }
    let n_docs = docs.len();
    // Rolling-perplexity records keep no prompt to check a resume state against: their state is
    // never reused (load_resume sees a different context and starts over).
    let ctxs = match spec.output_type {
        OutputType::LoglikelihoodRolling => vec![String::new(); n_docs],
        _ => contexts(backend, &task, &docs)?,
    };
    let chunk = checkpoint_docs()?;
    let mut state = None;
    let mut samples = Vec::with_capacity(n_docs);
    if let Some(id) = identity {
        use sha2::{Digest, Sha256};
        let key_src = serde_json::json!({
            "model": id, "spec": spec, "limit": limit, "backend": backend.describe(),
            "checkpoint_docs": chunk,
        });
        let key = hex::encode(Sha256::digest(serde_json::to_vec(&key_src)?));
        let dir = out_dir.join(RESUME_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("samples_{}.jsonl", spec.task));
        samples = load_resume(&path, &key, &docs, &ctxs);
        // Keep whole checkpoints only, so the remaining ones are those of an uninterrupted run.
        if samples.len() < n_docs {
            samples.truncate(samples.len() / chunk * chunk);
        }
        // Rewrite the state (header + kept records), then append to it.
        let mut buf = serde_json::to_vec(&serde_json::json!({ "resume_key": key }))?;
        buf.push(b'\n');
        write_atomic(&path, &buf)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        append_records(&mut file, &path, &samples)?;
        state = Some((file, path));
    }
    let resumed = samples.len();
    if resumed > 0 {
        eprintln!(
            "{}: {resumed} of {n_docs} documents taken from the resume state",
            spec.task
        );
    }
    let mut docs = docs.into_iter().skip(resumed);
    let mut ctxs = ctxs.into_iter().skip(resumed);
    loop {
        let d: Vec<PreparedDoc> = docs.by_ref().take(chunk).collect();
        if d.is_empty() {
            break;
        }
        let c: Vec<String> = ctxs.by_ref().take(d.len()).collect();
        let done = match spec.output_type {
            OutputType::MultipleChoice => run_multiple_choice(backend, &task, d, c)?,
            OutputType::GenerateUntil => run_generation(backend, &task, d, c)?,
            OutputType::LoglikelihoodRolling => run_rolling(backend, &task, d)?,
        };
        if let Some((file, path)) = state.as_mut() {
            append_records(file, path, &done)?;
        }
        samples.extend(done);
    }
    let mut buf = Vec::new();
    for s in &samples {
        serde_json::to_writer(&mut buf, s)?;
        buf.push(b'\n');
    }
    write_atomic(&out_dir.join(format!("samples_{}.jsonl", spec.task)), &buf)?;
    Ok((
        TaskResult {
            version: spec.version.clone(),
            n_docs,
            primary_metric: spec.primary_metric.clone(),
            metrics: if spec.output_type == OutputType::LoglikelihoodRolling {
                aggregate_rolling(spec, &samples)
            } else {
                aggregate(&spec.metric_keys(), &samples)?
            },
        },
        resumed,
    ))
}

/// Run `tasks` against `backend`, writing `samples_<task>.jsonl` for each task and finally
/// `results.json` into `opts.out_dir` (all writes atomic). Returns the run record.
pub fn run_tasks(
    backend: &mut dyn Backend,
    tasks: &[TaskSpec],
    opts: &RunOptions,
) -> Result<RunResults> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        if !seen.insert(t.task.as_str()) {
            bail!("task `{}` is listed twice", t.task);
        }
    }
    let mut results = BTreeMap::new();
    let mut resumed_docs = BTreeMap::new();
    let identity = serde_json::json!({
        "config_sha256": opts.model.config_sha256,
        "weights_sha256": opts.model.weights_sha256,
        "quantization_config": opts.model.quantization_config,
        "scheme": opts.model.scheme,
    });
    for spec in tasks {
        let (r, resumed) = run_task_resumable(
            backend,
            spec,
            &opts.data_dir,
            opts.limit,
            &opts.out_dir,
            Some(&identity),
        )?;
        if resumed > 0 {
            resumed_docs.insert(spec.task.clone(), resumed);
        }
        results.insert(spec.task.clone(), r);
    }
    let mut run = RunResults::new(
        &opts.out_dir,
        opts.model.clone(),
        opts.suite.clone(),
        backend.describe(),
        opts.limit,
        started_at,
        started.elapsed().as_secs_f64(),
        results,
    );
    run.resumed_docs = resumed_docs;
    let n_shot: BTreeMap<String, usize> = tasks
        .iter()
        .map(|t| (t.task.clone(), t.num_fewshot))
        .collect();
    let lm_eval = serde_json::to_vec_pretty(&run.to_lm_eval(&n_shot))?;
    write_atomic(
        &opts.out_dir.join(crate::results::LM_EVAL_RESULTS_FILE),
        &lm_eval,
    )?;
    if opts.suite == "leaderboard-v2" {
        // a summary that cannot be made must not lose the evaluated run: warn and go on
        match leaderboard_v2_summary(&run) {
            Ok(lb) => write_atomic(
                &opts.out_dir.join(LEADERBOARD_V2_FILE),
                &serde_json::to_vec_pretty(&lb)?,
            )?,
            Err(e) => eprintln!("warning: no {LEADERBOARD_V2_FILE}: {e:#}"),
        }
    }
    let json = serde_json::to_vec_pretty(&run)?;
    write_atomic(&opts.out_dir.join("results.json"), &json)?;
    // The run is complete: its resume state is no longer needed.
    let resume = opts.out_dir.join(RESUME_DIR);
    if resume.exists() {
        std::fs::remove_dir_all(&resume)
            .with_context(|| format!("removing {}", resume.display()))?;
    }
    Ok(run)
}

/// File of a `leaderboard-v2` run, beside `results.json`: [`leaderboard_v2_summary`].
pub const LEADERBOARD_V2_FILE: &str = "leaderboard_v2.json";

/// The Open LLM Leaderboard V2 scores of a run (`quantlab_tasks::leaderboard`): per benchmark the
/// mean of its sub-tasks' normalised scores `max(0, (v - b) / (1 - b)) * 100` (MATH: its
/// sub-tasks' raw scores weighted by their document counts, then normalised), their average, and
/// the benchmarks the run lacks, as JSON `{"benchmarks": {name: percent}, "average": percent,
/// "missing": [names]}`. Errors as [`quantlab_tasks::leaderboard::leaderboard_v2`] does (a
/// benchmark with only some sub-tasks, a value outside [0, 1], nothing complete).
pub fn leaderboard_v2_summary(run: &RunResults) -> Result<serde_json::Value> {
    let (scores, sizes) = run.scores_and_sizes();
    let lb = quantlab_tasks::leaderboard::leaderboard_v2(&scores, &sizes)
        .with_context(|| format!("run {}: Leaderboard V2 scores", run.run_id))?;
    let benchmarks: serde_json::Map<String, serde_json::Value> = lb
        .benchmarks
        .iter()
        .map(|(n, v)| (n.clone(), serde_json::json!(v)))
        .collect();
    Ok(serde_json::json!({
        "benchmarks": benchmarks,
        "average": lb.average,
        "missing": lb.missing,
        "normalisation": "max(0, (v - b) / (1 - b)) * 100 per sub-task, b = random baseline; \
            mean per benchmark (MATH: raw scores weighted by document counts, then normalised); \
            mean of the benchmarks present",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_sanitized() {
        assert_eq!(sanitize_model_name("smollm2-135m"), "smollm2-135m");
        assert_eq!(sanitize_model_name("models/x-w4a16/"), "x-w4a16");
        assert_eq!(sanitize_model_name("my model:v1"), "my_model_v1");
        assert_eq!(sanitize_model_name("/"), "model");
    }

    #[test]
    fn run_dirs_are_unique() {
        let root = tempfile::tempdir().unwrap();
        let a = new_run_dir(root.path(), "m").unwrap();
        let b = new_run_dir(root.path(), "m").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.len(), "20261129-233000-m".len(), "{name}");
        assert!(name.ends_with("-m"));
    }

    #[test]
    fn atomic_write_leaves_no_tmp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert!(!d.path().join("x.json.tmp").exists());
    }
}
