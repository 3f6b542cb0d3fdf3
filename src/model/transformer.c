/* transformer.c — forward and backward of a Llama-family decoder over one
 * planned activation buffer. Mirrors transformers' LlamaDecoderLayer:
 *
 *   h   = x + o_proj(attn(rope(q_proj(rms1(x))), rope(k_proj(·)), v_proj(·)))
 *   out = h + down_proj(silu(gate_proj(rms2(h))) * up_proj(rms2(h)))
 *
 * and LlamaModel: embed → layers → norm → lm_head. Backward retraces the
 * same steps with the kernels of ops.c, accumulating the residual gradient
 * in place in one (N, C) buffer. */
#include <math.h>
#include <string.h>

#include "nexus/core.h"
#include "nexus/gemm.h"
#include "nexus/model.h"
#include "nexus/ops.h"

static void plan(nx_acts *a, const nx_model_config *c, nx_arena *ar) {
    long N = (long)a->B * a->T;
    int Q = c->NH * c->HS, KV = c->KVH * c->HS, Lk = a->train ? c->L : 1;
    int Lp = a->train || a->keep_probs ? c->L : 1;
    a->rope_cos = nx_arena_floats(ar, (size_t)a->T * c->HS / 2);
    a->rope_sin = nx_arena_floats(ar, (size_t)a->T * c->HS / 2);
    a->pos = nx_arena_alloc(ar, N * sizeof(int32_t));
    a->ids = nx_arena_alloc(ar, N * sizeof(int32_t));
    a->res = nx_arena_floats(ar, (size_t)(c->L + 1) * N * c->C);
    a->ln1 = nx_arena_floats(ar, Lk * N * c->C);
    a->rstd1 = nx_arena_floats(ar, Lk * N);
    a->q = nx_arena_floats(ar, Lk * N * Q);
    a->k = nx_arena_floats(ar, Lk * N * KV);
    a->v = nx_arena_floats(ar, Lk * N * KV);
    a->probs = nx_arena_floats(ar, (size_t)Lp * a->B * c->NH * a->T * a->T);
    a->att = nx_arena_floats(ar, Lk * N * Q);
    a->mid = nx_arena_floats(ar, Lk * N * c->C);
    a->ln2 = nx_arena_floats(ar, Lk * N * c->C);
    a->rstd2 = nx_arena_floats(ar, Lk * N);
    a->gate = nx_arena_floats(ar, Lk * N * c->F);
    a->up = nx_arena_floats(ar, Lk * N * c->F);
    a->h = nx_arena_floats(ar, Lk * N * c->F);
    a->lnf = nx_arena_floats(ar, N * c->C);
    a->rstdf = nx_arena_floats(ar, N);
    a->logits = nx_arena_floats(ar, N * c->V);
    if (!a->train) return;
    a->dres = nx_arena_floats(ar, N * c->C);
    a->dln = nx_arena_floats(ar, N * c->C);
    a->datt = nx_arena_floats(ar, N * Q);
    a->dq = nx_arena_floats(ar, N * Q);
    a->dk = nx_arena_floats(ar, N * KV);
    a->dv = nx_arena_floats(ar, N * KV);
    a->dprobs = nx_arena_floats(ar, (size_t)a->B * c->NH * a->T * a->T);
    a->dh = nx_arena_floats(ar, N * c->F);
    a->dgate = nx_arena_floats(ar, N * c->F);
    a->dup = nx_arena_floats(ar, N * c->F);
    a->dlnf = nx_arena_floats(ar, N * c->C);
    a->dlogits = nx_arena_floats(ar, N * c->V);
}

int nx_acts_init(nx_acts *a, const nx_model_config *c, int B, int T, unsigned mode, nx_err *err) {
    memset(a, 0, sizeof *a);
    if (B <= 0 || T <= 0) return nx_fail(err, "batch (%d) and sequence length (%d) must be positive", B, T);
    if (T > c->max_pos)
        return nx_fail(err, "sequence length %d exceeds the model's max_position_embeddings %d", T,
                       c->max_pos);
    a->B = B;
    a->T = T;
    a->train = mode & NX_ACTS_TRAIN;
    a->keep_probs = mode & NX_ACTS_KEEP_PROBS;
    nx_arena count = nx_arena_counting();
    plan(a, c, &count);
    if (nx_arena_init(&a->arena, count.used, err))
        return nx_fail_prefix(err, "activations for batch %d × %d", B, T);
    plan(a, c, &a->arena);
    nx_rope_tables(a->rope_cos, a->rope_sin, T, c->HS, c->rope_theta);
    return NX_OK;
}

size_t nx_acts_bytes(const nx_model_config *c, int B, int T, unsigned mode) {
    nx_acts a = {.B = B, .T = T, .train = mode & NX_ACTS_TRAIN, .keep_probs = mode & NX_ACTS_KEEP_PROBS};
    nx_arena count = nx_arena_counting();
    plan(&a, c, &count);
    return count.used;
}

