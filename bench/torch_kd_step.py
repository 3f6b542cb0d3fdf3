#!/usr/bin/env python3
"""The PyTorch side of nexus's GPU speed comparison (issue: CUDA backend).

One knowledge-distillation training step as a careful PyTorch user writes
it: teacher forward under no_grad, student forward and backward, KD loss
(forward KL at temperature T, weight alpha, plus CE), global-norm clip,
fused AdamW; bf16 autocast; eager and torch.compile. Prints tokens/s and
model FLOPs utilisation for each, as one JSON line per case, so that
nexus's figure from the same GPU in the same call can be set beside it.

  python3 bench/torch_kd_step.py p2     # teacher-19m -> S7M at 64x256
  python3 bench/torch_kd_step.py 1b     # 1.1 B -> 0.2 B at 8x1024 (random init)

The teacher of p2 is loaded from --teacher (an HF directory); the 1.1 B
teacher is random-initialised (speed does not depend on the weights), and
--save-teacher DIR writes it so that nexus can load the same one.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

H200_BF16_DENSE = 989e12  # peak dense bf16 tensor FLOP/s of an H100/H200 SXM


def llama(vocab, hidden, layers, heads, kv, inter, max_pos=1024, tie=False):
    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                       max_position_embeddings=max_pos, tie_word_embeddings=tie, rms_norm_eps=1e-5,
                       attn_implementation="sdpa")


def matmul_params(cfg):
    """Parameters that take part in matrix products per token (no embedding lookup)."""
    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    hd = h // cfg.num_attention_heads
    per_layer = h * h * 2 + 2 * h * cfg.num_key_value_heads * hd + 3 * h * i
    return L * per_layer + h * cfg.vocab_size


def step_flops(tcfg, scfg, B, T):
    """Model FLOPs of one KD step: teacher forward (2·P·tokens + attention),
    student forward and backward (6·P·tokens + attention)."""
    def attn(cfg):
        return 2 * 2 * cfg.num_hidden_layers * T * cfg.hidden_size * B * T / 2  # causal QK and PV
    tok = B * T
    return 2 * matmul_params(tcfg) * tok + attn(tcfg) + 6 * matmul_params(scfg) * tok + 3 * attn(scfg)


def run(case, teacher, scfg, B, T, steps, compile_, alpha=0.5, temp=2.0, profile=False):
    dev = "cuda"
    torch.manual_seed(0)
    student = LlamaForCausalLM(scfg).to(dev)
    teacher = teacher.to(dev).eval()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                            fused=True)
    V = scfg.vocab_size

    def kd_step(ids):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                tl = teacher(ids[:, :-1]).logits.float()
            sl = student(ids[:, :-1]).logits.float()
        ce = F.cross_entropy(sl.reshape(-1, V), ids[:, 1:].reshape(-1))
        kd = F.kl_div(F.log_softmax(sl / temp, -1).reshape(-1, V), F.log_softmax(tl / temp, -1).reshape(-1, V),
                      log_target=True, reduction="batchmean") * temp * temp
        loss = (1 - alpha) * ce + alpha * kd
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    fn = torch.compile(kd_step) if compile_ else kd_step
    ids = torch.randint(0, V, (B, T + 1), device=dev)
    warm = 8 if compile_ else 3
    for _ in range(warm):
        fn(ids)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = fn(ids)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = steps * B * T / dt
    fl = step_flops(teacher.config, scfg, B, T) * steps / dt
    print(json.dumps({"case": case, "mode": "compiled" if compile_ else "eager", "tokens_per_s": round(tps),
                      "mfu": round(fl / H200_BF16_DENSE, 4), "loss": float(loss),
                      "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                      "gpu": torch.cuda.get_device_name()}), flush=True)
    if profile:  # where PyTorch's step goes, per kernel (to stderr, beside nexus's NEXUS_PROFILE)
        from torch.profiler import ProfilerActivity, profile as prof
        with prof(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(3):
                fn(ids)
            torch.cuda.synchronize()
        import sys
        print(p.key_averages().table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70),
              file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["p2", "1b"])
    ap.add_argument("--teacher", default="../shared/models/teacher-19m")
    ap.add_argument("--save-teacher", default="")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--modes", default="eager,compiled")
    ap.add_argument("--profile", action="store_true", help="print each mode's kernel times over 3 steps to stderr")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    if a.case == "p2":
        teacher = LlamaForCausalLM.from_pretrained(a.teacher, dtype=torch.float32)
        scfg = llama(8192, 256, 4, 4, 2, 704)
        B, T = 64, 256
    else:
        torch.manual_seed(1)
        teacher = LlamaForCausalLM(llama(32000, 2048, 22, 32, 4, 5632, max_pos=2048))
        if a.save_teacher:
            teacher.to(torch.bfloat16).save_pretrained(a.save_teacher)
            teacher.float()
        scfg = llama(32000, 1024, 12, 16, 4, 2816, max_pos=2048)
        B, T = 8, 1024
    for mode in filter(None, a.modes.split(",")):  # --modes "" with --save-teacher: save only
        run(a.case, teacher, scfg, B, T, a.steps, mode == "compiled", profile=a.profile)


if __name__ == "__main__":
    main()
