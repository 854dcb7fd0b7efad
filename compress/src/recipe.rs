//! Recipes: what a compression run does — the scheme (format), the weight observer, the algorithm
//! (RTN or GPTQ), optional SmoothQuant, and the modules left alone. The paper's three recipes
//! (arXiv 2411.02355 §3.2) are presets:
//!
//! | preset | recipe |
//! | --- | --- |
//! | `w8a8-fp8` | RTN, fp8 e4m3 weights per channel (min-max), dynamic per-token fp8 activations, no data |
//! | `w8a8-int8` | SmoothQuant α 0.8, then GPTQ int8 per channel symmetric (min-max), dynamic per-token int8 activations |
//! | `w4a16` | GPTQ int4 symmetric, groups of 128, MSE-optimal clipping (grid 100, max-shrink 0.80, norm 2.4), group scales chosen at each group boundary during the sweep (paper-era) |
//! | `w4a16-asym` | as `w4a16` with asymmetric weights (scale and zero point per group; the MSE search shrinks min and max together) |
//! | `w8a16` | GPTQ int8 symmetric, groups of 128 (min-max), 16-bit activations (compressed-tensors' `W8A16`) |
//!
//! `lm_head` is never quantized.

use crate::gptq::{ActOrder, GptqConfig, ScaleUpdate};
use crate::observer::Observer;
use crate::scheme::{Scheme, SchemeName};

/// Weight quantization algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    /// Round-to-nearest with the observer's scales; no calibration data.
    Rtn,
    /// GPTQ with these settings; needs calibration data.
    Gptq(GptqConfig),
}

/// SmoothQuant settings; the mappings are the Llama family's (q/k/v ← input_layernorm,
/// gate/up ← post_attention_layernorm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothQuantConfig {
    /// Migration strength α in [0, 1] (`smoothing_strength`).
    pub alpha: f64,
}

/// A resolved compression recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub scheme: Scheme,
    pub observer: Observer,
    pub algorithm: Algorithm,
    pub smoothquant: Option<SmoothQuantConfig>,
    /// AWQ scale search before quantization ([`crate::awq`]); `None` for the presets.
    pub awq: Option<crate::awq::AwqConfig>,
    /// Whole module names or `re:` regexes (matched from the start of the name, as vLLM reads
    /// them) left unquantized, besides `lm_head`.
    pub ignore: Vec<String>,
}

impl Recipe {
    /// The paper's recipe for `name`; `group_size` overrides the preset's group size.
    ///
    /// Errors: a group size for a per-channel scheme, or 0.
    pub fn preset(name: SchemeName, group_size: Option<usize>) -> anyhow::Result<Self> {
        let mut scheme = Scheme::preset(name, group_size)?;
        let (observer, algorithm, smoothquant) = match name {
            SchemeName::W8A8Fp8 => (Observer::MinMax, Algorithm::Rtn, None),
            SchemeName::W8A8Int8 => (
                Observer::MinMax,
                Algorithm::Gptq(GptqConfig {
                    true_sequential: true,
                    ..GptqConfig::default()
                }),
                Some(SmoothQuantConfig { alpha: 0.8 }),
            ),
            SchemeName::W4A16 | SchemeName::W4A16Asym => (
                Observer::MSE_PAPER,
                Algorithm::Gptq(GptqConfig {
                    scale_update: ScaleUpdate::GroupBoundary,
                    actorder: ActOrder::None,
                    true_sequential: true,
                    ..GptqConfig::default()
                }),
                None,
            ),
            SchemeName::W8A16 => (
                Observer::MinMax,
                Algorithm::Gptq(GptqConfig {
                    true_sequential: true,
                    ..GptqConfig::default()
                }),
                None,
            ),
        };
        scheme.observer = observer.name();
        if let Algorithm::Gptq(g) = algorithm {
            scheme.actorder = g.actorder;
        }
        Ok(Recipe {
            scheme,
            observer,
            algorithm,
            smoothquant,
            awq: None,
            ignore: Vec::new(),
        })
    }

    /// Whether the recipe needs calibration data (GPTQ or SmoothQuant).
    pub fn needs_calibration(&self) -> bool {
        matches!(self.algorithm, Algorithm::Gptq(_))
            || self.smoothquant.is_some()
            || self.awq.is_some()
    }

    /// One line for logs and `quantlab_recipe.json`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(sq) = self.smoothquant {
            parts.push(format!("SmoothQuant α={}", sq.alpha));
        }
        if let Some(a) = self.awq {
            parts.push(format!(
                "AWQ grid {} duo-scaling {:?}",
                a.n_grid, a.duo_scaling
            ));
        }
        match self.algorithm {
            Algorithm::Rtn => parts.push("RTN".into()),
            Algorithm::Gptq(g) => parts.push(format!(
                "GPTQ block {} dampening {} act-order {:?} scales {:?}{}",
                g.block_size,
                g.dampening_frac,
                g.actorder,
                g.scale_update,
                if g.true_sequential {
                    " true-sequential"
                } else {
                    " layer-wise"
                }
            )),
        }
        parts.push(format!(
            "{:?} {:?} observer {:?}",
            self.scheme.weight, self.scheme.strategy, self.observer
        ));
        parts.join(" + ")
    }
}

impl Recipe {
    /// Parse an llm-compressor-style recipe YAML file (see `recipe_yaml.rs`).
    pub fn from_yaml_file(
        path: &std::path::Path,
        group_size: Option<usize>,
    ) -> anyhow::Result<Self> {
        crate::recipe_yaml::parse_recipe_file(path, group_size)
    }
}
