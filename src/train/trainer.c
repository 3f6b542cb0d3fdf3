/* trainer.c — the distillation step (see train.h). The order of work per
 * micro-batch: teacher forward (logits only, no activations kept), student
 * forward, fused loss gradient into student dlogits, student backward adding
 * into grads. Then one clip and one AdamW update per step. */
#include "nexus/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/core.h"

int nx_trainer_init(nx_trainer *tr, nx_model *student, const nx_model *teacher,
                    const nx_train_opts *o, nx_err *err) {
    memset(tr, 0, sizeof *tr);
    if (o->B <= 0 || o->T < 1 || o->accum <= 0)
        return nx_fail(err, "batch_size, seq_len and grad_accum must be positive");
    if (teacher && teacher->cfg.V != student->cfg.V)
        return nx_fail(err, "teacher vocabulary (%d) and student vocabulary (%d) differ: distilling "
                            "logits needs the same tokenizer and vocab_size",
                       teacher->cfg.V, student->cfg.V);
    tr->o = *o;
    tr->student = student;
    tr->teacher = teacher;
    if (nx_acts_init(&tr->sa, &student->cfg, o->B, o->T, true, err))
        return nx_fail_prefix(err, "student");
    if (teacher && nx_acts_init(&tr->ta, &teacher->cfg, o->B, o->T, false, err)) {
        nx_acts_free(&tr->sa);
        return nx_fail_prefix(err, "teacher");
    }
    if (o->hidden_weight > 0) {
        if (!teacher) {
            nx_acts_free(&tr->sa);
            return nx_fail(err, "the hidden-state loss needs a teacher");
        }
        if (teacher->cfg.C != student->cfg.C) {
            nx_acts_free(&tr->sa);
            nx_acts_free(&tr->ta);
            return nx_fail(err, "the hidden-state loss needs equal widths (student %d, teacher %d): a learned "
                                "projection is not implemented yet", student->cfg.C, teacher->cfg.C);
        }
        for (int i = 0; i < o->n_hidden_pairs; i++)
            if (o->hidden_pairs[i][0] < 0 || o->hidden_pairs[i][0] >= student->cfg.L ||
                o->hidden_pairs[i][1] < 0 || o->hidden_pairs[i][1] >= teacher->cfg.L) {
                nx_acts_free(&tr->sa);
                nx_acts_free(&tr->ta);
                return nx_fail(err, "hidden layer pair %d: [%d, %d] out of range", i, o->hidden_pairs[i][0],
                               o->hidden_pairs[i][1]);
            }
        tr->dhidden = nx_aligned_alloc((size_t)(student->cfg.L + 1) * o->B * o->T * student->cfg.C * sizeof(float));
    }
    tr->grads = nx_aligned_alloc(student->nparams * sizeof(float));
    nx_adamw_init(&tr->opt, student->nparams, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay);
    return NX_OK;
}

void nx_trainer_free(nx_trainer *tr) {
    nx_acts_free(&tr->sa);
    if (tr->teacher) nx_acts_free(&tr->ta);
    nx_adamw_free(&tr->opt);
    free(tr->grads);
    free(tr->dhidden);
    memset(tr, 0, sizeof *tr);
}

int nx_trainer_step(nx_trainer *tr, const int32_t *inputs, const int32_t *targets,
                    nx_step_stats *st) {
    const nx_train_opts *o = &tr->o;
    int B = o->B, T = o->T, N = B * T, V = tr->student->cfg.V;
    bool kd = tr->teacher && o->alpha > 0, hid = tr->dhidden != NULL;
    float w_kd = kd ? o->alpha : 0.0f, w_ce = (tr->teacher ? 1.0f - o->alpha : 1.0f);
    memset(tr->grads, 0, tr->student->nparams * sizeof(float));
    double loss = 0, ce = 0, kdv = 0, hv = 0;
    for (int a = 0; a < o->accum; a++) {
        const int32_t *in = inputs + (size_t)a * N, *tg = targets + (size_t)a * N;
        if (kd || hid) nx_model_forward(tr->teacher, &tr->ta, in, B, T, kd);
        nx_model_forward(tr->student, &tr->sa, in, B, T, true);
        float *dl = tr->sa.dlogits;
        memset(dl, 0, sizeof(float) * N * V);
        /* each micro-batch contributes 1/accum of the step's mean loss */
        float s = 1.0f / o->accum;
        double c = nx_cross_entropy(w_ce > 0 ? dl : NULL, w_ce * s, tr->sa.logits, tg, N, V);
        double k = kd ? nx_kd_loss(o->kd, o->temp, dl, w_kd * s, tr->sa.logits, tr->ta.logits, tg,
                                   N, V)
                      : 0.0;
        ce += c / o->accum;
        kdv += k / o->accum;
        double h = 0;
        if (hid) { /* mean over pairs of mean (h_s − h_t)²; gradient 2(h_s − h_t)/(C·N·pairs) */
            size_t NC = (size_t)N * tr->student->cfg.C;
            memset(tr->dhidden, 0, sizeof(float) * (tr->student->cfg.L + 1) * NC);
            float gk = 2.0f * o->hidden_weight * s / ((float)NC * o->n_hidden_pairs);
            for (int p = 0; p < o->n_hidden_pairs; p++) {
                int sl = o->hidden_pairs[p][0] + 1, tl = o->hidden_pairs[p][1] + 1;
                const float *hs = tr->sa.res + sl * NC, *ht = tr->ta.res + tl * NC;
                float *dh = tr->dhidden + sl * NC;
                double sq = 0;
#pragma omp parallel for reduction(+ : sq) schedule(static)
                for (size_t i = 0; i < NC; i++) {
                    float d = hs[i] - ht[i];
                    sq += (double)d * d;
                    dh[i] += gk * d;
                }
                h += sq / NC / o->n_hidden_pairs;
            }
        }
        hv += h / o->accum;
        loss += (w_kd * k + w_ce * c + o->hidden_weight * h) / o->accum;
        nx_model_backward(tr->student, &tr->sa, tr->grads, tr->dhidden);
    }
    float lr = nx_lr_at(o->sched, o->lr, o->min_lr, o->warmup, o->total_steps, tr->step);
    *st = (nx_step_stats){.step = tr->step, .loss = loss, .ce = ce, .kd = kdv, .hidden = hv, .lr = lr,
                          .tokens = (int64_t)o->accum * N};
    st->grad_norm = nx_grad_norm(tr->grads, tr->student->nparams);
    if (!isfinite(loss) || !isfinite(st->grad_norm)) {
        /* name the first tensor whose gradient went bad; do not update */
        if (nx_params_finite(&tr->student->cfg, tr->grads, st->bad_tensor, sizeof st->bad_tensor))
            snprintf(st->bad_tensor, sizeof st->bad_tensor, "%s", kd ? "teacher or student logits" : "student logits");
        return NX_ERR;
    }
    nx_clip_grad_norm(tr->grads, tr->student->nparams, o->clip);
    nx_adamw_step(&tr->opt, tr->student->params, tr->grads, lr, NULL);
    tr->step++;
    return NX_OK;
}

bool nx_params_finite(const nx_model_config *cfg, const float *buf, char *name, size_t name_len) {
    int n = nx_model_params(cfg, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, tab);
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        for (size_t k = 0; k < tab[i].numel; k++)
            if (!isfinite(buf[tab[i].offset + k])) {
                ok = false;
                if (name) snprintf(name, name_len, "%s", tab[i].name);
                break;
            }
    free(tab);
    return ok;
}
