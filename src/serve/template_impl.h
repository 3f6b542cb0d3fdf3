/* template_impl.h — what the two halves of the chat-template engine share:
 * template_parse.c (lexer with Jinja's whitespace rules, recursive-descent
 * parser into the node tree below) and template_eval.c (values, filters,
 * tests, methods, and the tree walk that renders).
 *
 * Everything a parsed template holds lives in one arena freed with it; a
 * render has its own arena for the values it makes, freed at its end. */
#ifndef NEXUS_SERVE_TEMPLATE_IMPL_H
#define NEXUS_SERVE_TEMPLATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
