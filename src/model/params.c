/* params.c — the parameter table of a Llama-family model: names, shapes and
 * offsets into one flat f32 buffer, in Hugging Face order. Everything that
 * walks parameters (loading, saving, optimiser, gradient checks) walks this
 * one table, so a new tensor is added in exactly one place. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/model.h"

static const struct { const char *type, *cls; } ARCH[NX_ARCH_COUNT] = {
    [NX_ARCH_LLAMA] = {"llama", "LlamaForCausalLM"},
    [NX_ARCH_QWEN2] = {"qwen2", "Qwen2ForCausalLM"},
    [NX_ARCH_MISTRAL] = {"mistral", "MistralForCausalLM"},
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

const char *nx_arch_list(void) { return "llama, qwen2, mistral"; }

typedef struct {
    nx_param *tab;   /* when not NULL: fill the table */
    float *base;     /* when not NULL: bind pointers into base */
    int n;
    size_t off;
} builder;

/* Adds one tensor; returns its pointer in base (NULL when not binding). */
static float *add(builder *b, int ndim, int64_t d0, int64_t d1, const char *fmt, int layer) {
    size_t numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    if (b->tab) {
        nx_param *p = &b->tab[b->n];
        snprintf(p->name, sizeof p->name, fmt, layer);
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = ndim == 2 ? d1 : 0;
        p->offset = b->off;
        p->numel = numel;
    }
    float *ptr = b->base ? b->base + b->off : NULL;
    b->n++;
    /* keep every tensor 16-float (64-byte) aligned inside the buffer */
    b->off += (numel + 15) & ~(size_t)15;
    return ptr;
}

