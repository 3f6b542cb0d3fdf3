/* model.c — the parameter table of a Llama-family model and models held
 * on a backend: names, shapes, types and byte offsets into one buffer.
 * Everything that walks parameters (loading, saving, the optimiser,
 * gradient checks) walks this one table, so a new tensor is added in
 * exactly one place.
 *
 * Layout, per layer: input norm | q, k, v weights back to back | their
 * biases | q and k norms (qwen3) | o weight | o bias | post-attention norm | gate, up weights back
 * to back | down weight. Each group starts 64-byte aligned and the tensors
 * of a group are contiguous, so q/k/v and gate/up are each one matrix for
 * the forward (rows stacked), whatever the shapes. Matrices (embeddings
 * and head included) take the model's weight type; norms and biases f32. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/model.h"

static const struct { const char *type, *cls; } ARCH[NX_ARCH_COUNT] = {
    [NX_ARCH_LLAMA] = {"llama", "LlamaForCausalLM"},
    [NX_ARCH_QWEN2] = {"qwen2", "Qwen2ForCausalLM"},
    [NX_ARCH_MISTRAL] = {"mistral", "MistralForCausalLM"},
    [NX_ARCH_QWEN3] = {"qwen3", "Qwen3ForCausalLM"},
};

const char *nx_arch_name(nx_arch a) {
    NX_ASSERT((unsigned)a < NX_ARCH_COUNT);
    return ARCH[a].type;
}

const char *nx_arch_class(nx_arch a) {
    NX_ASSERT((unsigned)a < NX_ARCH_COUNT);
    return ARCH[a].cls;
}

int nx_arch_parse(const char *model_type, nx_arch *out) {
    for (int a = 0; a < NX_ARCH_COUNT; a++)
        if (!strcmp(model_type, ARCH[a].type)) {
            *out = (nx_arch)a;
            return NX_OK;
        }
    return NX_ERR;
}

const char *nx_arch_list(void) { return "llama, qwen2, qwen3, mistral"; }

typedef struct {
    nx_param *tab;   /* when not NULL: fill the table */
    char *base;      /* when not NULL: views point into base */
    nx_backend *be;
    nx_dtype wt;     /* the matrices' type, unless gt */
    const nx_group_type *gt; /* when not NULL: each matrix group's type */
    int n;
    size_t off;      /* bytes */
} builder;

/* The type of matrix group g (nx_model_group). */
static nx_group_type gtype(const builder *b, int g) {
    return b->gt ? b->gt[g] : (nx_group_type){b->wt, NX_ACT_BLOCK, 0};
}

static void group(builder *b) { b->off = (b->off + 63) & ~(size_t)63; }

/* Adds one tensor of type t; returns where it lives in base (NULL when not binding). */
static void *add(builder *b, nx_dtype t, int ndim, int64_t d0, int64_t d1, const char *fmt, int layer) {
    size_t numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    size_t bytes = ndim == 2 ? (size_t)d0 * nx_row_bytes(t, d1) : nx_row_bytes(t, d0);
    if (b->tab) {
        nx_param *p = &b->tab[b->n];
        snprintf(p->name, sizeof p->name, fmt, layer);
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = ndim == 2 ? d1 : 0;
        p->type = t;
        p->off = b->off;
        p->nbytes = bytes;
        p->numel = numel;
    }
    void *ptr = b->base ? b->base + b->off : NULL;
    b->n++;
    b->off += bytes;
    return ptr;
}

static nx_weight matrix(builder *b, int g, int rows, int cols, void *data) {
    nx_group_type t = gtype(b, g);
    nx_weight w = nx_weight_view(b->be, t.type, rows, cols, data);
    w.act = t.act, w.act_scale = t.act_scale;
    return w;
}