void nx_acts_free(nx_acts *a) {
    nx_arena_free(&a->arena);
    memset(a, 0, sizeof *a);
}

const float *nx_acts_hidden(const nx_acts *a, const nx_model_config *c, int i) {
    NX_ASSERT(i >= 0 && i <= c->L);
    long N = (long)a->cur_B * a->cur_T;
    return i == c->L ? a->lnf : a->res + (size_t)i * N * c->C;
}

const float *nx_acts_probs(const nx_acts *a, const nx_model_config *c, int l) {
    NX_ASSERTM(a->train || a->keep_probs, "attention maps are kept only with NX_ACTS_TRAIN or NX_ACTS_KEEP_PROBS");
    NX_ASSERT(l >= 0 && l < c->L);
    return a->probs + (size_t)l * a->B * c->NH * a->T * a->T;
}

/* Per-layer views: in training each layer has its own slice. */
typedef struct {
    float *ln1, *rstd1, *q, *k, *v, *probs, *att, *mid, *ln2, *rstd2, *gate, *up, *h;
} layer_acts;

static layer_acts layer_view(const nx_acts *a, const nx_model_config *c, int l) {
    size_t N = (size_t)a->B * a->T, L = a->train ? (size_t)l : 0;
    size_t Q = (size_t)c->NH * c->HS, KV = (size_t)c->KVH * c->HS;
    size_t P = (size_t)a->B * c->NH * a->T * a->T, LP = a->train || a->keep_probs ? (size_t)l : 0;
    return (layer_acts){
        a->ln1 + L * N * c->C, a->rstd1 + L * N,     a->q + L * N * Q,
        a->k + L * N * KV,     a->v + L * N * KV,    a->probs + LP * P,
        a->att + L * N * Q,    a->mid + L * N * c->C, a->ln2 + L * N * c->C,
        a->rstd2 + L * N,      a->gate + L * N * c->F, a->up + L * N * c->F,
        a->h + L * N * c->F,
    };
}

/* The weights of layer l in f32: the model's own, or (held in bf16) widened
 * into m->stage; o is the model's layout. */
static const nx_layer_weights *layer_weights(const nx_model *m, const nx_layout *o, int l,
                                             nx_layer_weights *tmp) {
    if (!m->params16) return &m->w.layer[l];
    nx_model_read(m, o->layer0 + (size_t)l * o->layer_span, o->layer_span, m->stage);
    nx_layer_bind(tmp, &m->cfg, m->stage);
    return tmp;
}

void nx_model_forward(const nx_model *m, nx_acts *a, const int32_t *ids, int B, int T, bool logits) {
    const nx_model_config *c = &m->cfg;
    NX_ASSERT(B >= 1 && B <= a->B && T >= 1 && T <= a->T);
    int N = B * T, C = c->C, Q = c->NH * c->HS, KV = c->KVH * c->HS;
    a->cur_B = B;
    a->cur_T = T;
    for (int n = 0; n < N; n++) {
        NX_ASSERTM(ids[n] >= 0 && ids[n] < c->V, "token id out of the vocabulary");
        a->ids[n] = ids[n];
        a->pos[n] = n % T;
    }
    nx_layout o = m->params16 ? nx_model_layout(c) : (nx_layout){0}; /* bf16 only */
    if (m->params16)
        for (int n = 0; n < N; n++) nx_model_read(m, (size_t)ids[n] * C, C, a->res + (size_t)n * C);
    else
        nx_embedding_forward(a->res, ids, m->w.wte, N, C);
    for (int l = 0; l < c->L; l++) {
        nx_layer_weights tmp;
        const nx_layer_weights *w = layer_weights(m, &o, l, &tmp);
        layer_acts s = layer_view(a, c, l);
        float *x = a->res + (size_t)l * N * C, *out = a->res + (size_t)(l + 1) * N * C;
        nx_rmsnorm_forward(s.ln1, s.rstd1, x, w->ln1, N, C, c->eps);
        nx_linear_forward(s.q, s.ln1, w->wq, w->bq, N, C, Q);
        nx_linear_forward(s.k, s.ln1, w->wk, w->bk, N, C, KV);
        nx_linear_forward(s.v, s.ln1, w->wv, w->bv, N, C, KV);
        nx_rope_forward(s.q, a->pos, a->rope_cos, a->rope_sin, N, c->NH, c->HS);
        nx_rope_forward(s.k, a->pos, a->rope_cos, a->rope_sin, N, c->KVH, c->HS);
        nx_attention_forward(s.att, s.probs, s.q, s.k, s.v, B, T, c->NH, c->KVH, c->HS);
        nx_linear_forward(s.mid, s.att, w->wo, w->bo, N, Q, C);
        nx_add_inplace(s.mid, x, (long)N * C);
        nx_rmsnorm_forward(s.ln2, s.rstd2, s.mid, w->ln2, N, C, c->eps);
        nx_linear_forward(s.gate, s.ln2, w->wg, NULL, N, C, c->F);
        nx_linear_forward(s.up, s.ln2, w->wu, NULL, N, C, c->F);
        nx_swiglu_forward(s.h, s.gate, s.up, (long)N * c->F);
        nx_linear_forward(out, s.h, w->wd, NULL, N, c->F, C);
        nx_add_inplace(out, s.mid, (long)N * C);
    }
    const float *lnf = m->w.lnf, *head = m->w.head;
    if (m->params16) { /* final norm, then the head, widened into the stage */
        float *st = m->stage, *sh = m->stage + ((size_t)C + 15) / 16 * 16;
        nx_model_read(m, o.lnf, C, st);
        if (logits) nx_model_read(m, o.head, (size_t)c->V * C, sh);
        lnf = st, head = sh;
    }
    nx_rmsnorm_forward(a->lnf, a->rstdf, a->res + (size_t)c->L * N * C, lnf, N, C, c->eps);
    if (logits) nx_linear_forward(a->logits, a->lnf, head, NULL, N, C, c->V);
}

