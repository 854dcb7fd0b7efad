//! Recipe `ignore` lists through the binary, on the default model with the round-to-nearest
//! FP8_DYNAMIC path (no calibration data, seconds): a `re:` entry keeps the Linears it matches in
//! bf16 (and is written to config.json), entries are matched as vLLM and compressed-tensors read
//! them (a whole name, or a regex from the start of the name), an entry that matches no Linear is
//! an error naming it, and so is an ignore list that splits a group vLLM fuses (q/k/v, gate/up);
//! no output folder is left behind.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::process::Command;

fn compress(recipe: &str, out: &std::path::Path) -> std::process::Output {
    let dir = out.parent().unwrap();
    let file = dir.join(format!(
        "{}.yaml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&file, recipe).unwrap();
    Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .arg("compress")
        .arg(common::default_model())
        .arg("--recipe")
        .arg(&file)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn regex_ignores_apply_and_unmatched_ones_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fp8");
    let o = compress(
        "QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC, ignore: [lm_head, 're:.*layers\\.(0|1)\\.mlp\\.down_proj$']}\n",
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let ignore = &cfg["quantization_config"]["ignore"];
    assert_eq!(
        ignore,
        &serde_json::json!(["lm_head", "re:.*layers\\.(0|1)\\.mlp\\.down_proj$"]),
        "{cfg}"
    );
    // The header: layers 0 and 1 down_proj stay bf16 (no scale), layer 2's is fp8 with a scale.
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    for l in [0, 1] {
        let w = &header[format!("model.layers.{l}.mlp.down_proj.weight")];
        assert_eq!(w["dtype"], "BF16", "layer {l}: {w}");
        assert!(header
            .get(format!("model.layers.{l}.mlp.down_proj.weight_scale"))
            .is_none());
    }
    assert_eq!(
        header["model.layers.2.mlp.down_proj.weight"]["dtype"],
        "F8_E4M3"
    );
    assert!(header
        .get("model.layers.2.mlp.down_proj.weight_scale")
        .is_some());

    // A bare name is a whole name (vLLM's reading): `down_proj` alone matches nothing.
    let bare = tmp.path().join("bare");
    let o = compress(
        "QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC, ignore: [lm_head, mlp.down_proj]}\n",
        &bare,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ignore entry 'mlp.down_proj' matches no Linear"),
        "{err}"
    );
    assert!(!bare.exists());
    // `re:` is matched from the start of the name, as Python's re.match: `layers\.1\.` matches none.
    let o = compress(
        "QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC, ignore: [lm_head, 're:layers\\.1\\.']}\n",
        &bare,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("matches no Linear"), "{err}");
    // Half of a fused q/k/v group: vLLM would refuse the checkpoint.
    let o = compress(
        "QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC, ignore: [lm_head, model.layers.2.self_attn.k_proj]}\n",
        &bare,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("model.layers.2.self_attn.q_proj, model.layers.2.self_attn.k_proj, model.layers.2.self_attn.v_proj"),
        "{err}"
    );
    assert!(!bare.exists());

    let bad = tmp.path().join("typo");
    let o = compress(
        "QuantizationModifier: {targets: Linear, scheme: FP8_DYNAMIC, ignore: [lm_head, down_prj]}\n",
        &bad,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ignore entry 'down_prj' matches no Linear of this model"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(!bad.exists());
}
