/* gguf_model.c — Llama-family models in GGUF files: hyper-parameters from
 * and to the {arch}.* keys, tensor names between Hugging Face and GGUF, the
 * q/k row permutation, and whole models loaded and saved (gguf.h).
 *
 * What llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel) does and
 * this file mirrors, so that a model exported here reads in llama.cpp as
 * one it converted:
 *   - architecture "llama" for Llama and Mistral, "qwen2" for Qwen2;
 *   - keys block_count, context_length, embedding_length,
 *     feed_forward_length, attention.head_count(_kv), rope.freq_base,
 *     attention.layer_norm_rms_epsilon, attention.key/value_length,
 *     general.file_type, vocab_size, rope.dimension_count, in that order;
 *   - tensors in the order of the Hugging Face checkpoint (names sorted),
 *     renamed (gguf.h), 2-D tensors in the chosen type and 1-D ones (norms,
 *     biases) in F32;
 *   - for "llama", q_proj and k_proj rows (weights and biases) permuted
 *     within each head:
 *         w.reshape(heads, 2, HS/2, cols).swapaxes(1, 2).reshape(rows, cols)
 *     with heads = num_attention_heads for q and num_key_value_heads for k.
 *     Hugging Face's RoPE rotates the pairs (i, i + HS/2) ("rotate_half");
 *     ggml's normal-mode RoPE rotates (2i, 2i + 1); the permutation moves
 *     row i + j·HS/2 to row 2i + j so both compute the same attention.
 *     Reading undoes it, so the model nexus holds is the Hugging Face one.
 *     Qwen2 uses ggml's NeoX RoPE, which is rotate_half: no permutation.
 *
 * Reading refuses what the forward cannot run exactly (rope scaling, a
 * rotary dimension other than the head size, experts) and any tensor it
 * does not expect, naming the file and the key or tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/gguf.h"

/* ---- names ------------------------------------------------------------------ */

static const struct { const char *hf, *gguf; } LAYER_NAMES[] = {
    {"input_layernorm", "attn_norm"},     {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},       {"self_attn.o_proj", "attn_output"},
    {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

int nx_gguf_name_of(const char *hf, char *buf, size_t n) {
    static const struct { const char *hf, *gguf; } TOP[] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    for (size_t i = 0; i < sizeof TOP / sizeof TOP[0]; i++)
        if (!strcmp(hf, TOP[i].hf)) return snprintf(buf, n, "%s", TOP[i].gguf) < (int)n ? NX_OK : NX_ERR;
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0) return NX_ERR;
    const char *rest = hf + used;
    for (size_t i = 0; i < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; i++) {
        size_t k = strlen(LAYER_NAMES[i].hf);
        if (strncmp(rest, LAYER_NAMES[i].hf, k) || (strcmp(rest + k, ".weight") && strcmp(rest + k, ".bias")))
            continue;
        return snprintf(buf, n, "blk.%d.%s%s", layer, LAYER_NAMES[i].gguf, rest + k) < (int)n ? NX_OK : NX_ERR;
    }
    return NX_ERR;
}

/* ---- the q/k permutation ------------------------------------------------------ */

void nx_gguf_permute_qk(void *dst, const void *src, int64_t rows, size_t row_bytes, int heads, bool to_gguf) {
    NX_ASSERT(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0);
    int64_t hs = rows / heads, half = hs / 2;
    char *d = dst;
    const char *s = src;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++) {
                int64_t g = h * hs + 2 * i + j, f = h * hs + j * half + i; /* GGUF row g holds HF row f */
                if (to_gguf) memcpy(d + g * row_bytes, s + f * row_bytes, row_bytes);
                else memcpy(d + f * row_bytes, s + g * row_bytes, row_bytes);
            }
}

/* Heads whose rows tensor p (HF name) permutes, or 0. */
static int permute_heads(const nx_model_config *c, const char *hf) {
    if (c->arch == NX_ARCH_QWEN2) return 0;
    if (strstr(hf, ".self_attn.q_proj.")) return c->NH;
    if (strstr(hf, ".self_attn.k_proj.")) return c->KVH;
    return 0;
}

