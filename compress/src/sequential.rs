//! The calibrated, sequential pipeline (llm-compressor's "sequential pipeline"; GPTQ paper §4
//! "layer-by-layer"): one decoder layer on the device at a time.
//!
//! 1. The calibration sequences are embedded on the host; their hidden states `[b, t, hidden]`
//!    (compute dtype) stay on the host between layers and travel to the device batch by batch.
//! 2. For layer `i`: load it from the mmap'd checkpoint onto the device; *calibration pass*: run
//!    every batch through it with taps that accumulate the fp32 Hessians of the four Linear input
//!    sites (q/k/v share one, gate/up share one) and, for SmoothQuant, the per-channel ranges of
//!    the two norm outputs; smooth (folding into the norms, `H ← diag(1/s) H diag(1/s)`); GPTQ or
//!    RTN on each Linear (q/k/v stacked, gate/up stacked: rows are independent given `H`);
//!    *propagation pass*: run the batches through the quantized layer (with the W8A8 activation
//!    rounding the engine applies at inference) to produce layer `i + 1`'s inputs.
//! 3. The quantized tensors of each finished layer go to `<out>.partial/layer_<i>.safetensors`
//!    with a JSON manifest (recipe, calibration fingerprint, per-module losses); a re-run with the
//!    same recipe and calibration reloads finished layers, re-propagates through them (one pass,
//!    no calibration, no GPTQ) and continues. The final checkpoint is written atomically.
//!
//! Peak device memory ≈ one layer in the compute dtype + its fp32 copies during GPTQ + the
//! Hessians + one batch of activations.

use crate::gptq::{gptq_quantize_owned, GptqOutput, Hessian, WeightQuant};
use crate::pipeline::{check_group_divisibility, CompressSummary, LAYER_LINEARS};
use crate::quantize::{expand_qparam, quantize_codes, stored_scale, QParams};
use crate::recipe::{Algorithm, Recipe};
use crate::scheme::{Strategy, WeightType};
use crate::smoothquant::{fold, smooth_hessian, smoothing_scales, ChannelRange};
use crate::writer::write_checkpoint;
use anyhow::{bail, Context, Result};
use quantlab_model::llama::{rope_cos_sin, rope_inv_freq, DecoderLayer, Site};
use quantlab_model::quant::{ActQuant, Linear};
use quantlab_model::{LlamaConfig, Weights};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Options of a calibrated run.
#[derive(Debug, Clone)]
pub struct CalibratedOptions {
    /// Device for the layer being compressed.
    pub device: Device,
    /// Forward dtype (bf16 by default); GPTQ, observers and Hessian sums are always fp32.
    pub compute_kind: Kind,
    /// Calibration tokens per forward batch (sequences of equal length are batched up to this).
    pub batch_tokens: usize,
    /// Keep the calibration activations in host memory between stages instead of on `device`
    /// (for GPUs too small to hold them: hidden states and MLP intermediates of all calibration
    /// tokens, e.g. 2 GB + 7.5 GB in bf16 for Llama-3.1-8B with 128 × 2048 tokens).
    pub offload_activations: bool,
    /// Replace an existing output folder.
    pub force: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Description of the calibration set (written to the recipe file).
    pub calibration_description: String,
    /// Fingerprint of the calibration token ids (resume guard).
    pub calibration_fingerprint: String,
}

/// Per-module GPTQ loss (llm-compressor's logged "error") and the layer times.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct LayerReport {
    pub layer: usize,
    pub losses: BTreeMap<String, f64>,
    pub seconds: f64,
    /// Modules quantized with round-to-nearest because their Hessian was not positive definite.
    pub rtn_fallback: Vec<String>,
    /// Relative Frobenius error ‖W − Ŵ‖/‖W‖ per module (W after smoothing).
    pub rel_errors: BTreeMap<String, f64>,
    /// Seconds spent accumulating Hessians.
    pub hessian_s: f64,
    /// Seconds spent in GPTQ / RTN (observers included).
    pub quantize_s: f64,
    /// AWQ scale search per mapping (empty without AWQ).
    #[serde(default)]
    pub awq: Vec<AwqRecord>,
    /// Seconds spent in AWQ's scale search.
    #[serde(default)]
    pub awq_s: f64,
    /// Peak bytes held by libtorch's CUDA caching allocator during this layer, in GiB (what
    /// `torch.cuda.max_memory_allocated` reports); absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_allocated_gib: Option<f64>,
}

/// One AWQ mapping of a layer: which op was smoothed, the grid point chosen and the parent
/// module's output MSE with the first grid point (identity scales) and with the chosen one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct AwqRecord {
    /// The smoothed op, e.g. `model.layers.0.input_layernorm`.
    pub smooth: String,
    pub ratio: f64,
    pub duo_scaling: bool,
    pub initial_loss: f64,
    pub best_loss: f64,
    /// Every grid point's loss, in grid order.
    #[serde(default)]
    pub grid_losses: Vec<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    recipe: String,
    calibration: String,
    source_model: String,
    /// [`resume_settings`]: everything else that decides the numbers (absent in manifests of
    /// older versions, which therefore start over).
    #[serde(default)]
    settings: String,
    layers: Vec<LayerReport>,
}

/// What decides a layer's numbers besides the recipe and the calibration tokens, for the resume
/// guard: the forward dtype, the batch split (`batch_tokens` changes the bf16 sums), the device
/// kind (CPU and CUDA kernels round differently), and each source file of the model (`config.json`
/// and the `*.safetensors` files: name, size and modification time), so that weights edited in
/// place, or a model updated at the same path, are not mixed with layers made from the old ones.
///
/// # Errors
/// The model folder cannot be listed, or a file's metadata cannot be read (named).
pub fn resume_settings(model_dir: &Path, opts: &CalibratedOptions) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(model_dir)
        .with_context(|| format!("listing {}", model_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "config.json")
                || p.extension().is_some_and(|e| e == "safetensors")
        })
        .collect();
    files.sort();
    let mut parts = vec![
        format!("dtype={:?}", opts.compute_kind),
        format!("batch_tokens={}", opts.batch_tokens),
        format!(
            "device={}",
            if opts.device.is_cuda() { "cuda" } else { "cpu" }
        ),
    ];
    for f in files {
        let m = std::fs::metadata(&f).with_context(|| format!("reading {}", f.display()))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        parts.push(format!(
            "{}:{}:{mtime}",
            f.file_name().unwrap_or_default().to_string_lossy(),
            m.len()
        ));
    }
    Ok(parts.join(";"))
}

/// Calibration hidden states for one batch: host tensor `[b, t, hidden]`.
struct Batch {
    x: Tensor,
    sequences: i64,
}

/// Move `t` to `store`: to the device as is; to the host (offloaded activations) into pinned
/// (page-locked) memory when `t` is on a CUDA device, so both copies run at full PCIe speed.
fn to_store(t: Tensor, store: Device) -> Tensor {
    match (t.device(), store) {
        (Device::Cuda(i), Device::Cpu) => {
            let dst = Tensor::empty(t.size(), (t.kind(), Device::Cpu)).pin_memory(Device::Cuda(i));
            let mut dst = dst;
            dst.copy_(&t);
            dst
        }
        _ => t.to_device(store),
    }
}

