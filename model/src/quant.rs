//! Linear layers as the engine runs them, and the compressed-tensors reader that builds them.
//!
//! Every linear is held as a dense weight in the compute dtype (quantized checkpoints are
//! dequantized once at load) plus an optional activation quantizer, so a W8A8 model is evaluated
//! with its activations really rounded to int8 / fp8 per token, as vLLM's kernels see them.
//! Formats read (compressed-tensors 0.19, `quantization_config.format` per config group):
//! - `float-quantized`: `weight` F8_E4M3 `[out, in]`, `weight_scale` `[out, 1]` (channel) or `[1]`.
//! - `int-quantized`: `weight` I8 `[out, in]`, `weight_scale` `[out, 1]`, optional `weight_zero_point`.
//! - `pack-quantized`: `weight_packed` I32 `[out, ceil(in·b/32)]` (b = 1..8 bits, dense, low bits
//!   first, stored with a +2^(b-1) offset; eight 4-bit or four 8-bit values per int32),
//!   `weight_scale` `[out, in/group]` or `[out, 1]`, `weight_shape` I64 `[2]`, optional
//!   `weight_g_idx` I32 `[in]` (act-order), and for asymmetric weights `weight_zero_point` I32
//!   `[ceil(out·b/32), G]` packed the same way along the output dimension.
//!   Dequantization: `w = (q - zero_point) * scale`, `scale` broadcast over its group.

use crate::error::{ModelError, Result};
use crate::weights::Weights;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Dynamic per-token activation quantization applied before the matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActQuant {
    /// Symmetric int8, scale = absmax / 127.5 per token (compressed-tensors `calculate_qparams`).
    Int8Token,
    /// FP8 E4M3, scale = absmax / 448 per token.
    Fp8Token,
}

/// Quantization arguments of one tensor kind (compressed-tensors `QuantizationArgs`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QuantArgs {
    pub num_bits: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub symmetric: bool,
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub group_size: Option<i64>,
    #[serde(default)]
    pub dynamic: serde_json::Value,
    #[serde(default)]
    pub actorder: Option<serde_json::Value>,
    #[serde(default)]
    pub observer: Option<String>,
}

fn yes() -> bool {
    true
}

/// One entry of `config_groups`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ConfigGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub weights: Option<QuantArgs>,
    #[serde(default)]
    pub input_activations: Option<QuantArgs>,
    #[serde(default)]
    pub format: Option<String>,
}

/// The `quantization_config` of a compressed-tensors checkpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QuantizationConfig {
    pub quant_method: String,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub config_groups: BTreeMap<String, ConfigGroup>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

impl QuantizationConfig {
    /// Parse from config.json's `quantization_config`. Errors name the field.
    pub fn from_value(v: &serde_json::Value, file: &Path) -> Result<Self> {
        let q: QuantizationConfig =
            serde_path_to_error::deserialize(v.clone()).map_err(|e| ModelError::Config {
                file: file.to_path_buf(),
                field: format!("quantization_config.{}", e.path()),
                msg: e.into_inner().to_string(),
            })?;
        if q.quant_method != "compressed-tensors" {
            return Err(ModelError::Config {
                file: file.to_path_buf(),
                field: "quantization_config.quant_method".into(),
                msg: format!(
                    "'{}' is not supported (only compressed-tensors)",
                    q.quant_method
                ),
            });
        }
        Ok(q)
    }

    /// The group that applies to a Linear module (we support one group targeting `Linear`).
    pub fn group_for(&self, module: &str) -> Option<&ConfigGroup> {
        if self.ignore.iter().any(|i| module_matches(module, i)) {
            return None;
        }
        self.config_groups.values().find(|g| {
            g.targets
                .iter()
                .any(|t| t == "Linear" || module_matches(module, t))
        })
    }
}

/// compressed-tensors target matching: `re:` + a regular expression matched against the whole
/// module name (Python `re.match` anchors at the start), else the exact module name or its last
/// component (the class-name targets like `Linear` are handled by the caller).
fn module_matches(module: &str, target: &str) -> bool {
    if let Some(re) = target.strip_prefix("re:") {
        return regex::Regex::new(&format!("^(?:{re})"))
            .map(|r| r.is_match(module))
            .unwrap_or(false);
    }
    module == target || module.rsplit('.').next() == Some(target)
}

/// A linear layer ready to run: `y = act_quant(x) @ weightᵀ + bias`.
#[derive(Debug)]
pub struct Linear {
    /// `[out, in]`, compute dtype, on the compute device.
    pub weight: Tensor,
    /// `[out]` or none.
    pub bias: Option<Tensor>,
    /// Dynamic activation quantization, for W8A8 schemes.
    pub act_quant: Option<ActQuant>,
}

