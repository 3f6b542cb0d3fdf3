/* lib.c — what a template can call: filters (trim, upper, lower, title,
 * capitalize, length, count, first, last, join, default/d, tojson, string,
 * int, float, abs, list, reverse, items, replace, safe, escape/e, map,
 * select, reject, selectattr, rejectattr), tests (defined, undefined,
 * none, boolean, true, false, integer, float, number, string, mapping,
 * iterable, sequence, callable, even, odd, divisibleby, equalto/eq/==,
 * ne/!=, lt, le, gt, ge, in, lower, upper), methods (str.strip/lstrip/
 * rstrip/upper/lower/title/capitalize/startswith/endswith/split/replace/
 * find/count/join, dict.items/keys/values/get) and globals
 * (raise_exception as transformers defines it, namespace, range, dict,
 * strftime_now). An unknown name fails the render (NX_RENDER_FAILED),
 * which the server answers with the fallback template. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* positional argument i, or keyword name, or NULL */
jv *tv_arg(args *a, int i, const char *name) {
    int pos = 0;
    for (int k = 0; k < a->n; k++) {
        if (a->kw[k] ? name && !strcmp(a->kw[k], name) : pos++ == i) return &a->v[k];
    }
    return NULL;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static jv strip(rs *R, jv s, jv *chars, bool left, bool right) {
    size_t b = 0, e = s.n;
    if (chars && chars->t == J_STR) {
        while (left && b < e && memchr(chars->s, s.s[b], chars->n)) b++;
        while (right && e > b && memchr(chars->s, s.s[e - 1], chars->n)) e--;
    } else {
        while (left && b < e && is_ws(s.s[b])) b++;
        while (right && e > b && is_ws(s.s[e - 1])) e--;
    }
    (void)R;
    return (jv){.t = J_STR, .s = s.s + b, .n = e - b};
}

jv tv_casemap(rs *R, jv s, int mode) { /* 0 upper, 1 lower, 2 title, 3 capitalize (ASCII letters) */
    char *o = tpl_strndup(&R->a, s.s, s.n);
    bool prev_alpha = false;
    for (size_t i = 0; i < s.n; i++) {
        char c = o[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool up = mode == 0 || (mode == 2 && !prev_alpha) || (mode == 3 && i == 0);
        if (up && c >= 'a' && c <= 'z') o[i] = (char)(c - 32);
        else if (!up && c >= 'A' && c <= 'Z') o[i] = (char)(c + 32);
        prev_alpha = alpha;
    }
    return (jv){.t = J_STR, .s = o, .n = s.n};
}

static jv replace(rs *R, jv s, jv old, jv new) {
    if (old.t != J_STR || new.t != J_STR) return tv_fail(R, "replace() takes strings");
    if (old.n == 0) return s;
    buf b = {0};
    size_t i = 0;
    while (i < s.n) {
        const char *h = memmem(s.s + i, s.n - i, old.s, old.n);
        if (!h) break;
        tv_bput(&b, s.s + i, (size_t)(h - s.s) - i);
        tv_bput(&b, new.s, new.n);
        i = (size_t)(h - s.s) + old.n;
    }
    tv_bput(&b, s.s + i, s.n - i);
    jv r = tv_mkstr(R, b.s, b.n);
    free(b.s);
    return r;
}

static jv length(rs *R, jv v) {
    if (v.t == J_STR) { /* characters, not bytes */
        int64_t n = 0;
        for (size_t i = 0; i < v.n; i++) n += ((unsigned char)v.s[i] & 0xC0) != 0x80;
        return tv_mkint(n);
    }
    if (v.t == J_LIST) return tv_mkint(v.l->n);
    if (v.t == J_DICT) return tv_mkint(v.d->n);
    if (v.t == J_UNDEF) return tv_mkint(0);
    return tv_fail(R, "object of type '%s' has no len()", tv_type_name(v));
}

jv tv_method(rs *R, jv o, const char *name, args *a) {
    jv *a0 = tv_arg(a, 0, NULL), *a1 = tv_arg(a, 1, NULL);
    if (o.t == J_STR) {
        if (!strcmp(name, "strip")) return strip(R, o, a0, true, true);
        if (!strcmp(name, "lstrip")) return strip(R, o, a0, true, false);
        if (!strcmp(name, "rstrip")) return strip(R, o, a0, false, true);
        if (!strcmp(name, "upper")) return tv_casemap(R, o, 0);
        if (!strcmp(name, "lower")) return tv_casemap(R, o, 1);
        if (!strcmp(name, "title")) return tv_casemap(R, o, 2);
        if (!strcmp(name, "capitalize")) return tv_casemap(R, o, 3);
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (!a0 || a0->t != J_STR) return tv_fail(R, "%s() takes a string", name);
            bool st = name[0] == 's';
            return tv_mkbool(a0->n <= o.n && !memcmp(st ? o.s : o.s + o.n - a0->n, a0->s, a0->n));
        }
        if (!strcmp(name, "replace")) return a0 && a1 ? replace(R, o, *a0, *a1) : tv_fail(R, "replace() takes two arguments");
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            if (!a0 || a0->t != J_STR) return tv_fail(R, "%s() takes a string", name);
            if (name[0] == 'f') {
                const char *h = a0->n ? memmem(o.s, o.n, a0->s, a0->n) : o.s;
                return tv_mkint(h ? h - o.s : -1);
            }
            int64_t c = 0;
            for (size_t i = 0; a0->n && i + a0->n <= o.n;) {
                const char *h = memmem(o.s + i, o.n - i, a0->s, a0->n);
                if (!h) break;
                c++, i = (size_t)(h - o.s) + a0->n;
            }
            return tv_mkint(c);
        }
        if (!strcmp(name, "split")) {
            jlist *l = tv_newlist(R);
            if (!a0 || a0->t == J_NONE) { /* runs of whitespace */
                size_t i = 0;
                while (i < o.n) {
                    while (i < o.n && is_ws(o.s[i])) i++;
                    size_t b = i;
                    while (i < o.n && !is_ws(o.s[i])) i++;
                    if (i > b) tv_lpush(R, l, (jv){.t = J_STR, .s = o.s + b, .n = i - b});
                }
            } else {
                if (a0->t != J_STR || !a0->n) return tv_fail(R, "split() takes a non-empty separator");
                size_t i = 0;
                for (;;) {
                    const char *h = memmem(o.s + i, o.n - i, a0->s, a0->n);
                    size_t e = h ? (size_t)(h - o.s) : o.n;
                    tv_lpush(R, l, (jv){.t = J_STR, .s = o.s + i, .n = e - i});
                    if (!h) break;
                    i = e + a0->n;
                }
            }
            return (jv){.t = J_LIST, .l = l};
        }
        if (!strcmp(name, "join")) return a0 ? tv_apply_filter(R, "join", *a0, &(args){.v = {o}, .n = 1}) : tv_fail(R, "join() takes a list");
    }
    if (o.t == J_DICT && !o.d->ns) {
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            jlist *l = tv_newlist(R);
            for (int i = 0; i < o.d->n; i++) {
                jv k = {.t = J_STR, .s = o.d->k[i], .n = o.d->kn[i]};
                if (name[0] == 'i') {
                    jlist *pair = tv_newlist(R);
                    pair->tuple = true;
                    tv_lpush(R, pair, k), tv_lpush(R, pair, o.d->v[i]);
                    tv_lpush(R, l, (jv){.t = J_LIST, .l = pair});
                } else {
                    tv_lpush(R, l, name[0] == 'k' ? k : o.d->v[i]);
                }
            }
            return (jv){.t = J_LIST, .l = l};
        }
        if (!strcmp(name, "get")) {
            if (!a0 || a0->t != J_STR) return tv_fail(R, "get() takes a string key");
            jv *v = tv_dget(o.d, a0->s, a0->n);
            return v ? *v : a1 ? *a1 : (jv){.t = J_NONE};
        }
    }
    return tv_fail(R, "'%s' object has no method '%s'", tv_type_name(o), name);
}

