/* ref.c — the reference backend: every op of ops.h as the plainest loops
 * that say the math, in double precision, on host memory, without BLAS or
 * threads. It is the definition the other backends are held to
 * (tests/test_backend.c runs each op on each backend and compares), and a
 * model can run on it end to end (slowly) to check a whole forward and
 * backward. Nothing here is tuned; clarity is the point. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/ops.h"
#include "../host.h"

static int ref_plan(nx_backend *be, const nx_work *w, nx_err *err) {
    (void)be, (void)w, (void)err;
    return NX_OK; /* the reference allocates as it goes: it is never timed */
}
static bool ref_supports_weight(const nx_backend *be, nx_dtype t) {
    (void)be;
    return nx_type(t)->weight;
}

/* Row r of W widened to f32 (malloc'd by the caller: W.cols floats). */
static void weight_row(float *dst, const nx_weight *W, int r) {
    nx_type(W->type)->to_f32(dst, (const char *)W->data + (size_t)r * W->row_bytes, W->cols);
}

static void ref_embed(nx_backend *be, float *out, const int32_t *ids, const nx_weight *wte, int N) {
    (void)be;
    for (int n = 0; n < N; n++) {
        NX_ASSERT(ids[n] >= 0 && ids[n] < wte->rows);
        weight_row(out + (long)n * wte->cols, wte, ids[n]);
    }
}

static void ref_embed_backward(nx_backend *be, float *dwte, const float *dout, const int32_t *ids, int N,
                               int C) {
    (void)be;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) dwte[(long)ids[n] * C + c] += dout[(long)n * C + c];
}

static void ref_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C,
                        float eps) {
    (void)be;
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)in[(long)n * C + c] * in[(long)n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        if (rstd) rstd[n] = (float)r;
        for (int c = 0; c < C; c++) out[(long)n * C + c] = (float)(w[c] * in[(long)n * C + c] * r);
    }
}

static void ref_rmsnorm_backward(nx_backend *be, float *din, float *dw, const float *dout, const float *in,
                                 const float *w, const float *rstd, int N, int C) {
    (void)be;
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * C, *dy = dout + (long)n * C;
        double r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * x[c];
        for (int c = 0; c < C; c++) {
            din[(long)n * C + c] += (float)(r * w[c] * dy[c] - dot * r * r * r / C * x[c]);
            dw[c] += (float)(dy[c] * x[c] * r);
        }
    }
}

static void ref_linear(nx_backend *be, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    (void)be;
    int OC = W->rows, IC = W->cols;
    float *row = nx_xmalloc(sizeof(float) * (IC ? IC : 1));
    for (int o = 0; o < OC; o++) {
        weight_row(row, W, o);
        for (int n = 0; n < N; n++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < IC; i++) s += (double)in[(long)n * IC + i] * row[i];
            out[(long)n * OC + o] = (float)s;
        }
    }
    free(row);
}

static void ref_linear_backward(nx_backend *be, float *din, float *dW, float *db, const float *dout,
                                const float *in, const nx_weight *Wt, int N) {
    (void)be;
    int OC = Wt->rows, IC = Wt->cols;
    const float *W = Wt->data;
    for (int n = 0; n < N && din; n++)
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(long)n * OC + o] * W[(long)o * IC + i];
            din[(long)n * IC + i] += (float)s;
        }
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)dout[(long)n * OC + o] * in[(long)n * IC + i];
            dW[(long)o * IC + i] += (float)s;
        }
        if (db) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(long)n * OC + o];
            db[o] += (float)s;
        }
    }
}

static void ref_rope(nx_backend *be, float *x, int64_t ldx, const int32_t *pos, const float *cos_t,
                     const float *sin_t, int N, int H, int HS, bool inverse) {
    (void)be;
    int half = HS / 2;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *v = x + n * ldx + (long)h * HS;
            for (int i = 0; i < half; i++) {
                double c = cos_t[(long)pos[n] * half + i], s = sin_t[(long)pos[n] * half + i];
                if (inverse) s = -s;
                double x1 = v[i], x2 = v[i + half];
                v[i] = (float)(x1 * c - x2 * s);
                v[i + half] = (float)(x2 * c + x1 * s);
            }
        }
}

