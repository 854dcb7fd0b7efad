#!/bin/bash
# The paper's §4.3 similarity setup and HumanEval pass@1 on the default model, on the GPU:
# BF16 (imported from the GGUF) and W4A16 g64 (GPTQ, 512 x 2048 AlpacaEval tokens), greedy answers
# to the 500 Arena-Hard-Auto v0.1 prompts (1024 new tokens) stored as similarity runs, then
# HumanEval and HumanEval+ (greedy, EvalPlus prompt, judged in the sandbox).
# Staging (CPU machine): strip + gzip target/release/quantlab to .dev/quantlab.gz; copy
# DATA/{arena_hard,alpaca_eval,humaneval,humanevalplus} to .dev/data; bring the GGUF as the parts of
# ../shared/tools/split-for-device.sh (they land in ~/stage). On the device: bash bench/gpu_similarity.sh
# with carry [".dev", <last GGUF part>]. The answers are scored on the CPU machine, where the MiniLM
# encoder is: quantlab eval --suite similarity --samples W4_GEN --baseline BF16_RUN.
set -uo pipefail
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export QUANTLAB_CACHE=/tmp/qcache
Q=/tmp/quantlab; D=$PWD/.dev/data; R=/tmp/runs
gunzip -c .dev/quantlab.gz > $Q && chmod +x $Q
cat ~/stage/part.* > /tmp/smollm2.gguf && sha256sum /tmp/smollm2.gguf
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
step() { local t0=$(date +%s.%N); "$@" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -${TAIL:-12}; echo "WALL_S $(python3 -c "print(round($(date +%s.%N)-$t0,1))") :: $*"; }
step $Q import-gguf /tmp/smollm2.gguf --out /tmp/bf16
TAIL=4 step $Q compress /tmp/bf16 w4a16 --group-size 64 --calibration alpaca-eval --samples 512 --seq-len 2048 --data-dir $D --device cuda --out /tmp/w4a16
for m in bf16 w4a16; do
  step $Q eval /tmp/$m --suite similarity --data-dir $D --device cuda --batch-size ${SIM_BATCH:-512} --out $R/$m-similarity
  tar -czf $OUT/runs-similarity.tar.gz -C $R .
done
[ "${SIM_ONLY:-0}" = 1 ] && exit 0
for m in bf16 w4a16; do
  for s in humaneval humanevalplus; do
    step $Q eval /tmp/$m --suite $s --data-dir $D --device cuda --out $R/$m-$s
  done
done
cp /tmp/w4a16/quantlab_recipe.json $OUT/w4a16_quantlab_recipe.json
tar -czf $OUT/runs.tar.gz -C $R .
ls -la $OUT
