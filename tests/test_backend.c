/* test_backend.c — every op of every built backend against the reference
 * backend, forward and backward, on random shapes with odd sizes (ggml's
 * test-backend-ops idea). Inputs are made on the host, run through the
 * reference there and through the backend under test after an upload; the
 * results are downloaded and compared. An op a backend lacks is reported
 * as skipped, by name. The CPU backend always runs; the CUDA backend when
 * nexus was built with `make CUDA=1` and a GPU is present. */
#include "nexus/ops.h"
#include "nxtest.h"

static nx_rng R;
static nx_backend *REF;
static nx_backend *UNDER[4];
static int NUNDER;

static float *rnd(long n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = scale * nx_rng_normal(&R);
    return x;
}
static int rint_in(int lo, int hi) { return lo + (int)nx_rng_below(&R, hi - lo + 1); }

/* A copy of host bytes on be. */
static void *up(nx_backend *be, const void *host, size_t bytes) {
    void *d = nx_backend_alloc(be, bytes ? bytes : 4, "test", NULL);
    NX_ASSERT(d);
    nx_backend_upload(be, d, host, bytes);
    return d;
}
/* Downloads n floats of dev and compares them with want. */
static double rel_err(nx_backend *be, const float *dev, const float *want, long n) {
    float *got = malloc(sizeof(float) * (n ? n : 1));
    nx_backend_download(be, got, dev, sizeof(float) * n);
    double e = nxt_rel_err(got, want, n);
    free(got);
    return e;
}
static double scalar(nx_backend *be, const double *dev) {
    double v;
    nx_backend_download(be, &v, dev, sizeof v);
    return v;
}

/* The n losses (1 or 2) at dev against the reference's want, at 1e-5
 * relative (1e-7 absolute); what names the case. */
static void expect_losses(nx_backend *be, const double *dev, const double *want, int n, const char *what) {
    double got[2];
    nx_backend_download(be, got, dev, sizeof(double) * n);
    for (int j = 0; j < n; j++)
        CHECKF(fabs(got[j] - want[j]) <= 1e-5 * fabs(want[j]) + 1e-7, "%s, loss %d on %s: %.9g vs %.9g", what, j,
               be->name, got[j], want[j]);
}

#define SKIP_IF_MISSING(be, op)                                                         \
    if (!(be)->ops->op) {                                                               \
        printf("skip %s on %s: the backend has no such op\n", #op, (be)->name);         \
        continue;                                                                       \
    }
#define EXPECT(e, tol, what)                                                            \
    CHECKF((e) <= (tol), "%s on %s: relative error %.3g > %.3g", what, be->name, (double)(e), (double)(tol))
static void setup(void);
/* backends are started by the first test, not before main: CUDA libraries
 * (CUB's cached device state) must not be initialised from a constructor */
#define FOR_EACH_BACKEND                                                                  \
    setup();                                                                             \
    for (int bi = 0; bi < NUNDER; bi++)                                                  \
        for (nx_backend *be = UNDER[bi]; be; be = NULL)

/* Every weight type: the float ones and the quantizer's block types. */
static const nx_dtype WTYPES[] = {NX_F32, NX_BF16, NX_F16, NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
enum { NWTYPES = sizeof WTYPES / sizeof WTYPES[0] };

/* A row length for type t: any for float types, whole blocks for block types. */
static int cols_for(nx_dtype t, int lo, int hi) {
    int b = nx_type(t)->block;
    return b == 1 ? rint_in(lo, hi) : b * rint_in(1, b >= 256 ? 2 : 5);
}

TEST(embed_every_weight_type) {
    const nx_dtype *types = WTYPES;
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, embed);
        for (int k = 0; k < NWTYPES; k++) {
            if (!nx_backend_supports_weight(be, types[k])) {
                printf("skip embed of %s on %s\n", nx_dtype_name(types[k]), be->name);
                continue;
            }
            int V = rint_in(2, 50), C = cols_for(types[k], 1, 67), N = rint_in(1, 80);
            float *w = rnd((long)V * C, 1), *want = malloc(sizeof(float) * N * C);
            void *wt = malloc(nx_row_bytes(types[k], (int64_t)V * C));
            nx_convert(wt, types[k], w, NX_F32, (int64_t)V * C);
            int32_t ids[80]; /* every other type: ids 0 and 1 only, runs longer than a backend's read-ahead (16) */
            for (int n = 0; n < N; n++) ids[n] = (int32_t)nx_rng_below(&R, k % 2 ? 2 : V);
            nx_weight W = nx_weight_view(REF, types[k], V, C, wt);
            nx_embed(REF, want, ids, &W, N);
            nx_weight Wd = nx_weight_view(be, types[k], V, C, up(be, wt, W.row_bytes * V));
            int32_t *idd = up(be, ids, sizeof ids);
            float *out = up(be, want, sizeof(float) * N * C);
            nx_backend_zero(be, out, sizeof(float) * N * C);
            nx_embed(be, out, idd, &Wd, N);
            EXPECT(rel_err(be, out, want, (long)N * C), 0, "embed");
            /* backward (f32) */
            float *dout = rnd((long)N * C, 1), *dw = calloc((size_t)V * C, 4);
            float *dwd = up(be, dw, sizeof(float) * V * C), *doutd = up(be, dout, sizeof(float) * N * C);
            nx_embed_backward(REF, dw, dout, ids, N, C);
            if (be->ops->embed_backward) {
                nx_embed_backward(be, dwd, doutd, idd, N, C);
                EXPECT(rel_err(be, dwd, dw, (long)V * C), 1e-6, "embed_backward");
            }
            nx_backend_free(be, Wd.data), nx_backend_free(be, idd), nx_backend_free(be, out);
            nx_backend_free(be, dwd), nx_backend_free(be, doutd);
            free(w), free(want), free(wt), free(dout), free(dw);
        }
    }
}

TEST(rmsnorm_forward_and_backward) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, rmsnorm);
        for (int it = 0; it < 6; it++) {
            int N = rint_in(1, 37), C = it % 2 ? 4 * rint_in(1, 40) : rint_in(1, 130); /* odd: vector paths */
            long n = (long)N * C;
            float *x = rnd(n, 1), *w = rnd(C, 1), *dy = rnd(n, 1), *o = malloc(4 * n), *rs = malloc(4 * N);
            nx_rmsnorm(REF, o, rs, x, w, N, C, 1e-5f);
            float *xd = up(be, x, 4 * n), *wd = up(be, w, 4 * C), *od = up(be, o, 4 * n), *rsd = up(be, rs, 4 * N);
            nx_backend_zero(be, od, 4 * n);
            nx_rmsnorm(be, od, rsd, xd, wd, N, C, 1e-5f);
            EXPECT(rel_err(be, od, o, n), 1e-6, "rmsnorm");
            EXPECT(rel_err(be, rsd, rs, N), 1e-6, "rmsnorm rstd");
            if (!be->ops->rmsnorm_backward) {
                printf("skip rmsnorm_backward on %s\n", be->name);
            } else {
                float *dx = rnd(n, 1), *dw = rnd(C, 1); /* backward adds: start from nonzero */
                float *dxd = up(be, dx, 4 * n), *dwd = up(be, dw, 4 * C), *dyd = up(be, dy, 4 * n);
                nx_rmsnorm_backward(REF, dx, dw, dy, x, w, rs, N, C);
                nx_rmsnorm_backward(be, dxd, dwd, dyd, xd, wd, rsd, N, C);
                EXPECT(rel_err(be, dxd, dx, n), 1e-5, "rmsnorm_backward dx");
                EXPECT(rel_err(be, dwd, dw, C), 1e-5, "rmsnorm_backward dw");
                nx_backend_free(be, dxd), nx_backend_free(be, dwd), nx_backend_free(be, dyd);
                free(dx), free(dw);
            }
            nx_backend_free(be, xd), nx_backend_free(be, wd), nx_backend_free(be, od), nx_backend_free(be, rsd);
            free(x), free(w), free(dy), free(o), free(rs);
        }
    }
}

/* n floats of host on be, at off floats past the start of the allocation
 * (off 1: not 16-byte aligned); *base gets the allocation to free. */
static float *up_at(nx_backend *be, const float *host, long n, int off, void **base) {
    *base = nx_backend_alloc(be, sizeof(float) * (size_t)(n + off), "test", NULL);
    NX_ASSERT(*base);
    float *d = (float *)*base + off;
    nx_backend_upload(be, d, host, sizeof(float) * n);
    return d;
}

/* RMSNorm's backward on the shapes that pick its CUDA paths: a warp a row
 * for C a multiple of 4 up to 1024 (1 to 8 groups of 4 columns a lane, the
 * last group partly used), chunks of rows that do not divide N, N = 1; the
 * fallback past 1024 columns, for C not a multiple of 4 and for arrays not
 * 16-byte aligned. Run twice from the same start: the same bits. Draws from
 * a stream of its own, so the tests after it get the shapes they had. */
