/* run_config.h — the run configuration of `nexus distill` / `nexus train`:
 * a plain, validated C struct. The YAML file (and `--set a.b=v` overrides)
 * is read by the app's run-config module (src/app/run_config/) through the
 * generic YAML reader (io/yaml.h); the numeric core never sees YAML. Every key, its type, default and meaning is documented in
 * docs/CONFIG.md; the defaults below are set by nx_run_config_defaults().
 *
 * The struct owns no heap memory (paths are fixed-size buffers), so it can
 * be copied by value, saved in a checkpoint, and needs no free function.
 *
 * Paths. Relative paths written in a config file are resolved against the
 * directory that holds the file; relative paths given with --set against
 * the current directory. After loading, every path in the struct is
 * absolute and lexically normalised ("a/b/../c" -> "a/c"). */
#ifndef NEXUS_RUN_CONFIG_H
#define NEXUS_RUN_CONFIG_H

#include <stdio.h>

#include "nexus/core.h"
#include "nexus/backend.h"
#include "nexus/ops.h"
#include "nexus/model.h"
#include "nexus/optim.h"
#include "nexus/prune.h"

#define NX_RUN_PATH_MAX 1024
#define NX_RUN_MAX_LAYERS 256

typedef enum nx_init_kind { NX_INIT_RANDOM, NX_INIT_COPY_LAYERS, NX_INIT_AUTO, NX_INIT_PRUNE, NX_INIT_LOAD } nx_init_kind;
typedef enum nx_layer_metric { NX_LAYER_BI, NX_LAYER_PPL } nx_layer_metric;
typedef enum nx_run_device { NX_DEVICE_CPU, NX_DEVICE_CUDA } nx_run_device;
typedef enum nx_data_order { NX_ORDER_RANDOM, NX_ORDER_SEQUENTIAL } nx_data_order;
typedef enum nx_projection { NX_PROJECTION_AUTO, NX_PROJECTION_NONE } nx_projection;
enum { NX_METRIC_PPL = 1, NX_METRIC_AGREEMENT = 2, NX_METRIC_KL = 4 };

typedef struct nx_layer_list {
    int n;
    int v[NX_RUN_MAX_LAYERS];
} nx_layer_list;

typedef struct nx_layer_map {
    int n;
    int pair[NX_RUN_MAX_LAYERS][2]; /* {student_layer, teacher_layer} */
} nx_layer_map;

typedef struct nx_run_config {
    char source[NX_RUN_PATH_MAX]; /* the config file as given; "" when none */

    struct {
        char path[NX_RUN_PATH_MAX]; /* HF model directory; required */
        nx_dtype dtype;             /* NX_F32 (default) or NX_BF16: weights kept in */
    } teacher;

    /* Exactly one source of shape: preset, from_teacher, or explicit keys.
     * Shape keys are overrides on top of the preset / teacher; 0 (or -1 for
     * arch and tie_word_embeddings) means "not given". Resolve the final
     * shape with nx_run_config_student_shape(). */
    struct nx_run_student {
        int preset;                 /* index into nx_run_presets(); -1: none */
        bool from_teacher;          /* teacher's shape, num_layers required */
        int arch;                   /* nx_arch or -1 */
        int vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, head_dim;
        int intermediate_size, max_position_embeddings;
        double rope_theta, rms_norm_eps;
        int tie_word_embeddings;    /* -1 not given, 0, 1 */
        struct {
            nx_init_kind kind;      /* default random; copy_layers when a list is given */
            double std;             /* normal std for random init (default 0.02) */
            nx_layer_list copy_layers; /* teacher layer copied into student layer i */
            int importance_batches; /* batches the auto and prune inits measure (default 16) */
            /* load: the student is this model directory (with its sparsity
             * mask, when the directory holds one) */
            char path[NX_RUN_PATH_MAX];
            /* prune: the teacher pruned (include/nexus/prune.h). Every key
             * below is "not given" at 0 / -1 / "" and then takes the
             * default in brackets. */
            int method;             /* nx_prune_method, -1 [minitron] */
            double sparsity;        /* magnitude / wanda: fraction zeroed */
            char pattern[16];       /* magnitude / wanda: "N:M" */
            int scope;              /* magnitude: 0 layer, 1 global, -1 [layer] */
            int64_t target_params;  /* minitron: a parameter budget instead of shape keys */
            unsigned axes;          /* minitron with target_params: NX_AXIS_* bits, 0 [hidden, ffn] */
            int multiple;           /* minitron with target_params: hidden/ffn sizes a multiple of, 0 [1] */
            int layer_metric;       /* minitron: nx_layer_metric, -1 [bi] */
        } init;
    } student;

    struct {
        char train[NX_RUN_PATH_MAX];      /* shard dir/file or .jsonl[.gz]; required */
        char validation[NX_RUN_PATH_MAX]; /* "" when none */
        char text_field[64];              /* JSONL field holding the text (default "text") */
        int seq_len;                      /* tokens per row (default 256) */
        int batch_size;                   /* rows per micro-batch (default 8) */
        int grad_accum;                   /* micro-batches per step (default 1) */
        nx_data_order order;              /* default random */
    } data;

    struct {
        double alpha;        /* weight of KD vs CE, in [0,1] (default 0.5) */
        double temperature;  /* > 0 (default 2) */
        nx_kd_kind kind;     /* default forward_kl */
        struct {
            double weight;   /* 0 (default): off */
            nx_layer_map layer_map;
            nx_projection projection; /* default auto */
        } hidden;
        double attention;    /* attention-transfer weight, 0 (default): off */
    } loss;

    struct {
        double lr;           /* peak (default 1e-3) */
        double betas[2];     /* default 0.9, 0.95 */
        double eps;          /* default 1e-8 */
        double weight_decay; /* default 0.1 */
        nx_sched schedule;/* default cosine */
        int warmup_steps;    /* default 0 */
        double min_lr;       /* end of the decay (default 0) */
        double clip;         /* global grad-norm clip, 0: off (default 1) */
        int64_t steps;       /* optimizer steps; computed from tokens when tokens given */
        int64_t tokens;      /* token budget, 0 when the budget is given as steps */
    } optimizer;

    struct {
        int every;           /* steps between evals; 0: only at the end (default) */
        int batches;         /* limit, 0: whole validation set */
        int64_t tokens;      /* limit, 0: none; at most one of batches/tokens */
        unsigned metrics;    /* NX_METRIC_* bits (default all three) */
    } eval;

    struct {
        int every;           /* steps between checkpoints; 0: only at the end (default) */
        int keep;            /* newest kept; 0: all (default 3) */
        char dir[NX_RUN_PATH_MAX]; /* default OUTPUT/checkpoints */
    } checkpoint;

    struct {
        char dir[NX_RUN_PATH_MAX]; /* default ./runs/<config file stem> */
        nx_dtype dtype;            /* NX_F32 (default), NX_BF16 or NX_F16 */
    } output;

    struct {
        int every;                          /* steps between log lines (default 10) */
        char metrics_file[NX_RUN_PATH_MAX]; /* default OUTPUT/metrics.jsonl */
    } log;

    int64_t seed;   /* default 42 */
    int threads;    /* 0: all cores (default) */
    nx_run_device device; /* NX_DEVICE_CPU (default) or NX_DEVICE_CUDA: where the models live and compute */
    nx_precision precision; /* of the matrix products: NX_PREC_FP32 (default), TF32 or BF16 (cuda) */
    bool recompute; /* activation recomputation: the forward keeps each layer's input, the backward the rest */
} nx_run_config;

