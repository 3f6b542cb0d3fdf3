/* sparse.c — unstructured and N:M pruning (see prune.h).
 *
 * Every layer matrix (q, k, v, o, gate, up, down, each its own Hugging
 * Face tensor) is fetched to the host as f32, scored, and written back
 * with its pruned weights set to zero; the mask records them in the f32
 * parameter layout so that training can keep them at zero. Scores:
 * |W_ij| (magnitude) or |W_ij| · ‖X_j‖₂ (Wanda), X_j input channel j of
 * the matrix over the calibration tokens. Comparison groups: the matrix
 * (magnitude, per layer), all matrices (magnitude, global), the output row
 * (Wanda), or each run of m weights of a row (N:M).
 *
 * Selection is exact: the k lowest scores of a group are pruned, ties
 * broken by position (a stable order over (score, index)), so a group of
 * n weights at sparsity s loses exactly ⌊s·n⌋. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/prune.h"

static const char *const METHODS[] = {"magnitude", "wanda", "minitron"};

const char *nx_prune_method_name(nx_prune_method m) {
    NX_ASSERT((unsigned)m < 3);
    return METHODS[m];
}

int nx_prune_method_parse(const char *s, nx_prune_method *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, METHODS[i])) return *out = (nx_prune_method)i, NX_OK;
    return NX_ERR;
}

int nx_sparse_parse_pattern(const char *s, int *n, int *m, nx_err *err) {
    int a, b, used = 0;
    if (sscanf(s, "%d:%d%n", &a, &b, &used) != 2 || s[used] || a <= 0 || b <= a)
        return nx_fail(err, "N:M pattern \"%s\": expected two integers 0 < N < M as N:M, e.g. 2:4 or 4:8", s);
    *n = a, *m = b;
    return NX_OK;
}

/* The layer matrices: names ending in _proj.weight. */
bool nx_prune_is_sparse_target(const nx_param *p) {
    size_t n = strlen(p->name);
    return p->ndim == 2 && n > 12 && !strcmp(p->name + n - 12, "_proj.weight");
}

int nx_sparse_check(const nx_model_config *cfg, const nx_sparse_opts *o, nx_err *err) {
    if (o->method != NX_PRUNE_MAGNITUDE && o->method != NX_PRUNE_WANDA)
        return nx_fail(err, "unstructured pruning takes method magnitude or wanda, not %s",
                       nx_prune_method_name(o->method));
    if (o->global && o->method != NX_PRUNE_MAGNITUDE)
        return nx_fail(err, "a global threshold is for magnitude pruning; wanda compares the weights of each "
                            "output row");
    if (o->n || o->m) {
        if (!(o->n > 0 && o->m > o->n))
            return nx_fail(err, "N:M sparsity %d:%d: give 0 < N < M, e.g. 2:4 or 4:8", o->n, o->m);
        if (o->global) return nx_fail(err, "N:M sparsity groups weights within rows; drop the global scope");
        int cols[] = {cfg->C, cfg->NH * cfg->HS, cfg->F};
        const char *what[] = {"hidden_size (q/k/v, gate/up rows)", "num_heads x head_dim (o_proj rows)",
                              "intermediate_size (down_proj rows)"};
        for (int i = 0; i < 3; i++)
            if (cols[i] % o->m)
                return nx_fail(err, "N:M sparsity %d:%d needs rows whose length is a multiple of %d, but %s is %d",
                               o->n, o->m, o->m, what[i], cols[i]);
        return NX_OK;
    }
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return nx_fail(err, "sparsity %g is outside [0, 1): give the fraction of weights to zero, e.g. 0.5",
                       o->sparsity);
    return NX_OK;
}

/* ---- selection ---- */

typedef struct {
    float s;
    uint32_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Marks in keep[0..n) the k lowest of s[0..n) (ties by position) as 0. */
static void prune_lowest(const float *s, size_t n, size_t k, uint8_t *keep, scored *tmp) {
    if (k == 0) return;
    for (size_t i = 0; i < n; i++) tmp[i] = (scored){s[i], (uint32_t)i};
    qsort(tmp, n, sizeof *tmp, cmp_scored);
    for (size_t i = 0; i < k && i < n; i++) keep[tmp[i].i] = 0;
}

/* Input-channel norms ‖X_j‖₂ of the matrix called name in layer l, or NULL
 * when calib is NULL. */
static const double *input_sq(const nx_calib *c, const char *name, int l) {
    if (!c) return NULL;
    size_t C = (size_t)c->cfg.C, Q = (size_t)c->cfg.NH * c->cfg.HS, F = (size_t)c->cfg.F;
    if (strstr(name, "q_proj") || strstr(name, "k_proj") || strstr(name, "v_proj")) return c->ln1_sq + l * C;
    if (strstr(name, "o_proj")) return c->att_sq + l * Q;
    if (strstr(name, "gate_proj") || strstr(name, "up_proj")) return c->ln2_sq + l * C;
    if (strstr(name, "down_proj")) return c->h_sq + l * F;
    NX_ASSERT(0);
    return NULL;
}

static void scores(const float *w, size_t rows, size_t cols, const double *xsq, float *s) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) {
            double a = fabs((double)w[r * cols + j]);
            s[r * cols + j] = (float)(xsq ? a * sqrt(xsq[j]) : a);
        }
}

