//! `quantlab eval MODEL --suite similarity [--baseline RUN]`: the paper's section 4.3 as an eval
//! suite. Greedy answers to Arena-Hard-Auto v0.1's 500 first-turn prompts (through the chat
//! template) are generated once per model and stored in the run folder (`generations.jsonl`); a
//! run given `--baseline RUN` (the BF16 model's similarity run) is scored against the baseline's
//! stored answers with [`score_pairs`](super::score_pairs): ROUGE-1/L, BERTScore and STS per
//! prompt (`similarity.json`), means with 95% CIs (`similarity.md`, and as the metrics of task
//! `similarity` in `results.json`). Baseline answers are read from the baseline run, never
//! generated again.
//!
//! Generation is resumable: finished prompts are checkpointed in `OUT/.resume/` after every chunk,
//! and an interrupted run given the same `--out` continues where it stopped.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{score_pairs, write_atomic, write_outputs, SimilarityOptions, SimilarityResult};
use crate::backend::{Backend, ChatMessage, GenerateRequest};
use crate::results::{MetricValue, ModelInfo, RunResults, TaskResult};

/// Suite name on the command line and in `results.json`.
pub const SUITE: &str = "similarity";
/// File of a run's answers: one [`Generation`] per line, in prompt order.
pub const GENERATIONS_FILE: &str = "generations.jsonl";
/// Resume state folder inside an interrupted run.
pub const RESUME_DIR: &str = ".resume";
/// Default `--max-new-tokens` on CUDA (the paper's generation length).
pub const MAX_NEW_TOKENS_GPU: usize = 1024;
/// Default `--max-new-tokens` on CPU, where 1024 tokens × 500 prompts takes hours.
pub const MAX_NEW_TOKENS_CPU: usize = 256;
/// Metrics put into `results.json` (all with mean and stderr over the prompts).
pub const RESULT_METRICS: [&str; 7] = [
    "rouge1_f",
    "rougeL_f",
    "bertscore_p",
    "bertscore_r",
    "bertscore_f1",
    "sts_cosine",
    "sts_01",
];

/// Where the prompts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// `arena_hard/v0.1.jsonl.gz` (`question_id`, first entry of `turns[].content`): the paper's.
    ArenaHard,
    /// `ifeval/train.jsonl.gz` (`key`, `prompt`): the prompts of `../shared/reference/similarity/`.
    IfEval,
    /// A JSONL file of objects with an id (`id`, `question_id` or `key`) and a prompt (`prompt`,
    /// `text`, or `turns[0].content`).
    File(PathBuf),
}

impl PromptSource {
    /// `arena-hard` (default), `ifeval`, or a path to a `.jsonl`/`.jsonl.gz` file.
    pub fn parse(s: &str) -> PromptSource {
        match s {
            "arena-hard" | "arena_hard" | "arena-hard-v0.1" => PromptSource::ArenaHard,
            "ifeval" => PromptSource::IfEval,
            p => PromptSource::File(PathBuf::from(p)),
        }
    }

    /// [`Self::parse`], refusing a name that is neither a source nor a file path (a typo such as
    /// `arenahard`). Errors name the value and the choices.
    pub fn parse_checked(s: &str) -> Result<PromptSource> {
        let src = Self::parse(s);
        if let PromptSource::File(p) = &src {
            if !p.exists() && !s.contains('/') && !s.contains('.') {
                bail!(
                    "--prompts {s}: not a prompt set (arena-hard, ifeval) nor a file; give a JSONL \
                     file path for your own prompts"
                );
            }
        }
        Ok(src)
    }

    /// The label recorded in the run (`arena-hard-v0.1`, `ifeval`, or `file:<path>`).
    pub fn label(&self) -> String {
        match self {
            PromptSource::ArenaHard => "arena-hard-v0.1".into(),
            PromptSource::IfEval => "ifeval".into(),
            PromptSource::File(p) => format!("file:{}", p.display()),
        }
    }

    /// The data file read.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        match self {
            PromptSource::ArenaHard => data_dir.join("arena_hard/v0.1.jsonl.gz"),
            PromptSource::IfEval => data_dir.join("ifeval/train.jsonl.gz"),
            PromptSource::File(p) => p.clone(),
        }
    }
}

/// One prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Its id as a string (`question_id`, or `key` in decimal).
    pub id: String,
    /// The user turn.
    pub text: String,
}

fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

const ID_FIELDS: [&str; 4] = ["id", "question_id", "key", "task_id"];

