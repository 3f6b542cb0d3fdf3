/* internal.h — what the files of the run-config module share (not public).
 *
 * The module turns YAML (nx_yaml trees) into an nx_run_config in stages,
 * one file each: load.c reads the file and drives the stages; overrides.c
 * grafts each --set value into the tree; convert.c walks the schema
 * (schema.c) to fill the struct with checked values; validate.c does the
 * cross-key checks and derived defaults. print.c and hash.c walk the same
 * schema back out; presets.c and student_shape.c resolve the student. */
#ifndef NEXUS_APP_RUN_CONFIG_INTERNAL_H
#define NEXUS_APP_RUN_CONFIG_INTERNAL_H

#include <stddef.h>

#include "nexus/run_config.h"
#include "nexus/yaml.h"

/* ---- the schema (schema.c) ------------------------------------------------ */
typedef enum {
    T_SEC, T_INT, T_I64, T_REAL, T_BOOL, T_TRI, T_STR, T_PATH, T_ENUM, T_PRESET, T_ARCH,
    T_LAYERS, T_PAIRS, T_BETAS, T_FLAGS
} cfg_type;

enum {
    F_GT = 1,       /* lower bound is exclusive */
    F_NOHASH = 2,   /* excluded from nx_run_config_hash */
    F_OPT = 4,      /* 0 / -1 / "" / empty list means "not given": omitted when printed */
    F_LT = 8,       /* upper bound is exclusive */
    F_HASHGIVEN = 16, /* hashed only when given (with F_OPT): a key added after hashes were pinned */
};

typedef struct cfg_field {
    const char *name;
    cfg_type t;
    size_t off, size;              /* offset into nx_run_config, buffer size for strings */
    const struct cfg_field *kids;  /* T_SEC: children, ended by a row with name NULL */
    const char *shorthand;         /* T_SEC: child set by a scalar value */
    const char *const *names;      /* T_ENUM, T_FLAGS: spellings, NULL-ended */
    const int *values;             /* T_ENUM: value of each spelling (NULL: index) */
    double lo, hi;                 /* numeric range (elements for lists) */
    unsigned flags;
} cfg_field;

#define CFG_BIG 1e300              /* "no upper bound" */

extern const cfg_field CFG_TOP[], CFG_STUDENT[], CFG_OPTIM[];

const cfg_field *cfg_field_find(const cfg_field *kids, const char *name);
/* The names of kids into out (room for 32); returns the count. */
int cfg_field_names(const cfg_field *kids, const char **out);
/* The spellings of an enum-like field (T_ENUM, T_PRESET, T_ARCH) into out
 * (room for 16), NULL-ended; returns the count. */
int cfg_enum_names(const cfg_field *f, const char **out);
/* The spelling of value v of an enum-like field. */
const char *cfg_enum_name(const cfg_field *f, int v);
/* Appends "; did you mean `x`?" (close match) or "; valid: a, b, c" to buf. */
void cfg_suggest(char *buf, size_t n, const char *word, const char *const *names, int count);

/* ---- presets (presets.c) --------------------------------------------------- */
extern const nx_run_preset CFG_PRESETS[];
extern const int CFG_NPRESETS;

/* ---- paths (paths.c); buffers of NX_RUN_PATH_MAX bytes --------------------- */
/* Copy src into dst of size bytes, cutting it short if it must. */
void cfg_copy_str(char *dst, size_t size, const char *src);
/* Lexically normalise an absolute path in place: collapse //, ".", "x/..". */
void cfg_normalise(char *p);
/* dst = dir/name; NX_ERR when too long. */
int cfg_join(char *dst, const char *dir, const char *name);

/* ---- conversion (convert.c) ------------------------------------------------ */
typedef struct cfg_ctx {
    nx_yaml *root;
    const char *file;                /* display name of the config file; NULL: none */
    char file_dir[NX_RUN_PATH_MAX];  /* absolute directory of the config file */
    char cwd[NX_RUN_PATH_MAX];
    nx_err *err;
} cfg_ctx;

/* Fails with "WHERE: PATH: message", WHERE the node's location (or the file
 * when x is NULL). Returns NX_ERR. */
int cfg_fail(cfg_ctx *c, const nx_yaml *x, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As cfg_fail, at the deepest node given along the dotted key path. */
int cfg_fail_at(cfg_ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Converts map m against the schema rows kids into rc (prefix: the key path of m). */
int cfg_convert_section(cfg_ctx *c, const nx_yaml *m, const cfg_field *kids, const char *prefix,
                        nx_run_config *rc);

/* ---- the other stages ------------------------------------------------------- */
/* Grafts one "KEY.PATH=VALUE" override into c->root (overrides.c). */
int cfg_apply_set(cfg_ctx *c, const char *arg);
/* Cross-key checks and derived defaults (validate.c). */
int cfg_validate(cfg_ctx *c, nx_run_config *rc, bool init_kind_given, const char *stem);

/* ---- back out (print.c) ------------------------------------------------------ */
enum { CFG_VALBUF = 8 * NX_RUN_MAX_LAYERS * 12 + 64 };
/* The value of leaf f as YAML into buf (CFG_VALBUF bytes); false when it is
 * "not given". */
bool cfg_fmt_value(const cfg_field *f, const nx_run_config *rc, char *buf, size_t n);

#endif
