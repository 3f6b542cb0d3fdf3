/* eval.c — perplexity, top-1 agreement and KL against a teacher over
 * non-overlapping windows (see eval.h). Windows are batched B at a time
 * through inference activations; the teacher runs on the same batch. */
#include "nexus/eval.h"

#include <math.h>
#include <stdlib.h>

#include "nexus/ops.h"
#include <string.h>

/* Per batch on the backend: ce, teacher ce and KL (one double each), and
 * both models' argmax per row; the host adds them up. */
typedef struct {
    double *sums;          /* 3 doubles */
    int32_t *targets, *am, *tam; /* (B·T) each */
} eval_bufs;

int nx_eval(const nx_model *m, const nx_model *teacher, nx_tokens tokens, int seq_len, int B,
            int64_t max_windows, nx_eval_result *out, const nx_progress *progress, nx_err *err) {
    int V = m->cfg.V, T = seq_len;
    if (T < 2) return nx_fail(err, "evaluation needs windows of at least 2 tokens (got %d)", T);
    int64_t nwin = (int64_t)(tokens.n / (uint64_t)T);
    if (nwin == 0)
        return nx_fail(err, "the evaluation data holds %llu tokens: fewer than one window of %d",
                       (unsigned long long)tokens.n, T);
    if (max_windows > 0 && nwin > max_windows) nwin = max_windows;
    if (teacher && teacher->cfg.V != V)
        return nx_fail(err, "teacher vocabulary (%d) differs from the model's (%d)", teacher->cfg.V, V);
    if (teacher && teacher->be != m->be) return nx_fail(err, "the teacher and the model must be on the same device");
    if (B > nwin) B = (int)nwin;
    nx_backend *be = m->be;
    nx_acts a = {0}, ta = {0};
    eval_bufs d = {0};
    size_t NB = (size_t)B * T * sizeof(int32_t);
    int rc = NX_ERR;
    if (nx_acts_init(&a, m, B, T, NX_ACTS_INFER, err) || (teacher && nx_acts_init(&ta, teacher, B, T, NX_ACTS_INFER, err)) ||
        !(d.sums = nx_backend_alloc(be, 3 * sizeof(double), "evaluation sums", err)) ||
        !(d.targets = nx_backend_alloc(be, NB, "evaluation targets", err)) ||
        !(d.am = nx_backend_alloc(be, NB, "evaluation argmax", err)) ||
        !(d.tam = nx_backend_alloc(be, NB, "evaluation argmax", err)))
        goto done;
    int32_t *ids = nx_xmalloc(NB), *tg = nx_xmalloc(NB), *am = nx_xmalloc(NB), *tam = nx_xmalloc(NB);
    double ce_sum = 0, tce_sum = 0, kl_sum = 0, sums[3];
    int64_t agree = 0, npos = 0;
    for (int64_t w0 = 0; w0 < nwin; w0 += B) {
        nx_progress_report(progress, "evaluation windows", w0, nwin);
        int b = (int)(nwin - w0 < B ? nwin - w0 : B), N = b * T;
        for (int i = 0; i < N; i++) ids[i] = nx_tokens_at(tokens, (uint64_t)w0 * T + i);
        for (int i = 0; i < N; i++) tg[i] = (i % T == T - 1) ? -1 : ids[i + 1];
        nx_backend_upload(be, d.targets, tg, sizeof(int32_t) * N);
        nx_model_forward(m, &a, ids, b, T, true);
        int cnt = b * (T - 1);
        nx_cross_entropy(be, &d.sums[0], NULL, 0, a.logits, d.targets, N, V);
        if (teacher) {
            nx_model_forward(teacher, &ta, ids, b, T, true);
            nx_cross_entropy(be, &d.sums[1], NULL, 0, ta.logits, d.targets, N, V);
            nx_kd_loss(be, &d.sums[2], NX_KD_FORWARD_KL, 1.0f, NULL, 0, a.logits, ta.logits, d.targets, N, V);
            nx_argmax(be, d.am, a.logits, N, V);
            nx_argmax(be, d.tam, ta.logits, N, V);
            nx_backend_download(be, am, d.am, sizeof(int32_t) * N);
            nx_backend_download(be, tam, d.tam, sizeof(int32_t) * N);
            for (int i = 0; i < N; i++) agree += tg[i] >= 0 && am[i] == tam[i];
        }
        nx_backend_download(be, sums, d.sums, (teacher ? 3 : 1) * sizeof(double));
        ce_sum += sums[0] * cnt;
        if (teacher) tce_sum += sums[1] * cnt, kl_sum += sums[2] * cnt;
        npos += cnt;
    }
    nx_progress_report(progress, "evaluation windows", nwin, nwin);
    *out = (nx_eval_result){.loss = ce_sum / npos, .perplexity = exp(ce_sum / npos),
                            .agreement = teacher ? (double)agree / npos : NAN,
                            .kl = teacher ? kl_sum / npos : NAN,
                            .teacher_perplexity = teacher ? exp(tce_sum / npos) : NAN, .windows = nwin,
                            .positions = npos};
    free(ids), free(tg), free(am), free(tam);
    rc = NX_OK;
done:
    nx_backend_free(be, d.sums);
    nx_backend_free(be, d.targets);
    nx_backend_free(be, d.am);
    nx_backend_free(be, d.tam);
    if (a.be) nx_acts_free(&a);
    if (ta.be) nx_acts_free(&ta);
    return rc;
}
