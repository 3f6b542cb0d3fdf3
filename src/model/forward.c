/* forward.c — the one forward of a Llama-family decoder, its backward,
 * the planned activations and the KV cache. Mirrors transformers'
 * LlamaDecoderLayer:
 *
 *   h   = x + o_proj(attn(rope(q_proj(rms1(x))), rope(k_proj(·)), v_proj(·)))
 *   out = h + down_proj(silu(gate_proj(rms2(h))) * up_proj(rms2(h)))
 *
 * and LlamaModel: embed → layers → norm → lm_head, with q/k/v and gate/up
 * each one stacked matrix (model.c). Qwen3 adds an RMSNorm over each head
 * of q and k before RoPE (q_norm, k_norm): the q and k parts of the stacked
 * rows are copied out to (N·H, HS) matrices, normed, and copied back; the
 * pre-norm copies are what the backward needs. Layers with a sliding
 * window (Mistral, Qwen2/3 past max_window_layers) pass it to attention. Every step is an op of the model's
 * backend (ops.h): this file holds the order of the work and the layout of
 * the buffers, and never touches their contents.
 *
 * One forward serves every use. Its rows come as spans (ops.h). Without a
 * cache (training, evaluation) the spans are B sequences of T tokens and
 * attention reads the keys and values straight from this layer's q/k/v
 * projections; with a cache (prefill, decode, both mixed) the rows' keys
 * and values are stored at their positions first and attention reads the
 * cache. Backward (training only) retraces the layers with the backward
 * ops, accumulating the residual gradient in place in one (N, C) buffer. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/model.h"

/* ---- activations ---- */

/* The attention output's type: nx_attention_lse writes it in the
 * activation type, which the output projection then reads. */
static nx_dtype att_type(const nx_acts *a) { return a->flash ? a->at : NX_F32; }

/* q/k/v's type: the activation type where only nx_attention_lse reads them
 * (flash), unless per-head norms rewrite them or a bias is added (in f32). */
static nx_dtype qkv_type(const nx_acts *a, const nx_model_config *c) {
    return a->flash && !c->qk_norm && !c->qkv_bias ? a->at : NX_F32;
}

static size_t type_size(nx_dtype t) { return t == NX_BF16 ? 2 : 4; }

/* element i of a buffer of type t */
static void *elem(void *base, size_t i, nx_dtype t) { return (char *)base + i * type_size(t); }

