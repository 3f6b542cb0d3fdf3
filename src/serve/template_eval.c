/* template_eval.c — rendering a parsed chat template (template_impl.h).
 *
 * Values behave as Python's do under Jinja: truthiness (empty strings,
 * lists and dicts are false), == across int and float, `+` on numbers,
 * strings and lists, `/` always a float, `//` and `%` flooring, `~`
 * joining the str() of both sides, str() of None/True/lists as Python
 * prints them. Undefined follows jinja2's default Undefined: it prints as
 * "", is false, iterates as empty, has length 0, and anything else done to
 * it (an attribute, `+`) is an error. Scopes: a for loop's body has its
 * own (a `set` inside does not leak out, which is why templates use
 * namespace()), `if` does not.
 *
 * Filters: trim, upper, lower, title, capitalize, length, count, first,
 * last, join, default/d, tojson (transformers' own: json.dumps with
 * ensure_ascii=False, indent), string, int, float, abs, list, reverse,
 * items, replace, safe, escape/e, map, select, reject, selectattr,
 * rejectattr. Tests: defined, undefined, none, boolean, true, false,
 * integer, float, number, string, mapping, iterable, sequence, callable,
 * even, odd, divisibleby, equalto/eq/==, ne/!=, lt, le, gt, ge, in, lower,
 * upper. Methods: str.strip/lstrip/rstrip/upper/lower/title/capitalize/
 * startswith/endswith/split/replace/find/count/join, dict.items/keys/
 * values/get. Globals: raise_exception (transformers'), namespace, range,
 * dict, strftime_now. An unknown one fails the render (NX_RENDER_FAILED),
 * which the server answers with the fallback template. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nexus/json.h"
#include "template_impl.h"

/* ---- render state ----------------------------------------------------------- */
typedef struct scope {
    const char *k[64];
    jv v[64];
    int n;
    struct scope *up;
} scope;

typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

typedef struct rs {
    tpl_arena a;
    scope *sc;
    buf out;
    nx_err *err;
    bool failed, raised;
    int ctl; /* 1 break, 2 continue */
    long steps;
} rs;

static void bput(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static jv fail(rs *R, const char *fmt, ...) {
    if (!R->failed) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        nx_fail(R->err, "%s", msg);
    }
    R->failed = true;
    return (jv){.t = J_UNDEF};
}

static jv mkstr(rs *R, const char *s, size_t n) { return (jv){.t = J_STR, .s = tpl_strndup(&R->a, s, n), .n = n}; }
static jv mkbool(bool b) { return (jv){.t = J_BOOL, .b = b}; }
static jv mkint(int64_t i) { return (jv){.t = J_INT, .i = i}; }

static jlist *newlist(rs *R) { return tpl_alloc(&R->a, sizeof(jlist)); }
static void lpush(rs *R, jlist *l, jv v) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        jv *nv = tpl_alloc(&R->a, sizeof(jv) * cap);
        if (l->n) memcpy(nv, l->v, sizeof(jv) * l->n);
        l->v = nv, l->cap = cap;
    }
    l->v[l->n++] = v;
}

static jdict *newdict(rs *R) { return tpl_alloc(&R->a, sizeof(jdict)); }
static jv *dget(const jdict *d, const char *k, size_t kn) {
    for (int i = 0; i < d->n; i++)
        if (d->kn[i] == kn && !memcmp(d->k[i], k, kn)) return &d->v[i];
    return NULL;
}
static void dset(rs *R, jdict *d, const char *k, size_t kn, jv v) {
    jv *old = dget(d, k, kn);
    if (old) {
        *old = v;
        return;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 8;
        const char **nk = tpl_alloc(&R->a, sizeof(char *) * cap);
        size_t *nkn = tpl_alloc(&R->a, sizeof(size_t) * cap);
        jv *nv = tpl_alloc(&R->a, sizeof(jv) * cap);
        if (d->n) {
            memcpy(nk, d->k, sizeof(char *) * d->n);
            memcpy(nkn, d->kn, sizeof(size_t) * d->n);
            memcpy(nv, d->v, sizeof(jv) * d->n);
        }
        d->k = nk, d->kn = nkn, d->v = nv, d->cap = cap;
    }
    d->k[d->n] = tpl_strndup(&R->a, k, kn), d->kn[d->n] = kn, d->v[d->n++] = v;
}

/* ---- conversions ------------------------------------------------------------- */
static bool truthy(jv v) {
    switch (v.t) {
    case J_UNDEF: case J_NONE: return false;
    case J_BOOL: return v.b;
    case J_INT: return v.i != 0;
    case J_FLOAT: return v.f != 0;
    case J_STR: return v.n > 0;
    case J_LIST: return v.l->n > 0;
    case J_DICT: return v.d->n > 0;
    }
    return false;
}

static const char *type_name(jv v) {
    static const char *names[] = {"undefined", "NoneType", "bool", "int", "float", "str", "list", "dict"};
    return names[v.t];
}

static void fmt_float(char *b, size_t n, double f) {
    if (isnan(f)) snprintf(b, n, "nan");
    else if (isinf(f)) snprintf(b, n, f > 0 ? "inf" : "-inf");
    else {
        nx_fmt_real(b, n, f, false);
        if (!strpbrk(b, ".en")) strncat(b, ".0", n - strlen(b) - 1); /* Python's repr: 1.0 */
    }
}

static void repr(rs *R, buf *b, jv v, bool top, int depth);

static void str_into(rs *R, buf *b, jv v) { repr(R, b, v, true, 0); }

enum { MAX_VALUE_DEPTH = 200 };

