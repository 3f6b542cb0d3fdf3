/* bench_core.c — the tensor core's benchmark (not a test): GEMM wrapper vs
 * raw cblas_sgemm at the same sizes in the same run, and forward /
 * forward+backward+AdamW tokens/s of the PROTOCOLS.md S7M student at
 * 16 × 256 (a cross-entropy training step), with the share of the measured
 * sgemm peak that the step's matrix FLOPs reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/cpu.h"
#include "nexus/model.h"
#include "nexus/train.h"

#ifdef __AVX2__
#include <immintrin.h>
/* One core's AVX2 FMA throughput: ten independent chains in registers. */
static double fma_peak(void) {
    __m256 a0 = _mm256_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    long iters = 50000000;
    double t0 = nx_now();
    for (long k = 0; k < iters; k++) {
#define F(x) x = _mm256_fmadd_ps(x, b, c);
        F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9)
#undef F
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                         "+x"(a7), "+x"(a8), "+x"(a9));
    }
    return iters * 10.0 * 16 / (nx_now() - t0) / 1e9;
}
#else
static double fma_peak(void) { return 0; }
#endif

typedef void (*gemm_fn)(bool, bool, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static double time_gemm(gemm_fn f, int M, int N, int K, bool tb, const float *A, const float *B, float *C) {
    f(false, tb, M, N, K, 1, A, K, B, tb ? K : N, 0, C, N); /* warm-up */
    int reps = 0;
    double t0 = nx_now(), el;
    do {
        f(false, tb, M, N, K, 1, A, K, B, tb ? K : N, 0, C, N);
        reps++;
    } while ((el = nx_now() - t0) < 0.4);
    return 2.0 * M * N * K * reps / el / 1e9;
}

static double step_matmul_flops(const nx_model_config *c, int B, int T, bool backward) {
    double N = (double)B * T, Q = c->NH * c->HS, KV = c->KVH * c->HS;
    double lin = c->L * (N * c->C * (Q + 2 * KV) + N * Q * c->C + 3 * N * c->C * c->F) + N * c->C * c->V;
    double att = c->L * (double)B * c->NH * 2.0 * T * T * c->HS; /* QKᵀ and PV, full squares */
    return backward ? 2 * lin * 3 + att * 3 : 2 * lin + att;
}

int main(void) {
    nx_set_threads(0);
    printf("one core's AVX2 FMA peak: %.1f GFLOP/s\n", fma_peak());
    printf("threads: %d\n\n", nx_threads());
    printf("GEMM (row-major, C = A·Bᵀ as nn.Linear does)  GFLOP/s\n");
    printf("%-22s %10s %10s %7s\n", "M×N×K", "nx_gemm", "cblas", "ratio");
    int sizes[][3] = {{4096, 704, 256}, {4096, 256, 704}, {4096, 8192, 256}, {256, 256, 64},
                      {1024, 1024, 1024}, {2048, 2048, 2048}};
    double peak = 0;
    float *A = malloc(sizeof(float) * 4096 * 8192), *Bm = malloc(sizeof(float) * 8192 * 2048),
          *Cm = malloc(sizeof(float) * 4096 * 8192);
    for (long i = 0; i < 4096L * 8192; i++) A[i] = (float)(i % 7) * 0.1f, Cm[i] = 0;
    for (long i = 0; i < 8192L * 2048; i++) Bm[i] = (float)(i % 5) * 0.1f;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int M = sizes[i][0], N = sizes[i][1], K = sizes[i][2];
        double a = time_gemm(nx_gemm, M, N, K, true, A, Bm, Cm);
        double b = time_gemm(nx_gemm_cblas_raw, M, N, K, true, A, Bm, Cm);
        if (b > peak) peak = b;
        char label[40];
        snprintf(label, sizeof label, "%d×%d×%d", M, N, K);
        printf("%-22s %10.1f %10.1f %7.3f\n", label, a, b, a / b);
    }
    free(A), free(Bm), free(Cm);
    printf("measured sgemm peak: %.1f GFLOP/s\n\n", peak);

    /* S7M of PROTOCOLS.md: Llama, V 8192, C 256, F 704, L 4, NH 4, KVH 2 */
    nx_model_config c = {.arch = NX_ARCH_LLAMA, .V = 8192, .C = 256, .L = 4, .NH = 4, .KVH = 2,
                         .HS = 64, .F = 704, .max_pos = 1024, .eps = 1e-5f, .rope_theta = 10000,
                         .bos_id = -1, .eos_id = -1, .dtype = NX_F32};
    int B = 16, T = 256, N = B * T;
    nx_model m;
    nx_acts a;
    nx_err err;
    nx_rng r;
    nx_rng_seed(&r, 1);
    if (nx_model_init(&m, &c, &err) || nx_acts_init(&a, &m, B, T, NX_ACTS_INFER, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    nx_model_init_random(&m, 0.02f, &r);
    printf("S7M student: %.2f M parameters, batch %d × %d\n", nx_model_count(&c) / 1e6, B, T);
    int32_t *ids = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)nx_rng_below(&r, c.V);
    for (int i = 0; i < N; i++) tg[i] = (i % T == T - 1) ? -1 : ids[i + 1];

    int reps = 5;
    nx_model_forward(&m, &a, ids, B, T, true);
    double t0 = nx_now();
    for (int i = 0; i < reps; i++) nx_model_forward(&m, &a, ids, B, T, true);
    double fwd = (nx_now() - t0) / reps;
    nx_acts_free(&a);

    /* the CE training step: the trainer without a teacher */
    nx_train_opts o = {.B = B, .T = T, .accum = 1, .lr = 1e-3f, .min_lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f,
                       .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f, .sched = NX_SCHED_CONSTANT, .total_steps = 100};
    nx_trainer tr;
    if (nx_trainer_init(&tr, &m, NULL, &o, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    nx_step_stats st;
    for (int i = 0; i <= reps; i++) {
        if (i == 1) t0 = nx_now(); /* first step is warm-up */
        nx_trainer_step(&tr, ids, tg, &st);
    }
    double step = (nx_now() - t0) / reps;
    double ff = step_matmul_flops(&c, B, T, false), fb = step_matmul_flops(&c, B, T, true);
    printf("%-34s %10.0f tokens/s  (%.1f GFLOP/s matmul, %.0f%% of sgemm peak)\n", "forward", N / fwd,
           ff / fwd / 1e9, 100 * ff / fwd / 1e9 / peak);
    printf("%-34s %10.0f tokens/s  (%.1f GFLOP/s matmul, %.0f%% of sgemm peak)  loss %.3f\n",
           "forward+backward+AdamW (CE step)", N / step, fb / step / 1e9, 100 * fb / step / 1e9 / peak, st.loss);
    nx_trainer_free(&tr);
    free(ids), free(tg);
    nx_model_free(&m);
    return 0;
}
