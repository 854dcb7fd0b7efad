//! Word and sentence counting as IFEval's `instructions_util.py` does it (lm-eval's copy in
//! `lm_eval/tasks/ifeval/instructions_util.py`): `count_words` (NLTK `RegexpTokenizer(r"\w+")`),
//! `count_sentences` (NLTK Punkt, English model) and `nltk.word_tokenize` (Punkt sentences,
//! then `NLTKWordTokenizer`, the improved Treebank tokenizer of `nltk/tokenize/destructive.py`).

use super::punkt;
use fancy_regex::Regex as FRegex;
use std::sync::OnceLock;

/// `instructions_util.count_words`: the number of `\w+` runs of NLTK's
/// `RegexpTokenizer(r"\w+")`, `\w` as NLTK >= 3.10 reads it (see `punkt::is_word_char`).
pub fn count_words(text: &str) -> usize {
    let mut n = 0;
    let mut in_word = false;
    for c in text.chars() {
        let w = punkt::is_word_char(c);
        if w && !in_word {
            n += 1;
        }
        in_word = w;
    }
    n
}

/// `instructions_util.count_sentences`: the number of sentences NLTK's English Punkt model
/// finds (`PunktSentenceTokenizer.tokenize`, boundaries realigned).
pub fn count_sentences(text: &str) -> usize {
    punkt::english().span_tokenize(text).len()
}

/// `nltk.sent_tokenize(text)` with the English model.
pub fn sent_tokenize(text: &str) -> Vec<&str> {
    punkt::english().sentences(text)
}

type Rule = (FRegex, &'static str);

struct Treebank {
    starting_quotes: Vec<Rule>,
    punctuation: Vec<Rule>,
    parens: Rule,
    double_dashes: Rule,
    ending_quotes: Vec<Rule>,
    contractions: Vec<Rule>,
}

fn rules(list: &[(&str, &'static str)]) -> Vec<Rule> {
    list.iter()
        .map(|(re, rep)| (FRegex::new(re).expect("treebank regex"), *rep))
        .collect()
}

fn treebank() -> &'static Treebank {
    static TB: OnceLock<Treebank> = OnceLock::new();
    TB.get_or_init(|| Treebank {
        starting_quotes: rules(&[
            ("([«“‘„]|[`]+)", " ${1} "),
            (r#"^""#, "``"),
            ("(``)", " ${1} "),
            (r#"([ \(\[{<])("|'{2})"#, "${1} `` "),
            (r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", "${1} "),
        ]),
        punctuation: rules(&[
            (r#"([^\.])(\.)((?>[\]\)}>"'»”’ ]*))\s*$"#, "${1} ${2} ${3} "),
            (r"([:,])([^\d])", " ${1} ${2}"),
            (r"([:,])$", " ${1} "),
            (r"\.{2,}", " ${0} "),
            (r"[;@#$%&]", " ${0} "),
            ("[\u{2012}-\u{2015}]", " ${0} "),
            (r#"([^\.])(\.)([\]\)}>"']*)\s*$"#, "${1} ${2}${3} "),
            (r"[?!]", " ${0} "),
            (r"([^'])' ", "${1} ' "),
            (r"[*]", " ${0} "),
        ]),
        parens: (FRegex::new(r"[\]\[\(\)\{\}<>]").unwrap(), " ${0} "),
        double_dashes: (FRegex::new(r"--").unwrap(), " -- "),
        ending_quotes: rules(&[
            ("([»”’])", " ${1} "),
            (r"''", " '' "),
            (r#"""#, " '' "),
            (r"\s+", " "),
            (r"([^' ])('[sS]|'[mM]|'[dD]|') ", "${1} ${2} "),
            (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "${1} ${2} "),
        ]),
        contractions: rules(&[
            (r"(?i)\b(can)(not)\b", " ${1} ${2} "),
            (r"(?i)\b(d)('ye)\b", " ${1} ${2} "),
            (r"(?i)\b(gim)(me)\b", " ${1} ${2} "),
            (r"(?i)\b(gon)(na)\b", " ${1} ${2} "),
            (r"(?i)\b(got)(ta)\b", " ${1} ${2} "),
            (r"(?i)\b(lem)(me)\b", " ${1} ${2} "),
            (r"(?i)\b(more)('n)\b", " ${1} ${2} "),
            (r"(?i)\b(wan)(na)(?=\s)", " ${1} ${2} "),
            (r"(?i) ('t)(is)\b", " ${1} ${2} "),
            (r"(?i) ('t)(was)\b", " ${1} ${2} "),
        ]),
    })
}

fn apply(text: String, rule: &Rule) -> String {
    match rule.0.replace_all(&text, rule.1) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(s) => s,
    }
}

/// `NLTKWordTokenizer().tokenize(sentence)` (no parenthesis conversion).
pub fn treebank_tokenize(sentence: &str) -> Vec<String> {
    let tb = treebank();
    let mut text = sentence.to_string();
    for r in &tb.starting_quotes {
        text = apply(text, r);
    }
    for r in &tb.punctuation {
        text = apply(text, r);
    }
    text = apply(text, &tb.parens);
    text = apply(text, &tb.double_dashes);
    text = format!(" {text} ");
    for r in &tb.ending_quotes {
        text = apply(text, r);
    }
    for r in &tb.contractions {
        text = apply(text, r);
    }
    super::pystr::split_whitespace(&text)
        .map(str::to_string)
        .collect()
}

/// `nltk.word_tokenize(text)`: Punkt sentences, each through the Treebank tokenizer.
pub fn word_tokenize(text: &str) -> Vec<String> {
    sent_tokenize(text)
        .into_iter()
        .flat_map(treebank_tokenize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treebank_matches_nltk_examples() {
        assert_eq!(
            word_tokenize("I CAN'T do it. CANNOT. The U.S.A. is big."),
            [
                "I", "CA", "N'T", "do", "it", ".", "CAN", "NOT", ".", "The", "U.S.A.", "is", "big",
                "."
            ]
        );
        assert_eq!(
            treebank_tokenize(
                "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks."
            ),
            [
                "Good", "muffins", "cost", "$", "3.88", "in", "New", "York.", "Please", "buy",
                "me", "two", "of", "them.", "Thanks", "."
            ]
        );
        assert_eq!(count_words("Hello, world! it's 2 o'clock_now"), 7);
    }
}
