//! The 25 IFEval instruction checkers with their kwargs.
//!
//! Each variant follows one class of Google's `instruction_following_eval/instructions.py`
//! as lm-evaluation-harness 0.4.x ships it (`lm_eval/tasks/leaderboard/ifeval/instructions.py`,
//! the same checkers as `lm_eval/tasks/ifeval/instructions.py`), registered under the ids of
//! `instructions_registry.INSTRUCTION_DICT`. The class is named in each variant's doc.
//!
//! kwargs are read as lm-eval's `utils.test_instruction_following_*` passes them: falsy values
//! (`null`, `0`, `""`, `[]`) are dropped first. Where the reference's `build_description` would
//! then draw a random value (a missing or invalid field) this is an error instead, since no
//! score can be reproduced from a random draw; fields the reference would reject
//! (`TypeError`/`ValueError`/`KeyError`) are errors too.

use super::{lang, pystr, text};
use anyhow::{anyhow, bail, Result};
use regex::Regex;
use serde_json::{Map, Value};

/// `_COMPARISON_RELATION = ("less than", "at least")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `"less than"`: actual < threshold.
    LessThan,
    /// `"at least"`: actual >= threshold.
    AtLeast,
}

impl Relation {
    fn holds(self, actual: usize, threshold: i64) -> bool {
        let actual = actual as i64;
        match self {
            Relation::LessThan => actual < threshold,
            Relation::AtLeast => actual >= threshold,
        }
    }
}

/// One checkable instruction, its kwargs parsed and validated.
#[derive(Debug, Clone)]
pub enum Instruction {
    /// `keywords:existence` (`KeywordChecker`): every keyword, a regex searched
    /// case-insensitively, occurs.
    KeywordsExistence { keywords: Vec<Regex> },
    /// `keywords:frequency` (`KeywordFrequencyChecker`): non-overlapping case-insensitive
    /// matches of `keyword` compared with `frequency`.
    KeywordsFrequency {
        keyword: Regex,
        frequency: i64,
        relation: Relation,
    },
    /// `keywords:forbidden_words` (`ForbiddenWords`): no `\bword\b`, case-insensitive.
    ForbiddenWords { words: Vec<Regex> },
    /// `keywords:letter_frequency` (`LetterFrequencyChecker`): count of `letter` in the
    /// lowercased response. A `letter` that is not an ASCII letter is kept as given, where
    /// the reference draws a random letter.
    LetterFrequency {
        letter: char,
        frequency: i64,
        relation: Relation,
    },
    /// `language:response_language` (`ResponseLanguageChecker`): langdetect's language.
    ResponseLanguage { language: String },
    /// `length_constraints:number_sentences` (`NumberOfSentences`): Punkt sentences.
    NumberSentences { num: i64, relation: Relation },
    /// `length_constraints:number_paragraphs` (`ParagraphChecker`): exactly `num` paragraphs
    /// separated by `***`.
    NumberParagraphs { num: i64 },
    /// `length_constraints:number_words` (`NumberOfWords`): `\w+` runs.
    NumberWords { num: i64, relation: Relation },
    /// `length_constraints:nth_paragraph_first_word` (`ParagraphFirstWordCheck`):
    /// paragraphs split by `\n\n`, the count and the first word of paragraph `nth`.
    NthParagraphFirstWord {
        num_paragraphs: i64,
        nth_paragraph: i64,
        first_word: String,
    },
    /// `detectable_content:number_placeholders` (`PlaceholderChecker`): `[...]` at least `num`.
    NumberPlaceholders { num: i64 },
    /// `detectable_content:postscript` (`PostscriptChecker`).
    Postscript { pattern: Regex },
    /// `detectable_format:number_bullet_lists` (`BulletListChecker`): exactly `num` `*`/`-`
    /// bullet lines.
    NumberBulletLists { num: i64 },
    /// `detectable_format:constrained_response` (`ConstrainedResponseChecker`).
    ConstrainedResponse,
    /// `detectable_format:number_highlighted_sections` (`HighlightSectionChecker`): at least
    /// `num` non-empty `*...*` (and, as lm-eval 0.4.x counts them too, `**...**`).
    NumberHighlightedSections { num: i64 },
    /// `detectable_format:multiple_sections` (`SectionChecker`): at least `num`
    /// `<splitter> <number>` markers.
    MultipleSections { splitter: Regex, num: i64 },
    /// `detectable_format:json_format` (`JsonFormat`): the response (markdown fence removed)
    /// parses as JSON.
    JsonFormat,
    /// `detectable_format:title` (`TitleChecker`): a non-empty `<<title>>`.
    Title,
    /// `combination:two_responses` (`TwoResponsesChecker`): two different responses
    /// separated by `******`.
    TwoResponses,
    /// `combination:repeat_prompt` (`RepeatPromptThenAnswer`): starts with the prompt,
    /// case-insensitively.
    RepeatPrompt { prompt_to_repeat: String },
    /// `startend:end_checker` (`EndChecker`): ends with the phrase, case-insensitively.
    EndChecker { end_phrase: String },
    /// `startend:quotation` (`QuotationChecker`): wrapped in double quotes.
    Quotation,
    /// `change_case:capital_word_frequency` (`CapitalWordFrequencyChecker`): all-capital
    /// `nltk.word_tokenize` tokens.
    CapitalWordFrequency { frequency: i64, relation: Relation },
    /// `change_case:english_capital` (`CapitalLettersEnglishChecker`).
    EnglishCapital,
    /// `change_case:english_lowercase` (`LowercaseLettersEnglishChecker`).
    EnglishLowercase,
    /// `punctuation:no_comma` (`CommaChecker`).
    NoComma,
}

