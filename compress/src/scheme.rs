//! Quantization schemes: the paper's three formats (arXiv 2411.02355 §3.2) as named presets.
//!
//! | preset | weights | activations | compressed-tensors format |
//! | --- | --- | --- | --- |
//! | `w8a8-fp8` | fp8 e4m3, per output channel, static | fp8 e4m3, per token, dynamic | `float-quantized` |
//! | `w8a8-int8` | int8 symmetric, per output channel | int8 symmetric, per token, dynamic | `int-quantized` |
//! | `w4a16` | int4 symmetric, groups of 128 along the input | 16-bit | `pack-quantized` |
//! | `w4a16-asym` | int4 asymmetric (zero points), groups of 128 | 16-bit | `pack-quantized` |
//! | `w8a16` | int8 symmetric, groups of 128 | 16-bit | `pack-quantized` (4 per int32) |
//!
//! The `quantization_config` written for each mirrors llm-compressor 0.14's output for the same
//! preset (`reference/llmcompressor/*/config.json`), so vLLM and transformers load our checkpoints.
//! `w8a16` and `w4a16-asym` are compressed-tensors' `W8A16` and `W4A16_ASYM` preset schemes
//! (`quantization/quant_scheme.py`); they are not in the paper.

use serde_json::json;
use std::fmt;

/// The preset names we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeName {
    W8A8Fp8,
    W8A8Int8,
    W4A16,
    W4A16Asym,
    W8A16,
}

impl SchemeName {
    /// All presets, in the order `--help` lists them.
    pub const ALL: [SchemeName; 5] = [
        SchemeName::W8A8Fp8,
        SchemeName::W8A8Int8,
        SchemeName::W4A16,
        SchemeName::W4A16Asym,
        SchemeName::W8A16,
    ];

    /// The CLI spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            SchemeName::W8A8Fp8 => "w8a8-fp8",
            SchemeName::W8A8Int8 => "w8a8-int8",
            SchemeName::W4A16 => "w4a16",
            SchemeName::W4A16Asym => "w4a16-asym",
            SchemeName::W8A16 => "w8a16",
        }
    }

    /// Parse a CLI name (case-insensitive, `_` accepted for `-`). Errors list the known names.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let n = s.to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .iter()
            .copied()
            .find(|k| {
                k.as_str() == n
                    || (n == "fp8" && *k == SchemeName::W8A8Fp8)
                    || (n == "int8" && *k == SchemeName::W8A8Int8)
            })
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                anyhow::anyhow!("unknown scheme '{s}' (known: {})", known.join(", "))
            })
    }
}

impl fmt::Display for SchemeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Weight number format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// Signed integer of `bits` bits, range `[-2^(b-1), 2^(b-1)-1]`.
    Int { bits: u32 },
    /// FP8 E4M3 (max 448).
    Fp8E4M3,
}

/// How weight scales are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One scale for the whole tensor.
    Tensor,
    /// One scale per output row.
    Channel,
    /// One scale per `group_size` consecutive input columns of each row.
    Group(usize),
}

/// A resolved scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    pub name: SchemeName,
    pub weight: WeightType,
    pub strategy: Strategy,
    /// Dynamic per-token activation quantization (W8A8), or none (weight-only).
    pub activations: Option<WeightType>,
    /// Symmetric weights (zero point 0).
    pub symmetric: bool,
    /// Weight observer name written to the config (`memoryless_minmax`, `memoryless_mse`).
    pub observer: &'static str,
    /// Act-order written to the config.
    pub actorder: crate::gptq::ActOrder,
}