/* One layer's tensors. */
static void add_layer(builder *b, const nx_model_config *c, int l, nx_layer_weights *lw) {
    int Q = c->NH * c->HS, KV = c->KVH * c->HS;
    int g = 1 + 4 * l;
    nx_dtype wt = gtype(b, g + NX_GROUP_QKV).type;
    group(b);
    lw->ln1 = add(b, NX_F32, 1, c->C, 0, "model.layers.%d.input_layernorm.weight", l);
    group(b);
    void *q = add(b, wt, 2, Q, c->C, "model.layers.%d.self_attn.q_proj.weight", l);
    add(b, wt, 2, KV, c->C, "model.layers.%d.self_attn.k_proj.weight", l);
    add(b, wt, 2, KV, c->C, "model.layers.%d.self_attn.v_proj.weight", l);
    lw->qkv = matrix(b, g + NX_GROUP_QKV, Q + 2 * KV, c->C, q);
    lw->bqkv = NULL;
    if (c->qkv_bias) {
        group(b);
        lw->bqkv = add(b, NX_F32, 1, Q, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        add(b, NX_F32, 1, KV, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        add(b, NX_F32, 1, KV, 0, "model.layers.%d.self_attn.v_proj.bias", l);
    }
    lw->qn = lw->kn = NULL;
    if (c->qk_norm) {
        group(b);
        lw->qn = add(b, NX_F32, 1, c->HS, 0, "model.layers.%d.self_attn.q_norm.weight", l);
        lw->kn = add(b, NX_F32, 1, c->HS, 0, "model.layers.%d.self_attn.k_norm.weight", l);
    }
    group(b);
    wt = gtype(b, g + NX_GROUP_O).type;
    lw->o = matrix(b, g + NX_GROUP_O, c->C, Q, add(b, wt, 2, c->C, Q, "model.layers.%d.self_attn.o_proj.weight", l));
    lw->bo = NULL;
    if (c->o_bias) {
        group(b);
        lw->bo = add(b, NX_F32, 1, c->C, 0, "model.layers.%d.self_attn.o_proj.bias", l);
    }
    group(b);
    lw->ln2 = add(b, NX_F32, 1, c->C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    group(b);
    wt = gtype(b, g + NX_GROUP_GU).type;
    void *gp = add(b, wt, 2, c->F, c->C, "model.layers.%d.mlp.gate_proj.weight", l);
    add(b, wt, 2, c->F, c->C, "model.layers.%d.mlp.up_proj.weight", l);
    lw->gu = matrix(b, g + NX_GROUP_GU, 2 * c->F, c->C, gp);
    group(b);
    wt = gtype(b, g + NX_GROUP_DOWN).type;
    lw->down = matrix(b, g + NX_GROUP_DOWN, c->C, c->F, add(b, wt, 2, c->C, c->F, "model.layers.%d.mlp.down_proj.weight", l));
}

/* The one walk over a model's tensors. w may be NULL. */
static builder build(const nx_model_config *c, nx_dtype wt, const nx_group_type *gt, nx_param *tab, nx_backend *be,
                     void *base, nx_weights *w) {
    NX_ASSERTM(gt || nx_type(wt)->weight, "not a weight type");
    builder b = {tab, base, be, wt, gt, 0, 0};
    nx_weights dummy;
    nx_layer_weights lw_dummy;
    if (!w) w = &dummy;
    int head = 4 * c->L + 1;
    w->wte = matrix(&b, 0, c->V, c->C, add(&b, gtype(&b, 0).type, 2, c->V, c->C, "model.embed_tokens.weight", 0));
    for (int l = 0; l < c->L; l++) add_layer(&b, c, l, w == &dummy ? &lw_dummy : &w->layer[l]);
    group(&b);
    w->lnf = add(&b, NX_F32, 1, c->C, 0, "model.norm.weight", 0);
    if (c->tied) {
        w->head = w->wte;
    } else {
        group(&b);
        w->head = matrix(&b, head, c->V, c->C, add(&b, gtype(&b, head).type, 2, c->V, c->C, "lm_head.weight", 0));
    }
    group(&b);
    return b;
}

int nx_model_params(const nx_model_config *cfg, nx_dtype wtype, nx_param *tab) {
    return build(cfg, wtype, NULL, tab, NULL, NULL, NULL).n;
}

size_t nx_model_size(const nx_model_config *cfg, nx_dtype wtype) {
    return build(cfg, wtype, NULL, NULL, NULL, NULL, NULL).off;
}

int nx_model_ngroups(const nx_model_config *cfg) { return 4 * cfg->L + 2; }

int nx_model_group(const nx_model_config *cfg, const char *name) {
    int l;
    char rest[96];
    if (!strcmp(name, "model.embed_tokens.weight")) return 0;
    if (!strcmp(name, "lm_head.weight")) return cfg->tied ? 0 : 4 * cfg->L + 1;
    if (sscanf(name, "model.layers.%d.%95s", &l, rest) != 2 || l < 0 || l >= cfg->L) return -1;
    static const struct { const char *name; int k; } G[] = {
        {"self_attn.q_proj.weight", NX_GROUP_QKV}, {"self_attn.k_proj.weight", NX_GROUP_QKV},
        {"self_attn.v_proj.weight", NX_GROUP_QKV}, {"self_attn.o_proj.weight", NX_GROUP_O},
        {"mlp.gate_proj.weight", NX_GROUP_GU},     {"mlp.up_proj.weight", NX_GROUP_GU},
        {"mlp.down_proj.weight", NX_GROUP_DOWN}};
    for (size_t i = 0; i < sizeof G / sizeof G[0]; i++)
        if (!strcmp(rest, G[i].name)) return 1 + 4 * l + G[i].k;
    return -1;
}

void nx_model_group_shape(const nx_model_config *c, int g, int *rows, int *cols) {
    int Q = c->NH * c->HS, KV = c->KVH * c->HS;
    if (g == 0 || g == 4 * c->L + 1) {
        *rows = c->V, *cols = c->C;
        return;
    }
    switch ((g - 1) % 4) {
    case NX_GROUP_QKV: *rows = Q + 2 * KV, *cols = c->C; break;
    case NX_GROUP_O: *rows = c->C, *cols = Q; break;
    case NX_GROUP_GU: *rows = 2 * c->F, *cols = c->C; break;
    default: *rows = c->C, *cols = c->F; break;
    }
}

int nx_model_params_typed(const nx_model_config *cfg, const nx_group_type *gt, nx_param *tab) {
    return build(cfg, NX_F32, gt, tab, NULL, NULL, NULL).n;
}

size_t nx_model_size_typed(const nx_model_config *cfg, const nx_group_type *gt) {
    return build(cfg, NX_F32, gt, NULL, NULL, NULL, NULL).off;
}

size_t nx_model_numel(const nx_model_config *cfg) { return nx_model_size(cfg, NX_F32) / sizeof(float); }

size_t nx_model_count(const nx_model_config *cfg) {
    int n = nx_model_params(cfg, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, NX_F32, tab);
    size_t s = 0;
    for (int i = 0; i < n; i++) s += tab[i].numel;
    free(tab);
    return s;
}

void nx_weights_bind(nx_weights *w, const nx_model_config *c, nx_dtype wtype, nx_backend *be, void *base) {
    NX_ASSERT(w->layer != NULL && base != NULL);
    build(c, wtype, NULL, NULL, be, base, w);
}

int nx_model_config_check(const nx_model_config *c, nx_err *err) {
    if (c->V <= 0 || c->C <= 0 || c->L <= 0 || c->NH <= 0 || c->KVH <= 0 || c->HS <= 0 || c->F <= 0)
        return nx_fail(err, "model shape must be positive: vocab %d, hidden %d, layers %d, heads %d, "
                            "kv heads %d, head_dim %d, intermediate %d",
                       c->V, c->C, c->L, c->NH, c->KVH, c->HS, c->F);
    if (c->NH % c->KVH)
        return nx_fail(err, "num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
                       c->NH, c->KVH);
    if (c->HS % 2) return nx_fail(err, "head_dim (%d) must be even for rotary embeddings", c->HS);
    if (!(c->eps > 0) || !isfinite(c->eps))
        return nx_fail(err, "rms_norm_eps must be positive and finite (got %g)", c->eps);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return nx_fail(err, "rope_theta must be positive and finite (got %g)", c->rope_theta);
    if (c->max_pos <= 0) return nx_fail(err, "max_position_embeddings must be positive");
    if (c->window < 0 || c->window_from < 0 || c->window_from > c->L)
        return nx_fail(err, "sliding window %d from layer %d: the window must be ≥ 0 and the layer in 0..%d",
                       c->window, c->window_from, c->L);
    const nx_rope_scaling *r = &c->rope;
    if (r->type != NX_ROPE_DEFAULT && !(r->factor > 0))
        return nx_fail(err, "rope scaling factor must be positive (got %g)", r->factor);
    if ((r->type == NX_ROPE_LLAMA3 || r->type == NX_ROPE_YARN) && r->original_max_pos <= 0)
        return nx_fail(err, "rope scaling needs original_max_position_embeddings > 0");
    if (r->type == NX_ROPE_LLAMA3 && !(r->high_freq_factor > r->low_freq_factor && r->low_freq_factor > 0))
        return nx_fail(err, "llama3 rope needs 0 < low_freq_factor < high_freq_factor (got %g, %g)",
                       r->low_freq_factor, r->high_freq_factor);
    if (r->type == NX_ROPE_DYNAMIC && r->max_pos <= 0)
        return nx_fail(err, "dynamic rope needs max_position_embeddings");
    /* Sizes in 64 bits (the count in double, which cannot overflow): the
     * stacked q/k/v and gate/up row counts are ints in the forward, and the
     * parameters must be countable in size_t with room to spare (2^46). */
    int64_t Q = (int64_t)c->NH * c->HS, QKV = Q + 2 * (int64_t)c->KVH * c->HS, C = c->C, F = c->F;
    double n = (double)c->V * C * (c->tied ? 1 : 2) +
               (double)c->L * ((double)QKV * C + (double)C * Q + 3.0 * F * C + QKV + 3.0 * C) + C;
    if (c->L > NX_MAX_LAYERS)
        return nx_fail(err, "%d layers: more than nexus holds (%d)", c->L, NX_MAX_LAYERS);
    if (QKV > INT_MAX || 2 * F > INT_MAX || n > 0x1p46)
        return nx_fail(err, "model shape too large to hold: %d heads x head_dim %d (q/k/v rows %lld), "
                            "intermediate %d, about %.3g parameters", c->NH, c->HS, (long long)QKV, c->F, n);
    return NX_OK;
}


/* Elements of the largest matrix: what linear widens into the workspace
 * when the weights are not f32. */
static size_t largest_matrix(const nx_model_config *c) {
    size_t Q = (size_t)c->NH * c->HS, KV = (size_t)c->KVH * c->HS, C = (size_t)c->C;
    size_t m = (size_t)c->V * C, cand[] = {(Q + 2 * KV) * C, C * Q, 2 * (size_t)c->F * C};
    for (int i = 0; i < 3; i++) m = cand[i] > m ? cand[i] : m;
    return m;
}

size_t nx_model_bytes(const nx_model_config *cfg, nx_dtype wtype) {
    return nx_model_size(cfg, wtype) + (wtype == NX_F32 ? 0 : sizeof(float) * largest_matrix(cfg));
}

/* The one allocation of a model: uniform type wtype, or per group (gt). */
static int init_model(nx_model *m, const nx_model_config *cfg, nx_dtype wtype, const nx_group_type *gt,
                      nx_backend *be, nx_err *err) {
    memset(m, 0, sizeof *m);
    if (nx_model_config_check(cfg, err)) return NX_ERR;
    int ng = nx_model_ngroups(cfg);
    bool all_f32 = true;
    for (int g = 0; g < (gt ? ng : 1); g++) {
        nx_dtype t = gt ? gt[g].type : wtype;
        if (gt && cfg->tied && g == ng - 1) continue; /* a tied head is the embeddings */
        if (!nx_type(t)->weight || !nx_backend_supports_weight(be, t))
            return nx_fail(err, "the %s backend cannot hold weights of type %s", be->name, nx_dtype_name(t));
        if (gt) {
            int rows, cols;
            nx_model_group_shape(cfg, g, &rows, &cols);
            if (cols % nx_type(t)->block)
                return nx_fail(err, "matrix group %d has rows of %d elements, not a multiple of %s's block of %d",
                               g, cols, nx_dtype_name(t), nx_type(t)->block);
        }
        all_f32 = all_f32 && t == NX_F32;
    }
    if (!all_f32 && nx_backend_plan(be, &(nx_work){.weight_elems = (int64_t)largest_matrix(cfg)}, err))
        return NX_ERR;
    m->cfg = *cfg;
    m->be = be;
    m->wtype = gt ? gt[1 + NX_GROUP_GU].type : wtype;
    m->nbytes = build(cfg, wtype, gt, NULL, NULL, NULL, NULL).off;
    if (!(m->data = nx_backend_alloc(be, m->nbytes, "model weights", err))) return NX_ERR;
    m->ntab = build(cfg, wtype, gt, NULL, NULL, NULL, NULL).n;
    m->tab = nx_xmalloc(sizeof *m->tab * m->ntab);
    build(cfg, wtype, gt, m->tab, NULL, NULL, NULL);
    m->layer_store = nx_xcalloc(cfg->L, sizeof *m->layer_store);
    m->w.layer = m->layer_store;
    build(cfg, wtype, gt, NULL, be, m->data, &m->w);
    if (gt) {
        m->groups = nx_xmalloc(sizeof *m->groups * ng);
        memcpy(m->groups, gt, sizeof *m->groups * ng);
    }
    if (all_f32 && !gt) {
        m->params = m->data;
        m->nparams = m->nbytes / sizeof(float);
    }
    return NX_OK;
}

int nx_model_init_on(nx_model *m, const nx_model_config *cfg, nx_dtype wtype, nx_backend *be, nx_err *err) {
    return init_model(m, cfg, wtype, NULL, be, err);
}

int nx_model_init_typed(nx_model *m, const nx_model_config *cfg, const nx_group_type *gt, nx_backend *be,
                        nx_err *err) {
    return init_model(m, cfg, NX_F32, gt, be, err);
}

nx_group_type nx_model_group_type(const nx_model *m, int g) {
    NX_ASSERT(g >= 0 && g < nx_model_ngroups(&m->cfg));
    return m->groups ? m->groups[g] : (nx_group_type){m->wtype, NX_ACT_BLOCK, 0};
}

int nx_model_init(nx_model *m, const nx_model_config *cfg, nx_err *err) {
    return nx_model_init_on(m, cfg, NX_F32, nx_backend_cpu(), err);
}

int nx_model_find(const nx_model *m, const char *name) {
    for (int i = 0; i < m->ntab; i++)
        if (!strcmp(m->tab[i].name, name)) return i;
    return -1;
}

void nx_model_set(nx_model *m, int i, const void *src, nx_dtype st) {
    NX_ASSERT(i >= 0 && i < m->ntab);
    const nx_param *p = &m->tab[i];
    char *dst = (char *)m->data + p->off;
    if (m->be->host_memory) {
        nx_convert(dst, p->type, src, st, (int64_t)p->numel);
        return;
    }
    void *tmp = nx_xmalloc(p->nbytes);
    nx_convert(tmp, p->type, src, st, (int64_t)p->numel);
    nx_backend_upload(m->be, dst, tmp, p->nbytes);
    free(tmp);
}

void nx_model_get(const nx_model *m, int i, float *dst) {
    NX_ASSERT(i >= 0 && i < m->ntab);
    const nx_param *p = &m->tab[i];
    const char *src = (const char *)m->data + p->off;
    if (m->be->host_memory) {
        nx_convert(dst, NX_F32, src, p->type, (int64_t)p->numel);
        return;
    }
    void *tmp = nx_xmalloc(p->nbytes);
    nx_backend_download(m->be, tmp, src, p->nbytes);
    nx_convert(dst, NX_F32, tmp, p->type, (int64_t)p->numel);
    free(tmp);
}

/* Norms 1, biases 0, matrices normal(0, std): drawn in order from rng, or
 * (rng NULL) in chunks of 2^20 values, each from its own stream of seed,
 * on every core. */
static void init_random(nx_model *m, float std, nx_rng *rng, uint64_t seed) {
    const size_t chunk = (size_t)1 << 20;
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        float *v = nx_xmalloc(sizeof(float) * p->numel);
        bool norm = strstr(p->name, "norm") != NULL, bias = strstr(p->name, ".bias") != NULL;
        if (norm || bias) {
            for (size_t k = 0; k < p->numel; k++) v[k] = norm ? 1.0f : 0.0f;
        } else if (rng) {
            for (size_t k = 0; k < p->numel; k++) v[k] = std * nx_rng_normal(rng);
        } else {
            int64_t nc = (int64_t)((p->numel + chunk - 1) / chunk);
#pragma omp parallel for schedule(dynamic)
            for (int64_t c = 0; c < nc; c++) {
                nx_rng r;
                nx_rng_seed(&r, seed ^ ((uint64_t)i << 40) ^ (uint64_t)c * 0x9e3779b97f4a7c15ull);
                size_t end = (size_t)(c + 1) * chunk < p->numel ? (size_t)(c + 1) * chunk : p->numel;
                for (size_t k = (size_t)c * chunk; k < end; k++) v[k] = std * nx_rng_normal(&r);
            }
        }
        nx_model_set(m, i, v, NX_F32);
        free(v);
    }
}

void nx_model_init_random(nx_model *m, float std, nx_rng *rng) { init_random(m, std, rng, 0); }

void nx_model_init_random_parallel(nx_model *m, float std, uint64_t seed) { init_random(m, std, NULL, seed); }

static void bind_bf16(nx_weight *w, const float *params, const void *p16) {
    w->bf16 = p16 ? (const uint16_t *)p16 + ((const float *)w->data - params) : NULL;
}

void nx_model_bind_bf16(nx_model *m, const void *p16) {
    NX_ASSERTM(m->params, "a bf16 copy is of f32 weights");
    for (int l = 0; l < m->cfg.L; l++) {
        nx_layer_weights *w = &m->w.layer[l];
        bind_bf16(&w->qkv, m->params, p16), bind_bf16(&w->o, m->params, p16);
        bind_bf16(&w->gu, m->params, p16), bind_bf16(&w->down, m->params, p16);
    }
    bind_bf16(&m->w.head, m->params, p16);
}

float *nx_model_reserve(nx_model *m, size_t extra, nx_err *err) {
    NX_ASSERTM(m->params, "only an f32 model trains parameters of its own");
    size_t own = m->nparams * sizeof(float);
    float *p = nx_backend_alloc(m->be, own + extra * sizeof(float), "model and trainer parameters", err);
    if (!p) return NULL;
    nx_backend_copy(m->be, p, m->data, own);
    nx_backend_free(m->be, m->data);
    m->data = m->params = p;
    m->nbytes = own + extra * sizeof(float);
    m->nextra = extra;
    nx_weights_bind(&m->w, &m->cfg, NX_F32, m->be, p);
    return p + m->nparams;
}

void nx_model_free(nx_model *m) {
    if (m->be) nx_backend_free(m->be, m->data);
    free(m->groups);
    free(m->tab);
    free(m->layer_store);
    memset(m, 0, sizeof *m);
}
