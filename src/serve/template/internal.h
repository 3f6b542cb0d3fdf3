/* internal.h — what the files of the chat-template engine share:
 *   lex.c     source → tokens, with Jinja's whitespace rules
 *   parse.c   tokens → the node tree below (recursive descent)
 *   value.c   Python's values: conversions, str()/repr(), tojson, operators
 *   lib.c     filters, tests, methods and global functions
 *   render.c  the tree walk: expressions, statements, scopes; the fallback
 *
 * Everything a parsed template holds lives in one arena freed with it; a
 * render has its own arena for the values it makes, freed at its end. */
#ifndef NEXUS_SERVE_TEMPLATE_INTERNAL_H
#define NEXUS_SERVE_TEMPLATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "nexus/serve.h"

/* ---- arena ---------------------------------------------------------------- */
typedef struct tpl_block tpl_block;
typedef struct tpl_arena {
    tpl_block *head;
    size_t total; /* bytes handed out: a render stops past its limit */
} tpl_arena;

void *tpl_alloc(tpl_arena *a, size_t n);          /* zeroed; exits on out of memory */
char *tpl_strndup(tpl_arena *a, const char *s, size_t n);
void tpl_arena_free(tpl_arena *a);

/* ---- values (Python's, as Jinja sees them) -------------------------------- */
typedef enum { J_UNDEF, J_NONE, J_BOOL, J_INT, J_FLOAT, J_STR, J_LIST, J_DICT } jtype;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jv {
    jtype t;
    bool b;
    int64_t i;
    double f;
    const char *s; /* J_STR: n bytes (not NUL-terminated in general) */
    size_t n;
    jlist *l;
    jdict *d;
} jv;

struct jlist {
    jv *v;
    int n, cap;
    bool tuple; /* printed (a, b): dict items */
};
struct jdict {
    const char **k;
    size_t *kn;
    jv *v;
    int n, cap;
    bool ns; /* a namespace(): its attributes may be set */
};

/* ---- the tree ---------------------------------------------------------------- */
typedef enum {
    /* statements */
    N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_BREAK, N_CONTINUE,
    /* expressions */
    E_LIT, E_NAME, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NOT, E_NEG, E_POS, E_BIN, E_AND, E_OR,
    E_COND, E_LIST, E_DICT,
} nkind;

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CAT, OP_EQ, OP_NE, OP_LT, OP_LE,
               OP_GT, OP_GE, OP_IN, OP_NOTIN } nop;

typedef struct tnode tnode;
struct tnode {
    nkind kind;
    nop op;
    size_t pos;            /* byte offset in the source, for errors */
    const char *s;         /* N_TEXT text, E_NAME/E_ATTR/E_FILTER/E_TEST name, N_SET/N_FOR target */
    size_t n;
    const char *s2;        /* N_SET attribute (ns.attr), N_FOR second target */
    jv lit;                /* E_LIT */
    tnode *a, *b, *c;      /* operands; E_COND: a if b else c; E_SLICE: obj a, start b, stop c, step d */
    tnode *d;
    tnode **args;          /* E_CALL/E_FILTER/E_TEST arguments, E_LIST items, E_DICT keys and values */
    const char **kw;       /* keyword names, NULL for positional */
    int nargs;
    bool negate;           /* E_TEST: is not */
    tnode **body, **orelse; /* N_IF: then / else (elif is a nested N_IF); N_FOR: body / else */
    int nbody, norelse;
    tnode *filter;         /* N_FOR ... if filter */
};

struct nx_chat_template {
    tpl_arena arena;
    tnode **body;
    int nbody;
};

/* ---- tokens (lex.c) ------------------------------------------------------- */
typedef enum { T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_EOF } ttype;

typedef struct tok {
    ttype t;
    const char *s; /* T_TEXT/T_NAME/T_OP/T_STR (unescaped) */
    size_t n;
    int64_t i;
    double f;
    size_t pos;
} tok;


/* The tokens of src[0..len) (newlines already normalised), ending with
 * T_EOF, into *toks (malloc'd); strings point into src or the arena. */
int tpl_lex(tpl_arena *a, const char *src, size_t len, tok **toks, int *n, nx_err *err);

/* ---- a render (render.c, value.c, lib.c) ---------------------------------- */
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

typedef struct args {
    jv v[16];
    const char *kw[16];
    int n;
} args;


/* value.c */
void tv_bput(buf *b, const char *s, size_t n);
jv tv_fail(rs *R, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* sets R->failed; returns undefined */
void tv_lpush(rs *R, jlist *l, jv v);
jv *tv_dget(const jdict *d, const char *k, size_t kn);
void tv_dset(rs *R, jdict *d, const char *k, size_t kn, jv v);
bool tv_truthy(jv v);
const char *tv_type_name(jv v);
void tv_str_into(rs *R, buf *b, jv v);             /* Python's str() */
jv tv_to_str(rs *R, jv v);
bool tv_tojson(rs *R, buf *b, jv v, int indent, int depth);
jv tv_from_cjson(rs *R, const cJSON *x);
bool tv_equal(jv a, jv b);
jv tv_binop(rs *R, nop op, jv a, jv b);
jv tv_getattr(rs *R, jv o, const char *name, size_t n);
jv tv_subscript(rs *R, jv o, jv k);
jlist *tv_iter_items(rs *R, jv v);                  /* a list's items, a dict's keys, a string's characters */
static inline bool tv_is_num(jv v) { return v.t == J_INT || v.t == J_FLOAT || v.t == J_BOOL; }
static inline double tv_num(jv v) { return v.t == J_FLOAT ? v.f : v.t == J_INT ? (double)v.i : v.b; }
static inline int64_t tv_inum(jv v) { return v.t == J_INT ? v.i : v.b; }
static inline jv tv_mkstr(rs *R, const char *s, size_t n) { return (jv){.t = J_STR, .s = tpl_strndup(&R->a, s, n), .n = n}; }
static inline jv tv_mkbool(bool b) { return (jv){.t = J_BOOL, .b = b}; }
static inline jv tv_mkint(int64_t i) { return (jv){.t = J_INT, .i = i}; }
static inline jlist *tv_newlist(rs *R) { return tpl_alloc(&R->a, sizeof(jlist)); }
static inline jdict *tv_newdict(rs *R) { return tpl_alloc(&R->a, sizeof(jdict)); }

/* lib.c */
jv *tv_arg(args *a, int i, const char *name);      /* positional i, or the keyword name, or NULL */
jv tv_casemap(rs *R, jv s, int mode);              /* 0 upper, 1 lower, 2 title, 3 capitalize */
jv tv_method(rs *R, jv o, const char *name, args *a);
jv tv_call_global(rs *R, const char *name, args *a);
bool tv_test(rs *R, const char *name, jv v, args *a, bool *known);
jv tv_apply_filter(rs *R, const char *name, jv v, args *a);

#endif
