/* bench_infer.c — inference speed of teacher-19m (f32) on this machine,
 * against the llama.cpp and PyTorch figures of the same model measured on
 * the same machine type (2 vCPU Zen 3, 2 threads; see the issue / docs):
 *   llama.cpp: decode 372 tokens/s at batch 1 (tg128), prefill 3358
 *   tokens/s for a 256-token prompt (pp256); PyTorch: 18.6 / 52.6 tokens/s
 *   decode (as installed / tuned).
 * Prints decode tokens/s at batch 1 (128 tokens after a 1-token prompt, as
 * tg128), prefill tokens/s at 256, decode throughput at batch 8, and how
 * close batch-1 decode comes to the memory-bandwidth limit: weight bytes
 * read per token ÷ time per token, against memcpy bandwidth measured in the
 * same run (read + write bytes of a 256 MiB copy). Skips when ../shared is
 * absent. The load average is printed: other work on the machine depresses
 * these numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexus/core.h"
#include "nexus/hf.h"
#include "nexus/generate.h"

#define MODEL "../shared/models/teacher-19m"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double copy_bandwidth(void) {
    size_t n = 256u << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = nx_now();
        memcpy(b, a, n);
        double bw = 2.0 * n / (nx_now() - t0);
        best = bw > best ? bw : best;
        a[r] = b[n - 1 - r]; /* keep the copies observable */
    }
    free(a), free(b);
    return best;
}

/* Streaming read of 256 MiB with every thread (what batch-1 decode does to
 * the weights): bytes read per second, best of 5. */
static double read_bandwidth(void) {
    size_t n = 64u << 20;
    float *a = nx_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double best = 0, keep = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = nx_now();
        float s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++) s += a[i];
        double bw = (double)n * sizeof(float) / (nx_now() - t0);
        best = bw > best ? bw : best;
        keep += s;
    }
    if (keep < 0) printf("%g\n", keep); /* keep the sums observable */
    free(a);
    return best;
}

int main(void) {
    if (access(MODEL "/model.safetensors", R_OK) != 0) {
        printf("skipped: %s not found (needs ../shared)\n", MODEL);
        return 0;
    }
    nx_set_threads(getenv("NX_THREADS") ? atoi(getenv("NX_THREADS")) : 2);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0) load[0] = -1;
    nx_model m;
    nx_err err;
    if (nx_hf_load_model(MODEL, &m, &err)) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    const nx_model_config *c = &m.cfg;
    int P = 256, NDEC = 128, B = 8, REPS = 5;
    /* the engine itself, as llama-bench measures it: a 256-token prompt as
     * one chunk, and decode steps fed with given ids (no sampling) */
    nx_kv_cache kv;
    nx_acts s;
    if (nx_kv_cache_init(&kv, &m, B, 512, &err) || nx_acts_init_rows(&s, &m, P, B, 512, NX_ACTS_STREAM, &err)) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    int32_t *ids = malloc(sizeof(int32_t) * P);
    nx_rng r;
    nx_rng_seed(&r, 1);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)nx_rng_below(&r, c->V);
    int32_t next[8];
    nx_span sp[8];
    double pre[REPS], dec[REPS], decb[REPS];
    for (int rep = -1; rep < REPS; rep++) { /* rep −1: warm-up */
        double t0 = nx_now();
        sp[0] = (nx_span){0, 0, P};
        nx_model_run(&m, &s, &(nx_batch){P, ids, sp, 1, &kv, NX_OUT_LAST});
        double tp = nx_now() - t0;
        sp[0] = (nx_span){0, 0, 1};
        nx_model_run(&m, &s, &(nx_batch){1, ids, sp, 1, &kv, NX_OUT_LAST});
        t0 = nx_now();
        for (int k = 0; k < NDEC; k++) {
            next[0] = (int32_t)((ids[k] + 7 * k) % c->V);
            sp[0] = (nx_span){0, 1 + k, 1};
            nx_model_run(&m, &s, &(nx_batch){1, next, sp, 1, &kv, NX_OUT_LAST});
        }
        double td = nx_now() - t0;
        for (int b = 0; b < B; b++) sp[b] = (nx_span){b, 0, 1};
        nx_model_run(&m, &s, &(nx_batch){B, ids, sp, B, &kv, NX_OUT_LAST});
        t0 = nx_now();
        for (int k = 0; k < NDEC; k++) {
            for (int b = 0; b < B; b++) next[b] = (int32_t)((ids[b + k] + k) % c->V), sp[b] = (nx_span){b, 1 + k, 1};
            nx_model_run(&m, &s, &(nx_batch){B, next, sp, B, &kv, NX_OUT_LAST});
        }
        double tb = nx_now() - t0;
        if (rep < 0) continue;
        pre[rep] = P / tp, dec[rep] = NDEC / td, decb[rep] = (double)NDEC * B / tb;
    }
    qsort(pre, REPS, sizeof(double), cmp_d);
    qsort(dec, REPS, sizeof(double), cmp_d);
    qsort(decb, REPS, sizeof(double), cmp_d);
    double bw = copy_bandwidth(), rbw = read_bandwidth(), bytes = nx_gen_bytes_per_token(&m);
    double med_dec = dec[REPS / 2], med_pre = pre[REPS / 2];
    printf("teacher-19m f32, %d threads, load average %.2f %.2f %.2f (%d reps, median [min, max])\n",
           nx_threads(), load[0], load[1], load[2], REPS);
    printf("decode batch 1 (%d tokens):   %7.1f tokens/s [%.1f, %.1f]   vs llama.cpp 372: %.2fx   vs PyTorch 18.6/52.6: %.1fx/%.1fx\n",
           NDEC, med_dec, dec[0], dec[REPS - 1], med_dec / 372, med_dec / 18.6, med_dec / 52.6);
    printf("prefill %d tokens:           %7.1f tokens/s [%.1f, %.1f]   vs llama.cpp 3358: %.2fx\n", P,
           med_pre, pre[0], pre[REPS - 1], med_pre / 3358);
    printf("decode batch %d (%d steps):    %7.1f tokens/s [%.1f, %.1f]\n", B, NDEC, decb[REPS / 2],
           decb[0], decb[REPS - 1]);
    printf("bandwidth: %.1f MB of weights per token × %.1f tokens/s = %.2f GB/s; memcpy %.2f GB/s "
           "(read+write): %.0f%% of copy bandwidth\n",
           bytes / 1e6, med_dec, bytes * med_dec / 1e9, bw / 1e9, 100 * bytes * med_dec / bw);
    printf("           streaming read with %d threads %.2f GB/s: decode reads weights at %.0f%% of it\n",
           nx_threads(), rbw / 1e9, 100 * bytes * med_dec / rbw);
    free(ids);
    nx_acts_free(&s);
    nx_kv_cache_free(&kv);
    nx_model_free(&m);
    return 0;
}