static void plan(nx_acts *a, const nx_model_config *c, nx_arena *ar) {
    size_t R = (size_t)a->rows, C = (size_t)c->C, F = (size_t)c->F;
    size_t Q = (size_t)c->NH * c->HS, KV = (size_t)c->KVH * c->HS, QKV = Q + 2 * KV;
    size_t Lk = a->train && !a->recompute ? (size_t)c->L : 1, P = (size_t)a->B * c->NH * a->T * a->T;
    size_t Lp = a->keep_probs ? (size_t)c->L : Lk; /* maps: a teacher for attention transfer keeps every layer's */
    a->rope_cos = nx_arena_floats(ar, (size_t)a->ctx * c->HS / 2);
    a->rope_sin = nx_arena_floats(ar, (size_t)a->ctx * c->HS / 2);
    a->pos = nx_arena_alloc(ar, R * sizeof(int32_t));
    a->ids = nx_arena_alloc(ar, R * sizeof(int32_t));
    a->res = nx_arena_floats(ar, (a->stream ? 2 : (size_t)c->L + 1) * R * C);
    size_t es = type_size(a->at); /* the products' inputs, and gu */
    a->ln1 = nx_arena_alloc(ar, es * Lk * R * C);
    a->rstd1 = nx_arena_floats(ar, Lk * R);
    a->qkv = nx_arena_alloc(ar, type_size(qkv_type(a, c)) * Lk * R * QKV);
    a->probs = (a->train && !a->flash) || a->keep_probs ? nx_arena_floats(ar, Lp * P) : NULL;
    a->lse = a->flash ? nx_arena_floats(ar, Lk * a->B * c->NH * a->T) : NULL;
    /* of type att_type(a); qk_norm's forward uses it as f32 scratch first */
    a->att = nx_arena_alloc(ar, (a->flash && !c->qk_norm ? es : 4) * Lk * R * Q);
    a->mid = nx_arena_floats(ar, Lk * R * C);
    a->ln2 = nx_arena_alloc(ar, es * Lk * R * C);
    a->rstd2 = nx_arena_floats(ar, Lk * R);
    a->gu = nx_arena_alloc(ar, es * Lk * R * 2 * F);
    a->h = nx_arena_alloc(ar, es * Lk * R * F);
    if (c->qk_norm) {
        a->qraw = nx_arena_floats(ar, Lk * R * Q);
        a->kraw = nx_arena_floats(ar, Lk * R * KV);
        a->rstdq = nx_arena_floats(ar, Lk * R * c->NH);
        a->rstdk = nx_arena_floats(ar, Lk * R * c->KVH);
    }
    size_t O = (size_t)a->out_rows;
    a->last = a->train ? NULL : nx_arena_floats(ar, O * C);
    a->lnf = nx_arena_floats(ar, O * C);
    a->rstdf = nx_arena_floats(ar, O);
    a->logits = nx_arena_floats(ar, O * c->V);
    if (!a->train) return;
    /* the gradients of the products' inputs and outputs in their types (as autocast keeps them) */
    a->dres = nx_arena_floats(ar, R * C);
    a->dres_at = a->at != NX_F32 ? nx_arena_alloc(ar, es * R * C) : NULL;
    a->dln = nx_arena_floats(ar, R * C);
    a->datt = nx_arena_alloc(ar, type_size(att_type(a)) * R * Q);
    a->dqkv = nx_arena_alloc(ar, type_size(qkv_type(a, c)) * R * QKV);
    a->dprobs = nx_arena_floats(ar, a->flash ? (size_t)a->B * c->NH * a->T : P); /* flash: its row dots */
    a->dh = nx_arena_alloc(ar, es * R * F);
    a->dgu = nx_arena_alloc(ar, es * R * 2 * F);
    a->dlnf = nx_arena_floats(ar, R * C);
    a->dlogits = nx_arena_alloc(ar, es * R * c->V);
    if (c->qk_norm) {
        a->dqk = nx_arena_floats(ar, R * Q);
        a->dqk2 = nx_arena_floats(ar, R * Q);
    }
}

static bool flash_mode(unsigned mode) {
    return (mode & NX_ACTS_FLASH) && !(mode & NX_ACTS_KEEP_PROBS);
}

static bool recompute_mode(unsigned mode) {
    NX_ASSERTM(!(mode & NX_ACTS_RECOMPUTE) || !(mode & NX_ACTS_KEEP_PROBS),
               "recomputed activations keep no attention maps for a loss");
    return (mode & NX_ACTS_RECOMPUTE) && (mode & NX_ACTS_TRAIN);
}

/* An activation set's sizes and its flags from mode (NX_ACTS_*), nothing laid out yet. */
static nx_acts acts_shape(int rows, int out_rows, int ctx, int B, int T, unsigned mode) {
    return (nx_acts){.rows = rows, .out_rows = out_rows, .ctx = ctx, .B = B, .T = T, .train = mode & NX_ACTS_TRAIN,
                     .keep_probs = mode & NX_ACTS_KEEP_PROBS, .stream = mode & NX_ACTS_STREAM,
                     .flash = flash_mode(mode), .recompute = recompute_mode(mode)};
}

