/* overrides.c — `--set KEY.PATH=VALUE`: one override grafted into the tree.
 *
 * The key path is checked against the schema before the value is read, so
 * a typo gets its did-you-mean whatever the value. The value is parsed as
 * its own YAML (a scalar, a flow list "[0, 2]" or a flow mapping) whose
 * nodes are located as "--set ARG", and replaces what the file had at that
 * path; the mappings on the way are created when missing. Grafting into
 * the tree, rather than into the struct, keeps one converter and one set
 * of messages for file and command line, and lets a later stage still see
 * what was given (e.g. whether student.init.kind was stated).
 *
 * A scalar on the way is a section's shorthand (`init: random`): it becomes
 * the mapping it stands for ({kind: random}) so that `--set
 * student.init.std=0.01` adds to it; null becomes an empty mapping. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Splits "a.b.c" into parts (at most 16); checks it against the schema. */
static int check_key_path(cfg_ctx *c, const char *arg, char *tmp, char **parts, int *np) {
    char *save = NULL;
    *np = 0;
    for (char *s = strtok_r(tmp, ".", &save); s; s = strtok_r(NULL, ".", &save)) {
        if (*np == 16) return nx_fail(c->err, "--set %s: key path too deep", arg);
        parts[(*np)++] = s;
    }
    if (!*np) return nx_fail(c->err, "--set %s: empty key path", arg);
    const cfg_field *kids = CFG_TOP;
    char sofar[256] = "";
    for (int i = 0; i < *np; i++) {
        if (!kids)
            return nx_fail(c->err, "--set %s: %s is a value, not a section; set `%s=...` instead", arg, sofar,
                           sofar);
        const cfg_field *f = cfg_field_find(kids, parts[i]);
        size_t u = strlen(sofar);
        snprintf(sofar + u, sizeof sofar - u, "%s%s", u ? "." : "", parts[i]);
        if (!f) {
            const char *names[32];
            int n = cfg_field_names(kids, names);
            char msg[512];
            snprintf(msg, sizeof msg, "--set %s: unknown key %s", arg, sofar);
            cfg_suggest(msg, sizeof msg, parts[i], names, n);
            return nx_fail(c->err, "%s", msg);
        }
        kids = f->t == T_SEC ? f->kids : NULL;
    }
    return NX_OK;
}

/* The mapping at cur->kids[at] (or a new one under key `name` when at < 0),
 * a shorthand scalar there turned into its mapping. NULL after an error. */
static nx_yaml *section_at(cfg_ctx *c, nx_yaml *cur, int at, const char *name, const cfg_field *f,
                           const char *label, const char *keypath) {
    nx_yaml *next = at >= 0 ? cur->kids[at] : NULL;
    if (!next) {
        next = nx_yaml_new(NX_YAML_MAP, label, 0, 0);
        nx_yaml_push(cur, nx_yaml_new_scalar(name, label), next);
        return next;
    }
    if (next->kind == NX_YAML_MAP) return next;
    if (next->kind != NX_YAML_SCALAR) {
        cfg_fail(c, next, keypath, "expected a mapping here, found %s", nx_yaml_describe(next));
        return NULL;
    }
    nx_yaml *m = nx_yaml_new(NX_YAML_MAP, next->origin, next->line, next->col);
    if (!nx_yaml_is_null(next) && f->shorthand) {
        nx_yaml_push(m, nx_yaml_new_scalar(f->shorthand, next->origin), next);
    } else if (!nx_yaml_is_null(next)) {
        nx_yaml_free(m);
        cfg_fail(c, next, keypath, "cannot set a key inside a scalar value");
        return NULL;
    } else {
        nx_yaml_free(next);
    }
    cur->kids[at] = m;
    return m;
}

int cfg_apply_set(cfg_ctx *c, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return nx_fail(c->err, "--set %s: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=3e-4", arg);
    char keypath[256], tmp[256], *parts[16];
    size_t kl = (size_t)(eq - arg);
    if (kl >= sizeof keypath) return nx_fail(c->err, "--set %s: key path too long", arg);
    memcpy(keypath, arg, kl);
    keypath[kl] = '\0';
    memcpy(tmp, keypath, kl + 1);
    int np;
    if (check_key_path(c, arg, tmp, parts, &np)) return NX_ERR;

    char label[NX_RUN_PATH_MAX + 16];
    snprintf(label, sizeof label, "--set %s", arg);
    nx_yaml *val;
    if (nx_yaml_parse_value(eq + 1, label, "run config", &val, c->err)) return NX_ERR;

    if (nx_yaml_is_null(c->root)) {
        nx_yaml_free(c->root);
        c->root = nx_yaml_new(NX_YAML_MAP, c->file ? label : "(no config file)", 0, 0);
    }
    if (c->root->kind != NX_YAML_MAP) {
        nx_yaml_free(val);
        return cfg_fail(c, c->root, "(top level)", "a run config must be a mapping of sections");
    }
    nx_yaml *cur = c->root;
    const cfg_field *kids = CFG_TOP;
    for (int i = 0; i < np - 1; i++) {
        const cfg_field *f = cfg_field_find(kids, parts[i]);
        cur = section_at(c, cur, nx_yaml_find(cur, parts[i]), parts[i], f, label, keypath);
        if (!cur) {
            nx_yaml_free(val);
            return NX_ERR;
        }
        kids = f->kids;
    }
    int at = nx_yaml_find(cur, parts[np - 1]);
    if (at >= 0) {
        nx_yaml_free(cur->kids[at]);
        cur->kids[at] = val;
    } else {
        nx_yaml_push(cur, nx_yaml_new_scalar(parts[np - 1], label), val);
    }
    return NX_OK;
}
