//! quantlab-evaluate: runs task requests against a backend and records the run.
//!
//! - [`backend`]: the [`Backend`] trait (lm-eval `loglikelihood` / `generate_until` /
//!   `apply_chat_template` semantics) every model backend implements.
//! - [`runner`]: [`run_tasks`] turns `quantlab_tasks` specs into requests, scores the answers and
//!   writes the run folder (`samples_<task>.jsonl`, `results.json`).
//! - [`results`]: the run record shared with the reports crate.
pub mod backend;
pub mod cache;
pub mod codeeval;
pub mod local;
pub mod model_info;
pub mod results;
pub mod runner;
pub mod sandbox;
pub mod similarity;

pub use backend::{Backend, ChatMessage, GenerateRequest, Loglikelihood, LoglikelihoodRequest};
pub use results::{MetricValue, ModelInfo, RunResults, TaskResult};
pub use runner::{
    new_run_dir, read_results, read_samples, run_task, run_tasks, RunOptions, SampleRecord,
};
