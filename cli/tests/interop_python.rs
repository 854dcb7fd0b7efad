//! Interop with the Python peers (DESIGN.md "How we know it is right", issue 3): for each preset
//! (`w8a8-fp8`, `w8a8-int8`, `w4a16`, `w4a16-asym` and `w8a16`, the last three with group 64) the binary compresses the default model with a tiny
//! random calibration (4 × 64 tokens: the point is the format, not accuracy), then
//! `tests/python/ct_interop.py` runs the pinned `compressed-tensors==0.19.0` and
//! `transformers==5.17.0` of `.venv` on the checkpoint:
//!
//! - Weights, exactly (max abs diff 0.0) for every quantized Linear, against what our engine
//!   loads ([`quantlab_model::quant::load_linear`], the function `Llama::load` calls):
//!   - compressed-tensors' model-free decompression (`CompressedTensorsDequantizer`) computes in
//!     the stored `weight_scale` dtype, bf16, so it must equal our load in bf16;
//!   - transformers loading with `dtype=torch.float32` upcasts the scales to fp32 before
//!     compressed-tensors decompresses them, so its weights must equal our load in fp32.
//! - Logits: the last-position logits (whole vocabulary) of the 5 reference prompts of
//!   `shared/reference/smollm2-135m-instruct/logits.json`, transformers fp32 CPU against our
//!   engine fp32 CPU, within 1e-3 for every preset, and the same greedy next token on every prompt.
//!   Measured: 0.0 for all three presets (bit-identical), because both sides run the same
//!   libtorch 2.11 CPU kernels in the same order, including the W8A8 dynamic per-token
//!   activation quantization (int8: scale absmax/127.5, round half to even, clamp [-128, 127];
//!   fp8: scale absmax/448, cast to e4m3).
//!   Both sides are pinned to the same intra-op thread count ([`THREADS`]) because the summation
//!   order of a matmul can depend on it, and for W8A8 that is not a last-bit matter: an activation
//!   on a rounding boundary then lands one quantum away and the step propagates through the
//!   remaining layers. transformers against itself at 1 vs 2 threads on these checkpoints gives
//!   4e-5 for w4a16 but 1.18 for w8a8-int8 and 1.77 for w8a8-fp8 (one prompt of five). So a W8A8
//!   tolerance loose enough to absorb a reordering would hide real bugs of that size (a wrong
//!   scale divisor, a wrong rounding mode); 1e-3 is kept, and a W8A8 failure with exact weights
//!   after an engine change that reorders arithmetic should be read in that light.
//!
//! transformers runs fp8 checkpoints on the CPU here: with no fp8 GEMM it decompresses the
//! weights to fp32 on the first forward and fake-quantizes the activations to e4m3, as we do.
//!
//! Needs `.venv` with the pinned packages (`just setup`); when they are missing the test fails
//! saying so, it is never skipped.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use quantlab_model::config::LlamaConfig;
use quantlab_model::quant::{load_linear, QuantizationConfig};
use quantlab_model::{Engine, EngineOptions, Weights};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

/// torch intra-op threads on both sides of the logits comparison (see the module doc).
const THREADS: i32 = 1;

