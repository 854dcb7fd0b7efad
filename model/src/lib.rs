//! quantlab-model: checkpoints (safetensors, GGUF import), tokenizer and chat template, and the
//! Llama-family forward pass used for scoring and generation.
pub mod config;
pub mod cuda_graph;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod llama;
pub mod quant;
pub mod registry;
pub mod throughput;
pub mod tokenizer;
pub mod weights;

pub use config::LlamaConfig;
pub use engine::{Engine, EngineOptions, Generation, Sampling, Score};
pub use error::{ModelError, Result};
pub use tokenizer::{Message, Tokenizer};
pub use weights::Weights;
