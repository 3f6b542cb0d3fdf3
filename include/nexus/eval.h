/* eval.h — quality of a model on a token stream, as PROTOCOLS.md defines it:
 * cut the stream into non-overlapping windows of seq_len tokens (the tail
 * is dropped), run each window from position 0, and score positions
 * 0..seq_len−2 predicting tokens 1..seq_len−1.
 *   perplexity = exp(mean cross-entropy)
 *   agreement  = fraction of positions where argmax(model) = argmax(teacher)
 *   kl         = mean KL(softmax(teacher) ‖ softmax(model)) at temperature 1 */
#ifndef NEXUS_EVAL_H
#define NEXUS_EVAL_H

#include "nexus/model.h"

typedef struct nx_eval_result {
    double loss;        /* mean cross-entropy (nats) */
    double perplexity;
    double agreement;   /* NAN without a teacher */
    double kl;          /* NAN without a teacher */
    double teacher_perplexity; /* the teacher's, on the same windows; NAN without one */
    int64_t windows, positions;
} nx_eval_result;

/* Evaluates up to max_windows windows (0: all) in batches of B. teacher may
 * be NULL. Fails when the stream holds no complete window. Allocates its
 * activations once per call. progress (may be NULL) hears "evaluation windows",
 * windows done of the total, after every batch. */
int nx_eval(const nx_model *m, const nx_model *teacher, nx_tokens tokens, int seq_len, int B,
            int64_t max_windows, nx_eval_result *out, const nx_progress *progress, nx_err *err);

#endif
