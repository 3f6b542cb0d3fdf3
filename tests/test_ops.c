/* test_ops.c — the op contracts are the right math: every backward op of
 * the reference backend against central finite differences of a scalar
 * probe loss Σ r ⊙ forward(x), on random shapes (odd sizes, T = 1, one
 * head, MQA, GQA); the losses' gradients likewise; RoPE tables against the
 * formula; and the CPU backend's vectorised exp against expf. That every
 * other backend computes the same as the reference is test_backend.c. */
#include "nexus/cpu.h"
#include "nexus/ops.h"
#include "nxtest.h"

static nx_rng R;
static nx_backend *BE;
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
static double fd_check(fwd_fn f, void *ctx, float *x, long nx, const float *r, long nout, const float *grad,
                       int probes) {
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
    nx_rmsnorm(BE, out, NULL, x, c->w, c->N, c->C, 1e-5f);
}

TEST(rmsnorm_backward_is_the_derivative) {
    for (int it = 0; it < 8; it++) {
        int N = rint_in(1, 17), C = rint_in(1, 70);
        float *x = rnd((long)N * C, 1), *w = rnd(C, 1), *dy = rnd((long)N * C, 1);
        float *o = zeros((long)N * C), *rs = zeros(N), *dx = zeros((long)N * C), *dw = zeros(C);
        nx_rmsnorm(BE, o, rs, x, w, N, C, 1e-5f);
        nx_rmsnorm_backward(BE, dx, dw, dy, x, w, rs, N, C);
        rms_ctx ctx = {N, C, w};
        CHECK(fd_check(rms_fwd, &ctx, x, (long)N * C, dy, (long)N * C, dx, 10) < 2e-2);
        free(x), free(w), free(dy), free(o), free(rs), free(dx), free(dw);
    }
}

typedef struct { int N; nx_weight W; const float *b; const float *x; } lin_ctx;
static void lin_fwd_x(float *out, float *x, void *c_) {
    lin_ctx *c = c_;
    nx_linear(BE, out, x, &c->W, c->b, c->N);
}
static void lin_fwd_w(float *out, float *w, void *c_) {
    lin_ctx *c = c_;
    nx_weight W = c->W;
    W.data = w;
    nx_linear(BE, out, c->x, &W, c->b, c->N);
}

TEST(linear_backward_is_the_derivative) {
    for (int it = 0; it < 10; it++) {
        int N = rint_in(1, 33), IC = rint_in(1, 40), OC = rint_in(1, 40);
        bool bias = it % 2;
        float *x = rnd((long)N * IC, 1), *W = rnd((long)OC * IC, 1), *b = bias ? rnd(OC, 1) : NULL;
        float *dy = rnd((long)N * OC, 1), *dx = zeros((long)N * IC), *dW = zeros((long)OC * IC), *db = zeros(OC);
        nx_weight w = nx_weight_view(BE, NX_F32, OC, IC, W);
        nx_linear_backward(BE, dx, dW, bias ? db : NULL, dy, x, &w, N);
        lin_ctx ctx = {N, w, b, x};
        CHECK(fd_check(lin_fwd_x, &ctx, x, (long)N * IC, dy, (long)N * OC, dx, 10) < 1e-2);
        CHECK(fd_check(lin_fwd_w, &ctx, W, (long)OC * IC, dy, (long)N * OC, dW, 10) < 1e-2);
        if (bias) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dy[(long)n * OC];
            CHECK(fabs(db[0] - s) < 1e-4 * (1 + fabs(s)));
        }
        free(x), free(W), free(b), free(dy), free(dx), free(dW), free(db);
    }
}

TEST(rope_matches_the_formula_and_inverts) {
    for (int it = 0; it < 6; it++) {
        int N = rint_in(1, 20), H = rint_in(1, 4), HS = 2 * rint_in(1, 16), maxp = 64, ld = H * HS + 3;
        double theta = it % 2 ? 10000.0 : 500000.0;
        float *cs = zeros((long)maxp * HS / 2), *sn = zeros((long)maxp * HS / 2);
        nx_rope_tables(cs, sn, maxp, HS, theta, NULL);
        int32_t pos[20];
        for (int n = 0; n < N; n++) pos[n] = (int)nx_rng_below(&R, maxp);
        long n_ = (long)N * ld;
        float *x = rnd(n_, 1), *a = malloc(n_ * 4);
        memcpy(a, x, n_ * 4);
        nx_rope(BE, a, ld, pos, cs, sn, N, H, HS, false);
        double worst = 0;
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < HS / 2; i++) {
                    double ang = pos[n] / pow(theta, 2.0 * i / HS);
                    const float *v = x + (long)n * ld + h * HS;
                    double want = v[i] * cos(ang) - v[i + HS / 2] * sin(ang);
                    worst = fmax(worst, fabs(want - a[(long)n * ld + h * HS + i]));
                }
        CHECKF(worst < 1e-5, "rope off by %.3g", worst);
        for (int n = 0; n < N; n++) CHECK(a[(long)n * ld + H * HS] == x[(long)n * ld + H * HS]); /* stride gap untouched */
        nx_rope(BE, a, ld, pos, cs, sn, N, H, HS, true); /* rotation is orthogonal: the inverse is the backward */
        CHECK_REL(a, x, n_, 1e-6);
        free(cs), free(sn), free(x), free(a);
    }
}

