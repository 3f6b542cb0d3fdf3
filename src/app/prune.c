/* prune.c — `nexus prune` as a whole job, and the pruning steps a distill
 * run's `student.init: prune` shares with it (run_internal.h).
 *
 * Order of work: every option checked against the model's config.json
 * (sparsity range, N:M against the row lengths, the target shape or
 * parameter budget, the output directory) before anything heavy runs or
 * anything is written → model (f32) and tokenizer → calibration windows
 * (random windows of the calibration data, seeded) and evaluation data →
 * perplexity before → calibration forwards → prune (in place with a mask,
 * or into a smaller model by a plan) → perplexity after → the output
 * directory: config.json, model.safetensors, tokenizer files, the mask
 * (sparsity_mask.safetensors) for unstructured methods, and
 * prune_report.json (what was removed, the figures; also the --json
 * output). Progress goes to stderr. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/tokenizer.h"
#include "run_internal.h"

/* ---- the steps a distill init shares ---- */

static void progress_line(bool tty, const char *what, int k, int n) {
    if (tty) {
        fprintf(stderr, "\r%s %d/%d   ", what, k, n);
        if (k == n) fputc('\n', stderr);
    } else if (k == n) {
        fprintf(stderr, "%s %d/%d done\n", what, k, n);
    }
}

int app_prune_calibrate(const nx_model *m, const int32_t *ids, int n, int T, int batch, bool progress, nx_calib *c,
                        nx_err *err) {
    if (batch > n) batch = n;
    if (nx_calib_init(c, m, batch, T, err)) return NX_ERR;
    bool tty = progress && isatty(STDERR_FILENO);
    int nb = (n + batch - 1) / batch;
    if (progress && !tty) fprintf(stderr, "prune: calibrating on %d sequences of %d tokens\n", n, T);
    for (int b = 0; b < nb; b++) {
        int k = n - b * batch < batch ? n - b * batch : batch;
        nx_calib_add(c, ids + (size_t)b * batch * T, k);
        if (progress) progress_line(tty, "prune: calibration batch", b + 1, nb);
    }
    return NX_OK;
}

/* Perplexity of m on n sequences of T ids laid end to end (windows of T). */
static int ppl_on(const nx_model *m, const int32_t *ids, int n, int T, int batch, double *ppl, nx_err *err) {
    nx_tokens tk = {ids, 4, (uint64_t)n * T};
    nx_eval_result r;
    if (nx_eval(m, NULL, tk, T, batch, 0, &r, NULL, err)) return NX_ERR;
    *ppl = r.perplexity;
    return NX_OK;
}

int app_prune_width(const nx_model *src, const nx_calib *c, const nx_model_config *dst, nx_layer_metric metric,
                    const int32_t *ids, int n, int T, int batch, bool progress, nx_model *out, nx_prune_plan *plan,
                    double *layer_score, nx_err *err) {
    const nx_model_config *s = &src->cfg;
    for (int l = 0; l < s->L; l++) layer_score[l] = c->bi[l] / (double)c->rows;
    if (metric == NX_LAYER_PPL && dst->L < s->L) {
        /* perplexity on the calibration windows with layer l removed: the
         * higher it goes, the more the layer matters */
        nx_model_config one = *s;
        one.L = s->L - 1;
        int *keep = nx_xmalloc(sizeof(int) * one.L);
        bool tty = progress && isatty(STDERR_FILENO);
        for (int l = 0; l < s->L; l++) {
            for (int i = 0, k = 0; i < s->L; i++)
                if (i != l) keep[k++] = i;
            nx_prune_plan p;
            nx_model m;
            nx_prune_plan_from(&p, s, &one, keep, NULL, NULL, NULL, NULL);
            int rc = nx_prune_apply(src, &p, &m, err);
            nx_prune_plan_free(&p);
            if (rc || ppl_on(&m, ids, n, T, batch, &layer_score[l], err)) {
                if (!rc) nx_model_free(&m);
                free(keep);
                return NX_ERR;
            }
            nx_model_free(&m);
            if (progress) progress_line(tty, "prune: perplexity without each layer", l + 1, s->L);
        }
        free(keep);
    }
    nx_prune_plan_make(plan, c, dst, layer_score);
    if (nx_prune_apply(src, plan, out, err)) {
        nx_prune_plan_free(plan);
        return NX_ERR;
    }
    return NX_OK;
}

