//! Per-document metrics and their aggregation, with lm-evaluation-harness semantics
//! (`lm_eval/api/task.py::ConfigurableTask.process_results`, `lm_eval/api/metrics.py`).

use anyhow::{Context, Result};
use regex::Regex;

/// Index of the first maximum, like `numpy.argmax` (a NaN counts as the maximum, the first NaN
/// wins). `None` for an empty slice.
pub fn argmax(xs: &[f64]) -> Option<usize> {
    if let Some(i) = xs.iter().position(|x| x.is_nan()) {
        return Some(i);
    }
    let mut best: Option<usize> = None;
    for (i, &x) in xs.iter().enumerate() {
        match best {
            None => best = Some(i),
            Some(b) if x > xs[b] => best = Some(i),
            _ => {}
        }
    }
    best
}

/// Result of scoring one multiple-choice document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChoiceScores {
    /// `argmax(lls)`.
    pub pred: usize,
    /// `argmax(lls / len(choice))`.
    pub pred_norm: usize,
    /// 1.0 if `pred == gold`.
    pub acc: f64,
    /// 1.0 if `pred_norm == gold`.
    pub acc_norm: f64,
}

/// lm-eval multiple-choice scoring: `acc` is `argmax(lls) == gold`; `acc_norm` is
/// `argmax(lls / completion_len) == gold` where `completion_len[i] = float(len(choices[i]))`, the
/// length in Unicode code points of the choice text as `doc_to_choice` gives it (without the
/// target delimiter).
pub fn score_choices(lls: &[f64], choices: &[String], gold: usize) -> ChoiceScores {
    assert_eq!(lls.len(), choices.len(), "one log-likelihood per choice");
    let normed: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(ll, c)| ll / c.chars().count() as f64)
        .collect();
    let pred = argmax(lls).unwrap_or(usize::MAX);
    let pred_norm = argmax(&normed).unwrap_or(usize::MAX);
    ChoiceScores {
        pred,
        pred_norm,
        acc: if pred == gold { 1.0 } else { 0.0 },
        acc_norm: if pred_norm == gold { 1.0 } else { 0.0 },
    }
}

/// lm-eval's `exact_match` (`exact_match_hf_evaluate`, ported from HF `evaluate`) for one
/// prediction/reference pair.
#[derive(Debug, Clone)]
pub struct ExactMatch {
    regexes: Vec<Regex>,
    ignore_case: bool,
    ignore_punctuation: bool,
}

