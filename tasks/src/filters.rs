//! Filter pipelines applied to model generations before scoring (lm-eval `lm_eval/filters/`).
//!
//! A pipeline works on the list of responses of one document (lm-eval's `repeats`; one response
//! for greedy decoding) and ends with one answer string.

use anyhow::{Context, Result};
use regex::Regex;

use crate::preprocess::py_strip;
use crate::spec::{FilterPipeline, FilterStep};

/// A compiled filter step.
#[derive(Debug, Clone)]
pub enum CompiledStep {
    /// See [`FilterStep::Regex`].
    Regex {
        /// Compiled `regex_pattern`.
        regex: Regex,
        /// Match index, negative from the end.
        group_select: i64,
        /// Answer when nothing matches.
        fallback: String,
    },
    /// Keep the first response.
    TakeFirst,
    /// Python `str.strip()`.
    Strip,
    /// Python `str.lstrip()`.
    RemoveWhitespace,
}

/// A compiled, named pipeline.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Pipeline name (`strict-match`).
    pub name: String,
    /// Steps in order.
    pub steps: Vec<CompiledStep>,
}

impl Filter {
    /// Compile a pipeline from its spec.
    pub fn new(spec: &FilterPipeline) -> Result<Filter> {
        let steps = spec
            .filter
            .iter()
            .map(|s| {
                Ok(match s {
                    FilterStep::Regex {
                        regex_pattern,
                        group_select,
                        fallback,
                    } => CompiledStep::Regex {
                        regex: Regex::new(regex_pattern)
                            .with_context(|| format!("bad regex_pattern {regex_pattern:?}"))?,
                        group_select: *group_select,
                        fallback: fallback.clone(),
                    },
                    FilterStep::TakeFirst => CompiledStep::TakeFirst,
                    FilterStep::Strip => CompiledStep::Strip,
                    FilterStep::RemoveWhitespace => CompiledStep::RemoveWhitespace,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Filter {
            name: spec.name.clone(),
            steps,
        })
    }

    /// Run the pipeline on the responses of one document; the answer is the first remaining
    /// response (empty string if none remain).
    pub fn apply(&self, responses: &[String]) -> String {
        let mut cur: Vec<String> = responses.to_vec();
        for step in &self.steps {
            cur = match step {
                CompiledStep::Regex {
                    regex,
                    group_select,
                    fallback,
                } => cur
                    .iter()
                    .map(|r| regex_extract(regex, r, *group_select, fallback))
                    .collect(),
                CompiledStep::TakeFirst => cur.into_iter().take(1).collect(),
                CompiledStep::Strip => cur.iter().map(|r| py_strip(r).to_string()).collect(),
                CompiledStep::RemoveWhitespace => cur
                    .iter()
                    .map(|r| {
                        r.trim_start_matches(crate::preprocess::py_is_space)
                            .to_string()
                    })
                    .collect(),
            };
        }
        cur.into_iter().next().unwrap_or_default()
    }
}

/// lm-eval `RegexFilter.apply` for one response: the list of matches is Python's
/// `re.findall` (the whole match when the pattern has no group, group 1 when it has one, else
/// the tuple of groups, from which the first non-empty group is kept); `group_select` indexes that
/// list (negative from the end); the result is stripped. No match, an index out of range, or a
/// tuple of empty groups gives `fallback` (where Python would raise for the last two).
pub fn regex_extract(regex: &Regex, text: &str, group_select: i64, fallback: &str) -> String {
    let ngroups = regex.captures_len() - 1;
    let matches: Vec<Option<String>> = regex
        .captures_iter(text)
        .map(|caps| {
            if ngroups == 0 {
                Some(caps.get(0).map_or("", |m| m.as_str()).to_string())
            } else if ngroups == 1 {
                Some(caps.get(1).map_or("", |m| m.as_str()).to_string())
            } else {
                (1..=ngroups)
                    .filter_map(|g| caps.get(g).map(|m| m.as_str()))
                    .find(|s| !s.is_empty())
                    .map(str::to_string)
            }
        })
        .collect();
    if matches.is_empty() {
        return fallback.to_string();
    }
    let n = matches.len() as i64;
    let idx = if group_select < 0 {
        n + group_select
    } else {
        group_select
    };
    if idx < 0 || idx >= n {
        return fallback.to_string();
    }
    match &matches[idx as usize] {
        Some(s) => py_strip(s).to_string(),
        None => fallback.to_string(),
    }
}
