/* loss.c — cross-entropy and the distillation losses, each fused with its
 * gradient so that the (N, V) probabilities are never stored.
 *
 * Per row: log-softmax via the max-shifted log-sum-exp (in double), then
 * the loss and its gradient. Gradients (with z = logits/temp):
 *   CE:          ∂/∂logit = softmax − onehot
 *   forward KL:  ∂KL(pt‖ps)/∂z = ps − pt
 *   reverse KL:  ∂KL(ps‖pt)/∂z = ps ⊙ (a − KL),  a = log ps − log pt
 *   JSD:         ∂J/∂z = ps ⊙ (g − Σ ps g),     g = ½ log(ps / m)
 * and ∂z/∂logit = 1/temp; with the temp² factor the row gradient is
 * temp · (that) / count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

static int count_rows(const int32_t *targets, int N) {
    int c = 0;
    for (int n = 0; n < N; n++) c += targets[n] >= 0;
    return c;
}

static float row_max(const float *x, int V) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

void cpu_cross_entropy(nx_backend *be, double *loss, float *dlogits, float weight, const float *logits,
                       const int32_t *targets, int N, int V) {
    int cnt = count_rows(targets, N);
    *loss = 0.0;
    if (cnt == 0) return;
    float g = weight / cnt;
    int T = cpu_threads(be);
    double part[T];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(T)
    {
        float *e = cpu_scratch(be, omp_get_thread_num(), 2 * (size_t)V);
        double total = 0;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (targets[n] < 0) continue;
            NX_ASSERT(targets[n] < V);
            const float *z = logits + (long)n * V;
            float mx = row_max(z, V);
            double sum = nx_exp_sum(e, z, mx, 1.0f, V); /* e = exp(z − max) */
            total += mx + log(sum) - z[targets[n]];
            if (dlogits) {
                float *d = dlogits + (long)n * V, k = (float)(g / sum);
                for (int i = 0; i < V; i++) d[i] += k * e[i];
                d[targets[n]] -= g;
            }
        }
        part[omp_get_thread_num()] = total;
    }
    *loss = nx_parts_sum(part, T) / cnt;
}

void cpu_kd_loss(nx_backend *be, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                 const float *student, const float *teacher, const int32_t *targets, int N, int V) {
    int cnt = count_rows(targets, N);
    *loss = 0.0;
    if (cnt == 0) return;
    float inv_t = 1.0f / temp;
    float g = weight * temp / cnt;
    int T = cpu_threads(be);
    double part[T];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(T)
    {
        float *ps = cpu_scratch(be, omp_get_thread_num(), 2 * (size_t)V), *pt = ps + V;
        double total = 0;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (targets[n] < 0) continue;
            const float *s = student + (long)n * V, *t = teacher + (long)n * V;
            float ms = row_max(s, V), mt = row_max(t, V);
            double ss = nx_exp_sum(ps, s, ms, inv_t, V), st = nx_exp_sum(pt, t, mt, inv_t, V);
            double lsd = ms * (double)inv_t + log(ss), ltd = mt * (double)inv_t + log(st);
            float rs = (float)(1.0 / ss), rt = (float)(1.0 / st);
            for (int i = 0; i < V; i++) ps[i] *= rs, pt[i] *= rt; /* now probabilities */
            /* KL(p ‖ q) = Σ p (t − s)/temp − (lse_t − lse_s) Σ p: the logit difference is exact
             * to float rounding of the difference itself; the log-sum-exps are in double. */
            double row = 0, mean_g = 0;
            float dl = (float)(lsd - ltd); /* log ps − log pt = (s − t)/temp − dl */
            if (kind == NX_KD_FORWARD_KL) {
                double mass = 0;
                for (int i = 0; i < V; i++) {
                    row += (double)pt[i] * ((t[i] - s[i]) * inv_t);
                    mass += pt[i];
                }
                row -= (ltd - lsd) * mass;
            } else if (kind == NX_KD_REVERSE_KL) {
                double mass = 0;
                for (int i = 0; i < V; i++) {
                    row += (double)ps[i] * ((s[i] - t[i]) * inv_t);
                    mass += ps[i];
                }
                row -= (lsd - ltd) * mass;
            } else {
                for (int i = 0; i < V; i++) {
                    float lps = s[i] * inv_t - (float)lsd, lpt = t[i] * inv_t - (float)ltd;
                    float m = 0.5f * (ps[i] + pt[i]), lm = logf(m > 0 ? m : 1e-38f);
                    row += 0.5 * ((pt[i] > 0 ? (double)pt[i] * (lpt - lm) : 0) +
                                  (ps[i] > 0 ? (double)ps[i] * (lps - lm) : 0));
                    mean_g += ps[i] * 0.5 * (lps - lm);
                }
            }
            total += row;
            if (!dlogits) continue;
            float *d = dlogits + (long)n * V, kl = (float)row, mg = (float)mean_g;
            if (kind == NX_KD_FORWARD_KL) {
                for (int i = 0; i < V; i++) d[i] += g * (ps[i] - pt[i]);
            } else if (kind == NX_KD_REVERSE_KL) {
                for (int i = 0; i < V; i++) d[i] += g * ps[i] * (((s[i] - t[i]) * inv_t - dl) - kl);
            } else {
                for (int i = 0; i < V; i++) {
                    float m = 0.5f * (ps[i] + pt[i]);
                    float lps = s[i] * inv_t - (float)lsd;
                    d[i] += g * ps[i] * (0.5f * (lps - logf(m > 0 ? m : 1e-38f)) - mg);
                }
            }
        }
        part[omp_get_thread_num()] = total;
    }
    *loss = (double)temp * temp * nx_parts_sum(part, T) / cnt;
}

