/* run_internal.h — what the files of a run share (not public): run.c
 * orchestrates; init.c initialises the student; data.c opens the token
 * data; metrics.c writes (and on resume trims) metrics.jsonl; progress.c
 * writes the terminal lines. */
#ifndef NEXUS_APP_RUN_INTERNAL_H
#define NEXUS_APP_RUN_INTERNAL_H

#include <stdio.h>

#include "nexus/dataset.h"
#include "nexus/eval.h"
#include "nexus/run.h"

/* ---- data.c ---- */
typedef struct run_data {
    bool is_shard;
    nx_shard shard;           /* is_shard */
    nx_token_stream stream;   /* otherwise: documents tokenized in memory */
    nx_tokens view;           /* the tokens, either way */
} run_data;

/* path: a shard (.bin), a directory holding `name` (train.bin / val.bin),
 * or documents (.jsonl[.gz], text) tokenized here with tok. Checks that the
 * tokens came from tok and fit the student's vocabulary V. */
int run_data_open(run_data *d, const char *path, const char *name, const nx_tokenizer *tok, const char *field,
                  int V, bool progress, nx_err *err);
void run_data_close(run_data *d);

/* ---- init.c ---- */
/* The student's first weights as rc->student.init says: random, copied
 * teacher layers, (auto) the teacher layers that matter most on the first
 * batches of ld (a copy of ld is advanced; ld is not), the teacher pruned
 * (calibrated on those batches), or a model directory. *mask is set to a
 * malloc'd sparsity mask (student->nparams bytes) when the student has
 * one (prune with magnitude / wanda; load of a directory with a mask), else
 * NULL. */
int run_init_student(nx_model *student, const nx_model *teacher, const nx_run_config *rc, const nx_loader *ld,
                     uint8_t **mask, nx_err *err);

/* ---- prune.c: the steps `nexus prune` and student.init prune share ---- */
/* n windows of T tokens at seeded random positions of src into ids (n·T). */
void app_prune_windows(nx_tokens src, int n, int T, uint64_t seed, int32_t *ids);
/* Calibration statistics of m over n sequences of T ids, `batch` at a time
 * (c is initialised here; free with nx_calib_free). */
int app_prune_calibrate(const nx_model *m, const int32_t *ids, int n, int T, int batch, bool progress, nx_calib *c,
                        nx_err *err);
/* src pruned to the shape dst by importance (layers by block influence, or
 * with NX_LAYER_PPL by the perplexity of the n calibration sequences with
 * each layer removed): out initialised here, plan filled, layer_score
 * (src L) the scores used. */
int app_prune_width(const nx_model *src, const nx_calib *c, const nx_model_config *dst, nx_layer_metric metric,
                    const int32_t *ids, int n, int T, int batch, bool progress, nx_model *out, nx_prune_plan *plan,
                    double *layer_score, nx_err *err);

/* ---- metrics.c: OUTPUT/metrics.jsonl, one JSON object per line ---- */
typedef struct run_metrics {
    FILE *f;
} run_metrics;

/* Opens path for writing; with resume, keeps only the lines of steps before
 * keep_below (those a checkpoint holds) and appends after them. */
int run_metrics_open(run_metrics *m, const char *path, bool resume, int64_t keep_below, nx_err *err);
void run_metrics_step(run_metrics *m, const nx_step_stats *st, int64_t tokens, double step_s, double tokens_per_s);
void run_metrics_eval(run_metrics *m, int64_t step, const nx_eval_result *r, bool final);
void run_metrics_close(run_metrics *m);

/* ---- progress.c: stderr ---- */
typedef struct run_progress {
    bool tty;          /* one self-rewriting progress line; else log lines */
    int log_every;     /* steps between log lines */
    int64_t start, total;
} run_progress;

void run_progress_step(const run_progress *p, const nx_step_stats *st, int64_t done, double t_train, double tps);
void run_progress_eval(const run_progress *p, int64_t step, const nx_eval_result *r, bool distill);
void run_progress_resumed(const char *path, int64_t step);
void run_progress_interrupted(const run_progress *p, int64_t step, const char *ckpt_dir);
void run_progress_importance(const double *bi, int L, const int *map, int n);

#endif
