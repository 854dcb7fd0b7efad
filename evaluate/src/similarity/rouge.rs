//! ROUGE-N and ROUGE-L (Lin, 2004) exactly as Google's `rouge-score` 0.1.2 computes them
//! (`rouge_scorer.RougeScorer([...], use_stemmer=...).score(target, prediction)`).
//!
//! Tokenizer (`rouge_score/tokenize.py`): lowercase the text (Unicode, as Python's `str.lower`),
//! replace every run of characters outside `[a-z0-9]` with a space, split on whitespace, stem
//! tokens longer than three characters with NLTK's Porter stemmer when asked
//! ([`super::porter::stem`]), drop tokens that are not `[a-z0-9]+`. So any non-ASCII letter that
//! does not lowercase to ASCII (é, ß, CJK, emoji) separates tokens and is otherwise ignored.
//!
//! Scores (`rouge_scorer.py`, `scoring.fmeasure`), all `f64`, computed in the same operation order
//! as the Python code so the values are bit-identical:
//!
//! - ROUGE-N: `overlap = Σ_ngram min(count_target, count_prediction)`,
//!   `precision = overlap / max(#prediction ngrams, 1)`, `recall = overlap / max(#target ngrams, 1)`;
//! - ROUGE-L: `lcs = LCS(target, prediction)` over tokens, `precision = lcs / #prediction`,
//!   `recall = lcs / #target`; all three are 0 when either side has no tokens;
//! - F-measure: `2 · P · R / (P + R)`, 0 when `P + R = 0`.
//!
//! Cost: tokenization is linear; ROUGE-L is `O(|target| · |prediction|)` time and
//! `O(|prediction|)` memory (one DP row), e.g. about 0.1 s for two 10k-token texts.

use super::porter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Precision, recall and F-measure of one ROUGE type for one pair, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RougeScore {
    /// Overlap / prediction (candidate) length.
    pub precision: f64,
    /// Overlap / target (reference) length.
    pub recall: f64,
    /// `2PR / (P + R)`, 0 when both are 0.
    pub fmeasure: f64,
}

/// `rouge_score.scoring.fmeasure`: harmonic mean, 0 when both are 0.
pub fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// Tokenize as `rouge_score.tokenize.tokenize(text, stemmer)`; `stem` selects NLTK's Porter
/// stemmer (applied to tokens longer than three characters).
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut push = |cur: &mut String| {
        if !cur.is_empty() {
            let t = std::mem::take(cur);
            let t = if stem && t.len() > 3 {
                porter::stem(&t)
            } else {
                t
            };
            // The final `^[a-z0-9]+$` filter (a stem is never empty, but be exact).
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                tokens.push(t);
            }
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            let b = c.to_ascii_lowercase();
            if b.is_ascii_lowercase() || b.is_ascii_digit() {
                cur.push(b);
            } else {
                push(&mut cur);
            }
        } else {
            // A few non-ASCII characters lowercase to ASCII letters (KELVIN SIGN -> k,
            // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + U+0307); keep exactly those letters.
            for l in c.to_lowercase() {
                if l.is_ascii_lowercase() || l.is_ascii_digit() {
                    cur.push(l);
                } else {
                    push(&mut cur);
                }
            }
        }
    }
    push(&mut cur);
    tokens
}

/// Map the tokens of both sides to small integer ids (shared vocabulary).
fn intern(a: &[String], b: &[String]) -> (Vec<u32>, Vec<u32>) {
    let mut vocab: HashMap<&str, u32> = HashMap::with_capacity(a.len() + b.len());
    let mut out_a = Vec::with_capacity(a.len());
    for t in a {
        let n = vocab.len() as u32;
        out_a.push(*vocab.entry(t.as_str()).or_insert(n));
    }
    let mut out_b = Vec::with_capacity(b.len());
    for t in b {
        let n = vocab.len() as u32;
        out_b.push(*vocab.entry(t.as_str()).or_insert(n));
    }
    (out_a, out_b)
}