/* One layer's tensors, in HF order. */
static void add_layer(builder *b, const nx_model_config *c, int l, nx_layer_weights *lw) {
    int Q = c->NH * c->HS, KV = c->KVH * c->HS;
    lw->ln1 = add(b, 1, c->C, 0, "model.layers.%d.input_layernorm.weight", l);
    lw->wq = add(b, 2, Q, c->C, "model.layers.%d.self_attn.q_proj.weight", l);
    lw->bq = c->qkv_bias ? add(b, 1, Q, 0, "model.layers.%d.self_attn.q_proj.bias", l) : NULL;
    lw->wk = add(b, 2, KV, c->C, "model.layers.%d.self_attn.k_proj.weight", l);
    lw->bk = c->qkv_bias ? add(b, 1, KV, 0, "model.layers.%d.self_attn.k_proj.bias", l) : NULL;
    lw->wv = add(b, 2, KV, c->C, "model.layers.%d.self_attn.v_proj.weight", l);
    lw->bv = c->qkv_bias ? add(b, 1, KV, 0, "model.layers.%d.self_attn.v_proj.bias", l) : NULL;
    lw->wo = add(b, 2, c->C, Q, "model.layers.%d.self_attn.o_proj.weight", l);
    lw->bo = c->o_bias ? add(b, 1, c->C, 0, "model.layers.%d.self_attn.o_proj.bias", l) : NULL;
    lw->ln2 = add(b, 1, c->C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    lw->wg = add(b, 2, c->F, c->C, "model.layers.%d.mlp.gate_proj.weight", l);
    lw->wu = add(b, 2, c->F, c->C, "model.layers.%d.mlp.up_proj.weight", l);
    lw->wd = add(b, 2, c->C, c->F, "model.layers.%d.mlp.down_proj.weight", l);
}

/* The one walk over a model's tensors, in HF order. w may be NULL. */
static builder build(const nx_model_config *c, nx_param *tab, float *base, nx_weights *w) {
    builder b = {tab, base, 0, 0};
    nx_weights dummy;
    nx_layer_weights lw_dummy;
    if (!w) w = &dummy;
    w->wte = add(&b, 2, c->V, c->C, "model.embed_tokens.weight", 0);
    for (int l = 0; l < c->L; l++) add_layer(&b, c, l, w == &dummy ? &lw_dummy : &w->layer[l]);
    w->lnf = add(&b, 1, c->C, 0, "model.norm.weight", 0);
    w->head = c->tied ? w->wte : add(&b, 2, c->V, c->C, "lm_head.weight", 0);
    return b;
}

nx_layout nx_model_layout(const nx_model_config *c) {
    nx_layer_weights lw;
    builder emb = {0}, one = {0};
    add(&emb, 2, c->V, c->C, "", 0);
    add_layer(&one, c, 0, &lw);
    nx_layout o = {.layer0 = emb.off, .layer_span = one.off};
    o.lnf = o.layer0 + (size_t)c->L * o.layer_span;
    o.head = c->tied ? 0 : o.lnf + ((size_t)c->C + 15) / 16 * 16;
    return o;
}

void nx_layer_bind(nx_layer_weights *lw, const nx_model_config *c, float *base) {
    builder b = {NULL, base, 0, 0};
    add_layer(&b, c, 0, lw);
}

int nx_model_params(const nx_model_config *cfg, nx_param *tab) { return build(cfg, tab, NULL, NULL).n; }

size_t nx_model_numel(const nx_model_config *cfg) { return build(cfg, NULL, NULL, NULL).off; }

size_t nx_model_count(const nx_model_config *cfg) {
    int n = nx_model_params(cfg, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, tab);
    size_t s = 0;
    for (int i = 0; i < n; i++) s += tab[i].numel;
    free(tab);
    return s;
}

void nx_weights_bind(nx_weights *w, const nx_model_config *c, float *base) {
    NX_ASSERT(w->layer != NULL && base != NULL);
    build(c, NULL, base, w);
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
    if (!(c->eps > 0)) return nx_fail(err, "rms_norm_eps must be positive (got %g)", c->eps);
    if (!(c->rope_theta > 0)) return nx_fail(err, "rope_theta must be positive (got %g)", c->rope_theta);
    if (c->max_pos <= 0) return nx_fail(err, "max_position_embeddings must be positive");
    return NX_OK;
}

/* What every model starts with: a checked shape and its parameter count. */
static int model_shape(nx_model *m, const nx_model_config *cfg, nx_err *err) {
    memset(m, 0, sizeof *m);
    if (nx_model_config_check(cfg, err)) return NX_ERR;
    m->cfg = *cfg;
    m->nparams = nx_model_numel(cfg);
    return NX_OK;
}

int nx_model_init(nx_model *m, const nx_model_config *cfg, nx_err *err) {
    if (model_shape(m, cfg, err)) return NX_ERR;
    m->params = nx_aligned_alloc(m->nparams * sizeof(float));
    m->layer_store = nx_xcalloc(cfg->L, sizeof *m->layer_store);
    m->w.layer = m->layer_store;
    nx_weights_bind(&m->w, cfg, m->params);
    return NX_OK;
}

void nx_model_init_random(nx_model *m, float std, nx_rng *rng) {
    int n = nx_model_params(&m->cfg, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(&m->cfg, tab);
    for (int i = 0; i < n; i++) {
        float *p = m->params + tab[i].offset;
        const char *nm = tab[i].name;
        bool norm = strstr(nm, "norm") != NULL, bias = strstr(nm, ".bias") != NULL;
        for (size_t k = 0; k < tab[i].numel; k++)
            p[k] = norm ? 1.0f : bias ? 0.0f : std * nx_rng_normal(rng);
    }
    free(tab);
}

float *nx_model_reserve(nx_model *m, size_t extra) {
    float *p = nx_aligned_alloc((m->nparams + extra) * sizeof(float));
    memcpy(p, m->params, m->nparams * sizeof(float));
    free(m->params);
    m->params = p;
    m->nextra = extra;
    nx_weights_bind(&m->w, &m->cfg, p);
    return p + m->nparams;
}

/* The bf16 forward's staging buffer: one layer, or the final norm and head. */
static size_t stage_floats(const nx_model_config *cfg) {
    size_t span = nx_model_layout(cfg).layer_span;
    size_t head = ((size_t)cfg->C + 15) / 16 * 16 + (size_t)cfg->V * cfg->C;
    return span > head ? span : head;
}

size_t nx_model_bytes(const nx_model_config *cfg, nx_dtype hold) {
    size_t n = nx_model_numel(cfg);
    return hold == NX_BF16 ? 2 * n + 4 * stage_floats(cfg) : 4 * n;
}

int nx_model_init_bf16(nx_model *m, const nx_model_config *cfg, nx_err *err) {
    if (model_shape(m, cfg, err)) return NX_ERR;
    m->params16 = nx_aligned_alloc(m->nparams * sizeof(uint16_t));
    m->stage = nx_aligned_alloc(stage_floats(cfg) * sizeof(float));
    return NX_OK;
}

void nx_model_read(const nx_model *m, size_t off, size_t n, float *dst) {
    NX_ASSERT(off + n <= m->nparams);
    if (m->params16) nx_convert_to_f32(dst, m->params16 + off, NX_BF16, n);
    else memcpy(dst, m->params + off, n * sizeof(float));
}

void nx_model_free(nx_model *m) {
    free(m->params16);
    free(m->stage);
    free(m->params);
    free(m->layer_store);
    memset(m, 0, sizeof *m);
}
