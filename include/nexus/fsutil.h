/* fsutil.h — the few file operations every adapter needs, written once:
 * joining paths, reading a whole file with a size limit, creating a
 * directory with its parents, writing all bytes through short writes, and
 * replacing a file atomically (whole, from parts in memory, or streamed).
 * Errors name the path and the system's reason. */
#ifndef NEXUS_FSUTIL_H
#define NEXUS_FSUTIL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "nexus/core.h"

/* "dir/file", malloc'd. */
char *nx_path_join(const char *dir, const char *file);
/* Opens path for reading if it is a regular file: a directory, a FIFO (which
 * is never waited on), a device or a socket is an error naming what it is.
 * Returns the descriptor (st filled when not NULL) or NX_ERR. */
int nx_open_regular(const char *path, struct stat *st, nx_err *err);
/* The whole regular file (nx_open_regular), malloc'd and NUL-terminated
 * (*len excludes the NUL; len may be NULL). Every read is bounded: a file
 * larger than max (> 0) bytes is an error before anything is read. NULL on
 * error. */
char *nx_read_file(const char *path, size_t max, size_t *len, nx_err *err);
/* The same for an open stream read to its end (stdin, a pipe), at most max
 * (> 0) bytes; name labels errors. The stream is left open. */
char *nx_read_stream(FILE *f, const char *name, size_t max, size_t *len, nx_err *err);

/* Bounds of what nexus reads whole (bytes). */
#define NX_MAX_JSON_CONFIG (16u << 20)   /* config.json, tokenizer_config.json, generation_config.json, ... */
#define NX_MAX_TOKENIZER (512u << 20)    /* tokenizer.json */
#define NX_MAX_TEXT (256u << 20)         /* a text to encode: --file, --prompt-file, one plain-text document */
/* mkdir -p: DIR and its missing parents (0755); existing ones are fine. */
int nx_mkdirs(const char *dir, nx_err *err);
/* write(2) until done (EINTR retried); 0 or −1 with errno set. */
int nx_write_all(int fd, const void *buf, size_t n);

/* ---- atomic replacement ------------------------------------------------
 * The one way nexus writes a file others may read: bytes go to PATH.tmp,
 * which is fsync'd, renamed over PATH, and the directory fsync'd. Readers
 * see the old file or the new one, never a torn one; a crash or a full
 * disk leaves the old file in place; on any error nothing is left at
 * PATH.tmp.
 *
 *   nx_atomic_file f;
 *   if (nx_atomic_open(&f, path, err)) return NX_ERR;
 *   if (nx_atomic_write(&f, a, na, err) || nx_atomic_write(&f, b, nb, err)) return NX_ERR;
 *   return nx_atomic_commit(&f, err);
 *
 * A failed write or commit has already removed PATH.tmp and closed the
 * handle; a caller that gives up for its own reasons calls nx_atomic_abort.
 * Abort is a no-op on a handle that is closed (committed, failed, aborted),
 * so an error path may call it unconditionally on any handle that went
 * through nx_atomic_open, whatever that returned. */
typedef struct nx_atomic_file {
    int fd;       /* −1 once closed */
    char *path;   /* malloc'd */
    char *tmp;    /* malloc'd: PATH.tmp */
} nx_atomic_file;

/* Creates (truncates) PATH.tmp. Always initialises *f; on error it is
 * closed. */
int nx_atomic_open(nx_atomic_file *f, const char *path, nx_err *err);
/* Appends n bytes. On error (a full disk says so) PATH.tmp is removed and
 * *f closed. */
int nx_atomic_write(nx_atomic_file *f, const void *buf, size_t n, nx_err *err);
/* fsync PATH.tmp, rename it over PATH, fsync the directory; *f is closed
 * either way, and on error PATH.tmp is gone and PATH untouched. */
int nx_atomic_commit(nx_atomic_file *f, nx_err *err);
/* Closes and removes PATH.tmp; PATH is untouched. */
void nx_atomic_abort(nx_atomic_file *f);

/* parts[0..nparts) back to back, through the calls above. */
int nx_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts,
                    nx_err *err);

#endif
