//! RTN compression of the real default model: the checkpoint has exactly the tensor names, dtypes
//! and shapes llm-compressor 0.14 writes for the same scheme (`reference/llmcompressor/*/
//! model.safetensors.header.json`), the engine loads it, and its dequantized weights are ours.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use quantlab_compress::{compress, CompressOptions, Scheme, SchemeName};
use quantlab_model::Weights;
use serde_json::Value;
use std::collections::BTreeMap;

fn run(
    scheme: SchemeName,
    group: Option<usize>,
    out: &std::path::Path,
) -> anyhow::Result<quantlab_compress::CompressSummary> {
    let opts = CompressOptions {
        scheme: Scheme::preset(scheme, group)?,
        ignore: vec![],
        force: false,
        progress: false,
    };
    compress(&common::default_model(), out, &opts)
}

fn header(variant: &str) -> BTreeMap<String, (String, Vec<usize>)> {
    let p = common::shared().join(format!(
        "reference/llmcompressor/{variant}/model.safetensors.header.json"
    ));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| {
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), (t["dtype"].as_str().unwrap().to_string(), shape))
        })
        .collect()
}

fn ours(dir: &std::path::Path) -> BTreeMap<String, (String, Vec<usize>)> {
    let w = Weights::open(dir).unwrap();
    w.names()
        .map(|n| {
            let (shape, dt) = w.info(n).unwrap();
            (n.to_string(), (format!("{dt:?}"), shape))
        })
        .collect()
}

#[test]
fn layouts_match_llm_compressor_and_engine_loads_them() {
    let tmp = tempfile::tempdir().unwrap();
    for (scheme, group, variant) in [
        (SchemeName::W4A16, Some(64), "w4a16g64_gptq_text"),
        (SchemeName::W8A8Fp8, None, "fp8_dynamic"),
        (SchemeName::W8A8Int8, None, "w8a8_int8"),
    ] {
        let out = tmp.path().join(scheme.as_str());
        let s = run(scheme, group, &out).unwrap();
        assert_eq!(s.quantized_linears, 210);
        assert_eq!(
            ours(&out),
            header(variant),
            "{scheme}: tensor names/dtypes/shapes differ from llm-compressor"
        );
        // quantization_config: same as llm-compressor's except observer/actorder (GPTQ-specific).
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        let refc: Value = serde_json::from_str(
            &std::fs::read_to_string(
                common::shared().join(format!("reference/llmcompressor/{variant}/config.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let (mut a, mut b) = (
            cfg["quantization_config"].clone(),
            refc["quantization_config"].clone(),
        );
        for v in [&mut a, &mut b] {
            v["config_groups"]["group_0"]["weights"]["actorder"] = Value::Null;
            v["config_groups"]["group_0"]["weights"]["observer"] = Value::Null;
        }
        assert_eq!(a, b, "{scheme}: quantization_config");
        // Relative weight error is what RTN at that precision gives.
        let bound = match scheme {
            SchemeName::W4A16 => 0.15,
            _ => 0.05,
        };
        assert!(
            s.mean_rel_error > 0.0 && s.mean_rel_error < bound,
            "{scheme}: rel error {}",
            s.mean_rel_error
        );
        // Output is much smaller than bf16 weights for the linears.
        assert!(
            s.bytes_out < s.bytes_in,
            "{scheme}: {} >= {}",
            s.bytes_out,
            s.bytes_in
        );
        // The engine loads it and runs.
        let e = quantlab_model::Engine::load(
            &out,
            quantlab_model::EngineOptions {
                device: "cpu".into(),
                dtype: "float32".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let ctx = e.tokenizer.encode("The capital of France is").unwrap();
        let g = e.generate(&[ctx], 4, &[], &[], &|_| {}).unwrap();
        assert_eq!(g[0].ids.len(), 4);
    }
}

#[test]
fn group_size_that_does_not_divide_is_a_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bad");
    let e = run(SchemeName::W4A16, None, &out).unwrap_err().to_string();
    assert!(
        e.contains("group size 128 does not divide the input dimension 576"),
        "{e}"
    );
    assert!(e.contains("--group-size 64"), "{e}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "left files behind"
    );
}
