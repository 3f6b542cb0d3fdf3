/* print.c — nx_run_config back out as YAML (`--print-config`), by the same
 * schema walk that read it in, so that printing and parsing cannot drift:
 * the output parses back into the same struct (tests/test_run_config.c).
 * Reals are written with the fewest digits that read back to the same
 * double, strings quoted and escaped, and "not given" keys left out. The
 * same value text feeds the config hash (hash.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/json.h"
#include "internal.h"

static void fmt_string(char *buf, size_t n, const char *s) {
    size_t u = 0;
    if (u + 1 < n) buf[u++] = '"';
    for (; *s && u + 6 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') u += snprintf(buf + u, n - u, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) u += snprintf(buf + u, n - u, "\\x%02x", ch);
        else buf[u++] = (char)ch;
    }
    if (u + 1 < n) buf[u++] = '"';
    buf[u] = '\0';
}

/* "[a, b, c]" of n ints (pairs: "[[a, b], ...]") */
static void fmt_ints(char *buf, size_t n, const int *v, int count, bool pairs) {
    size_t u = snprintf(buf, n, "[");
    for (int i = 0; i < count && u < n; i++) {
        if (pairs) u += snprintf(buf + u, n - u, "%s[%d, %d]", i ? ", " : "", v[2 * i], v[2 * i + 1]);
        else u += snprintf(buf + u, n - u, "%s%d", i ? ", " : "", v[i]);
    }
    if (u < n) snprintf(buf + u, n - u, "]");
}

bool cfg_fmt_value(const cfg_field *f, const nx_run_config *rc, char *buf, size_t n) {
    const void *p = (const char *)rc + f->off;
    buf[0] = '\0';
    switch (f->t) {
    case T_INT:
        if ((f->flags & F_OPT) && !*(const int *)p) return false;
        snprintf(buf, n, "%d", *(const int *)p);
        return true;
    case T_I64:
        if ((f->flags & F_OPT) && !*(const int64_t *)p) return false;
        snprintf(buf, n, "%lld", (long long)*(const int64_t *)p);
        return true;
    case T_REAL:
        if ((f->flags & F_OPT) && !*(const double *)p) return false;
        nx_fmt_real(buf, n, *(const double *)p, false);
        return true;
    case T_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        return true;
    case T_TRI:
        if (*(const int *)p < 0) return false;
        snprintf(buf, n, "%s", *(const int *)p ? "true" : "false");
        return true;
    case T_STR:
    case T_PATH:
        if (!*(const char *)p) return false;
        fmt_string(buf, n, p);
        return true;
    case T_ENUM:
    case T_PRESET:
    case T_ARCH:
        if ((f->t != T_ENUM || (f->flags & F_OPT)) && *(const int *)p < 0) return false;
        snprintf(buf, n, "%s", cfg_enum_name(f, *(const int *)p));
        return true;
    case T_FLAGS: {
        unsigned bits = *(const unsigned *)p;
        if ((f->flags & F_OPT) && !bits) return false;
        size_t u = snprintf(buf, n, "[");
        for (int i = 0, k = 0; f->names[i]; i++)
            if (bits & (1u << i)) u += snprintf(buf + u, n - u, "%s%s", k++ ? ", " : "", f->names[i]);
        snprintf(buf + u, n - u, "]");
        return true;
    }
    case T_BETAS: {
        char a[32], b[32];
        nx_fmt_real(a, sizeof a, ((const double *)p)[0], false);
        nx_fmt_real(b, sizeof b, ((const double *)p)[1], false);
        snprintf(buf, n, "[%s, %s]", a, b);
        return true;
    }
    case T_LAYERS: {
        const nx_layer_list *l = p;
        if (!l->n) return false;
        fmt_ints(buf, n, l->v, l->n, false);
        return true;
    }
    case T_PAIRS: {
        const nx_layer_map *m = p;
        if (!m->n) return false;
        fmt_ints(buf, n, &m->pair[0][0], m->n, true);
        return true;
    }
    default:
        NX_ASSERT(0);
        return false;
    }
}

static void print_section(FILE *f, const cfg_field *kids, const nx_run_config *rc, int indent) {
    char *buf = nx_xmalloc(CFG_VALBUF);
    for (const cfg_field *k = kids; k->name; k++) {
        if (k->t == T_SEC) {
            fprintf(f, "%*s%s:\n", indent, "", k->name);
            if (k->kids == CFG_STUDENT)
                fprintf(f, "%*s# shape keys not listed come from the preset, the teacher or the defaults\n",
                        indent + 2, "");
            print_section(f, k->kids, rc, indent + 2);
            continue;
        }
        /* a token budget is printed instead of the steps computed from it */
        if (kids == CFG_OPTIM && !strcmp(k->name, "steps") && rc->optimizer.tokens) continue;
        if (cfg_fmt_value(k, rc, buf, CFG_VALBUF)) fprintf(f, "%*s%s: %s\n", indent, "", k->name, buf);
    }
    free(buf);
}

void nx_run_config_print(FILE *f, const nx_run_config *rc) {
    fprintf(f, "# nexus run config, fully resolved%s%s\n", rc->source[0] ? " from " : "", rc->source);
    print_section(f, CFG_TOP, rc, 0);
}