/* The rotary scalings against their formulas (modeling_rope_utils.py). */
TEST(rope_scalings_match_transformers_formulas) {
    int HS = 64, half = HS / 2;
    double theta = 500000, def[32], x[32];
    nx_rope_inv_freq(def, HS, theta, NULL, 0);
    /* linear: every frequency divided by the factor */
    nx_rope_scaling lin = {.type = NX_ROPE_LINEAR, .factor = 4};
    CHECK(nx_rope_inv_freq(x, HS, theta, &lin, 0) == 1.0);
    for (int i = 0; i < half; i++) CHECK(fabs(x[i] - def[i] / 4) <= 1e-15 * def[i]);
    /* dynamic: the default up to max_pos, a larger base beyond */
    nx_rope_scaling dyn = {.type = NX_ROPE_DYNAMIC, .factor = 2, .max_pos = 100};
    nx_rope_inv_freq(x, HS, theta, &dyn, 100);
    CHECK(memcmp(x, def, sizeof def) == 0);
    nx_rope_inv_freq(x, HS, theta, &dyn, 300);
    double base = theta * pow(2.0 * 300 / 100 - 1, 64.0 / 62);
    for (int i = 0; i < half; i++) CHECK(fabs(x[i] - pow(base, -2.0 * i / HS)) <= 1e-12 * def[i]);
    /* llama3: short wavelengths kept, long ones divided by factor, smooth between */
    nx_rope_scaling l3 = {.type = NX_ROPE_LLAMA3, .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                          .original_max_pos = 8192};
    nx_rope_inv_freq(x, HS, theta, &l3, 0);
    int kept = 0, divided = 0, smooth = 0;
    for (int i = 0; i < half; i++) {
        double wl = 2 * M_PI / def[i];
        if (wl < 8192 / 4.0) kept += x[i] == def[i];
        else if (wl > 8192) divided += fabs(x[i] - def[i] / 8) <= 1e-15 * def[i];
        else smooth += x[i] < def[i] && x[i] > def[i] / 8;
    }
    CHECKF(kept + divided + smooth == half && kept > 0 && divided > 0, "llama3: %d kept %d divided %d smooth", kept,
           divided, smooth);
    /* yarn: interpolated at low frequencies, extrapolated at high, mscale on cos/sin */
    nx_rope_scaling yarn = {.type = NX_ROPE_YARN, .factor = 4, .original_max_pos = 64};
    double att = nx_rope_inv_freq(x, HS, 10000, &yarn, 0);
    nx_rope_inv_freq(def, HS, 10000, NULL, 0);
    CHECK(fabs(att - (0.1 * log(4.0) + 1)) < 1e-15);
    CHECK(x[0] == def[0] && fabs(x[half - 1] - def[half - 1] / 4) <= 1e-15 * def[half - 1]);
    float cs[4 * 32], sn[4 * 32];
    nx_rope_tables(cs, sn, 4, HS, 10000, &yarn);
    CHECK(fabsf(cs[0] - (float)att) < 1e-6f && fabsf(cs[3 * half + 1] - (float)(cos(3 * x[1]) * att)) < 1e-6f);
}

/* Training-shaped attention over one packed (B·T, Q + 2KV) buffer. */
typedef struct { int B, T, NH, KVH, HS; bool with_probs; int W; } att_ctx;
static void att_fwd(float *out, float *qkv, void *c_) {
    att_ctx *c = c_;
    int Q = c->NH * c->HS, KV = c->KVH * c->HS, ld = Q + 2 * KV;
    nx_span sp[8];
    for (int b = 0; b < c->B; b++) sp[b] = (nx_span){b, 0, c->T};
    nx_kv kv = {qkv + Q, qkv + Q + KV, ld, (int64_t)c->T * ld};
    float *probs = c->with_probs ? out + (long)c->B * c->T * Q : NULL;
    nx_attention(BE, out, probs, qkv, ld, kv, sp, c->B, c->NH, c->KVH, c->HS, c->W);
}

