#!/bin/bash
# HumanEval pass@1 and pass@10 of the default model on the GPU (issue 5): BF16 (imported from the
# GGUF) and W4A16 g64 (GPTQ, 512 x 2048 AlpacaEval tokens), 10 samples per problem at temperature
# 0.8 / top-p 0.95 (EvalPlus's sampling), seed 0, EvalPlus prompt, judged in the sandbox there.
# Staging as bench/gpu_similarity.sh (binary in .dev, data in .dev/data, GGUF parts in ~/stage).
set -uo pipefail
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export QUANTLAB_CACHE=/tmp/qcache
Q=/tmp/quantlab; D=$PWD/.dev/data; R=/tmp/runs
[ -x $Q ] || { gunzip -c .dev/quantlab.gz > $Q && chmod +x $Q; }
[ -f /tmp/smollm2.gguf ] || cat ~/stage/part.* > /tmp/smollm2.gguf
step() { local t0=$(date +%s.%N); "$@" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -${TAIL:-12}; echo "WALL_S $(python3 -c "print(round($(date +%s.%N)-$t0,1))") :: $*"; }
[ -d /tmp/bf16 ] || TAIL=2 step $Q import-gguf /tmp/smollm2.gguf --out /tmp/bf16
[ -d /tmp/w4a16 ] || TAIL=2 step $Q compress /tmp/bf16 w4a16 --group-size 64 --calibration alpaca-eval --samples 512 --seq-len 2048 --data-dir $D --device cuda --out /tmp/w4a16
for m in bf16 w4a16; do
  TAIL=6 step $Q eval /tmp/$m --suite humaneval --samples 10 --temperature 0.8 --seed 0 --data-dir $D --device cuda --batch-size 1024 --out $R/$m-humaneval-n10
done
TAIL=12 step $Q report $R/bf16-humaneval-n10 $R/w4a16-humaneval-n10 --out $R/report-n10
tar -czf $OUT/runs-passk.tar.gz -C $R .