static void ref_kv_store(nx_backend *be, nx_kv kv, const float *k, const float *v, int64_t ld,
                         const nx_span *spans, int nspans, int D) {
    (void)be;
    long r = 0;
    for (int s = 0; s < nspans; s++)
        for (int i = 0; i < spans[s].len; i++, r++)
            for (int d = 0; d < D; d++) {
                int64_t at = spans[s].seq * kv.seq + (int64_t)(spans[s].pos + i) * kv.row + d;
                kv.k[at] = k[r * ld + d];
                kv.v[at] = v[r * ld + d];
            }
}

/* The first key a query at position p sees (ops.h: p − window < j). */
static int first_key(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

static void ref_attention(nx_backend *be, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv,
                          const nx_span *spans, int nspans, int NH, int KVH, int HS, int window) {
    (void)be;
    int G = NH / KVH, T = probs ? spans[0].len : 0;
    double sc = 1.0 / sqrt((double)HS);
    long r = 0;
    for (int s = 0; s < nspans; s++)
        for (int i = 0; i < spans[s].len; i++, r++) {
            int last = spans[s].pos + i, j0 = first_key(last, window);
            double *p = nx_xmalloc(sizeof(double) * (last + 1));
            for (int h = 0; h < NH; h++) {
                const float *qv = q + r * ldq + (long)h * HS;
                const float *K = kv.k + spans[s].seq * kv.seq + (h / G) * HS;
                const float *V = kv.v + spans[s].seq * kv.seq + (h / G) * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = j0; j <= last; j++) {
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += (double)qv[e] * K[j * kv.row + e];
                    p[j] = d * sc;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = j0; j <= last; j++) sum += (p[j] = exp(p[j] - mx));
                for (int e = 0; e < HS; e++) {
                    double o = 0;
                    for (int j = j0; j <= last; j++) o += p[j] / sum * V[j * kv.row + e];
                    out[r * NH * HS + (long)h * HS + e] = (float)o;
                }
                if (probs) {
                    float *row = probs + (((size_t)s * NH + h) * T + i) * T;
                    for (int j = 0; j < T; j++) row[j] = j >= j0 && j <= last ? (float)(p[j] / sum) : 0.0f;
                }
            }
            free(p);
        }
}

static void ref_attention_backward(nx_backend *be, float *dq, float *dk, float *dv, float *scratch,
                                   const float *dout, const float *probs, const float *dprobs_add,
                                   const float *q, const float *k, const float *v, int64_t ld, int B, int T,
                                   int NH, int KVH, int HS, int window) {
    (void)be, (void)scratch, (void)probs;
    int G = NH / KVH, Q = NH * HS;
    double sc = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            for (int e = 0; e < Q; e++) dq[((long)b * T + t) * ld + e] = 0;
            for (int e = 0; e < KVH * HS; e++) dk[((long)b * T + t) * ld + e] = dv[((long)b * T + t) * ld + e] = 0;
        }
    double *p = nx_xmalloc(sizeof(double) * T), *dp = nx_xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                long rt = (long)b * T + t;
                int j0 = first_key(t, window);
                const float *qv = q + rt * ld + (long)h * HS, *go = dout + rt * Q + (long)h * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = j0; j <= t; j++) {
                    const float *kv = k + ((long)b * T + j) * ld + (h / G) * HS;
                    double s = 0;
                    for (int e = 0; e < HS; e++) s += (double)qv[e] * kv[e];
                    p[j] = s * sc;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = j0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                double dot = 0;
                for (int j = j0; j <= t; j++) {
                    p[j] /= sum;
                    const float *vv = v + ((long)b * T + j) * ld + (h / G) * HS;
                    double s = 0;
                    for (int e = 0; e < HS; e++) s += (double)go[e] * vv[e];
                    if (dprobs_add) s += dprobs_add[(((long)b * NH + h) * T + t) * T + j];
                    dp[j] = s;
                    dot += s * p[j];
                    float *dvv = dv + ((long)b * T + j) * ld + (h / G) * HS;
                    for (int e = 0; e < HS; e++) dvv[e] += (float)(p[j] * go[e]);
                }
                for (int j = j0; j <= t; j++) {
                    double ds = p[j] * (dp[j] - dot) * sc;
                    const float *kv = k + ((long)b * T + j) * ld + (h / G) * HS;
                    float *dkv = dk + ((long)b * T + j) * ld + (h / G) * HS, *dqv = dq + rt * ld + (long)h * HS;
                    for (int e = 0; e < HS; e++) {
                        dqv[e] += (float)(ds * kv[e]);
                        dkv[e] += (float)(ds * qv[e]);
                    }
                }
            }
    free(p);
    free(dp);
}

