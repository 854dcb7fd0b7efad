//! `import_gguf` on the real default model (SmolLM2-135M-Instruct Q4_1 GGUF) against reference
//! figures made with gguf-py + transformers (`<shared>/reference/smollm2-135m-instruct/`):
//! per-tensor sha256 of the bf16 bytes, tokenizer ids and decoded text, chat template rendering,
//! and clean errors on bad input.
//!
//! Inputs: `QUANTLAB_GGUF` (default `<workspace>/.cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf`)
//! and `QUANTLAB_SHARED` (default `<workspace>/../shared`). Missing inputs fail the tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use quantlab_model::gguf::{import_gguf, import_gguf_with};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gguf_path() -> PathBuf {
    let p = std::env::var_os("QUANTLAB_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        p.is_file(),
        "GGUF model {} not found: run `just setup` (or set QUANTLAB_GGUF)",
        p.display()
    );
    p
}

fn reference(name: &str) -> Value {
    let shared = std::env::var_os("QUANTLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"));
    let p = shared.join("reference/smollm2-135m-instruct").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the shared reference figures are needed (run `just setup` or set QUANTLAB_SHARED)",
            p.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The real GGUF imported once for all tests of this file.
fn imported() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, out) = DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("smollm2");
        let t0 = std::time::Instant::now();
        let summary = import_gguf(&gguf_path(), &out).unwrap_or_else(|e| panic!("import: {e}"));
        eprintln!("imported in {:.1?}: {summary:?}", t0.elapsed());
        assert_eq!(summary.architecture, "llama");
        assert_eq!(summary.out_dir, out);
        assert_eq!(summary.n_tensors, 272);
        (tmp, out)
    });
    out
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn tensors_match_reference_sha256() {
    let out = imported();
    let want = reference("tensors.json");
    let want = want["tensors"]
        .as_object()
        .expect("tensors.json: 'tensors' object");
    assert_eq!(want.len(), 272, "tensors.json entries");

    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut problems = Vec::new();
    let mut matched = 0;
    for (name, w) in want {
        let Ok(view) = st.tensor(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let mut bad = Vec::new();
        if view.shape() != shape.as_slice() {
            bad.push(format!("shape {:?} != {shape:?}", view.shape()));
        }
        if w["dtype"] != "bfloat16" || view.dtype() != safetensors::Dtype::BF16 {
            bad.push(format!(
                "dtype {:?} vs reference {}",
                view.dtype(),
                w["dtype"]
            ));
        }
        let sha = hex::encode(Sha256::digest(view.data()));
        if sha != w["sha256"].as_str().unwrap() {
            bad.push(format!("sha256 {sha} != {}", w["sha256"]));
        }
        if bad.is_empty() {
            matched += 1;
        } else {
            problems.push(format!("{name}: {}", bad.join(", ")));
        }
    }
    for name in st.names() {
        if !want.contains_key(name) {
            problems.push(format!("{name}: written but not in the reference"));
        }
    }
    assert!(
        problems.is_empty(),
        "{matched} of {} tensors matched ({} written); {} problems, first ones:\n{}",
        want.len(),
        st.len(),
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    assert_eq!(st.len(), 272);
    // Tied embeddings: no lm_head.
    assert!(st.tensor("lm_head.weight").is_err());
}

#[test]
fn config_files() {
    let out = imported();
    let c = read_json(&out.join("config.json"));
    for (k, v) in [
        ("model_type", Value::from("llama")),
        ("hidden_size", 576.into()),
        ("intermediate_size", 1536.into()),
        ("num_attention_heads", 9.into()),
        ("num_key_value_heads", 3.into()),
        ("num_hidden_layers", 30.into()),
        ("head_dim", 64.into()),
        ("rms_norm_eps", 1e-5.into()),
        ("rope_theta", 100000.0.into()),
        ("max_position_embeddings", 8192.into()),
        ("vocab_size", 49152.into()),
        ("tie_word_embeddings", true.into()),
        ("bos_token_id", 1.into()),
        ("eos_token_id", 2.into()),
        ("pad_token_id", 2.into()),
        ("torch_dtype", "bfloat16".into()),
        ("hidden_act", "silu".into()),
        ("attention_bias", false.into()),
        ("mlp_bias", false.into()),
        ("rope_scaling", Value::Null),
    ] {
        assert_eq!(c[k], v, "config.json {k}");
    }
    assert_eq!(c["architectures"][0], "LlamaForCausalLM");
    let t = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(t["bos_token"], "<|im_start|>");
    assert_eq!(t["eos_token"], "<|im_end|>");
    assert_eq!(t["pad_token"], "<|im_end|>");
    assert_eq!(t["unk_token"], "<|endoftext|>");
    assert_eq!(t["add_bos_token"], false);
    assert_eq!(t["model_max_length"], 8192);
    let g = read_json(&out.join("generation_config.json"));
    assert_eq!(g["bos_token_id"], 1);
    assert_eq!(g["eos_token_id"], 2);
}

#[test]
fn tokenizer_and_chat_template_match_reference() {
    let out = imported();
    let logits = reference("logits.json");
    let tk = tokenizers::Tokenizer::from_file(out.join("tokenizer.json"))
        .unwrap_or_else(|e| panic!("tokenizer.json: {e}"));
    let cases = logits["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    for (i, case) in cases.iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let enc = tk.encode(text, false).unwrap();
        assert_eq!(
            enc.get_ids(),
            ids(&case["ids"]).as_slice(),
            "case {i}: encode {text:?}"
        );
        let decoded = tk.decode(&ids(&case["greedy32_ids"]), false).unwrap();
        assert_eq!(
            decoded,
            case["greedy32_text"].as_str().unwrap(),
            "case {i}: decode"
        );
    }
    // Special tokens are single ids.
    for (tok, id) in [
        ("<|im_start|>", 1u32),
        ("<|im_end|>", 2),
        ("<|endoftext|>", 0),
    ] {
        assert_eq!(tk.encode(tok, false).unwrap().get_ids(), &[id], "{tok}");
    }

    let t = read_json(&out.join("tokenizer_config.json"));
    let template = t["chat_template"].as_str().expect("chat_template");
    let mut env = minijinja::Environment::new();
    env.add_template("chat", template).unwrap();
    let messages = vec![minijinja::context! {
        role => "user",
        content => "What is the capital of France?",
    }];
    let rendered = env
        .get_template("chat")
        .unwrap()
        .render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => t["bos_token"].as_str(),
            eos_token => t["eos_token"].as_str(),
        })
        .unwrap();
    assert_eq!(
        rendered,
        logits["meta"]["chat_template_rendered"].as_str().unwrap()
    );
    // It is also the text of the reference's 5th case, checked token by token above.
    assert_eq!(rendered, cases[4]["text"].as_str().unwrap());
}

