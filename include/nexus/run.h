/* run.h — a whole distillation (or pretraining) run from a validated
 * nx_run_config: load the teacher and tokenizer, build and initialise the
 * student, open the data, train with evals, checkpoints and metrics, and
 * write a Hugging Face student directory. The public API of the app layer
 * (src/app/), which sits above the adapters (io/) and the numeric core
 * (model/, train/); cli/distill.c only parses flags, calls nx_run and
 * prints the summary.
 *
 * Interruption: when *o->stop becomes nonzero (SIGINT/SIGTERM), the run
 * saves a checkpoint after the step in flight and returns with
 * summary->interrupted set; `--resume` continues from the newest checkpoint
 * bit for bit. A non-finite loss stops the run with an error naming the
 * step and tensor; the last checkpoint on disk is left as it was. */
#ifndef NEXUS_RUN_H
#define NEXUS_RUN_H

#include <signal.h>
#include <stdio.h>

#include "nexus/run_config.h"
#include "nexus/prune.h"
#include "nexus/train.h"

typedef struct nx_run_opts {
    bool distill;                      /* false: `nexus train`, no teacher forward */
    bool resume;                       /* continue from the newest checkpoint */
    bool overwrite;                    /* replace an earlier run in output.dir (refused otherwise) */
    bool progress;                     /* progress on stderr: a self-rewriting line when stderr is a
                                          terminal (log lines otherwise), tokenizing progress */
    bool init_only;                    /* write the initialised student to output.dir and stop (no
                                          trainer, no steps): e.g. a random model to distill from */
    volatile sig_atomic_t *stop;       /* may be NULL */
} nx_run_opts;

typedef struct nx_model_summary {
    size_t params;
    double bytes;                      /* weights at the output dtype */
    double ppl, agreement, kl;         /* NAN when not measured */
} nx_model_summary;

typedef struct nx_run_summary {
    bool interrupted;
    int64_t steps_done, tokens;
    double seconds, tokens_per_s;      /* training steps only (evals excluded) */
    double final_loss;
    nx_model_summary teacher, student;
    bool has_teacher;
    /* device: cuda: the plan's total and the measured peaks (nx_mem_info):
     * the allocator's, and the device's use (context and cuBLAS included) */
    bool gpu;
    double gpu_plan, gpu_peak_allocated, gpu_peak_used, gpu_total;
} nx_run_summary;

/* Runs rc. Before anything heavy is loaded, the run's memory plan
 * (nx_run_plan_compute) is set against nx_run_memory_available (device:
 * cuda: printed, and set against the GPU's free memory): a run that does
 * not fit is refused with the plan, what is available and the knobs. */
int nx_run(const nx_run_config *rc, const nx_run_opts *o, nx_run_summary *out, nx_err *err);

/* The memory a run needs (bytes), from the teacher's and the student's
 * configs alone (src/app/plan.c says what each part counts). With device:
 * cuda the parts are what the run allocates on the GPU and total is their
 * sum with the workspace and the context (data and runtime stay on the
 * host, counted but not in total). */
typedef struct nx_run_plan {
    bool gpu;             /* device: cuda */
    double params;        /* student parameters */
    double student;       /* 16 bytes each: weights, gradients, AdamW m and v */
    double activations;   /* student training activations, batch inputs */
    double teacher;       /* teacher weights at teacher.dtype (0 when not loaded) */
    double teacher_acts;  /* teacher inference activations (distilling) */
    double losses;        /* hidden-state / attention loss buffers, projections */
    double eval;          /* evaluation activations (with validation data) */
    double data;          /* documents tokenized in memory (estimate; shards are mapped) */
    double runtime;       /* program, libraries, BLAS buffers, tokenizer (fixed) */
    double workspace;     /* GPU: the CUDA backend's workspace and score area (nx_cuda_work_bytes) */
    double context;       /* GPU: NX_CUDA_CONTEXT_BYTES */
    double total;         /* on the run's device */
} nx_run_plan;