fn embed_batches(
    w: &Weights,
    cfg: &LlamaConfig,
    seqs: &[Vec<i64>],
    batch_tokens: usize,
    kind: Kind,
) -> Result<Vec<Batch>> {
    let embed = w.get_shaped(
        "model.embed_tokens.weight",
        &[cfg.vocab_size as i64, cfg.hidden_size as i64],
    )?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let t = seqs[i].len();
        let mut j = i + 1;
        while j < seqs.len() && seqs[j].len() == t && (j - i + 1) * t <= batch_tokens.max(t) {
            j += 1;
        }
        let mut flat = Vec::with_capacity((j - i) * t);
        for s in &seqs[i..j] {
            for &id in s {
                if id < 0 || id as usize >= cfg.vocab_size {
                    bail!(
                        "calibration token id {id} is outside the vocabulary (0..{})",
                        cfg.vocab_size
                    );
                }
                flat.push(id);
            }
        }
        let ids = Tensor::from_slice(&flat).view([(j - i) as i64, t as i64]);
        let x = Tensor::embedding(&embed, &ids, -1, false, false).to_kind(kind);
        out.push(Batch {
            x,
            sequences: (j - i) as i64,
        });
        i = j;
    }
    Ok(out)
}

/// Rotary tables per sequence length, on the device.
struct Rope {
    inv_freq: Tensor,
    kind: Kind,
    cache: BTreeMap<(i64, i64), (Tensor, Tensor)>,
}

impl Rope {
    fn get(&mut self, b: i64, t: i64) -> (Tensor, Tensor) {
        let dev = self.inv_freq.device();
        let kind = self.kind;
        let inv = &self.inv_freq;
        let (c, s) = self.cache.entry((b, t)).or_insert_with(|| {
            let pos = Tensor::arange(t, (Kind::Int64, dev))
                .unsqueeze(0)
                .expand([b, t], true);
            rope_cos_sin(inv, &pos, kind)
        });
        (c.shallow_clone(), s.shallow_clone())
    }
}

/// The quantized form of one Linear, ready for the checkpoint and for the forward.
struct QuantizedLinear {
    /// Tensors to write: (suffix, tensor) e.g. ("weight_packed", ..).
    tensors: Vec<(String, Tensor)>,
    /// Fake-quantized weight `[out, in]` fp32 (what the engine will compute with).
    dequant: Tensor,
}

fn checkpoint_tensors(
    recipe: &Recipe,
    w_fq: &Tensor,
    qp: &QParams,
    g_idx: Option<&Tensor>,
    prefix: &str,
) -> Result<QuantizedLinear> {
    let scheme = &recipe.scheme;
    let (out, inf) = (w_fq.size()[0], w_fq.size()[1]);
    let scale_kind = Kind::BFloat16;
    let s = expand_qparam(&qp.scale, scheme.strategy, out, inf, g_idx);
    let z = qp
        .zero_point
        .as_ref()
        .map(|z| expand_qparam(z, scheme.strategy, out, inf, g_idx));
    // Codes are packed on their device; the caller stores the packed words on the host.
    let codes = quantize_codes(w_fq, &s, z.as_ref(), scheme.weight);
    drop((s, z));
    let zp_stored = qp
        .zero_point
        .as_ref()
        .map(|z| stored_scale(z, scheme.strategy, Kind::Float).to_kind(Kind::Int8));
    let mut tensors = crate::pack::linear_tensors(
        scheme,
        &codes,
        stored_scale(&qp.scale, scheme.strategy, scale_kind),
        zp_stored.as_ref(),
    )
    .with_context(|| format!("{prefix}: packing"))?;
    if let Some(g) = g_idx {
        tensors.push((
            "weight_g_idx".to_string(),
            g.to_kind(Kind::Int).to_device(Device::Cpu),
        ));
    }
    Ok(QuantizedLinear {
        tensors,
        dequant: w_fq.to_kind(Kind::Float),
    })
}

/// Checks that can fail fast, before any calibration data is read: `config.json` parses and
/// names a supported architecture, the model is not already quantized, the safetensors headers
/// are sound, and `out_dir` is neither inside the model nor (without `force`) already there.
///
/// # Errors
/// Each names the file and field at fault (`config.json: field 'model_type'`, a corrupt
/// `model.safetensors`, an existing output folder).
pub fn preflight(model_dir: &Path, out_dir: &Path, force: bool) -> Result<(LlamaConfig, Weights)> {
    let cfg_path = model_dir.join("config.json");
    let cfg = LlamaConfig::from_file(&cfg_path)?;
    if cfg.quantization_config.is_some() {
        bail!("{}: field 'quantization_config': this model is already quantized; compress its BF16 original", cfg_path.display());
    }
    crate::writer::check_output_is_safe(out_dir, &[model_dir])?;
    if out_dir.exists() && !force {
        bail!(
            "{}: already exists; pass --force to replace it",
            out_dir.display()
        );
    }
    let w = Weights::open(model_dir)?;
    Ok((cfg, w))
}