/// `import_gguf(gguf)` fails with one line that names the file and says `expect`, and leaves
/// neither the output folder nor a temporary folder behind.
fn assert_clean_error(gguf: &Path, tmp: &Path, expect: &str) {
    let out = tmp.join("out");
    let e = import_gguf(gguf, &out).expect_err("bad input must fail");
    let msg = format!("{e}");
    eprintln!("{msg}");
    let name = gguf.file_name().unwrap().to_string_lossy();
    assert!(
        msg.contains(name.as_ref()),
        "error does not name the file: {msg}"
    );
    assert!(
        msg.contains(expect),
        "error {msg:?} does not say {expect:?}"
    );
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
    assert!(!out.exists(), "out dir left behind");
    let leftovers: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("out"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left behind: {leftovers:?}"
    );
}

#[test]
fn bad_input_gives_clean_errors() {
    let src = std::fs::read(gguf_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // Cut inside the token list (metadata), and inside the tensor data.
    let short = tmp.path().join("short-meta.gguf");
    std::fs::write(&short, &src[..1_000_000]).unwrap();
    assert_clean_error(&short, tmp.path(), "file ends early");
    let half = tmp.path().join("half.gguf");
    std::fs::write(&half, &src[..src.len() / 2]).unwrap();
    assert_clean_error(&half, tmp.path(), "runs past the end of the file");

    let mut bad = src[..4096].to_vec();
    bad[..4].copy_from_slice(b"GGUX");
    let magic = tmp.path().join("bad-magic.gguf");
    std::fs::write(&magic, &bad).unwrap();
    assert_clean_error(&magic, tmp.path(), "bad magic");

    let mut v = src[..4096].to_vec();
    v[4..8].copy_from_slice(&7u32.to_le_bytes());
    let version = tmp.path().join("version7.gguf");
    std::fs::write(&version, &v).unwrap();
    assert_clean_error(&version, tmp.path(), "unsupported GGUF version 7");

    // An absurd tensor count must not allocate or panic.
    let mut n = src[..4096].to_vec();
    n[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let count = tmp.path().join("huge-count.gguf");
    std::fs::write(&count, &n).unwrap();
    assert_clean_error(&count, tmp.path(), "tensor count");

    // A required metadata key renamed (same length, so the rest of the file is intact).
    let find = |hay: &[u8], needle: &[u8]| {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{:?} not in the GGUF", String::from_utf8_lossy(needle)))
    };
    let mut k = src.clone();
    let at = find(&k, b"llama.block_count");
    k[at..at + 17].copy_from_slice(b"llama.block_xount");
    let key = tmp.path().join("no-block-count.gguf");
    std::fs::write(&key, &k).unwrap();
    assert_clean_error(&key, tmp.path(), "metadata key 'llama.block_count' missing");

    // token_embd.weight (Q8_0, 2 dims) relabelled Q5_0 (id 6): same block length, fewer bytes.
    let mut t = src.clone();
    let at = find(&t, b"token_embd.weight") + 17 + 4 + 16;
    assert_eq!(
        t[at..at + 4],
        8u32.to_le_bytes(),
        "type id of token_embd.weight"
    );
    t[at..at + 4].copy_from_slice(&6u32.to_le_bytes());
    let ty = tmp.path().join("q5_0.gguf");
    std::fs::write(&ty, &t).unwrap();
    assert_clean_error(
        &ty,
        tmp.path(),
        "tensor 'token_embd.weight': unsupported ggml type Q5_0",
    );
    drop((k, t));

    let empty = tmp.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_error(&empty, tmp.path(), "not a GGUF file");

    let missing = tmp.path().join("does-not-exist.gguf");
    assert_clean_error(&missing, tmp.path(), "cannot open");
}

#[test]
fn existing_out_dir_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let e = import_gguf(&gguf_path(), &out).unwrap_err();
    assert!(format!("{e}").contains("already exists"), "{e}");
    assert!(out.join("keep.txt").exists());
    // `force` replaces it with a complete import.
    let s = import_gguf_with(&gguf_path(), &out, true).unwrap();
    assert_eq!(s.n_tensors, 272);
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("model.safetensors").is_file());
    assert!(out.join("tokenizer.json").is_file());
}
