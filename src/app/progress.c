/* progress.c — what a run tells the person watching, all on stderr
 * (stdout is for the final table). On a terminal one progress line
 * rewrites itself with \r (step, loss, throughput, ETA); elsewhere — a log
 * file, CI — a plain line every log.every steps, since \r-lines make logs
 * unreadable. Evals, resume, interruption and the auto-init layer choice
 * are always full lines. */
#include <math.h>

#include "run_internal.h"

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

void run_progress_step(const run_progress *p, const nx_step_stats *st, int64_t done, double t_train, double tps) {
    bool last = done == p->total;
    if (p->tty) {
        char eta[32];
        fmt_eta(eta, sizeof eta, (p->total - done) * t_train / (done - p->start));
        fprintf(stderr, "\r step %lld/%lld | loss %.4f | %.0f tok/s | ETA %s   ", (long long)done,
                (long long)p->total, st->loss, tps, eta);
        if (last) fputc('\n', stderr);
    } else if (p->log_every > 0 && (done % p->log_every == 0 || last)) {
        fprintf(stderr, "step %lld/%lld  loss %.4f  ce %.4f  kd %.4f  |g| %.3f  lr %.3g  %.0f tok/s\n",
                (long long)done, (long long)p->total, st->loss, st->ce, st->kd, st->grad_norm, st->lr, tps);
    }
}

void run_progress_eval(const run_progress *p, int64_t step, const nx_eval_result *r, bool distill) {
    if (p->tty) fputc('\n', stderr);
    fprintf(stderr, "eval step %lld: val ppl %.3f", (long long)step, r->perplexity);
    if (distill) fprintf(stderr, "  agreement %.4f  kl %.4f", r->agreement, r->kl);
    fputc('\n', stderr);
}

void run_progress_resumed(const char *path, int64_t step) {
    fprintf(stderr, "nexus: resumed from %s (step %lld)\n", path, (long long)step);
}

void run_progress_interrupted(const run_progress *p, int64_t step, const char *ckpt_dir) {
    if (p->tty) fputc('\n', stderr);
    fprintf(stderr, "nexus: interrupted after step %lld; checkpoint saved in %s; continue with --resume\n",
            (long long)step, ckpt_dir);
}

void run_progress_importance(const double *bi, int L, const int *map, int n) {
    fprintf(stderr, "nexus: layer importance (1 - cos(in, out)):");
    for (int l = 0; l < L; l++) fprintf(stderr, " %d:%.4f", l, bi[l]);
    fprintf(stderr, "\nnexus: student layers copied from teacher layers");
    for (int l = 0; l < n; l++) fprintf(stderr, " %d", map[l]);
    fputc('\n', stderr);
}

const char *run_bytes(char *buf, size_t n, double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int i = 0;
    while (b >= 1024 && i < 5) b /= 1024, i++;
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}
