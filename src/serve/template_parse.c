/* template_parse.c — Jinja source into a tree (template_impl.h).
 *
 * The lexer applies the whitespace rules transformers renders chat
 * templates with (ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True)), as jinja2's lexer does:
 *   - the source's newlines are normalised to \n and one trailing newline
 *     is dropped (keep_trailing_newline=False);
 *   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`,
 *     `-}}`, `-#}` all whitespace after it;
 *   - trim_blocks: one newline right after `%}` or `#}` is dropped (not
 *     after `+%}`, nor after `}}`);
 *   - lstrip_blocks: spaces and tabs between the start of a line and a
 *     `{%` or `{#` are dropped (not before `{%+`, nor before `{{`); a line
 *     starts after a newline, at the start of the template, and right
 *     after a tag whose consumed text ended with a newline.
 * The parser is recursive descent with jinja2's precedence, lowest first:
 * `x if c else y`, or, and, not, comparisons (== != < <= > >= in, not in),
 * + and -, ~, * / // %, **, unary - and +, then postfix .attr [index]
 * [a:b:c] (call) and the filters `| f(args)` and tests `is [not] t(args)`.
 * Statements: if/elif/else, for (one or two targets, `if` filter, else),
 * set (a name or namespace.attr), break, continue, and generation blocks
 * (transformers' AssistantTracker marker, rendered through). Anything
 * else (macro, call, include, raw, ...) is a parse error naming the tag
 * and its offset: the server then uses the fallback template. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_impl.h"

/* ---- arena ---------------------------------------------------------------- */
struct tpl_block {
    tpl_block *next;
    size_t used, size;
    char data[];
};

