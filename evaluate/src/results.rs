//! The run record that `quantlab eval` writes (`runs/<run-id>/results.json`) and `quantlab report`
//! reads. One file per run; per-document records go beside it as `samples_<task>.jsonl`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identity of the evaluated model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Alias or path as the user gave it (e.g. `smollm2-135m` or `models/x-w4a16`).
    pub name: String,
    /// Resolved folder of the checkpoint.
    pub path: String,
    /// Quantization scheme label: `bf16` for an unquantized checkpoint, else the compressed-tensors
    /// scheme name we wrote (`w4a16`, `w8a8-fp8`, `w8a8-int8`, ...).
    pub scheme: String,
    /// sha256 of config.json (hex).
    pub config_sha256: String,
    /// `quantization_config` from config.json, if any.
    #[serde(default)]
    pub quantization_config: Option<serde_json::Value>,
    /// sha256 (hex) over the checkpoint's `*.safetensors` files, in name order: for each file its
    /// name, a NUL byte, then its bytes (see `model_info::weights_sha256`). Absent in records
    /// written before it was introduced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// One metric's aggregate over the evaluated documents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricValue {
    /// Mean over documents, in [0, 1] for accuracies (not percent).
    pub value: f64,
    /// Standard error of the mean (sample std / sqrt(n), as lm-eval's `mean_stderr`).
    pub stderr: f64,
}

/// Aggregates of one task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    /// Version string of the task spec (`version` in its YAML).
    pub version: String,
    /// Number of documents evaluated (after `--limit`).
    pub n_docs: usize,
    /// The metric tables and the paper report by default (e.g. `acc_norm` for HellaSwag).
    pub primary_metric: String,
    /// Metric name -> aggregate.
    pub metrics: BTreeMap<String, MetricValue>,
}

/// Everything one `quantlab eval` invocation produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResults {
    /// quantlab version that produced the run.
    pub quantlab_version: String,
    /// Folder name under `runs/`.
    pub run_id: String,
    pub model: ModelInfo,
    /// Suite name, or `custom` when `--tasks` was used.
    pub suite: String,
    /// Backend name and settings (device, dtype, batch size, ...).
    pub backend: serde_json::Value,
    /// `--limit` if given.
    pub limit: Option<usize>,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Wall-clock seconds of the whole evaluation.
    pub wall_time_s: f64,
    /// Task name -> aggregates, in a stable order.
    pub tasks: BTreeMap<String, TaskResult>,
    /// Task name -> documents taken from the resume state of an interrupted run (not evaluated
    /// again); empty for a run that was not interrupted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resumed_docs: BTreeMap<String, usize>,
}

/// File name of the lm-evaluation-harness layout of a run record, beside `results.json`.
pub const LM_EVAL_RESULTS_FILE: &str = "results_lm_eval.json";

impl RunResults {
    /// A record of the current quantlab version whose `run_id` is the name of `out_dir` (empty
    /// when it has none) and with no resumed documents. The one constructor of run records, so a
    /// field added later is filled in one place.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        out_dir: &std::path::Path,
        model: ModelInfo,
        suite: String,
        backend: serde_json::Value,
        limit: Option<usize>,
        started_at: String,
        wall_time_s: f64,
        tasks: BTreeMap<String, TaskResult>,
    ) -> RunResults {
        RunResults {
            quantlab_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: out_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            model,
            suite,
            backend,
            limit,
            started_at,
            wall_time_s,
            tasks,
            resumed_docs: BTreeMap::new(),
        }
    }

    /// The record in lm-evaluation-harness's output layout (`lm_eval/evaluator.py`,
    /// `simple_evaluate` + `EvaluationTracker`), so dashboards reading lm-eval's `results_*.json`
    /// read ours: `results.<task>` holds `"<metric>,<filter>"` and `"<metric>_stderr,<filter>"`
    /// (filter `none` for multiple-choice metrics, e.g. `acc,none`; generation metrics already
    /// carry theirs, e.g. `exact_match,strict-match`), plus `versions`, `n-shot` (from
    /// `n_shot`), `higher_is_better`, `n-samples` (`original` is only known without `--limit`),
    /// `config` (model, model_args, backend settings, limit) and timing fields.
    /// Every `(task, metric) -> value` of the run, and `task -> n_docs`: the inputs of
    /// `quantlab_tasks::leaderboard::leaderboard_v2`.
    #[allow(clippy::type_complexity)]
    pub fn scores_and_sizes(&self) -> (BTreeMap<(String, String), f64>, BTreeMap<String, usize>) {
        let mut scores = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        for (task, r) in &self.tasks {
            for (metric, v) in &r.metrics {
                scores.insert((task.clone(), metric.clone()), v.value);
            }
            sizes.insert(task.clone(), r.n_docs);
        }
        (scores, sizes)
    }

    pub fn to_lm_eval(&self, n_shot: &BTreeMap<String, usize>) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut results = Map::new();
        let mut versions = Map::new();
        let mut hib = Map::new();
        let mut n_samples = Map::new();
        let mut shots = Map::new();
        let mut groups = Map::new();
        for (task, t) in &self.tasks {
            let mut r = Map::new();
            r.insert("alias".into(), json!(task));
            let mut better = Map::new();
            for (key, m) in &t.metrics {
                let (metric, filter) = key.split_once(',').unwrap_or((key.as_str(), "none"));
                r.insert(format!("{metric},{filter}"), json!(m.value));
                r.insert(format!("{metric}_stderr,{filter}"), json!(m.stderr));
                better.insert(metric.to_string(), json!(true));
            }
            results.insert(task.clone(), Value::Object(r));
            versions.insert(
                task.clone(),
                t.version
                    .parse::<f64>()
                    .map_or_else(|_| json!(t.version), |v| json!(v)),
            );
            hib.insert(task.clone(), Value::Object(better));
            n_samples.insert(
                task.clone(),
                json!({
                    "original": if self.limit.is_none() { json!(t.n_docs) } else { Value::Null },
                    "effective": t.n_docs,
                }),
            );
            shots.insert(task.clone(), json!(n_shot.get(task).copied().unwrap_or(0)));
            groups.insert(task.clone(), json!([]));
        }
        let date = chrono::DateTime::parse_from_rfc3339(&self.started_at)
            .map(|d| d.timestamp() as f64)
            .ok();
        json!({
            "results": results,
            "group_subtasks": groups,
            "versions": versions,
            "n-shot": shots,
            "higher_is_better": hib,
            "n-samples": n_samples,
            "config": {
                "model": format!("quantlab-{}", self.backend.get("backend").and_then(Value::as_str).unwrap_or("local")),
                "model_args": format!("pretrained={}", self.model.path),
                "batch_size": self.backend.get("batch_size").cloned().unwrap_or(Value::Null),
                "device": self.backend.get("device").cloned().unwrap_or(Value::Null),
                "limit": self.limit,
                "bootstrap_iters": 0,
                "backend": self.backend,
            },
            "model_name": self.model.name,
            "model_source": "quantlab",
            "config_sha256": self.model.config_sha256,
            "weights_sha256": self.model.weights_sha256,
            "date": date,
            "total_evaluation_time_seconds": format!("{}", self.wall_time_s),
            "quantlab_version": self.quantlab_version,
        })
    }
}