/* ---- hyper-parameters ------------------------------------------------------------ */

static const char *gguf_arch(nx_arch a) { return a == NX_ARCH_QWEN2 ? "qwen2" : "llama"; }

static int key_int(const nx_gguf *g, const char *arch, const char *name, bool required, int def, int *out,
                   nx_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t x = def;
    if (nx_gguf_get_int(g, key, required, required ? 1 : 0, 1 << 30, &x, err)) return NX_ERR;
    *out = (int)x;
    return NX_OK;
}

int nx_gguf_model_config(const nx_gguf *g, nx_model_config *c, nx_err *err) {
    memset(c, 0, sizeof *c);
    nx_gguf_str a;
    if (nx_gguf_get_str(g, "general.architecture", true, &a, err)) return NX_ERR;
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", a.len < 31 ? (int)a.len : 31, a.s);
    if (!strcmp(arch, "llama")) c->arch = NX_ARCH_LLAMA;
    else if (!strcmp(arch, "qwen2")) c->arch = NX_ARCH_QWEN2;
    else return nx_fail(err, "%s: general.architecture is '%s'; nexus runs GGUF architectures llama and qwen2",
                        g->path, arch);
    if (key_int(g, arch, "embedding_length", true, 0, &c->C, err) ||
        key_int(g, arch, "block_count", true, 0, &c->L, err) ||
        key_int(g, arch, "feed_forward_length", true, 0, &c->F, err) ||
        key_int(g, arch, "attention.head_count", true, 0, &c->NH, err) ||
        key_int(g, arch, "context_length", true, 0, &c->max_pos, err))
        return NX_ERR;
    if (key_int(g, arch, "attention.head_count_kv", false, c->NH, &c->KVH, err) ||
        key_int(g, arch, "attention.key_length", false, c->NH ? c->C / c->NH : 0, &c->HS, err))
        return NX_ERR;
    int vlen = c->HS, rot = c->HS, experts = 0;
    if (key_int(g, arch, "attention.value_length", false, c->HS, &vlen, err) ||
        key_int(g, arch, "rope.dimension_count", false, c->HS, &rot, err) ||
        key_int(g, arch, "expert_count", false, 0, &experts, err))
        return NX_ERR;
    if (vlen != c->HS)
        return nx_fail(err, "%s: %s.attention.value_length %d differs from key_length %d; nexus needs them equal",
                       g->path, arch, vlen, c->HS);
    if (rot != c->HS)
        return nx_fail(err, "%s: %s.rope.dimension_count is %d but the head size is %d: partial rotary embeddings "
                            "are not supported", g->path, arch, rot, c->HS);
    if (experts > 0) return nx_fail(err, "%s: %s.expert_count is %d: mixtures of experts are not supported",
                                    g->path, arch, experts);
    char key[128];
    double eps = 0, theta = 10000.0;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (nx_gguf_get_f64(g, key, true, &eps, err)) return NX_ERR;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (nx_gguf_get_f64(g, key, false, &theta, err)) return NX_ERR;
    c->eps = (float)eps;
    c->rope_theta = (float)theta;
    nx_gguf_str st;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    st.s = "none", st.len = 4;
    if (nx_gguf_get_str(g, key, false, &st, err)) return NX_ERR;
    if (st.len != 4 || memcmp(st.s, "none", 4))
        return nx_fail(err, "%s: key '%s' is '%.*s': rope scaling is not supported", g->path, key,
                       (int)(st.len < 40 ? st.len : 40), st.s);
    if (nx_gguf_find_tensor(g, "rope_freqs.weight"))
        return nx_fail(err, "%s: tensor 'rope_freqs.weight' scales the rotary frequencies (Llama 3.1 style rope "
                            "scaling), which nexus does not support", g->path);
    const nx_gguf_tensor *emb = nx_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->ndim != 2) return nx_fail(err, "%s: missing tensor 'token_embd.weight' (2-D)", g->path);
    c->V = (int)emb->ne[1];
    int V = c->V;
    if (key_int(g, arch, "vocab_size", false, c->V, &V, err)) return NX_ERR;
    if (V != c->V)
        return nx_fail(err, "%s: %s.vocab_size is %d but token_embd.weight has %d rows", g->path, arch, V, c->V);
    c->tied = !nx_gguf_find_tensor(g, "output.weight");
    c->qkv_bias = nx_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->o_bias = nx_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    if (c->arch == NX_ARCH_QWEN2 && (!c->qkv_bias || c->o_bias))
        return nx_fail(err, "%s: a qwen2 model has q/k/v biases and no output bias (%s)", g->path,
                       c->qkv_bias ? "blk.0.attn_output.bias is present" : "blk.0.attn_q.bias is missing");
    if (c->arch == NX_ARCH_LLAMA && c->qkv_bias != c->o_bias)
        return nx_fail(err, "%s: a llama model with attention biases has them on q, k, v and output alike", g->path);
    int64_t id = -1;
    c->bos_id = c->eos_id = -1;
    if (nx_gguf_get_int(g, "tokenizer.ggml.bos_token_id", false, 0, c->V - 1, &id, err)) return NX_ERR;
    c->bos_id = (int)id;
    id = -1;
    if (nx_gguf_get_int(g, "tokenizer.ggml.eos_token_id", false, 0, c->V - 1, &id, err)) return NX_ERR;
    c->eos_id = (int)id;
    /* the type the matrices are stored in, for a config.json written from this model */
    const nx_gguf_tensor *q = nx_gguf_find_tensor(g, "blk.0.attn_q.weight");
    int qt = q ? nx_ggml_dtype(q->type) : -1;
    c->dtype = qt == NX_F16 || qt == NX_BF16 ? (nx_dtype)qt : NX_F32;
    if (nx_model_config_check(c, err)) return nx_fail_prefix(err, "%s", g->path);
    return NX_OK;
}

