/* run_config.c — YAML run configs (and --set overrides) into nx_run_config.
 *
 * Three stages, so that every error can name where the bad value came from:
 *  1. libyaml's event parser builds a small tree of nodes, each remembering
 *     its origin: "FILE:LINE:COL" or "--set ARG". Aliases and multi-document
 *     files are rejected; duplicate keys are rejected.
 *  2. Each --set override is parsed as its own one-line YAML document and
 *     grafted into the tree at its key path (which is checked against the
 *     schema first, with a did-you-mean suggestion).
 *  3. One walk of the schema table below converts the tree into the struct,
 *     checking types and ranges; cross-key checks follow.
 *
 * The schema table (FIELDS) is the single description of the keys: the
 * converter, the printer (nx_run_config_print) and the hash all walk it, so
 * adding a key is one row plus its default plus its line in docs/CONFIG.md.
 *
 * A section whose table row names a "shorthand" child accepts a scalar:
 * `init: auto` means `init: {kind: auto}`, `student: nano` means
 * `student: {preset: nano}`, `teacher: DIR` means `teacher: {path: DIR}`.
 * `null` (or `~`, or nothing) for any key means "not given": the default. */
#include "nexus/run_config.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

/* ---- presets ------------------------------------------------------------
 * Parameter counts (vocab 32000, untied head), computed by nx_model_numel:
 *   nano:     1,490,126,848  -> 2.98 GB in bf16 (GB = 1e9 bytes)
 *   standard: 13,015,864,320 -> 13.0 GB in int8
 * tests/test_run_config.c checks these numbers and the size bounds. */
static const nx_run_preset PRESETS[] = {
    {"nano", "~1.5B Llama-style student; bf16 weights fit 4 GB",
     {.arch = NX_ARCH_LLAMA, .V = 32000, .C = 2048, .L = 24, .NH = 16, .KVH = 8, .HS = 128,
      .F = 7168, .max_pos = 2048, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = false,
      .bos_id = -1, .eos_id = -1, .dtype = NX_BF16}},
    {"standard", "~13B Llama-2-13B-shaped student; int8 weights fit 16 GB",
     {.arch = NX_ARCH_LLAMA, .V = 32000, .C = 5120, .L = 40, .NH = 40, .KVH = 40, .HS = 128,
      .F = 13824, .max_pos = 4096, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = false,
      .bos_id = -1, .eos_id = -1, .dtype = NX_BF16}},
};
enum { NPRESETS = sizeof PRESETS / sizeof PRESETS[0] };

const nx_run_preset *nx_run_presets(int *n) {
    if (n) *n = NPRESETS;
    return PRESETS;
}

/* ---- the tree ------------------------------------------------------------ */
typedef enum { N_SCALAR, N_SEQ, N_MAP } node_type;

typedef struct node {
    node_type type;
    char *text;           /* scalar */
    bool plain;           /* unquoted scalar (only those can be null) */
    int n, cap;
    struct node **keys;   /* map keys (scalars) */
    struct node **kids;   /* map values / seq items */
    int line, col;        /* 1-based; file nodes only */
    const char *origin;   /* file display name, or the --set argument */
    bool from_set;
    bool synthetic;       /* the root made for --set without a file: no location */
} node;

static node *node_new(node_type t, const char *origin, bool from_set, yaml_mark_t m) {
    node *x = nx_xcalloc(1, sizeof *x);
    x->type = t;
    x->origin = origin;
    x->from_set = from_set;
    x->line = (int)m.line + 1;
    x->col = (int)m.column + 1;
    return x;
}

static void node_free(node *x) {
    if (!x) return;
    for (int i = 0; i < x->n; i++) {
        if (x->keys) node_free(x->keys[i]);
        node_free(x->kids[i]);
    }
    free(x->keys);
    free(x->kids);
    free(x->text);
    free(x);
}

static void node_push(node *x, node *key, node *val) {
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 8;
        x->kids = realloc(x->kids, sizeof *x->kids * x->cap);
        if (x->type == N_MAP) x->keys = realloc(x->keys, sizeof *x->keys * x->cap);
        if (!x->kids || (x->type == N_MAP && !x->keys)) {
            fprintf(stderr, "nexus: out of memory\n");
            exit(1);
        }
    }
    if (x->type == N_MAP) x->keys[x->n] = key;
    x->kids[x->n++] = val;
}

static bool is_null(const node *x) {
    if (!x) return true;
    if (x->type != N_SCALAR || !x->plain) return false;
    const char *s = x->text;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int map_find(const node *m, const char *key) {
    if (!m || m->type != N_MAP) return -1;
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i]->text, key)) return i;
    return -1;
}

/* "FILE:LINE:COL" or "--set ARG" */
static const char *loc(const node *x, char *buf, size_t n) {
    if (!x || x->synthetic) snprintf(buf, n, "(no config file)");
    else if (x->from_set) snprintf(buf, n, "--set %s", x->origin);
    else snprintf(buf, n, "%s:%d:%d", x->origin, x->line, x->col);
    return buf;
}

/* ---- parsing YAML text into a tree ----------------------------------- */
typedef struct {
    yaml_parser_t p;
    const char *origin;
    bool from_set;
    nx_err *err;
} reader;

static int reader_error(reader *r) {
    yaml_mark_t m = r->p.problem_mark;
    const char *what = r->p.problem ? r->p.problem : "malformed YAML";
    if (r->from_set)
        return nx_fail(r->err, "--set %s: invalid YAML value: %s%s%s", r->origin, what,
                       r->p.context ? " " : "", r->p.context ? r->p.context : "");
    return nx_fail(r->err, "%s:%d:%d: invalid YAML: %s%s%s", r->origin, (int)m.line + 1,
                   (int)m.column + 1, what, r->p.context ? " " : "",
                   r->p.context ? r->p.context : "");
}

static int next_event(reader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->p, ev)) return reader_error(r);
    return NX_OK;
}

/* Builds the node that starts with ev (consumed). */
enum { MAX_DEPTH = 32 }; /* run configs nest 4 deep; this bounds the recursion */

static int build(reader *r, yaml_event_t *ev, node **out, int depth) {
    char where[NX_RUN_PATH_MAX + 64];
    yaml_mark_t m = ev->start_mark;
    *out = NULL;
    if (depth > MAX_DEPTH) {
        node tmp = {.origin = r->origin, .from_set = r->from_set, .line = (int)m.line + 1,
                    .col = (int)m.column + 1};
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: nested deeper than %d levels; a run config needs 4",
                       loc(&tmp, where, sizeof where), MAX_DEPTH);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        node *x = node_new(N_SCALAR, r->origin, r->from_set, m);
        x->text = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        x->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (strlen(x->text) != ev->data.scalar.length) {
            nx_fail(r->err, "%s: NUL byte inside a value", loc(x, where, sizeof where));
            node_free(x);
            yaml_event_delete(ev);
            return NX_ERR;
        }
        yaml_event_delete(ev);
        *out = x;
        return NX_OK;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        yaml_event_delete(ev);
        node *x = node_new(map ? N_MAP : N_SEQ, r->origin, r->from_set, m);
        for (;;) {
            yaml_event_t e;
            if (next_event(r, &e)) goto fail;
            if (e.type == end) {
                yaml_event_delete(&e);
                break;
            }
            node *key = NULL, *val = NULL;
            if (build(r, &e, map ? &key : &val, depth + 1)) goto fail;
            if (map) {
                if (key->type != N_SCALAR) {
                    nx_fail(r->err, "%s: mapping keys must be plain words", loc(key, where, sizeof where));
                    node_free(key);
                    goto fail;
                }
                if (map_find(x, key->text) >= 0) {
                    nx_fail(r->err, "%s: duplicate key `%s` (each key may appear once)",
                            loc(key, where, sizeof where), key->text);
                    node_free(key);
                    goto fail;
                }
                yaml_event_t e2;
                if (next_event(r, &e2) || build(r, &e2, &val, depth + 1)) {
                    node_free(key);
                    goto fail;
                }
            }
            node_push(x, key, val);
        }
        *out = x;
        return NX_OK;
    fail:
        node_free(x);
        return NX_ERR;
    }
    case YAML_ALIAS_EVENT: {
        node tmp = {.origin = r->origin, .from_set = r->from_set, .line = (int)m.line + 1,
                    .col = (int)m.column + 1};
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: YAML aliases (*name) are not supported in run configs; "
                               "write the value out", loc(&tmp, where, sizeof where));
    }
    default:
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: unexpected YAML event", r->origin);
    }
}

