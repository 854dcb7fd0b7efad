"""Synthetic Llama-3.1-8B-shaped model (first N decoder layers), bf16 random weights, SmolLM2 tokenizer
(vocab 49152 unless a 4th argument gives the embedding rows, e.g. 128256 as Llama-3.1) so that
quantlab and llm-compressor read the same folder; plus 128 x 2048 random ids."""
import json, os, sys, torch
from safetensors.torch import save_file
out, layers, tok_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
vocab = int(sys.argv[4]) if len(sys.argv) > 4 else 49152
os.makedirs(out, exist_ok=True)
H, I, NH, KV, V = 4096, 14336, 32, 8, vocab
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
       "num_attention_heads": NH, "num_key_value_heads": KV, "num_hidden_layers": layers, "vocab_size": V,
       "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "hidden_act": "silu",
       "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192, "rope_type": "llama3"},
       "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
       "attention_bias": False, "mlp_bias": False, "head_dim": 128}
json.dump(cfg, open(f"{out}/config.json", "w"))
g = torch.Generator(device="cuda").manual_seed(0)
def r(*s, std=0.02):
    return (torch.randn(*s, generator=g, device="cuda") * std).to(torch.bfloat16).cpu()
sd = {"model.embed_tokens.weight": r(V, H), "model.norm.weight": torch.ones(H, dtype=torch.bfloat16), "lm_head.weight": r(V, H)}
for i in range(layers):
    p = f"model.layers.{i}"
    sd[f"{p}.input_layernorm.weight"] = torch.ones(H, dtype=torch.bfloat16)
    sd[f"{p}.post_attention_layernorm.weight"] = torch.ones(H, dtype=torch.bfloat16)
    sd[f"{p}.self_attn.q_proj.weight"] = r(NH * 128, H)
    sd[f"{p}.self_attn.k_proj.weight"] = r(KV * 128, H)
    sd[f"{p}.self_attn.v_proj.weight"] = r(KV * 128, H)
    sd[f"{p}.self_attn.o_proj.weight"] = r(H, NH * 128)
    sd[f"{p}.mlp.gate_proj.weight"] = r(I, H)
    sd[f"{p}.mlp.up_proj.weight"] = r(I, H)
    sd[f"{p}.mlp.down_proj.weight"] = r(H, I)
save_file(sd, f"{out}/model.safetensors", metadata={"format": "pt"})
for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
    if os.path.exists(f"{tok_dir}/{f}"):
        open(f"{out}/{f}", "wb").write(open(f"{tok_dir}/{f}", "rb").read())
ids = torch.randint(17, 49152, (128, 2048), generator=torch.Generator().manual_seed(0))
json.dump({"input_ids": ids.tolist()}, open(f"{out}/calib.json", "w"))
print("synthetic model written", out, flush=True)
