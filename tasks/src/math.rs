//! MATH Level 5 (Open LLM Leaderboard V2, lm-eval 0.4.9.1 `leaderboard_math_*_hard`): answer
//! extraction, the Minerva answer normalisation and the equivalence checks, as
//! `lm_eval/tasks/leaderboard/math/utils.py` defines them. The string work is ported to Rust here;
//! the symbolic steps (sympy's `parse_latex` + `simplify`, and the `math_verify` library) are not
//! reimplemented but run in Python, one batched subprocess per call of [`judge`], by the script
//! `tasks/python/math_equiv.py` (embedded in the binary).
//!
//! lm-eval 0.4.9.1 reports two metrics per document:
//! - `exact_match`: `math_verify.verify(parse(solution, [LatexExtractionConfig()]),
//!   parse(generation))` on the raw generation and the raw reference solution;
//! - `exact_match_original` (its `process_result_v1`, the leaderboard-era metric): the text after
//!   "Final Answer: The final answer is" ([`get_unnormalized_answer`]) and the reference's last
//!   `\boxed{..}` ([`gold_answer`]), both through [`normalize_final_answer`]; 0 when no answer was
//!   found, 1 when the stripped strings are equal, else sympy's `is_equiv` (parse both with
//!   `parse_latex`, `simplify(a - b) == 0`, any failure or a 1 s `SIGALRM` timeout counts 0).

use anyhow::{anyhow, bail, Context, Result};
use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::preprocess::py_strip;

/// lm-eval's `INVALID_ANSWER` marker (`utils.py`): no answer could be extracted.
pub const INVALID_ANSWER: &str = "[invalidanswer]";

/// Metric key of the `math_verify` verdict (lm-eval `exact_match`).
pub const KEY_MATH_VERIFY: &str = "exact_match";

/// Metric key of the normalised-answer verdict with sympy's `is_equiv` (lm-eval
/// `exact_match_original`).
pub const KEY_ORIGINAL: &str = "exact_match_original";

/// The Python script answering the symbolic checks (`tasks/python/math_equiv.py`).
pub const EQUIV_SCRIPT: &str = include_str!("../python/math_equiv.py");

/// Environment variable naming the Python interpreter for the symbolic checks (default `python3`
/// from `PATH`; `just` puts `.venv/bin` first there).
pub const PYTHON_ENV: &str = "QUANTLAB_MATH_PYTHON";

/// What the checks need in that interpreter (pinned as lm-eval 0.4.9.1's `math` extra resolves).
pub const PYTHON_REQUIREMENTS: &str =
    "sympy (>=1.12), antlr4-python3-runtime==4.11 and math-verify==0.9.0";

/// lm-eval `last_boxed_only_string`: the last `\boxed{..}` (or `\fbox{..}`) group of `s` with its
/// braces balanced, or, when `s` contains `"\boxed "` anywhere, `"\boxed "` followed by the text
/// after the last `"\boxed "` up to the next `$`. [`INVALID_ANSWER`] when there is none or its
/// braces never close.
pub fn last_boxed_only_string(s: &str) -> String {
    if s.contains("\\boxed ") {
        let tail = s.rsplit("\\boxed ").next().unwrap_or_default();
        return format!("\\boxed {}", tail.split('$').next().unwrap_or_default());
    }
    let idx = match s.rfind("\\boxed").or_else(|| s.rfind("\\fbox")) {
        Some(i) => i,
        None => return INVALID_ANSWER.to_string(),
    };
    // count braces from the command on; the group ends where the count drops back to 0 at a '}'
    let mut open: i64 = 0;
    for (i, b) in s.bytes().enumerate().skip(idx) {
        if b == b'{' {
            open += 1;
        }
        if b == b'}' {
            open -= 1;
            if open == 0 {
                return s[idx..=i].to_string();
            }
        }
    }
    INVALID_ANSWER.to_string()
}

/// lm-eval `remove_boxed`: the content of `\boxed{..}` (or what follows `"\boxed "`); any other
/// shape gives [`INVALID_ANSWER`].
pub fn remove_boxed(s: &str) -> String {
    if s.contains("\\boxed ") {
        return match s.strip_prefix("\\boxed ") {
            Some(rest) => rest.to_string(),
            None => INVALID_ANSWER.to_string(),
        };
    }
    match s.strip_prefix("\\boxed{").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => inner.to_string(),
        None => INVALID_ANSWER.to_string(),
    }
}

/// The reference answer of a MATH solution: [`remove_boxed`] of [`last_boxed_only_string`]
/// (lm-eval `process_docs`, the document's `answer`).
pub fn gold_answer(solution: &str) -> String {
    remove_boxed(&last_boxed_only_string(solution))
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in MATH regex"))
}

