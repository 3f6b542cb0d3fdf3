/* convert.c — the YAML tree into nx_run_config, one schema walk.
 *
 * Every key of the tree is looked up in the schema (unknown ones fail with
 * a did-you-mean), and every value is converted by its row's type and
 * checked against its range. A null value ("not given") keeps the default,
 * so a config only states what differs. Messages name the node's location
 * ("FILE:LINE:COL" or "--set ARG"), the key path, what was expected and
 * what was found.
 *
 * Relative paths resolve against the config file's directory when written
 * in the file, against the current directory when given with --set: each
 * is relative to where the user wrote it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { WHERE = NX_RUN_PATH_MAX + 64 };

static int vfail(cfg_ctx *c, const nx_yaml *x, const char *path, const char *fmt, va_list ap) {
    char where[WHERE], msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (x) nx_yaml_where(x, where, sizeof where);
    else snprintf(where, sizeof where, "%s", c->file ? c->file : "(no config file)");
    return nx_fail(c->err, "%s: %s: %s", where, path, msg);
}

int cfg_fail(cfg_ctx *c, const nx_yaml *x, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, x, path, fmt, ap);
    va_end(ap);
    return NX_ERR;
}

int cfg_fail_at(cfg_ctx *c, const char *path, const char *fmt, ...) {
    /* the deepest node along the key path locates a cross-key error */
    const nx_yaml *cur = c->root;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *save = NULL;
    for (char *s = strtok_r(tmp, ".", &save); s && cur; s = strtok_r(NULL, ".", &save)) {
        int i = nx_yaml_find(cur, s);
        if (i < 0) break;
        cur = cur->kids[i];
    }
    va_list ap;
    va_start(ap, fmt);
    vfail(c, cur, path, fmt, ap);
    va_end(ap);
    return NX_ERR;
}

/* ---- scalars ---- */
static int scalar_real(cfg_ctx *c, const nx_yaml *x, const char *path, double *out) {
    if (x->kind != NX_YAML_SCALAR)
        return cfg_fail(c, x, path, "expected a number, got %s", nx_yaml_describe(x));
    const char *s = x->text;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || end == s || errno == ERANGE || !isfinite(v) || strpbrk(s, "xX"))
        return cfg_fail(c, x, path, "expected a number, got \"%s\"", s);
    *out = v;
    return NX_OK;
}

static int check_range(cfg_ctx *c, const nx_yaml *x, const char *path, const cfg_field *f, double v) {
    bool lo_ok = (f->flags & F_GT) ? v > f->lo : v >= f->lo;
    bool hi_ok = (f->flags & F_LT) ? v < f->hi : v <= f->hi;
    if (lo_ok && hi_ok) return NX_OK;
    if (f->hi >= CFG_BIG)
        return cfg_fail(c, x, path, "must be %s %g, got %g", (f->flags & F_GT) ? ">" : ">=", f->lo, v);
    return cfg_fail(c, x, path, "must be in %c%g, %g%c, got %g", (f->flags & F_GT) ? '(' : '[', f->lo, f->hi,
                    (f->flags & F_LT) ? ')' : ']', v);
}

static int scalar_int(cfg_ctx *c, const nx_yaml *x, const char *path, const cfg_field *f, int64_t *out) {
    if (x->kind != NX_YAML_SCALAR)
        return cfg_fail(c, x, path, "expected an integer, got %s", nx_yaml_describe(x));
    double v;
    const char *s = x->text;
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end && errno == 0) {
        v = (double)i;
    } else { /* accept exponent forms such as 1e6 when integral */
        errno = 0;
        v = strtod(s, &end);
        if (!*s || *end || errno == ERANGE || !isfinite(v) || strpbrk(s, "xX"))
            return cfg_fail(c, x, path, "expected an integer, got \"%s\"", s);
        if (v != floor(v)) return cfg_fail(c, x, path, "expected an integer, got %s", s);
        /* in range before the cast: a double past 2^63 has no long long */
        if (check_range(c, x, path, f, v)) return NX_ERR;
        if (fabs(v) >= 9223372036854775807.0) return cfg_fail(c, x, path, "%s is too large an integer", s);
        i = (long long)v;
    }
    if (check_range(c, x, path, f, v)) return NX_ERR;
    *out = i;
    return NX_OK;
}

static int scalar_bool(cfg_ctx *c, const nx_yaml *x, const char *path, bool *out) {
    if (x->kind != NX_YAML_SCALAR)
        return cfg_fail(c, x, path, "expected true or false, got %s", nx_yaml_describe(x));
    const char *s = x->text;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *out = true, NX_OK;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *out = false, NX_OK;
    return cfg_fail(c, x, path, "expected true or false, got \"%s\"", s);
}

/* Index of x's word among names (NULL-ended). */
static int word_index(cfg_ctx *c, const nx_yaml *x, const char *path, const char *const *names, int *out) {
    if (x->kind != NX_YAML_SCALAR)
        return cfg_fail(c, x, path, "expected one of the words below, got %s", nx_yaml_describe(x));
    int n = 0;
    while (names[n]) n++;
    for (int i = 0; i < n; i++)
        if (!strcmp(x->text, names[i])) return *out = i, NX_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "unknown value \"%s\"", x->text);
    cfg_suggest(msg, sizeof msg, x->text, names, n);
    return cfg_fail(c, x, path, "%s", msg);
}

