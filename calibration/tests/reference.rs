//! Calibration sets against the llm-compressor fixtures in `shared/reference/llmcompressor/`
//! (made by `how-made/make_calib.py` with torch 2.11.0 and transformers 5.17), on the default
//! model's tokenizer.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use quantlab_calibration::{
    load, random_token_range, torch_rng, CalibrationOptions, Source, Template,
};
use quantlab_model::Tokenizer;
use serde_json::Value;
use std::path::PathBuf;

fn tokenizer() -> Tokenizer {
    Tokenizer::load(&common::default_model(), &[]).expect("default model tokenizer")
}

fn fixture(name: &str) -> PathBuf {
    common::shared().join("reference/llmcompressor").join(name)
}

fn fixture_json(name: &str) -> Value {
    let p = fixture(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<Vec<i64>> {
    v["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn opts(source: Source, samples: usize, seq_len: usize) -> CalibrationOptions {
    CalibrationOptions {
        source,
        samples,
        seq_len,
        seed: 0,
        text_field: None,
        template: Template::Alpaca,
        data_dir: common::shared().join("data"),
        shuffle: true,
    }
}

/// `random`, 128 × 512, seed 0 == `torch.randint(17, 49152, (128, 512),
/// generator=torch.Generator().manual_seed(0))`, id for id.
#[test]
fn random_tokens_reproduce_torch_randint() {
    let tok = tokenizer();
    assert_eq!(random_token_range(&tok).unwrap(), (17, 49152));
    let set = load(&opts(Source::Random, 128, 512), &tok).unwrap();
    let want = ids_of(&fixture_json("calib_random_tokens.json"));
    assert_eq!(want.len(), 128);
    assert_eq!(set.sequences.len(), 128);
    assert!(set.sequences.iter().all(|s| s.len() == 512));
    for (i, (got, want)) in set.sequences.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "row {i} differs from torch.randint");
    }
    assert_eq!(set.num_tokens(), 128 * 512);
    assert!(set.description.contains("random"), "{}", set.description);
    assert!(set.description.contains("seed 0"), "{}", set.description);
    assert!(
        set.description.contains("65536 tokens"),
        "{}",
        set.description
    );
    // Same seed, same set (the global generator is reseeded each time); another seed differs.
    let again = load(&opts(Source::Random, 128, 512), &tok).unwrap();
    assert_eq!(again.fingerprint(), set.fingerprint());
    let other = load(
        &CalibrationOptions {
            seed: 1,
            ..opts(Source::Random, 128, 512)
        },
        &tok,
    )
    .unwrap();
    assert_ne!(other.sequences, set.sequences);
    assert!(other
        .sequences
        .iter()
        .flatten()
        .all(|&id| (17..49152).contains(&id)));
}

/// The record order of `shuffle` is `torch.randperm(n, generator=torch.Generator().manual_seed(s))`
/// (values printed by torch 2.11.0 CPU).
#[test]
fn shuffle_order_is_torch_randperm() {
    let p = torch_rng::randperm(0, 10).unwrap();
    assert_eq!(p, vec![4, 1, 7, 5, 3, 9, 0, 8, 6, 2]);
    let p = torch_rng::randperm(42, 805).unwrap();
    assert_eq!(p[..8], TORCH_RANDPERM_805_SEED42);
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(sorted, (0..805).collect::<Vec<_>>());
}

/// `torch.randperm(805, generator=torch.Generator().manual_seed(42))[:8]`.
const TORCH_RANDPERM_805_SEED42: [usize; 8] = [407, 744, 561, 113, 274, 140, 671, 621];

/// `tokens:` with the AlpacaEval fixture gives its input_ids back; `samples` / `seq_len` cut it.
#[test]
fn tokens_source_reads_reference_fixture() {
    let tok = tokenizer();
    let path = fixture("calib_alpacaeval_text.json");
    let want = ids_of(&fixture_json("calib_alpacaeval_text.json"));
    let set = load(&opts(Source::Tokens { path: path.clone() }, 128, 512), &tok).unwrap();
    assert_eq!(set.sequences, want);
    assert_eq!(set.num_tokens(), want.iter().map(Vec::len).sum::<usize>());
    let small = load(&opts(Source::Tokens { path }, 5, 100), &tok).unwrap();
    assert_eq!(small.sequences.len(), 5);
    for (got, want) in small.sequences.iter().zip(&want) {
        assert_eq!(got[..], want[..want.len().min(100)]);
    }
}

/// `alpaca-eval`, chat template, file order, 128 × 512 == the llm-compressor text fixture
/// (transformers `apply_chat_template(tokenize=False)` then `tokenizer(add_special_tokens=False,
/// truncation=True, max_length=512)`).
#[test]
fn alpaca_eval_chat_template_reproduces_reference() {
    let tok = tokenizer();
    let reference = fixture_json("calib_alpacaeval_text.json");
    let want = ids_of(&reference);
    let set = load(
        &CalibrationOptions {
            template: Template::Chat,
            shuffle: false,
            ..opts(Source::AlpacaEval, 128, 512)
        },
        &tok,
    )
    .unwrap();
    // The rendered text first (a clearer failure than ids), on the first records.
    let texts = reference["texts"].as_array().unwrap();
    let records: Vec<Value> = {
        use std::io::BufRead;
        let f =
            std::fs::File::open(common::shared().join("data/alpaca_eval/eval.jsonl.gz")).unwrap();
        std::io::BufReader::new(flate2::read::GzDecoder::new(f))
            .lines()
            .take(3)
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    };
    for (i, r) in records.iter().enumerate() {
        let msgs = vec![
            quantlab_model::Message {
                role: "user".into(),
                content: r["instruction"].as_str().unwrap().into(),
            },
            quantlab_model::Message {
                role: "assistant".into(),
                content: r["output"].as_str().unwrap().into(),
            },
        ];
        let text = tok.apply_chat_template(&msgs, false).unwrap();
        assert_eq!(text, texts[i].as_str().unwrap(), "chat text of record {i}");
    }
    assert_eq!(set.sequences.len(), 128);
    for (i, (got, want)) in set.sequences.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "record {i} differs from the reference ids");
    }
    assert_eq!(set.num_tokens(), want.iter().map(Vec::len).sum::<usize>());
}