/// lm-eval `get_unnormalized_answer`: with `"I hope it is correct."` appended to the generation,
/// the first `Final Answer: The final answer is(.*?). I hope it is correct.` on one line (each
/// `.` any character but a newline), group 1 stripped; [`INVALID_ANSWER`] when there is none.
pub fn get_unnormalized_answer(generation: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let text = format!("{generation}I hope it is correct.");
    match re(
        &RE,
        r"Final Answer: The final answer is(.*?). I hope it is correct.",
    )
    .captures(&text)
    {
        Some(c) => py_strip(&c[1]).to_string(),
        None => INVALID_ANSWER.to_string(),
    }
}

/// lm-eval `SUBSTITUTIONS` (applied in order with `str.replace`).
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
];

/// lm-eval `REMOVED_EXPRESSIONS` (each removed everywhere, in order).
const REMOVED_EXPRESSIONS: &[&str] = &[
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    "\"",
    "\\dots",
];

/// Python `str.isdigit` of a whole string: non-empty, every character a decimal digit (any
/// script: Unicode `Nd` as Rust's `is_numeric` sees it, less the vulgar fractions and Roman
/// numerals Python rejects) or a superscript/subscript digit.
fn py_isdigit(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_digit()
                || matches!(c, '¹' | '²' | '³' | '⁰' | '⁴'..='⁹' | '₀'..='₉')
                || (!c.is_ascii()
                    && c.is_numeric()
                    && !matches!(c, '¼'..='¾' | '⅐'..='↋' | '〇' | '〡'..='〩'))
        })
}

/// lm-eval `normalize_final_answer` (Minerva, Lewkowycz et al. 2022, appendix D): the text after
/// the last `=`, [`SUBSTITUTIONS`] and [`REMOVED_EXPRESSIONS`], the first `$..$` math of each line,
/// the contents of `\text{}`, `\textbf{}`, `\overline{}`, `\boxed{}`, shorthand `\fracab` and
/// `\sqrta` braced, `$` removed, and `1,000`-style digit groups joined.
pub fn normalize_final_answer(answer: &str) -> String {
    static DOLLARS: OnceLock<Regex> = OnceLock::new();
    static TEXT: OnceLock<Regex> = OnceLock::new();
    static TEXTBF: OnceLock<Regex> = OnceLock::new();
    static OVERLINE: OnceLock<Regex> = OnceLock::new();
    static BOXED: OnceLock<Regex> = OnceLock::new();
    static FRAC: OnceLock<Regex> = OnceLock::new();
    static SQRT: OnceLock<Regex> = OnceLock::new();
    let mut s = answer.rsplit('=').next().unwrap_or_default().to_string();
    for (before, after) in SUBSTITUTIONS {
        s = s.replace(before, after);
    }
    for expr in REMOVED_EXPRESSIONS {
        s = s.replace(expr, "");
    }
    let group = |n: usize| move |c: &Captures| c[n].to_string();
    s = re(&DOLLARS, r"(.*?)(\$)(.*?)(\$)(.*)")
        .replace_all(&s, |c: &Captures| format!("${}$", &c[3]))
        .into_owned();
    s = re(&TEXT, r"(\\text\{)(.*?)(\})")
        .replace_all(&s, group(2))
        .into_owned();
    s = re(&TEXTBF, r"(\\textbf\{)(.*?)(\})")
        .replace_all(&s, group(2))
        .into_owned();
    s = re(&OVERLINE, r"(\\overline\{)(.*?)(\})")
        .replace_all(&s, group(2))
        .into_owned();
    s = re(&BOXED, r"(\\boxed\{)(.*)(\})")
        .replace_all(&s, group(2))
        .into_owned();
    s = re(&FRAC, r"(frac)([^{])(.)")
        .replace_all(&s, |c: &Captures| format!("frac{{{}}}{{{}}}", &c[2], &c[3]))
        .into_owned();
    s = re(&SQRT, r"(sqrt)([^{])")
        .replace_all(&s, |c: &Captures| format!("sqrt{{{}}}", &c[2]))
        .into_owned();
    s = s.replace('$', "");
    if py_isdigit(&s.replace(',', "")) {
        s = s.replace(',', "");
    }
    s
}

/// One document to judge: the model's raw generation and the reference solution.
#[derive(Debug, Clone)]
pub struct MathCase {
    /// The raw generation (lm-eval `results[0]`).
    pub generation: String,
    /// The document's full `solution` text.
    pub solution: String,
}

/// The verdicts of one document and the strings they were made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathVerdict {
    /// The extracted, normalised answer (`[invalidanswer]` when none).
    pub answer: String,
    /// The normalised reference answer.
    pub gold: String,
    /// `math_verify` said equal (lm-eval `exact_match`).
    pub math_verify: bool,
    /// Equal strings or sympy-equivalent (lm-eval `exact_match_original`).
    pub original: bool,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Query<'a> {
    IsEquiv { x1: &'a str, x2: &'a str },
    MathVerify { gold: &'a str, pred: &'a str },
}

