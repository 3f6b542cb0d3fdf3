/* calib.c — calibration statistics for the pruners (see prune.h).
 *
 * One forward per batch with training-layout activations, so that every
 * layer's linear inputs are still there when it ends (inference layouts
 * share one set across layers). Each layer's inputs are then downloaded
 * one buffer at a time and summed on the host in double: Σ x² (Wanda's
 * ‖X_j‖₂²) and Σ |x| (Minitron's mean magnitude) per channel, each head's
 * output norm per row, and the cosine of each layer's input and output
 * rows (block influence). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/prune.h"

int nx_calib_init(nx_calib *c, const nx_model *m, int B, int T, nx_err *err) {
    memset(c, 0, sizeof *c);
    const nx_model_config *g = &m->cfg;
    if (nx_acts_init(&c->a, m, B, T, NX_ACTS_TRAIN | NX_ACTS_F32, err)) return nx_fail_prefix(err, "calibration");
    c->cfg = *g;
    c->m = m;
    c->B = B, c->T = T;
    size_t L = (size_t)g->L, C = (size_t)g->C, Q = (size_t)g->NH * g->HS, F = (size_t)g->F;
    c->ln1_sq = nx_xcalloc(L * C, sizeof(double));
    c->ln1_abs = nx_xcalloc(L * C, sizeof(double));
    c->att_sq = nx_xcalloc(L * Q, sizeof(double));
    c->att_abs = nx_xcalloc(L * Q, sizeof(double));
    c->ln2_sq = nx_xcalloc(L * C, sizeof(double));
    c->ln2_abs = nx_xcalloc(L * C, sizeof(double));
    c->h_sq = nx_xcalloc(L * F, sizeof(double));
    c->h_abs = nx_xcalloc(L * F, sizeof(double));
    c->head = nx_xcalloc(L * g->NH, sizeof(double));
    c->bi = nx_xcalloc(L, sizeof(double));
    size_t widest = C > Q ? C : Q;
    widest = widest > F ? widest : F;
    c->host = nx_xmalloc(sizeof(float) * (size_t)B * T * (widest > 2 * C ? widest : 2 * C));
    return NX_OK;
}

/* Adds Σ x² and Σ |x| per column of x (N, D) to sq and ab. */
static void channel_sums(const float *x, long N, int D, double *sq, double *ab) {
#pragma omp parallel for schedule(static)
    for (int d = 0; d < D; d++) {
        double s = 0, a = 0;
        for (long n = 0; n < N; n++) {
            double v = x[n * D + d];
            s += v * v;
            a += fabs(v);
        }
        sq[d] += s;
        ab[d] += a;
    }
}

/* Row n of a per-row score: x's row stride ld, the score's columns from
 * `at` (n·ld + at ..), `cols` of them. */
typedef struct {
    const float *x;
    long ld, at;
    int cols;
} rows_ctx;

/* ‖x[n, at .. at + cols)‖ (a head's output norm) */
static double head_norm(long n, const rows_ctx *r) {
    const float *u = r->x + n * r->ld + r->at;
    double q = 0;
    for (int d = 0; d < r->cols; d++) q += (double)u[d] * u[d];
    return sqrt(q);
}

/* 1 − cos(row n, row n of the matrix `at` floats on): a layer's output
 * against its input (block influence) */
static double one_minus_cos(long n, const rows_ctx *r) {
    const float *u = r->x + n * r->ld, *v = u + r->at;
    double uv = 0, uu = 0, vv = 0;
    for (int k = 0; k < r->cols; k++) uv += (double)u[k] * v[k], uu += (double)u[k] * u[k], vv += (double)v[k] * v[k];
    return 1.0 - uv / (sqrt(uu * vv) + 1e-30);
}

/* Σ f(n) over rows n < N, in parallel and the same on every run (nx_parts_sum) */
static double rows_sum(long N, double (*f)(long n, const rows_ctx *r), const rows_ctx *r) {
    int T = nx_threads();
    double part[T];
    memset(part, 0, sizeof part);
#pragma omp parallel num_threads(T)
    {
        double s = 0;
#pragma omp for schedule(static)
        for (long n = 0; n < N; n++) s += f(n, r);
        part[omp_get_thread_num()] = s;
    }
    return nx_parts_sum(part, T);
}

void nx_calib_add(nx_calib *c, const int32_t *ids, int b) {
    const nx_model_config *g = &c->cfg;
    NX_ASSERT(b >= 1 && b <= c->B);
    int T = c->T, C = g->C, Q = g->NH * g->HS, F = g->F, HS = g->HS;
    long N = (long)b * T;
    size_t R = (size_t)c->a.rows; /* per-layer stride of the training layout */
    nx_model_forward(c->m, &c->a, ids, b, T, false);
    nx_backend *be = c->m->be;
    float *x = c->host;
    for (int l = 0; l < g->L; l++) {
        nx_backend_download(be, x, (const float *)c->a.ln1 + l * R * C, sizeof(float) * N * C);
        channel_sums(x, N, C, c->ln1_sq + (size_t)l * C, c->ln1_abs + (size_t)l * C);
        nx_backend_download(be, x, (const float *)c->a.ln2 + l * R * C, sizeof(float) * N * C);
        channel_sums(x, N, C, c->ln2_sq + (size_t)l * C, c->ln2_abs + (size_t)l * C);
        nx_backend_download(be, x, (const float *)c->a.h + l * R * F, sizeof(float) * N * F);
        channel_sums(x, N, F, c->h_sq + (size_t)l * F, c->h_abs + (size_t)l * F);
        nx_backend_download(be, x, c->a.att + l * R * Q, sizeof(float) * N * Q);
        channel_sums(x, N, Q, c->att_sq + (size_t)l * Q, c->att_abs + (size_t)l * Q);
        double *hd = c->head + (size_t)l * g->NH;
        for (int h = 0; h < g->NH; h++) {
            hd[h] += rows_sum(N, head_norm, &(rows_ctx){x, Q, h * HS, HS});
        }
        /* block influence: the residual stream before and after the layer */
        const float *res = nx_acts_hidden(&c->a, g, l);
        nx_backend_download(be, x, res, sizeof(float) * N * C);
        nx_backend_download(be, x + N * C, res + (size_t)N * C, sizeof(float) * N * C);
        c->bi[l] += rows_sum(N, one_minus_cos, &(rows_ctx){x, C, N * C, C});
    }
    c->rows += N;
}

void nx_calib_free(nx_calib *c) {
    if (c->m) nx_acts_free(&c->a);
    free(c->ln1_sq), free(c->ln1_abs), free(c->att_sq), free(c->att_abs);
    free(c->ln2_sq), free(c->ln2_abs), free(c->h_sq), free(c->h_abs);
    free(c->head), free(c->bi), free(c->host);
    memset(c, 0, sizeof *c);
}