/* ---- loading ---------------------------------------------------------------------- */

static void dims_text(char *buf, size_t n, int ndim, const int64_t *d) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Tensor t of the file checked against row p of the table (GGUF shapes are
 * the Hugging Face ones reversed). */
static int check_tensor(const nx_gguf *g, const nx_gguf_tensor *t, const nx_param *p, nx_err *err) {
    bool ok = t->ndim == p->ndim;
    for (int d = 0; ok && d < p->ndim; d++) ok = t->ne[d] == p->shape[p->ndim - 1 - d];
    if (!ok) {
        char got[96], want[96];
        int64_t w[2] = {p->shape[p->ndim - 1], p->ndim > 1 ? p->shape[0] : 1};
        dims_text(got, sizeof got, t->ndim, t->ne);
        dims_text(want, sizeof want, p->ndim, w);
        return nx_fail(err, "%s: tensor '%s' has shape %s (ne) but the model's hyper-parameters imply %s", g->path,
                       t->name, got, want);
    }
    nx_dtype dt;
    return nx_gguf_tensor_dtype(g, t, &dt, err);
}

static int check_tensors(const nx_gguf *g, const nx_model_config *cfg, nx_err *err) {
    int np = nx_model_params(cfg, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * (size_t)np);
    nx_model_params(cfg, NX_F32, tab);
    int rc = NX_OK, found = 0;
    char name[128];
    for (int i = 0; i < np && rc == NX_OK; i++) {
        NX_ASSERT(nx_gguf_name_of(tab[i].name, name, sizeof name) == NX_OK);
        const nx_gguf_tensor *t = nx_gguf_find_tensor(g, name);
        if (!t) rc = nx_fail(err, "%s: missing tensor '%s' (%s) for this %s model", g->path, name, tab[i].name,
                             nx_arch_name(cfg->arch));
        else rc = check_tensor(g, t, &tab[i], err), found++;
    }
    if (rc == NX_OK && found != g->nt)
        for (int k = 0; k < g->nt && rc == NX_OK; k++) {
            bool known = false;
            for (int i = 0; i < np && !known; i++) {
                nx_gguf_name_of(tab[i].name, name, sizeof name);
                known = !strcmp(name, g->t[k].name);
            }
            if (!known) rc = nx_fail(err, "%s: unexpected tensor '%s' for a %s model with these hyper-parameters",
                                     g->path, g->t[k].name, nx_arch_name(cfg->arch));
        }
    free(tab);
    return rc;
}