static int acts_init(nx_acts *a, const nx_model *m, int rows, int out_rows, int ctx, int B, int T,
                     unsigned mode, nx_err *err) {
    const nx_model_config *c = &m->cfg;
    memset(a, 0, sizeof *a);
    if (rows <= 0 || ctx <= 0) return nx_fail(err, "batch rows (%d) and context (%d) must be positive", rows, ctx);
    if (ctx > c->max_pos)
        return nx_fail(err, "sequence length %d exceeds the model's max_position_embeddings %d", ctx, c->max_pos);
    *a = acts_shape(rows, out_rows, ctx, B, T, mode);
    a->be = m->be;
    a->at = mode & NX_ACTS_F32 ? NX_F32 : nx_backend_act_type(m->be);
    nx_dtype ht = m->w.head.type;
    a->lt = (mode & NX_ACTS_LOGITS_AT) && (ht == NX_F32 || ht == NX_BF16) ? a->at : NX_F32;
    NX_ASSERTM(!a->flash || nx_attention_lse_fits(m->be, c->HS, B, T, c->NH),
               "NX_ACTS_FLASH where the backend's nx_attention_lse does not fit");
    NX_ASSERTM(!(a->train && a->stream), "training keeps every layer's activations");
    NX_ASSERTM(!((a->train || a->keep_probs) && B * T == 0), "attention maps need a B × T shape");
    nx_arena count = nx_arena_counting();
    plan(a, c, &count);
    if (nx_backend_plan(m->be, &(nx_work){.rows = rows, .vocab = c->V, .ctx = ctx}, err) ||
        nx_arena_init(&a->arena, m->be, count.used, err))
        return nx_fail_prefix(err, "activations for %d rows of up to %d positions", rows, ctx);
    plan(a, c, &a->arena);
    a->pos_host = nx_xmalloc(sizeof(int32_t) * rows);
    a->spans_host = nx_xmalloc(sizeof(nx_span) * (B > 0 ? B : 1));
    float *cs = nx_xmalloc(sizeof(float) * ctx * (c->HS / 2)), *sn = nx_xmalloc(sizeof(float) * ctx * (c->HS / 2));
    nx_rope_tables(cs, sn, ctx, c->HS, c->rope_theta, &c->rope);
    nx_backend_upload(m->be, a->rope_cos, cs, sizeof(float) * ctx * (c->HS / 2));
    nx_backend_upload(m->be, a->rope_sin, sn, sizeof(float) * ctx * (c->HS / 2));
    free(cs), free(sn);
    return NX_OK;
}

/* Can the activations of B × T rows be counted in size_t? An upper bound
 * in double (which cannot overflow) of every buffer plan() lays out, so
 * that no product there wraps; B × T must also fit the int row count. */
static bool countable(const nx_model_config *c, int B, int T) {
    double R = (double)B * T, L = c->L + 1.0, Q = (double)c->NH * c->HS, QKV = Q + 2.0 * c->KVH * c->HS;
    double per_row = L * (6.0 * c->C + 2 * QKV + 2 * Q + 6.0 * c->F + 4) + 4.0 * c->V + 8.0 * c->C + 4;
    double bound = 4.0 * (R * per_row + (L + 1) * B * c->NH * (double)T * T + (double)T * c->HS + 2 * R);
    return R <= INT_MAX && bound < 0x1p62;
}

int nx_acts_init(nx_acts *a, const nx_model *m, int B, int T, unsigned mode, nx_err *err) {
    if (B <= 0 || T <= 0) return nx_fail(err, "batch (%d) and sequence length (%d) must be positive", B, T);
    if (!countable(&m->cfg, B, T))
        return nx_fail(err, "activations for batch %d x sequence length %d are too large to hold", B, T);
    return acts_init(a, m, B * T, B * T, T, B, T, mode, err);
}

int nx_acts_init_rows(nx_acts *a, const nx_model *m, int rows, int out_rows, int ctx, unsigned mode, nx_err *err) {
    NX_ASSERTM(!(mode & (NX_ACTS_TRAIN | NX_ACTS_KEEP_PROBS)), "rows-only activations are for inference");
    if (out_rows <= 0 || out_rows > rows) return nx_fail(err, "output rows (%d) must be in 1..%d", out_rows, rows);
    return acts_init(a, m, rows, out_rows, ctx, 0, 0, mode, err);
}

size_t nx_acts_bytes(const nx_model_config *c, int B, int T, unsigned mode) {
    if (!countable(c, B, T)) return SIZE_MAX;
    nx_acts a = acts_shape(B * T, B * T, T, B, T, mode);
    a.at = (mode & NX_ACTS_BF16) && !(mode & NX_ACTS_F32) ? NX_BF16 : NX_F32;
    nx_arena count = nx_arena_counting();
    plan(&a, c, &count);
    return count.used;
}

void nx_acts_free(nx_acts *a) {
    nx_arena_free(&a->arena);
    free(a->pos_host);
    free(a->spans_host);
    memset(a, 0, sizeof *a);
}

/* Residual stream i (the input of layer i; i = L the last output), rows of
 * the current forward. */
static float *res_at(const nx_acts *a, const nx_model_config *c, int i) {
    return a->res + (size_t)(a->stream ? i % 2 : i) * a->cur_N * c->C;
}

