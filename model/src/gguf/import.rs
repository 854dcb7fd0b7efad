//! Import a llama-architecture GGUF into a Hugging Face model folder (bf16 safetensors, config,
//! tokenizer, chat template), the same folder `transformers` would save for the original model.
//!
//! Tensor names follow llama.cpp `gguf-py/gguf/tensor_mapping.py` in reverse; q/k rows are
//! un-permuted (llama.cpp `convert_hf_to_gguf.py` `LlamaModel.permute` interleaves the two rotary
//! halves of each head; transformers `modeling_gguf_pytorch_utils.py` undoes it the same way);
//! hyper-parameters come from the `{arch}.*` keys of the GGUF spec.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use half::bf16;
use safetensors::tensor::{Dtype, View};
use serde_json::{json, Map, Value};

use super::reader::{GgufFile, MetadataValue, TensorInfo};
use super::tokenizer::{build_tokenizer, TokenizerSpec};

/// What [`import_gguf`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Number of tensors written to `model.safetensors`.
    pub n_tensors: usize,
    /// `general.architecture` of the GGUF (`llama`).
    pub architecture: String,
    /// The folder written.
    pub out_dir: PathBuf,
}

/// Import a llama-family GGUF into a Hugging Face folder.
///
/// Writes into `out_dir` (which must not exist yet; see [`import_gguf_with`] to replace it):
///
/// * `model.safetensors`: every tensor as bf16 (f32 -> bf16 round-half-to-even), shape in
///   PyTorch order, HF Llama names (`model.embed_tokens.weight` `[vocab, hidden]`,
///   `model.layers.N.self_attn.{q,k,v,o}_proj.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`,
///   `model.layers.N.{input,post_attention}_layernorm.weight` `[hidden]`, `model.norm.weight`,
///   and `lm_head.weight` only when the GGUF has a separate `output.weight`). Quantized GGUF
///   blocks are dequantized exactly as gguf-py `gguf/quants.py` does (see [`super::quants`]).
/// * `config.json` (`LlamaForCausalLM`), `generation_config.json`.
/// * `tokenizer.json` (byte-level BPE, see [`super::tokenizer`]) and `tokenizer_config.json`
///   (chat template from `tokenizer.chat_template`, special token strings, `add_bos_token`).
///
/// Everything is written to a temporary sibling folder that is renamed to `out_dir` only when
/// complete, so a failed import leaves nothing behind.
///
/// Errors are one line naming the file and the key or tensor at fault, e.g.
/// `x.gguf: metadata key 'llama.block_count' missing` or
/// `x.gguf: tensor 'blk.3.attn_q.weight': unsupported ggml type Q5_K`; bad input (truncated
/// file, bad magic, unsupported version, offsets out of range) never panics.
pub fn import_gguf(gguf_path: &Path, out_dir: &Path) -> Result<ImportSummary> {
    import_gguf_with(gguf_path, out_dir, false)
}

