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
 * `..` hides an overlap.
 *
 * A run directory belongs to one run. A new run (no --resume) into a
 * directory that already holds a run — checkpoints, a metrics file with
 * lines, a saved model — is refused unless --overwrite says to replace it:
 * otherwise the old checkpoints would outlive the new ones and a later
 * --resume would pick the wrong run. --overwrite deletes the old
 * checkpoints only when the new run is about to take its first step, so a
 * run that fails while loading leaves the old one as it was. Directories
 * created for a run that then fails before its first step are removed
 * again (when still empty).
 *
 * Two runs at once into one directory would interleave their metrics and
 * race their checkpoints, so a run holds an exclusive flock(2) on
 * output.dir (and on checkpoint.dir when that lies elsewhere) from before
 * it looks at the directory until it exits; the kernel drops it when the
 * process dies, kill -9 included. The lock is on the directory itself; a
 * small file beside it, .nexus.lock, says who holds it (pid, command,
 * start time) for the message the second run prints, and is removed when
 * the run ends. Holding the lock, a run also removes the temporary files a
 * killed run's atomic writes left behind (step-N.nxck.tmp, as large as a
 * checkpoint). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nexus/checkpoint.h"
#include "nexus/fsutil.h"
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

/* inner == outer or inside it (as written, and resolved). */
static bool nested_in(const char *inner, const char *outer) {
    char ri[PATH_MAX], ro[PATH_MAX];
    resolve(inner, ri, sizeof ri);
    resolve(outer, ro, sizeof ro);
    size_t n = strlen(ro);
    return !strncmp(ri, ro, n) && (ri[n] == '/' || ri[n] == '\0' || !strcmp(ro, "/"));
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

/* Creates dir (and parents) unless it exists; *made says whether it did. */
static int make_dir(const char *dir, bool *made, nx_err *err) {
    struct stat st;
    *made = false;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return nx_fail(err, "%s: exists and is not a directory", dir);
    } else {
        if (nx_mkdirs(dir, err)) return NX_ERR;
        *made = true;
    }
    if (access(dir, W_OK)) return nx_fail(err, "%s: not writable: %s", dir, strerror(errno));
    return NX_OK;
}

static bool nonempty_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Temporary files of an atomic write that a kill -9 interrupted (each as
 * large as what it was writing: a checkpoint, the student): only names
 * nexus writes, only under the lock. */
static void remove_stale_tmp(const nx_run_config *rc) {
    char path[NX_RUN_PATH_MAX + 64];
    DIR *d = opendir(rc->checkpoint.dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (!strncmp(e->d_name, "step-", 5) && n > 9 && !strcmp(e->d_name + n - 9, ".nxck.tmp")) {
            if (snprintf(path, sizeof path, "%s/%s", rc->checkpoint.dir, e->d_name) < (int)sizeof path) unlink(path);
        }
    }
    if (d) closedir(d);
    static const char *const mine[] = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                                       "special_tokens_map.json", "generation_config.json", "metrics.jsonl"};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.tmp", rc->output.dir, mine[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s.tmp", rc->log.metrics_file);
    unlink(path);
}

/* What of an earlier run the directories hold, as a list for a message;
 * "" when nothing. */
static void earlier_run(const nx_run_config *rc, char *what, size_t n) {
    what[0] = '\0';
    char path[NX_RUN_PATH_MAX + 64];
    nx_err e;
    if (nx_ckpt_latest(rc->checkpoint.dir, path, sizeof path, &e) == NX_OK) {
        const char *base = strrchr(path, '/');
        snprintf(what + strlen(what), n - strlen(what), "checkpoints up to %s in %s", base ? base + 1 : path,
                 rc->checkpoint.dir);
    }
    if (nonempty_file(rc->log.metrics_file))
        snprintf(what + strlen(what), n - strlen(what), "%s%s", what[0] ? ", " : "", rc->log.metrics_file);
    const char *model[] = {"model.safetensors", "config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", rc->output.dir, model[i]);
        if (access(path, F_OK) == 0) {
            snprintf(what + strlen(what), n - strlen(what), "%s%s", what[0] ? ", " : "", path);
            break;
        }
    }
}

