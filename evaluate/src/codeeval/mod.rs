//! Code benchmarks: HumanEval, HumanEval+, MBPP and MBPP+ scored by running the solutions in the
//! [`crate::sandbox`], and pass@k.
//!
//! Suites ([`Suite`]) and how each is judged:
//! - `humaneval` (`humaneval/test.jsonl.gz`, openai/human-eval): the program
//!   `prompt + completion + test + check(entry_point)` must exit cleanly, as human-eval's
//!   `check_correctness` does; `mbpp` (`mbpp/full.jsonl.gz`, test split task_ids 11..=510, as the
//!   MBPP paper and lm-eval): `test_setup_code + code + test_list` asserts.
//! - `humanevalplus` / `mbppplus` (EvalPlus releases: `base_input`, `plus_input`, `atol`):
//!   differential testing as EvalPlus 0.3 does it (`evalplus/evaluate.py`, `evalplus/eval`): the
//!   reference solution is run once per problem on every input ("ground truth": outputs and
//!   seconds per input), then each candidate is called on the same inputs in one sandboxed process,
//!   input by input with a time limit of `max(1.0 s, 4 × reference seconds)` (EvalPlus's
//!   `DEFAULT_MIN_TIME_LIMIT` and `DEFAULT_GT_TIME_LIMIT_FACTOR`), outputs compared exactly or,
//!   for floats, with `atol` (1e-6 when the dataset's is 0) and rtol 1e-7, with EvalPlus's special
//!   oracles (HumanEval/32 `find_zero` checked by evaluating the polynomial; the MBPP+ set-equality
//!   and not-None tasks). Each input set stops at its first failure (EvalPlus's default fast
//!   check). A sample passes `base` when all base inputs pass and the `plus` suite when base and
//!   plus inputs all pass (EvalPlus's "base + extra tests").
//!
//! `quantlab eval` runs both in one pool of workers ([`ground_truth_and_check`]): a sample's check
//! starts as soon as its problem's ground truth is recorded. Expected outputs and problem lines are
//! written once per run into a folder next to the sandbox roots and linked into each check.
//!
//! Differences from EvalPlus, on purpose: base and plus inputs run in one process per sample (not
//! two) with the program executed afresh for each set; the per-set process budget is
//! `min(60 s, Σ limits) + 1 s` as EvalPlus's, summed over both sets; a per-input timeout is
//! reported as `timeout` (EvalPlus reports it as a failure; neither counts as a pass). MBPP+ inputs
//! are rebuilt per task as EvalPlus does (tuples, sets, complex numbers); see [`mbpp_input_form`].
//!
//! pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
//! on Code", eq. 1; human-eval's `estimate_pass_at_k`): `1 - C(n-c, k) / C(n, k)` per problem,
//! averaged over problems.

pub mod generate;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::Backend;
use crate::results::{MetricValue, ModelInfo, RunResults, TaskResult};
use crate::runner::write_atomic;
pub use crate::sandbox::Status;
use crate::sandbox::{Job, Limits, Sandbox};

const DRIVER: &str = include_str!("driver.py");

/// EvalPlus `DEFAULT_MIN_TIME_LIMIT` (seconds per input).
pub const MIN_TIME_LIMIT_S: f64 = 1.0;
/// EvalPlus `DEFAULT_GT_TIME_LIMIT_FACTOR`.
pub const GT_TIME_LIMIT_FACTOR: f64 = 4.0;
/// human-eval's `check_correctness` timeout, the floor for whole-program suites (seconds).
pub const SCRIPT_MIN_TIME_LIMIT_S: f64 = 3.0;
/// EvalPlus's cap on one input set's process time (`EVALPLUS_TIMEOUT_PER_TASK`, seconds).
pub const SET_TIME_CAP_S: f64 = 60.0;

/// How MBPP+ inputs are rebuilt from their JSON form before a call, per task: EvalPlus stores
/// tuples, sets and complex numbers as JSON lists and strings and converts them back per task
/// (`evalplus/data/mbpp.py`, `mbpp_deserialize_inputs`, MBPP+ v0.2.0). The form names are ours;
/// the driver (`driver.py`, `prepare`) applies them. `None`: the JSON values are used as they are.
pub fn mbpp_input_form(task_id: &str) -> Option<&'static str> {
    let n: u32 = task_id.strip_prefix("Mbpp/")?.parse().ok()?;
    Some(match n {
        // Every argument (a list) becomes a tuple.
        2 | 116 | 132 | 143 | 222 | 261 | 273 | 394 | 399 | 421 | 424 | 429 | 470 | 560 | 579
        | 596 | 616 | 630 | 726 | 740 | 744 | 809 => "args_tuple",
        // Every argument is a list of lists; the inner lists become tuples.
        63 | 64 | 70 | 94 | 120 | 237 | 272 | 299 | 400 | 409 | 417 | 438 | 473 | 614 | 780 => {
            "inner_tuples"
        }
        // The first argument's inner lists become tuples; the second stays.
        75 | 413 | 444 | 753 => "first_inner_tuples",
        // The second argument becomes a tuple.
        106 | 750 => "second_tuple",
        // The first argument's items become sets (an empty item becomes `{}`, as EvalPlus does).
        115 => "first_item_sets",
        // (float, complex) from the stored strings.
        124 => "float_complex",
        // The first argument becomes a tuple.
        250 | 307 | 405 | 446 | 617 | 720 | 763 | 808 => "first_tuple",
        // Inner lists become tuples, then every argument becomes a tuple.
        259 | 401 | 445 => "inner_tuples_then_args_tuple",
        // The first argument's list items become tuples, then it becomes a tuple.
        278 => "first_items_tuple",
        // The first argument is a dict whose values become tuples.
        722 => "dict_values_tuple",
        // The first argument is a complex number stored as a string.
        252 => "complex",
        // Every list at any depth becomes a tuple.
        580 | 615 | 791 => "deep_tuple",
        _ => return None,
    })
}

