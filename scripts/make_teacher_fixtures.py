#!/usr/bin/env python3
"""Makes the teacher and tokenizer fixtures of tests/fixtures/teachers/ with
transformers and tokenizers (run on the GPU machine, where both are
installed; CPU only, float64):

  tok-<style>/tokenizer.json      a small BPE trained by `tokenizers` on a
                                  unicode-heavy corpus, in one of the styles
                                  the teachers ship (normalizer,
                                  pre-tokenizer, decoder, post-processor)
  tok-<style>/golden.json         texts (CJK, emoji, combining marks, RTL,
                                  fullwidth, digits of other scripts) with
                                  the ids `tokenizers` gives, with and
                                  without special tokens, and the decoding
  <model>/config.json, model.safetensors (bf16), tokenizer.json,
  tokenizer_config.json           a tiny random model saved by transformers
                                  with the real config keys of its family
  <model>/golden.safetensors      computed in float64 from the bf16 weights:
                                  input_ids (B, T), logits, hidden.<i>,
                                  grad.<name> of the mean next-token cross
                                  entropy, inv_freq (the rotary frequencies
                                  transformers uses), gen_prompt, gen_ids
                                  (greedy, 64 new tokens, KV cache)
  <model>/golden.json             transformers' version, the loss, the
                                  attention scaling, the smallest top-2
                                  logit gap met while generating
  rope-variants.json              the llama31 weights under other rope
                                  types: config, inv_freq, logits

A tiny random model whose greedy continuation repeats one token tests little
of the KV cache or the window, and tied embeddings of a large scale make a
model predict its last input (the logit of a token against itself
dominates): each model tries a few (seed, embedding scale) pairs, in
float32, and keeps the first whose 64 greedy tokens hold 24 distinct ones
(else the most varied); golden.json records the pair.

Usage: make_teacher_fixtures.py OUT_DIR [--styles-from DIR] [--only NAME,...]
(writes OUT_DIR/teachers.tar.gz and OUT_DIR/log.txt). --styles-from loads
the tokenizer styles from an earlier fixture folder (its tok-*/tokenizer.json)
instead of training them, so the other fixtures stay as they are; --only
makes only the named models (and rope-variants.json when llama31 is made).
Each part runs on its own: a failure is logged and the rest goes on."""
import io, json, math, os, shutil, sys, tarfile, traceback

ARGS = sys.argv[1:]


def option(name):
    if name in ARGS:
        i = ARGS.index(name)
        v = ARGS[i + 1]
        del ARGS[i:i + 2]
        return v
    return None


STYLES_FROM, ONLY = option("--styles-from"), option("--only")
ONLY = set(ONLY.split(",")) if ONLY else None
OUT = ARGS[0] if ARGS else "out"
WORK = os.path.join(OUT, "teachers")
os.makedirs(WORK, exist_ok=True)
LOG = open(os.path.join(OUT, "log.txt"), "w")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.write(s + "\n")
    LOG.flush()


def part(fn):
    def run(*a, **k):
        try:
            return fn(*a, **k)
        except Exception:
            log("FAILED", fn.__name__, traceback.format_exc())
            return None
    return run


import torch
import tokenizers
from tokenizers import Tokenizer, Regex, models, normalizers, pre_tokenizers, decoders, processors, trainers
import transformers

log("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)

# ---- corpus and golden texts ------------------------------------------------

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024; we'll see 3,141 foxes!",
    "Hello world, hello tokenizers: don't split 'em wrongly. I've 12 cats & 7 dogs.",
    "机器学习是人工智能的一个分支。我们今天学习中文分词。东京和北京都是大城市。",
    "日本語のテキストも含めます。ひらがな、カタカナ、漢字を混ぜて書きます。",
    "한국어 문장도 있습니다. 안녕하세요, 만나서 반갑습니다.",
    "Emoji: 😀😃😄 👍🏽 🇯🇵 👩‍💻 ❤️ and more 🎉🎉.",
    "Café, naïve, façade, résumé, Ångström, São Paulo, Zürich, coöperate.",
    "Ελληνικά γράμματα: αβγδε. Русский текст: привет, мир! Українська: ґанок.",
    "العربية تكتب من اليمين إلى اليسار. مرحبا بالعالم ١٢٣٤٥.",
    "עברית נכתבת מימין לשמאל. שלום עולם 2024.",
    "हिन्दी पाठ: नमस्ते दुनिया। ०१२३४५६७८९ अंक।",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ สวัสดีครับ",
    "Math: x² + y² = z², ½ + ¼ = ¾, ∑ᵢ aᵢ ≥ 0, π ≈ 3.14159, ∞.",
    "Code: def f(x):\n    return x**2  # squared\n\tprint(f(3))\r\n",
    "Full-width: ＡＢＣ１２３ ｆｕｌｌ ｗｉｄｔｈ！ Ligatures: ﬁ ﬂ ﬀ. Roman: Ⅻ Ⅳ.",
    "Numbers 1234567890 and 3.14 and 1e-5 and 42nd and 007 and ٣٤٥ and ௧௨௩.",
    "Spaces:  double,   triple,\u00a0nbsp,\u3000ideographic, tabs\tand\nnewlines\n\nend.",
    "Mixed 中文English混合text with 数字123 and emoji🙂 inline.",
]
CORPUS = CORPUS * 6

