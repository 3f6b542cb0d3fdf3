/* infer.c — prefill and KV-cache decode (see infer.h for the contracts).
 *
 * Both paths run the same layer, transformers' LlamaDecoderLayer, over a
 * set of rows (tokens) that each carry a position and a sequence:
 *
 *   xn = rms1(x); [q k v] = xn·[Wq;Wk;Wv]ᵀ + b; q,k = rope(q,k; pos)
 *   K[b,pos], V[b,pos] = k, v;  x += attn(q; K[b,0..pos], V[b,0..pos])·Woᵀ
 *   xn = rms2(x); [g u] = xn·[Wg;Wu]ᵀ; x += (silu(g)·u)·Wdᵀ
 *
 * Prefill: the rows are n consecutive tokens of one sequence, multiplied as
 * matrices (nx_gemm) and attended per head with two GEMMs over the cache
 * (causal: row r sees keys 0..p0+r). Decode: one row per sequence,
 * matrix-vector products read each weight once, attention per (row, head)
 * as dot products over the row's own cache. Only the rows whose logits are
 * wanted (the last of a prefill chunk, every decode row) go through the
 * final norm and the LM head. */
#include "nexus/infer.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "nexus/gemm.h"
#include "nexus/matvec.h"
#include "nexus/ops.h"

static void plan(nx_infer *s, const nx_model_config *c, nx_arena *ar) {
    size_t KV = (size_t)c->KVH * c->HS, Q = (size_t)c->NH * c->HS, R = (size_t)s->R;
    size_t cache = (size_t)c->L * s->B * s->T * KV;
    s->len = nx_arena_alloc(ar, sizeof(int) * s->B);
    s->kc = nx_arena_floats(ar, cache);
    s->vc = nx_arena_floats(ar, cache);
    s->rope_cos = nx_arena_floats(ar, (size_t)s->T * c->HS / 2);
    s->rope_sin = nx_arena_floats(ar, (size_t)s->T * c->HS / 2);
    s->x = nx_arena_floats(ar, R * c->C);
    s->xn = nx_arena_floats(ar, R * c->C);
    s->rstd = nx_arena_floats(ar, R);
    s->qkv = nx_arena_floats(ar, R * (Q + 2 * KV));
    s->att = nx_arena_floats(ar, R * Q);
    s->gu = nx_arena_floats(ar, R * 2 * c->F);
    s->h = nx_arena_floats(ar, R * c->F);
    s->pos = nx_arena_alloc(ar, sizeof(int32_t) * R);
    s->scores = nx_arena_floats(ar, (size_t)s->nthreads * s->P * s->T);
    s->logits = nx_arena_floats(ar, (size_t)s->B * c->V);
}

int nx_infer_init(nx_infer *s, const nx_model *m, int B, int T, int P, nx_err *err) {
    memset(s, 0, sizeof *s);
    NX_ASSERTM(m->params, "the inference engine reads f32 weights (load the model with nx_hf_load_model)");
    const nx_model_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || P <= 0)
        return nx_fail(err, "inference sizes must be positive: batch %d, context %d, chunk %d", B, T, P);
    if (T > c->max_pos)
        return nx_fail(err, "context of %d tokens exceeds the model's max_position_embeddings (%d)", T,
                       c->max_pos);
    if (P > T) P = T;
    s->m = m;
    s->B = B, s->T = T, s->P = P;
    s->R = B > P ? B : P;
    s->nthreads = omp_get_max_threads();
    int Q = c->NH * c->HS, KV = c->KVH * c->HS;
    for (int l = 0; l < c->L; l++) { /* fused only if every layer is laid out back to back */
        const nx_layer_weights *w = &m->w.layer[l];
        bool qkv = !w->bq && w->wk == w->wq + (size_t)Q * c->C && w->wv == w->wk + (size_t)KV * c->C;
        bool gu = w->wu == w->wg + (size_t)c->F * c->C;
        s->fused_qkv = (l == 0 || s->fused_qkv) && qkv;
        s->fused_gu = (l == 0 || s->fused_gu) && gu;
    }
    nx_arena count = nx_arena_counting();
    plan(s, c, &count);
    if (nx_arena_init(&s->arena, count.used, err))
        return nx_fail_prefix(err, "KV cache and scratch for %d × %d tokens", B, T);
    plan(s, c, &s->arena);
    nx_rope_tables(s->rope_cos, s->rope_sin, T, c->HS, c->rope_theta);
    return NX_OK;
}