/// One of the four code suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    HumanEval,
    HumanEvalPlus,
    Mbpp,
    MbppPlus,
}

impl Suite {
    /// `humaneval`, `humanevalplus`, `mbpp`, `mbppplus`.
    pub fn parse(s: &str) -> Option<Suite> {
        // `HumanEval+` and `humaneval_plus` both mean the plus suite.
        match s
            .to_ascii_lowercase()
            .replace('+', "plus")
            .replace(['-', '_'], "")
            .as_str()
        {
            "humaneval" => Some(Suite::HumanEval),
            "humanevalplus" => Some(Suite::HumanEvalPlus),
            "mbpp" => Some(Suite::Mbpp),
            "mbppplus" => Some(Suite::MbppPlus),
            _ => None,
        }
    }

    /// The suite's name (also its task name in results.json).
    pub fn name(self) -> &'static str {
        match self {
            Suite::HumanEval => "humaneval",
            Suite::HumanEvalPlus => "humanevalplus",
            Suite::Mbpp => "mbpp",
            Suite::MbppPlus => "mbppplus",
        }
    }

    /// The data file under the data folder.
    pub fn data_file(self) -> &'static str {
        match self {
            Suite::HumanEval => "humaneval/test.jsonl.gz",
            Suite::HumanEvalPlus => "humanevalplus/test.jsonl.gz",
            Suite::Mbpp => "mbpp/full.jsonl.gz",
            Suite::MbppPlus => "mbppplus/test.jsonl.gz",
        }
    }

    /// Whether the suite is judged by differential testing on base/plus inputs.
    pub fn is_plus(self) -> bool {
        matches!(self, Suite::HumanEvalPlus | Suite::MbppPlus)
    }

    fn kind(self) -> &'static str {
        match self {
            Suite::HumanEval | Suite::HumanEvalPlus => "humaneval",
            Suite::Mbpp | Suite::MbppPlus => "mbpp",
        }
    }
}

/// One benchmark problem.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `HumanEval/0`, `Mbpp/2`, or `11` for original MBPP.
    pub task_id: String,
    /// The prompt text the dataset gives (HumanEval: signature + docstring; MBPP: description).
    pub prompt: String,
    /// Function under test (empty for original MBPP, whose tests name it).
    pub entry_point: String,
    /// The reference program (prompt + canonical solution, or MBPP's code).
    pub reference: String,
    /// Whole-program suites: the test code appended to a solution.
    pub test: String,
    /// Plus suites: the dataset line as read (JSON text; may hold `Infinity` and big integers,
    /// which only Python parses).
    pub raw: String,
    /// MBPP: the test asserts (shown in the prompt).
    pub tests: Vec<String>,
}

