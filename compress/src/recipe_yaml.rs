//! Recipe YAML in the form users already write for llm-compressor (source: llm-compressor's
//! recipe format, `recipe.yaml` as `oneshot(...)` saves it next to a checkpoint; see
//! `reference/llmcompressor/*/recipe.yaml`), resolved into a [`Recipe`].
//!
//! # Accepted forms
//!
//! One stage holding one modifier group (the names are free; `default_stage` /
//! `default_modifiers` and `quant_stage` / `quant_modifiers` are the usual ones):
//!
//! ```yaml
//! default_stage:
//!   default_modifiers:
//!     SmoothQuantModifier:        # optional; must come before the quantization modifier
//!       smoothing_strength: 0.8   # α, default 0.5, in [0, 1]
//!       mappings: [...]           # optional; only the Llama-family mappings
//!     GPTQModifier:               # or QuantizationModifier (round-to-nearest); exactly one
//!       targets: [Linear]
//!       ignore: [lm_head, "re:.*mlp.down_proj"]
//!       scheme: W4A16             # or config_groups: {group_0: {targets, weights, input_activations, ...}}
//!       block_size: 128
//!       dampening_frac: 0.01
//!       actorder: static
//!       scale_update: static      # quantlab extension, see below
//! ```
//!
//! Also accepted: the modifier group without a stage (`quant_modifiers: {GPTQModifier: ...}`) and
//! the bare modifier map (`GPTQModifier: ...` at the top level). A stage may carry
//! `run_type: oneshot`. Several stages, several modifier groups in a stage, or stage and modifier
//! keys mixed at the top level are errors.
//!
//! The `!!python/tuple` and `!!python/object/apply:compressed_tensors...ActivationOrdering [x]`
//! tags that llm-compressor's YAML dump writes are read as a sequence and as the string `x`
//! (likewise any other `compressed_tensors` enum written that way); any other tag is an error.
//!
//! ## Modifiers
//!
//! - `SmoothQuantModifier` → [`SmoothQuantConfig`] with `alpha = smoothing_strength`. `mappings`,
//!   when given, must be exactly the Llama-family ones: `[q_proj, k_proj, v_proj] ←
//!   input_layernorm` and `[gate_proj, up_proj] ← post_attention_layernorm` (spelt `re:.*q_proj`,
//!   `q_proj` or `self_attn.q_proj`, as lists or `!!python/tuple`s, in any order). `ignore` may only
//!   name `lm_head`; `num_calibration_steps` and `calibration_function` must be unset; `algorithm`,
//!   when given, must be `smoothquant`.
//! - `GPTQModifier` → [`Algorithm::Gptq`] with `block_size` (default 128), `dampening_frac`
//!   (default 0.01, in (0, 1]) and `actorder` (`static` = `weight`, `dynamic` = `group`, `null` =
//!   none). As in llm-compressor, an absent `actorder` takes the weights' `actorder`, else
//!   `static`; a modifier `actorder` that contradicts a non-null weights `actorder` is an error,
//!   and so is `group` act-order for weights that are not grouped.
//!   Scales are chosen once before the sweep ([`ScaleUpdate::Static`], today's llm-compressor)
//!   unless the quantlab extension key `scale_update: group_boundary` asks for the paper-era
//!   choice at each group's first column. `offload_hessians`, `batched_quantization` and
//!   `sequential_targets` (only `*DecoderLayer`: we always go one decoder layer at a time) concern
//!   memory and speed only and are accepted, as is the deprecated `sequential_update: true`.
//! - `QuantizationModifier` → [`Algorithm::Rtn`] (same keys minus the GPTQ ones).
//! - Any other modifier (`AWQModifier`, `SparseGPTModifier`, ...) is an error ("not supported yet").
//!
//! Both quantization modifiers take `targets` (only `Linear`, or `re:` patterns that together
//! match every Linear of a decoder layer), `ignore` (copied to [`Recipe::ignore`]; `lm_head` is
//! dropped, it is always left alone), `bypass_divisibility_checks` and `requires_calibration_data`
//! (informational), and exactly one of:
//!
//! - `scheme: PRESET` or `scheme: {PRESET: [Linear]}`, PRESET one of `W4A16` (int4 symmetric,
//!   groups of 128, min-max), `W8A8` / `INT8` (int8 per channel, dynamic int8 per-token
//!   activations), `FP8_DYNAMIC` (fp8 e4m3 per channel, dynamic fp8 per-token activations).
//!   `W4A16_ASYM` (int4 asymmetric, groups of 128), `W8A16` (int8 symmetric, groups of 128);
//!   `FP8` (static activations) is refused with the reason;
//! - `config_groups: {group_0: {targets: [Linear], weights: {...}, input_activations: {...}}}`
//!   with exactly one group. `weights`: `type` int|float, `num_bits` 4|8 (float: 8),
//!   `symmetric` (false = asymmetric int weights with zero points), `strategy` tensor|channel|group (with `group_size`; a missing strategy
//!   is inferred from `group_size` as compressed-tensors does), `dynamic: false`, `actorder`,
//!   `observer` (`minmax`, `memoryless_minmax`, `static_minmax` → [`Observer::MinMax`]; `mse`,
//!   `memoryless_mse` → [`Observer::MSE_PEER`] with `observer_kwargs` `maxshrink`, `grid`,
//!   `norm`, `patience` (`null` = no early stop) overriding it), `block_structure`,
//!   `scale_dtype` null, `zp_dtype` null (or `torch.int8` for asymmetric weights). `input_activations`: null (weight-only) or `{num_bits: 8,
//!   type: <same as weights>, strategy: token, dynamic: true, symmetric: true}`.
//!   `output_activations` null; `format`, if given, the compressed-tensors format we write.
//!   The modifier-level `weight_observer` may name the weights observer instead.
//!
//! The combination must be one of our formats ([`SchemeName`]): int4 weight-only (`w4a16`,
//! `w4a16-asym`), int8 weight-only (`w8a16`), int8 with int8 activations (`w8a8-int8`), fp8 with
//! fp8 activations (`w8a8-fp8`); anything else (weight-only fp8, int4 with activations) is an
//! error.
//! `group_size` (the CLI's `--group-size`) replaces the recipe's group size, and is an error when
//! the recipe's weights are not grouped.
//!
//! Schedule keys (`index`, `group`, `start`, `end`, `update`) are accepted only unset (`start: 0`
//! / `end: -1` are the oneshot values and accepted too). `kv_cache_scheme`, `input_observer`,
//! `output_observer`, `observer` must be unset.
//!
//! # Errors
//!
//! Every error names the file and the key path, e.g.
//!
//! ```text
//! recipe.yaml: default_stage.default_modifiers.GPTQModifier.dampening_frac: invalid type: string "x", expected f64
//! recipe.yaml: default_stage.default_modifiers.GPTQModifier.dampening_fraction: unknown field `dampening_fraction`, expected one of `targets`, ...
//! ```
//!
//! Unknown keys are never ignored; the message lists the keys that are understood there.

