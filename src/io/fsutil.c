/* fsutil.c — see fsutil.h. */
#include "nexus/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *nx_path_join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = nx_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

char *nx_read_stream(FILE *f, const char *name, size_t max, size_t *len, nx_err *err) {
    NX_ASSERTM(max > 0, "every read is bounded");
    size_t cap = 1 << 16, n = 0, r;
    char *buf = nx_xmalloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n > max) {
            free(buf);
            nx_fail(err, "%s: larger than %zu bytes, the most such a file may have", name, max);
            return NULL;
        }
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            NX_ASSERTM(buf, "out of memory");
        }
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        nx_fail(err, "%s: read error: %s", name, strerror(e));
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int nx_open_regular(const char *path, struct stat *st, nx_err *err) {
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return nx_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat own;
    if (!st) st = &own;
    if (fstat(fd, st)) {
        int e = errno;
        close(fd);
        return nx_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        if (S_ISDIR(st->st_mode)) return nx_fail(err, "%s: is a directory, not a file", path);
        return nx_fail(err, "%s: not a regular file (%s): give a file", path,
                       S_ISFIFO(st->st_mode) ? "a FIFO" : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? "a device"
                       : S_ISSOCK(st->st_mode) ? "a socket" : "not a plain file");
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

char *nx_read_file(const char *path, size_t max, size_t *len, nx_err *err) {
    NX_ASSERTM(max > 0, "every read is bounded");
    struct stat st;
    int fd = nx_open_regular(path, &st, err);
    if (fd < 0) return NULL;
    if ((uint64_t)st.st_size > max) {
        close(fd);
        nx_fail(err, "%s: %lld bytes, larger than %zu bytes, the most such a file may have", path,
                (long long)st.st_size, max);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    NX_ASSERTM(f, "out of memory");
    char *buf = nx_read_stream(f, path, max, len, err);
    fclose(f);
    return buf;
}

int nx_mkdirs(const char *dir, nx_err *err) {
    if (!*dir) return nx_fail(err, "empty directory path");
    char *p = nx_xmalloc(strlen(dir) + 1);
    strcpy(p, dir);
    int rc = NX_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char keep = *s;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            rc = nx_fail(err, "%s: cannot create directory: %s", p, strerror(errno));
            break;
        }
        *s = keep;
        if (!keep) break;
    }
    free(p);
    return rc;
}

int nx_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- atomic replacement ---- */

static void atomic_close(nx_atomic_file *f, bool remove_tmp) {
    if (f->fd >= 0) close(f->fd);
    if (remove_tmp && f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    *f = (nx_atomic_file){.fd = -1};
}

int nx_atomic_open(nx_atomic_file *f, const char *path, nx_err *err) {
    size_t n = strlen(path);
    *f = (nx_atomic_file){.fd = -1, .path = nx_xmalloc(n + 1), .tmp = nx_xmalloc(n + 5)};
    memcpy(f->path, path, n + 1);
    snprintf(f->tmp, n + 5, "%s.tmp", path);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        nx_fail(err, "%s: cannot create: %s", f->tmp, strerror(errno));
        atomic_close(f, false);
        return NX_ERR;
    }
    return NX_OK;
}

int nx_atomic_write(nx_atomic_file *f, const void *buf, size_t n, nx_err *err) {
    NX_ASSERTM(f->fd >= 0, "nx_atomic_write on a closed file");
    if (nx_write_all(f->fd, buf, n) == 0) return NX_OK;
    int e = errno;
    nx_fail(err, "%s: write failed: %s%s", f->tmp, strerror(e),
            e == ENOSPC ? " (disk full; the previous file is untouched)" : "");
    atomic_close(f, true);
    return NX_ERR;
}

int nx_atomic_commit(nx_atomic_file *f, nx_err *err) {
    NX_ASSERTM(f->fd >= 0, "nx_atomic_commit on a closed file");
    int rc = fsync(f->fd), e = errno;
    if (close(f->fd) && !rc) rc = -1, e = errno;
    f->fd = -1;
    if (rc) {
        nx_fail(err, "%s: fsync failed: %s%s", f->tmp, strerror(e),
                e == ENOSPC ? " (disk full; the previous file is untouched)" : "");
        atomic_close(f, true);
        return NX_ERR;
    }
    if (rename(f->tmp, f->path)) {
        nx_fail(err, "%s: rename failed: %s", f->path, strerror(errno));
        atomic_close(f, true);
        return NX_ERR;
    }
    /* Make the rename itself durable: fsync the directory that holds PATH. */
    char *slash = strrchr(f->path, '/');
    const char *dir = ".";
    if (slash == f->path) dir = "/";
    else if (slash) *slash = '\0', dir = f->path;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    atomic_close(f, false);
    return NX_OK;
}

void nx_atomic_abort(nx_atomic_file *f) { atomic_close(f, f->fd >= 0); }

int nx_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts,
                    nx_err *err) {
    nx_atomic_file f;
    if (nx_atomic_open(&f, path, err)) return NX_ERR;
    for (int i = 0; i < nparts; i++)
        if (nx_atomic_write(&f, parts[i], lens[i], err)) return NX_ERR;
    return nx_atomic_commit(&f, err);
}