/// The instruction ids of `instructions_registry.INSTRUCTION_DICT`, in its order.
pub const INSTRUCTION_IDS: &[&str] = &[
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
];

/// `_CONSTRAINED_RESPONSE_OPTIONS`.
const CONSTRAINED_RESPONSE_OPTIONS: [&str; 3] = [
    "My answer is yes.",
    "My answer is no.",
    "My answer is maybe.",
];

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The kwargs of one instruction after lm-eval's `{k: v for k, v in kwargs.items() if v}`.
struct Kwargs<'a> {
    id: &'a str,
    map: Map<String, Value>,
}

impl<'a> Kwargs<'a> {
    fn new(id: &'a str, raw: &Map<String, Value>, allowed: &[&str]) -> Result<Self> {
        let map: Map<String, Value> = raw
            .iter()
            .filter(|(_, v)| truthy(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                bail!(
                    "kwargs field `{k}` is not an argument of `{id}` (it takes {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                );
            }
        }
        Ok(Kwargs { id, map })
    }

    fn missing(&self, field: &str) -> anyhow::Error {
        anyhow!(
            "kwargs field `{field}` of `{}` is missing, null or falsy (the reference would draw \
             a random value)",
            self.id
        )
    }

    fn int(&self, field: &str) -> Result<i64> {
        let v = self.map.get(field).ok_or_else(|| self.missing(field))?;
        // an integral float (3.0, as a nullable integer column may come out of parquet or
        // pandas) compares in Python as the integer does
        let n = v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| anyhow!("kwargs field `{field}`: expected an integer, got {v}"))?;
        if n < 0 {
            bail!(
                "kwargs field `{field}`: {n} is negative (the reference would draw a random value)"
            );
        }
        Ok(n)
    }

    fn string(&self, field: &str) -> Result<String> {
        let v = self.map.get(field).ok_or_else(|| self.missing(field))?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("kwargs field `{field}`: expected a string, got {v}"))
    }

    fn strings(&self, field: &str) -> Result<Vec<String>> {
        let v = self.map.get(field).ok_or_else(|| self.missing(field))?;
        let arr = v.as_array().ok_or_else(|| {
            anyhow!("kwargs field `{field}`: expected a list of strings, got {v}")
        })?;
        arr.iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    anyhow!("kwargs field `{field}`: expected a list of strings, got element {x}")
                })
            })
            .collect()
    }

    fn relation(&self, field: &str) -> Result<Relation> {
        match self.string(field)?.as_str() {
            "less than" => Ok(Relation::LessThan),
            "at least" => Ok(Relation::AtLeast),
            other => bail!(
                "kwargs field `{field}`: the relation must be \"less than\" or \"at least\", \
                 got {other:?}"
            ),
        }
    }

    fn regex(&self, field: &str, pattern: &str) -> Result<Regex> {
        Regex::new(pattern)
            .map_err(|e| anyhow!("kwargs field `{field}`: {pattern:?} is not a usable regex: {e}"))
    }
}

