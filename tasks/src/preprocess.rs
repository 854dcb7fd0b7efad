//! Built-in document transforms (lm-eval's `process_docs` functions) and the few Python string
//! operations they need with Python's exact semantics.

use anyhow::{anyhow, Context, Result};
use regex::Regex;
use serde_json::Value;
use std::sync::OnceLock;

use crate::fewshot::PyRandom;
use crate::spec::Preprocess;

/// Apply a named transform to one raw document; the result keeps the original fields and adds
/// the derived ones (as `datasets.Dataset.map` does in lm-eval). Errors for [`Preprocess::Gpqa`],
/// whose result depends on the documents before it: use [`apply_all`].
pub fn apply(kind: Preprocess, doc: &Value) -> Result<Value> {
    match kind {
        Preprocess::Hellaswag => hellaswag(doc),
        Preprocess::Winogrande => winogrande(doc),
        Preprocess::Gpqa => Err(anyhow!(
            "the gpqa transform shuffles with one random stream over the whole file; use apply_all"
        )),
        Preprocess::Musr => Err(anyhow!(
            "the musr transform makes one document per question; use apply_all"
        )),
        Preprocess::MathHard => math_hard(doc),
    }
}

/// lm-eval 0.4.9.1 `tasks/leaderboard/math/utils.py::process_docs`: `answer` is the content of
/// the `solution`'s last `\boxed{..}` (`[invalidanswer]` when it has none).
fn math_hard(doc: &Value) -> Result<Value> {
    let solution = doc
        .get("solution")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("field `solution` is missing or not a string"))?;
    let mut out = doc.clone();
    out["answer"] = Value::String(crate::math::gold_answer(solution));
    Ok(out)
}

/// Apply a named transform to a file's documents in order (lm-eval `process_docs` over the whole
/// split). An error names the document's position (0-based).
/// [`Preprocess::Musr`] may give more documents than it is given (one per question).
pub fn apply_all(kind: Preprocess, docs: &[Value]) -> Result<Vec<Value>> {
    if kind == Preprocess::Musr {
        let mut out = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            out.extend(musr(d).with_context(|| format!("document {i}"))?);
        }
        return Ok(out);
    }
    let mut rng = PyRandom::new(GPQA_SEED);
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            match kind {
                Preprocess::Gpqa => gpqa(d, &mut rng),
                _ => apply(kind, d),
            }
            .with_context(|| format!("document {i}"))
        })
        .collect()
}

/// The seed of Python's global `random` when lm-eval builds the tasks (`simple_evaluate`'s
/// `random_seed=0`, `lm_eval/evaluator.py`). The GPQA shuffle equals lm-eval's when the GPQA task
/// is the first to draw from the global stream after that seeding (one GPQA task per run).
pub const GPQA_SEED: u64 = 0;

/// lm-eval `tasks/leaderboard/gpqa/utils.py::preprocess`: `None` -> `" "`, else strip,
/// `" [title]"` -> `". "`, `"  "` -> `" "` (one pass each, Python's `str.replace`).
pub fn gpqa_clean(text: Option<&str>) -> String {
    match text {
        None => " ".to_string(),
        Some(t) => py_strip(t).replace(" [title]", ". ").replace("  ", " "),
    }
}

/// MuSR (GitHub `Zayne-sprague/MuSR` schema: `context`, `questions: [{question, choices,
/// answer}]`) to one row per question in the Hugging Face `TAUR-Lab/MuSR` form that lm-eval's
/// `tasks/leaderboard/musr/utils.py` reads: `narrative` = `context`, `question`, `choices` (list of
/// strings), `answer_index` = `answer`, `answer_choice` = `choices[answer]`. Errors name the
/// question and field.
pub fn musr(doc: &Value) -> Result<Vec<Value>> {
    let context = str_field(doc, "context")?;
    let questions = doc
        .get("questions")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("field `questions` is missing or not a list"))?;
    if questions.is_empty() {
        return Err(anyhow!("field `questions` is empty"));
    }
    questions
        .iter()
        .enumerate()
        .map(|(k, q)| {
            let question = str_field(q, "question").with_context(|| format!("questions[{k}]"))?;
            let choices: Vec<&str> = q
                .get("choices")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("questions[{k}]: field `choices` is missing or not a list"))?
                .iter()
                .map(|c| {
                    c.as_str()
                        .ok_or_else(|| anyhow!("questions[{k}]: `choices` holds a non-string"))
                })
                .collect::<Result<_>>()?;
            let answer = q
                .get("answer")
                .and_then(Value::as_u64)
                .map(|a| a as usize)
                .filter(|&a| a < choices.len())
                .ok_or_else(|| {
                    anyhow!(
                        "questions[{k}]: field `answer` must be an index below {}",
                        choices.len()
                    )
                })?;
            Ok(serde_json::json!({
                "narrative": context,
                "question": question,
                "choices": choices,
                "answer_index": answer,
                "answer_choice": choices[answer],
            }))
        })
        .collect()
}

