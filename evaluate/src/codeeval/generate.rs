//! Solutions from a model, with EvalPlus's generation conventions (`evalplus/codegen.py`,
//! `evalplus/provider/utility.py`):
//! - chat models: one user turn asking for "a self-contained Python script ... in a markdown code
//!   block" around the problem's prompt, and the assistant turn prefilled with EvalPlus's response
//!   prefix and an opening ```` ```python ```` fence; generation stops at the closing fence or one
//!   of EvalPlus's stop strings; the solution is the generated code.
//! - models without a chat template: plain completion of the problem's prompt, stopping at
//!   EvalPlus's direct-completion stop strings; the solution is prompt + completion.
//!
//! Decoding: greedy (one sample per problem, pass@1), or `n` samples per problem drawn with
//! temperature + top-p ([`Decoding`]; EvalPlus samples with `top_p = 0.95`), each sample with its
//! own seed derived from the run's seed, the task id and the sample's index, so a sample does not
//! depend on the batch it was generated in, and a re-run reproduces it.

use anyhow::Result;

use super::{Problem, Sample, Suite};
use crate::backend::{Backend, ChatMessage, GenerateRequest};

/// EvalPlus's instruction prefix (codegen.py, default "instruct" prompt).
pub const INSTRUCTION_PREFIX: &str = "Please provide a self-contained Python script that solves the following problem in a markdown code block:";
/// EvalPlus's response prefix, which starts the prefilled assistant turn.
pub const RESPONSE_PREFIX: &str = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:";
/// Stop strings EvalPlus uses for every model (`provider/utility.py` `EOS`).
pub const STOPS: &[&str] = &[
    "<|endoftext|>",
    "<|endofmask|>",
    "</s>",
    "\nif __name__",
    "\ndef main(",
    "\nprint(",
];

/// The task text shown to the model: HumanEval's prompt (signature and docstring), MBPP+'s prompt
/// (description and one assert), or for original MBPP the description and its first test as a
/// docstring (EvalPlus's MBPP prompt shape).
pub fn task_prompt(suite: Suite, p: &Problem) -> String {
    match suite {
        Suite::Mbpp => format!(
            "\"\"\"\n{}\n{}\n\"\"\"\n",
            p.prompt.trim(),
            p.tests.first().map(String::as_str).unwrap_or("")
        ),
        _ => p.prompt.clone(),
    }
}

/// How solutions are decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Samples per problem (1 for greedy).
    pub n_samples: usize,
    /// `None`: greedy. Otherwise temperature (> 0) and top-p (in (0, 1]).
    pub sampling: Option<(f64, f64)>,
    /// The run's seed; sample `j` of task `t` uses [`sample_seed`]`(seed, t, j)`.
    pub seed: u64,
}

impl Decoding {
    /// One greedy sample per problem.
    pub const GREEDY: Decoding = Decoding {
        n_samples: 1,
        sampling: None,
        seed: 0,
    };

    /// Check the combination: at least one sample; more than one only when sampling (greedy
    /// samples would all be the same); temperature > 0 and top-p in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if self.n_samples == 0 {
            anyhow::bail!("--samples must be at least 1");
        }
        match self.sampling {
            None if self.n_samples > 1 => anyhow::bail!(
                "--samples {} with greedy decoding would give {} identical samples; pass \
                 --temperature T (> 0; EvalPlus uses e.g. 0.8 for pass@10)",
                self.n_samples,
                self.n_samples
            ),
            Some((temperature, top_p)) => quantlab_model::Sampling {
                temperature,
                top_p,
                seed: 0,
            }
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}")),
            None => Ok(()),
        }
    }

    /// The settings recorded in the run.
    pub fn describe(&self) -> serde_json::Value {
        match self.sampling {
            None => serde_json::json!({ "decoding": "greedy", "n_samples": self.n_samples }),
            Some((t, p)) => serde_json::json!({
                "decoding": "sampling",
                "n_samples": self.n_samples,
                "temperature": t,
                "top_p": p,
                "seed": self.seed,
            }),
        }
    }
}

/// The seed of sample `j` of `task_id` in a run seeded `seed`: the first 8 bytes (little-endian)
/// of sha256(`"{seed}/{task_id}/{j}"`).
pub fn sample_seed(seed: u64, task_id: &str, j: usize) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{seed}/{task_id}/{j}").as_bytes());
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// The request for one problem and whether it is a chat prompt (`false`: plain completion).
pub fn request(
    backend: &dyn Backend,
    suite: Suite,
    p: &Problem,
    max_new: usize,
) -> (GenerateRequest, bool) {
    let task = task_prompt(suite, p);
    let user = format!("{INSTRUCTION_PREFIX}\n```\n{}\n```\n", task.trim());
    match backend.apply_chat_template(&[ChatMessage::user(user)]) {
        Ok(ctx) => {
            let mut until: Vec<String> = STOPS.iter().map(|s| s.to_string()).collect();
            until.push("\n```\n".into());
            until.push("```".into());
            (
                GenerateRequest {
                    context: format!("{ctx}{RESPONSE_PREFIX}\n```python\n"),
                    until,
                    max_gen_toks: max_new,
                    sampling: None,
                },
                true,
            )
        }
        Err(_) => {
            let mut until: Vec<String> = STOPS.iter().map(|s| s.to_string()).collect();
            let extra: &[&str] = match suite {
                Suite::HumanEval | Suite::HumanEvalPlus => {
                    &["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "]
                }
                Suite::Mbpp | Suite::MbppPlus => &["\n\"\"\"", "\nassert"],
            };
            until.extend(extra.iter().map(|s| s.to_string()));
            (
                GenerateRequest {
                    context: task,
                    until,
                    max_gen_toks: max_new,
                    sampling: None,
                },
                false,
            )
        }
    }
}

