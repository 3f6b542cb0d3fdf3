/* render.c — rendering a parsed chat template: the tree walk over
 * expressions and statements, with jinja2's scoping (a for loop's body has
 * its own scope, so a `set` inside does not leak out, which is why
 * templates use namespace(); `if` has none), loop variables, break and
 * continue, and limits that end a runaway template (steps, memory, value
 * depth) as a failed render. Also the fallback format of serve.h. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
        tv_fail(R, "too many variables in one scope");
        return;
    }
    s->k[s->n] = name, s->v[s->n++] = v;
}

static bool opt_int(rs *R, const tnode *x, int64_t *out, bool *given) {
    *given = false;
    if (!x) return true;
    jv v = eval(R, x);
    if (R->failed) return false;
    if (v.t == J_NONE) return true;
    if (v.t != J_INT) return tv_fail(R, "slice indices must be integers"), false;
    *out = v.i, *given = true;
    return true;
}

static jv slice(rs *R, const tnode *x) {
    jv o = eval(R, x->a);
    if (R->failed) return o;
    if (o.t != J_LIST && o.t != J_STR) return tv_fail(R, "'%s' object is not subscriptable with a slice", tv_type_name(o));
    int64_t n = o.t == J_LIST ? o.l->n : (int64_t)o.n, start = 0, stop = 0, step = 1;
    bool hs, he, hst;
    if (!opt_int(R, x->b, &start, &hs) || !opt_int(R, x->c, &stop, &he) || !opt_int(R, x->d, &step, &hst)) return o;
    if (step == 0) return tv_fail(R, "slice step cannot be zero");
    /* Python's PySlice_AdjustIndices */
    if (!hs) start = step < 0 ? n - 1 : 0;
    else if (start < 0) start = start + n < 0 ? (step < 0 ? -1 : 0) : start + n;
    else if (start >= n) start = step < 0 ? n - 1 : n;
    if (!he) stop = step < 0 ? -1 : n;
    else if (stop < 0) stop = stop + n < 0 ? (step < 0 ? -1 : 0) : stop + n;
    else if (stop >= n) stop = step < 0 ? n - 1 : n;
    if (o.t == J_LIST) {
        jlist *l = tv_newlist(R);
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            tv_lpush(R, l, o.l->v[i]);
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        return (jv){.t = J_LIST, .l = l};
    }
    buf b = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        tv_bput(&b, o.s + i, 1);
        if (__builtin_add_overflow(i, step, &i)) break;
    }
    jv s = tv_mkstr(R, b.s ? b.s : "", b.n);
    free(b.s);
    return s;
}

static bool eval_args(rs *R, const tnode *x, args *a) {
    a->n = 0;
    if (x->nargs > 16) return tv_fail(R, "too many arguments"), false;
    for (int i = 0; i < x->nargs; i++) {
        a->v[a->n] = eval(R, x->args[i]);
        a->kw[a->n++] = x->kw ? x->kw[i] : NULL;
        if (R->failed) return false;
    }
    return true;
}

static jv eval(rs *R, const tnode *x) {
    if (R->failed) return (jv){.t = J_UNDEF};
    if (++R->steps > 2000000) return tv_fail(R, "the template runs too long");
    if (R->a.total > (256u << 20)) return tv_fail(R, "the template uses more than 256 MiB");
    switch (x->kind) {
    case E_LIT: return x->lit;
    case E_NAME: return lookup(R, x->s, x->n);
    case E_ATTR: {
        jv o = eval(R, x->a);
        return R->failed ? o : tv_getattr(R, o, x->s, x->n);
    }
    case E_INDEX: {
        jv o = eval(R, x->a), k = eval(R, x->b);
        return R->failed ? o : tv_subscript(R, o, k);
    }
    case E_SLICE: return slice(R, x);
    case E_CALL: {
        args a;
        if (x->a->kind == E_ATTR) {
            jv o = eval(R, x->a->a);
            if (R->failed || !eval_args(R, x, &a)) return o;
            return tv_method(R, o, x->a->s, &a);
        }
        if (x->a->kind != E_NAME) return tv_fail(R, "only functions and methods can be called");
        if (!eval_args(R, x, &a)) return (jv){.t = J_UNDEF};
        return tv_call_global(R, x->a->s, &a);
    }
    case E_FILTER: {
        jv v = eval(R, x->a);
        args a;
        if (R->failed || !eval_args(R, x, &a)) return v;
        return tv_apply_filter(R, x->s, v, &a);
    }
    case E_TEST: {
        jv v = eval(R, x->a);
        args a;
        if (R->failed || !eval_args(R, x, &a)) return v;
        bool known, t = tv_test(R, x->s, v, &a, &known);
        return tv_mkbool(x->negate ? !t : t);
    }
    case E_NOT: return tv_mkbool(!tv_truthy(eval(R, x->a)));
    case E_NEG: case E_POS: {
        jv v = eval(R, x->a);
        if (R->failed) return v;
        if (!tv_is_num(v)) return tv_fail(R, "bad operand type for unary %c: '%s'", x->kind == E_NEG ? '-' : '+', tv_type_name(v));
        if (x->kind == E_POS) return v;
        if (v.t != J_FLOAT && tv_inum(v) == INT64_MIN) return tv_fail(R, "integer overflow");
        return v.t == J_FLOAT ? (jv){.t = J_FLOAT, .f = -v.f} : tv_mkint(-tv_inum(v));
    }
    case E_BIN: {
        jv a = eval(R, x->a), b = eval(R, x->b);
        return R->failed ? a : tv_binop(R, x->op, a, b);
    }
    case E_AND: {
        jv a = eval(R, x->a);
        return tv_truthy(a) ? eval(R, x->b) : a;
    }
    case E_OR: {
        jv a = eval(R, x->a);
        return tv_truthy(a) ? a : eval(R, x->b);
    }
    case E_COND: return tv_truthy(eval(R, x->b)) ? eval(R, x->a) : x->c ? eval(R, x->c) : (jv){.t = J_UNDEF};
    case E_LIST: {
        jlist *l = tv_newlist(R);
        for (int i = 0; i < x->nargs; i++) tv_lpush(R, l, eval(R, x->args[i]));
        return (jv){.t = J_LIST, .l = l};
    }
    case E_DICT: {
        jdict *d = tv_newdict(R);
        for (int i = 0; i + 1 < x->nargs; i += 2) {
            jv k = eval(R, x->args[i]), v = eval(R, x->args[i + 1]);
            if (k.t != J_STR) return tv_fail(R, "dict literal keys must be strings");
            tv_dset(R, d, k.s, k.n, v);
        }
        return (jv){.t = J_DICT, .d = d};
    }
    default: return tv_fail(R, "bad expression node");
    }
}