TEST(rmsnorm_backward_paths_and_determinism) {
    static const struct { int N, C, off; } S[] = {{300, 1024, 0}, {1, 1024, 0}, {77, 644, 0}, {4099, 128, 0},
                                                   {37, 64, 0},   {5, 4, 0},    {33, 1028, 0}, {40, 130, 0},
                                                   {50, 64, 1},   {1, 1, 0}};
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, rmsnorm_backward);
        nx_rng keep = R;
        nx_rng_seed(&R, 1234);
        for (size_t s = 0; s < sizeof S / sizeof S[0]; s++) {
            int N = S[s].N, C = S[s].C, off = S[s].off;
            long n = (long)N * C;
            float *x = rnd(n, 1), *w = rnd(C, 1), *dy = rnd(n, 1), *o = malloc(4 * n), *rs = malloc(4 * N);
            float *dx = rnd(n, 1), *dw = rnd(C, 1), *dx0 = malloc(4 * n), *dw0 = malloc(4 * C);
            float *got = malloc(4 * n), *gotw = malloc(4 * C);
            memcpy(dx0, dx, 4 * n), memcpy(dw0, dw, 4 * C);
            nx_rmsnorm(REF, o, rs, x, w, N, C, 1e-5f);
            nx_rmsnorm_backward(REF, dx, dw, dy, x, w, rs, N, C);
            void *b[6];
            float *xd = up_at(be, x, n, off, &b[0]), *wd = up_at(be, w, C, off, &b[1]);
            float *dyd = up_at(be, dy, n, off, &b[2]), *rsd = up_at(be, rs, N, off, &b[3]);
            float *dxd = up_at(be, dx0, n, off, &b[4]), *dwd = up_at(be, dw0, C, off, &b[5]);
            nx_rmsnorm_backward(be, dxd, dwd, dyd, xd, wd, rsd, N, C);
            CHECKF(rel_err(be, dxd, dx, n) <= 1e-5, "rmsnorm_backward dx on %s, N %d C %d off %d", be->name, N, C, off);
            CHECKF(rel_err(be, dwd, dw, C) <= 1e-5, "rmsnorm_backward dw on %s, N %d C %d off %d", be->name, N, C, off);
            nx_backend_download(be, got, dxd, 4 * n);
            nx_backend_download(be, gotw, dwd, 4 * C);
            nx_backend_upload(be, dxd, dx0, 4 * n);
            nx_backend_upload(be, dwd, dw0, 4 * C);
            nx_rmsnorm_backward(be, dxd, dwd, dyd, xd, wd, rsd, N, C);
            nx_backend_download(be, dx, dxd, 4 * n);
            nx_backend_download(be, dw, dwd, 4 * C);
            CHECKF(!memcmp(got, dx, 4 * n) && !memcmp(gotw, dw, 4 * C),
                   "rmsnorm_backward on %s, N %d C %d: a second run gave other bits", be->name, N, C);
            for (int i = 0; i < 6; i++) nx_backend_free(be, b[i]);
            free(x), free(w), free(dy), free(o), free(rs), free(dx), free(dw), free(dx0), free(dw0);
            free(got), free(gotw);
        }
        R = keep;
    }
}

/* Block types: the CPU quantizes the inputs to 8 bits (per block of 32)
 * where the reference multiplies them in f32, hence the looser bound
 * (quant.c's kernels are held to their exact reference in test_quant.c). */
TEST(linear_every_weight_type_few_and_many_rows) {
    const nx_dtype *types = WTYPES;
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, linear);
        for (int k = 0; k < NWTYPES; k++) {
            if (!nx_backend_supports_weight(be, types[k])) {
                printf("skip linear with %s weights on %s\n", nx_dtype_name(types[k]), be->name);
                continue;
            }
            int rows[] = {1, 2, 3, 5, 8, 9, 33, 70};
            for (int it = 0; it < 8; it++) {
                int N = rows[it], IC = cols_for(types[k], 1, 90), OC = rint_in(1, 90);
                bool bias = it % 2;
                float *x = rnd((long)N * IC, 1), *w = rnd((long)OC * IC, 1), *b = rnd(OC, 1);
                void *wt = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
                nx_convert(wt, types[k], w, NX_F32, (int64_t)OC * IC);
                nx_weight W = nx_weight_view(REF, types[k], OC, IC, wt);
                float *want = malloc(4L * N * OC);
                nx_linear(REF, want, x, &W, bias ? b : NULL, N);
                int64_t plan = (int64_t)OC * IC;
                NX_ASSERT(nx_backend_plan(be, &(nx_work){.weight_elems = plan}, NULL) == NX_OK);
                nx_weight Wd = nx_weight_view(be, types[k], OC, IC, up(be, wt, W.row_bytes * OC));
                float *xd = up(be, x, 4L * N * IC), *bd = up(be, b, 4L * OC), *od = up(be, want, 4L * N * OC);
                nx_backend_zero(be, od, 4L * N * OC);
                nx_linear(be, od, xd, &Wd, bias ? bd : NULL, N);
                EXPECT(rel_err(be, od, want, (long)N * OC), nx_type(types[k])->block > 1 ? 1.5e-2 : 1e-5, "linear");
                if (types[k] == NX_F32 && be->ops->linear_backward) {
                    float *dy = rnd((long)N * OC, 1), *dx = rnd((long)N * IC, 1), *dW = rnd((long)OC * IC, 1),
                          *db = rnd(OC, 1);
                    float *dyd = up(be, dy, 4L * N * OC), *dxd = up(be, dx, 4L * N * IC), *dWd = up(be, dW, 4L * OC * IC),
                          *dbd = up(be, db, 4L * OC);
                    nx_linear_backward(REF, dx, dW, bias ? db : NULL, dy, x, &W, N);
                    nx_linear_backward(be, dxd, dWd, bias ? dbd : NULL, dyd, xd, &Wd, N);
                    EXPECT(rel_err(be, dxd, dx, (long)N * IC), 1e-5, "linear_backward din");
                    EXPECT(rel_err(be, dWd, dW, (long)OC * IC), 1e-5, "linear_backward dW");
                    EXPECT(rel_err(be, dbd, db, OC), 1e-5, "linear_backward db");
                    /* the typed entry point with f32 types: din overwritten, whatever it held */
                    float *dx2 = malloc(4L * N * IC);
                    memset(dx2, 0, 4L * N * IC);
                    nx_linear_backward(REF, dx2, dW, bias ? db : NULL, dy, x, &W, N);
                    nx_linear_backward_from(be, dxd, dWd, bias ? dbd : NULL, NX_GRAD_ADD, dyd, NX_F32, xd, NX_F32, &Wd, N);
                    EXPECT(rel_err(be, dxd, dx2, (long)N * IC), 1e-5, "linear_backward_from din (overwritten)");
                    EXPECT(rel_err(be, dWd, dW, (long)OC * IC), 1e-5, "linear_backward_from dW");
                    EXPECT(rel_err(be, dbd, db, OC), 1e-5, "linear_backward_from db");
                    /* NX_GRAD_WRITE: dW and db written over garbage, the sums into zeros */
                    memset(dx2, 0, 4L * N * IC), memset(dW, 0, 4L * OC * IC), memset(db, 0, 4L * OC);
                    nx_linear_backward(REF, dx2, dW, bias ? db : NULL, dy, x, &W, N);
                    be->fill(be, dWd, 0xff, 4L * OC * IC), be->fill(be, dbd, 0xff, 4L * OC);
                    nx_linear_backward_from(be, dxd, dWd, bias ? dbd : NULL, NX_GRAD_WRITE, dyd, NX_F32, xd, NX_F32,
                                            &Wd, N);
                    EXPECT(rel_err(be, dxd, dx2, (long)N * IC), 1e-5, "linear_backward_from, gradients written: din");
                    EXPECT(rel_err(be, dWd, dW, (long)OC * IC), 1e-5, "linear_backward_from, gradients written: dW");
                    if (bias) EXPECT(rel_err(be, dbd, db, OC), 1e-5, "linear_backward_from, gradients written: db");
                    free(dx2);
                    nx_backend_free(be, dyd), nx_backend_free(be, dxd), nx_backend_free(be, dWd), nx_backend_free(be, dbd);
                    free(dy), free(dx), free(dW), free(db);
                } else if (types[k] == NX_F32) {
                    printf("skip linear_backward on %s\n", be->name);
                }
                nx_backend_free(be, Wd.data), nx_backend_free(be, xd), nx_backend_free(be, bd), nx_backend_free(be, od);
                free(x), free(w), free(b), free(wt), free(want);
            }
        }
    }
}

TEST(rope_with_row_stride_and_inverse) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, rope);
        for (int it = 0; it < 4; it++) {
            int N = rint_in(1, 21), H = rint_in(1, 5), HS = 2 * rint_in(1, 17), P = 50, ld = H * HS + rint_in(0, 7);
            if (it % 2) HS = 8 * rint_in(1, 4), ld = H * HS + 4 * rint_in(0, 2); /* vector paths */
            float *cs = malloc(4L * P * HS / 2), *sn = malloc(4L * P * HS / 2);
            nx_rope_tables(cs, sn, P, HS, 10000.0, NULL);
            int32_t pos[21];
            for (int n = 0; n < N; n++) pos[n] = (int32_t)nx_rng_below(&R, P);
            long n_ = (long)N * ld;
            float *x = rnd(n_, 1);
            float *xd = up(be, x, 4 * n_), *csd = up(be, cs, 4L * P * HS / 2), *snd = up(be, sn, 4L * P * HS / 2);
            int32_t *pd = up(be, pos, sizeof pos);
            for (int inv = 0; inv < 2; inv++) {
                nx_rope(REF, x, ld, pos, cs, sn, N, H, HS, inv);
                nx_rope(be, xd, ld, pd, csd, snd, N, H, HS, inv);
                EXPECT(rel_err(be, xd, x, n_), 1e-6, inv ? "rope inverse" : "rope");
            }
            nx_backend_free(be, xd), nx_backend_free(be, csd), nx_backend_free(be, snd), nx_backend_free(be, pd);
            free(cs), free(sn), free(x);
        }
    }
}

/* Attention over a KV cache: spans mixing prefill chunks (also ones that
 * cross a 64-row block) and decode rows of sequences at other positions,
 * after kv_store put the rows' keys and values in place. */
TEST(kv_store_and_attention_over_a_cache) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, attention);
        SKIP_IF_MISSING(be, kv_store);
        int cases[][3] = {{4, 2, 8}, {6, 2, 5}, {2, 1, 16}, {3, 3, 7}};
        for (int it = 0; it < 4; it++) {
            int NH = cases[it][0], KVH = cases[it][1], HS = cases[it][2], S = 4, T = 150;
            int Q = NH * HS, KV = KVH * HS, ld = Q + 2 * KV;
            nx_span sp[4] = {{0, 0, 70}, {2, 33, 1}, {1, 5, 1}, {3, 10, 9}};
            int nspans = 4, N = 81;
            long ncache = (long)S * T * KV;
            float *kc = rnd(ncache, 1), *vc = rnd(ncache, 1), *qkv = rnd((long)N * ld, 1), *out = malloc(4L * N * Q);
            float *kcd = up(be, kc, 4 * ncache), *vcd = up(be, vc, 4 * ncache), *qkvd = up(be, qkv, 4L * N * ld);
            float *outd = up(be, out, 4L * N * Q);
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.ctx = T}, NULL) == NX_OK);
            nx_kv kv = {kc, vc, KV, (int64_t)T * KV}, kvd = {kcd, vcd, KV, (int64_t)T * KV};
            nx_kv_store(REF, kv, qkv + Q, qkv + Q + KV, ld, sp, nspans, KV);
            nx_kv_store(be, kvd, qkvd + Q, qkvd + Q + KV, ld, sp, nspans, KV);
            EXPECT(rel_err(be, kcd, kc, ncache), 0, "kv_store keys");
            EXPECT(rel_err(be, vcd, vc, ncache), 0, "kv_store values");
            int windows[] = {0, 1, 6, 40, 200};
            for (int wi = 0; wi < 5; wi++) { /* full, and windows inside one block, across blocks, past the context */
                nx_attention(REF, out, NULL, qkv, ld, kv, sp, nspans, NH, KVH, HS, windows[wi]);
                nx_attention(be, outd, NULL, qkvd, ld, kvd, sp, nspans, NH, KVH, HS, windows[wi]);
                EXPECT(rel_err(be, outd, out, (long)N * Q), 1e-5, "attention over a cache");
            }
            nx_backend_free(be, kcd), nx_backend_free(be, vcd), nx_backend_free(be, qkvd), nx_backend_free(be, outd);
            free(kc), free(vc), free(qkv), free(out);
        }
    }
}