const float *nx_acts_hidden(const nx_acts *a, const nx_model_config *c, int i) {
    NX_ASSERT(i >= 0 && i <= c->L);
    NX_ASSERTM(!a->stream || i == c->L, "streaming activations keep no hidden states");
    return i == c->L ? a->lnf : res_at(a, c, i);
}

const float *nx_acts_probs(const nx_acts *a, const nx_model_config *c, int l) {
    NX_ASSERTM(a->probs && !a->recompute, "attention maps are kept only with NX_ACTS_TRAIN or NX_ACTS_KEEP_PROBS");
    NX_ASSERT(l >= 0 && l < c->L);
    return a->probs + (size_t)l * a->B * c->NH * a->T * a->T;
}

/* Per-layer views: in training each layer has its own slice. */
typedef struct {
    void *ln1, *ln2, *h, *gu; /* of type a->at */
    float *rstd1, *qkv, *probs, *att, *mid, *rstd2; /* qkv, att: of qkv_type, att_type */
    float *qraw, *kraw, *rstdq, *rstdk;
    float *lse;
} layer_acts;

static layer_acts layer_view(const nx_acts *a, const nx_model_config *c, int l) {
    size_t R = (size_t)a->rows, L = a->train && !a->recompute ? (size_t)l : 0, C = (size_t)c->C, F = (size_t)c->F;
    size_t Q = (size_t)c->NH * c->HS, KV = (size_t)c->KVH * c->HS, QKV = Q + 2 * KV;
    layer_acts s = {
        elem(a->ln1, L * R * C, a->at), elem(a->ln2, L * R * C, a->at), elem(a->h, L * R * F, a->at),
        elem(a->gu, L * R * 2 * F, a->at),
        a->rstd1 + L * R,       elem(a->qkv, L * R * QKV, qkv_type(a, c)),
        a->probs ? a->probs + (a->keep_probs ? (size_t)l : L) * a->B * c->NH * a->T * a->T : NULL,
        elem(a->att, L * R * Q, att_type(a)), a->mid + L * R * C,
        a->rstd2 + L * R,
        NULL, NULL, NULL, NULL,
        a->lse ? a->lse + L * a->B * c->NH * a->T : NULL,
    };
    if (c->qk_norm) {
        s.qraw = a->qraw + L * R * Q;
        s.kraw = a->kraw + L * R * KV;
        s.rstdq = a->rstdq + L * R * c->NH;
        s.rstdk = a->rstdk + L * R * c->KVH;
    }
    return s;
}

/* Qwen3Attention: q = q_norm(q_proj(x).view(..., HS)), k likewise, over the
 * stacked q/k/v rows (row stride QKV) of N tokens; s->att is scratch (it is
 * written by attention afterwards). */
static void qk_norm_forward(nx_backend *be, const nx_model_config *c, const layer_acts *s,
                            const nx_layer_weights *w, int N) {
    int Q = c->NH * c->HS, KV = c->KVH * c->HS, QKV = Q + 2 * KV;
    nx_copy2d(be, s->qraw, Q, s->qkv, QKV, N, Q);
    nx_rmsnorm(be, s->att, s->rstdq, s->qraw, w->qn, N * c->NH, c->HS, c->eps);
    nx_copy2d(be, s->qkv, QKV, s->att, Q, N, Q);
    nx_copy2d(be, s->kraw, KV, s->qkv + Q, QKV, N, KV);
    nx_rmsnorm(be, s->att, s->rstdk, s->kraw, w->kn, N * c->KVH, c->HS, c->eps);
    nx_copy2d(be, s->qkv + Q, QKV, s->att, KV, N, KV);
}

/* Its backward: the gradients w.r.t. the normed q and k in dqkv become
 * those w.r.t. the projections, in place; the norms' weights get theirs. */
static void qk_norm_backward(nx_backend *be, const nx_model_config *c, nx_acts *a, const layer_acts *s,
                             const nx_layer_weights *w, nx_layer_weights *gw, int N) {
    int Q = c->NH * c->HS, KV = c->KVH * c->HS, QKV = Q + 2 * KV;
    const struct { int off, width, H; const float *raw, *rstd, *wt; float *g; } part[2] = {
        {0, Q, c->NH, s->qraw, s->rstdq, w->qn, gw->qn}, {Q, KV, c->KVH, s->kraw, s->rstdk, w->kn, gw->kn}};
    for (int i = 0; i < 2; i++) {
        nx_copy2d(be, a->dqk, part[i].width, a->dqkv + part[i].off, QKV, N, part[i].width);
        nx_backend_zero(be, a->dqk2, sizeof(float) * N * part[i].width);
        nx_rmsnorm_backward(be, a->dqk2, part[i].g, a->dqk, part[i].raw, part[i].wt, part[i].rstd, N * part[i].H,
                            c->HS);
        nx_copy2d(be, a->dqkv + part[i].off, QKV, a->dqk2, part[i].width, N, part[i].width);
    }
}

