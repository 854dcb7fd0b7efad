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
}