void app_prune_windows(nx_tokens src, int n, int T, uint64_t seed, int32_t *ids) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    uint64_t span = src.n - (uint64_t)T + 1;
    for (int i = 0; i < n; i++) {
        uint64_t at = nx_rng_below(&r, span);
        for (int t = 0; t < T; t++) ids[(size_t)i * T + t] = nx_tokens_at(src, at + t);
    }
}

/* ---- the job ---- */

static bool same_dir(const char *a, const char *b) {
    char ra[4096], rb[4096];
    if (!realpath(a, ra) || !realpath(b, rb)) return false;
    return strcmp(ra, rb) == 0;
}

/* The output directory can be written: it exists as a directory we may
 * write, or its nearest existing parent is one. Creates nothing. */
static int check_out(const char *out, const char *model, nx_err *err) {
    struct stat st;
    if (same_dir(out, model)) return nx_fail(err, "--out %s is the model's own directory: give a new one", out);
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return nx_fail(err, "--out %s exists and is not a directory", out);
        if (access(out, W_OK)) return nx_fail(err, "--out %s: not writable: %s", out, strerror(errno));
        return NX_OK;
    }
    char *p = strdup(out);
    for (;;) {
        char *slash = strrchr(p, '/');
        if (!slash) {
            strcpy(p, ".");
        } else if (slash == p) {
            p[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(p, &st) == 0) break;
        if (!strcmp(p, ".") || !strcmp(p, "/")) break;
    }
    int rc = NX_OK;
    if (stat(p, &st) || !S_ISDIR(st.st_mode) || access(p, W_OK))
        rc = nx_fail(err, "--out %s: cannot be created under %s (%s)", out, p,
                     errno ? strerror(errno) : "not a writable directory");
    free(p);
    return rc;
}

/* Everything that can be checked from config.json alone. */
static int check_job(const nx_prune_job *j, const nx_model_config *cfg, nx_model_config *dst, nx_err *err) {
    if (j->method == NX_PRUNE_MINITRON) {
        bool shape = j->shape.hidden || j->shape.ffn || j->shape.heads || j->shape.kv_heads || j->shape.layers;
        if (j->sparse.sparsity > 0 || j->sparse.n)
            return nx_fail(err, "--sparsity and --pattern are for magnitude and wanda; minitron takes a target shape "
                                "or --target-params");
        if (shape && j->target_params)
            return nx_fail(err, "give the target as a shape (--hidden, --ffn, --heads, --kv-heads, --layers) or as "
                                "--target-params, not both");
        if (!shape && !j->target_params)
            return nx_fail(err, "minitron needs a target: --hidden, --ffn, --heads, --kv-heads, --layers, or "
                                "--target-params");
        nx_prune_shape want = j->shape;
        if (j->target_params && nx_prune_fit(cfg, j->target_params, j->axes, j->multiple, &want, err)) return NX_ERR;
        if (nx_prune_shape_resolve(cfg, &want, dst, err)) return NX_ERR;
        if (!j->calib) return nx_fail(err, "minitron ranks by activations: give --calib data");
        return NX_OK;
    }
    if (j->shape.hidden || j->shape.ffn || j->shape.heads || j->shape.kv_heads || j->shape.layers || j->target_params)
        return nx_fail(err, "a target shape is for minitron; %s zeroes weights and keeps the shape",
                       nx_prune_method_name(j->method));
    if (!j->sparse.n && !(j->sparse.sparsity > 0))
        return nx_fail(err, "%s needs --sparsity (e.g. 0.5) or --pattern (e.g. 2:4)", nx_prune_method_name(j->method));
    if (j->sparse.n && j->sparse.sparsity > 0) return nx_fail(err, "give --sparsity or --pattern, not both");
    if (nx_sparse_check(cfg, &j->sparse, err)) return NX_ERR;
    if (j->method == NX_PRUNE_WANDA && !j->calib) return nx_fail(err, "wanda weighs by activations: give --calib data");
    *dst = *cfg;
    return NX_OK;
}