/* ---- KV cache ---- */

int nx_kv_cache_init(nx_kv_cache *kc, const nx_model *m, int S, int T, nx_err *err) {
    const nx_model_config *c = &m->cfg;
    memset(kc, 0, sizeof *kc);
    if (S <= 0 || T <= 0) return nx_fail(err, "KV cache sizes must be positive: %d sequences × %d positions", S, T);
    if (T > c->max_pos)
        return nx_fail(err, "context of %d tokens exceeds the model's max_position_embeddings (%d)", T, c->max_pos);
    *kc = (nx_kv_cache){.L = c->L, .S = S, .T = T, .D = c->KVH * c->HS};
    size_t n = (size_t)c->L * S * T * kc->D;
    if (nx_arena_init(&kc->arena, m->be, nx_kv_cache_bytes(c, S, T), err))
        return nx_fail_prefix(err, "KV cache for %d × %d tokens", S, T);
    kc->k = nx_arena_floats(&kc->arena, n);
    kc->v = nx_arena_floats(&kc->arena, n);
    return NX_OK;
}

size_t nx_kv_cache_bytes(const nx_model_config *c, int S, int T) {
    nx_arena count = nx_arena_counting();
    size_t n = (size_t)c->L * S * T * c->KVH * c->HS;
    nx_arena_floats(&count, n);
    nx_arena_floats(&count, n);
    return count.used;
}

void nx_kv_cache_free(nx_kv_cache *kc) {
    nx_arena_free(&kc->arena);
    memset(kc, 0, sizeof *kc);
}

nx_kv nx_kv_cache_layer(const nx_kv_cache *kc, int l) {
    NX_ASSERT(l >= 0 && l < kc->L);
    size_t off = (size_t)l * kc->S * kc->T * kc->D;
    return (nx_kv){kc->k + off, kc->v + off, kc->D, (int64_t)kc->T * kc->D};
}

/* ---- forward ---- */

/* Layer l of a forward from its input res[l]: its activations, and with
 * to_out its output res[l + 1] (a recomputation for the backward needs
 * only what the layer's backward reads). */
static void layer_forward(const nx_model *m, nx_acts *a, const nx_batch *bt, int l, int B, int T, bool to_out) {
    const nx_model_config *c = &m->cfg;
    nx_backend *be = m->be;
    int N = bt->N, C = c->C, F = c->F, Q = c->NH * c->HS, KV = c->KVH * c->HS, QKV = Q + 2 * KV;
    const nx_layer_weights *w = &m->w.layer[l];
    layer_acts s = layer_view(a, c, l);
    float *x = res_at(a, c, l), *out = res_at(a, c, l + 1);
    nx_rmsnorm_to(be, s.ln1, a->at, s.rstd1, x, w->ln1, N, C, c->eps);
    nx_dtype qt = qkv_type(a, c);
    if (qt == NX_F32) nx_linear_from(be, s.qkv, s.ln1, a->at, &w->qkv, w->bqkv, N);
    else nx_linear_to(be, s.qkv, qt, s.ln1, a->at, &w->qkv, N);
    if (c->qk_norm) qk_norm_forward(be, c, &s, w, N);
    /* q's heads and then k's, side by side in the row: one rotation over
     * both (nx_attention_lse rotates them as it reads them instead) */
    if (!s.lse) nx_rope(be, s.qkv, QKV, a->pos, a->rope_cos, a->rope_sin, N, c->NH + c->KVH, c->HS, false);
    nx_kv kv = {elem(s.qkv, Q, qt), elem(s.qkv, Q + KV, qt), QKV, (int64_t)T * QKV};
    if (bt->kv) {
        kv = nx_kv_cache_layer(bt->kv, l);
        nx_kv_store(be, kv, s.qkv + Q, s.qkv + Q + KV, QKV, bt->spans, bt->nspans, KV);
    }
    if (s.lse)
        nx_attention_lse(be, s.att, att_type(a), s.lse, s.qkv, qt, QKV, kv, a->rope_cos, a->rope_sin, B, T, c->NH,
                         c->KVH, c->HS, nx_layer_window(c, l));
    else
        nx_attention(be, s.att, s.probs, s.qkv, QKV, kv, bt->spans, bt->nspans, c->NH, c->KVH, c->HS,
                     nx_layer_window(c, l));
    nx_linear_add(be, s.mid, x, s.att, att_type(a), &w->o, w->bo, N);
    nx_rmsnorm_to(be, s.ln2, a->at, s.rstd2, s.mid, w->ln2, N, C, c->eps);
    nx_linear_to(be, s.gu, a->at, s.ln2, a->at, &w->gu, N);
    nx_swiglu_to(be, s.h, s.gu, a->at, N, F);
    if (!to_out) return;
    nx_linear_add(be, out, s.mid, s.h, a->at, &w->down, NULL, N);
}