impl ExactMatch {
    /// Compile the options.
    pub fn new(
        regexes_to_ignore: &[String],
        ignore_case: bool,
        ignore_punctuation: bool,
    ) -> Result<ExactMatch> {
        let regexes = regexes_to_ignore
            .iter()
            .map(|r| Regex::new(r).with_context(|| format!("bad regex {r:?}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(ExactMatch {
            regexes,
            ignore_case,
            ignore_punctuation,
        })
    }

    /// The normal form both sides are compared in: each regex in order replaced by "" (Python
    /// `re.sub`), then lower-cased if `ignore_case`, then `string.punctuation` removed if
    /// `ignore_punctuation`.
    pub fn normalize(&self, s: &str) -> String {
        let mut t = s.to_string();
        for r in &self.regexes {
            t = r.replace_all(&t, "").into_owned();
        }
        if self.ignore_case {
            t = t.to_lowercase();
        }
        if self.ignore_punctuation {
            t.retain(|c| !c.is_ascii_punctuation());
        }
        t
    }

    /// 1.0 when the normal forms are equal, else 0.0.
    pub fn score(&self, prediction: &str, reference: &str) -> f64 {
        if self.normalize(prediction) == self.normalize(reference) {
            1.0
        } else {
            0.0
        }
    }
}

/// lm-eval `process_results_mc2` (`tasks/truthfulqa/utils.py`): the choices before the first
/// `0` label are true; `p = exp(ll)`, each divided by `sum(p_true) + sum(p_false)`, and the true
/// shares summed (in that order, as numpy and Python's `sum` do).
pub fn mc2(lls: &[f64], labels: &[i64]) -> f64 {
    let split = labels.iter().position(|&l| l == 0).unwrap_or(labels.len());
    let p: Vec<f64> = lls.iter().map(|l| l.exp()).collect();
    let den = py_sum(&p[..split]) + py_sum(&p[split..]);
    py_sum(&p[..split].iter().map(|x| x / den).collect::<Vec<_>>())
}

/// Python's built-in `sum()` of floats as in CPython <= 3.11, which produced the lm-eval
/// reference figures: a plain left-to-right running sum. (CPython >= 3.12 compensates the sum;
/// results then differ in the last bits of the stderr.)
pub fn py_sum(xs: &[f64]) -> f64 {
    let mut s = 0.0f64;
    for &x in xs {
        s += x;
    }
    s
}

/// lm-eval `mean`: `sum(arr) / len(arr)`. NaN for an empty slice.
pub fn mean(xs: &[f64]) -> f64 {
    py_sum(xs) / xs.len() as f64
}

/// lm-eval `sample_stddev`: `sqrt(sum((x - mean)^2) / (n - 1))`.
pub fn sample_stddev(xs: &[f64]) -> f64 {
    let mu = mean(xs);
    let sq: Vec<f64> = xs.iter().map(|x| (x - mu).powi(2)).collect();
    (py_sum(&sq) / (xs.len() as f64 - 1.0)).sqrt()
}

/// lm-eval `mean_stderr`: `sample_stddev(arr) / sqrt(len(arr))`. lm-eval reports "N/A" below two
/// documents; we return 0.0 there so the value stays a number.
pub fn mean_stderr(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    sample_stddev(xs) / (xs.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_first_max_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[-1.0, f64::NAN, 5.0, f64::NAN]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), Some(0));
    }

    #[test]
    fn acc_norm_divides_by_characters_of_the_choice() {
        // lls: -10 for "ab" (-5/char) and -12 for "abcdé" (-2.4/char; 5 code points, 6 bytes)
        let choices = vec!["ab".to_string(), "abcdé".to_string()];
        let s = score_choices(&[-10.0, -12.0], &choices, 1);
        assert_eq!((s.pred, s.pred_norm, s.acc, s.acc_norm), (0, 1, 0.0, 1.0));
    }

    #[test]
    fn stderr_matches_lm_eval() {
        // 113 ones in 300 docs: lm-eval acc 0.37666666666666665, stderr 0.028022261151265607
        let xs: Vec<f64> = (0..300).map(|i| if i < 113 { 1.0 } else { 0.0 }).collect();
        assert_eq!(mean(&xs), 0.37666666666666665);
        // (the last bits depend on the order of the documents; tests/lmeval_fidelity.rs checks the
        // exact value in lm-eval's order)
        assert!((mean_stderr(&xs) - 0.028022261151265607).abs() < 1e-16);
        assert_eq!(mean_stderr(&[1.0]), 0.0);
    }

    #[test]
    fn mc2_is_lm_evals() {
        // numpy/lm-eval process_results_mc2 on lls [-1, -2, -3, -0.5], labels [1, 1, 0, 0]
        let v = mc2(&[-1.0, -2.0, -3.0, -0.5], &[1, 1, 0, 0]);
        assert!((v - 0.4339807163896718).abs() < 1e-15, "{v}");
    }

    #[test]
    fn exact_match_options() {
        let em = ExactMatch::new(&[",".into(), r"\$".into()], true, false).unwrap();
        assert_eq!(em.score("$1,000", "1000"), 1.0);
        assert_eq!(em.score("ABC", "abc"), 1.0);
        assert_eq!(em.score("1000.", "1000"), 0.0);
        let em = ExactMatch::new(&[], false, true).unwrap();
        assert_eq!(em.score("a.b!", "ab"), 1.0);
        assert_eq!(em.score("A", "a"), 0.0);
    }
}