/// Replace bare `NaN` / `Infinity` / `-Infinity` tokens outside strings by `null`, so serde_json
/// can read the other fields of an EvalPlus line (inputs are parsed in Python from the raw text).
fn jsonable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_str, mut esc) = (false, false);
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else {
            for tok in ["-Infinity", "Infinity", "NaN"] {
                if line[i..].starts_with(tok) {
                    out.push_str("null");
                    i += tok.len();
                    break;
                }
            }
            if i < b.len() && (b[i] as char) != c {
                continue;
            }
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn str_field(v: &serde_json::Value, key: &str, path: &Path, line: usize) -> Result<String> {
    match &v[key] {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => bail!(
            "{}:{line}: field `{key}` missing or not a string",
            path.display()
        ),
    }
}

/// Load the first `limit` problems of `suite` from `data_dir` (see [`Suite::data_file`]). Errors
/// name the file and line of a malformed record, or the missing file and `--data-dir`.
pub fn load_problems(suite: Suite, data_dir: &Path, limit: Option<usize>) -> Result<Vec<Problem>> {
    let path = data_dir.join(suite.data_file());
    if !path.is_file() {
        bail!(
            "{}: data file {} not found; pass --data-dir <folder holding {}> (or set ${})",
            suite.name(),
            path.display(),
            suite.data_file(),
            quantlab_tasks::DATA_ENV
        );
    }
    let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::with_capacity(1 << 20, reader)
        .lines()
        .enumerate()
    {
        let line = line.with_context(|| format!("{}:{}: read error", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        let ln = i + 1;
        let v: serde_json::Value = serde_json::from_str(&jsonable(&line))
            .map_err(|e| anyhow!("{}:{ln}: malformed JSON line: {e}", path.display()))?;
        let p = match suite {
            Suite::HumanEval => {
                let prompt = str_field(&v, "prompt", &path, ln)?;
                let entry = str_field(&v, "entry_point", &path, ln)?;
                Problem {
                    task_id: str_field(&v, "task_id", &path, ln)?,
                    reference: format!(
                        "{prompt}{}",
                        str_field(&v, "canonical_solution", &path, ln)?
                    ),
                    test: format!("\n{}\ncheck({entry})\n", str_field(&v, "test", &path, ln)?),
                    prompt,
                    entry_point: entry,
                    raw: String::new(),
                    tests: Vec::new(),
                }
            }
            Suite::HumanEvalPlus | Suite::MbppPlus => {
                let prompt = str_field(&v, "prompt", &path, ln)?;
                for k in ["base_input", "plus_input"] {
                    // (Mbpp/793 stores an empty plus_input as `{}`.)
                    let empty_obj = v[k].as_object().is_some_and(|o| o.is_empty());
                    if !v[k].is_array() && !empty_obj {
                        bail!("{}:{ln}: field `{k}` missing or not a list", path.display());
                    }
                }
                let canonical = str_field(&v, "canonical_solution", &path, ln)?;
                let reference = if suite == Suite::HumanEvalPlus {
                    format!("{prompt}{canonical}")
                } else {
                    canonical
                };
                let tests = if suite == Suite::MbppPlus {
                    str_field(&v, "assertion", &path, ln)
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| l.trim_start().starts_with("assert"))
                        .map(str::to_string)
                        .collect()
                } else {
                    Vec::new()
                };
                Problem {
                    task_id: str_field(&v, "task_id", &path, ln)?,
                    entry_point: str_field(&v, "entry_point", &path, ln)?,
                    prompt,
                    reference,
                    test: String::new(),
                    raw: line.clone(),
                    tests,
                }
            }
            Suite::Mbpp => {
                let id = v["task_id"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("{}:{ln}: field `task_id` missing", path.display()))?;
                // The test split (MBPP paper: task_ids 11-510).
                if !(11..=510).contains(&id) {
                    continue;
                }
                let tests: Vec<String> = v["test_list"]
                    .as_array()
                    .ok_or_else(|| anyhow!("{}:{ln}: field `test_list` missing", path.display()))?
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                let setup = v["test_setup_code"].as_str().unwrap_or("");
                Problem {
                    task_id: id.to_string(),
                    prompt: str_field(&v, "text", &path, ln)?,
                    entry_point: String::new(),
                    reference: str_field(&v, "code", &path, ln)?,
                    test: format!("\n{setup}\n{}\n", tests.join("\n")),
                    raw: String::new(),
                    tests,
                }
            }
        };
        out.push(p);
    }
    if out.is_empty() {
        bail!("{}: no problems in {}", suite.name(), path.display());
    }
    Ok(out)
}

/// What running the reference solution of one problem gave.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    /// Plus suites: the file holding the pickled expected outputs per input set (`base`, `plus`),
    /// sealed (mode 0444) in the [`GroundTruths`] folder.
    pub expected: Option<PathBuf>,
    /// Plus suites: the problem's dataset line, sealed in the same folder (the sandboxed jobs
    /// link it instead of getting a copy each).
    pub problem_file: Option<PathBuf>,
    /// Seconds per input, per set (plus suites); whole-program suites: one entry `all`.
    pub times: BTreeMap<String, Vec<f64>>,
}

/// The ground truth of a list of problems (same order), with the folder holding its files
/// (removed when this is dropped).
#[derive(Debug)]
pub struct GroundTruths {
    /// One per problem.
    pub problems: Vec<GroundTruth>,
    _store: tempfile::TempDir,
}

/// Write `bytes` to `path` and seal it: mode 0444, owned by quantlab's user.
fn write_sealed(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
        .with_context(|| format!("sealing {}", path.display()))
}

fn driver_job(
    suite: Suite,
    p: &Problem,
    problem_file: Option<&Path>,
    mode: &str,
    code: &str,
    extra: serde_json::Value,
    limits: Limits,
) -> Job {
    let mut job = serde_json::json!({
        "mode": mode,
        "entry_point": p.entry_point,
        "dataset": suite.kind(),
        "sets": ["base_input", "plus_input"],
        "input_form": if suite == Suite::MbppPlus { mbpp_input_form(&p.task_id) } else { None },
    });
    if let (Some(o), serde_json::Value::Object(e)) = (job.as_object_mut(), extra) {
        o.extend(e);
    }
    let mut files = vec![
        ("job.json".to_string(), job.to_string().into_bytes()),
        ("code.py".to_string(), code.as_bytes().to_vec()),
    ];
    let mut links = Vec::new();
    match problem_file {
        Some(f) => links.push(("problem.json".to_string(), f.to_path_buf())),
        None => {
            let raw = if p.raw.is_empty() { "{}" } else { &p.raw };
            files.push(("problem.json".to_string(), raw.as_bytes().to_vec()));
        }
    }
    Job {
        program: DRIVER.to_string(),
        files,
        links,
        limits,
        ..Job::default()
    }
}

fn verdict_line(o: &crate::sandbox::Outcome) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
}

/// Run every reference solution in the sandbox: expected outputs and seconds per input for plus
/// suites, seconds for whole-program suites. References are trusted code (EvalPlus runs them in
/// its own process); here they run sandboxed anyway, several problems per process, one process
/// per rayon thread. Err names the first problem whose reference does not pass.
pub fn ground_truth(sb: &Sandbox, suite: Suite, problems: &[Problem]) -> Result<GroundTruths> {
    let plan = GtPlan::new(sb, suite, problems)?;
    let outs = sb.run_all(&plan.jobs);
    let mut gts = Vec::with_capacity(problems.len());
    for (c, o) in outs.into_iter().enumerate() {
        gts.extend(plan.read(suite, problems, c, o)?);
    }
    Ok(GroundTruths {
        problems: gts,
        _store: plan.store,
    })
}

/// The reference runs of a list of problems, planned: sandbox jobs of a few problems each.
struct GtPlan {
    store: tempfile::TempDir,
    problem_files: Vec<Option<PathBuf>>,
    /// Problems per job (the last may have fewer).
    chunk: usize,
    jobs: Vec<Job>,
}

