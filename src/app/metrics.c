/* metrics.c — OUTPUT/metrics.jsonl: one JSON object per line, a line per
 * training step and per evaluation, flushed as written so that a crashed
 * or killed run leaves every finished step on disk.
 *
 *   {"step": 0, "loss": …, "ce": …, "kd": …, "hidden": …, "attention": …,
 *    "grad_norm": …, "lr": …, "tokens": …, "step_s": …, "tokens_per_s": …}
 *   {"eval": true[, "final": true], "step": …, "val_loss": …, "val_ppl": …,
 *    "agreement": …, "kl": …}
 *   {"gpu_memory": true, "step": …, "plan_bytes": …, "peak_allocated_bytes": …,
 *    "peak_device_used_bytes": …, "device_total_bytes": …,
 *    "peak_used_over_plan": …}   (device: cuda, last: the plan beside the
 *                                 allocator's and the device's peaks)
 *
 * Lines are built as cJSON objects and written with `": "` and `", "`
 * between items, the layout the file has always had (scripts grep it).
 * Measured values are written with the fewest digits that read back to the
 * same double (lr: the same float), so the file holds exactly what the run
 * computed; timings keep 4 (step_s) and 1 (tokens_per_s) decimals. A value
 * that is not measured (agreement and kl without a teacher) is null.
 *
 * On resume the file is read back with cJSON and the lines of steps at or
 * after the checkpoint are dropped (they will be run again), so a resumed
 * run's file equals an uninterrupted one's, timings aside. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexus/json.h"
#include "nexus/fsutil.h"
#include "run_internal.h"

static void add_real(cJSON *o, const char *key, double v, bool as_float) {
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char buf[40];
    nx_fmt_real(buf, sizeof buf, v, as_float);
    cJSON_AddRawToObject(o, key, buf);
}

static void add_int(cJSON *o, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    cJSON_AddRawToObject(o, key, buf);
}

static void add_fixed(cJSON *o, const char *key, double v, int decimals) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", decimals, v);
    cJSON_AddRawToObject(o, key, buf);
}

/* {"key": value, ...} on one line; a failed write (a full disk) is an
 * error, so that a run never goes on with its metrics silently cut short. */
static int write_line(run_metrics *m, cJSON *o, nx_err *err) {
    fputc('{', m->f);
    for (const cJSON *it = o->child; it; it = it->next) {
        char *v = cJSON_PrintUnformatted(it);
        NX_ASSERTM(v, "out of memory");
        fprintf(m->f, "%s\"%s\": %s", it == o->child ? "" : ", ", it->string, v);
        free(v);
    }
    fputs("}\n", m->f);
    int bad = fflush(m->f) || ferror(m->f), e = errno;
    cJSON_Delete(o);
    if (bad) return nx_fail(err, "%s: cannot write metrics: %s", m->path, strerror(e));
    return NX_OK;
}

int run_metrics_step(run_metrics *m, const nx_step_stats *st, int64_t tokens, double step_s, double tokens_per_s,
                     nx_err *err) {
    cJSON *o = cJSON_CreateObject();
    add_int(o, "step", st->step);
    add_real(o, "loss", st->loss, false);
    add_real(o, "ce", st->ce, false);
    add_real(o, "kd", st->kd, false);
    add_real(o, "hidden", st->hidden, false);
    add_real(o, "attention", st->attention, false);
    add_real(o, "grad_norm", st->grad_norm, false);
    add_real(o, "lr", st->lr, true);
    add_int(o, "tokens", tokens);
    add_fixed(o, "step_s", step_s, 4);
    add_fixed(o, "tokens_per_s", tokens_per_s, 1);
    return write_line(m, o, err);
}

int run_metrics_eval(run_metrics *m, int64_t step, const nx_eval_result *r, bool final, nx_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "eval");
    if (final) cJSON_AddTrueToObject(o, "final");
    add_int(o, "step", step);
    add_real(o, "val_loss", r->loss, false);
    add_real(o, "val_ppl", r->perplexity, false);
    add_real(o, "agreement", r->agreement, false);
    add_real(o, "kl", r->kl, false);
    return write_line(m, o, err);
}

int run_metrics_memory(run_metrics *m, int64_t step, const nx_run_plan *p, const nx_mem_info *mi, nx_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "gpu_memory");
    add_int(o, "step", step);
    add_int(o, "plan_bytes", (int64_t)p->total);
    add_int(o, "peak_allocated_bytes", (int64_t)mi->peak);
    add_int(o, "peak_device_used_bytes", (int64_t)mi->device_used_peak);
    add_int(o, "device_total_bytes", (int64_t)mi->device_total);
    add_fixed(o, "peak_used_over_plan", p->total > 0 ? mi->device_used_peak / p->total : 0, 4);
    return write_line(m, o, err);
}

/* Keep a line unless it is a whole JSON object whose "step" is at or past
 * keep_below, or the torn last line of a killed run (no newline). Lines
 * that are not JSON objects are kept as they are. */
static bool keep_line(const char *line, size_t len, bool whole, int64_t keep_below) {
    if (!whole) return false;
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
    bool keep = !cJSON_IsNumber(step) || step->valuedouble < (double)keep_below;
    cJSON_Delete(o);
    return keep;
}

static int trim(const char *path, int64_t keep_below, nx_err *err) {
    if (access(path, F_OK) && errno == ENOENT) return NX_OK; /* nothing written yet */
    size_t len;
    char *text = nx_read_file(path, 1u << 30, &len, err);
    if (!text) return NX_ERR;
    char *out = nx_xmalloc(len + 1);
    size_t used = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) + 1 : len - at;
        if (keep_line(text + at, n, nl != NULL, keep_below)) {
            memcpy(out + used, text + at, n);
            used += n;
        }
        at += n;
    }
    const void *parts[1] = {out};
    int rc = nx_write_atomic(path, parts, &used, 1, err);
    free(out);
    free(text);
    return rc;
}

int run_metrics_open(run_metrics *m, const char *path, bool resume, int64_t keep_below, nx_err *err) {
    m->f = NULL;
    m->path = path;
    if (resume && trim(path, keep_below, err)) return NX_ERR;
    m->f = fopen(path, resume ? "a" : "w");
    if (!m->f) return nx_fail(err, "%s: cannot write metrics: %s", path, strerror(errno));
    return NX_OK;
}

void run_metrics_close(run_metrics *m) {
    if (m->f) fclose(m->f);
    m->f = NULL;
}
