/* base.c — errors, assertions, allocation, dtypes, tensor views, arenas,
 * clocks. These are the pieces every other module leans on; they have no
 * dependencies beyond libc and OpenMP. */
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

/* ---- dtypes ---- */
static const struct { const char *name; size_t size; } DT[NX_DTYPE_COUNT] = {
    [NX_F32] = {"F32", 4},  [NX_F16] = {"F16", 2},  [NX_BF16] = {"BF16", 2},
    [NX_F64] = {"F64", 8},  [NX_I8] = {"I8", 1},    [NX_U8] = {"U8", 1},
    [NX_I16] = {"I16", 2},  [NX_U16] = {"U16", 2},  [NX_I32] = {"I32", 4},
    [NX_U32] = {"U32", 4},  [NX_I64] = {"I64", 8},  [NX_U64] = {"U64", 8},
    [NX_BOOL] = {"BOOL", 1},
};

size_t nx_dtype_size(nx_dtype t) {
    NX_ASSERT((unsigned)t < NX_DTYPE_COUNT);
    return DT[t].size;
}

const char *nx_dtype_name(nx_dtype t) {
    NX_ASSERT((unsigned)t < NX_DTYPE_COUNT);
    return DT[t].name;
}

int nx_dtype_from_name(const char *s, nx_dtype *out) {
    for (int i = 0; i < NX_DTYPE_COUNT; i++)
        if (strcmp(s, DT[i].name) == 0) {
            *out = (nx_dtype)i;
            return NX_OK;
        }
    return NX_ERR;
}

float nx_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t nx_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                          /* nearest even */
    return (uint16_t)(u >> 16);
}

float nx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t nx_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow → inf */
    if (a < 0x38800000u) {                                   /* subnormal or zero */
        float af;
        memcpy(&af, &a, 4);
        /* scale so that the f16 subnormal unit (2^-24) becomes 1, round to even */
        float r = nearbyintf(af * 16777216.0f);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t e = ((a >> 23) - 127 + 15), m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

void nx_convert_to_f32(float *dst, const void *src, nx_dtype t, size_t n) {
    switch (t) {
    case NX_F32: memmove(dst, src, n * 4); break;
    case NX_BF16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) dst[i] = nx_bf16_to_f32(s[i]);
        break;
    }
    case NX_F16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) dst[i] = nx_f16_to_f32(s[i]);
        break;
    }
    case NX_F64: {
        const double *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    default: NX_ASSERTM(0, "nx_convert_to_f32: not a float dtype");
    }
}

/* ---- tensors ---- */
nx_tensor nx_tensor_view(void *data, nx_dtype t, int ndim, const int64_t *shape) {
    NX_ASSERT(ndim >= 0 && ndim <= NX_MAX_DIMS);
    nx_tensor v = {.data = data, .dtype = t, .ndim = ndim};
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        v.shape[i] = shape[i];
        v.stride[i] = s;
        s *= shape[i];
    }
    return v;
}

int64_t nx_tensor_numel(const nx_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bool nx_tensor_is_contiguous(const nx_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

float *nx_tensor_f32(const nx_tensor *t) {
    NX_ASSERTM(t->dtype == NX_F32, "tensor is not f32");
    return (float *)t->data;
}

/* ---- arenas ---- */
nx_arena nx_arena_counting(void) { return (nx_arena){0}; }

int nx_arena_init(nx_arena *a, size_t size, nx_err *err) {
    a->used = 0;
    a->size = size;
    size_t rounded = (size + 63) & ~(size_t)63;
    a->base = aligned_alloc(64, rounded ? rounded : 64);
    if (!a->base)
        return nx_fail(err, "out of memory: could not allocate %.1f MiB", size / 1048576.0);
    memset(a->base, 0, rounded ? rounded : 64);
    return NX_OK;
}

void *nx_arena_alloc(nx_arena *a, size_t bytes) {
    size_t start = (a->used + 63) & ~(size_t)63;
    a->used = start + bytes;
    if (!a->base) return NULL;
    NX_ASSERTM(a->used <= a->size, "arena overflow: the plan and the use disagree");
    return a->base + start;
}

float *nx_arena_floats(nx_arena *a, size_t n) { return nx_arena_alloc(a, n * sizeof(float)); }

void nx_arena_free(nx_arena *a) {
    free(a->base);
    *a = (nx_arena){0};
}

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