impl GtPlan {
    fn new(sb: &Sandbox, suite: Suite, problems: &[Problem]) -> Result<GtPlan> {
        let limits = Limits {
            wall: Duration::from_secs(900),
            cpu_s: 900,
            // The report carries seconds per input for every problem of the chunk.
            output_cap: 64 << 20,
            // Some expected outputs are large (HumanEval/15's strings: > 64 MiB pickled).
            file_size: 1 << 30,
            ..Limits::default()
        };
        // Expected outputs and problem lines live here for the run, next to the sandbox roots, so
        // that the sandbox moves and links them instead of copying their bytes.
        let store = tempfile::Builder::new()
            .prefix("quantlab-gt-")
            .tempdir_in(sb.tmp_root())
            .with_context(|| format!("creating a folder in {}", sb.tmp_root().display()))?;
        let mut problem_files = Vec::with_capacity(problems.len());
        for (k, p) in problems.iter().enumerate() {
            if suite.is_plus() {
                let path = store.path().join(format!("problem_{k}.json"));
                write_sealed(&path, p.raw.as_bytes())?;
                problem_files.push(Some(path));
            } else {
                problem_files.push(None);
            }
        }
        // Several problems per process, in a few chunks per thread: the costs are unknown before the
        // run, so smaller chunks keep the threads evenly loaded to the end.
        let n_chunks = (4 * rayon::current_num_threads())
            .max(1)
            .min(problems.len().max(1));
        let chunk = problems.len().div_ceil(n_chunks).max(1);
        let mode = if suite.is_plus() {
            "record"
        } else {
            "script-record"
        };
        let jobs: Vec<Job> = problems
        .chunks(chunk)
        .enumerate()
        .map(|(c, ps)| {
            let meta: Vec<serde_json::Value> = ps
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "task_id": p.task_id,
                        "entry_point": if suite.is_plus() { p.entry_point.as_str() } else { "" },
                        "input_form": if suite == Suite::MbppPlus { mbpp_input_form(&p.task_id) } else { None },
                    })
                })
                .collect();
            let job = serde_json::json!({
                "mode": mode,
                "dataset": suite.kind(),
                "sets": ["base_input", "plus_input"],
                "problems": meta,
            });
            let mut files = vec![("job.json".to_string(), job.to_string().into_bytes())];
            let mut links = Vec::new();
            let mut keep = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                let k = c * chunk + i;
                let code = if suite.is_plus() {
                    p.reference.clone()
                } else {
                    format!("{}\n{}", p.reference, p.test)
                };
                files.push((format!("code_{i}.py"), code.into_bytes()));
                if let Some(pf) = &problem_files[k] {
                    links.push((format!("problem_{i}.json"), pf.clone()));
                    keep.push((
                        format!("expected_{i}.pkl"),
                        store.path().join(format!("expected_{k}.pkl")),
                    ));
                }
            }
            Job {
                program: DRIVER.to_string(),
                files,
                links,
                keep,
                limits: limits.clone(),
                ..Job::default()
            }
        })
        .collect();
        Ok(GtPlan {
            store,
            problem_files,
            chunk,
            jobs,
        })
    }

    /// The ground truth of job `c`'s problems from its outcome.
    fn read(
        &self,
        suite: Suite,
        problems: &[Problem],
        c: usize,
        o: Result<crate::sandbox::Outcome>,
    ) -> Result<Vec<GroundTruth>> {
        let (chunk, store, problem_files) = (self.chunk, &self.store, &self.problem_files);
        let ps = &problems[c * chunk..((c + 1) * chunk).min(problems.len())];
        let mut gts = Vec::with_capacity(ps.len());
        let o = o?;
        let v = verdict_line(&o).filter(|v| v["status"] == "done");
        let Some(v) = v.filter(|_| o.status == Status::Pass) else {
            bail!(
                "{}: running the reference solutions of {}..{} failed in the sandbox ({}: {})",
                suite.name(),
                ps[0].task_id,
                ps[ps.len() - 1].task_id,
                o.status.as_str(),
                o.reason
            );
        };
        for (i, p) in ps.iter().enumerate() {
            let k = c * chunk + i;
            let r = &v["problems"][p.task_id.as_str()];
            if r["status"] != "pass" {
                bail!(
                    "{} {}: the reference solution does not pass in the sandbox: {}",
                    suite.name(),
                    p.task_id,
                    r["error"].as_str().unwrap_or("no report")
                );
            }
            let mut times = BTreeMap::new();
            if suite.is_plus() {
                for set in ["base_input", "plus_input"] {
                    let t: Vec<f64> = r["times"][set]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default();
                    times.insert(set.to_string(), t);
                }
            } else {
                times.insert("all".to_string(), vec![r["time"].as_f64().unwrap_or(0.0)]);
            }
            let expected = if suite.is_plus() {
                let name = format!("expected_{i}.pkl");
                if !o.kept.contains(&name) {
                    bail!(
                        "{} {}: no expected outputs recorded",
                        suite.name(),
                        p.task_id
                    );
                }
                Some(store.path().join(format!("expected_{k}.pkl")))
            } else {
                None
            };
            gts.push(GroundTruth {
                expected,
                problem_file: problem_files[k].clone(),
                times,
            });
        }
        Ok(gts)
    }
}

/// One sample to judge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// The problem's task id.
    pub task_id: String,
    /// The full program (`solution`, or the problem's prompt + `completion`).
    pub solution: String,
}

