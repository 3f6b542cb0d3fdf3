/* init.c — the student's first weights.
 *
 *  random       normal(0, student.init.std) from the run's seed;
 *  copy_layers  embeddings, final norm and head from the teacher, and
 *               teacher layer copy_layers[i] into student layer i;
 *  auto         copy_layers with the layers chosen by block influence
 *               (ShortGPT, Men et al. 2024): BI_l = 1 − mean cos(x_l, x_l+1)
 *               over the first importance_batches training batches; the
 *               layers that change the residual stream most are kept;
 *  prune        the teacher pruned (prune.h), calibrated on the first
 *               importance_batches training batches: minitron to the
 *               student's (smaller) shape, or magnitude / wanda zeroing
 *               weights of a copy, with a mask that training keeps;
 *  load         a model directory (e.g. from `nexus prune`), with its
 *               sparsity mask when it has one.
 * Copying needs the teacher's widths (run_config's student shape checks
 * that first); a narrower student starts random or pruned. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/hf.h"
#include "run_internal.h"

/* Teacher tensor name for a student tensor: layer i becomes layer map[i]. */
static void teacher_name(const char *student, const int *map, char *out, size_t n) {
    int l, at;
    if (sscanf(student, "model.layers.%d.%n", &l, &at) == 1)
        snprintf(out, n, "model.layers.%d.%s", map[l], student + at);
    else
        snprintf(out, n, "%s", student);
}

int nx_student_copy_layers(nx_model *s, const nx_model *t, const int *map, int n, nx_err *err) {
    const nx_model_config *sc = &s->cfg, *tc = &t->cfg;
    if (sc->C != tc->C || sc->F != tc->F || sc->NH != tc->NH || sc->KVH != tc->KVH || sc->HS != tc->HS ||
        sc->V != tc->V || sc->qkv_bias != tc->qkv_bias || sc->o_bias != tc->o_bias)
        return nx_fail(err, "copying teacher layers needs the student's widths to equal the teacher's "
                            "(hidden %d/%d, intermediate %d/%d, heads %d/%d, kv heads %d/%d, vocab %d/%d): "
                            "use student.init: random for a narrower student",
                       sc->C, tc->C, sc->F, tc->F, sc->NH, tc->NH, sc->KVH, tc->KVH, sc->V, tc->V);
    if (n != sc->L) return nx_fail(err, "copy_layers lists %d layers but the student has %d", n, sc->L);
    for (int i = 0; i < n; i++)
        if (map[i] < 0 || map[i] >= tc->L)
            return nx_fail(err, "copy_layers[%d] = %d: the teacher has layers 0..%d", i, map[i], tc->L - 1);
    /* walk the student's tensors by name; a tied teacher's head is its embeddings */
    float *buf = NULL;
    for (int i = 0; i < s->ntab; i++) {
        char want[96];
        teacher_name(s->tab[i].name, map, want, sizeof want);
        if (tc->tied && !strcmp(want, "lm_head.weight")) snprintf(want, sizeof want, "model.embed_tokens.weight");
        int j = nx_model_find(t, want);
        NX_ASSERTM(j >= 0 && t->tab[j].numel == s->tab[i].numel, "equal widths give the same tensors");
        buf = realloc(buf, sizeof(float) * s->tab[i].numel);
        NX_ASSERT(buf);
        nx_model_get(t, j, buf);
        nx_model_set(s, i, buf, NX_F32);
    }
    free(buf);
    return NX_OK;
}

