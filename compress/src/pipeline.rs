//! `quantlab compress` for data-free round-to-nearest: stream every Linear of the decoder from the
//! mmap'd checkpoint, quantize it with the scheme's min-max scales, and write a compressed-tensors
//! checkpoint. `lm_head` (and anything in `ignore`) stays in its original dtype, as in the paper's
//! recipes (§3.2) and llm-compressor's presets.
//! GPTQ / SmoothQuant / calibration are issue 3; this module is their skeleton.

use crate::quantize::quantize_rtn_with;
use crate::scheme::{Scheme, Strategy};
use crate::writer::write_checkpoint;
use anyhow::{Context, Result};
use quantlab_model::{LlamaConfig, Weights};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

/// Options of one compression run.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub scheme: Scheme,
    /// Module names kept unquantized (whole names or `re:` regexes matched from the start, as
    /// vLLM reads them; see [`is_ignored`]); `lm_head` always.
    pub ignore: Vec<String>,
    /// Replace an existing output folder.
    pub force: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompressSummary {
    pub out_dir: PathBuf,
    pub scheme: String,
    pub quantized_linears: usize,
    pub kept_tensors: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub wall_s: f64,
    /// Mean relative Frobenius error ‖W − Ŵ‖/‖W‖ over quantized linears.
    pub mean_rel_error: f64,
}