/// Read a samples file: one JSON object per line with `task_id` and `solution` (a whole program)
/// or `completion` (appended to the problem's prompt, HumanEval style). Lines whose task is not
/// among `problems` are an error (naming file:line) unless `skip_unknown` (for `--limit`).
pub fn read_samples(path: &Path, problems: &[Problem], skip_unknown: bool) -> Result<Vec<Sample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let by_id: BTreeMap<&str, &Problem> =
        problems.iter().map(|p| (p.task_id.as_str(), p)).collect();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ln = i + 1;
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow!("{}:{ln}: malformed JSON line: {e}", path.display()))?;
        let id = match &v["task_id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => bail!("{}:{ln}: field `task_id` missing", path.display()),
        };
        let Some(p) = by_id.get(id.as_str()) else {
            if skip_unknown {
                continue;
            }
            bail!(
                "{}:{ln}: task_id {id:?} is not a problem of this suite",
                path.display()
            );
        };
        let solution = match (v["solution"].as_str(), v["completion"].as_str()) {
            (Some(s), _) => s.to_string(),
            (None, Some(c)) => format!("{}{c}", p.prompt),
            _ => bail!(
                "{}:{ln}: needs a string field `solution` or `completion`",
                path.display()
            ),
        };
        out.push(Sample {
            task_id: id,
            solution,
        });
    }
    if out.is_empty() {
        bail!("{}: no samples", path.display());
    }
    // As EvalPlus: a samples file must answer every problem scored (pass@k over a subset would
    // read as the suite's score).
    let have: std::collections::BTreeSet<&str> = out.iter().map(|s| s.task_id.as_str()).collect();
    let missing: Vec<&str> = problems
        .iter()
        .map(|p| p.task_id.as_str())
        .filter(|id| !have.contains(id))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: samples cover {} of {} problems (missing {}{}); generate the missing ones, or \
             score the first N problems with --limit N",
            path.display(),
            problems.len() - missing.len(),
            problems.len(),
            missing[..missing.len().min(5)].join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(out)
}

/// The verdict on one sample (one line of `samples_<suite>.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Problem id.
    pub task_id: String,
    /// Index of this sample among the problem's samples (file order).
    pub completion_id: usize,
    /// Overall: `pass` only when every judged input set passed.
    pub status: Status,
    /// Base tests (plus suites) or the whole program: pass/fail/timeout/error.
    pub base_status: Status,
    /// Plus suites: the extra tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plus_status: Option<Status>,
    /// Why it did not pass (first failing input and error, or the sandbox's reason).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Inputs passed / inputs, per set (plus suites).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub passed: BTreeMap<String, [usize; 2]>,
    /// Seconds the sandboxed process ran.
    pub wall_s: f64,
    /// The judged program.
    pub solution: String,
}

fn parse_status(s: &str) -> Status {
    match s {
        "pass" => Status::Pass,
        "timeout" => Status::Timeout,
        "error" => Status::Error,
        _ => Status::Fail,
    }
}

/// Judge `samples` against their problems (in parallel, one sandboxed process per sample).
/// Verdicts come back in sample order.
pub fn check_samples(
    sb: &Sandbox,
    suite: Suite,
    problems: &[Problem],
    gts: &GroundTruths,
    samples: &[Sample],
) -> Result<Vec<Verdict>> {
    let gts = &gts.problems;
    let ids = sample_ids(problems, samples)?;
    let jobs = samples
        .iter()
        .zip(&ids)
        .map(|(s, &(pi, _))| check_job(suite, &problems[pi], &gts[pi], s))
        .collect::<Result<Vec<Job>>>()?;
    // Longest first, so that the long jobs spread over the threads instead of one of them
    // ending the run alone.
    let costs: Vec<f64> = ids.iter().map(|&(pi, _)| check_cost(&gts[pi])).collect();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]));
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let sorted: Vec<Job> = order.iter().filter_map(|&j| slots[j].take()).collect();
    let mut outs: Vec<Option<Result<crate::sandbox::Outcome>>> =
        (0..sorted.len()).map(|_| None).collect();
    for (&j, o) in order.iter().zip(sb.run_all(&sorted)) {
        outs[j] = Some(o);
    }
    samples
        .iter()
        .zip(ids)
        .zip(outs)
        .map(|((s, (pi, cid)), o)| {
            let o = o.unwrap_or_else(|| Err(anyhow!("sample not judged")));
            verdict_of(suite, &problems[pi], cid, s, o)
        })
        .collect()
}

