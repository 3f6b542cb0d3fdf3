/* dtype.c — element and weight types: one traits row per type.
 *
 * A row says how a type is stored (elements per block, bytes per block)
 * and gives the reference conversions to and from f32 that everything else
 * builds on: loading a checkpoint into a model held in another type,
 * saving, and the backends' own conversions, which the tests hold against
 * these. A new weight type (the quantizer's int8 and 4-bit blocks) is a
 * new row here plus its kernels in each backend's own table; no model code
 * changes.
 *
 * Block types (blocks.h: Q8_0, Q4_0, Q4_K, IQ4_NL, GGUF's layouts) widen exactly
 * (the scale, widened from f16, times the integer) and narrow by
 * round-to-nearest: each block's scale is its largest magnitude over the
 * integer range (Q4_0 maps its signed extreme to −8, as ggml does; Q4_K
 * takes each sub-block's range [min(0, lo), hi] onto 0..15, then rounds the
 * eight sub-block scales and mins to 6 bits against the super-block's
 * largest; IQ4_NL maps its signed extreme onto the level −127 and takes
 * each element's nearest level), rounded to f16 first so that the integers are chosen against
 * the scale that will be stored. Searches that do better than rounding
 * (weighted by calibration activations) are the quantizer's
 * (src/compress/). A row of a block type must hold whole blocks: rows are
 * never split across blocks (nx_row_bytes asserts).
 *
 * bf16 is the top half of an f32 (widening is a shift; narrowing rounds to
 * nearest even and keeps NaNs quiet). f16 is IEEE binary16 with
 * subnormals, rounded to nearest even. */
#include <math.h>
#include <string.h>

#include "nexus/blocks.h"
#include "nexus/core.h"

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

/* ---- the reference conversions of each weight type ---- */

static void f32_to_f32(float *d, const void *s, int64_t n) { memmove(d, s, (size_t)n * 4); }
static void f32_from_f32(void *d, const float *s, int64_t n) { memmove(d, s, (size_t)n * 4); }

static void bf16_to_f32(float *d, const void *src, int64_t n) {
    const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = nx_bf16_to_f32(s[i]);
}

static void bf16_from_f32(void *dst, const float *s, int64_t n) {
    uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = nx_f32_to_bf16(s[i]);
}

static void f16_to_f32(float *d, const void *src, int64_t n) {
    const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = nx_f16_to_f32(s[i]);
}

static void f16_from_f32(void *dst, const float *s, int64_t n) {
    uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = nx_f32_to_f16(s[i]);
}

static void f64_to_f32(float *d, const void *src, int64_t n) {
    const double *s = src;
    for (int64_t i = 0; i < n; i++) d[i] = (float)s[i];
}

/* ---- block types ---- */

static float f16r(float x) { return nx_f16_to_f32(nx_f32_to_f16(x)); } /* x as f16 will hold it */

static void q8_0_to_f32(float *d, const void *src, int64_t n) {
    const nx_block_q8_0 *b = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        float s = nx_f16_to_f32(b[i].d);
        for (int j = 0; j < NX_QK; j++) d[i * NX_QK + j] = s * b[i].qs[j];
    }
}

static void q8_0_from_f32(void *dst, const float *x, int64_t n) {
    nx_block_q8_0 *b = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *v = x + i * NX_QK;
        float amax = 0;
        for (int j = 0; j < NX_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
        float s = f16r(amax / 127), is = s > 0 ? 1 / s : 0;
        b[i].d = nx_f32_to_f16(s);
        for (int j = 0; j < NX_QK; j++) b[i].qs[j] = (int8_t)fmaxf(-127, fminf(127, nearbyintf(v[j] * is)));
    }
}

static void q4_0_to_f32(float *d, const void *src, int64_t n) {
    const nx_block_q4_0 *b = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        float s = nx_f16_to_f32(b[i].d);
        for (int j = 0; j < NX_QK / 2; j++) {
            d[i * NX_QK + j] = s * ((b[i].qs[j] & 15) - 8);
            d[i * NX_QK + j + 16] = s * ((b[i].qs[j] >> 4) - 8);
        }
    }
}

