"""The P1 step of ../shared/PROTOCOLS.md in plain PyTorch, for bench_train's
ratio: teacher-19m forward without grad (fp32) + S7M student forward/backward
+ AdamW at batch 16 x 256, and the CE-only student step. A Llama written out
in torch (no transformers needed; Debian's python3-torch is enough), weights
read from safetensors with the standard library. Prints JSON on stdout.

    python3 bench/torch_p1.py TEACHER_DIR [--steps N] [--threads N]
"""
import json, math, struct, sys, time

import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = bytearray(data[a:b])
        if t["dtype"] == "BF16":
            x = torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16
            x = x.view(torch.float32)
        elif t["dtype"] == "F32":
            x = torch.frombuffer(raw, dtype=torch.float32)
        else:
            raise SystemExit(f"{path}: {name}: dtype {t['dtype']} not handled")
        out[name] = x.reshape(t["shape"]).clone()
    return out


class Llama(torch.nn.Module):
    def __init__(s, V, C, L, NH, KVH, F_, theta=10000.0, eps=1e-5):
        super().__init__()
        s.NH, s.KVH, s.HS, s.eps = NH, KVH, C // NH, eps
        s.emb = torch.nn.Embedding(V, C)
        s.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.ln1 = torch.nn.Parameter(torch.ones(C))
            m.q = torch.nn.Linear(C, NH * s.HS, bias=False)
            m.k = torch.nn.Linear(C, KVH * s.HS, bias=False)
            m.v = torch.nn.Linear(C, KVH * s.HS, bias=False)
            m.o = torch.nn.Linear(NH * s.HS, C, bias=False)
            m.ln2 = torch.nn.Parameter(torch.ones(C))
            m.g = torch.nn.Linear(C, F_, bias=False)
            m.u = torch.nn.Linear(C, F_, bias=False)
            m.d = torch.nn.Linear(F_, C, bias=False)
            s.layers.append(m)
        s.lnf = torch.nn.Parameter(torch.ones(C))
        s.head = torch.nn.Linear(C, V, bias=False)
        inv = 1.0 / theta ** (torch.arange(0, s.HS, 2).float() / s.HS)
        s.inv = inv
        s.mask = torch.triu(torch.ones(1024, 1024, dtype=torch.bool), 1)

    def norm(s, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps))

    def forward(s, ids):
        B, T = ids.shape
        fr = torch.outer(torch.arange(T).float(), s.inv)
        emb = torch.cat([fr, fr], -1)
        cos, sin = emb.cos(), emb.sin()

        def rope(x):
            h = x.shape[-1] // 2
            rot = torch.cat([-x[..., h:], x[..., :h]], -1)
            return x * cos + rot * sin

        x = s.emb(ids)
        for m in s.layers:
            h = s.norm(x, m.ln1)
            q = m.q(h).view(B, T, s.NH, s.HS).transpose(1, 2)
            k = m.k(h).view(B, T, s.KVH, s.HS).transpose(1, 2)
            v = m.v(h).view(B, T, s.KVH, s.HS).transpose(1, 2)
            q, k = rope(q), rope(k)
            rep = s.NH // s.KVH
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(s.HS)
            att = att.masked_fill(s.mask[:T, :T], float("-inf")).softmax(-1)
            a = att @ v
            x = x + m.o(a.transpose(1, 2).reshape(B, T, -1))
            h = s.norm(x, m.ln2)
            x = x + m.d(F.silu(m.g(h)) * m.u(h))
        return s.head(s.norm(x, s.lnf))


def teacher_from(dir_):
    cfg = json.load(open(dir_ + "/config.json"))
    t = Llama(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"],
              cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"])
    w = load_safetensors(dir_ + "/model.safetensors")
    with torch.no_grad():
        t.emb.weight.copy_(w["model.embed_tokens.weight"])
        t.lnf.copy_(w["model.norm.weight"])
        t.head.weight.copy_(w["lm_head.weight"])
        for i, m in enumerate(t.layers):
            p = f"model.layers.{i}."
            m.ln1.copy_(w[p + "input_layernorm.weight"])
            m.ln2.copy_(w[p + "post_attention_layernorm.weight"])
            for a, b in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                         ("o", "self_attn.o_proj"), ("g", "mlp.gate_proj"), ("u", "mlp.up_proj"),
                         ("d", "mlp.down_proj")):
                getattr(m, a).weight.copy_(w[p + b + ".weight"])
    return t


def main():
    dir_ = sys.argv[1]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 3
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    torch.manual_seed(0)
    teacher = teacher_from(dir_).eval()
    student = Llama(8192, 256, 4, 4, 2, 704)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    B, T, temp, alpha = 16, 256, 2.0, 0.5
    ids = torch.randint(0, 8192, (B, T))

    def step(kd):
        s = student(ids)[:, :-1].reshape(-1, 8192)
        tgt = ids[:, 1:].reshape(-1)
        loss = F.cross_entropy(s, tgt)
        if kd:
            with torch.no_grad():
                t = teacher(ids)[:, :-1].reshape(-1, 8192)
            kl = F.kl_div(F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1), log_target=True,
                          reduction="batchmean") * temp * temp
            loss = alpha * kl + (1 - alpha) * loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()

    res = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    for name, kd in (("kd_step", True), ("ce_step", False)):
        step(kd)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            step(kd)
        res[name + "_tokens_per_s"] = B * T * steps / (time.perf_counter() - t0)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
