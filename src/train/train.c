/* train.c — the distillation step (see train.h). The order of work per
 * micro-batch: teacher forward (no gradients; logits only when KD is on,
 * attention maps kept only for attention transfer), student forward, fused
 * loss gradient into student dlogits, hidden-state and attention-map
 * gradients into their own buffers, student backward into grads: the
 * first micro-batch's writes them (NX_GRAD_WRITE: no zeroing of the whole
 * buffer, no product reading it back), the others' add.
 * Then one clip and one AdamW update per step over everything that trains
 * (the student and, where widths differ, the hidden-state projections). */
#include "nexus/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

size_t nx_trainer_bf16_bytes(const nx_model_config *s, const nx_model_config *t, const nx_train_opts *o) {
    return 2 * (nx_model_numel(s) + (t ? proj_floats(s, t, o) : 0));
}

/* The bf16 copy of the trained floats, after anything but AdamW (which
 * writes it itself) changed them. */
static void round_copy(nx_trainer *tr) {
    if (tr->p16) nx_round_bf16(tr->be, tr->p16, tr->student->params, (int64_t)tr->n_train);
}

/* The step's scalars on the backend: per micro-batch ce, kd, then one sum
 * per layer pair for the hidden loss and one for attention transfer; last
 * Σ g². All of them guard the update. */
enum { ST_CE, ST_KD, ST_PAIRS };
static int stat_slot(const nx_trainer *tr, int micro, int k) { return micro * (ST_PAIRS + 2 * tr->o.n_layer_map) + k; }

static void *dev_alloc(nx_trainer *tr, size_t bytes, const char *what, nx_err *err) {
    return nx_backend_alloc(tr->be, bytes, what, err);
}

/* NX_ACTS_FLASH for m's activations where no maps are kept for attention
 * transfer (att) and its backend's nx_attention_lse takes the shape (the
 * memory plan asks the same of nx_cuda_flash, src/app/plan.c) */
static unsigned flash_flag(const nx_model *m, const nx_train_opts *o, bool att) {
    return !att && nx_attention_lse_fits(m->be, m->cfg.HS, o->B, o->T, m->cfg.NH) ? NX_ACTS_FLASH : 0;
}