static void q4_0_from_f32(void *dst, const float *x, int64_t n) {
    nx_block_q4_0 *b = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *v = x + i * NX_QK;
        float ext = 0; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < NX_QK; j++)
            if (fabsf(v[j]) > fabsf(ext)) ext = v[j];
        float s = f16r(ext / -8), is = s != 0 ? 1 / s : 0;
        b[i].d = nx_f32_to_f16(s);
        for (int j = 0; j < NX_QK / 2; j++) {
            int lo = (int)fmaxf(0, fminf(15, nearbyintf(v[j] * is) + 8));
            int hi = (int)fmaxf(0, fminf(15, nearbyintf(v[j + 16] * is) + 8));
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void q5_0_to_f32(float *d, const void *src, int64_t n) {
    const nx_block_q5_0 *b = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        float s = nx_f16_to_f32(b[i].d);
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < NX_QK / 2; j++) {
            int lo = (b[i].qs[j] & 15) | (int)((qh >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            d[i * NX_QK + j] = s * (lo - 16);
            d[i * NX_QK + j + 16] = s * (hi - 16);
        }
    }
}

/* Integers q[32] in 0..31 into a Q5_0 block's nibbles and high bits. */
void nx_q5_0_pack(void *blk, const uint8_t *q) {
    nx_block_q5_0 *b = blk;
    uint32_t qh = 0;
    for (int j = 0; j < NX_QK / 2; j++) {
        b->qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    memcpy(b->qh, &qh, 4);
}

static void q5_0_from_f32(void *dst, const float *x, int64_t n) {
    nx_block_q5_0 *b = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *v = x + i * NX_QK;
        float ext = 0; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < NX_QK; j++)
            if (fabsf(v[j]) > fabsf(ext)) ext = v[j];
        float s = f16r(ext / -16), is = s != 0 ? 1 / s : 0;
        b[i].d = nx_f32_to_f16(s);
        uint8_t q[NX_QK];
        for (int j = 0; j < NX_QK; j++) q[j] = (uint8_t)fmaxf(0, fminf(31, nearbyintf(v[j] * is) + 16));
        nx_q5_0_pack(&b[i], q);
    }
}

static void iq4_nl_to_f32(float *d, const void *src, int64_t n) {
    const nx_block_iq4_nl *b = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        float s = nx_f16_to_f32(b[i].d);
        for (int j = 0; j < NX_QK / 2; j++) {
            d[i * NX_QK + j] = s * nx_iq4nl_values[b[i].qs[j] & 15];
            d[i * NX_QK + j + 16] = s * nx_iq4nl_values[b[i].qs[j] >> 4];
        }
    }
}

/* The index of the level nearest v (levels ascending). */
static int iq4nl_nearest(float v) {
    int lo = 0;
    while (lo < 15 && v > 0.5f * (nx_iq4nl_values[lo] + nx_iq4nl_values[lo + 1])) lo++;
    return lo;
}

static void iq4_nl_from_f32(void *dst, const float *x, int64_t n) {
    nx_block_iq4_nl *b = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *v = x + i * NX_QK;
        float ext = 0; /* onto the outermost level, −127 */
        for (int j = 0; j < NX_QK; j++)
            if (fabsf(v[j]) > fabsf(ext)) ext = v[j];
        float s = f16r(ext / -127), is = s != 0 ? 1 / s : 0;
        b[i].d = nx_f32_to_f16(s);
        for (int j = 0; j < NX_QK / 2; j++)
            b[i].qs[j] = (uint8_t)(iq4nl_nearest(v[j] * is) | iq4nl_nearest(v[j + 16] * is) << 4);
    }
}

static void q4_k_to_f32(float *d, const void *src, int64_t n) {
    const nx_block_q4_k *b = src;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK_K; i++) {
        float D = nx_f16_to_f32(b[i].d), M = nx_f16_to_f32(b[i].dmin);
        float *y = d + i * NX_QK_K;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            nx_q4k_scale_min(j, b[i].scales, &sc, &m);
            const uint8_t *q = b[i].qs + 32 * (j / 2);
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++) y[32 * j + l] = D * sc * ((q[l] >> shift) & 15) - M * m;
        }
    }
}

static void q4_k_from_f32(void *dst, const float *x, int64_t n) {
    nx_block_q4_k *b = dst;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n / NX_QK_K; i++) {
        const float *v = x + i * NX_QK_K;
        float scale[8], mins[8], smax = 0, mmax = 0;
        for (int j = 0; j < 8; j++) {
            float lo = 0, hi = 0; /* the range always holds 0: mins stay >= 0 */
            for (int l = 0; l < 32; l++) lo = fminf(lo, v[32 * j + l]), hi = fmaxf(hi, v[32 * j + l]);
            scale[j] = (hi - lo) / 15;
            mins[j] = -lo;
            smax = fmaxf(smax, scale[j]);
            mmax = fmaxf(mmax, mins[j]);
        }
        float D = f16r(smax / 63), M = f16r(mmax / 63);
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = D > 0 ? (uint8_t)fminf(63, nearbyintf(scale[j] / D)) : 0;
            m[j] = M > 0 ? (uint8_t)fminf(63, nearbyintf(mins[j] / M)) : 0;
        }
        b[i].d = nx_f32_to_f16(D);
        b[i].dmin = nx_f32_to_f16(M);
        nx_q4k_pack_scales(b[i].scales, sc, m);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int j = 0; j < 8; j++) {
            float s = D * sc[j], mn = M * m[j], is = s > 0 ? 1 / s : 0;
            uint8_t *q = b[i].qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++) {
                int k = (int)fmaxf(0, fminf(15, nearbyintf((v[32 * j + l] + mn) * is)));
                q[l] |= (uint8_t)(k << (4 * (j & 1)));
            }
        }
    }
}