/// The id of record `line` of `path`: the first of [`ID_FIELDS`] that holds a string or an
/// integer (integers in decimal). Errors name the file, the record and the fields looked for.
fn record_id(r: &serde_json::Value, path: &Path, line: usize) -> Result<String> {
    ID_FIELDS
        .iter()
        .find_map(|f| r.get(*f).and_then(id_string))
        .with_context(|| {
            format!(
                "{}: record {line}: no id (one of {} as a string or integer)",
                path.display(),
                ID_FIELDS.join(", ")
            )
        })
}

/// The first `limit` prompts (all when `None`) of `source`.
///
/// Errors: the data file is missing (naming it and where to put it), a line is malformed, a record
/// lacks an id or a prompt (naming file, line and field), an id is used twice.
pub fn load_prompts(
    source: &PromptSource,
    data_dir: &Path,
    limit: Option<usize>,
) -> Result<Vec<Prompt>> {
    let path = source.path(data_dir);
    if !path.is_file() {
        bail!(
            "similarity prompts: data file {} is missing; put Arena-Hard-Auto v0.1 there \
             (lm-sys/arena-hard-auto data/arena-hard-v0.1/question.jsonl, gzipped), pass \
             --data-dir, or give --prompts FILE",
            path.display()
        );
    }
    let records = quantlab_tasks::dataset::load_jsonl(&path, limit)?;
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let line = i + 1;
        let id = record_id(r, &path, line)?;
        let text = r
            .get("prompt")
            .or_else(|| r.get("text"))
            .or_else(|| r.get("turns").and_then(|t| t.get(0)).and_then(|t| t.get("content")))
            .and_then(|v| v.as_str())
            .with_context(|| {
                format!(
                    "{}: record {line} (id {id}): no prompt (`prompt`, `text` or `turns[0].content` as a string)",
                    path.display()
                )
            })?;
        if text.trim().is_empty() {
            bail!(
                "{}: record {line} (id {id}): the prompt is empty",
                path.display()
            );
        }
        if let Some(prev) = seen.insert(id.clone(), line) {
            bail!(
                "{}: id {id} is used by records {prev} and {line}",
                path.display()
            );
        }
        out.push(Prompt {
            id,
            text: text.to_string(),
        });
    }
    if out.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(out)
}

/// One answer (a line of `generations.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The prompt's id.
    pub id: String,
    /// The prompt (user turn) as given, before the chat template; empty for answers read from a
    /// samples file.
    #[serde(default)]
    pub prompt: String,
    /// The answer.
    pub text: String,
}

/// How the answers were made; two runs are comparable only when these agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSettings {
    /// [`PromptSource::label`].
    pub prompts: String,
    /// `greedy`, or `samples` for answers read from a file.
    pub decoding: String,
    /// Token budget per answer (`None` for samples files).
    pub max_new_tokens: Option<usize>,
    /// Whether the chat template was applied.
    pub chat_template: bool,
}

/// Read `generations.jsonl`. Errors name the file and line.
pub fn read_generations(path: &Path) -> Result<Vec<Generation>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a generation record", path.display(), i + 1))
        })
        .collect()
}

fn jsonl<T: Serialize>(items: &[T]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for g in items {
        serde_json::to_writer(&mut buf, g)?;
        buf.push(b'\n');
    }
    Ok(buf)
}

/// Answers from a samples file: JSONL objects with an id (`id`, `question_id`, `key` or `task_id`)
/// and a text (`text`, `generation`, `output` or `completion`). Errors name file, line and field.
pub fn read_samples(path: &Path) -> Result<Vec<Generation>> {
    let records = quantlab_tasks::dataset::load_jsonl(path, None)?;
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let line = i + 1;
        let id = record_id(r, path, line)?;
        let text = ["text", "generation", "output", "completion"]
            .iter()
            .find_map(|f| r.get(*f).and_then(|v| v.as_str()))
            .with_context(|| {
                format!(
                    "{}: record {line} (id {id}): no text (`text`, `generation`, `output` or `completion` as a string)",
                    path.display()
                )
            })?;
        if let Some(prev) = seen.insert(id.clone(), line) {
            bail!(
                "{}: id {id} is used by records {prev} and {line}",
                path.display()
            );
        }
        out.push(Generation {
            id,
            prompt: String::new(),
            text: text.to_string(),
        });
    }
    if out.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(out)
}

