/* core.c — errors, assertions, host allocation, arena planning, hashing,
 * clocks. These are the pieces every other module leans on; they have no
 * dependencies beyond libc and OpenMP. Element types are dtype.c. */
#include "nexus/core.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int nx_fail(nx_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return NX_ERR;
}

int nx_fail_prefix(nx_err *err, const char *fmt, ...) {
    if (err) {
        char prefix[512], old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        size_t n = strlen(prefix);
        if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
        memcpy(err->msg, prefix, n);
        memcpy(err->msg + n, ": ", 2);
        size_t rest = sizeof err->msg - n - 3;
        size_t m = strnlen(old, rest);
        memcpy(err->msg + n + 2, old, m);
        err->msg[n + 2 + m] = '\0';
    }
    return NX_ERR;
}

void nx_assert_fail(const char *expr, const char *file, int line, const char *msg) {
    fprintf(stderr, "nexus: internal error: assertion `%s` failed at %s:%d%s%s\n", expr, file,
            line, msg ? ": " : "", msg ? msg : "");
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "nexus: out of memory allocating %zu bytes\n", n);
    exit(1);
}

void *nx_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *nx_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *nx_aligned_alloc(size_t n) {
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) oom(n);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

/* ---- arenas ---- */
nx_arena nx_arena_counting(void) { return (nx_arena){0}; }

void *nx_arena_alloc(nx_arena *a, size_t bytes) {
    size_t start = (a->used + 63) & ~(size_t)63;
    a->used = start + bytes;
    if (!a->base) return NULL;
    NX_ASSERTM(a->used <= a->size, "arena overflow: the plan and the use disagree");
    return a->base + start;
}

float *nx_arena_floats(nx_arena *a, size_t n) { return nx_arena_alloc(a, n * sizeof(float)); }

/* ---- hashing ---- */
uint64_t nx_fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- misc ---- */
double nx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int nx_threads(void) { return omp_get_max_threads(); }

double nx_parts_sum(const double *part, int threads) {
    double s = 0;
    for (int t = 0; t < threads; t++) s += part[t];
    return s;
}
