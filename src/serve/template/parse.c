/* parse.c — Jinja source into a tree (internal.h).
 *
 * lex.c makes the tokens (the whitespace rules are there); the source's
 * newlines are normalised to \n and one trailing newline is dropped first
 * (keep_trailing_newline=False). The parser is recursive descent with
 * jinja2's precedence, lowest first: `x if c else y`, or, and, not, comparisons (== != < <= > >= in, not in),
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

#include "internal.h"

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
    tok *toks;
    int ntoks;
    if (tpl_lex(&t->arena, s, n, &toks, &ntoks, err)) {
        free(toks);
        nx_chat_template_free(t);
        return NX_ERR;
    }
    parser P = {.a = &t->arena, .t = toks, .n = ntoks, .err = err};
    int which, rc = parse_body(&P, &t->body, &t->nbody, NULL, 0, &which);
    free(toks);
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