/// The code in a reply: the first fenced block's body when the reply holds a complete fence pair,
/// else the text before any closing fence (the prefilled-fence case).
pub fn extract_code(reply: &str) -> String {
    if let Some(start) = reply.find("```") {
        let after = &reply[start + 3..];
        if let Some(end) = after.find("```") {
            let body = &after[..end];
            // Drop the language tag line.
            let body = match body.find('\n') {
                Some(nl) if !body[..nl].contains(' ') => &body[nl + 1..],
                _ => body,
            };
            if body.trim().len() > reply[..start].trim().len() {
                return body.trim_end().to_string() + "\n";
            }
        }
        return reply[..start].trim_end().to_string() + "\n";
    }
    reply.trim_end().to_string() + "\n"
}

/// One generated sample with what produced it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The sample to judge.
    pub sample: Sample,
    /// The prompt sent.
    pub context: String,
    /// The raw generation.
    pub generation: String,
}

/// Solutions for `problems`: `decoding.n_samples` per problem, problem after problem (the samples
/// of one problem together, in index order). `progress(n)` as [`Backend::generate_until`].
pub fn generate(
    backend: &mut dyn Backend,
    suite: Suite,
    problems: &[Problem],
    max_new: usize,
    decoding: Decoding,
    progress: &dyn Fn(usize),
) -> Result<Vec<Generated>> {
    decoding.validate()?;
    let n = decoding.n_samples;
    let mut reqs = Vec::with_capacity(problems.len() * n);
    let mut chat = Vec::with_capacity(problems.len() * n);
    let mut owners = Vec::with_capacity(problems.len() * n);
    for p in problems {
        let (r, c) = request(backend, suite, p, max_new);
        for j in 0..n {
            let mut r = r.clone();
            r.sampling = decoding
                .sampling
                .map(|(temperature, top_p)| quantlab_model::Sampling {
                    temperature,
                    top_p,
                    seed: sample_seed(decoding.seed, &p.task_id, j),
                });
            reqs.push(r);
            chat.push(c);
            owners.push(p);
        }
    }
    let gens = backend.generate_until(&reqs, progress)?;
    Ok(owners
        .into_iter()
        .zip(reqs)
        .zip(chat)
        .zip(gens)
        .map(|(((p, r), c), g)| {
            let solution = if c {
                extract_code(&g)
            } else {
                format!("{}{}", task_prompt(suite, p), g)
            };
            Generated {
                sample: Sample {
                    task_id: p.task_id.clone(),
                    solution,
                },
                context: r.context,
                generation: g,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_taken_from_fences() {
        assert_eq!(
            extract_code("def f():\n    return 1\n```\nmore"),
            "def f():\n    return 1\n"
        );
        assert_eq!(
            extract_code("Here:\n```python\ndef g():\n    pass\n```\nbye"),
            "def g():\n    pass\n"
        );
        assert_eq!(extract_code("x = 1"), "x = 1\n");
    }

    #[test]
    fn sample_seeds_are_stable_and_distinct() {
        // sha256("0/HumanEval/0/0")[..8] little-endian, computed with Python's hashlib.
        assert_eq!(sample_seed(0, "HumanEval/0", 0), 7408117599704801633);
        let a = sample_seed(0, "HumanEval/0", 1);
        assert_ne!(a, sample_seed(0, "HumanEval/0", 0));
        assert_ne!(a, sample_seed(1, "HumanEval/0", 1));
        assert_ne!(a, sample_seed(0, "HumanEval/1", 1));
    }

    #[test]
    fn greedy_refuses_several_samples_and_bad_ranges() {
        let d = Decoding {
            n_samples: 10,
            ..Decoding::GREEDY
        };
        assert!(d.validate().unwrap_err().to_string().contains("identical"));
        for (t, p) in [
            (0.0, 0.95),
            (-1.0, 0.95),
            (0.8, 0.0),
            (0.8, 1.5),
            (f64::NAN, 0.9),
        ] {
            let d = Decoding {
                n_samples: 2,
                sampling: Some((t, p)),
                seed: 0,
            };
            assert!(d.validate().is_err(), "{t} {p}");
        }
        let ok = Decoding {
            n_samples: 10,
            sampling: Some((0.8, 0.95)),
            seed: 3,
        };
        ok.validate().unwrap();
    }
}
