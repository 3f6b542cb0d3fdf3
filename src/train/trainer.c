/* trainer.c — the distillation step (see train.h). The order of work per
 * micro-batch: teacher forward (no gradients; logits only when KD is on,
 * attention maps kept only for attention transfer), student forward, fused
 * loss gradient into student dlogits, hidden-state and attention-map
 * gradients into their own buffers, student backward adding into grads.
 * Then one clip and one AdamW update per step over everything that trains
 * (the student and, where widths differ, the hidden-state projections). */
#include "nexus/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/core.h"
#include "nexus/ops.h"

static int check_layer_map(const nx_train_opts *o, const nx_model *s, const nx_model *t, nx_err *err) {
    if (!t) return nx_fail(err, "the hidden-state and attention losses need a teacher");
    if (o->n_layer_map <= 0) return nx_fail(err, "the hidden-state and attention losses need a layer map");
    for (int i = 0; i < o->n_layer_map; i++)
        if (o->layer_map[i][0] < 0 || o->layer_map[i][0] >= s->cfg.L || o->layer_map[i][1] < 0 ||
            o->layer_map[i][1] >= t->cfg.L)
            return nx_fail(err, "layer map pair %d: [%d, %d] out of range (student layers 0..%d, teacher 0..%d)",
                           i, o->layer_map[i][0], o->layer_map[i][1], s->cfg.L - 1, t->cfg.L - 1);
    return NX_OK;
}

/* Floats of the hidden-state projections (none when the widths agree). */
static size_t proj_floats(const nx_model_config *s, const nx_model_config *t, const nx_train_opts *o) {
    return o->hidden_weight > 0 && s->C != t->C ? (size_t)o->n_layer_map * t->C * s->C : 0;
}

size_t nx_trainer_loss_bytes(const nx_model_config *s, const nx_model_config *t, const nx_train_opts *o) {
    if (!t) return 0;
    size_t N = (size_t)o->B * o->T, np = proj_floats(s, t, o), b = 0;
    if (o->hidden_weight > 0) b += (size_t)(s->L + 1) * N * s->C * 4;
    if (np) b += 16 * np + N * t->C * 4; /* weights, grads, AdamW m and v; projected states */
    if (o->attention_weight > 0) /* one map gradient per distinct student layer */
        for (int i = 0; i < o->n_layer_map; i++) {
            int j = 0;
            while (j < i && o->layer_map[j][0] != o->layer_map[i][0]) j++;
            if (j == i) b += N * o->T * s->NH * 4;
        }
    return b;
}

int nx_trainer_init(nx_trainer *tr, nx_model *student, const nx_model *teacher,
                    const nx_train_opts *o, nx_err *err) {
    memset(tr, 0, sizeof *tr);
    if (o->B <= 0 || o->T < 1 || o->accum <= 0)
        return nx_fail(err, "batch_size, seq_len and grad_accum must be positive");
    if (teacher && teacher->cfg.V != student->cfg.V)
        return nx_fail(err, "teacher vocabulary (%d) and student vocabulary (%d) differ: distilling "
                            "logits needs the same tokenizer and vocab_size",
                       teacher->cfg.V, student->cfg.V);
    bool hid = o->hidden_weight > 0, att = o->attention_weight > 0;
    if ((hid || att) && check_layer_map(o, student, teacher, err)) return NX_ERR;
    tr->o = *o;
    tr->student = student;
    tr->teacher = teacher;
    if (nx_acts_init(&tr->sa, &student->cfg, o->B, o->T, NX_ACTS_TRAIN, err))
        return nx_fail_prefix(err, "student");
    if (teacher &&
        nx_acts_init(&tr->ta, &teacher->cfg, o->B, o->T, att ? NX_ACTS_KEEP_PROBS : NX_ACTS_INFER, err)) {
        nx_acts_free(&tr->sa);
        return nx_fail_prefix(err, "teacher");
    }
    const nx_model_config *sc = &student->cfg;
    size_t N = (size_t)o->B * o->T;
    tr->n_train = student->nparams;
    if (hid) {
        tr->dhidden = nx_aligned_alloc((size_t)(sc->L + 1) * N * sc->C * sizeof(float));
        int Cs = sc->C, Ct = teacher->cfg.C;
        size_t n = proj_floats(sc, &teacher->cfg, o);
        if (n) { /* torch.nn.Linear's default init: U(−1/√in, 1/√in) */
            tr->proj = nx_model_reserve(student, n);
            tr->n_train += n;
            tr->py = nx_aligned_alloc(N * Ct * sizeof(float));
            nx_rng r;
            nx_rng_seed(&r, o->proj_seed);
            float bound = 1.0f / sqrtf((float)Cs);
            for (size_t i = 0; i < n; i++) tr->proj[i] = bound * (2.0f * (float)nx_rng_uniform(&r) - 1.0f);
        }
    }
    if (att) {
        tr->dprobs = nx_xcalloc(sc->L, sizeof *tr->dprobs);
        for (int i = 0; i < o->n_layer_map; i++) {
            int l = o->layer_map[i][0];
            if (!tr->dprobs[l]) tr->dprobs[l] = nx_aligned_alloc(N * o->T * sc->NH * sizeof(float));
        }
    }
    tr->grads = nx_aligned_alloc(tr->n_train * sizeof(float));
    nx_adamw_init(&tr->opt, tr->n_train, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay);
    return NX_OK;
}