/// [`import_gguf`], replacing an existing `out_dir` when `force` is true (the old folder is
/// removed only after the new one has been written completely).
pub fn import_gguf_with(gguf_path: &Path, out_dir: &Path, force: bool) -> Result<ImportSummary> {
    if let (Ok(g), Ok(cwd)) = (gguf_path.canonicalize(), std::env::current_dir()) {
        let out = if out_dir.is_absolute() {
            out_dir.to_path_buf()
        } else {
            cwd.join(out_dir)
        };
        let out = out.canonicalize().unwrap_or(out);
        if g.starts_with(&out) || cwd.canonicalize().unwrap_or(cwd).starts_with(&out) {
            anyhow::bail!(
                "{}: the output folder holds the input GGUF or the current folder; give a new folder",
                out_dir.display()
            );
        }
    }
    if !force && fs::symlink_metadata(out_dir).is_ok() {
        anyhow::bail!(
            "{}: output folder already exists (import does not overwrite it)",
            out_dir.display()
        );
    }
    let gguf = GgufFile::open(gguf_path)?;
    let arch = meta_str(&gguf, "general.architecture")?.to_string();
    if arch != "llama" {
        return Err(gguf.error(format_args!(
            "metadata key 'general.architecture' is '{arch}': only 'llama' is supported"
        )));
    }
    let hp = Hparams::read(&gguf, &arch)?;
    let plan = plan_tensors(&gguf, &hp)?;
    let tied = !plan.iter().any(|p| p.hf_name == "lm_head.weight");
    let tok = TokenizerMeta::read(&gguf)?;
    let tokenizer = build_tokenizer(&tok.spec()).map_err(|e| gguf.error(e))?;
    let config = config_json(&hp, &tok, tied);
    let tokenizer_config = tokenizer_config_json(&gguf, &hp, &tok)?;
    let generation_config = generation_config_json(&tok);

    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .with_context(|| format!("{}: cannot create folder", parent.display()))?;
    let stem = out_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{stem}.importing-"))
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    let write_err = |name: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{}: {e}", tmp.path().join(name).display())
    };

    write_safetensors(&gguf, &plan, &tmp.path().join("model.safetensors"))?;
    tokenizer
        .save(tmp.path().join("tokenizer.json"), true)
        .map_err(|e| write_err("tokenizer.json", &e))?;
    for (name, value) in [
        ("config.json", &config),
        ("tokenizer_config.json", &tokenizer_config),
        ("generation_config.json", &generation_config),
    ] {
        let text = serde_json::to_string_pretty(value).map_err(|e| write_err(name, &e))? + "\n";
        fs::write(tmp.path().join(name), text).map_err(|e| write_err(name, &e))?;
    }

    if force {
        match fs::symlink_metadata(out_dir) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(out_dir),
            Ok(_) => fs::remove_file(out_dir),
            Err(_) => Ok(()),
        }
        .with_context(|| format!("{}: cannot remove the old folder", out_dir.display()))?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = fs::rename(&tmp_path, out_dir) {
        let _ = fs::remove_dir_all(&tmp_path);
        anyhow::bail!(
            "{}: cannot move the imported folder into place: {e}",
            out_dir.display()
        );
    }
    tracing::info!(
        gguf = %gguf_path.display(),
        out = %out_dir.display(),
        n_tensors = plan.len(),
        "imported GGUF"
    );
    Ok(ImportSummary {
        n_tensors: plan.len(),
        architecture: arch,
        out_dir: out_dir.to_path_buf(),
    })
}

// ---------------------------------------------------------------------------------------------
// metadata access

fn meta<'a>(g: &'a GgufFile, key: &str) -> Result<&'a MetadataValue> {
    g.get(key)
        .ok_or_else(|| g.error(format_args!("metadata key '{key}' missing")))
}

fn wrong_type(g: &GgufFile, key: &str, v: &MetadataValue, want: &str) -> anyhow::Error {
    g.error(format_args!(
        "metadata key '{key}' is {}, expected {want}",
        v.type_name()
    ))
}

fn meta_str<'a>(g: &'a GgufFile, key: &str) -> Result<&'a str> {
    let v = meta(g, key)?;
    v.as_str().ok_or_else(|| wrong_type(g, key, v, "a string"))
}

fn opt_u64(g: &GgufFile, key: &str) -> Result<Option<u64>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong_type(g, key, v, "an unsigned integer")),
    }
}

fn meta_u64(g: &GgufFile, key: &str) -> Result<u64> {
    opt_u64(g, key)?.ok_or_else(|| g.error(format_args!("metadata key '{key}' missing")))
}

/// A positive integer that is used as a size.
fn meta_size(g: &GgufFile, key: &str) -> Result<usize> {
    let v = meta_u64(g, key)?;
    if v == 0 || v > u32::MAX as u64 {
        return Err(g.error(format_args!("metadata key '{key}' = {v} is out of range")));
    }
    Ok(v as usize)
}