/* Python's str() at the top, repr() inside containers. */
static void repr(rs *R, buf *b, jv v, bool top, int depth) {
    char tmp[64];
    if (depth > MAX_VALUE_DEPTH) {
        fail(R, "a value nested more than %d deep", MAX_VALUE_DEPTH);
        return;
    }
    switch (v.t) {
    case J_UNDEF: break;
    case J_NONE: bput(b, "None", 4); break;
    case J_BOOL: bput(b, v.b ? "True" : "False", v.b ? 4 : 5); break;
    case J_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i), bput(b, tmp, strlen(tmp)); break;
    case J_FLOAT: fmt_float(tmp, sizeof tmp, v.f), bput(b, tmp, strlen(tmp)); break;
    case J_STR:
        if (top) bput(b, v.s, v.n);
        else {
            char q = memchr(v.s, '\'', v.n) && !memchr(v.s, '"', v.n) ? '"' : '\'';
            bput(b, &q, 1);
            for (size_t i = 0; i < v.n; i++) {
                char c = v.s[i];
                if (c == q || c == '\\') bput(b, "\\", 1), bput(b, &c, 1);
                else if (c == '\n') bput(b, "\\n", 2);
                else if (c == '\t') bput(b, "\\t", 2);
                else if (c == '\r') bput(b, "\\r", 2);
                else bput(b, &c, 1);
            }
            bput(b, &q, 1);
        }
        break;
    case J_LIST:
        bput(b, v.l->tuple ? "(" : "[", 1);
        for (int i = 0; i < v.l->n; i++) {
            if (i) bput(b, ", ", 2);
            repr(R, b, v.l->v[i], false, depth + 1);
        }
        if (v.l->tuple && v.l->n == 1) bput(b, ",", 1);
        bput(b, v.l->tuple ? ")" : "]", 1);
        break;
    case J_DICT:
        if (v.d->ns) {
            bput(b, "<Namespace>", 11);
            break;
        }
        bput(b, "{", 1);
        for (int i = 0; i < v.d->n; i++) {
            if (i) bput(b, ", ", 2);
            repr(R, b, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]}, false, depth + 1);
            bput(b, ": ", 2);
            repr(R, b, v.d->v[i], false, depth + 1);
        }
        bput(b, "}", 1);
        break;
    }
}

static jv to_str(rs *R, jv v) {
    if (v.t == J_STR) return v;
    buf b = {0};
    str_into(R, &b, v);
    jv s = mkstr(R, b.s ? b.s : "", b.n);
    free(b.s);
    return s;
}

/* json.dumps(x, ensure_ascii=False, indent=indent) */
static bool tojson(rs *R, buf *b, jv v, int indent, int depth) {
    char tmp[64];
    if (depth > MAX_VALUE_DEPTH) return fail(R, "a value nested more than %d deep", MAX_VALUE_DEPTH), false;
    switch (v.t) {
    case J_UNDEF: fail(R, "Object of type Undefined is not JSON serializable"); return false;
    case J_NONE: bput(b, "null", 4); return true;
    case J_BOOL: bput(b, v.b ? "true" : "false", v.b ? 4 : 5); return true;
    case J_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i), bput(b, tmp, strlen(tmp)); return true;
    case J_FLOAT:
        if (isnan(v.f)) bput(b, "NaN", 3);
        else if (isinf(v.f)) bput(b, v.f > 0 ? "Infinity" : "-Infinity", v.f > 0 ? 8 : 9);
        else fmt_float(tmp, sizeof tmp, v.f), bput(b, tmp, strlen(tmp));
        return true;
    case J_STR:
        bput(b, "\"", 1);
        for (size_t i = 0; i < v.n; i++) {
            unsigned char c = (unsigned char)v.s[i];
            if (c == '"') bput(b, "\\\"", 2);
            else if (c == '\\') bput(b, "\\\\", 2);
            else if (c == '\n') bput(b, "\\n", 2);
            else if (c == '\r') bput(b, "\\r", 2);
            else if (c == '\t') bput(b, "\\t", 2);
            else if (c == '\b') bput(b, "\\b", 2);
            else if (c == '\f') bput(b, "\\f", 2);
            else if (c < 0x20) snprintf(tmp, sizeof tmp, "\\u%04x", c), bput(b, tmp, 6);
            else bput(b, (const char *)&c, 1);
        }
        bput(b, "\"", 1);
        return true;
    case J_LIST: case J_DICT: {
        bool list = v.t == J_LIST;
        int n = list ? v.l->n : v.d->n;
        bput(b, list ? "[" : "{", 1);
        if (n == 0) {
            bput(b, list ? "]" : "}", 1);
            return true;
        }
        for (int i = 0; i < n; i++) {
            if (i) bput(b, indent >= 0 ? "," : ", ", indent >= 0 ? 1 : 2);
            if (indent >= 0) {
                bput(b, "\n", 1);
                for (int k = 0; k < indent * (depth + 1); k++) bput(b, " ", 1);
            }
            if (!list) {
                tojson(R, b, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]}, indent, depth + 1);
                bput(b, ": ", 2);
            }
            if (!tojson(R, b, list ? v.l->v[i] : v.d->v[i], indent, depth + 1)) return false;
        }
        if (indent >= 0) {
            bput(b, "\n", 1);
            for (int k = 0; k < indent * depth; k++) bput(b, " ", 1);
        }
        bput(b, list ? "]" : "}", 1);
        return true;
    }
    }
    return false;
}

static jv from_cjson(rs *R, const cJSON *x) {
    if (cJSON_IsNull(x)) return (jv){.t = J_NONE};
    if (cJSON_IsBool(x)) return mkbool(cJSON_IsTrue(x));
    if (cJSON_IsNumber(x)) {
        double f = x->valuedouble;
        if (f == floor(f) && fabs(f) < 9e15) return mkint((int64_t)f);
        return (jv){.t = J_FLOAT, .f = f};
    }
    if (cJSON_IsString(x)) return mkstr(R, x->valuestring, strlen(x->valuestring));
    if (cJSON_IsArray(x)) {
        jlist *l = newlist(R);
        const cJSON *c;
        cJSON_ArrayForEach(c, x) lpush(R, l, from_cjson(R, c));
        return (jv){.t = J_LIST, .l = l};
    }
    if (cJSON_IsObject(x)) {
        jdict *d = newdict(R);
        const cJSON *c;
        cJSON_ArrayForEach(c, x) dset(R, d, c->string, strlen(c->string), from_cjson(R, c));
        return (jv){.t = J_DICT, .d = d};
    }
    return (jv){.t = J_UNDEF};
}

/* ---- operators ---------------------------------------------------------------- */
static bool is_num(jv v) { return v.t == J_INT || v.t == J_FLOAT || v.t == J_BOOL; }
static double num(jv v) { return v.t == J_FLOAT ? v.f : v.t == J_INT ? (double)v.i : v.b; }
static int64_t inum(jv v) { return v.t == J_INT ? v.i : v.b; }

