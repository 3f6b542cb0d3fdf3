/* schema.c — the one description of the run-config keys, and the defaults.
 *
 * Each row of the tables below is a key: its name, its type, where it lives
 * in nx_run_config, its range and flags. The converter (convert.c), the
 * --set path check (overrides.c), the printer (print.c) and the hash
 * (hash.c) all walk these tables, so adding a key is one row here, its
 * default in nx_run_config_defaults and its line in docs/CONFIG.md.
 *
 * A section whose row names a "shorthand" child accepts a scalar:
 * `init: auto` means `init: {kind: auto}`, `student: nano` means
 * `student: {preset: nano}`, `teacher: DIR` means `teacher: {path: DIR}`.
 * The spellings of architectures and presets come from their own tables
 * (nx_arch_name, presets.c), so they are not repeated here. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define OFF(m) offsetof(nx_run_config, m)
#define SZ(m) sizeof(((nx_run_config *)0)->m)
#define IMAX 2147483647.0
#define I64MAX 9.2e18

static const char *const DEVICES[] = {"cpu", "cuda", NULL};
static const char *const PRECISIONS[] = {"fp32", "tf32", "bf16", NULL};
static const char *const DTYPE_TEACHER[] = {"f32", "bf16", NULL};
static const int DTYPE_TEACHER_V[] = {NX_F32, NX_BF16};
static const char *const DTYPE_OUT[] = {"f32", "bf16", "f16", NULL};
static const int DTYPE_OUT_V[] = {NX_F32, NX_BF16, NX_F16};
static const char *const INITS[] = {"random", "copy_layers", "auto", "prune", "load", NULL};
static const char *const PRUNE_METHODS[] = {"magnitude", "wanda", "minitron", NULL}; /* nx_prune_method order */
static const char *const SCOPES[] = {"layer", "global", NULL};
static const char *const AXES[] = {"hidden", "ffn", "heads", "layers", NULL}; /* NX_AXIS_* bit i = 1 << i */
static const char *const LAYER_METRICS[] = {"bi", "ppl", NULL};
static const char *const KDS[] = {"forward_kl", "reverse_kl", "jsd", NULL};
static const char *const SCHEDS[] = {"constant", "linear", "cosine", NULL}; /* nx_sched order */
static const char *const ORDERS[] = {"random", "sequential", NULL};
static const char *const PROJS[] = {"auto", "none", NULL};
static const char *const METRICS[] = {"ppl", "agreement", "kl", NULL}; /* bit i = 1 << i */

_Static_assert(sizeof(nx_dtype) == sizeof(int) && sizeof(nx_init_kind) == sizeof(int),
               "enums are stored through int pointers");

static const cfg_field TEACHER[] = {
    {"path", T_PATH, OFF(teacher.path), SZ(teacher.path), .flags = 0},
    {"dtype", T_ENUM, OFF(teacher.dtype), 0, .names = DTYPE_TEACHER, .values = DTYPE_TEACHER_V},
    {.name = NULL},
};

static const cfg_field INIT[] = {
    {"kind", T_ENUM, OFF(student.init.kind), 0, .names = INITS},
    {"std", T_REAL, OFF(student.init.std), 0, .lo = 0, .hi = 10, .flags = F_GT},
    {"copy_layers", T_LAYERS, OFF(student.init.copy_layers), 0, .lo = 0, .hi = NX_RUN_MAX_LAYERS - 1,
     .flags = F_OPT},
    {"importance_batches", T_INT, OFF(student.init.importance_batches), 0, .lo = 1, .hi = 1e6},
    /* added after checkpoints pinned the hash: hashed only when given */
    {"path", T_PATH, OFF(student.init.path), SZ(student.init.path), .flags = F_OPT | F_HASHGIVEN},
    {"method", T_ENUM, OFF(student.init.method), 0, .names = PRUNE_METHODS, .flags = F_OPT | F_HASHGIVEN},
    {"sparsity", T_REAL, OFF(student.init.sparsity), 0, .lo = 0, .hi = 1, .flags = F_OPT | F_LT | F_HASHGIVEN},
    {"pattern", T_STR, OFF(student.init.pattern), SZ(student.init.pattern), .flags = F_OPT | F_HASHGIVEN},
    {"scope", T_ENUM, OFF(student.init.scope), 0, .names = SCOPES, .flags = F_OPT | F_HASHGIVEN},
    {"target_params", T_I64, OFF(student.init.target_params), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT | F_HASHGIVEN},
    {"axes", T_FLAGS, OFF(student.init.axes), 0, .names = AXES, .flags = F_OPT | F_HASHGIVEN},
    {"multiple", T_INT, OFF(student.init.multiple), 0, .lo = 1, .hi = 1 << 20, .flags = F_OPT | F_HASHGIVEN},
    {"layer_metric", T_ENUM, OFF(student.init.layer_metric), 0, .names = LAYER_METRICS, .flags = F_OPT | F_HASHGIVEN},
    {.name = NULL},
};

