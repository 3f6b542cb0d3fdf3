/* value.c — the values a chat template computes with, behaving as
 * Python's do under Jinja: truthiness (empty strings, lists and dicts are
 * false), == across int and float, `+` on numbers, strings and lists, `/`
 * always a float, `//` and `%` flooring, integers that fail rather than
 * wrap on overflow (Python's never overflow), `~` joining the str() of
 * both sides, str() of None/True/lists as Python prints them, and
 * transformers' tojson (json.dumps with ensure_ascii=False, indent).
 * Undefined follows jinja2's default Undefined: it prints as "", is
 * false, iterates as empty, has length 0, and anything else done to it (an
 * attribute, `+`) is an error. Every value lives in the render's arena. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/json.h"
#include "internal.h"

void tv_bput(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

jv tv_fail(rs *R, const char *fmt, ...) {
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


void tv_lpush(rs *R, jlist *l, jv v) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        jv *nv = tpl_alloc(&R->a, sizeof(jv) * cap);
        if (l->n) memcpy(nv, l->v, sizeof(jv) * l->n);
        l->v = nv, l->cap = cap;
    }
    l->v[l->n++] = v;
}

jv *tv_dget(const jdict *d, const char *k, size_t kn) {
    for (int i = 0; i < d->n; i++)
        if (d->kn[i] == kn && !memcmp(d->k[i], k, kn)) return &d->v[i];
    return NULL;
}
void tv_dset(rs *R, jdict *d, const char *k, size_t kn, jv v) {
    jv *old = tv_dget(d, k, kn);
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
bool tv_truthy(jv v) {
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

const char *tv_type_name(jv v) {
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

void tv_str_into(rs *R, buf *b, jv v) { repr(R, b, v, true, 0); }

enum { MAX_VALUE_DEPTH = 200 };

/* Python's str() at the top, repr() inside containers. */
static void repr(rs *R, buf *b, jv v, bool top, int depth) {
    char tmp[64];
    if (depth > MAX_VALUE_DEPTH) {
        tv_fail(R, "a value nested more than %d deep", MAX_VALUE_DEPTH);
        return;
    }
    switch (v.t) {
    case J_UNDEF: break;
    case J_NONE: tv_bput(b, "None", 4); break;
    case J_BOOL: tv_bput(b, v.b ? "True" : "False", v.b ? 4 : 5); break;
    case J_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i), tv_bput(b, tmp, strlen(tmp)); break;
    case J_FLOAT: fmt_float(tmp, sizeof tmp, v.f), tv_bput(b, tmp, strlen(tmp)); break;
    case J_STR:
        if (top) tv_bput(b, v.s, v.n);
        else {
            char q = memchr(v.s, '\'', v.n) && !memchr(v.s, '"', v.n) ? '"' : '\'';
            tv_bput(b, &q, 1);
            for (size_t i = 0; i < v.n; i++) {
                char c = v.s[i];
                if (c == q || c == '\\') tv_bput(b, "\\", 1), tv_bput(b, &c, 1);
                else if (c == '\n') tv_bput(b, "\\n", 2);
                else if (c == '\t') tv_bput(b, "\\t", 2);
                else if (c == '\r') tv_bput(b, "\\r", 2);
                else tv_bput(b, &c, 1);
            }
            tv_bput(b, &q, 1);
        }
        break;
    case J_LIST:
        tv_bput(b, v.l->tuple ? "(" : "[", 1);
        for (int i = 0; i < v.l->n; i++) {
            if (i) tv_bput(b, ", ", 2);
            repr(R, b, v.l->v[i], false, depth + 1);
        }
        if (v.l->tuple && v.l->n == 1) tv_bput(b, ",", 1);
        tv_bput(b, v.l->tuple ? ")" : "]", 1);
        break;
    case J_DICT:
        if (v.d->ns) {
            tv_bput(b, "<Namespace>", 11);
            break;
        }
        tv_bput(b, "{", 1);
        for (int i = 0; i < v.d->n; i++) {
            if (i) tv_bput(b, ", ", 2);
            repr(R, b, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]}, false, depth + 1);
            tv_bput(b, ": ", 2);
            repr(R, b, v.d->v[i], false, depth + 1);
        }
        tv_bput(b, "}", 1);
        break;
    }
}

jv tv_to_str(rs *R, jv v) {
    if (v.t == J_STR) return v;
    buf b = {0};
    tv_str_into(R, &b, v);
    jv s = tv_mkstr(R, b.s ? b.s : "", b.n);
    free(b.s);
    return s;
}