/// Run the reference solutions and judge the samples in one pass over one pool of workers:
/// each sample's check is queued as soon as its problem's ground truth is recorded (longest
/// first among those ready), so no worker waits for the last reference run while samples are
/// ready. The same jobs and verdicts as [`ground_truth`] then [`check_samples`]. Also returns
/// the seconds until the last reference run ended.
pub fn ground_truth_and_check(
    sb: &Sandbox,
    suite: Suite,
    problems: &[Problem],
    samples: &[Sample],
) -> Result<(GroundTruths, Vec<Verdict>, f64)> {
    use std::sync::{Condvar, Mutex};
    let start = std::time::Instant::now();
    let ids = sample_ids(problems, samples)?;
    let plan = GtPlan::new(sb, suite, problems)?;
    let mut by_problem: Vec<Vec<usize>> = vec![Vec::new(); problems.len()];
    for (j, &(pi, _)) in ids.iter().enumerate() {
        by_problem[pi].push(j);
    }
    struct State {
        next_gt: usize,
        gt_running: usize,
        gt_done_s: f64,
        /// (cost, sample index) of the samples whose ground truth is known.
        ready: Vec<(f64, usize)>,
        gts: Vec<Option<GroundTruth>>,
        error: Option<anyhow::Error>,
    }
    let state = Mutex::new(State {
        next_gt: 0,
        gt_running: 0,
        gt_done_s: 0.0,
        ready: Vec::new(),
        gts: vec![None; problems.len()],
        error: None,
    });
    let wake = Condvar::new();
    let outs: Vec<Mutex<Option<Result<crate::sandbox::Outcome>>>> =
        samples.iter().map(|_| Mutex::new(None)).collect();
    enum Task {
        Gt(usize),
        Check(usize, GroundTruth),
    }
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let worker = || loop {
        let task = {
            let mut st = lock();
            loop {
                if st.error.is_some() {
                    return;
                }
                if st.next_gt < plan.jobs.len() {
                    st.next_gt += 1;
                    st.gt_running += 1;
                    break Task::Gt(st.next_gt - 1);
                }
                if let Some(best) =
                    (0..st.ready.len()).max_by(|&a, &b| st.ready[a].0.total_cmp(&st.ready[b].0))
                {
                    let (_, j) = st.ready.swap_remove(best);
                    let gt = st.gts[ids[j].0].clone().expect("ground truth recorded");
                    break Task::Check(j, gt);
                }
                if st.gt_running == 0 {
                    return;
                }
                st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        match task {
            Task::Gt(c) => {
                let o = sb.run(&plan.jobs[c]);
                let read = plan.read(suite, problems, c, o);
                let mut st = lock();
                st.gt_running -= 1;
                match read {
                    Ok(gts) => {
                        for (i, gt) in gts.into_iter().enumerate() {
                            let pi = c * plan.chunk + i;
                            let cost = check_cost(&gt);
                            st.ready.extend(by_problem[pi].iter().map(|&j| (cost, j)));
                            st.gts[pi] = Some(gt);
                        }
                    }
                    Err(e) => st.error = Some(e),
                }
                if st.gt_running == 0 && st.next_gt == plan.jobs.len() {
                    st.gt_done_s = start.elapsed().as_secs_f64();
                }
                wake.notify_all();
            }
            Task::Check(j, gt) => {
                let (pi, _) = ids[j];
                let o =
                    check_job(suite, &problems[pi], &gt, &samples[j]).and_then(|job| sb.run(&job));
                *outs[j].lock().unwrap_or_else(|e| e.into_inner()) = Some(o);
            }
        }
    };
    let workers = rayon::current_num_threads().max(1);
    rayon::scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| worker());
        }
    });
    let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = st.error {
        return Err(e);
    }
    let verdicts = samples
        .iter()
        .zip(&ids)
        .zip(outs)
        .map(|((s, &(pi, cid)), o)| {
            let o = o
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(anyhow!("sample not judged")));
            verdict_of(suite, &problems[pi], cid, s, o)
        })
        .collect::<Result<Vec<Verdict>>>()?;
    let gts = st
        .gts
        .into_iter()
        .map(|g| g.ok_or_else(|| anyhow!("ground truth missing")))
        .collect::<Result<Vec<GroundTruth>>>()?;
    Ok((
        GroundTruths {
            problems: gts,
            _store: plan.store,
        },
        verdicts,
        st.gt_done_s,
    ))
}

/// (problem index, completion index among the problem's samples) per sample.
fn sample_ids(problems: &[Problem], samples: &[Sample]) -> Result<Vec<(usize, usize)>> {
    let index: BTreeMap<&str, usize> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.task_id.as_str(), i))
        .collect();
    let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids = Vec::with_capacity(samples.len());
    for s in samples {
        let pi = *index
            .get(s.task_id.as_str())
            .ok_or_else(|| anyhow!("sample for unknown task {}", s.task_id))?;
        let c = counters.entry(s.task_id.as_str()).or_default();
        ids.push((pi, *c));
        *c += 1;
    }
    Ok(ids)
}

/// Expected seconds of a sample's check, for ordering: the reference's seconds plus reading the
/// expected outputs.
fn check_cost(gt: &GroundTruth) -> f64 {
    let secs: f64 = gt.times.values().flatten().sum();
    let bytes = gt
        .expected
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .map_or(0, |m| m.len());
    secs + bytes as f64 * 1e-8
}

/// The sandbox job judging sample `s` of problem `p`.
fn check_job(suite: Suite, p: &Problem, gt: &GroundTruth, s: &Sample) -> Result<Job> {
    Ok(if suite.is_plus() {
        let mut limits_per_set = serde_json::Map::new();
        let mut wall = 1.0;
        for (set, ts) in &gt.times {
            let l: Vec<f64> = ts
                .iter()
                .map(|t| MIN_TIME_LIMIT_S.max(GT_TIME_LIMIT_FACTOR * t))
                .collect();
            wall += SET_TIME_CAP_S.min(l.iter().sum()) + 1.0;
            limits_per_set.insert(set.clone(), serde_json::json!(l));
        }
        let mut job = driver_job(
            suite,
            p,
            gt.problem_file.as_deref(),
            "check",
            &s.solution,
            serde_json::json!({ "limits": limits_per_set }),
            sandbox_limits(wall),
        );
        let expected = gt
            .expected
            .clone()
            .ok_or_else(|| anyhow!("{}: no expected outputs", p.task_id))?;
        job.links.push(("expected.pkl".into(), expected));
        job
    } else {
        let t = gt
            .times
            .get("all")
            .and_then(|v| v.first())
            .copied()
            .unwrap_or(0.0);
        let wall = SCRIPT_MIN_TIME_LIMIT_S.max(GT_TIME_LIMIT_FACTOR * t) + 1.0;
        let code = format!("{}\n{}", s.solution, p.test);
        driver_job(
            suite,
            p,
            None,
            "script",
            &code,
            serde_json::json!({}),
            sandbox_limits(wall),
        )
    })
}