static const nx_type_traits TYPES[NX_DTYPE_COUNT] = {
    [NX_F32] = {"F32", 1, 4, true, f32_to_f32, f32_from_f32},
    [NX_F16] = {"F16", 1, 2, true, f16_to_f32, f16_from_f32},
    [NX_BF16] = {"BF16", 1, 2, true, bf16_to_f32, bf16_from_f32},
    [NX_F64] = {"F64", 1, 8, false, f64_to_f32, NULL},
    [NX_I8] = {"I8", 1, 1, false, NULL, NULL},
    [NX_U8] = {"U8", 1, 1, false, NULL, NULL},
    [NX_I16] = {"I16", 1, 2, false, NULL, NULL},
    [NX_U16] = {"U16", 1, 2, false, NULL, NULL},
    [NX_I32] = {"I32", 1, 4, false, NULL, NULL},
    [NX_U32] = {"U32", 1, 4, false, NULL, NULL},
    [NX_I64] = {"I64", 1, 8, false, NULL, NULL},
    [NX_U64] = {"U64", 1, 8, false, NULL, NULL},
    [NX_BOOL] = {"BOOL", 1, 1, false, NULL, NULL},
    [NX_Q8_0] = {"Q8_0", NX_QK, sizeof(nx_block_q8_0), true, q8_0_to_f32, q8_0_from_f32},
    [NX_Q4_0] = {"Q4_0", NX_QK, sizeof(nx_block_q4_0), true, q4_0_to_f32, q4_0_from_f32},
    [NX_Q4_K] = {"Q4_K", NX_QK_K, sizeof(nx_block_q4_k), true, q4_k_to_f32, q4_k_from_f32},
    [NX_IQ4_NL] = {"IQ4_NL", NX_QK, sizeof(nx_block_iq4_nl), true, iq4_nl_to_f32, iq4_nl_from_f32},
    [NX_Q5_0] = {"Q5_0", NX_QK, sizeof(nx_block_q5_0), true, q5_0_to_f32, q5_0_from_f32},
};

const nx_type_traits *nx_type(nx_dtype t) {
    NX_ASSERT((unsigned)t < NX_DTYPE_COUNT);
    return &TYPES[t];
}

size_t nx_dtype_size(nx_dtype t) {
    const nx_type_traits *tt = nx_type(t);
    NX_ASSERTM(tt->block == 1, "a block type has no element size: use nx_row_bytes");
    return tt->block_bytes;
}

const char *nx_dtype_name(nx_dtype t) { return nx_type(t)->name; }

int nx_dtype_from_name(const char *s, nx_dtype *out) {
    for (int i = 0; i < NX_DTYPE_COUNT; i++)
        if (strcmp(s, TYPES[i].name) == 0) {
            *out = (nx_dtype)i;
            return NX_OK;
        }
    return NX_ERR;
}

size_t nx_row_bytes(nx_dtype t, int64_t n) {
    const nx_type_traits *tt = nx_type(t);
    NX_ASSERTM(n >= 0 && n % tt->block == 0, "row length is not a multiple of the type's block");
    return (size_t)(n / tt->block) * tt->block_bytes;
}

void nx_convert_to_f32(float *dst, const void *src, nx_dtype t, size_t n) {
    const nx_type_traits *tt = nx_type(t);
    NX_ASSERTM(tt->to_f32, "nx_convert_to_f32: not a float type");
    tt->to_f32(dst, src, (int64_t)n);
}

void nx_convert(void *dst, nx_dtype dt, const void *src, nx_dtype st, int64_t n) {
    if (dt == st) {
        memmove(dst, src, nx_row_bytes(dt, n));
        return;
    }
    const nx_type_traits *d = nx_type(dt), *s = nx_type(st);
    NX_ASSERTM(s->to_f32 && d->from_f32, "nx_convert: not a pair of float types");
    if (dt == NX_F32) {
        s->to_f32(dst, src, n);
        return;
    }
    /* through f32, a chunk at a time (chunks are a multiple of every block) */
    enum { CHUNK = 1 << 14 };
    float tmp[CHUNK];
    size_t ib = 0, ob = 0;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        s->to_f32(tmp, (const char *)src + ib, k);
        d->from_f32((char *)dst + ob, tmp, k);
        ib += nx_row_bytes(st, k);
        ob += nx_row_bytes(dt, k);
    }
}
