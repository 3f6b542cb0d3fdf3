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
#include "nexus/loss.h"

#include <math.h>
#include <stdlib.h>

#include "nexus/core.h"
#include "nexus/ops.h"

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

/* Per-thread row scratch (2 × V floats), grown on demand and kept for the
 * thread's life, so a training step allocates nothing once warm. */
static _Thread_local float *tl_buf;
static _Thread_local size_t tl_cap;
static float *row_scratch(int V) {
    if (tl_cap < 2 * (size_t)V) {
        free(tl_buf);
        tl_cap = 2 * (size_t)V;
        tl_buf = nx_xmalloc(tl_cap * sizeof(float));
    }
    return tl_buf;
}

double nx_cross_entropy(float *dlogits, float weight, const float *logits, const int32_t *targets,
                        int N, int V) {
    int cnt = count_rows(targets, N);
    if (cnt == 0) return 0.0;
    double total = 0;
    float g = weight / cnt;
#pragma omp parallel reduction(+ : total)
    {
        float *e = row_scratch(V);
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
    }
    return total / cnt;
}

double nx_kd_loss(nx_kd_kind kind, float temp, float *dlogits, float weight, const float *student,
                  const float *teacher, const int32_t *targets, int N, int V) {
    int cnt = count_rows(targets, N);
    if (cnt == 0) return 0.0;
    float inv_t = 1.0f / temp;
    float g = weight * temp / cnt;
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        float *ps = row_scratch(V), *pt = ps + V;
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
    }
    return (double)temp * temp * total / cnt;
}

/* ---- references ---- */
static void log_softmax_ref(double *out, const float *x, int V, double temp) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) mx = x[i] / temp > mx ? x[i] / temp : mx;
    for (int i = 0; i < V; i++) s += exp(x[i] / temp - mx);
    for (int i = 0; i < V; i++) out[i] = x[i] / temp - mx - log(s);
}

double nx_ref_cross_entropy(float *dlogits, float weight, const float *logits,
                            const int32_t *targets, int N, int V) {
    int cnt = count_rows(targets, N);
    double *lp = nx_xmalloc(sizeof(double) * V), total = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        log_softmax_ref(lp, logits + (long)n * V, V, 1.0);
        total -= lp[targets[n]];
        if (dlogits)
            for (int i = 0; i < V; i++)
                dlogits[(long)n * V + i] += (float)(weight * (exp(lp[i]) - (i == targets[n])) / cnt);
    }
    free(lp);
    return cnt ? total / cnt : 0.0;
}

double nx_ref_kd_loss(nx_kd_kind kind, float temp, float *dlogits, float weight,
                      const float *student, const float *teacher, const int32_t *targets, int N,
                      int V) {
    int cnt = count_rows(targets, N);
    double *ls = nx_xmalloc(sizeof(double) * V), *lt = nx_xmalloc(sizeof(double) * V), total = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        log_softmax_ref(ls, student + (long)n * V, V, temp);
        log_softmax_ref(lt, teacher + (long)n * V, V, temp);
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
    return cnt ? (double)temp * temp * total / cnt : 0.0;
}