/* json.dumps(x, ensure_ascii=False, indent=indent) */
bool tv_tojson(rs *R, buf *b, jv v, int indent, int depth) {
    char tmp[64];
    if (depth > MAX_VALUE_DEPTH) return tv_fail(R, "a value nested more than %d deep", MAX_VALUE_DEPTH), false;
    switch (v.t) {
    case J_UNDEF: tv_fail(R, "Object of type Undefined is not JSON serializable"); return false;
    case J_NONE: tv_bput(b, "null", 4); return true;
    case J_BOOL: tv_bput(b, v.b ? "true" : "false", v.b ? 4 : 5); return true;
    case J_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i), tv_bput(b, tmp, strlen(tmp)); return true;
    case J_FLOAT:
        if (isnan(v.f)) tv_bput(b, "NaN", 3);
        else if (isinf(v.f)) tv_bput(b, v.f > 0 ? "Infinity" : "-Infinity", v.f > 0 ? 8 : 9);
        else fmt_float(tmp, sizeof tmp, v.f), tv_bput(b, tmp, strlen(tmp));
        return true;
    case J_STR:
        tv_bput(b, "\"", 1);
        for (size_t i = 0; i < v.n; i++) {
            unsigned char c = (unsigned char)v.s[i];
            if (c == '"') tv_bput(b, "\\\"", 2);
            else if (c == '\\') tv_bput(b, "\\\\", 2);
            else if (c == '\n') tv_bput(b, "\\n", 2);
            else if (c == '\r') tv_bput(b, "\\r", 2);
            else if (c == '\t') tv_bput(b, "\\t", 2);
            else if (c == '\b') tv_bput(b, "\\b", 2);
            else if (c == '\f') tv_bput(b, "\\f", 2);
            else if (c < 0x20) snprintf(tmp, sizeof tmp, "\\u%04x", c), tv_bput(b, tmp, 6);
            else tv_bput(b, (const char *)&c, 1);
        }
        tv_bput(b, "\"", 1);
        return true;
    case J_LIST: case J_DICT: {
        bool list = v.t == J_LIST;
        int n = list ? v.l->n : v.d->n;
        tv_bput(b, list ? "[" : "{", 1);
        if (n == 0) {
            tv_bput(b, list ? "]" : "}", 1);
            return true;
        }
        for (int i = 0; i < n; i++) {
            if (i) tv_bput(b, indent >= 0 ? "," : ", ", indent >= 0 ? 1 : 2);
            if (indent >= 0) {
                tv_bput(b, "\n", 1);
                for (int k = 0; k < indent * (depth + 1); k++) tv_bput(b, " ", 1);
            }
            if (!list) {
                tv_tojson(R, b, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]}, indent, depth + 1);
                tv_bput(b, ": ", 2);
            }
            if (!tv_tojson(R, b, list ? v.l->v[i] : v.d->v[i], indent, depth + 1)) return false;
        }
        if (indent >= 0) {
            tv_bput(b, "\n", 1);
            for (int k = 0; k < indent * depth; k++) tv_bput(b, " ", 1);
        }
        tv_bput(b, list ? "]" : "}", 1);
        return true;
    }
    }
    return false;
}

jv tv_from_cjson(rs *R, const cJSON *x) {
    if (cJSON_IsNull(x)) return (jv){.t = J_NONE};
    if (cJSON_IsBool(x)) return tv_mkbool(cJSON_IsTrue(x));
    if (cJSON_IsNumber(x)) {
        double f = x->valuedouble;
        if (f == floor(f) && fabs(f) < 9e15) return tv_mkint((int64_t)f);
        return (jv){.t = J_FLOAT, .f = f};
    }
    if (cJSON_IsString(x)) return tv_mkstr(R, x->valuestring, strlen(x->valuestring));
    if (cJSON_IsArray(x)) {
        jlist *l = tv_newlist(R);
        const cJSON *c;
        cJSON_ArrayForEach(c, x) tv_lpush(R, l, tv_from_cjson(R, c));
        return (jv){.t = J_LIST, .l = l};
    }
    if (cJSON_IsObject(x)) {
        jdict *d = tv_newdict(R);
        const cJSON *c;
        cJSON_ArrayForEach(c, x) tv_dset(R, d, c->string, strlen(c->string), tv_from_cjson(R, c));
        return (jv){.t = J_DICT, .d = d};
    }
    return (jv){.t = J_UNDEF};
}

/* ---- operators ---------------------------------------------------------------- */

