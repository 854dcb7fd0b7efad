//! llm-compressor recipe YAML → [`Recipe`]: the three recipes llm-compressor 0.14 saved next to
//! its reference checkpoints (`<shared>/reference/llmcompressor/*/recipe.yaml`, parsed unchanged,
//! python tags included), the paper's W4A16 recipe written in that form, and the errors (unknown
//! keys, modifiers and schemes, values out of range), which must name the file and the key path.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use quantlab_compress::gptq::{ActOrder, GptqConfig, ScaleUpdate};
use quantlab_compress::observer::Observer;
use quantlab_compress::recipe::SmoothQuantConfig;
use quantlab_compress::recipe_yaml::{parse_recipe_file, parse_recipe_str};
use quantlab_compress::scheme::{Strategy, WeightType};
use quantlab_compress::{Algorithm, Recipe, SchemeName};
use std::path::PathBuf;

fn reference(name: &str) -> PathBuf {
    common::shared().join("reference/llmcompressor").join(name)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recipes")
        .join(name)
}

fn parse(text: &str) -> anyhow::Result<Recipe> {
    parse_recipe_str(text, "recipe.yaml", None)
}

/// The error message of a recipe that must fail.
fn fails(text: &str) -> String {
    match parse(text) {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}:\n{msg}");
    }
}

