/* eval.c — perplexity, top-1 agreement and KL against a teacher over
 * non-overlapping windows (see eval.h). Windows are batched B at a time
 * through inference activations; the teacher runs on the same batch. */
#include "nexus/eval.h"

#include <math.h>
#include <stdlib.h>

#include "nexus/loss.h"

static int argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int nx_eval(const nx_model *m, const nx_model *teacher, nx_tokens tokens, int seq_len, int B,
            int64_t max_windows, nx_eval_result *out, nx_err *err) {
    int V = m->cfg.V, T = seq_len;
    if (T < 2) return nx_fail(err, "evaluation needs windows of at least 2 tokens (got %d)", T);
    int64_t nwin = (int64_t)(tokens.n / (uint64_t)T);
    if (nwin == 0)
        return nx_fail(err, "the evaluation data holds %llu tokens: fewer than one window of %d",
                       (unsigned long long)tokens.n, T);
    if (max_windows > 0 && nwin > max_windows) nwin = max_windows;
    if (teacher && teacher->cfg.V != V)
        return nx_fail(err, "teacher vocabulary (%d) differs from the model's (%d)", teacher->cfg.V, V);
    if (B > nwin) B = (int)nwin;
    nx_acts a, ta;
    if (nx_acts_init(&a, &m->cfg, B, T, NX_ACTS_INFER, err)) return NX_ERR;
    if (teacher && nx_acts_init(&ta, &teacher->cfg, B, T, NX_ACTS_INFER, err)) {
        nx_acts_free(&a);
        return NX_ERR;
    }
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * B * T), *tg = nx_xmalloc(sizeof(int32_t) * B * T);
    double ce_sum = 0, tce_sum = 0, kl_sum = 0;
    int64_t agree = 0, npos = 0;
    for (int64_t w0 = 0; w0 < nwin; w0 += B) {
        int b = (int)(nwin - w0 < B ? nwin - w0 : B), N = b * T;
        for (int i = 0; i < N; i++) ids[i] = nx_tokens_at(tokens, (uint64_t)w0 * T + i);
        for (int i = 0; i < N; i++) tg[i] = (i % T == T - 1) ? -1 : ids[i + 1];
        nx_model_forward(m, &a, ids, b, T, true);
        int cnt = b * (T - 1);
        ce_sum += nx_cross_entropy(NULL, 0, a.logits, tg, N, V) * cnt;
        if (teacher) {
            nx_model_forward(teacher, &ta, ids, b, T, true);
            tce_sum += nx_cross_entropy(NULL, 0, ta.logits, tg, N, V) * cnt;
            kl_sum += nx_kd_loss(NX_KD_FORWARD_KL, 1.0f, NULL, 0, a.logits, ta.logits, tg, N, V) * cnt;
            int64_t ag = 0;
#pragma omp parallel for reduction(+ : ag)
            for (int i = 0; i < N; i++)
                if (tg[i] >= 0) ag += argmax(a.logits + (size_t)i * V, V) == argmax(ta.logits + (size_t)i * V, V);
            agree += ag;
        }
        npos += cnt;
    }
    *out = (nx_eval_result){.loss = ce_sum / npos, .perplexity = exp(ce_sum / npos),
                            .agreement = teacher ? (double)agree / npos : NAN,
                            .kl = teacher ? kl_sum / npos : NAN,
                            .teacher_perplexity = teacher ? exp(tce_sum / npos) : NAN, .windows = nwin,
                            .positions = npos};
    free(ids);
    free(tg);
    nx_acts_free(&a);
    if (teacher) nx_acts_free(&ta);
    return NX_OK;
}
