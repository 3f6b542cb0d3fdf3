/* test_quant.c — the quantized weight types and their kernels: the block
 * layouts byte for byte (GGUF's), round trips through the reference
 * conversions within each type's error bound, the Q4_K scale packing, and
 * every 8-bit kernel path this CPU can run (AVX-512 VNNI, AVX2, portable)
 * against the naive reference, for each type, activation mode and odd
 * shapes, decode (few rows) and prefill (many rows). */
#include <omp.h>
#include <unistd.h>

#include "nexus/blocks.h"
#include "nexus/cpu.h"
#include "nxtest.h"

static nx_rng R;
__attribute__((constructor)) static void seed(void) { nx_rng_seed(&R, 11); }

static float *rnd(long n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = scale * nx_rng_normal(&R);
    return x;
}

TEST(block_types_are_registered_with_gguf_sizes) {
    nx_dtype t;
    CHECK(nx_dtype_from_name("Q8_0", &t) == NX_OK && t == NX_Q8_0);
    CHECK(nx_dtype_from_name("Q4_0", &t) == NX_OK && t == NX_Q4_0);
    CHECK(nx_dtype_from_name("Q4_K", &t) == NX_OK && t == NX_Q4_K);
    CHECK(nx_type(NX_Q8_0)->block == 32 && nx_type(NX_Q8_0)->block_bytes == 34 && nx_type(NX_Q8_0)->weight);
    CHECK(nx_type(NX_Q4_0)->block == 32 && nx_type(NX_Q4_0)->block_bytes == 18 && nx_type(NX_Q4_0)->weight);
    CHECK(nx_type(NX_Q4_K)->block == 256 && nx_type(NX_Q4_K)->block_bytes == 144 && nx_type(NX_Q4_K)->weight);
    CHECK(nx_type(NX_IQ4_NL)->block == 32 && nx_type(NX_IQ4_NL)->block_bytes == 18 && nx_type(NX_IQ4_NL)->weight);
    CHECK(nx_row_bytes(NX_Q8_0, 384) == 12 * 34 && nx_row_bytes(NX_Q4_K, 1024) == 4 * 144);
}

/* Bytes written by hand from the GGUF layout, read by the reference. */
TEST(layouts_match_gguf_byte_for_byte) {
    unsigned char q8[34] = {0x00, 0x3c}; /* d = 1.0 (f16 0x3c00) */
    for (int i = 0; i < 32; i++) q8[2 + i] = (unsigned char)(int8_t)(i - 16);
    float y[256];
    nx_type(NX_Q8_0)->to_f32(y, q8, 32);
    for (int i = 0; i < 32; i++) CHECK(y[i] == (float)(i - 16));
    unsigned char q4[18] = {0x00, 0x40}; /* d = 2.0 */
    for (int j = 0; j < 16; j++) q4[2 + j] = (unsigned char)(j | (15 - j) << 4);
    nx_type(NX_Q4_0)->to_f32(y, q4, 32);
    for (int j = 0; j < 16; j++) CHECK(y[j] == 2.0f * (j - 8) && y[j + 16] == 2.0f * (7 - j));
    nx_type(NX_IQ4_NL)->to_f32(y, q4, 32); /* the same bytes index the levels */
    static const int lv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    for (int j = 0; j < 16; j++) CHECK(y[j] == 2.0f * lv[j] && y[j + 16] == 2.0f * lv[15 - j]);
    /* Q4_K: d = 1, dmin = 0.5, sub-block j scale j+1, min 2j; nibble = l % 16 */
    nx_block_q4_k k;
    memset(&k, 0, sizeof k);
    k.d = 0x3c00, k.dmin = 0x3800;
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) sc[j] = (uint8_t)(j + 1), m[j] = (uint8_t)(2 * j + 40 * (j == 7));
    nx_q4k_pack_scales(k.scales, sc, m);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) k.qs[32 * i + l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
    nx_type(NX_Q4_K)->to_f32(y, &k, 256);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            int q = j % 2 ? 15 - l % 16 : l % 16;
            CHECKF(y[32 * j + l] == (float)(sc[j] * q) - 0.5f * m[j], "q4_k sub-block %d element %d: %g", j, l,
                   y[32 * j + l]);
        }
    /* scales packing: every 6-bit value in every position round-trips */
    for (int v = 0; v < 64; v++)
        for (int j = 0; j < 8; j++) {
            uint8_t a[8] = {0}, b[8] = {0}, s12[12], x, z;
            a[j] = (uint8_t)v, b[7 - j] = (uint8_t)(63 - v);
            nx_q4k_pack_scales(s12, a, b);
            for (int i = 0; i < 8; i++) {
                nx_q4k_scale_min(i, s12, &x, &z);
                CHECK(x == a[i] && z == b[i]);
            }
        }
}