void nx_infer_free(nx_infer *s) {
    nx_arena_free(&s->arena);
    memset(s, 0, sizeof *s);
}

void nx_infer_reset(nx_infer *s) {
    for (int b = 0; b < s->B; b++) s->len[b] = 0;
}

double nx_infer_bytes_per_token(const nx_model_config *c) {
    double Q = c->NH * c->HS, KV = c->KVH * c->HS;
    double per_layer = 2.0 * c->C + c->C * (Q + 2 * KV) + Q * c->C + 3.0 * c->C * c->F;
    if (c->qkv_bias) per_layer += Q + 2 * KV;
    if (c->o_bias) per_layer += c->C;
    return 4.0 * (c->L * per_layer + c->C + (double)c->V * c->C + c->C);
}

/* out(N, OC; row stride ldo) (+)= in(N, IC)·Wᵀ + b. Decode rows go through
 * the matrix-vector kernels, prefill rows through GEMM. */
static void mm(bool decode, float *out, int ldo, const float *in, const float *W, const float *b,
               int N, int IC, int OC, bool acc) {
    if (decode && (N == 1 || ldo == OC)) {
        nx_matvec_batch(out, W, in, b, N, OC, IC, acc);
        return;
    }
    nx_gemm(false, true, N, OC, IC, 1.0f, in, IC, W, IC, acc ? 1.0f : 0.0f, out, ldo);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(long)n * ldo + o] += b[o];
}

/* HF rotate_half on nh heads of one row at position p. */
static void rope_row(float *x, int nh, int HS, const float *cs, const float *sn) {
    int half = HS / 2;
    for (int h = 0; h < nh; h++) {
        float *v = x + (long)h * HS;
        for (int i = 0; i < half; i++) {
            float x1 = v[i], x2 = v[i + half];
            v[i] = x1 * cs[i] - x2 * sn[i];
            v[i + half] = x2 * cs[i] + x1 * sn[i];
        }
    }
}

static inline float *cache_at(const nx_infer *s, float *base, int l, int b, int t) {
    const nx_model_config *c = &s->m->cfg;
    return base + (((size_t)l * s->B + b) * s->T + t) * c->KVH * c->HS;
}

/* Causal attention of prefill rows r < n (sequence b, positions p0 + r)
 * over keys 0..p0+n−1 of layer l, per head with two GEMMs. Rows go in
 * blocks of 64 so that each block multiplies only the keys it can see
 * (about half the work of the full square for a prompt from position 0). */
static void attend_prefill(nx_infer *s, int l, int b, int p0, int n) {
    const nx_model_config *c = &s->m->cfg;
    int G = c->NH / c->KVH, Q = c->NH * c->HS, KV = c->KVH * c->HS, QKV = Q + 2 * KV;
    float scale = 1.0f / sqrtf((float)c->HS);
    const float *K0 = cache_at(s, s->kc, l, b, 0), *V0 = cache_at(s, s->vc, l, b, 0);
    enum { RB = 64 };
    int nblk = (n + RB - 1) / RB;
#pragma omp parallel for schedule(dynamic) collapse(2) num_threads(s->nthreads)
    for (int h = 0; h < c->NH; h++)
        for (int blk = 0; blk < nblk; blk++) {
            float *S = s->scores + (size_t)omp_get_thread_num() * s->P * s->T;
            const float *K = K0 + (h / G) * c->HS, *V = V0 + (h / G) * c->HS;
            int r0 = blk * RB, nr = n - r0 < RB ? n - r0 : RB, nk = p0 + r0 + nr;
            nx_gemm(false, true, nr, nk, c->HS, scale, s->qkv + (long)r0 * QKV + h * c->HS, QKV, K, KV,
                    0.0f, S, nk);
            for (int r = 0; r < nr; r++) {
                float *row = S + (long)r * nk, mx = -INFINITY;
                int last = p0 + r0 + r; /* keys 0..last */
                for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
                float sum = 0;
                for (int j = 0; j <= last; j++) sum += row[j] = expf(row[j] - mx);
                float inv = 1.0f / sum;
                for (int j = 0; j <= last; j++) row[j] *= inv;
                for (int j = last + 1; j < nk; j++) row[j] = 0.0f;
            }
            nx_gemm(false, false, nr, c->HS, nk, 1.0f, S, nk, V, KV, 0.0f,
                    s->att + (long)r0 * Q + h * c->HS, Q);
        }
}