static bool equal_(jv a, jv b, int depth);
static bool equal(jv a, jv b) { return equal_(a, b, 0); }
static bool equal_(jv a, jv b, int depth) {
    if (depth > 200) return false; /* deeper than any value a render may print */
    if (is_num(a) && is_num(b)) return num(a) == num(b);
    if (a.t != b.t) return false;
    switch (a.t) {
    case J_UNDEF: case J_NONE: return true;
    case J_STR: return a.n == b.n && !memcmp(a.s, b.s, a.n);
    case J_LIST:
        if (a.l->n != b.l->n) return false;
        for (int i = 0; i < a.l->n; i++)
            if (!equal_(a.l->v[i], b.l->v[i], depth + 1)) return false;
        return true;
    case J_DICT:
        if (a.d->n != b.d->n) return false;
        for (int i = 0; i < a.d->n; i++) {
            jv *o = dget(b.d, a.d->k[i], a.d->kn[i]);
            if (!o || !equal_(a.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default: return false;
    }
}

static int compare(rs *R, jv a, jv b, bool *ok) {
    *ok = true;
    if (is_num(a) && is_num(b)) return num(a) < num(b) ? -1 : num(a) > num(b);
    if (a.t == J_STR && b.t == J_STR) {
        int c = memcmp(a.s, b.s, a.n < b.n ? a.n : b.n);
        return c ? c : (a.n > b.n) - (a.n < b.n);
    }
    *ok = false;
    fail(R, "'<' not supported between instances of '%s' and '%s'", type_name(a), type_name(b));
    return 0;
}

static bool contains(jv hay, jv needle) {
    if (hay.t == J_STR) return needle.t == J_STR && (needle.n == 0 || memmem(hay.s, hay.n, needle.s, needle.n));
    if (hay.t == J_LIST) {
        for (int i = 0; i < hay.l->n; i++)
            if (equal(hay.l->v[i], needle)) return true;
        return false;
    }
    if (hay.t == J_DICT) return needle.t == J_STR && dget(hay.d, needle.s, needle.n);
    return false;
}

static jv binop(rs *R, nop op, jv a, jv b) {
    if (op == OP_EQ) return mkbool(equal(a, b));
    if (op == OP_NE) return mkbool(!equal(a, b));
    if (op == OP_IN || op == OP_NOTIN) {
        if (b.t != J_STR && b.t != J_LIST && b.t != J_DICT && b.t != J_UNDEF)
            return fail(R, "argument of type '%s' is not iterable", type_name(b));
        bool c = contains(b, a);
        return mkbool(op == OP_IN ? c : !c);
    }
    if (op == OP_CAT) {
        jv x = to_str(R, a), y = to_str(R, b);
        if (x.n + y.n > (16u << 20)) return fail(R, "a string longer than 16 MiB");
        char *s = tpl_alloc(&R->a, x.n + y.n + 1);
        memcpy(s, x.s, x.n), memcpy(s + x.n, y.s, y.n);
        return (jv){.t = J_STR, .s = s, .n = x.n + y.n};
    }
    if (op >= OP_LT && op <= OP_GE) {
        bool ok;
        int c = compare(R, a, b, &ok);
        if (!ok) return (jv){.t = J_UNDEF};
        return mkbool(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
    }
    if (a.t == J_UNDEF || b.t == J_UNDEF) return fail(R, "an undefined value in arithmetic");
    if (op == OP_ADD && a.t == J_STR && b.t == J_STR) {
        if (a.n + b.n > (16u << 20)) return fail(R, "a string longer than 16 MiB");
        char *s = tpl_alloc(&R->a, a.n + b.n + 1);
        memcpy(s, a.s, a.n), memcpy(s + a.n, b.s, b.n);
        return (jv){.t = J_STR, .s = s, .n = a.n + b.n};
    }
    if (op == OP_ADD && a.t == J_LIST && b.t == J_LIST) {
        if ((size_t)a.l->n + (size_t)b.l->n > 1000000) return fail(R, "a list longer than a million items");
        jlist *l = newlist(R);
        for (int i = 0; i < a.l->n; i++) lpush(R, l, a.l->v[i]);
        for (int i = 0; i < b.l->n; i++) lpush(R, l, b.l->v[i]);
        return (jv){.t = J_LIST, .l = l};
    }
    if (op == OP_MUL && ((a.t == J_STR && b.t == J_INT) || (a.t == J_INT && b.t == J_STR))) {
        jv s = a.t == J_STR ? a : b;
        int64_t k = a.t == J_INT ? a.i : b.i;
        if (k < 0 || s.n == 0) k = 0; /* '' * 10**12 is '' at once */
        if ((double)k * (double)s.n > 1e7) return fail(R, "string repetition too large");
        char *o = tpl_alloc(&R->a, s.n * k + 1);
        for (int64_t i = 0; i < k; i++) memcpy(o + i * s.n, s.s, s.n);
        return (jv){.t = J_STR, .s = o, .n = s.n * k};
    }
    if (!is_num(a) || !is_num(b))
        return fail(R, "unsupported operand types for an arithmetic operator: '%s' and '%s'", type_name(a), type_name(b));
    bool ints = a.t != J_FLOAT && b.t != J_FLOAT;
    double x = num(a), y = num(b);
    int64_t p = inum(a), q = inum(b), r;
    switch (op) { /* Python's ints do not overflow; ours fail rather than wrap */
    case OP_ADD:
        if (!ints) return (jv){.t = J_FLOAT, .f = x + y};
        return __builtin_add_overflow(p, q, &r) ? fail(R, "integer overflow") : mkint(r);
    case OP_SUB:
        if (!ints) return (jv){.t = J_FLOAT, .f = x - y};
        return __builtin_sub_overflow(p, q, &r) ? fail(R, "integer overflow") : mkint(r);
    case OP_MUL:
        if (!ints) return (jv){.t = J_FLOAT, .f = x * y};
        return __builtin_mul_overflow(p, q, &r) ? fail(R, "integer overflow") : mkint(r);
    case OP_DIV:
        if (y == 0) return fail(R, "division by zero");
        return (jv){.t = J_FLOAT, .f = x / y};
    case OP_FLOORDIV: case OP_MOD: {
        if (y == 0) return fail(R, "integer division or modulo by zero");
        if (ints) {
            if (p == INT64_MIN && q == -1) return op == OP_MOD ? mkint(0) : fail(R, "integer overflow");
            int64_t d = p / q, m = p % q;
            if (m != 0 && ((m < 0) != (q < 0))) d--, m += q;
            return mkint(op == OP_MOD ? m : d);
        }
        double d = floor(x / y), m = x - d * y;
        return (jv){.t = J_FLOAT, .f = op == OP_MOD ? m : d};
    }
    case OP_POW:
        if (ints && q >= 0) {
            if (p == 0 || p == 1) return mkint(q == 0 ? 1 : p);
            if (p == -1) return mkint(q % 2 ? -1 : 1);
            r = 1;
            for (int64_t k = 0; k < q; k++) /* |p| >= 2: at most 63 steps before overflow */
                if (__builtin_mul_overflow(r, p, &r)) return fail(R, "integer overflow");
            return mkint(r);
        }
        return (jv){.t = J_FLOAT, .f = pow(x, y)};
    default: return fail(R, "bad operator");
    }
}

/* ---- evaluation ------------------------------------------------------------- */
static jv eval(rs *R, const tnode *x);

static jv lookup(rs *R, const char *name, size_t n) {
    for (scope *s = R->sc; s; s = s->up)
        for (int i = s->n - 1; i >= 0; i--)
            if (strlen(s->k[i]) == n && !memcmp(s->k[i], name, n)) return s->v[i];
    return (jv){.t = J_UNDEF};
}

static void assign(rs *R, const char *name, jv v) {
    scope *s = R->sc;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->k[i], name)) {
            s->v[i] = v;
            return;
        }
    if (s->n == 64) {
        fail(R, "too many variables in one scope");
        return;
    }
    s->k[s->n] = name, s->v[s->n++] = v;
}

static jv getattr_(rs *R, jv o, const char *name, size_t n) {
    if (o.t == J_DICT) {
        jv *v = dget(o.d, name, n);
        return v ? *v : (jv){.t = J_UNDEF};
    }
    if (o.t == J_UNDEF) return fail(R, "an attribute '%.*s' of an undefined value", (int)n, name);
    return (jv){.t = J_UNDEF};
}

static jv subscript(rs *R, jv o, jv k) {
    if (o.t == J_DICT) {
        if (k.t != J_STR) return (jv){.t = J_UNDEF};
        jv *v = dget(o.d, k.s, k.n);
        return v ? *v : (jv){.t = J_UNDEF};
    }
    if ((o.t == J_LIST || o.t == J_STR) && (k.t == J_INT || k.t == J_BOOL)) {
        int64_t n = o.t == J_LIST ? o.l->n : (int64_t)o.n, i = inum(k);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return (jv){.t = J_UNDEF}; /* jinja2: an undefined, not an error */
        return o.t == J_LIST ? o.l->v[i] : mkstr(R, o.s + i, 1);
    }
    if (o.t == J_UNDEF) return fail(R, "an item of an undefined value");
    return (jv){.t = J_UNDEF};
}

static bool opt_int(rs *R, const tnode *x, int64_t *out, bool *given) {
    *given = false;
    if (!x) return true;
    jv v = eval(R, x);
    if (R->failed) return false;
    if (v.t == J_NONE) return true;
    if (v.t != J_INT) return fail(R, "slice indices must be integers"), false;
    *out = v.i, *given = true;
    return true;
}

static jv slice(rs *R, const tnode *x) {
    jv o = eval(R, x->a);
    if (R->failed) return o;
    if (o.t != J_LIST && o.t != J_STR) return fail(R, "'%s' object is not subscriptable with a slice", type_name(o));
    int64_t n = o.t == J_LIST ? o.l->n : (int64_t)o.n, start = 0, stop = 0, step = 1;
    bool hs, he, hst;
    if (!opt_int(R, x->b, &start, &hs) || !opt_int(R, x->c, &stop, &he) || !opt_int(R, x->d, &step, &hst)) return o;
    if (step == 0) return fail(R, "slice step cannot be zero");
    /* Python's PySlice_AdjustIndices */
    if (!hs) start = step < 0 ? n - 1 : 0;
    else if (start < 0) start = start + n < 0 ? (step < 0 ? -1 : 0) : start + n;
    else if (start >= n) start = step < 0 ? n - 1 : n;
    if (!he) stop = step < 0 ? -1 : n;
    else if (stop < 0) stop = stop + n < 0 ? (step < 0 ? -1 : 0) : stop + n;
    else if (stop >= n) stop = step < 0 ? n - 1 : n;
    if (o.t == J_LIST) {
        jlist *l = newlist(R);
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            lpush(R, l, o.l->v[i]);
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        return (jv){.t = J_LIST, .l = l};
    }
    buf b = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        bput(&b, o.s + i, 1);
        if (__builtin_add_overflow(i, step, &i)) break;
    }
    jv s = mkstr(R, b.s ? b.s : "", b.n);
    free(b.s);
    return s;
}

/* The items a for loop or a filter walks: a list's items, a dict's keys, a string's characters. */
static jlist *iter_items(rs *R, jv v) {
    jlist *l = newlist(R);
    if (v.t == J_LIST) return v.l;
    if (v.t == J_DICT)
        for (int i = 0; i < v.d->n; i++) lpush(R, l, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]});
    else if (v.t == J_STR)
        for (size_t i = 0; i < v.n;) { /* one UTF-8 character at a time */
            size_t k = 1;
            while (i + k < v.n && ((unsigned char)v.s[i + k] & 0xC0) == 0x80) k++;
            lpush(R, l, (jv){.t = J_STR, .s = v.s + i, .n = k});
            i += k;
        }
    else if (v.t != J_UNDEF)
        fail(R, "'%s' object is not iterable", type_name(v));
    return l;
}

