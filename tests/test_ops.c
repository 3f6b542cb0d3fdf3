/* test_ops.c — every kernel against its naive reference on random shapes
 * (odd sizes, T = 1, one head, MQA, GQA), and every backward against
 * central finite differences of a scalar probe loss Σ r ⊙ forward(x). */
#include "nexus/core.h"
#include "nexus/loss.h"
#include "nexus/ops.h"
#include "nxtest.h"

static nx_rng R;
static float *rnd(long n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = scale * nx_rng_normal(&R);
    return x;
}
static float *zeros(long n) { return calloc(n ? n : 1, sizeof(float)); }
static double dotp(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static int rint_in(int lo, int hi) { return lo + (int)nx_rng_below(&R, hi - lo + 1); }

/* Finite-difference check of d(Σ r·f(x))/dx at a few coordinates. */
typedef void (*fwd_fn)(float *out, float *x, void *ctx);
static double fd_check(fwd_fn f, void *ctx, float *x, long nx, const float *r, long nout,
                       const float *grad, int probes) {
    float *out = malloc(sizeof(float) * nout);
    double worst = 0;
    for (int p = 0; p < probes; p++) {
        long i = (long)nx_rng_below(&R, nx);
        float keep = x[i], h = 1e-2f * (fabsf(keep) > 1 ? fabsf(keep) : 1);
        x[i] = keep + h;
        f(out, x, ctx);
        double up = dotp(out, r, nout);
        x[i] = keep - h;
        f(out, x, ctx);
        double dn = dotp(out, r, nout);
        x[i] = keep;
        double num = (up - dn) / (2 * h), err = fabs(num - grad[i]) / (fabs(num) + fabs(grad[i]) + 1e-2);
        if (err > worst) worst = err;
    }
    free(out);
    return worst;
}

typedef struct { int N, C; const float *w; } rms_ctx;
static void rms_fwd(float *out, float *x, void *c_) {
    rms_ctx *c = c_;
    float *rs = malloc(sizeof(float) * c->N);
    nx_rmsnorm_forward(out, rs, x, c->w, c->N, c->C, 1e-5f);
    free(rs);
}

TEST(rmsnorm_matches_reference_and_finite_differences) {
    for (int it = 0; it < 8; it++) {
        int N = rint_in(1, 17), C = rint_in(1, 70);
        float *x = rnd((long)N * C, 1), *w = rnd(C, 1), *dy = rnd((long)N * C, 1);
        float *o1 = zeros((long)N * C), *o2 = zeros((long)N * C), *r1 = zeros(N), *r2 = zeros(N);
        nx_rmsnorm_forward(o1, r1, x, w, N, C, 1e-5f);
        nx_ref_rmsnorm_forward(o2, r2, x, w, N, C, 1e-5f);
        CHECK_REL(o1, o2, (long)N * C, 1e-6);
        float *dx1 = zeros((long)N * C), *dx2 = zeros((long)N * C), *dw1 = zeros(C), *dw2 = zeros(C);
        nx_rmsnorm_backward(dx1, dw1, dy, x, w, r1, N, C);
        nx_ref_rmsnorm_backward(dx2, dw2, dy, x, w, r2, N, C);
        CHECK_REL(dx1, dx2, (long)N * C, 1e-5);
        CHECK_REL(dw1, dw2, C, 1e-5);
        rms_ctx ctx = {N, C, w};
        CHECK(fd_check(rms_fwd, &ctx, x, (long)N * C, dy, (long)N * C, dx1, 10) < 2e-2);
        free(x), free(w), free(dy), free(o1), free(o2), free(r1), free(r2), free(dx1), free(dx2), free(dw1), free(dw2);
    }
}

typedef struct { int N, IC, OC; const float *W, *b; } lin_ctx;
static void lin_fwd(float *out, float *x, void *c_) {
    lin_ctx *c = c_;
    nx_linear_forward(out, x, c->W, c->b, c->N, c->IC, c->OC);
}

TEST(linear_matches_reference_and_finite_differences) {
    for (int it = 0; it < 10; it++) {
        int N = rint_in(1, 33), IC = rint_in(1, 40), OC = rint_in(1, 40);
        bool bias = it % 2;
        float *x = rnd((long)N * IC, 1), *W = rnd((long)OC * IC, 1), *b = bias ? rnd(OC, 1) : NULL;
        float *dy = rnd((long)N * OC, 1), *o1 = zeros((long)N * OC), *o2 = zeros((long)N * OC);
        nx_linear_forward(o1, x, W, b, N, IC, OC);
        nx_ref_linear_forward(o2, x, W, b, N, IC, OC);
        CHECK_REL(o1, o2, (long)N * OC, 1e-5);
        float *dx1 = zeros((long)N * IC), *dx2 = zeros((long)N * IC), *dW1 = zeros((long)OC * IC),
              *dW2 = zeros((long)OC * IC), *db1 = zeros(OC), *db2 = zeros(OC);
        nx_linear_backward(dx1, dW1, bias ? db1 : NULL, dy, x, W, N, IC, OC);
        nx_ref_linear_backward(dx2, dW2, bias ? db2 : NULL, dy, x, W, N, IC, OC);
        CHECK_REL(dx1, dx2, (long)N * IC, 1e-5);
        CHECK_REL(dW1, dW2, (long)OC * IC, 1e-5);
        if (bias) CHECK_REL(db1, db2, OC, 1e-5);
        lin_ctx ctx = {N, IC, OC, W, b};
        CHECK(fd_check(lin_fwd, &ctx, x, (long)N * IC, dy, (long)N * OC, dx1, 10) < 1e-2);
        free(x), free(W), free(b), free(dy), free(o1), free(o2), free(dx1), free(dx2), free(dW1), free(dW2), free(db1), free(db2);
    }
}

TEST(rope_matches_reference_and_inverts) {
    for (int it = 0; it < 6; it++) {
        int N = rint_in(1, 20), H = rint_in(1, 4), HS = 2 * rint_in(1, 16), maxp = 64;
        double theta = it % 2 ? 10000.0 : 500000.0;
        float *cs = zeros((long)maxp * HS / 2), *sn = zeros((long)maxp * HS / 2);
        nx_rope_tables(cs, sn, maxp, HS, theta);
        int32_t pos[20];
        for (int n = 0; n < N; n++) pos[n] = (int)nx_rng_below(&R, maxp);
        long n_ = (long)N * H * HS;
        float *x = rnd(n_, 1), *a = malloc(n_ * 4), *b = malloc(n_ * 4);
        memcpy(a, x, n_ * 4);
        memcpy(b, x, n_ * 4);
        nx_rope_forward(a, pos, cs, sn, N, H, HS);
        nx_ref_rope_forward(b, pos, N, H, HS, theta);
        CHECK_REL(a, b, n_, 1e-6);
        nx_rope_backward(a, pos, cs, sn, N, H, HS); /* rotation is orthogonal: backward inverts */
        CHECK_REL(a, x, n_, 1e-6);
        free(cs), free(sn), free(x), free(a), free(b);
    }
}

typedef struct { int B, T, NH, KVH, HS, which; float *q, *k, *v; } att_ctx;
static void att_fwd(float *out, float *x, void *c_) {
    att_ctx *c = c_;
    float *q = c->which == 0 ? x : c->q, *k = c->which == 1 ? x : c->k, *v = c->which == 2 ? x : c->v;
    float *p = malloc(sizeof(float) * c->B * c->NH * c->T * c->T);
    nx_attention_forward(out, p, q, k, v, c->B, c->T, c->NH, c->KVH, c->HS);
    free(p);
}
/* out followed by probs: for checking the gradient that enters through the
 * attention maps (dprobs_add) */
static void att_fwd_probs(float *out, float *x, void *c_) {
    att_ctx *c = c_;
    float *q = c->which == 0 ? x : c->q, *k = c->which == 1 ? x : c->k, *v = c->which == 2 ? x : c->v;
    nx_attention_forward(out, out + (long)c->B * c->T * c->NH * c->HS, q, k, v, c->B, c->T, c->NH, c->KVH,
                         c->HS);
}

TEST(attention_matches_reference_and_finite_differences) {
    /* shapes: T = 1, one head, MQA (KVH = 1), GQA, MHA, odd head sizes */
    int shapes[][5] = {{1, 1, 1, 1, 4}, {2, 5, 1, 1, 3}, {2, 7, 4, 1, 8}, {1, 9, 6, 2, 5},
                       {3, 4, 4, 4, 6}, {1, 13, 2, 1, 16}};
    for (unsigned it = 0; it < sizeof shapes / sizeof shapes[0]; it++) {
        int B = shapes[it][0], T = shapes[it][1], NH = shapes[it][2], KVH = shapes[it][3], HS = shapes[it][4];
        long nq = (long)B * T * NH * HS, nk = (long)B * T * KVH * HS;
        float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *dy = rnd(nq, 1);
        float *p = zeros((long)B * NH * T * T), *s = zeros((long)B * NH * T * T);
        float *o1 = zeros(nq), *o2 = zeros(nq);
        nx_attention_forward(o1, p, q, k, v, B, T, NH, KVH, HS);
        nx_ref_attention_forward(o2, q, k, v, B, T, NH, KVH, HS);
        CHECK_REL(o1, o2, nq, 1e-5);
        float *dq1 = zeros(nq), *dk1 = zeros(nk), *dv1 = zeros(nk), *dq2 = zeros(nq), *dk2 = zeros(nk), *dv2 = zeros(nk);
        nx_attention_backward(dq1, dk1, dv1, s, dy, p, NULL, q, k, v, B, T, NH, KVH, HS);
        nx_ref_attention_backward(dq2, dk2, dv2, dy, q, k, v, B, T, NH, KVH, HS);
        CHECK_REL(dq1, dq2, nq, 1e-5);
        CHECK_REL(dk1, dk2, nk, 1e-5);
        CHECK_REL(dv1, dv2, nk, 1e-5);
        att_ctx c = {B, T, NH, KVH, HS, 0, q, k, v};
        CHECK(fd_check(att_fwd, &c, q, nq, dy, nq, dq1, 8) < 2e-2);
        c.which = 1;
        CHECK(fd_check(att_fwd, &c, k, nk, dy, nq, dk1, 8) < 2e-2);
        c.which = 2;
        CHECK(fd_check(att_fwd, &c, v, nk, dy, nq, dv1, 8) < 2e-2);
        /* a loss on the maps too: Σ out·dy + Σ probs·G */
        long np_ = (long)B * NH * T * T;
        float *dy2 = rnd(nq + np_, 1);
        memcpy(dy2, dy, nq * sizeof(float));
        nx_attention_backward(dq1, dk1, dv1, s, dy, p, dy2 + nq, q, k, v, B, T, NH, KVH, HS);
        c.which = 0;
        CHECK(fd_check(att_fwd_probs, &c, q, nq, dy2, nq + np_, dq1, 8) < 2e-2);
        c.which = 1;
        CHECK(fd_check(att_fwd_probs, &c, k, nk, dy2, nq + np_, dk1, 8) < 2e-2);
        free(dy2);
        free(q), free(k), free(v), free(dy), free(p), free(s), free(o1), free(o2);
        free(dq1), free(dk1), free(dv1), free(dq2), free(dk2), free(dv2);
    }
}

typedef struct { const float *up; } sw_ctx;
static void sw_fwd(float *out, float *x, void *c_) {
    sw_ctx *c = c_;
    nx_swiglu_forward(out, x, c->up, 37);
}

TEST(swiglu_matches_reference_and_finite_differences) {
    float *g = rnd(37, 2), *u = rnd(37, 1), *dy = rnd(37, 1), *o1 = zeros(37), *o2 = zeros(37);
    nx_swiglu_forward(o1, g, u, 37);
    nx_ref_swiglu_forward(o2, g, u, 37);
    CHECK_REL(o1, o2, 37, 1e-6);
    float *dg = zeros(37), *du = zeros(37);
    nx_swiglu_backward(dg, du, dy, g, u, 37);
    sw_ctx c = {u};
    CHECK(fd_check(sw_fwd, &c, g, 37, dy, 37, dg, 20) < 1e-2);
    for (int i = 0; i < 37; i++) CHECK(fabsf(du[i] - dy[i] * o1[i] / u[i]) < 1e-4f * (1 + fabsf(du[i])));
    free(g), free(u), free(dy), free(o1), free(o2), free(dg), free(du);
}

TEST(embedding_backward_accumulates_repeated_ids) {
    float *wte = rnd(5 * 3, 1), out[4 * 3], dout[4 * 3], dw[15] = {0};
    int32_t ids[4] = {2, 0, 2, 4};
    nx_embedding_forward(out, ids, wte, 4, 3);
    CHECK(out[3] == wte[0] && out[6 * 1 + 2] == wte[2 * 3 + 2]);
    for (int i = 0; i < 12; i++) dout[i] = 1.0f + i;
    nx_embedding_backward(dw, dout, ids, 4, 3);
    CHECK(dw[2 * 3] == 1.0f + 7.0f && dw[1 * 3] == 0.0f && dw[4 * 3 + 2] == 12.0f);
    free(wte);
}

/* losses: fused fast path vs double reference, and finite differences */
typedef struct { nx_kd_kind kind; float temp; const float *t; const int32_t *tg; int N, V; bool ce; } loss_ctx;
static void loss_fwd(float *out, float *x, void *c_) {
    loss_ctx *c = c_;
    out[0] = c->ce ? (float)nx_ref_cross_entropy(NULL, 1, x, c->tg, c->N, c->V)
                   : (float)nx_ref_kd_loss(c->kind, c->temp, NULL, 1, x, c->t, c->tg, c->N, c->V);
}

TEST(losses_match_reference_and_finite_differences) {
    for (int it = 0; it < 8; it++) {
        int N = rint_in(1, 9), V = rint_in(2, 300);
        float *s = rnd((long)N * V, 3), *t = rnd((long)N * V, 3);
        int32_t tg[9];
        for (int n = 0; n < N; n++) tg[n] = (n == N - 1 && N > 1) ? -1 : (int)nx_rng_below(&R, V);
        float one = 1.0f;
        for (int kind = -1; kind < 3; kind++) {
            float temp = kind == 0 ? 0.5f : kind == 1 ? 1.0f : 2.0f;
            float *d1 = zeros((long)N * V), *d2 = zeros((long)N * V);
            double l1, l2;
            if (kind < 0) {
                l1 = nx_cross_entropy(d1, 0.7f, s, tg, N, V);
                l2 = nx_ref_cross_entropy(d2, 0.7f, s, tg, N, V);
            } else {
                l1 = nx_kd_loss(kind, temp, d1, 0.7f, s, t, tg, N, V);
                l2 = nx_ref_kd_loss(kind, temp, d2, 0.7f, s, t, tg, N, V);
            }
            CHECKF(fabs(l1 - l2) <= 1e-5 * fabs(l2) + 1e-7, "kind %d: %.9g vs %.9g", kind, l1, l2);
            CHECK_REL(d1, d2, (long)N * V, 1e-4);
            loss_ctx c = {kind < 0 ? 0 : kind, temp, t, tg, N, V, kind < 0};
            for (long i = 0; i < (long)N * V; i++) d2[i] /= 0.7f;
            CHECK(fd_check(loss_fwd, &c, s, (long)N * V, &one, 1, d2, 10) < 2e-2);
            free(d1), free(d2);
        }
        free(s), free(t);
    }
}

TEST(kd_loss_is_zero_for_identical_logits) {
    float *s = rnd(3 * 50, 2);
    int32_t tg[3] = {1, 2, 3};
    for (int kind = 0; kind < 3; kind++) CHECK(fabs(nx_kd_loss(kind, 2.0f, NULL, 1, s, s, tg, 3, 50)) < 1e-6);
    free(s);
}

__attribute__((constructor(200))) static void seed(void) { nx_rng_seed(&R, 1234); }

TEST(vectorised_exp_matches_expf) {
    long n = 200003;
    float *x = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4);
    for (long i = 0; i < n; i++) x[i] = -100.0f + 190.0f * (float)i / (float)n; /* covers under/overflow */
    double sa = nx_exp_sum(a, x, 1.5f, 0.5f, n), sb = nx_ref_exp_sum(b, x, 1.5f, 0.5f, n);
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double r = b[i] > 1e-30f ? fabs((double)a[i] - b[i]) / b[i] : fabs((double)a[i] - b[i]);
        if (r > worst) worst = r;
    }
    CHECKF(worst < 5e-7, "worst relative error %.3g", worst);
    CHECK(fabs(sa - sb) <= 1e-6 * sb);
    float z[3] = {-1000.0f, 0.0f, 1.0f}, w[3];
    nx_exp_sum(w, z, 0.0f, 1.0f, 3);
    CHECK(w[0] == 0.0f && w[1] == 1.0f && fabsf(w[2] - 2.7182817f) < 1e-6f);
    free(x), free(a), free(b);
}