/* Decode attention: row r is sequence r at position s->pos[r]. */
static void attend_decode(nx_infer *s, int l, int nb) {
    const nx_model_config *c = &s->m->cfg;
    int G = c->NH / c->KVH, HS = c->HS, Q = c->NH * HS, KV = c->KVH * HS, QKV = Q + 2 * KV;
    float scale = 1.0f / sqrtf((float)HS);
    int work = nb * c->NH;
#pragma omp parallel for schedule(static) num_threads(s->nthreads) if (work > 1)
    for (int i = 0; i < work; i++) {
        int r = i / c->NH, h = i % c->NH, last = s->pos[r];
        float *S = s->scores + (size_t)omp_get_thread_num() * s->P * s->T;
        const float *q = s->qkv + (long)r * QKV + h * HS;
        const float *K = cache_at(s, s->kc, l, r, 0) + (h / G) * HS;
        const float *V = cache_at(s, s->vc, l, r, 0) + (h / G) * HS;
        float mx = -INFINITY;
        for (int j = 0; j <= last; j++) {
            S[j] = scale * nx_dot(q, K + (long)j * KV, HS);
            mx = S[j] > mx ? S[j] : mx;
        }
        float sum = 0;
        for (int j = 0; j <= last; j++) sum += S[j] = expf(S[j] - mx);
        float inv = 1.0f / sum, *o = s->att + (long)r * Q + h * HS;
        for (int d = 0; d < HS; d++) o[d] = 0.0f;
        for (int j = 0; j <= last; j++) {
            float p = S[j] * inv;
            const float *v = V + (long)j * KV;
            for (int d = 0; d < HS; d++) o[d] += p * v[d];
        }
    }
}

/* Runs rows 0..N−1 of s->x through every layer. Decode: row r belongs to
 * sequence r; prefill: all rows belong to sequence b starting at p0. */
