//! Text sources: the Alpaca template string, record rules (text field, messages, instruction
//! pairs), jsonl / json / parquet files, shuffling, shortfall, fingerprints, and the errors on
//! bad input.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use quantlab_calibration::{
    alpaca_text, load, CalibrationOptions, CalibrationSet, Source, Template,
};
use quantlab_model::{Message, Tokenizer};
use std::path::{Path, PathBuf};

fn tokenizer() -> Tokenizer {
    Tokenizer::load(&common::default_model(), &[]).expect("default model tokenizer")
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
        shuffle: false,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err_of(o: &CalibrationOptions, tok: &Tokenizer) -> String {
    match load(o, tok) {
        Ok(set) => panic!("expected an error, got {}", set.description),
        Err(e) => format!("{e:#}"),
    }
}

fn alpaca_eval_record(i: usize) -> serde_json::Value {
    use std::io::BufRead;
    let f = std::fs::File::open(common::shared().join("data/alpaca_eval/eval.jsonl.gz")).unwrap();
    let line = std::io::BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .nth(i)
        .unwrap()
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

/// The two Alpaca prompts of llm-compressor's OpenPlatypusDataset, output appended.
#[test]
fn alpaca_template_renders_exact_string() {
    assert_eq!(
        alpaca_text("Add 2 and 3.", None, Some("5")),
        "Below is an instruction that describes a task. Write a response that appropriately \
         completes the request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n5"
    );
    assert_eq!(
        alpaca_text("Add the numbers.", Some("2, 3"), Some("5")),
        "Below is an instruction that describes a task, paired with an input that provides \
         further context. Write a response that appropriately completes the request.\n\n\
         ### Instruction:\nAdd the numbers.\n\n### Input:\n2, 3\n\n### Response:\n5"
    );
    // An empty input is no input; a missing output leaves the bare prompt.
    assert_eq!(
        alpaca_text("Q", Some(""), None),
        "Below is an instruction that describes a task. Write a response that appropriately \
         completes the request.\n\n### Instruction:\nQ\n\n### Response:\n"
    );
}

/// `alpaca-eval` in the Alpaca template, file order: record 0's ids are exactly the tokenized
/// Alpaca string (no BOS/EOS added), and truncation keeps the first `seq_len` ids.
#[test]
fn alpaca_eval_alpaca_template_tokens() {
    let tok = tokenizer();
    let r = alpaca_eval_record(0);
    let expected = format!(
        "Below is an instruction that describes a task. Write a response that appropriately \
         completes the request.\n\n### Instruction:\n{}\n\n### Response:\n{}",
        r["instruction"].as_str().unwrap(),
        r["output"].as_str().unwrap()
    );
    let want = tok.encode(&expected).unwrap();
    assert!(want.len() > 64);
    let full = load(&opts(Source::AlpacaEval, 2, 100_000), &tok).unwrap();
    assert_eq!(full.sequences[0], want);
    let cut = load(&opts(Source::AlpacaEval, 2, 64), &tok).unwrap();
    assert_eq!(cut.sequences[0], want[..64]);
    assert!(cut.sequences.iter().all(|s| s.len() <= 64));
    assert!(
        cut.description.contains("alpaca-eval"),
        "{}",
        cut.description
    );
    assert!(
        cut.description.contains("alpaca template"),
        "{}",
        cut.description
    );
}

/// With `shuffle`, records are taken in `torch.randperm(805)` order for the seed: seed 0
/// starts with records 249 and 340.
#[test]
fn shuffle_takes_records_in_seeded_order() {
    let tok = tokenizer();
    let shuffled = CalibrationOptions {
        shuffle: true,
        ..opts(Source::AlpacaEval, 2, 100_000)
    };
    let set = load(&shuffled, &tok).unwrap();
    for (k, idx) in [249usize, 340].into_iter().enumerate() {
        let r = alpaca_eval_record(idx);
        let text = alpaca_text(
            r["instruction"].as_str().unwrap(),
            None,
            r["output"].as_str(),
        );
        assert_eq!(set.sequences[k], tok.encode(&text).unwrap(), "sample {k}");
    }
    assert!(
        set.description.contains("shuffled, seed 0"),
        "{}",
        set.description
    );
    let again = load(&shuffled, &tok).unwrap();
    assert_eq!(again.fingerprint(), set.fingerprint());
    let other = load(
        &CalibrationOptions {
            seed: 1,
            ..shuffled.clone()
        },
        &tok,
    )
    .unwrap();
    assert_ne!(other.fingerprint(), set.fingerprint());
}

/// jsonl rules: `--text-field`, a `messages` list through the chat template, `text`, and
/// instruction/output in the chat template; blank text is dropped; too few records is a
/// smaller set, said in the description.
#[test]
fn jsonl_record_rules_and_shortfall() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "mixed.jsonl",
        concat!(
            r#"{"text": "Hello world, this is calibration text."}"#,
            "\n\n",
            r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#,
            "\n",
            r#"{"text": ""}"#,
            "\n",
            r#"{"instruction": "Say hi", "output": "hi"}"#,
            "\n"
        ),
    );
    let o = CalibrationOptions {
        template: Template::Chat,
        ..opts(Source::Jsonl { path: p.clone() }, 10, 512)
    };
    let set = load(&o, &tok).unwrap();
    let chat = |m: &[(&str, &str)]| {
        let msgs: Vec<Message> = m
            .iter()
            .map(|(r, c)| Message {
                role: r.to_string(),
                content: c.to_string(),
            })
            .collect();
        tok.encode(&tok.apply_chat_template(&msgs, false).unwrap())
            .unwrap()
    };
    assert_eq!(
        set.sequences,
        vec![
            tok.encode("Hello world, this is calibration text.")
                .unwrap(),
            chat(&[("user", "Hi"), ("assistant", "Hello!")]),
            chat(&[("user", "Say hi"), ("assistant", "hi")]),
        ]
    );
    assert!(
        set.description.contains("only 3 of 10 requested"),
        "{}",
        set.description
    );
    assert_eq!(
        set.num_tokens(),
        set.sequences.iter().map(Vec::len).sum::<usize>()
    );

    // --text-field picks a field, here from a JSON array file.
    let p = write(
        dir.path(),
        "docs.json",
        r#"[{"body": "first document", "text": "ignored"}, {"body": "second document"}]"#,
    );
    let set = load(
        &CalibrationOptions {
            text_field: Some("body".into()),
            ..opts(Source::Jsonl { path: p }, 2, 512)
        },
        &tok,
    )
    .unwrap();
    assert_eq!(
        set.sequences,
        vec![
            tok.encode("first document").unwrap(),
            tok.encode("second document").unwrap()
        ]
    );
}

