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

static int count_rows(const int32_t *targets, int N) {
    int c = 0;
    for (int n = 0; n < N; n++) c += targets[n] >= 0;
    return c;
}

/* lse of x/temp over V, in double */
static double lse(const float *x, int V, float inv_t) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += expf((x[i] - mx) * inv_t);
    return mx * (double)inv_t + log(s);
}

double nx_cross_entropy(float *dlogits, float weight, const float *logits, const int32_t *targets,
                        int N, int V) {
    int cnt = count_rows(targets, N);
    if (cnt == 0) return 0.0;
    double total = 0;
    float g = weight / cnt;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *z = logits + (long)n * V;
        double l = lse(z, V, 1.0f);
        NX_ASSERT(targets[n] < V);
        total += l - z[targets[n]];
        if (dlogits) {
            float *d = dlogits + (long)n * V;
            float lf = (float)l;
            for (int i = 0; i < V; i++) d[i] += g * expf(z[i] - lf);
            d[targets[n]] -= g;
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
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *s = student + (long)n * V, *t = teacher + (long)n * V;
        double lsd = lse(s, V, inv_t), ltd = lse(t, V, inv_t);
        float ls = (float)lsd, lt = (float)ltd;
        double row = 0, mean_g = 0, mass = 0;
        /* First pass: the loss and, for reverse KL / JSD, Σ ps·g. The KLs
         * use the logit difference (t − s)/temp, exact to float rounding
         * of the difference itself, and the log-sum-exps in double:
         * Σ p (lp_t − lp_s) = Σ p (t − s)/temp − (lse_t − lse_s) Σ p. */
        for (int i = 0; i < V; i++) {
            float lps = s[i] * inv_t - ls, lpt = t[i] * inv_t - lt;
            float ps = expf(lps), pt = expf(lpt);
            if (kind == NX_KD_FORWARD_KL) {
                row += (double)pt * ((t[i] - s[i]) * inv_t);
                mass += pt;
            } else if (kind == NX_KD_REVERSE_KL) {
                row += (double)ps * ((s[i] - t[i]) * inv_t);
                mass += ps;
            } else {
                float m = 0.5f * (ps + pt);
                float lm = logf(m > 0 ? m : 1e-38f);
                row += 0.5 * ((pt > 0 ? (double)pt * (lpt - lm) : 0) + (ps > 0 ? (double)ps * (lps - lm) : 0));
                mean_g += ps * 0.5 * (lps - lm);
            }
        }
        if (kind == NX_KD_FORWARD_KL) row -= (ltd - lsd) * mass;
        if (kind == NX_KD_REVERSE_KL) row -= (lsd - ltd) * mass;
        total += row;
        if (!dlogits) continue;
        float *d = dlogits + (long)n * V;
        float kl = (float)row, mg = (float)mean_g;
        for (int i = 0; i < V; i++) {
            float lps = s[i] * inv_t - ls, lpt = t[i] * inv_t - lt, ps = expf(lps);
            float gi;
            if (kind == NX_KD_FORWARD_KL) {
                gi = ps - expf(lpt);
            } else if (kind == NX_KD_REVERSE_KL) {
                gi = ps * ((lps - lpt) - kl);
            } else {
                float m = 0.5f * (ps + expf(lpt));
                gi = ps * (0.5f * (lps - logf(m > 0 ? m : 1e-38f)) - mg);
            }
            d[i] += g * gi;
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