fn python() -> PathBuf {
    let p = common::workspace().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "{} not found: run `just setup` (its `venv` step installs torch, compressed-tensors and transformers)",
        p.display()
    );
    p
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn compress(preset: &str, extra: &[&str], out: &Path) {
    let model = common::default_model();
    let mut args = vec![
        "compress",
        model.to_str().unwrap(),
        preset,
        "--out",
        out.to_str().unwrap(),
        "--calibration",
        "random",
        "--samples",
        "4",
        "--seq-len",
        "64",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_quantlab"))
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_quantlab")));
    assert!(
        o.status.success(),
        "quantlab {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run the Python peers on `ckpt`, writing `out/{ct,hf}/model.safetensors` and `out/summary.json`.
fn peers(ckpt: &Path, out: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ct_interop.py");
    let reference = common::shared().join("reference/smollm2-135m-instruct/logits.json");
    let o = Command::new(python())
        .arg(&script)
        .arg(ckpt)
        .arg(&reference)
        .arg(out)
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("QUANTLAB_INTEROP_THREADS", THREADS.to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `just setup`", python().display()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() != Some(3),
        "the Python peers are not installed: {}",
        stderr.trim()
    );
    assert!(
        o.status.success(),
        "{} failed on {}:\n{stderr}",
        script.display(),
        ckpt.display()
    );
    json(&out.join("summary.json"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[])
}

/// Our dequantized weights against both peers' for every compressed Linear; returns the number
/// of modules compared.
fn check_weights(ckpt: &Path, peer: &Path) -> usize {
    let w = Weights::open(ckpt).unwrap();
    let cfg = LlamaConfig::from_file(&ckpt.join("config.json")).unwrap();
    let cfg_json = json(&ckpt.join("config.json"));
    let qcfg =
        QuantizationConfig::from_value(&cfg_json["quantization_config"], &ckpt.join("config.json"))
            .unwrap();
    let ct = Weights::open(&peer.join("ct")).unwrap();
    let hf = Weights::open(&peer.join("hf")).unwrap();
    let modules: BTreeSet<String> = w
        .names()
        .filter_map(|n| n.strip_suffix(".weight_scale").map(String::from))
        .collect();
    let weights_of = |x: &Weights| -> BTreeSet<String> {
        x.names()
            .filter_map(|n| n.strip_suffix(".weight").map(String::from))
            .collect()
    };
    assert_eq!(weights_of(&ct), modules, "compressed-tensors' module set");
    assert_eq!(
        weights_of(&hf),
        modules,
        "transformers' quantized module set"
    );
    for m in &modules {
        let bias = if m.contains(".self_attn.o_proj") {
            cfg.o_bias()
        } else if m.contains(".self_attn.") {
            cfg.qkv_bias()
        } else {
            false
        };
        let ours = |kind| {
            load_linear(&w, m, bias, Some(&qcfg), kind, Device::Cpu)
                .unwrap()
                .weight
        };
        let name = format!("{m}.weight");
        let d = max_abs_diff(&ours(Kind::BFloat16), &ct.get(&name).unwrap());
        assert!(
            d == 0.0,
            "{m}: compressed-tensors (bf16 scales) differs from our bf16 weight by {d:e}"
        );
        let d = max_abs_diff(&ours(Kind::Float), &hf.get(&name).unwrap());
        assert!(
            d == 0.0,
            "{m}: transformers (fp32) differs from our fp32 weight by {d:e}"
        );
    }
    modules.len()
}

/// Our fp32 engine's last-position logits against transformers' on the reference prompts; returns
/// the max abs diff over all prompts and the whole vocabulary.
fn check_logits(ckpt: &Path, peer: &Path, tol: f64) -> f64 {
    let reference = json(&common::shared().join("reference/smollm2-135m-instruct/logits.json"));
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let e = Engine::load(
        ckpt,
        EngineOptions {
            device: "cpu".into(),
            dtype: "float32".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let hf = Weights::open(&peer.join("hf")).unwrap();
    tch::set_num_threads(THREADS);
    let mut worst = 0.0f64;
    for (ci, c) in cases.iter().enumerate() {
        let ids: Vec<i64> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let t = ids.len() as i64;
        let ids_t = Tensor::from_slice(&ids).view([1, t]);
        let pos = Tensor::arange(t, (Kind::Int64, Device::Cpu)).view([1, t]);
        let valid = Tensor::ones([1, t], (Kind::Bool, Device::Cpu));
        let mask = quantlab_model::llama::causal_mask(&valid, 0, t);
        let ours = tch::no_grad(|| {
            let h = e.model.forward(&ids_t, &pos, Some(&mask), None);
            e.model.logits(&h.get(0)).get(t - 1)
        });
        let theirs = hf.get(&format!("logits.{ci}")).unwrap();
        let d = max_abs_diff(&ours, &theirs);
        let (a, b) = (
            ours.argmax(-1, false).int64_value(&[]),
            theirs.argmax(-1, false).int64_value(&[]),
        );
        eprintln!("  case {ci}: max |Δlogit| {d:.3e}, greedy ours {a} transformers {b}");
        assert_eq!(a, b, "case {ci}: greedy next token");
        assert!(d <= tol, "case {ci}: logits differ by {d:e} > {tol:e}");
        worst = worst.max(d);
    }
    worst
}

/// The presets run one at a time: parallel torch processes on few cores slow GPTQ's many
/// small ops several-fold (OpenMP oversubscription).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn interop(preset: &str, extra: &[&str], logit_tol: f64) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join(preset);
    let t0 = std::time::Instant::now();
    compress(preset, extra, &ckpt);
    let t1 = std::time::Instant::now();
    let peer = tmp.path().join("peers");
    let summary = peers(&ckpt, &peer);
    let t2 = std::time::Instant::now();
    let n = check_weights(&ckpt, &peer);
    assert_eq!(n, 210, "30 layers × 7 Linears");
    let worst = check_logits(&ckpt, &peer, logit_tol);
    eprintln!(
        "{preset}: {n} Linears equal to compressed-tensors (bf16) and transformers (fp32) weights; \
         logits max |Δ| {worst:.3e} (tolerance {logit_tol:e}); peers {summary}; \
         compress {:.1} s, peers {:.1} s, compare {:.1} s",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        t2.elapsed().as_secs_f64()
    );
}

#[test]
fn w8a8_fp8_matches_compressed_tensors_and_transformers() {
    interop("w8a8-fp8", &[], 1e-3);
}

#[test]
fn w8a8_int8_matches_compressed_tensors_and_transformers() {
    interop("w8a8-int8", &[], 1e-3);
}

#[test]
fn w4a16_matches_compressed_tensors_and_transformers() {
    interop("w4a16", &["--group-size", "64"], 1e-3);
}

/// compressed-tensors' `W4A16_ASYM`: packed int4 codes plus int4 zero points packed along the
/// output dimension.
#[test]
fn w4a16_asym_matches_compressed_tensors_and_transformers() {
    interop("w4a16-asym", &["--group-size", "64"], 1e-3);
}

/// compressed-tensors' `W8A16`: int8 codes packed four per int32.
#[test]
fn w8a16_matches_compressed_tensors_and_transformers() {
    interop("w8a16", &["--group-size", "64"], 1e-3);
}