/// Parquet (snappy) with the Open-Platypus schema, found as `open-platypus` under a data dir.
#[test]
fn open_platypus_parquet_in_alpaca_template() {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    let tok = tokenizer();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("open_platypus")).unwrap();
    let path = data.path().join("open_platypus/train.parquet");
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED BYTE_ARRAY instruction (UTF8); REQUIRED BYTE_ARRAY input \
             (UTF8); REQUIRED BYTE_ARRAY output (UTF8); REQUIRED BYTE_ARRAY data_source (UTF8); }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let rows = [
        ["What is 2+2?", "", "4", "MATH"],
        ["Translate to French.", "cat", "chat", "airoboros"],
    ];
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(&path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    for c in 0..4 {
        let mut col = rg.next_column().unwrap().unwrap();
        let vals: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r[c])).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&vals, None, None)
            .unwrap();
        col.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();

    let o = CalibrationOptions {
        data_dir: data.path().to_path_buf(),
        ..opts(Source::OpenPlatypus, 2, 512)
    };
    let set = load(&o, &tok).unwrap();
    assert_eq!(
        set.sequences,
        vec![
            tok.encode(&alpaca_text("What is 2+2?", None, Some("4")))
                .unwrap(),
            tok.encode(&alpaca_text(
                "Translate to French.",
                Some("cat"),
                Some("chat")
            ))
            .unwrap(),
        ]
    );
    assert!(
        set.description.contains("train.parquet"),
        "{}",
        set.description
    );
}

