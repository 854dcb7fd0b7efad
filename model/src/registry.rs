//! MODEL arguments: a folder path, or an alias from `models.yaml` resolved to its `path` or to its
//! Hugging Face id in the local HF cache (`models--ORG--NAME/snapshots/REV`). Nothing is downloaded.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One alias entry of models.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub hf_id: Option<String>,
    pub path: Option<String>,
    pub note: Option<String>,
}

/// Read models.yaml (`$QUANTLAB_MODELS`, else `./models.yaml`, else the one beside the binary's
/// workspace). A missing file gives an empty registry; a malformed one is an error naming the file.
pub fn load_registry() -> Result<(PathBuf, BTreeMap<String, ModelEntry>)> {
    let candidates: Vec<PathBuf> = match std::env::var("QUANTLAB_MODELS") {
        Ok(p) => vec![PathBuf::from(p)],
        Err(_) => vec![
            PathBuf::from("models.yaml"),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models.yaml"),
        ],
    };
    for c in candidates {
        if c.is_file() {
            let text = std::fs::read_to_string(&c)
                .with_context(|| format!("{}: cannot read", c.display()))?;
            let map: BTreeMap<String, ModelEntry> = serde_yaml::from_str(&text)
                .with_context(|| format!("{}: not a valid alias file", c.display()))?;
            return Ok((c, map));
        }
    }
    Ok((PathBuf::from("models.yaml"), BTreeMap::new()))
}

/// The local Hugging Face hub cache folder.
pub fn hf_cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Ok(p) = std::env::var("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache/huggingface/hub")
}

/// Find `org/name` in the HF cache: the snapshot named by `refs/main`, else the newest snapshot.
pub fn find_in_hf_cache(hf_id: &str) -> Option<PathBuf> {
    let dir = hf_cache_dir().join(format!("models--{}", hf_id.replace('/', "--")));
    let snaps = dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(dir.join("refs/main")) {
        let p = snaps.join(rev.trim());
        if p.join("config.json").is_file() {
            return Some(p);
        }
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&snaps)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    all.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    all.into_iter()
        .rev()
        .find(|p| p.join("config.json").is_file())
}

/// Resolve a MODEL argument to a folder with a config.json.
///
/// Errors: neither a folder nor a known alias; an alias whose files are nowhere on this machine
/// (the message says where we looked and how to get them).
pub fn resolve_model(arg: &str) -> Result<PathBuf> {
    let p = Path::new(arg);
    if p.is_dir() {
        if !p.join("config.json").is_file() {
            bail!("{}: not a model folder (no config.json)", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let (file, reg) = load_registry()?;
    let Some(entry) = reg.get(arg) else {
        let known: Vec<&str> = reg.keys().map(|s| s.as_str()).collect();
        bail!(
            "model '{arg}' is neither a folder nor an alias in {} (aliases: {})",
            file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Some(rel) = &entry.path {
        let cand = base.join(rel);
        if cand.join("config.json").is_file() {
            return Ok(cand);
        }
    }
    if let Some(id) = &entry.hf_id {
        if let Some(p) = find_in_hf_cache(id) {
            return Ok(p);
        }
    }
    let mut msg = format!("model '{arg}' was not found:");
    if let Some(rel) = &entry.path {
        msg += &format!(" no {}/config.json;", base.join(rel).display());
    }
    if let Some(id) = &entry.hf_id {
        msg += &format!(
            " '{id}' is not in the HF cache at {};",
            hf_cache_dir().display()
        );
    }
    if arg == "smollm2-135m" {
        msg += " run `just setup` to import the default model";
    } else {
        msg += " download it on a machine with hub access (huggingface-cli download) and copy the cache here";
    }
    bail!(msg)
}