/// Python `random.shuffle(x)` (CPython 3.x): for `i` from `len-1` down to 1 swap `x[i]` with
/// `x[randbelow(i + 1)]`.
pub fn py_shuffle<T>(x: &mut [T], rng: &mut PyRandom) {
    for i in (1..x.len()).rev() {
        let j = rng.randbelow(i as u64 + 1) as usize;
        x.swap(i, j);
    }
}

/// lm-eval `tasks/leaderboard/gpqa/utils.py::process_docs` for one document, drawing from `rng`
/// (the global `random` stream): `choice1`..`choice4` = the cleaned
/// `[Incorrect Answer 1, 2, 3, Correct Answer]` after `random.shuffle`, `answer` = `"(X)"` with X
/// the letter of the first choice equal to the cleaned correct answer. Missing answer fields are
/// `None` in lm-eval (cleaned to `" "`); a field that is present but not a string is an error.
pub fn gpqa(doc: &Value, rng: &mut PyRandom) -> Result<Value> {
    let field = |k: &str| -> Result<Option<&str>> {
        match doc.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(anyhow!("field `{k}` is not a string: {v}")),
        }
    };
    let correct = gpqa_clean(field("Correct Answer")?);
    let mut choices = [
        gpqa_clean(field("Incorrect Answer 1")?),
        gpqa_clean(field("Incorrect Answer 2")?),
        gpqa_clean(field("Incorrect Answer 3")?),
        correct.clone(),
    ];
    py_shuffle(&mut choices, rng);
    let gold = choices
        .iter()
        .position(|c| *c == correct)
        .expect("the correct answer is one of the shuffled choices");
    let mut out = doc.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| anyhow!("document is not an object"))?;
    for (i, c) in choices.into_iter().enumerate() {
        obj.insert(format!("choice{}", i + 1), Value::String(c));
    }
    obj.insert(
        "answer".into(),
        Value::String(format!("({})", char::from(b'A' + gold as u8))),
    );
    Ok(out)
}

/// Python `str.isspace()` for one character: Unicode White_Space plus the ASCII information
/// separators U+001C..U+001F, which Python also counts as whitespace.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `str.strip()` (no argument).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Python `str.capitalize()`: first character upper-cased, the rest lower-cased.
pub fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(&chars.as_str().to_lowercase());
            out
        }
    }
}

/// lm-eval `tasks/hellaswag/utils.py::preprocess`: strip, `" [title]"` -> `". "`, drop
/// `\[.*?\]`, then `"  "` -> `" "` (one pass, like Python's `str.replace`).
pub fn hellaswag_clean(text: &str) -> String {
    static BRACKETS: OnceLock<Regex> = OnceLock::new();
    let re = BRACKETS.get_or_init(|| Regex::new(r"\[.*?\]").expect("static regex"));
    let t = py_strip(text).replace(" [title]", ". ");
    let t = re.replace_all(&t, "");
    t.replace("  ", " ")
}

fn str_field<'a>(doc: &'a Value, key: &str) -> Result<&'a str> {
    doc.get(key)
        .ok_or_else(|| anyhow!("missing field `{key}`"))?
        .as_str()
        .ok_or_else(|| anyhow!("field `{key}` is not a string"))
}

