#!/bin/bash
# Staging (on the CPU machine): strip + gzip target/release/quantlab to .dev/quantlab.gz, copy the default
# model's tokenizer.json/tokenizer_config.json/generation_config.json to .dev/tok/, download the peer's wheels
# (llmcompressor 0.14.0.1, compressed-tensors 0.19.0, datasets 5.2.0, dill, multiprocess, loguru, pydantic, pydantic_core,
# annotated-types, typing-inspection, auto-round) to .whl/ (both folders git-excluded), then on the device:
# `bash bench/gpu_compress.sh` with carry [".dev", ".whl"]. LAYERS=32 for the whole model, PEER=0 to skip llm-compressor.
# On the H200: synthetic Llama-3.1-8B shapes (8 layers), 128 x 2048 random tokens, w4a16:
# quantlab then llm-compressor 0.14.0.1, wall time, s/layer, peak GPU memory (nvidia-smi sampling).
set -uo pipefail
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
L=${LAYERS:-8}
# `just bench-compress` passes QUANTLAB_BIN (the local build) and TOK_DIR (the default model folder).
Q=${QUANTLAB_BIN:-/tmp/quantlab}; tok=${TOK_DIR:-.dev/tok}
[ -x "$Q" ] || { gunzip -c .dev/quantlab.gz > "$Q" && chmod +x "$Q"; }
python3 bench/make_synth_llama8b.py /tmp/synth $L "$tok" 2>&1 | tail -2
peak() { # run "$@" while sampling GPU memory; prints PEAK_MIB
  ( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> /tmp/mem.txt; sleep 0.2; done ) & sp=$!
  "$@"; rc=$?; kill $sp; sort -n /tmp/mem.txt | tail -1 | sed 's/^/PEAK_MIB /'; rm -f /tmp/mem.txt; return $rc; }
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits); echo "BASE_MIB $base"
# Ours twice: with llm-compressor's own W4A16 recipe (same algorithm as the peer: min-max, static
# act-order, static scales, layer-wise), then with the paper preset w4a16 (MSE clipping, scales at
# group boundaries, true-sequential).
t0=$(date +%s.%N)
peak "$Q" compress /tmp/synth --recipe bench/recipes/llmc_w4a16.yaml ${OURS_ARGS:-} --calibration tokens:/tmp/synth/calib.json --samples 128 --seq-len 2048 --device cuda --out /tmp/q-llmc --force 2>&1 | tr '\r' '\n' | grep -v "^\s*$" | tail -2
t1=$(date +%s.%N); echo "OURS_LLMC_RECIPE_WALL_S $(python3 -c "print(round($t1-$t0,1))")"; python3 -c "print($t1-$t0)" > /tmp/q-llmc.wall
python3 -c "
import json; r=json.load(open('/tmp/q-llmc/quantlab_recipe.json'))
for l in r['layers']: print('llmc-recipe layer', l['layer'], 's', round(l['seconds'],2), 'hess', round(l['hessian_s'],2), 'quant', round(l['quantize_s'],2), 'peak_gib', round(l.get('peak_allocated_gib') or 0,2))
" 2>&1 | tail -9
t0=$(date +%s.%N)
peak "$Q" compress /tmp/synth w4a16 ${OURS_ARGS:-} --calibration tokens:/tmp/synth/calib.json --samples 128 --seq-len 2048 --device cuda --out /tmp/q-w4 --force 2>&1 | tr '\r' '\n' | grep -v "^\s*$" | tail -4
t1=$(date +%s.%N); echo "OURS_WALL_S $(python3 -c "print(round($t1-$t0,1))")"; python3 -c "print($t1-$t0)" > /tmp/q-w4.wall
python3 -c "
import json; r=json.load(open('/tmp/q-w4/quantlab_recipe.json'))
for l in r['layers']: print('layer', l['layer'], 's', round(l['seconds'],2), 'hess', round(l['hessian_s'],2), 'quant', round(l['quantize_s'],2), 'peak_gib', round(l.get('peak_allocated_gib') or 0,2))
" 2>&1 | tail -9
cp /tmp/q-w4/quantlab_recipe.json $OUT/ 2>/dev/null
if [ "${PEER:-1}" = 1 ]; then
  # `just bench-compress` passes PEER_PY (.cache/bench-venv's python with llm-compressor); on the
  # device machine the carried wheels in .whl are installed instead.
  py=${PEER_PY:-}
  if [ -z "$py" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    py=python3
  fi
  peak "$py" bench/llmc_oneshot.py /tmp/synth w4a16 /tmp/synth/calib.json /tmp/p-w4 2>&1 | grep -E "PEER_|Error|error" | tail -5 | tee /tmp/peer.txt
  # The summary: wall-time ratios (llm-compressor / ours, > 1 is faster), our seconds a layer
  # (median over the layers after the first, which also captures the CUDA graphs) and our peak
  # allocated memory, against the issue's targets (<= 2.0 s a layer, < 6 GiB).
  python3 - "$L" <<'PY'
import json, re, statistics, sys
layers = int(sys.argv[1])
peer = dict(re.findall(r"^(PEER_\w+) ([\d.]+)$", open("/tmp/peer.txt").read(), re.M))
ps = float(peer.get("PEER_ONESHOT_S", "nan"))
print(f"SUMMARY {layers} layers: llm-compressor {ps:.1f} s ({ps / layers:.2f} s a layer), peak {peer.get('PEER_PEAK_GIB', '?')} GiB")
for tag, path in [("ours, llm-compressor's recipe", "/tmp/q-llmc"), ("ours, w4a16 preset", "/tmp/q-w4")]:
    try:
        r = json.load(open(f"{path}/quantlab_recipe.json"))
        wall = float(open(f"{path}.wall").read())
    except (OSError, ValueError):
        continue
    secs = [l["seconds"] for l in r["layers"]]
    med = statistics.median(secs[1:] or secs)
    peak = max(l.get("peak_allocated_gib") or 0 for l in r["layers"])
    ok = "meets" if med <= 2.0 and peak < 6.0 else "MISSES"
    print(f"SUMMARY {tag}: {wall:.1f} s wall, ratio {ps / wall:.2f}x; {med:.2f} s a layer, ratio {ps / layers / med:.2f}x; peak {peak:.2f} GiB ({ok} <= 2.0 s a layer and < 6 GiB)")
PY
fi