/// The baseline's answers, from its run folder (or its `results.json`).
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The baseline run folder.
    pub dir: PathBuf,
    /// Its record.
    pub run: RunResults,
    /// How its answers were made.
    pub settings: GenerationSettings,
    /// id -> answer.
    pub answers: HashMap<String, String>,
    /// The ids in the baseline's order.
    pub ids: Vec<String>,
}

/// Load the baseline similarity run at `path` (a run folder or its `results.json`).
///
/// Errors: no record; a record of another suite; no `generations.jsonl`; no generation settings.
pub fn load_baseline(path: &Path) -> Result<Baseline> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let rec = dir.join("results.json");
    if !rec.is_file() {
        bail!(
            "--baseline {}: no results.json there; give the run folder of the baseline model's \
             `eval --suite similarity` (it stores the answers once)",
            path.display()
        );
    }
    let run = crate::runner::read_results(&rec)?;
    if run.suite != SUITE {
        bail!(
            "--baseline {}: a `{}` run, not a similarity run; run `quantlab eval BASELINE --suite \
             similarity` first and give its run folder",
            dir.display(),
            run.suite
        );
    }
    let settings: GenerationSettings = run
        .backend
        .get("generation")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .with_context(|| format!("{}: field `backend.generation`", rec.display()))?
        .with_context(|| format!("{}: no field `backend.generation`", rec.display()))?;
    let gens = read_generations(&dir.join(GENERATIONS_FILE))?;
    let ids = gens.iter().map(|g| g.id.clone()).collect();
    let answers = gens.into_iter().map(|g| (g.id, g.text)).collect();
    Ok(Baseline {
        dir,
        run,
        settings,
        answers,
        ids,
    })
}