TEXTS = [
    "Hello world",
    " leading space and trailing space ",
    "The year 2024 had 366 days; 1,000,000 people. ٣٤٥ ௧௨௩ Ⅻ ½ ²",
    "机器学习很有趣！我爱北京天安门。",
    "日本語とEnglishの混在テキスト、カタカナ。",
    "안녕하세요 세계",
    "Family: 👨‍👩‍👧‍👦, skin: 👍🏿, flag: 🇫🇷, keycap: 1️⃣, rare: 🦩🪐",
    "e\u0301 vs é, A\u030a vs Å, Hangul jamo: \u1100\u1161\u11a8 vs 각",
    "ＦＵＬＬ　ｗｉｄｔｈ　１２３ ﬁnance ﬂow Ⅻ ① ㈱ ℌ ㎏",
    "مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣ و 456.",
    "שלום עולם! זה טקסט בעברית עם \u200fסימן\u200f כיווניות.",
    "Zalgo: Z\u0351\u036b\u0343a\u0310\u0312l\u0357g\u0346o\u035b, combining: a\u0300\u0301\u0302",
    "Code:\n\tif (x < 0) {\r\n        return -x;  // abs\n    }",
    "Unseen: ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ᚠᚢᚦ ⵣ ꧁꧂ 𓀀",
    "Mixed 中文English混合text with 数字123 and emoji🙂 inline.",
    "   ",
    "\n\n",
    "a",
    "</s> and <s> inside text, <unk> too",
]

# ---- tokenizer styles ---------------------------------------------------------

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTES = ["<0x%02X>" % b for b in range(256)]


