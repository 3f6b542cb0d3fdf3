/* attention.c — causal grouped-query attention on the CPU, one kernel for
 * training, evaluation, prefill and decode (see ops.h for the contract).
 *
 * The rows of a batch come as spans (a sequence, a start position, a
 * length); each row sees the keys of its own sequence up to its position.
 * The work is split into items (span, head, block of CPU_ATT_RB rows),
 * scheduled dynamically over threads; within an item
 *
 *   S = Q_blk · K[0..nk)ᵀ / √HS   (one GEMM, nk = keys the block's last row sees)
 *   P = causal row softmax of S   (row i sees keys 0 .. pos + r0 + i)
 *   O = P · V[0..nk)              (one GEMM)
 *
 * so a block multiplies only the keys it can see — about half the work of
 * the full T × T square for a sequence from position 0. With a sliding
 * window (ops.h) a block starts at the first key its first row sees, and
 * each row's softmax runs over its own window. A single row (a decode
 * step) takes dot products instead. Scores live in the training
 * batch's probs (kept for the backward and for attention transfer) or in a
 * per-thread slice of the workspace.
 *
 * The backward works on whole (batch row, kv head) pairs of a training
 * batch: dP = dO Vᵀ (+ dprobs_add); dV = Pᵀ dO; dS = P ⊙ (dP − rowsum(dP ⊙ P));
 * dQ = dS K/√HS; dK = dSᵀ Q/√HS, the heads sharing a kv head in one
 * iteration so that dK and dV accumulate without races. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"

void cpu_copy2d(nx_backend *be, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols) {
    (void)be;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(be)) if ((int64_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++) memcpy(dst + r * ldd, src + r * lds, sizeof(float) * cols);
}

void cpu_kv_store(nx_backend *be, nx_kv kv, const float *k, const float *v, int64_t ld, const nx_span *spans,
                  int nspans, int D) {
    (void)be;
    long r = 0;
    for (int s = 0; s < nspans; s++)
        for (int i = 0; i < spans[s].len; i++, r++) {
            int64_t at = spans[s].seq * kv.seq + (int64_t)(spans[s].pos + i) * kv.row;
            memcpy(kv.k + at, k + r * ld, sizeof(float) * D);
            memcpy(kv.v + at, v + r * ld, sizeof(float) * D);
        }
}

/* The first key a query at position p sees (ops.h: p − window < j). */
static inline int first_key(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

/* One query row against keys j0..last: the decode path. With keep, S is
 * left holding the probabilities (a kept attention map). */
static void attend_row(float *o, float *S, const float *q, const float *K, const float *V, int64_t row,
                       int j0, int last, int HS, float scale, bool keep) {
    float mx = -INFINITY;
    for (int j = j0; j <= last; j++) {
        S[j] = scale * nx_dot(q, K + j * row, HS);
        mx = S[j] > mx ? S[j] : mx;
    }
    float sum = 0;
    for (int j = j0; j <= last; j++) sum += S[j] = expf(S[j] - mx);
    float inv = 1.0f / sum;
    for (int d = 0; d < HS; d++) o[d] = 0.0f;
    for (int j = j0; j <= last; j++) {
        float p = S[j] * inv;
        const float *vv = V + j * row;
        for (int d = 0; d < HS; d++) o[d] += p * vv[d];
    }
    if (keep) {
        for (int j = 0; j < j0; j++) S[j] = 0.0f;
        for (int j = j0; j <= last; j++) S[j] *= inv;
    }
}

typedef struct {
    float *out, *probs;
    const float *q;
    int64_t ldq;
    nx_kv kv;
    const nx_span *spans;
    const long *row0;
    int NH, G, HS, T, window;
    float scale;
    size_t per_thread;
    nx_backend *be;
} attend_args;

/* Work item (span s, head h, row block blk), on thread t (its scratch). */
static void attend_block(const attend_args *x, int s, int h, int blk, int t) {
    nx_span sp = x->spans[s];
    int r0 = blk * CPU_ATT_RB, HS = x->HS, T = x->T, Q = x->NH * HS;
    if (r0 >= sp.len) return;
    int nr = sp.len - r0 < CPU_ATT_RB ? sp.len - r0 : CPU_ATT_RB, nk = sp.pos + r0 + nr;
    int j0 = first_key(sp.pos + r0, x->window); /* the first key of the block's first row */
    const float *K = x->kv.k + sp.seq * x->kv.seq + (h / x->G) * HS;
    const float *V = x->kv.v + sp.seq * x->kv.seq + (h / x->G) * HS;
    const float *Qb = x->q + (x->row0[s] + r0) * x->ldq + (long)h * HS;
    float *Ob = x->out + (x->row0[s] + r0) * (long)Q + (long)h * HS;
    int ldS = x->probs ? T : nk;
    float *S = x->probs ? x->probs + (((size_t)s * x->NH + h) * T + r0) * T
                        : cpu_scratch(x->be, t, x->per_thread);
    if (nr == 1) {
        attend_row(Ob, S, Qb, K, V, x->kv.row, j0, nk - 1, HS, x->scale, x->probs != NULL);
    } else { /* S holds columns j0 .. nk−1 at S[j]: the block's keys */
        nx_gemm(false, true, nr, nk - j0, HS, x->scale, Qb, (int)x->ldq, K + j0 * x->kv.row, (int)x->kv.row, 0.0f,
                S + j0, ldS);
        for (int i = 0; i < nr; i++) {
            float *row = S + (long)i * ldS, mx = -INFINITY;
            int last = sp.pos + r0 + i, f = first_key(last, x->window);
            for (int j = f; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
            float sum = 0;
            for (int j = f; j <= last; j++) sum += row[j] = expf(row[j] - mx);
            float inv = 1.0f / sum;
            for (int j = x->probs ? 0 : j0; j < f; j++) row[j] = 0.0f;
            for (int j = f; j <= last; j++) row[j] *= inv;
            for (int j = last + 1; j < nk; j++) row[j] = 0.0f;
        }
        nx_gemm(false, false, nr, HS, nk - j0, 1.0f, S + j0, ldS, V + j0 * x->kv.row, (int)x->kv.row, 0.0f, Ob, Q);
    }
    if (x->probs) /* the rest of each kept row is zero */
        for (int i = 0; i < nr; i++) memset(S + (long)i * T + nk, 0, sizeof(float) * (T - nk));
}

/* items i0..i1−1 of (span, head) with one row block each */
static void attend_items(void *p, int i0, int i1, int t) {
    const attend_args *x = p;
    for (int i = i0; i < i1; i++) attend_block(x, i / x->NH, i % x->NH, 0, t);
}

void cpu_attention(nx_backend *be, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv,
                   const nx_span *spans, int nspans, int NH, int KVH, int HS, int window) {
    int G = NH / KVH, T = probs ? spans[0].len : 0, maxblk = 0;
    float scale = 1.0f / sqrtf((float)HS);
    long row0[nspans > 0 ? nspans : 1];
    int64_t ctx = 0;
    for (int s = 0, r = 0; s < nspans; r += spans[s].len, s++) {
        row0[s] = r;
        int nb = (spans[s].len + CPU_ATT_RB - 1) / CPU_ATT_RB;
        maxblk = nb > maxblk ? nb : maxblk;
        if (spans[s].pos + spans[s].len > ctx) ctx = spans[s].pos + spans[s].len;
        if (probs) NX_ASSERTM(spans[s].seq == s && spans[s].pos == 0 && spans[s].len == T,
                              "attention maps are kept only for training spans {b, 0, T}");
    }
    size_t per_thread = (size_t)CPU_ATT_RB * ctx;
    if (!probs) cpu_scratch(be, cpu_threads(be) - 1, per_thread); /* asserts the plan covers it */
    attend_args x = {out, probs, q, ldq, kv, spans, row0, NH, G, HS, T, window, scale, per_thread, be};
    if (maxblk == 1) { /* rows of equal cost (decode, short spans): a static split, on the decode pool */
        cpu_pool_for(nspans * NH, cpu_threads(be), attend_items, &x);
        return;
    }
#pragma omp parallel for schedule(dynamic) collapse(3) num_threads(cpu_threads(be))
    for (int s = 0; s < nspans; s++)
        for (int h = 0; h < NH; h++)
            for (int blk = 0; blk < maxblk; blk++) attend_block(&x, s, h, blk, omp_get_thread_num());
}

void cpu_attention_backward(nx_backend *be, float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *probs, const float *dprobs_add, const float *q, const float *k,
                            const float *v, int64_t ld, int B, int T, int NH, int KVH, int HS, int window) {
    int G = NH / KVH, Q = NH * HS;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for schedule(dynamic) collapse(2) num_threads(cpu_threads(be))
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < KVH; kh++) {
            const float *K = k + (long)b * T * ld + kh * HS, *Vv = v + (long)b * T * ld + kh * HS;
            float *dK = dk + (long)b * T * ld + kh * HS, *dV = dv + (long)b * T * ld + kh * HS;
            for (int t = 0; t < T; t++) {
                memset(dK + t * ld, 0, HS * sizeof(float));
                memset(dV + t * ld, 0, HS * sizeof(float));
            }
            for (int g = 0; g < G; g++) {
                int h = kh * G + g;
                const float *Qh = q + (long)b * T * ld + h * HS, *dO = dout + (long)b * T * Q + h * HS;
                const float *P = probs + ((long)b * NH + h) * T * T;
                float *dP = scratch + ((long)b * NH + h) * T * T;
                float *dQ = dq + (long)b * T * ld + h * HS;
                nx_gemm(false, true, T, T, HS, 1.0f, dO, Q, Vv, (int)ld, 0.0f, dP, T);
                nx_gemm(true, false, T, HS, T, 1.0f, P, T, dO, Q, 1.0f, dV, (int)ld);
                const float *add = dprobs_add ? dprobs_add + ((long)b * NH + h) * T * T : NULL;
                for (int t = 0; t < T; t++) {
                    const float *pr = P + (long)t * T;
                    float *dr = dP + (long)t * T;
                    int j0 = first_key(t, window);
                    if (add)
                        for (int j = j0; j <= t; j++) dr[j] += add[(long)t * T + j];
                    double dot = 0;
                    for (int j = j0; j <= t; j++) dot += (double)dr[j] * pr[j];
                    float d = (float)dot;
                    for (int j = 0; j < j0; j++) dr[j] = 0.0f;
                    for (int j = j0; j <= t; j++) dr[j] = pr[j] * (dr[j] - d) * scale;
                    for (int j = t + 1; j < T; j++) dr[j] = 0.0f;
                }
                nx_gemm(false, false, T, HS, T, 1.0f, dP, T, K, (int)ld, 0.0f, dQ, (int)ld);
                nx_gemm(true, false, T, HS, T, 1.0f, dP, T, Qh, (int)ld, 1.0f, dK, (int)ld);
            }
        }
}
