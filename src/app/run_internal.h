/* run_internal.h — what the files of a run share (not public): run.c
 * orchestrates; init.c initialises the student; data.c opens the token
 * data; metrics.c writes (and on resume trims) metrics.jsonl; progress.c
 * writes the terminal lines; rundir.c checks where the run writes. */
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

/* ---- rundir.c: where the run writes ---- */
/* Refuses an output path (output.dir, checkpoint.dir, log.metrics_file)
 * that overlaps an input (teacher, data, config file); touches nothing. */
int run_dir_check_paths(const nx_run_config *rc, nx_err *err);

typedef struct run_dir {
    const char *out_dir, *ckpt_dir;  /* the config's */
    bool made_out, made_ckpt;        /* created by this run */
    bool started;                    /* the first step is under way */
    int lock_out, lock_ckpt;         /* flock'd directories, -1: none */
} run_dir;

/* Creates output.dir and checkpoint.dir (writable), locks them for this
 * process (a run holding them is named in the error), and refuses a new run
 * (no o->resume) into directories that hold an earlier run — checkpoints,
 * a non-empty metrics file, a saved model — unless o->overwrite. */
int run_dir_open(run_dir *d, const nx_run_config *rc, const nx_run_opts *o, nx_err *err);
/* Just before the first step: with overwrite, deletes the earlier run's
 * checkpoints (its metrics file is then truncated by run_metrics_open). */
int run_dir_start(run_dir *d, const nx_run_config *rc, bool overwrite, nx_err *err);
/* Releases the locks; before the first step, also removes the directories
 * this run created (when empty). */
void run_dir_close(run_dir *d);

/* ---- plan.c ---- */
/* Refuses a run whose memory plan exceeds what is available, with the
 * plan, the memory available and what each knob would bring it to; on
 * the GPU (be: the CUDA backend, started) the plan is printed to stderr
 * first, whether it fits or not. */
int run_plan_check(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                   nx_backend *be, nx_err *err);

/* ---- init.c ---- */
/* The student's first weights as rc->student.init says: random, copied
 * teacher layers, (auto) the teacher layers that matter most on the first
 * batches of ld (a copy of ld is advanced; ld is not), the teacher pruned
 * (calibrated on those batches), or a model directory. *mask is set to a
 * malloc'd sparsity mask (student->nparams bytes) when the student has
 * one (prune with magnitude / wanda; load of a directory with a mask), else
 * NULL. parallel: random weights drawn on every core
 * (nx_model_init_random_parallel: other draws than a training run's). */
int run_init_student(nx_model *student, const nx_model *teacher, const nx_run_config *rc, const nx_loader *ld,
                     uint8_t **mask, bool parallel, nx_err *err);


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
    const char *path;
} run_metrics;

/* Opens path for writing; with resume, keeps only the lines of steps before
 * keep_below (those a checkpoint holds) and appends after them. */
int run_metrics_open(run_metrics *m, const char *path, bool resume, int64_t keep_below, nx_err *err);
/* One line each; NX_ERR (err names the file and the reason) when it could
 * not be written. */
int run_metrics_step(run_metrics *m, const nx_step_stats *st, int64_t tokens, double step_s, double tokens_per_s,
                     nx_err *err);
int run_metrics_eval(run_metrics *m, int64_t step, const nx_eval_result *r, bool final, nx_err *err);
/* {"gpu_memory": true, "step", plan_bytes, peak_allocated_bytes,
 * peak_device_used_bytes, device_total_bytes, peak_used_over_plan} */
int run_metrics_memory(run_metrics *m, int64_t step, const nx_run_plan *p, const nx_mem_info *mi, nx_err *err);
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
/* b bytes as "1.50 GiB" into buf; returns buf. */
const char *run_bytes(char *buf, size_t n, double b);

#endif