const cfg_field CFG_STUDENT[] = {
    {"preset", T_PRESET, OFF(student.preset), 0, .flags = F_OPT},
    {"from_teacher", T_BOOL, OFF(student.from_teacher), 0, .flags = 0},
    {"arch", T_ARCH, OFF(student.arch), 0, .flags = F_OPT},
    {"vocab_size", T_INT, OFF(student.vocab_size), 0, .lo = 1, .hi = IMAX, .flags = F_OPT},
    {"hidden_size", T_INT, OFF(student.hidden_size), 0, .lo = 1, .hi = 1 << 20, .flags = F_OPT},
    {"num_layers", T_INT, OFF(student.num_layers), 0, .lo = 1, .hi = NX_RUN_MAX_LAYERS, .flags = F_OPT},
    {"num_heads", T_INT, OFF(student.num_heads), 0, .lo = 1, .hi = 4096, .flags = F_OPT},
    {"num_kv_heads", T_INT, OFF(student.num_kv_heads), 0, .lo = 1, .hi = 4096, .flags = F_OPT},
    {"head_dim", T_INT, OFF(student.head_dim), 0, .lo = 2, .hi = 4096, .flags = F_OPT},
    {"intermediate_size", T_INT, OFF(student.intermediate_size), 0, .lo = 1, .hi = 1 << 22, .flags = F_OPT},
    {"max_position_embeddings", T_INT, OFF(student.max_position_embeddings), 0, .lo = 2, .hi = 1 << 24,
     .flags = F_OPT},
    {"rope_theta", T_REAL, OFF(student.rope_theta), 0, .lo = 0, .hi = CFG_BIG, .flags = F_OPT | F_GT},
    {"rms_norm_eps", T_REAL, OFF(student.rms_norm_eps), 0, .lo = 0, .hi = 1, .flags = F_OPT | F_GT},
    {"tie_word_embeddings", T_TRI, OFF(student.tie_word_embeddings), 0, .flags = F_OPT},
    {"init", T_SEC, 0, 0, .kids = INIT, .shorthand = "kind"},
    {.name = NULL},
};

static const cfg_field DATA[] = {
    {"train", T_PATH, OFF(data.train), SZ(data.train), .flags = 0},
    {"validation", T_PATH, OFF(data.validation), SZ(data.validation), .flags = F_OPT},
    {"text_field", T_STR, OFF(data.text_field), SZ(data.text_field), .flags = 0},
    {"seq_len", T_INT, OFF(data.seq_len), 0, .lo = 2, .hi = 1 << 20},
    {"batch_size", T_INT, OFF(data.batch_size), 0, .lo = 1, .hi = 1 << 20},
    {"grad_accum", T_INT, OFF(data.grad_accum), 0, .lo = 1, .hi = 1 << 20},
    {"order", T_ENUM, OFF(data.order), 0, .names = ORDERS},
    {.name = NULL},
};

static const cfg_field HIDDEN[] = {
    {"weight", T_REAL, OFF(loss.hidden.weight), 0, .lo = 0, .hi = CFG_BIG},
    {"layer_map", T_PAIRS, OFF(loss.hidden.layer_map), 0, .lo = 0, .hi = NX_RUN_MAX_LAYERS - 1,
     .flags = F_OPT},
    {"projection", T_ENUM, OFF(loss.hidden.projection), 0, .names = PROJS},
    {.name = NULL},
};