/// Compress `model_dir` into `out_dir` following `recipe`, calibrated on `calibration` (token id
/// sequences). Returns the summary and per-layer reports (losses per module).
///
/// Errors: unreadable or already-quantized model, a group size that does not divide a Linear,
/// non-finite weights, calibration ids outside the vocabulary, an output folder that exists
/// (without `force`), a partial run made with another recipe or calibration set.
pub fn compress_calibrated(
    model_dir: &Path,
    out_dir: &Path,
    recipe: &Recipe,
    calibration: &[Vec<i64>],
    opts: &CalibratedOptions,
) -> Result<(CompressSummary, Vec<LayerReport>)> {
    let t0 = Instant::now();
    let _g = tch::no_grad_guard();
    let (cfg, w) = preflight(model_dir, out_dir, opts.force)?;
    let cfg_path = model_dir.join("config.json");
    if calibration.is_empty() && recipe.needs_calibration() {
        bail!(
            "the recipe needs calibration data (GPTQ/SmoothQuant) but the calibration set is empty"
        );
    }
    let mut ignore = vec!["lm_head".to_string()];
    ignore.extend(recipe.ignore.iter().cloned());
    // Which linears we quantize.
    let mut quantize_set = std::collections::HashSet::new();
    for i in 0..cfg.num_hidden_layers {
        for l in LAYER_LINEARS {
            let name = format!("model.layers.{i}.{l}");
            if !w.contains(&format!("{name}.weight")) {
                bail!(
                    "{}: tensor '{name}.weight' is missing (config.json says {} layers)",
                    model_dir.display(),
                    cfg.num_hidden_layers
                );
            }
            if !crate::pipeline::is_ignored(&name, &ignore)? {
                quantize_set.insert(name);
            }
        }
    }
    crate::pipeline::check_ignore_entries(&recipe.ignore, cfg.num_hidden_layers)?;
    let mut names: Vec<String> = quantize_set.iter().cloned().collect();
    names.sort();
    check_group_divisibility(&w, &names, recipe.scheme.strategy)?;

    let recipe_desc = recipe.describe();
    // Resume state.
    let partial = partial_dir(out_dir);
    let manifest_path = partial.join("manifest.json");
    let mut reports: Vec<LayerReport> = Vec::new();
    let settings = resume_settings(model_dir, opts)?;
    if manifest_path.exists() {
        let m: Manifest = serde_json::from_str(&std::fs::read_to_string(&manifest_path)?)
            .with_context(|| {
                format!(
                    "{}: not a valid resume manifest; delete the folder to start over",
                    manifest_path.display()
                )
            })?;
        if m.recipe == recipe_desc
            && m.calibration == opts.calibration_fingerprint
            && m.source_model == model_dir.display().to_string()
            && m.settings == settings
        {
            reports = m.layers;
            tracing::info!(
                "resuming: {} of {} layers already compressed in {}",
                reports.len(),
                cfg.num_hidden_layers,
                partial.display()
            );
        } else {
            tracing::warn!(
                "{}: made with another recipe, calibration set, model (or model files since changed), dtype, batch size or device; starting over",
                partial.display()
            );
            std::fs::remove_dir_all(&partial)?;
        }
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;

    let device = opts.device;
    let ck = opts.compute_kind;
    let store = if opts.offload_activations {
        Device::Cpu
    } else {
        device
    };
    let mut batches = embed_batches(&w, &cfg, calibration, opts.batch_tokens, ck)?;
    for b in batches.iter_mut() {
        b.x = to_store(b.x.to_device(device), store);
    }
    let mut rope = Rope {
        inv_freq: Tensor::from_slice(&rope_inv_freq(&cfg)?).to_device(device),
        kind: ck,
        cache: BTreeMap::new(),
    };
    let act_quant = match recipe.scheme.activations {
        None => None,
        Some(WeightType::Int { .. }) => Some(ActQuant::Int8Token),
        Some(WeightType::Fp8E4M3) => Some(ActQuant::Fp8Token),
    };
    let bar = if opts.progress {
        indicatif::ProgressBar::new(cfg.num_hidden_layers as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} layers ({elapsed}, eta {eta}) {prefix}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(recipe.scheme.name.to_string());
    let mut layer_tensors: Vec<(String, Tensor)> = Vec::new();
    let cuda_index = match device {
        Device::Cuda(i) => Some(i),
        _ => None,
    };
    // The next layer's weights are read (and, for a GPU, copied into pinned host memory) on a
    // helper thread while this layer compresses; only the host-to-device copy stays on the
    // critical path.
    std::thread::scope(|sc| -> Result<()> {
        let prefetch = |li: usize| {
            (li < cfg.num_hidden_layers).then(|| {
                let (cfg, w) = (&cfg, &w);
                sc.spawn(move || -> Result<DecoderLayer> {
                    let _g = tch::no_grad_guard();
                    let layer = DecoderLayer::load(model_dir, cfg, w, li, None, ck, Device::Cpu)?;
                    Ok(match device {
                        Device::Cuda(_) => layer.map_tensors(|t| t.pin_memory(device)),
                        _ => layer,
                    })
                })
            })
        };
        let mut next = prefetch(0);
        for li in 0..cfg.num_hidden_layers {
            let tl = Instant::now();
            if let Some(i) = cuda_index {
                quantlab_model::cuda_graph::reset_peak_allocated(i);
            }
            let prefix = format!("model.layers.{li}");
            let layer_file = partial.join(format!("layer_{li}.safetensors"));
            let mut ph = Phases::new(device);
            let host_layer = next
                .take()
                .map(|h| h.join())
                .ok_or_else(|| anyhow::anyhow!("layer {li} was not prefetched"))?
                .map_err(|_| anyhow::anyhow!("the thread loading layer {li} panicked"))??;
            next = prefetch(li + 1);
            let mut layer = match device {
                Device::Cpu => host_layer,
                _ => host_layer.map_tensors(|t| t.to_device(device)),
            };
            ph.mark("load");
            let done = li < reports.len() && layer_file.exists();
            let saved: Vec<(String, Tensor)> = if done {
                let lw = Tensor::read_safetensors(&layer_file)
                    .with_context(|| format!("reading {}", layer_file.display()))?;
                // Rebuild the quantized layer from its saved tensors.
                apply_saved(&mut layer, &lw, &prefix, recipe, ck, device, act_quant)?;
                lw
            } else {
                check_finite_weights(&mut layer, &prefix)?;
                let (rep, tensors) = compress_layer(
                    &mut layer,
                    li,
                    &cfg,
                    &mut batches,
                    &mut rope,
                    recipe,
                    &quantize_set,
                    ck,
                    device,
                    store,
                    act_quant,
                )?;
                ph.mark("compress");
                let mut rep = rep;
                rep.seconds = tl.elapsed().as_secs_f64();
                rep.peak_allocated_gib =
                    cuda_index.and_then(quantlab_model::cuda_graph::peak_allocated_gib);
                // Save this layer for resume, then the manifest.
                let tmp = partial.join(format!("layer_{li}.safetensors.tmp"));
                let refs: Vec<(&str, &Tensor)> =
                    tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
                Tensor::write_safetensors(&refs, &tmp)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &layer_file)?;
                reports.truncate(li);
                reports.push(rep);
                let m = Manifest {
                    recipe: recipe_desc.clone(),
                    calibration: opts.calibration_fingerprint.clone(),
                    source_model: model_dir.display().to_string(),
                    settings: settings.clone(),
                    layers: reports.clone(),
                };
                let tmpm = partial.join("manifest.json.tmp");
                std::fs::write(&tmpm, serde_json::to_string_pretty(&m)?)?;
                std::fs::rename(&tmpm, &manifest_path)?;
                ph.mark("save");
                ph.log(&prefix);
                tensors
            };
            // A resumed layer: propagate through its quantized form (compress_layer already did).
            if done && li + 1 < cfg.num_hidden_layers {
                for b in batches.iter_mut() {
                    let x = b.x.to_device(device);
                    let (bs, t) = (x.size()[0], x.size()[1]);
                    let (cos, sin) = rope.get(bs, t);
                    let y = layer.forward(&cfg, &x, &cos, &sin, None, None, &mut |_, _| {});
                    b.x = to_store(y, store);
                }
            }
            layer_tensors.extend(saved);
            let loss: f64 = reports
                .get(li)
                .map(|r| r.losses.values().sum())
                .unwrap_or(0.0);
            bar.set_prefix(format!(
                "layer {li}: loss {loss:.2} in {:.1}s",
                tl.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    // Assemble the checkpoint: every source tensor that is not a layer tensor we rewrote.
    let rewritten: std::collections::HashSet<String> =
        layer_tensors.iter().map(|(n, _)| n.clone()).collect();
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut kept = 0usize;
    let mut bytes_in = 0u64;
    for name in w.names().map(String::from).collect::<Vec<_>>() {
        // Sizes from the header: the Linears we replaced are never read again.
        let (shape, dtype) = w.info(&name)?;
        bytes_in += (shape.iter().product::<usize>() * dtype.bitsize()).div_ceil(8) as u64;
        let prefix = name.trim_end_matches(".weight");
        if quantize_set.contains(prefix) || rewritten.contains(&name) {
            continue;
        }
        out.push((name.clone(), w.get(&name)?));
        kept += 1;
    }
    out.extend(layer_tensors);
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path)?)
        .with_context(|| format!("{}: not valid JSON", cfg_path.display()))?;
    config["quantization_config"] = recipe.scheme.quantization_config(&ignore);
    let total_loss: f64 = reports.iter().flat_map(|r| r.losses.values()).sum();
    let rels: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.rel_errors.values().copied())
        .collect();
    let mean_rel_error = if rels.is_empty() {
        0.0
    } else {
        rels.iter().sum::<f64>() / rels.len() as f64
    };
    let recipe_json = serde_json::json!({
        "tool": format!("quantlab {}", env!("CARGO_PKG_VERSION")),
        "source_model": model_dir.display().to_string(),
        "scheme": recipe.scheme.name.as_str(),
        "recipe": recipe_desc,
        "calibration": opts.calibration_description,
        "ignore": ignore,
        "gptq_total_loss": total_loss,
        "layers": reports,
    });
    write_checkpoint(model_dir, out_dir, &out, &config, &recipe_json, opts.force)?;
    let _ = std::fs::remove_dir_all(&partial);
    let bytes_out = std::fs::metadata(out_dir.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok((
        CompressSummary {
            out_dir: out_dir.to_path_buf(),
            scheme: recipe.scheme.name.to_string(),
            quantized_linears: quantize_set.len(),
            kept_tensors: kept,
            bytes_in,
            bytes_out,
            wall_s: t0.elapsed().as_secs_f64(),
            mean_rel_error,
        },
        reports,
    ))
}

/// `<out>.partial` beside the output folder.
pub fn partial_dir(out_dir: &Path) -> PathBuf {
    let mut s = out_dir.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// Refuse a layer whose Linear weights hold NaN or Inf, naming the tensor (before smoothing
/// or stacking would spread the bad values to its neighbours).
fn check_finite_weights(layer: &mut DecoderLayer, prefix: &str) -> Result<()> {
    for m in LAYER_LINEARS {
        let w = &linear_mut(layer, m).weight;
        if !crate::gptq::all_finite(w) {
            bail!(
                "{prefix}.{m}.weight: the weight holds NaN or Inf values; refusing to quantize it"
            );
        }
    }
    Ok(())
}

fn linear_mut<'a>(layer: &'a mut DecoderLayer, suffix: &str) -> &'a mut Linear {
    match suffix {
        "self_attn.q_proj" => &mut layer.q,
        "self_attn.k_proj" => &mut layer.k,
        "self_attn.v_proj" => &mut layer.v,
        "self_attn.o_proj" => &mut layer.o,
        "mlp.gate_proj" => &mut layer.gate,
        "mlp.up_proj" => &mut layer.up,
        _ => &mut layer.down,
    }
}

/// Load a finished layer's saved tensors into `layer` (dequantized weights, smoothed norms).
fn apply_saved(
    layer: &mut DecoderLayer,
    saved: &[(String, Tensor)],
    prefix: &str,
    recipe: &Recipe,
    ck: Kind,
    device: Device,
    act: Option<ActQuant>,
) -> Result<()> {
    let get = |n: &str| {
        saved
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.shallow_clone())
    };
    if let Some(t) = get(&format!("{prefix}.input_layernorm.weight")) {
        layer.input_norm = t.to_kind(ck).to_device(device);
    }
    if let Some(t) = get(&format!("{prefix}.post_attention_layernorm.weight")) {
        layer.post_norm = t.to_kind(ck).to_device(device);
    }
    for l in LAYER_LINEARS {
        let p = format!("{prefix}.{l}");
        let Some(scale) = get(&format!("{p}.weight_scale")) else {
            continue;
        };
        let lin = linear_mut(layer, l);
        let (out, inf) = (lin.weight.size()[0], lin.weight.size()[1]);
        let bits = match recipe.scheme.weight {
            WeightType::Int { bits } => bits,
            WeightType::Fp8E4M3 => 8,
        };
        let packed = get(&format!("{p}.weight_packed"));
        let codes = match &packed {
            Some(pk) => quantlab_model::quant::unpack_bits(pk, bits, inf),
            None => get(&format!("{p}.weight")).context("saved layer lacks its weight")?,
        };
        let g_idx = get(&format!("{p}.weight_g_idx")).map(|g| g.to_kind(Kind::Int64));
        let as_2d = |t: Tensor| {
            let t = t.to_kind(Kind::Float);
            if recipe.scheme.strategy == Strategy::Tensor {
                t.reshape([1, 1])
            } else {
                t
            }
        };
        let s = expand_qparam(
            &as_2d(scale),
            recipe.scheme.strategy,
            out,
            inf,
            g_idx.as_ref(),
        );
        let codes = codes.to_kind(Kind::Float);
        let codes = match get(&format!("{p}.weight_zero_point")) {
            Some(z) => {
                let z = if packed.is_some() {
                    quantlab_model::quant::unpack_bits(&z.tr(), bits, out).tr()
                } else {
                    z
                };
                codes - expand_qparam(&as_2d(z), recipe.scheme.strategy, out, inf, g_idx.as_ref())
            }
            None => codes,
        };
        lin.weight = (codes * s).to_kind(ck).to_device(device);
        lin.act_quant = act;
    }
    Ok(())
}

/// Rows and losses of one quantized group of Linears sharing an input.
#[allow(clippy::too_many_arguments)]
fn quantize_members(
    layer: &mut DecoderLayer,
    prefix: &str,
    members: &[&str],
    mut hessian: Option<Tensor>,
    recipe: &Recipe,
    ck: Kind,
    act_quant: Option<ActQuant>,
    rep: &mut LayerReport,
    out_tensors: &mut Vec<(String, Tensor)>,
) -> Result<()> {
    let wq = WeightQuant {
        ty: recipe.scheme.weight,
        strategy: recipe.scheme.strategy,
        symmetric: recipe.scheme.symmetric,
        observer: recipe.observer,
        scale_kind: Kind::BFloat16,
    };
    // Tensor-wise scales are per module, so modules are not stacked then.
    let jobs: Vec<Vec<&str>> = if recipe.scheme.strategy == Strategy::Tensor {
        members.iter().map(|m| vec![*m]).collect()
    } else {
        vec![members.to_vec()]
    };
    let n_jobs = jobs.len();
    for (job, members) in jobs.into_iter().enumerate() {
        let ws: Vec<Tensor> = members
            .iter()
            .map(|m| linear_mut(layer, m).weight.to_kind(Kind::Float))
            .collect();
        let rows: Vec<i64> = ws.iter().map(|t| t.size()[0]).collect();
        let stacked = Tensor::cat(&ws, 0);
        drop(ws);
        let name = format!("{prefix}.{{{}}}", members.join(","));
        // The Hessian is handed over to the last job (freed inside GPTQ), copied for the others.
        let last = job + 1 == n_jobs;
        let hm = if last {
            hessian.take()
        } else {
            hessian.as_ref().map(Tensor::copy)
        };
        let (fq, qp, g_idx, row_losses, fallback) = match (recipe.algorithm, hm) {
            (Algorithm::Gptq(gc), Some(hm)) => {
                let GptqOutput {
                    weight,
                    qparams,
                    g_idx,
                    row_losses,
                    dampening_used,
                } = gptq_quantize_owned(&stacked, hm, &wq, &gc, &name)?;
                (weight, qparams, g_idx, row_losses, dampening_used.is_none())
            }
            _ => {
                if !crate::gptq::all_finite(&stacked) {
                    bail!("{name}: the weight holds NaN or Inf values; refusing to quantize it");
                }
                let qp = recipe.observer.qparams(
                    &crate::quantize::grouped(&stacked, wq.strategy),
                    wq.ty,
                    wq.symmetric,
                    wq.scale_kind,
                );
                let (o, i) = (stacked.size()[0], stacked.size()[1]);
                let s = expand_qparam(&qp.scale, wq.strategy, o, i, None);
                let z = qp
                    .zero_point
                    .as_ref()
                    .map(|z| expand_qparam(z, wq.strategy, o, i, None));
                let fq = crate::quantize::fake_quantize(&stacked, &s, z.as_ref(), wq.ty);
                (fq, qp, None, vec![0.0; o as usize], false)
            }
        };
        // Split back per module (rows), write tensors, update the layer for propagation.
        let mut r0 = 0i64;
        for (m, &nr) in members.iter().zip(&rows) {
            let full = format!("{prefix}.{m}");
            let part_w = fq.narrow(0, r0, nr);
            let split = |t: &Tensor| {
                if t.size()[0] == 1 {
                    t.shallow_clone()
                } else {
                    t.narrow(0, r0, nr)
                }
            };
            let part_qp = QParams {
                scale: split(&qp.scale),
                zero_point: qp.zero_point.as_ref().map(split),
            };
            let loss: f64 = row_losses[r0 as usize..(r0 + nr) as usize].iter().sum();
            rep.losses.insert(full.clone(), loss);
            let orig = stacked.narrow(0, r0, nr);
            let rel = (&orig - &part_w).norm().double_value(&[])
                / orig.norm().double_value(&[]).max(1e-30);
            rep.rel_errors.insert(full.clone(), rel);
            if fallback {
                rep.rtn_fallback.push(full.clone());
            }
            let ql = checkpoint_tensors(recipe, &part_w, &part_qp, g_idx.as_ref(), &full)?;
            for (suffix, t) in ql.tensors {
                out_tensors.push((format!("{full}.{suffix}"), t.to_device(Device::Cpu)));
            }
            let lin = linear_mut(layer, m);
            lin.weight = ql.dequant.to_kind(ck);
            lin.act_quant = act_quant;
            r0 += nr;
        }
    }
    Ok(())
}

/// Apply SmoothQuant to one mapping: scales from `range`, folded into the norm (`qkv`: input,
/// else post-attention) and `members`; returns `s` `[in]`.
#[allow(clippy::too_many_arguments)]
fn smooth_mapping(
    layer: &mut DecoderLayer,
    prefix: &str,
    attn: bool,
    members: &[&str],
    range: &ChannelRange,
    alpha: f64,
    quantize_set: &std::collections::HashSet<String>,
    ck: Kind,
    out_tensors: &mut Vec<(String, Tensor)>,
) -> Tensor {
    let r = range.dynamic_range();
    let ws: Vec<Tensor> = members
        .iter()
        .map(|m| linear_mut(layer, m).weight.to_kind(Kind::Float))
        .collect();
    let wr: Vec<&Tensor> = ws.iter().collect();
    let s = smoothing_scales(&r, &wr, alpha);
    let norm_name = if attn {
        "input_layernorm"
    } else {
        "post_attention_layernorm"
    };
    let norm = if attn {
        &mut layer.input_norm
    } else {
        &mut layer.post_norm
    };
    let mut nf = norm.to_kind(Kind::Float);
    let mut lins: Vec<Tensor> = ws;
    {
        let mut refs: Vec<&mut Tensor> = lins.iter_mut().collect();
        fold(&mut nf, &mut refs, &s);
    }
    // The norm is stored in bf16: compute with the rounded value, as the checkpoint will.
    let nb = nf.to_kind(Kind::BFloat16);
    *norm = nb.to_kind(ck);
    out_tensors.push((
        format!("{prefix}.{norm_name}.weight"),
        nb.to_device(Device::Cpu),
    ));
    for (m, t) in members.iter().zip(lins) {
        let full = format!("{prefix}.{m}");
        if !quantize_set.contains(&full) {
            // Smoothed but left unquantized: its new weight must still be written.
            out_tensors.push((
                format!("{full}.weight"),
                t.to_kind(Kind::BFloat16).to_device(Device::Cpu),
            ));
        }
        linear_mut(layer, m).weight = t.to_kind(ck);
    }
    s
}

/// What the stages of [`compress_layer`] share.
struct StageCtx<'a> {
    recipe: &'a Recipe,
    quantize_set: &'a std::collections::HashSet<String>,
    ck: Kind,
    act_quant: Option<ActQuant>,
    rep: LayerReport,
    out_tensors: Vec<(String, Tensor)>,
}

/// Most host memory a CPU layer may use to keep its stage intermediates instead of recomputing
/// them (see `compress_layer`).
const KEEP_ON_HOST_BYTES: i64 = 4 << 30;

/// Phase times of one layer for `QUANTLAB_LOG=quantlab_compress=debug`: when debug logging is
/// on, [`Phases::mark`] waits for `device` (so CUDA times are not just launch times) and records
/// the seconds since the previous mark, and on CUDA the allocator's peak so far (the layer's peak
/// is reset at its start); [`Phases::log`] prints them on one line. Off, it costs
/// nothing and never synchronises.
struct Phases {
    device: Device,
    on: bool,
    t: Instant,
    /// (phase, seconds, CUDA allocator peak so far in GiB)
    parts: Vec<(&'static str, f64, Option<f64>)>,
}

impl Phases {
    fn new(device: Device) -> Self {
        Phases {
            device,
            on: tracing::enabled!(tracing::Level::DEBUG),
            t: Instant::now(),
            parts: Vec::new(),
        }
    }

    fn mark(&mut self, name: &'static str) {
        if !self.on {
            return;
        }
        let mut peak = None;
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
            peak = quantlab_model::cuda_graph::peak_allocated_gib(i);
        }
        self.parts
            .push((name, self.t.elapsed().as_secs_f64(), peak));
        self.t = Instant::now();
    }

    fn log(&self, what: &str) {
        if self.on {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(n, s, p)| match p {
                    Some(p) => format!("{n} {s:.3} s ({p:.2} GiB)"),
                    None => format!("{n} {s:.3} s"),
                })
                .collect();
            tracing::debug!("{what}: {}", parts.join(", "));
        }
    }
}