/// A float as the decimal number it was written from: an f32 is printed with the shortest
/// round-trip representation and re-read as f64 (9.999999747378752e-06 -> 1e-05), as
/// `config.json` files hold those decimals.
fn opt_f64(g: &GgufFile, key: &str) -> Result<Option<f64>> {
    match g.get(key) {
        None => Ok(None),
        Some(MetadataValue::F32(v)) => Ok(Some(format!("{v}").parse().unwrap_or(f64::from(*v)))),
        Some(MetadataValue::F64(v)) => Ok(Some(*v)),
        Some(v) => Err(wrong_type(g, key, v, "a float")),
    }
}

fn opt_bool(g: &GgufFile, key: &str) -> Result<Option<bool>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong_type(g, key, v, "a bool")),
    }
}

fn str_array<'a>(g: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    let v = meta(g, key)?;
    let arr = v
        .as_array()
        .ok_or_else(|| wrong_type(g, key, v, "an array of strings"))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .ok_or_else(|| wrong_type(g, key, x, "an array of strings"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// hyper-parameters and config.json

#[derive(Debug)]
struct Hparams {
    n_layer: usize,
    hidden: usize,
    ffn: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_ctx: usize,
    rope_theta: f64,
    rms_eps: f64,
    vocab_size: Option<usize>,
    rope_scaling: Value,
}

impl Hparams {
    fn read(g: &GgufFile, arch: &str) -> Result<Self> {
        let k = |s: &str| format!("{arch}.{s}");
        let n_layer = meta_size(g, &k("block_count"))?;
        let hidden = meta_size(g, &k("embedding_length"))?;
        let ffn = meta_size(g, &k("feed_forward_length"))?;
        let n_head = meta_size(g, &k("attention.head_count"))?;
        let n_head_kv = match g.get(&k("attention.head_count_kv")) {
            None => n_head,
            Some(_) => meta_size(g, &k("attention.head_count_kv"))?,
        };
        if n_head % n_head_kv != 0 {
            return Err(g.error(format_args!(
                "metadata key '{}' = {n_head_kv} does not divide the {n_head} heads",
                k("attention.head_count_kv")
            )));
        }
        let head_dim = match g.get(&k("attention.key_length")) {
            Some(_) => meta_size(g, &k("attention.key_length"))?,
            None if hidden % n_head == 0 => hidden / n_head,
            None => {
                return Err(g.error(format_args!(
                    "metadata key '{}' missing and {hidden} is not a multiple of {n_head} heads",
                    k("attention.key_length")
                )))
            }
        };
        if let Some(v) = opt_u64(g, &k("attention.value_length"))? {
            if v as usize != head_dim {
                return Err(g.error(format_args!(
                    "metadata key '{}' = {v} differs from the key length {head_dim} (not a Llama layout)",
                    k("attention.value_length")
                )));
            }
        }
        if head_dim % 2 != 0 {
            return Err(g.error(format_args!("head dimension {head_dim} is odd")));
        }
        if let Some(r) = opt_u64(g, &k("rope.dimension_count"))? {
            if r as usize != head_dim {
                return Err(g.error(format_args!(
                    "metadata key '{}' = {r}: partial rotary (head dim {head_dim}) is not supported",
                    k("rope.dimension_count")
                )));
            }
        }
        let n_ctx = meta_size(g, &k("context_length"))?;
        let rope_theta = opt_f64(g, &k("rope.freq_base"))?.unwrap_or(10000.0);
        let rms_eps = opt_f64(g, &k("attention.layer_norm_rms_epsilon"))?.ok_or_else(|| {
            g.error(format_args!(
                "metadata key '{}' missing",
                k("attention.layer_norm_rms_epsilon")
            ))
        })?;
        let vocab_size = opt_u64(g, &k("vocab_size"))?.map(|v| v as usize);
        let rope_scaling = rope_scaling(g, arch)?;
        Ok(Self {
            n_layer,
            hidden,
            ffn,
            n_head,
            n_head_kv,
            head_dim,
            n_ctx,
            rope_theta,
            rms_eps,
            vocab_size,
            rope_scaling,
        })
    }
}

/// `rope_scaling` for config.json from `{arch}.rope.scaling.*` (or the older
/// `{arch}.rope.scale_linear`); `null` when the GGUF has none.
fn rope_scaling(g: &GgufFile, arch: &str) -> Result<Value> {
    let k = |s: &str| format!("{arch}.{s}");
    let factor_key = k("rope.scaling.factor");
    let factor = || -> Result<f64> {
        opt_f64(g, &factor_key)?
            .ok_or_else(|| g.error(format_args!("metadata key '{factor_key}' missing")))
    };
    let ty = match g.get(&k("rope.scaling.type")) {
        Some(_) => meta_str(g, &k("rope.scaling.type"))?,
        None => {
            return Ok(match opt_f64(g, &k("rope.scale_linear"))? {
                Some(f) if f != 1.0 => json!({"rope_type": "linear", "factor": f}),
                _ => Value::Null,
            })
        }
    };
    match ty {
        "none" => Ok(Value::Null),
        "linear" => Ok(json!({"rope_type": "linear", "factor": factor()?})),
        "yarn" => {
            let mut v = json!({"rope_type": "yarn", "factor": factor()?});
            if let Some(n) = opt_u64(g, &k("rope.scaling.original_context_length"))? {
                v["original_max_position_embeddings"] = json!(n);
            }
            Ok(v)
        }
        other => Err(g.error(format_args!(
            "metadata key '{}' is '{other}': unsupported rope scaling",
            k("rope.scaling.type")
        ))),
    }
}

fn config_json(hp: &Hparams, tok: &TokenizerMeta<'_>, tied: bool) -> Value {
    let mut c = Map::new();
    c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    c.insert("model_type".into(), json!("llama"));
    c.insert("hidden_size".into(), json!(hp.hidden));
    c.insert("intermediate_size".into(), json!(hp.ffn));
    c.insert("num_attention_heads".into(), json!(hp.n_head));
    c.insert("num_key_value_heads".into(), json!(hp.n_head_kv));
    c.insert("num_hidden_layers".into(), json!(hp.n_layer));
    c.insert("head_dim".into(), json!(hp.head_dim));
    c.insert("rms_norm_eps".into(), json!(hp.rms_eps));
    c.insert("rope_theta".into(), json!(hp.rope_theta));
    c.insert("rope_scaling".into(), hp.rope_scaling.clone());
    c.insert("max_position_embeddings".into(), json!(hp.n_ctx));
    c.insert(
        "vocab_size".into(),
        json!(hp.vocab_size.unwrap_or(tok.tokens.len())),
    );
    c.insert("tie_word_embeddings".into(), json!(tied));
    for (key, id) in [
        ("bos_token_id", tok.bos),
        ("eos_token_id", tok.eos),
        ("pad_token_id", tok.pad),
    ] {
        if let Some(id) = id {
            c.insert(key.into(), json!(id));
        }
    }
    c.insert("torch_dtype".into(), json!("bfloat16"));
    c.insert("hidden_act".into(), json!("silu"));
    c.insert("attention_bias".into(), json!(false));
    c.insert("mlp_bias".into(), json!(false));
    c.insert("attention_dropout".into(), json!(0.0));
    c.insert("initializer_range".into(), json!(0.02));
    c.insert("pretraining_tp".into(), json!(1));
    c.insert("use_cache".into(), json!(true));
    Value::Object(c)
}

// ---------------------------------------------------------------------------------------------
// tokenizer metadata, tokenizer_config.json, generation_config.json

struct TokenizerMeta<'a> {
    model: &'a str,
    pre: Option<&'a str>,
    tokens: Vec<&'a str>,
    token_types: Vec<i64>,
    merges: Vec<&'a str>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl<'a> TokenizerMeta<'a> {
    fn read(g: &'a GgufFile) -> Result<Self> {
        let model = meta_str(g, "tokenizer.ggml.model")?;
        let pre = match g.get("tokenizer.ggml.pre") {
            Some(_) => Some(meta_str(g, "tokenizer.ggml.pre")?),
            None => None,
        };
        let tokens = str_array(g, "tokenizer.ggml.tokens")?;
        let merges = match g.get("tokenizer.ggml.merges") {
            Some(_) => str_array(g, "tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let token_types = match g.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(v) => {
                let key = "tokenizer.ggml.token_type";
                let arr = v
                    .as_array()
                    .ok_or_else(|| wrong_type(g, key, v, "an array of integers"))?;
                arr.iter()
                    .map(|x| {
                        x.as_i64()
                            .ok_or_else(|| wrong_type(g, key, x, "an array of integers"))
                    })
                    .collect::<Result<_>>()?
            }
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match opt_u64(g, key)? {
                None => Ok(None),
                Some(v) if (v as usize) < tokens.len() => Ok(Some(v as u32)),
                Some(v) => Err(g.error(format_args!(
                    "metadata key '{key}' = {v} is not a token id (vocab has {})",
                    tokens.len()
                ))),
            }
        };
        Ok(Self {
            model,
            pre,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: opt_bool(g, "tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            add_eos: opt_bool(g, "tokenizer.ggml.add_eos_token")?.unwrap_or(false),
            tokens,
            token_types,
            merges,
        })
    }

    fn spec(&self) -> TokenizerSpec<'_> {
        TokenizerSpec {
            model: self.model,
            pre: self.pre,
            tokens: &self.tokens,
            token_types: &self.token_types,
            merges: &self.merges,
            bos: self.bos.map(|b| (b, self.add_bos)),
            eos: self.eos.map(|e| (e, self.add_eos)),
        }
    }

    fn token(&self, id: Option<u32>) -> Value {
        id.map_or(Value::Null, |i| json!(self.tokens[i as usize]))
    }
}

fn tokenizer_config_json(g: &GgufFile, hp: &Hparams, tok: &TokenizerMeta<'_>) -> Result<Value> {
    let mut c = Map::new();
    c.insert("add_bos_token".into(), json!(tok.add_bos));
    c.insert("add_eos_token".into(), json!(tok.add_eos));
    c.insert("bos_token".into(), tok.token(tok.bos));
    c.insert("eos_token".into(), tok.token(tok.eos));
    c.insert("pad_token".into(), tok.token(tok.pad));
    c.insert("unk_token".into(), tok.token(tok.unk));
    match g.get("tokenizer.chat_template") {
        Some(_) => {
            let t = meta_str(g, "tokenizer.chat_template")?;
            c.insert("chat_template".into(), json!(t));
        }
        None => tracing::warn!(gguf = %g.path().display(), "no tokenizer.chat_template"),
    }
    c.insert("model_max_length".into(), json!(hp.n_ctx));
    c.insert("clean_up_tokenization_spaces".into(), json!(false));
    c.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    Ok(Value::Object(c))
}

fn generation_config_json(tok: &TokenizerMeta<'_>) -> Value {
    let mut c = Map::new();
    for (key, id) in [
        ("bos_token_id", tok.bos),
        ("eos_token_id", tok.eos),
        ("pad_token_id", tok.pad),
    ] {
        if let Some(id) = id {
            c.insert(key.into(), json!(id));
        }
    }
    Value::Object(c)
}

// ---------------------------------------------------------------------------------------------
// tensors

/// One output tensor: where it comes from and how to transform it.
struct Planned<'a> {
    hf_name: String,
    info: &'a TensorInfo,
    shape: Vec<usize>,
    /// Undo llama.cpp's rotary permutation of the rows with this many heads.
    unpermute_heads: Option<usize>,
}