int nx_trainer_init(nx_trainer *tr, nx_model *student, const nx_model *teacher,
                    const nx_train_opts *o, nx_err *err) {
    memset(tr, 0, sizeof *tr);
    if (o->B <= 0 || o->T < 1 || o->accum <= 0)
        return nx_fail(err, "batch_size, seq_len and grad_accum must be positive");
    if (!student->params) return nx_fail(err, "the student must be held in f32 to train");
    if (teacher && teacher->cfg.V != student->cfg.V)
        return nx_fail(err, "teacher vocabulary (%d) and student vocabulary (%d) differ: distilling "
                            "logits needs the same tokenizer and vocab_size",
                       teacher->cfg.V, student->cfg.V);
    if (teacher && teacher->be != student->be)
        return nx_fail(err, "the teacher (%s) and the student (%s) must be on the same device", teacher->be->name,
                       student->be->name);
    bool hid = o->hidden_weight > 0, att = o->attention_weight > 0;
    if ((hid || att) && check_layer_map(o, student, teacher, err)) return NX_ERR;
    tr->o = *o;
    tr->student = student;
    tr->teacher = teacher;
    tr->be = student->be;
    /* attention transfer needs the student's maps; else the backend may recompute them (flash) */
    if (att && o->recompute)
        return nx_fail(err, "activation recomputation keeps no attention maps for attention transfer: turn one off");
    /* the student's logits in the activation type too: only the fused loss
     * reads them (as autocast writes them) */
    unsigned smode = NX_ACTS_TRAIN | NX_ACTS_LOGITS_AT | (att ? NX_ACTS_KEEP_PROBS : 0) |
                     (o->recompute ? NX_ACTS_RECOMPUTE : 0);
    smode |= flash_flag(student, o, att);
    if (nx_acts_init(&tr->sa, student, o->B, o->T, smode, err)) return nx_fail_prefix(err, "student");
    /* the teacher's too, where no maps are kept for attention transfer */
    unsigned tmode = (att ? NX_ACTS_KEEP_PROBS : NX_ACTS_INFER) | NX_ACTS_LOGITS_AT;
    if (teacher) tmode |= flash_flag(teacher, o, att);
    if (teacher && nx_acts_init(&tr->ta, teacher, o->B, o->T, tmode, err)) {
        nx_acts_free(&tr->sa);
        return nx_fail_prefix(err, "teacher");
    }
    const nx_model_config *sc = &student->cfg;
    size_t N = (size_t)o->B * o->T;
    tr->n_train = student->nparams;
    if (hid) {
        int Cs = sc->C, Ct = teacher->cfg.C;
        if (!(tr->dhidden = dev_alloc(tr, (size_t)(sc->L + 1) * N * sc->C * sizeof(float), "hidden-state gradients", err)))
            goto fail;
        size_t n = proj_floats(sc, &teacher->cfg, o);
        if (n) { /* torch.nn.Linear's default init: U(−1/√in, 1/√in) */
            if (!(tr->proj = nx_model_reserve(student, n, err))) goto fail;
            tr->n_train += n;
            if (!(tr->py = dev_alloc(tr, N * Ct * sizeof(float), "projected hidden states", err))) goto fail;
            nx_rng r;
            nx_rng_seed(&r, o->proj_seed);
            float bound = 1.0f / sqrtf((float)Cs), *init = nx_xmalloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) init[i] = bound * (2.0f * (float)nx_rng_uniform(&r) - 1.0f);
            nx_backend_upload(tr->be, tr->proj, init, n * sizeof(float));
            free(init);
        }
    }
    if (att) {
        tr->dprobs = nx_xcalloc(sc->L, sizeof *tr->dprobs);
        for (int i = 0; i < o->n_layer_map; i++) {
            int l = o->layer_map[i][0];
            if (!tr->dprobs[l] &&
                !(tr->dprobs[l] = dev_alloc(tr, N * o->T * sc->NH * sizeof(float), "attention-map gradients", err)))
                goto fail;
        }
    }
    tr->nstats = o->accum * (ST_PAIRS + 2 * o->n_layer_map) + 1;
    tr->stats_host = nx_xcalloc(tr->nstats, sizeof(double));
    if (!(tr->grads = dev_alloc(tr, tr->n_train * sizeof(float), "gradients", err)) ||
        !(tr->targets = dev_alloc(tr, N * sizeof(int32_t), "targets", err)) ||
        !(tr->stats = dev_alloc(tr, tr->nstats * sizeof(double), "step statistics", err)) ||
        nx_adamw_init(&tr->opt, tr->be, tr->n_train, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, err))
        goto fail;
    if (nx_backend_act_type(tr->be) == NX_BF16 && nx_backend_has_round_bf16(tr->be)) {
        size_t bytes = nx_trainer_bf16_bytes(sc, teacher ? &teacher->cfg : NULL, o);
        NX_ASSERT(bytes == 2 * tr->n_train);
        if (!(tr->p16 = dev_alloc(tr, bytes, "bf16 copy of the weights", err))) goto fail;
        round_copy(tr);
        nx_model_bind_bf16(student, tr->p16);
    }
    return NX_OK;
fail:
    nx_trainer_free(tr);
    return NX_ERR;
}