/// Fold one batch of Linear inputs `x` into the Hessian and the channel range (when collected).
fn observe(
    hs: &mut Option<Hessian>,
    range: Option<&mut ChannelRange>,
    x: &Tensor,
    sequences: i64,
    rep: &mut LayerReport,
) {
    if let Some(hs) = hs.as_mut() {
        let t = Instant::now();
        hs.add(x, sequences);
        rep.hessian_s += t.elapsed().as_secs_f64();
    }
    if let Some(r) = range {
        r.add(x);
    }
}

/// End of a stage: finish the Hessian, smooth the mapping `(attention?, range, α)` if asked,
/// and quantize the members that are not ignored.
fn finish_stage(
    layer: &mut DecoderLayer,
    prefix: &str,
    members: &[&str],
    smooth: Option<(bool, &ChannelRange, f64)>,
    hs: Option<Hessian>,
    ctx: &mut StageCtx,
) -> Result<()> {
    let mut hm = hs.map(|h| h.finish());
    if let Some((attn, range, alpha)) = smooth {
        let s = smooth_mapping(
            layer,
            prefix,
            attn,
            members,
            range,
            alpha,
            ctx.quantize_set,
            ctx.ck,
            &mut ctx.out_tensors,
        );
        hm = hm.map(|h| smooth_hessian(&h, &s));
    }
    let ms: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| ctx.quantize_set.contains(&format!("{prefix}.{m}")))
        .collect();
    if !ms.is_empty() {
        let t = Instant::now();
        quantize_members(
            layer,
            prefix,
            &ms,
            hm,
            ctx.recipe,
            ctx.ck,
            ctx.act_quant,
            &mut ctx.rep,
            &mut ctx.out_tensors,
        )?;
        ctx.rep.quantize_s += t.elapsed().as_secs_f64();
    }
    Ok(())
}