/* Training attention: B sequences among themselves, maps kept, backward. */
TEST(training_attention_forward_maps_and_backward) {
    int shapes[][6] = {{1, 1, 1, 1, 4, 0}, {2, 5, 1, 1, 3, 0}, {2, 7, 4, 1, 8, 0}, {1, 9, 6, 2, 5, 0},
                       {3, 4, 4, 4, 6, 0}, {1, 70, 2, 1, 16, 0}, {2, 65, 4, 2, 8, 0},
                       /* sliding windows: one key, shorter than the sequence, across 64-row blocks, longer */
                       {2, 9, 2, 1, 4, 1}, {2, 9, 4, 2, 6, 3}, {1, 70, 2, 1, 16, 20}, {2, 65, 4, 2, 8, 64},
                       {1, 12, 2, 2, 4, 50}};
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, attention);
        for (unsigned it = 0; it < sizeof shapes / sizeof shapes[0]; it++) {
            int B = shapes[it][0], T = shapes[it][1], NH = shapes[it][2], KVH = shapes[it][3], HS = shapes[it][4];
            int W = shapes[it][5];
            int Q = NH * HS, KV = KVH * HS, ld = Q + 2 * KV;
            long N = (long)B * T, np = (long)B * NH * T * T;
            nx_span sp[3];
            for (int b = 0; b < B; b++) sp[b] = (nx_span){b, 0, T};
            float *x = rnd(N * ld, 1), *out = malloc(4 * N * Q), *probs = malloc(4 * np);
            float *xd = up(be, x, 4 * N * ld), *outd = up(be, out, 4 * N * Q), *pd = up(be, probs, 4 * np);
            nx_backend_zero(be, pd, 4 * np);
            nx_kv kv = {x + Q, x + Q + KV, ld, (int64_t)T * ld}, kvd = {xd + Q, xd + Q + KV, ld, (int64_t)T * ld};
            nx_attention(REF, out, probs, x, ld, kv, sp, B, NH, KVH, HS, W);
            nx_attention(be, outd, pd, xd, ld, kvd, sp, B, NH, KVH, HS, W);
            EXPECT(rel_err(be, outd, out, N * Q), 1e-5, "training attention");
            EXPECT(rel_err(be, pd, probs, np), 1e-5, "attention maps");
            /* the same rows without maps (a teacher's forward, evaluation) */
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.ctx = T}, NULL) == NX_OK);
            nx_backend_zero(be, outd, 4 * N * Q);
            nx_attention(be, outd, NULL, xd, ld, kvd, sp, B, NH, KVH, HS, W);
            EXPECT(rel_err(be, outd, out, N * Q), 1e-5, "training attention without maps");
            if (!be->ops->attention_backward) {
                printf("skip attention_backward on %s\n", be->name);
            } else {
                float *dy = rnd(N * Q, 1), *dmap = rnd(np, 1), *dx = malloc(4 * N * ld), *s = malloc(4 * np);
                float *dyd = up(be, dy, 4 * N * Q), *dmapd = up(be, dmap, 4 * np), *dxd = up(be, x, 4 * N * ld);
                float *sd = up(be, probs, 4 * np);
                memcpy(dx, x, 4 * N * ld); /* the strided gaps must survive untouched */
                nx_attention_backward(REF, dx, dx + Q, dx + Q + KV, s, dy, probs, dmap, x, x + Q, x + Q + KV, ld, B, T,
                                      NH, KVH, HS, W);
                nx_attention_backward(be, dxd, dxd + Q, dxd + Q + KV, sd, dyd, pd, dmapd, xd, xd + Q, xd + Q + KV, ld,
                                      B, T, NH, KVH, HS, W);
                EXPECT(rel_err(be, dxd, dx, N * ld), 1e-5, "attention_backward");
                nx_backend_free(be, dyd), nx_backend_free(be, dmapd), nx_backend_free(be, dxd), nx_backend_free(be, sd);
                free(dy), free(dmap), free(dx), free(s);
            }
            nx_backend_free(be, xd), nx_backend_free(be, outd), nx_backend_free(be, pd);
            free(x), free(out), free(probs);
        }
    }
}

/* A strided block copied out and back, the gaps left alone. */
TEST(copy2d_strided_rows) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, copy2d);
        for (int it = 0; it < 4; it++) {
            int rows = rint_in(1, 40), cols = rint_in(1, 30), lds = cols + rint_in(0, 9), ldd = cols + rint_in(0, 9);
            long ns = (long)rows * lds, nd = (long)rows * ldd;
            float *src = rnd(ns, 1), *dst = rnd(nd, 1);
            float *srcd = up(be, src, 4 * ns), *dstd = up(be, dst, 4 * nd);
            nx_copy2d(REF, dst, ldd, src, lds, rows, cols);
            nx_copy2d(be, dstd, ldd, srcd, lds, rows, cols);
            EXPECT(rel_err(be, dstd, dst, nd), 0, "copy2d");
            for (int c = 0; c < cols; c++) CHECK(dst[(long)(rows - 1) * ldd + c] == src[(long)(rows - 1) * lds + c]);
            nx_backend_free(be, srcd), nx_backend_free(be, dstd);
            free(src), free(dst);
        }
    }
}

TEST(swiglu_add_argmax) {
    FOR_EACH_BACKEND for (int vec = 0; vec < 2; vec++) { /* an odd F, and a multiple of 4 (vector paths) */
        int N = rint_in(1, 17), F = vec ? 4 * rint_in(1, 75) : 2 * rint_in(0, 149) + 1;
        size_t n = (size_t)N * F;
        float *gu = rnd(2 * n, 2), *h = malloc(4 * n), *dh = rnd(n, 1), *dgu = malloc(8 * n);
        float *gud = up(be, gu, 8 * n), *hd = up(be, h, 4 * n), *dhd = up(be, dh, 4 * n), *dgud = up(be, gu, 8 * n);
        if (be->ops->swiglu) {
            nx_swiglu(REF, h, gu, N, F);
            nx_swiglu(be, hd, gud, N, F);
            EXPECT(rel_err(be, hd, h, n), 1e-6, "swiglu");
        } else printf("skip swiglu on %s\n", be->name);
        if (be->ops->swiglu_backward) {
            nx_swiglu_backward(REF, dgu, dh, gu, N, F);
            nx_swiglu_backward(be, dgud, dhd, gud, N, F);
            EXPECT(rel_err(be, dgud, dgu, 2 * n), 1e-6, "swiglu_backward");
        } else printf("skip swiglu_backward on %s\n", be->name);
        if (be->ops->add) {
            nx_add(REF, dh, gu, n);
            nx_add(be, dhd, gud, n);
            EXPECT(rel_err(be, dhd, dh, n), 0, "add");
        } else printf("skip add on %s\n", be->name);
        if (be->ops->argmax) {
            int32_t a[17], b[17], *ad = up(be, a, sizeof a);
            if (F > 2) gu[1] = gu[2] = 100.0f; /* a tie in row 0: the lowest index wins */
            nx_backend_upload(be, gud, gu, 8 * n);
            nx_argmax(REF, a, gu, N, F);
            nx_argmax(be, ad, gud, N, F);
            nx_backend_download(be, b, ad, sizeof(int32_t) * N);
            CHECK(memcmp(a, b, sizeof(int32_t) * N) == 0);
            nx_backend_free(be, ad);
        } else printf("skip argmax on %s\n", be->name);
        nx_backend_free(be, gud), nx_backend_free(be, hd), nx_backend_free(be, dhd), nx_backend_free(be, dgud);
        free(gu), free(h), free(dh), free(dgu);
    }
}

TEST(losses_values_and_gradients) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, cross_entropy);
        SKIP_IF_MISSING(be, kd_loss);
        for (int it = 0; it < 6; it++) {
            int N = rint_in(1, 9), V = rint_in(2, 3000);
            long n = (long)N * V;
            float *s = rnd(n, 3), *t = rnd(n, 3), *d = rnd(n, 1);
            int32_t tg[9];
            for (int i = 0; i < N; i++) tg[i] = (i == N - 1 && N > 1) ? -1 : (int)nx_rng_below(&R, V);
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.vocab = V}, NULL) == NX_OK);
            float *sd = up(be, s, 4 * n), *td = up(be, t, 4 * n), *dd = up(be, d, 4 * n);
            int32_t *tgd = up(be, tg, sizeof tg);
            double *ld = up(be, &(double){0}, sizeof(double)), l;
            for (int kind = -1; kind < 3; kind++) {
                float temp = kind == 0 ? 0.5f : kind == 1 ? 1.0f : 2.0f;
                if (kind < 0) {
                    nx_cross_entropy(REF, &l, d, 0.7f, s, tg, N, V);
                    nx_cross_entropy(be, ld, dd, 0.7f, sd, tgd, N, V);
                } else {
                    nx_kd_loss(REF, &l, (nx_kd_kind)kind, temp, d, 0.7f, s, t, tg, N, V);
                    nx_kd_loss(be, ld, (nx_kd_kind)kind, temp, dd, 0.7f, sd, td, tgd, N, V);
                }
                char what[32];
                snprintf(what, sizeof what, "kind %d", kind);
                expect_losses(be, ld, &l, 1, what);
                EXPECT(rel_err(be, dd, d, n), 1e-5, "loss gradient");
            }
            nx_backend_free(be, sd), nx_backend_free(be, td), nx_backend_free(be, dd), nx_backend_free(be, tgd);
            nx_backend_free(be, ld);
            free(s), free(t), free(d);
        }
    }
}