/* An exclusive lock on dir for this process, or an error naming who has
 * it. *fd: the locked directory (closing it releases the lock). */
static int lock_dir(const char *dir, int *fd, nx_err *err) {
    *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0) return nx_fail(err, "%s: cannot open: %s", dir, strerror(errno));
    char info[NX_RUN_PATH_MAX + 32];
    snprintf(info, sizeof info, "%s/.nexus.lock", dir);
    if (flock(*fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(*fd);
        *fd = -1;
        if (e != EWOULDBLOCK) return nx_fail(err, "%s: cannot lock: %s", dir, strerror(e));
        char who[512] = "";
        int f = open(info, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (f >= 0) {
            ssize_t k = read(f, who, sizeof who - 1);
            who[k > 0 ? k : 0] = '\0';
            close(f);
            who[strcspn(who, "\n")] = '\0';
        }
        return nx_fail(err, "%s is in use by another nexus run (%s): wait for it to finish, or choose another "
                            "output.dir", dir, who[0] ? who : "holder unknown");
    }
    char cmd[256] = "nexus";
    int c = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (c >= 0) {
        ssize_t k = read(c, cmd, sizeof cmd - 1);
        close(c);
        for (ssize_t i = 0; i + 1 < k; i++) if (!cmd[i]) cmd[i] = ' ';
        cmd[k > 0 ? k : 0] = '\0';
    }
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    char line[sizeof cmd + 128];
    int n = snprintf(line, sizeof line, "pid %d, started %s: %s\n", (int)getpid(), when, cmd);
    const void *parts[1] = {line};
    size_t lens[1] = {(size_t)n < sizeof line ? (size_t)n : sizeof line - 1};
    nx_err ignore; /* who holds the lock is for messages only */
    (void)nx_write_atomic(info, parts, lens, 1, &ignore);
    return NX_OK;
}

static void unlock_dir(const char *dir, int *fd) {
    if (*fd < 0) return;
    char info[NX_RUN_PATH_MAX + 32];
    snprintf(info, sizeof info, "%s/.nexus.lock", dir);
    unlink(info);
    close(*fd);
    *fd = -1;
}

int run_dir_open(run_dir *d, const nx_run_config *rc, const nx_run_opts *o, nx_err *err) {
    *d = (run_dir){.out_dir = rc->output.dir, .ckpt_dir = rc->checkpoint.dir, .lock_out = -1, .lock_ckpt = -1};
    if (o->resume && o->overwrite) return nx_fail(err, "give --resume or --overwrite, not both");
    if (make_dir(rc->output.dir, &d->made_out, err) || make_dir(rc->checkpoint.dir, &d->made_ckpt, err) ||
        lock_dir(rc->output.dir, &d->lock_out, err) ||
        (!nested_in(rc->checkpoint.dir, rc->output.dir) && lock_dir(rc->checkpoint.dir, &d->lock_ckpt, err))) {
        run_dir_close(d);
        return NX_ERR;
    }
    remove_stale_tmp(rc);
    char what[3 * NX_RUN_PATH_MAX + 256];
    earlier_run(rc, what, sizeof what);
    if (what[0] && !o->resume && !o->overwrite) {
        nx_fail(err, "%s already holds a run (%s): continue it with --resume, replace it with --overwrite "
                     "(its checkpoints and metrics are deleted when the new run starts), or choose another "
                     "output.dir", rc->output.dir, what);
        run_dir_close(d);
        return NX_ERR;
    }
    return NX_OK;
}

int run_dir_start(run_dir *d, const nx_run_config *rc, bool overwrite, nx_err *err) {
    d->started = true;
    if (overwrite && nx_ckpt_remove_all(rc->checkpoint.dir, err)) return NX_ERR;
    return NX_OK;
}

void run_dir_close(run_dir *d) {
    if (!d->out_dir) return;
    unlock_dir(d->ckpt_dir, &d->lock_ckpt);
    unlock_dir(d->out_dir, &d->lock_out);
    if (!d->started) { /* nothing written: leave no directory behind that this run made */
        if (d->made_ckpt) rmdir(d->ckpt_dir);
        if (d->made_out) rmdir(d->out_dir);
    }
    memset(d, 0, sizeof *d);
}