use crate::gptq::{ActOrder, GptqConfig, ScaleUpdate};
use crate::observer::Observer;
use crate::recipe::{Algorithm, Recipe, SmoothQuantConfig};
use crate::scheme::{Scheme, SchemeName, Strategy, WeightType};
use anyhow::Context;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Read and resolve the llm-compressor-style recipe YAML at `path` (see the [module
/// docs](self) for the accepted forms). `group_size` (the CLI's `--group-size`) replaces the
/// recipe's group size.
///
/// Errors: the file cannot be read, or any error of [`parse_recipe_str`] (named by the path).
pub fn parse_recipe_file(path: &Path, group_size: Option<usize>) -> anyhow::Result<Recipe> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading recipe file {}", path.display()))?;
    parse_recipe_str(&text, &path.display().to_string(), group_size)
}

/// Resolve the recipe YAML `text` into a [`Recipe`]; `origin` (a file name) starts every error
/// message, followed by the key path. `group_size` replaces the recipe's group size.
///
/// Errors: invalid YAML, unknown keys or modifiers, values of the wrong type or out of range,
/// and schemes or options we cannot run or write yet (see the [module docs](self)).
pub fn parse_recipe_str(
    text: &str,
    origin: &str,
    group_size: Option<usize>,
) -> anyhow::Result<Recipe> {
    let cx = Cx { origin };
    let text = localize_tags(text);
    let root: Value =
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{origin}: invalid YAML: {e}"))?;
    let root = untag(&cx, root, "")?;
    let (prefix, modifiers) = find_modifiers(&cx, root)?;

    let mut smoothquant: Option<SmoothQuantConfig> = None;
    let mut awq: Option<(String, crate::awq::AwqConfig)> = None;
    let mut quant: Option<(String, QuantParts)> = None;
    for (name, body) in modifiers {
        let path = join(&prefix, &name);
        let body = if body.is_null() {
            Value::Mapping(Mapping::new())
        } else {
            body
        };
        match name.as_str() {
            "SmoothQuantModifier" => {
                if let Some((q, _)) = &quant {
                    return Err(cx.err(&path, format!("SmoothQuantModifier must come before {q}")));
                }
                let sq: SmoothQuantYaml = cx.typed(&path, body)?;
                smoothquant = Some(sq.resolve(&cx, &path)?);
            }
            "AWQModifier" => {
                if let Some((q, _)) = &quant {
                    return Err(cx.err(&path, format!("AWQModifier must come before {q}")));
                }
                if smoothquant.is_some() {
                    return Err(cx.err(&path, "AWQModifier and SmoothQuantModifier both smooth the same norms; use one"));
                }
                let (cfg, rest) = awq_spec(&cx, &path, body)?;
                awq = Some((name.clone(), cfg));
                let common: QuantCommon = cx.typed(&path, rest)?;
                if common.scheme.is_some() || common.config_groups.is_some() {
                    // The older combined form: AWQModifier(scheme=..., targets=..., ignore=...)
                    // quantizes too (round-to-nearest after smoothing).
                    quant = Some((name.clone(), QuantParts { common, gptq: None }));
                } else if common.targets.is_some() || common.ignore.is_some() {
                    return Err(cx.err(
                        &path,
                        "`targets`/`ignore` without `scheme`: put them on the quantization modifier that follows",
                    ));
                } else {
                    check_schedule(&cx, &path, &common.index, &common.group, &common.start, &common.end, &common.update)?;
                }
            }
            "GPTQModifier" | "QuantizationModifier" => {
                if let Some((q, _)) = &quant {
                    return Err(cx.err(
                        &path,
                        format!("a recipe takes exactly one quantization modifier, found {q} and {name}"),
                    ));
                }
                let parts = if name == "GPTQModifier" {
                    cx.typed::<GptqYaml>(&path, body)?.split()
                } else {
                    QuantParts {
                        common: cx.typed::<QuantCommon>(&path, body)?,
                        gptq: None,
                    }
                };
                quant = Some((name.clone(), parts));
            }
            other => {
                return Err(cx.err(
                    &path,
                    format!(
                        "modifier {other} is not supported yet (supported: SmoothQuantModifier, AWQModifier, GPTQModifier, QuantizationModifier)"
                    ),
                ))
            }
        }
    }
    let Some((qname, parts)) = quant else {
        return Err(cx.err(
            &prefix,
            "no GPTQModifier or QuantizationModifier: a recipe needs exactly one quantization modifier",
        ));
    };
    let qpath = join(&prefix, &qname);
    let mut r = resolve_quant(&cx, &qpath, parts, smoothquant, group_size)?;
    if let Some((aname, a)) = awq {
        if r.scheme.activations.is_some() {
            return Err(cx.err(
                &join(&prefix, &aname),
                "AWQ is for weight-only schemes (W4A16, W4A16_ASYM, W8A16)",
            ));
        }
        r.awq = Some(a);
    }
    Ok(r)
}

/// Split `AWQModifier`'s own keys (`duo_scaling`, `n_grid`, `mappings`, `offload_device`) from
/// the rest of its body.
fn awq_spec(cx: &Cx, path: &str, body: Value) -> anyhow::Result<(crate::awq::AwqConfig, Value)> {
    use crate::awq::{AwqConfig, DuoScaling};
    let Value::Mapping(mut m) = body else {
        return Err(cx.err(path, format!("expected a mapping, found {}", short(&body))));
    };
    let mut cfg = AwqConfig::default();
    if let Some(v) = m.remove("duo_scaling") {
        cfg.duo_scaling = match &v {
            Value::Bool(true) => DuoScaling::On,
            Value::Bool(false) => DuoScaling::Off,
            Value::String(s) if s == "both" => DuoScaling::Both,
            other => {
                return Err(cx.err(
                    &join(path, "duo_scaling"),
                    format!("expected true, false or both, found {}", short(other)),
                ))
            }
        };
    }
    if let Some(v) = m.remove("n_grid") {
        cfg.n_grid = match v.as_u64() {
            Some(n) if n >= 2 => n as usize,
            _ => {
                return Err(cx.err(
                    &join(path, "n_grid"),
                    format!("expected an integer ≥ 2, found {}", short(&v)),
                ))
            }
        };
    }
    if let Some(v) = m.remove("mappings") {
        if !v.is_null() {
            return Err(cx.err(
                &join(path, "mappings"),
                "custom mappings are not supported; the Llama-family defaults are used (input_layernorm → q/k/v, v_proj → o_proj, post_attention_layernorm → gate/up, up_proj → down_proj)",
            ));
        }
    }
    // Where llm-compressor keeps cached activations; ours follow --offload-activations.
    let _ = m.remove("offload_device");
    Ok((cfg, Value::Mapping(m)))
}

// ---------------------------------------------------------------------------------------------
// Error context and helpers

struct Cx<'a> {
    origin: &'a str,
}