void nx_layer_importance(const nx_model *t, const int32_t *ids, int B, int T, double *bi) {
    nx_acts a;
    nx_err e;
    NX_ASSERT(nx_acts_init(&a, t, B, T, NX_ACTS_INFER, &e) == NX_OK);
    nx_model_forward(t, &a, ids, B, T, false);
    long N = (long)B * T;
    int C = t->cfg.C;
    size_t NC = (size_t)N * C; /* the residual stream, on the host */
    float *res = nx_xmalloc(sizeof(float) * (t->cfg.L + 1) * NC);
    nx_backend_download(t->be, res, a.res, sizeof(float) * (t->cfg.L + 1) * NC);
    for (int l = 0; l < t->cfg.L; l++) {
        const float *x = res + (size_t)l * NC, *y = res + (size_t)(l + 1) * NC;
        double sum = 0;
        for (long n = 0; n < N; n++) {
            double xy = 0, xx = 0, yy = 0;
            for (int c = 0; c < C; c++) {
                xy += (double)x[n * C + c] * y[n * C + c];
                xx += (double)x[n * C + c] * x[n * C + c];
                yy += (double)y[n * C + c] * y[n * C + c];
            }
            sum += xy / (sqrt(xx * yy) + 1e-30);
        }
        bi[l] = 1.0 - sum / N;
    }
    free(res);
    nx_acts_free(&a);
}

void nx_choose_layers(const double *bi, int L, int n, int *out) {
    bool *take = calloc(L, 1);
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int l = 0; l < L; l++)
            if (!take[l] && (best < 0 || bi[l] > bi[best])) best = l;
        take[best] = true;
    }
    for (int l = 0, k = 0; l < L; l++)
        if (take[l]) out[k++] = l;
    free(take);
}

/* auto: block influence averaged over the first batches, the best layers. */
static void choose_by_importance(const nx_model *teacher, const nx_run_config *rc, const nx_loader *ld, int L,
                                 int *map) {
    int TL = teacher->cfg.L, B = ld->B, T = ld->T;
    int nb = rc->student.init.importance_batches > 0 ? rc->student.init.importance_batches : 1;
    double *bi = calloc(TL, sizeof(double)), *acc = calloc(TL, sizeof(double));
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    nx_loader probe = *ld;
    for (int k = 0; k < nb; k++) {
        nx_loader_next(&probe, in, tg);
        nx_layer_importance(teacher, in, B, T, bi);
        for (int l = 0; l < TL; l++) acc[l] += bi[l] / nb;
    }
    nx_choose_layers(acc, TL, L, map);
    run_progress_importance(acc, TL, map, L);
    free(bi), free(acc), free(in), free(tg);
}

/* Every tensor of src into dst (the same shape). */
static void copy_model(nx_model *dst, const nx_model *src) {
    NX_ASSERT(dst->ntab == src->ntab);
    float *buf = NULL;
    for (int i = 0; i < dst->ntab; i++) {
        NX_ASSERT(dst->tab[i].numel == src->tab[i].numel && !strcmp(dst->tab[i].name, src->tab[i].name));
        buf = realloc(buf, sizeof(float) * dst->tab[i].numel);
        NX_ASSERT(buf);
        nx_model_get(src, i, buf);
        nx_model_set(dst, i, buf, NX_F32);
    }
    free(buf);
}

static int init_load(nx_model *student, const nx_run_config *rc, uint8_t **mask, nx_err *err) {
    nx_model m;
    const char *dir = rc->student.init.path;
    if (nx_hf_load_model(dir, &m, err)) return NX_ERR;
    copy_model(student, &m);
    nx_model_free(&m);
    uint8_t *mk = nx_xmalloc(student->nparams);
    bool found;
    if (nx_hf_load_mask(dir, &student->cfg, mk, &found, err)) {
        free(mk);
        return NX_ERR;
    }
    if (!found) {
        free(mk);
        return NX_OK;
    }
    if (nx_prune_apply_mask(student, mk, err)) {
        free(mk);
        return NX_ERR;
    }
    *mask = mk;
    fprintf(stderr, "nexus: student from %s with its sparsity mask (%s)\n", dir, NX_HF_MASK_FILE);
    return NX_OK;
}

/* The teacher calibrated on the first importance_batches training batches,
 * then pruned into the student (see the top of this file). */
