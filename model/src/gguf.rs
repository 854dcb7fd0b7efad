//! GGUF reader and import of llama-family GGUF files into a Hugging Face folder.
//!
//! * [`reader`]: the GGUF v2/v3 container (spec `ggml/docs/gguf.md`, gguf-py
//!   `gguf/gguf_reader.py`): metadata of every value type, tensor infos, alignment, data offset.
//! * [`quants`]: ggml block types and dequantization to f32 (F32, F16, BF16, Q4_0, Q4_1, Q8_0),
//!   bit-exact with gguf-py `gguf/quants.py`.
//! * [`tokenizer`]: a `tokenizers` byte-level BPE built from `tokenizer.ggml.*` metadata.
//! * [`import_gguf`]: the whole import (bf16 `model.safetensors`, `config.json`,
//!   `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`), written atomically.

mod import;
pub mod quants;
pub mod reader;
pub mod tokenizer;

pub use import::{import_gguf, import_gguf_with, ImportSummary};
pub use quants::GgmlType;
pub use reader::{GgufFile, MetadataValue, TensorInfo};