/* Student presets: one table, in src/app/run_config/presets.c. The
 * vocabulary is the teacher's at run time; shape.V here (32000) is used
 * only without one. */
typedef struct nx_run_preset {
    const char *name;     /* "nano", "standard" */
    const char *summary;
    nx_model_config shape;
} nx_run_preset;

const nx_run_preset *nx_run_presets(int *n);

/* Fill rc with every default (no teacher, no data: not yet valid). */
void nx_run_config_defaults(nx_run_config *rc);

/* Load and validate a config file (path may be NULL: defaults + overrides
 * only), then apply overrides sets[0..nsets) of the form "a.b.c=VALUE",
 * where VALUE is a YAML scalar, flow list or flow mapping
 * ("student.init.copy_layers=[0,2,4,6]"). On error returns NX_ERR and err
 * names "FILE:LINE:COL" (or "--set ARG"), the key path and what to do; rc is
 * then unspecified. */
int nx_run_config_load(nx_run_config *rc, const char *path, const char *const *sets, int nsets,
                       nx_err *err);
/* As nx_run_config_load, from text in memory. name is used in messages and
 * its directory as the base of relative paths (NULL: "<config>" in the
 * current directory). */
int nx_run_config_parse(nx_run_config *rc, const char *text, size_t len, const char *name,
                        const char *const *sets, int nsets, nx_err *err);

/* Print rc as YAML that nx_run_config_parse turns back into the same struct
 * (paths absolute, numbers exact, every default written out). */
void nx_run_config_print(FILE *f, const nx_run_config *rc);

/* A stable 64-bit FNV-1a hash of the keys that change the trained model.
 * Excluded (may change on resume): optimizer.steps, optimizer.tokens, the
 * whole eval, checkpoint, output and log sections, threads and source. */
uint64_t nx_run_config_hash(const nx_run_config *rc);

/* Resolve the student's nx_model_config. teacher may be NULL except for
 * from_teacher; without it the vocabulary is the preset's / vocab_size key /
 * 32000. With a teacher, also checks what needs its shape: from_teacher
 * num_layers <= teacher layers, copy_layers and layer_map teacher indices in
 * range, the same vocabulary when distilling logits or copying embeddings,
 * equal widths for hidden loss with projection none. */
int nx_run_config_student_shape(const nx_run_config *rc, const nx_model_config *teacher,
                                nx_model_config *out, nx_err *err);

/* The unstructured-pruning options of student.init (kind prune, method
 * magnitude or wanda): the pattern parsed, scope checked. */
int nx_run_config_sparse_opts(const nx_run_config *rc, nx_sparse_opts *o, nx_err *err);
/* The structured-pruning target of student.init (kind prune, method
 * minitron) for teacher t: the shape keys, or the shape that fits
 * target_params (nx_prune_fit), resolved into out. */
int nx_run_config_prune_shape(const nx_run_config *rc, const nx_model_config *t, nx_model_config *out,
                              nx_err *err);

/* Number of student layers (known after a successful load), or 0 when
 * the teacher or the directory to load decides it. */
int nx_run_config_student_layers(const nx_run_config *rc);

#endif