static void ref_copy2d(nx_backend *be, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols) {
    (void)be;
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[r * ldd + c] = src[r * lds + c];
}

static void ref_swiglu(nx_backend *be, float *h, const float *gu, int N, int F) {
    (void)be;
    for (long n = 0; n < N; n++)
        for (long f = 0; f < F; f++) {
            double g = gu[n * 2 * F + f];
            h[n * F + f] = (float)(g / (1.0 + exp(-g)) * gu[n * 2 * F + F + f]);
        }
}

static void ref_swiglu_backward(nx_backend *be, float *dgu, const float *dh, const float *gu, int N, int F) {
    (void)be;
    for (long n = 0; n < N; n++)
        for (long f = 0; f < F; f++) {
            double g = gu[n * 2 * F + f], u = gu[n * 2 * F + F + f], s = 1.0 / (1.0 + exp(-g));
            dgu[n * 2 * F + f] = (float)(dh[n * F + f] * u * s * (1.0 + g * (1.0 - s)));
            dgu[n * 2 * F + F + f] = (float)(dh[n * F + f] * g * s);
        }
}

static void ref_add(nx_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void ref_argmax(nx_backend *be, int32_t *out, const float *x, int N, int V) {
    (void)be;
    for (int n = 0; n < N; n++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (x[(long)n * V + i] > x[(long)n * V + best]) best = i;
        out[n] = best;
    }
}

static int count_rows(const int32_t *targets, int N) {
    int c = 0;
    for (int n = 0; n < N; n++) c += targets[n] >= 0;
    return c;
}

static void log_softmax(double *out, const float *x, int V, double temp) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) mx = x[i] / temp > mx ? x[i] / temp : mx;
    for (int i = 0; i < V; i++) s += exp(x[i] / temp - mx);
    for (int i = 0; i < V; i++) out[i] = x[i] / temp - mx - log(s);
}

static void ref_cross_entropy(nx_backend *be, double *loss, float *dlogits, float weight, const float *logits,
                              const int32_t *targets, int N, int V) {
    (void)be;
    int cnt = count_rows(targets, N);
    double *lp = nx_xmalloc(sizeof(double) * V), total = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        log_softmax(lp, logits + (long)n * V, V, 1.0);
        total -= lp[targets[n]];
        if (dlogits)
            for (int i = 0; i < V; i++)
                dlogits[(long)n * V + i] += (float)(weight * (exp(lp[i]) - (i == targets[n])) / cnt);
    }
    free(lp);
    *loss = cnt ? total / cnt : 0.0;
}

static void ref_kd_loss(nx_backend *be, double *loss, nx_kd_kind kind, float temp, float *dlogits,
                        float weight, const float *student, const float *teacher, const int32_t *targets, int N,
                        int V) {
    (void)be;
    int cnt = count_rows(targets, N);
    double *ls = nx_xmalloc(sizeof(double) * V), *lt = nx_xmalloc(sizeof(double) * V), total = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        log_softmax(ls, student + (long)n * V, V, temp);
        log_softmax(lt, teacher + (long)n * V, V, temp);
        double row = 0, mg = 0;
        for (int i = 0; i < V; i++) {
            double ps = exp(ls[i]), pt = exp(lt[i]), lm = log(0.5 * (ps + pt));
            if (kind == NX_KD_FORWARD_KL) row += pt * (lt[i] - ls[i]);
            else if (kind == NX_KD_REVERSE_KL) row += ps * (ls[i] - lt[i]);
            else {
                row += 0.5 * (pt * (lt[i] - lm) + ps * (ls[i] - lm));
                mg += ps * 0.5 * (ls[i] - lm);
            }
        }
        total += row;
        if (!dlogits) continue;
        for (int i = 0; i < V; i++) {
            double ps = exp(ls[i]), pt = exp(lt[i]), gi;
            if (kind == NX_KD_FORWARD_KL) gi = ps - pt;
            else if (kind == NX_KD_REVERSE_KL) gi = ps * ((ls[i] - lt[i]) - row);
            else gi = ps * (0.5 * (ls[i] - log(0.5 * (ps + pt))) - mg);
            dlogits[(long)n * V + i] += (float)(weight * temp * gi / cnt);
        }
    }
    free(ls);
    free(lt);
    *loss = cnt ? (double)temp * temp * total / cnt : 0.0;
}