void nx_model_backward(const nx_model *m, nx_acts *a, float *grads, const float *dhidden,
                       float *const *dprobs) {
    const nx_model_config *c = &m->cfg;
    NX_ASSERTM(a->train, "backward needs activations planned with NX_ACTS_TRAIN");
    NX_ASSERTM(m->params, "backward needs a model held in f32");
    int B = a->cur_B, T = a->cur_T, N = B * T, C = c->C, Q = c->NH * c->HS, KV = c->KVH * c->HS;
    nx_layer_weights gl[c->L];
    nx_weights g = {.layer = gl};
    nx_weights_bind(&g, c, grads);

    /* logits = lnf @ head.T ; lnf = norm(res[L]) */
    memset(a->dlnf, 0, sizeof(float) * N * C);
    nx_linear_backward(a->dlnf, g.head, NULL, a->dlogits, a->lnf, m->w.head, N, C, c->V);
    float *dres = a->dres;
    memset(dres, 0, sizeof(float) * N * C);
    nx_rmsnorm_backward(dres, g.lnf, a->dlnf, a->res + (size_t)c->L * N * C, m->w.lnf, a->rstdf, N, C);
    if (dhidden) nx_add_inplace(dres, dhidden + (size_t)c->L * N * C, (long)N * C);

    for (int l = c->L - 1; l >= 0; l--) {
        const nx_layer_weights *w = &m->w.layer[l];
        nx_layer_weights *gw = &g.layer[l];
        layer_acts s = layer_view(a, c, l);
        float *x = a->res + (size_t)l * N * C;
        /* out = mid + down(h): dmid = dres (kept in place), dh = dres @ Wd */
        memset(a->dh, 0, sizeof(float) * N * c->F);
        nx_linear_backward(a->dh, gw->wd, NULL, dres, s.h, w->wd, N, c->F, C);
        nx_swiglu_backward(a->dgate, a->dup, a->dh, s.gate, s.up, (long)N * c->F);
        memset(a->dln, 0, sizeof(float) * N * C);
        nx_linear_backward(a->dln, gw->wg, NULL, a->dgate, s.ln2, w->wg, N, C, c->F);
        nx_linear_backward(a->dln, gw->wu, NULL, a->dup, s.ln2, w->wu, N, C, c->F);
        nx_rmsnorm_backward(dres, gw->ln2, a->dln, s.mid, w->ln2, s.rstd2, N, C);
        /* mid = x + o_proj(att): dx = dmid (in place), datt = dmid @ Wo */
        memset(a->datt, 0, sizeof(float) * N * Q);
        nx_linear_backward(a->datt, gw->wo, gw->bo, dres, s.att, w->wo, N, Q, C);
        nx_attention_backward(a->dq, a->dk, a->dv, a->dprobs, a->datt, s.probs, dprobs ? dprobs[l] : NULL,
                              s.q, s.k, s.v, B, T, c->NH, c->KVH, c->HS);
        nx_rope_backward(a->dq, a->pos, a->rope_cos, a->rope_sin, N, c->NH, c->HS);
        nx_rope_backward(a->dk, a->pos, a->rope_cos, a->rope_sin, N, c->KVH, c->HS);
        memset(a->dln, 0, sizeof(float) * N * C);
        nx_linear_backward(a->dln, gw->wq, gw->bq, a->dq, s.ln1, w->wq, N, C, Q);
        nx_linear_backward(a->dln, gw->wk, gw->bk, a->dk, s.ln1, w->wk, N, C, KV);
        nx_linear_backward(a->dln, gw->wv, gw->bv, a->dv, s.ln1, w->wv, N, C, KV);
        nx_rmsnorm_backward(dres, gw->ln1, a->dln, x, w->ln1, s.rstd1, N, C);
        if (dhidden) nx_add_inplace(dres, dhidden + (size_t)l * N * C, (long)N * C);
    }
    nx_embedding_backward(g.wte, dres, a->ids, N, C);
}