/* Parses a whole stream of at most one document. *root is NULL for an
 * empty stream. */
static int read_yaml(const char *text, size_t len, const char *origin, bool from_set, node **root,
                     nx_err *err) {
    reader r = {.origin = origin, .from_set = from_set, .err = err};
    *root = NULL;
    if (!yaml_parser_initialize(&r.p)) return nx_fail(err, "%s: cannot initialise libyaml", origin);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    int rc = NX_ERR, docs = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(&r, &ev)) goto done;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                node tmp = {.origin = origin, .from_set = from_set,
                            .line = (int)ev.start_mark.line + 1, .col = (int)ev.start_mark.column + 1};
                char where[NX_RUN_PATH_MAX + 64];
                yaml_event_delete(&ev);
                nx_fail(err, "%s: a run config holds one YAML document; remove the second `---`",
                        loc(&tmp, where, sizeof where));
                goto done;
            }
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (build(&r, &ev, root, 0)) goto done;
    }
    rc = NX_OK;
done:
    if (rc) {
        node_free(*root);
        *root = NULL;
    }
    yaml_parser_delete(&r.p);
    return rc;
}

/* ---- the schema ------------------------------------------------------------ */
typedef enum {
    T_SEC, T_INT, T_I64, T_REAL, T_BOOL, T_TRI, T_STR, T_PATH, T_ENUM, T_PRESET,
    T_LAYERS, T_PAIRS, T_BETAS, T_FLAGS
} ftype;

enum {
    F_GT = 1,       /* lower bound is exclusive */
    F_NOHASH = 2,   /* excluded from nx_run_config_hash */
    F_OPT = 4,      /* 0 / -1 / "" / empty list means "not given": omitted when printed */
    F_LT = 8,       /* upper bound is exclusive */
};

typedef struct field {
    const char *name;
    ftype t;
    size_t off, size;             /* offset into nx_run_config, buffer size for strings */
    const struct field *kids;     /* T_SEC: children, ended by a row with name NULL */
    const char *shorthand;        /* T_SEC: child set by a scalar value */
    const char *const *names;     /* T_ENUM, T_FLAGS: spellings, NULL-ended */
    const int *values;            /* T_ENUM: value of each spelling (NULL: index) */
    double lo, hi;                /* numeric range (elements for lists) */
    unsigned flags;
} field;

#define OFF(m) offsetof(nx_run_config, m)
#define SZ(m) sizeof(((nx_run_config *)0)->m)
#define BIG 1e300
#define IMAX 2147483647.0
#define I64MAX 9.2e18

static const char *const DTYPE_TEACHER[] = {"f32", "bf16", NULL};
static const int DTYPE_TEACHER_V[] = {NX_F32, NX_BF16};
static const char *const DTYPE_OUT[] = {"f32", "bf16", "f16", NULL};
static const int DTYPE_OUT_V[] = {NX_F32, NX_BF16, NX_F16};
static const char *const ARCHS[] = {"llama", "qwen2", "mistral", NULL};
static const int ARCHS_V[] = {NX_ARCH_LLAMA, NX_ARCH_QWEN2, NX_ARCH_MISTRAL};
static const char *const INITS[] = {"random", "copy_layers", "auto", NULL};
static const char *const KDS[] = {"forward_kl", "reverse_kl", "jsd", NULL};
static const char *const SCHEDS[] = {"constant", "linear", "cosine", NULL}; /* nx_sched order */
static const char *const ORDERS[] = {"random", "sequential", NULL};
static const char *const PROJS[] = {"auto", "none", NULL};
static const char *const METRICS[] = {"ppl", "agreement", "kl", NULL}; /* bit i = 1 << i */

_Static_assert(sizeof(nx_dtype) == sizeof(int) && sizeof(nx_init_kind) == sizeof(int),
               "enums are stored through int pointers");

static const field TEACHER[] = {
    {"path", T_PATH, OFF(teacher.path), SZ(teacher.path), .flags = 0},
    {"dtype", T_ENUM, OFF(teacher.dtype), 0, .names = DTYPE_TEACHER, .values = DTYPE_TEACHER_V},
    {.name = NULL},
};

static const field INIT[] = {
    {"kind", T_ENUM, OFF(student.init.kind), 0, .names = INITS},
    {"std", T_REAL, OFF(student.init.std), 0, .lo = 0, .hi = 10, .flags = F_GT},
    {"copy_layers", T_LAYERS, OFF(student.init.copy_layers), 0, .lo = 0, .hi = NX_RUN_MAX_LAYERS - 1,
     .flags = F_OPT},
    {"importance_batches", T_INT, OFF(student.init.importance_batches), 0, .lo = 1, .hi = 1e6},
    {.name = NULL},
};

static const field STUDENT[] = {
    {"preset", T_PRESET, OFF(student.preset), 0, .flags = F_OPT},
    {"from_teacher", T_BOOL, OFF(student.from_teacher), 0, .flags = 0},
    {"arch", T_ENUM, OFF(student.arch), 0, .names = ARCHS, .values = ARCHS_V, .flags = F_OPT},
    {"vocab_size", T_INT, OFF(student.vocab_size), 0, .lo = 1, .hi = IMAX, .flags = F_OPT},
    {"hidden_size", T_INT, OFF(student.hidden_size), 0, .lo = 1, .hi = 1 << 20, .flags = F_OPT},
    {"num_layers", T_INT, OFF(student.num_layers), 0, .lo = 1, .hi = NX_RUN_MAX_LAYERS, .flags = F_OPT},
    {"num_heads", T_INT, OFF(student.num_heads), 0, .lo = 1, .hi = 4096, .flags = F_OPT},
    {"num_kv_heads", T_INT, OFF(student.num_kv_heads), 0, .lo = 1, .hi = 4096, .flags = F_OPT},
    {"head_dim", T_INT, OFF(student.head_dim), 0, .lo = 2, .hi = 4096, .flags = F_OPT},
    {"intermediate_size", T_INT, OFF(student.intermediate_size), 0, .lo = 1, .hi = 1 << 22, .flags = F_OPT},
    {"max_position_embeddings", T_INT, OFF(student.max_position_embeddings), 0, .lo = 2, .hi = 1 << 24,
     .flags = F_OPT},
    {"rope_theta", T_REAL, OFF(student.rope_theta), 0, .lo = 0, .hi = BIG, .flags = F_OPT | F_GT},
    {"rms_norm_eps", T_REAL, OFF(student.rms_norm_eps), 0, .lo = 0, .hi = 1, .flags = F_OPT | F_GT},
    {"tie_word_embeddings", T_TRI, OFF(student.tie_word_embeddings), 0, .flags = F_OPT},
    {"init", T_SEC, 0, 0, .kids = INIT, .shorthand = "kind"},
    {.name = NULL},
};