/// HF name of a llama GGUF tensor and whether it is q (`Some(false)`) or k (`Some(true)`).
fn hf_name(name: &str, n_layer: usize) -> Option<(String, Option<bool>)> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some((f.to_string(), None));
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    if layer >= n_layer || layer.to_string().len() != rest.find('.')? {
        return None;
    }
    let (hf, kind) = match suffix {
        "attn_norm.weight" => ("input_layernorm.weight", None),
        "attn_q.weight" => ("self_attn.q_proj.weight", Some(false)),
        "attn_k.weight" => ("self_attn.k_proj.weight", Some(true)),
        "attn_v.weight" => ("self_attn.v_proj.weight", None),
        "attn_output.weight" => ("self_attn.o_proj.weight", None),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", None),
        "ffn_up.weight" => ("mlp.up_proj.weight", None),
        "ffn_down.weight" => ("mlp.down_proj.weight", None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}"), kind))
}

/// Map every GGUF tensor to its HF name and check names, shapes and types before writing.
fn plan_tensors<'a>(g: &'a GgufFile, hp: &Hparams) -> Result<Vec<Planned<'a>>> {
    let embd = g
        .tensor("token_embd.weight")
        .ok_or_else(|| g.error("tensor 'token_embd.weight' missing"))?;
    let vocab = embd.shape()[0];
    if let Some(v) = hp.vocab_size {
        if v != vocab {
            return Err(g.error(format_args!(
                "metadata key 'vocab_size' = {v} but tensor 'token_embd.weight' has {vocab} rows"
            )));
        }
    }
    let (h, q, kv, ff) = (
        hp.hidden,
        hp.n_head * hp.head_dim,
        hp.n_head_kv * hp.head_dim,
        hp.ffn,
    );
    let mut plan = Vec::with_capacity(g.tensors().len());
    let mut seen: HashMap<String, ()> = HashMap::new();
    for t in g.tensors() {
        if t.name == "rope_freqs.weight" {
            return Err(g.error(
                "tensor 'rope_freqs.weight': Llama-3.1-style rope scaling factors are not supported",
            ));
        }
        let (hf, kind) = hf_name(&t.name, hp.n_layer).ok_or_else(|| {
            g.error(format_args!(
                "tensor '{}': no Hugging Face Llama name for it (unsupported tensor)",
                t.name
            ))
        })?;
        let want: Vec<usize> = match hf.rsplit('.').nth(1).unwrap_or("") {
            "embed_tokens" | "lm_head" => vec![vocab, h],
            "norm" | "input_layernorm" | "post_attention_layernorm" => vec![h],
            "q_proj" => vec![q, h],
            "k_proj" | "v_proj" => vec![kv, h],
            "o_proj" => vec![h, q],
            "gate_proj" | "up_proj" => vec![ff, h],
            "down_proj" => vec![h, ff],
            _ => unreachable!("hf_name only returns the names above"),
        };
        let shape = t.shape();
        if shape != want {
            return Err(g.error(format_args!(
                "tensor '{}': shape {shape:?}, expected {want:?} from the metadata",
                t.name
            )));
        }
        if !t.ggml_type.can_dequantize() {
            return Err(g.error(format_args!(
                "tensor '{}': unsupported ggml type {}",
                t.name, t.ggml_type
            )));
        }
        seen.insert(hf.clone(), ());
        plan.push(Planned {
            hf_name: hf,
            info: t,
            shape,
            unpermute_heads: kind.map(|is_k| if is_k { hp.n_head_kv } else { hp.n_head }),
        });
    }
    let mut required = vec![
        ("token_embd.weight", "model.embed_tokens.weight".to_string()),
        ("output_norm.weight", "model.norm.weight".to_string()),
    ];
    for l in 0..hp.n_layer {
        for (gg, hf) in [
            ("attn_norm", "input_layernorm"),
            ("attn_q", "self_attn.q_proj"),
            ("attn_k", "self_attn.k_proj"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_norm", "post_attention_layernorm"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ] {
            if !seen.contains_key(&format!("model.layers.{l}.{hf}.weight")) {
                return Err(g.error(format_args!("tensor 'blk.{l}.{gg}.weight' missing")));
            }
        }
    }
    required.retain(|(_, hf)| !seen.contains_key(hf));
    if let Some((gg, _)) = required.first() {
        return Err(g.error(format_args!("tensor '{gg}' missing")));
    }
    Ok(plan)
}