/* Matrix groups held in the file's block type (Q8_0, Q4_0, Q4_K, IQ4_NL), as
 * stored: a group whose tensors all share one block type the backend
 * supports keeps it (the bytes are copied, never re-rounded); float groups,
 * and a stacked group whose tensors differ (llama.cpp's Q4_K_M gives v more
 * bits than q and k), are widened to hold. NULL when no group keeps a block
 * type: the whole model is hold. */
static nx_group_type *block_groups(const nx_gguf *g, const nx_model_config *cfg, nx_dtype hold, nx_backend *be) {
    int ng = nx_model_ngroups(cfg), np = nx_model_params(cfg, hold, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * (size_t)np);
    nx_model_params(cfg, hold, tab);
    nx_group_type *gt = nx_xmalloc(sizeof *gt * (size_t)ng);
    int *seen = nx_xcalloc((size_t)ng, sizeof *seen); /* 0 none yet, 1 one block type, 2 widen */
    for (int k = 0; k < ng; k++) gt[k] = (nx_group_type){hold, NX_ACT_BLOCK, 0};
    char name[128];
    for (int i = 0; i < np; i++) {
        int k = nx_model_group(cfg, tab[i].name);
        if (k < 0 || nx_gguf_name_of(tab[i].name, name, sizeof name)) continue;
        const nx_gguf_tensor *t = nx_gguf_find_tensor(g, name);
        int d = t ? nx_ggml_dtype(t->type) : -1;
        bool block = d >= 0 && nx_type((nx_dtype)d)->block > 1 && nx_backend_supports_weight(be, (nx_dtype)d);
        if (!block) seen[k] = 2;
        else if (seen[k] == 0) gt[k].type = (nx_dtype)d, seen[k] = 1;
        else if (gt[k].type != (nx_dtype)d) seen[k] = 2;
    }
    bool any = false;
    for (int k = 0; k < ng; k++) {
        if (seen[k] != 1) gt[k].type = hold;
        any |= seen[k] == 1;
    }
    free(tab), free(seen);
    if (!any) free(gt);
    return any ? gt : NULL;
}

int nx_gguf_load_model(const nx_gguf *g, nx_model *m, nx_dtype hold, nx_backend *be, nx_err *err) {
    memset(m, 0, sizeof *m);
    nx_model_config cfg;
    if (nx_gguf_model_config(g, &cfg, err) || check_tensors(g, &cfg, err)) return NX_ERR;
    nx_group_type *gt = block_groups(g, &cfg, hold, be);
    int rc = gt ? nx_model_init_typed(m, &cfg, gt, be, err) : nx_model_init_on(m, &cfg, hold, be, err);
    free(gt);
    if (rc) return nx_fail_prefix(err, "%s", g->path);
    char name[128];
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        nx_gguf_name_of(p->name, name, sizeof name);
        const nx_gguf_tensor *t = nx_gguf_find_tensor(g, name);
        nx_dtype dt;
        NX_ASSERT(nx_gguf_tensor_dtype(g, t, &dt, err) == NX_OK);
        int heads = permute_heads(&cfg, p->name);
        const nx_type_traits *tt = nx_type(dt);
        size_t align = tt->block == 1 ? tt->block_bytes : 1;
        if (!heads && (uintptr_t)t->data % align == 0) {
            nx_model_set(m, i, t->data, dt);
            continue;
        }
        void *tmp = nx_xmalloc(t->nbytes);
        if (heads) nx_gguf_permute_qk(tmp, t->data, p->shape[0], t->nbytes / (size_t)p->shape[0], heads, false);
        else memcpy(tmp, t->data, t->nbytes);
        nx_model_set(m, i, tmp, dt);
        free(tmp);
    }
    return NX_OK;
}

