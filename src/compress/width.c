/* width.c — structured pruning (see prune.h): target shapes, fitting a
 * parameter budget, ranking by activation importance into a plan, and
 * copying the kept weights into the smaller model.
 *
 * Every axis is pruned the same way in every kept layer (the config has
 * one intermediate_size and one head count), but which neurons and heads
 * stay is decided per layer. Hidden channels are one choice for the whole
 * residual stream: embeddings, every norm, every matrix's input columns
 * and the o/down output rows, and the head's columns lose the same
 * channels. Nothing kept is rescaled: an RMSNorm over fewer channels
 * normalises by their own mean square, as Minitron does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/prune.h"

/* ---- shapes ---- */

int nx_prune_shape_resolve(const nx_model_config *s, const nx_prune_shape *w, nx_model_config *o, nx_err *err) {
    *o = *s;
    const struct { const char *name; int want, have; } ax[] = {
        {"hidden size", w->hidden, s->C}, {"intermediate (FFN) size", w->ffn, s->F},
        {"attention heads", w->heads, s->NH}, {"KV heads", w->kv_heads, s->KVH}, {"layers", w->layers, s->L}};
    for (int i = 0; i < 5; i++) {
        if (ax[i].want < 0) return nx_fail(err, "target %s %d must be positive", ax[i].name, ax[i].want);
        if (ax[i].want > ax[i].have)
            return nx_fail(err, "target %s %d is larger than the model's %d: pruning only removes",
                           ax[i].name, ax[i].want, ax[i].have);
    }
    int per = s->NH / s->KVH; /* query heads per KV group */
    int kvh = w->kv_heads, nh = w->heads;
    if (nh && !kvh) {
        if (nh % per)
            return nx_fail(err, "%d attention heads is not a whole number of the model's KV groups (%d heads each, "
                                "%d groups): give a multiple of %d, or num_kv_heads too", nh, per, s->KVH, per);
        kvh = nh / per;
    }
    if (kvh && !nh) nh = kvh * per;
    if (kvh) {
        if (nh % kvh)
            return nx_fail(err, "%d attention heads cannot share %d KV heads evenly: give a multiple of %d", nh, kvh, kvh);
        if (nh / kvh > per)
            return nx_fail(err, "%d heads over %d KV heads is %d per group, more than the model's %d: pruning keeps "
                                "whole KV groups and cannot regroup heads", nh, kvh, nh / kvh, per);
        o->NH = nh, o->KVH = kvh;
    }
    if (w->hidden) o->C = w->hidden;
    if (w->ffn) o->F = w->ffn;
    if (w->layers) o->L = w->layers;
    /* nexus runs any head_dim, but transformers' LlamaConfig (5.x) refuses a
     * hidden size that is not a multiple of the head count, head_dim given
     * or not: the pruned model must load there */
    if (o->C % o->NH)
        return nx_fail(err, "hidden size %d is not a multiple of the %d attention heads: transformers refuses to load "
                            "such a config; give a multiple of %d", o->C, o->NH, o->NH);
    return nx_model_config_check(o, err);
}

static void shape_at(const nx_model_config *s, double f, unsigned axes, int mult, nx_prune_shape *o) {
    memset(o, 0, sizeof *o);
    if (axes & NX_AXIS_HIDDEN) {
        int c = (int)floor(f * s->C) / mult * mult;
        o->hidden = c < mult ? (mult <= s->C ? mult : s->C) : c;
    }
    if (axes & NX_AXIS_FFN) {
        int c = (int)floor(f * s->F) / mult * mult;
        o->ffn = c < mult ? (mult <= s->F ? mult : s->F) : c;
    }
    if (axes & NX_AXIS_HEADS) {
        int g = (int)floor(f * s->KVH);
        o->kv_heads = g < 1 ? 1 : g;
    }
    if (axes & NX_AXIS_LAYERS) {
        int l = (int)floor(f * s->L);
        o->layers = l < 1 ? 1 : l;
    }
}