jv tv_call_global(rs *R, const char *name, args *a) {
    jv *a0 = tv_arg(a, 0, NULL);
    if (!strcmp(name, "raise_exception")) {
        jv m = a0 ? tv_to_str(R, *a0) : tv_mkstr(R, "raise_exception", 15);
        tv_fail(R, "%.*s", (int)m.n, m.s);
        R->raised = true;
        return (jv){.t = J_UNDEF};
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jdict *d = tv_newdict(R);
        d->ns = name[0] == 'n';
        if (a0 && a0->t == J_DICT && !a->kw[0])
            for (int i = 0; i < a0->d->n; i++) tv_dset(R, d, a0->d->k[i], a0->d->kn[i], a0->d->v[i]);
        for (int i = 0; i < a->n; i++)
            if (a->kw[i]) tv_dset(R, d, a->kw[i], strlen(a->kw[i]), a->v[i]);
        return (jv){.t = J_DICT, .d = d};
    }
    if (!strcmp(name, "range")) {
        int64_t lo = 0, hi, st = 1;
        jv *a1 = tv_arg(a, 1, NULL), *a2 = tv_arg(a, 2, NULL);
        if (!a0 || a0->t != J_INT || (a1 && a1->t != J_INT) || (a2 && a2->t != J_INT)) return tv_fail(R, "range() takes integers");
        if (a1) lo = a0->i, hi = a1->i;
        else hi = a0->i;
        if (a2) st = a2->i;
        if (st == 0) return tv_fail(R, "range() step must not be zero");
        jlist *l = tv_newlist(R);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi;) {
            if (l->n >= 100000) return tv_fail(R, "range() too long");
            tv_lpush(R, l, tv_mkint(i));
            if (__builtin_add_overflow(i, st, &i)) break;
        }
        return (jv){.t = J_LIST, .l = l};
    }
    if (!strcmp(name, "strftime_now")) {
        if (!a0 || a0->t != J_STR) return tv_fail(R, "strftime_now() takes a format string");
        char fmt[128], out[256];
        snprintf(fmt, sizeof fmt, "%.*s", (int)a0->n, a0->s);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(out, sizeof out, fmt, &tm);
        return tv_mkstr(R, out, n);
    }
    return tv_fail(R, "'%s' is undefined or not callable", name);
}

