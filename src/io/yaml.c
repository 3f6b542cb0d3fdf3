/* yaml.c — libyaml's event parser into the located node tree of yaml.h.
 *
 * libyaml offers two APIs: a document loader (yaml_document_t) and an event
 * parser. The loader resolves aliases silently and keeps marks only per
 * node, in a flat array we would have to walk anyway; the event parser lets
 * one recursive function build exactly the tree we want, reject what a
 * configuration should not contain (aliases, a second document, duplicate
 * keys, non-scalar keys) at the event that shows it, and stop at a depth
 * bound before the C stack is at risk.
 *
 * A document read from a file gives every node its line and column; a value
 * given inline (nx_yaml_parse_value) is one short line whose positions mean
 * nothing to the user, so its nodes carry only the label they were given. */
#include "nexus/yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { WHERE = 1200 }; /* a location: a path of up to ~1 KiB plus ":LINE:COL" */

nx_yaml *nx_yaml_new(nx_yaml_kind kind, const char *origin, int line, int col) {
    nx_yaml *x = nx_xcalloc(1, sizeof *x);
    x->kind = kind;
    x->origin = strdup(origin);
    NX_ASSERTM(x->origin, "out of memory");
    x->line = line;
    x->col = col;
    return x;
}

nx_yaml *nx_yaml_new_scalar(const char *text, const char *origin) {
    nx_yaml *x = nx_yaml_new(NX_YAML_SCALAR, origin, 0, 0);
    x->text = strdup(text);
    NX_ASSERTM(x->text, "out of memory");
    x->plain = true;
    return x;
}

void nx_yaml_free(nx_yaml *x) {
    if (!x) return;
    for (int i = 0; i < x->n; i++) {
        if (x->keys) nx_yaml_free(x->keys[i]);
        nx_yaml_free(x->kids[i]);
    }
    free(x->keys);
    free(x->kids);
    free(x->text);
    free(x->origin);
    free(x);
}

/* *arr of n entries grown to cap entries. */
static void grow(nx_yaml ***arr, int n, int cap) {
    nx_yaml **a = nx_xmalloc(sizeof *a * (size_t)cap);
    if (n) memcpy(a, *arr, sizeof *a * (size_t)n);
    free(*arr);
    *arr = a;
}

void nx_yaml_push(nx_yaml *x, nx_yaml *key, nx_yaml *val) {
    NX_ASSERT(x->kind != NX_YAML_SCALAR && (key != NULL) == (x->kind == NX_YAML_MAP));
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 8;
        grow(&x->kids, x->n, x->cap);
        if (x->kind == NX_YAML_MAP) grow(&x->keys, x->n, x->cap);
    }
    if (x->kind == NX_YAML_MAP) x->keys[x->n] = key;
    x->kids[x->n++] = val;
}

bool nx_yaml_is_null(const nx_yaml *x) {
    if (!x) return true;
    if (x->kind != NX_YAML_SCALAR || !x->plain) return false;
    const char *s = x->text;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

int nx_yaml_find(const nx_yaml *x, const char *key) {
    if (!x || x->kind != NX_YAML_MAP) return -1;
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->keys[i]->text, key)) return i;
    return -1;
}

const char *nx_yaml_where(const nx_yaml *x, char *buf, size_t n) {
    if (x->line > 0) snprintf(buf, n, "%s:%d:%d", x->origin, x->line, x->col);
    else snprintf(buf, n, "%s", x->origin);
    return buf;
}

const char *nx_yaml_describe(const nx_yaml *x) {
    return x->kind == NX_YAML_MAP ? "a mapping" : x->kind == NX_YAML_SEQ ? "a list" : "a scalar";
}

/* ---- the reader ---- */
typedef struct {
    yaml_parser_t p;
    const char *origin, *noun;
    bool positions;  /* a file: nodes get line and column */
    nx_err *err;
} reader;

static const char *mark_where(const reader *r, yaml_mark_t m, char *buf, size_t n) {
    if (r->positions) snprintf(buf, n, "%s:%d:%d", r->origin, (int)m.line + 1, (int)m.column + 1);
    else snprintf(buf, n, "%s", r->origin);
    return buf;
}

static nx_yaml *node_at(const reader *r, nx_yaml_kind kind, yaml_mark_t m) {
    return r->positions ? nx_yaml_new(kind, r->origin, (int)m.line + 1, (int)m.column + 1)
                        : nx_yaml_new(kind, r->origin, 0, 0);
}

