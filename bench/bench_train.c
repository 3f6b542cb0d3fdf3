/* bench_train.c — the P1 step of ../shared/PROTOCOLS.md (teacher-19m fp32
 * forward without gradients + S7M student forward/backward + AdamW, batch
 * 16 × 256) and the CE-only S7M step, in nexus and then, in the same run,
 * in PyTorch (bench/torch_p1.py on Debian's python3-torch, 2 threads, as
 * installed and with the expert allocator/thread settings). Prints tokens/s,
 * the share of the sgemm peak measured here, and the ratios. Skips with a
 * message when ../shared or python3-torch is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/cpu.h"
#include "nexus/hf.h"
#include "nexus/train.h"

#define TEACHER "../shared/models/teacher-19m"

static double sgemm_peak(void) {
    int n = 2048;
    float *a = nx_aligned_alloc(4L * n * n), *b = nx_aligned_alloc(4L * n * n), *c = nx_aligned_alloc(4L * n * n);
    for (long i = 0; i < (long)n * n; i++) a[i] = 1e-3f * (i % 100), b[i] = 1e-3f * (i % 77);
    nx_gemm_cblas_raw(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = nx_now();
        nx_gemm_cblas_raw(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (nx_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

static double matmul_flops(const nx_model_config *c, double N, bool backward) {
    double Q = c->NH * c->HS, KV = c->KVH * c->HS, T = 256;
    double lin = c->L * (N * c->C * (Q + 2 * KV) + N * Q * c->C + 3 * N * c->C * c->F) + N * c->C * c->V;
    double att = c->L * (N / T) * c->NH * 2.0 * T * T * c->HS;
    return backward ? 3 * (2 * lin + att) : 2 * lin + att;
}

static double run(nx_model *s, const nx_model *t, int steps) {
    int B = 16, T = 256, N = B * T;
    nx_train_opts o = {.B = B, .T = T, .accum = 1, .alpha = 0.5f, .temp = 2.0f, .kd = NX_KD_FORWARD_KL,
                       .lr = 1e-3f, .min_lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                       .weight_decay = 0.1f, .clip = 1.0f, .sched = NX_SCHED_COSINE, .warmup = 15,
                       .total_steps = 150};
    nx_trainer tr;
    nx_err e;
    if (nx_trainer_init(&tr, s, t, &o, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        exit(1);
    }
    nx_rng r;
    nx_rng_seed(&r, 1);
    int32_t *in = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) in[i] = (int32_t)nx_rng_below(&r, 8192), tg[i] = (int32_t)nx_rng_below(&r, 8192);
    nx_step_stats st;
    nx_trainer_step(&tr, in, tg, &st); /* warm-up */
    double t0 = nx_now();
    for (int k = 0; k < steps; k++) nx_trainer_step(&tr, in, tg, &st);
    double tps = (double)N * steps / (nx_now() - t0);
    nx_trainer_free(&tr);
    free(in), free(tg);
    return tps;
}

static double torch_figure(const char *env, const char *key) {
    char cmd[512], buf[512];
    snprintf(cmd, sizeof cmd, "%s /usr/bin/python3 bench/torch_p1.py %s --steps 3 --threads 2 2>/dev/null", env, TEACHER);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    pclose(p);
    char *k = strstr(buf, key);
    return k ? atof(k + strlen(key) + 3) : 0;
}

int main(void) {
    nx_set_threads(2);
    nx_model t, s;
    nx_err e;
    if (nx_hf_load_model(TEACHER, &t, &e)) {
        printf("bench_train: skipped (%s)\n", e.msg);
        return 0;
    }
    nx_model_config sc = {.arch = NX_ARCH_LLAMA, .V = 8192, .C = 256, .L = 4, .NH = 4, .KVH = 2, .HS = 64,
                          .F = 704, .max_pos = 1024, .eps = 1e-5f, .rope_theta = 10000, .bos_id = -1,
                          .eos_id = -1, .dtype = NX_F32};
    nx_model_init(&s, &sc, &e);
    nx_rng r;
    nx_rng_seed(&r, 1);
    nx_model_init_random(&s, 0.02f, &r);
    double peak = sgemm_peak();
    printf("threads 2; sgemm peak (2048³, this run): %.1f GFLOP/s\n", peak);
    double kd = run(&s, &t, 4), ce = run(&s, NULL, 4);
    double fk = matmul_flops(&t.cfg, 4096, false) + matmul_flops(&sc, 4096, true), fc = matmul_flops(&sc, 4096, true);
    printf("nexus   KD step (teacher fwd + S7M fwd/bwd + AdamW, 16×256): %7.0f tokens/s  (%.0f%% of sgemm peak)\n",
           kd, 100 * fk / (4096 / kd) / 1e9 / peak);
    printf("nexus   CE step (S7M fwd/bwd + AdamW, 16×256):               %7.0f tokens/s  (%.0f%% of sgemm peak)\n",
           ce, 100 * fc / (4096 / ce) / 1e9 / peak);
    const char *expert = "OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000";
    double pk = torch_figure("", "kd_step_tokens_per_s"), pc = torch_figure("", "ce_step_tokens_per_s");
    double ek = torch_figure(expert, "kd_step_tokens_per_s"), ec = torch_figure(expert, "ce_step_tokens_per_s");
    if (pk <= 0) {
        printf("PyTorch: skipped (bench/torch_p1.py needs Debian's python3-torch at /usr/bin/python3)\n");
        return 0;
    }
    printf("PyTorch KD step: %7.0f tokens/s as installed, %7.0f expert  →  nexus %.2f× / %.2f×\n", pk, ek, kd / pk, kd / ek);
    printf("PyTorch CE step: %7.0f tokens/s as installed, %7.0f expert  →  nexus %.2f× / %.2f×\n", pc, ec, ce / pc, ce / ec);
    return 0;
}