/* Prunes one matrix's rows in groups of g (the row, or N:M runs). */
static void prune_groups(const float *s, size_t rows, size_t cols, size_t g, size_t k, uint8_t *keep) {
#pragma omp parallel
    {
        scored *tmp = nx_xmalloc(sizeof(scored) * g);
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++)
            for (size_t j0 = 0; j0 < cols; j0 += g) prune_lowest(s + r * cols + j0, g, k, keep + r * cols + j0, tmp);
        free(tmp);
    }
}

int nx_prune_sparse(nx_model *m, const nx_calib *calib, const nx_sparse_opts *o, uint8_t *mask,
                    nx_sparse_stats *st, nx_err *err) {
    NX_ASSERTM(m->params, "pruning works on a model held in f32");
    if (nx_sparse_check(&m->cfg, o, err)) return NX_ERR;
    if (o->method == NX_PRUNE_WANDA && !calib) return nx_fail(err, "wanda pruning needs calibration data");
    if (calib && (calib->cfg.C != m->cfg.C || calib->cfg.F != m->cfg.F || calib->cfg.L != m->cfg.L ||
                  calib->cfg.NH != m->cfg.NH || calib->cfg.HS != m->cfg.HS || calib->rows == 0))
        return nx_fail(err, "the calibration statistics are of another model shape, or empty");
    const nx_calib *wc = o->method == NX_PRUNE_WANDA ? calib : NULL;
    memset(mask, 1, m->nparams);
    memset(st, 0, sizeof *st);
    st->params = nx_model_count(&m->cfg);
    bool nm = o->n > 0;
    /* the matrices, as host copies with their scores */
    int nt = 0, *idx = nx_xmalloc(sizeof(int) * m->ntab);
    size_t total = 0;
    for (int i = 0; i < m->ntab; i++)
        if (nx_prune_is_sparse_target(&m->tab[i])) idx[nt++] = i, total += m->tab[i].numel;
    st->prunable = total;
    float *w = nx_xmalloc(sizeof(float) * total), *s = nx_xmalloc(sizeof(float) * total);
    uint8_t *keep = nx_xmalloc(total);
    memset(keep, 1, total);
    size_t off = 0;
    for (int t = 0; t < nt; t++) {
        const nx_param *p = &m->tab[idx[t]];
        int l = -1;
        sscanf(p->name, "model.layers.%d.", &l);
        NX_ASSERT(l >= 0 && l < m->cfg.L);
        nx_model_get(m, idx[t], w + off);
        scores(w + off, (size_t)p->shape[0], (size_t)p->shape[1], input_sq(wc, p->name, l), s + off);
        off += p->numel;
    }
    if (o->global && !nm) { /* one ranking over everything */
        scored *tmp = nx_xmalloc(sizeof(scored) * total);
        prune_lowest(s, total, (size_t)floor(o->sparsity * (double)total), keep, tmp);
        free(tmp);
    } else {
        off = 0;
        for (int t = 0; t < nt; t++) {
            const nx_param *p = &m->tab[idx[t]];
            size_t rows = (size_t)p->shape[0], cols = (size_t)p->shape[1];
            if (nm) {
                prune_groups(s + off, rows, cols, (size_t)o->m, (size_t)(o->m - o->n), keep + off);
            } else if (o->method == NX_PRUNE_WANDA) {
                prune_groups(s + off, rows, cols, cols, (size_t)floor(o->sparsity * (double)cols), keep + off);
            } else {
                scored *tmp = nx_xmalloc(sizeof(scored) * p->numel);
                prune_lowest(s + off, p->numel, (size_t)floor(o->sparsity * (double)p->numel), keep + off, tmp);
                free(tmp);
            }
            off += p->numel;
        }
    }
    /* zeros into the weights, bytes into the mask */
    off = 0;
    for (int t = 0; t < nt; t++) {
        const nx_param *p = &m->tab[idx[t]];
        uint8_t *mk = mask + p->off / sizeof(float);
        for (size_t k = 0; k < p->numel; k++) {
            mk[k] = keep[off + k];
            if (!keep[off + k]) w[off + k] = 0.0f, st->pruned++;
        }
        nx_model_set(m, idx[t], w + off, NX_F32);
        off += p->numel;
    }
    free(idx), free(w), free(s), free(keep);
    return NX_OK;
}

int nx_prune_apply_mask(nx_model *m, const uint8_t *mask, nx_err *err) {
    NX_ASSERTM(m->params, "masks apply to a model held in f32");
    uint8_t *dev = nx_backend_alloc(m->be, m->nparams, "sparsity mask", err);
    if (!dev) return NX_ERR;
    nx_backend_upload(m->be, dev, mask, m->nparams);
    nx_mask(m->be, m->params, dev, (int64_t)m->nparams);
    nx_backend_free(m->be, dev);
    return NX_OK;
}