/* Fails (naming what is too large) only when the sizes cannot be counted. */
int nx_run_plan_compute(const nx_run_config *rc, bool distill, const nx_model_config *teacher,
                const nx_model_config *student, nx_run_plan *p, nx_err *err);
/* Prints the plan (what each part takes) to f, with the memory available
 * (avail < 0: not known) and where that figure comes from. */
void nx_run_plan_print(FILE *f, const nx_run_plan *p, const nx_run_config *rc, double avail, const char *source);
/* Bytes this process can still have: the least of MemAvailable, the
 * cgroup's limit less usage, and the data / address-space rlimits; source
 * names which (INFINITY when nothing is known). */
double nx_run_memory_available(char *source, size_t n);
/* The trainer options a run uses (without a teacher when !distill). */
nx_train_opts nx_run_train_opts(const nx_run_config *rc, bool distill);

/* Student initialisation helpers (also used by tests). */
/* Copy embeddings, final norm, head and teacher layers map[i] → student
 * layer i. Widths must match. */
int nx_student_copy_layers(nx_model *s, const nx_model *t, const int *map, int n, nx_err *err);
/* Block influence (ShortGPT): for each teacher layer l, 1 − mean cosine
 * between its input and output hidden states over the given inputs.
 * Layers that change the residual stream most matter most. */
void nx_layer_importance(const nx_model *t, const int32_t *ids, int B, int T, double *bi);
/* The n most important layers, in increasing order. */
void nx_choose_layers(const double *bi, int L, int n, int *out);

/* ---- nexus prune (src/app/prune.c) ------------------------------------------
 * Prune a Hugging Face model directory into another: calibrate on data,
 * prune (prune.h), measure perplexity before and after, write the model,
 * its tokenizer, the mask (unstructured methods) and prune_report.json.
 * Every option is checked against the model's config.json, and the output
 * directory for writability, before anything runs or is written. */
typedef struct nx_prune_job {
    const char *model, *out;       /* model directory in, directory out (not the same) */
    const char *calib;             /* calibration data: .jsonl[.gz] / text, or a shard (dir with train.bin);
                                      NULL only for magnitude */
    const char *eval;              /* perplexity data (dir with val.bin, or documents); NULL: none */
    const char *text_field;        /* JSONL field; NULL: "text" */
    nx_prune_method method;
    nx_sparse_opts sparse;         /* magnitude, wanda (method copied from above) */
    nx_prune_shape shape;          /* minitron: target shape, 0 = keep */
    int64_t target_params;         /* minitron: a parameter budget instead of a shape */
    unsigned axes;                 /* with target_params: NX_AXIS_* bits */
    int multiple;                  /* with target_params: hidden/ffn multiple of */
    nx_layer_metric layer_metric;  /* minitron with fewer layers */
    int calib_samples, calib_len;  /* random windows of the calibration data (len 0: 256 or max_pos) */
    int eval_len;                  /* evaluation window (PROTOCOLS.md; 0: 256 or max_pos) */
    int64_t eval_windows;          /* 0: all */
    int batch;                     /* sequences per forward */
    uint64_t seed;                 /* of the calibration windows */
    int threads;
    nx_dtype dtype;                /* of the saved weights */
    bool progress;                 /* progress on stderr */
} nx_prune_job;

typedef struct nx_prune_result {
    nx_model_config before, after;
    size_t params_before, params_after;
    nx_sparse_stats sparse;        /* unstructured methods */
    double ppl_before, ppl_after;  /* NAN without eval data */
    int64_t eval_windows, calib_tokens;
    double seconds;
    char *report;                  /* prune_report.json's text (malloc'd) */
} nx_prune_result;

int nx_prune_job_run(const nx_prune_job *j, nx_prune_result *r, nx_err *err);
void nx_prune_result_free(nx_prune_result *r);

#endif
