/* optim.h — AdamW with decoupled weight decay (torch.optim.AdamW), global
 * gradient-norm clipping (torch.nn.utils.clip_grad_norm_), and learning-rate
 * schedules. State is two parameter-shaped moment buffers and a step count,
 * all saved by checkpoints. */
#ifndef NEXUS_OPTIM_H
#define NEXUS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct nx_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t t;        /* updates done */
    size_t n;         /* parameters */
    float *m, *v;     /* first and second moments, (n), owned */
} nx_adamw;

void nx_adamw_init(nx_adamw *o, size_t n, float lr, float beta1, float beta2, float eps, float wd);
void nx_adamw_free(nx_adamw *o);
/* One update of params with grads at learning rate lr (the schedule's). If
 * decay_mask is not NULL, weight decay applies where it is nonzero. */
void nx_adamw_step(nx_adamw *o, float *params, const float *grads, float lr,
                   const uint8_t *decay_mask);

/* ‖g‖₂ over n values (double accumulation). */
double nx_grad_norm(const float *g, size_t n);
/* clip_grad_norm_: if norm > max_norm, scale g by max_norm / (norm + 1e-6).
 * Returns the norm before clipping. max_norm <= 0 disables. */
double nx_clip_grad_norm(float *g, size_t n, float max_norm);

typedef enum nx_sched { NX_SCHED_CONSTANT, NX_SCHED_LINEAR, NX_SCHED_COSINE } nx_sched;
/* Learning rate at step (0-based) of total steps: linear warmup from
 * peak/warmup to peak over `warmup` steps, then constant, linear or cosine
 * decay from peak to min_lr reached at the last step. */
float nx_lr_at(nx_sched kind, float peak, float min_lr, int64_t warmup, int64_t total, int64_t step);

#endif