bool tv_test(rs *R, const char *name, jv v, args *a, bool *known) {
    *known = true;
    jv *a0 = tv_arg(a, 0, NULL);
    if (!strcmp(name, "defined")) return v.t != J_UNDEF;
    if (!strcmp(name, "undefined")) return v.t == J_UNDEF;
    if (!strcmp(name, "none")) return v.t == J_NONE;
    if (!strcmp(name, "boolean")) return v.t == J_BOOL;
    if (!strcmp(name, "true")) return v.t == J_BOOL && v.b;
    if (!strcmp(name, "false")) return v.t == J_BOOL && !v.b;
    if (!strcmp(name, "integer")) return v.t == J_INT;
    if (!strcmp(name, "float")) return v.t == J_FLOAT;
    if (!strcmp(name, "number")) return tv_is_num(v);
    if (!strcmp(name, "string")) return v.t == J_STR;
    if (!strcmp(name, "mapping")) return v.t == J_DICT;
    if (!strcmp(name, "iterable")) return v.t == J_STR || v.t == J_LIST || v.t == J_DICT || v.t == J_UNDEF;
    if (!strcmp(name, "sequence")) return v.t == J_STR || v.t == J_LIST || v.t == J_DICT;
    if (!strcmp(name, "callable")) return false;
    if (!strcmp(name, "even") || !strcmp(name, "odd")) {
        if (v.t != J_INT) return tv_fail(R, "'%s' needs an integer", name), false;
        return (v.i % 2 == 0) == (name[0] == 'e');
    }
    if (!strcmp(name, "divisibleby")) {
        if (v.t != J_INT || !a0 || a0->t != J_INT || a0->i == 0) return tv_fail(R, "divisibleby needs integers"), false;
        return v.i % a0->i == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v.t != J_STR) return false;
        jv m = tv_casemap(R, v, name[0] == 'l' ? 1 : 0);
        return !memcmp(m.s, v.s, v.n);
    }
    static const struct { const char *n; nop op; } cmp[] = {
        {"equalto", OP_EQ}, {"eq", OP_EQ}, {"==", OP_EQ}, {"sameas", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE},
        {"lt", OP_LT}, {"<", OP_LT}, {"le", OP_LE}, {"<=", OP_LE}, {"gt", OP_GT}, {">", OP_GT},
        {"ge", OP_GE}, {">=", OP_GE}, {"in", OP_IN}};
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++)
        if (!strcmp(name, cmp[k].n)) {
            if (!a0) return tv_fail(R, "the test '%s' takes an argument", name), false;
            return tv_truthy(tv_binop(R, cmp[k].op, v, *a0));
        }
    *known = false;
    return tv_fail(R, "no test named '%s'", name), false;
}