static void ref_sqdiff(nx_backend *be, double *sum, float *dy, bool add, const float *y, const float *t,
                       int64_t n, float scale) {
    (void)be;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - t[i];
        s += d * d;
        dy[i] = (float)((add ? dy[i] : 0.0) + scale * d);
    }
    *sum = s;
}

static void ref_attention_kl(nx_backend *be, double *sum, float *dprobs, const float *As, const float *At,
                             int B, int T, int hs, int ht, float coef) {
    (void)be;
    int groups = hs == ht ? hs : 1, gs = hs / groups, gt = ht / groups;
    size_t TT = (size_t)T * T;
    double kl = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < groups; k++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j <= t; j++) {
                    double ps = 0, pt = 0;
                    for (int h = 0; h < gs; h++) ps += As[((size_t)b * hs + (size_t)k * gs + h) * TT + (size_t)t * T + j];
                    for (int h = 0; h < gt; h++) pt += At[((size_t)b * ht + (size_t)k * gt + h) * TT + (size_t)t * T + j];
                    ps = fmax(ps / gs, 1e-30);
                    pt /= gt;
                    if (pt <= 0) continue;
                    kl += pt * (log(pt) - log(ps));
                    for (int h = 0; h < gs; h++)
                        dprobs[((size_t)b * hs + (size_t)k * gs + h) * TT + (size_t)t * T + j] +=
                            (float)(-coef * pt / ps / gs);
                }
    *sum = kl;
}

static void ref_sumsq(nx_backend *be, double *sum, const float *x, int64_t n) {
    (void)be;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    *sum = s;
}

static void ref_adamw(nx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                      const nx_adamw_args *a, const double *guard, int nguard) {
    (void)be;
    for (int i = 0; i < nguard; i++)
        if (!isfinite(guard[i])) return;
    double norm = sqrt(guard[nguard - 1]);
    double c = a->clip > 0 && norm > a->clip ? a->clip / (norm + 1e-6) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        double gi = g[i] * c, pi = p[i] * (1.0 - (double)a->lr * a->weight_decay);
        double mi = m[i] + (gi - m[i]) * (1.0 - a->beta1), vi = v[i] * (double)a->beta2 + (1.0 - a->beta2) * gi * gi;
        pi -= a->lr / a->bc1 * mi / (sqrt(vi) / sqrt(a->bc2) + a->eps);
        p[i] = (float)pi, m[i] = (float)mi, v[i] = (float)vi;
        if (a->p16) ((uint16_t *)a->p16)[i] = nx_f32_to_bf16(p[i]);
    }
}

static void ref_mask(nx_backend *be, float *p, const uint8_t *mask, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++)
        if (!mask[i]) p[i] = 0.0f;
}

static const nx_ops REF_OPS = {
    .embed = ref_embed,
    .embed_backward = ref_embed_backward,
    .rmsnorm = ref_rmsnorm,
    .rmsnorm_backward = ref_rmsnorm_backward,
    .linear = ref_linear,
    .linear_backward = ref_linear_backward,
    .rope = ref_rope,
    .kv_store = ref_kv_store,
    .attention = ref_attention,
    .attention_backward = ref_attention_backward,
    .copy2d = ref_copy2d,
    .swiglu = ref_swiglu,
    .swiglu_backward = ref_swiglu_backward,
    .add = ref_add,
    .cross_entropy = ref_cross_entropy,
    .kd_loss = ref_kd_loss,
    .argmax = ref_argmax,
    .sqdiff = ref_sqdiff,
    .attention_kl = ref_attention_kl,
    .sumsq = ref_sumsq,
    .adamw = ref_adamw,
    .mask = ref_mask,
};

static nx_backend REF = {
    .name = "ref",
    .host_memory = true,
    .ops = &REF_OPS,
    .alloc = nx_host_alloc,
    .free = nx_host_free,
    .upload = nx_host_copy,
    .download = nx_host_copy,
    .copy = nx_host_copy,
    .fill = nx_host_fill,
    .sync = nx_host_sync,
    .plan = ref_plan,
    .supports_weight = ref_supports_weight,
};

nx_backend *nx_backend_ref(void) { return &REF; }