void nx_trainer_free(nx_trainer *tr) {
    nx_backend *be = tr->be;
    if (!be) return;
    nx_acts_free(&tr->sa);
    if (tr->teacher) nx_acts_free(&tr->ta);
    nx_adamw_free(&tr->opt);
    nx_backend_free(be, tr->grads);
    nx_backend_free(be, tr->dhidden);
    nx_backend_free(be, tr->py);
    nx_backend_free(be, tr->targets);
    nx_backend_free(be, tr->stats);
    nx_backend_free(be, tr->mask);
    free(tr->mask_host);
    if (tr->p16) {
        nx_model_bind_bf16(tr->student, NULL);
        nx_backend_free(be, tr->p16);
    }
    if (tr->dprobs)
        for (int l = 0; l < tr->student->cfg.L; l++) nx_backend_free(be, tr->dprobs[l]);
    free(tr->dprobs);
    free(tr->stats_host);
    free(tr->host_state);
    memset(tr, 0, sizeof *tr);
}

/* Hidden-state loss of micro-batch `micro`: per pair Σ (P h_s − h_t)² (P the
 * pair's projection, or the identity) into its stat slot; the gradient of
 * g × mean over pairs of mean squares goes into tr->dhidden and the
 * projections' gradients. */
static void hidden_loss(nx_trainer *tr, float g, int micro) {
    const nx_train_opts *o = &tr->o;
    nx_backend *be = tr->be;
    int N = o->B * o->T, Cs = tr->student->cfg.C, Ct = tr->teacher->cfg.C, P = o->n_layer_map;
    size_t NCs = (size_t)N * Cs, NCt = (size_t)N * Ct;
    nx_backend_zero(be, tr->dhidden, sizeof(float) * (tr->student->cfg.L + 1) * NCs);
    float gk = 2.0f * g / ((float)NCt * P); /* d/dy of mean squares, averaged over pairs */
    for (int p = 0; p < P; p++) {
        int sl = o->layer_map[p][0] + 1, tl = o->layer_map[p][1] + 1;
        const float *hs = tr->sa.res + sl * NCs, *ht = tr->ta.res + tl * NCt;
        float *dh = tr->dhidden + sl * NCs;
        double *sum = tr->stats + stat_slot(tr, micro, ST_PAIRS + p);
        if (!tr->proj) {
            nx_sqdiff(be, sum, dh, true, hs, ht, (int64_t)NCt, gk);
            continue;
        }
        /* y = P h_s; the gradient replaces y in place and flows back through P */
        nx_weight W = nx_weight_view(be, NX_F32, Ct, Cs, tr->proj + (size_t)p * Ct * Cs);
        nx_linear(be, tr->py, hs, &W, NULL, N);
        nx_sqdiff(be, sum, tr->py, false, tr->py, ht, (int64_t)NCt, gk);
        nx_linear_backward(be, dh, tr->grads + tr->student->nparams + (size_t)p * Ct * Cs, NULL, tr->py, hs, &W, N);
    }
}

/* Attention transfer of micro-batch `micro`: per pair the KL sum of the
 * group-mean maps into its stat slot; the gradient of g × the mean over
 * pairs, rows, groups and query positions into tr->dprobs. */
static void attention_loss(nx_trainer *tr, float g, int micro) {
    const nx_train_opts *o = &tr->o;
    int B = o->B, T = o->T, P = o->n_layer_map, hs = tr->student->cfg.NH, ht = tr->teacher->cfg.NH;
    int groups = hs == ht ? hs : 1;
    for (int l = 0; l < tr->student->cfg.L; l++)
        if (tr->dprobs[l]) nx_backend_zero(tr->be, tr->dprobs[l], sizeof(float) * B * hs * T * T);
    float coef = g / ((float)P * B * groups * T);
    for (int p = 0; p < P; p++) {
        int sl = o->layer_map[p][0], tl = o->layer_map[p][1];
        nx_attention_kl(tr->be, tr->stats + stat_slot(tr, micro, ST_PAIRS + P + p), tr->dprobs[sl],
                        nx_acts_probs(&tr->sa, &tr->student->cfg, sl), nx_acts_probs(&tr->ta, &tr->teacher->cfg, tl),
                        B, T, hs, ht, coef);
    }
}