void nx_model_prepare(const nx_model *m, nx_acts *a, const nx_batch *bt) {
    const nx_model_config *c = &m->cfg;
    nx_backend *be = m->be;
    int N = bt->N;
    NX_ASSERT(a->be == be && N >= 1 && N <= a->rows && bt->nspans >= 1);
    for (int s = 0, r = 0; s < bt->nspans; s++) {
        nx_span sp = bt->spans[s];
        NX_ASSERTM(sp.len >= 1 && sp.pos >= 0 && sp.pos + sp.len <= a->ctx, "span outside the planned context");
        NX_ASSERTM(r + sp.len <= N, "spans longer than the batch");
        for (int i = 0; i < sp.len; i++) a->pos_host[r++] = sp.pos + i;
        if (s == bt->nspans - 1) NX_ASSERTM(r == N, "spans shorter than the batch");
    }
    for (int n = 0; n < N; n++) NX_ASSERTM(bt->ids[n] >= 0 && bt->ids[n] < c->V, "token id out of the vocabulary");
    int B = 0, T = 0;
    if (!bt->kv) { /* B sequences of T tokens among themselves */
        B = bt->nspans, T = bt->spans[0].len;
        for (int s = 0; s < B; s++)
            NX_ASSERTM(bt->spans[s].seq == s && bt->spans[s].pos == 0 && bt->spans[s].len == T,
                       "without a cache, spans must be {b, 0, T}");
    }
    if (a->probs || a->lse) NX_ASSERTM(!bt->kv && B <= a->B && T == a->T, "kept attention maps need a B × T forward");
    a->cur_N = N, a->cur_B = B, a->cur_T = T;
    nx_backend_upload(be, a->ids, bt->ids, sizeof(int32_t) * N);
    nx_backend_upload(be, a->pos, a->pos_host, sizeof(int32_t) * N);
    nx_spans(be, bt->spans, bt->nspans);
}

void nx_model_compute(const nx_model *m, nx_acts *a, const nx_batch *bt) {
    const nx_model_config *c = &m->cfg;
    nx_backend *be = m->be;
    int N = bt->N, C = c->C, B = a->cur_B, T = a->cur_T;
    NX_ASSERTM(N == a->cur_N, "nx_model_compute of another batch than the one prepared");
    nx_embed(be, res_at(a, c, 0), a->ids, &m->w.wte, N);
    for (int l = 0; l < c->L; l++) layer_forward(m, a, bt, l, B, T, true);
    const float *fin = res_at(a, c, c->L);
    int nout = bt->out == NX_OUT_LAST ? bt->nspans : N;
    if (bt->out == NX_OUT_NONE) return;
    NX_ASSERTM(nout <= a->out_rows, "more output rows than planned");
    if (bt->out == NX_OUT_LAST && bt->nspans != N) { /* gather each span's last row */
        NX_ASSERTM(a->last, "training activations give logits of every row");
        for (int s = 0, r = 0; s < bt->nspans; s++) {
            r += bt->spans[s].len;
            nx_backend_copy(be, a->last + (size_t)s * C, fin + (size_t)(r - 1) * C, sizeof(float) * C);
        }
        fin = a->last;
    }
    nx_rmsnorm(be, a->lnf, a->rstdf, fin, m->w.lnf, nout, C, c->eps);
    if (bt->out != NX_OUT_HIDDEN) nx_linear_to(be, a->logits, a->lt, a->lnf, NX_F32, &m->w.head, nout);
}