#[derive(Deserialize)]
struct Answer {
    equal: bool,
}

/// The interpreter for [`judge`]: `$QUANTLAB_MATH_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Check, before any generation, that [`python`] runs the MATH checks (one trivial `is_equiv`
/// query through [`EQUIV_SCRIPT`]), so a missing package fails a run at its start, not after the
/// model has generated every answer. Errors as [`judge`].
pub fn check_python() -> Result<()> {
    let py = python();
    let answers = run_python(&py, &[Query::IsEquiv { x1: "1", x2: "1" }])
        .with_context(|| format!("checking the MATH checks' Python `{py}`"))?;
    if answers != [true] {
        bail!("`{py}`: the MATH checks' self-test (is_equiv(1, 1)) answered {answers:?}");
    }
    Ok(())
}

/// Judge documents as lm-eval 0.4.9.1's `process_results` does: the extraction and normalisation
/// here, then ONE Python subprocess ([`EQUIV_SCRIPT`]) for all `math_verify` checks and the sympy
/// `is_equiv` checks of the pairs whose stripped strings differ (equal strings are decided here).
/// Errors name the interpreter and what it must have ([`PYTHON_REQUIREMENTS`]) when it is missing
/// or lacks a package.
pub fn judge(cases: &[MathCase]) -> Result<Vec<MathVerdict>> {
    judge_with(&python(), cases)
}

/// [`judge`] with the given Python interpreter.
pub fn judge_with(py: &str, cases: &[MathCase]) -> Result<Vec<MathVerdict>> {
    let mut verdicts = Vec::with_capacity(cases.len());
    let mut queries = Vec::new();
    // per case: index of its math_verify query, and of its is_equiv query (if one is needed)
    let mut slots = Vec::with_capacity(cases.len());
    for c in cases {
        let answer = normalize_final_answer(&get_unnormalized_answer(&c.generation));
        let gold = normalize_final_answer(&gold_answer(&c.solution));
        verdicts.push(MathVerdict {
            answer,
            gold,
            math_verify: false,
            original: false,
        });
    }
    for (c, v) in cases.iter().zip(&verdicts) {
        let mv = queries.len();
        queries.push(Query::MathVerify {
            gold: &c.solution,
            pred: &c.generation,
        });
        let eq = if v.answer == INVALID_ANSWER || py_strip(&v.answer) == py_strip(&v.gold) {
            None
        } else {
            queries.push(Query::IsEquiv {
                x1: &v.answer,
                x2: &v.gold,
            });
            Some(queries.len() - 1)
        };
        slots.push((mv, eq));
    }
    let answers = run_python(py, &queries)?;
    for (v, (mv, eq)) in verdicts.iter_mut().zip(slots) {
        v.math_verify = answers[mv];
        v.original = match eq {
            Some(i) => answers[i],
            None => v.answer != INVALID_ANSWER,
        };
    }
    Ok(verdicts)
}

/// Send the queries to the script, one JSON object a line, and read one `{"equal": bool}` line
/// per query back.
fn run_python(py: &str, queries: &[Query]) -> Result<Vec<bool>> {
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let need = || {
        format!(
            "the MATH checks need a Python with {PYTHON_REQUIREMENTS} (`just venv` installs them \
             into .venv; or `pip install 'sympy>=1.12' antlr4-python3-runtime==4.11 \
             math-verify==0.9.0`), named by ${PYTHON_ENV} or found as `python3` on PATH"
        )
    };
    let mut child = Command::new(py)
        .arg("-c")
        .arg(EQUIV_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot start `{py}` ({e}): {}", need()))?;
    let mut input = Vec::new();
    for q in queries {
        serde_json::to_writer(&mut input, q)?;
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().expect("piped stdin");
    // write from a thread: the script answers while it reads, so both pipes must drain
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .with_context(|| format!("running `{py}` for the MATH checks"))?;
    let written = writer
        .join()
        .map_err(|_| anyhow!("MATH checks: writer thread panicked"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        bail!("`{py}`: {}: {}", stderr.trim(), need());
    }
    if !out.status.success() {
        bail!(
            "`{py}` running tasks/python/math_equiv.py failed ({}): {}",
            out.status,
            stderr.trim()
        );
    }
    written.with_context(|| format!("writing the MATH queries to `{py}`"))?;
    let text = String::from_utf8(out.stdout).context("MATH checks: output is not UTF-8")?;
    let answers = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Answer>(l)
                .map(|a| a.equal)
                .with_context(|| format!("MATH checks: bad answer line {i}: {l:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if answers.len() != queries.len() {
        bail!(
            "MATH checks: `{py}` answered {} of {} queries: {}",
            answers.len(),
            queries.len(),
            stderr.trim()
        );
    }
    Ok(answers)
}