static cJSON *shape_json(const nx_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "hidden_size", c->C);
    cJSON_AddNumberToObject(o, "intermediate_size", c->F);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->NH);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->KVH);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->L);
    cJSON_AddNumberToObject(o, "head_dim", c->HS);
    return o;
}

static cJSON *num_or_null(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

static cJSON *int_rows(const int *v, int rows, int cols) {
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < rows; r++) cJSON_AddItemToArray(a, cJSON_CreateIntArray(v + (size_t)r * cols, cols));
    return a;
}

static char *report(const nx_prune_job *j, const nx_prune_result *r, const nx_prune_plan *plan,
                    const double *layer_score) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddStringToObject(o, "out", j->out);
    cJSON_AddStringToObject(o, "method", nx_prune_method_name(j->method));
    cJSON_AddNumberToObject(o, "params_before", (double)r->params_before);
    cJSON_AddNumberToObject(o, "params_after", (double)r->params_after);
    cJSON_AddItemToObject(o, "shape_before", shape_json(&r->before));
    cJSON_AddItemToObject(o, "shape_after", shape_json(&r->after));
    if (j->method != NX_PRUNE_MINITRON) {
        cJSON *s = cJSON_CreateObject();
        if (j->sparse.n) {
            char pat[32];
            snprintf(pat, sizeof pat, "%d:%d", j->sparse.n, j->sparse.m);
            cJSON_AddStringToObject(s, "pattern", pat);
        } else {
            cJSON_AddNumberToObject(s, "target", j->sparse.sparsity);
            cJSON_AddStringToObject(s, "scope", j->method == NX_PRUNE_WANDA ? "row" : j->sparse.global ? "global" : "layer");
        }
        cJSON_AddNumberToObject(s, "pruned", (double)r->sparse.pruned);
        cJSON_AddNumberToObject(s, "prunable", (double)r->sparse.prunable);
        cJSON_AddNumberToObject(s, "of_prunable", r->sparse.prunable ? (double)r->sparse.pruned / r->sparse.prunable : 0);
        cJSON_AddNumberToObject(s, "of_model", (double)r->sparse.pruned / r->sparse.params);
        cJSON_AddStringToObject(s, "mask", NX_HF_MASK_FILE);
        cJSON_AddItemToObject(o, "sparsity", s);
    } else {
        const nx_model_config *d = &r->after;
        cJSON *k = cJSON_CreateObject();
        cJSON_AddItemToObject(k, "layers", cJSON_CreateIntArray(plan->layers, d->L));
        cJSON_AddItemToObject(k, "kv_groups", int_rows(plan->groups, d->L, d->KVH));
        cJSON_AddItemToObject(k, "heads", int_rows(plan->heads, d->L, d->NH));
        cJSON_AddNumberToObject(k, "hidden_channels", d->C);
        cJSON_AddNumberToObject(k, "ffn_neurons", d->F);
        cJSON_AddItemToObject(o, "kept", k);
        cJSON_AddItemToObject(o, "layer_importance", cJSON_CreateDoubleArray(layer_score, r->before.L));
        cJSON_AddStringToObject(o, "layer_metric", j->layer_metric == NX_LAYER_PPL ? "ppl" : "bi");
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "path", j->calib ? cJSON_CreateString(j->calib) : cJSON_CreateNull());
    cJSON_AddNumberToObject(c, "sequences", j->calib ? j->calib_samples : 0);
    cJSON_AddNumberToObject(c, "seq_len", j->calib_len);
    cJSON_AddNumberToObject(c, "tokens", (double)r->calib_tokens);
    cJSON_AddNumberToObject(c, "seed", (double)j->seed);
    cJSON_AddItemToObject(o, "calibration", c);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "path", j->eval ? cJSON_CreateString(j->eval) : cJSON_CreateNull());
    cJSON_AddNumberToObject(e, "seq_len", j->eval_len);
    cJSON_AddNumberToObject(e, "windows", (double)r->eval_windows);
    cJSON_AddItemToObject(e, "ppl_before", num_or_null(r->ppl_before));
    cJSON_AddItemToObject(e, "ppl_after", num_or_null(r->ppl_after));
    cJSON_AddItemToObject(o, "eval", e);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    return txt;
}

