//! Similarity metrics against the peer tools on the reference pairs in
//! `../shared/reference/similarity/` (BF16 vs W4A16-g64 GPTQ greedy answers of the real model to
//! 20 IFEval prompts; scores by rouge-score 0.1.2, bert-score 0.3.13 with all-MiniLM-L6-v2 at
//! layer 6, sentence-transformers 6.2.0; see `../shared/reference/how-made/sim_score.py`), plus
//! edge cases and bad input.
//!
//! Needs the MiniLM encoder (`just fetch-minilm`); fails, never skips, without it.

mod common;

use quantlab_evaluate::similarity::{self as sim, SimilarityOptions, TextPair};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Device;

fn ref_dir() -> PathBuf {
    common::shared_dir().join("reference/similarity")
}

fn minilm() -> PathBuf {
    sim::find_minilm().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The reference pairs: candidates = W4A16 answers, references = BF16 answers, paired by `key`.
fn reference_pairs() -> Vec<TextPair> {
    let d = ref_dir();
    sim::read_pairs(
        &d.join("gen_w4a16g64_gptq_text_float32.jsonl"),
        &d.join("gen_bf16_float32.jsonl"),
        "key",
        "generation",
    )
    .unwrap()
}

/// The peers' per-pair scores, by `key`.
fn peer_rows() -> HashMap<String, Value> {
    let p = ref_dir().join("scores_bf16_vs_w4a16g64_gptq_text_float32_pairs.jsonl");
    std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].to_string(), v)
        })
        .collect()
}

fn opts(bertscore: bool, sts: bool) -> SimilarityOptions {
    SimilarityOptions {
        stem: false,
        bertscore: bertscore.then(|| sim::BertScoreOptions {
            encoder: minilm(),
            layer: None,
            idf: false,
            baseline: None,
        }),
        sts: sts.then(|| sim::StsOptions { encoder: minilm() }),
        device: Device::Cpu,
        batch_tokens: 4096,
    }
}

#[test]
fn rouge_equals_rouge_score_exactly_with_and_without_stemming() {
    let pairs = reference_pairs();
    let peers = peer_rows();
    assert_eq!(pairs.len(), 20);
    for stem in [false, true] {
        let sfx = if stem { "stem" } else { "nostem" };
        let res = sim::score_pairs(
            &pairs,
            &SimilarityOptions {
                stem,
                ..opts(false, false)
            },
        )
        .unwrap();
        for s in &res.pairs {
            let row = &peers[&s.id.to_string()];
            for (name, ours) in [
                ("rouge1_p", s.rouge1_p),
                ("rouge1_r", s.rouge1_r),
                ("rouge1_f", s.rouge1_f),
                ("rougeL_p", s.rouge_l_p),
                ("rougeL_r", s.rouge_l_r),
                ("rougeL_f", s.rouge_l_f),
            ] {
                let (kind, part) = name.split_once('_').unwrap();
                let peer = row[format!("{kind}_{sfx}_{part}")].as_f64().unwrap();
                assert_eq!(ours, peer, "pair {} {name} ({sfx})", s.id);
            }
        }
    }
}