int nx_prune_fit(const nx_model_config *s, int64_t target, unsigned axes, int multiple, nx_prune_shape *out,
                 nx_err *err) {
    int64_t have = (int64_t)nx_model_count(s);
    if (!axes) return nx_fail(err, "name at least one axis to prune (hidden, ffn, heads, layers)");
    if (multiple < 1) multiple = 1;
    if (target <= 0) return nx_fail(err, "target parameter count %lld must be positive", (long long)target);
    if (target > have)
        return nx_fail(err, "target of %lld parameters is larger than the model's %lld: pruning only removes",
                       (long long)target, (long long)have);
    for (int k = 4096; k >= 0; k--) {
        nx_prune_shape sh;
        nx_model_config c;
        shape_at(s, k / 4096.0, axes, multiple, &sh);
        if (nx_prune_shape_resolve(s, &sh, &c, NULL)) continue;
        if ((int64_t)nx_model_count(&c) <= target) {
            *out = sh;
            return NX_OK;
        }
    }
    return nx_fail(err, "no shape that shrinks only the named axes has %lld parameters or fewer; name more axes",
                   (long long)target);
}

/* ---- plans ---- */

typedef struct {
    double v;
    int i;
} ranked;

static int by_importance(const void *a, const void *b) { /* descending, ties to the lower index */
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int ascending(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* The k most important of v[0..n) into out, ascending. */
static void top_k(const double *v, int n, int k, int *out) {
    ranked *r = nx_xmalloc(sizeof *r * n);
    for (int i = 0; i < n; i++) r[i] = (ranked){v[i], i};
    qsort(r, n, sizeof *r, by_importance);
    for (int i = 0; i < k; i++) out[i] = r[i].i;
    qsort(out, k, sizeof(int), ascending);
    free(r);
}

static void plan_alloc(nx_prune_plan *p, const nx_model_config *src, const nx_model_config *dst) {
    memset(p, 0, sizeof *p);
    p->src = *src, p->dst = *dst;
    p->layers = nx_xmalloc(sizeof(int) * dst->L);
    p->hidden = nx_xmalloc(sizeof(int) * dst->C);
    p->groups = nx_xmalloc(sizeof(int) * dst->L * dst->KVH);
    p->heads = nx_xmalloc(sizeof(int) * dst->L * dst->NH);
    p->ffn = nx_xmalloc(sizeof(int) * dst->L * dst->F);
}

/* Query heads of kept groups: each group keeps its `per` most important
 * heads (all of them when the count per group is unchanged). */
static void heads_of_groups(const nx_model_config *s, const nx_model_config *d, const double *head, const int *groups,
                            int *out) {
    int sp = s->NH / s->KVH, dp = d->NH / d->KVH;
    for (int g = 0; g < d->KVH; g++) {
        int sg = groups[g];
        top_k(head + sg * sp, sp, dp, out + g * dp);
        for (int k = 0; k < dp; k++) out[g * dp + k] += sg * sp;
    }
}

void nx_prune_plan_make(nx_prune_plan *p, const nx_calib *c, const nx_model_config *dst, const double *layer_score) {
    const nx_model_config *s = &c->cfg;
    NX_ASSERT(c->rows > 0);
    plan_alloc(p, s, dst);
    int sp = s->NH / s->KVH;
    /* layers: block influence (or the caller's score), the highest kept */
    top_k(layer_score ? layer_score : c->bi, s->L, dst->L, p->layers);
    /* hidden channels: |RMSNorm output| over both norms of every layer */
    double *hid = nx_xcalloc(s->C, sizeof(double));
    for (int l = 0; l < s->L; l++)
        for (int k = 0; k < s->C; k++) hid[k] += c->ln1_abs[(size_t)l * s->C + k] + c->ln2_abs[(size_t)l * s->C + k];
    top_k(hid, s->C, dst->C, p->hidden);
    free(hid);
    double *grp = nx_xmalloc(sizeof(double) * s->KVH);
    for (int i = 0; i < dst->L; i++) {
        int l = p->layers[i];
        const double *head = c->head + (size_t)l * s->NH;
        for (int g = 0; g < s->KVH; g++) {
            grp[g] = 0;
            for (int h = 0; h < sp; h++) grp[g] += head[g * sp + h];
        }
        top_k(grp, s->KVH, dst->KVH, p->groups + (size_t)i * dst->KVH);
        heads_of_groups(s, dst, head, p->groups + (size_t)i * dst->KVH, p->heads + (size_t)i * dst->NH);
        top_k(c->h_abs + (size_t)l * s->F, s->F, dst->F, p->ffn + (size_t)i * dst->F);
    }
    free(grp);
}

static void copy_or_iota(int *dst, const int *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = src ? src[i] : i;
}

void nx_prune_plan_from(nx_prune_plan *p, const nx_model_config *src, const nx_model_config *dst, const int *layers,
                        const int *hidden, const int *groups, const int *heads, const int *ffn) {
    plan_alloc(p, src, dst);
    copy_or_iota(p->layers, layers, dst->L);
    copy_or_iota(p->hidden, hidden, dst->C);
    int dp = dst->NH / dst->KVH, sp = src->NH / src->KVH;
    for (int i = 0; i < dst->L; i++) {
        copy_or_iota(p->groups + i * dst->KVH, groups ? groups + i * dst->KVH : NULL, dst->KVH);
        for (int g = 0; g < dst->KVH; g++)
            for (int k = 0; k < dp; k++)
                p->heads[i * dst->NH + g * dp + k] =
                    heads ? heads[i * dst->NH + g * dp + k] : p->groups[i * dst->KVH + g] * sp + k;
        copy_or_iota(p->ffn + i * dst->F, ffn ? ffn + i * dst->F : NULL, dst->F);
    }
    /* lists ascending and in range; heads inside their groups */
    for (int i = 0; i < dst->L; i++) NX_ASSERT(p->layers[i] < src->L && (i == 0 || p->layers[i] > p->layers[i - 1]));
    for (int i = 0; i < dst->C; i++) NX_ASSERT(p->hidden[i] < src->C && (i == 0 || p->hidden[i] > p->hidden[i - 1]));
    for (int i = 0; i < dst->L; i++)
        for (int g = 0; g < dst->KVH; g++) {
            int sg = p->groups[i * dst->KVH + g];
            NX_ASSERT(sg < src->KVH && (g == 0 || sg > p->groups[i * dst->KVH + g - 1]));
            for (int k = 0; k < dp; k++) {
                int h = p->heads[i * dst->NH + g * dp + k];
                NX_ASSERT(h / sp == sg && (k == 0 || h > p->heads[i * dst->NH + g * dp + k - 1]));
            }
        }
}

void nx_prune_plan_free(nx_prune_plan *p) {
    free(p->layers), free(p->hidden), free(p->groups), free(p->heads), free(p->ffn);
    memset(p, 0, sizeof *p);
}

/* ---- applying a plan ---- */

/* dst (R, K) = src rows rows[0..R) and columns cols[0..K) of a matrix of
 * width W (NULL: the identity list). */
static void gather(float *dst, const float *src, int W, const int *rows, int R, const int *cols, int K) {
    for (int r = 0; r < R; r++) {
        const float *s = src + (size_t)(rows ? rows[r] : r) * W;
        for (int k = 0; k < K; k++) dst[(size_t)r * K + k] = s[cols ? cols[k] : k];
    }
}

/* Row indices of q (by kept heads) or k/v (by kept groups): blocks of HS. */
static int *block_rows(const int *blocks, int n, int HS) {
    int *r = nx_xmalloc(sizeof(int) * n * HS);
    for (int b = 0; b < n; b++)
        for (int d = 0; d < HS; d++) r[b * HS + d] = blocks[b] * HS + d;
    return r;
}

typedef struct {
    const nx_model *src;
    nx_model *dst;
    float *a, *b; /* a whole source tensor, a whole destination tensor */
} copier;

/* Source tensor `sname` gathered into destination tensor `dname`. Vectors
 * (ndim 1) use rows only. */
static void move(copier *cp, const char *sname, const char *dname, const int *rows, const int *cols) {
    int si = nx_model_find(cp->src, sname), di = nx_model_find(cp->dst, dname);
    NX_ASSERTM(si >= 0 && di >= 0, sname);
    const nx_param *sp = &cp->src->tab[si], *dp = &cp->dst->tab[di];
    nx_model_get(cp->src, si, cp->a);
    if (dp->ndim == 1) gather(cp->b, cp->a, 1, rows, (int)dp->shape[0], NULL, 1);
    else gather(cp->b, cp->a, (int)sp->shape[1], rows, (int)dp->shape[0], cols, (int)dp->shape[1]);
    nx_model_set(cp->dst, di, cp->b, NX_F32);
}

int nx_prune_apply(const nx_model *src, const nx_prune_plan *p, nx_model *out, nx_err *err) {
    const nx_model_config *s = &src->cfg, *d = &p->dst;
    NX_ASSERT(s->C == p->src.C && s->L == p->src.L && s->F == p->src.F && s->NH == p->src.NH && s->KVH == p->src.KVH);
    if (nx_model_init_on(out, d, NX_F32, src->be, err)) return nx_fail_prefix(err, "the pruned model");
    size_t big = 0;
    for (int i = 0; i < src->ntab; i++) big = src->tab[i].numel > big ? src->tab[i].numel : big;
    copier cp = {src, out, nx_xmalloc(sizeof(float) * big), nx_xmalloc(sizeof(float) * big)};
    const int *hid = p->hidden;
    move(&cp, "model.embed_tokens.weight", "model.embed_tokens.weight", NULL, hid);
    move(&cp, "model.norm.weight", "model.norm.weight", hid, NULL);
    if (!s->tied) move(&cp, "lm_head.weight", "lm_head.weight", NULL, hid);
    char sn[96], dn[96];
#define NAMES(fmt) (snprintf(sn, sizeof sn, fmt, sl), snprintf(dn, sizeof dn, fmt, i))
    for (int i = 0; i < d->L; i++) {
        int sl = p->layers[i];
        int *qrows = block_rows(p->heads + (size_t)i * d->NH, d->NH, s->HS);
        int *kvrows = block_rows(p->groups + (size_t)i * d->KVH, d->KVH, s->HS);
        const int *ffn = p->ffn + (size_t)i * d->F;
        NAMES("model.layers.%d.input_layernorm.weight");
        move(&cp, sn, dn, hid, NULL);
        NAMES("model.layers.%d.self_attn.q_proj.weight");
        move(&cp, sn, dn, qrows, hid);
        NAMES("model.layers.%d.self_attn.k_proj.weight");
        move(&cp, sn, dn, kvrows, hid);
        NAMES("model.layers.%d.self_attn.v_proj.weight");
        move(&cp, sn, dn, kvrows, hid);
        if (s->qkv_bias) {
            NAMES("model.layers.%d.self_attn.q_proj.bias");
            move(&cp, sn, dn, qrows, NULL);
            NAMES("model.layers.%d.self_attn.k_proj.bias");
            move(&cp, sn, dn, kvrows, NULL);
            NAMES("model.layers.%d.self_attn.v_proj.bias");
            move(&cp, sn, dn, kvrows, NULL);
        }
        NAMES("model.layers.%d.self_attn.o_proj.weight");
        move(&cp, sn, dn, hid, qrows);
        if (s->o_bias) {
            NAMES("model.layers.%d.self_attn.o_proj.bias");
            move(&cp, sn, dn, hid, NULL);
        }
        NAMES("model.layers.%d.post_attention_layernorm.weight");
        move(&cp, sn, dn, hid, NULL);
        NAMES("model.layers.%d.mlp.gate_proj.weight");
        move(&cp, sn, dn, ffn, hid);
        NAMES("model.layers.%d.mlp.up_proj.weight");
        move(&cp, sn, dn, ffn, hid);
        NAMES("model.layers.%d.mlp.down_proj.weight");
        move(&cp, sn, dn, hid, ffn);
        free(qrows), free(kvrows);
    }
#undef NAMES
    free(cp.a), free(cp.b);
    return NX_OK;
}
