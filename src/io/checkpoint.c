/* checkpoint.c — see checkpoint.h. The writer streams header, parameters
 * and moments through one CRC so that nothing parameter-sized is copied;
 * the reader maps the file, checks magic, version, sizes and CRC, and only
 * then copies into the live buffers, so a corrupt file never half-loads. */
#include "nexus/checkpoint.h"

#include "nexus/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char MAGIC[8] = {'N', 'X', 'C', 'K', 'P', 'T', 0, 0};

typedef struct {
    uint64_t config_hash;
    int64_t step, tokens;
    uint64_t rng[4];
    uint32_t data_state_len, flags; /* flags bit 0: a mask follows v (version 3) */
    uint8_t data_state[NX_CKPT_DATA_STATE_MAX];
    double best_val_loss;
    uint64_t nparams;
    int64_t adam_t;
} disk_header;

static int is_ckpt_name(const char *n, long *step) {
    char tail[16];
    return sscanf(n, "step-%ld.nxc%15s", step, tail) == 2 && strcmp(tail, "k") == 0;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Does dir/name carry this magic and config hash? (Only what pruning
 * needs: the file is not otherwise checked.) */
static bool has_hash(const char *dir, const char *name, uint64_t hash) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char h[24];
    bool ok = pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h && !memcmp(h, MAGIC, 8);
    close(fd);
    uint64_t got;
    memcpy(&got, h + 16, 8);
    return ok && got == hash;
}

/* Steps of the checkpoints in dir (only those of config hash *only when
 * only is not NULL), sorted ascending; returns count. */
static int list_steps(const char *dir, const uint64_t *only, long **out) {
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (!is_ckpt_name(e->d_name, &s) || (only && !has_hash(dir, e->d_name, *only))) continue;
        if (n == cap) *out = realloc(*out, sizeof(long) * (cap = cap ? 2 * cap : 16));
        (*out)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*out, n, sizeof(long), cmp_long); /* never qsort(NULL, 0) */
    return n;
}

int nx_ckpt_save(const char *dir, const nx_ckpt_meta *meta, size_t n, const float *params, const float *m,
                 const float *v, const uint8_t *mask, int64_t adam_t, int keep, nx_err *err) {
    if (nx_mkdirs(dir, err)) return NX_ERR;
    disk_header h = {0};
    h.config_hash = meta->config_hash;
    h.step = meta->step;
    h.tokens = meta->tokens;
    memcpy(h.rng, meta->rng.s, sizeof h.rng);
    h.data_state_len = meta->data_state_len;
    memcpy(h.data_state, meta->data_state, meta->data_state_len);
    h.best_val_loss = meta->best_val_loss;
    h.nparams = n;
    h.adam_t = adam_t;
    h.flags = mask ? 1 : 0;
    uint32_t version = NX_CKPT_VERSION, hlen = sizeof h;
    size_t nb = n * sizeof(float), nm = mask ? n : 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32_z(crc, (const Bytef *)&h, sizeof h);
    crc = crc32_z(crc, (const Bytef *)params, nb);
    crc = crc32_z(crc, (const Bytef *)m, nb);
    crc = crc32_z(crc, (const Bytef *)v, nb);
    if (mask) crc = crc32_z(crc, (const Bytef *)mask, nm);
    uint32_t c32 = (uint32_t)crc;
    const void *parts[] = {MAGIC, &version, &hlen, &h, params, m, v, mask ? (const void *)mask : "", &c32};
    size_t lens[] = {8, 4, 4, sizeof h, nb, nb, nb, nm, 4};
    char path[4096];
    snprintf(path, sizeof path, "%s/step-%08ld.nxck", dir, (long)meta->step);
    if (nx_write_atomic(path, parts, lens, 9, err)) return NX_ERR;
    if (keep > 0) { /* this run's only: another run's checkpoints are not ours to delete */
        long *steps;
        int count = list_steps(dir, &meta->config_hash, &steps);
        for (int i = 0; i + keep < count; i++) {
            snprintf(path, sizeof path, "%s/step-%08ld.nxck", dir, steps[i]);
            unlink(path);
        }
        free(steps);
    }
    return NX_OK;
}

size_t nx_ckpt_bytes(size_t n, bool mask) {
    return 16 + sizeof(disk_header) + 3 * n * sizeof(float) + (mask ? n : 0) + 4;
}

