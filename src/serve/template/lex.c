/* lex.c — chat-template source into tokens, and the arena the engine
 * allocates from.
 *
 * The lexer applies the whitespace rules transformers renders chat
 * templates with (ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True)), as jinja2's lexer does:
 *   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`,
 *     `-}}`, `-#}` all whitespace after it;
 *   - trim_blocks: one newline right after `%}` or `#}` is dropped (not
 *     after `+%}`, nor after `}}`);
 *   - lstrip_blocks: spaces and tabs between the start of a line and a
 *     `{%` or `{#` are dropped (not before `{%+`, nor before `{{`); a line
 *     starts after a newline, at the start of the template, and right
 *     after a tag whose consumed text ended with a newline.
 * Inside a tag, a `}` closes a bracket before it can end the tag, as
 * jinja2 balances them ({{ {'a': {}} }}). String literals take Python's
 * escapes. (parse.c normalises newlines and drops one trailing newline
 * first: keep_trailing_newline=False.) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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


int tpl_lex(tpl_arena *a, const char *src, size_t len, tok **toks, int *n, nx_err *err) {
    lexer L = {.a = a, .src = src, .len = len, .err = err};
    int rc = lex(&L);
    *toks = L.toks, *n = L.n;
    return rc;
}
