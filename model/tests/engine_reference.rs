//! The engine against transformers 5.17 on the real SmolLM2-135M-Instruct
//! (`reference/smollm2-135m-instruct/logits.json`, fp32, CPU): token ids, last-position top-20
//! logits within 1e-3, summed prompt log-prob, and the 32 greedy tokens exactly; batched results
//! equal unbatched ones.
mod common;

use quantlab_model::{Engine, EngineOptions};
use serde_json::Value;
use tch::{Kind, Tensor};

fn reference() -> Value {
    let p = common::shared().join("reference/smollm2-135m-instruct/logits.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn engine(batch: usize) -> Engine {
    let opts = EngineOptions {
        device: "cpu".into(),
        dtype: "float32".into(),
        batch_size: batch,
        ..Default::default()
    };
    Engine::load(&common::default_model(), opts).expect("load default model")
}

/// Final hidden states `[1, t, hidden]` of one unpadded prompt.
fn hidden(e: &Engine, ids: &[i64]) -> Tensor {
    let t = ids.len() as i64;
    let ids_t = Tensor::from_slice(ids).view([1, t]);
    let pos = Tensor::arange(t, (Kind::Int64, tch::Device::Cpu)).view([1, t]);
    let valid = Tensor::ones([1, t], (Kind::Bool, tch::Device::Cpu));
    let mask = quantlab_model::llama::causal_mask(&valid, 0, t);
    tch::no_grad(|| e.model.forward(&ids_t, &pos, Some(&mask), None))
}

fn floats_of(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids_of(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn logits_and_greedy_match_transformers() {
    let r = reference();
    let e = engine(8);
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let mut prompts = Vec::new();
    for (ci, c) in cases.iter().enumerate() {
        let text = c["text"].as_str().unwrap();
        let ids = e.tokenizer.encode(text).unwrap();
        assert_eq!(ids, ids_of(&c["ids"]), "case {ci}: token ids");
        // Last-position logits, top 20.
        let t = ids.len() as i64;
        let h = hidden(&e, &ids);
        let logits = e.model.logits(&h.get(0));
        let last = logits.get(t - 1);
        let ref_ids = ids_of(&c["last_top20_ids"]);
        let ref_logits = floats_of(&c["last_top20_logits"]);
        for (k, (&id, &rl)) in ref_ids.iter().zip(&ref_logits).enumerate() {
            let ours = last.double_value(&[id]);
            assert!(
                (ours - rl).abs() < 1e-3,
                "case {ci}: top-{k} id {id}: ours {ours} vs transformers {rl}"
            );
        }
        let (_, top) = last.topk(20, -1, true, true);
        let top: Vec<i64> = Vec::<i64>::try_from(top).unwrap();
        assert_eq!(top[..5], ref_ids[..5], "case {ci}: top-5 order");
        // Summed log-prob of tokens 1..end given their prefixes.
        let lp = logits.log_softmax(-1, Kind::Float);
        let mut s = 0.0;
        for j in 1..t {
            s += lp.double_value(&[j - 1, ids[j as usize]]);
        }
        let rs = c["sum_logprob_tokens_1_to_end"].as_f64().unwrap();
        assert!((s - rs).abs() < 2e-3, "case {ci}: sum logprob {s} vs {rs}");
        prompts.push(ids);
    }
    // Greedy 32 tokens, all prompts in one batch (left padding) and one at a time.
    let batched = e.generate(&prompts, 32, &[], &[], &|_| {}).unwrap();
    for (ci, c) in cases.iter().enumerate() {
        let want = ids_of(&c["greedy32_ids"]);
        assert_eq!(batched[ci].ids, want, "case {ci}: batched greedy ids");
        let single = e
            .generate(&prompts[ci..ci + 1], 32, &[], &[], &|_| {})
            .unwrap();
        assert_eq!(single[0].ids, want, "case {ci}: unbatched greedy ids");
    }
}

#[test]
fn batched_scores_equal_unbatched() {
    let e = engine(16);
    let texts = [
        (
            "Question: What is the capital of France?\nAnswer:",
            " Paris",
        ),
        ("The quick brown fox", " jumps over the lazy dog."),
        ("1 + 1 =", " 2"),
        (
            "A man is sitting on a roof. He",
            " starts pulling up roofing on a roof.",
        ),
    ];
    let reqs: Vec<(Vec<i64>, Vec<i64>)> = texts
        .iter()
        .map(|(c, x)| {
            (
                e.tokenizer.encode(c).unwrap(),
                e.tokenizer.encode(x).unwrap(),
            )
        })
        .collect();
    let all = e.score(&reqs, &|_| {}).unwrap();
    for (i, r) in reqs.iter().enumerate() {
        let one = e.score(std::slice::from_ref(r), &|_| {}).unwrap()[0];
        assert!(
            (one.logprob - all[i].logprob).abs() < 1e-4,
            "request {i}: {} vs {}",
            one.logprob,
            all[i].logprob
        );
        assert_eq!(one.is_greedy, all[i].is_greedy);
        assert!(one.logprob < 0.0 && one.logprob > -100.0);
    }
    // The model's own greedy continuation must score as greedy, and a changed token must not.
    let ctx = reqs[0].0.clone();
    let g = e
        .generate(std::slice::from_ref(&ctx), 6, &[], &[], &|_| {})
        .unwrap()
        .remove(0);
    let s = e.score(&[(ctx.clone(), g.ids.clone())], &|_| {}).unwrap()[0];
    assert!(
        s.is_greedy,
        "own greedy continuation {:?} not greedy",
        g.ids
    );
    let mut other = g.ids.clone();
    other[0] = (other[0] + 1) % 49152;
    let s2 = e.score(&[(ctx, other)], &|_| {}).unwrap()[0];
    assert!(!s2.is_greedy && s2.logprob < s.logprob);
}

#[test]
fn bfloat16_stays_close_to_the_fp32_reference() {
    let r = reference();
    let e = Engine::load(
        &common::default_model(),
        EngineOptions {
            device: "cpu".into(),
            dtype: "bfloat16".into(),
            ..Default::default()
        },
    )
    .unwrap();
    for (ci, c) in r["cases"].as_array().unwrap().iter().enumerate() {
        let ids = ids_of(&c["ids"]);
        let t = ids.len() as i64;
        let h = hidden(&e, &ids);
        assert_eq!(h.kind(), Kind::BFloat16);
        let last = e.model.logits(&h.get(0)).get(t - 1);
        let ref_ids = ids_of(&c["last_top20_ids"]);
        let ref_logits = floats_of(&c["last_top20_logits"]);
        let worst = ref_ids
            .iter()
            .zip(&ref_logits)
            .map(|(&id, &rl)| (last.double_value(&[id]) - rl).abs())
            .fold(0.0, f64::max);
        // bf16 keeps 8 bits of mantissa: logits of magnitude ~20 move by a few tenths at most.
        assert!(
            worst < 1.0,
            "case {ci}: bf16 top-20 logits differ by up to {worst}"
        );
        assert!(
            worst > 0.0,
            "case {ci}: bf16 gave bit-identical fp32 logits (was it really bf16?)"
        );
        assert_eq!(
            last.argmax(-1, false).int64_value(&[]),
            ref_ids[0],
            "case {ci}: bf16 top-1"
        );
    }
}

/// `quantlab bench`'s measurement on the real model: the scoring pass gives the engine's own
/// log-likelihoods (their sum), generation runs exactly `new_tokens` per prompt even past EOS, and
/// the engine's EOS ids are back afterwards.
#[test]
fn throughput_bench_scores_and_generates_what_it_counts() {
    use quantlab_model::throughput::{run, BenchRequests};
    let mut e = engine(8);
    let score: Vec<Vec<i64>> = vec![(100..130).collect(), (500..520).collect()];
    let generate: Vec<Vec<i64>> = vec![vec![1, 2, 3], (40..60).collect()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("req.json");
    std::fs::write(
        &path,
        serde_json::json!({"score": score, "continuation": 4, "generate": generate, "new_tokens": 6})
            .to_string(),
    )
    .unwrap();
    let req = BenchRequests::read(&path).unwrap();
    let eos = e.tokenizer.eos_ids.clone();
    assert!(!eos.is_empty());
    let rep = run(&mut e, &req).unwrap();
    assert_eq!(e.tokenizer.eos_ids, eos);
    assert_eq!((rep.score_rows, rep.score_tokens), (2, 50));
    let pairs: Vec<(Vec<i64>, Vec<i64>)> = score
        .iter()
        .map(|r| (r[..r.len() - 4].to_vec(), r[r.len() - 4..].to_vec()))
        .collect();
    let want: f64 = e
        .score(&pairs, &|_| {})
        .unwrap()
        .iter()
        .map(|s| s.logprob)
        .sum();
    assert!(
        (rep.score_logprob_sum - want).abs() < 1e-6,
        "{} vs {want}",
        rep.score_logprob_sum
    );
    assert!(rep.score_logprob_sum < 0.0);
    assert_eq!((rep.generate_rows, rep.new_tokens), (2, 6));
    assert!(rep.score_tokens_per_s > 0.0 && rep.generate_tokens_per_s > 0.0);
    // 12 tokens were generated in generate_s seconds.
    assert!((rep.generate_tokens_per_s * rep.generate_s - 12.0).abs() < 1e-6);
    // Bad files name the field.
    for (body, field) in [
        (r#"{"score": [], "generate": []}"#, "'score'"),
        (r#"{"score": [[1, 2]], "continuation": 2}"#, "row 0"),
        (r#"{"generate": [[1]], "new_tokens": 0}"#, "'new_tokens'"),
        (r#"{"generate": [[]], "new_tokens": 3}"#, "'generate' row 0"),
        (
            r#"{"score": [[1, 2]], "continuation": 0}"#,
            "'continuation'",
        ),
    ] {
        std::fs::write(&path, body).unwrap();
        let err = BenchRequests::read(&path).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("req.json"),
            "{body}: {err}"
        );
    }
    // A typo is an unknown field, not a default.
    std::fs::write(&path, r#"{"generate": [[1]], "new_token": 3}"#).unwrap();
    let err = BenchRequests::read(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `new_token`"), "{err}");
    // Checked against the model before any work: ids outside the vocabulary, rows too long.
    let vocab = e.model.cfg.vocab_size;
    for (body, field) in [
        (
            format!(r#"{{"score": [[1, 2, {vocab}]]}}"#),
            "'score' row 0: token id 49152",
        ),
        (
            r#"{"generate": [[5, -3]], "new_tokens": 2}"#.to_string(),
            "'generate' row 0: token id -3",
        ),
        (
            r#"{"generate": [[5]], "new_tokens": 100000}"#.to_string(),
            "'new_tokens' (100000)",
        ),
    ] {
        std::fs::write(&path, body).unwrap();
        let req = BenchRequests::read(&path).unwrap();
        let err = req.check_for(&path, vocab, 8192).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("req.json"), "{err}");
    }
    let long = serde_json::json!({"score": [vec![7i64; 9000]]}).to_string();
    std::fs::write(&path, long).unwrap();
    let err = BenchRequests::read(&path)
        .unwrap()
        .check_for(&path, vocab, 8192)
        .unwrap_err();
    assert!(err.to_string().contains("9000 ids"), "{err}");
}

/// The scoring path's last layer over the tail only equals the full forward at those positions
/// (right-padded rows of different lengths, plain causal attention).
#[test]
fn tail_forward_equals_full_forward() {
    let e = engine(4);
    let a = e
        .tokenizer
        .encode("The quick brown fox jumps over the lazy dog, and then it runs away.")
        .unwrap();
    let b = e.tokenizer.encode("One two three four five six").unwrap();
    let t = a.len() as i64;
    assert!(b.len() < a.len() && b.len() > 4);
    let mut ids = a.clone();
    ids.extend(b.iter().copied());
    ids.extend(std::iter::repeat_n(0, a.len() - b.len()));
    let ids_t = Tensor::from_slice(&ids).view([2, t]);
    let pos = Tensor::arange(t, (Kind::Int64, tch::Device::Cpu))
        .unsqueeze(0)
        .expand([2, t], false);
    let from = b.len() as i64 - 3;
    let (full, tail) = tch::no_grad(|| {
        (
            e.model.forward(&ids_t, &pos, None, None),
            e.model.forward_tail(&ids_t, &pos, from),
        )
    });
    assert_eq!(tail.size(), [2, t - from, full.size()[2]]);
    // Row 0: every tail position; row 1: its real tokens only.
    let d0 = (full.get(0).narrow(0, from, t - from) - tail.get(0))
        .abs()
        .max();
    let d1 = (full.get(1).narrow(0, from, 3) - tail.get(1).narrow(0, 0, 3))
        .abs()
        .max();
    assert!(d0.double_value(&[]) < 1e-4, "row 0 differs by {d0}");
    assert!(d1.double_value(&[]) < 1e-4, "row 1 differs by {d1}");
    // And the head of the sequence is not what the tail returns (the test can fail).
    let d = (full.get(0).narrow(0, 0, t - from) - tail.get(0))
        .abs()
        .max();
    assert!(d.double_value(&[]) > 1e-2);
}

/// Batched generation over the static decode cache (left-padded prompts of different lengths)
/// gives each prompt the tokens it gets alone.
#[test]
fn batched_generation_equals_unbatched() {
    let e = engine(8);
    let prompts: Vec<Vec<i64>> = [
        "Question: What is the capital of France?\nAnswer:",
        "def add(a, b):",
        "Once upon a time, in a small village by the sea, there lived",
    ]
    .iter()
    .map(|p| e.tokenizer.encode(p).unwrap())
    .collect();
    let all = e.generate(&prompts, 12, &[], &[], &|_| {}).unwrap();
    assert!(all.iter().filter(|g| g.ids.len() == 12).count() >= 2);
    for (i, p) in prompts.iter().enumerate() {
        let one = e
            .generate(std::slice::from_ref(p), 12, &[], &[], &|_| {})
            .unwrap()
            .remove(0);
        assert_eq!(one.ids, all[i].ids, "prompt {i}");
    }
}