/* Reference quantization: the error of each element is within half a step
 * of its block (Q4_0: a whole step on the side opposite its extreme; Q4_K:
 * plus the 6-bit rounding of the sub-block scale). */
TEST(round_trip_error_within_a_step) {
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    for (int k = 0; k < 5; k++) {
        int n = 4096;
        float *x = rnd(n, 1), *y = malloc(4 * n);
        x[5] = 0, x[300] = 40; /* an outlier */
        void *q = malloc(nx_row_bytes(types[k], n));
        nx_type(types[k])->from_f32(q, x, n);
        nx_type(types[k])->to_f32(y, q, n);
        int B = nx_type(types[k])->block;
        double worst = 0, se = 0, sx = 0;
        for (int b = 0; b < n / B; b++) {
            float amax = 0;
            for (int i = 0; i < B; i++) amax = fmaxf(amax, fabsf(x[b * B + i]));
            float step = types[k] == NX_Q8_0 ? amax / 127 : types[k] == NX_Q4_0 ? amax / 8 : types[k] == NX_Q5_0 ? amax / 16
                       : types[k] == NX_IQ4_NL ? amax * 24 / 127 : 2 * amax / 15; /* IQ4_NL: its widest gap */
            for (int i = 0; i < B; i++) {
                double e = fabs(y[b * B + i] - x[b * B + i]) / (step > 0 ? step : 1);
                worst = e > worst ? e : worst;
                se += (y[b * B + i] - x[b * B + i]) * (y[b * B + i] - x[b * B + i]);
                sx += x[b * B + i] * x[b * B + i];
            }
        }
        /* Q4_0 maps its signed extreme to −8: the other side reaches 7 steps only */
        double bound = types[k] == NX_Q8_0 ? 0.51 : types[k] == NX_Q4_0 || types[k] == NX_Q5_0 || types[k] == NX_IQ4_NL ? 1.01 : 1.5;
        CHECKF(worst <= bound, "%s: worst error %.3f steps", nx_dtype_name(types[k]), worst);
        double rel = sqrt(se / sx), want = types[k] == NX_Q8_0 ? 0.01 : 0.12;
        printf("%s: relative rms error %.4f\n", nx_dtype_name(types[k]), rel);
        CHECKF(rel < want, "%s: relative rms error %.4f", nx_dtype_name(types[k]), rel);
        /* zeros quantize to zeros; nx_convert goes through the same rows */
        float zero[256] = {0}, back[256];
        nx_type(types[k])->from_f32(q, zero, 256);
        nx_type(types[k])->to_f32(back, q, 256);
        for (int i = 0; i < 256; i++) CHECK(back[i] == 0);
        free(x), free(y), free(q);
    }
}

/* Every path against the naive reference: shapes with odd row counts,
 * an odd number of blocks (the 512-bit kernels take blocks in pairs), few
 * rows (decode) and many (prefill tiles of four), each activation mode. */
