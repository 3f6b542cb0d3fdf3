"""Hold nexus against transformers on the device machine (which has both
transformers and a GPU; CPU float32 is used here for an exact comparison):

  1. for each MODEL_DIR/nexus_logits.safetensors (written by dump_logits),
     load MODEL_DIR with AutoModelForCausalLM, run the same ids, and print
     the relative error ||nexus - hf|| / ||hf|| of the logits;
  2. with --greedy TEACHER_DIR OUT.json: greedy-generate 100 tokens from the
     prompt "The history of the city" (no special tokens) and write the
     fixture tests/golden_generate.sh compares nexus against.

  python3 compare.py MODEL_DIR [MODEL_DIR ...] [--greedy TEACHER_DIR OUT.json]
"""
import json, sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

args = sys.argv[1:]
greedy = None
if "--greedy" in args:
    i = args.index("--greedy")
    greedy = (args[i + 1], args[i + 2])
    args = args[:i] + args[i + 3:]

worst = 0.0
for d in args:
    ref = load_file(d + "/nexus_logits.safetensors")
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        hf = m(ref["input_ids"].long()).logits.float()
    err = ((ref["logits"] - hf).norm() / hf.norm()).item()
    worst = max(worst, err)
    print(f"{d}: transformers {type(m).__name__} loaded; logits rel err nexus vs transformers = {err:.3e}")

if greedy:
    tdir, out = greedy
    tok = AutoTokenizer.from_pretrained(tdir)
    m = AutoModelForCausalLM.from_pretrained(tdir, torch_dtype=torch.float32).eval()
    prompt = "The history of the city"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        g = m.generate(torch.tensor([ids]), max_new_tokens=100, do_sample=False)
    gen = g[0, len(ids):].tolist()
    json.dump({"prompt": prompt, "prompt_ids": ids, "generated_ids": gen,
               "source": "transformers greedy generate, float32, CPU"}, open(out, "w"))
    print(f"greedy: {len(gen)} tokens written to {out}")

sys.exit(0 if worst <= 1e-4 else 1)