/* Perplexity on the eval data in tenths (same windows, same order as one
 * nx_eval call), so that a long evaluation shows progress. */
static int eval_ppl(const nx_prune_job *j, const nx_model *m, const run_data *ev, double *ppl, int64_t *win,
                    const char *when, nx_err *err) {
    int T = j->eval_len;
    int64_t W = (int64_t)(ev->view.n / (uint64_t)T);
    if (j->eval_windows > 0 && W > j->eval_windows) W = j->eval_windows;
    if (W == 0) return nx_fail(err, "%s: fewer tokens than one evaluation window of %d", j->eval, T);
    int64_t chunk = (W + 9) / 10;
    double ce = 0;
    int64_t pos = 0;
    bool tty = j->progress && isatty(STDERR_FILENO);
    if (j->progress && !tty) fprintf(stderr, "prune: perplexity %s on %lld windows of %s\n", when, (long long)W, j->eval);
    for (int64_t w0 = 0, k = 0; w0 < W; w0 += chunk, k++) {
        int64_t n = W - w0 < chunk ? W - w0 : chunk;
        nx_tokens v = {(const char *)ev->view.data + (size_t)w0 * T * ev->view.width, ev->view.width, (uint64_t)n * T};
        nx_eval_result r;
        if (nx_eval(m, NULL, v, T, j->batch, 0, &r, NULL, err)) return nx_fail_prefix(err, "%s", j->eval);
        ce += r.loss * (double)r.positions;
        pos += r.positions;
        if (j->progress) progress_line(tty, when[0] == 'b' ? "prune: perplexity before, window chunk" :
                                              "prune: perplexity after, window chunk", (int)k + 1, (int)((W + chunk - 1) / chunk));
    }
    *ppl = exp(ce / (double)pos);
    *win = W;
    if (j->progress) fprintf(stderr, "prune: perplexity %s: %.3f over %lld windows\n", when, *ppl, (long long)W);
    return NX_OK;
}