TEST(every_kernel_path_matches_the_reference) {
    const char *paths[8];
    int np = nx_qkernel_paths(paths, 8);
    CHECK(np >= 1 && !strcmp(paths[np - 1], "scalar"));
    printf("int8 kernel paths on this CPU:");
    for (int p = 0; p < np; p++) printf(" %s", paths[p]);
    printf(" (in use: %s)\n", nx_qkernel_path());
    const char *initial = nx_qkernel_path();
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    int shapes[][3] = {{1, 1, 32}, {1, 7, 96}, {1, 13, 256}, {2, 5, 64}, {3, 9, 512}, {5, 37, 160},
                       {8, 4, 768}, {9, 6, 256}, {33, 11, 32 * 9}, {70, 19, 512}};
    for (int p = 0; p < np; p++) {
        CHECK(nx_qkernel_select(paths[p]) == NX_OK && !strcmp(nx_qkernel_path(), paths[p]));
        for (int k = 0; k < 5; k++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int N = shapes[s][0], OC = shapes[s][1], IC = shapes[s][2];
                if (IC % nx_type(types[k])->block) continue;
                for (int mode = 0; mode < 3; mode++) {
                    float *W = rnd((long)OC * IC, 0.1f), *X = rnd((long)N * IC, 1), *b = rnd(OC, 1);
                    float *Y = rnd((long)N * OC, 1), *Ref = malloc(sizeof(float) * N * OC);
                    memcpy(Ref, Y, sizeof(float) * N * OC);
                    void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
                    nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
                    nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
                    w.act = (nx_act_quant)mode, w.act_scale = mode == NX_ACT_STATIC ? 2.5f : 0;
                    bool acc = s % 2, bias = s % 3 == 0;
                    void *scratch = malloc(nx_qact_bytes(N, IC));
                    nx_qmatmul(Y, &w, X, bias ? b : NULL, N, acc, scratch);
                    nx_ref_qmatmul(Ref, &w, X, bias ? b : NULL, N, acc);
                    double e = nxt_rel_err(Y, Ref, (long)N * OC);
                    CHECKF(e < 2e-6, "%s %s mode %d %dx%dx%d: relative error %.3g", paths[p],
                           nx_dtype_name(types[k]), mode, N, OC, IC, e);
                    free(W), free(X), free(b), free(Y), free(Ref), free(Wq), free(scratch);
                }
            }
    }
    nx_qkernel_select(initial);
    CHECK(nx_qkernel_select("no-such-path") == NX_ERR);
}

/* Decode (one input row) over long rows, every path against the
 * reference: the 512-bit decode kernels gather the blocks' scales 16 at a
 * time, so rows of 17, 32 and 35 blocks cross those chunks (a separate
 * test, so that the shapes above keep their random numbers). */
TEST(decode_rows_of_many_blocks_match_the_reference) {
    const char *paths[8];
    int np = nx_qkernel_paths(paths, 8);
    const char *initial = nx_qkernel_path();
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    int shapes[][2] = {{5, 1024}, {6, 32 * 17}, {9, 32 * 35}};
    for (int p = 0; p < np; p++) {
        CHECK(nx_qkernel_select(paths[p]) == NX_OK);
        for (int k = 0; k < 5; k++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int OC = shapes[s][0], IC = shapes[s][1];
                if (IC % nx_type(types[k])->block) continue;
                float *W = rnd((long)OC * IC, 0.1f), *X = rnd(IC, 1), *Y = malloc(sizeof(float) * OC),
                      *Ref = malloc(sizeof(float) * OC);
                void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC)), *scratch = malloc(nx_qact_bytes(1, IC));
                nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
                nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
                nx_qmatmul(Y, &w, X, NULL, 1, false, scratch);
                nx_ref_qmatmul(Ref, &w, X, NULL, 1, false);
                double e = nxt_rel_err(Y, Ref, OC);
                CHECKF(e < 2e-6, "%s %s 1x%dx%d: relative error %.3g", paths[p], nx_dtype_name(types[k]), OC, IC, e);
                free(W), free(X), free(Y), free(Ref), free(Wq), free(scratch);
            }
    }
    nx_qkernel_select(initial);
}

/* Prefill with IQ4_NL and Q5_0 rows widened to Q8_0 (the default) and
 * through the types' own tiles: both against the reference, every path. */
TEST(widened_prefill_matches_the_reference) {
    const char *paths[8];
    int np = nx_qkernel_paths(paths, 8);
    const char *initial = nx_qkernel_path();
    nx_dtype types[2] = {NX_IQ4_NL, NX_Q5_0};
    int N = 19, OC = 11, IC = 32 * 13;
    for (int p = 0; p < np; p++)
        for (int on = 0; on < 2; on++) {
            CHECK(nx_qkernel_select(paths[p]) == NX_OK);
            nx_qprefill_widen(on);
            for (int k = 0; k < 2; k++) {
                float *W = rnd((long)OC * IC, 0.1f), *X = rnd((long)N * IC, 1), *Y = malloc(sizeof(float) * N * OC),
                      *Ref = malloc(sizeof(float) * N * OC);
                void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC)), *scratch = malloc(nx_qact_bytes(N, IC));
                nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
                nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
                nx_qmatmul(Y, &w, X, NULL, N, false, scratch);
                nx_ref_qmatmul(Ref, &w, X, NULL, N, false);
                double e = nxt_rel_err(Y, Ref, (long)N * OC);
                CHECKF(e < 2e-6, "%s widen %d %s: relative error %.3g", paths[p], on, nx_dtype_name(types[k]), e);
                free(W), free(X), free(Y), free(Ref), free(Wq), free(scratch);
            }
        }
    nx_qprefill_widen(1);
    nx_qkernel_select(initial);
}