int nx_ckpt_latest(const char *dir, char *out, size_t out_len, nx_err *err) {
    long *steps;
    int n = list_steps(dir, NULL, &steps);
    if (n == 0) {
        free(steps);
        return nx_fail(err, "%s: no checkpoint (step-*.nxck) to resume from", dir);
    }
    snprintf(out, out_len, "%s/step-%08ld.nxck", dir, steps[n - 1]);
    free(steps);
    return NX_OK;
}

int nx_ckpt_remove_all(const char *dir, nx_err *err) {
    long *steps;
    int n = list_steps(dir, NULL, &steps);
    char path[4096];
    int rc = NX_OK;
    for (int i = 0; i < n && rc == NX_OK; i++) {
        snprintf(path, sizeof path, "%s/step-%08ld.nxck", dir, steps[i]);
        if (unlink(path) && errno != ENOENT) rc = nx_fail(err, "%s: cannot delete: %s", path, strerror(errno));
    }
    free(steps);
    return rc;
}

int nx_ckpt_load(const char *path, uint64_t expect_hash, nx_ckpt_meta *meta, size_t n, float *params, float *m,
                 float *v, uint8_t *mask, bool *has_mask, int64_t *adam_t, nx_err *err) {
    struct stat st;
    int fd = nx_open_regular(path, &st, err);
    if (fd < 0) return NX_ERR;
    size_t size = (size_t)st.st_size, nb = n * sizeof(float);
    size_t want = nx_ckpt_bytes(n, false);
    if (has_mask) *has_mask = false;
    if (size < 16 + sizeof(disk_header)) {
        close(fd);
        return nx_fail(err, "%s: truncated (%zu bytes): not a nexus checkpoint", path, size);
    }
    unsigned char *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return nx_fail(err, "%s: cannot map: %s", path, strerror(errno));
    int rc = NX_ERR;
    uint32_t version, hlen;
    memcpy(&version, p + 8, 4);
    memcpy(&hlen, p + 12, 4);
    disk_header h;
    memcpy(&h, p + 16, sizeof h);
    if (version == NX_CKPT_VERSION && (h.flags & 1)) want += n; /* the mask */
    if (memcmp(p, MAGIC, 8)) {
        nx_fail(err, "%s: not a nexus checkpoint (bad magic)", path);
    } else if (version != NX_CKPT_VERSION && version != 2) {
        nx_fail(err, "%s: checkpoint version %u, this nexus reads versions 2 and %d: resume with the "
                     "nexus that wrote it", path, version, NX_CKPT_VERSION);
    } else if (hlen != sizeof h || size != want || (version == 2 && h.flags)) {
        nx_fail(err, "%s: size %zu bytes, expected %zu for a student of %zu parameters: truncated, "
                     "or written for another student shape", path, size, want, n);
    } else {
        uLong crc = crc32_z(crc32(0L, Z_NULL, 0), p + 16, size - 20);
        uint32_t stored;
        memcpy(&stored, p + size - 4, 4);
        if ((uint32_t)crc != stored)
            nx_fail(err, "%s: CRC mismatch (stored %08x, computed %08x): the file is corrupt; "
                         "resume from an earlier checkpoint", path, stored, (unsigned)crc);
        else if (h.config_hash != expect_hash)
            nx_fail(err, "%s: written for a different configuration (hash %016llx, this run "
                         "%016llx): resume with the same config, or start a new output directory",
                    path, (unsigned long long)h.config_hash, (unsigned long long)expect_hash);
        else if (h.nparams != n || h.data_state_len > NX_CKPT_DATA_STATE_MAX)
            nx_fail(err, "%s: parameter count %llu does not match the student (%zu)", path,
                    (unsigned long long)h.nparams, n);
        else {
            const unsigned char *d = p + 16 + sizeof h;
            memcpy(params, d, nb);
            memcpy(m, d + nb, nb);
            memcpy(v, d + 2 * nb, nb);
            if (h.flags & 1) {
                if (mask) memcpy(mask, d + 3 * nb, n);
                if (has_mask) *has_mask = true;
            }
            *adam_t = h.adam_t;
            meta->config_hash = h.config_hash;
            meta->step = h.step;
            meta->tokens = h.tokens;
            memcpy(meta->rng.s, h.rng, sizeof h.rng);
            meta->data_state_len = h.data_state_len;
            memcpy(meta->data_state, h.data_state, h.data_state_len);
            meta->best_val_loss = h.best_val_loss;
            rc = NX_OK;
        }
    }
    munmap(p, size);
    return rc;
}