static const field DATA[] = {
    {"train", T_PATH, OFF(data.train), SZ(data.train), .flags = 0},
    {"validation", T_PATH, OFF(data.validation), SZ(data.validation), .flags = F_OPT},
    {"text_field", T_STR, OFF(data.text_field), SZ(data.text_field), .flags = 0},
    {"seq_len", T_INT, OFF(data.seq_len), 0, .lo = 2, .hi = 1 << 20},
    {"batch_size", T_INT, OFF(data.batch_size), 0, .lo = 1, .hi = 1 << 20},
    {"grad_accum", T_INT, OFF(data.grad_accum), 0, .lo = 1, .hi = 1 << 20},
    {"order", T_ENUM, OFF(data.order), 0, .names = ORDERS},
    {.name = NULL},
};

static const field HIDDEN[] = {
    {"weight", T_REAL, OFF(loss.hidden.weight), 0, .lo = 0, .hi = BIG},
    {"layer_map", T_PAIRS, OFF(loss.hidden.layer_map), 0, .lo = 0, .hi = NX_RUN_MAX_LAYERS - 1,
     .flags = F_OPT},
    {"projection", T_ENUM, OFF(loss.hidden.projection), 0, .names = PROJS},
    {.name = NULL},
};

static const field LOSS[] = {
    {"alpha", T_REAL, OFF(loss.alpha), 0, .lo = 0, .hi = 1},
    {"temperature", T_REAL, OFF(loss.temperature), 0, .lo = 0, .hi = 1e6, .flags = F_GT},
    {"kind", T_ENUM, OFF(loss.kind), 0, .names = KDS},
    {"hidden", T_SEC, 0, 0, .kids = HIDDEN, .shorthand = "weight"},
    {"attention", T_REAL, OFF(loss.attention), 0, .lo = 0, .hi = BIG},
    {.name = NULL},
};

static const field OPTIM[] = {
    {"lr", T_REAL, OFF(optimizer.lr), 0, .lo = 0, .hi = 10, .flags = F_GT},
    {"betas", T_BETAS, OFF(optimizer.betas), 0, .lo = 0, .hi = 1, .flags = F_LT},
    {"eps", T_REAL, OFF(optimizer.eps), 0, .lo = 0, .hi = 1, .flags = F_GT},
    {"weight_decay", T_REAL, OFF(optimizer.weight_decay), 0, .lo = 0, .hi = 10},
    {"schedule", T_ENUM, OFF(optimizer.schedule), 0, .names = SCHEDS},
    {"warmup_steps", T_INT, OFF(optimizer.warmup_steps), 0, .lo = 0, .hi = IMAX},
    {"min_lr", T_REAL, OFF(optimizer.min_lr), 0, .lo = 0, .hi = 10},
    {"clip", T_REAL, OFF(optimizer.clip), 0, .lo = 0, .hi = BIG},
    {"steps", T_I64, OFF(optimizer.steps), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT | F_NOHASH},
    {"tokens", T_I64, OFF(optimizer.tokens), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT | F_NOHASH},
    {.name = NULL},
};

static const field EVAL[] = {
    {"every", T_INT, OFF(eval.every), 0, .lo = 0, .hi = IMAX},
    {"batches", T_INT, OFF(eval.batches), 0, .lo = 1, .hi = IMAX, .flags = F_OPT},
    {"tokens", T_I64, OFF(eval.tokens), 0, .lo = 1, .hi = I64MAX, .flags = F_OPT},
    {"metrics", T_FLAGS, OFF(eval.metrics), 0, .names = METRICS},
    {.name = NULL},
};

static const field CKPT[] = {
    {"every", T_INT, OFF(checkpoint.every), 0, .lo = 0, .hi = IMAX},
    {"keep", T_INT, OFF(checkpoint.keep), 0, .lo = 0, .hi = IMAX},
    {"dir", T_PATH, OFF(checkpoint.dir), SZ(checkpoint.dir), .flags = 0},
    {.name = NULL},
};

static const field OUTPUT[] = {
    {"dir", T_PATH, OFF(output.dir), SZ(output.dir), .flags = 0},
    {"dtype", T_ENUM, OFF(output.dtype), 0, .names = DTYPE_OUT, .values = DTYPE_OUT_V},
    {.name = NULL},
};

static const field LOG[] = {
    {"every", T_INT, OFF(log.every), 0, .lo = 1, .hi = IMAX},
    {"metrics_file", T_PATH, OFF(log.metrics_file), SZ(log.metrics_file), .flags = 0},
    {.name = NULL},
};

static const field TOP[] = {
    {"teacher", T_SEC, 0, 0, .kids = TEACHER, .shorthand = "path"},
    {"student", T_SEC, 0, 0, .kids = STUDENT, .shorthand = "preset"},
    {"data", T_SEC, 0, 0, .kids = DATA},
    {"loss", T_SEC, 0, 0, .kids = LOSS},
    {"optimizer", T_SEC, 0, 0, .kids = OPTIM},
    {"eval", T_SEC, 0, 0, .kids = EVAL, .flags = F_NOHASH},
    {"checkpoint", T_SEC, 0, 0, .kids = CKPT, .flags = F_NOHASH},
    {"output", T_SEC, 0, 0, .kids = OUTPUT, .flags = F_NOHASH},
    {"log", T_SEC, 0, 0, .kids = LOG, .flags = F_NOHASH},
    {"seed", T_I64, OFF(seed), 0, .lo = 0, .hi = I64MAX},
    {"threads", T_INT, OFF(threads), 0, .lo = 0, .hi = 4096, .flags = F_NOHASH},
    {.name = NULL},
};