/// The verdict on sample `s` (completion `cid` of problem `p`) from its check's outcome.
fn verdict_of(
    suite: Suite,
    p: &Problem,
    cid: usize,
    s: &Sample,
    o: Result<crate::sandbox::Outcome>,
) -> Result<Verdict> {
    let o = o?;
    let v = verdict_line(&o);
    let mut passed = BTreeMap::new();
    let (base, plus, reason) = match (&v, o.status) {
        (Some(v), Status::Pass) if suite.is_plus() && v["status"] == "done" => {
            let mut reason = String::new();
            let mut st = |set: &str| {
                let r = &v["sets"][set];
                let s = parse_status(r["status"].as_str().unwrap_or("fail"));
                passed.insert(
                    set.trim_end_matches("_input").to_string(),
                    [
                        r["passed"].as_u64().unwrap_or(0) as usize,
                        r["total"].as_u64().unwrap_or(0) as usize,
                    ],
                );
                if s != Status::Pass && reason.is_empty() {
                    reason = format!(
                        "{}: input {}: {}",
                        set.trim_end_matches("_input"),
                        r["failed_input"],
                        r["error"].as_str().unwrap_or("")
                    );
                }
                s
            };
            let b = st("base_input");
            let pl = st("plus_input");
            (b, Some(pl), reason)
        }
        (Some(v), Status::Pass) if !suite.is_plus() && v["status"] == "pass" => {
            (Status::Pass, None, String::new())
        }
        (v, st) => {
            // The process itself failed (crash, timeout, forged or missing verdict).
            let st = if st == Status::Pass { Status::Fail } else { st };
            let why = v
                .as_ref()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| o.reason.clone());
            let why = if why.is_empty() {
                "no verdict".to_string()
            } else {
                why
            };
            (st, suite.is_plus().then_some(st), why)
        }
    };
    let status = if base == Status::Pass && plus.is_none_or(|p| p == Status::Pass) {
        Status::Pass
    } else if base != Status::Pass {
        base
    } else {
        plus.unwrap_or(base)
    };
    Ok(Verdict {
        task_id: p.task_id.clone(),
        completion_id: cid,
        status,
        base_status: base,
        plus_status: plus,
        reason,
        passed,
        wall_s: o.wall_s,
        solution: s.solution.clone(),
    })
}

fn sandbox_limits(wall_s: f64) -> Limits {
    Limits {
        wall: Duration::from_secs_f64(wall_s),
        cpu_s: wall_s.ceil() as u64 + 1,
        ..Limits::default()
    }
}

/// Unbiased pass@k for one problem with `n` samples of which `c` pass (Chen et al. 2021, eq. 1),
/// computed as human-eval does: `1 - Π_{i=n-c+1}^{n} (1 - k/i)`, and 1 when `n - c < k`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n - c < k {
        return 1.0;
    }
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// pass@k metrics of verdicts: `pass@k` for k in {1, 10, 100} where every problem has at least k
/// samples (EvalPlus reports a k only then), from the overall status; for plus suites also
/// `base_pass@k` (base tests only). stderr is the standard error of the per-problem values.
pub fn pass_metrics(suite: Suite, verdicts: &[Verdict]) -> BTreeMap<String, MetricValue> {
    let mut per: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for v in verdicts {
        let e = per.entry(v.task_id.as_str()).or_default();
        e.0 += 1;
        e.1 += (v.status == Status::Pass) as usize;
        e.2 += (v.base_status == Status::Pass) as usize;
    }
    let min_n = per.values().map(|e| e.0).min().unwrap_or(0);
    let mut out = BTreeMap::new();
    for k in [1usize, 10, 100] {
        if min_n < k {
            continue;
        }
        let mut add = |name: String, pick: &dyn Fn(&(usize, usize, usize)) -> usize| {
            let xs: Vec<f64> = per.values().map(|e| pass_at_k(e.0, pick(e), k)).collect();
            out.insert(
                name,
                MetricValue {
                    value: quantlab_tasks::metrics::mean(&xs),
                    stderr: quantlab_tasks::metrics::mean_stderr(&xs),
                },
            );
        };
        add(format!("pass@{k}"), &|e| e.1);
        if suite.is_plus() {
            add(format!("base_pass@{k}"), &|e| e.2);
        }
    }
    out
}

/// Counts of each overall status.
pub fn status_counts(verdicts: &[Verdict]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for v in verdicts {
        *m.entry(v.status.as_str()).or_default() += 1;
    }
    m
}

/// Where and how to record a scoring run.
#[derive(Debug, Clone)]
pub struct CodeRunOptions {
    /// The run folder (created if missing).
    pub out_dir: PathBuf,
    /// The model (or the samples file standing in for one).
    pub model: ModelInfo,
    /// Backend settings recorded in results.json (generation settings, or the samples file).
    pub backend: serde_json::Value,
    /// `--limit`, if any.
    pub limit: Option<usize>,
}

/// Write `samples_<suite>.jsonl` (one [`Verdict`] per line) and `results.json` (the runner's
/// [`RunResults`] layout, task = suite name, primary metric `pass@1`) into `opts.out_dir`, both
/// atomically. `wall_time_s` is the caller's measure of the whole run.
pub fn write_run(
    suite: Suite,
    n_problems: usize,
    verdicts: &[Verdict],
    opts: &CodeRunOptions,
    started_at: String,
    wall_time_s: f64,
    sandbox: &Sandbox,
) -> Result<RunResults> {
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let mut buf = Vec::new();
    for v in verdicts {
        serde_json::to_writer(&mut buf, v)?;
        buf.push(b'\n');
    }
    write_atomic(
        &opts.out_dir.join(format!("samples_{}.jsonl", suite.name())),
        &buf,
    )?;
    let mut backend = opts.backend.clone();
    if let Some(o) = backend.as_object_mut() {
        o.insert("sandbox".into(), serde_json::to_value(sandbox.isolation())?);
        o.insert(
            "status_counts".into(),
            serde_json::to_value(status_counts(verdicts))?,
        );
    }
    let mut tasks = BTreeMap::new();
    tasks.insert(
        suite.name().to_string(),
        TaskResult {
            version: "evalplus-0.3".to_string(),
            n_docs: n_problems,
            primary_metric: "pass@1".to_string(),
            metrics: pass_metrics(suite, verdicts),
        },
    );
    let run = RunResults::new(
        &opts.out_dir,
        opts.model.clone(),
        suite.name().to_string(),
        backend,
        opts.limit,
        started_at,
        wall_time_s,
        tasks,
    );
    write_atomic(
        &opts.out_dir.join("results.json"),
        &serde_json::to_vec_pretty(&run)?,
    )?;
    Ok(run)
}