/// Calibrate, smooth and quantize one layer in place. With `true_sequential` (the presets):
/// sub-block by sub-block ("true sequential":
/// q/k/v, then o_proj on the attention output computed with the quantized q/k/v, then gate/up,
/// then down_proj), so every calibration batch goes through the layer exactly once; the batches'
/// hidden states are replaced by the quantized layer's outputs. Returns the report and the
/// checkpoint tensors of the layer.
///
/// This differs from llm-compressor, which collects all four Hessians from the unquantized layer
/// and then runs the quantized layer again: here later Linears see the error of earlier ones
/// (GPTQ's `--true-sequential`), at the cost of one forward instead of two.
#[allow(clippy::too_many_arguments)]
fn compress_layer(
    layer: &mut DecoderLayer,
    li: usize,
    cfg: &LlamaConfig,
    batches: &mut [Batch],
    rope: &mut Rope,
    recipe: &Recipe,
    quantize_set: &std::collections::HashSet<String>,
    ck: Kind,
    device: Device,
    store: Device,
    act_quant: Option<ActQuant>,
) -> Result<(LayerReport, Vec<(String, Tensor)>)> {
    let prefix = format!("model.layers.{li}");
    let h = cfg.hidden_size as i64;
    let attn_dim = (cfg.num_attention_heads * cfg.head_dim()) as i64;
    let inter = layer.down.weight.size()[1];
    let gptq = matches!(recipe.algorithm, Algorithm::Gptq(_));
    let sq = recipe.smoothquant;
    let mut ctx = StageCtx {
        recipe,
        quantize_set,
        ck,
        act_quant,
        rep: LayerReport {
            layer: li,
            ..Default::default()
        },
        out_tensors: Vec::new(),
    };
    let qkv = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"];
    let gu = ["mlp.gate_proj", "mlp.up_proj"];
    let new_h = |n: i64| gptq.then(|| Hessian::new(n, Kind::Float, device));
    let mut ph = Phases::new(device);

    if let Some(awq) = recipe.awq {
        let t = Instant::now();
        awq_smooth_layer(
            layer, &prefix, cfg, batches, rope, recipe, &awq, device, &mut ctx,
        )?;
        ctx.rep.awq_s += t.elapsed().as_secs_f64();
        ph.mark("awq");
    }
    let true_sequential = match recipe.algorithm {
        Algorithm::Gptq(g) => g.true_sequential,
        Algorithm::Rtn => true,
    };
    if !true_sequential {
        // llm-compressor's order: every Hessian from the unquantized layer in one pass, quantize
        // everything, then a second pass through the quantized layer.
        let (mut hq, mut ho, mut hg, mut hd) = (new_h(h), new_h(attn_dim), new_h(h), new_h(inter));
        let mut rq = sq.map(|_| ChannelRange::new(h, device));
        let mut rg = sq.map(|_| ChannelRange::new(h, device));
        for b in batches.iter() {
            let x = b.x.to_device(device);
            let (bs, t) = (x.size()[0], x.size()[1]);
            let (cos, sin) = rope.get(bs, t);
            let n = b.sequences;
            let rep = &mut ctx.rep;
            // The layer's forward up to down_proj's input: the down projection itself and the
            // residual are not needed for any Hessian.
            let hn = layer.attn_input(cfg, &x);
            observe(&mut hq, rq.as_mut(), &hn, n, rep);
            let a = layer.attention(cfg, &hn, &cos, &sin, None, None);
            observe(&mut ho, None, &a, n, rep);
            let hn = layer.mlp_input(cfg, &(x + layer.o.forward(&a)));
            observe(&mut hg, rg.as_mut(), &hn, n, rep);
            observe(&mut hd, None, &layer.mlp_hidden(&hn), n, rep);
        }
        ph.mark("calibrate");
        let smooth = sq.zip(rq.as_ref()).map(|(c, r)| (true, r, c.alpha));
        finish_stage(layer, &prefix, &qkv, smooth, hq, &mut ctx)?;
        ph.mark("quant qkv");
        finish_stage(layer, &prefix, &["self_attn.o_proj"], None, ho, &mut ctx)?;
        ph.mark("quant o");
        let smooth = sq.zip(rg.as_ref()).map(|(c, r)| (false, r, c.alpha));
        finish_stage(layer, &prefix, &gu, smooth, hg, &mut ctx)?;
        ph.mark("quant gate_up");
        finish_stage(layer, &prefix, &["mlp.down_proj"], None, hd, &mut ctx)?;
        ph.mark("quant down");
        for b in batches.iter_mut() {
            let x = b.x.to_device(device);
            let (bs, t) = (x.size()[0], x.size()[1]);
            let (cos, sin) = rope.get(bs, t);
            b.x = to_store(
                layer.forward(cfg, &x, &cos, &sin, None, None, &mut |_, _| {}),
                store,
            );
        }
        ph.mark("propagate");
        ph.log(&prefix);
        return Ok((ctx.rep, ctx.out_tensors));
    }

    // Intermediate activations a later stage needs again (q/k/v input, attention output, MLP
    // input, MLP hidden states) are kept per batch when the layer runs on the host: there they
    // cost host memory only (about (2·hidden + heads·head_dim + intermediate) values per token),
    // and recomputing them would redo the q/k/v projections and attention, the norms and gate/up.
    // On a GPU they are recomputed, so that the device holds about one layer input per token.
    let tokens: i64 = batches.iter().map(|b| b.x.numel() as i64 / h).sum();
    let keep_bytes = tokens * (2 * h + attn_dim + inter) * ck.elt_size_in_bytes() as i64;
    // `QUANTLAB_KEEP_INTERMEDIATES=0` recomputes them on the host too (what the GPU path does).
    let keep = device == Device::Cpu
        && keep_bytes <= KEEP_ON_HOST_BYTES
        && std::env::var("QUANTLAB_KEEP_INTERMEDIATES").map_or(true, |v| v != "0");
    if keep && li == 0 {
        tracing::debug!(
            "keeping the stage intermediates on the host ({} MiB a layer)",
            keep_bytes >> 20
        );
    }
    let mut kept: Vec<Option<Tensor>> = (0..batches.len()).map(|_| None).collect();

    // Stage A: q/k/v input.
    let mut hs = new_h(h);
    let mut range = sq.map(|_| ChannelRange::new(h, device));
    for (i, b) in batches.iter().enumerate() {
        let x = b.x.to_device(device);
        let hn = layer.attn_input(cfg, &x);
        observe(&mut hs, range.as_mut(), &hn, b.sequences, &mut ctx.rep);
        // Smoothing rescales input_layernorm, so its output is then recomputed.
        if keep && sq.is_none() {
            kept[i] = Some(hn);
        }
    }
    ph.mark("A calibrate");
    let smooth = sq.zip(range.as_ref()).map(|(c, r)| (true, r, c.alpha));
    finish_stage(layer, &prefix, &qkv, smooth, hs, &mut ctx)?;
    ph.mark("A quant qkv");

    // Stage B: attention output (input of o_proj), with the quantized q/k/v. The attention
    // output and (stage D) the MLP hidden states are recomputed in the next stage rather than
    // kept: the recomputation is a few percent of the layer's time, and keeping them would hold
    // 1 + intermediate/hidden activations per calibration token (3.5x the layer input for Llama).
    let mut hs = new_h(attn_dim);
    for (i, b) in batches.iter().enumerate() {
        let x = b.x.to_device(device);
        let (bs, t) = (x.size()[0], x.size()[1]);
        let (cos, sin) = rope.get(bs, t);
        let hn = kept[i].take().unwrap_or_else(|| layer.attn_input(cfg, &x));
        let a = layer.attention(cfg, &hn, &cos, &sin, None, None);
        observe(&mut hs, None, &a, b.sequences, &mut ctx.rep);
        if keep {
            kept[i] = Some(a);
        }
    }
    ph.mark("B calibrate");
    finish_stage(layer, &prefix, &["self_attn.o_proj"], None, hs, &mut ctx)?;
    ph.mark("B quant o");

    // Stage C: residual after attention; gate/up input.
    let mut hs = new_h(h);
    let mut range = sq.map(|_| ChannelRange::new(h, device));
    for (i, b) in batches.iter_mut().enumerate() {
        let x = b.x.to_device(device);
        let a = kept[i].take().unwrap_or_else(|| {
            let (bs, t) = (x.size()[0], x.size()[1]);
            let (cos, sin) = rope.get(bs, t);
            layer.attention(cfg, &layer.attn_input(cfg, &x), &cos, &sin, None, None)
        });
        let hres = x + layer.o.forward(&a);
        let hn = layer.mlp_input(cfg, &hres);
        observe(&mut hs, range.as_mut(), &hn, b.sequences, &mut ctx.rep);
        b.x = to_store(hres, store);
        // Smoothing rescales post_attention_layernorm, so its output is then recomputed.
        if keep && sq.is_none() {
            kept[i] = Some(hn);
        }
    }
    ph.mark("C calibrate");
    let smooth = sq.zip(range.as_ref()).map(|(c, r)| (false, r, c.alpha));
    finish_stage(layer, &prefix, &gu, smooth, hs, &mut ctx)?;
    ph.mark("C quant gate_up");

    // Stage D: down_proj input with the quantized gate/up.
    let mut hs = new_h(inter);
    for (i, b) in batches.iter().enumerate() {
        let hn = kept[i]
            .take()
            .unwrap_or_else(|| layer.mlp_input(cfg, &b.x.to_device(device)));
        let m = layer.mlp_hidden(&hn);
        observe(&mut hs, None, &m, b.sequences, &mut ctx.rep);
        if keep {
            kept[i] = Some(m);
        }
    }
    ph.mark("D calibrate");
    finish_stage(layer, &prefix, &["mlp.down_proj"], None, hs, &mut ctx)?;
    ph.mark("D quant down");

    // Stage E: the quantized layer's output, next layer's input.
    for (i, b) in batches.iter_mut().enumerate() {
        let hres = b.x.to_device(device);
        let m = kept[i]
            .take()
            .unwrap_or_else(|| layer.mlp_hidden(&layer.mlp_input(cfg, &hres)));
        b.x = to_store(hres + layer.down.forward(&m), store);
    }
    ph.mark("E propagate");
    ph.log(&prefix);
    Ok((ctx.rep, ctx.out_tensors))
}