int nx_trainer_step(nx_trainer *tr, const int32_t *inputs, const int32_t *targets,
                    nx_step_stats *st) {
    const nx_train_opts *o = &tr->o;
    nx_backend *be = tr->be;
    int B = o->B, T = o->T, N = B * T, V = tr->student->cfg.V, P = o->n_layer_map;
    bool kd = tr->teacher && o->alpha > 0, hid = tr->dhidden != NULL, att = tr->dprobs != NULL;
    float w_kd = kd ? o->alpha : 0.0f, w_ce = (tr->teacher ? 1.0f - o->alpha : 1.0f);
    /* the model's own gradients are written by micro-batch 0's backward;
     * the projections' (after them), which hidden_loss adds into, zeroed */
    nx_backend_zero(be, tr->grads + tr->student->nparams, (tr->n_train - tr->student->nparams) * sizeof(float));
    nx_backend_zero(be, tr->stats, tr->nstats * sizeof(double));
    /* each micro-batch contributes 1/accum of the step's mean loss */
    float s = 1.0f / o->accum;
    for (int a = 0; a < o->accum; a++) {
        const int32_t *in = inputs + (size_t)a * N;
        nx_backend_upload(be, tr->targets, targets + (size_t)a * N, sizeof(int32_t) * N);
        if (kd || hid || att) nx_model_forward(tr->teacher, &tr->ta, in, B, T, kd);
        nx_model_forward(tr->student, &tr->sa, in, B, T, true);
        nx_distill_loss(be, tr->stats + stat_slot(tr, a, ST_CE), tr->stats + stat_slot(tr, a, ST_KD), o->kd, o->temp,
                        tr->sa.dlogits, tr->sa.at, w_ce * s, w_kd * s, tr->sa.logits, tr->sa.lt,
                        kd ? tr->ta.logits : NULL, kd ? tr->ta.lt : NX_F32, tr->targets, N, V);
        if (hid) hidden_loss(tr, o->hidden_weight * s, a);
        if (att) attention_loss(tr, o->attention_weight * s, a);
        nx_model_backward(tr->student, &tr->sa, tr->grads, a ? NX_GRAD_ADD : NX_GRAD_WRITE, tr->dhidden, tr->dprobs);
    }
    float lr = nx_lr_at(o->sched, o->lr, o->min_lr, o->warmup, o->total_steps, tr->step);
    double *gn = tr->stats + tr->nstats - 1;
    nx_sumsq(be, gn, tr->grads, (int64_t)tr->n_train);
    nx_adamw_args args = nx_adamw_next(&tr->opt, lr, o->clip);
    args.p16 = tr->mask ? NULL : tr->p16; /* with a mask: rounded after masking */
    nx_adamw_update(be, tr->student->params, tr->grads, tr->opt.m, tr->opt.v, (int64_t)tr->n_train, &args,
                    tr->stats, tr->nstats);
    if (tr->mask) {
        nx_mask(be, tr->student->params, tr->mask, (int64_t)tr->n_train);
        round_copy(tr);
    }
    nx_backend_download(be, tr->stats_host, tr->stats, tr->nstats * sizeof(double));

    /* the step's figures, as means over micro-batches of the unweighted terms */
    const double *h = tr->stats_host;
    double loss = 0, ce = 0, kdv = 0, hv = 0, av = 0;
    bool finite = true;
    for (int i = 0; i < tr->nstats; i++) finite = finite && isfinite(h[i]);
    int groups = tr->teacher && tr->teacher->cfg.NH == tr->student->cfg.NH ? tr->student->cfg.NH : 1;
    double NCt = tr->teacher ? (double)N * tr->teacher->cfg.C : 0;
    for (int a = 0; a < o->accum; a++) {
        double c = h[stat_slot(tr, a, ST_CE)], k = h[stat_slot(tr, a, ST_KD)], hl = 0, at = 0;
        for (int p = 0; p < P && hid; p++) hl += h[stat_slot(tr, a, ST_PAIRS + p)] / NCt / P;
        for (int p = 0; p < P && att; p++) at += h[stat_slot(tr, a, ST_PAIRS + P + p)] / ((double)B * groups * T) / P;
        ce += c / o->accum;
        kdv += k / o->accum;
        hv += hl / o->accum;
        av += at / o->accum;
        loss += (w_kd * k + w_ce * c + o->hidden_weight * hl + o->attention_weight * at) / o->accum;
    }
    *st = (nx_step_stats){.step = tr->step, .loss = loss, .ce = ce, .kd = kdv, .hidden = hv,
                          .attention = av, .lr = lr, .tokens = (int64_t)o->accum * N,
                          .grad_norm = sqrt(h[tr->nstats - 1])};
    if (!finite) { /* the update skipped itself; name the first tensor whose gradient went bad */
        float *g = nx_xmalloc(tr->n_train * sizeof(float));
        nx_backend_download(be, g, tr->grads, tr->n_train * sizeof(float));
        if (nx_params_finite(&tr->student->cfg, g, st->bad_tensor, sizeof st->bad_tensor)) {
            const float *pg = g + tr->student->nparams;
            size_t np = tr->n_train - tr->student->nparams, i = 0;
            while (i < np && isfinite(pg[i])) i++;
            snprintf(st->bad_tensor, sizeof st->bad_tensor, "%s",
                     i < np ? "a hidden-state projection" : kd ? "teacher or student logits" : "student logits");
        }
        free(g);
        return NX_ERR;
    }
    tr->opt.t++;
    tr->step++;
    return NX_OK;
}