/// The request for one prompt: the chat template with the prompt as the user turn (plain text
/// when the model has no template), greedy, stopping at EOS only.
pub fn request(backend: &dyn Backend, prompt: &Prompt, max_new: usize) -> (GenerateRequest, bool) {
    match backend.apply_chat_template(&[ChatMessage::user(prompt.text.clone())]) {
        Ok(ctx) => (
            GenerateRequest {
                context: ctx,
                until: vec![],
                max_gen_toks: max_new,
                sampling: None,
            },
            true,
        ),
        Err(_) => (
            GenerateRequest {
                context: prompt.text.clone(),
                until: vec![],
                max_gen_toks: max_new,
                sampling: None,
            },
            false,
        ),
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ResumeKey {
    model: ModelInfo,
    settings: GenerationSettings,
    n_prompts: usize,
}

/// Greedy answers to `prompts`, `chunk` prompts per backend call. After each chunk the answers so
/// far are checkpointed in `out_dir/.resume/` (with the model identity and settings); a call with a
/// matching checkpoint starts after its last finished prompt. `progress(done, total)` after each
/// chunk. Returns the answers and how many came from the checkpoint.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    backend: &mut dyn Backend,
    prompts: &[Prompt],
    max_new: usize,
    chunk: usize,
    out_dir: &Path,
    model: &ModelInfo,
    settings: &GenerationSettings,
    progress: &dyn Fn(usize, usize),
) -> Result<(Vec<Generation>, usize)> {
    let resume = out_dir.join(RESUME_DIR);
    let key_path = resume.join("similarity_key.json");
    let part_path = resume.join(GENERATIONS_FILE);
    let key = ResumeKey {
        model: model.clone(),
        settings: settings.clone(),
        n_prompts: prompts.len(),
    };
    let mut done: Vec<Generation> = Vec::new();
    if key_path.is_file() && part_path.is_file() {
        let old: ResumeKey = serde_json::from_slice(&std::fs::read(&key_path)?)
            .with_context(|| format!("{}: unreadable resume key", key_path.display()))?;
        if old != key {
            eprintln!(
                "warning: {}: the interrupted run was made with another model or settings; its \
                 answers are discarded and generation starts over",
                out_dir.display()
            );
            std::fs::remove_dir_all(&resume)
                .with_context(|| format!("removing {}", resume.display()))?;
            std::fs::create_dir_all(&resume)
                .with_context(|| format!("creating {}", resume.display()))?;
            write_atomic(&key_path, &serde_json::to_vec_pretty(&key)?)?;
        } else {
            done = read_generations(&part_path)?;
        }
        if done.len() > prompts.len() || done.iter().zip(prompts).any(|(g, p)| g.id != p.id) {
            bail!(
                "{}: the checkpointed answers do not follow the prompt order; remove {}",
                out_dir.display(),
                resume.display()
            );
        }
    } else {
        std::fs::create_dir_all(&resume)
            .with_context(|| format!("creating {}", resume.display()))?;
        write_atomic(&key_path, &serde_json::to_vec_pretty(&key)?)?;
    }
    let resumed = done.len();
    progress(done.len(), prompts.len());
    for part in prompts[resumed..].chunks(chunk.max(1)) {
        let reqs: Vec<GenerateRequest> = part
            .iter()
            .map(|p| request(backend, p, max_new).0)
            .collect();
        let texts = backend.generate_until(&reqs, &|_| {})?;
        for (p, t) in part.iter().zip(texts) {
            done.push(Generation {
                id: p.id.clone(),
                prompt: p.text.clone(),
                text: t,
            });
        }
        write_atomic(&part_path, &jsonl(&done)?)?;
        progress(done.len(), prompts.len());
    }
    Ok((done, resumed))
}

/// Mean and stderr of every [`RESULT_METRICS`] entry the result has, as `results.json` metrics.
pub fn result_metrics(res: &SimilarityResult) -> BTreeMap<String, MetricValue> {
    RESULT_METRICS
        .iter()
        .filter_map(|m| {
            res.metrics.get(*m).map(|v| {
                (
                    m.to_string(),
                    MetricValue {
                        value: v.mean,
                        stderr: v.stderr.unwrap_or(0.0),
                    },
                )
            })
        })
        .collect()
}

fn budget(n: Option<usize>) -> String {
    n.map_or_else(|| "none (samples)".into(), |n| n.to_string())
}

/// Whether answers made with `settings` may be compared with the baseline's: the same prompts,
/// token budget and chat-template use (answers read from samples files are not checked: their
/// settings are unknown). Errors say both settings.
pub fn check_settings(settings: &GenerationSettings, baseline: &Baseline) -> Result<()> {
    let b = &baseline.settings;
    if settings.decoding == "samples" || b.decoding == "samples" {
        return Ok(());
    }
    if settings.prompts != b.prompts
        || settings.max_new_tokens != b.max_new_tokens
        || settings.chat_template != b.chat_template
    {
        bail!(
            "--baseline {}: its answers were generated with prompts {}, max_new_tokens {}, chat \
             template {}; this run uses prompts {}, max_new_tokens {}, chat template {}; \
             similarity is only comparable with equal settings",
            baseline.dir.display(),
            b.prompts,
            budget(b.max_new_tokens),
            b.chat_template,
            settings.prompts,
            budget(settings.max_new_tokens),
            settings.chat_template
        );
    }
    Ok(())
}

/// Every prompt id has a baseline answer. Errors name the first missing id.
pub fn check_coverage<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    baseline: &Baseline,
) -> Result<()> {
    for id in ids {
        if !baseline.answers.contains_key(id) {
            bail!(
                "--baseline {}: no answer for prompt {id} (the baseline has {} answers: was it run \
                 with a smaller --limit or other --prompts, or is the id not one of those prompts?)",
                baseline.dir.display(),
                baseline.answers.len()
            );
        }
    }
    Ok(())
}

/// Pre-generated answers (`--samples`) answer every baseline prompt (the first `limit` of them in
/// the baseline's order when given), so a partial file is not scored as if it were the suite.
/// Errors name the count and the first missing ids.
pub fn check_samples_cover(
    answers: &[Generation],
    baseline: &Baseline,
    limit: Option<usize>,
    samples: &Path,
) -> Result<()> {
    let have: std::collections::HashSet<&str> = answers.iter().map(|g| g.id.as_str()).collect();
    let wanted = &baseline.ids[..limit.unwrap_or(baseline.ids.len()).min(baseline.ids.len())];
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|id| !have.contains(id))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: answers for {} of the baseline's {} prompts (missing {}{}); answer them all, or \
             compare the first N with --limit N",
            samples.display(),
            wanted.len() - missing.len(),
            wanted.len(),
            missing[..missing.len().min(5)].join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(())
}