impl Scheme {
    /// The preset, with `group_size` overriding the preset's group size for grouped schemes.
    pub fn preset(name: SchemeName, group_size: Option<usize>) -> anyhow::Result<Self> {
        let s = match name {
            SchemeName::W8A8Fp8 => Scheme {
                name,
                weight: WeightType::Fp8E4M3,
                strategy: Strategy::Channel,
                activations: Some(WeightType::Fp8E4M3),
                symmetric: true,
                observer: "memoryless_minmax",
                actorder: crate::gptq::ActOrder::None,
            },
            SchemeName::W8A8Int8 => Scheme {
                name,
                weight: WeightType::Int { bits: 8 },
                strategy: Strategy::Channel,
                activations: Some(WeightType::Int { bits: 8 }),
                symmetric: true,
                observer: "memoryless_minmax",
                actorder: crate::gptq::ActOrder::None,
            },
            SchemeName::W4A16 => Scheme {
                name,
                weight: WeightType::Int { bits: 4 },
                strategy: Strategy::Group(group_size.unwrap_or(128)),
                activations: None,
                symmetric: true,
                observer: "memoryless_mse",
                actorder: crate::gptq::ActOrder::None,
            },
            SchemeName::W4A16Asym => Scheme {
                name,
                weight: WeightType::Int { bits: 4 },
                strategy: Strategy::Group(group_size.unwrap_or(128)),
                activations: None,
                symmetric: false,
                observer: "memoryless_mse",
                actorder: crate::gptq::ActOrder::None,
            },
            SchemeName::W8A16 => Scheme {
                name,
                weight: WeightType::Int { bits: 8 },
                strategy: Strategy::Group(group_size.unwrap_or(128)),
                activations: None,
                symmetric: true,
                observer: "memoryless_minmax",
                actorder: crate::gptq::ActOrder::None,
            },
        };
        if let Some(g) = group_size {
            if !matches!(s.strategy, Strategy::Group(_)) {
                anyhow::bail!("--group-size {g} given, but scheme {name} quantizes weights per channel (no groups)");
            }
            if g == 0 {
                anyhow::bail!("--group-size must be > 0");
            }
        }
        Ok(s)
    }

    /// compressed-tensors format string for the checkpoint.
    pub fn format(&self) -> &'static str {
        match (self.weight, self.activations) {
            (WeightType::Fp8E4M3, _) => "float-quantized",
            (WeightType::Int { .. }, Some(_)) => "int-quantized",
            (WeightType::Int { .. }, None) => "pack-quantized",
        }
    }

    fn args_json(
        t: WeightType,
        strategy: &str,
        group: Option<usize>,
        dynamic: bool,
        observer: Option<&str>,
        symmetric: bool,
        actorder: serde_json::Value,
    ) -> serde_json::Value {
        let (kind, bits) = match t {
            WeightType::Int { bits } => ("int", bits),
            WeightType::Fp8E4M3 => ("float", 8),
        };
        json!({
            "actorder": actorder,
            "block_structure": null,
            "dynamic": dynamic,
            "group_size": group,
            "num_bits": bits,
            "observer": observer,
            "observer_kwargs": {},
            "scale_dtype": null,
            "strategy": strategy,
            "symmetric": symmetric,
            "type": kind,
            // compressed-tensors serializes zp_dtype only for asymmetric args (int8 for ints).
            "zp_dtype": if symmetric { serde_json::Value::Null } else { json!("torch.int8") }
        })
    }

    /// The `quantization_config` object for config.json (compressed-tensors 0.19 layout).
    pub fn quantization_config(&self, ignore: &[String]) -> serde_json::Value {
        let (strategy, group) = match self.strategy {
            Strategy::Tensor => ("tensor", None),
            Strategy::Channel => ("channel", None),
            Strategy::Group(g) => ("group", Some(g)),
        };
        let weights = Self::args_json(
            self.weight,
            strategy,
            group,
            false,
            Some(self.observer),
            self.symmetric,
            self.actorder.as_json(),
        );
        let input = self
            .activations
            .map(|a| Self::args_json(a, "token", None, true, None, true, serde_json::Value::Null))
            .unwrap_or(serde_json::Value::Null);
        json!({
            "config_groups": {
                "group_0": {
                    "format": self.format(),
                    "input_activations": input,
                    "output_activations": null,
                    "targets": ["Linear"],
                    "weights": weights
                }
            },
            "format": self.format(),
            "global_compression_ratio": null,
            "ignore": ignore,
            "kv_cache_scheme": null,
            "quant_method": "compressed-tensors",
            "quantization_status": "compressed",
            "sparsity_config": {},
            "transform_config": {},
            "version": "0.19.0"
        })
    }
}