nx_train_state nx_trainer_state(nx_trainer *tr) {
    size_t n = tr->n_train;
    if (tr->be->host_memory) return (nx_train_state){tr->student->params, tr->opt.m, tr->opt.v};
    if (!tr->host_state) tr->host_state = nx_xmalloc(3 * n * sizeof(float));
    nx_train_state s = {tr->host_state, tr->host_state + n, tr->host_state + 2 * n};
    nx_backend_download(tr->be, s.params, tr->student->params, n * sizeof(float));
    nx_backend_download(tr->be, s.m, tr->opt.m, n * sizeof(float));
    nx_backend_download(tr->be, s.v, tr->opt.v, n * sizeof(float));
    return s;
}

int nx_trainer_set_mask(nx_trainer *tr, const uint8_t *mask, nx_err *err) {
    size_t n = tr->n_train, own = tr->student->nparams;
    if (!tr->mask && !(tr->mask = nx_backend_alloc(tr->be, n, "sparsity mask", err))) return NX_ERR;
    if (!tr->mask_host) tr->mask_host = nx_xmalloc(n);
    memcpy(tr->mask_host, mask, own);
    memset(tr->mask_host + own, 1, n - own);
    nx_backend_upload(tr->be, tr->mask, tr->mask_host, n);
    nx_mask(tr->be, tr->student->params, tr->mask, (int64_t)n);
    round_copy(tr);
    return NX_OK;
}

void nx_trainer_state_upload(nx_trainer *tr) {
    if (tr->be->host_memory) return;
    size_t n = tr->n_train;
    NX_ASSERTM(tr->host_state, "nx_trainer_state first");
    nx_backend_upload(tr->be, tr->student->params, tr->host_state, n * sizeof(float));
    nx_backend_upload(tr->be, tr->opt.m, tr->host_state + n, n * sizeof(float));
    nx_backend_upload(tr->be, tr->opt.v, tr->host_state + 2 * n, n * sizeof(float));
    round_copy(tr);
}

bool nx_params_finite(const nx_model_config *cfg, const float *buf, char *name, size_t name_len) {
    int n = nx_model_params(cfg, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, NX_F32, tab);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const float *p = nx_param_f32(&tab[i], (void *)buf);
        for (size_t k = 0; k < tab[i].numel; k++)
            if (!isfinite(p[k])) {
                ok = false;
                if (name) snprintf(name, name_len, "%s", tab[i].name);
                break;
            }
    }
    free(tab);
    return ok;
}
