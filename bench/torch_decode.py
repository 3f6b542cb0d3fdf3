#!/usr/bin/env python3
"""transformers' side of nexus's GPU decode comparison: greedy decode with
a static KV cache (bf16 weights, as saved), batch 1 and batch 32, a
256-token prompt, 128 new tokens. Decode tokens/s = B·127 / (time of 128
new tokens − time of 1), so the prompt's prefill is left out, as nexus
benchmark's decode figure leaves it out. One JSON line per batch size.

  python3 bench/torch_decode.py MODEL_DIR [--batches 1,32]
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def timed(model, ids, new):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                   do_sample=False, cache_implementation="static", pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=128)
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
    torch.manual_seed(0)
    for B in map(int, a.batches.split(",")):
        ids = torch.randint(1, model.config.vocab_size, (B, a.prompt), device="cuda")
        timed(model, ids, 4)  # warm-up
        t1 = min(timed(model, ids, 1) for _ in range(2))
        tn = min(timed(model, ids, a.new) for _ in range(2))
        print(json.dumps({"batch": B, "decode_tokens_per_s": round(B * (a.new - 1) / (tn - t1), 1),
                          "prefill_s": round(t1, 4), "gpu": torch.cuda.get_device_name()}), flush=True)


if __name__ == "__main__":
    main()
