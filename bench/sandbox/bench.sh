#!/usr/bin/env bash
# `just bench-sandbox`: all 164 HumanEval+ canonical solutions, every base and plus input, judged by
# quantlab's sandbox and by EvalPlus in the same run, same data file, same number of workers.
# Both compute their ground truth (reference outputs and times) cold: EvalPlus gets a fresh
# XDG_CACHE_HOME. Prints both wall times, the ratio and whether the verdicts agree.
set -euo pipefail
py="$1"; ql="$2"; data="$3"; work="$4"
rm -rf "$work"; mkdir -p "$work/xdg"
gunzip -c "$data/humanevalplus/test.jsonl.gz" > "$work/HumanEvalPlus.jsonl"
"$py" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
with open(f"{work}/HumanEvalPlus.jsonl") as f, open(f"{work}/samples.jsonl", "w") as out:
    for line in f:
        p = json.loads(line)
        out.write(json.dumps({"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]}) + "\n")
PY
workers=$(nproc)
echo "workers: $workers; $("$py" -c 'import evalplus; print("evalplus", evalplus.__version__)')"
t0=$(date +%s.%N)
HUMANEVAL_OVERRIDE_PATH="$work/HumanEvalPlus.jsonl" XDG_CACHE_HOME="$work/xdg" \
    "$py" -m evalplus.evaluate --dataset humaneval --samples "$work/samples.jsonl" \
    --parallel "$workers" --i-just-wanna-run > "$work/evalplus.log" 2>&1 || { tail -20 "$work/evalplus.log"; exit 1; }
t1=$(date +%s.%N)
RAYON_NUM_THREADS="$workers" "$ql" eval --suite humanevalplus --samples "$work/samples.jsonl" \
    --data-dir "$data" --out "$work/quantlab-run" > "$work/quantlab.log" 2>&1 || { tail -20 "$work/quantlab.log"; exit 1; }
t2=$(date +%s.%N)
"$py" - "$work" "$t0" "$t1" "$t2" <<'PY'
import json, sys, glob
work, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
ep = json.load(open(glob.glob(f"{work}/samples*eval_results.json")[0]))["eval"]
ours = {}
for line in open(f"{work}/quantlab-run/samples_humanevalplus.jsonl"):
    v = json.loads(line)
    ours[v["task_id"]] = (v["base_status"], v["plus_status"])
agree = 0
diff = []
for tid, rs in ep.items():
    r = rs[0]
    e = (r["base_status"], r["plus_status"])
    o = ours.get(tid)
    same = o is not None and (e[0] == "pass") == (o[0] == "pass") and (e[1] == "pass") == (o[1] == "pass")
    agree += same
    if not same:
        diff.append((tid, e, o))
ep_pass = sum(rs[0]["base_status"] == "pass" and rs[0]["plus_status"] == "pass" for rs in ep.values())
ql_pass = sum(b == "pass" and p == "pass" for b, p in ours.values())
te, tq = t1 - t0, t2 - t1
print(f"evalplus : {te:7.1f} s  base+plus pass {ep_pass}/{len(ep)}")
print(f"quantlab : {tq:7.1f} s  base+plus pass {ql_pass}/{len(ours)}")
print(f"ratio quantlab/evalplus: {tq / te:.2f}   verdicts agree on {agree}/{len(ep)}")
for d in diff[:10]:
    print("  differs:", d)
PY
