/* eval.h — language-model quality and inference speed, measured the same
 * way by `nexus benchmark` and the trainer's evaluation.
 *
 * Quality (PROTOCOLS.md): the token stream is cut into non-overlapping
 * windows of seq_len tokens (the tail is dropped); each window runs on its
 * own from position 0; positions 0..seq_len−2 predict tokens 1..seq_len−1.
 *   perplexity = exp(mean cross-entropy over those positions)
 * With a teacher, over the same positions:
 *   agreement  = fraction where argmax(student) == argmax(teacher)
 *   kl         = mean KL(softmax(teacher) ‖ softmax(student)) at T = 1
 *   teacher_ppl = the teacher's own perplexity (computed in the same pass).
 *
 * Speed (nx_bench_speed): time to first token for a prompt of N tokens
 * (prefill + choosing the first token), prefill tokens/s, greedy decode
 * tokens/s at batch 1 and at batch B, per-token latency percentiles at
 * batch 1; each over reps repetitions after one warm-up run. */
#ifndef NEXUS_EVAL_H
#define NEXUS_EVAL_H

#include "nexus/core.h"
#include "nexus/infer.h"

typedef struct nx_eval_result {
    int64_t windows, positions;
    double mean_ce, ppl;
    bool has_teacher;
    double agreement, kl, teacher_ppl;
} nx_eval_result;

/* Evaluates model (and teacher, which may be NULL) on tokens[0..n), batch
 * windows at a time. Fails with a message when there is no complete window,
 * when a token is outside the model's vocabulary (naming its index), or when
 * the teacher's vocabulary differs. progress, when not NULL, is called after
 * each batch with (windows done, windows total). */
int nx_eval_stream(const nx_model *m, const nx_model *teacher, const int32_t *tokens, size_t n,
                   int seq_len, int batch, nx_eval_result *r,
                   void (*progress)(int64_t done, int64_t total), nx_err *err);

typedef struct nx_bench_opts {
    int prompt_tokens;  /* TTFT / prefill prompt length (default 256) */
    int decode_tokens;  /* greedy tokens decoded per run (default 128) */
    int batch;          /* the larger decode batch (default 8) */
    int reps;           /* measured repetitions after one warm-up (default 3) */
    uint64_t seed;      /* for the synthetic prompt ids */
} nx_bench_opts;

typedef struct nx_bench_stat {
    double min, median, max;
} nx_bench_stat;

typedef struct nx_bench_speed {
    nx_bench_stat ttft_ms, prefill_tps, decode_tps, decode_batch_tps;
    double latency_p50_ms, latency_p95_ms, latency_p99_ms; /* batch 1, all reps pooled */
} nx_bench_speed;

nx_bench_opts nx_bench_defaults(void);
/* Runs the speed measurements on synthetic prompt ids (speed does not
 * depend on the text). Fails when prompt + decode tokens exceed the
 * model's context or sizes are not positive. */
int nx_bench_speed_run(const nx_model *m, const nx_bench_opts *o, nx_bench_speed *r, nx_err *err);

/* Peak resident set of this process so far, in bytes (VmHWM from
 * /proc/self/status; getrusage's ru_maxrss where /proc is missing). */
double nx_peak_rss_bytes(void);

#endif