typedef struct args {
    jv v[16];
    const char *kw[16];
    int n;
} args;

static bool eval_args(rs *R, const tnode *x, args *a) {
    a->n = 0;
    if (x->nargs > 16) return fail(R, "too many arguments"), false;
    for (int i = 0; i < x->nargs; i++) {
        a->v[a->n] = eval(R, x->args[i]);
        a->kw[a->n++] = x->kw ? x->kw[i] : NULL;
        if (R->failed) return false;
    }
    return true;
}

/* positional argument i, or keyword name, or NULL */
static jv *arg(args *a, int i, const char *name) {
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

static jv casemap(rs *R, jv s, int mode) { /* 0 upper, 1 lower, 2 title, 3 capitalize (ASCII letters) */
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
    if (old.t != J_STR || new.t != J_STR) return fail(R, "replace() takes strings");
    if (old.n == 0) return s;
    buf b = {0};
    size_t i = 0;
    while (i < s.n) {
        const char *h = memmem(s.s + i, s.n - i, old.s, old.n);
        if (!h) break;
        bput(&b, s.s + i, (size_t)(h - s.s) - i);
        bput(&b, new.s, new.n);
        i = (size_t)(h - s.s) + old.n;
    }
    bput(&b, s.s + i, s.n - i);
    jv r = mkstr(R, b.s, b.n);
    free(b.s);
    return r;
}

static jv length(rs *R, jv v) {
    if (v.t == J_STR) { /* characters, not bytes */
        int64_t n = 0;
        for (size_t i = 0; i < v.n; i++) n += ((unsigned char)v.s[i] & 0xC0) != 0x80;
        return mkint(n);
    }
    if (v.t == J_LIST) return mkint(v.l->n);
    if (v.t == J_DICT) return mkint(v.d->n);
    if (v.t == J_UNDEF) return mkint(0);
    return fail(R, "object of type '%s' has no len()", type_name(v));
}

static bool test(rs *R, const char *name, jv v, args *a, bool *known);

static jv apply_filter(rs *R, const char *name, jv v, args *a);

static jv method(rs *R, jv o, const char *name, args *a) {
    jv *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    if (o.t == J_STR) {
        if (!strcmp(name, "strip")) return strip(R, o, a0, true, true);
        if (!strcmp(name, "lstrip")) return strip(R, o, a0, true, false);
        if (!strcmp(name, "rstrip")) return strip(R, o, a0, false, true);
        if (!strcmp(name, "upper")) return casemap(R, o, 0);
        if (!strcmp(name, "lower")) return casemap(R, o, 1);
        if (!strcmp(name, "title")) return casemap(R, o, 2);
        if (!strcmp(name, "capitalize")) return casemap(R, o, 3);
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (!a0 || a0->t != J_STR) return fail(R, "%s() takes a string", name);
            bool st = name[0] == 's';
            return mkbool(a0->n <= o.n && !memcmp(st ? o.s : o.s + o.n - a0->n, a0->s, a0->n));
        }
        if (!strcmp(name, "replace")) return a0 && a1 ? replace(R, o, *a0, *a1) : fail(R, "replace() takes two arguments");
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            if (!a0 || a0->t != J_STR) return fail(R, "%s() takes a string", name);
            if (name[0] == 'f') {
                const char *h = a0->n ? memmem(o.s, o.n, a0->s, a0->n) : o.s;
                return mkint(h ? h - o.s : -1);
            }
            int64_t c = 0;
            for (size_t i = 0; a0->n && i + a0->n <= o.n;) {
                const char *h = memmem(o.s + i, o.n - i, a0->s, a0->n);
                if (!h) break;
                c++, i = (size_t)(h - o.s) + a0->n;
            }
            return mkint(c);
        }
        if (!strcmp(name, "split")) {
            jlist *l = newlist(R);
            if (!a0 || a0->t == J_NONE) { /* runs of whitespace */
                size_t i = 0;
                while (i < o.n) {
                    while (i < o.n && is_ws(o.s[i])) i++;
                    size_t b = i;
                    while (i < o.n && !is_ws(o.s[i])) i++;
                    if (i > b) lpush(R, l, (jv){.t = J_STR, .s = o.s + b, .n = i - b});
                }
            } else {
                if (a0->t != J_STR || !a0->n) return fail(R, "split() takes a non-empty separator");
                size_t i = 0;
                for (;;) {
                    const char *h = memmem(o.s + i, o.n - i, a0->s, a0->n);
                    size_t e = h ? (size_t)(h - o.s) : o.n;
                    lpush(R, l, (jv){.t = J_STR, .s = o.s + i, .n = e - i});
                    if (!h) break;
                    i = e + a0->n;
                }
            }
            return (jv){.t = J_LIST, .l = l};
        }
        if (!strcmp(name, "join")) return a0 ? apply_filter(R, "join", *a0, &(args){.v = {o}, .n = 1}) : fail(R, "join() takes a list");
    }
    if (o.t == J_DICT && !o.d->ns) {
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            jlist *l = newlist(R);
            for (int i = 0; i < o.d->n; i++) {
                jv k = {.t = J_STR, .s = o.d->k[i], .n = o.d->kn[i]};
                if (name[0] == 'i') {
                    jlist *pair = newlist(R);
                    pair->tuple = true;
                    lpush(R, pair, k), lpush(R, pair, o.d->v[i]);
                    lpush(R, l, (jv){.t = J_LIST, .l = pair});
                } else {
                    lpush(R, l, name[0] == 'k' ? k : o.d->v[i]);
                }
            }
            return (jv){.t = J_LIST, .l = l};
        }
        if (!strcmp(name, "get")) {
            if (!a0 || a0->t != J_STR) return fail(R, "get() takes a string key");
            jv *v = dget(o.d, a0->s, a0->n);
            return v ? *v : a1 ? *a1 : (jv){.t = J_NONE};
        }
    }
    return fail(R, "'%s' object has no method '%s'", type_name(o), name);
}