static void run(rs *R, tnode *const *body, int n);

static void run_for(rs *R, const tnode *x) {
    jv seq = eval(R, x->a);
    if (R->failed) return;
    jlist *items = tv_iter_items(R, seq);
    if (R->failed) return;
    scope sc = {.up = R->sc};
    R->sc = &sc;
    if (x->filter) { /* for x in xs if cond: the loop sees only the kept items */
        jlist *kept = tv_newlist(R);
        for (int i = 0; i < items->n && !R->failed; i++) {
            sc.n = 0;
            assign(R, x->s, items->v[i]);
            if (tv_truthy(eval(R, x->filter))) tv_lpush(R, kept, items->v[i]);
        }
        items = kept;
    }
    int n = items->n;
    for (int i = 0; i < n && !R->failed; i++) {
        sc.n = 0;
        jv it = items->v[i];
        if (x->s2) {
            if (it.t != J_LIST || it.l->n != 2) {
                tv_fail(R, "cannot unpack a '%s' into two loop variables", tv_type_name(it));
                break;
            }
            assign(R, x->s, it.l->v[0]);
            assign(R, x->s2, it.l->v[1]);
        } else {
            assign(R, x->s, it);
        }
        jdict *loop = tv_newdict(R);
        tv_dset(R, loop, "index", 5, tv_mkint(i + 1));
        tv_dset(R, loop, "index0", 6, tv_mkint(i));
        tv_dset(R, loop, "revindex", 8, tv_mkint(n - i));
        tv_dset(R, loop, "revindex0", 9, tv_mkint(n - i - 1));
        tv_dset(R, loop, "first", 5, tv_mkbool(i == 0));
        tv_dset(R, loop, "last", 4, tv_mkbool(i == n - 1));
        tv_dset(R, loop, "length", 6, tv_mkint(n));
        tv_dset(R, loop, "previtem", 8, i > 0 ? items->v[i - 1] : (jv){.t = J_UNDEF});
        tv_dset(R, loop, "nextitem", 8, i + 1 < n ? items->v[i + 1] : (jv){.t = J_UNDEF});
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
        case N_TEXT: tv_bput(&R->out, x->s, x->n); break;
        case N_OUT: {
            jv v = eval(R, x->a);
            if (!R->failed) tv_str_into(R, &R->out, v);
            break;
        }
        case N_IF:
            if (tv_truthy(eval(R, x->a))) run(R, x->body, x->nbody);
            else run(R, x->orelse, x->norelse);
            break;
        case N_FOR: run_for(R, x); break;
        case N_SET: {
            jv v = eval(R, x->a);
            if (R->failed) break;
            if (x->s2) {
                jv ns = lookup(R, x->s, x->n);
                if (ns.t != J_DICT || !ns.d->ns) {
                    tv_fail(R, "can only set attributes of a namespace ('%s')", x->s);
                    break;
                }
                tv_dset(R, ns.d, x->s2, strlen(x->s2), v);
            } else {
                assign(R, x->s, v);
            }
            break;
        }
        case N_BREAK: R->ctl = 1; break;
        case N_CONTINUE: R->ctl = 2; break;
        default: tv_fail(R, "bad statement node");
        }
        if (R->out.n > (64u << 20)) tv_fail(R, "the rendered text exceeds 64 MiB");
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
        assign(&R, tpl_strndup(&R.a, c->string, strlen(c->string)), tv_from_cjson(&R, c));
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
        if (c) tv_bput(&b, &c, 1), tv_bput(&b, r + 1, strlen(r + 1));
        tv_bput(&b, ": ", 2);
        tv_bput(&b, msgs[i].content, strlen(msgs[i].content));
        tv_bput(&b, "\n\n", 2);
    }
    if (add_generation_prompt) tv_bput(&b, "Assistant:", 10);
    return b.s ? b.s : strdup("");
}

