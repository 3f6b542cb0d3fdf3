/* args.c — one small declarative flag parser shared by every subcommand, so
 * that `--help`, `--flag value`, `--flag=value`, short spellings (`-o DIR`),
 * aliases, and the one-line error for an unknown flag behave the same
 * everywhere; and the one way sizes are printed (KiB, MiB, GiB). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_print_help(const cli_spec *s, bool to_stderr) {
    FILE *f = to_stderr ? stderr : stdout;
    fprintf(f, "usage: nexus %s %s\n", s->cmd, s->usage);
    if (s->summary && !to_stderr) fprintf(f, "\n%s\n", s->summary);
    if (s->nopts && !to_stderr) fprintf(f, "\noptions:\n");
    for (int i = 0; i < s->nopts && !to_stderr; i++) {
        const cli_opt *o = &s->opts[i];
        const char *arg = o->kind == OPT_FLAG ? "" : o->kind == OPT_INT ? " N"
                        : o->kind == OPT_FLOAT ? " X" : " VALUE";
        char left[96];
        snprintf(left, sizeof left, "%s%s", o->name, arg);
        fprintf(f, "  %-28s %s\n", left, o->help);
    }
    if (!to_stderr) fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
    else fprintf(f, "run 'nexus %s --help' for the options\n", s->cmd);
}

/* Does the flag a[0..n) spell option o? o->name lists its spellings
 * separated by ", " ("-o, --out"). */
static bool spells(const cli_opt *o, const char *a, size_t n) {
    for (const char *p = o->name; *p;) {
        const char *e = strstr(p, ", ");
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && strncmp(p, a, n) == 0) return true;
        if (!e) break;
        p = e + 2;
    }
    return false;
}

static int usage_error(const cli_spec *s, const char *fmt, const char *a) {
    fprintf(stderr, "nexus %s: ", s->cmd);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    cli_print_help(s, true);
    return EXIT_USAGE;
}

int cli_parse(const cli_spec *s, int argc, char **argv, const char **pos, int *npos) {
    *npos = 0;
    bool only_pos = false, given[64] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (*npos >= s->max_pos) return usage_error(s, "unexpected argument '%s'", a);
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) { only_pos = true; continue; }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(s, false);
            return -1;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (int k = 0; k < s->nopts && !o; k++)
            if (spells(&s->opts[k], a, nlen)) o = &s->opts[k];
        if (!o) return usage_error(s, "unknown option '%s'", a);
        char flag[64];
        snprintf(flag, sizeof flag, "%.*s", (int)(nlen < 63 ? nlen : 63), a);
        if (o->kind != OPT_MULTI && o->kind != OPT_FLAG) { /* a second value would silently win */
            size_t k = (size_t)(o - s->opts);
            if (k < 64 && given[k]) return usage_error(s, "option '%s' given twice", o->name);
            if (k < 64) given[k] = true;
        }
        if (o->kind == OPT_FLAG) {
            if (eq) return usage_error(s, "option '%s' takes no value", flag);
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return usage_error(s, "option '%s' needs a value", flag);
        char *end;
        errno = 0;
        switch (o->kind) {
        case OPT_STR: *(const char **)o->dst = v; break;
        case OPT_INT: {
            long x = strtol(v, &end, 10);
            if (*v == '\0' || *end || errno) return usage_error(s, "'%s' is not an integer", v);
            *(long *)o->dst = x;
            break;
        }
        case OPT_FLOAT: {
            double x = strtod(v, &end);
            if (*v == '\0' || *end || errno) return usage_error(s, "'%s' is not a number", v);
            *(double *)o->dst = x;
            break;
        }
        case OPT_MULTI: {
            cli_multi *m = o->dst;
            if (m->n >= 64) return usage_error(s, "too many '%s' options", flag);
            m->v[m->n++] = v;
            break;
        }
        default: break;
        }
    }
    if (*npos < s->min_pos) return usage_error(s, "missing argument%s", s->min_pos > 1 ? "s" : "");
    return EXIT_OK;
}

int cli_range(const cli_spec *s, const char *opt, long v, long lo, long hi) {
    if (v >= lo && v <= hi) return EXIT_OK;
    fprintf(stderr, "nexus %s: %s must be between %ld and %ld (got %ld)\n", s->cmd, opt, lo, hi, v);
    cli_print_help(s, true);
    return EXIT_USAGE;
}

int cli_error(const char *cmd, const char *msg) {
    fprintf(stderr, "nexus %s: %s\n", cmd, msg);
    return EXIT_RUNTIME;
}

bool cli_stderr_tty(void) { return isatty(2); }

const char *cli_bytes(double bytes, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
    return buf;
}

const char *cli_model_arg(const char *cmd, const char *flag, const char *const *pos, int npos, nx_err *err) {
    if (npos && flag) {
        nx_fail(err, "nexus %s: give the model once: as the first argument or with --model, not both", cmd);
        return NULL;
    }
    if (!npos && !flag) {
        nx_fail(err, "nexus %s: the model is required: nexus %s MODEL_DIR ...", cmd, cmd);
        return NULL;
    }
    return npos ? pos[0] : flag;
}