/* ---- defaults ------------------------------------------------------------ */
void nx_run_config_defaults(nx_run_config *rc) {
    memset(rc, 0, sizeof *rc);
    rc->teacher.dtype = NX_F32;
    rc->student.preset = -1;
    rc->student.arch = -1;
    rc->student.tie_word_embeddings = -1;
    rc->student.init.kind = NX_INIT_RANDOM;
    rc->student.init.std = 0.02;
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

/* ---- helpers: suggestions, paths ------------------------------------------ */
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

/* Appends "; did you mean `x`?" (close match) or "; valid: a, b, c". */
static void suggest(char *buf, size_t n, const char *word, const char *const *names, int count) {
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

static int field_names(const field *kids, const char **out) {
    int k = 0;
    for (const field *f = kids; f->name; f++) out[k++] = f->name;
    return k;
}

static const field *field_find(const field *kids, const char *name) {
    for (const field *f = kids; f->name; f++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

/* Copy src into dst of size bytes, cutting it short if it must (callers
 * check lengths first; this keeps the compiler's truncation analysis quiet). */
static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Lexically normalise an absolute path: collapse //, ".", "x/..". */
static void normalise(char *p) {
    char *parts[512];
    int np = 0;
    char tmp[NX_RUN_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", p);
    char *save = NULL;
    for (char *s = strtok_r(tmp, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (!strcmp(s, ".")) continue;
        if (!strcmp(s, "..")) {
            if (np) np--;
            continue;
        }
        if (np < 512) parts[np++] = s;
    }
    char out[NX_RUN_PATH_MAX] = "";
    size_t used = 0;
    for (int i = 0; i < np; i++) used += snprintf(out + used, sizeof out - used, "/%s", parts[i]);
    if (!np) snprintf(out, sizeof out, "/");
    copy_str(p, NX_RUN_PATH_MAX, out);
}

/* ---- conversion: tree -> struct ------------------------------------------- */
typedef struct {
    node *root;
    const char *file;                /* display name of the config file */
    char file_dir[NX_RUN_PATH_MAX];  /* absolute directory of the config file */
    char cwd[NX_RUN_PATH_MAX];
    nx_err *err;
} ctx;

static int fail_node(ctx *c, const node *x, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_node(ctx *c, const node *x, const char *path, const char *fmt, ...) {
    char where[NX_RUN_PATH_MAX + 64], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!x) {
        if (c->file) snprintf(where, sizeof where, "%s", c->file);
        else snprintf(where, sizeof where, "(no config file)");
    } else {
        loc(x, where, sizeof where);
    }
    return nx_fail(c->err, "%s: %s: %s", where, path, msg);
}

/* The deepest node along a dotted key path (for locating cross-key errors). */
static const node *find_near(const ctx *c, const char *path) {
    const node *cur = c->root;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *save = NULL;
    for (char *s = strtok_r(tmp, ".", &save); s && cur; s = strtok_r(NULL, ".", &save)) {
        int i = map_find(cur, s);
        if (i < 0) break;
        cur = cur->kids[i];
    }
    return cur;
}

#define FAIL_AT(c, path, ...) fail_node((c), find_near((c), (path)), (path), __VA_ARGS__)

static const char *describe(const node *x) {
    return x->type == N_MAP ? "a mapping" : x->type == N_SEQ ? "a list" : "a scalar";
}

static int scalar_real(ctx *c, const node *x, const char *path, double *out) {
    if (x->type != N_SCALAR) return fail_node(c, x, path, "expected a number, got %s", describe(x));
    const char *s = x->text;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || end == s || errno == ERANGE || !isfinite(v) || strpbrk(s, "xX"))
        return fail_node(c, x, path, "expected a number, got \"%s\"", s);
    *out = v;
    return NX_OK;
}

static int check_range(ctx *c, const node *x, const char *path, const field *f, double v) {
    bool lo_ok = (f->flags & F_GT) ? v > f->lo : v >= f->lo;
    bool hi_ok = (f->flags & F_LT) ? v < f->hi : v <= f->hi;
    if (lo_ok && hi_ok) return NX_OK;
    if (f->hi >= BIG) return fail_node(c, x, path, "must be %s %g, got %g", (f->flags & F_GT) ? ">" : ">=",
                                       f->lo, v);
    return fail_node(c, x, path, "must be in %c%g, %g%c, got %g", (f->flags & F_GT) ? '(' : '[', f->lo,
                     f->hi, (f->flags & F_LT) ? ')' : ']', v);
}

static int scalar_int(ctx *c, const node *x, const char *path, const field *f, int64_t *out) {
    if (x->type != N_SCALAR) return fail_node(c, x, path, "expected an integer, got %s", describe(x));
    double v;
    const char *s = x->text;
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end && errno == 0) {
        v = (double)i;
    } else {
        /* accept 1e6 and 1_000_000-free exponent forms when integral */
        errno = 0;
        v = strtod(s, &end);
        if (!*s || *end || errno == ERANGE || !isfinite(v) || strpbrk(s, "xX"))
            return fail_node(c, x, path, "expected an integer, got \"%s\"", s);
        if (v != floor(v)) return fail_node(c, x, path, "expected an integer, got %s", s);
        i = (long long)v;
    }
    if (check_range(c, x, path, f, v)) return NX_ERR;
    *out = i;
    return NX_OK;
}

static int scalar_bool(ctx *c, const node *x, const char *path, bool *out) {
    if (x->type == N_SCALAR) {
        const char *s = x->text;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *out = true, NX_OK;
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *out = false, NX_OK;
        return fail_node(c, x, path, "expected true or false, got \"%s\"", s);
    }
    return fail_node(c, x, path, "expected true or false, got %s", describe(x));
}

static int enum_index(ctx *c, const node *x, const char *path, const char *const *names, int *out) {
    if (x->type != N_SCALAR)
        return fail_node(c, x, path, "expected one of the words below, got %s", describe(x));
    int n = 0;
    while (names[n]) n++;
    for (int i = 0; i < n; i++)
        if (!strcmp(x->text, names[i])) return *out = i, NX_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "unknown value \"%s\"", x->text);
    suggest(msg, sizeof msg, x->text, names, n);
    return fail_node(c, x, path, "%s", msg);
}

static int make_path(ctx *c, const node *x, const char *path, char *dst, size_t size) {
    if (x->type != N_SCALAR) return fail_node(c, x, path, "expected a path, got %s", describe(x));
    const char *s = x->text;
    if (!*s) return fail_node(c, x, path, "empty path");
    char buf[3 * NX_RUN_PATH_MAX];
    if (s[0] == '/') snprintf(buf, sizeof buf, "%s", s);
    else snprintf(buf, sizeof buf, "%s/%s", x->from_set ? c->cwd : c->file_dir, s);
    if (strlen(buf) >= size) return fail_node(c, x, path, "path longer than %zu bytes", size - 1);
    normalise(buf);
    copy_str(dst, size, buf);
    return NX_OK;
}

static int convert_section(ctx *c, const node *m, const field *kids, const char *prefix, nx_run_config *rc);

static int convert_field(ctx *c, const node *x, const field *f, const char *path, nx_run_config *rc) {
    void *p = (char *)rc + f->off;
    if (f->t == T_SEC) {
        if (is_null(x)) return NX_OK;
        if (x->type == N_MAP) return convert_section(c, x, f->kids, path, rc);
        if (x->type == N_SCALAR && f->shorthand) {
            const field *k = field_find(f->kids, f->shorthand);
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, k->name);
            return convert_field(c, x, k, sub, rc);
        }
        return fail_node(c, x, path, "expected a mapping of keys, got %s", describe(x));
    }
    if (is_null(x)) return NX_OK; /* not given: keep the default */
    switch (f->t) {
    case T_INT:
    case T_I64: {
        int64_t v;
        if (scalar_int(c, x, path, f, &v)) return NX_ERR;
        if (f->t == T_INT) *(int *)p = (int)v;
        else *(int64_t *)p = v;
        return NX_OK;
    }
    case T_REAL: {
        double v;
        if (scalar_real(c, x, path, &v) || check_range(c, x, path, f, v)) return NX_ERR;
        *(double *)p = v;
        return NX_OK;
    }
    case T_BOOL:
        return scalar_bool(c, x, path, (bool *)p);
    case T_TRI: {
        bool b;
        if (scalar_bool(c, x, path, &b)) return NX_ERR;
        *(int *)p = b;
        return NX_OK;
    }
    case T_STR:
        if (x->type != N_SCALAR) return fail_node(c, x, path, "expected a string, got %s", describe(x));
        if (!*x->text) return fail_node(c, x, path, "must not be empty");
        if (strlen(x->text) >= f->size)
            return fail_node(c, x, path, "longer than %zu bytes", f->size - 1);
        snprintf((char *)p, f->size, "%s", x->text);
        return NX_OK;
    case T_PATH:
        return make_path(c, x, path, (char *)p, f->size);
    case T_ENUM: {
        int i;
        if (enum_index(c, x, path, f->names, &i)) return NX_ERR;
        *(int *)p = f->values ? f->values[i] : i;
        return NX_OK;
    }
    case T_PRESET: {
        const char *names[NPRESETS + 1];
        for (int i = 0; i < NPRESETS; i++) names[i] = PRESETS[i].name;
        names[NPRESETS] = NULL;
        return enum_index(c, x, path, names, (int *)p);
    }
    case T_FLAGS: {
        if (x->type != N_SEQ) return fail_node(c, x, path, "expected a list such as [ppl, agreement, kl]");
        unsigned bits = 0;
        for (int i = 0; i < x->n; i++) {
            int k;
            if (enum_index(c, x->kids[i], path, f->names, &k)) return NX_ERR;
            bits |= 1u << k;
        }
        *(unsigned *)p = bits;
        return NX_OK;
    }
    case T_BETAS: {
        if (x->type != N_SEQ || x->n != 2)
            return fail_node(c, x, path, "expected a list of two numbers such as [0.9, 0.95]");
        for (int i = 0; i < 2; i++) {
            double v;
            if (scalar_real(c, x->kids[i], path, &v) || check_range(c, x->kids[i], path, f, v))
                return NX_ERR;
            ((double *)p)[i] = v;
        }
        return NX_OK;
    }
    case T_LAYERS: {
        if (x->type != N_SEQ) return fail_node(c, x, path, "expected a list of layer indices such as [0, 2, 4]");
        nx_layer_list *l = p;
        if (x->n > NX_RUN_MAX_LAYERS) return fail_node(c, x, path, "more than %d layers", NX_RUN_MAX_LAYERS);
        l->n = 0;
        for (int i = 0; i < x->n; i++) {
            int64_t v;
            if (scalar_int(c, x->kids[i], path, f, &v)) return NX_ERR;
            for (int j = 0; j < l->n; j++)
                if (l->v[j] == v) return fail_node(c, x->kids[i], path, "layer %d is listed twice", (int)v);
            l->v[l->n++] = (int)v;
        }
        return NX_OK;
    }
    case T_PAIRS: {
        if (x->type != N_SEQ)
            return fail_node(c, x, path, "expected a list of [student_layer, teacher_layer] pairs");
        nx_layer_map *m = p;
        if (x->n > NX_RUN_MAX_LAYERS) return fail_node(c, x, path, "more than %d pairs", NX_RUN_MAX_LAYERS);
        m->n = 0;
        for (int i = 0; i < x->n; i++) {
            const node *e = x->kids[i];
            if (e->type != N_SEQ || e->n != 2)
                return fail_node(c, e, path, "each entry must be a pair [student_layer, teacher_layer]");
            int64_t a, b;
            if (scalar_int(c, e->kids[0], path, f, &a) || scalar_int(c, e->kids[1], path, f, &b)) return NX_ERR;
            m->pair[m->n][0] = (int)a;
            m->pair[m->n][1] = (int)b;
            m->n++;
        }
        return NX_OK;
    }
    default:
        NX_ASSERT(0);
        return NX_ERR;
    }
}

static int convert_section(ctx *c, const node *m, const field *kids, const char *prefix, nx_run_config *rc) {
    for (int i = 0; i < m->n; i++) {
        const node *k = m->keys[i];
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        const field *f = field_find(kids, k->text);
        if (!f) {
            const char *names[32];
            int n = field_names(kids, names);
            char msg[512] = "unknown key";
            suggest(msg, sizeof msg, k->text, names, n);
            return fail_node(c, k, path, "%s", msg);
        }
        if (convert_field(c, m->kids[i], f, path, rc)) return NX_ERR;
    }
    return NX_OK;
}

/* ---- --set overrides --------------------------------------------------------- */
static int apply_set(ctx *c, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return nx_fail(c->err, "--set %s: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=3e-4", arg);
    char keypath[256];
    size_t kl = (size_t)(eq - arg);
    if (kl >= sizeof keypath) return nx_fail(c->err, "--set %s: key path too long", arg);
    memcpy(keypath, arg, kl);
    keypath[kl] = '\0';

    /* check the key path against the schema first */
    char *parts[16];
    int np = 0;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", keypath);
    char *save = NULL;
    for (char *s = strtok_r(tmp, ".", &save); s; s = strtok_r(NULL, ".", &save)) {
        if (np == 16) return nx_fail(c->err, "--set %s: key path too deep", arg);
        parts[np++] = s;
    }
    if (!np) return nx_fail(c->err, "--set %s: empty key path", arg);
    const field *kids = TOP;
    char sofar[256] = "";
    for (int i = 0; i < np; i++) {
        const field *f = kids ? field_find(kids, parts[i]) : NULL;
        if (!kids)
            return nx_fail(c->err, "--set %s: %s is a value, not a section; set `%s=...` instead", arg,
                           sofar, sofar);
        size_t u = strlen(sofar);
        snprintf(sofar + u, sizeof sofar - u, "%s%s", u ? "." : "", parts[i]);
        if (!f) {
            const char *names[32];
            int n = field_names(kids, names);
            char msg[512];
            snprintf(msg, sizeof msg, "--set %s: unknown key %s", arg, sofar);
            suggest(msg, sizeof msg, parts[i], names, n);
            return nx_fail(c->err, "%s", msg);
        }
        kids = f->t == T_SEC ? f->kids : NULL;
    }

    node *val;
    const char *text = eq + 1;
    if (read_yaml(text, strlen(text), arg, true, &val, c->err)) return NX_ERR;
    if (!val) { /* empty value: null */
        yaml_mark_t m0 = {0, 0, 0};
        val = node_new(N_SCALAR, arg, true, m0);
        val->text = strdup("");
        val->plain = true;
    }

    /* graft into the tree, creating mappings on the way */
    yaml_mark_t m0 = {0, 0, 0};
    if (!c->root || is_null(c->root)) {
        node_free(c->root);
        c->root = node_new(N_MAP, arg, true, m0);
        c->root->synthetic = c->file == NULL;
    }
    if (c->root->type != N_MAP) {
        node_free(val);
        return fail_node(c, c->root, "(top level)", "a run config must be a mapping of sections");
    }
    node *cur = c->root;
    kids = TOP;
    for (int i = 0; i < np; i++) {
        const field *f = field_find(kids, parts[i]);
        int at = map_find(cur, parts[i]);
        if (i == np - 1) {
            if (at >= 0) {
                node_free(cur->kids[at]);
                cur->kids[at] = val;
            } else {
                node *k = node_new(N_SCALAR, arg, true, m0);
                k->text = strdup(parts[i]);
                node_push(cur, k, val);
            }
            return NX_OK;
        }
        node *next = at >= 0 ? cur->kids[at] : NULL;
        if (next && next->type == N_SCALAR) {
            /* `init: random` becomes {kind: random}; null becomes {} */
            node *m = node_new(N_MAP, next->origin, next->from_set, m0);
            m->line = next->line;
            m->col = next->col;
            if (!is_null(next) && f->shorthand) {
                node *k = node_new(N_SCALAR, next->origin, next->from_set, m0);
                k->text = strdup(f->shorthand);
                node_push(m, k, next);
            } else if (!is_null(next)) {
                node_free(val);
                node_free(m);
                return fail_node(c, next, keypath, "cannot set a key inside a scalar value");
            } else {
                node_free(next);
            }
            cur->kids[at] = m;
            next = m;
        } else if (next && next->type != N_MAP) {
            node_free(val);
            return fail_node(c, next, keypath, "expected a mapping here, found %s", describe(next));
        } else if (!next) {
            next = node_new(N_MAP, arg, true, m0);
            node *k = node_new(N_SCALAR, arg, true, m0);
            k->text = strdup(parts[i]);
            node_push(cur, k, next);
        }
        cur = next;
        kids = f->kids;
    }
    NX_ASSERT(0);
    return NX_ERR;
}

/* ---- cross-key checks and derived values --------------------------------- */
int nx_run_config_student_layers(const nx_run_config *rc) {
    if (rc->student.num_layers > 0) return rc->student.num_layers;
    if (rc->student.preset >= 0 && rc->student.preset < NPRESETS) return PRESETS[rc->student.preset].shape.L;
    return 0;
}

/* dst (NX_RUN_PATH_MAX bytes) = dir/name; NX_ERR when too long. */
static int join(char *dst, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a && dir[a - 1] != '/';
    if (a + slash + b >= NX_RUN_PATH_MAX) return NX_ERR;
    memcpy(dst, dir, a);
    if (slash) dst[a] = '/';
    memcpy(dst + a + slash, name, b + 1);
    return NX_OK;
}

static int validate(ctx *c, nx_run_config *rc, bool init_kind_given, const char *stem) {
    if (!rc->teacher.path[0]) return FAIL_AT(c, "teacher.path", "missing required key (the teacher's model directory)");
    if (!rc->data.train[0]) return FAIL_AT(c, "data.train", "missing required key (training data: a prepare-data shard or .jsonl[.gz])");

    /* student: one source of shape */
    bool preset = rc->student.preset >= 0, from_t = rc->student.from_teacher;
    if (preset && from_t)
        return FAIL_AT(c, "student.from_teacher", "give either student.preset or student.from_teacher, not both");
    if (from_t && !rc->student.num_layers)
        return FAIL_AT(c, "student.num_layers", "missing: from_teacher needs num_layers (how many layers the student keeps)");
    if (!preset && !from_t) {
        const char *miss[4];
        int nm = 0;
        if (!rc->student.hidden_size) miss[nm++] = "hidden_size";
        if (!rc->student.num_layers) miss[nm++] = "num_layers";
        if (!rc->student.num_heads) miss[nm++] = "num_heads";
        if (!rc->student.intermediate_size) miss[nm++] = "intermediate_size";
        if (nm) {
            char list[128] = "";
            for (int i = 0; i < nm; i++) {
                size_t u = strlen(list);
                snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", miss[i]);
            }
            return FAIL_AT(c, "student", "missing %s; give student.preset (nano, standard), "
                                         "student.from_teacher: true with num_layers, or the full shape", list);
        }
    }
    int L = nx_run_config_student_layers(rc);
    NX_ASSERT(L > 0);

    /* init */
    nx_layer_list *cl = &rc->student.init.copy_layers;
    if (!init_kind_given && cl->n) rc->student.init.kind = NX_INIT_COPY_LAYERS;
    if (rc->student.init.kind == NX_INIT_COPY_LAYERS) {
        if (!cl->n) return FAIL_AT(c, "student.init.copy_layers", "missing: init kind copy_layers needs the list of teacher layers to copy");
        if (cl->n != L)
            return FAIL_AT(c, "student.init.copy_layers", "lists %d layers but the student has %d; give one teacher layer per student layer", cl->n, L);
    } else if (cl->n) {
        return FAIL_AT(c, "student.init.copy_layers", "given but student.init.kind is %s; drop one of them",
                       INITS[rc->student.init.kind]);
    }

    /* student shape sanity where it does not need the teacher */
    if (!from_t) {
        nx_model_config sh;
        nx_err e;
        if (nx_run_config_student_shape(rc, NULL, &sh, &e)) return FAIL_AT(c, "student", "%s", e.msg);
    } else {
        const nx_run_config *r = rc;
        if (r->student.num_heads && r->student.num_kv_heads && r->student.num_heads % r->student.num_kv_heads)
            return FAIL_AT(c, "student.num_kv_heads", "num_heads (%d) must be a multiple of num_kv_heads (%d)",
                           r->student.num_heads, r->student.num_kv_heads);
        if (r->student.head_dim % 2) return FAIL_AT(c, "student.head_dim", "must be even for rotary embeddings");
    }

    /* losses */
    const nx_layer_map *lm = &rc->loss.hidden.layer_map;
    if ((rc->loss.hidden.weight > 0 || rc->loss.attention > 0) && !lm->n)
        return FAIL_AT(c, "loss.hidden.layer_map", "missing: hidden-state and attention losses need "
                                                   "[student_layer, teacher_layer] pairs");
    for (int i = 0; i < lm->n; i++)
        if (lm->pair[i][0] >= L)
            return FAIL_AT(c, "loss.hidden.layer_map", "student layer %d out of range (the student has %d layers)",
                           lm->pair[i][0], L);

    /* optimizer */
    if (rc->optimizer.steps && rc->optimizer.tokens)
        return FAIL_AT(c, "optimizer.tokens", "give optimizer.steps or optimizer.tokens, not both");
    if (!rc->optimizer.steps && !rc->optimizer.tokens)
        return FAIL_AT(c, "optimizer.steps", "missing: give optimizer.steps (or a token budget, optimizer.tokens)");
    if (rc->optimizer.tokens) {
        int64_t per = (int64_t)rc->data.batch_size * rc->data.seq_len * rc->data.grad_accum;
        rc->optimizer.steps = (rc->optimizer.tokens + per - 1) / per;
    }
    if (rc->optimizer.min_lr > rc->optimizer.lr)
        return FAIL_AT(c, "optimizer.min_lr", "%g is above optimizer.lr (%g)", rc->optimizer.min_lr, rc->optimizer.lr);
    if (rc->optimizer.warmup_steps > rc->optimizer.steps)
        return FAIL_AT(c, "optimizer.warmup_steps", "%d is more than the %lld steps of the run",
                       rc->optimizer.warmup_steps, (long long)rc->optimizer.steps);

    /* eval */
    if (rc->eval.batches && rc->eval.tokens)
        return FAIL_AT(c, "eval.tokens", "give eval.batches or eval.tokens, not both");
    if (!rc->eval.metrics) return FAIL_AT(c, "eval.metrics", "name at least one of ppl, agreement, kl");
    if (rc->eval.every > 0 && !rc->data.validation[0])
        return FAIL_AT(c, "eval.every", "evaluating every %d steps needs data.validation", rc->eval.every);

    /* derived defaults */
    if (!rc->output.dir[0]) {
        char buf[3 * NX_RUN_PATH_MAX];
        snprintf(buf, sizeof buf, "%s/runs/%s", c->cwd, stem);
        if (strlen(buf) >= NX_RUN_PATH_MAX) return FAIL_AT(c, "output.dir", "default path too long; set output.dir");
        normalise(buf);
        copy_str(rc->output.dir, sizeof rc->output.dir, buf);
    }
    if (!rc->checkpoint.dir[0] && join(rc->checkpoint.dir, rc->output.dir, "checkpoints"))
        return FAIL_AT(c, "checkpoint.dir", "default path too long; set it");
    if (!rc->log.metrics_file[0] && join(rc->log.metrics_file, rc->output.dir, "metrics.jsonl"))
        return FAIL_AT(c, "log.metrics_file", "default path too long; set it");
    return NX_OK;
}

int nx_run_config_parse(nx_run_config *rc, const char *text, size_t len, const char *name,
                        const char *const *sets, int nsets, nx_err *err) {
    ctx c = {.err = err};
    nx_run_config_defaults(rc);
    if (!getcwd(c.cwd, sizeof c.cwd)) return nx_fail(err, "cannot read the current directory: %s", strerror(errno));
    const char *display = name ? name : "<config>";
    c.file = text ? display : NULL;
    /* the file's directory, absolute */
    char dir[3 * NX_RUN_PATH_MAX];
    const char *slash = strrchr(display, '/');
    if (!slash) snprintf(dir, sizeof dir, "%s", c.cwd);
    else if (display[0] == '/') snprintf(dir, sizeof dir, "%.*s", (int)(slash - display), display);
    else snprintf(dir, sizeof dir, "%s/%.*s", c.cwd, (int)(slash - display), display);
    if (strlen(dir) >= NX_RUN_PATH_MAX) return nx_fail(err, "%s: path too long", display);
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    normalise(dir);
    copy_str(c.file_dir, sizeof c.file_dir, dir);
    /* stem for the default output dir */
    char stem[256];
    snprintf(stem, sizeof stem, "%s", text && name ? (slash ? slash + 1 : display) : "run");
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    if (text && name) snprintf(rc->source, sizeof rc->source, "%s", name);

    if (text && read_yaml(text, len, display, false, &c.root, err)) return NX_ERR;
    int status = NX_ERR;
    if (c.root && !is_null(c.root) && c.root->type != N_MAP) {
        fail_node(&c, c.root, "(top level)", "a run config is a mapping of sections (teacher:, student:, data:, ...)");
        goto done;
    }
    for (int i = 0; i < nsets; i++)
        if (apply_set(&c, sets[i])) goto done;
    if (c.root && c.root->type == N_MAP && convert_section(&c, c.root, TOP, "", rc)) goto done;

    bool kind_given = false;
    {
        const node *s = c.root;
        int i = map_find(s, "student");
        s = i >= 0 ? s->kids[i] : NULL;
        i = map_find(s, "init");
        s = i >= 0 ? s->kids[i] : NULL;
        if (s && s->type == N_SCALAR && !is_null(s)) kind_given = true;
        if (s && s->type == N_MAP) {
            i = map_find(s, "kind");
            kind_given = i >= 0 && !is_null(s->kids[i]);
        }
    }
    if (validate(&c, rc, kind_given, stem)) goto done;
    status = NX_OK;
done:
    node_free(c.root);
    return status;
}

int nx_run_config_load(nx_run_config *rc, const char *path, const char *const *sets, int nsets, nx_err *err) {
    if (!path) return nx_run_config_parse(rc, NULL, 0, NULL, sets, nsets, err);
    FILE *f = fopen(path, "rb");
    if (!f) return nx_fail(err, "%s: cannot open run config: %s", path, strerror(errno));
    enum { MAXLEN = 1 << 20 };
    char *buf = nx_xmalloc(MAXLEN + 1);
    size_t n = fread(buf, 1, MAXLEN + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return nx_fail(err, "%s: read error", path);
    }
    if (n > MAXLEN) {
        free(buf);
        return nx_fail(err, "%s: larger than 1 MiB; is this really a run config?", path);
    }
    buf[n] = '\0';
    int rc_ = nx_run_config_parse(rc, buf, n, path, sets, nsets, err);
    free(buf);
    return rc_;
}

/* ---- student shape ------------------------------------------------------------ */
int nx_run_config_student_shape(const nx_run_config *rc, const nx_model_config *t, nx_model_config *out,
                                nx_err *err) {
    const struct nx_run_student *s = &rc->student;
    nx_model_config m;
    memset(&m, 0, sizeof m);
    bool explicit_ = false;
    if (s->from_teacher) {
        if (!t) return nx_fail(err, "student.from_teacher needs the teacher's config");
        m = *t;
    } else if (s->preset >= 0) {
        NX_ASSERT(s->preset < NPRESETS);
        m = PRESETS[s->preset].shape;
    } else {
        explicit_ = true;
        m.arch = NX_ARCH_LLAMA;
        m.V = 32000;
        m.max_pos = 2048;
        m.rope_theta = 10000.0f;
        m.eps = 1e-5f;
        m.bos_id = m.eos_id = -1;
        m.dtype = NX_F32;
        if (t) { /* what the student cannot know better than the teacher */
            m.max_pos = t->max_pos;
            m.rope_theta = t->rope_theta;
            m.eps = t->eps;
        }
    }
    if (t && !s->from_teacher) {
        m.V = t->V;
        m.bos_id = t->bos_id;
        m.eos_id = t->eos_id;
    }
    if (s->arch >= 0 && (nx_arch)s->arch != m.arch) {
        m.arch = (nx_arch)s->arch;
        m.qkv_bias = m.arch == NX_ARCH_QWEN2;
        m.o_bias = false;
    } else if (!s->from_teacher) {
        m.qkv_bias = m.arch == NX_ARCH_QWEN2;
        m.o_bias = false;
    }
    if (s->vocab_size) m.V = s->vocab_size;
    if (s->hidden_size) m.C = s->hidden_size;
    if (s->num_layers) m.L = s->num_layers;
    if (s->num_heads) m.NH = s->num_heads;
    if (s->num_kv_heads) m.KVH = s->num_kv_heads;
    else if (explicit_) m.KVH = m.NH;
    if (s->head_dim) m.HS = s->head_dim;
    else if (explicit_) m.HS = m.NH > 0 ? m.C / m.NH : 0;
    if (s->intermediate_size) m.F = s->intermediate_size;
    if (s->max_position_embeddings) m.max_pos = s->max_position_embeddings;
    if (s->rope_theta > 0) m.rope_theta = (float)s->rope_theta;
    if (s->rms_norm_eps > 0) m.eps = (float)s->rms_norm_eps;
    if (s->tie_word_embeddings >= 0) m.tied = s->tie_word_embeddings;
    else if (!s->from_teacher && s->preset < 0) m.tied = false;
    if (explicit_ && !s->head_dim && m.NH > 0 && m.C % m.NH)
        return nx_fail(err, "hidden_size %d is not a multiple of num_heads %d; give head_dim", m.C, m.NH);
    if (m.KVH > 0 && m.NH % m.KVH)
        return nx_fail(err, "num_heads (%d) must be a multiple of num_kv_heads (%d)", m.NH, m.KVH);
    if (nx_model_config_check(&m, err)) return NX_ERR;

    if (t) {
        if (s->from_teacher && m.L > t->L)
            return nx_fail(err, "student.num_layers %d is more than the teacher's %d layers", m.L, t->L);
        const nx_layer_list *cl = &s->init.copy_layers;
        if (s->init.kind == NX_INIT_AUTO && (m.V != t->V || m.C != t->C))
            return nx_fail(err, "student.init auto copies teacher layers chosen by importance, so the student needs "
                                "the teacher's vocabulary and hidden size (teacher %d x %d, student %d x %d)",
                           t->V, t->C, m.V, m.C);
        if (s->init.kind == NX_INIT_COPY_LAYERS) {
            for (int i = 0; i < cl->n; i++)
                if (cl->v[i] >= t->L)
                    return nx_fail(err, "student.init.copy_layers: teacher layer %d out of range (the teacher has %d layers, 0..%d)",
                                   cl->v[i], t->L, t->L - 1);
            if (m.V != t->V || m.C != t->C)
                return nx_fail(err, "student.init.copy_layers copies the teacher's embeddings, so the student needs its "
                                    "vocabulary and hidden size (teacher %d x %d, student %d x %d)",
                               t->V, t->C, m.V, m.C);
        }
        const nx_layer_map *lm = &rc->loss.hidden.layer_map;
        for (int i = 0; i < lm->n; i++)
            if (lm->pair[i][1] >= t->L)
                return nx_fail(err, "loss.hidden.layer_map: teacher layer %d out of range (the teacher has %d layers)",
                               lm->pair[i][1], t->L);
        if (rc->loss.hidden.weight > 0 && rc->loss.hidden.projection == NX_PROJECTION_NONE && m.C != t->C)
            return nx_fail(err, "loss.hidden.projection is none but the widths differ (student %d, teacher %d); "
                                "use projection: auto", m.C, t->C);
        if (rc->loss.alpha > 0 && m.V != t->V)
            return nx_fail(err, "distilling logits (loss.alpha %g > 0) needs the teacher's vocabulary: student %d, "
                                "teacher %d; drop student.vocab_size", rc->loss.alpha, m.V, t->V);
    }
    *out = m;
    return NX_OK;
}

/* ---- printing and hashing ------------------------------------------------- */
/* Shortest %g that reads back to the same double. */
static void fmt_real(char *buf, size_t n, double v) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void fmt_string(char *buf, size_t n, const char *s) {
    size_t u = 0;
    if (u + 1 < n) buf[u++] = '"';
    for (; *s && u + 6 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') u += snprintf(buf + u, n - u, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) u += snprintf(buf + u, n - u, "\\x%02x", ch);
        else buf[u++] = (char)ch;
    }
    if (u + 1 < n) buf[u++] = '"';
    buf[u] = '\0';
}

static const char *enum_name(const field *f, int v) {
    for (int i = 0; f->names[i]; i++)
        if ((f->values ? f->values[i] : i) == v) return f->names[i];
    NX_ASSERT(0);
    return "?";
}

/* The value of a leaf as YAML; returns false when it is "not given". */
static bool fmt_value(const field *f, const nx_run_config *rc, char *buf, size_t n) {
    const void *p = (const char *)rc + f->off;
    size_t u = 0;
    buf[0] = '\0';
    switch (f->t) {
    case T_INT:
        if ((f->flags & F_OPT) && !*(const int *)p) return false;
        snprintf(buf, n, "%d", *(const int *)p);
        return true;
    case T_I64:
        if ((f->flags & F_OPT) && !*(const int64_t *)p) return false;
        snprintf(buf, n, "%lld", (long long)*(const int64_t *)p);
        return true;
    case T_REAL:
        if ((f->flags & F_OPT) && !*(const double *)p) return false;
        fmt_real(buf, n, *(const double *)p);
        return true;
    case T_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        return true;
    case T_TRI:
        if (*(const int *)p < 0) return false;
        snprintf(buf, n, "%s", *(const int *)p ? "true" : "false");
        return true;
    case T_STR:
    case T_PATH:
        if (!*(const char *)p) return false;
        fmt_string(buf, n, p);
        return true;
    case T_ENUM:
        if ((f->flags & F_OPT) && *(const int *)p < 0) return false;
        snprintf(buf, n, "%s", enum_name(f, *(const int *)p));
        return true;
    case T_PRESET:
        if (*(const int *)p < 0) return false;
        snprintf(buf, n, "%s", PRESETS[*(const int *)p].name);
        return true;
    case T_FLAGS: {
        unsigned bits = *(const unsigned *)p;
        u += snprintf(buf + u, n - u, "[");
        for (int i = 0, k = 0; f->names[i]; i++)
            if (bits & (1u << i)) u += snprintf(buf + u, n - u, "%s%s", k++ ? ", " : "", f->names[i]);
        snprintf(buf + u, n - u, "]");
        return true;
    }
    case T_BETAS: {
        char a[32], b[32];
        fmt_real(a, sizeof a, ((const double *)p)[0]);
        fmt_real(b, sizeof b, ((const double *)p)[1]);
        snprintf(buf, n, "[%s, %s]", a, b);
        return true;
    }
    case T_LAYERS: {
        const nx_layer_list *l = p;
        if (!l->n) return false;
        u += snprintf(buf + u, n - u, "[");
        for (int i = 0; i < l->n && u < n; i++) u += snprintf(buf + u, n - u, "%s%d", i ? ", " : "", l->v[i]);
        if (u < n) snprintf(buf + u, n - u, "]");
        return true;
    }
    case T_PAIRS: {
        const nx_layer_map *m = p;
        if (!m->n) return false;
        u += snprintf(buf + u, n - u, "[");
        for (int i = 0; i < m->n && u < n; i++)
            u += snprintf(buf + u, n - u, "%s[%d, %d]", i ? ", " : "", m->pair[i][0], m->pair[i][1]);
        if (u < n) snprintf(buf + u, n - u, "]");
        return true;
    }
    default:
        NX_ASSERT(0);
        return false;
    }
}

enum { VALBUF = 8 * NX_RUN_MAX_LAYERS * 12 + 64 };

static void print_section(FILE *f, const field *kids, const nx_run_config *rc, int indent) {
    char *buf = nx_xmalloc(VALBUF);
    for (const field *k = kids; k->name; k++) {
        if (k->t == T_SEC) {
            fprintf(f, "%*s%s:\n", indent, "", k->name);
            if (k->kids == STUDENT)
                fprintf(f, "%*s# shape keys not listed come from the preset, the teacher or the defaults\n",
                        indent + 2, "");
            print_section(f, k->kids, rc, indent + 2);
            continue;
        }
        /* a token budget is printed instead of the steps computed from it */
        if (kids == OPTIM && !strcmp(k->name, "steps") && rc->optimizer.tokens) continue;
        if (fmt_value(k, rc, buf, VALBUF)) fprintf(f, "%*s%s: %s\n", indent, "", k->name, buf);
    }
    free(buf);
}

void nx_run_config_print(FILE *f, const nx_run_config *rc) {
    fprintf(f, "# nexus run config, fully resolved%s%s\n", rc->source[0] ? " from " : "", rc->source);
    print_section(f, TOP, rc, 0);
}

static void fnv(uint64_t *h, const char *s) {
    for (; *s; s++) {
        *h ^= (unsigned char)*s;
        *h *= 0x100000001b3ULL;
    }
}

static void hash_section(uint64_t *h, const field *kids, const nx_run_config *rc, const char *prefix, char *buf) {
    for (const field *k = kids; k->name; k++) {
        if (k->flags & F_NOHASH) continue;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->name);
        if (k->t == T_SEC) {
            hash_section(h, k->kids, rc, path, buf);
            continue;
        }
        fnv(h, path);
        fnv(h, "=");
        fnv(h, fmt_value(k, rc, buf, VALBUF) ? buf : "~");
        fnv(h, "\n");
    }
}

uint64_t nx_run_config_hash(const nx_run_config *rc) {
    uint64_t h = 0xcbf29ce484222325ULL;
    char *buf = nx_xmalloc(VALBUF);
    fnv(&h, "nexus-run-config-v1\n");
    hash_section(&h, TOP, rc, "", buf);
    free(buf);
    return h;
}