/* ---- saving ----------------------------------------------------------------------- */

/* llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*, informational: the
 * loader reads each tensor's own type) of a model whose matrices are mostly
 * of ggml type `name`; 0 (ALL_F32) for a type without one. */
static uint32_t file_type(const char *name) {
    static const struct { const char *name; uint32_t ftype; } FT[] = {
        {"F32", 0},   {"F16", 1},    {"Q4_0", 2},    {"Q4_1", 3},    {"Q8_0", 7},    {"Q5_0", 8},
        {"Q5_1", 9},  {"Q2_K", 10},  {"Q3_K", 12},   {"Q4_K", 15},   {"Q5_K", 17},   {"Q6_K", 18},
        {"IQ4_NL", 25}, {"IQ4_XS", 30}, {"BF16", 32},
    };
    for (size_t i = 0; i < sizeof FT / sizeof FT[0]; i++)
        if (!strcmp(FT[i].name, name)) return FT[i].ftype;
    return 0;
}

static int by_hf_name(const void *a, const void *b) {
    return strcmp(((const nx_param *const *)a)[0]->name, ((const nx_param *const *)b)[0]->name);
}

static void put_hparams(nx_gguf_writer *w, const nx_model_config *c, const nx_gguf_export *o, const char *ftype) {
    const char *arch = gguf_arch(c->arch);
    char k[128];
#define KEY(name) (snprintf(k, sizeof k, "%s.%s", arch, name), k)
    nx_gguf_set_str(w, "general.architecture", arch);
    nx_gguf_set_str(w, "general.type", "model");
    if (o->name && *o->name) nx_gguf_set_str(w, "general.name", o->name);
    nx_gguf_set_u32(w, KEY("block_count"), (uint32_t)c->L);
    nx_gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_pos);
    nx_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->C);
    nx_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->F);
    nx_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->NH);
    nx_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->KVH);
    nx_gguf_set_f32(w, KEY("rope.freq_base"), c->rope_theta);
    nx_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->eps);
    nx_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->HS);
    nx_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->HS);
    nx_gguf_set_u32(w, "general.file_type", file_type(ftype));
    nx_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->V);
    nx_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->HS);
#undef KEY
}

/* Every tokenizer.* pair of src, copied. */
static void copy_tokenizer(nx_gguf_writer *w, const nx_gguf *src) {
    for (int i = 0; i < src->nkv; i++)
        if (!strncmp(src->kv[i].key, "tokenizer.", 10)) nx_gguf_set(w, src->kv[i].key, &src->kv[i].v);
}

/* The type tensor p is written in. */
static nx_dtype out_type(const nx_param *p, const nx_gguf_export *o) {
    return p->ndim != 2 ? NX_F32 : o->as_held ? p->type : o->dtype;
}

/* Every tensor's type has a GGUF form and takes the tensor's rows; *main is
 * the ggml name of the type that holds most matrix elements. */
static int check_types(const char *path, const nx_model *m, const nx_gguf_export *o, const char **main,
                       nx_err *err) {
    size_t count[NX_DTYPE_COUNT] = {0};
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        nx_dtype t = out_type(p, o);
        uint32_t id;
        if (!nx_type(t)->weight || nx_ggml_type_of(t, &id)) {
            char list[256];
            nx_ggml_readable_types(list, sizeof list);
            return nx_fail(err, "%s: cannot write tensor '%s' as %s: GGUF has no such type in this nexus (use %s)",
                           path, p->name, nx_dtype_name(t), list);
        }
        int64_t cols = p->shape[p->ndim - 1];
        if (cols % nx_type(t)->block)
            return nx_fail(err, "%s: tensor '%s' has rows of %lld elements, not a whole number of %s blocks (%d); "
                                "export it in a type with smaller blocks",
                           path, p->name, (long long)cols, nx_dtype_name(t), nx_type(t)->block);
        if (p->ndim == 2) count[t] += p->numel;
    }
    int best = NX_F32;
    for (int t = 0; t < NX_DTYPE_COUNT; t++)
        if (count[t] > count[best]) best = t;
    *main = nx_dtype_name((nx_dtype)best);
    return NX_OK;
}