#[test]
fn source_spellings() {
    assert_eq!(
        Source::parse("open-platypus").unwrap(),
        Source::OpenPlatypus
    );
    assert_eq!(
        Source::parse("Open_Platypus").unwrap(),
        Source::OpenPlatypus
    );
    assert_eq!(Source::parse("alpaca-eval").unwrap(), Source::AlpacaEval);
    assert_eq!(Source::parse("random").unwrap(), Source::Random);
    assert_eq!(
        Source::parse("jsonl:/tmp/a b.jsonl").unwrap(),
        Source::Jsonl {
            path: "/tmp/a b.jsonl".into()
        }
    );
    assert_eq!(
        Source::parse("tokens:x.json").unwrap(),
        Source::Tokens {
            path: "x.json".into()
        }
    );
    for s in [
        "open-platypus",
        "alpaca-eval",
        "random",
        "jsonl:a.jsonl",
        "tokens:t.json",
    ] {
        assert_eq!(Source::parse(s).unwrap().to_string(), s);
    }
    let e = Source::parse("platypus").unwrap_err().to_string();
    assert!(e.contains("`platypus`"), "{e}");
    assert!(
        e.contains("open-platypus | alpaca-eval | random | jsonl:PATH | tokens:PATH"),
        "{e}"
    );
    let e = Source::parse("data.jsonl").unwrap_err().to_string();
    assert!(e.contains("jsonl:"), "{e}");
    let e = Source::parse("jsonl:").unwrap_err().to_string();
    assert!(e.contains("needs a file path"), "{e}");
    assert_eq!(Template::parse("Chat").unwrap(), Template::Chat);
    assert!(Template::parse("vicuna")
        .unwrap_err()
        .to_string()
        .contains("alpaca | chat"));
}

#[test]
fn missing_data_files_say_what_to_do() {
    let tok = tokenizer();
    let empty = tempfile::tempdir().unwrap();
    let o = CalibrationOptions {
        data_dir: empty.path().to_path_buf(),
        ..opts(Source::OpenPlatypus, 4, 64)
    };
    let e = err_of(&o, &tok);
    assert!(
        e.contains(&empty.path().join("open_platypus").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("train.jsonl,train.jsonl.gz,train.parquet"),
        "{e}"
    );
    assert!(e.contains("garage-bAInd/Open-Platypus"), "{e}");
    assert!(e.contains("alpaca-eval") && e.contains("random"), "{e}");

    let o = CalibrationOptions {
        data_dir: empty.path().to_path_buf(),
        ..opts(Source::AlpacaEval, 4, 64)
    };
    let e = err_of(&o, &tok);
    assert!(
        e.contains(
            &empty
                .path()
                .join("alpaca_eval/eval.jsonl.gz")
                .display()
                .to_string()
        ),
        "{e}"
    );
    assert!(e.contains("random"), "{e}");

    let missing = empty.path().join("nope.jsonl");
    let e = err_of(
        &opts(
            Source::Jsonl {
                path: missing.clone(),
            },
            4,
            64,
        ),
        &tok,
    );
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let missing = empty.path().join("nope.json");
    let e = err_of(
        &opts(
            Source::Tokens {
                path: missing.clone(),
            },
            4,
            64,
        ),
        &tok,
    );
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("does not exist") && e.contains("random"), "{e}");
}

