/* yaml.h — YAML text (libyaml) as a small tree of nodes that remember where
 * they came from, so that whoever checks the values can name the place of a
 * bad one: "FILE:LINE:COL" for a document read from a file, or a label such
 * as "--set optimizer.lr=abc" for a value given on the command line.
 *
 * The reader knows YAML and nothing of what the keys mean: scalars stay
 * text (the caller converts them), aliases, multi-document streams and
 * duplicate keys are rejected, mapping keys must be scalars, and nesting is
 * bounded (NX_YAML_MAX_DEPTH) so that hostile input cannot exhaust the stack.
 * A plain (unquoted) empty, `~` or `null` scalar is null: "not given". */
#ifndef NEXUS_YAML_H
#define NEXUS_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "nexus/core.h"

#define NX_YAML_MAX_DEPTH 32

typedef enum nx_yaml_kind { NX_YAML_SCALAR, NX_YAML_SEQ, NX_YAML_MAP } nx_yaml_kind;

typedef struct nx_yaml {
    nx_yaml_kind kind;
    char *text;             /* scalar: its value (holds no NUL byte) */
    bool plain;             /* scalar written unquoted (only those can be null) */
    int n, cap;             /* entries, allocated */
    struct nx_yaml **keys;  /* map: the key scalars, (n) */
    struct nx_yaml **kids;  /* map values or list items, (n) */
    char *origin;           /* file name, or the label of a value; owned */
    int line, col;          /* 1-based position in origin; 0: the origin alone names it */
} nx_yaml;

/* Parse a whole stream of at most one document read from `origin` (a name
 * for messages). *root is NULL for an empty stream. `noun` names the
 * document in messages ("run config": "a run config holds one YAML
 * document"). On error *root is NULL and err names ORIGIN:LINE:COL. */
int nx_yaml_parse(const char *text, size_t len, const char *origin, const char *noun, nx_yaml **root,
                  nx_err *err);
/* Parse one value given inline — a scalar, a flow list "[0, 2]" or a flow
 * mapping "{a: 1}" — whose nodes are all located by `label` (e.g. "--set
 * a.b=[0, 2]"). Empty text is a null scalar. */
int nx_yaml_parse_value(const char *text, const char *label, const char *noun, nx_yaml **out,
                        nx_err *err);

/* A new node at origin:line:col (line 0: located by origin alone). */
nx_yaml *nx_yaml_new(nx_yaml_kind kind, const char *origin, int line, int col);
/* A new scalar holding a copy of text, located by origin alone. */
nx_yaml *nx_yaml_new_scalar(const char *text, const char *origin);
/* Append an entry: (key, val) to a map, val to a list. Takes ownership. */
void nx_yaml_push(nx_yaml *x, nx_yaml *key, nx_yaml *val);
void nx_yaml_free(nx_yaml *x);

/* NULL, or a plain empty / ~ / null / Null / NULL scalar. */
bool nx_yaml_is_null(const nx_yaml *x);
/* Index of key in map x, or -1 (also when x is NULL or not a map). */
int nx_yaml_find(const nx_yaml *x, const char *key);
/* "ORIGIN:LINE:COL", or ORIGIN when the node has no position. */
const char *nx_yaml_where(const nx_yaml *x, char *buf, size_t n);
/* "a mapping", "a list" or "a scalar", for messages. */
const char *nx_yaml_describe(const nx_yaml *x);

#endif