/* The fused loss against the reference's zero + CE + KD: every kind, no
 * teacher, no CE gradient (w_ce 0), losses only (no dlogits), V a multiple
 * of 4 (the 16-byte path) and not. */
TEST(distill_loss_fused_equals_separate) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, cross_entropy);
        SKIP_IF_MISSING(be, kd_loss);
        for (int it = 0; it < 8; it++) {
            int N = rint_in(1, 9), V = it % 2 ? 4 * rint_in(1, 700) : rint_in(2, 3000);
            long n = (long)N * V;
            float *s = rnd(n, 3), *t = rnd(n, 3), *d = rnd(n, 1);
            int32_t tg[9];
            for (int i = 0; i < N; i++) tg[i] = (i == 0 && N > 1) ? -1 : (int)nx_rng_below(&R, V);
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.vocab = V}, NULL) == NX_OK);
            float *sd = up(be, s, 4 * n), *td = up(be, t, 4 * n), *dd = up(be, d, 4 * n);
            int32_t *tgd = up(be, tg, sizeof tg);
            double *ld = up(be, (double[2]){0, 0}, 2 * sizeof(double)), l[2] = {0, 0};
            for (int kind = -1; kind < 3; kind++) {
                float temp = kind == 0 ? 0.5f : kind == 1 ? 1.0f : 2.0f, w_ce = it % 4 == 3 ? 0.0f : 0.3f;
                bool grads = it != 2, teach = kind >= 0;
                nx_kd_kind k = teach ? (nx_kd_kind)kind : NX_KD_FORWARD_KL;
                nx_distill_loss(REF, &l[0], &l[1], k, temp, grads ? d : NULL, NX_F32, w_ce, 0.7f, s, NX_F32,
                                teach ? t : NULL, NX_F32, tg, N, V);
                nx_distill_loss(be, ld, ld + 1, k, temp, grads ? dd : NULL, NX_F32, w_ce, 0.7f, sd, NX_F32,
                                teach ? td : NULL, NX_F32, tgd, N, V);
                char what[32];
                snprintf(what, sizeof what, "fused, kind %d", kind);
                expect_losses(be, ld, l, 1 + teach, what);
                if (grads) EXPECT(rel_err(be, dd, d, n), 1e-5, "fused loss gradient");
            }
            nx_backend_free(be, sd), nx_backend_free(be, td), nx_backend_free(be, dd), nx_backend_free(be, tgd);
            nx_backend_free(be, ld);
            free(s), free(t), free(d);
        }
    }
}

/* Rows as long as a real vocabulary (V about 32000, a multiple of 4 and
 * not: the 16-byte path and the scalar one), and a batch whose rows are
 * all left out (no row counts: losses 0, gradient 0): every kind, fused
 * (the gradient written) and separate (added), against the reference. */
TEST(losses_long_rows_and_no_counted_row) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, cross_entropy);
        SKIP_IF_MISSING(be, kd_loss);
        for (int it = 0; it < 3; it++) {
            int N = 3, V = it == 0 ? 32004 : it == 1 ? 32001 : 515;
            long n = (long)N * V;
            float *s = rnd(n, 3), *t = rnd(n, 3), *d0 = rnd(n, 1), *d = malloc(4 * n);
            int32_t tg[3] = {it == 2 ? -1 : 5, -1, it == 2 ? -1 : V - 1};
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.vocab = V}, NULL) == NX_OK);
            float *sd = up(be, s, 4 * n), *td = up(be, t, 4 * n), *dd = up(be, d0, 4 * n);
            int32_t *tgd = up(be, tg, sizeof tg);
            double *ld = up(be, (double[2]){0, 0}, 2 * sizeof(double)), l[2] = {0, 0};
            for (int kind = -1; kind < 3; kind++) {
                bool teach = kind >= 0;
                nx_kd_kind k = teach ? (nx_kd_kind)kind : NX_KD_FORWARD_KL;
                nx_distill_loss(REF, &l[0], &l[1], k, 2.0f, d, NX_F32, 0.3f, 0.7f, s, NX_F32, teach ? t : NULL, NX_F32,
                                tg, N, V);
                nx_distill_loss(be, ld, ld + 1, k, 2.0f, dd, NX_F32, 0.3f, 0.7f, sd, NX_F32, teach ? td : NULL,
                                NX_F32, tgd, N, V);
                char what[48];
                snprintf(what, sizeof what, "V %d, fused, kind %d", V, kind);
                expect_losses(be, ld, l, 1 + teach, what);
                EXPECT(rel_err(be, dd, d, n), 1e-5, "fused loss gradient, long rows");
                memcpy(d, d0, 4 * n);
                nx_backend_upload(be, dd, d0, 4 * n);
                if (teach) {
                    nx_kd_loss(REF, &l[0], k, 2.0f, d, 0.7f, s, t, tg, N, V);
                    nx_kd_loss(be, ld, k, 2.0f, dd, 0.7f, sd, td, tgd, N, V);
                } else {
                    nx_cross_entropy(REF, &l[0], d, 0.7f, s, tg, N, V);
                    nx_cross_entropy(be, ld, dd, 0.7f, sd, tgd, N, V);
                }
                snprintf(what, sizeof what, "V %d, separate, kind %d", V, kind);
                expect_losses(be, ld, l, 1, what);
                EXPECT(rel_err(be, dd, d, n), 1e-5, "separate loss gradient, long rows");
            }
            nx_backend_free(be, sd), nx_backend_free(be, td), nx_backend_free(be, dd), nx_backend_free(be, tgd);
            nx_backend_free(be, ld);
            free(s), free(t), free(d0), free(d);
        }
    }
}

TEST(hidden_and_attention_transfer_kernels) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, sqdiff);
        long n = rint_in(1, 5000);
        float *y = rnd(n, 1), *t = rnd(n, 1), *dy = rnd(n, 1);
        float *yd = up(be, y, 4 * n), *td = up(be, t, 4 * n), *dyd = up(be, dy, 4 * n);
        double *sd = up(be, &(double){0}, sizeof(double)), sum;
        nx_sqdiff(REF, &sum, dy, true, y, t, n, 0.3f);
        nx_sqdiff(be, sd, dyd, true, yd, td, n, 0.3f);
        CHECK(fabs(scalar(be, sd) - sum) <= 1e-6 * sum); /* differences in float, summed in any order */
        EXPECT(rel_err(be, dyd, dy, n), 1e-6, "sqdiff add");
        nx_sqdiff(REF, &sum, y, false, y, t, n, 0.3f); /* in place */
        nx_sqdiff(be, sd, yd, false, yd, td, n, 0.3f);
        EXPECT(rel_err(be, yd, y, n), 1e-6, "sqdiff in place");
        if (!be->ops->attention_kl) {
            printf("skip attention_kl on %s\n", be->name);
        } else {
            int B = 2, T = 6;
            for (int hs = 2; hs <= 3; hs++) {
                int ht = hs == 2 ? 2 : 4;
                long ns = (long)B * hs * T * T, nt = (long)B * ht * T * T;
                float *ps = malloc(4 * ns), *pt = malloc(4 * nt), *dp = rnd(ns, 1);
                for (long i = 0; i < ns; i++) ps[i] = (float)nx_rng_uniform(&R);
                for (long i = 0; i < nt; i++) pt[i] = i % 7 ? (float)nx_rng_uniform(&R) : 0.0f;
                float *psd = up(be, ps, 4 * ns), *ptd = up(be, pt, 4 * nt), *dpd = up(be, dp, 4 * ns);
                nx_attention_kl(REF, &sum, dp, ps, pt, B, T, hs, ht, 0.25f);
                nx_attention_kl(be, sd, dpd, psd, ptd, B, T, hs, ht, 0.25f);
                CHECK(fabs(scalar(be, sd) - sum) <= 1e-6 * fabs(sum));
                EXPECT(rel_err(be, dpd, dp, ns), 1e-6, "attention_kl");
                nx_backend_free(be, psd), nx_backend_free(be, ptd), nx_backend_free(be, dpd);
                free(ps), free(pt), free(dp);
            }
        }
        nx_backend_free(be, yd), nx_backend_free(be, td), nx_backend_free(be, dyd), nx_backend_free(be, sd);
        free(y), free(t), free(dy);
    }
}

TEST(sumsq_and_clipped_adamw_with_guard) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, sumsq);
        SKIP_IF_MISSING(be, adamw);
        long n = rint_in(1, 20000);
        float *p = rnd(n, 1), *g = rnd(n, 1), *m = rnd(n, 0.1f), *v = malloc(4 * n);
        for (long i = 0; i < n; i++) v[i] = 0.01f * (float)nx_rng_uniform(&R);
        float *pd = up(be, p, 4 * n), *gd = up(be, g, 4 * n), *md = up(be, m, 4 * n), *vd = up(be, v, 4 * n);
        double guard[2] = {1.0, 0}, *gdev = up(be, guard, sizeof guard);
        nx_sumsq(REF, &guard[1], g, n);
        nx_sumsq(be, gdev + 1, gd, n);
        CHECK(fabs(scalar(be, gdev + 1) - guard[1]) <= 1e-9 * guard[1]); /* double sums of exact squares */
        nx_backend_upload(be, gdev, guard, sizeof guard);
        nx_adamw_args a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .bc1 = 1 - pow(0.9, 3), .bc2 = 1 - pow(0.95, 3), .clip = 1.0f};
        nx_adamw_update(REF, p, g, m, v, n, &a, guard, 2);
        uint16_t *p16 = malloc(2 * n), *want16 = malloc(2 * n);
        a.p16 = up(be, p16, 2 * n); /* and the bf16 copy of the updated p */
        nx_adamw_update(be, pd, gd, md, vd, n, &a, gdev, 2);
        EXPECT(rel_err(be, pd, p, n), 1e-6, "adamw p");
        EXPECT(rel_err(be, md, m, n), 1e-6, "adamw m");
        EXPECT(rel_err(be, vd, v, n), 1e-6, "adamw v");
        float *got = malloc(4 * n);
        nx_backend_download(be, got, pd, 4 * n);
        nx_backend_download(be, p16, a.p16, 2 * n);
        for (long i = 0; i < n; i++) want16[i] = nx_f32_to_bf16(got[i]);
        CHECKF(!memcmp(p16, want16, 2 * n), "adamw's bf16 copy is p rounded to nearest even (%s)", be->name);
        if (nx_backend_has_round_bf16(be)) { /* the same rounding on its own */
            nx_backend_zero(be, a.p16, 2 * n);
            nx_round_bf16(be, a.p16, pd, n);
            nx_backend_download(be, p16, a.p16, 2 * n);
            CHECKF(!memcmp(p16, want16, 2 * n), "nx_round_bf16 is rounding to nearest even (%s)", be->name);
        }
        nx_backend_free(be, a.p16), a.p16 = NULL;
        free(p16), free(want16), free(got);
        guard[0] = INFINITY; /* a non-finite loss: nothing moves */
        nx_backend_upload(be, gdev, guard, sizeof guard);
        nx_adamw_update(be, pd, gd, md, vd, n, &a, gdev, 2);
        EXPECT(rel_err(be, pd, p, n), 1e-6, "adamw skipped on a bad guard");
        nx_backend_free(be, pd), nx_backend_free(be, gd), nx_backend_free(be, md), nx_backend_free(be, vd);
        nx_backend_free(be, gdev);
        free(p), free(g), free(m), free(v);
    }
}