/// Occurrences of every n-gram (`_create_ngrams`).
fn ngram_counts(xs: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut m = HashMap::new();
    if xs.len() >= n {
        for w in xs.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// ROUGE-N of token lists (`_score_ngrams(_create_ngrams(target, n), _create_ngrams(pred, n))`).
/// `n` must be at least 1 (rouge-score raises for `n <= 0`; we return zeros).
pub fn rouge_n(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    if n == 0 {
        return RougeScore::default();
    }
    let t = ngram_counts(target, n);
    let p = ngram_counts(prediction, n);
    let overlap: u64 = t
        .iter()
        .map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let n_t = target.len().saturating_sub(n - 1) as u64;
    let n_p = prediction.len().saturating_sub(n - 1) as u64;
    let precision = overlap as f64 / n_p.max(1) as f64;
    let recall = overlap as f64 / n_t.max(1) as f64;
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// Length of the longest common subsequence of two id sequences (one-row DP).
pub fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut row = vec![0u32; b.len() + 1];
    for &x in a {
        let mut diag = 0u32; // row[j-1] of the previous i
        for (j, &y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()] as usize
}

/// ROUGE-L of token lists (`_score_lcs(target, prediction)`).
pub fn rouge_l(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let (t, p) = intern(target, prediction);
    let lcs = lcs_len(&t, &p) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / target.len() as f64;
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// ROUGE-1 and ROUGE-L of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RougePair {
    /// ROUGE-1 (unigram overlap).
    pub rouge1: RougeScore,
    /// ROUGE-L (longest common subsequence).
    #[serde(rename = "rougeL")]
    pub rouge_l: RougeScore,
}

/// `RougeScorer(["rouge1", "rougeL"], use_stemmer=stem)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RougeScorer {
    /// Porter-stem tokens longer than three characters.
    pub stem: bool,
}

impl RougeScorer {
    /// `score(target, prediction)`: the reference (BF16 answer) is the target, the candidate
    /// (quantized answer) the prediction, as in the paper's comparison.
    pub fn score(&self, target: &str, prediction: &str) -> RougePair {
        let t = tokenize(target, self.stem);
        let p = tokenize(prediction, self.stem);
        RougePair {
            rouge1: rouge_n(&t, &p, 1),
            rouge_l: rouge_l(&t, &p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokenize(s, false)
    }

    #[test]
    fn tokenizer_follows_rouge_score() {
        assert_eq!(
            toks("Hello, World! it's 2024."),
            ["hello", "world", "it", "s", "2024"]
        );
        assert_eq!(toks("naïve café"), ["na", "ve", "caf"]);
        assert_eq!(toks("\u{212A}elvin"), ["kelvin"]);
        assert_eq!(toks("\u{130}stanbul"), ["i", "stanbul"]);
        assert!(toks("").is_empty());
        assert!(toks(" \n\t ").is_empty());
        assert!(toks("日本語 🙂").is_empty());
        assert_eq!(
            tokenize("The runners were running", true),
            ["the", "runner", "were", "run"]
        );
    }

    #[test]
    fn rouge_score_readme_example() {
        // rouge-score README: scorer.score('The quick brown fox jumps over the lazy dog',
        //                                  'The quick brown dog jumps on the log.')
        let s = RougeScorer { stem: true }.score(
            "The quick brown fox jumps over the lazy dog",
            "The quick brown dog jumps on the log.",
        );
        assert_eq!(s.rouge1.precision, 0.75);
        assert_eq!(s.rouge1.recall, 0.6666666666666666);
        assert_eq!(s.rouge1.fmeasure, 0.7058823529411765);
        assert_eq!(s.rouge_l.precision, 0.625);
        assert_eq!(s.rouge_l.recall, 0.5555555555555556);
        assert_eq!(s.rouge_l.fmeasure, 0.5882352941176471);
    }

    #[test]
    fn empty_sides_score_zero() {
        let z = RougeScore::default();
        let s = RougeScorer::default();
        assert_eq!(
            s.score("", ""),
            RougePair {
                rouge1: z,
                rouge_l: z
            }
        );
        assert_eq!(
            s.score("a b", "  "),
            RougePair {
                rouge1: z,
                rouge_l: z
            }
        );
        assert_eq!(
            s.score("...", "a"),
            RougePair {
                rouge1: z,
                rouge_l: z
            }
        );
    }

    #[test]
    fn lcs_small_cases() {
        assert_eq!(lcs_len(&[1, 2, 3, 4], &[2, 4]), 2);
        assert_eq!(lcs_len(&[1, 2, 3], &[3, 2, 1]), 1);
        assert_eq!(lcs_len(&[1, 1, 1], &[1, 1]), 2);
        assert_eq!(lcs_len(&[], &[1]), 0);
    }
}
