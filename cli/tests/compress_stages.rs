//! On the host, the true-sequential stages keep the intermediates a later stage needs (q/k/v
//! input, attention output, MLP input and hidden states) instead of recomputing them as the GPU
//! path does. Both ways must write the same checkpoint, byte for byte: with and without
//! SmoothQuant (whose smoothing rescales the norms, so their outputs are recomputed).
#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::process::Command;

fn compress(scheme: &[&str], out: &std::path::Path, keep: bool) -> String {
    let model = common::default_model();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quantlab"));
    cmd.arg("compress")
        .arg(&model)
        .args(scheme)
        .arg("--out")
        .arg(out)
        .args([
            "--calibration",
            "random",
            "--samples",
            "8",
            "--seq-len",
            "64",
            "--device",
            "cpu",
        ])
        .env("QUANTLAB_LOG", "warn,quantlab_compress::sequential=debug");
    if !keep {
        cmd.env("QUANTLAB_KEEP_INTERMEDIATES", "0");
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "quantlab compress {scheme:?} failed: {err}"
    );
    err
}

#[test]
fn kept_intermediates_write_the_same_checkpoint_as_recomputed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    for (tag, scheme) in [
        ("w4a16", vec!["w4a16", "--group-size", "64"]),
        ("w8a8", vec!["w8a8-int8"]),
    ] {
        let kept = tmp.path().join(format!("{tag}-kept"));
        let recomputed = tmp.path().join(format!("{tag}-recomputed"));
        let log = compress(&scheme, &kept, true);
        assert!(
            log.contains("keeping the stage intermediates on the host"),
            "{tag}: the kept path did not run: {log}"
        );
        let log = compress(&scheme, &recomputed, false);
        assert!(
            !log.contains("keeping the stage intermediates"),
            "{tag}: QUANTLAB_KEEP_INTERMEDIATES=0 still kept them"
        );
        let a = std::fs::read(kept.join("model.safetensors")).unwrap();
        let b = std::fs::read(recomputed.join("model.safetensors")).unwrap();
        assert!(a.len() > 10_000_000, "{tag}: checkpoint too small");
        assert!(
            a == b,
            "{tag}: kept and recomputed intermediates gave different checkpoints"
        );
    }
}
