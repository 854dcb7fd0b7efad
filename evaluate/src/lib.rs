//! quantlab-evaluate: runs task requests against a backend and records the run.
pub mod results;