/// lm-eval `tasks/hellaswag/utils.py::process_docs`:
/// `query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`,
/// `choices = [preprocess(e) for e in endings]`, `gold = int(label)`.
pub fn hellaswag(doc: &Value) -> Result<Value> {
    let activity = str_field(doc, "activity_label")?;
    let ctx_a = str_field(doc, "ctx_a")?;
    let ctx_b = str_field(doc, "ctx_b")?;
    let ctx = format!("{ctx_a} {}", py_capitalize(ctx_b));
    let query = hellaswag_clean(&format!("{activity}: {ctx}"));
    let endings = doc
        .get("endings")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("field `endings` is missing or not a list"))?;
    let choices = endings
        .iter()
        .map(|e| {
            e.as_str()
                .map(hellaswag_clean)
                .ok_or_else(|| anyhow!("`endings` holds a non-string"))
        })
        .collect::<Result<Vec<_>>>()?;
    let gold: i64 = match doc.get("label") {
        Some(Value::String(s)) => py_strip(s)
            .parse()
            .with_context(|| format!("label {s:?} is not an integer"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| anyhow!("label {n} is not an integer"))?,
        _ => return Err(anyhow!("field `label` is missing")),
    };
    let mut out = doc.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| anyhow!("document is not an object"))?;
    obj.insert("query".into(), Value::String(query));
    obj.insert(
        "choices".into(),
        Value::Array(choices.into_iter().map(Value::String).collect()),
    );
    obj.insert("gold".into(), Value::from(gold));
    Ok(out)
}

/// lm-eval `tasks/winogrande/preprocess_winogrande.py` as fields: `gold` = `{"1": 0, "2": 1}`
/// of `answer` (`doc_to_text`), `partial_contexts` = the sentence before the first `_` followed by
/// `option1` / `option2` (`doc_to_choice`), `continuation` = the sentence after the `_`, stripped
/// (`doc_to_target`).
pub fn winogrande(doc: &Value) -> Result<Value> {
    let sentence = str_field(doc, "sentence")?;
    let blank = sentence
        .find('_')
        .ok_or_else(|| anyhow!("field `sentence` has no `_` blank"))?;
    let options = [str_field(doc, "option1")?, str_field(doc, "option2")?];
    let gold = match doc.get("answer") {
        Some(Value::String(a)) if a == "1" => 0,
        Some(Value::String(a)) if a == "2" => 1,
        other => {
            return Err(anyhow!(
                "field `answer` must be \"1\" or \"2\", got {}",
                other.map_or("nothing".to_string(), |v| v.to_string())
            ))
        }
    };
    let mut out = doc.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| anyhow!("document is not an object"))?;
    obj.insert("gold".into(), Value::from(gold));
    obj.insert(
        "partial_contexts".into(),
        Value::Array(
            options
                .iter()
                .map(|o| Value::String(format!("{}{o}", &sentence[..blank])))
                .collect(),
        ),
    );
    obj.insert(
        "continuation".into(),
        Value::String(py_strip(&sentence[blank + 1..]).to_string()),
    );
    Ok(out)
}

/// lm-eval's word count for perplexity (`tasks/wikitext/preprocess_wikitext.py`):
/// `len(re.split(r"\s+", text))`, i.e. one more than the number of whitespace runs.
pub fn py_word_count(text: &str) -> usize {
    let mut runs = 0;
    let mut in_space = false;
    for c in text.chars() {
        let sp = py_is_space(c);
        if sp && !in_space {
            runs += 1;
        }
        in_space = sp;
    }
    runs + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalize_lowercases_the_rest() {
        assert_eq!(py_capitalize("the LADY"), "The lady");
        assert_eq!(py_capitalize(""), "");
        assert_eq!(py_capitalize("éA"), "Éa");
    }

    #[test]
    fn hellaswag_clean_matches_python() {
        // python: preprocess(" A [title] B [header] C  D ")
        assert_eq!(hellaswag_clean(" A [title] B [header] C  D "), "A. B C D");
        assert_eq!(hellaswag_clean("x   y"), "x  y");
    }

    #[test]
    fn word_count_is_python_re_split() {
        // python: len(re.split(r"\s+", s))
        assert_eq!(py_word_count("a b  c"), 3);
        assert_eq!(py_word_count(" a\n\nb "), 4);
        assert_eq!(py_word_count(""), 1);
    }

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\u{1f} a \u{a0}"), "a");
    }
}
