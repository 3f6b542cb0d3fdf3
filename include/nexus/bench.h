/* bench.h — inference speed and memory of a model, measured the same way
 * by `nexus benchmark`, bench/ and anything else that reports speed.
 *
 * nx_bench_speed_run: time to first token for a prompt of N tokens
 * (prefill + choosing the first token), prefill tokens/s, greedy decode
 * tokens/s at batch 1 and at batch B, per-token latency percentiles at
 * batch 1; each over reps repetitions after one warm-up run, reported as
 * min / median / max. Quality (perplexity, agreement, KL) is eval.h. */
#ifndef NEXUS_BENCH_H
#define NEXUS_BENCH_H

#include "nexus/core.h"
#include "nexus/generate.h"

typedef struct nx_bench_opts {
    int prompt_tokens;  /* TTFT / prefill prompt length (default 256) */
    int decode_tokens;  /* greedy tokens decoded per run (default 128) */
    int batch;          /* the larger decode batch (default 8) */
    int reps;           /* measured repetitions after one warm-up (default 3) */
    uint64_t seed;      /* for the synthetic prompt ids */
    nx_progress progress; /* "speed runs": done of reps + 1 (the warm-up counts) */
} nx_bench_opts;

typedef struct nx_bench_stat {
    double min, median, max;
} nx_bench_stat;

typedef struct nx_bench_speed {
    nx_bench_stat ttft_ms, prefill_tps, decode_tps, decode_batch_tps;
    double latency_p50_ms, latency_p95_ms, latency_p99_ms; /* batch 1, all reps pooled */
    int64_t decoded, decoded_batch; /* tokens the measured decode runs produced (batch 1, batch B) */
} nx_bench_speed;

nx_bench_opts nx_bench_defaults(void);
/* Runs the speed measurements on synthetic prompt ids (speed does not
 * depend on the text). Fails when prompt + decode tokens exceed the
 * model's context or sizes are not positive. */
int nx_bench_speed_run(const nx_model *m, const nx_bench_opts *o, nx_bench_speed *r, nx_err *err);

#endif