TEST(mask_zeroes_pruned_entries_only) {
    FOR_EACH_BACKEND {
        SKIP_IF_MISSING(be, mask);
        size_t n = (size_t)rint_in(1, 20000);
        float *p = rnd((long)n, 1);
        uint8_t *mk = malloc(20000); /* room for any n */
        for (size_t i = 0; i < n; i++) mk[i] = nx_rng_below(&R, 2) ? (uint8_t)(1 + nx_rng_below(&R, 255)) : 0;
        p[0] = NAN, mk[0] = 0; /* a select: a pruned NaN becomes 0, not NaN · 0 */
        float *pd = up(be, p, 4 * n);
        uint8_t *md = up(be, mk, n);
        nx_mask(REF, p, mk, (int64_t)n);
        nx_mask(be, pd, md, (int64_t)n);
        float *got = malloc(4 * n);
        nx_backend_download(be, got, pd, 4 * n);
        CHECKF(memcmp(got, p, 4 * n) == 0, "mask on %s differs from the reference", be->name);
        size_t zeros = 0, want = 0;
        for (size_t i = 0; i < n; i++) zeros += !mk[i] && got[i] == 0.0f && !signbit(got[i]), want += !mk[i];
        CHECKF(zeros == want, "mask on %s: %zu of %zu pruned entries are +0", be->name, zeros, want);
        nx_backend_free(be, pd), nx_backend_free(be, md);
        free(p), free(mk), free(got);
    }
}

/* x rounded to bf16 in place (round to nearest even, as the GPU narrows). */
static void round_bf16(float *x, long n) {
    uint16_t *h = malloc(2 * (n ? n : 1));
    nx_convert(h, NX_BF16, x, NX_F32, n);
    nx_convert(x, NX_F32, h, NX_BF16, n);
    free(h);
}

/* be: the CUDA backend set to bf16 precision (e its error), or the test
 * skips where there is none. */
#define CUDA_BF16_OR_SKIP(be, e)                                                        \
    setup();                                                                            \
    nx_err e;                                                                           \
    nx_backend *be = nx_backend_cuda(&e);                                               \
    if (!be) SKIP("%.200s", e.msg);                                                     \
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_BF16, &e) == NX_OK)

/* The CUDA backend's bf16-precision paths: linear and its backward on bf16
 * operands (bf16 weights as stored; f32 weights and activations narrowed
 * in chunks, made small by setup to cover the chunking), exact but for the
 * order of f32 sums against the reference on bf16-rounded inputs; flash attention (no maps; head sizes 32, 64, 128; causal,
 * GQA, windows, sequences that end inside a 64-row block) against the
 * reference on bf16-rounded q, k, v: the probabilities it rounds to bf16
 * before P·V bound the difference. */
TEST(cuda_bf16_linear_and_flash_attention) {
    CUDA_BF16_OR_SKIP(be, e);
    /* N, IC, OC: one chunk, rows in chunks, W in chunks (setup narrows 4096 values at a time) */
    int lin[][3] = {{1, 64, 5}, {3, 37, 9}, {70, 16, 3}, {9, 200, 130}, {600, 1024, 1030}, {520, 1100, 1024}};
    for (int it = 0; it < 6; it++) {
        const int N = lin[it][0], IC = lin[it][1], OC = lin[it][2];
        float *x = rnd((long)N * IC, 1), *w = rnd((long)OC * IC, 1), *want = malloc(4 * (size_t)N * (size_t)OC);
        float *dy = rnd((long)N * OC, 1), *dx = rnd((long)N * IC, 1), *dW = rnd((long)OC * IC, 1);
        uint16_t *wt = malloc(2 * (size_t)OC * (size_t)IC);
        nx_convert(wt, NX_BF16, w, NX_F32, (int64_t)OC * IC);
        NX_ASSERT(nx_backend_plan(be, &(nx_work){.weight_elems = (int64_t)OC * IC}, NULL) == NX_OK);
        nx_weight Wb = nx_weight_view(be, NX_BF16, OC, IC, up(be, wt, 2L * OC * IC));
        nx_weight Wf = nx_weight_view(be, NX_F32, OC, IC, up(be, w, 4L * OC * IC));
        float *xd = up(be, x, 4L * N * IC), *od = up(be, want, 4L * N * OC), *od2 = up(be, want, 4L * N * OC);
        float *dyd = up(be, dy, 4L * N * OC), *dxd = up(be, dx, 4L * N * IC), *dWd = up(be, dW, 4L * OC * IC);
        nx_linear(be, od, xd, &Wb, NULL, N);
        nx_linear(be, od2, xd, &Wf, NULL, N);
        nx_linear_backward(be, dxd, dWd, NULL, dyd, xd, &Wf, N);
        round_bf16(x, (long)N * IC), round_bf16(w, (long)OC * IC), round_bf16(dy, (long)N * OC);
        nx_weight Wr = nx_weight_view(REF, NX_F32, OC, IC, w);
        nx_linear(REF, want, x, &Wr, NULL, N);
        nx_linear_backward(REF, dx, dW, NULL, dy, x, &Wr, N);
        EXPECT(rel_err(be, od, want, (long)N * OC), 1e-6, "bf16 linear, bf16 weights");
        /* f32 weights: bf16 operands from 512 rows and 1024 × 1024, else cuBLAS's FAST_16BF (its own rounding) */
        double tol = N >= 512 && IC >= 1024 && OC >= 1024 ? 1e-6 : 1e-2;
        EXPECT(rel_err(be, od2, want, (long)N * OC), tol, "bf16 linear, f32 weights");
        EXPECT(rel_err(be, dxd, dx, (long)N * IC), tol, "bf16 linear_backward din");
        EXPECT(rel_err(be, dWd, dW, (long)OC * IC), tol, "bf16 linear_backward dW");
        nx_backend_free(be, Wb.data), nx_backend_free(be, Wf.data), nx_backend_free(be, xd), nx_backend_free(be, od);
        nx_backend_free(be, od2), nx_backend_free(be, dyd), nx_backend_free(be, dxd), nx_backend_free(be, dWd);
        free(x), free(w), free(want), free(wt), free(dy), free(dx), free(dW);
    }
    /* B, T, NH, KVH, HS, window */
    int att[][6] = {{1, 1, 1, 1, 64, 0},    {2, 5, 2, 1, 32, 0},     {1, 64, 4, 4, 64, 0},  {2, 65, 4, 2, 64, 0},
                    {1, 150, 8, 2, 128, 0}, {2, 130, 4, 1, 64, 20},  {1, 200, 2, 2, 32, 64}, {1, 300, 4, 2, 128, 100},
                    {3, 97, 6, 3, 32, 1},   {1, 257, 2, 1, 64, 300}};
    for (unsigned it = 0; it < sizeof att / sizeof att[0]; it++) {
        int B = att[it][0], T = att[it][1], NH = att[it][2], KVH = att[it][3], HS = att[it][4], W = att[it][5];
        int Q = NH * HS, KV = KVH * HS, ld = Q + 2 * KV + 2 * (int)(it % 2); /* fused q, k, v; a gap on odd cases */
        long N = (long)B * T;
        nx_span sp[3];
        for (int b = 0; b < B; b++) sp[b] = (nx_span){b, 0, T};
        float *x = rnd(N * ld, 1), *out = malloc(4 * N * Q);
        float *xd = up(be, x, 4 * N * ld), *outd = up(be, out, 4 * N * Q);
        round_bf16(x, N * ld);
        nx_kv kv = {x + Q, x + Q + KV, ld, (int64_t)T * ld}, kvd = {xd + Q, xd + Q + KV, ld, (int64_t)T * ld};
        nx_attention(REF, out, NULL, x, ld, kv, sp, B, NH, KVH, HS, W);
        nx_attention(be, outd, NULL, xd, ld, kvd, sp, B, NH, KVH, HS, W);
        char what[96];
        snprintf(what, sizeof what, "flash attention B %d T %d heads %d/%d size %d window %d", B, T, NH, KVH, HS, W);
        EXPECT(rel_err(be, outd, out, N * Q), 4e-3, what);
        nx_backend_free(be, xd), nx_backend_free(be, outd);
        free(x), free(out);
    }
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_FP32, &e) == NX_OK);
}

/* Downloads n bf16 values of dev, widened, against want. */
static double rel_err_bf16(nx_backend *be, const void *dev, const float *want, long n) {
    uint16_t *h = malloc(2 * (n ? n : 1));
    float *got = malloc(sizeof(float) * (n ? n : 1));
    nx_backend_download(be, h, dev, 2 * (size_t)n);
    nx_convert(got, NX_F32, h, NX_BF16, n);
    double e = nxt_rel_err(got, want, n);
    free(h), free(got);
    return e;
}

