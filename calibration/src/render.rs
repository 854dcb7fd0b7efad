//! Turning one record into calibration text: a named text field, a `messages` chat list, or an
//! instruction/output pair in the Alpaca template (llm-compressor's `OpenPlatypusDataset`) or
//! the tokenizer's chat template.

use crate::records::Record;
use anyhow::{anyhow, bail, Result};
use quantlab_model::{Message, Tokenizer};
use serde_json::Value;

/// Alpaca prompt for a record with a non-empty `input` (llm-compressor's `prompt_input`); the
/// `output` is appended right after `### Response:\n`.
pub const ALPACA_PROMPT_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

/// Alpaca prompt for a record without `input` or with an empty one (llm-compressor's
/// `prompt_no_input`).
pub const ALPACA_PROMPT_NO_INPUT: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

/// How instruction/output pairs are rendered into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    /// The Alpaca template, as llm-compressor renders Open-Platypus (the paper's calibration
    /// text): [`ALPACA_PROMPT_INPUT`] or [`ALPACA_PROMPT_NO_INPUT`], then the output.
    #[default]
    Alpaca,
    /// The tokenizer's chat template over a user turn (the instruction, plus `"\n\n"` and the
    /// input when there is one) and an assistant turn (the output), no generation prompt; what
    /// `apply_chat_template(..., tokenize=False)` gives in transformers, default system prompt
    /// included when the template adds one.
    Chat,
}

impl Template {
    /// `alpaca` or `chat` (case-insensitive).
    pub fn parse(s: &str) -> Result<Template> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alpaca" => Ok(Template::Alpaca),
            "chat" => Ok(Template::Chat),
            _ => bail!("unknown calibration template `{s}` (accepted: alpaca | chat)"),
        }
    }
}

impl std::str::FromStr for Template {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Template> {
        Template::parse(s)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Template::Alpaca => "alpaca",
            Template::Chat => "chat",
        })
    }
}

/// Render an instruction (and optional input) plus optional output in the Alpaca template:
/// the prompt, then the output appended as is (no separator, no end-of-text token).
pub fn alpaca_text(instruction: &str, input: Option<&str>, output: Option<&str>) -> String {
    let mut text = match input.filter(|s| !s.is_empty()) {
        Some(input) => ALPACA_PROMPT_INPUT
            .replace("{instruction}", instruction)
            .replace("{input}", input),
        None => ALPACA_PROMPT_NO_INPUT.replace("{instruction}", instruction),
    };
    if let Some(o) = output {
        text.push_str(o);
    }
    text
}

/// A string field of `rec`: `Ok(None)` when absent or null, an error naming the record and
/// field when it is something else.
fn str_field<'a>(rec: &'a Record, field: &str) -> Result<Option<&'a str>> {
    match rec.value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => bail!(
            "{}: field `{field}` must be a string, got {}",
            rec.pos,
            short(other)
        ),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn fields_of(rec: &Record) -> String {
    let names: Vec<&str> = rec.value.keys().map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The calibration text of one record, by the first rule that applies:
/// 1. `text_field` given: that field, which must exist and be a string;
/// 2. a `messages` field: a list of `{role, content}` rendered with the chat template, no
///    generation prompt;
/// 3. an `instruction` field: with `input` and `output` (both optional) in `template`;
/// 4. a `text` field.
///
/// Errors name the record (`file:line`) and the field, or list the fields the record has.
pub fn render_record(
    rec: &Record,
    text_field: Option<&str>,
    template: Template,
    tokenizer: &Tokenizer,
) -> Result<String> {
    if let Some(f) = text_field {
        return match rec.value.get(f) {
            Some(Value::String(s)) => Ok(s.clone()),
            None => bail!(
                "{}: text field `{f}` (from --text-field) is missing; the record has fields: {}",
                rec.pos,
                fields_of(rec)
            ),
            Some(other) => bail!(
                "{}: text field `{f}` must be a string, got {}",
                rec.pos,
                short(other)
            ),
        };
    }
    if let Some(m) = rec.value.get("messages") {
        let messages = parse_messages(rec, m)?;
        return tokenizer
            .apply_chat_template(&messages, false)
            .map_err(|e| anyhow!("{}: field `messages`: {e}", rec.pos));
    }
    if let Some(instruction) = str_field(rec, "instruction")? {
        let input = str_field(rec, "input")?;
        let output = str_field(rec, "output")?;
        return match template {
            Template::Alpaca => Ok(alpaca_text(instruction, input, output)),
            Template::Chat => {
                let user = match input.filter(|s| !s.is_empty()) {
                    Some(i) => format!("{instruction}\n\n{i}"),
                    None => instruction.to_string(),
                };
                let mut messages = vec![Message {
                    role: "user".into(),
                    content: user,
                }];
                if let Some(o) = output {
                    messages.push(Message {
                        role: "assistant".into(),
                        content: o.to_string(),
                    });
                }
                tokenizer
                    .apply_chat_template(&messages, false)
                    .map_err(|e| anyhow!("{}: chat template: {e}", rec.pos))
            }
        };
    }
    if let Some(t) = str_field(rec, "text")? {
        return Ok(t.to_string());
    }
    bail!(
        "{}: no calibration text: expected a `text` field, a `messages` list, an \
         `instruction`/`output` pair, or --text-field naming the field to use; the record has \
         fields: {}",
        rec.pos,
        fields_of(rec)
    )
}

fn parse_messages(rec: &Record, m: &Value) -> Result<Vec<Message>> {
    let Value::Array(items) = m else {
        bail!(
            "{}: field `messages` must be a list of {{role, content}} objects, got {}",
            rec.pos,
            short(m)
        );
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let role = item.get("role").and_then(Value::as_str);
            let content = item.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(role), Some(content)) => Ok(Message {
                    role: role.to_string(),
                    content: content.to_string(),
                }),
                _ => bail!(
                    "{}: field `messages[{i}]` must be an object with string `role` and \
                     `content`, got {}",
                    rec.pos,
                    short(item)
                ),
            }
        })
        .collect()
}
