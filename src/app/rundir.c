/* rundir.c — where a run writes, checked before it writes anything.
 *
 * A run writes three things: output.dir (the student, and by default the
 * other two), checkpoint.dir and log.metrics_file. It reads the teacher
 * directory, the training and validation data and its config file. An
 * output that overlaps an input — the same path, one inside the other,
 * either way round — would overwrite a model or a corpus with the student,
 * its checkpoints or its metrics, so it is refused before anything is
 * created. The config file is only protected from being the metrics file
 * itself (a run directory may well hold the YAML that made it). Paths are compared twice: as written (absolute, normalised by
 * the config loader) and resolved through symbolic links (realpath of the
 * longest prefix that exists, the rest appended), so neither a link nor a
 * `..` hides an overlap. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "run_internal.h"

/* path with every existing prefix resolved through realpath; the missing
 * tail appended as written. */
static void resolve(const char *path, char *out, size_t n) {
    char head[PATH_MAX];
    snprintf(head, sizeof head, "%s", path);
    size_t len = strlen(head);
    for (;;) {
        char real[PATH_MAX];
        if (realpath(head, real)) {
            snprintf(out, n, "%s%s", strcmp(real, "/") ? real : "", path + len);
            if (!out[0]) snprintf(out, n, "/");
            return;
        }
        char *slash = strrchr(head, '/');
        if (!slash || slash == head) break;
        *slash = '\0';
        len = (size_t)(slash - head);
    }
    snprintf(out, n, "%s", path);
}

/* a == b, or one lies inside the other. */
static bool nested(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), k = la < lb ? la : lb;
    if (!strcmp(a, "/") || !strcmp(b, "/")) return true;
    if (strncmp(a, b, k)) return false;
    return la == lb || (la < lb ? b[la] : a[lb]) == '/';
}

static bool overlaps(const char *out, const char *in) {
    if (nested(out, in)) return true;
    char ro[PATH_MAX], ri[PATH_MAX];
    resolve(out, ro, sizeof ro);
    resolve(in, ri, sizeof ri);
    return nested(ro, ri);
}

static bool same(const char *out, const char *in) {
    char ro[PATH_MAX], ri[PATH_MAX];
    resolve(out, ro, sizeof ro);
    resolve(in, ri, sizeof ri);
    return !strcmp(out, in) || !strcmp(ro, ri);
}

int run_dir_check_paths(const nx_run_config *rc, nx_err *err) {
    const struct { const char *key, *path; bool only_equal; } outs[] = {
        {"output.dir", rc->output.dir, false},
        {"checkpoint.dir", rc->checkpoint.dir, false},
        {"log.metrics_file", rc->log.metrics_file, false},
    }, ins[] = {
        {"teacher.path", rc->teacher.path, false},
        {"data.train", rc->data.train, false},
        {"data.validation", rc->data.validation, false},
        {"the config file", rc->source, true},
    };
    for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++)
        for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
            if (!ins[i].path[0] || !outs[o].path[0]) continue;
            char src[PATH_MAX];
            /* the config file may be relative (as given on the command line) */
            if (ins[i].path[0] != '/' && realpath(ins[i].path, src) == NULL) continue;
            const char *in = ins[i].path[0] == '/' ? ins[i].path : src;
            if (ins[i].only_equal ? same(outs[o].path, in) : overlaps(outs[o].path, in))
                return nx_fail(err, "%s %s overlaps %s %s: the run would write over its own input; choose "
                                    "an %s outside it (and not containing it)",
                               outs[o].key, outs[o].path, ins[i].key, ins[i].path, outs[o].key);
        }
    return NX_OK;
}
