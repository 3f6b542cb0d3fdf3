"""prune_check.py — the device check of docs/BENCHMARKS.md ("Pruning"): each DIR holds a model directory as nexus wrote
it (nexus prune / nexus distill) and nexus_logits.safetensors (dump_logits:
nexus's f32 logits for the ids in it). transformers loads DIR in float32 on the
CPU, runs the same ids; prints the relative and max abs logit error, the
parameter count and, where DIR has sparsity_mask.safetensors, whether every
masked weight of the loaded model is zero. A model that fails to load is
reported and counts as a failure; the others still run.

  python3 prune_check.py DIR [DIR ...]   (exit 0 when every DIR is within 1e-5)"""
import sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
import os
worst = 0.0
for d in sys.argv[1:]:
    ref = load_file(d + "/nexus_logits.safetensors")
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    except Exception as e:  # report and go on with the next model
        print(f"{d}: transformers does not load it: {e}", flush=True)
        worst = 1.0
        continue
    with torch.no_grad():
        hf = m(ref["input_ids"].long()).logits.float()
    rel = ((ref["logits"] - hf).norm() / hf.norm()).item()
    mx = (ref["logits"] - hf).abs().max().item()
    worst = max(worst, rel)
    c = m.config
    n = sum(p.numel() for p in m.parameters())
    line = (f"{d}: {type(m).__name__} hidden {c.hidden_size} ffn {c.intermediate_size} heads {c.num_attention_heads}/"
            f"{c.num_key_value_heads} head_dim {c.head_dim} layers {c.num_hidden_layers}, {n} params; "
            f"logits rel err {rel:.3e}, max abs {mx:.3e} over {ref['logits'].numel()} values")
    mp = d + "/sparsity_mask.safetensors"
    if os.path.exists(mp):
        mask = load_file(mp)
        sd = m.state_dict()
        bad = sum(int((sd[k][~v.bool()] != 0).sum()) for k, v in mask.items())
        tot = sum(int((~v.bool()).sum()) for v in mask.values())
        line += f"; mask: {len(mask)} tensors, {tot} masked weights, {bad} of them nonzero in transformers"
        if bad: worst = 1.0
    print(line, flush=True)
print("worst rel err", f"{worst:.3e}", "PASS" if worst <= 1e-5 else "FAIL")
sys.exit(0 if worst <= 1e-5 else 1)