TEST(attention_backward_is_the_derivative) {
    /* shapes: T = 1, one head, MQA (KVH = 1), GQA, MHA, odd head sizes */
    /* and sliding windows (the last field): one key, shorter than the sequence, as long */
    int shapes[][6] = {{1, 1, 1, 1, 4, 0}, {2, 5, 1, 1, 3, 0}, {2, 7, 4, 1, 8, 0}, {1, 9, 6, 2, 5, 0},
                       {3, 4, 4, 4, 6, 0}, {1, 13, 2, 1, 16, 0}, {2, 7, 2, 1, 4, 1}, {2, 9, 4, 2, 5, 3},
                       {1, 13, 2, 1, 8, 6}, {1, 6, 2, 2, 4, 6}};
    for (unsigned it = 0; it < sizeof shapes / sizeof shapes[0]; it++) {
        int B = shapes[it][0], T = shapes[it][1], NH = shapes[it][2], KVH = shapes[it][3], HS = shapes[it][4];
        int W = shapes[it][5];
        int Q = NH * HS, KV = KVH * HS, ld = Q + 2 * KV;
        long N = (long)B * T, nx = N * ld, nq = N * Q, np = (long)B * NH * T * T;
        float *x = rnd(nx, 1), *dy = rnd(nq + np, 1), *out = zeros(nq + np), *s = zeros(np), *dx = zeros(nx);
        att_ctx c = {B, T, NH, KVH, HS, true, W};
        att_fwd(out, x, &c);
        /* gradient of Σ out·dy only */
        nx_attention_backward(BE, dx, dx + Q, dx + Q + KV, s, dy, out + nq, NULL, x, x + Q, x + Q + KV, ld, B, T,
                              NH, KVH, HS, W);
        att_ctx c0 = {B, T, NH, KVH, HS, false, W};
        CHECK(fd_check(att_fwd, &c0, x, nx, dy, nq, dx, 12) < 2e-2);
        /* and a loss on the maps too: Σ out·dy + Σ probs·G */
        nx_attention_backward(BE, dx, dx + Q, dx + Q + KV, s, dy, out + nq, dy + nq, x, x + Q, x + Q + KV, ld, B,
                              T, NH, KVH, HS, W);
        CHECK(fd_check(att_fwd, &c, x, nx, dy, nq + np, dx, 12) < 2e-2);
        free(x), free(dy), free(out), free(s), free(dx);
    }
}

typedef struct { int N, F; } sw_ctx;
static void sw_fwd(float *out, float *gu, void *c_) {
    sw_ctx *c = c_;
    nx_swiglu(BE, out, gu, c->N, c->F);
}

TEST(swiglu_backward_is_the_derivative) {
    int N = 3, F = 13;
    float *gu = rnd(N * 2 * F, 2), *dy = rnd(N * F, 1), *o = zeros(N * F), *dgu = zeros(N * 2 * F);
    nx_swiglu(BE, o, gu, N, F);
    nx_swiglu_backward(BE, dgu, dy, gu, N, F);
    sw_ctx c = {N, F};
    CHECK(fd_check(sw_fwd, &c, gu, N * 2 * F, dy, N * F, dgu, 30) < 1e-2);
    free(gu), free(dy), free(o), free(dgu);
}

TEST(embedding_backward_accumulates_repeated_ids) {
    float *wte = rnd(5 * 3, 1), out[4 * 3], dout[4 * 3], dw[15] = {0};
    int32_t ids[4] = {2, 0, 2, 4};
    nx_weight w = nx_weight_view(BE, NX_F32, 5, 3, wte);
    nx_embed(BE, out, ids, &w, 4);
    CHECK(out[3] == wte[0] && out[6 * 1 + 2] == wte[2 * 3 + 2]);
    for (int i = 0; i < 12; i++) dout[i] = 1.0f + i;
    nx_embed_backward(BE, dw, dout, ids, 4, 3);
    CHECK(dw[2 * 3] == 1.0f + 7.0f && dw[1 * 3] == 0.0f && dw[4 * 3 + 2] == 12.0f);
    free(wte);
}

/* losses: the gradient each adds is the derivative of the value it writes */
typedef struct { int kind; float temp; const float *t; const int32_t *tg; int N, V; } loss_ctx;
static void loss_fwd(float *out, float *x, void *c_) {
    loss_ctx *c = c_;
    double l;
    if (c->kind < 0) nx_cross_entropy(BE, &l, NULL, 1, x, c->tg, c->N, c->V);
    else nx_kd_loss(BE, &l, (nx_kd_kind)c->kind, c->temp, NULL, 1, x, c->t, c->tg, c->N, c->V);
    out[0] = (float)l;
}