/// `quantization_config` of the reference checkpoint, `actorder` removed from the weights (we
/// write `weight` where llm-compressor wrote its alias `static`).
fn reference_qconfig(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference(name).join("config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut q = cfg["quantization_config"].clone();
    q["config_groups"]["group_0"]["weights"]
        .as_object_mut()
        .unwrap()
        .remove("actorder");
    q
}

fn our_qconfig(r: &Recipe) -> serde_json::Value {
    let mut q = r.scheme.quantization_config(&["lm_head".to_string()]);
    q["config_groups"]["group_0"]["weights"]
        .as_object_mut()
        .unwrap()
        .remove("actorder");
    q
}

#[test]
fn reference_w4a16g64_gptq_text() {
    let r = parse_recipe_file(&reference("w4a16g64_gptq_text/recipe.yaml"), None).unwrap();
    assert_eq!(r.scheme.name, SchemeName::W4A16);
    assert_eq!(r.scheme.weight, WeightType::Int { bits: 4 });
    assert_eq!(r.scheme.strategy, Strategy::Group(64));
    assert!(r.scheme.symmetric);
    assert_eq!(r.scheme.activations, None);
    assert_eq!(r.observer, Observer::MinMax);
    assert_eq!(r.scheme.observer, "memoryless_minmax");
    assert_eq!(r.scheme.actorder, ActOrder::Weight);
    assert_eq!(
        r.algorithm,
        Algorithm::Gptq(GptqConfig {
            block_size: 128,
            dampening_frac: 0.01,
            max_dampening_frac: 1.0,
            actorder: ActOrder::Weight,
            scale_update: ScaleUpdate::Static,
            true_sequential: false,
        })
    );
    assert_eq!(r.smoothquant, None);
    assert!(r.ignore.is_empty(), "lm_head is dropped: {:?}", r.ignore);
    assert_eq!(our_qconfig(&r), reference_qconfig("w4a16g64_gptq_text"));
    // The random-token run used the same recipe.
    let random = parse_recipe_file(&reference("w4a16g64_gptq_random/recipe.yaml"), None).unwrap();
    assert_eq!(random, r);
}

#[test]
fn reference_w8a8_int8_smoothquant_gptq() {
    let r = parse_recipe_file(&reference("w8a8_int8/recipe.yaml"), None).unwrap();
    assert_eq!(r.smoothquant, Some(SmoothQuantConfig { alpha: 0.8 }));
    assert_eq!(r.scheme.name, SchemeName::W8A8Int8);
    assert_eq!(r.scheme.weight, WeightType::Int { bits: 8 });
    assert_eq!(r.scheme.strategy, Strategy::Channel);
    assert_eq!(r.scheme.activations, Some(WeightType::Int { bits: 8 }));
    assert!(r.scheme.symmetric);
    assert_eq!(r.observer, Observer::MinMax);
    assert_eq!(
        r.algorithm,
        Algorithm::Gptq(GptqConfig {
            actorder: ActOrder::Weight,
            ..GptqConfig::default()
        })
    );
    assert_eq!(r.scheme.actorder, ActOrder::Weight);
    assert!(r.ignore.is_empty());
    assert!(r.needs_calibration());
    assert_eq!(our_qconfig(&r), reference_qconfig("w8a8_int8"));
}

#[test]
fn reference_fp8_dynamic_rtn() {
    let r = parse_recipe_file(&reference("fp8_dynamic/recipe.yaml"), None).unwrap();
    assert_eq!(r.algorithm, Algorithm::Rtn);
    assert_eq!(r.scheme.name, SchemeName::W8A8Fp8);
    assert_eq!(r.scheme.weight, WeightType::Fp8E4M3);
    assert_eq!(r.scheme.strategy, Strategy::Channel);
    assert_eq!(r.scheme.activations, Some(WeightType::Fp8E4M3));
    assert!(!r.needs_calibration());
    // Exactly our fp8 preset.
    assert_eq!(r, Recipe::preset(SchemeName::W8A8Fp8, None).unwrap());
    assert_eq!(our_qconfig(&r), reference_qconfig("fp8_dynamic"));
}

#[test]
fn paper_w4a16_with_mse_observer_kwargs_is_the_preset() {
    let r = parse_recipe_file(&fixture("paper_w4a16_mse.yaml"), None).unwrap();
    assert_eq!(
        r.observer,
        Observer::Mse {
            grid: 100.0,
            max_shrink: 0.8,
            norm: 2.4,
            patience: None
        }
    );
    assert_eq!(r.scheme.observer, "memoryless_mse");
    assert_eq!(r.scheme.strategy, Strategy::Group(128));
    match r.algorithm {
        Algorithm::Gptq(g) => {
            assert_eq!(g.scale_update, ScaleUpdate::GroupBoundary);
            assert_eq!(g.actorder, ActOrder::None);
        }
        other => panic!("expected GPTQ, got {other:?}"),
    }
    assert_eq!(r, Recipe::preset(SchemeName::W4A16, None).unwrap());
}

#[test]
fn mse_observer_defaults_are_the_peer_ones() {
    let r = parse(
        "GPTQModifier:
  config_groups:
    g:
      targets: [Linear]
      weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 32, observer: memoryless_mse}
  actorder: group
",
    )
    .unwrap();
    assert_eq!(r.observer, Observer::MSE_PEER);
    assert_eq!(r.scheme.strategy, Strategy::Group(32));
    assert_eq!(r.scheme.actorder, ActOrder::Group);
    // Only some kwargs: the rest stay the peer defaults.
    let r = parse(
        "GPTQModifier:
  config_groups:
    g:
      weights: {num_bits: 4, group_size: 128, observer: mse, observer_kwargs: {norm: 2.0, patience: 3}}
",
    )
    .unwrap();
    assert_eq!(
        r.observer,
        Observer::Mse {
            grid: 100.0,
            max_shrink: 0.2,
            norm: 2.0,
            patience: Some(3)
        }
    );
    // llm-compressor's default act-order for GPTQ is `static`.
    assert_eq!(r.scheme.actorder, ActOrder::Weight);
}

#[test]
fn group_size_argument_overrides_the_recipe() {
    let path = reference("w4a16g64_gptq_text/recipe.yaml");
    let r = parse_recipe_file(&path, Some(128)).unwrap();
    assert_eq!(r.scheme.strategy, Strategy::Group(128));
    let r = parse_recipe_str("QuantizationModifier: {scheme: W4A16}", "r.yaml", Some(32)).unwrap();
    assert_eq!(r.scheme.strategy, Strategy::Group(32));
    assert_eq!(r.algorithm, Algorithm::Rtn);

    let e = format!(
        "{:#}",
        parse_recipe_file(&reference("fp8_dynamic/recipe.yaml"), Some(64)).unwrap_err()
    );
    assert_has(
        &e,
        &[
            "fp8_dynamic/recipe.yaml",
            "default_stage.default_modifiers.QuantizationModifier.scheme",
            "--group-size 64",
            "per channel",
        ],
    );
    let e = format!("{:#}", parse_recipe_file(&path, Some(0)).unwrap_err());
    assert_has(&e, &["--group-size must be > 0"]);
}