impl Linear {
    /// Forward `x` of shape `[..., in]` to `[..., out]` in the compute dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = match self.act_quant {
            None => x.shallow_clone(),
            Some(q) => fake_quant_per_token(x, q),
        };
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// Quantize-dequantize `x` per token (last dim), computing the scale in fp32.
pub fn fake_quant_per_token(x: &Tensor, q: ActQuant) -> Tensor {
    let kind = x.kind();
    let xf = x.to_kind(Kind::Float);
    let absmax = xf.abs().amax([-1i64].as_slice(), true);
    match q {
        ActQuant::Int8Token => {
            let scale = (absmax / 127.5).clamp_min(f32::EPSILON as f64);
            let qx = (&xf / &scale).round().clamp(-128.0, 127.0);
            (qx * scale).to_kind(kind)
        }
        ActQuant::Fp8Token => {
            let scale = (absmax / 448.0).clamp_min(f32::EPSILON as f64);
            let qx = (&xf / &scale)
                .clamp(-448.0, 448.0)
                .to_kind(Kind::Float8e4m3fn)
                .to_kind(Kind::Float);
            (qx * scale).to_kind(kind)
        }
    }
}

/// Unpack `[rows, words]` int32 (compressed-tensors `pack-quantized`, packed along dim 1) into
/// `[rows, cols]` int64 signed `b`-bit values: element `i` of a row sits at global bits
/// `[i·b, i·b + b)` of its row, lowest bit first, stored with a `+2^(b-1)` offset (the inverse of
/// compressed-tensors 0.19 `pack_to_int32` / `unpack_from_int32`). Word-aligned widths (1, 2, 4,
/// 8 bits) are unpacked with tensor ops; 3, 5, 6 and 7 bits, whose values straddle words, on the
/// host. The caller checks `words · 32 ≥ cols · b`.
pub fn unpack_bits(packed: &Tensor, bits: u32, cols: i64) -> Tensor {
    let offset = 1i64 << (bits - 1);
    let rows = packed.size()[0];
    if 32 % bits == 0 {
        let per = 32 / bits as i64;
        let shifts: Vec<i64> = (0..per).map(|i| i * bits as i64).collect();
        let shifts = Tensor::from_slice(&shifts).view([1, 1, per]);
        let p = packed.to_kind(Kind::Int64).bitwise_and(0xFFFF_FFFFi64);
        let v = p
            .unsqueeze(-1)
            .bitwise_right_shift(&shifts)
            .bitwise_and((1i64 << bits) - 1);
        return (v.reshape([rows, -1]) - offset).narrow(1, 0, cols);
    }
    let words = packed.size()[1] as usize;
    let flat: Vec<i32> =
        Vec::<i32>::try_from(packed.to_kind(Kind::Int).contiguous().view([-1])).unwrap_or_default();
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity((rows * cols) as usize);
    for r in 0..rows as usize {
        let row = &flat[r * words..(r + 1) * words];
        for i in 0..cols as usize {
            let bit = i * bits as usize;
            let (w, off) = (bit / 32, bit % 32);
            let lo = row[w] as u32 as u64;
            let hi = row.get(w + 1).map_or(0, |x| *x as u32 as u64);
            let u = ((lo | (hi << 32)) >> off) & mask;
            out.push(u as i64 - offset);
        }
    }
    Tensor::from_slice(&out).view([rows, cols])
}

/// Unpack int4 `[out, ceil(in/8)]` int32 into `[out, in]` values in `[-8, 7]` ([`unpack_bits`]).
pub fn unpack_int4(packed: &Tensor, in_features: i64) -> Tensor {
    unpack_bits(packed, 4, in_features)
}

/// Load the linear `prefix` (e.g. `model.layers.0.self_attn.q_proj`) from `w`, dequantized to
/// `kind`, following `qcfg` when the checkpoint is compressed.
///
/// Errors: missing tensors, shapes that disagree with `weight_shape`, formats or argument
/// combinations we do not read (each naming the tensor and the file).
pub fn load_linear(
    w: &Weights,
    prefix: &str,
    bias: bool,
    qcfg: Option<&QuantizationConfig>,
    kind: Kind,
    device: tch::Device,
) -> Result<Linear> {
    let b = if bias {
        Some(
            w.get(&format!("{prefix}.bias"))?
                .to_kind(kind)
                .to_device(device),
        )
    } else {
        None
    };
    let group = qcfg.and_then(|q| q.group_for(prefix));
    let (weight, act_quant) = match group {
        None => (w.get(&format!("{prefix}.weight"))?, None),
        Some(g) => {
            let format = g
                .format
                .clone()
                .or_else(|| qcfg.and_then(|q| q.format.clone()))
                .unwrap_or_default();
            let act = match &g.input_activations {
                None => None,
                Some(a) if a.kind == "int" && a.num_bits == 8 => Some(ActQuant::Int8Token),
                Some(a) if a.kind == "float" && a.num_bits == 8 => Some(ActQuant::Fp8Token),
                Some(a) => {
                    return Err(ModelError::Tensor {
                        file: w
                            .file_of(&format!("{prefix}.weight"))
                            .map(Path::to_path_buf)
                            .unwrap_or_default(),
                        tensor: prefix.into(),
                        msg: format!(
                            "input activations {} {}-bit are not supported",
                            a.kind, a.num_bits
                        ),
                    })
                }
            };
            let bits = g.weights.as_ref().map(|a| a.num_bits).unwrap_or(0);
            if format == "pack-quantized"
                && !(g.weights.as_ref().is_some_and(|a| a.kind == "int") && (1..=8).contains(&bits))
            {
                return Err(ModelError::Tensor {
                    file: w
                        .file_of(&format!("{prefix}.weight_packed"))
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    tensor: prefix.into(),
                    msg: format!(
                        "pack-quantized holds 1- to 8-bit int weights; the config says {bits}-bit"
                    ),
                });
            }
            (dequantize(w, prefix, &format, bits)?, act)
        }
    };
    Ok(Linear {
        weight: weight.to_kind(kind).to_device(device),
        bias: b,
        act_quant,
    })
}