/// Mean squared error between two lists of outputs (fp32 accumulation), as llm-compressor's
/// `AWQModifier._compute_loss`: the sum of squared differences over every element of every batch,
/// divided by the number of elements.
fn mse(a: &[Tensor], b: &[Tensor], device: Device) -> f64 {
    let mut sum = 0.0;
    let mut n = 0i64;
    for (x, y) in a.iter().zip(b) {
        let d = x.to_device(device).to_kind(Kind::Float) - y.to_device(device).to_kind(Kind::Float);
        sum += d.square().sum(Kind::Double).double_value(&[]);
        n += d.numel() as i64;
    }
    sum / n.max(1) as f64
}

/// AWQ (see [`crate::awq`]) on one decoder layer, before it is quantized: one forward pass of the
/// unquantized layer caches the inputs of the four Linear groups and their mean |activation| per
/// channel; then, in llm-compressor's mapping order, input_layernorm → q/k/v (parent: the
/// attention block up to o_proj's output), v_proj → o_proj (only when v_proj's outputs are
/// o_proj's inputs, i.e. without grouped-query attention), post_attention_layernorm → gate/up
/// (parent: the MLP) and up_proj → down_proj, the best scales are searched and folded in. The
/// smoothed norms go to the checkpoint.
#[allow(clippy::too_many_arguments)]
fn awq_smooth_layer(
    layer: &mut DecoderLayer,
    prefix: &str,
    cfg: &LlamaConfig,
    batches: &[Batch],
    rope: &mut Rope,
    recipe: &Recipe,
    awq: &crate::awq::AwqConfig,
    device: Device,
    ctx: &mut StageCtx,
) -> Result<()> {
    use crate::awq::{scaled_fake_quant, search, weight_means};
    let ck = ctx.ck;
    let store = batches.first().map_or(Device::Cpu, |b| b.x.device());
    // 1. Cache the Linear inputs of the unquantized layer and their |x| sums per channel.
    let mut cache: [Vec<Tensor>; 4] = Default::default();
    let mut sums: [Option<Tensor>; 4] = Default::default();
    let mut count = 0i64;
    let mut rope_of = Vec::with_capacity(batches.len());
    for b in batches {
        let x = b.x.to_device(device);
        let (bs, t) = (x.size()[0], x.size()[1]);
        let (cos, sin) = rope.get(bs, t);
        count += bs * t;
        let _ = layer.forward(cfg, &x, &cos, &sin, None, None, &mut |site, a| {
            let i = match site {
                Site::Qkv => 0,
                Site::O => 1,
                Site::GateUp => 2,
                Site::Down => 3,
            };
            let s = a
                .abs()
                .to_kind(Kind::Float)
                .reshape([-1, a.size()[2]])
                .sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
            sums[i] = Some(match sums[i].take() {
                None => s,
                Some(t) => t + s,
            });
            cache[i].push(a.to_device(store));
        });
        rope_of.push((cos, sin));
    }
    let x_mean = |i: usize| -> Tensor {
        sums[i].as_ref().expect("at least one calibration batch") / count.max(1) as f64
    };
    let scheme = &recipe.scheme;
    let sfq = |w: &Tensor, s: &Tensor| {
        scaled_fake_quant(
            w,
            s,
            scheme.weight,
            scheme.strategy,
            scheme.symmetric,
            Kind::BFloat16,
        )
        .to_kind(ck)
    };
    let duo = awq.duo_scaling != crate::awq::DuoScaling::Off;
    let quantized = |m: &str| ctx.quantize_set.contains(&format!("{prefix}.{m}"));
    let mut records = Vec::new();

    // 2a. input_layernorm -> q/k/v; parent output: o_proj(attention(x)).
    let qkv = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"];
    if qkv.iter().all(|m| quantized(m)) {
        let run = |l: &DecoderLayer| -> Vec<Tensor> {
            cache[0]
                .iter()
                .zip(&rope_of)
                .map(|(hn, (c, s))| {
                    let hn = hn.to_device(device);
                    l.o.forward(&l.attention(cfg, &hn, c, s, None, None))
                        .to_device(store)
                })
                .collect()
        };
        let fp = run(layer);
        let orig: Vec<Tensor> = qkv
            .iter()
            .map(|m| linear_mut(layer, m).weight.copy())
            .collect();
        let wm = duo.then(|| weight_means(&orig.iter().collect::<Vec<_>>(), scheme.strategy));
        let best = search(awq, &x_mean(0), wm.as_ref(), |s| {
            for (m, w) in qkv.iter().zip(&orig) {
                linear_mut(layer, m).weight = sfq(w, s);
            }
            Ok(mse(&run(layer), &fp, device))
        })?;
        for (m, w) in qkv.iter().zip(&orig) {
            linear_mut(layer, m).weight =
                (w.to_kind(Kind::Float) * best.scales.view([1, -1])).to_kind(ck);
        }
        let nb = (layer.input_norm.to_kind(Kind::Float) / &best.scales).to_kind(Kind::BFloat16);
        layer.input_norm = nb.to_kind(ck);
        ctx.out_tensors.push((
            format!("{prefix}.input_layernorm.weight"),
            nb.to_device(Device::Cpu),
        ));
        records.push(record(format!("{prefix}.input_layernorm"), &best));
    }

    // 2b. v_proj -> o_proj, when the shapes allow it (no grouped-query attention).
    let (v_out, o_in) = (layer.v.weight.size()[0], layer.o.weight.size()[1]);
    if v_out == o_in && quantized("self_attn.o_proj") && quantized("self_attn.v_proj") {
        let run = |l: &DecoderLayer| -> Vec<Tensor> {
            cache[1]
                .iter()
                .map(|a| l.o.forward(&a.to_device(device)).to_device(store))
                .collect()
        };
        let fp = run(layer);
        let orig = layer.o.weight.copy();
        let wm = duo.then(|| weight_means(&[&orig], scheme.strategy));
        let best = search(awq, &x_mean(1), wm.as_ref(), |s| {
            layer.o.weight = sfq(&orig, s);
            Ok(mse(&run(layer), &fp, device))
        })?;
        layer.o.weight = (orig.to_kind(Kind::Float) * best.scales.view([1, -1])).to_kind(ck);
        layer.v.weight =
            (layer.v.weight.to_kind(Kind::Float) / best.scales.view([-1, 1])).to_kind(ck);
        if let Some(b) = layer.v.bias.as_mut() {
            *b = (b.to_kind(Kind::Float) / &best.scales).to_kind(ck);
        }
        records.push(record(format!("{prefix}.self_attn.v_proj"), &best));
    }

    // 2c. post_attention_layernorm -> gate/up; parent output: the MLP's.
    let gu = ["mlp.gate_proj", "mlp.up_proj"];
    if gu.iter().all(|m| quantized(m)) {
        let run = |l: &DecoderLayer| -> Vec<Tensor> {
            cache[2]
                .iter()
                .map(|hn| {
                    let hn = hn.to_device(device);
                    l.down.forward(&l.mlp_hidden(&hn)).to_device(store)
                })
                .collect()
        };
        let fp = run(layer);
        let orig: Vec<Tensor> = gu
            .iter()
            .map(|m| linear_mut(layer, m).weight.copy())
            .collect();
        let wm = duo.then(|| weight_means(&orig.iter().collect::<Vec<_>>(), scheme.strategy));
        let best = search(awq, &x_mean(2), wm.as_ref(), |s| {
            for (m, w) in gu.iter().zip(&orig) {
                linear_mut(layer, m).weight = sfq(w, s);
            }
            Ok(mse(&run(layer), &fp, device))
        })?;
        for (m, w) in gu.iter().zip(&orig) {
            linear_mut(layer, m).weight =
                (w.to_kind(Kind::Float) * best.scales.view([1, -1])).to_kind(ck);
        }
        let nb = (layer.post_norm.to_kind(Kind::Float) / &best.scales).to_kind(Kind::BFloat16);
        layer.post_norm = nb.to_kind(ck);
        ctx.out_tensors.push((
            format!("{prefix}.post_attention_layernorm.weight"),
            nb.to_device(Device::Cpu),
        ));
        records.push(record(format!("{prefix}.post_attention_layernorm"), &best));
    }

    // 2d. up_proj -> down_proj; parent output: down_proj's.
    if quantized("mlp.down_proj") && quantized("mlp.up_proj") {
        let run = |l: &DecoderLayer| -> Vec<Tensor> {
            cache[3]
                .iter()
                .map(|m| l.down.forward(&m.to_device(device)).to_device(store))
                .collect()
        };
        let fp = run(layer);
        let orig = layer.down.weight.copy();
        let wm = duo.then(|| weight_means(&[&orig], scheme.strategy));
        let best = search(awq, &x_mean(3), wm.as_ref(), |s| {
            layer.down.weight = sfq(&orig, s);
            Ok(mse(&run(layer), &fp, device))
        })?;
        layer.down.weight = (orig.to_kind(Kind::Float) * best.scales.view([1, -1])).to_kind(ck);
        layer.up.weight =
            (layer.up.weight.to_kind(Kind::Float) / best.scales.view([-1, 1])).to_kind(ck);
        records.push(record(format!("{prefix}.mlp.up_proj"), &best));
    }
    ctx.rep.awq = records;
    Ok(())
}