/* Training attention without the maps (CUDA, bf16): out, the rows'
 * log-sum-exp, and dq, dk, dv against the reference's maps path on
 * bf16-rounded q, k, v and dout. The probabilities and dS are rounded to
 * bf16 before their products, which bounds the difference. Each case runs
 * five times: q and k as given with out in f32; q and k before their
 * rotation (rope tables given: the reference rotates them with nx_rope
 * first, and rotates its dq, dk back) with out in bf16; and that with q, k
 * and v given in bf16, then with dout in bf16 too, then with dq, dk, dv
 * written in bf16 as well (the model's flash backward in bf16 precision).
 * Each case's lse, out and gradients are checked, its failures named by its
 * shape. */
TEST(cuda_flash_training_attention_and_backward) {
    CUDA_BF16_OR_SKIP(be, e);
    /* B, T, NH, KVH, HS, window */
    int att[][6] = {{1, 1, 1, 1, 64, 0}, {2, 5, 2, 1, 32, 0}, {1, 64, 4, 4, 64, 0}, {2, 65, 4, 2, 64, 0},
                    {1, 150, 8, 2, 64, 0}, {2, 130, 4, 1, 32, 20}, {1, 200, 2, 2, 64, 64}, {3, 97, 6, 3, 32, 1}};
    for (unsigned it = 0; it < 5 * sizeof att / sizeof att[0]; it++) {
        const int *a = att[it / 5];
        bool rope = it % 5 > 0, q16 = it % 5 >= 2, d16 = it % 5 >= 3, g16 = it % 5 == 4;
        int B = a[0], T = a[1], NH = a[2], KVH = a[3], HS = a[4], W = a[5];
        int Q = NH * HS, KV = KVH * HS, ld = Q + 2 * KV;
        long N = (long)B * T, np = (long)B * NH * T * T, nl = (long)B * NH * T;
        CHECKF(nx_attention_lse_fits(be, HS, B, T, NH), "case %u does not fit", it);
        nx_span sp[3];
        for (int b = 0; b < B; b++) sp[b] = (nx_span){b, 0, T};
        float *x = rnd(N * ld, 1), *dy = rnd(N * Q, 1), *out = malloc(4 * N * Q), *probs = malloc(4 * np);
        float *dx = calloc(N * ld, 4), *sc = malloc(4 * np), *lse = malloc(4 * nl), *xr = malloc(4 * N * ld);
        float *cs = malloc(4L * T * HS / 2), *sn = malloc(4L * T * HS / 2);
        int32_t *pos = malloc(4 * N);
        round_bf16(x, N * ld), round_bf16(dy, N * Q);
        nx_rope_tables(cs, sn, T, HS, 10000.0, NULL);
        for (long n = 0; n < N; n++) pos[n] = (int32_t)(n % T);
        /* the reference's q and k, rotated where the case rotates them and,
         * as the kernels' operands, rounded to bf16 after the rotation */
        memcpy(xr, x, 4 * N * ld);
        if (rope) nx_rope(REF, xr, ld, pos, cs, sn, (int)N, NH + KVH, HS, false), round_bf16(xr, N * ld);
        float *xd = up(be, x, 4 * N * ld), *dyd = up(be, dy, 4 * N * Q), *outd = up(be, out, 4 * N * Q);
        float *lsed = up(be, lse, 4 * nl), *dxd = up(be, dx, 4 * N * ld);
        float *csd = rope ? up(be, cs, 4L * T * HS / 2) : NULL, *snd = rope ? up(be, sn, 4L * T * HS / 2) : NULL;
        nx_dtype ot = rope ? NX_BF16 : NX_F32, qt = q16 ? NX_BF16 : NX_F32;
        uint16_t *x16 = malloc(2 * N * ld); /* x is rounded already: its bf16 copy is exact */
        nx_convert(x16, NX_BF16, x, NX_F32, N * ld);
        void *xq = q16 ? up(be, x16, 2 * N * ld) : (void *)xd; /* the q/k/v the GPU is given */
        uint16_t *dy16 = malloc(2 * N * Q); /* dy is rounded too */
        nx_convert(dy16, NX_BF16, dy, NX_F32, N * Q);
        void *dyq = d16 ? up(be, dy16, 2 * N * Q) : (void *)dyd, *dxq = g16 ? up(be, x16, 2 * N * ld) : (void *)dxd;
        nx_dtype dt = d16 ? NX_BF16 : NX_F32, gt = g16 ? NX_BF16 : NX_F32;
        size_t es = q16 ? 2 : 4;
        nx_kv kvq = {(float *)((char *)xq + es * Q), (float *)((char *)xq + es * (Q + KV)), ld, (int64_t)T * ld};
        nx_kv kv = {xr + Q, xr + Q + KV, ld, (int64_t)T * ld};
        nx_attention(REF, out, probs, xr, ld, kv, sp, B, NH, KVH, HS, W);
        nx_attention_backward(REF, dx, dx + Q, dx + Q + KV, sc, dy, probs, NULL, xr, xr + Q, xr + Q + KV, ld, B, T, NH,
                              KVH, HS, W);
        if (rope) nx_rope(REF, dx, ld, pos, cs, sn, (int)N, NH + KVH, HS, true);
        for (int b = 0; b < B; b++) /* the reference's log-sum-exp, in double */
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    const float *qi = xr + ((long)b * T + i) * ld + h * HS;
                    double mx = -1e300, sum = 0, sv[512];
                    int j0 = W > 0 && i - W + 1 > 0 ? i - W + 1 : 0;
                    for (int j = j0; j <= i; j++) {
                        const float *kj = xr + ((long)b * T + j) * ld + Q + (h / (NH / KVH)) * HS;
                        double d = 0;
                        for (int c = 0; c < HS; c++) d += (double)qi[c] * kj[c];
                        sv[j - j0] = d / sqrt((double)HS);
                        mx = sv[j - j0] > mx ? sv[j - j0] : mx;
                    }
                    for (int j = j0; j <= i; j++) sum += exp(sv[j - j0] - mx);
                    lse[((long)b * NH + h) * T + i] = (float)(mx + log(sum));
                }
        nx_attention_lse(be, outd, ot, lsed, xq, qt, ld, kvq, csd, snd, B, T, NH, KVH, HS, W);
        float *scd = up(be, lse, 4 * nl);
        size_t gs = g16 ? 2 : 4;
        nx_attention_lse_backward(be, dxq, (char *)dxq + gs * Q, (char *)dxq + gs * (Q + KV), gt, scd, dyq, dt, outd, ot,
                                  lsed, xq, kvq.k, kvq.v, qt, ld, csd, snd, B, T, NH, KVH, HS, W);
        char what[160], lw[190], bw[190];
        snprintf(what, sizeof what, "flash training B %d T %d heads %d/%d size %d window %d%s%s%s%s", B, T, NH, KVH,
                 HS, W, rope ? ", rotated, out in bf16" : "", q16 ? ", q/k/v in bf16" : "", d16 ? ", dout in bf16" : "",
                 g16 ? ", dq/dk/dv in bf16" : "");
        snprintf(lw, sizeof lw, "log-sum-exp of %s", what);
        snprintf(bw, sizeof bw, "dq, dk, dv of %s", what);
        if (rope) round_bf16(out, N * Q); /* the reference as the kernel stores it */
        EXPECT(rope ? rel_err_bf16(be, outd, out, N * Q) : rel_err(be, outd, out, N * Q), 4e-3, what);
        EXPECT(rel_err(be, lsed, lse, nl), 1e-3, lw);
        if (g16) round_bf16(dx, N * ld);
        EXPECT(g16 ? rel_err_bf16(be, dxq, dx, N * ld) : rel_err(be, dxd, dx, N * ld), 2e-2, bw);
        if (rope) { /* q and k are left as they were given */
            void *back = malloc(es * N * ld);
            nx_backend_download(be, back, xq, es * N * ld);
            CHECK(memcmp(back, q16 ? (void *)x16 : (void *)x, es * N * ld) == 0);
            free(back);
            nx_backend_free(be, csd), nx_backend_free(be, snd);
        }
        if (q16) nx_backend_free(be, xq);
        if (d16) nx_backend_free(be, dyq);
        if (g16) nx_backend_free(be, dxq);
        free(x16), free(dy16);
        nx_backend_free(be, xd), nx_backend_free(be, dyd), nx_backend_free(be, outd), nx_backend_free(be, lsed);
        nx_backend_free(be, dxd), nx_backend_free(be, scd);
        free(x), free(dy), free(out), free(probs), free(dx), free(sc), free(lse), free(xr), free(cs), free(sn), free(pos);
    }
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_FP32, &e) == NX_OK);
}

/* The products' inputs held in bf16 (CUDA, bf16 precision: the activation
 * type): RMSNorm and SwiGLU writing bf16 against the reference rounded to
 * bf16; linear and its backward reading bf16, every weight type, against
 * the reference on the rounded values (setup's small narrowing area: W and
 * dout in chunks). */