/* Batch 1 on the decode pool and on OpenMP, 1 to 3 threads, matrices
 * large enough to be split (odd row counts leave a partial block of four
 * at the end of the last range): every weight type against the reference. */
TEST(decode_pool_and_openmp_match_the_reference) {
    nx_dtype types[6] = {NX_F32, NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    int OC = 203, IC = 512, threads0 = omp_get_max_threads();
    bool pool0 = nx_cpu_pool(-1);
    for (int on = 0; on < 2; on++)
        for (int t = 1; t <= 3; t++) {
            nx_cpu_pool(on);
            omp_set_num_threads(t);
            for (int k = 0; k < 6; k++) {
                float *W = rnd((long)OC * IC, 0.1f), *X = rnd(IC, 1), *Y = malloc(sizeof(float) * OC),
                      *Ref = malloc(sizeof(float) * OC);
                void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
                nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
                nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
                for (int rep = 0; rep < 3; rep++) { /* the pool's workers poll, then sleep, between calls */
                    nx_matvec(Y, &w, X, NULL, 1, false);
                    nx_ref_matvec(Ref, &w, X, NULL, 1, false);
                    double e = nxt_rel_err(Y, Ref, OC);
                    CHECKF(e < 2e-6, "pool %d, %d threads, %s: relative error %.3g", on, t, nx_dtype_name(types[k]), e);
                    if (rep == 1) usleep(2000);
                }
                free(W), free(X), free(Y), free(Ref), free(Wq);
            }
        }
    omp_set_num_threads(threads0);
    nx_cpu_pool(pool0);
}

/* Dispatch: with NEXUS_QKERNEL unset the best path this CPU runs is
 * chosen; set, it picks each available path by name (an unavailable or
 * unknown name falls back to the best). */
TEST(dispatch_picks_each_path) {
    const char *paths[8];
    int np = nx_qkernel_paths(paths, 8);
    unsetenv("NEXUS_QKERNEL");
    nx_qkernel_select(NULL);
    CHECK(!strcmp(nx_qkernel_path(), paths[0]));
    for (int p = 0; p < np; p++) {
        setenv("NEXUS_QKERNEL", paths[p], 1);
        nx_qkernel_select(NULL);
        CHECKF(!strcmp(nx_qkernel_path(), paths[p]), "NEXUS_QKERNEL=%s chose %s", paths[p], nx_qkernel_path());
    }
    setenv("NEXUS_QKERNEL", "no-such-path", 1);
    nx_qkernel_select(NULL);
    CHECK(!strcmp(nx_qkernel_path(), paths[0]));
    unsetenv("NEXUS_QKERNEL");
    nx_qkernel_select(NULL);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        CHECK(!strcmp(paths[0], "avx512vnni"));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) CHECK(np >= 2);
}

/* The 8-bit product stays close to the f32 product of the dequantized
 * weights (what the reference backend computes): the activations' own
 * rounding is the only difference. */
TEST(int8_activations_stay_close_to_f32) {
    int N = 3, OC = 64, IC = 512;
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    for (int k = 0; k < 5; k++) {
        float *W = rnd((long)OC * IC, 0.1f), *X = rnd((long)N * IC, 1);
        float *Y = malloc(4L * N * OC), *F = malloc(4L * N * OC), *Wf = malloc(4L * OC * IC);
        void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
        nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
        nx_convert(Wf, NX_F32, Wq, types[k], (int64_t)OC * IC);
        nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
        nx_weight wf = nx_weight_view(nx_backend_cpu(), NX_F32, OC, IC, Wf);
        nx_matvec(Y, &w, X, NULL, N, false);
        nx_ref_matvec(F, &wf, X, NULL, N, false);
        double e = nxt_rel_err(Y, F, (long)N * OC);
        CHECKF(e < 1e-2, "%s: 8-bit activations differ from f32 by %.3g", nx_dtype_name(types[k]), e);
        free(W), free(X), free(Y), free(F), free(Wf), free(Wq);
    }
}