void nx_model_run(const nx_model *m, nx_acts *a, const nx_batch *bt) {
    nx_model_prepare(m, a, bt);
    nx_model_compute(m, a, bt);
}

void nx_model_forward(const nx_model *m, nx_acts *a, const int32_t *ids, int B, int T, bool logits) {
    NX_ASSERT(B >= 1 && B <= a->B && T >= 1 && T <= a->T);
    for (int b = 0; b < B; b++) a->spans_host[b] = (nx_span){b, 0, T};
    nx_batch bt = {.N = B * T, .ids = ids, .spans = a->spans_host, .nspans = B,
                   .out = logits ? NX_OUT_ALL : NX_OUT_HIDDEN};
    nx_model_run(m, a, &bt);
}

/* ---- backward ---- */

/* A product's dW within the gradient buffer: bytes [at, at + n). */
typedef struct {
    char *at;
    size_t n;
} dw_range;

static dw_range dw_of(const nx_weight *x) {
    NX_ASSERT(x->type == NX_F32);
    return (dw_range){x->data, sizeof(float) * x->rows * x->cols};
}

static int by_address(const void *x, const void *y) {
    const dw_range *p = x, *q = y;
    return p->at < q->at ? -1 : p->at > q->at;
}

/* Ahead of a backward that writes grads (NX_GRAD_WRITE): zeroes every
 * part of the model's gradient buffer that no product writes (the norms'
 * and the Qwen3 q/k norms' gradients, which their ops add into, the
 * biases', the embedding's unless tied to the head, whose product writes
 * it before the embedding's backward adds, and the padding between
 * groups): the stretches between the products' dW, a few per layer. */
static void zero_unwritten(nx_backend *be, const nx_model_config *c, const nx_weights *g, float *grads) {
    int n = 0;
    dw_range w[4 * c->L + 1];
    w[n++] = dw_of(&g->head);
    for (int l = 0; l < c->L; l++) {
        const nx_layer_weights *gw = &g->layer[l];
        w[n++] = dw_of(&gw->qkv), w[n++] = dw_of(&gw->o), w[n++] = dw_of(&gw->gu), w[n++] = dw_of(&gw->down);
    }
    qsort(w, (size_t)n, sizeof w[0], by_address);
    char *at = (char *)grads, *end = at + nx_model_size(c, NX_F32); /* the model's nparams floats */
    for (int i = 0; i < n; i++) {
        NX_ASSERT(w[i].at >= at && w[i].at + w[i].n <= end);
        nx_backend_zero(be, at, (size_t)(w[i].at - at));
        at = w[i].at + w[i].n;
    }
    nx_backend_zero(be, at, (size_t)(end - at));
}

