/* optim.c — AdamW's host-side state and the learning-rate schedules (see
 * optim.h); the update kernel is each backend's nx_adamw_update. */
#include "nexus/optim.h"

#include <math.h>
#include <string.h>

int nx_adamw_init(nx_adamw *o, nx_backend *be, size_t n, float lr, float beta1, float beta2, float eps,
                  float wd, nx_err *err) {
    *o = (nx_adamw){.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps, .weight_decay = wd, .n = n, .be = be};
    o->m = nx_backend_alloc(be, n * sizeof(float), "AdamW first moments", err);
    o->v = o->m ? nx_backend_alloc(be, n * sizeof(float), "AdamW second moments", err) : NULL;
    if (!o->v) {
        nx_adamw_free(o);
        return NX_ERR;
    }
    return NX_OK;
}

void nx_adamw_free(nx_adamw *o) {
    if (o->be) {
        nx_backend_free(o->be, o->m);
        nx_backend_free(o->be, o->v);
    }
    memset(o, 0, sizeof *o);
}

nx_adamw_args nx_adamw_next(const nx_adamw *o, float lr, float clip) {
    double t = (double)(o->t + 1);
    return (nx_adamw_args){.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                           .weight_decay = o->weight_decay, .bc1 = 1.0 - pow(o->beta1, t),
                           .bc2 = 1.0 - pow(o->beta2, t), .clip = clip};
}

float nx_lr_at(nx_sched kind, float peak, float min_lr, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    if (kind == NX_SCHED_CONSTANT || total - 1 <= warmup) return peak;
    double prog = (double)(step - warmup) / (double)(total - 1 - warmup);
    if (prog > 1) prog = 1;
    if (kind == NX_SCHED_LINEAR) return (float)(peak + (min_lr - peak) * prog);
    return (float)(min_lr + 0.5 * (peak - min_lr) * (1.0 + cos(M_PI * prog)));
}