static void run_layers(nx_infer *s, bool decode, int N, int b, int p0) {
    const nx_model *m = s->m;
    const nx_model_config *c = &m->cfg;
    int C = c->C, F = c->F, HS = c->HS, half = HS / 2;
    int Q = c->NH * HS, KV = c->KVH * HS, QKV = Q + 2 * KV;
    for (int l = 0; l < c->L; l++) {
        const nx_layer_weights *w = &m->w.layer[l];
        nx_rmsnorm_forward(s->xn, s->rstd, s->x, w->ln1, N, C, c->eps);
        if (s->fused_qkv) {
            mm(decode, s->qkv, QKV, s->xn, w->wq, NULL, N, C, QKV, false);
        } else {
            mm(decode, s->qkv, QKV, s->xn, w->wq, w->bq, N, C, Q, false);
            mm(decode, s->qkv + Q, QKV, s->xn, w->wk, w->bk, N, C, KV, false);
            mm(decode, s->qkv + Q + KV, QKV, s->xn, w->wv, w->bv, N, C, KV, false);
        }
        for (int r = 0; r < N; r++) {
            int seq = decode ? r : b, p = s->pos[r];
            float *row = s->qkv + (long)r * QKV;
            const float *cs = s->rope_cos + (long)p * half, *sn = s->rope_sin + (long)p * half;
            rope_row(row, c->NH, HS, cs, sn);
            rope_row(row + Q, c->KVH, HS, cs, sn);
            memcpy(cache_at(s, s->kc, l, seq, p), row + Q, sizeof(float) * KV);
            memcpy(cache_at(s, s->vc, l, seq, p), row + Q + KV, sizeof(float) * KV);
        }
        if (decode) attend_decode(s, l, N);
        else attend_prefill(s, l, b, p0, N);
        mm(decode, s->x, C, s->att, w->wo, w->bo, N, Q, C, true);
        nx_rmsnorm_forward(s->xn, s->rstd, s->x, w->ln2, N, C, c->eps);
        if (s->fused_gu) {
            mm(decode, s->gu, 2 * F, s->xn, w->wg, NULL, N, C, 2 * F, false);
        } else {
            mm(decode, s->gu, 2 * F, s->xn, w->wg, NULL, N, C, F, false);
            mm(decode, s->gu + F, 2 * F, s->xn, w->wu, NULL, N, C, F, false);
        }
        /* act_fn(gate_proj(x)) * up_proj(x), silu(g) = g·σ(g), over all rows at once */
        const float *gu = s->gu;
        float *hh = s->h;
#pragma omp parallel for schedule(static) if ((long)N * F >= 1024)
        for (long i = 0; i < (long)N * F; i++) {
            long r = i / F, f = i % F;
            float g = gu[r * 2 * F + f];
            hh[i] = g / (1.0f + expf(-g)) * gu[r * 2 * F + F + f];
        }
        mm(decode, s->x, C, s->h, w->wd, NULL, N, F, C, true);
    }
}

static void embed(nx_infer *s, const int32_t *ids, int N) {
    const nx_model_config *c = &s->m->cfg;
    for (int r = 0; r < N; r++) {
        NX_ASSERTM(ids[r] >= 0 && ids[r] < c->V, "token id out of the vocabulary");
        memcpy(s->x + (long)r * c->C, s->m->w.wte + (long)ids[r] * c->C, sizeof(float) * c->C);
    }
}

void nx_infer_prefill(nx_infer *s, int b, const int32_t *ids, int n) {
    const nx_model_config *c = &s->m->cfg;
    NX_ASSERT(b >= 0 && b < s->B && n >= 1);
    NX_ASSERTM(s->len[b] + n <= s->T, "prefill beyond the planned context");
    for (int done = 0; done < n;) {
        int k = n - done < s->P ? n - done : s->P, p0 = s->len[b];
        embed(s, ids + done, k);
        for (int r = 0; r < k; r++) s->pos[r] = p0 + r;
        run_layers(s, false, k, b, p0);
        s->len[b] += k;
        done += k;
        if (done == n) { /* logits of the last token only */
            const float *last = s->x + (long)(k - 1) * c->C;
            nx_rmsnorm_forward(s->xn, s->rstd, last, s->m->w.lnf, 1, c->C, c->eps);
            nx_matvec(s->logits + (long)b * c->V, s->m->w.head, s->xn, NULL, c->V, c->C, false);
        }
    }
}

void nx_infer_decode(nx_infer *s, const int32_t *ids, int nb) {
    const nx_model_config *c = &s->m->cfg;
    NX_ASSERT(nb >= 1 && nb <= s->B);
    for (int r = 0; r < nb; r++) {
        NX_ASSERTM(s->len[r] < s->T, "decode beyond the planned context");
        s->pos[r] = s->len[r];
    }
    embed(s, ids, nb);
    run_layers(s, true, nb, 0, 0);
    for (int r = 0; r < nb; r++) s->len[r]++;
    nx_rmsnorm_forward(s->xn, s->rstd, s->x, s->m->w.lnf, nb, c->C, c->eps);
    nx_matvec_batch(s->logits, s->m->w.head, s->xn, NULL, nb, c->V, c->C, false);
}
