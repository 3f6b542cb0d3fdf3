/* optim.c — the optimiser's kernels on the CPU: Σ g² for the global
 * gradient norm, and one clipped AdamW update mirroring PyTorch's
 * single-tensor AdamW, so that trajectories match step for step:
 *
 *   param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
 *
 * with the gradient first scaled as clip_grad_norm_ does. The update reads
 * its guard values itself (the losses and Σ g², in backend memory) and does
 * nothing when one is not finite, so a bad step never reaches the weights
 * and a GPU never waits for the host to decide. The mask op keeps a pruned
 * student's zeros after each update. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

void cpu_sumsq(nx_backend *be, double *sum, const float *x, int64_t n) {
    int T = cpu_threads(be);
    double part[T];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(T)
    {
        double s = 0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        part[omp_get_thread_num()] = s;
    }
    *sum = nx_parts_sum(part, T);
}

void cpu_adamw(nx_backend *be, float *p, const float *g, float *m, float *v, int64_t n, const nx_adamw_args *a,
               const double *guard, int nguard) {
    for (int i = 0; i < nguard; i++)
        if (!isfinite(guard[i])) return;
    double norm = sqrt(guard[nguard - 1]);
    float c = a->clip > 0 && norm > a->clip ? (float)(a->clip / (norm + 1e-6)) : 1.0f;
    float step = (float)(a->lr / a->bc1), bc2s = (float)sqrt(a->bc2);
    float b1 = a->beta1, b2 = a->beta2, eps = a->eps, wd = a->lr * a->weight_decay;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(be))
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * c;
        p[i] *= 1.0f - wd;
        m[i] += (gi - m[i]) * (1.0f - b1);
        v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + eps);
        if (a->p16) ((uint16_t *)a->p16)[i] = nx_f32_to_bf16(p[i]);
    }
}

void cpu_mask(nx_backend *be, float *p, const uint8_t *mask, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(cpu_threads(be))
    for (int64_t i = 0; i < n; i++) p[i] = mask[i] ? p[i] : 0.0f;
}