impl Cx<'_> {
    fn err(&self, path: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        if path.is_empty() {
            anyhow::anyhow!("{}: {msg}", self.origin)
        } else {
            anyhow::anyhow!("{}: {path}: {msg}", self.origin)
        }
    }

    /// Deserialize `v` (found at `path`) into `T`, naming the failing key path.
    fn typed<T: DeserializeOwned>(&self, path: &str, v: Value) -> anyhow::Result<T> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_string()
            } else {
                join(path, &inner)
            };
            self.err(&full, e.inner())
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else if key.starts_with('[') {
        format!("{prefix}{key}")
    } else {
        format!("{prefix}.{key}")
    }
}

fn key_str(cx: &Cx, path: &str, k: &Value) -> anyhow::Result<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        other => Err(cx.err(
            path,
            format!("expected string keys, found {}", short(other)),
        )),
    }
}

fn short(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_else(|_| format!("{v:?}"))
}

/// YAML core-schema tags, which serde_yaml applies itself.
const CORE_TAGS: [&str; 8] = [
    "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!binary",
];

/// Rewrite every other `!!tag` (e.g. `!!python/tuple`) as the local tag `!tag `, so that it
/// reaches [`untag`] as a [`Value::Tagged`]: serde_yaml drops `!!` tags silently, which would
/// let `!!python/object/apply:os.system [ls]` pass for a list. Quoted strings and comments are
/// skipped; the extra space keeps the column of everything after the tag.
fn localize_tags(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let (mut i, mut last) = (0usize, 0usize);
    let token_start =
        |i: usize| i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',');
    while i < b.len() {
        match b[i] {
            b'#' if token_start(i) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if token_start(i) => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'\'' if token_start(i) => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'!' if token_start(i) && b.get(i + 1) == Some(&b'!') => {
                let mut j = i;
                while j < b.len()
                    && !matches!(
                        b[j],
                        b' ' | b'\t' | b'\n' | b'\r' | b'[' | b']' | b'{' | b'}' | b','
                    )
                {
                    j += 1;
                }
                let tag = &text[i..j];
                if !CORE_TAGS.contains(&tag) {
                    out.push_str(&text[last..i]);
                    out.push_str(&tag[1..]);
                    out.push(' ');
                    last = j;
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[last.min(text.len())..]);
    out
}

/// Replace the python tags llm-compressor writes by plain values; refuse any other tag.
fn untag(cx: &Cx, v: Value, path: &str) -> anyhow::Result<Value> {
    Ok(match v {
        Value::Tagged(t) => {
            let raw = t.tag.to_string();
            let tag = raw.trim_start_matches('!');
            let tag = tag.strip_prefix("tag:yaml.org,2002:").unwrap_or(tag);
            if tag == "python/tuple" {
                match t.value {
                    Value::Sequence(_) => untag(cx, t.value, path)?,
                    other => {
                        return Err(cx.err(
                            path,
                            format!(
                                "!!python/tuple must tag a sequence, found {}",
                                short(&other)
                            ),
                        ))
                    }
                }
            } else if let Some(class) = tag
                .strip_prefix("python/object/apply:")
                .filter(|c| c.starts_with("compressed_tensors."))
            {
                match t.value {
                    Value::Sequence(mut s) if s.len() == 1 && s[0].is_string() => s.remove(0),
                    other => {
                        return Err(cx.err(
                            path,
                            format!("!!python/object/apply:{class} must tag a one-string sequence like [static], found {}", short(&other)),
                        ))
                    }
                }
            } else {
                return Err(cx.err(
                    path,
                    format!("unsupported YAML tag `{tag}` (only !!python/tuple and !!python/object/apply:compressed_tensors... enum values are understood)"),
                ));
            }
        }
        Value::Sequence(s) => Value::Sequence(
            s.into_iter()
                .enumerate()
                .map(|(i, x)| untag(cx, x, &join(path, &format!("[{i}]"))))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, x) in m {
                let kp = match &k {
                    Value::String(s) => join(path, s),
                    other => join(path, &short(other)),
                };
                out.insert(k, untag(cx, x, &kp)?);
            }
            Value::Mapping(out)
        }
        other => other,
    })
}

fn is_modifier_key(k: &str) -> bool {
    k.ends_with("Modifier")
}

fn is_group_key(k: &str) -> bool {
    k == "modifiers" || k.ends_with("_modifiers")
}

/// The ordered modifiers and the key path of their map.
fn find_modifiers(cx: &Cx, root: Value) -> anyhow::Result<(String, Vec<(String, Value)>)> {
    let root = match root {
        Value::Mapping(m) if !m.is_empty() => m,
        Value::Mapping(_) | Value::Null => return Err(cx.err("", "the recipe is empty")),
        other => {
            return Err(cx.err(
                "",
                format!("expected a mapping (stage, modifier group or modifiers) at the top level, found {}", short(&other)),
            ))
        }
    };
    let mut entries = Vec::new();
    for (k, v) in root {
        entries.push((key_str(cx, "", &k)?, v));
    }
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    if keys.iter().all(|k| is_modifier_key(k)) {
        return Ok((String::new(), entries));
    }
    if keys.iter().any(|k| is_modifier_key(k)) {
        return Err(cx.err(
            "",
            format!(
                "modifiers and stages mixed at the top level ({}): put the modifiers in one stage",
                keys.join(", ")
            ),
        ));
    }
    if entries.len() > 1 {
        return Err(cx.err(
            "",
            format!(
                "exactly one stage is supported, found {}: {}",
                entries.len(),
                keys.join(", ")
            ),
        ));
    }
    let (key, body) = entries.remove(0);
    if is_group_key(&key) {
        return Ok((key.clone(), modifier_map(cx, &key, body)?));
    }
    // A stage: one modifier group, and optionally `run_type: oneshot`.
    let stage = match body {
        Value::Mapping(m) => m,
        other => {
            return Err(cx.err(
                &key,
                format!(
                    "expected a stage (a mapping holding a `<name>_modifiers` group), found {}",
                    short(&other)
                ),
            ))
        }
    };
    let mut group: Option<(String, Value)> = None;
    for (k, v) in stage {
        let k = key_str(cx, &key, &k)?;
        let path = join(&key, &k);
        if k == "run_type" {
            match v.as_str() {
                Some("oneshot") => {}
                _ => {
                    return Err(cx.err(
                        &path,
                        format!("only `oneshot` is supported, found {}", short(&v)),
                    ))
                }
            }
        } else if is_group_key(&k) {
            if let Some((g, _)) = &group {
                return Err(cx.err(
                    &key,
                    format!("exactly one modifier group per stage is supported, found {g} and {k}"),
                ));
            }
            group = Some((k, v));
        } else if is_modifier_key(&k) {
            return Err(cx.err(
                &path,
                "modifiers go inside a modifier group, e.g. `default_modifiers:`",
            ));
        } else {
            return Err(cx.err(
                &path,
                "unknown stage key (expected a `<name>_modifiers` group or `run_type`)",
            ));
        }
    }
    let Some((g, v)) = group else {
        return Err(cx.err(
            &key,
            "the stage has no modifier group (`<name>_modifiers:`)",
        ));
    };
    let path = join(&key, &g);
    let mods = modifier_map(cx, &path, v)?;
    Ok((path, mods))
}

fn modifier_map(cx: &Cx, path: &str, v: Value) -> anyhow::Result<Vec<(String, Value)>> {
    match v {
        Value::Mapping(m) if !m.is_empty() => m
            .into_iter()
            .map(|(k, v)| Ok((key_str(cx, path, &k)?, v)))
            .collect(),
        Value::Mapping(_) | Value::Null => Err(cx.err(path, "no modifiers")),
        other => Err(cx.err(
            path,
            format!(
                "expected a mapping of modifiers (GPTQModifier: ...), found {}",
                short(&other)
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Typed modifier bodies (llm-compressor field names)

/// A name or a list of names (`targets: Linear` or `targets: [Linear]`).
#[derive(Debug, Default)]
struct Names(Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Names, E> {
                Ok(Names(vec![s.to_string()]))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Names, E> {
                Ok(Names(Vec::new()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Names, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    v.push(s);
                }
                Ok(Names(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent key.
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmoothQuantYaml {
    #[serde(default)]
    smoothing_strength: Option<f64>,
    #[serde(default)]
    mappings: Option<Vec<(Names, String)>>,
    #[serde(default)]
    ignore: Option<Names>,
    #[serde(default)]
    requires_calibration_data: Option<bool>,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    num_calibration_steps: Option<usize>,
    #[serde(default)]
    calibration_function: Option<Value>,
    #[serde(default)]
    index: Option<Value>,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    update: Option<Value>,
}

/// Keys both quantization modifiers take (`QuantizationMixin` and the modifier base).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantCommon {
    #[serde(default)]
    targets: Option<Names>,
    #[serde(default)]
    ignore: Option<Names>,
    #[serde(default)]
    scheme: Option<Value>,
    #[serde(default)]
    config_groups: Option<BTreeMap<String, GroupYaml>>,
    #[serde(default)]
    kv_cache_scheme: Option<Value>,
    #[serde(default)]
    weight_observer: Option<String>,
    #[serde(default)]
    input_observer: Option<Value>,
    #[serde(default)]
    output_observer: Option<Value>,
    #[serde(default)]
    observer: Option<Value>,
    #[serde(default)]
    bypass_divisibility_checks: Option<bool>,
    #[serde(default)]
    requires_calibration_data: Option<bool>,
    #[serde(default)]
    index: Option<Value>,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    update: Option<Value>,
}

/// `GPTQModifier`: [`QuantCommon`]'s keys plus the GPTQ ones (serde's `flatten` cannot be
/// combined with `deny_unknown_fields`, hence the repetition).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GptqYaml {
    #[serde(default)]
    targets: Option<Names>,
    #[serde(default)]
    ignore: Option<Names>,
    #[serde(default)]
    scheme: Option<Value>,
    #[serde(default)]
    config_groups: Option<BTreeMap<String, GroupYaml>>,
    #[serde(default)]
    kv_cache_scheme: Option<Value>,
    #[serde(default)]
    weight_observer: Option<String>,
    #[serde(default)]
    input_observer: Option<Value>,
    #[serde(default)]
    output_observer: Option<Value>,
    #[serde(default)]
    observer: Option<Value>,
    #[serde(default)]
    bypass_divisibility_checks: Option<bool>,
    #[serde(default)]
    requires_calibration_data: Option<bool>,
    #[serde(default)]
    index: Option<Value>,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    update: Option<Value>,
    // GPTQ
    #[serde(default)]
    block_size: Option<usize>,
    #[serde(default)]
    dampening_frac: Option<f64>,
    #[serde(default, deserialize_with = "explicit")]
    actorder: Option<Option<String>>,
    #[serde(default)]
    offload_hessians: Option<bool>,
    #[serde(default)]
    batched_quantization: Option<Value>,
    #[serde(default)]
    sequential_targets: Option<Names>,
    #[serde(default)]
    sequential_update: Option<bool>,
    /// quantlab extension: `static` (default) | `group_boundary`.
    #[serde(default)]
    scale_update: Option<String>,
    /// quantlab extension: `true` quantizes a layer sub-block by sub-block (later Linears see
    /// the quantized earlier ones; one forward per layer); default `false`, llm-compressor's
    /// layer-wise order (all Hessians from the unquantized layer, then a second forward).
    #[serde(default)]
    true_sequential: Option<bool>,
}

struct GptqOnly {
    block_size: Option<usize>,
    dampening_frac: Option<f64>,
    actorder: Option<Option<String>>,
    batched_quantization: Option<Value>,
    sequential_targets: Option<Names>,
    sequential_update: Option<bool>,
    scale_update: Option<String>,
    true_sequential: Option<bool>,
}

struct QuantParts {
    common: QuantCommon,
    gptq: Option<GptqOnly>,
}

impl GptqYaml {
    fn split(self) -> QuantParts {
        let _ = self.offload_hessians; // memory placement only
        QuantParts {
            common: QuantCommon {
                targets: self.targets,
                ignore: self.ignore,
                scheme: self.scheme,
                config_groups: self.config_groups,
                kv_cache_scheme: self.kv_cache_scheme,
                weight_observer: self.weight_observer,
                input_observer: self.input_observer,
                output_observer: self.output_observer,
                observer: self.observer,
                bypass_divisibility_checks: self.bypass_divisibility_checks,
                requires_calibration_data: self.requires_calibration_data,
                index: self.index,
                group: self.group,
                start: self.start,
                end: self.end,
                update: self.update,
            },
            gptq: Some(GptqOnly {
                block_size: self.block_size,
                dampening_frac: self.dampening_frac,
                actorder: self.actorder,
                batched_quantization: self.batched_quantization,
                sequential_targets: self.sequential_targets,
                sequential_update: self.sequential_update,
                scale_update: self.scale_update,
                true_sequential: self.true_sequential,
            }),
        }
    }
}

/// One compressed-tensors `QuantizationScheme` (a `config_groups` entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    #[serde(default)]
    targets: Option<Names>,
    #[serde(default)]
    weights: Option<ArgsYaml>,
    #[serde(default)]
    input_activations: Option<ArgsYaml>,
    #[serde(default)]
    output_activations: Option<Value>,
    #[serde(default)]
    format: Option<String>,
}

/// compressed-tensors `QuantizationArgs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgsYaml {
    #[serde(default)]
    num_bits: Option<u32>,
    #[serde(default, rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    symmetric: Option<bool>,
    #[serde(default)]
    group_size: Option<i64>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    block_structure: Option<Value>,
    #[serde(default)]
    dynamic: Option<Value>,
    #[serde(default)]
    actorder: Option<String>,
    #[serde(default)]
    scale_dtype: Option<Value>,
    #[serde(default)]
    zp_dtype: Option<Value>,
    #[serde(default)]
    observer: Option<String>,
    #[serde(default)]
    observer_kwargs: Option<ObserverKwargs>,
}

/// `observer_kwargs` of the MSE observer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObserverKwargs {
    #[serde(default)]
    maxshrink: Option<f64>,
    #[serde(default)]
    grid: Option<f64>,
    #[serde(default)]
    norm: Option<f64>,
    #[serde(default, deserialize_with = "explicit")]
    patience: Option<Option<usize>>,
}

impl ObserverKwargs {
    fn is_empty(&self) -> bool {
        self.maxshrink.is_none()
            && self.grid.is_none()
            && self.norm.is_none()
            && self.patience.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution

fn must_be_unset(
    cx: &Cx,
    path: &str,
    key: &str,
    v: &Option<Value>,
    why: &str,
) -> anyhow::Result<()> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(other) => Err(cx.err(&join(path, key), format!("{why} (found {})", short(other)))),
    }
}

fn check_schedule(
    cx: &Cx,
    path: &str,
    index: &Option<Value>,
    group: &Option<Value>,
    start: &Option<Value>,
    end: &Option<Value>,
    update: &Option<Value>,
) -> anyhow::Result<()> {
    let why = "training-schedule keys are not supported (oneshot recipes leave them unset)";
    must_be_unset(cx, path, "index", index, why)?;
    must_be_unset(cx, path, "group", group, why)?;
    must_be_unset(cx, path, "update", update, why)?;
    let oneshot = |v: &Option<Value>, ok: i64| match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(ok as f64),
        _ => false,
    };
    if !oneshot(start, 0) && !oneshot(start, -1) {
        must_be_unset(cx, path, "start", start, why)?;
    }
    if !oneshot(end, -1) {
        must_be_unset(cx, path, "end", end, why)?;
    }
    Ok(())
}

/// Normalise a layer name of a mapping: `re:.*q_proj$` / `self_attn.q_proj` / `q_proj` → `q_proj`.
fn layer_leaf(s: &str) -> Option<String> {
    let s = s.strip_prefix("re:").unwrap_or(s);
    let s = s.strip_prefix(".*").unwrap_or(s);
    let s = s.strip_suffix('$').unwrap_or(s);
    let s = s.replace("\\.", ".");
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    s.rsplit('.').next().map(str::to_string)
}

impl SmoothQuantYaml {
    fn resolve(self, cx: &Cx, path: &str) -> anyhow::Result<SmoothQuantConfig> {
        check_schedule(
            cx,
            path,
            &self.index,
            &self.group,
            &self.start,
            &self.end,
            &self.update,
        )?;
        let _ = self.requires_calibration_data; // informational: SmoothQuant always calibrates
        let alpha = self.smoothing_strength.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&alpha) {
            return Err(cx.err(
                &join(path, "smoothing_strength"),
                format!("must be in [0, 1], found {alpha}"),
            ));
        }
        if let Some(a) = &self.algorithm {
            if a != "smoothquant" {
                return Err(cx.err(
                    &join(path, "algorithm"),
                    format!("only `smoothquant` is supported, found `{a}`"),
                ));
            }
        }
        if let Some(n) = self.num_calibration_steps {
            return Err(cx.err(
                &join(path, "num_calibration_steps"),
                format!("not supported ({n}): SmoothQuant uses every calibration sample"),
            ));
        }
        must_be_unset(
            cx,
            path,
            "calibration_function",
            &self.calibration_function,
            "custom calibration functions are not supported",
        )?;
        if let Some(ig) = &self.ignore {
            if let Some((i, name)) = ig.0.iter().enumerate().find(|(_, n)| !is_lm_head(n)) {
                return Err(cx.err(
                    &join(path, &format!("ignore[{i}]")),
                    format!("`{name}`: SmoothQuant ignore lists are not supported yet (every Llama-family mapping is smoothed)"),
                ));
            }
        }
        if let Some(maps) = &self.mappings {
            let mp = join(path, "mappings");
            let mut want: Vec<(Vec<&str>, &str)> = vec![
                (vec!["k_proj", "q_proj", "v_proj"], "input_layernorm"),
                (vec!["gate_proj", "up_proj"], "post_attention_layernorm"),
            ];
            let only = "only the Llama-family mappings are supported: [q_proj, k_proj, v_proj] ← input_layernorm and [gate_proj, up_proj] ← post_attention_layernorm";
            for (i, (balance, smooth)) in maps.iter().enumerate() {
                let ip = join(&mp, &format!("[{i}]"));
                let mut b: Vec<String> = Vec::new();
                for name in &balance.0 {
                    b.push(layer_leaf(name).ok_or_else(|| {
                        cx.err(&ip, format!("`{name}` is not a layer name; {only}"))
                    })?);
                }
                b.sort();
                let s = layer_leaf(smooth).ok_or_else(|| {
                    cx.err(&ip, format!("`{smooth}` is not a layer name; {only}"))
                })?;
                let pos = want.iter().position(|(wb, ws)| {
                    *ws == s && wb.iter().copied().eq(b.iter().map(String::as_str))
                });
                match pos {
                    Some(p) => {
                        want.remove(p);
                    }
                    None => {
                        return Err(cx.err(
                            &ip,
                            format!(
                                "mapping {:?} ← {smooth} is not supported; {only}",
                                balance.0
                            ),
                        ));
                    }
                }
            }
            if !want.is_empty() {
                let missing: Vec<String> =
                    want.iter().map(|(b, s)| format!("{b:?} ← {s}")).collect();
                return Err(cx.err(&mp, format!("missing {}; {only}", missing.join(", "))));
            }
        }
        Ok(SmoothQuantConfig { alpha })
    }
}

fn is_lm_head(s: &str) -> bool {
    matches!(
        s,
        "lm_head" | "re:.*lm_head" | "re:.*lm_head$" | "re:^lm_head$" | "re:lm_head"
    )
}

/// The Linears of a Llama-family decoder layer (names as PyTorch spells them).
const LAYER_LINEARS: [&str; 7] = [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.o_proj",
    "model.layers.0.mlp.gate_proj",
    "model.layers.0.mlp.up_proj",
    "model.layers.0.mlp.down_proj",
];

fn compile_re(cx: &Cx, path: &str, pat: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pat})"))
        .map_err(|e| cx.err(path, format!("invalid regex `{pat}`: {e}")))
}

/// `targets` must cover every Linear: `Linear`, or `re:` patterns that together match them all.
fn check_targets(cx: &Cx, path: &str, targets: &Option<Names>) -> anyhow::Result<()> {
    let Some(t) = targets else { return Ok(()) };
    if t.0.is_empty() {
        return Err(cx.err(path, "no targets (use [Linear])"));
    }
    let mut covered = [false; LAYER_LINEARS.len()];
    for (i, name) in t.0.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        if name == "Linear" {
            covered = [true; LAYER_LINEARS.len()];
        } else if let Some(pat) = name.strip_prefix("re:") {
            let re = compile_re(cx, &ip, pat)?;
            let mut any = false;
            for (c, l) in covered.iter_mut().zip(LAYER_LINEARS) {
                if re.is_match(l) {
                    *c = true;
                    any = true;
                }
            }
            if !any {
                return Err(cx.err(&ip, format!("`{name}` matches no Linear of a decoder layer (only Linear targets are supported)")));
            }
        } else {
            return Err(cx.err(
                &ip,
                format!("target `{name}` is not supported: only `Linear` (or `re:` patterns matching every Linear) can be quantized"),
            ));
        }
    }
    let missed: Vec<&str> = LAYER_LINEARS
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(l, _)| l.rsplit('.').next().unwrap_or(l))
        .collect();
    if !missed.is_empty() {
        return Err(cx.err(
            path,
            format!("the targets leave out {}: quantizing a subset of the Linears is not supported (target Linear and list the rest under ignore)", missed.join(", ")),
        ));
    }
    Ok(())
}

/// What the weights and activations are, before becoming a [`Scheme`].
struct WeightSpec {
    ty: WeightType,
    strategy: Strategy,
    symmetric: bool,
    observer: Observer,
    actorder: Option<ActOrder>,
    activations: Option<WeightType>,
    /// Key path the spec came from (for later errors).
    path: String,
}

fn preset_spec(cx: &Cx, path: &str, name: &str) -> anyhow::Result<WeightSpec> {
    let spec = |ty, strategy, activations| WeightSpec {
        ty,
        strategy,
        symmetric: true,
        observer: Observer::MinMax,
        actorder: None,
        activations,
        path: path.to_string(),
    };
    let int = |bits| WeightType::Int { bits };
    match name.to_ascii_uppercase().as_str() {
        "W4A16" => Ok(spec(int(4), Strategy::Group(128), None)),
        "W8A8" | "INT8" => Ok(spec(int(8), Strategy::Channel, Some(int(8)))),
        "FP8_DYNAMIC" => Ok(spec(WeightType::Fp8E4M3, Strategy::Channel, Some(WeightType::Fp8E4M3))),
        "W4A16_ASYM" => Ok(WeightSpec {
            symmetric: false,
            ..spec(int(4), Strategy::Group(128), None)
        }),
        "W8A16" => Ok(spec(int(8), Strategy::Group(128), None)),
        "FP8" => Err(cx.err(
            path,
            "FP8: static per-tensor activation scales are not supported; use FP8_DYNAMIC (dynamic per-token activations)",
        )),
        _ => Err(cx.err(path, format!("scheme `{name}` is not supported (supported presets: W4A16, W4A16_ASYM, W8A16, W8A8, INT8, FP8_DYNAMIC)"))),
    }
}

fn observer_from(
    cx: &Cx,
    path: &str,
    name: &str,
    kwargs: Option<&ObserverKwargs>,
) -> anyhow::Result<Observer> {
    match name {
        "minmax" | "memoryless_minmax" | "static_minmax" => {
            if kwargs.is_some_and(|k| !k.is_empty()) {
                return Err(cx.err(path, format!("observer `{name}` takes no observer_kwargs")));
            }
            Ok(Observer::MinMax)
        }
        "mse" | "memoryless_mse" => {
            let Observer::Mse {
                mut grid,
                mut max_shrink,
                mut norm,
                mut patience,
            } = Observer::MSE_PEER
            else {
                unreachable!()
            };
            if let Some(k) = kwargs {
                grid = k.grid.unwrap_or(grid);
                max_shrink = k.maxshrink.unwrap_or(max_shrink);
                norm = k.norm.unwrap_or(norm);
                patience = k.patience.unwrap_or(patience);
            }
            if !(grid.is_finite() && grid >= 1.0) {
                return Err(cx.err(path, format!("observer_kwargs.grid must be ≥ 1, found {grid}")));
            }
            if !(max_shrink > 0.0 && max_shrink <= 1.0) {
                return Err(cx.err(path, format!("observer_kwargs.maxshrink must be in (0, 1], found {max_shrink}")));
            }
            if !(norm.is_finite() && norm > 0.0) {
                return Err(cx.err(path, format!("observer_kwargs.norm must be > 0, found {norm}")));
            }
            if patience == Some(0) {
                return Err(cx.err(path, "observer_kwargs.patience must be ≥ 1 (or null for no early stop)"));
            }
            Ok(Observer::Mse {
                grid,
                max_shrink,
                norm,
                patience,
            })
        }
        other => Err(cx.err(
            path,
            format!("observer `{other}` is not supported (minmax, memoryless_minmax, static_minmax, mse, memoryless_mse)"),
        )),
    }
}

fn num_type(cx: &Cx, path: &str, a: &ArgsYaml) -> anyhow::Result<WeightType> {
    let bits = a.num_bits.unwrap_or(8);
    match a.ty.as_deref().unwrap_or("int") {
        "int" => match bits {
            4 | 8 => Ok(WeightType::Int { bits }),
            b => Err(cx.err(
                &join(path, "num_bits"),
                format!("int{b} is not supported (4 or 8)"),
            )),
        },
        "float" => match bits {
            8 => Ok(WeightType::Fp8E4M3),
            b => Err(cx.err(
                &join(path, "num_bits"),
                format!("float{b} is not supported (only 8: fp8 e4m3)"),
            )),
        },
        t => Err(cx.err(
            &join(path, "type"),
            format!("unknown type `{t}` (int or float)"),
        )),
    }
}

fn check_null(cx: &Cx, path: &str, key: &str, v: &Option<Value>) -> anyhow::Result<()> {
    must_be_unset(cx, path, key, v, "not supported (must be null)")
}

/// `weights` of a config group.
fn weights_spec(cx: &Cx, path: &str, a: &ArgsYaml) -> anyhow::Result<WeightSpec> {
    let ty = num_type(cx, path, a)?;
    let symmetric = a.symmetric != Some(false);
    if !symmetric && ty == WeightType::Fp8E4M3 {
        return Err(cx.err(
            &join(path, "symmetric"),
            "fp8 weights are symmetric (no zero point); use symmetric: true",
        ));
    }
    match &a.dynamic {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(other) => {
            return Err(cx.err(
                &join(path, "dynamic"),
                format!(
                    "weights are quantized statically (false), found {}",
                    short(other)
                ),
            ))
        }
    }
    check_null(cx, path, "block_structure", &a.block_structure)?;
    check_null(cx, path, "scale_dtype", &a.scale_dtype)?;
    match &a.zp_dtype {
        None | Some(Value::Null) => {}
        Some(Value::String(z)) if !symmetric && (z == "torch.int8" || z == "int8") => {}
        Some(other) => {
            return Err(cx.err(
                &join(path, "zp_dtype"),
                format!(
                    "zero points are stored as int8 (null or torch.int8 for asymmetric weights), found {}",
                    short(other)
                ),
            ))
        }
    }
    let gp = join(path, "group_size");
    let strategy = match (a.strategy.as_deref(), a.group_size) {
        (Some("group"), Some(g)) if g > 0 => Strategy::Group(g as usize),
        (Some("group"), g) => {
            return Err(cx.err(
                &gp,
                format!(
                    "strategy group needs a positive group_size, found {}",
                    g.map_or("none".into(), |g| g.to_string())
                ),
            ))
        }
        (Some("channel"), None | Some(-1)) => Strategy::Channel,
        (Some("tensor"), None) => Strategy::Tensor,
        (Some(s @ ("channel" | "tensor")), Some(g)) => {
            return Err(cx.err(
                &gp,
                format!("group_size {g} given with strategy {s} (use strategy: group)"),
            ))
        }
        (Some(s), _) => {
            return Err(cx.err(
                &join(path, "strategy"),
                format!("weight strategy `{s}` is not supported (tensor, channel, group)"),
            ))
        }
        (None, Some(g)) if g > 0 => Strategy::Group(g as usize),
        (None, Some(-1)) => Strategy::Channel,
        (None, Some(g)) => return Err(cx.err(&gp, format!("invalid group_size {g}"))),
        (None, None) => Strategy::Tensor,
    };
    let actorder = match &a.actorder {
        None => None,
        Some(s) => Some(ActOrder::parse(s).map_err(|e| cx.err(&join(path, "actorder"), e))?),
    };
    let observer = match a.observer.as_deref() {
        Some(o) => observer_from(cx, &join(path, "observer"), o, a.observer_kwargs.as_ref())?,
        None => observer_from(cx, path, "minmax", a.observer_kwargs.as_ref())?,
    };
    Ok(WeightSpec {
        ty,
        strategy,
        symmetric,
        observer,
        actorder,
        activations: None,
        path: path.to_string(),
    })
}

/// `input_activations` of a config group: only dynamic per-token, symmetric, 8-bit.
fn activations_spec(cx: &Cx, path: &str, a: &ArgsYaml) -> anyhow::Result<WeightType> {
    let ty = num_type(cx, path, a)?;
    if a.num_bits != Some(8) && a.num_bits.is_some() {
        return Err(cx.err(
            &join(path, "num_bits"),
            "only 8-bit activations are supported",
        ));
    }
    match a.strategy.as_deref() {
        Some("token") => {}
        other => {
            return Err(cx.err(
                &join(path, "strategy"),
                format!(
                    "only dynamic per-token activations are supported (strategy: token), found {}",
                    other.unwrap_or("none")
                ),
            ))
        }
    }
    match &a.dynamic {
        Some(Value::Bool(true)) => {}
        other => {
            return Err(cx.err(
                &join(path, "dynamic"),
                format!(
                    "only dynamic activations are supported (dynamic: true), found {}",
                    other.as_ref().map_or("none".into(), short)
                ),
            ))
        }
    }
    if a.symmetric == Some(false) {
        return Err(cx.err(
            &join(path, "symmetric"),
            "asymmetric activations are not supported",
        ));
    }
    if let Some(g) = a.group_size {
        return Err(cx.err(
            &join(path, "group_size"),
            format!("per-token activations take no group_size (found {g})"),
        ));
    }
    if a.actorder.is_some() {
        return Err(cx.err(&join(path, "actorder"), "activations take no actorder"));
    }
    check_null(cx, path, "block_structure", &a.block_structure)?;
    check_null(cx, path, "scale_dtype", &a.scale_dtype)?;
    check_null(cx, path, "zp_dtype", &a.zp_dtype)?;
    if let Some(o) = &a.observer {
        if !matches!(o.as_str(), "minmax" | "memoryless_minmax") {
            return Err(cx.err(
                &join(path, "observer"),
                format!("dynamic activations use min-max, found `{o}`"),
            ));
        }
    }
    if a.observer_kwargs.as_ref().is_some_and(|k| !k.is_empty()) {
        return Err(cx.err(
            &join(path, "observer_kwargs"),
            "dynamic activations take no observer_kwargs",
        ));
    }
    Ok(ty)
}

fn resolve_quant(
    cx: &Cx,
    path: &str,
    parts: QuantParts,
    smoothquant: Option<SmoothQuantConfig>,
    group_size: Option<usize>,
) -> anyhow::Result<Recipe> {
    let c = parts.common;
    check_schedule(cx, path, &c.index, &c.group, &c.start, &c.end, &c.update)?;
    must_be_unset(
        cx,
        path,
        "kv_cache_scheme",
        &c.kv_cache_scheme,
        "KV-cache quantization is not supported yet",
    )?;
    let obs_why = "not supported (set the weights observer in config_groups or weight_observer)";
    must_be_unset(cx, path, "input_observer", &c.input_observer, obs_why)?;
    must_be_unset(cx, path, "output_observer", &c.output_observer, obs_why)?;
    must_be_unset(cx, path, "observer", &c.observer, obs_why)?;
    let _ = (c.bypass_divisibility_checks, c.requires_calibration_data); // informational
    check_targets(cx, &join(path, "targets"), &c.targets)?;

    // ignore
    let mut ignore: Vec<String> = Vec::new();
    for (i, name) in c
        .ignore
        .map(|n| n.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let ip = join(path, &format!("ignore[{i}]"));
        if name.is_empty() {
            return Err(cx.err(&ip, "empty module name"));
        }
        if let Some(pat) = name.strip_prefix("re:") {
            compile_re(cx, &ip, pat)?;
        }
        if !is_lm_head(&name) && !ignore.contains(&name) {
            ignore.push(name);
        }
    }

    // scheme | config_groups
    let wo = c.weight_observer.as_deref();
    let mut spec = match (c.scheme, c.config_groups) {
        (Some(_), Some(_)) => {
            return Err(cx.err(path, "give either `scheme` or `config_groups`, not both"))
        }
        (None, None) => {
            return Err(cx.err(
                path,
                "no `scheme` or `config_groups`: say what to quantize (e.g. scheme: W4A16)",
            ));
        }
        (Some(scheme), None) => {
            let sp = join(path, "scheme");
            let mut spec = match scheme {
                Value::String(s) => preset_spec(cx, &sp, &s)?,
                Value::Mapping(m) if m.len() == 1 => {
                    let (k, v) = m.into_iter().next().expect("one entry");
                    let name = key_str(cx, &sp, &k)?;
                    let ep = join(&sp, &name);
                    let targets: Names = cx.typed(&ep, v)?;
                    check_targets(cx, &ep, &Some(targets))?;
                    preset_spec(cx, &ep, &name)?
                }
                other => {
                    return Err(cx.err(
                        &sp,
                        format!("expected a preset name (W4A16) or one {{PRESET: [Linear]}} entry, found {}", short(&other)),
                    ))
                }
            };
            if let Some(o) = wo {
                spec.observer = observer_from(cx, &join(path, "weight_observer"), o, None)?;
            }
            spec
        }
        (None, Some(groups)) => {
            let gp = join(path, "config_groups");
            if groups.len() != 1 {
                let names: Vec<&String> = groups.keys().collect();
                return Err(cx.err(
                    &gp,
                    format!("exactly one config group (targeting Linear) is supported, found {}: {names:?}", groups.len()),
                ));
            }
            let (gname, g) = groups.into_iter().next().expect("one group");
            let gp = join(&gp, &gname);
            let targets = g.targets.or(Some(Names(vec!["Linear".into()])));
            check_targets(cx, &join(&gp, "targets"), &targets)?;
            let Some(w) = g.weights else {
                return Err(cx.err(
                    &join(&gp, "weights"),
                    "missing: weight quantization is required",
                ));
            };
            let wp = join(&gp, "weights");
            let mut spec = weights_spec(cx, &wp, &w)?;
            if let Some(o) = wo {
                spec.observer = observer_from(
                    cx,
                    &join(path, "weight_observer"),
                    o,
                    w.observer_kwargs.as_ref(),
                )?;
            }
            if let Some(a) = &g.input_activations {
                spec.activations = Some(activations_spec(cx, &join(&gp, "input_activations"), a)?);
            }
            must_be_unset(
                cx,
                &gp,
                "output_activations",
                &g.output_activations,
                "output activation quantization is not supported",
            )?;
            let name = scheme_name(cx, &spec)?;
            if let Some(f) = &g.format {
                let want = Scheme::preset(name, None)?.format();
                if f != want {
                    return Err(cx.err(
                        &join(&gp, "format"),
                        format!("`{f}` is not the format we write for this scheme (`{want}`)"),
                    ));
                }
            }
            spec
        }
    };

    // --group-size
    if let Some(g) = group_size {
        if g == 0 {
            return Err(cx.err(&spec.path, "--group-size must be > 0"));
        }
        match spec.strategy {
            Strategy::Group(old) => {
                if old != g {
                    tracing::warn!(
                        "{}: --group-size {g} replaces the recipe's group size {old}",
                        cx.origin
                    );
                }
                spec.strategy = Strategy::Group(g)
            }
            s => {
                return Err(cx.err(
                    &spec.path,
                    format!(
                    "--group-size {g} given, but the recipe quantizes weights per {} (no groups)",
                    if s == Strategy::Tensor {
                        "tensor"
                    } else {
                        "channel"
                    }
                ),
                ))
            }
        }
    }

    let name = scheme_name(cx, &spec)?;
    if spec.activations.is_some() && matches!(spec.strategy, Strategy::Group(_)) {
        return Err(cx.err(&spec.path, "grouped weights with quantized activations are not a format we write (use strategy channel)"));
    }

    // algorithm
    let (algorithm, actorder) = match parts.gptq {
        None => {
            if let Some(a) = spec.actorder.filter(|a| *a != ActOrder::None) {
                return Err(cx.err(
                    &join(&spec.path, "actorder"),
                    format!("act-order {a:?} needs GPTQ; QuantizationModifier rounds to nearest (use null)"),
                ));
            }
            (Algorithm::Rtn, ActOrder::None)
        }
        Some(g) => {
            let mut cfg = GptqConfig::default();
            if let Some(b) = g.block_size {
                if b == 0 {
                    return Err(cx.err(&join(path, "block_size"), "must be > 0"));
                }
                cfg.block_size = b;
            }
            if let Some(d) = g.dampening_frac {
                if !(d > 0.0 && d <= cfg.max_dampening_frac) {
                    return Err(cx.err(
                        &join(path, "dampening_frac"),
                        format!("must be in (0, {}], found {d}", cfg.max_dampening_frac),
                    ));
                }
                cfg.dampening_frac = d;
            }
            cfg.actorder = match g.actorder {
                // llm-compressor: the default (`static`) applies only where the weights set none.
                None => spec.actorder.unwrap_or(ActOrder::Weight),
                Some(explicit) => {
                    let ap = join(path, "actorder");
                    let a = match explicit {
                        None => ActOrder::None,
                        Some(s) => ActOrder::parse(&s).map_err(|e| cx.err(&ap, e))?,
                    };
                    match spec.actorder {
                        Some(w) if w != a => {
                            return Err(cx.err(
                                &ap,
                                format!(
                                    "{} contradicts the weights' actorder {} ({}.actorder)",
                                    a.as_json(),
                                    w.as_json(),
                                    spec.path
                                ),
                            ))
                        }
                        _ => a,
                    }
                }
            };
            if cfg.actorder == ActOrder::Group && !matches!(spec.strategy, Strategy::Group(_)) {
                return Err(cx.err(
                    &join(path, "actorder"),
                    "act-order group (dynamic) needs grouped weights (strategy group); use static or null",
                ));
            }
            cfg.true_sequential = g.true_sequential.unwrap_or(false);
            cfg.scale_update = match g.scale_update.as_deref() {
                None | Some("static") => ScaleUpdate::Static,
                Some("group_boundary" | "group-boundary") => ScaleUpdate::GroupBoundary,
                Some(other) => {
                    return Err(cx.err(
                        &join(path, "scale_update"),
                        format!("unknown value `{other}` (static or group_boundary)"),
                    ))
                }
            };
            if let Some(t) = &g.sequential_targets {
                if let Some((i, n)) =
                    t.0.iter()
                        .enumerate()
                        .find(|(_, n)| !n.ends_with("DecoderLayer"))
                {
                    return Err(cx.err(
                        &join(path, &format!("sequential_targets[{i}]")),
                        format!("`{n}`: only decoder layers (…DecoderLayer) are supported; compression goes one decoder layer at a time"),
                    ));
                }
            }
            if g.sequential_update == Some(false) {
                return Err(cx.err(
                    &join(path, "sequential_update"),
                    "false is not supported (layers are always compressed in sequence)",
                ));
            }
            match &g.batched_quantization {
                None | Some(Value::Null) | Some(Value::Bool(_)) => {}
                Some(Value::String(s)) if s == "auto" => {}
                Some(other) => {
                    return Err(cx.err(
                        &join(path, "batched_quantization"),
                        format!("expected auto, true or false, found {}", short(other)),
                    ))
                }
            }
            (Algorithm::Gptq(cfg), cfg.actorder)
        }
    };

    let mut scheme = Scheme::preset(name, None)?;
    scheme.weight = spec.ty;
    scheme.strategy = spec.strategy;
    scheme.activations = spec.activations;
    scheme.symmetric = spec.symmetric;
    scheme.observer = spec.observer.name();
    scheme.actorder = actorder;
    Ok(Recipe {
        scheme,
        observer: spec.observer,
        algorithm,
        smoothquant,
        awq: None,
        ignore,
    })
}

/// Which of our formats the spec is, or why it is none.
fn scheme_name(cx: &Cx, spec: &WeightSpec) -> anyhow::Result<SchemeName> {
    match (spec.ty, spec.activations) {
        (WeightType::Int { bits: 4 }, None) if !spec.symmetric => Ok(SchemeName::W4A16Asym),
        (WeightType::Int { bits: 4 }, None) => Ok(SchemeName::W4A16),
        (WeightType::Int { bits: 8 }, None) => Ok(SchemeName::W8A16),
        (WeightType::Int { bits: 8 }, Some(WeightType::Int { bits: 8 })) => {
            Ok(SchemeName::W8A8Int8)
        }
        (WeightType::Fp8E4M3, Some(WeightType::Fp8E4M3)) => Ok(SchemeName::W8A8Fp8),
        (WeightType::Fp8E4M3, None) => Err(cx.err(
            &spec.path,
            "fp8 weight-only is not a format we write yet (use FP8_DYNAMIC)",
        )),
        (WeightType::Int { bits: 4 }, Some(_)) => Err(cx.err(
            &spec.path,
            "int4 weights with quantized activations are not a format we write",
        )),
        (w, a) => Err(cx.err(
            &spec.path,
            format!("{w:?} weights with {a:?} activations are not a format we write"),
        )),
    }
}