static bool equal_(jv a, jv b, int depth);
bool tv_equal(jv a, jv b) { return equal_(a, b, 0); }
static bool equal_(jv a, jv b, int depth) {
    if (depth > 200) return false; /* deeper than any value a render may print */
    if (tv_is_num(a) && tv_is_num(b)) return tv_num(a) == tv_num(b);
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
            jv *o = tv_dget(b.d, a.d->k[i], a.d->kn[i]);
            if (!o || !equal_(a.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default: return false;
    }
}

static int compare(rs *R, jv a, jv b, bool *ok) {
    *ok = true;
    if (tv_is_num(a) && tv_is_num(b)) return tv_num(a) < tv_num(b) ? -1 : tv_num(a) > tv_num(b);
    if (a.t == J_STR && b.t == J_STR) {
        int c = memcmp(a.s, b.s, a.n < b.n ? a.n : b.n);
        return c ? c : (a.n > b.n) - (a.n < b.n);
    }
    *ok = false;
    tv_fail(R, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a), tv_type_name(b));
    return 0;
}

static bool contains(jv hay, jv needle) {
    if (hay.t == J_STR) return needle.t == J_STR && (needle.n == 0 || memmem(hay.s, hay.n, needle.s, needle.n));
    if (hay.t == J_LIST) {
        for (int i = 0; i < hay.l->n; i++)
            if (tv_equal(hay.l->v[i], needle)) return true;
        return false;
    }
    if (hay.t == J_DICT) return needle.t == J_STR && tv_dget(hay.d, needle.s, needle.n);
    return false;
}