void nx_trainer_free(nx_trainer *tr) {
    nx_acts_free(&tr->sa);
    if (tr->teacher) nx_acts_free(&tr->ta);
    nx_adamw_free(&tr->opt);
    free(tr->grads);
    free(tr->dhidden);
    free(tr->py);
    if (tr->dprobs)
        for (int l = 0; l < tr->student->cfg.L; l++) free(tr->dprobs[l]);
    free(tr->dprobs);
    memset(tr, 0, sizeof *tr);
}

/* Hidden-state loss of one micro-batch: mean over pairs of mean (P h_s − h_t)²
 * (P the pair's projection, or the identity); its gradient scaled by g goes
 * into tr->dhidden and the projections' gradients. */
static double hidden_loss(nx_trainer *tr, float g) {
    const nx_train_opts *o = &tr->o;
    int N = o->B * o->T, Cs = tr->student->cfg.C, Ct = tr->teacher->cfg.C, P = o->n_layer_map;
    size_t NCs = (size_t)N * Cs, NCt = (size_t)N * Ct;
    memset(tr->dhidden, 0, sizeof(float) * (tr->student->cfg.L + 1) * NCs);
    float gk = 2.0f * g / ((float)NCt * P); /* d/dy of mean squares, averaged over pairs */
    double total = 0;
    for (int p = 0; p < P; p++) {
        int sl = o->layer_map[p][0] + 1, tl = o->layer_map[p][1] + 1;
        const float *hs = tr->sa.res + sl * NCs, *ht = tr->ta.res + tl * NCt;
        const float *W = tr->proj ? tr->proj + (size_t)p * Ct * Cs : NULL;
        float *y = tr->py;
        if (W) nx_linear_forward(y, hs, W, NULL, N, Cs, Ct);
        /* d = y − h_t. Without a projection the gradient goes straight to
         * dhidden; with one it replaces y in place and flows back through W. */
        float *dh = tr->dhidden + sl * NCs;
        double sq = 0;
#pragma omp parallel for reduction(+ : sq) schedule(static)
        for (size_t i = 0; i < NCt; i++) {
            float d = (W ? y[i] : hs[i]) - ht[i];
            sq += (double)d * d;
            if (W) y[i] = gk * d;
            else dh[i] += gk * d;
        }
        if (W)
            nx_linear_backward(dh, tr->grads + tr->student->nparams + (size_t)p * Ct * Cs, NULL, y, hs, W, N,
                               Cs, Ct);
        total += sq / NCt / P;
    }
    return total;
}

/* Attention transfer of one micro-batch: mean over pairs, rows, head groups
 * and query positions of KL(Ā_t ‖ Ā_s) (Ā the mean of a group's maps); its
 * gradient w.r.t. each student map, scaled by g, into tr->dprobs. */