static jv call_global(rs *R, const char *name, args *a) {
    jv *a0 = arg(a, 0, NULL);
    if (!strcmp(name, "raise_exception")) {
        jv m = a0 ? to_str(R, *a0) : mkstr(R, "raise_exception", 15);
        fail(R, "%.*s", (int)m.n, m.s);
        R->raised = true;
        return (jv){.t = J_UNDEF};
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jdict *d = newdict(R);
        d->ns = name[0] == 'n';
        if (a0 && a0->t == J_DICT && !a->kw[0])
            for (int i = 0; i < a0->d->n; i++) dset(R, d, a0->d->k[i], a0->d->kn[i], a0->d->v[i]);
        for (int i = 0; i < a->n; i++)
            if (a->kw[i]) dset(R, d, a->kw[i], strlen(a->kw[i]), a->v[i]);
        return (jv){.t = J_DICT, .d = d};
    }
    if (!strcmp(name, "range")) {
        int64_t lo = 0, hi, st = 1;
        jv *a1 = arg(a, 1, NULL), *a2 = arg(a, 2, NULL);
        if (!a0 || a0->t != J_INT || (a1 && a1->t != J_INT) || (a2 && a2->t != J_INT)) return fail(R, "range() takes integers");
        if (a1) lo = a0->i, hi = a1->i;
        else hi = a0->i;
        if (a2) st = a2->i;
        if (st == 0) return fail(R, "range() step must not be zero");
        jlist *l = newlist(R);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi;) {
            if (l->n >= 100000) return fail(R, "range() too long");
            lpush(R, l, mkint(i));
            if (__builtin_add_overflow(i, st, &i)) break;
        }
        return (jv){.t = J_LIST, .l = l};
    }
    if (!strcmp(name, "strftime_now")) {
        if (!a0 || a0->t != J_STR) return fail(R, "strftime_now() takes a format string");
        char fmt[128], out[256];
        snprintf(fmt, sizeof fmt, "%.*s", (int)a0->n, a0->s);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(out, sizeof out, fmt, &tm);
        return mkstr(R, out, n);
    }
    return fail(R, "'%s' is undefined or not callable", name);
}