int nx_prune_job_run(const nx_prune_job *j, nx_prune_result *r, nx_err *err) {
    memset(r, 0, sizeof *r);
    r->ppl_before = r->ppl_after = NAN;
    double t0 = nx_now();
    nx_set_threads(j->threads);
    nx_model_config cfg, dst;
    if (nx_hf_load_config(j->model, &cfg, err) || check_job(j, &cfg, &dst, err) || check_out(j->out, j->model, err))
        return NX_ERR;
    nx_prune_job job = *j; /* with the lengths resolved: 0 means 256, or the model's context if shorter */
    if (job.method == NX_PRUNE_MAGNITUDE) job.calib = NULL; /* scores need no activations */
    if (!job.calib_len) job.calib_len = cfg.max_pos < 256 ? cfg.max_pos : 256;
    if (!job.eval_len) job.eval_len = cfg.max_pos < 256 ? cfg.max_pos : 256;
    j = &job;
    if (j->calib_samples < 1 || j->calib_len < 2 || j->batch < 1 || j->eval_len < 2)
        return nx_fail(err, "calibration needs at least 1 sequence of 2 tokens, a batch of 1, eval windows of 2");
    if ((j->calib && j->calib_len > cfg.max_pos) || (j->eval && j->eval_len > cfg.max_pos))
        return nx_fail(err, "sequence length %d exceeds the model's max_position_embeddings %d",
                       j->calib && j->calib_len > cfg.max_pos ? j->calib_len : j->eval_len, cfg.max_pos);
    nx_tokenizer *tok = NULL;
    nx_model m = {0}, pruned = {0};
    run_data cd = {0}, ev = {0};
    bool have_cd = false, have_ev = false, have_calib = false, have_plan = false;
    nx_calib calib;
    nx_prune_plan plan;
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    double *layer_score = NULL;
    int rc = NX_ERR;
    if (nx_tokenizer_load(&tok, j->model, err) || nx_hf_load_model(j->model, &m, err)) goto out;
    if (j->calib) {
        if (run_data_open(&cd, j->calib, "train.bin", tok, j->text_field ? j->text_field : "text", cfg.V, j->progress, err))
            goto out;
        have_cd = true;
        if (cd.view.n < (uint64_t)j->calib_len) {
            nx_fail(err, "%s: %llu tokens, fewer than one calibration sequence of %d", j->calib,
                    (unsigned long long)cd.view.n, j->calib_len);
            goto out;
        }
        ids = nx_xmalloc(sizeof(int32_t) * j->calib_samples * j->calib_len);
        app_prune_windows(cd.view, j->calib_samples, j->calib_len, j->seed, ids);
        r->calib_tokens = (int64_t)j->calib_samples * j->calib_len;
    }
    if (j->eval) {
        if (run_data_open(&ev, j->eval, "val.bin", tok, j->text_field ? j->text_field : "text", cfg.V, j->progress, err))
            goto out;
        have_ev = true;
        if (eval_ppl(j, &m, &ev, &r->ppl_before, &r->eval_windows, "before", err)) goto out;
    }
    if (j->calib) {
        if (app_prune_calibrate(&m, ids, j->calib_samples, j->calib_len, j->batch, j->progress, &calib, err)) goto out;
        have_calib = true;
    }
    r->before = cfg;
    r->params_before = nx_model_count(&cfg);
    nx_model *result = &m;
    if (j->method == NX_PRUNE_MINITRON) {
        layer_score = nx_xmalloc(sizeof(double) * cfg.L);
        if (app_prune_width(&m, &calib, &dst, j->layer_metric, ids, j->calib_samples, j->calib_len, j->batch,
                            j->progress, &pruned, &plan, layer_score, err))
            goto out;
        have_plan = true;
        result = &pruned;
    } else {
        mask = nx_xmalloc(m.nparams);
        if (j->progress) fprintf(stderr, "prune: %s to %s\n", nx_prune_method_name(j->method), j->out);
        if (nx_prune_sparse(&m, have_calib ? &calib : NULL, &j->sparse, mask, &r->sparse, err)) goto out;
    }
    r->after = result->cfg;
    r->params_after = nx_model_count(&result->cfg);
    if (have_ev && eval_ppl(j, result, &ev, &r->ppl_after, &r->eval_windows, "after", err)) goto out;
    /* the output directory */
    if (nx_hf_save_model(j->out, result, j->dtype, err) || nx_hf_copy_tokenizer(j->model, j->out, err)) goto out;
    if (mask && nx_hf_save_mask(j->out, &result->cfg, mask, err)) goto out;
    r->seconds = nx_now() - t0;
    r->report = report(j, r, have_plan ? &plan : NULL, layer_score);
    char *path = nx_path_join(j->out, "prune_report.json");
    const void *parts[] = {r->report, "\n"};
    size_t lens[] = {strlen(r->report), 1};
    rc = nx_write_atomic(path, parts, lens, 2, err);
    free(path);
out:
    if (have_plan) nx_prune_plan_free(&plan);
    if (have_calib) nx_calib_free(&calib);
    if (pruned.be) nx_model_free(&pruned);
    if (m.be) nx_model_free(&m);
    if (have_cd) run_data_close(&cd);
    if (have_ev) run_data_close(&ev);
    nx_tokenizer_free(tok);
    free(ids), free(mask), free(layer_score);
    return rc;
}

void nx_prune_result_free(nx_prune_result *r) {
    free(r->report);
    r->report = NULL;
}
