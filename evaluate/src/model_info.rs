//! Identity of an evaluated model folder for the run record: its config hash and a scheme label
//! read from the compressed-tensors `quantization_config` (`bf16` when there is none).

use crate::results::ModelInfo;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The scheme label of a `quantization_config`: `w4a16` / `w8a16` (weight-only int),
/// `w8a8-int8`, `w8a8-fp8`, with `-gN` never appended (group size is in the config itself).
/// A `quantlab_recipe.json` beside config.json, when present, names the scheme directly.
pub fn scheme_label(dir: &Path, qcfg: Option<&serde_json::Value>) -> String {
    if let Ok(text) = std::fs::read_to_string(dir.join("quantlab_recipe.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(s) = v.get("scheme").and_then(|s| s.as_str()) {
                return s.to_string();
            }
        }
    }
    let Some(q) = qcfg else { return "bf16".into() };
    let Some(g) = q
        .get("config_groups")
        .and_then(|g| g.as_object())
        .and_then(|g| g.values().next())
    else {
        return "quantized".into();
    };
    let w = &g["weights"];
    let a = &g["input_activations"];
    let wbits = w["num_bits"].as_u64().unwrap_or(0);
    match (w["type"].as_str(), a.is_null()) {
        (Some("float"), false) => format!("w{wbits}a{}-fp8", a["num_bits"].as_u64().unwrap_or(0)),
        (Some("int"), false) => format!("w{wbits}a{}-int8", a["num_bits"].as_u64().unwrap_or(0)),
        (_, true) => format!("w{wbits}a16"),
        _ => "quantized".into(),
    }
}

/// Build the [`ModelInfo`] of `dir`, shown as `name`. Errors: config.json missing or not JSON.
pub fn model_info(name: &str, dir: &Path) -> Result<ModelInfo> {
    let cfg_path = dir.join("config.json");
    let bytes =
        std::fs::read(&cfg_path).with_context(|| format!("{}: cannot read", cfg_path.display()))?;
    let cfg: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not valid JSON", cfg_path.display()))?;
    let qcfg = cfg
        .get("quantization_config")
        .filter(|v| !v.is_null())
        .cloned();
    Ok(ModelInfo {
        name: name.to_string(),
        path: dir.display().to_string(),
        scheme: scheme_label(dir, qcfg.as_ref()),
        config_sha256: hex::encode(Sha256::digest(&bytes)),
        quantization_config: qcfg,
        weights_sha256: Some(weights_sha256(dir)?),
    })
}

/// sha256 (hex) over the `*.safetensors` files of `dir`, in name order: for each file its name,
/// a NUL byte, then its bytes. Reads every weight byte once (about 2 GB/s with SHA-NI). Errors:
/// the folder cannot be listed or a file cannot be read (named).
pub fn weights_sha256(dir: &Path) -> Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the model folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.file_name().unwrap_or_default().as_encoded_bytes());
        h.update([0u8]);
        let mut file =
            std::fs::File::open(f).with_context(|| format!("{}: cannot read", f.display()))?;
        std::io::copy(&mut file, &mut h)
            .with_context(|| format!("{}: cannot read", f.display()))?;
    }
    Ok(hex::encode(h.finalize()))
}