fn record(smooth: String, s: &crate::awq::Search) -> AwqRecord {
    AwqRecord {
        smooth,
        ratio: s.ratio,
        duo_scaling: s.duo,
        initial_loss: s.initial_loss,
        best_loss: s.best_loss,
        grid_losses: s.losses.clone(),
    }
}

/// What `quantlab compress` asks for beyond the recipe.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub device: Device,
    /// Forward dtype; `None`: bf16 (the checkpoint's dtype, as llm-compressor runs the model).
    pub compute_kind: Option<Kind>,
    pub batch_tokens: usize,
    /// See [`CalibratedOptions::offload_activations`].
    pub offload_activations: bool,
    pub force: bool,
    pub progress: bool,
}

/// What a `quantlab compress` run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub summary: CompressSummary,
    pub algorithm: String,
    pub calibration: Option<String>,
    /// Sum of the per-module GPTQ losses (llm-compressor's convention), when GPTQ ran.
    pub gptq_total_loss: Option<f64>,
    pub layers: Vec<LayerReport>,
}

/// Compress `model_dir` into `out_dir` with `recipe`: data-free RTN goes straight through the
/// streaming writer; GPTQ / SmoothQuant load the calibration set `calib` (tokenized with the
/// model's tokenizer) and run the sequential pipeline.
///
/// Errors: those of [`compress_calibrated`], [`crate::compress`] and
/// `quantlab_calibration::load` (missing data files are named with where to put them).
pub fn run_recipe(
    model_dir: &Path,
    out_dir: &Path,
    recipe: &Recipe,
    calib: &quantlab_calibration::CalibrationOptions,
    opts: &RunOptions,
) -> Result<RunSummary> {
    if !recipe.needs_calibration() {
        let mut scheme = recipe.scheme.clone();
        scheme.observer = recipe.observer.name();
        if recipe.observer != crate::observer::Observer::MinMax {
            bail!("round-to-nearest without calibration uses the min-max observer; use GPTQ for the MSE observer");
        }
        let s = crate::compress(
            model_dir,
            out_dir,
            &crate::CompressOptions {
                scheme,
                ignore: recipe.ignore.clone(),
                force: opts.force,
                progress: opts.progress,
            },
        )?;
        return Ok(RunSummary {
            summary: s,
            algorithm: recipe.describe(),
            calibration: None,
            gptq_total_loss: None,
            layers: vec![],
        });
    }
    // Model and output problems are reported before the calibration data is looked for.
    let (cfg, _) = preflight(model_dir, out_dir, opts.force)?;
    if calib.seq_len > cfg.max_position_embeddings {
        bail!(
            "--seq-len {}: longer than the model's context ({}: max_position_embeddings {})",
            calib.seq_len,
            model_dir.join("config.json").display(),
            cfg.max_position_embeddings
        );
    }
    if opts.batch_tokens == 0 {
        bail!("--batch-tokens must be at least 1");
    }
    let tok = quantlab_model::Tokenizer::load(model_dir, &[])?;
    let set = quantlab_calibration::load(calib, &tok)?;
    let compute_kind = opts.compute_kind.unwrap_or(Kind::BFloat16);
    let (summary, layers) = compress_calibrated(
        model_dir,
        out_dir,
        recipe,
        &set.sequences,
        &CalibratedOptions {
            device: opts.device,
            compute_kind,
            batch_tokens: opts.batch_tokens,
            offload_activations: opts.offload_activations,
            force: opts.force,
            progress: opts.progress,
            calibration_description: set.description.clone(),
            calibration_fingerprint: set.fingerprint(),
        },
    )?;
    let gptq = matches!(recipe.algorithm, Algorithm::Gptq(_));
    Ok(RunSummary {
        summary,
        algorithm: recipe.describe(),
        calibration: Some(set.description),
        gptq_total_loss: gptq.then(|| layers.iter().flat_map(|l| l.losses.values()).sum()),
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::{resume_settings, CalibratedOptions};
    use tch::{Device, Kind};

    fn opts(kind: Kind, batch_tokens: usize) -> CalibratedOptions {
        CalibratedOptions {
            device: Device::Cpu,
            compute_kind: kind,
            batch_tokens,
            offload_activations: false,
            force: false,
            progress: false,
            calibration_description: String::new(),
            calibration_fingerprint: String::new(),
        }
    }

    #[test]
    fn resume_settings_change_with_dtype_batch_and_source_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), [0u8; 64]).unwrap();
        std::fs::write(dir.join("README.md"), "not a source file").unwrap();
        let base = resume_settings(dir, &opts(Kind::BFloat16, 16384)).unwrap();
        assert_eq!(
            base,
            resume_settings(dir, &opts(Kind::BFloat16, 16384)).unwrap()
        );
        assert_ne!(
            base,
            resume_settings(dir, &opts(Kind::Float, 16384)).unwrap()
        );
        assert_ne!(
            base,
            resume_settings(dir, &opts(Kind::BFloat16, 128)).unwrap()
        );
        // Other files do not count.
        std::fs::write(dir.join("README.md"), "edited").unwrap();
        assert_eq!(
            base,
            resume_settings(dir, &opts(Kind::BFloat16, 16384)).unwrap()
        );
        // Weights rewritten in place with the same size: the modification time tells.
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join("model.safetensors"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        drop(f);
        let touched = resume_settings(dir, &opts(Kind::BFloat16, 16384)).unwrap();
        assert_ne!(base, touched);
        // A new shard.
        std::fs::write(dir.join("model-00002.safetensors"), [0u8; 8]).unwrap();
        assert_ne!(
            touched,
            resume_settings(dir, &opts(Kind::BFloat16, 16384)).unwrap()
        );
    }
}