/// Score `answers` against the baseline's answers to the same ids.
///
/// Errors: an id the baseline has no answer for (naming the id), answers made with other
/// generation settings than the baseline's ([`check_settings`]).
pub fn score_against(
    answers: &[Generation],
    settings: &GenerationSettings,
    baseline: &Baseline,
    opts: &SimilarityOptions,
) -> Result<SimilarityResult> {
    check_settings(settings, baseline)?;
    check_coverage(answers.iter().map(|g| g.id.as_str()), baseline)?;
    let mut pairs = Vec::with_capacity(answers.len());
    for g in answers {
        let r = &baseline.answers[&g.id];
        pairs.push(super::TextPair {
            id: serde_json::Value::String(g.id.clone()),
            candidate: g.text.clone(),
            reference: r.clone(),
        });
    }
    score_pairs(&pairs, opts)
}

/// Differences in the numbers' recipe between this run's backend and the baseline's (`dtype`,
/// and the device kind: `cpu` or `cuda`): greedy answers of the same model already differ between
/// float32 on a CPU and bfloat16 on a GPU, so such a comparison measures more than the
/// quantization. One line per difference; empty when both agree or a side does not say.
pub fn numerics_warnings(ours: &serde_json::Value, baseline: &serde_json::Value) -> Vec<String> {
    let kind = |v: &serde_json::Value, k: &str| -> Option<String> {
        let s = v.get(k)?.as_str()?;
        Some(if k == "device" {
            s.split(':').next().unwrap_or(s).to_string()
        } else {
            s.to_string()
        })
    };
    ["dtype", "device"]
        .iter()
        .filter_map(|k| {
            let (a, b) = (kind(ours, k)?, kind(baseline, k)?);
            (a != b).then(|| {
                format!(
                    "the baseline's answers were generated with {k} {b}, this run's with {k} {a}; \
                     the similarity also measures that difference"
                )
            })
        })
        .collect()
}

/// What `quantlab eval --suite similarity` does.
pub struct SimilarityEval<'a> {
    /// Prompt source.
    pub prompts: PromptSource,
    /// Folder holding the datasets.
    pub data_dir: PathBuf,
    /// Only the first N prompts.
    pub limit: Option<usize>,
    /// Pre-generated answers instead of a model.
    pub samples: Option<PathBuf>,
    /// The model (needed without `samples`).
    pub backend: Option<&'a mut dyn Backend>,
    /// Token budget per answer.
    pub max_new_tokens: usize,
    /// Prompts per generation call (and per checkpoint).
    pub chunk: usize,
    /// The baseline run to score against; `None` only generates (the baseline's own run).
    pub baseline: Option<PathBuf>,
    /// Scoring options (ROUGE stemming, encoders, device).
    pub scoring: SimilarityOptions,
    /// Run folder.
    pub out_dir: PathBuf,
    /// Model identity recorded.
    pub model: ModelInfo,
    /// Backend settings recorded.
    pub backend_info: serde_json::Value,
    /// Progress of the generation (done, total).
    pub progress: &'a dyn Fn(usize, usize),
}