static const cfg_field LOSS[] = {
    {"alpha", T_REAL, OFF(loss.alpha), 0, .lo = 0, .hi = 1},
    {"temperature", T_REAL, OFF(loss.temperature), 0, .lo = 0, .hi = 1e6, .flags = F_GT},
    {"kind", T_ENUM, OFF(loss.kind), 0, .names = KDS},
    {"hidden", T_SEC, 0, 0, .kids = HIDDEN, .shorthand = "weight"},
    {"attention", T_REAL, OFF(loss.attention), 0, .lo = 0, .hi = CFG_BIG},
    {.name = NULL},
};

const cfg_field CFG_OPTIM[] = {
    {"lr", T_REAL, OFF(optimizer.lr), 0, .lo = 0, .hi = 10, .flags = F_GT},
    {"betas", T_BETAS, OFF(optimizer.betas), 0, .lo = 0, .hi = 1, .flags = F_LT},
    {"eps", T_REAL, OFF(optimizer.eps), 0, .lo = 0, .hi = 1, .flags = F_GT},
    {"weight_decay", T_REAL, OFF(optimizer.weight_decay), 0, .lo = 0, .hi = 10},
    {"schedule", T_ENUM, OFF(optimizer.schedule), 0, .names = SCHEDS},
    {"warmup_steps", T_INT, OFF(optimizer.warmup_steps), 0, .lo = 0, .hi = IMAX},
    {"min_lr", T_REAL, OFF(optimizer.min_lr), 0, .lo = 0, .hi = 10},
    {"clip", T_REAL, OFF(optimizer.clip), 0, .lo = 0, .hi = CFG_BIG},
    {"steps", T_I64, OFF(optimizer.steps), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT | F_NOHASH},
    {"tokens", T_I64, OFF(optimizer.tokens), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT | F_NOHASH},
    {.name = NULL},
};

static const cfg_field EVAL[] = {
    {"every", T_INT, OFF(eval.every), 0, .lo = 0, .hi = IMAX},
    {"batches", T_INT, OFF(eval.batches), 0, .lo = 1, .hi = IMAX, .flags = F_OPT},
    {"tokens", T_I64, OFF(eval.tokens), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT},
    {"metrics", T_FLAGS, OFF(eval.metrics), 0, .names = METRICS},
    {.name = NULL},
};

static const cfg_field CKPT[] = {
    {"every", T_INT, OFF(checkpoint.every), 0, .lo = 0, .hi = IMAX},
    {"keep", T_INT, OFF(checkpoint.keep), 0, .lo = 0, .hi = IMAX},
    {"dir", T_PATH, OFF(checkpoint.dir), SZ(checkpoint.dir), .flags = 0},
    {.name = NULL},
};

static const cfg_field OUTPUT[] = {
    {"dir", T_PATH, OFF(output.dir), SZ(output.dir), .flags = 0},
    {"dtype", T_ENUM, OFF(output.dtype), 0, .names = DTYPE_OUT, .values = DTYPE_OUT_V},
    {.name = NULL},
};

static const cfg_field LOG[] = {
    {"every", T_INT, OFF(log.every), 0, .lo = 1, .hi = IMAX},
    {"metrics_file", T_PATH, OFF(log.metrics_file), SZ(log.metrics_file), .flags = 0},
    {.name = NULL},
};

const cfg_field CFG_TOP[] = {
    {"teacher", T_SEC, 0, 0, .kids = TEACHER, .shorthand = "path"},
    {"student", T_SEC, 0, 0, .kids = CFG_STUDENT, .shorthand = "preset"},
    {"data", T_SEC, 0, 0, .kids = DATA},
    {"loss", T_SEC, 0, 0, .kids = LOSS},
    {"optimizer", T_SEC, 0, 0, .kids = CFG_OPTIM},
    {"eval", T_SEC, 0, 0, .kids = EVAL, .flags = F_NOHASH},
    {"checkpoint", T_SEC, 0, 0, .kids = CKPT, .flags = F_NOHASH},
    {"output", T_SEC, 0, 0, .kids = OUTPUT, .flags = F_NOHASH},
    {"log", T_SEC, 0, 0, .kids = LOG, .flags = F_NOHASH},
    {"seed", T_I64, OFF(seed), 0, .lo = 0, .hi = I64MAX},
    {"threads", T_INT, OFF(threads), 0, .lo = 0, .hi = 4096, .flags = F_NOHASH},
    {"device", T_ENUM, OFF(device), 0, .names = DEVICES, .flags = F_NOHASH},
    {"precision", T_ENUM, OFF(precision), 0, .names = PRECISIONS, .flags = F_NOHASH},
    {"recompute", T_BOOL, OFF(recompute), 0, .flags = F_NOHASH},
    {.name = NULL},
};

