//! Solutions from a model, with EvalPlus's generation conventions (`evalplus/codegen.py`,
//! `evalplus/provider/utility.py`):
//! - chat models: one user turn asking for "a self-contained Python script ... in a markdown code
//!   block" around the problem's prompt, and the assistant turn prefilled with EvalPlus's response
//!   prefix and an opening ```` ```python ```` fence; generation stops at the closing fence or one
//!   of EvalPlus's stop strings; the solution is the generated code.
//! - models without a chat template: plain completion of the problem's prompt, stopping at
//!   EvalPlus's direct-completion stop strings; the solution is prompt + completion.
//!
//! Greedy decoding (pass@1), as the backend's `generate_until` does.

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

/// Greedy solutions for `problems` (one each). `progress(n)` as [`Backend::generate_until`].
pub fn generate(
    backend: &mut dyn Backend,
    suite: Suite,
    problems: &[Problem],
    max_new: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<Generated>> {
    let mut reqs = Vec::with_capacity(problems.len());
    let mut chat = Vec::with_capacity(problems.len());
    for p in problems {
        let (r, c) = request(backend, suite, p, max_new);
        reqs.push(r);
        chat.push(c);
    }
    let gens = backend.generate_until(&reqs, progress)?;
    Ok(problems
        .iter()
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
}