/// Dequantize one compressed linear weight to fp32 `[out, in]`; `bits` is the weights'
/// `num_bits` (used by `pack-quantized`).
fn dequantize(w: &Weights, prefix: &str, format: &str, bits: u32) -> Result<Tensor> {
    let scale = w
        .get(&format!("{prefix}.weight_scale"))?
        .to_kind(Kind::Float);
    let zp_name = format!("{prefix}.weight_zero_point");
    let file = || {
        w.file_of(&format!("{prefix}.weight_scale"))
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let q = match format {
        "float-quantized" | "int-quantized" | "naive-quantized" => {
            w.get(&format!("{prefix}.weight"))?.to_kind(Kind::Float)
        }
        "pack-quantized" => {
            let shape = w
                .get(&format!("{prefix}.weight_shape"))?
                .to_kind(Kind::Int64);
            let dims: Vec<i64> = Vec::<i64>::try_from(&shape).map_err(ModelError::Torch)?;
            if dims.len() != 2 {
                return Err(ModelError::Tensor {
                    file: file(),
                    tensor: format!("{prefix}.weight_shape"),
                    msg: format!("expected 2 dims, got {dims:?}"),
                });
            }
            let packed = w.get(&format!("{prefix}.weight_packed"))?;
            if packed.size()[0] != dims[0] || packed.size()[1] * 32 < dims[1] * bits as i64 {
                return Err(ModelError::Tensor {
                    file: file(),
                    tensor: format!("{prefix}.weight_packed"),
                    msg: format!(
                        "shape {:?} does not hold weight_shape {dims:?}",
                        packed.size()
                    ),
                });
            }
            unpack_bits(&packed, bits, dims[1]).to_kind(Kind::Float)
        }
        other => {
            return Err(ModelError::Tensor {
                file: file(),
                tensor: prefix.into(),
                msg: format!("compressed-tensors format '{other}' is not supported"),
            })
        }
    };
    let (out, inf) = (q.size()[0], q.size()[1]);
    let ssz = scale.size();
    // Broadcast the scale to [out, in]: tensor ([1] or []), channel ([out,1]), group ([out, in/g]).
    let g_idx_name = format!("{prefix}.weight_g_idx");
    let expand = |s: &Tensor| -> Result<Tensor> {
        let s = if s.dim() <= 1 && s.numel() == 1 {
            s.reshape([1, 1]).expand([out, inf], false)
        } else if s.dim() == 2 && s.size()[0] == out && s.size()[1] == 1 {
            s.expand([out, inf], false)
        } else if s.dim() == 2 && s.size()[0] == out && inf % s.size()[1] == 0 {
            if w.contains(&g_idx_name) {
                let g = w.get(&g_idx_name)?.to_kind(Kind::Int64);
                s.index_select(1, &g)
            } else {
                s.repeat_interleave_self_int(inf / s.size()[1], 1, None)
            }
        } else {
            return Err(ModelError::Tensor {
                file: file(),
                tensor: format!("{prefix}.weight_scale"),
                msg: format!("shape {ssz:?} does not fit weight [{out}, {inf}]"),
            });
        };
        Ok(s)
    };
    let s = expand(&scale)?;
    let q = if w.contains(&zp_name) {
        let zp = w.get(&zp_name)?;
        let zp = if format == "pack-quantized" {
            // Packed along the output dimension: [ceil(out·b/32), G] -> [out, G].
            let groups = scale.size().last().copied().unwrap_or(1);
            if zp.dim() != 2 || zp.size()[1] != groups || zp.size()[0] * 32 < out * bits as i64 {
                return Err(ModelError::Tensor {
                    file: file(),
                    tensor: zp_name,
                    msg: format!(
                        "shape {:?} does not hold {out} x {groups} packed {bits}-bit zero points",
                        zp.size()
                    ),
                });
            }
            unpack_bits(&zp.tr(), bits, out).tr()
        } else {
            zp
        };
        q - expand(&zp.to_kind(Kind::Float))?
    } else {
        q
    };
    Ok(q * s)
}