#[test]
fn flat_form_with_plain_mappings_and_ignore() {
    let r = parse_recipe_file(&fixture("smoothquant_then_int8_flat.yaml"), None).unwrap();
    assert_eq!(r.smoothquant, Some(SmoothQuantConfig { alpha: 0.5 }));
    assert_eq!(r.scheme.name, SchemeName::W8A8Int8);
    assert_eq!(r.scheme.actorder, ActOrder::Weight);
    assert_eq!(
        r.ignore,
        vec![r"re:.*layers\.0\.mlp\.down_proj".to_string()]
    );
    // The modifier group without a stage, and `run_type: oneshot` in a stage.
    let a =
        parse("quant_modifiers:\n  QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC}\n")
            .unwrap();
    let b = parse("s:\n  run_type: oneshot\n  m_modifiers:\n    QuantizationModifier: {scheme: fp8_dynamic}\n").unwrap();
    assert_eq!(a, b);
    assert_eq!(a, Recipe::preset(SchemeName::W8A8Fp8, None).unwrap());
}

#[test]
fn targets_must_cover_every_linear() {
    let ok = parse(
        "GPTQModifier: {scheme: W4A16, targets: ['re:.*self_attn\\..*_proj$', 're:.*mlp\\.(gate|up|down)_proj']}",
    )
    .unwrap();
    assert_eq!(ok.scheme.name, SchemeName::W4A16);
    let e = fails("GPTQModifier: {scheme: W4A16, targets: ['re:.*self_attn.*']}");
    assert_has(
        &e,
        &[
            "recipe.yaml: GPTQModifier.targets",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    );
    let e = fails("GPTQModifier: {scheme: W4A16, targets: [Embedding]}");
    assert_has(
        &e,
        &["GPTQModifier.targets[0]", "`Embedding` is not supported"],
    );
    let e = fails("GPTQModifier: {scheme: {W4A16: [Conv2d]}}");
    assert_has(&e, &["GPTQModifier.scheme.W4A16[0]"]);
}

#[test]
fn typo_in_a_modifier_key_names_file_path_and_expected_fields() {
    let path = fixture("typo_dampening.yaml");
    let e = format!("{:#}", parse_recipe_file(&path, None).unwrap_err());
    assert_has(
        &e,
        &[
            "typo_dampening.yaml",
            "default_stage.default_modifiers.GPTQModifier",
            "unknown field `dampening_fraction`",
            "expected one of",
            "`dampening_frac`",
            "`block_size`",
        ],
    );
}

#[test]
fn typos_in_nested_keys_name_the_path() {
    let e = fails(
        "GPTQModifier:
  config_groups:
    group_0:
      targets: [Linear]
      weights: {num_bit: 4, strategy: group, group_size: 128}
",
    );
    assert_has(
        &e,
        &[
            "recipe.yaml: GPTQModifier.config_groups.group_0.weights",
            "unknown field `num_bit`",
            "`num_bits`",
        ],
    );
    let e = fails(
        "GPTQModifier:
  config_groups:
    group_0:
      weights: {num_bits: 4, group_size: 128, observer: mse, observer_kwargs: {max_shrink: 0.8}}
",
    );
    assert_has(
        &e,
        &[
            "observer_kwargs",
            "unknown field `max_shrink`",
            "`maxshrink`",
        ],
    );
    // A GPTQ-only key on the round-to-nearest modifier.
    let e = fails("QuantizationModifier: {scheme: W4A16, block_size: 128}");
    assert_has(
        &e,
        &[
            "recipe.yaml: QuantizationModifier",
            "unknown field `block_size`",
        ],
    );
    // A SmoothQuant typo.
    let e = fails("SmoothQuantModifier: {smoothing_strenght: 0.8}\nGPTQModifier: {scheme: W8A8}\n");
    assert_has(
        &e,
        &["SmoothQuantModifier", "unknown field `smoothing_strenght`"],
    );
}

#[test]
fn wrong_value_types_name_the_key() {
    let e = fails("default_stage:\n  default_modifiers:\n    GPTQModifier: {scheme: W4A16, dampening_frac: lots}\n");
    assert_has(
        &e,
        &[
            "recipe.yaml: default_stage.default_modifiers.GPTQModifier.dampening_frac",
            "invalid type",
            "f64",
        ],
    );
    let e = fails("GPTQModifier: {scheme: W4A16, block_size: -3}");
    assert_has(&e, &["GPTQModifier.block_size"]);
    let e = fails("GPTQModifier: {scheme: W4A16, dampening_frac: 0}");
    assert_has(&e, &["GPTQModifier.dampening_frac", "(0, 1]"]);
    let e = fails("GPTQModifier: {scheme: W4A16, actorder: sideways}");
    assert_has(
        &e,
        &["GPTQModifier.actorder", "unknown act-order 'sideways'"],
    );
    let e = fails("GPTQModifier: {scheme: W4A16, scale_update: sometimes}");
    assert_has(
        &e,
        &["GPTQModifier.scale_update", "static or group_boundary"],
    );
}

/// llm-compressor's AWQ recipes: the older combined form (`AWQModifier` with `scheme`) and the
/// 0.14 form (`AWQModifier` then `QuantizationModifier`).
#[test]
fn awq_recipes() {
    use quantlab_compress::awq::{AwqConfig, DuoScaling};
    let r = parse_recipe_file(&fixture("awq.yaml"), None).unwrap();
    assert_eq!(r.scheme.name, SchemeName::W4A16Asym);
    assert!(!r.scheme.symmetric);
    assert_eq!(r.algorithm, Algorithm::Rtn);
    assert_eq!(r.observer, Observer::MinMax);
    assert_eq!(r.awq, Some(AwqConfig::default()));
    assert!(r.needs_calibration());
    let r = parse(
        "AWQModifier: {duo_scaling: both, n_grid: 10}\nQuantizationModifier: {targets: Linear, scheme: W4A16, ignore: [lm_head]}\n",
    )
    .unwrap();
    assert_eq!(
        r.awq,
        Some(AwqConfig {
            n_grid: 10,
            duo_scaling: DuoScaling::Both
        })
    );
    assert_eq!(r.scheme.name, SchemeName::W4A16);
    // Errors name the key.
    let e = fails("QuantizationModifier: {scheme: W4A16}\nAWQModifier: {}\n");
    assert_has(&e, &["AWQModifier must come before QuantizationModifier"]);
    let e = fails("AWQModifier: {duo_scaling: maybe, scheme: W4A16}\n");
    assert_has(&e, &["AWQModifier.duo_scaling", "true, false or both"]);
    let e = fails("AWQModifier: {mappings: [[a, [b]]], scheme: W4A16}\n");
    assert_has(&e, &["AWQModifier.mappings", "not supported"]);
    let e = fails("AWQModifier: {ignore: [lm_head]}\nQuantizationModifier: {scheme: W4A16}\n");
    assert_has(&e, &["put them on the quantization modifier"]);
    let e = fails("AWQModifier: {}\nQuantizationModifier: {scheme: FP8_DYNAMIC}\n");
    assert_has(&e, &["AWQ is for weight-only schemes"]);
    let e = fails("AWQModifier: {n_grid: 1, scheme: W4A16}\n");
    assert_has(&e, &["AWQModifier.n_grid"]);
}

#[test]
fn unknown_modifier_is_not_supported_yet() {
    let e = fails("SparseGPTModifier: {sparsity: 0.5}");
    assert_has(&e, &["SparseGPTModifier is not supported yet"]);
}

#[test]
fn unsupported_schemes_say_why() {
    for (scheme, why) in [
        ("FP8", "static per-tensor activation"),
        ("NVFP4", "scheme `NVFP4` is not supported"),
    ] {
        let e = fails(&format!("GPTQModifier: {{scheme: {scheme}}}"));
        assert_has(&e, &["recipe.yaml: GPTQModifier.scheme", why]);
    }
    // Asymmetric fp8 and a zero-point dtype other than int8 are refused.
    let e = fails(
        "QuantizationModifier:\n  config_groups:\n    g:\n      weights: {num_bits: 8, type: float, strategy: channel, symmetric: false}\n      input_activations: {num_bits: 8, type: float, strategy: token, dynamic: true}\n",
    );
    assert_has(&e, &["weights.symmetric", "fp8 weights are symmetric"]);
    let e = fails(
        "GPTQModifier:\n  config_groups:\n    g:\n      weights: {num_bits: 4, group_size: 128, symmetric: false, zp_dtype: torch.float16}\n",
    );
    assert_has(&e, &["weights.zp_dtype", "int8"]);
    let e = fails(
        "GPTQModifier:
  config_groups:
    g:
      weights: {num_bits: 4, strategy: channel}
      input_activations: {num_bits: 8, type: int, strategy: token, dynamic: true}
",
    );
    assert_has(&e, &["int4 weights with quantized activations"]);
    let e = fails(
        "QuantizationModifier:
  config_groups:
    g:
      weights: {num_bits: 8, type: float, strategy: channel}
      input_activations: {num_bits: 8, type: float, strategy: tensor, dynamic: false}
",
    );
    assert_has(
        &e,
        &[
            "QuantizationModifier.config_groups.g.input_activations.strategy",
            "strategy: token",
        ],
    );
    let e = fails("GPTQModifier:\n  config_groups:\n    a: {weights: {num_bits: 4}}\n    b: {weights: {num_bits: 4}}\n");
    assert_has(
        &e,
        &["GPTQModifier.config_groups", "exactly one config group"],
    );
    let e = fails("GPTQModifier: {scheme: W4A16, kv_cache_scheme: {num_bits: 8, type: float}}");
    assert_has(&e, &["GPTQModifier.kv_cache_scheme", "KV-cache"]);
    let e = fails("GPTQModifier: {targets: Linear}");
    assert_has(&e, &["GPTQModifier", "no `scheme` or `config_groups`"]);
}

#[test]
fn int8_config_group_matches_the_preset_scheme() {
    let r = parse(
        "GPTQModifier:
  config_groups:
    group_0:
      targets: [Linear]
      weights: {num_bits: 8, type: int, symmetric: true, strategy: channel, observer: minmax}
      input_activations: {num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true}
  actorder: null
  true_sequential: true
",
    )
    .unwrap();
    let mut want = Recipe::preset(SchemeName::W8A8Int8, None).unwrap();
    want.smoothquant = None;
    assert_eq!(r, want);
}

#[test]
fn bad_smoothing_strength_and_mappings() {
    let e = fails("SmoothQuantModifier: {smoothing_strength: 1.5}\nGPTQModifier: {scheme: W8A8}\n");
    assert_has(
        &e,
        &[
            "recipe.yaml: SmoothQuantModifier.smoothing_strength",
            "must be in [0, 1]",
            "1.5",
        ],
    );
    let e =
        fails("SmoothQuantModifier: {smoothing_strength: high}\nGPTQModifier: {scheme: W8A8}\n");
    assert_has(
        &e,
        &["SmoothQuantModifier.smoothing_strength", "invalid type"],
    );
    // The default strength.
    let r = parse("SmoothQuantModifier: {}\nGPTQModifier: {scheme: W8A8}\n").unwrap();
    assert_eq!(r.smoothquant, Some(SmoothQuantConfig { alpha: 0.5 }));
    // Other mappings.
    let e = fails(
        "SmoothQuantModifier:
  mappings:
    - [['re:.*fc1'], 're:.*final_layer_norm']
GPTQModifier: {scheme: W8A8}
",
    );
    assert_has(
        &e,
        &[
            "SmoothQuantModifier.mappings[0]",
            "only the Llama-family mappings are supported",
        ],
    );
    let e = fails(
        "SmoothQuantModifier:
  mappings:
    - [['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm']
GPTQModifier: {scheme: W8A8}
",
    );
    assert_has(
        &e,
        &[
            "SmoothQuantModifier.mappings",
            "missing",
            "post_attention_layernorm",
        ],
    );
    // SmoothQuant must come first.
    let e = fails("GPTQModifier: {scheme: W8A8}\nSmoothQuantModifier: {smoothing_strength: 0.8}\n");
    assert_has(&e, &["SmoothQuantModifier must come before GPTQModifier"]);
}

#[test]
fn recipe_structure_errors() {
    let e = fails("a_stage:\n  a_modifiers: {GPTQModifier: {scheme: W4A16}}\nb_stage:\n  b_modifiers: {GPTQModifier: {scheme: W4A16}}\n");
    assert_has(
        &e,
        &[
            "recipe.yaml: exactly one stage is supported",
            "a_stage, b_stage",
        ],
    );
    let e = fails("GPTQModifier: {scheme: W4A16}\nQuantizationModifier: {scheme: W4A16}\n");
    assert_has(
        &e,
        &[
            "exactly one quantization modifier",
            "GPTQModifier and QuantizationModifier",
        ],
    );
    let e = fails("SmoothQuantModifier: {smoothing_strength: 0.8}\n");
    assert_has(&e, &["no GPTQModifier or QuantizationModifier"]);
    let e = fails("s:\n  m_modifiers:\n    GPTQModifier: {scheme: W4A16}\n  n_modifiers:\n    GPTQModifier: {scheme: W4A16}\n");
    assert_has(&e, &["recipe.yaml: s:", "exactly one modifier group"]);
    let e = fails("GPTQModifier: {scheme: !!python/object/apply:os.system [ls]}");
    assert_has(&e, &["GPTQModifier.scheme", "unsupported YAML tag"]);
    let e = fails("GPTQModifier: {scheme: W4A16, actorder: !!python/tuple [static]}");
    assert_has(&e, &["GPTQModifier.actorder", "invalid type: sequence"]);
    let e = fails("GPTQModifier: {scheme: !Preset W4A16}");
    assert_has(
        &e,
        &["GPTQModifier.scheme", "unsupported YAML tag `Preset`"],
    );
    // Core tags, and `!!` inside quotes and comments, are left alone.
    let r = parse("GPTQModifier: {scheme: !!str W4A16, ignore: ['!!python/tuple', \"a !!b\"]}  # !!python/x\n").unwrap();
    assert_eq!(
        r.ignore,
        vec!["!!python/tuple".to_string(), "a !!b".to_string()]
    );
    let e = fails("GPTQModifier: {scheme: W4A16, actorder: static, config_groups: null}\n  bad: [");
    assert_has(&e, &["recipe.yaml: invalid YAML"]);
    let e = fails("GPTQModifier:\n  config_groups:\n    g: {weights: {num_bits: 4, group_size: 64, actorder: group}}\n  actorder: static\n");
    assert_has(&e, &["GPTQModifier.actorder", "contradicts"]);
}

/// compressed-tensors' `W4A16_ASYM` and `W8A16` presets, by name and as config groups.
#[test]
fn weight_only_asym_and_int8_presets() {
    let parse = |y: &str| parse(y).unwrap();
    let r = parse("GPTQModifier: {scheme: W4A16_ASYM}\n");
    assert_eq!(r.scheme.name, SchemeName::W4A16Asym);
    assert_eq!(r.scheme.weight, WeightType::Int { bits: 4 });
    assert_eq!(r.scheme.strategy, Strategy::Group(128));
    assert!(!r.scheme.symmetric);
    let qc = r.scheme.quantization_config(&[]);
    let w = &qc["config_groups"]["group_0"]["weights"];
    assert_eq!(w["symmetric"], false);
    assert_eq!(w["zp_dtype"], "torch.int8");
    assert_eq!(qc["format"], "pack-quantized");
    let r = parse("GPTQModifier: {scheme: W8A16}\n");
    assert_eq!(r.scheme.name, SchemeName::W8A16);
    assert_eq!(r.scheme.weight, WeightType::Int { bits: 8 });
    assert_eq!(r.scheme.strategy, Strategy::Group(128));
    assert!(r.scheme.symmetric);
    assert_eq!(r.scheme.activations, None);
    assert_eq!(r.scheme.format(), "pack-quantized");
    let r = parse(
        "GPTQModifier:\n  config_groups:\n    g:\n      weights: {num_bits: 4, group_size: 64, symmetric: false, zp_dtype: torch.int8}\n",
    );
    assert_eq!(r.scheme.name, SchemeName::W4A16Asym);
    assert_eq!(r.scheme.strategy, Strategy::Group(64));
    let r = parse(
        "GPTQModifier:\n  config_groups:\n    g: {weights: {num_bits: 8, strategy: channel}}\n",
    );
    assert_eq!(r.scheme.name, SchemeName::W8A16);
    assert_eq!(r.scheme.strategy, Strategy::Channel);
}
