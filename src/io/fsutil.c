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

char *nx_read_file(const char *path, size_t max, size_t *len, nx_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nx_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *buf = nx_xmalloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (max && n > max) {
            fclose(f);
            free(buf);
            nx_fail(err, "%s: larger than %zu bytes", path, max);
            return NULL;
        }
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            NX_ASSERTM(buf, "out of memory");
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        nx_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
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

int nx_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts,
                    nx_err *err) {
    char tmp[4200];
    if (strlen(path) > 4000) return nx_fail(err, "%.100s...: path too long", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return nx_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    for (int i = 0; i < nparts; i++)
        if (nx_write_all(fd, parts[i], lens[i])) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return nx_fail(err, "%s: write failed: %s%s", tmp, strerror(e),
                           e == ENOSPC ? " (disk full; the previous file is untouched)" : "");
        }
    if (fsync(fd) || close(fd)) {
        int e = errno;
        unlink(tmp);
        return nx_fail(err, "%s: fsync failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return nx_fail(err, "%s: rename failed: %s", path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return NX_OK;
}

