//! compressed-tensors checkpoint writer: a Hugging Face folder whose `config.json` carries the
//! `quantization_config` and whose safetensors hold, per quantized Linear `P`:
//! - `float-quantized` / `int-quantized`: `P.weight` (F8_E4M3 / I8 `[out, in]`), `P.weight_scale` (`[out, 1]`).
//! - `pack-quantized`: `P.weight_packed` (I32 `[out, in/8]`), `P.weight_scale` (`[out, in/g]`),
//!   `P.weight_shape` (I64 `[2]`).
//!
//! Everything else (embeddings, norms, `lm_head`) is copied unchanged. The folder is built under a
//! temporary name beside `out_dir` and renamed into place only when complete.

use anyhow::{Context, Result};
use std::path::Path;
use tch::Tensor;

/// Files copied verbatim from the source model folder when present.
pub const SIDE_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// Refuse an output folder that `--force` could not replace without destroying inputs: the
/// current folder or one of its parents, an input itself, a folder holding an input, or a folder
/// inside an input. Paths are compared after resolving `.`/`..` and links.
pub fn check_output_is_safe(out_dir: &Path, inputs: &[&Path]) -> Result<()> {
    let abs = |p: &Path| -> std::path::PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Resolve what exists; keep the rest literally.
        let mut existing = p.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut r = existing.canonicalize().unwrap_or(existing);
        for n in rest.into_iter().rev() {
            r.push(n);
        }
        r
    };
    let out = abs(out_dir);
    let cwd = abs(Path::new("."));
    if cwd.starts_with(&out) {
        anyhow::bail!("{}: refusing to write into the current folder or one of its parents; give a new folder", out_dir.display());
    }
    for i in inputs {
        let inp = abs(i);
        if inp.starts_with(&out) || out.starts_with(&inp) {
            anyhow::bail!(
                "{}: the output folder overlaps the input {}; write the result somewhere else",
                out_dir.display(),
                i.display()
            );
        }
    }
    Ok(())
}

/// Write the folder: `tensors` into `model.safetensors`, `config` as config.json, side files from
/// `src_dir`, plus `recipe_json` as `quantlab_recipe.json` (what produced it). Fails if `out_dir`
/// exists (unless `force`), leaving nothing behind on error.
pub fn write_checkpoint(
    src_dir: &Path,
    out_dir: &Path,
    tensors: &[(String, Tensor)],
    config: &serde_json::Value,
    recipe_json: &serde_json::Value,
    force: bool,
) -> Result<()> {
    check_output_is_safe(out_dir, &[src_dir])?;
    if out_dir.exists() && !force {
        anyhow::bail!(
            "{}: output folder already exists (use --force to replace it)",
            out_dir.display()
        );
    }
    let parent = out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("{}: cannot create", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".quantlab-tmp-")
        .tempdir_in(parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    quantlab_model::weights::save_safetensors(
        &tmp.path().join("model.safetensors"),
        tensors,
        Some(meta),
    )?;
    let cfg_text = serde_json::to_string_pretty(config)?;
    std::fs::write(tmp.path().join("config.json"), cfg_text + "\n")?;
    std::fs::write(
        tmp.path().join("quantlab_recipe.json"),
        serde_json::to_string_pretty(recipe_json)? + "\n",
    )?;
    for f in SIDE_FILES {
        let p = src_dir.join(f);
        if p.exists() {
            std::fs::copy(&p, tmp.path().join(f))
                .with_context(|| format!("{}: cannot copy", p.display()))?;
        }
    }
    let tmp_path = tmp.keep();
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("{}: cannot replace", out_dir.display()))?;
    }
    std::fs::rename(&tmp_path, out_dir).with_context(|| {
        format!(
            "{}: cannot move the finished checkpoint into place",
            out_dir.display()
        )
    })?;
    Ok(())
}