static bool test(rs *R, const char *name, jv v, args *a, bool *known) {
    *known = true;
    jv *a0 = arg(a, 0, NULL);
    if (!strcmp(name, "defined")) return v.t != J_UNDEF;
    if (!strcmp(name, "undefined")) return v.t == J_UNDEF;
    if (!strcmp(name, "none")) return v.t == J_NONE;
    if (!strcmp(name, "boolean")) return v.t == J_BOOL;
    if (!strcmp(name, "true")) return v.t == J_BOOL && v.b;
    if (!strcmp(name, "false")) return v.t == J_BOOL && !v.b;
    if (!strcmp(name, "integer")) return v.t == J_INT;
    if (!strcmp(name, "float")) return v.t == J_FLOAT;
    if (!strcmp(name, "number")) return is_num(v);
    if (!strcmp(name, "string")) return v.t == J_STR;
    if (!strcmp(name, "mapping")) return v.t == J_DICT;
    if (!strcmp(name, "iterable")) return v.t == J_STR || v.t == J_LIST || v.t == J_DICT || v.t == J_UNDEF;
    if (!strcmp(name, "sequence")) return v.t == J_STR || v.t == J_LIST || v.t == J_DICT;
    if (!strcmp(name, "callable")) return false;
    if (!strcmp(name, "even") || !strcmp(name, "odd")) {
        if (v.t != J_INT) return fail(R, "'%s' needs an integer", name), false;
        return (v.i % 2 == 0) == (name[0] == 'e');
    }
    if (!strcmp(name, "divisibleby")) {
        if (v.t != J_INT || !a0 || a0->t != J_INT || a0->i == 0) return fail(R, "divisibleby needs integers"), false;
        return v.i % a0->i == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v.t != J_STR) return false;
        jv m = casemap(R, v, name[0] == 'l' ? 1 : 0);
        return !memcmp(m.s, v.s, v.n);
    }
    static const struct { const char *n; nop op; } cmp[] = {
        {"equalto", OP_EQ}, {"eq", OP_EQ}, {"==", OP_EQ}, {"sameas", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE},
        {"lt", OP_LT}, {"<", OP_LT}, {"le", OP_LE}, {"<=", OP_LE}, {"gt", OP_GT}, {">", OP_GT},
        {"ge", OP_GE}, {">=", OP_GE}, {"in", OP_IN}};
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++)
        if (!strcmp(name, cmp[k].n)) {
            if (!a0) return fail(R, "the test '%s' takes an argument", name), false;
            return truthy(binop(R, cmp[k].op, v, *a0));
        }
    *known = false;
    return fail(R, "no test named '%s'", name), false;
}

/* select/reject/selectattr/rejectattr/map over a sequence */
static jv select_like(rs *R, const char *name, jv v, args *a) {
    bool attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
    jlist *items = iter_items(R, v), *out = newlist(R);
    if (R->failed) return v;
    jv *a0 = arg(a, 0, NULL);
    if (attr && (!a0 || a0->t != J_STR)) return fail(R, "%s() takes an attribute name", name);
    int first_test = attr ? 1 : 0;
    jv *tname = arg(a, first_test, NULL);
    if (tname && tname->t != J_STR) return fail(R, "%s(): the test name must be a string", name);
    args rest = {.n = 0};
    for (int k = first_test + 1; k < a->n; k++) rest.v[rest.n] = a->v[k], rest.kw[rest.n++] = a->kw[k];
    for (int i = 0; i < items->n; i++) {
        jv x = attr ? getattr_(R, items->v[i], a0->s, a0->n) : items->v[i];
        bool t, known;
        if (tname) {
            char tn[64];
            snprintf(tn, sizeof tn, "%.*s", (int)tname->n, tname->s);
            t = test(R, tn, x, &rest, &known);
        } else {
            t = truthy(x);
        }
        if (R->failed) return v;
        if (t == keep) lpush(R, out, items->v[i]);
    }
    return (jv){.t = J_LIST, .l = out};
}