impl Instruction {
    /// Build the checker for `id` from its kwargs (one element of the doc's `kwargs` list),
    /// as `build_description(**kwargs)` does. Errors name the field.
    pub fn from_kwargs(id: &str, raw: &Map<String, Value>) -> Result<Self> {
        use Instruction::*;
        let kw = |allowed: &[&str]| Kwargs::new(id, raw, allowed);
        Ok(match id {
            "keywords:existence" => {
                let k = kw(&["keywords"])?;
                let mut words = k.strings("keywords")?;
                words.sort();
                KeywordsExistence {
                    keywords: words
                        .iter()
                        .map(|w| k.regex("keywords", &format!("(?i){w}")))
                        .collect::<Result<_>>()?,
                }
            }
            "keywords:frequency" => {
                let k = kw(&["keyword", "frequency", "relation"])?;
                let word = k.string("keyword")?;
                let word = pystr::strip(&word);
                KeywordsFrequency {
                    keyword: k.regex("keyword", &format!("(?i){word}"))?,
                    frequency: k.int("frequency")?,
                    relation: k.relation("relation")?,
                }
            }
            "keywords:forbidden_words" => {
                let k = kw(&["forbidden_words"])?;
                let mut words = k.strings("forbidden_words")?;
                words.sort();
                words.dedup();
                ForbiddenWords {
                    words: words
                        .iter()
                        .map(|w| k.regex("forbidden_words", &format!(r"(?i)\b{w}\b")))
                        .collect::<Result<_>>()?,
                }
            }
            "keywords:letter_frequency" => {
                let k = kw(&["letter", "let_frequency", "let_relation"])?;
                let letter = k.string("letter")?;
                let mut cs = letter.chars();
                // The reference replaces anything but one ASCII letter by a random letter.
                // IFEval has two such docs (key 1122, letter "#"; key 1129, "!"): counting the
                // character the prompt names is kept here, so those instructions match the
                // reference only when its random draw happens to agree. Longer strings are
                // errors.
                let c = match (cs.next(), cs.next()) {
                    (Some(c), None) => c.to_ascii_lowercase(),
                    _ => bail!(
                        "kwargs field `letter`: expected one character, got {letter:?} (the \
                         reference would draw a random letter)"
                    ),
                };
                LetterFrequency {
                    letter: c,
                    frequency: k.int("let_frequency")?,
                    relation: k.relation("let_relation")?,
                }
            }
            "language:response_language" => {
                let k = kw(&["language"])?;
                let language = k.string("language")?;
                if !lang::LANGUAGE_CODES.iter().any(|(c, _)| *c == language) {
                    bail!(
                        "kwargs field `language`: {language:?} is not one of IFEval's language \
                         codes ({})",
                        lang::LANGUAGE_CODES
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                ResponseLanguage { language }
            }
            "length_constraints:number_sentences" => {
                let k = kw(&["num_sentences", "relation"])?;
                NumberSentences {
                    num: k.int("num_sentences")?,
                    relation: k.relation("relation")?,
                }
            }
            "length_constraints:number_paragraphs" => {
                let k = kw(&["num_paragraphs"])?;
                NumberParagraphs {
                    num: k.int("num_paragraphs")?,
                }
            }
            "length_constraints:number_words" => {
                let k = kw(&["num_words", "relation"])?;
                NumberWords {
                    num: k.int("num_words")?,
                    relation: k.relation("relation")?,
                }
            }
            "length_constraints:nth_paragraph_first_word" => {
                let k = kw(&["num_paragraphs", "nth_paragraph", "first_word"])?;
                let num_paragraphs = k.int("num_paragraphs")?;
                let nth_paragraph = k.int("nth_paragraph")?;
                if nth_paragraph == 0 || nth_paragraph > num_paragraphs {
                    bail!(
                        "kwargs field `nth_paragraph`: {nth_paragraph} is not in 1..={num_paragraphs} \
                         (the reference would draw a random value)"
                    );
                }
                NthParagraphFirstWord {
                    num_paragraphs,
                    nth_paragraph,
                    first_word: pystr::lower(&k.string("first_word")?),
                }
            }
            "detectable_content:number_placeholders" => {
                let k = kw(&["num_placeholders"])?;
                NumberPlaceholders {
                    num: k.int("num_placeholders")?,
                }
            }
            "detectable_content:postscript" => {
                let k = kw(&["postscript_marker"])?;
                let marker = k.string("postscript_marker")?;
                let marker = pystr::strip(&marker);
                let pattern = match marker {
                    "P.P.S" => r"(?m)\s*p\.\s?p\.\s?s.*$".to_string(),
                    "P.S." => r"(?m)\s*p\.\s?s\..*$".to_string(),
                    other => format!(r"(?m)\s*{}.*$", pystr::lower(other)),
                };
                Postscript {
                    pattern: k.regex("postscript_marker", &pattern)?,
                }
            }
            "detectable_format:number_bullet_lists" => {
                let k = kw(&["num_bullets"])?;
                NumberBulletLists {
                    num: k.int("num_bullets")?,
                }
            }
            "detectable_format:constrained_response" => {
                kw(&[])?;
                ConstrainedResponse
            }
            "detectable_format:number_highlighted_sections" => {
                let k = kw(&["num_highlights"])?;
                NumberHighlightedSections {
                    num: k.int("num_highlights")?,
                }
            }
            "detectable_format:multiple_sections" => {
                let k = kw(&["section_spliter", "num_sections"])?;
                let spl = k.string("section_spliter")?;
                let spl = pystr::strip(&spl);
                MultipleSections {
                    splitter: k.regex("section_spliter", &format!(r"\s?{spl}\s?\d+\s?"))?,
                    num: k.int("num_sections")?,
                }
            }
            "detectable_format:json_format" => {
                kw(&[])?;
                JsonFormat
            }
            "detectable_format:title" => {
                kw(&[])?;
                Title
            }
            "combination:two_responses" => {
                kw(&[])?;
                TwoResponses
            }
            "combination:repeat_prompt" => {
                let k = kw(&["prompt_to_repeat"])?;
                RepeatPrompt {
                    prompt_to_repeat: k.string("prompt_to_repeat")?,
                }
            }
            "startend:end_checker" => {
                let k = kw(&["end_phrase"])?;
                EndChecker {
                    end_phrase: pystr::lower(pystr::strip(&k.string("end_phrase")?)),
                }
            }
            "startend:quotation" => {
                kw(&[])?;
                Quotation
            }
            "change_case:capital_word_frequency" => {
                let k = kw(&["capital_frequency", "capital_relation"])?;
                CapitalWordFrequency {
                    frequency: k.int("capital_frequency")?,
                    relation: k.relation("capital_relation")?,
                }
            }
            "change_case:english_capital" => {
                kw(&[])?;
                EnglishCapital
            }
            "change_case:english_lowercase" => {
                kw(&[])?;
                EnglishLowercase
            }
            "punctuation:no_comma" => {
                kw(&[])?;
                NoComma
            }
            other => bail!(
                "unknown instruction id `{other}`; IFEval's are: {}",
                INSTRUCTION_IDS.join(", ")
            ),
        })
    }

    /// `check_following(value)` of the reference class.
    pub fn check(&self, value: &str) -> bool {
        use Instruction::*;
        match self {
            KeywordsExistence { keywords } => keywords.iter().all(|k| k.is_match(value)),
            KeywordsFrequency {
                keyword,
                frequency,
                relation,
            } => relation.holds(keyword.find_iter(value).count(), *frequency),
            ForbiddenWords { words } => !words.iter().any(|w| w.is_match(value)),
            LetterFrequency {
                letter,
                frequency,
                relation,
            } => {
                let n = pystr::lower(value).chars().filter(|c| c == letter).count();
                relation.holds(n, *frequency)
            }
            ResponseLanguage { language } => lang::is_language(value, language),
            NumberSentences { num, relation } => relation.holds(text::count_sentences(value), *num),
            NumberParagraphs { num } => check_paragraphs(value, *num),
            NumberWords { num, relation } => relation.holds(text::count_words(value), *num),
            NthParagraphFirstWord {
                num_paragraphs,
                nth_paragraph,
                first_word,
            } => check_nth_paragraph(value, *num_paragraphs, *nth_paragraph, first_word),
            NumberPlaceholders { num } => (re(r"\[.*?\]").find_iter(value).count() as i64) >= *num,
            Postscript { pattern } => pattern.is_match(&pystr::lower(value)),
            NumberBulletLists { num } => {
                let n = re(r"(?m)^\s*\*[^\*].*$").find_iter(value).count()
                    + re(r"(?m)^\s*-.*$").find_iter(value).count();
                n as i64 == *num
            }
            ConstrainedResponse => {
                let v = pystr::strip(value);
                CONSTRAINED_RESPONSE_OPTIONS.iter().any(|o| v.contains(o))
            }
            NumberHighlightedSections { num } => {
                let single = re(r"\*[^\n\*]*\*")
                    .find_iter(value)
                    .filter(|m| !pystr::strip(m.as_str().trim_matches('*')).is_empty())
                    .count();
                let double = re(r"\*\*[^\n\*]*\*\*")
                    .find_iter(value)
                    .filter(|m| {
                        let s = m.as_str();
                        let s = s.strip_prefix("**").unwrap_or(s);
                        let s = s.strip_suffix("**").unwrap_or(s);
                        !pystr::strip(s).is_empty()
                    })
                    .count();
                (single + double) as i64 >= *num
            }
            MultipleSections { splitter, num } => splitter.find_iter(value).count() as i64 >= *num,
            JsonFormat => check_json(value),
            Title => re(r"<<[^\n]+>>").find_iter(value).any(|m| {
                let t = m.as_str().trim_start_matches('<').trim_end_matches('>');
                !pystr::strip(t).is_empty()
            }),
            TwoResponses => check_two_responses(value),
            RepeatPrompt { prompt_to_repeat } => pystr::lower(pystr::strip(value))
                .starts_with(&pystr::lower(pystr::strip(prompt_to_repeat))),
            EndChecker { end_phrase } => {
                pystr::lower(pystr::strip(value).trim_matches('"')).ends_with(end_phrase.as_str())
            }
            Quotation => {
                let v = pystr::strip(value);
                v.chars().count() > 1 && v.starts_with('"') && v.ends_with('"')
            }
            CapitalWordFrequency {
                frequency,
                relation,
            } => {
                let n = text::word_tokenize(value)
                    .iter()
                    .filter(|w| pystr::is_upper(w))
                    .count();
                relation.holds(n, *frequency)
            }
            EnglishCapital => pystr::is_upper(value) && lang::is_language(value, "en"),
            EnglishLowercase => pystr::is_lower(value) && lang::is_language(value, "en"),
            NoComma => !value.contains(','),
        }
    }
}

/// A fixed regex, compiled once per pattern.
fn re(pattern: &'static str) -> &'static Regex {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static Regex>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(pattern)
        .or_insert_with(|| Box::leak(Box::new(Regex::new(pattern).expect("fixed regex"))))
}

/// `ParagraphChecker.check_following`.
fn check_paragraphs(value: &str, want: i64) -> bool {
    let parts: Vec<&str> = re(r"\s?\*\*\*\s?").split(value).collect();
    let mut n = parts.len() as i64;
    for (i, p) in parts.iter().enumerate() {
        if pystr::strip(p).is_empty() {
            if i == 0 || i == parts.len() - 1 {
                n -= 1;
            } else {
                return false;
            }
        }
    }
    n == want
}

/// `ParagraphFirstWordCheck.check_following`.
fn check_nth_paragraph(value: &str, want: i64, nth: i64, first_word: &str) -> bool {
    let paragraphs: Vec<&str> = value.split("\n\n").collect();
    let n = paragraphs
        .iter()
        .filter(|p| !pystr::strip(p).is_empty())
        .count() as i64;
    if nth > n {
        return false;
    }
    let paragraph = pystr::strip(paragraphs[(nth - 1) as usize]);
    if paragraph.is_empty() {
        return false;
    }
    let word = pystr::split_whitespace(paragraph).next().unwrap_or("");
    let word = word.trim_start_matches('\'').trim_start_matches('"');
    let mut got = String::new();
    for c in word.chars() {
        if matches!(c, '.' | ',' | '?' | '!' | '\'' | '"') {
            break;
        }
        got.extend(c.to_lowercase());
    }
    n == want && got == first_word
}

/// `JsonFormat.check_following`: fence prefixes removed one after another as the reference
/// chains `removeprefix`, then `json.loads`.
fn check_json(value: &str) -> bool {
    let mut v = pystr::strip(value);
    for p in ["```json", "```Json", "```JSON", "```"] {
        v = v.strip_prefix(p).unwrap_or(v);
    }
    v = v.strip_suffix("```").unwrap_or(v);
    let v = pystr::strip(v);
    serde_json::from_str::<serde::de::IgnoredAny>(v).is_ok()
}

/// `TwoResponsesChecker.check_following`.
fn check_two_responses(value: &str) -> bool {
    let parts: Vec<&str> = value.split("******").collect();
    let mut valid = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if pystr::strip(p).is_empty() {
            if i != 0 && i != parts.len() - 1 {
                return false;
            }
        } else {
            valid.push(*p);
        }
    }
    valid.len() == 2 && pystr::strip(valid[0]) != pystr::strip(valid[1])
}
