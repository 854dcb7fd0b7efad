#!/usr/bin/env bash
# `just bench-compress-cpu`: quantlab's GPTQ beside llm-compressor 0.14.0.1 on this machine, same
# model (the imported bf16 SmolLM2-135M-Instruct), same scheme, same 128 x 512 calibration token ids
# (shared/reference/llmcompressor/calib_*.json), run one after the other in this script.
# Prints each tool's wall time and the ratio; our time is the whole `quantlab compress` process
# (load, calibration, GPTQ, writing), the peer's is its `oneshot` call alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py="$1"            # python with llmcompressor
shared="${QUANTLAB_SHARED:-$root/../shared}"
ref="$shared/reference/llmcompressor"
[ -f "$ref/calib_random_tokens.json" ] || { echo "missing $ref/calib_random_tokens.json (set QUANTLAB_SHARED)"; exit 1; }
model="$root/models/smollm2-135m-instruct"
out=$(mktemp -d "${TMPDIR:-/tmp}/bench-compress.XXXXXX")
trap 'rm -rf "$out"' EXIT
# Rows: our preset (w4a16 g64: MSE clipping, scales at group starts, true-sequential; w8a8-int8:
# SmoothQuant 0.8 + GPTQ, true-sequential), and for each also llm-compressor's own recipe file
# (static act-order, all Hessians from the unquantized layer; for w4a16 min-max and static
# scales: the same algorithm as the peer, which needs two forwards a layer where a preset needs
# one).
printf '%-12s %-34s %10s %10s %8s\n' scheme ours quantlab_s llmc_s ratio
for case in "w4a16g64 calib_random_tokens.json w4a16 --group-size 64" \
            "w4a16g64 calib_random_tokens.json --recipe $ref/w4a16g64_gptq_random/recipe.yaml" \
            "w8a8_int8 calib_alpacaeval_text.json w8a8-int8" \
            "w8a8_int8 calib_alpacaeval_text.json --recipe $ref/w8a8_int8/recipe.yaml"; do
    set -- $case
    peer_scheme=$1 calib=$2; shift 2
    label=$(echo "$*" | sed "s|$ref/||")
    tag=$peer_scheme-$(echo "$label" | tr -c 'a-z0-9' '_')
    t0=$(date +%s.%N)
    "$root/target/release/quantlab" compress "$model" "$@" --calibration "tokens:$ref/$calib" \
        --samples 128 --seq-len 512 --device cpu --out "$out/ours-$tag" --force > "$out/ours-$tag.log" 2>&1
    t1=$(date +%s.%N)
    ours_s=$(python3 -c "print(round($t1-$t0,1))")
    # The peer runs once per scheme.
    if [ ! -f "$out/peer-$peer_scheme.s" ]; then
        "$py" "$root/bench/llmc_oneshot.py" "$model" "$peer_scheme" "$ref/$calib" "$out/peer-$peer_scheme" 2> "$out/peer-$peer_scheme.log" \
            | awk '/PEER_ONESHOT_S/ {print $2}' > "$out/peer-$peer_scheme.s"
    fi
    peer_s=$(cat "$out/peer-$peer_scheme.s")
    [ -n "$peer_s" ] || { echo "llm-compressor failed:"; tail -20 "$out/peer-$peer_scheme.log"; exit 1; }
    printf '%-12s %-34s %10s %10s %7.2fx\n' "$peer_scheme" "$label" "$ours_s" "$peer_s" "$(python3 -c "print($peer_s/$ours_s)")"
    grep -h "GPTQ loss" "$out/ours-$tag.log" || true
done