/// The model identity recorded for pre-generated samples scored without a model: name = the
/// file's stem, path = the file, scheme `samples`, `config_sha256` = the file's sha256.
pub fn samples_model_info(path: &Path) -> Result<ModelInfo> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ModelInfo {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "samples".into()),
        path: path.display().to_string(),
        scheme: "samples".into(),
        config_sha256: hex::encode(Sha256::digest(&bytes)),
        weights_sha256: None,
        quantization_config: None,
    })
}

/// What `quantlab eval --suite <code suite>` does.
pub struct CodeEval<'a> {
    /// The suite.
    pub suite: Suite,
    /// Folder holding the datasets.
    pub data_dir: PathBuf,
    /// Only the first N problems.
    pub limit: Option<usize>,
    /// Pre-generated samples (JSONL: `task_id` + `solution` or `completion`); when `None`,
    /// `backend` generates one greedy sample per problem.
    pub samples: Option<PathBuf>,
    /// The model backend (needed without `samples`).
    pub backend: Option<&'a mut dyn Backend>,
    /// Maximum new tokens per generation.
    pub max_new_tokens: usize,
    /// Greedy, or n samples per problem with temperature / top-p / seed.
    pub decoding: generate::Decoding,
    /// Run folder, model identity, settings.
    pub run: CodeRunOptions,
}

/// Load the problems, get the samples (file or greedy generation), run the reference solutions and
/// the samples in the sandbox, and write the run folder. Returns the run record and the verdicts.
pub fn run_code_eval(req: CodeEval<'_>) -> Result<(RunResults, Vec<Verdict>)> {
    let started = std::time::Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let suite = req.suite;
    let problems = load_problems(suite, &req.data_dir, req.limit)?;
    let sb = Sandbox::new().context("setting up the code sandbox")?;
    let mut backend_info = req.run.backend.clone();
    let samples = match (&req.samples, req.backend) {
        (Some(path), _) => {
            if let Some(o) = backend_info.as_object_mut() {
                o.insert(
                    "samples".into(),
                    serde_json::json!(path.display().to_string()),
                );
            }
            read_samples(path, &problems, req.limit.is_some())?
        }
        (None, Some(be)) => {
            let gens = generate::generate(
                be,
                suite,
                &problems,
                req.max_new_tokens,
                req.decoding,
                &|_| {},
            )?;
            if let Some(o) = backend_info.as_object_mut() {
                let mut g = serde_json::json!({
                    "prompt": "evalplus instruct (assistant turn prefilled)",
                    "max_new_tokens": req.max_new_tokens,
                });
                if let (Some(g), serde_json::Value::Object(d)) =
                    (g.as_object_mut(), req.decoding.describe())
                {
                    g.extend(d);
                }
                o.insert("generation".into(), g);
            }
            gens.into_iter().map(|g| g.sample).collect()
        }
        (None, None) => bail!(
            "{}: give --samples FILE or a MODEL to generate with",
            suite.name()
        ),
    };
    // Only the problems that have samples are judged (pass@k averages over them).
    let wanted: std::collections::BTreeSet<&str> =
        samples.iter().map(|s| s.task_id.as_str()).collect();
    let problems: Vec<Problem> = problems
        .into_iter()
        .filter(|p| wanted.contains(p.task_id.as_str()))
        .collect();
    let t_sandbox = std::time::Instant::now();
    let (_gts, verdicts, gt_s) = ground_truth_and_check(&sb, suite, &problems, &samples)?;
    if let Some(o) = backend_info.as_object_mut() {
        // The phases overlap: `ground_truth` is the seconds until the last reference run
        // ended, `samples` the rest, `total` both.
        let total = t_sandbox.elapsed().as_secs_f64();
        o.insert(
            "sandbox_seconds".into(),
            serde_json::json!({
                "ground_truth": gt_s,
                "samples": total - gt_s,
                "total": total,
            }),
        );
    }
    let mut run = req.run;
    run.backend = backend_info;
    let res = write_run(
        suite,
        problems.len(),
        &verdicts,
        &run,
        started_at,
        started.elapsed().as_secs_f64(),
        &sb,
    )?;
    Ok((res, verdicts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinity_become_null_outside_strings() {
        assert_eq!(
            jsonable(r#"{"a": [-Infinity, Infinity, NaN], "s": "NaN Infinity \" NaN"}"#),
            r#"{"a": [null, null, null], "s": "NaN Infinity \" NaN"}"#
        );
        assert_eq!(jsonable("[1.5, \"é\"]"), "[1.5, \"é\"]");
    }

    #[test]
    fn suite_names_parse() {
        assert_eq!(Suite::parse("HumanEval+"), Some(Suite::HumanEvalPlus));
        assert_eq!(Suite::parse("mbpp_plus"), Some(Suite::MbppPlus));
        assert_eq!(Suite::parse("gsm8k"), None);
    }
}