TEST(cuda_bf16_activations) {
    CUDA_BF16_OR_SKIP(be, e);
    CHECK(nx_backend_act_type(be) == NX_BF16);
    int shapes[][3] = {{1, 8, 3}, {7, 64, 36}, {33, 200, 130}, {600, 1024, 1030}, {300, 96, 2048}};
    for (unsigned it = 0; it < sizeof shapes / sizeof shapes[0]; it++) {
        const int N = shapes[it][0], IC = shapes[it][1], OC = shapes[it][2];
        long nx = (long)N * IC, nw = (long)OC * IC, ny = (long)N * OC;
        /* RMSNorm and SwiGLU (F = IC) into bf16 */
        float *x = rnd(nx, 1), *w = rnd(IC, 1), *gu = rnd(2 * nx, 2), *want = malloc(4 * nx), *r = malloc(4L * N);
        float *xd = up(be, x, 4 * nx), *wd = up(be, w, 4L * IC), *gud = up(be, gu, 8 * nx), *rd = up(be, r, 4L * N);
        void *o16 = up(be, want, 2 * nx);
        nx_rmsnorm(REF, want, r, x, w, N, IC, 1e-5f);
        round_bf16(want, nx);
        nx_rmsnorm_to(be, o16, NX_BF16, rd, xd, wd, N, IC, 1e-5f);
        EXPECT(rel_err_bf16(be, o16, want, nx), 4e-3, "rmsnorm into bf16");
        EXPECT(rel_err(be, rd, r, N), 1e-6, "rmsnorm's rstd");
        /* SwiGLU from bf16 gu into bf16 h, and its backward from bf16 gu */
        round_bf16(gu, 2 * nx);
        uint16_t *gu16 = malloc(4 * nx);
        nx_convert(gu16, NX_BF16, gu, NX_F32, 2 * nx);
        void *gu16d = up(be, gu16, 4 * nx);
        nx_swiglu(REF, want, gu, N, IC);
        round_bf16(want, nx);
        nx_swiglu_to(be, o16, gu16d, NX_BF16, N, IC);
        EXPECT(rel_err_bf16(be, o16, want, nx), 4e-3, "swiglu into bf16");
        float *dh = rnd(nx, 1), *dgu = malloc(8 * nx), *dhd = up(be, dh, 4 * nx);
        nx_swiglu_backward(REF, dgu, dh, gu, N, IC);
        nx_swiglu_backward_from(be, gud, dhd, NX_F32, gu16d, NX_BF16, N, IC); /* gud: its f32 gu no longer needed */
        round_bf16(dgu, 2 * nx);
        EXPECT(rel_err_bf16(be, gud, dgu, 2 * nx), 4e-3, "swiglu backward from and into bf16");
        /* dh in bf16 too (as the down projection's backward writes it), rounded */
        round_bf16(dh, nx);
        uint16_t *dh16 = malloc(2 * nx);
        nx_convert(dh16, NX_BF16, dh, NX_F32, nx);
        void *dh16d = up(be, dh16, 2 * nx);
        nx_swiglu_backward(REF, dgu, dh, gu, N, IC);
        nx_swiglu_backward_from(be, gud, dh16d, NX_BF16, gu16d, NX_BF16, N, IC);
        round_bf16(dgu, 2 * nx);
        EXPECT(rel_err_bf16(be, gud, dgu, 2 * nx), 4e-3, "swiglu backward from bf16 dh and gu");
        nx_backend_free(be, gu16d), nx_backend_free(be, dhd), nx_backend_free(be, dh16d);
        free(gu16), free(dh), free(dgu), free(dh16);
        /* linear and its backward from bf16 inputs */
        float *W = rnd(nw, 1), *dy = rnd(ny, 1), *y = malloc(4 * ny), *dx = rnd(nx, 1), *dW = rnd(nw, 1);
        float *dx0 = malloc(4 * nx), *dW0 = malloc(4 * nw), *b = rnd(OC, 1);
        memcpy(dx0, dx, 4 * nx), memcpy(dW0, dW, 4 * nw);
        round_bf16(x, nx), round_bf16(dy, ny);
        uint16_t *x16 = malloc(2 * nx);
        nx_convert(x16, NX_BF16, x, NX_F32, nx);
        void *x16d = up(be, x16, 2 * nx);
        float *dyd = up(be, dy, 4 * ny), *yd = up(be, y, 4 * ny), *bd = up(be, b, 4L * OC), *res = rnd(ny, 1);
        float *resd = up(be, res, 4 * ny);
        nx_dtype types[3] = {NX_F32, NX_BF16, NX_F16};
        for (int k = 0; k < 3; k++) {
            void *Wt = malloc(nx_row_bytes(types[k], nw));
            float *Wr = malloc(4 * nw);
            nx_convert(Wt, types[k], W, NX_F32, nw); /* the weights as that type holds them, and widened */
            nx_convert(Wr, NX_F32, Wt, types[k], nw);
            round_bf16(Wr, nw); /* as the products round them */
            NX_ASSERT(nx_backend_plan(be, &(nx_work){.weight_elems = nw}, NULL) == NX_OK);
            nx_weight Wd = nx_weight_view(be, types[k], OC, IC, up(be, Wt, nx_row_bytes(types[k], nw)));
            nx_weight Wref = nx_weight_view(REF, NX_F32, OC, IC, Wr);
            nx_linear(REF, y, x, &Wref, b, N);
            nx_linear_from(be, yd, x16d, NX_BF16, &Wd, bd, N);
            char what[64];
            snprintf(what, sizeof what, "linear from bf16, %s weights", nx_dtype_name(types[k]));
            EXPECT(rel_err(be, yd, y, ny), 1e-6, what);
            /* into bf16 (no bias): the f32 sums rounded */
            void *y16d = up(be, y, 2 * ny);
            nx_linear(REF, y, x, &Wref, NULL, N);
            round_bf16(y, ny);
            nx_linear_to(be, y16d, NX_BF16, x16d, NX_BF16, &Wd, N);
            snprintf(what, sizeof what, "linear from and into bf16, %s weights", nx_dtype_name(types[k]));
            EXPECT(rel_err_bf16(be, y16d, y, ny), 4e-3, what);
            nx_backend_free(be, y16d);
            /* the same plus a residual, no bias, from bf16 and from f32 inputs (which the products narrow) */
            nx_linear(REF, y, x, &Wref, NULL, N);
            nx_add(REF, y, res, ny);
            for (int from = 0; from < 2; from++) {
                nx_backend_zero(be, yd, 4 * ny);
                nx_linear_add(be, yd, resd, from ? x16d : (void *)xd, from ? NX_BF16 : NX_F32, &Wd, NULL, N);
                snprintf(what, sizeof what, "linear + residual from %s, %s weights", from ? "bf16" : "f32",
                         nx_dtype_name(types[k]));
                /* f32 inputs: bf16 operands for bf16 weights and large f32 ones, else FAST_16BF's rounding */
                bool exact = from || types[k] == NX_BF16 || (types[k] == NX_F32 && N >= 512 && IC >= 1024 && OC >= 1024);
                EXPECT(rel_err(be, yd, y, ny), exact ? 1e-6 : 1e-2, what);
            }
            if (types[k] == NX_F32) { /* the backward on rounded W: din overwritten, dW accumulated */
                float *dxd = up(be, dx0, 4 * nx), *dWd = up(be, dW0, 4 * nw);
                nx_weight Wb = nx_weight_view(be, NX_F32, OC, IC, up(be, Wr, 4 * nw));
                memset(dx, 0, 4 * nx), memcpy(dW, dW0, 4 * nw);
                nx_linear_backward(REF, dx, dW, NULL, dy, x, &Wref, N);
                nx_linear_backward_from(be, dxd, dWd, NULL, NX_GRAD_ADD, dyd, NX_F32, x16d, NX_BF16, &Wb, N);
                EXPECT(rel_err(be, dxd, dx, nx), 1e-6, "linear backward from bf16: din");
                EXPECT(rel_err(be, dWd, dW, nw), 1e-6, "linear backward from bf16: dW");
                /* NX_GRAD_WRITE: dW written over garbage (the product's beta 0), in each row chunk */
                float *dWz = calloc(nw, 4);
                nx_linear_backward(REF, NULL, dWz, NULL, dy, x, &Wref, N);
                be->fill(be, dWd, 0xff, 4 * nw);
                nx_linear_backward_from(be, dxd, dWd, NULL, NX_GRAD_WRITE, dyd, NX_F32, x16d, NX_BF16, &Wb, N);
                EXPECT(rel_err(be, dxd, dx, nx), 1e-6, "linear backward from bf16, dW written: din");
                EXPECT(rel_err(be, dWd, dWz, nw), 1e-6, "linear backward from bf16, dW written: dW");
                free(dWz);
                /* dout in bf16 too (dy is rounded), and dout alone in bf16 */
                uint16_t *dy16 = malloc(2 * ny);
                nx_convert(dy16, NX_BF16, dy, NX_F32, ny);
                void *dy16d = up(be, dy16, 2 * ny);
                for (int both = 1; both >= 0; both--) {
                    nx_backend_upload(be, dxd, dx0, 4 * nx), nx_backend_upload(be, dWd, dW0, 4 * nw);
                    nx_linear_backward_from(be, dxd, dWd, NULL, NX_GRAD_ADD, dy16d, NX_BF16, both ? x16d : (void *)xd,
                                            both ? NX_BF16 : NX_F32, &Wb, N);
                    EXPECT(rel_err(be, dxd, dx, nx), 1e-6, both ? "linear backward, bf16 in and dout: din"
                                                                : "linear backward, bf16 dout: din");
                    EXPECT(rel_err(be, dWd, dW, nw), 1e-6, both ? "linear backward, bf16 in and dout: dW"
                                                                : "linear backward, bf16 dout: dW");
                }
                /* din written in bf16 (nx_linear_backward_to: each value the whole sum's f32 rounded once;
                 * setup's small narrowing area: W in chunks of its columns), from bf16 in and dout and
                 * from f32 ones */
                void *dx16d = up(be, dx0, 2 * nx);
                float *dxr = malloc(4 * nx);
                memcpy(dxr, dx, 4 * nx);
                round_bf16(dxr, nx);
                for (int from16 = 1; from16 >= 0; from16--) {
                    nx_backend_upload(be, dWd, dW0, 4 * nw);
                    nx_linear_backward_to(be, dx16d, NX_BF16, dWd, NULL, NX_GRAD_ADD, from16 ? dy16d : (void *)dyd,
                                          from16 ? NX_BF16 : NX_F32, from16 ? x16d : (void *)xd,
                                          from16 ? NX_BF16 : NX_F32, &Wb, N);
                    EXPECT(rel_err_bf16(be, dx16d, dxr, nx), 4e-3, from16 ? "linear backward into bf16 from bf16: din"
                                                                        : "linear backward into bf16 from f32: din");
                    EXPECT(rel_err(be, dWd, dW, nw), 1e-6, from16 ? "linear backward into bf16 from bf16: dW"
                                                                 : "linear backward into bf16 from f32: dW");
                }
                /* the weights' bf16 copy (nx_weight.bf16) read instead of narrowing them (whole, where
                 * setup's small narrowing area takes them in chunks): the same products, din's f32 sums
                 * in another order (one product over all OC terms, not one a chunk; on the H200 2.1e-6
                 * at OC 2048) */
                void *w16d = up(be, Wr, 2 * nw);
                nx_round_bf16(be, w16d, Wb.data, nw);
                Wb.bf16 = w16d;
                nx_linear(REF, y, x, &Wref, NULL, N);
                nx_linear_from(be, yd, x16d, NX_BF16, &Wb, NULL, N);
                EXPECT(rel_err(be, yd, y, ny), 1e-6, "linear from bf16, the weights' bf16 copy");
                nx_backend_upload(be, dWd, dW0, 4 * nw);
                nx_linear_backward_from(be, dxd, dWd, NULL, NX_GRAD_ADD, dyd, NX_F32, x16d, NX_BF16, &Wb, N);
                EXPECT(rel_err(be, dxd, dx, nx), 1e-5, "linear backward, the weights' bf16 copy: din");
                EXPECT(rel_err(be, dWd, dW, nw), 1e-6, "linear backward, the weights' bf16 copy: dW");
                nx_backend_upload(be, dWd, dW0, 4 * nw);
                nx_linear_backward_to(be, dx16d, NX_BF16, dWd, NULL, NX_GRAD_ADD, dy16d, NX_BF16, x16d, NX_BF16, &Wb, N);
                EXPECT(rel_err_bf16(be, dx16d, dxr, nx), 4e-3, "linear backward into bf16, the weights' bf16 copy: din");
                EXPECT(rel_err(be, dWd, dW, nw), 1e-6, "linear backward into bf16, the weights' bf16 copy: dW");
                nx_backend_free(be, dy16d), nx_backend_free(be, dx16d);
                free(dy16), free(dxr);
                nx_backend_free(be, w16d);
                nx_backend_free(be, dxd), nx_backend_free(be, dWd), nx_backend_free(be, Wb.data);
            }
            nx_backend_free(be, Wd.data);
            free(Wt), free(Wr);
        }
        nx_backend_free(be, xd), nx_backend_free(be, wd), nx_backend_free(be, gud), nx_backend_free(be, rd);
        nx_backend_free(be, o16), nx_backend_free(be, x16d), nx_backend_free(be, dyd), nx_backend_free(be, yd);
        nx_backend_free(be, bd), nx_backend_free(be, resd);
        free(x), free(w), free(gu), free(want), free(r), free(W), free(dy), free(y), free(dx), free(dW), free(res);
        free(dx0), free(dW0), free(b), free(x16);
    }
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_FP32, &e) == NX_OK);
    CHECK(nx_backend_act_type(be) == NX_F32);
}

