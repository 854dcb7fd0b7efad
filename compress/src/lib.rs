//! quantlab-compress: quantization schemes and recipes, the quantization arithmetic, observers
//! (min-max, MSE), round-to-nearest, GPTQ, SmoothQuant, AWQ, the sequential calibrated pipeline and
//! the compressed-tensors checkpoint writer.
pub mod awq;
pub mod gptq;
pub mod gptq_sweep;
pub mod hessian_bf16;
pub mod mse_kernel;
pub mod observer;
pub mod pack;
pub mod pipeline;
pub mod quantize;
pub mod recipe;
pub mod recipe_yaml;
pub mod scheme;
pub mod sequential;
pub mod smoothquant;
pub mod writer;

pub use pipeline::{compress, CompressOptions, CompressSummary};
pub use recipe::{Algorithm, Recipe};
pub use scheme::{Scheme, SchemeName};
pub use sequential::{compress_calibrated, CalibratedOptions, LayerReport};
