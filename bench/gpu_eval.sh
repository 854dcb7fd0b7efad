#!/bin/bash
# `just bench-eval` on the GPU machine (issue 4): synthetic Llama-3.1-8B (32 layers, vocab 128256,
# random bf16 weights), the same seeded token requests for both sides: 32 x 1024-token
# log-likelihood requests (32-token continuations) and 64 prompts x 128 tokens generating 256 new
# tokens greedily. quantlab (`quantlab bench`) then transformers (bench/eval/hf_bench.py, as
# lm-eval's HFLM scores), one after the other; prints both reports and the ratios.
# Staging (CPU machine): strip + gzip target/release/quantlab to .dev/quantlab.gz and copy the
# default model's tokenizer files to .dev/tok; carry [".dev"].
set -uo pipefail
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
out=${OUT:-/tmp/bench-eval}; mkdir -p "$out"
# `just bench-eval` passes QUANTLAB_BIN (the local build) and TOK_DIR (the default model folder).
Q=${QUANTLAB_BIN:-/tmp/quantlab}; tok=${TOK_DIR:-.dev/tok}
[ -x "$Q" ] || { gunzip -c .dev/quantlab.gz > "$Q" && chmod +x "$Q"; }
[ -f /tmp/synth8b/model.safetensors ] || python3 bench/make_synth_llama8b.py /tmp/synth8b 32 "$tok" 128256 2>&1 | tail -1
python3 bench/eval/hf_bench.py make /tmp/bench-req.json
"$Q" bench /tmp/synth8b --requests /tmp/bench-req.json --device cuda > "$out/quantlab.json" 2> "$out/quantlab.err" || tail -5 "$out/quantlab.err"
python3 bench/eval/hf_bench.py run /tmp/synth8b /tmp/bench-req.json --batch1 > "$out/transformers.json" 2> "$out/transformers.err" || tail -5 "$out/transformers.err"
python3 - "$out" <<'PY'
import json, sys
o = json.load(open(sys.argv[1] + "/quantlab.json")); p = json.load(open(sys.argv[1] + "/transformers.json"))
print(f"transformers {p['transformers']} torch {p['torch']}")
print(f"scoring    tokens/s: quantlab {o['score_tokens_per_s']:9.0f}  transformers {p['score_tokens_per_s']:9.0f}  ratio {o['score_tokens_per_s']/p['score_tokens_per_s']:.2f}  (target >= 1.2)")
print(f"           logprob sums: quantlab {o['score_logprob_sum']:.1f}  transformers {p['score_logprob_sum']:.1f}")
print(f"generation tokens/s: quantlab {o['generate_tokens_per_s']:9.0f}  transformers {p['generate_tokens_per_s']:9.0f}  ratio {o['generate_tokens_per_s']/p['generate_tokens_per_s']:.2f}  (target >= 5)")
print(f"           transformers batch 1: {p.get('generate_batch1_tokens_per_s', 0):.1f} tokens/s")
PY