/* RMSNorm's backward writing a bf16 copy of the updated din too (the
 * residual gradient as the next products read it, CUDA, bf16 precision):
 * din and dw against the reference, as nx_rmsnorm_backward's, and the copy
 * din's rounding, bit for bit; the fused path (C a multiple of 4 up to
 * 1024) and the fallback. */
TEST(cuda_rmsnorm_backward_bf16_copy) {
    CUDA_BF16_OR_SKIP(be, e);
    int shapes[][2] = {{1, 8}, {5, 37}, {33, 512}, {129, 1024}, {70, 1030}, {300, 2048}};
    for (unsigned it = 0; it < sizeof shapes / sizeof shapes[0]; it++) {
        int N = shapes[it][0], C = shapes[it][1];
        long n = (long)N * C;
        float *x = rnd(n, 1), *w = rnd(C, 1), *dy = rnd(n, 1), *dx = rnd(n, 1), *dw = rnd(C, 1);
        float *rs = malloc(4L * N), *y = malloc(4 * n), *got = malloc(4 * n);
        uint16_t *want16 = malloc(2 * n), *got16 = malloc(2 * n);
        nx_rmsnorm(REF, y, rs, x, w, N, C, 1e-5f);
        float *xd = up(be, x, 4 * n), *wd = up(be, w, 4L * C), *dyd = up(be, dy, 4 * n), *dxd = up(be, dx, 4 * n);
        float *dwd = up(be, dw, 4L * C), *rsd = up(be, rs, 4L * N);
        void *d16 = up(be, want16, 2 * n);
        nx_rmsnorm_backward(REF, dx, dw, dy, x, w, rs, N, C);
        nx_rmsnorm_backward_to(be, dxd, d16, NX_BF16, dwd, dyd, xd, wd, rsd, N, C);
        char what[80];
        snprintf(what, sizeof what, "rmsnorm backward with a bf16 copy, N %d C %d", N, C);
        EXPECT(rel_err(be, dxd, dx, n), 1e-5, what);
        EXPECT(rel_err(be, dwd, dw, C), 1e-5, what);
        nx_backend_download(be, got, dxd, 4 * n);
        nx_convert(want16, NX_BF16, got, NX_F32, n);
        nx_backend_download(be, got16, d16, 2 * n);
        CHECKF(!memcmp(got16, want16, 2 * n), "%s: the copy is not din rounded to bf16", what);
        nx_backend_free(be, xd), nx_backend_free(be, wd), nx_backend_free(be, dyd), nx_backend_free(be, dxd);
        nx_backend_free(be, dwd), nx_backend_free(be, rsd), nx_backend_free(be, d16);
        free(x), free(w), free(dy), free(dx), free(dw), free(rs), free(y), free(got), free(want16), free(got16);
    }
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_FP32, &e) == NX_OK);
}

/* The fused loss writing its gradient in bf16 (the head's backward reads
 * it so), from a teacher's logits in f32 and in bf16, and from a student's
 * in f32 and in bf16: every kind, against the reference on the same
 * (rounded) logits, its gradient rounded. */
TEST(cuda_distill_loss_bf16) {
    CUDA_BF16_OR_SKIP(be, e);
    int N = 5, V = 4 * 333;
    long n = (long)N * V;
    float *s = rnd(n, 3), *t = rnd(n, 3), *d = malloc(4 * n), *sr = malloc(4 * n);
    int32_t tg[5] = {3, -1, 0, V - 1, 77};
    round_bf16(t, n);
    memcpy(sr, s, 4 * n);
    round_bf16(sr, n);
    uint16_t *t16 = malloc(2 * n), *s16 = malloc(2 * n);
    nx_convert(t16, NX_BF16, t, NX_F32, n);
    nx_convert(s16, NX_BF16, sr, NX_F32, n);
    NX_ASSERT(nx_backend_plan(be, &(nx_work){.vocab = V}, NULL) == NX_OK);
    float *sd = up(be, s, 4 * n), *td = up(be, t, 4 * n);
    void *d16 = up(be, d, 2 * n), *t16d = up(be, t16, 2 * n), *s16d = up(be, s16, 2 * n);
    int32_t *tgd = up(be, tg, sizeof tg);
    double *ld = up(be, (double[2]){0, 0}, 2 * sizeof(double)), l[2];
    for (int kind = 0; kind < 3; kind++)
        for (int tb = 0; tb < 2; tb++)
            for (int sb = 0; sb < 2; sb++) {
                nx_distill_loss(REF, &l[0], &l[1], (nx_kd_kind)kind, 2.0f, d, NX_F32, 0.3f, 0.7f, sb ? sr : s, NX_F32, t,
                                NX_F32, tg, N, V);
                nx_distill_loss(be, ld, ld + 1, (nx_kd_kind)kind, 2.0f, d16, NX_BF16, 0.3f, 0.7f, sb ? s16d : (void *)sd,
                                sb ? NX_BF16 : NX_F32, tb ? t16d : (void *)td, tb ? NX_BF16 : NX_F32, tgd, N, V);
                char what[96];
                snprintf(what, sizeof what, "kind %d, student in %s, teacher in %s", kind, sb ? "bf16" : "f32",
                         tb ? "bf16" : "f32");
                expect_losses(be, ld, l, 2, what);
                round_bf16(d, n);
                snprintf(what, sizeof what, "fused loss gradient into bf16, student in %s, teacher in %s",
                         sb ? "bf16" : "f32", tb ? "bf16" : "f32");
                EXPECT(rel_err_bf16(be, d16, d, n), 4e-3, what);
            }
    nx_backend_free(be, sd), nx_backend_free(be, td), nx_backend_free(be, d16), nx_backend_free(be, t16d);
    nx_backend_free(be, s16d), nx_backend_free(be, tgd), nx_backend_free(be, ld);
    free(s), free(t), free(d), free(t16), free(s16), free(sr);
    NX_ASSERT(nx_backend_set_precision(be, NX_PREC_FP32, &e) == NX_OK);
}

TEST(cuda_backend_present) {
    setup();
    nx_err e;
    if (!nx_backend_cuda(&e)) SKIP("%.200s", e.msg); /* the ops above then ran on the CPU only */
    CHECK(NUNDER == 2);
}

/* The CUDA backend counts its allocations (the memory plan's peak): an
 * allocation adds its bytes, a free takes them back, the peak stays, and
 * the device's use covers at least what was allocated. */
TEST(cuda_backend_counts_its_memory) {
    nx_err e;
    nx_backend *be = nx_backend_cuda(&e);
    if (!be) SKIP("%.200s", e.msg);
    nx_mem_info a, b, c;
    nx_backend_mem_info(be, &a);
    void *p = nx_backend_alloc(be, 48u << 20, "test", &e);
    NX_ASSERT(p);
    nx_backend_mem_info(be, &b);
    nx_backend_free(be, p);
    nx_backend_mem_info(be, &c);
    CHECK(a.has_device && a.device_total > 0 && a.device_free <= a.device_total);
    CHECK(b.allocated == a.allocated + (48u << 20) && b.peak >= b.allocated);
    CHECK(c.allocated == a.allocated && c.peak == b.peak);
    CHECK(b.device_used_peak >= b.allocated && c.device_used_peak >= b.device_used_peak);
    printf("  CUDA: %.0f MiB allocated by nexus, %.0f MiB used on the device (context, cuBLAS: %.0f MiB)\n",
           c.allocated / 1048576, (c.device_total - c.device_free) / 1048576,
           (c.device_total - c.device_free - c.allocated) / 1048576);
}

static void setup(void) {
    static bool done;
    if (done) return;
    done = true;
    nx_rng_seed(&R, 77);
    REF = nx_backend_ref();
    UNDER[NUNDER++] = nx_backend_cpu();
    nx_err e;
    setenv("NEXUS_CUDA_NARROW_ELEMS", "65536", 0); /* bf16 products in many chunks */
    nx_backend *cuda = nx_backend_cuda(&e);
    if (cuda) UNDER[NUNDER++] = cuda;
    for (int i = 0; i < NUNDER; i++)
        NX_ASSERT(nx_backend_plan(UNDER[i], &(nx_work){.rows = 4096, .vocab = 4096, .ctx = 256, .weight_elems = 1 << 14},
                                  NULL) == NX_OK);
}