static int init_prune(nx_model *student, const nx_model *teacher, const nx_run_config *rc, const nx_loader *ld,
                      uint8_t **mask, nx_err *err) {
    int nb = rc->student.init.importance_batches > 0 ? rc->student.init.importance_batches : 1;
    int n = nb * ld->B, T = ld->T;
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * n * T), *tg = nx_xmalloc(sizeof(int32_t) * ld->B * T);
    nx_loader probe = *ld;
    for (int k = 0; k < nb; k++) nx_loader_next(&probe, ids + (size_t)k * ld->B * T, tg);
    free(tg);
    nx_sparse_opts so;
    nx_calib calib;
    int rc_ = NX_ERR;
    if (nx_run_config_sparse_opts(rc, &so, err)) goto out;
    fprintf(stderr, "nexus: pruning the teacher (%s), calibrated on %d sequences of %d tokens\n",
            nx_prune_method_name(so.method), n, T);
    /* four sequences per forward: calibration keeps every layer's activations */
    if (app_prune_calibrate(teacher, ids, n, T, 4, true, &calib, err)) goto out;
    if (so.method == NX_PRUNE_MINITRON) {
        nx_model pruned;
        nx_prune_plan plan;
        double *score = nx_xmalloc(sizeof(double) * teacher->cfg.L);
        int lm = rc->student.init.layer_metric < 0 ? NX_LAYER_BI : rc->student.init.layer_metric;
        if (app_prune_width(teacher, &calib, &student->cfg, (nx_layer_metric)lm, ids, n, T, 4, true, &pruned, &plan,
                            score, err) == NX_OK) {
            copy_model(student, &pruned);
            const nx_model_config *d = &student->cfg;
            fprintf(stderr, "nexus: pruned to hidden %d, intermediate %d, heads %d, KV heads %d, layers %d (%zu "
                            "parameters); kept layers", d->C, d->F, d->NH, d->KVH, d->L, nx_model_count(d));
            for (int i = 0; i < d->L; i++) fprintf(stderr, " %d", plan.layers[i]);
            fputc('\n', stderr);
            nx_prune_plan_free(&plan);
            nx_model_free(&pruned);
            rc_ = NX_OK;
        }
        free(score);
    } else {
        int map[NX_RUN_MAX_LAYERS];
        for (int l = 0; l < teacher->cfg.L; l++) map[l] = l;
        uint8_t *mk = nx_xmalloc(student->nparams);
        nx_sparse_stats st;
        if (nx_student_copy_layers(student, teacher, map, teacher->cfg.L, err) ||
            nx_prune_sparse(student, &calib, &so, mk, &st, err)) {
            free(mk);
        } else {
            *mask = mk;
            fprintf(stderr, "nexus: zeroed %zu of %zu layer weights (%.2f%%); the mask holds them at zero\n",
                    st.pruned, st.prunable, 100.0 * st.pruned / st.prunable);
            rc_ = NX_OK;
        }
    }
    nx_calib_free(&calib);
out:
    free(ids);
    return rc_;
}

int run_init_student(nx_model *student, const nx_model *teacher, const nx_run_config *rc, const nx_loader *ld,
                     uint8_t **mask, bool parallel, nx_err *err) {
    nx_rng rng;
    nx_rng_seed(&rng, (uint64_t)rc->seed ^ 0x5eedu);
    *mask = NULL;
    if (rc->student.init.kind == NX_INIT_RANDOM) {
        if (parallel) nx_model_init_random_parallel(student, (float)rc->student.init.std, (uint64_t)rc->seed ^ 0x5eedu);
        else nx_model_init_random(student, (float)rc->student.init.std, &rng);
        return NX_OK;
    }
    if (rc->student.init.kind == NX_INIT_LOAD) return init_load(student, rc, mask, err);
    if (rc->student.init.kind == NX_INIT_PRUNE) return init_prune(student, teacher, rc, ld, mask, err);
    int map[NX_RUN_MAX_LAYERS];
    int n = student->cfg.L;
    if (rc->student.init.kind == NX_INIT_COPY_LAYERS) {
        memcpy(map, rc->student.init.copy_layers.v, sizeof(int) * rc->student.init.copy_layers.n);
        n = rc->student.init.copy_layers.n;
    } else {
        choose_by_importance(teacher, rc, ld, n, map);
    }
    return nx_student_copy_layers(student, teacher, map, n, err);
}