void nx_model_backward(const nx_model *m, nx_acts *a, float *grads, nx_grad_mode gm, const float *dhidden,
                       float *const *dprobs) {
    const nx_model_config *c = &m->cfg;
    nx_backend *be = m->be;
    NX_ASSERTM(a->train, "backward needs activations planned with NX_ACTS_TRAIN");
    NX_ASSERTM(m->params, "backward needs a model held in f32");
    int B = a->cur_B, T = a->cur_T, N = B * T, C = c->C, Q = c->NH * c->HS, KV = c->KVH * c->HS;
    int QKV = Q + 2 * KV;
    size_t NC = (size_t)N * C * sizeof(float);
    nx_layer_weights gl[c->L];
    nx_weights g = {.layer = gl};
    nx_weights_bind(&g, c, NX_F32, be, grads);
    NX_ASSERT(gm == NX_GRAD_ADD || gm == NX_GRAD_WRITE);
    NX_ASSERT(m->nparams * sizeof(float) == nx_model_size(c, NX_F32));
    if (gm == NX_GRAD_WRITE) zero_unwritten(be, c, &g, grads);

    /* The residual gradient dres (f32: it accumulates) as the down and o
     * projections' backward read it: its copy in the activation type, which
     * the norms' backward write as they update dres, where there is one
     * and no hidden-state gradient is added after them; else dres. */
    float *dres = a->dres;
    void *dcopy = dhidden ? NULL : a->dres_at;
    const void *dr = dcopy ? dcopy : (const void *)dres;
    nx_dtype rt = dcopy ? a->at : NX_F32, gt = qkv_type(a, c);

    /* logits = lnf @ head.T ; lnf = norm(res[L]) */
    nx_linear_backward_from(be, a->dlnf, g.head.data, NULL, gm, a->dlogits, a->at, a->lnf, NX_F32, &m->w.head, N);
    nx_backend_zero(be, dres, NC);
    nx_rmsnorm_backward_to(be, dres, dcopy, a->at, g.lnf, a->dlnf, res_at(a, c, c->L), m->w.lnf, a->rstdf, N, C);
    if (dhidden) nx_add(be, dres, dhidden + (size_t)c->L * N * C, (int64_t)N * C);

    nx_batch again = {.N = N, .spans = a->spans_host, .nspans = B}; /* the forward's B × T rows */
    if (a->recompute)
        for (int b = 0; b < B; b++) a->spans_host[b] = (nx_span){b, 0, T};
    for (int l = c->L - 1; l >= 0; l--) {
        const nx_layer_weights *w = &m->w.layer[l];
        nx_layer_weights *gw = &g.layer[l];
        if (a->recompute) layer_forward(m, a, &again, l, B, T, false);
        layer_acts s = layer_view(a, c, l);
        /* out = mid + down(h): dmid = dres (kept in place), dh = dres @ Wd */
        nx_linear_backward_to(be, a->dh, a->at, gw->down.data, NULL, gm, dr, rt, s.h, a->at, &w->down, N);
        nx_swiglu_backward_from(be, a->dgu, a->dh, a->at, s.gu, a->at, N, c->F);
        nx_linear_backward_from(be, a->dln, gw->gu.data, NULL, gm, a->dgu, a->at, s.ln2, a->at, &w->gu, N);
        nx_rmsnorm_backward_to(be, dres, dcopy, a->at, gw->ln2, a->dln, s.mid, w->ln2, s.rstd2, N, C);
        /* mid = x + o_proj(att): dx = dmid (in place), datt = dmid @ Wo (a bias's gradient sums f32 dres) */
        nx_linear_backward_to(be, a->datt, att_type(a), gw->o.data, gw->bo, gm, gw->bo ? dres : dr, gw->bo ? NX_F32 : rt,
                              s.att, att_type(a), &w->o, N);
        if (s.lse) { /* dq and dk come back before the rotation, in q/k/v's type */
            NX_ASSERTM(!dprobs, "attention-map gradients need the maps kept (NX_ACTS_KEEP_PROBS)");
            nx_attention_lse_backward(be, a->dqkv, elem(a->dqkv, Q, gt), elem(a->dqkv, Q + KV, gt), gt, a->dprobs,
                                      a->datt, att_type(a), s.att, att_type(a), s.lse, s.qkv, elem(s.qkv, Q, gt),
                                      elem(s.qkv, Q + KV, gt), gt, QKV, a->rope_cos, a->rope_sin, B, T, c->NH, c->KVH,
                                      c->HS, nx_layer_window(c, l));
        } else {
            nx_attention_backward(be, a->dqkv, a->dqkv + Q, a->dqkv + Q + KV, a->dprobs, a->datt, s.probs,
                                  dprobs ? dprobs[l] : NULL, s.qkv, s.qkv + Q, s.qkv + Q + KV, QKV, B, T, c->NH,
                                  c->KVH, c->HS, nx_layer_window(c, l));
            nx_rope(be, a->dqkv, QKV, a->pos, a->rope_cos, a->rope_sin, N, c->NH + c->KVH, c->HS, true);
        }
        if (c->qk_norm) qk_norm_backward(be, c, a, &s, w, gw, N);
        nx_linear_backward_from(be, a->dln, gw->qkv.data, gw->bqkv, gm, a->dqkv, gt, s.ln1, a->at, &w->qkv, N);
        /* layer 0's dres goes to the embedding alone */
        nx_rmsnorm_backward_to(be, dres, l ? dcopy : NULL, a->at, gw->ln1, a->dln, res_at(a, c, l), w->ln1, s.rstd1, N,
                               C);
        if (dhidden) nx_add(be, dres, dhidden + (size_t)l * N * C, (int64_t)N * C);
    }
    nx_embed_backward(be, g.wte.data, dres, a->ids, N, C);
}