static double attention_loss(nx_trainer *tr, float g) {
    const nx_train_opts *o = &tr->o;
    int B = o->B, T = o->T, P = o->n_layer_map;
    int hs = tr->student->cfg.NH, ht = tr->teacher->cfg.NH;
    int groups = hs == ht ? hs : 1, gs = hs / groups, gt = ht / groups;
    size_t TT = (size_t)T * T;
    for (int l = 0; l < tr->student->cfg.L; l++)
        if (tr->dprobs[l]) memset(tr->dprobs[l], 0, sizeof(float) * B * hs * TT);
    double total = 0;
    float coef = g / ((float)P * B * groups * T);
    const float tiny = 1e-30f;
    for (int p = 0; p < P; p++) {
        int sl = o->layer_map[p][0], tl = o->layer_map[p][1];
        const float *As = nx_acts_probs(&tr->sa, &tr->student->cfg, sl);
        const float *At = nx_acts_probs(&tr->ta, &tr->teacher->cfg, tl);
        float *dA = tr->dprobs[sl];
        double kl = 0;
#pragma omp parallel for collapse(2) reduction(+ : kl) schedule(static)
        for (int b = 0; b < B; b++)
            for (int k = 0; k < groups; k++) {
                const float *s0 = As + ((size_t)b * hs + (size_t)k * gs) * TT;
                const float *t0 = At + ((size_t)b * ht + (size_t)k * gt) * TT;
                float *d0 = dA + ((size_t)b * hs + (size_t)k * gs) * TT;
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
        total += kl / ((double)B * groups * T) / P;
    }
    return total;
}

int nx_trainer_step(nx_trainer *tr, const int32_t *inputs, const int32_t *targets,
                    nx_step_stats *st) {
    const nx_train_opts *o = &tr->o;
    int B = o->B, T = o->T, N = B * T, V = tr->student->cfg.V;
    bool kd = tr->teacher && o->alpha > 0, hid = tr->dhidden != NULL, att = tr->dprobs != NULL;
    float w_kd = kd ? o->alpha : 0.0f, w_ce = (tr->teacher ? 1.0f - o->alpha : 1.0f);
    memset(tr->grads, 0, tr->n_train * sizeof(float));
    double loss = 0, ce = 0, kdv = 0, hv = 0, av = 0;
    for (int a = 0; a < o->accum; a++) {
        const int32_t *in = inputs + (size_t)a * N, *tg = targets + (size_t)a * N;
        if (kd || hid || att) nx_model_forward(tr->teacher, &tr->ta, in, B, T, kd);
        nx_model_forward(tr->student, &tr->sa, in, B, T, true);
        float *dl = tr->sa.dlogits;
        memset(dl, 0, sizeof(float) * N * V);
        /* each micro-batch contributes 1/accum of the step's mean loss */
        float s = 1.0f / o->accum;
        double c = nx_cross_entropy(w_ce > 0 ? dl : NULL, w_ce * s, tr->sa.logits, tg, N, V);
        double k = kd ? nx_kd_loss(o->kd, o->temp, dl, w_kd * s, tr->sa.logits, tr->ta.logits, tg,
                                   N, V)
                      : 0.0;
        double h = hid ? hidden_loss(tr, o->hidden_weight * s) : 0.0;
        double at = att ? attention_loss(tr, o->attention_weight * s) : 0.0;
        ce += c / o->accum;
        kdv += k / o->accum;
        hv += h / o->accum;
        av += at / o->accum;
        loss += (w_kd * k + w_ce * c + o->hidden_weight * h + o->attention_weight * at) / o->accum;
        nx_model_backward(tr->student, &tr->sa, tr->grads, tr->dhidden, tr->dprobs);
    }
    float lr = nx_lr_at(o->sched, o->lr, o->min_lr, o->warmup, o->total_steps, tr->step);
    *st = (nx_step_stats){.step = tr->step, .loss = loss, .ce = ce, .kd = kdv, .hidden = hv,
                          .attention = av, .lr = lr, .tokens = (int64_t)o->accum * N};
    st->grad_norm = nx_grad_norm(tr->grads, tr->n_train);
    if (!isfinite(loss) || !isfinite(st->grad_norm)) {
        /* name the first tensor whose gradient went bad; do not update */
        if (nx_params_finite(&tr->student->cfg, tr->grads, st->bad_tensor, sizeof st->bad_tensor)) {
            const float *pg = tr->grads + tr->student->nparams;
            size_t np = tr->n_train - tr->student->nparams, i = 0;
            while (i < np && isfinite(pg[i])) i++;
            snprintf(st->bad_tensor, sizeof st->bad_tensor, "%s",
                     i < np ? "a hidden-state projection" : kd ? "teacher or student logits" : "student logits");
        }
        return NX_ERR;
    }
    nx_clip_grad_norm(tr->grads, tr->n_train, o->clip);
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
