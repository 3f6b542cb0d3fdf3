/* bench.c — the speed measurements of inference (see bench.h): the
 * generation loop (generate.h) on synthetic ids, one warm-up, then reps
 * measured runs, reported as min / median / max (peak memory is the CLI's). */
#include "nexus/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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

/* Runs every active slot of g to its end; with lat, the time of each step
 * after the first into lat (ms). Returns when it started; *t_first is when
 * the first token came, *tokens counts the tokens after it. */
static double run_to_end(nx_gen *g, double *lat, double *t_first, int64_t *tokens) {
    nx_gen_event ev[g->S];
    double t = nx_now(), prev = t;
    *t_first = 0;
    while (nx_gen_busy(g)) {
        int n = nx_gen_step(g, ev);
        double now = nx_now();
        if (n > 0 && *t_first == 0) {
            *t_first = now;
        } else if (n > 0) {
            *tokens += n;
            if (lat) *lat++ = (now - prev) * 1e3;
        }
        prev = now;
    }
    for (int s = 0; s < g->S; s++) nx_gen_release(g, s);
    return t;
}

int nx_bench_speed_run(const nx_model *m, const nx_bench_opts *o, nx_bench_speed *r, nx_err *err) {
    memset(r, 0, sizeof *r);
    const nx_model_config *c = &m->cfg;
    if (o->prompt_tokens < 1 || o->decode_tokens < 1 || o->batch < 1 || o->reps < 1)
        return nx_fail(err, "benchmark sizes must be positive: prompt %d, decode %d, batch %d, reps %d",
                       o->prompt_tokens, o->decode_tokens, o->batch, o->reps);
    int P = o->prompt_tokens, D = o->decode_tokens, T = P + D + 1;
    if (T - 1 > c->max_pos)
        return nx_fail(err, "prompt (%d) + decoded tokens (%d) exceed the model's context of %d tokens "
                            "(max_position_embeddings): use a shorter --prompt-tokens",
                       P, D, c->max_pos);
    if (T > c->max_pos) T = c->max_pos;
    /* greedy, no text: the engine's own speed; prompts first, then decode
     * steps of every slot together (as the measurements define them) */
    nx_gen g;
    if (nx_gen_init(&g, m, o->batch, T, P, NULL, NULL, err)) return NX_ERR;
    g.prefill_first = true;
    int R = o->reps;
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * P);
    double *ttft = nx_xmalloc(sizeof(double) * R), *pre = nx_xmalloc(sizeof(double) * R);
    double *dec = nx_xmalloc(sizeof(double) * R), *decb = nx_xmalloc(sizeof(double) * R);
    double *lat = nx_xmalloc(sizeof(double) * R * D);
    nx_rng rng;
    nx_rng_seed(&rng, o->seed);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)nx_rng_below(&rng, c->V);
    nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = D + 1, .eos_id = -1};
    int rc = NX_ERR;
    for (int rep = -1; rep < R; rep++) { /* rep −1 warms caches and thread pools up */
        nx_progress_report(&o->progress, "speed runs", rep + 1, R + 1);
        /* batch 1: prompt, first token, then D greedy tokens, each timed */
        double t_first;
        if (nx_gen_start(&g, 0, ids, P, &gp, err)) goto done;
        int64_t n1 = 0, nb = 0;
        double t0 = run_to_end(&g, rep >= 0 ? lat + (size_t)rep * D : NULL, &t_first, &n1), t1 = nx_now();
        /* batch B: every slot holds the prompt, then B tokens per step */
        for (int b = 0; b < o->batch; b++)
            if (nx_gen_start(&g, b, ids, P, &gp, err)) goto done;
        nx_gen_event ev[o->batch];
        for (int got = 0; got < o->batch;) got += nx_gen_step(&g, ev); /* prompts and first tokens */
        double t4 = nx_now();
        while (nx_gen_busy(&g)) nb += nx_gen_step(&g, ev);
        double t5 = nx_now();
        for (int b = 0; b < o->batch; b++) nx_gen_release(&g, b);
        if (rep < 0) continue;
        r->decoded += n1, r->decoded_batch += nb;
        ttft[rep] = (t_first - t0) * 1e3;
        pre[rep] = P / (t_first - t0);
        dec[rep] = D / (t1 - t_first);
        decb[rep] = (double)D * o->batch / (t5 - t4);
    }
    nx_progress_report(&o->progress, "speed runs", R + 1, R + 1);
    r->ttft_ms = stat_of(ttft, R);
    r->prefill_tps = stat_of(pre, R);
    r->decode_tps = stat_of(dec, R);
    r->decode_batch_tps = stat_of(decb, R);
    qsort(lat, (size_t)R * D, sizeof *lat, cmp_double);
    r->latency_p50_ms = percentile(lat, R * D, 50);
    r->latency_p95_ms = percentile(lat, R * D, 95);
    r->latency_p99_ms = percentile(lat, R * D, 99);
    rc = NX_OK;
done:
    free(ids), free(ttft), free(pre), free(dec), free(decb), free(lat);
    nx_gen_free(&g);
    return rc;
}