/* The hidden-state loss's kernel: Σ (y − t)² and its gradient. */
void cpu_sqdiff(nx_backend *be, double *sum, float *dy, bool add, const float *y, const float *t, int64_t n,
                float scale) {
    int T = cpu_threads(be);
    double part[T];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(T)
    {
        double sq = 0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float d = y[i] - t[i];
            sq += (double)d * d;
            dy[i] = (add ? dy[i] : 0.0f) + scale * d;
        }
        part[omp_get_thread_num()] = sq;
    }
    *sum = nx_parts_sum(part, T);
}

/* Attention transfer: KL(Ā_t ‖ Ā_s) per (row, group, query) over the keys
 * it sees, Ā a group's mean map (see ops.h). */
void cpu_attention_kl(nx_backend *be, double *sum, float *dprobs, const float *As, const float *At, int B,
                      int T, int hs, int ht, float coef) {
    int groups = hs == ht ? hs : 1, gs = hs / groups, gt = ht / groups;
    size_t TT = (size_t)T * T;
    const float tiny = 1e-30f;
    int nt = cpu_threads(be);
    double part[nt];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(nt)
    {
        double kl = 0;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int k = 0; k < groups; k++) {
                const float *s0 = As + ((size_t)b * hs + (size_t)k * gs) * TT;
                const float *t0 = At + ((size_t)b * ht + (size_t)k * gt) * TT;
                float *d0 = dprobs + ((size_t)b * hs + (size_t)k * gs) * TT;
                for (int t = 0; t < T; t++)
                    for (int j = 0; j <= t; j++) {
                        size_t at = (size_t)t * T + j;
                        float ps = 0, pt = 0;
                        for (int h = 0; h < gs; h++) ps += s0[h * TT + at];
                        for (int h = 0; h < gt; h++) pt += t0[h * TT + at];
                        ps = fmaxf(ps / gs, tiny);
                        pt /= gt;
                        if (pt <= 0) continue;
                        kl += (double)pt * (log((double)pt) - log((double)ps));
                        float d = -coef * pt / ps / gs;
                        for (int h = 0; h < gs; h++) d0[h * TT + at] += d;
                    }
            }
        part[omp_get_thread_num()] = kl;
    }
    *sum = nx_parts_sum(part, nt);
}
