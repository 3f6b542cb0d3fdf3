"""transformers_logits.py — the transformers side of the export check.

Loads a Hugging Face directory written by `nexus export --format
safetensors` with transformers (AutoModelForCausalLM, float32, eager
attention), checks that its tokenizer gives the ids nexus gave, runs the
same ids and writes the logits as float32 for comparison with nexus's
(tests/device/logits_dump.c writes ids.bin and logits.bin):

    python3 transformers_logits.py MODEL_DIR DUMP_DIR data.jsonl OUT_DIR T

With --compare it instead compares OUT_DIR's logits with DUMP_DIR's and
prints the errors. """
import json
import sys

import numpy as np


def compare(dump, out):
    ref = np.fromfile(f"{dump}/logits.bin", dtype=np.float32).astype(np.float64)
    for dev in ("cpu", "cuda"):
        try:
            got = np.fromfile(f"{out}/logits_{dev}.bin", dtype=np.float32).astype(np.float64)
        except FileNotFoundError:
            continue
        d = got - ref
        print(f"{dev}: {ref.size} logits, max |diff| {np.abs(d).max():.3g} (max |logit| {np.abs(ref).max():.3g}), "
              f"relative L2 {np.sqrt((d * d).sum() / (ref * ref).sum()):.3g}, "
              f"max |diff|/max|logit| {np.abs(d).max() / np.abs(ref).max():.3g}")


def main():
    if sys.argv[1] == "--compare":
        return compare(sys.argv[2], sys.argv[3])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, dump, data, out = sys.argv[1:5]
    ids = np.fromfile(f"{dump}/ids.bin", dtype=np.int32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    T = int(sys.argv[5])
    ids = ids.reshape(-1, T)
    # the tokenizer written from the GGUF metadata gives nexus's ids
    same = 0
    with open(data) as f:
        texts = [json.loads(l)["text"] for l in f]
    k = 0
    for t in texts:
        enc = tok(t, add_special_tokens=False)["input_ids"]
        if len(enc) < T:
            continue
        same += list(enc[:T]) == ids[k].tolist()
        k += 1
        if k == len(ids):
            break
    print(f"tokenizer: {same}/{len(ids)} documents with nexus's ids")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").to(dev)
        m.eval()
        with torch.no_grad():
            lg = torch.cat([m(torch.tensor(ids[i:i + 1], dtype=torch.long, device=dev)).logits[0] for i in range(len(ids))])
        lg.float().cpu().numpy().astype(np.float32).tofile(f"{out}/logits_{dev}.bin")
        print(dev, "logits", tuple(lg.shape), "dtype of weights", next(m.parameters()).dtype)
    compare(dump, out)


if __name__ == "__main__":
    main()
