//! quantlab-compress: quantization schemes and presets, the quantization arithmetic, round-to-
//! nearest weight quantization, and the compressed-tensors checkpoint writer.
//! GPTQ, SmoothQuant, AWQ and the sequential calibrated pipeline build on these (issue 3).
pub mod pack;
pub mod pipeline;
pub mod quantize;
pub mod scheme;
pub mod writer;

pub use pipeline::{compress, CompressOptions, CompressSummary};
pub use scheme::{Scheme, SchemeName};