/// Generate (or read) the answers, score them against the baseline when one is given, and write
/// the run folder: `generations.jsonl`, `results.json` (suite `similarity`; task `similarity` with
/// the means when scored), and with a baseline `similarity.json` (per prompt) and `similarity.md`.
/// The baseline is loaded and checked before any generation, so a wrong `--baseline` fails fast.
pub fn run_similarity_eval(
    req: SimilarityEval<'_>,
) -> Result<(RunResults, Option<SimilarityResult>)> {
    let started = std::time::Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let baseline = req.baseline.as_deref().map(load_baseline).transpose()?;
    let (answers, settings, resumed) = match (&req.samples, req.backend) {
        (Some(path), _) => {
            let mut a = read_samples(path)?;
            match &baseline {
                Some(b) => {
                    // Scored in the baseline's order, over its first --limit prompts.
                    check_samples_cover(&a, b, req.limit, path)?;
                    let n = req.limit.unwrap_or(b.ids.len()).min(b.ids.len());
                    let mut by_id: HashMap<String, Generation> =
                        a.into_iter().map(|g| (g.id.clone(), g)).collect();
                    a = b.ids[..n]
                        .iter()
                        .filter_map(|id| by_id.remove(id))
                        .collect();
                }
                None => {
                    if let Some(n) = req.limit {
                        a.truncate(n);
                    }
                }
            }
            let s = GenerationSettings {
                prompts: format!("samples:{}", path.display()),
                decoding: "samples".into(),
                max_new_tokens: None,
                chat_template: false,
            };
            (a, s, 0)
        }
        (None, Some(be)) => {
            let prompts = load_prompts(&req.prompts, &req.data_dir, req.limit)?;
            let chat = be.apply_chat_template(&[ChatMessage::user("x")]).is_ok();
            let s = GenerationSettings {
                prompts: req.prompts.label(),
                decoding: "greedy".into(),
                max_new_tokens: Some(req.max_new_tokens),
                chat_template: chat,
            };
            if let Some(b) = &baseline {
                // Fail before hours of generation, not after.
                check_settings(&s, b)?;
                check_coverage(prompts.iter().map(|p| p.id.as_str()), b)?;
            }
            std::fs::create_dir_all(&req.out_dir)
                .with_context(|| format!("creating {}", req.out_dir.display()))?;
            let (a, resumed) = generate(
                be,
                &prompts,
                req.max_new_tokens,
                req.chunk,
                &req.out_dir,
                &req.model,
                &s,
                req.progress,
            )?;
            (a, s, resumed)
        }
        (None, None) => bail!("similarity: give MODEL (to generate) or --samples FILE"),
    };
    let scored = match &baseline {
        Some(b) => Some(score_against(&answers, &settings, b, &req.scoring)?),
        None => None,
    };
    std::fs::create_dir_all(&req.out_dir)
        .with_context(|| format!("creating {}", req.out_dir.display()))?;
    write_atomic(&req.out_dir.join(GENERATIONS_FILE), &jsonl(&answers)?)?;
    let mut backend = req.backend_info.clone();
    let warnings: Vec<String> = baseline
        .as_ref()
        .map(|b| numerics_warnings(&backend, &b.run.backend))
        .unwrap_or_default();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(o) = backend.as_object_mut() {
        o.insert("generation".into(), serde_json::to_value(&settings)?);
        if !warnings.is_empty() {
            o.insert("warnings".into(), serde_json::json!(warnings));
        }
        if let Some(b) = &baseline {
            o.insert(
                "similarity_baseline".into(),
                serde_json::json!({
                    "run": b.dir.display().to_string(),
                    "run_id": b.run.run_id,
                    "model": b.run.model.name,
                    "scheme": b.run.model.scheme,
                }),
            );
        }
        if let Some(r) = &req.samples {
            o.insert("samples".into(), serde_json::json!(r.display().to_string()));
        }
    }
    let mut tasks = BTreeMap::new();
    if let Some(res) = &scored {
        write_outputs(&req.out_dir, res)?;
        tasks.insert(
            SUITE.to_string(),
            TaskResult {
                version: match settings.max_new_tokens {
                    Some(n) => format!("{};max_new_tokens={n}", settings.prompts),
                    None => settings.prompts.clone(),
                },
                n_docs: res.n_pairs,
                primary_metric: "rougeL_f".into(),
                metrics: result_metrics(res),
            },
        );
    }
    let mut resumed_docs = BTreeMap::new();
    if resumed > 0 {
        resumed_docs.insert(SUITE.to_string(), resumed);
    }
    let mut run = RunResults::new(
        &req.out_dir,
        req.model,
        SUITE.to_string(),
        backend,
        req.limit,
        started_at,
        started.elapsed().as_secs_f64(),
        tasks,
    );
    run.resumed_docs = resumed_docs;
    write_atomic(
        &req.out_dir.join("results.json"),
        &serde_json::to_vec_pretty(&run)?,
    )?;
    let resume = req.out_dir.join(RESUME_DIR);
    if resume.is_dir() {
        std::fs::remove_dir_all(&resume)
            .with_context(|| format!("removing {}", resume.display()))?;
    }
    Ok((run, scored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_differences_are_named() {
        let gpu = serde_json::json!({"device": "cuda:0", "dtype": "bfloat16"});
        let gpu1 = serde_json::json!({"device": "cuda:1", "dtype": "bfloat16"});
        let cpu = serde_json::json!({"device": "cpu", "dtype": "float32"});
        assert!(numerics_warnings(&gpu, &gpu1).is_empty());
        let w = numerics_warnings(&cpu, &gpu);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("dtype bfloat16, this run's with dtype float32"),
            "{w:?}"
        );
        assert!(numerics_warnings(&cpu, &serde_json::json!({"backend": "samples"})).is_empty());
    }

    #[test]
    fn prompt_sources_parse() {
        assert_eq!(PromptSource::parse("arena-hard"), PromptSource::ArenaHard);
        assert_eq!(PromptSource::parse("ifeval"), PromptSource::IfEval);
        assert_eq!(
            PromptSource::parse("x.jsonl"),
            PromptSource::File("x.jsonl".into())
        );
    }
}
