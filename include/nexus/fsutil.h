/* fsutil.h — the few file operations every adapter needs, written once:
 * joining paths, reading a whole file with a size limit, creating a
 * directory with its parents, writing all bytes through short writes, and
 * replacing a file atomically. Errors name the
 * path and the system's reason. */
#ifndef NEXUS_FSUTIL_H
#define NEXUS_FSUTIL_H

#include <stddef.h>

#include "nexus/core.h"

/* "dir/file", malloc'd. */
char *nx_path_join(const char *dir, const char *file);
/* The whole file, malloc'd and NUL-terminated (*len excludes the NUL).
 * max > 0: files larger than max bytes are an error. NULL on error. */
char *nx_read_file(const char *path, size_t max, size_t *len, nx_err *err);
/* mkdir -p: DIR and its missing parents (0755); existing ones are fine. */
int nx_mkdirs(const char *dir, nx_err *err);
/* write(2) until done (EINTR retried); 0 or −1 with errno set. */
int nx_write_all(int fd, const void *buf, size_t n);
/* Write parts[0..nparts) to PATH.tmp, fsync, rename over PATH, fsync the
 * directory: readers see the old file or the new one, never a torn one,
 * and a full disk leaves the old file in place. */
int nx_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts,
                    nx_err *err);

#endif
