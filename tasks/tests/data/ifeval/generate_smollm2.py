"""Greedy SmolLM2-135M-Instruct answers to IFEval prompts (every third doc, shortest prompts
first, chat template, 320 new tokens at most), on CPU with transformers 5.17 / torch 2.11, to
give make_fixture.py real model output. Writes /tmp/smol_responses.jsonl (key, response).
The model is the project's `models/smollm2-135m-instruct` (see models.yaml)."""
import gzip, json, sys, time, torch
from transformers import AutoTokenizer, AutoModelForCausalLM
torch.set_num_threads(1)
path = "/work/main/models/smollm2-135m-instruct"
tok = AutoTokenizer.from_pretrained(path)
tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
model.eval()
docs = [json.loads(l) for l in gzip.open("/work/shared/data/ifeval/train.jsonl.gz", "rt")]
def fmt(p):
    if tok.chat_template:
        return tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
    return f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
out = open("/tmp/smol_responses.jsonl", "w")
B = 16
t0 = time.time()
order = sorted(range(0, len(docs), 3), key=lambda i: len(docs[i]["prompt"]))
for s in range(0, len(order), B):
    idx = order[s:s + B]
    enc = tok([fmt(docs[i]["prompt"]) for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        gen = model.generate(**enc, max_new_tokens=320, do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    for j, i in enumerate(idx):
        text = tok.decode(gen[j, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out.write(json.dumps({"key": docs[i]["key"], "response": text}, ensure_ascii=False) + "\n")
    out.flush()
    print(s + len(idx), round(time.time() - t0), flush=True)