#[test]
fn bertscore_and_sts_agree_with_the_peers_to_1e4() {
    let pairs = reference_pairs();
    let peers = peer_rows();
    let res = sim::score_pairs(&pairs, &opts(true, true)).unwrap();
    let bs = res.settings.bertscore.as_ref().unwrap();
    assert_eq!(
        (bs.layer, bs.max_length, bs.model.as_str()),
        (6, 512, "all-MiniLM-L6-v2")
    );
    assert_eq!(res.settings.sts.as_ref().unwrap().max_seq_length, 256);
    let mut worst: HashMap<&str, f64> = HashMap::new();
    for s in &res.pairs {
        let row = &peers[&s.id.to_string()];
        for (name, ours) in [
            ("bertscore_p", s.bertscore_p),
            ("bertscore_r", s.bertscore_r),
            ("bertscore_f1", s.bertscore_f1),
            ("sts_cosine", s.sts_cosine),
        ] {
            let d = (ours.unwrap() - row[name].as_f64().unwrap()).abs();
            let w = worst.entry(name).or_insert(0.0);
            *w = w.max(d);
        }
    }
    eprintln!("max |ours - peer| over the 20 pairs: {worst:?}");
    for (name, d) in &worst {
        assert!(*d <= 1e-4, "{name}: max abs diff {d:e} > 1e-4");
    }
    // Means against the peers' summary.
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(
            ref_dir().join("scores_bf16_vs_w4a16g64_gptq_text_float32_summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (ours, peer, tol) in [
        ("rouge1_f", "rouge1_nostem_f", 1e-12),
        ("rougeL_f", "rougeL_nostem_f", 1e-12),
        ("bertscore_p", "bertscore_p", 1e-4),
        ("bertscore_r", "bertscore_r", 1e-4),
        ("bertscore_f1", "bertscore_f1", 1e-4),
        ("sts_cosine", "sts_cosine", 1e-4),
    ] {
        let m = res.metrics[ours];
        let p = summary[peer].as_f64().unwrap();
        assert!((m.mean - p).abs() <= tol, "{ours}: mean {} vs {p}", m.mean);
        let [lo, hi] = m.ci95.unwrap();
        assert!(lo < m.mean && m.mean < hi && m.n == 20);
    }
    // STS on the paper's 0-1 scale.
    let s0 = &res.pairs[0];
    assert!((s0.sts_01.unwrap() - (s0.sts_cosine.unwrap() + 1.0) / 2.0).abs() < 1e-15);
    assert_eq!(
        res.truncation.bertscore_texts_truncated + res.truncation.sts_texts_truncated,
        0
    );
}

#[test]
fn separate_and_shared_encoder_passes_give_the_same_scores() {
    let pairs = reference_pairs();
    let both = sim::score_pairs(&pairs, &opts(true, true)).unwrap();
    let bs = sim::score_pairs(&pairs, &opts(true, false)).unwrap();
    let st = sim::score_pairs(&pairs, &opts(false, true)).unwrap();
    for ((a, b), c) in both.pairs.iter().zip(&bs.pairs).zip(&st.pairs) {
        assert!((a.bertscore_f1.unwrap() - b.bertscore_f1.unwrap()).abs() < 1e-6);
        assert!((a.sts_cosine.unwrap() - c.sts_cosine.unwrap()).abs() < 1e-6);
        assert!(b.sts_cosine.is_none() && c.bertscore_f1.is_none());
    }
}

#[test]
fn edge_cases_have_defined_scores() {
    let long: String = (0..10_000).map(|i| format!("w{} ", i % 97)).collect();
    let longer = format!("{long} and then something completely different at the very end");
    let pair = |id: &str, c: &str, r: &str| TextPair {
        id: Value::String(id.into()),
        candidate: c.into(),
        reference: r.into(),
    };
    let pairs = vec![
        pair("both-empty", "", ""),
        pair("empty-candidate", "", "The answer is 42."),
        pair("whitespace-only", " \n\t \u{3000}", "The answer is 42."),
        pair(
            "unicode",
            "Ünïcödé — naïve café, 日本語のテキスト 🙂 \u{0}\u{200b}",
            "Unicode: naive cafe, Japanese text :)",
        ),
        pair("same", "Identical answers.", "Identical answers."),
        pair("long", &long, "w1 w2 w3"),
        pair("longer", &longer, "w1 w2 w3"),
    ];
    let res = sim::score_pairs(&pairs, &opts(true, true)).unwrap();
    let by: HashMap<String, &sim::PairScores> = res
        .pairs
        .iter()
        .map(|p| (p.id.as_str().unwrap().to_string(), p))
        .collect();
    for p in &res.pairs {
        for (name, _) in sim::METRICS {
            let v = p.metric(name).unwrap();
            assert!(v.is_finite(), "{}: {name} = {v}", p.id);
        }
    }
    // Empty (after stripping) on either side: ROUGE and raw BERTScore are 0, as the peers.
    for id in ["both-empty", "empty-candidate", "whitespace-only"] {
        let p = by[id];
        assert_eq!((p.rouge1_f, p.rouge_l_f), (0.0, 0.0), "{id}");
        assert_eq!(
            (p.bertscore_p, p.bertscore_r, p.bertscore_f1),
            (Some(0.0), Some(0.0), Some(0.0)),
            "{id}"
        );
    }
    // Two empty texts have the same sentence embedding.
    assert!((by["both-empty"].sts_cosine.unwrap() - 1.0).abs() < 1e-5);
    let same = by["same"];
    assert_eq!(same.rouge1_f, 1.0);
    assert!(
        (same.bertscore_f1.unwrap() - 1.0).abs() < 1e-5
            && (same.sts_cosine.unwrap() - 1.0).abs() < 1e-5
    );
    // The 10k-word reply: "w123" is 3 word pieces (w, ##12, ##3 or similar); whatever the count,
    // BERTScore keeps 510 content tokens and STS 254, the rest is dropped and reported.
    let enc = sim::encoder::Encoder::load(&minilm(), Device::Cpu, Some(0)).unwrap();
    let n_content = enc.tokenize(&long, usize::MAX).unwrap().dropped + 510;
    let t = by["long"]
        .truncated_tokens
        .expect("the long reply is truncated");
    assert_eq!(t.bertscore_candidate, n_content - 510);
    assert_eq!(t.sts_candidate, n_content - 254);
    assert_eq!((t.bertscore_reference, t.sts_reference), (0, 0));
    assert_eq!(res.truncation.bertscore_texts_truncated, 2);
    assert_eq!(res.truncation.sts_texts_truncated, 2);
    // What lies past the window does not change the encoder-based scores; ROUGE sees everything.
    let (a, b) = (by["long"], by["longer"]);
    assert!((a.bertscore_f1.unwrap() - b.bertscore_f1.unwrap()).abs() < 1e-6);
    assert!((a.sts_cosine.unwrap() - b.sts_cosine.unwrap()).abs() < 1e-6);
    assert_ne!(a.rouge1_p, b.rouge1_p);
    assert!(sim::render_markdown(&res).contains("Truncated to the encoder windows"));
}

#[test]
fn a_layer_the_encoder_lacks_is_an_error() {
    let mut o = opts(true, false);
    o.bertscore.as_mut().unwrap().layer = Some(7);
    let e = sim::score_pairs(&reference_pairs(), &o).unwrap_err();
    assert!(format!("{e:#}").contains("layer 7"), "{e:#}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_input_names_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let good = write(
        d.path(),
        "good.jsonl",
        "{\"id\": 1, \"text\": \"a\"}\n\n{\"id\": \"x\", \"text\": \"b\"}\n",
    );
    let cases = [
        (
            "{\"id\": 1, \"text\": \"a\"}\n{\"id\": \"x\", \"text\": \n",
            ":2: not valid JSON",
        ),
        ("{\"id\": 1}\n", ":1: field 'text' is missing"),
        ("{\"text\": \"a\"}\n", ":1: field 'id' is missing"),
        (
            "{\"id\": 1.5, \"text\": \"a\"}\n",
            ":1: field 'id' must be a string or an integer, found a number",
        ),
        (
            "{\"id\": 1, \"text\": null}\n",
            ":1: field 'text' must be a string, found null",
        ),
        ("[1, 2]\n", ":1: expected a JSON object, found an array"),
        (
            "{\"id\": 1, \"text\": \"a\"}\n{\"id\": \"1\", \"text\": \"b\"}\n",
            ":2: field 'id': id \"1\" already used on line 1",
        ),
        ("\n\n", ": no records"),
        (
            "{\"id\": 1, \"text\": \"a\"}\n{\"id\": \"y\", \"text\": \"b\"}\n",
            ":2: id \"y\" has no reference in",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let bad = write(d.path(), &format!("bad{i}.jsonl"), text);
        let e = format!(
            "{:#}",
            sim::read_pairs(&bad, &good, "id", "text").unwrap_err()
        );
        assert!(
            e.contains(&bad.display().to_string()) && e.contains(want),
            "case {i}: {e}"
        );
    }
    // An id only the references have.
    let fewer = write(d.path(), "fewer.jsonl", "{\"id\": 1, \"text\": \"a\"}\n");
    let e = format!(
        "{:#}",
        sim::read_pairs(&fewer, &good, "id", "text").unwrap_err()
    );
    assert!(
        e.contains(&format!(
            "{}:3: id \"x\" has no candidate in",
            good.display()
        )),
        "{e}"
    );
    // Custom field names; integer and string ids pair up.
    let c = write(
        d.path(),
        "c.jsonl",
        "{\"key\": \"1\", \"generation\": \"hello\"}\n",
    );
    let r = write(
        d.path(),
        "r.jsonl",
        "{\"key\": 1, \"generation\": \"hello world\"}\n",
    );
    let pairs = sim::read_pairs(&c, &r, "key", "generation").unwrap();
    assert_eq!(
        (pairs[0].candidate.as_str(), pairs[0].reference.as_str()),
        ("hello", "hello world")
    );
    let missing = format!(
        "{:#}",
        sim::read_pairs(&d.path().join("nope.jsonl"), &r, "id", "text").unwrap_err()
    );
    assert!(missing.contains("nope.jsonl: cannot open"), "{missing}");
}

#[test]
fn outputs_are_complete_files() {
    let pairs = reference_pairs();
    let mut res = sim::score_pairs(
        &pairs,
        &SimilarityOptions {
            stem: true,
            ..opts(false, false)
        },
    )
    .unwrap();
    res.candidates = Some("c.jsonl".into());
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    sim::write_outputs(&out, &res).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["similarity.json", "similarity.md"]);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("similarity.json")).unwrap())
            .unwrap();
    assert_eq!(v["n_pairs"], 20);
    assert_eq!(v["pairs"].as_array().unwrap().len(), 20);
    assert_eq!(v["settings"]["rouge_stemmer"], true);
    let peer: Value = serde_json::from_str(
        &std::fs::read_to_string(
            ref_dir().join("scores_bf16_vs_w4a16g64_gptq_text_float32_summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let m = v["metrics"]["rougeL_f"]["mean"].as_f64().unwrap();
    assert!((m - peer["rougeL_stem_f"].as_f64().unwrap()).abs() < 1e-12);
    assert!(v["pairs"][0].get("bertscore_f1").is_none());
    let md = std::fs::read_to_string(out.join("similarity.md")).unwrap();
    assert!(
        md.contains("| ROUGE-L F |") && !md.contains("BERTScore"),
        "{md}"
    );
}
