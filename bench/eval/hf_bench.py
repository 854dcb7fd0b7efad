"""The transformers side of `just bench-eval` (and the requests both sides read).

    hf_bench.py make REQUESTS [--score-rows 32 --score-len 1024 --continuation 32
                               --gen-rows 64 --prompt-len 128 --new-tokens 256 --vocab V --seed 0]
    hf_bench.py run MODEL REQUESTS [--batch1]

`make` writes seeded random token ids. `run` loads MODEL with transformers (bf16, SDPA attention,
CUDA) and measures, after one warm-up each:
- scoring as lm-evaluation-harness's HFLM does it: one forward of the whole batch, log_softmax
  over the vocabulary, the continuation's log-probs gathered and summed; tokens/s counts every
  input token;
- greedy generation of exactly new_tokens per prompt (min_new_tokens = max_new_tokens), left-padded
  batch; tokens/s counts generated tokens; with --batch1 also one prompt at a time (first 4 prompts).
Prints one JSON object.
"""
import argparse, json, time
import torch


def make(a):
    g = torch.Generator().manual_seed(a.seed)
    lo = 17
    score = torch.randint(lo, a.vocab, (a.score_rows, a.score_len), generator=g).tolist()
    gen = torch.randint(lo, a.vocab, (a.gen_rows, a.prompt_len), generator=g).tolist()
    json.dump({"score": score, "continuation": a.continuation, "generate": gen,
               "new_tokens": a.new_tokens}, open(a.requests, "w"))


def run(a):
    from transformers import AutoModelForCausalLM
    req = json.load(open(a.requests))
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                                 attn_implementation="sdpa").cuda().eval()
    out = {"transformers": __import__("transformers").__version__, "torch": torch.__version__}
    C = req["continuation"]

    def score():
        ids = torch.tensor(req["score"], device="cuda")
        inp = ids[:, :-1]
        with torch.no_grad():
            logp = torch.log_softmax(model(inp).logits, dim=-1)
        cont = ids[:, -C:]
        lp = logp[:, -C:, :].gather(-1, cont.unsqueeze(-1)).squeeze(-1).float().sum()
        return lp.item()

    if req["score"]:
        score()
        torch.cuda.synchronize(); t = time.perf_counter()
        s = score()
        torch.cuda.synchronize(); dt = time.perf_counter() - t
        n = sum(len(r) for r in req["score"])
        out.update(score_rows=len(req["score"]), score_tokens=n, score_s=dt,
                   score_tokens_per_s=n / dt, score_logprob_sum=s)

    def generate(rows, new):
        ids = torch.tensor(rows, device="cuda")
        mask = torch.ones_like(ids)
        with torch.no_grad():
            o = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new,
                               min_new_tokens=new, do_sample=False, pad_token_id=0)
        return (o.shape[1] - ids.shape[1]) * ids.shape[0]

    if req["generate"]:
        new = req["new_tokens"]
        generate(req["generate"], 8)
        torch.cuda.synchronize(); t = time.perf_counter()
        n = generate(req["generate"], new)
        torch.cuda.synchronize(); dt = time.perf_counter() - t
        out.update(generate_rows=len(req["generate"]), new_tokens=new, generate_s=dt,
                   generate_tokens_per_s=n / dt)
        if a.batch1:
            t = time.perf_counter(); n = 0
            for r in req["generate"][:4]:
                n += generate([r], new)
            torch.cuda.synchronize()
            out["generate_batch1_tokens_per_s"] = n / (time.perf_counter() - t)
    print(json.dumps(out))


p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd", required=True)
m = sub.add_parser("make")
m.add_argument("requests")
for k, v in [("score_rows", 32), ("score_len", 1024), ("continuation", 32), ("gen_rows", 64),
             ("prompt_len", 128), ("new_tokens", 256), ("vocab", 128256), ("seed", 0)]:
    m.add_argument("--" + k.replace("_", "-"), type=int, default=v)
r = sub.add_parser("run")
r.add_argument("model")
r.add_argument("requests")
r.add_argument("--batch1", action="store_true")
a = p.parse_args()
make(a) if a.cmd == "make" else run(a)