void *tpl_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->used + n > a->head->size) {
        size_t size = n > 16384 ? n : 16384;
        tpl_block *b = nx_xmalloc(sizeof *b + size);
        b->next = a->head, b->used = 0, b->size = size;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *tpl_strndup(tpl_arena *a, const char *s, size_t n) {
    char *p = tpl_alloc(a, n + 1);
    memcpy(p, s, n);
    return p;
}

void tpl_arena_free(tpl_arena *a) {
    for (tpl_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- lexer ------------------------------------------------------------------ */
typedef enum { T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_EOF } ttype;

typedef struct tok {
    ttype t;
    const char *s; /* T_TEXT/T_NAME/T_OP/T_STR (unescaped) */
    size_t n;
    int64_t i;
    double f;
    size_t pos;
} tok;

typedef struct lexer {
    tpl_arena *a;
    const char *src;
    size_t len, p;
    tok *toks;
    int n, cap;
    nx_err *err;
    bool failed;
} lexer;

static int lex_fail(lexer *L, size_t pos, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    L->failed = true;
    return nx_fail(L->err, "chat template, byte %zu: %s", pos, msg);
}

static void push(lexer *L, tok t) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 256;
        L->toks = realloc(L->toks, sizeof(tok) * L->cap);
        if (!L->toks) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    }
    L->toks[L->n++] = t;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t put_utf8(char *w, uint32_t cp) {
    if (cp < 0x80) return w[0] = (char)cp, 1;
    if (cp < 0x800) return w[0] = (char)(0xC0 | cp >> 6), w[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return w[0] = (char)(0xE0 | cp >> 12), w[1] = (char)(0x80 | (cp >> 6 & 63)), w[2] = (char)(0x80 | (cp & 63)), 3;
    w[0] = (char)(0xF0 | cp >> 18), w[1] = (char)(0x80 | (cp >> 12 & 63));
    w[2] = (char)(0x80 | (cp >> 6 & 63)), w[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A quoted string at L->p (Python's escapes, as jinja2 reads them). */
static int lex_string(lexer *L) {
    size_t start = L->p;
    char q = L->src[L->p++];
    char *out = tpl_alloc(L->a, L->len - L->p + 1), *w = out;
    while (L->p < L->len && L->src[L->p] != q) {
        char c = L->src[L->p++];
        if (c != '\\') {
            *w++ = c;
            continue;
        }
        if (L->p >= L->len) break;
        char e = L->src[L->p++];
        int nhex = 0;
        switch (e) {
        case 'n': *w++ = '\n'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'v': *w++ = '\v'; break;
        case 'a': *w++ = '\a'; break;
        case '0': *w++ = '\0'; break;
        case '\\': case '\'': case '"': *w++ = e; break;
        case '\n': break;
        case 'x': nhex = 2; break;
        case 'u': nhex = 4; break;
        case 'U': nhex = 8; break;
        default: *w++ = '\\', *w++ = e;
        }
        if (nhex) {
            uint32_t cp = 0;
            for (int k = 0; k < nhex; k++) {
                int h = L->p < L->len ? hexval(L->src[L->p]) : -1;
                if (h < 0) return lex_fail(L, L->p, "bad \\%c escape in a string", e);
                cp = cp * 16 + (uint32_t)h, L->p++;
            }
            if (cp > 0x10FFFF) return lex_fail(L, L->p, "escape beyond U+10FFFF");
            w += put_utf8(w, cp);
        }
    }
    if (L->p >= L->len) return lex_fail(L, start, "unterminated string");
    L->p++;
    push(L, (tok){.t = T_STR, .s = out, .n = (size_t)(w - out), .pos = start});
    return NX_OK;
}

/* Tokens of one tag from L->p up to its end marker (end = "}}" or "%}"). */
static int lex_tag(lexer *L, char endc, bool *trim_after, bool *ws_after) {
    static const char *ops2[] = {"**", "//", "==", "!=", "<=", ">="};
    int balance = 0; /* open ( [ {: a } inside them is not the tag's end ({{ {'a': {}} }}) */
    for (;;) {
        while (L->p < L->len && is_space(L->src[L->p])) L->p++;
        if (L->p >= L->len) return lex_fail(L, L->p, "a tag is not closed");
        const char *s = L->src + L->p;
        size_t left = L->len - L->p;
        /* end markers: -%} +%} %} or -}} }} */
        if (balance == 0 && (s[0] == '-' || s[0] == '+') && left >= 3 && s[1] == endc && s[2] == '}') {
            *ws_after = s[0] == '-', *trim_after = false;
            L->p += 3;
            return NX_OK;
        }
        if (balance == 0 && left >= 2 && s[0] == endc && s[1] == '}') {
            *ws_after = false, *trim_after = endc == '%';
            L->p += 2;
            return NX_OK;
        }
        size_t pos = L->p;
        if (is_alpha(s[0])) {
            size_t k = 1;
            while (k < left && (is_alpha(s[k]) || is_digit(s[k]))) k++;
            push(L, (tok){.t = T_NAME, .s = s, .n = k, .pos = pos});
            L->p += k;
        } else if (is_digit(s[0])) {
            size_t k = 0;
            while (k < left && is_digit(s[k])) k++;
            bool fl = k + 1 < left && s[k] == '.' && is_digit(s[k + 1]);
            if (fl) {
                k++;
                while (k < left && is_digit(s[k])) k++;
            }
            char buf[64];
            if (k >= sizeof buf) return lex_fail(L, pos, "number too long");
            memcpy(buf, s, k), buf[k] = 0;
            push(L, fl ? (tok){.t = T_FLOAT, .f = strtod(buf, NULL), .pos = pos}
                       : (tok){.t = T_INT, .i = strtoll(buf, NULL, 10), .pos = pos});
            L->p += k;
        } else if (s[0] == '\'' || s[0] == '"') {
            if (lex_string(L)) return NX_ERR;
        } else {
            size_t k = 0;
            for (size_t o = 0; o < sizeof ops2 / sizeof ops2[0]; o++)
                if (left >= 2 && s[0] == ops2[o][0] && s[1] == ops2[o][1]) k = 2;
            if (!k) {
                if (!strchr("+-*/%~<>=()[]{}.,:|", s[0])) return lex_fail(L, pos, "unexpected character '%c'", s[0]);
                k = 1;
            }
            if (k == 1 && strchr("([{", s[0])) balance++;
            if (k == 1 && strchr(")]}", s[0]) && balance > 0) balance--;
            push(L, (tok){.t = T_OP, .s = s, .n = k, .pos = pos});
            L->p += k;
        }
    }
}

static int lex(lexer *L) {
    bool line_start = true, strip_next = false;
    while (L->p < L->len) {
        /* the next tag start */
        size_t q = L->p;
        const char *hit = NULL;
        while (q + 1 < L->len) {
            if (L->src[q] == '{' && (L->src[q + 1] == '{' || L->src[q + 1] == '%' || L->src[q + 1] == '#')) {
                hit = L->src + q;
                break;
            }
            q++;
        }
        size_t text_end = hit ? q : L->len;
        const char *text = L->src + L->p;
        size_t tn = text_end - L->p;
        if (strip_next) /* after -}} -%} -#}: all whitespace */
            while (tn && is_space(*text)) text++, tn--;
        strip_next = false;
        if (!hit) {
            if (tn) push(L, (tok){.t = T_TEXT, .s = text, .n = tn, .pos = L->p});
            break;
        }
        char kind = hit[1];
        char sign = q + 2 < L->len ? hit[2] : 0;
        if (sign == '-') {
            while (tn && is_space(text[tn - 1])) tn--;
        } else if (sign != '+' && kind != '{') { /* lstrip_blocks */
            size_t l = tn;
            while (l && text[l - 1] != '\n') l--;
            bool ws = true;
            for (size_t k = l; k < tn; k++) ws = ws && is_space(text[k]);
            if (ws && (l > 0 || line_start)) tn = l;
        }
        if (tn) push(L, (tok){.t = T_TEXT, .s = text, .n = tn, .pos = L->p});
        L->p = q + 2 + (sign == '-' || sign == '+');
        bool trim = false, ws = false;
        if (kind == '#') {
            const char *end = NULL;
            for (size_t k = L->p; k + 1 < L->len; k++)
                if (L->src[k] == '#' && L->src[k + 1] == '}') {
                    end = L->src + k;
                    break;
                }
            if (!end) return lex_fail(L, q, "a comment is not closed");
            ws = end > L->src + L->p && end[-1] == '-';
            trim = !ws && !(end > L->src + L->p && end[-1] == '+');
            L->p = (size_t)(end - L->src) + 2;
        } else {
            push(L, (tok){.t = kind == '{' ? T_VBEGIN : T_BBEGIN, .pos = q});
            if (lex_tag(L, kind == '{' ? '}' : '%', &trim, &ws)) return NX_ERR;
            push(L, (tok){.t = kind == '{' ? T_VEND : T_BEND, .pos = L->p});
        }
        if (trim && L->p < L->len && L->src[L->p] == '\n') L->p++;
        strip_next = ws;
        /* did the consumed tag end with a newline (a trimmed one, or - followed by whitespace)? */
        if (ws) {
            size_t k = L->p;
            while (k < L->len && is_space(L->src[k])) k++;
            line_start = k > L->p && L->src[k - 1] == '\n';
            L->p = k, strip_next = false;
        } else {
            line_start = trim && L->p > 0 && L->src[L->p - 1] == '\n';
        }
    }
    push(L, (tok){.t = T_EOF, .pos = L->len});
    return NX_OK;
}

/* ---- parser ------------------------------------------------------------------ */
typedef struct parser {
    tpl_arena *a;
    tok *t;
    int i, n;
    int depth; /* nesting of expressions and blocks: bounded, the parser and the renderer recurse */
    nx_err *err;
} parser;

enum { MAX_DEPTH = 100 };

static int perr(parser *P, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nx_fail(P->err, "chat template, byte %zu: %s", P->t[P->i].pos, msg);
}

static tok *peek(parser *P) { return &P->t[P->i]; }
static bool is_op(const tok *t, const char *op) { return t->t == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n); }
static bool is_name(const tok *t, const char *nm) { return t->t == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n); }
static bool accept_op(parser *P, const char *op) {
    if (!is_op(peek(P), op)) return false;
    P->i++;
    return true;
}
static bool accept_name(parser *P, const char *nm) {
    if (!is_name(peek(P), nm)) return false;
    P->i++;
    return true;
}
static int expect_op(parser *P, const char *op) {
    return accept_op(P, op) ? NX_OK : perr(P, "expected '%s'", op);
}

static tnode *node(parser *P, nkind k) {
    tnode *x = tpl_alloc(P->a, sizeof *x);
    x->kind = k;
    x->pos = peek(P)->pos;
    return x;
}

static tnode *parse_expr(parser *P);
static tnode *parse_or(parser *P);

/* (a, b, k=v) after the '(' was consumed */
static int parse_args(parser *P, tnode *x) {
    tnode *args[32];
    const char *kw[32];
    int n = 0;
    while (!accept_op(P, ")")) {
        if (n && expect_op(P, ",")) return NX_ERR;
        if (accept_op(P, ")")) break; /* trailing comma */
        if (n == 32) return perr(P, "too many arguments");
        kw[n] = NULL;
        if (peek(P)->t == T_NAME && is_op(&P->t[P->i + 1], "=")) {
            kw[n] = tpl_strndup(P->a, peek(P)->s, peek(P)->n);
            P->i += 2;
        }
        if (!(args[n++] = parse_expr(P))) return NX_ERR;
    }
    x->nargs = n;
    x->args = tpl_alloc(P->a, sizeof(tnode *) * (n ? n : 1));
    x->kw = tpl_alloc(P->a, sizeof(char *) * (n ? n : 1));
    memcpy(x->args, args, sizeof(tnode *) * n);
    memcpy(x->kw, kw, sizeof(char *) * n);
    return NX_OK;
}

static tnode *parse_primary(parser *P) {
    tok *t = peek(P);
    tnode *x;
    if (t->t == T_STR) { /* adjacent strings concatenate */
        x = node(P, E_LIT);
        x->lit.t = J_STR;
        size_t total = 0;
        int k = P->i;
        while (P->t[k].t == T_STR) total += P->t[k++].n;
        char *s = tpl_alloc(P->a, total + 1), *w = s;
        while (peek(P)->t == T_STR) {
            memcpy(w, peek(P)->s, peek(P)->n);
            w += peek(P)->n;
            P->i++;
        }
        x->lit.s = s, x->lit.n = total;
        return x;
    }
    if (t->t == T_INT || t->t == T_FLOAT) {
        x = node(P, E_LIT);
        x->lit = t->t == T_INT ? (jv){.t = J_INT, .i = t->i} : (jv){.t = J_FLOAT, .f = t->f};
        P->i++;
        return x;
    }
    if (t->t == T_NAME) {
        x = node(P, E_LIT);
        if (is_name(t, "true") || is_name(t, "True")) x->lit = (jv){.t = J_BOOL, .b = true};
        else if (is_name(t, "false") || is_name(t, "False")) x->lit = (jv){.t = J_BOOL, .b = false};
        else if (is_name(t, "none") || is_name(t, "None")) x->lit = (jv){.t = J_NONE};
        else {
            x->kind = E_NAME;
            x->s = tpl_strndup(P->a, t->s, t->n), x->n = t->n;
        }
        P->i++;
        return x;
    }
    if (accept_op(P, "(")) {
        x = parse_expr(P);
        if (!x) return NULL;
        if (is_op(peek(P), ",")) return perr(P, "tuples are not supported"), NULL;
        return expect_op(P, ")") ? NULL : x;
    }
    if (accept_op(P, "[")) {
        x = node(P, E_LIST);
        tnode *items[256];
        int n = 0;
        while (!accept_op(P, "]")) {
            if (n && expect_op(P, ",")) return NULL;
            if (accept_op(P, "]")) break;
            if (n == 256) return perr(P, "list literal too long"), NULL;
            if (!(items[n++] = parse_expr(P))) return NULL;
        }
        x->nargs = n;
        x->args = tpl_alloc(P->a, sizeof(tnode *) * (n ? n : 1));
        memcpy(x->args, items, sizeof(tnode *) * n);
        return x;
    }
    if (accept_op(P, "{")) {
        x = node(P, E_DICT);
        tnode *items[256];
        int n = 0;
        while (!accept_op(P, "}")) {
            if (n && expect_op(P, ",")) return NULL;
            if (accept_op(P, "}")) break;
            if (n == 256) return perr(P, "dict literal too long"), NULL;
            if (!(items[n++] = parse_expr(P)) || expect_op(P, ":") || !(items[n++] = parse_expr(P))) return NULL;
        }
        x->nargs = n;
        x->args = tpl_alloc(P->a, sizeof(tnode *) * (n ? n : 1));
        memcpy(x->args, items, sizeof(tnode *) * n);
        return x;
    }
    return perr(P, t->t == T_EOF ? "unexpected end of template" : "unexpected token in an expression"), NULL;
}

static tnode *parse_postfix(parser *P, tnode *x) {
    for (;;) {
        if (accept_op(P, ".")) {
            tok *t = peek(P);
            if (t->t != T_NAME && t->t != T_INT) return perr(P, "expected an attribute name after '.'"), NULL;
            tnode *y = node(P, E_ATTR);
            y->a = x;
            if (t->t == T_INT) { /* x.0 is x[0] */
                y->kind = E_INDEX;
                y->b = node(P, E_LIT);
                y->b->lit = (jv){.t = J_INT, .i = t->i};
            } else {
                y->s = tpl_strndup(P->a, t->s, t->n), y->n = t->n;
            }
            P->i++;
            x = y;
        } else if (accept_op(P, "[")) {
            tnode *parts[3] = {NULL, NULL, NULL};
            int k = 0;
            bool slice = false;
            for (;;) {
                if (is_op(peek(P), ":")) {
                    slice = true;
                    P->i++;
                    if (++k > 2) return perr(P, "bad slice"), NULL;
                    continue;
                }
                if (accept_op(P, "]")) break;
                if (!(parts[k] = parse_expr(P))) return NULL;
            }
            tnode *y = node(P, slice ? E_SLICE : E_INDEX);
            y->a = x;
            if (slice) y->b = parts[0], y->c = parts[1], y->d = parts[2];
            else if (!(y->b = parts[0])) return perr(P, "empty subscript"), NULL;
            x = y;
        } else if (accept_op(P, "(")) {
            tnode *y = node(P, E_CALL);
            y->a = x;
            if (parse_args(P, y)) return NULL;
            x = y;
        } else {
            return x;
        }
    }
}

static tnode *parse_filters(parser *P, tnode *x) {
    for (;;) {
        if (accept_op(P, "|")) {
            tok *t = peek(P);
            if (t->t != T_NAME) return perr(P, "expected a filter name"), NULL;
            tnode *y = node(P, E_FILTER);
            y->s = tpl_strndup(P->a, t->s, t->n), y->n = t->n;
            y->a = x;
            P->i++;
            if (accept_op(P, "(") && parse_args(P, y)) return NULL;
            x = y;
        } else if (accept_name(P, "is")) {
            tnode *y = node(P, E_TEST);
            y->negate = accept_name(P, "not");
            tok *t = peek(P);
            if (t->t != T_NAME) return perr(P, "expected a test name after 'is'"), NULL;
            y->s = tpl_strndup(P->a, t->s, t->n), y->n = t->n;
            y->a = x;
            P->i++;
            if (accept_op(P, "(")) {
                if (parse_args(P, y)) return NULL;
            } else { /* one argument without parentheses: x is divisibleby 3, x is equalto y */
                tok *u = peek(P);
                if (u->t == T_STR || u->t == T_INT || u->t == T_FLOAT ||
                    (u->t == T_NAME && !is_name(u, "and") && !is_name(u, "or") && !is_name(u, "else") &&
                     !is_name(u, "if") && !is_name(u, "in") && !is_name(u, "not") && !is_name(u, "is"))) {
                    tnode *arg = parse_postfix(P, parse_primary(P));
                    if (!arg) return NULL;
                    y->nargs = 1;
                    y->args = tpl_alloc(P->a, sizeof(tnode *));
                    y->kw = tpl_alloc(P->a, sizeof(char *));
                    y->args[0] = arg;
                }
            }
            x = y;
        } else {
            return x;
        }
    }
}

/* jinja2: -x|f is f(-x): the sign applies first, filters to the whole */
static tnode *parse_unary_(parser *P, bool filters) {
    if (P->depth > MAX_DEPTH) return perr(P, "expressions nested more than %d deep", MAX_DEPTH), NULL;
    tnode *x;
    if (is_op(peek(P), "-") || is_op(peek(P), "+")) {
        x = node(P, is_op(peek(P), "-") ? E_NEG : E_POS);
        P->i++;
        P->depth++;
        x->a = parse_unary_(P, false);
        P->depth--;
        if (!x->a) return NULL;
    } else {
        x = parse_primary(P);
        if (!x || !(x = parse_postfix(P, x))) return NULL;
    }
    return filters ? parse_filters(P, x) : x;
}

static tnode *parse_unary(parser *P) { return parse_unary_(P, true); }

static tnode *binary(parser *P, nop op, tnode *a, tnode *b) {
    if (!a || !b) return NULL;
    tnode *x = node(P, E_BIN);
    x->op = op, x->a = a, x->b = b, x->pos = a->pos;
    return x;
}

static tnode *parse_pow(parser *P) {
    tnode *x = parse_unary(P);
    while (x && accept_op(P, "**")) x = binary(P, OP_POW, x, parse_unary(P));
    return x;
}

static tnode *parse_mul(parser *P) {
    tnode *x = parse_pow(P);
    for (;;) {
        if (!x) return NULL;
        if (accept_op(P, "*")) x = binary(P, OP_MUL, x, parse_pow(P));
        else if (accept_op(P, "//")) x = binary(P, OP_FLOORDIV, x, parse_pow(P));
        else if (accept_op(P, "/")) x = binary(P, OP_DIV, x, parse_pow(P));
        else if (accept_op(P, "%")) x = binary(P, OP_MOD, x, parse_pow(P));
        else return x;
    }
}

static tnode *parse_concat(parser *P) {
    tnode *x = parse_mul(P);
    while (x && accept_op(P, "~")) x = binary(P, OP_CAT, x, parse_mul(P));
    return x;
}

static tnode *parse_add(parser *P) {
    tnode *x = parse_concat(P);
    for (;;) {
        if (!x) return NULL;
        if (accept_op(P, "+")) x = binary(P, OP_ADD, x, parse_concat(P));
        else if (accept_op(P, "-")) x = binary(P, OP_SUB, x, parse_concat(P));
        else return x;
    }
}

static tnode *parse_compare(parser *P) {
    tnode *x = parse_add(P);
    for (;;) {
        if (!x) return NULL;
        static const struct { const char *s; nop op; } ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE},
                                                               {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT}};
        bool matched = false;
        for (size_t k = 0; k < sizeof ops / sizeof ops[0] && !matched; k++)
            if (accept_op(P, ops[k].s)) x = binary(P, ops[k].op, x, parse_add(P)), matched = true;
        if (matched) continue;
        if (accept_name(P, "in")) x = binary(P, OP_IN, x, parse_add(P));
        else if (is_name(peek(P), "not") && is_name(&P->t[P->i + 1], "in")) {
            P->i += 2;
            x = binary(P, OP_NOTIN, x, parse_add(P));
        } else return x;
    }
}

static tnode *parse_not(parser *P) {
    if (P->depth > MAX_DEPTH) return perr(P, "expressions nested more than %d deep", MAX_DEPTH), NULL;
    if (accept_name(P, "not")) {
        tnode *x = node(P, E_NOT);
        P->depth++;
        x->a = parse_not(P);
        P->depth--;
        return x->a ? x : NULL;
    }
    return parse_compare(P);
}

static tnode *parse_and(parser *P) {
    tnode *x = parse_not(P);
    while (x && accept_name(P, "and")) {
        tnode *y = node(P, E_AND);
        y->a = x;
        if (!(y->b = parse_not(P))) return NULL;
        x = y;
    }
    return x;
}

static tnode *parse_or(parser *P) {
    tnode *x = parse_and(P);
    while (x && accept_name(P, "or")) {
        tnode *y = node(P, E_OR);
        y->a = x;
        if (!(y->b = parse_and(P))) return NULL;
        x = y;
    }
    return x;
}

static tnode *parse_expr(parser *P) {
    if (++P->depth > MAX_DEPTH) return perr(P, "expressions nested more than %d deep", MAX_DEPTH), NULL;
    tnode *x = parse_or(P);
    P->depth--;
    while (x && accept_name(P, "if")) {
        tnode *y = node(P, E_COND);
        y->a = x;
        if (!(y->b = parse_or(P))) return NULL;
        if (accept_name(P, "else")) {
            if (!(y->c = parse_or(P))) return NULL;
        }
        x = y;
    }
    return x;
}

/* ---- statements ------------------------------------------------------------- */
static int parse_body(parser *P, tnode ***body, int *nbody, const char *const *ends, int nends, int *which);

static int end_tag(parser *P) {
    return peek(P)->t == T_BEND ? (P->i++, NX_OK) : perr(P, "expected the end of the tag ('%%}')");
}

static tnode *parse_stmt_(parser *P);
static tnode *parse_stmt(parser *P) {
    if (++P->depth > MAX_DEPTH) return perr(P, "blocks nested more than %d deep", MAX_DEPTH), NULL;
    tnode *x = parse_stmt_(P);
    P->depth--;
    return x;
}

static tnode *parse_stmt_(parser *P) {
    tok *t = peek(P);
    if (t->t != T_NAME) return perr(P, "expected a statement name"), NULL;
    if (accept_name(P, "if")) {
        tnode *x = node(P, N_IF);
        x->pos = t->pos;
        if (!(x->a = parse_expr(P)) || end_tag(P)) return NULL;
        static const char *const ends[] = {"elif", "else", "endif"};
        int which;
        if (parse_body(P, &x->body, &x->nbody, ends, 3, &which)) return NULL;
        tnode *cur = x;
        while (which == 0) { /* elif: a nested if in the else branch */
            tnode *y = node(P, N_IF);
            if (!(y->a = parse_expr(P)) || end_tag(P)) return NULL;
            if (parse_body(P, &y->body, &y->nbody, ends, 3, &which)) return NULL;
            cur->orelse = tpl_alloc(P->a, sizeof(tnode *));
            cur->orelse[0] = y, cur->norelse = 1;
            cur = y;
        }
        if (which == 1) {
            if (end_tag(P)) return NULL;
            static const char *const endif[] = {"endif"};
            if (parse_body(P, &cur->orelse, &cur->norelse, endif, 1, &which)) return NULL;
        }
        return end_tag(P) ? NULL : x;
    }
    if (accept_name(P, "for")) {
        tnode *x = node(P, N_FOR);
        x->pos = t->pos;
        if (peek(P)->t != T_NAME) return perr(P, "expected a loop variable"), NULL;
        x->s = tpl_strndup(P->a, peek(P)->s, peek(P)->n), x->n = peek(P)->n;
        P->i++;
        if (accept_op(P, ",")) {
            if (peek(P)->t != T_NAME) return perr(P, "expected a second loop variable"), NULL;
            x->s2 = tpl_strndup(P->a, peek(P)->s, peek(P)->n);
            P->i++;
        }
        if (!accept_name(P, "in")) return perr(P, "expected 'in'"), NULL;
        if (!(x->a = parse_or(P))) return NULL;
        if (accept_name(P, "if") && !(x->filter = parse_or(P))) return NULL;
        if (accept_name(P, "recursive")) return perr(P, "recursive loops are not supported"), NULL;
        if (end_tag(P)) return NULL;
        static const char *const ends[] = {"else", "endfor"};
        int which;
        if (parse_body(P, &x->body, &x->nbody, ends, 2, &which)) return NULL;
        if (which == 0) {
            if (end_tag(P)) return NULL;
            static const char *const endfor[] = {"endfor"};
            if (parse_body(P, &x->orelse, &x->norelse, endfor, 1, &which)) return NULL;
        }
        return end_tag(P) ? NULL : x;
    }
    if (accept_name(P, "set")) {
        tnode *x = node(P, N_SET);
        x->pos = t->pos;
        if (peek(P)->t != T_NAME) return perr(P, "expected a variable name after 'set'"), NULL;
        x->s = tpl_strndup(P->a, peek(P)->s, peek(P)->n), x->n = peek(P)->n;
        P->i++;
        if (accept_op(P, ".")) {
            if (peek(P)->t != T_NAME) return perr(P, "expected an attribute name"), NULL;
            x->s2 = tpl_strndup(P->a, peek(P)->s, peek(P)->n);
            P->i++;
        }
        if (!accept_op(P, "=")) return perr(P, "'set' blocks and tuple targets are not supported"), NULL;
        if (!(x->a = parse_expr(P)) || end_tag(P)) return NULL;
        return x;
    }
    if (accept_name(P, "break") || accept_name(P, "continue")) {
        tnode *x = node(P, is_name(t, "break") ? N_BREAK : N_CONTINUE);
        return end_tag(P) ? NULL : x;
    }
    return perr(P, "the '%.*s' tag is not supported", (int)t->n, t->s), NULL;
}

/* Statements up to one of ends (the tag name is consumed, not its %}), or
 * to the end of the template when nends is 0. */
static int parse_body(parser *P, tnode ***body, int *nbody, const char *const *ends, int nends, int *which) {
    tnode **v = NULL;
    int n = 0, cap = 0;
    for (;;) {
        tok *t = peek(P);
        tnode *x = NULL;
        if (t->t == T_EOF) {
            if (nends) {
                free(v);
                return perr(P, "missing {%% %s %%}", ends[nends - 1]);
            }
            break;
        }
        if (t->t == T_TEXT) {
            x = node(P, N_TEXT);
            x->s = t->s, x->n = t->n;
            P->i++;
        } else if (t->t == T_VBEGIN) {
            P->i++;
            x = node(P, N_OUT);
            if (!(x->a = parse_expr(P))) goto fail;
            if (peek(P)->t != T_VEND) {
                perr(P, "expected '}}'");
                goto fail;
            }
            P->i++;
        } else if (t->t == T_BBEGIN) {
            P->i++;
            int k = 0;
            while (k < nends && !is_name(peek(P), ends[k])) k++;
            if (k < nends) {
                P->i++;
                *which = k;
                goto done;
            }
            if (is_name(peek(P), "generation") || is_name(peek(P), "endgeneration")) { /* AssistantTracker marks */
                P->i++;
                if (end_tag(P)) goto fail;
                continue;
            }
            if (!(x = parse_stmt(P))) goto fail;
        } else {
            perr(P, "unexpected token");
            goto fail;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            v = realloc(v, sizeof(tnode *) * cap);
            if (!v) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
        }
        v[n++] = x;
    }
    if (0) { /* the error paths above */
fail:
        free(v);
        return NX_ERR;
    }
done:
    *body = tpl_alloc(P->a, sizeof(tnode *) * (n ? n : 1));
    if (n) memcpy(*body, v, sizeof(tnode *) * n);
    *nbody = n;
    free(v);
    return NX_OK;
}

int nx_chat_template_parse(nx_chat_template **out, const char *src, nx_err *err) {
    *out = NULL;
    nx_chat_template *t = nx_xcalloc(1, sizeof *t);
    /* newlines normalised, one trailing newline dropped */
    size_t len = strlen(src);
    char *s = tpl_alloc(&t->arena, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    lexer L = {.a = &t->arena, .src = s, .len = n, .err = err};
    if (lex(&L)) {
        free(L.toks);
        nx_chat_template_free(t);
        return NX_ERR;
    }
    parser P = {.a = &t->arena, .t = L.toks, .n = L.n, .err = err};
    int which, rc = parse_body(&P, &t->body, &t->nbody, NULL, 0, &which);
    free(L.toks);
    if (rc) {
        nx_chat_template_free(t);
        return NX_ERR;
    }
    *out = t;
    return NX_OK;
}

void nx_chat_template_free(nx_chat_template *t) {
    if (!t) return;
    tpl_arena_free(&t->arena);
    free(t);
}
