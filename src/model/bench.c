/* bench.c — the speed measurements of inference (see bench.h): the
 * inference engine (infer.h) on synthetic ids, one warm-up, then reps
 * measured runs, reported as min / median / max, plus peak memory. */
#include "nexus/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>


static int32_t argmax(const float *x, int V) {
    int32_t b = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[b]) b = v;
    return b;
}

nx_bench_opts nx_bench_defaults(void) {
    return (nx_bench_opts){.prompt_tokens = 256, .decode_tokens = 128, .batch = 8, .reps = 3, .seed = 1};
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static nx_bench_stat stat_of(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return (nx_bench_stat){v[0], med, v[n - 1]};
}

static double percentile(const double *sorted, int n, double p) { /* nearest rank */
    int k = (int)ceil(p / 100.0 * n) - 1;
    return sorted[k < 0 ? 0 : k >= n ? n - 1 : k];
}

int nx_bench_speed_run(const nx_model *m, const nx_bench_opts *o, nx_bench_speed *r, nx_err *err) {
    memset(r, 0, sizeof *r);
    const nx_model_config *c = &m->cfg;
    if (o->prompt_tokens < 1 || o->decode_tokens < 1 || o->batch < 1 || o->reps < 1)
        return nx_fail(err, "benchmark sizes must be positive: prompt %d, decode %d, batch %d, reps %d",
                       o->prompt_tokens, o->decode_tokens, o->batch, o->reps);
    int T = o->prompt_tokens + o->decode_tokens;
    if (T > c->max_pos)
        return nx_fail(err, "prompt (%d) + decoded tokens (%d) exceed the model's context of %d tokens "
                            "(max_position_embeddings): use a shorter --prompt-tokens",
                       o->prompt_tokens, o->decode_tokens, c->max_pos);
    nx_infer s;
    if (nx_infer_init(&s, m, o->batch, T, o->prompt_tokens, err)) return NX_ERR;
    int R = o->reps, D = o->decode_tokens;
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * o->prompt_tokens);
    int32_t *next = nx_xmalloc(sizeof(int32_t) * o->batch);
    double *ttft = nx_xmalloc(sizeof(double) * R), *pre = nx_xmalloc(sizeof(double) * R);
    double *dec = nx_xmalloc(sizeof(double) * R), *decb = nx_xmalloc(sizeof(double) * R);
    double *lat = nx_xmalloc(sizeof(double) * R * D);
    nx_rng rng;
    nx_rng_seed(&rng, o->seed);
    for (int i = 0; i < o->prompt_tokens; i++) ids[i] = (int32_t)nx_rng_below(&rng, c->V);
    for (int rep = -1; rep < R; rep++) { /* rep −1 warms caches and thread pools up */
        /* batch 1: prompt, then greedy decode, each token timed */
        nx_infer_reset(&s);
        double t0 = nx_now();
        nx_infer_prefill(&s, 0, ids, o->prompt_tokens);
        double t1 = nx_now();
        next[0] = argmax(s.logits, c->V);
        double t2 = nx_now(), tprev = t2;
        for (int k = 0; k < D; k++) {
            nx_infer_decode(&s, next, 1);
            next[0] = argmax(s.logits, c->V);
            double t = nx_now();
            if (rep >= 0) lat[rep * D + k] = (t - tprev) * 1e3;
            tprev = t;
        }
        double t3 = nx_now();
        /* batch B: every row holds the prompt, then B tokens per step */
        nx_infer_reset(&s);
        for (int b = 0; b < o->batch; b++) nx_infer_prefill(&s, b, ids, o->prompt_tokens);
        for (int b = 0; b < o->batch; b++) next[b] = argmax(s.logits + (size_t)b * c->V, c->V);
        double t4 = nx_now();
        for (int k = 0; k < D; k++) {
            nx_infer_decode(&s, next, o->batch);
            for (int b = 0; b < o->batch; b++) next[b] = argmax(s.logits + (size_t)b * c->V, c->V);
        }
        double t5 = nx_now();
        if (rep < 0) continue;
        ttft[rep] = (t2 - t0) * 1e3;
        pre[rep] = o->prompt_tokens / (t1 - t0);
        dec[rep] = D / (t3 - t2);
        decb[rep] = (double)D * o->batch / (t5 - t4);
    }
    r->ttft_ms = stat_of(ttft, R);
    r->prefill_tps = stat_of(pre, R);
    r->decode_tps = stat_of(dec, R);
    r->decode_batch_tps = stat_of(decb, R);
    qsort(lat, (size_t)R * D, sizeof *lat, cmp_double);
    r->latency_p50_ms = percentile(lat, R * D, 50);
    r->latency_p95_ms = percentile(lat, R * D, 95);
    r->latency_p99_ms = percentile(lat, R * D, 99);
    free(ids), free(next), free(ttft), free(pre), free(dec), free(decb), free(lat);
    nx_infer_free(&s);
    return NX_OK;
}

double nx_peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) return kb * 1024.0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024.0;
}