/* select/reject/selectattr/rejectattr/map over a sequence */
static jv select_like(rs *R, const char *name, jv v, args *a) {
    bool attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
    jlist *items = tv_iter_items(R, v), *out = tv_newlist(R);
    if (R->failed) return v;
    jv *a0 = tv_arg(a, 0, NULL);
    if (attr && (!a0 || a0->t != J_STR)) return tv_fail(R, "%s() takes an attribute name", name);
    int first_test = attr ? 1 : 0;
    jv *tname = tv_arg(a, first_test, NULL);
    if (tname && tname->t != J_STR) return tv_fail(R, "%s(): the test name must be a string", name);
    args rest = {.n = 0};
    for (int k = first_test + 1; k < a->n; k++) rest.v[rest.n] = a->v[k], rest.kw[rest.n++] = a->kw[k];
    for (int i = 0; i < items->n; i++) {
        jv x = attr ? tv_getattr(R, items->v[i], a0->s, a0->n) : items->v[i];
        bool t, known;
        if (tname) {
            char tn[64];
            snprintf(tn, sizeof tn, "%.*s", (int)tname->n, tname->s);
            t = tv_test(R, tn, x, &rest, &known);
        } else {
            t = tv_truthy(x);
        }
        if (R->failed) return v;
        if (t == keep) tv_lpush(R, out, items->v[i]);
    }
    return (jv){.t = J_LIST, .l = out};
}