TEST(loss_gradients_are_the_derivatives) {
    for (int it = 0; it < 8; it++) {
        int N = rint_in(1, 9), V = rint_in(2, 300);
        float *s = rnd((long)N * V, 3), *t = rnd((long)N * V, 3);
        int32_t tg[9];
        for (int n = 0; n < N; n++) tg[n] = (n == N - 1 && N > 1) ? -1 : (int)nx_rng_below(&R, V);
        float one = 1.0f;
        for (int kind = -1; kind < 3; kind++) {
            float temp = kind == 0 ? 0.5f : kind == 1 ? 1.0f : 2.0f;
            float *d = zeros((long)N * V);
            double l;
            if (kind < 0) nx_cross_entropy(BE, &l, d, 0.7f, s, tg, N, V);
            else nx_kd_loss(BE, &l, (nx_kd_kind)kind, temp, d, 0.7f, s, t, tg, N, V);
            for (long i = 0; i < (long)N * V; i++) d[i] /= 0.7f;
            loss_ctx c = {kind, temp, t, tg, N, V};
            CHECK(fd_check(loss_fwd, &c, s, (long)N * V, &one, 1, d, 10) < 2e-2);
            free(d);
        }
        free(s), free(t);
    }
}

TEST(kd_loss_is_zero_for_identical_logits) {
    float *s = rnd(3 * 50, 2);
    int32_t tg[3] = {1, 2, 3};
    for (int kind = 0; kind < 3; kind++) {
        double l;
        nx_kd_loss(BE, &l, (nx_kd_kind)kind, 2.0f, NULL, 1, s, s, tg, 3, 50);
        CHECK(fabs(l) < 1e-6);
    }
    free(s);
}

/* Attention transfer: the map gradient is the derivative of the KL sum. */
typedef struct { const float *pt; int B, T, hs, ht; } akl_ctx;
static void akl_fwd(float *out, float *ps, void *c_) {
    akl_ctx *c = c_;
    double sum;
    float *d = zeros((long)c->B * c->hs * c->T * c->T);
    nx_attention_kl(BE, &sum, d, ps, c->pt, c->B, c->T, c->hs, c->ht, 1.0f);
    out[0] = (float)sum;
    free(d);
}

TEST(attention_kl_gradient_is_the_derivative) {
    int B = 2, T = 5;
    for (int hs = 2; hs <= 3; hs++) {
        int ht = hs == 2 ? 2 : 4; /* per-head groups, then one group of head means */
        long ns = (long)B * hs * T * T, nt = (long)B * ht * T * T;
        float *ps = zeros(ns), *pt = zeros(nt), *d = zeros(ns), one = 1.0f;
        for (long i = 0; i < ns; i++) ps[i] = 0.1f + (float)nx_rng_uniform(&R);
        for (long i = 0; i < nt; i++) pt[i] = 0.1f + (float)nx_rng_uniform(&R);
        double sum;
        int groups = hs == ht ? hs : 1;
        nx_attention_kl(BE, &sum, d, ps, pt, B, T, hs, ht, 1.0f);
        /* the op's gradient is −Ā_t/Ā_s/gs: that of Σ −Ā_t log Ā_s, the part of the KL that depends on ps */
        akl_ctx c = {pt, B, T, hs, ht};
        float *dr = zeros(ns);
        for (long i = 0; i < ns; i++) dr[i] = d[i];
        CHECK(fd_check(akl_fwd, &c, ps, ns, &one, 1, dr, 12) < 2e-2);
        CHECK(sum != 0 && groups >= 1);
        free(ps), free(pt), free(d), free(dr);
    }
}

__attribute__((constructor(200))) static void seed(void) {
    nx_rng_seed(&R, 1234);
    BE = nx_backend_ref();
}

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

/* SwiGLU's row kernel against the expf loop, over gates that under- and
 * overflow the exponential (and a tail shorter than a vector) */
TEST(vectorised_silu_mul_matches_expf) {
    long n = 100003;
    float *g = malloc(n * 4), *u = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4);
    for (long i = 0; i < n; i++) {
        g[i] = -120.0f + 240.0f * (float)i / (float)n;
        u[i] = 0.5f + (float)(i % 7);
    }
    nx_silu_mul(a, g, u, n);
    nx_ref_silu_mul(b, g, u, n);
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double r = fabsf(b[i]) > 1e-30f ? fabs((double)a[i] - b[i]) / fabs(b[i]) : fabs((double)a[i] - b[i]);
        if (r > worst) worst = r;
    }
    CHECKF(worst < 1e-6, "worst relative error %.3g", worst);
    free(g), free(u), free(a), free(b);
}