static jv apply_filter(rs *R, const char *name, jv v, args *a) {
    jv *a0 = arg(a, 0, NULL);
    if (!strcmp(name, "trim")) {
        if (v.t != J_STR) v = to_str(R, v);
        return strip(R, v, arg(a, 0, "chars"), true, true);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") || !strcmp(name, "capitalize")) {
        v = to_str(R, v);
        return casemap(R, v, name[0] == 'u' ? 0 : name[0] == 'l' ? 1 : name[0] == 't' ? 2 : 3);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) return length(R, v);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "string")) return to_str(R, v);
    if (!strcmp(name, "tojson")) {
        jv *ind = arg(a, 0, "indent");
        buf b = {0};
        bool ok = tojson(R, &b, v, ind && ind->t == J_INT ? (int)ind->i : -1, 0);
        jv s = ok ? mkstr(R, b.s ? b.s : "", b.n) : (jv){.t = J_UNDEF};
        free(b.s);
        return s;
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv *bo = arg(a, 1, "boolean");
        bool use = v.t == J_UNDEF || (bo && truthy(*bo) && !truthy(v));
        return use ? (a0 ? *a0 : mkstr(R, "", 0)) : v;
    }
    if (!strcmp(name, "join")) {
        jlist *items = iter_items(R, v);
        jv sep = a0 ? to_str(R, *a0) : mkstr(R, "", 0);
        jv *attr = arg(a, 1, "attribute");
        buf b = {0};
        for (int i = 0; i < items->n && !R->failed; i++) {
            if (i) bput(&b, sep.s, sep.n);
            jv x = attr && attr->t == J_STR ? getattr_(R, items->v[i], attr->s, attr->n) : items->v[i];
            str_into(R, &b, x);
        }
        jv s = mkstr(R, b.s ? b.s : "", b.n);
        free(b.s);
        return s;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *items = iter_items(R, v);
        if (!items->n) return (jv){.t = J_UNDEF};
        return items->v[name[0] == 'f' ? 0 : items->n - 1];
    }
    if (!strcmp(name, "list")) return (jv){.t = J_LIST, .l = iter_items(R, v)};
    if (!strcmp(name, "reverse")) {
        if (v.t == J_STR) {
            char *o = tpl_alloc(&R->a, v.n + 1);
            for (size_t i = 0; i < v.n; i++) o[i] = v.s[v.n - 1 - i];
            return (jv){.t = J_STR, .s = o, .n = v.n};
        }
        jlist *items = iter_items(R, v), *l = newlist(R);
        for (int i = items->n - 1; i >= 0; i--) lpush(R, l, items->v[i]);
        return (jv){.t = J_LIST, .l = l};
    }
    if (!strcmp(name, "items")) {
        if (v.t == J_UNDEF) return (jv){.t = J_LIST, .l = newlist(R)};
        if (v.t != J_DICT) return fail(R, "items filter on a '%s'", type_name(v));
        return method(R, v, "items", &(args){.n = 0});
    }
    if (!strcmp(name, "replace")) {
        jv *a1 = arg(a, 1, NULL);
        return a0 && a1 ? replace(R, to_str(R, v), *a0, *a1) : fail(R, "replace takes two arguments");
    }
    if (!strcmp(name, "int")) {
        if (v.t == J_INT) return v;
        if (v.t == J_FLOAT) return mkint((int64_t)v.f);
        if (v.t == J_BOOL) return mkint(v.b);
        if (v.t == J_STR) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.n < 63 ? v.n : 63), v.s);
            char *end;
            long long x = strtoll(tmp, &end, 10);
            return mkint(*end || end == tmp ? (a0 && a0->t == J_INT ? a0->i : 0) : x);
        }
        return a0 && a0->t == J_INT ? *a0 : mkint(0);
    }
    if (!strcmp(name, "float")) {
        if (is_num(v)) return (jv){.t = J_FLOAT, .f = num(v)};
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
        if (v.t == J_INT) return v.i == INT64_MIN ? fail(R, "integer overflow") : mkint(v.i < 0 ? -v.i : v.i);
        if (v.t == J_FLOAT) return (jv){.t = J_FLOAT, .f = fabs(v.f)};
        return fail(R, "bad operand type for abs(): '%s'", type_name(v));
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        v = to_str(R, v);
        buf b = {0};
        for (size_t i = 0; i < v.n; i++) {
            switch (v.s[i]) {
            case '&': bput(&b, "&amp;", 5); break;
            case '<': bput(&b, "&lt;", 4); break;
            case '>': bput(&b, "&gt;", 4); break;
            case '"': bput(&b, "&#34;", 5); break;
            case '\'': bput(&b, "&#39;", 5); break;
            default: bput(&b, v.s + i, 1);
            }
        }
        jv s = mkstr(R, b.s ? b.s : "", b.n);
        free(b.s);
        return s;
    }
    if (!strcmp(name, "map")) {
        jlist *items = iter_items(R, v), *out = newlist(R);
        jv *attr = arg(a, 99, "attribute");
        for (int i = 0; i < items->n && !R->failed; i++) {
            if (attr && attr->t == J_STR) {
                jv x = getattr_(R, items->v[i], attr->s, attr->n);
                jv *def = arg(a, 99, "default");
                lpush(R, out, x.t == J_UNDEF && def ? *def : x);
            } else if (a0 && a0->t == J_STR) {
                char fn[64];
                snprintf(fn, sizeof fn, "%.*s", (int)a0->n, a0->s);
                args rest = {.n = 0};
                for (int k = 1; k < a->n; k++) rest.v[rest.n] = a->v[k], rest.kw[rest.n++] = a->kw[k];
                lpush(R, out, apply_filter(R, fn, items->v[i], &rest));
            } else {
                return fail(R, "map() takes a filter name or attribute=");
            }
        }
        return (jv){.t = J_LIST, .l = out};
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_like(R, name, v, a);
    return fail(R, "no filter named '%s'", name);
}

static jv eval(rs *R, const tnode *x) {
    if (R->failed) return (jv){.t = J_UNDEF};
    if (++R->steps > 2000000) return fail(R, "the template runs too long");
    if (R->a.total > (256u << 20)) return fail(R, "the template uses more than 256 MiB");
    switch (x->kind) {
    case E_LIT: return x->lit;
    case E_NAME: return lookup(R, x->s, x->n);
    case E_ATTR: {
        jv o = eval(R, x->a);
        return R->failed ? o : getattr_(R, o, x->s, x->n);
    }
    case E_INDEX: {
        jv o = eval(R, x->a), k = eval(R, x->b);
        return R->failed ? o : subscript(R, o, k);
    }
    case E_SLICE: return slice(R, x);
    case E_CALL: {
        args a;
        if (x->a->kind == E_ATTR) {
            jv o = eval(R, x->a->a);
            if (R->failed || !eval_args(R, x, &a)) return o;
            return method(R, o, x->a->s, &a);
        }
        if (x->a->kind != E_NAME) return fail(R, "only functions and methods can be called");
        if (!eval_args(R, x, &a)) return (jv){.t = J_UNDEF};
        return call_global(R, x->a->s, &a);
    }
    case E_FILTER: {
        jv v = eval(R, x->a);
        args a;
        if (R->failed || !eval_args(R, x, &a)) return v;
        return apply_filter(R, x->s, v, &a);
    }
    case E_TEST: {
        jv v = eval(R, x->a);
        args a;
        if (R->failed || !eval_args(R, x, &a)) return v;
        bool known, t = test(R, x->s, v, &a, &known);
        return mkbool(x->negate ? !t : t);
    }
    case E_NOT: return mkbool(!truthy(eval(R, x->a)));
    case E_NEG: case E_POS: {
        jv v = eval(R, x->a);
        if (R->failed) return v;
        if (!is_num(v)) return fail(R, "bad operand type for unary %c: '%s'", x->kind == E_NEG ? '-' : '+', type_name(v));
        if (x->kind == E_POS) return v;
        if (v.t != J_FLOAT && inum(v) == INT64_MIN) return fail(R, "integer overflow");
        return v.t == J_FLOAT ? (jv){.t = J_FLOAT, .f = -v.f} : mkint(-inum(v));
    }
    case E_BIN: {
        jv a = eval(R, x->a), b = eval(R, x->b);
        return R->failed ? a : binop(R, x->op, a, b);
    }
    case E_AND: {
        jv a = eval(R, x->a);
        return truthy(a) ? eval(R, x->b) : a;
    }
    case E_OR: {
        jv a = eval(R, x->a);
        return truthy(a) ? a : eval(R, x->b);
    }
    case E_COND: return truthy(eval(R, x->b)) ? eval(R, x->a) : x->c ? eval(R, x->c) : (jv){.t = J_UNDEF};
    case E_LIST: {
        jlist *l = newlist(R);
        for (int i = 0; i < x->nargs; i++) lpush(R, l, eval(R, x->args[i]));
        return (jv){.t = J_LIST, .l = l};
    }
    case E_DICT: {
        jdict *d = newdict(R);
        for (int i = 0; i + 1 < x->nargs; i += 2) {
            jv k = eval(R, x->args[i]), v = eval(R, x->args[i + 1]);
            if (k.t != J_STR) return fail(R, "dict literal keys must be strings");
            dset(R, d, k.s, k.n, v);
        }
        return (jv){.t = J_DICT, .d = d};
    }
    default: return fail(R, "bad expression node");
    }
}