static int next_event(reader *r, yaml_event_t *ev) {
    if (yaml_parser_parse(&r->p, ev)) return NX_OK;
    const char *what = r->p.problem ? r->p.problem : "malformed YAML";
    const char *ctx = r->p.context ? r->p.context : "";
    char where[WHERE];
    return nx_fail(r->err, "%s: invalid YAML%s: %s%s%s", mark_where(r, r->p.problem_mark, where, sizeof where),
                   r->positions ? "" : " value", what, *ctx ? " " : "", ctx);
}

/* Builds the node that starts with ev (consumed) into *out. */
static int build(reader *r, yaml_event_t *ev, nx_yaml **out, int depth) {
    char where[WHERE];
    yaml_mark_t m = ev->start_mark;
    *out = NULL;
    if (depth > NX_YAML_MAX_DEPTH) {
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: nested deeper than %d levels", mark_where(r, m, where, sizeof where),
                       NX_YAML_MAX_DEPTH);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        nx_yaml *x = node_at(r, NX_YAML_SCALAR, m);
        x->text = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        NX_ASSERTM(x->text, "out of memory");
        x->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        bool nul = strlen(x->text) != ev->data.scalar.length;
        yaml_event_delete(ev);
        if (nul) {
            nx_fail(r->err, "%s: NUL byte inside a value", nx_yaml_where(x, where, sizeof where));
            nx_yaml_free(x);
            return NX_ERR;
        }
        *out = x;
        return NX_OK;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        yaml_event_delete(ev);
        nx_yaml *x = node_at(r, map ? NX_YAML_MAP : NX_YAML_SEQ, m);
        for (;;) {
            yaml_event_t e;
            if (next_event(r, &e)) goto fail;
            if (e.type == end) {
                yaml_event_delete(&e);
                break;
            }
            nx_yaml *key = NULL, *val = NULL;
            if (build(r, &e, map ? &key : &val, depth + 1)) goto fail;
            if (map) {
                int bad = NX_OK;
                if (key->kind != NX_YAML_SCALAR)
                    bad = nx_fail(r->err, "%s: mapping keys must be plain words",
                                  nx_yaml_where(key, where, sizeof where));
                else if (nx_yaml_find(x, key->text) >= 0)
                    bad = nx_fail(r->err, "%s: duplicate key `%s` (each key may appear once)",
                                  nx_yaml_where(key, where, sizeof where), key->text);
                yaml_event_t e2;
                if (bad || next_event(r, &e2) || build(r, &e2, &val, depth + 1)) {
                    nx_yaml_free(key);
                    goto fail;
                }
            }
            nx_yaml_push(x, key, val);
        }
        *out = x;
        return NX_OK;
    fail:
        nx_yaml_free(x);
        return NX_ERR;
    }
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: YAML aliases (*name) are not supported in %ss; write the value out",
                       mark_where(r, m, where, sizeof where), r->noun);
    default:
        yaml_event_delete(ev);
        return nx_fail(r->err, "%s: unexpected YAML event", r->origin);
    }
}

static int read_stream(const char *text, size_t len, const char *origin, const char *noun, bool positions,
                       nx_yaml **root, nx_err *err) {
    reader r = {.origin = origin, .noun = noun, .positions = positions, .err = err};
    *root = NULL;
    if (!yaml_parser_initialize(&r.p)) return nx_fail(err, "%s: cannot initialise libyaml", origin);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    int rc = NX_ERR, docs = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(&r, &ev)) goto done;
        yaml_event_type_t t = ev.type;
        yaml_mark_t m = ev.start_mark;
        if (t != YAML_STREAM_START_EVENT && t != YAML_DOCUMENT_START_EVENT && t != YAML_DOCUMENT_END_EVENT &&
            t != YAML_STREAM_END_EVENT) {
            if (build(&r, &ev, root, 0)) goto done;
            continue;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) break;
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            char where[WHERE];
            nx_fail(err, "%s: a %s holds one YAML document; remove the second `---`",
                    mark_where(&r, m, where, sizeof where), noun);
            goto done;
        }
    }
    rc = NX_OK;
done:
    if (rc) {
        nx_yaml_free(*root);
        *root = NULL;
    }
    yaml_parser_delete(&r.p);
    return rc;
}

int nx_yaml_parse(const char *text, size_t len, const char *origin, const char *noun, nx_yaml **root,
                  nx_err *err) {
    return read_stream(text, len, origin, noun, true, root, err);
}

int nx_yaml_parse_value(const char *text, const char *label, const char *noun, nx_yaml **out, nx_err *err) {
    if (read_stream(text, strlen(text), label, noun, false, out, err)) return NX_ERR;
    if (!*out) *out = nx_yaml_new_scalar("", label); /* empty value: null */
    return NX_OK;
}
