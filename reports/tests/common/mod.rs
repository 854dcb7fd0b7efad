//! Helpers shared by the integration tests: run records built in code, Markdown table parsing.
#![allow(dead_code)]

use quantlab_evaluate::results::{MetricValue, ModelInfo, RunResults, TaskResult};
use std::collections::BTreeMap;

/// A run record with the given (task, primary metric, value in [0,1], stderr) entries.
pub fn run(
    run_id: &str,
    model: &str,
    scheme: &str,
    scores: &[(&str, &str, f64, f64)],
) -> RunResults {
    let mut tasks = BTreeMap::new();
    for &(task, metric, value, stderr) in scores {
        let mut metrics = BTreeMap::new();
        metrics.insert(metric.to_string(), MetricValue { value, stderr });
        tasks.insert(
            task.to_string(),
            TaskResult {
                version: "1".into(),
                n_docs: 100,
                primary_metric: metric.to_string(),
                metrics,
            },
        );
    }
    RunResults {
        quantlab_version: "0.1.0".into(),
        run_id: run_id.into(),
        model: ModelInfo {
            name: model.into(),
            path: format!("models/{model}"),
            scheme: scheme.into(),
            config_sha256: "00".repeat(32),
            quantization_config: None,
            weights_sha256: None,
        },
        suite: "custom".into(),
        backend: serde_json::json!({"name": "test"}),
        limit: None,
        started_at: "2026-01-01T00:00:00Z".into(),
        wall_time_s: 1.0,
        tasks,
        resumed_docs: Default::default(),
    }
}

/// The table lines of a Markdown rendering, as trimmed cells (header first, rule line dropped).
pub fn md_rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| :-") && !l.starts_with("| -"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The Markdown row whose first cell is `task`.
pub fn md_row(md: &str, task: &str) -> Vec<String> {
    md_rows(md)
        .into_iter()
        .find(|r| r[0] == task)
        .unwrap_or_else(|| panic!("no row `{task}` in\n{md}"))
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}
