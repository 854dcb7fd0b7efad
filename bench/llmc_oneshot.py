"""Peer side of `just bench-compress-cpu` / `bench-compress`: llm-compressor `oneshot` on the same
model, scheme and calibration token ids as quantlab, timed the same way (wall time of oneshot).

usage: llmc_oneshot.py MODEL_DIR SCHEME CALIB_JSON OUT_DIR [--layers N]
SCHEME: w4a16g64 (GPTQ int4 sym group 64, llm-compressor's default observer) | w8a8_int8
(SmoothQuant 0.8 + GPTQ W8A8) | w4a16 (GPTQ W4A16 preset, group 128).
Prints one line `PEER_ONESHOT_S <seconds>`; peak CUDA memory as `PEER_PEAK_GIB <GiB>` on GPU.
"""
import json
import sys
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import GPTQModifier
from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

model_dir, scheme, calib_path, out_dir = sys.argv[1:5]
ids = json.load(open(calib_path))["input_ids"]
ds = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]})
if scheme == "w4a16g64":
    groups = {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                             "strategy": "group", "group_size": 64, "dynamic": False}}}
    recipe = GPTQModifier(config_groups=groups, ignore=["lm_head"])
elif scheme == "w4a16":
    recipe = GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"])
elif scheme == "w8a8_int8":
    recipe = [SmoothQuantModifier(smoothing_strength=0.8), GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])]
else:
    raise SystemExit(f"unknown scheme {scheme}")
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
t0 = time.time()
oneshot(model=model, recipe=recipe, dataset=ds, num_calibration_samples=len(ids),
        max_seq_length=max(len(x) for x in ids), shuffle_calibration_samples=False)
print(f"PEER_ONESHOT_S {time.time() - t0:.1f}", flush=True)
if torch.cuda.is_available():
    print(f"PEER_PEAK_GIB {torch.cuda.max_memory_allocated() / 2**30:.2f}", flush=True)