/* Tensor p of m in type t, in out: the bytes held when m holds it as t,
 * else widened to f32 and rounded (wide: p->numel floats of scratch). */
static void tensor_bytes(const nx_model *m, const nx_param *p, nx_dtype t, void *out, float *wide) {
    if (p->type == t) {
        const char *src = (const char *)m->data + p->off;
        if (m->be->host_memory) memcpy(out, src, p->nbytes);
        else nx_backend_download(m->be, out, src, p->nbytes);
        return;
    }
    nx_model_get(m, (int)(p - m->tab), wide);
    nx_convert(out, t, wide, NX_F32, (int64_t)p->numel);
}

int nx_gguf_save_model(const char *path, const nx_model *m, const nx_gguf_export *o, nx_err *err) {
    const char *ftype = "F32";
    if (check_types(path, m, o, &ftype, err)) return NX_ERR;
    const nx_model_config *c = &m->cfg;
    nx_gguf_writer *w = nx_gguf_writer_new();
    put_hparams(w, c, o, ftype);
    int rc = NX_OK;
    if (o->tok_from) copy_tokenizer(w, o->tok_from);
    else if (o->tok) rc = nx_gguf_put_tokenizer(w, o->tok, c->V, o->tok_config, err);
    if (rc) {
        nx_gguf_writer_free(w);
        return nx_fail_prefix(err, "%s", path);
    }
    nx_gguf_set_u32(w, "general.quantization_version", 2);
    /* tensors in Hugging Face name order, as the converter reads a checkpoint */
    const nx_param **ord = nx_xmalloc(sizeof *ord * (size_t)m->ntab);
    size_t total = 0, maxn = 1, maxb = 1;
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        ord[i] = p;
        size_t b = nx_row_bytes(out_type(p, o), (int64_t)p->numel);
        total += b;
        maxn = p->numel > maxn ? p->numel : maxn;
        maxb = b > maxb ? b : maxb;
    }
    qsort(ord, (size_t)m->ntab, sizeof *ord, by_hf_name);
    char *out = nx_xmalloc(total ? total : 1), *perm = nx_xmalloc(maxb);
    float *wide = nx_xmalloc(sizeof(float) * maxn);
    size_t at = 0;
    char name[128];
    for (int k = 0; k < m->ntab; k++) {
        const nx_param *p = ord[k];
        NX_ASSERT(nx_gguf_name_of(p->name, name, sizeof name) == NX_OK);
        nx_dtype t = out_type(p, o);
        size_t nbytes = nx_row_bytes(t, (int64_t)p->numel);
        tensor_bytes(m, p, t, out + at, wide);
        int heads = permute_heads(c, p->name); /* rows move whole, whatever their type */
        if (heads) {
            nx_gguf_permute_qk(perm, out + at, p->shape[0], nbytes / (size_t)p->shape[0], heads, true);
            memcpy(out + at, perm, nbytes);
        }
        uint32_t id;
        NX_ASSERT(nx_ggml_type_of(t, &id) == NX_OK);
        int64_t ne[2] = {p->shape[p->ndim - 1], p->ndim == 2 ? p->shape[0] : 1};
        nx_gguf_add_tensor(w, name, id, p->ndim, ne, out + at);
        at += nbytes;
    }
    rc = nx_gguf_write(w, path, err);
    nx_gguf_writer_free(w);
    free(ord);
    free(out);
    free(wide);
    free(perm);
    return rc;
}