#[test]
fn bad_records_name_file_line_and_field() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, text: &str, field: Option<&str>| {
        let p = write(dir.path(), name, text);
        let o = CalibrationOptions {
            text_field: field.map(String::from),
            ..opts(Source::Jsonl { path: p.clone() }, 4, 64)
        };
        (p.display().to_string(), err_of(&o, &tok))
    };
    let (p, e) = case(
        "a.jsonl",
        "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n",
        Some("content"),
    );
    assert!(e.contains(&format!("{p}:1")), "{e}");
    assert!(e.contains("`content`") && e.contains("text"), "{e}");
    let (p, e) = case("b.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n", None);
    assert!(
        e.contains(&format!("{p}:2")) && e.contains("malformed JSON"),
        "{e}"
    );
    let (p, e) = case("c.jsonl", "{\"body\": \"x\", \"id\": 3}\n", None);
    assert!(e.contains(&format!("{p}:1")), "{e}");
    assert!(e.contains("body, id") && e.contains("--text-field"), "{e}");
    let (p, e) = case("d.jsonl", "{\"instruction\": 5, \"output\": \"x\"}\n", None);
    assert!(
        e.contains(&format!("{p}:1")) && e.contains("`instruction`"),
        "{e}"
    );
    let (p, e) = case("e.jsonl", "{\"messages\": [{\"role\": \"user\"}]}\n", None);
    assert!(
        e.contains(&format!("{p}:1")) && e.contains("`messages[0]`"),
        "{e}"
    );
    let (p, e) = case("f.jsonl", "[1, 2]\n", None);
    assert!(
        e.contains(&format!("{p}:1")) && e.contains("JSON object"),
        "{e}"
    );
    let (p, e) = case("g.csv", "text\nhello\n", None);
    assert!(e.contains(&p) && e.contains("unsupported"), "{e}");
    let (p, e) = case("h.parquet", "not parquet", None);
    assert!(e.contains(&p) && e.contains("parquet"), "{e}");

    // Options.
    let p = write(dir.path(), "ok.jsonl", "{\"text\": \"ok\"}\n");
    let e = err_of(&opts(Source::Jsonl { path: p.clone() }, 0, 64), &tok);
    assert!(e.contains("samples"), "{e}");
    let e = err_of(&opts(Source::Jsonl { path: p }, 1, 0), &tok);
    assert!(e.contains("seq_len"), "{e}");
}

#[test]
fn bad_token_files_name_file_and_field() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, text: &str| {
        let p = write(dir.path(), name, text);
        (
            p.display().to_string(),
            err_of(&opts(Source::Tokens { path: p }, 4, 64), &tok),
        )
    };
    let (p, e) = case("a.json", "{\"input_ids\": [[1, 2], ");
    assert!(e.contains(&p) && e.contains("not valid JSON"), "{e}");
    let (p, e) = case("b.json", "{\"ids\": [[1, 2]]}");
    assert!(
        e.contains(&p) && e.contains("`input_ids` is missing"),
        "{e}"
    );
    let (p, e) = case("c.json", "{\"input_ids\": [1, 2]}");
    assert!(e.contains(&p) && e.contains("`input_ids[0]`"), "{e}");
    let (p, e) = case("d.json", "{\"input_ids\": [[1, -2]]}");
    assert!(
        e.contains(&p) && e.contains("`input_ids[0][1]` = -2"),
        "{e}"
    );
    let (p, e) = case("e.json", "{\"input_ids\": [[5], [1, 49152]]}");
    assert!(
        e.contains(&p) && e.contains("`input_ids[1][1]` = 49152"),
        "{e}"
    );
    assert!(e.contains("[0, 49152)"), "{e}");
    let (p, e) = case("f.json", "{\"input_ids\": [[1, \"2\"]]}");
    assert!(e.contains(&p) && e.contains("`input_ids[0][1]`"), "{e}");
    let (p, e) = case("g.json", "{\"input_ids\": [[]]}");
    assert!(
        e.contains(&p) && e.contains("`input_ids[0]` is empty"),
        "{e}"
    );
    let (p, e) = case("h.json", "{\"input_ids\": \"abc\"}");
    assert!(e.contains(&p) && e.contains("`input_ids`"), "{e}");
}

#[test]
fn fingerprint_is_sha256_of_ids() {
    let set = CalibrationSet {
        sequences: vec![vec![1, 2, 3], vec![4]],
        description: String::new(),
    };
    assert_eq!(set.num_tokens(), 4);
    let fp = set.fingerprint();
    // Python: sha256(pack('<Q', 2) + pack('<Q', 3) + pack('<3q', 1, 2, 3) + pack('<Q', 1) +
    // pack('<q', 4)).hexdigest()
    assert_eq!(
        fp,
        "9ebb9023fce002d338c17f045d7ae6c9516e03c714c5009972cbe7863b13a8b4"
    );
    // The split into sequences counts, not only the concatenated ids.
    let resplit = CalibrationSet {
        sequences: vec![vec![1, 2], vec![3, 4]],
        description: String::new(),
    };
    assert_ne!(resplit.fingerprint(), fp);
    assert_eq!(set.clone().fingerprint(), fp);
}