void nx_run_config_defaults(nx_run_config *rc) {
    memset(rc, 0, sizeof *rc);
    rc->teacher.dtype = NX_F32;
    rc->student.preset = -1;
    rc->student.arch = -1;
    rc->student.tie_word_embeddings = -1;
    rc->student.init.kind = NX_INIT_RANDOM;
    rc->student.init.std = 0.02;
    rc->student.init.method = rc->student.init.scope = rc->student.init.layer_metric = -1;
    rc->student.init.importance_batches = 16;
    snprintf(rc->data.text_field, sizeof rc->data.text_field, "text");
    rc->data.seq_len = 256;
    rc->data.batch_size = 8;
    rc->data.grad_accum = 1;
    rc->data.order = NX_ORDER_RANDOM;
    rc->loss.alpha = 0.5;
    rc->loss.temperature = 2.0;
    rc->loss.kind = NX_KD_FORWARD_KL;
    rc->loss.hidden.projection = NX_PROJECTION_AUTO;
    rc->optimizer.lr = 1e-3;
    rc->optimizer.betas[0] = 0.9;
    rc->optimizer.betas[1] = 0.95;
    rc->optimizer.eps = 1e-8;
    rc->optimizer.weight_decay = 0.1;
    rc->optimizer.schedule = NX_SCHED_COSINE;
    rc->optimizer.clip = 1.0;
    rc->eval.metrics = NX_METRIC_PPL | NX_METRIC_AGREEMENT | NX_METRIC_KL;
    rc->checkpoint.keep = 3;
    rc->log.every = 10;
    rc->seed = 42;
}

/* ---- lookups ---- */
const cfg_field *cfg_field_find(const cfg_field *kids, const char *name) {
    for (const cfg_field *f = kids; f->name; f++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

int cfg_field_names(const cfg_field *kids, const char **out) {
    int k = 0;
    for (const cfg_field *f = kids; f->name; f++) out[k++] = f->name;
    return k;
}

int cfg_enum_names(const cfg_field *f, const char **out) {
    int n = 0;
    if (f->t == T_PRESET)
        for (; n < CFG_NPRESETS; n++) out[n] = CFG_PRESETS[n].name;
    else if (f->t == T_ARCH)
        for (; n < NX_ARCH_COUNT; n++) out[n] = nx_arch_name((nx_arch)n);
    else
        for (; f->names[n]; n++) out[n] = f->names[n];
    out[n] = NULL;
    return n;
}

const char *cfg_enum_name(const cfg_field *f, int v) {
    if (f->t == T_PRESET) return CFG_PRESETS[v].name;
    if (f->t == T_ARCH) return nx_arch_name((nx_arch)v);
    for (int i = 0; f->names[i]; i++)
        if ((f->values ? f->values[i] : i) == v) return f->names[i];
    NX_ASSERT(0);
    return "?";
}

/* ---- did you mean ---- */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = s < del ? (s < ins ? s : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

void cfg_suggest(char *buf, size_t n, const char *word, const char *const *names, int count) {
    int best = -1, bd = 99;
    for (int i = 0; i < count; i++) {
        int d = edit_distance(word, names[i]);
        if (d < bd) bd = d, best = i;
    }
    int len = (int)strlen(word);
    size_t used = strlen(buf);
    if (best >= 0 && (bd <= 2 || bd * 3 <= len)) {
        snprintf(buf + used, n - used, "; did you mean `%s`?", names[best]);
        return;
    }
    snprintf(buf + used, n - used, "; valid: ");
    for (int i = 0; i < count; i++) {
        used = strlen(buf);
        snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names[i]);
    }
}