jv tv_binop(rs *R, nop op, jv a, jv b) {
    if (op == OP_EQ) return tv_mkbool(tv_equal(a, b));
    if (op == OP_NE) return tv_mkbool(!tv_equal(a, b));
    if (op == OP_IN || op == OP_NOTIN) {
        if (b.t != J_STR && b.t != J_LIST && b.t != J_DICT && b.t != J_UNDEF)
            return tv_fail(R, "argument of type '%s' is not iterable", tv_type_name(b));
        bool c = contains(b, a);
        return tv_mkbool(op == OP_IN ? c : !c);
    }
    if (op == OP_CAT) {
        jv x = tv_to_str(R, a), y = tv_to_str(R, b);
        if (x.n + y.n > (16u << 20)) return tv_fail(R, "a string longer than 16 MiB");
        char *s = tpl_alloc(&R->a, x.n + y.n + 1);
        memcpy(s, x.s, x.n), memcpy(s + x.n, y.s, y.n);
        return (jv){.t = J_STR, .s = s, .n = x.n + y.n};
    }
    if (op >= OP_LT && op <= OP_GE) {
        bool ok;
        int c = compare(R, a, b, &ok);
        if (!ok) return (jv){.t = J_UNDEF};
        return tv_mkbool(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
    }
    if (a.t == J_UNDEF || b.t == J_UNDEF) return tv_fail(R, "an undefined value in arithmetic");
    if (op == OP_ADD && a.t == J_STR && b.t == J_STR) {
        if (a.n + b.n > (16u << 20)) return tv_fail(R, "a string longer than 16 MiB");
        char *s = tpl_alloc(&R->a, a.n + b.n + 1);
        memcpy(s, a.s, a.n), memcpy(s + a.n, b.s, b.n);
        return (jv){.t = J_STR, .s = s, .n = a.n + b.n};
    }
    if (op == OP_ADD && a.t == J_LIST && b.t == J_LIST) {
        if ((size_t)a.l->n + (size_t)b.l->n > 1000000) return tv_fail(R, "a list longer than a million items");
        jlist *l = tv_newlist(R);
        for (int i = 0; i < a.l->n; i++) tv_lpush(R, l, a.l->v[i]);
        for (int i = 0; i < b.l->n; i++) tv_lpush(R, l, b.l->v[i]);
        return (jv){.t = J_LIST, .l = l};
    }
    if (op == OP_MUL && ((a.t == J_STR && b.t == J_INT) || (a.t == J_INT && b.t == J_STR))) {
        jv s = a.t == J_STR ? a : b;
        int64_t k = a.t == J_INT ? a.i : b.i;
        if (k < 0 || s.n == 0) k = 0; /* '' * 10**12 is '' at once */
        if ((double)k * (double)s.n > 1e7) return tv_fail(R, "string repetition too large");
        char *o = tpl_alloc(&R->a, s.n * k + 1);
        for (int64_t i = 0; i < k; i++) memcpy(o + i * s.n, s.s, s.n);
        return (jv){.t = J_STR, .s = o, .n = s.n * k};
    }
    if (!tv_is_num(a) || !tv_is_num(b))
        return tv_fail(R, "unsupported operand types for an arithmetic operator: '%s' and '%s'", tv_type_name(a), tv_type_name(b));
    bool ints = a.t != J_FLOAT && b.t != J_FLOAT;
    double x = tv_num(a), y = tv_num(b);
    int64_t p = tv_inum(a), q = tv_inum(b), r;
    switch (op) { /* Python's ints do not overflow; ours fail rather than wrap */
    case OP_ADD:
        if (!ints) return (jv){.t = J_FLOAT, .f = x + y};
        return __builtin_add_overflow(p, q, &r) ? tv_fail(R, "integer overflow") : tv_mkint(r);
    case OP_SUB:
        if (!ints) return (jv){.t = J_FLOAT, .f = x - y};
        return __builtin_sub_overflow(p, q, &r) ? tv_fail(R, "integer overflow") : tv_mkint(r);
    case OP_MUL:
        if (!ints) return (jv){.t = J_FLOAT, .f = x * y};
        return __builtin_mul_overflow(p, q, &r) ? tv_fail(R, "integer overflow") : tv_mkint(r);
    case OP_DIV:
        if (y == 0) return tv_fail(R, "division by zero");
        return (jv){.t = J_FLOAT, .f = x / y};
    case OP_FLOORDIV: case OP_MOD: {
        if (y == 0) return tv_fail(R, "integer division or modulo by zero");
        if (ints) {
            if (p == INT64_MIN && q == -1) return op == OP_MOD ? tv_mkint(0) : tv_fail(R, "integer overflow");
            int64_t d = p / q, m = p % q;
            if (m != 0 && ((m < 0) != (q < 0))) d--, m += q;
            return tv_mkint(op == OP_MOD ? m : d);
        }
        double d = floor(x / y), m = x - d * y;
        return (jv){.t = J_FLOAT, .f = op == OP_MOD ? m : d};
    }
    case OP_POW:
        if (ints && q >= 0) {
            if (p == 0 || p == 1) return tv_mkint(q == 0 ? 1 : p);
            if (p == -1) return tv_mkint(q % 2 ? -1 : 1);
            r = 1;
            for (int64_t k = 0; k < q; k++) /* |p| >= 2: at most 63 steps before overflow */
                if (__builtin_mul_overflow(r, p, &r)) return tv_fail(R, "integer overflow");
            return tv_mkint(r);
        }
        return (jv){.t = J_FLOAT, .f = pow(x, y)};
    default: return tv_fail(R, "bad operator");
    }
}

jv tv_getattr(rs *R, jv o, const char *name, size_t n) {
    if (o.t == J_DICT) {
        jv *v = tv_dget(o.d, name, n);
        return v ? *v : (jv){.t = J_UNDEF};
    }
    if (o.t == J_UNDEF) return tv_fail(R, "an attribute '%.*s' of an undefined value", (int)n, name);
    return (jv){.t = J_UNDEF};
}

jv tv_subscript(rs *R, jv o, jv k) {
    if (o.t == J_DICT) {
        if (k.t != J_STR) return (jv){.t = J_UNDEF};
        jv *v = tv_dget(o.d, k.s, k.n);
        return v ? *v : (jv){.t = J_UNDEF};
    }
    if ((o.t == J_LIST || o.t == J_STR) && (k.t == J_INT || k.t == J_BOOL)) {
        int64_t n = o.t == J_LIST ? o.l->n : (int64_t)o.n, i = tv_inum(k);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return (jv){.t = J_UNDEF}; /* jinja2: an undefined, not an error */
        return o.t == J_LIST ? o.l->v[i] : tv_mkstr(R, o.s + i, 1);
    }
    if (o.t == J_UNDEF) return tv_fail(R, "an item of an undefined value");
    return (jv){.t = J_UNDEF};
}

/* The items a for loop or a filter walks: a list's items, a dict's keys, a string's characters. */
jlist *tv_iter_items(rs *R, jv v) {
    jlist *l = tv_newlist(R);
    if (v.t == J_LIST) return v.l;
    if (v.t == J_DICT)
        for (int i = 0; i < v.d->n; i++) tv_lpush(R, l, (jv){.t = J_STR, .s = v.d->k[i], .n = v.d->kn[i]});
    else if (v.t == J_STR)
        for (size_t i = 0; i < v.n;) { /* one UTF-8 character at a time */
            size_t k = 1;
            while (i + k < v.n && ((unsigned char)v.s[i + k] & 0xC0) == 0x80) k++;
            tv_lpush(R, l, (jv){.t = J_STR, .s = v.s + i, .n = k});
            i += k;
        }
    else if (v.t != J_UNDEF)
        tv_fail(R, "'%s' object is not iterable", tv_type_name(v));
    return l;
}

