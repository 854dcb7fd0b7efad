//! Build a Hugging Face `tokenizers` byte-level BPE tokenizer from GGUF tokenizer metadata.
//!
//! Keys read (GGUF spec, "Tokenizer" section; written by llama.cpp `convert_hf_to_gguf.py`):
//! `tokenizer.ggml.model` (must be `gpt2`, i.e. byte-level BPE), `tokenizer.ggml.tokens`
//! (id -> token string, already in byte-level alphabet), `tokenizer.ggml.merges` (`"a b"`
//! strings, rank order), `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control,
//! 4 user-defined, 5 unused, 6 byte) and `tokenizer.ggml.pre` (the pre-tokenizer name that
//! llama.cpp derived from the original `tokenizer.json`).
//!
//! Control tokens become special added tokens and user-defined tokens plain added tokens, both
//! matched verbatim (`normalized: false`), with their GGUF ids. The pre-tokenizer is the one the
//! original Hugging Face `tokenizer.json` of that family uses:
//!
//! | `pre` | normalizer | pre-tokenizer |
//! | --- | --- | --- |
//! | `smollm` | none | Sequence[Digits(individual), ByteLevel(regex)] |
//! | `gpt2`, `gpt-2` | none | ByteLevel(regex) |
//! | `llama-bpe`, `llama3` | none | Sequence[Split(llama-3 regex, isolated), ByteLevel(no regex)] |
//! | `qwen2` | NFC | Sequence[Split(qwen2 regex, isolated), ByteLevel(no regex)] |
//!
//! Decoder ByteLevel; post-processor ByteLevel(trim_offsets=false), followed by a template that
//! adds BOS/EOS when `tokenizer.ggml.add_bos_token` / `add_eos_token` are true.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::sequence::Sequence as PostSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, PostProcessorWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// Llama 3's split regex (its `tokenizer.json`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex (its `tokenizer.json`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF `token_type` of a control token.
pub const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF `token_type` of a user-defined token.
pub const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Inputs for [`build_tokenizer`], already read from the GGUF metadata.
pub struct TokenizerSpec<'a> {
    /// `tokenizer.ggml.model`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre` (`None` when absent: treated as `gpt2`).
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`, index = id.
    pub tokens: &'a [&'a str],
    /// `tokenizer.ggml.token_type`, same length as `tokens` (empty: all normal).
    pub token_types: &'a [i64],
    /// `tokenizer.ggml.merges`.
    pub merges: &'a [&'a str],
    /// BOS id and whether to add it to every encoding.
    pub bos: Option<(u32, bool)>,
    /// EOS id and whether to add it to every encoding.
    pub eos: Option<(u32, bool)>,
}

/// Build the tokenizer; errors are short reasons naming the metadata key or token at fault.
pub fn build_tokenizer(spec: &TokenizerSpec<'_>) -> Result<Tokenizer, String> {
    if spec.model != "gpt2" {
        return Err(format!(
            "metadata key 'tokenizer.ggml.model' is '{}': only 'gpt2' (byte-level BPE) is supported",
            spec.model
        ));
    }
    if !spec.token_types.is_empty() && spec.token_types.len() != spec.tokens.len() {
        return Err(format!(
            "metadata key 'tokenizer.ggml.token_type' has {} entries but there are {} tokens",
            spec.token_types.len(),
            spec.tokens.len()
        ));
    }

    let mut vocab = Vocab::default();
    for (id, tok) in spec.tokens.iter().enumerate() {
        if vocab.contains_key(*tok) {
            tracing::warn!(
                id,
                token = *tok,
                "duplicate token string in GGUF vocab; first id kept"
            );
            continue;
        }
        vocab.insert((*tok).to_string(), id as u32);
    }
    let mut merges = Vec::with_capacity(spec.merges.len());
    for (i, m) in spec.merges.iter().enumerate() {
        let (a, b) = m.split_once(' ').ok_or_else(|| {
            format!("metadata key 'tokenizer.ggml.merges' element {i} ('{m}') has no space")
        })?;
        merges.push((a.to_string(), b.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("metadata key 'tokenizer.ggml.merges': {e}"))?;

    let pre = spec.pre.unwrap_or("gpt2");
    let split = |regex: &str| -> Result<PreTokenizerWrapper, String> {
        let s = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| format!("pre-tokenizer '{pre}' regex: {e}"))?;
        Ok(s.into())
    };
    let no_regex: PreTokenizerWrapper = ByteLevel::new(false, true, false).into();
    let (normalizer, pre_tokenizer): (Option<NFC>, PreTokenizerWrapper) = match pre {
        "smollm" => (
            None,
            Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
        ),
        "gpt2" | "gpt-2" => (None, ByteLevel::new(false, true, true).into()),
        "llama-bpe" | "llama3" => (
            None,
            Sequence::new(vec![split(LLAMA3_REGEX)?, no_regex]).into(),
        ),
        "qwen2" => (
            Some(NFC),
            Sequence::new(vec![split(QWEN2_REGEX)?, no_regex]).into(),
        ),
        other => {
            return Err(format!(
                "metadata key 'tokenizer.ggml.pre': unsupported pre-tokenizer '{other}' \
                 (supported: smollm, gpt2, llama-bpe, qwen2)"
            ))
        }
    };

    let mut tk = Tokenizer::new(bpe);
    tk.with_normalizer(normalizer);
    tk.with_pre_tokenizer(Some(pre_tokenizer));
    tk.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    tk.with_post_processor(Some(post_processor(spec)?));

    let mut special = Vec::new();
    let mut added = Vec::new();
    for (id, &ty) in spec.token_types.iter().enumerate() {
        let content = spec.tokens[id];
        match ty {
            TOKEN_TYPE_CONTROL => special.push(AddedToken::from(content, true).normalized(false)),
            TOKEN_TYPE_USER_DEFINED => {
                added.push(AddedToken::from(content, false).normalized(false))
            }
            _ => {}
        }
    }
    tk.add_special_tokens(&special);
    tk.add_tokens(&added);
    // Added tokens must keep their GGUF ids (they are all in the BPE vocab, so they do).
    for t in special.iter().chain(&added) {
        let id = tk.token_to_id(&t.content);
        let want = spec.tokens.iter().position(|x| *x == t.content);
        if id.map(|i| i as usize) != want {
            return Err(format!(
                "added token '{}' got id {id:?}, expected {want:?}",
                t.content
            ));
        }
    }
    Ok(tk)
}

fn post_processor(spec: &TokenizerSpec<'_>) -> Result<PostProcessorWrapper, String> {
    let byte_level: PostProcessorWrapper = ByteLevel::new(false, false, true).into();
    let token = |id: u32, key: &str| -> Result<(String, u32), String> {
        spec.tokens
            .get(id as usize)
            .map(|s| (s.to_string(), id))
            .ok_or_else(|| format!("metadata key '{key}' = {id} is not a token id"))
    };
    let bos = match spec.bos {
        Some((id, true)) => Some(token(id, "tokenizer.ggml.bos_token_id")?),
        _ => None,
    };
    let eos = match spec.eos {
        Some((id, true)) => Some(token(id, "tokenizer.ggml.eos_token_id")?),
        _ => None,
    };
    if bos.is_none() && eos.is_none() {
        return Ok(byte_level);
    }
    // Same shape as Llama 3's tokenizer.json: "<bos> $A:0 [<eos>]", pair adds "<bos>:1 $B:1 [<eos>:1]".
    let piece = |seq: &str, type_id: u32| -> String {
        let mut parts = Vec::new();
        if let Some((t, _)) = &bos {
            parts.push(format!("{t}:{type_id}"));
        }
        parts.push(format!("${seq}:{type_id}"));
        if let Some((t, _)) = &eos {
            parts.push(format!("{t}:{type_id}"));
        }
        parts.join(" ")
    };
    let single = piece("A", 0);
    let pair = format!("{single} {}", piece("B", 1));
    let mut specials: Vec<(String, u32)> = bos.into_iter().chain(eos).collect();
    specials.dedup();
    let template = TemplateProcessing::builder()
        .try_single(single.as_str())
        .and_then(|b| b.try_pair(pair.as_str()))
        .map_err(|e| format!("post-processor template '{pair}': {e}"))?
        .special_tokens(specials)
        .build()
        .map_err(|e| format!("post-processor template '{pair}': {e}"))?;
    Ok(PostSequence::new(vec![byte_level, template.into()]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(pre: &'a str, tokens: &'a [&'a str], types: &'a [i64]) -> TokenizerSpec<'a> {
        TokenizerSpec {
            model: "gpt2",
            pre: Some(pre),
            tokens,
            token_types: types,
            merges: &["a b"],
            bos: Some((4, true)),
            eos: Some((5, false)),
        }
    }

    #[test]
    fn every_supported_pre_tokenizer_builds_and_adds_bos() {
        let tokens = ["a", "b", "ab", "Ġ", "<s>", "</s>", "1"];
        let types = [1, 1, 1, 1, 3, 3, 1];
        for pre in ["smollm", "gpt2", "llama-bpe", "qwen2"] {
            let tk = build_tokenizer(&spec(pre, &tokens, &types)).unwrap();
            let enc = tk.encode("abab</s>", true).unwrap();
            assert_eq!(enc.get_ids(), &[4, 2, 2, 5], "{pre}");
            let enc = tk.encode("ab", false).unwrap();
            assert_eq!(enc.get_ids(), &[2], "{pre}");
        }
    }

    #[test]
    fn unsupported_inputs_are_errors() {
        let tokens = ["a", "b", "ab", "Ġ", "<s>", "</s>"];
        let types = [1, 1, 1, 1, 3, 3];
        let e = build_tokenizer(&spec("falcon", &tokens, &types)).unwrap_err();
        assert!(e.contains("unsupported pre-tokenizer 'falcon'"), "{e}");
        let mut s = spec("smollm", &tokens, &types);
        s.model = "llama";
        assert!(build_tokenizer(&s).unwrap_err().contains("'llama'"));
        let mut s = spec("smollm", &tokens, &types);
        s.merges = &["a c"];
        assert!(build_tokenizer(&s).unwrap_err().contains("merges"));
        let mut s = spec("smollm", &tokens, &types);
        s.token_types = &[1, 1];
        assert!(build_tokenizer(&s).unwrap_err().contains("token_type"));
    }
}
