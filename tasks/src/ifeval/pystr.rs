//! Python `str` semantics the IFEval checkers rely on (`isspace`, `strip`, `isupper`,
//! `islower`, `split()`), so that a checker written against CPython reads the same here.
//!
//! Differences that remain: Rust's Unicode tables may be a newer Unicode version than the
//! CPython that ran the reference; the categories used are the same.

/// Python's `str.isspace` for one character: Unicode `White_Space` plus the ASCII
/// separators U+001C..U+001F that CPython also counts as whitespace.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` (no argument).
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.rstrip()` (no argument).
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `str.split()` (no argument): runs of whitespace separate, no empty pieces.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|p| !p.is_empty())
}

/// Titlecase letters (general category Lt), which make CPython's `isupper`/`islower` false.
fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}'
        | '\u{1F88}'..='\u{1F8F}'
        | '\u{1F98}'..='\u{1F9F}'
        | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

/// Python's `str.isupper()`: at least one cased character and no lowercase or titlecase one.
pub fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// Python's `str.islower()`: at least one cased character and no uppercase or titlecase one.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase(c) {
            return false;
        }
        if c.is_lowercase() {
            cased = true;
        }
    }
    cased
}

/// Python's `str.lower()` (full Unicode lowercase mapping, final sigma included).
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_predicates_follow_cpython() {
        assert!(is_upper("HELLO, WORLD 123"));
        assert!(!is_upper("123 !!"));
        assert!(!is_upper("HELLO world"));
        assert!(is_lower("hello, world 123"));
        assert!(!is_lower("hello World"));
        assert!(!is_lower("..."));
        assert!(!is_upper("\u{01C5}A"));
        assert_eq!(strip("\u{1c} a b \n"), "a b");
        assert_eq!(
            split_whitespace(" a  b\tc\n").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
