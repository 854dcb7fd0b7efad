//! quantlab-reports: turns run records (`runs/<run-id>/results.json`, see
//! [`quantlab_evaluate::results::RunResults`]) into the recovery table of `quantlab report RUN...`.
//!
//! The table follows the shape of Table 2 of Kurtic et al., "Give Me BF16 or Give Me Death?
//! Accuracy-Performance Trade-Offs in LLM Quantization" (arXiv 2411.02355): per-task scores in
//! percent with two decimals, an "Average" row, and recovery % = quantized / BF16 × 100. The
//! average recovery is the recovery of the average score (ratio of the averages), which is the
//! definition that reproduces the paper's "Recovery %" column; see [`recovery`] for the evidence.
//!
//! - [`load_run`] reads one run record (a run folder or its `results.json`);
//! - [`recovery_table`] builds a [`RecoveryTable`] (a polars `DataFrame` underneath);
//! - [`RecoveryTable::to_markdown`], [`RecoveryTable::write_csv`], [`RecoveryTable::to_json`]
//!   render it;
//! - [`write_report`] does all of it for the CLI and writes `report.{md,csv,json}`;
//! - [`leaderboard`] adds the Open LLM Leaderboard V2 view (normalised benchmark scores, the
//!   paper's Table 3) for `leaderboard-v2` runs.

pub mod leaderboard;
pub mod load;
pub mod recovery;
pub mod regress;
pub mod render;
pub mod report;
pub mod similarity;
pub mod stats;

pub use load::load_run;
pub use quantlab_evaluate::results::RunResults;
pub use recovery::{recovery_table, RecoveryTable, RunColumn, AVERAGE_ROW, NEAR_RANDOM};
pub use report::{build_report, write_report, write_report_with, ReportOptions};