static void run(rs *R, tnode *const *body, int n);

static void run_for(rs *R, const tnode *x) {
    jv seq = eval(R, x->a);
    if (R->failed) return;
    jlist *items = iter_items(R, seq);
    if (R->failed) return;
    scope sc = {.up = R->sc};
    R->sc = &sc;
    if (x->filter) { /* for x in xs if cond: the loop sees only the kept items */
        jlist *kept = newlist(R);
        for (int i = 0; i < items->n && !R->failed; i++) {
            sc.n = 0;
            assign(R, x->s, items->v[i]);
            if (truthy(eval(R, x->filter))) lpush(R, kept, items->v[i]);
        }
        items = kept;
    }
    int n = items->n;
    for (int i = 0; i < n && !R->failed; i++) {
        sc.n = 0;
        jv it = items->v[i];
        if (x->s2) {
            if (it.t != J_LIST || it.l->n != 2) {
                fail(R, "cannot unpack a '%s' into two loop variables", type_name(it));
                break;
            }
            assign(R, x->s, it.l->v[0]);
            assign(R, x->s2, it.l->v[1]);
        } else {
            assign(R, x->s, it);
        }
        jdict *loop = newdict(R);
        dset(R, loop, "index", 5, mkint(i + 1));
        dset(R, loop, "index0", 6, mkint(i));
        dset(R, loop, "revindex", 8, mkint(n - i));
        dset(R, loop, "revindex0", 9, mkint(n - i - 1));
        dset(R, loop, "first", 5, mkbool(i == 0));
        dset(R, loop, "last", 4, mkbool(i == n - 1));
        dset(R, loop, "length", 6, mkint(n));
        dset(R, loop, "previtem", 8, i > 0 ? items->v[i - 1] : (jv){.t = J_UNDEF});
        dset(R, loop, "nextitem", 8, i + 1 < n ? items->v[i + 1] : (jv){.t = J_UNDEF});
        assign(R, "loop", (jv){.t = J_DICT, .d = loop});
        run(R, x->body, x->nbody);
        if (R->ctl == 1) {
            R->ctl = 0;
            break;
        }
        R->ctl = 0;
    }
    R->sc = sc.up;
    if (n == 0 && !R->failed) run(R, x->orelse, x->norelse);
}

static void run(rs *R, tnode *const *body, int n) {
    for (int i = 0; i < n && !R->failed && !R->ctl; i++) {
        const tnode *x = body[i];
        switch (x->kind) {
        case N_TEXT: bput(&R->out, x->s, x->n); break;
        case N_OUT: {
            jv v = eval(R, x->a);
            if (!R->failed) str_into(R, &R->out, v);
            break;
        }
        case N_IF:
            if (truthy(eval(R, x->a))) run(R, x->body, x->nbody);
            else run(R, x->orelse, x->norelse);
            break;
        case N_FOR: run_for(R, x); break;
        case N_SET: {
            jv v = eval(R, x->a);
            if (R->failed) break;
            if (x->s2) {
                jv ns = lookup(R, x->s, x->n);
                if (ns.t != J_DICT || !ns.d->ns) {
                    fail(R, "can only set attributes of a namespace ('%s')", x->s);
                    break;
                }
                dset(R, ns.d, x->s2, strlen(x->s2), v);
            } else {
                assign(R, x->s, v);
            }
            break;
        }
        case N_BREAK: R->ctl = 1; break;
        case N_CONTINUE: R->ctl = 2; break;
        default: fail(R, "bad statement node");
        }
        if (R->out.n > (64u << 20)) fail(R, "the rendered text exceeds 64 MiB");
    }
}

nx_render_status nx_chat_template_render(const nx_chat_template *t, const char *context_json, char **out, nx_err *err) {
    *out = NULL;
    cJSON *ctx = cJSON_Parse(context_json);
    if (!cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx);
        nx_fail(err, "the template context is not a JSON object");
        return NX_RENDER_FAILED;
    }
    rs R = {.err = err};
    scope top = {0};
    R.sc = &top;
    const cJSON *c;
    cJSON_ArrayForEach(c, ctx) {
        if (top.n == 64) break;
        assign(&R, tpl_strndup(&R.a, c->string, strlen(c->string)), from_cjson(&R, c));
    }
    cJSON_Delete(ctx);
    run(&R, t->body, t->nbody);
    nx_render_status st = R.failed ? (R.raised ? NX_RENDER_RAISED : NX_RENDER_FAILED) : NX_RENDER_OK;
    if (st == NX_RENDER_OK) *out = R.out.s ? R.out.s : strdup("");
    else free(R.out.s);
    tpl_arena_free(&R.a);
    return st;
}

char *nx_chat_fallback(const nx_chat_msg *msgs, int n, bool add_generation_prompt) {
    buf b = {0};
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        char c = r[0] >= 'a' && r[0] <= 'z' ? (char)(r[0] - 32) : r[0];
        if (c) bput(&b, &c, 1), bput(&b, r + 1, strlen(r + 1));
        bput(&b, ": ", 2);
        bput(&b, msgs[i].content, strlen(msgs[i].content));
        bput(&b, "\n\n", 2);
    }
    if (add_generation_prompt) bput(&b, "Assistant:", 10);
    return b.s ? b.s : strdup("");
}
