//! A sharded checkpoint (`model.safetensors.index.json` + two shards) loads and gives exactly the
//! logits of the single-file checkpoint; a shard named by the index but missing is a clear error.
mod common;

use quantlab_model::weights::save_safetensors;
use quantlab_model::{Engine, EngineOptions, Weights};

fn opts() -> EngineOptions {
    EngineOptions {
        device: "cpu".into(),
        dtype: "float32".into(),
        ..Default::default()
    }
}

#[test]
fn sharded_equals_single_file() {
    let src = common::default_model();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("sharded");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let w = Weights::open(&src).unwrap();
    let names: Vec<String> = w.names().map(String::from).collect();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (i, part) in [a, b].iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let tensors: Vec<(String, tch::Tensor)> = part
            .iter()
            .map(|n| (n.clone(), w.get(n).unwrap()))
            .collect();
        save_safetensors(&dst.join(&file), &tensors, None).unwrap();
        for n in part.iter() {
            map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let one = Engine::load(&src, opts()).unwrap();
    let two = Engine::load(&dst, opts()).unwrap();
    let ctx = one
        .tokenizer
        .encode("Question: What is the capital of France?\nAnswer:")
        .unwrap();
    let cont = one.tokenizer.encode(" Paris").unwrap();
    let s1 = one.score(&[(ctx.clone(), cont.clone())], &|_| {}).unwrap()[0];
    let s2 = two.score(&[(ctx, cont)], &|_| {}).unwrap()[0];
    assert_eq!(s1, s2, "sharded checkpoint scores differently");

    // A shard named in the index but missing.
    std::fs::remove_file(dst.join("model-00002-of-00002.safetensors")).unwrap();
    let e = Engine::load(&dst, opts())
        .err()
        .expect("missing shard must fail")
        .to_string();
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
}