/// Names of the Linear modules of a Llama-family decoder layer, in order.
pub const LAYER_LINEARS: &[&str] = &[
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

fn largest_pow2_divisor_le(n: usize, cap: usize) -> usize {
    let mut g = 1;
    while g * 2 <= cap && n.is_multiple_of(g * 2) {
        g *= 2;
    }
    g
}

/// Whether module `name` (e.g. `model.layers.3.mlp.down_proj`) is left unquantized by `ignore`,
/// matched exactly as compressed-tensors and vLLM match the `ignore` list of the config.json we
/// write (compressed-tensors `utils/match.py` `match_name`, vLLM
/// `compressed_tensors/utils.py` `_is_equal_or_regex_match`): a `re:` entry is a regular
/// expression that must match at the start of the name (Python's `re.match`), any other entry
/// must equal the whole name. So `re:.*down_proj` matches every down_proj, `down_proj` none.
///
/// Errors: an invalid `re:` pattern (naming it).
pub fn is_ignored(name: &str, ignore: &[String]) -> Result<bool> {
    for ig in ignore {
        if let Some(re) = ig.strip_prefix("re:") {
            if let Err(e) = regex::Regex::new(re) {
                anyhow::bail!("ignore pattern '{ig}' is not a valid regex: {e}");
            }
            let r = regex::Regex::new(&format!("^(?:{re})"))
                .with_context(|| format!("ignore pattern '{ig}' is not a valid regex"))?;
            if r.is_match(name) {
                return Ok(true);
            }
        } else if name == ig {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every `ignore` entry names at least one Linear of a `num_layers`-layer Llama (its seven
/// Linears per layer, or `lm_head`): an entry that matches nothing is a typo that would otherwise
/// quantize what the user meant to keep, and be written to config.json. And the Linears vLLM fuses
/// (q/k/v into `qkv_proj`, gate/up into `gate_up_proj`) are ignored all together or not at all:
/// vLLM refuses a fused layer whose parts have different schemes.
///
/// Errors: the first entry that matches no module, or the first layer whose fused group is split
/// (naming the entry or the Linears).
pub fn check_ignore_entries(ignore: &[String], num_layers: usize) -> Result<()> {
    let mut modules: Vec<String> = vec!["lm_head".into()];
    for i in 0..num_layers {
        for l in LAYER_LINEARS {
            modules.push(format!("model.layers.{i}.{l}"));
        }
    }
    for ig in ignore {
        let one = std::slice::from_ref(ig);
        let mut hit = false;
        for m in &modules {
            if is_ignored(m, one)? {
                hit = true;
                break;
            }
        }
        if !hit {
            anyhow::bail!(
                "ignore entry '{ig}' matches no Linear of this model (as vLLM and \
                 compressed-tensors read it: a plain entry is a whole name such as \
                 model.layers.0.mlp.down_proj or lm_head, a 're:' entry a regex matched from the \
                 start of the name, e.g. 're:.*down_proj')"
            );
        }
    }
    for i in 0..num_layers {
        for group in [
            &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"][..],
            &["mlp.gate_proj", "mlp.up_proj"][..],
        ] {
            let names: Vec<String> = group
                .iter()
                .map(|l| format!("model.layers.{i}.{l}"))
                .collect();
            let flags = names
                .iter()
                .map(|n| is_ignored(n, ignore))
                .collect::<Result<Vec<bool>>>()?;
            if flags.iter().any(|&f| f) && !flags.iter().all(|&f| f) {
                anyhow::bail!(
                    "ignore keeps only some of {} in bf16; vLLM fuses them into one layer and \
                     refuses mixed schemes: ignore all of them or none",
                    names.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Compress the model in `model_dir` into `out_dir`.
///
/// Errors: the model cannot be read (file and field named), it is already quantized, a group size
/// does not divide a Linear's input dimension (suggesting one that does), or the output exists.
pub fn compress(
    model_dir: &Path,
    out_dir: &Path,
    opts: &CompressOptions,
) -> Result<CompressSummary> {
    let t0 = Instant::now();
    let cfg_path = model_dir.join("config.json");
    let cfg = LlamaConfig::from_file(&cfg_path)?;
    if cfg.quantization_config.is_some() {
        anyhow::bail!("{}: field 'quantization_config': this model is already quantized; compress its BF16 original", cfg_path.display());
    }
    let w = Weights::open(model_dir)?;
    let mut linears: Vec<String> = Vec::new();
    for i in 0..cfg.num_hidden_layers {
        for l in LAYER_LINEARS {
            let name = format!("model.layers.{i}.{l}");
            if is_ignored(&name, &opts.ignore)? {
                continue;
            }
            linears.push(name);
        }
    }
    check_ignore_entries(&opts.ignore, cfg.num_hidden_layers)?;
    check_group_divisibility(&w, &linears, opts.scheme.strategy)?;
    let bar = if opts.progress {
        indicatif::ProgressBar::new(linears.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} linears ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(opts.scheme.name.to_string());
    let linear_set: std::collections::HashSet<String> =
        linears.iter().map(|n| format!("{n}.weight")).collect();
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut kept = 0usize;
    let mut bytes_in = 0u64;
    let mut err_sum = 0.0;
    let _g = tch::no_grad_guard();
    let names: Vec<String> = w.names().map(String::from).collect();
    for name in &names {
        let t = w.get(name)?;
        bytes_in += (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        if !linear_set.contains(name) {
            out.push((name.clone(), t));
            kept += 1;
            continue;
        }
        let prefix = name.trim_end_matches(".weight");
        if !matches!(
            t.kind(),
            Kind::Float | Kind::Double | Kind::BFloat16 | Kind::Half
        ) {
            anyhow::bail!(
                "{}: tensor '{name}' is {:?}, not a floating-point weight; compress a BF16/FP16/FP32 checkpoint",
                w.file_of(name).map(|p| p.display().to_string()).unwrap_or_default(),
                t.kind()
            );
        }
        let scale_kind = match t.kind() {
            Kind::Float | Kind::Double => Kind::BFloat16,
            k => k,
        };
        let wf = t.to_kind(Kind::Float);
        let q = quantize_rtn_with(
            &wf,
            opts.scheme.weight,
            opts.scheme.strategy,
            opts.scheme.symmetric,
            scale_kind,
        );
        if !bool::try_from(q.scale.isfinite().all()).unwrap_or(false) {
            anyhow::bail!(
                "{}: tensor '{name}' holds NaN or Inf values; refusing to quantize it",
                w.file_of(name)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        let deq = crate::quantize::dequantize(&q, opts.scheme.strategy);
        let rel = ((&wf - &deq).norm().double_value(&[])) / wf.norm().double_value(&[]).max(1e-30);
        err_sum += rel;
        for (suffix, t) in
            crate::pack::linear_tensors(&opts.scheme, &q.codes, q.scale, q.zero_point.as_ref())
                .with_context(|| format!("{prefix}: packing"))?
        {
            out.push((format!("{prefix}.{suffix}"), t));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut ignore = vec!["lm_head".to_string()];
    ignore.extend(opts.ignore.iter().cloned());
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path)?)
        .with_context(|| format!("{}: not valid JSON", cfg_path.display()))?;
    config["quantization_config"] = opts.scheme.quantization_config(&ignore);
    let recipe = serde_json::json!({
        "tool": format!("quantlab {}", env!("CARGO_PKG_VERSION")),
        "source_model": model_dir.display().to_string(),
        "scheme": opts.scheme.name.as_str(),
        "algorithm": "rtn",
        "strategy": format!("{:?}", opts.scheme.strategy),
        "ignore": ignore,
    });
    write_checkpoint(model_dir, out_dir, &out, &config, &recipe, opts.force)?;
    let bytes_out = std::fs::metadata(out_dir.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(CompressSummary {
        out_dir: out_dir.to_path_buf(),
        scheme: opts.scheme.name.to_string(),
        quantized_linears: linears.len(),
        kept_tensors: kept,
        bytes_in,
        bytes_out,
        wall_s: t0.elapsed().as_secs_f64(),
        mean_rel_error: if linears.is_empty() {
            0.0
        } else {
            err_sum / linears.len() as f64
        },
    })
}

/// Check, before any work, that a group size divides the input dimension of every Linear in
/// `linears` (module names without `.weight`).
///
/// Errors: names the first Linear that does not fit, counts them, and suggests the largest power
/// of two that divides every Linear of the model.
pub fn check_group_divisibility(w: &Weights, linears: &[String], strategy: Strategy) -> Result<()> {
    let Strategy::Group(g) = strategy else {
        return Ok(());
    };
    let mut bad: Vec<(String, usize)> = Vec::new();
    let mut dims = Vec::new();
    for n in linears {
        let (shape, _) = w.info(&format!("{n}.weight"))?;
        dims.push(shape[1]);
        if shape[1] % g != 0 {
            bad.push((n.clone(), shape[1]));
        }
    }
    if let Some((name, inf)) = bad.first() {
        let all_gcd = dims.iter().fold(0usize, |a, &b| gcd(a, b));
        let suggest = largest_pow2_divisor_le(all_gcd, g);
        anyhow::bail!(
            "group size {g} does not divide the input dimension {inf} of {name} ({} Linears affected); \
             use --group-size {suggest}, the largest power of two up to {g} that divides every Linear of this model",
            bad.len()
        );
    }
    Ok(())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