def bytelevel_style(norm, pre, specials, post_single=None, vocab=360):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    if norm is not None:
        tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if post_single:
        tok.post_processor = processors.TemplateProcessing(
            single=post_single, special_tokens=[(s, tok.token_to_id(s)) for s in specials if s in post_single])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def spm_style(norm, pre, dec, vocab=420, limit_alphabet=120):
    """Byte-fallback BPE whose <0xXX> tokens are in the model vocabulary but
    not added tokens, as Llama 2 / Mistral conversions have them."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if norm is not None:
        tok.normalizer = norm
    if pre is not None:
        tok.pre_tokenizer = pre
    tok.decoder = dec
    trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False, limit_alphabet=limit_alphabet,
                                  special_tokens=["<unk>", "<s>", "</s>"] + BYTES)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    j = json.loads(tok.to_str())
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] not in BYTES]
    tok = Tokenizer.from_str(json.dumps(j))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def make_styles():
    S = {}
    meta_dec = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    spm_dec = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                 decoders.Strip(" ", 1, 0)])
    builders = {
        # Llama 3: regex Split + ByteLevel, no normalizer, BOS template
        "llama3": lambda: bytelevel_style(
            None, pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
                                           pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            ["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|> $A"),
        # Qwen2 / Qwen2.5 / Qwen3: NFC, regex Split (single digits) + ByteLevel
        "qwen2": lambda: bytelevel_style(
            normalizers.NFC(),
            pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        # Llama 2 / Mistral v0.1: Prepend + Replace normalizer, byte fallback
        "spm": lambda: spm_style(normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
                                 None, spm_dec),
        # newer Llama/Mistral conversions: Metaspace pre-tokenizer
        "metaspace": lambda: spm_style(None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                                       split=False), meta_dec),
        # NFKC + regex Replace, Digits (one by one) + ByteLevel with its own regex and prefix space
        "nfkc-digits": lambda: bytelevel_style(
            normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " ")]),
            pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                     pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]),
            ["<|endoftext|>"]),
        # NFKD + Metaspace that always prepends and splits
        "nfkd-metaspace": lambda: spm_style(
            normalizers.NFKD(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)),
        # NFD, runs of digits (Contiguous) and a Split that merges punctuation with what precedes
        "nfd-split": lambda: bytelevel_style(
            normalizers.NFD(),
            pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                     pre_tokenizers.Split(Regex(r"[\p{P}\p{S}]"), behavior="merged_with_previous"),
                                     pre_tokenizers.Split(" ", behavior="merged_with_next"),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            ["<|endoftext|>"]),
    }
    try:  # the ByteLevel normalizer (tokenizers >= 0.19)
        bl = normalizers.ByteLevel()
        builders["bytelevel-norm"] = lambda: bytelevel_style(
            normalizers.Sequence([normalizers.NFC(), bl]),
            pre_tokenizers.Split(Regex(r"Ġ?[^Ġ]+|Ġ+"), behavior="isolated"), ["<|endoftext|>"])
    except Exception:
        log("no normalizers.ByteLevel:", traceback.format_exc())
    for name, b in builders.items():
        t = part(b)()
        if t is not None:
            S[name] = t
    return S


@part
def write_style(name, tok):
    d = os.path.join(WORK, "tok-" + name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # what a reader of the file gets
    cases = []
    for text in TEXTS:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": plain, "ids_special": special,
                      "decoded": tok.decode(plain, skip_special_tokens=False),
                      "normalized": tok.normalizer.normalize_str(text) if tok.normalizer else text})
    with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizers": tokenizers.__version__, "vocab_size": tok.get_vocab_size(), "cases": cases}, f,
                  ensure_ascii=False, indent=0)
    log("style", name, "vocab", tok.get_vocab_size(), "ids", sum(len(c["ids"]) for c in cases))


# ---- models -----------------------------------------------------------------

from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

B, T, NEW = 2, 48, 64
TEXT_A = ("Café naïve 机器学习是人工智能的一个分支。The quick brown fox jumps over the lazy dog 2024 times! "
          "😀👍🏽 مرحبا بالعالم שלום עולם ＡＢＣ１２３ e\u0301 ﬁnance. ")
TEXT_B = ("日本語のテキストと한국어 문장, Ελληνικά, Русский текст: привет! x² + y² = z², ½ ≥ ¼; "
          "def f(x):\n    return x**2\n")


def randomize(model, seed, emb_scale=1.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            elif name.endswith(".bias"):
                v = 0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            elif "embed_tokens" in name or "lm_head" in name:
                v = emb_scale * torch.randn(p.shape, generator=g, dtype=torch.float64)
            else:
                v = torch.randn(p.shape, generator=g, dtype=torch.float64) / math.sqrt(p.shape[-1])
            p.copy_(v.to(torch.bfloat16).to(p.dtype))  # bf16 values: the saved checkpoint is exact


def ids_for(tok, text, n, bos):
    ids = ([bos] if bos is not None else []) + tok.encode(text, add_special_tokens=False).ids
    while len(ids) < n:
        ids += tok.encode(text, add_special_tokens=False).ids
    return ids[:n]


def build(kind, keys, V, seed, emb_scale=1.5):
    cfg = AutoConfig.for_model(kind, vocab_size=V, **keys)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_config(cfg)
    model = model.float()
    randomize(model, seed, emb_scale)
    return model


def greedy(model, prompt, n):
    """n greedy tokens through the KV cache, a step at a time; and the
    smallest gap between the two best logits met."""
    with torch.no_grad():
        o = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past, gen, gap = o.past_key_values, [], 1e9
        for step in range(n):
            lg = o.logits[0, -1]
            top = torch.topk(lg, 2).values
            gap = min(gap, float(top[0] - top[1]))
            nxt = int(torch.argmax(lg))
            gen.append(nxt)
            o = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
    return gen, gap


TRIES = [(0, 1.5), (0, 0.25), (0, 0.1875), (100, 0.25), (100, 0.1875), (200, 0.25), (200, 0.15), (300, 0.1875),
         (300, 0.25), (400, 0.1875)]


def load64(d):
    try:
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float64)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float64)
    return m.double().eval()


def rope_info(model):
    re = model.model.rotary_emb
    inv = getattr(re, "inv_freq", None)
    if inv is None:
        inv = getattr(re, "full_attention_inv_freq", None)
    return inv.detach().to(torch.float64).clone(), float(getattr(re, "attention_scaling", 1.0))


@part
def make_model(name, kind, keys, style_tok, style_name, seed, bos, eos):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    V = (style_tok.get_vocab_size() + 15) // 16 * 16
    keys = dict(keys, bos_token_id=bos, eos_token_id=eos)
    prompt = ids_for(style_tok, "Café 机器学习 😀 שלום", 8, bos)
    best = None
    for ds, sc in TRIES:
        model = build(kind, keys, V, seed + ds, sc)
        gen, gap = greedy(model.eval(), prompt, NEW)
        log("try", name, "seed", seed + ds, "emb_scale", sc, "distinct", len(set(gen)), "gap", gap)
        if best is None or len(set(gen)) > best[0]:
            best = (len(set(gen)), seed + ds, sc)
        if len(set(gen)) >= 24 and gap > 1e-3:
            break
    seed, emb_scale = best[1], best[2]
    model = build(kind, keys, V, seed, emb_scale)
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    shutil.copy(os.path.join(WORK, "tok-" + style_name, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    idtok = {v: k for k, v in style_tok.get_vocab(with_added_tokens=True).items()}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": idtok.get(bos), "eos_token": idtok.get(eos)}, f, ensure_ascii=False, indent=1)
    # float64 model from the saved bf16 weights
    model = load64(d)
    ids = torch.tensor([ids_for(style_tok, TEXT_A, T, bos), ids_for(style_tok, TEXT_B, T, bos)], dtype=torch.long)
    out = model(input_ids=ids, labels=ids, output_hidden_states=True, use_cache=False)
    model.zero_grad()
    out.loss.backward()
    g = {"input_ids": ids.to(torch.int32), "logits": out.logits.detach().float()}
    for i, h in enumerate(out.hidden_states):
        g["hidden.%d" % i] = h.detach().float()
    for pn, p in model.named_parameters():
        if p.grad is not None:
            g["grad." + pn] = p.grad.detach().float()
    inv, att = rope_info(model)
    g["inv_freq"] = inv.float()
    g["inv_freq64"] = inv
    # greedy generation with the KV cache, a step at a time, float64
    gen, gap = greedy(model, prompt, NEW)
    with torch.no_grad():
        # an explicit mask: a pad id equal to the BOS would otherwise mask the prompt's first token
        full = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                              max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
        via_generate = full[0, len(prompt):].tolist()
    g["gen_prompt"] = torch.tensor(prompt, dtype=torch.int32)
    g["gen_ids"] = torch.tensor(gen, dtype=torch.int32)
    save_file({k: v.contiguous() for k, v in g.items()}, os.path.join(d, "golden.safetensors"))
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "loss": float(out.loss),
            "seed": seed, "emb_scale": emb_scale, "distinct_generated": len(set(gen)),
            "attention_scaling": att, "min_top2_gap": gap, "generate_agrees": via_generate == gen,
            "via_generate": via_generate, "style": style_name, "B": B, "T": T,
            "layer_types": getattr(model.config, "layer_types", None),
            "sliding_window": getattr(model.config, "sliding_window", None)}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log("model", name, "V", V, "loss", meta["loss"], "att", att, "gap", gap, "generate==loop", meta["generate_agrees"],
        "layer_types", meta["layer_types"])
    return model


@part
def rope_variants(base_dir, bos):
    """The llama31 weights under every rope type transformers has that nexus
    runs: the frequencies transformers computes and the logits."""
    cfg0 = json.load(open(os.path.join(base_dir, "config.json")))
    g = {}
    variants = {
        "default": {"rope_type": "default", "rope_theta": 10000.0},
        "linear": {"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0},
        "dynamic": {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 10000.0},
        "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0},
        "yarn-mscale": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 16, "beta_fast": 8,
                        "beta_slow": 2, "mscale": 1.0, "mscale_all_dim": 0.5, "truncate": False,
                        "rope_theta": 50000.0},
        "yarn-attn": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64,
                      "attention_factor": 1.3, "rope_theta": 10000.0},
        "llama3": {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
                   "original_max_position_embeddings": 512, "rope_theta": 500000.0},
    }
    ids = None
    for name, rp in variants.items():
        try:
            cfg = dict(cfg0)
            cfg.pop("rope_scaling", None)
            cfg["rope_parameters"] = rp
            cfg["max_position_embeddings"] = 256
            vd = os.path.join(OUT, "variant")
            shutil.rmtree(vd, ignore_errors=True)
            os.makedirs(vd)
            json.dump(cfg, open(os.path.join(vd, "config.json"), "w"))
            shutil.copy(os.path.join(base_dir, "model.safetensors"), vd)
            m = load64(vd)
            if ids is None:
                ids = torch.tensor([list(range(3, 3 + 40))], dtype=torch.long) % m.config.vocab_size
            with torch.no_grad():
                lg = m(input_ids=ids, use_cache=False).logits
            inv, att = rope_info(m)
            rows = [0, 9, 19, 29, 39]  # a few positions, early and past original_max_position_embeddings
            g[name] = {"rope_parameters": rp, "inv_freq": inv.tolist(), "attention_scaling": att, "logit_rows": rows,
                       "logits": [round(float(x), 7) for r in rows for x in lg[0, r]]}
            log("rope variant", name, "att", att, "inv", [float("%.6g" % x) for x in inv.tolist()])
        except Exception:
            log("FAILED rope variant", name, traceback.format_exc())
    json.dump({"input_ids": ids[0].tolist() if ids is not None else [], "variants": g},
              open(os.path.join(WORK, "rope-variants.json"), "w"))


def main():
    if STYLES_FROM:
        styles = {}
        for d in sorted(os.listdir(STYLES_FROM)):
            if d.startswith("tok-"):
                styles[d[4:]] = Tokenizer.from_file(os.path.join(STYLES_FROM, d, "tokenizer.json"))
                os.makedirs(os.path.join(WORK, d), exist_ok=True)
                shutil.copy(os.path.join(STYLES_FROM, d, "tokenizer.json"), os.path.join(WORK, d))
        log("styles from", STYLES_FROM, sorted(styles))
    else:
        styles = make_styles()
        for n, t in styles.items():
            write_style(n, t)
    common = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, rms_norm_eps=1e-5, dtype="bfloat16")
    def sid(style, tok):
        return styles[style].token_to_id(tok) if style in styles else None
    plans = [
        # Llama 3.1/3.2: llama3 rope, tied embeddings (3.2 1B/3B), byte-level Split tokenizer
        ("llama31", "llama", dict(common, num_hidden_layers=2, tie_word_embeddings=True,
                                   rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 256,
                                                    "rope_theta": 500000.0}),
         "llama3", 11, sid("llama3", "<|begin_of_text|>"), sid("llama3", "<|end_of_text|>")),
        # Qwen2.5: q/k/v bias, tied, NFC tokenizer; a sliding window of 12 from layer 1 on
        ("qwen25", "qwen2", dict(common, num_hidden_layers=3, tie_word_embeddings=True, use_sliding_window=True,
                                 sliding_window=12, max_window_layers=1,
                                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
         "qwen2", 12, None, sid("qwen2", "<|endoftext|>")),
        # Qwen3: q/k norms, head_dim 16 != 32 / 4, yarn rope, untied
        ("qwen3", "qwen3", dict(common, num_hidden_layers=2, head_dim=16, tie_word_embeddings=False,
                                attention_bias=False,
                                rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                 "original_max_position_embeddings": 32, "rope_theta": 1000000.0}),
         "qwen2", 13, None, sid("qwen2", "<|im_end|>")),
        # Mistral: a 16-token sliding window on every layer (sequences of 48, generation to 72)
        ("mistral", "mistral", dict(common, num_hidden_layers=2, sliding_window=16, tie_word_embeddings=False,
                                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
         "spm", 14, sid("spm", "<s>"), sid("spm", "</s>")),
    ]
    for name, kind, keys, style, seed, bos, eos in plans:
        if ONLY and name not in ONLY:
            continue
        if style not in styles:
            log("skip", name, ": no", style, "tokenizer")
            continue
        make_model(name, kind, keys, styles[style], style, seed, bos, eos)
    if (not ONLY or "llama31" in ONLY) and os.path.exists(os.path.join(WORK, "llama31", "model.safetensors")):
        rope_variants(os.path.join(WORK, "llama31"), None)
    with tarfile.open(os.path.join(OUT, "teachers.tar.gz"), "w:gz") as tf:
        tf.add(WORK, arcname="teachers")
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.rmtree(os.path.join(OUT, "variant"), ignore_errors=True)
    log("done")


main()