/// Undo `convert_hf_to_gguf.py` `LlamaModel.permute` on a row-major `[rows, cols]` matrix.
///
/// llama.cpp wrote HF row `h*D + a*D/2 + i` (head `h`, half `a`, index `i`) to row
/// `h*D + 2*i + a`, i.e. `w.reshape(n_head, 2, D/2, cols).swapaxes(1, 2)`; this reads it back:
/// `reshape(n_head, D/2, 2, cols).swapaxes(1, 2)`. `rows` must be a multiple of `2 * n_head`.
pub(crate) fn unpermute_rows(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let d = rows / n_head;
    let half = d / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for a in 0..2 {
            for i in 0..half {
                let src = (h * d + 2 * i + a) * cols;
                let dst = (h * d + a * half + i) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}

/// A tensor that is dequantized, un-permuted and rounded to bf16 only when the safetensors
/// writer asks for its bytes, so at most one tensor is held in memory at a time.
struct LazyBf16<'a, 'p> {
    gguf: &'a GgufFile,
    plan: &'p Planned<'a>,
    error: &'p RefCell<Option<anyhow::Error>>,
}

impl View for LazyBf16<'_, '_> {
    fn dtype(&self) -> Dtype {
        Dtype::BF16
    }

    fn shape(&self) -> &[usize] {
        &self.plan.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match tensor_bf16_bytes(self.gguf, self.plan) {
            Ok(b) => Cow::Owned(b),
            Err(e) => {
                // `View::data` cannot fail: remember the error, write zeros, fail afterwards.
                self.error.borrow_mut().get_or_insert(e);
                Cow::Owned(vec![0u8; self.data_len()])
            }
        }
    }

    fn data_len(&self) -> usize {
        self.plan.info.n_elements as usize * 2
    }
}

fn tensor_bf16_bytes(g: &GgufFile, p: &Planned<'_>) -> Result<Vec<u8>> {
    let mut w = g.tensor_f32(p.info)?;
    if let Some(n_head) = p.unpermute_heads {
        let (rows, cols) = (p.shape[0], p.shape[1]);
        w = unpermute_rows(&w, rows, cols, n_head);
    }
    let mut out = Vec::with_capacity(w.len() * 2);
    for x in w {
        out.extend_from_slice(&bf16::from_f32(x).to_le_bytes());
    }
    Ok(out)
}

fn write_safetensors(g: &GgufFile, plan: &[Planned<'_>], path: &Path) -> Result<()> {
    let error = RefCell::new(None);
    let views = plan.iter().map(|p| {
        (
            p.hf_name.clone(),
            LazyBf16 {
                gguf: g,
                plan: p,
                error: &error,
            },
        )
    });
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // HF weight: row r has value r in every column. Permute as convert_hf_to_gguf does.
        let (n_head, d, cols) = (3usize, 8usize, 2usize);
        let rows = n_head * d;
        let hf: Vec<f32> = (0..rows * cols).map(|i| (i / cols) as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..n_head {
            for a in 0..2 {
                for i in 0..d / 2 {
                    let src = h * d + a * (d / 2) + i; // reshape(n_head, 2, d/2)
                    let dst = h * d + i * 2 + a; // .swapaxes(1, 2)
                    gguf[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_ne!(gguf, hf);
        assert_eq!(unpermute_rows(&gguf, rows, cols, n_head), hf);
    }

    #[test]
    fn names() {
        assert_eq!(
            hf_name("blk.3.attn_k.weight", 30),
            Some(("model.layers.3.self_attn.k_proj.weight".into(), Some(true)))
        );
        assert_eq!(hf_name("blk.30.attn_k.weight", 30), None);
        assert_eq!(hf_name("blk.03.attn_k.weight", 30), None);
        assert_eq!(hf_name("blk.3.attn_q.bias", 30), None);
        assert_eq!(
            hf_name("output.weight", 30),
            Some(("lm_head.weight".into(), None))
        );
    }
}