jv tv_apply_filter(rs *R, const char *name, jv v, args *a) {
    jv *a0 = tv_arg(a, 0, NULL);
    if (!strcmp(name, "trim")) {
        if (v.t != J_STR) v = tv_to_str(R, v);
        return strip(R, v, tv_arg(a, 0, "chars"), true, true);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") || !strcmp(name, "capitalize")) {
        v = tv_to_str(R, v);
        return tv_casemap(R, v, name[0] == 'u' ? 0 : name[0] == 'l' ? 1 : name[0] == 't' ? 2 : 3);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) return length(R, v);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "string")) return tv_to_str(R, v);
    if (!strcmp(name, "tojson")) {
        jv *ind = tv_arg(a, 0, "indent");
        buf b = {0};
        bool ok = tv_tojson(R, &b, v, ind && ind->t == J_INT ? (int)ind->i : -1, 0);
        jv s = ok ? tv_mkstr(R, b.s ? b.s : "", b.n) : (jv){.t = J_UNDEF};
        free(b.s);
        return s;
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv *bo = tv_arg(a, 1, "boolean");
        bool use = v.t == J_UNDEF || (bo && tv_truthy(*bo) && !tv_truthy(v));
        return use ? (a0 ? *a0 : tv_mkstr(R, "", 0)) : v;
    }
    if (!strcmp(name, "join")) {
        jlist *items = tv_iter_items(R, v);
        jv sep = a0 ? tv_to_str(R, *a0) : tv_mkstr(R, "", 0);
        jv *attr = tv_arg(a, 1, "attribute");
        buf b = {0};
        for (int i = 0; i < items->n && !R->failed; i++) {
            if (i) tv_bput(&b, sep.s, sep.n);
            jv x = attr && attr->t == J_STR ? tv_getattr(R, items->v[i], attr->s, attr->n) : items->v[i];
            tv_str_into(R, &b, x);
        }
        jv s = tv_mkstr(R, b.s ? b.s : "", b.n);
        free(b.s);
        return s;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *items = tv_iter_items(R, v);
        if (!items->n) return (jv){.t = J_UNDEF};
        return items->v[name[0] == 'f' ? 0 : items->n - 1];
    }
    if (!strcmp(name, "list")) return (jv){.t = J_LIST, .l = tv_iter_items(R, v)};
    if (!strcmp(name, "reverse")) {
        if (v.t == J_STR) {
            char *o = tpl_alloc(&R->a, v.n + 1);
            for (size_t i = 0; i < v.n; i++) o[i] = v.s[v.n - 1 - i];
            return (jv){.t = J_STR, .s = o, .n = v.n};
        }
        jlist *items = tv_iter_items(R, v), *l = tv_newlist(R);
        for (int i = items->n - 1; i >= 0; i--) tv_lpush(R, l, items->v[i]);
        return (jv){.t = J_LIST, .l = l};
    }
    if (!strcmp(name, "items")) {
        if (v.t == J_UNDEF) return (jv){.t = J_LIST, .l = tv_newlist(R)};
        if (v.t != J_DICT) return tv_fail(R, "items filter on a '%s'", tv_type_name(v));
        return tv_method(R, v, "items", &(args){.n = 0});
    }
    if (!strcmp(name, "replace")) {
        jv *a1 = tv_arg(a, 1, NULL);
        return a0 && a1 ? replace(R, tv_to_str(R, v), *a0, *a1) : tv_fail(R, "replace takes two arguments");
    }
    if (!strcmp(name, "int")) {
        if (v.t == J_INT) return v;
        if (v.t == J_FLOAT) return tv_mkint((int64_t)v.f);
        if (v.t == J_BOOL) return tv_mkint(v.b);
        if (v.t == J_STR) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.n < 63 ? v.n : 63), v.s);
            char *end;
            long long x = strtoll(tmp, &end, 10);
            return tv_mkint(*end || end == tmp ? (a0 && a0->t == J_INT ? a0->i : 0) : x);
        }
        return a0 && a0->t == J_INT ? *a0 : tv_mkint(0);
    }
    if (!strcmp(name, "float")) {
        if (tv_is_num(v)) return (jv){.t = J_FLOAT, .f = tv_num(v)};
        if (v.t == J_STR) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.n < 63 ? v.n : 63), v.s);
            char *end;
            double x = strtod(tmp, &end);
            return (jv){.t = J_FLOAT, .f = *end || end == tmp ? 0 : x};
        }
        return (jv){.t = J_FLOAT, .f = 0};
    }
    if (!strcmp(name, "abs")) {
        if (v.t == J_INT) return v.i == INT64_MIN ? tv_fail(R, "integer overflow") : tv_mkint(v.i < 0 ? -v.i : v.i);
        if (v.t == J_FLOAT) return (jv){.t = J_FLOAT, .f = fabs(v.f)};
        return tv_fail(R, "bad operand type for abs(): '%s'", tv_type_name(v));
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        v = tv_to_str(R, v);
        buf b = {0};
        for (size_t i = 0; i < v.n; i++) {
            switch (v.s[i]) {
            case '&': tv_bput(&b, "&amp;", 5); break;
            case '<': tv_bput(&b, "&lt;", 4); break;
            case '>': tv_bput(&b, "&gt;", 4); break;
            case '"': tv_bput(&b, "&#34;", 5); break;
            case '\'': tv_bput(&b, "&#39;", 5); break;
            default: tv_bput(&b, v.s + i, 1);
            }
        }
        jv s = tv_mkstr(R, b.s ? b.s : "", b.n);
        free(b.s);
        return s;
    }
    if (!strcmp(name, "map")) {
        jlist *items = tv_iter_items(R, v), *out = tv_newlist(R);
        jv *attr = tv_arg(a, 99, "attribute");
        for (int i = 0; i < items->n && !R->failed; i++) {
            if (attr && attr->t == J_STR) {
                jv x = tv_getattr(R, items->v[i], attr->s, attr->n);
                jv *def = tv_arg(a, 99, "default");
                tv_lpush(R, out, x.t == J_UNDEF && def ? *def : x);
            } else if (a0 && a0->t == J_STR) {
                char fn[64];
                snprintf(fn, sizeof fn, "%.*s", (int)a0->n, a0->s);
                args rest = {.n = 0};
                for (int k = 1; k < a->n; k++) rest.v[rest.n] = a->v[k], rest.kw[rest.n++] = a->kw[k];
                tv_lpush(R, out, tv_apply_filter(R, fn, items->v[i], &rest));
            } else {
                return tv_fail(R, "map() takes a filter name or attribute=");
            }
        }
        return (jv){.t = J_LIST, .l = out};
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_like(R, name, v, a);
    return tv_fail(R, "no filter named '%s'", name);
}

