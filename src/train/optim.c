/* optim.c — AdamW, gradient clipping and schedules, mirroring PyTorch's
 * single-tensor AdamW so that trajectories match step for step:
 *
 *   param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1) */
#include "nexus/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/core.h"

void nx_adamw_init(nx_adamw *o, size_t n, float lr, float beta1, float beta2, float eps, float wd) {
    *o = (nx_adamw){.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps, .weight_decay = wd, .n = n};
    o->m = nx_aligned_alloc(n * sizeof(float));
    o->v = nx_aligned_alloc(n * sizeof(float));
}

void nx_adamw_free(nx_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void nx_adamw_step(nx_adamw *o, float *p, const float *g, float lr, const uint8_t *decay_mask) {
    o->t++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = lr * o->weight_decay;
    float *m = o->m, *v = o->v;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < o->n; i++) {
        if (!decay_mask || decay_mask[i]) p[i] *= 1.0f - wd;
        m[i] += (g[i] - m[i]) * (1.0f - b1);
        v[i] = v[i] * b2 + (1.0f - b2) * g[i] * g[i];
        p[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + eps);
    }
}

double nx_grad_norm(const float *g, size_t n) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

double nx_clip_grad_norm(float *g, size_t n, float max_norm) {
    double norm = nx_grad_norm(g, n);
    if (max_norm > 0 && norm > max_norm) {
        float c = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    return norm;
}

float nx_lr_at(nx_sched kind, float peak, float min_lr, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    if (kind == NX_SCHED_CONSTANT || total - 1 <= warmup) return peak;
    double prog = (double)(step - warmup) / (double)(total - 1 - warmup);
    if (prog > 1) prog = 1;
    if (kind == NX_SCHED_LINEAR) return (float)(peak + (min_lr - peak) * prog);
    return (float)(min_lr + 0.5 * (peak - min_lr) * (1.0 + cos(M_PI * prog)));
}
