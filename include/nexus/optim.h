/* optim.h — AdamW state (torch.optim.AdamW) and learning-rate schedules.
 * The update itself is an op (nx_adamw_update in ops.h: decoupled weight
 * decay, bias correction, global-norm clipping, a guard against non-finite
 * steps) so that it runs where the weights live; this module holds what
 * the host keeps: hyper-parameters, the step count, and the two moment
 * buffers on the backend, all saved by checkpoints. */
#ifndef NEXUS_OPTIM_H
#define NEXUS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "nexus/ops.h"

typedef struct nx_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t t;        /* updates done */
    size_t n;         /* parameters */
    float *m, *v;     /* first and second moments, (n), on be */
    nx_backend *be;
} nx_adamw;

/* Zeroed moments for n parameters on be; fails when memory cannot be had. */
int nx_adamw_init(nx_adamw *o, nx_backend *be, size_t n, float lr, float beta1, float beta2, float eps,
                  float wd, nx_err *err);
void nx_adamw_free(nx_adamw *o);
/* The op arguments of update t + 1 at learning rate lr with this clip. */
nx_adamw_args nx_adamw_next(const nx_adamw *o, float lr, float clip);

typedef enum nx_sched { NX_SCHED_CONSTANT, NX_SCHED_LINEAR, NX_SCHED_COSINE } nx_sched;
/* Learning rate at step (0-based) of total steps: linear warmup from
 * peak/warmup to peak over `warmup` steps, then constant, linear or cosine
 * decay from peak to min_lr reached at the last step. */
float nx_lr_at(nx_sched kind, float peak, float min_lr, int64_t warmup, int64_t total, int64_t step);

#endif
