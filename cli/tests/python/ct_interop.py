"""The Python peers' view of one quantlab checkpoint, for cli/tests/interop_python.rs.

Usage: ct_interop.py CHECKPOINT REFERENCE_LOGITS_JSON OUT_DIR

Writes, each in its own folder (so a safetensors reader that opens a whole folder sees only it):

- OUT_DIR/ct/model.safetensors: compressed-tensors' model-free decompression
  (`CompressedTensorsDequantizer.validate`, the code behind its `convert_checkpoint` entrypoint)
  of every quantized Linear, `<module>.weight`, float32. compressed-tensors dequantizes in the
  dtype of `weight_scale` as stored (bf16 in our checkpoints), so these are bf16 values.
- OUT_DIR/hf/model.safetensors: what transformers runs after
  `AutoModelForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32)`: every quantized
  Linear's `<module>.weight` as decompressed by compressed-tensors on the first forward pass
  (float32 scales there), plus `logits.<case>`: last-position logits `[vocab]` float32 of each
  reference prompt (ids from REFERENCE_LOGITS_JSON, one unpadded sequence at a time).
- OUT_DIR/summary.json: package versions, the weight_scale dtype transformers loaded, counts.

Environment: QUANTLAB_INTEROP_THREADS, torch's intra-op thread count (default 1).

Exit status 3 with a message naming `just setup` when the pinned packages are missing.
"""

import json
import os
import sys

PINNED = {"compressed-tensors": "0.19.0", "transformers": "5.17.0"}


def die_setup(msg):
    print(f"ct_interop.py: {msg}; run `just setup` (its `venv` step installs "
          f"compressed-tensors=={PINNED['compressed-tensors']} and "
          f"transformers=={PINNED['transformers']} into .venv)", file=sys.stderr)
    sys.exit(3)


try:
    import torch
    import compressed_tensors
    import transformers
    from safetensors.torch import load_file, save_file
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )
    from compressed_tensors.quantization import QuantizationStatus
except ImportError as e:  # a missing package is a setup problem, not a test failure to debug
    die_setup(f"cannot import {e.name or e}")

for pkg, mod in (("compressed-tensors", compressed_tensors), ("transformers", transformers)):
    have = mod.__version__.split("+")[0]
    if have != PINNED[pkg]:
        die_setup(f"{pkg} {have} installed, the test is pinned to {PINNED[pkg]}")


def safetensors_files(ckpt):
    files = sorted(f for f in os.listdir(ckpt) if f.endswith(".safetensors"))
    if not files:
        sys.exit(f"ct_interop.py: no safetensors in {ckpt}")
    return [os.path.join(ckpt, f) for f in files]


def quantized_modules(tensors):
    """Modules that carry a weight scale: exactly the compressed Linears."""
    return sorted(n[: -len(".weight_scale")] for n in tensors if n.endswith(".weight_scale"))


def ct_model_free(ckpt):
    tensors = {}
    for f in safetensors_files(ckpt):
        tensors.update(load_file(f))
    modules = quantized_modules(tensors)
    scale_dtype = str(tensors[f"{modules[0]}.weight_scale"].dtype)
    # Model-free matching is by name only: with `targets: [Linear]` every 2-D `.weight` counts as
    # targeted, the embedding included (a model would know it is not a Linear), so the tied
    # embedding is named as not quantized, as the converter's `ignore` argument is meant for.
    # validate() = process() + a check that no quantization parameter was left undecompressed.
    dequantizer = CompressedTensorsDequantizer(
        ckpt, ignore=["model.embed_tokens"], dtype=torch.float32
    )
    out = dequantizer.validate(tensors)
    return {f"{m}.weight": out[f"{m}.weight"].contiguous() for m in modules}, scale_dtype


def hf_forward(ckpt, reference):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    model.eval()
    cases = json.load(open(reference))["cases"]
    out = {}
    with torch.no_grad():
        for i, case in enumerate(cases):
            ids = torch.tensor([case["ids"]], dtype=torch.long)
            logits = model(input_ids=ids).logits[0, -1]
            out[f"logits.{i}"] = logits.float().contiguous()
    # The first forward pass decompressed every quantized Linear in place.
    scale_dtypes = set()
    n = 0
    for name, module in model.named_modules():
        if getattr(module, "quantization_scheme", None) is None:
            continue
        status = getattr(module, "quantization_status", None)
        if status != QuantizationStatus.DECOMPRESSED:
            sys.exit(f"ct_interop.py: {name} is still {status} after a forward pass")
        w = module.weight
        if w.dtype != torch.float32:
            sys.exit(f"ct_interop.py: {name}.weight is {w.dtype} after decompression, not float32")
        out[f"{name}.weight"] = w.detach().contiguous()
        scale_dtypes.add(str(module.weight_scale.dtype))
        n += 1
    return out, n, sorted(scale_dtypes), model.config.quantization_config


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ckpt, reference, out_dir = sys.argv[1:]
    # The caller runs its side with the same intra-op thread count: matmul summation order can
    # depend on it, and the W8A8 logits are compared exactly (see interop_python.rs).
    torch.set_num_threads(int(os.environ.get("QUANTLAB_INTEROP_THREADS", "1")))
    for sub in ("ct", "hf"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)

    ct, stored_scale_dtype = ct_model_free(ckpt)
    save_file(ct, os.path.join(out_dir, "ct", "model.safetensors"))

    hf, n_hf, hf_scale_dtypes, _ = hf_forward(ckpt, reference)
    save_file(hf, os.path.join(out_dir, "hf", "model.safetensors"))

    summary = {
        "compressed_tensors": compressed_tensors.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "ct_modules": len(ct),
        "stored_weight_scale_dtype": stored_scale_dtype,
        "hf_modules": n_hf,
        "hf_weight_scale_dtypes": hf_scale_dtypes,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