static int make_path(cfg_ctx *c, const nx_yaml *x, const char *path, char *dst, size_t size) {
    if (x->kind != NX_YAML_SCALAR) return cfg_fail(c, x, path, "expected a path, got %s", nx_yaml_describe(x));
    const char *s = x->text;
    if (!*s) return cfg_fail(c, x, path, "empty path");
    char buf[3 * NX_RUN_PATH_MAX];
    if (s[0] == '/') snprintf(buf, sizeof buf, "%s", s);
    else snprintf(buf, sizeof buf, "%s/%s", x->line > 0 ? c->file_dir : c->cwd, s);
    if (strlen(buf) >= size) return cfg_fail(c, x, path, "path longer than %zu bytes", size - 1);
    cfg_normalise(buf);
    cfg_copy_str(dst, size, buf);
    return NX_OK;
}

/* ---- lists ---- */
static int convert_list(cfg_ctx *c, const nx_yaml *x, const cfg_field *f, const char *path, void *p) {
    switch (f->t) {
    case T_FLAGS: {
        if (x->kind != NX_YAML_SEQ) return cfg_fail(c, x, path, "expected a list such as [ppl, agreement, kl]");
        unsigned bits = 0;
        for (int i = 0; i < x->n; i++) {
            int k;
            if (word_index(c, x->kids[i], path, f->names, &k)) return NX_ERR;
            bits |= 1u << k;
        }
        *(unsigned *)p = bits;
        return NX_OK;
    }
    case T_BETAS:
        if (x->kind != NX_YAML_SEQ || x->n != 2)
            return cfg_fail(c, x, path, "expected a list of two numbers such as [0.9, 0.95]");
        for (int i = 0; i < 2; i++) {
            double v;
            if (scalar_real(c, x->kids[i], path, &v) || check_range(c, x->kids[i], path, f, v)) return NX_ERR;
            ((double *)p)[i] = v;
        }
        return NX_OK;
    case T_LAYERS: {
        if (x->kind != NX_YAML_SEQ)
            return cfg_fail(c, x, path, "expected a list of layer indices such as [0, 2, 4]");
        nx_layer_list *l = p;
        if (x->n > NX_RUN_MAX_LAYERS) return cfg_fail(c, x, path, "more than %d layers", NX_RUN_MAX_LAYERS);
        l->n = 0;
        for (int i = 0; i < x->n; i++) {
            int64_t v;
            if (scalar_int(c, x->kids[i], path, f, &v)) return NX_ERR;
            for (int j = 0; j < l->n; j++)
                if (l->v[j] == v) return cfg_fail(c, x->kids[i], path, "layer %d is listed twice", (int)v);
            l->v[l->n++] = (int)v;
        }
        return NX_OK;
    }
    case T_PAIRS: {
        if (x->kind != NX_YAML_SEQ)
            return cfg_fail(c, x, path, "expected a list of [student_layer, teacher_layer] pairs");
        nx_layer_map *m = p;
        if (x->n > NX_RUN_MAX_LAYERS) return cfg_fail(c, x, path, "more than %d pairs", NX_RUN_MAX_LAYERS);
        m->n = 0;
        for (int i = 0; i < x->n; i++) {
            const nx_yaml *e = x->kids[i];
            if (e->kind != NX_YAML_SEQ || e->n != 2)
                return cfg_fail(c, e, path, "each entry must be a pair [student_layer, teacher_layer]");
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

/* ---- fields and sections ---- */
static int convert_field(cfg_ctx *c, const nx_yaml *x, const cfg_field *f, const char *path, nx_run_config *rc) {
    void *p = (char *)rc + f->off;
    if (f->t == T_SEC) {
        if (nx_yaml_is_null(x)) return NX_OK;
        if (x->kind == NX_YAML_MAP) return cfg_convert_section(c, x, f->kids, path, rc);
        if (x->kind == NX_YAML_SCALAR && f->shorthand) {
            const cfg_field *k = cfg_field_find(f->kids, f->shorthand);
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, k->name);
            return convert_field(c, x, k, sub, rc);
        }
        return cfg_fail(c, x, path, "expected a mapping of keys, got %s", nx_yaml_describe(x));
    }
    if (nx_yaml_is_null(x)) return NX_OK; /* not given: keep the default */
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
        if (x->kind != NX_YAML_SCALAR) return cfg_fail(c, x, path, "expected a string, got %s", nx_yaml_describe(x));
        if (!*x->text) return cfg_fail(c, x, path, "must not be empty");
        if (strlen(x->text) >= f->size) return cfg_fail(c, x, path, "longer than %zu bytes", f->size - 1);
        snprintf((char *)p, f->size, "%s", x->text);
        return NX_OK;
    case T_PATH:
        return make_path(c, x, path, (char *)p, f->size);
    case T_ENUM:
    case T_PRESET:
    case T_ARCH: {
        const char *names[16];
        int i;
        cfg_enum_names(f, names);
        if (word_index(c, x, path, names, &i)) return NX_ERR;
        *(int *)p = f->values ? f->values[i] : i;
        return NX_OK;
    }
    default:
        return convert_list(c, x, f, path, p);
    }
}

int cfg_convert_section(cfg_ctx *c, const nx_yaml *m, const cfg_field *kids, const char *prefix, nx_run_config *rc) {
    for (int i = 0; i < m->n; i++) {
        const nx_yaml *k = m->keys[i];
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        const cfg_field *f = cfg_field_find(kids, k->text);
        if (!f) {
            const char *names[32];
            int n = cfg_field_names(kids, names);
            char msg[512] = "unknown key";
            cfg_suggest(msg, sizeof msg, k->text, names, n);
            return cfg_fail(c, k, path, "%s", msg);
        }
        if (convert_field(c, m->kids[i], f, path, rc)) return NX_ERR;
    }
    return NX_OK;
}
