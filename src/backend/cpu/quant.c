/* quant.c — matrix products with block-typed weights (Q8_0, Q4_0, Q4_K, IQ4_NL;
 * layouts in blocks.h) on 8-bit activations: the decode and prefill
 * kernels of cpu_linear for quantized models.
 *
 * Each input row is quantized once per call to 8 bits in blocks of 32
 * (as llama.cpp's Q8 activations): q[i] = round(x[i] / d), d = amax / 127,
 * with the block's scale d and ds = d · Σq kept as floats. A weight block
 * times an activation block is then an integer dot product, scaled once:
 *
 *   Q8_0  dw · d · Σ qw·q
 *   Q4_0  dw · (d · Σ qw·q − 8 · ds)         (qw the raw nibbles 0..15)
 *   Q4_K  D·sc · d · Σ qw·q − M·m · ds       (per sub-block of 32)
 *   Q5_0  dw · (d · Σ qw·q − 16 · ds)        (qw the 5-bit integers 0..31)
 *   IQ4_NL dw · d · Σ V[qw]·q                 (V: the 16 levels)
 *
 * so the result is exactly the product of the dequantized weights with the
 * dequantized activations, up to the order of float sums; the naive
 * reference (nx_ref_qmatmul) computes that product in double precision.
 * How activations are scaled is the weight's choice (nx_weight.act): per
 * block (the default), one scale per row (dynamic W8A8) or a calibrated
 * static scale (static W8A8, values beyond it clipped).
 *
 * Three implementations of the same tiles, picked at run time by what the
 * CPU has (one binary runs everywhere): AVX-512 VNNI (vpdpbusd: unsigned ×
 * signed bytes summed into int32; two blocks per 512-bit register),
 * AVX2 (maddubs + madd, one block per register) and portable C. Each is
 * compiled with a target attribute, so a build for an older baseline
 * (make PORTABLE=1) still carries the fast paths. Q8_0 weights are signed:
 * vpdpbusd/maddubs take |w| and x with w's sign (so do IQ4_NL's levels
 * on AVX2, looked up with pshufb); nibbles are unsigned already, and
 * AVX-512 looks IQ4_NL's levels up shifted by 128 into unsigned bytes.
 *
 * Tiles: R weight rows (1 or 4) × X input rows (1 to 4) accumulate in
 * registers across the row; decode runs 4 × 1 tiles over the weight rows
 * split among the decode pool's threads (pool.c), prefill runs 4 × 4 tiles
 * (each weight block read once for four inputs) in OpenMP loops. On
 * AVX-512 the 32-block types decode through their own one-row kernels
 * (DECODE_512: unsigned weights, no per-block sign fix-up or scale
 * shuffling). NEXUS_QKERNEL=scalar|avx2|avx512vnni forces a path
 * (benchmarks); nx_qkernel_select does so for tests. */
#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>

#include "nexus/blocks.h"
#include "cpu_impl.h"

/* ---- 8-bit activations ---- */

typedef struct qx {
    int8_t *q;     /* (n, IC) */
    float *d, *ds; /* (n, nb) block scales, scale · Σq */
    int IC, nb;
} qx;

size_t nx_qact_bytes(int N, int IC) { return (size_t)N * IC + 2 * sizeof(float) * (size_t)N * (IC / NX_QK) + 64; }

static qx qx_view(void *buf, int N, int IC) {
    qx a = {.IC = IC, .nb = IC / NX_QK};
    a.d = buf;
    a.ds = a.d + (size_t)N * a.nb;
    a.q = (int8_t *)(a.ds + (size_t)N * a.nb);
    return a;
}

/* Row x into 8 bits: per block of 32 (mode BLOCK), one scale for the row
 * (ROW), or the fixed scale s (STATIC). The same arithmetic on every path
 * (x times the reciprocal of d, rounded to nearest even), so all kernels
 * see the same integers: this is the portable form and the reference;
 * quant_row_avx2 and quant_row_512 below write it with vector intrinsics
 * (written plainly, it compiled to calls of fmaxf and fminf: a fifth of a
 * quantized model's prefill). */
#define QUANT_ROW_BODY                                                                    \
    int nb = IC / NX_QK;                                                                  \
    float rowmax = 0;                                                                     \
    if (mode == NX_ACT_ROW)                                                               \
        for (int i = 0; i < IC; i++) rowmax = fmaxf(rowmax, fabsf(x[i]));                 \
    for (int b = 0; b < nb; b++) {                                                        \
        const float *v = x + b * NX_QK;                                                   \
        float amax = 0;                                                                   \
        if (mode == NX_ACT_BLOCK)                                                         \
            for (int i = 0; i < NX_QK; i++) amax = fmaxf(amax, fabsf(v[i]));              \
        else                                                                              \
            amax = mode == NX_ACT_ROW ? rowmax : s;                                       \
        float dd = amax / 127, id = dd > 0 ? 1 / dd : 0;                                  \
        int sum = 0;                                                                      \
        for (int i = 0; i < NX_QK; i++) {                                                 \
            float r = nearbyintf(v[i] * id);                                              \
            r = fminf(127.0f, fmaxf(-127.0f, r));                                         \
            q[b * NX_QK + i] = (int8_t)r;                                                 \
            sum += (int8_t)r;                                                             \
        }                                                                                 \
        d[b] = dd;                                                                        \
        ds[b] = dd * (float)sum;                                                          \
    }

static void quant_row_c(int8_t *q, float *d, float *ds, const float *x, int IC, int mode, float s) {
    QUANT_ROW_BODY
}

/* ---- scalar tiles (and the reference of each block's integer sum) ---- */

static inline int isum32(const int8_t *w, const int8_t *x) {
    int s = 0;
    for (int i = 0; i < NX_QK; i++) s += w[i] * x[i];
    return s;
}

static float dot_q8_0_c(const void *W, const int8_t *q, const float *d, const float *ds, int nb) {
    const nx_block_q8_0 *w = W;
    (void)ds;
    float acc = 0;
    for (int b = 0; b < nb; b++) acc += nx_f16_to_f32(w[b].d) * d[b] * (float)isum32(w[b].qs, q + b * NX_QK);
    return acc;
}

static float dot_q4_0_c(const void *W, const int8_t *q, const float *d, const float *ds, int nb) {
    const nx_block_q4_0 *w = W;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        const int8_t *x = q + b * NX_QK;
        int s = 0;
        for (int i = 0; i < 16; i++) s += (w[b].qs[i] & 15) * x[i] + (w[b].qs[i] >> 4) * x[i + 16];
        acc += nx_f16_to_f32(w[b].d) * (d[b] * (float)s - 8 * ds[b]);
    }
    return acc;
}

static float dot_iq4_nl_c(const void *W, const int8_t *q, const float *d, const float *ds, int nb) {
    const nx_block_iq4_nl *w = W;
    (void)ds;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        const int8_t *x = q + b * NX_QK;
        int s = 0;
        for (int i = 0; i < 16; i++)
            s += nx_iq4nl_values[w[b].qs[i] & 15] * x[i] + nx_iq4nl_values[w[b].qs[i] >> 4] * x[i + 16];
        acc += nx_f16_to_f32(w[b].d) * d[b] * (float)s;
    }
    return acc;
}

static float dot_q5_0_c(const void *W, const int8_t *q, const float *d, const float *ds, int nb) {
    const nx_block_q5_0 *w = W;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        const int8_t *x = q + b * NX_QK;
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int s = 0;
        for (int i = 0; i < 16; i++)
            s += ((w[b].qs[i] & 15) | (int)((qh >> i) & 1) << 4) * x[i] +
                 ((w[b].qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4) * x[i + 16];
        acc += nx_f16_to_f32(w[b].d) * (d[b] * (float)s - 16 * ds[b]);
    }
    return acc;
}

static float dot_q4_k_c(const void *W, const int8_t *q, const float *d, const float *ds, int nb) {
    const nx_block_q4_k *w = W;
    float acc = 0;
    for (int k = 0; k < nb / 8; k++) {
        float D = nx_f16_to_f32(w[k].d), M = nx_f16_to_f32(w[k].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            nx_q4k_scale_min(j, w[k].scales, &sc, &m);
            const uint8_t *qs = w[k].qs + 32 * (j / 2);
            const int8_t *x = q + (8 * k + j) * NX_QK;
            int sh = 4 * (j & 1), s = 0;
            for (int i = 0; i < 32; i++) s += ((qs[i] >> sh) & 15) * x[i];
            int b = 8 * k + j;
            acc += D * sc * d[b] * (float)s - M * m * ds[b];
        }
    }
    return acc;
}

typedef float (*dot_fn)(const void *, const int8_t *, const float *, const float *, int);

/* o[x][r] = W[r]·A[x0 + x] for r < R, x < X */
#define SCALAR_TILE(S)                                                                                    \
    static void tile_##S##_c(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) { \
        for (int x = 0; x < X; x++)                                                                       \
            for (int r = 0; r < R; r++) {                                                                 \
                size_t i = (size_t)(x0 + x);                                                              \
                o[x][r] = dot_##S##_c(W + r * rb, A->q + i * A->IC, A->d + i * A->nb, A->ds + i * A->nb,  \
                                      A->nb);                                                             \
            }                                                                                             \
    }
SCALAR_TILE(q8_0)
SCALAR_TILE(q4_0)
SCALAR_TILE(q4_k)
SCALAR_TILE(iq4_nl)
SCALAR_TILE(q5_0)

/* ---- AVX2 ---- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define INL __attribute__((always_inline)) inline

/* The same integers as QUANT_ROW_BODY, eight lanes at a time: |x| by
 * masking the sign, the maximum with the running value as the second
 * operand of max (so a NaN input is skipped, as fmaxf skips it), x·(1/d)
 * clamped to ±127 before it is rounded to nearest even (the clamp bounds
 * are integers, so clamping first gives nearbyintf's result; a NaN becomes
 * −127 both ways). */
static T_AVX2 INL float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static T_AVX2 INL int hsum256_epi32(__m256i v) {
    __m128i m = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(m);
}

static T_AVX2 void quant_row_avx2(int8_t *q, float *d, float *ds, const float *x, int IC, int mode, float s) {
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    int nb = IC / NX_QK;
    float rowmax = 0;
    if (mode == NX_ACT_ROW) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < nb * NX_QK; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
        rowmax = hmax256(m);
    }
    for (int b = 0; b < nb; b++) {
        const float *v = x + b * NX_QK;
        __m256 xv[4];
        for (int k = 0; k < 4; k++) xv[k] = _mm256_loadu_ps(v + 8 * k);
        float amax;
        if (mode == NX_ACT_BLOCK) {
            __m256 m = _mm256_setzero_ps();
            for (int k = 0; k < 4; k++) m = _mm256_max_ps(_mm256_andnot_ps(sign, xv[k]), m);
            amax = hmax256(m);
        } else {
            amax = mode == NX_ACT_ROW ? rowmax : s;
        }
        float dd = amax / 127, id = dd > 0 ? 1 / dd : 0;
        __m256 vid = _mm256_set1_ps(id);
        __m256i qi[4], sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(xv[k], vid), lo), hi);
            qi[k] = _mm256_cvtps_epi32(_mm256_round_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            sum = _mm256_add_epi32(sum, qi[k]);
        }
        /* int32 → int8 (values within ±127): packs interleave 128-bit lanes; permute back */
        __m256i p16a = _mm256_packs_epi32(qi[0], qi[1]), p16b = _mm256_packs_epi32(qi[2], qi[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * NX_QK), p8);
        d[b] = dd;
        ds[b] = dd * (float)hsum256_epi32(sum);
    }
}

static T_AVX2 INL float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static T_AVX2 INL float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* unsigned w × signed x, 32 bytes, summed in 8 int32 lanes, as floats */
static T_AVX2 INL __m256 udot32_avx2(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(w, x);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

static T_AVX2 INL void tile_q8_0_avx2_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m256 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm256_setzero_ps();
    for (int b = 0; b < A->nb; b++) {
        __m256i xv[4];
        float dx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = _mm256_loadu_si256((const __m256i *)(A->q + i * A->IC + b * NX_QK));
            dx[x] = A->d[i * A->nb + b];
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q8_0 *blk = (const nx_block_q8_0 *)(W + r * rb) + b;
            __m256i w = _mm256_loadu_si256((const __m256i *)blk->qs), aw = _mm256_abs_epi8(w);
            float dw = h2f(blk->d);
            for (int x = 0; x < X; x++)
                acc[r][x] = _mm256_fmadd_ps(udot32_avx2(aw, _mm256_sign_epi8(xv[x], w)), _mm256_set1_ps(dw * dx[x]),
                                            acc[r][x]);
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = hsum256(acc[r][x]);
}

static T_AVX2 INL void tile_q4_0_avx2_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m256 acc[4][4];
    float off[4][4] = {{0}};
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(15);
    for (int b = 0; b < A->nb; b++) {
        __m256i xv[4];
        float dx[4], dsx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = _mm256_loadu_si256((const __m256i *)(A->q + i * A->IC + b * NX_QK));
            dx[x] = A->d[i * A->nb + b];
            dsx[x] = A->ds[i * A->nb + b];
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q4_0 *blk = (const nx_block_q4_0 *)(W + r * rb) + b;
            __m128i v = _mm_loadu_si128((const __m128i *)blk->qs);
            __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
            float dw = h2f(blk->d);
            for (int x = 0; x < X; x++) {
                acc[r][x] = _mm256_fmadd_ps(udot32_avx2(w, xv[x]), _mm256_set1_ps(dw * dx[x]), acc[r][x]);
                off[r][x] += dw * dsx[x];
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = hsum256(acc[r][x]) - 8 * off[r][x];
}

static T_AVX2 INL void tile_iq4_nl_avx2_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m256 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(15);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)nx_iq4nl_values));
    for (int b = 0; b < A->nb; b++) {
        __m256i xv[4];
        float dx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = _mm256_loadu_si256((const __m256i *)(A->q + i * A->IC + b * NX_QK));
            dx[x] = A->d[i * A->nb + b];
        }
        for (int r = 0; r < R; r++) {
            const nx_block_iq4_nl *blk = (const nx_block_iq4_nl *)(W + r * rb) + b;
            __m128i v = _mm_loadu_si128((const __m128i *)blk->qs);
            __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
            __m256i w = _mm256_shuffle_epi8(lut, idx), aw = _mm256_abs_epi8(w);
            float dw = h2f(blk->d);
            for (int x = 0; x < X; x++)
                acc[r][x] = _mm256_fmadd_ps(udot32_avx2(aw, _mm256_sign_epi8(xv[x], w)), _mm256_set1_ps(dw * dx[x]),
                                            acc[r][x]);
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = hsum256(acc[r][x]);
}

/* byte j = 16 where bit j of the 32 bits at p is set, else 0 */
static T_AVX2 INL __m256i q5_hibits_avx2(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u),
                                    _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL,
                                                       0x0303030303030303LL));
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL)); /* all ones where the bit is set */
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(16));
}

/* Q5_0: the 5-bit integers (0..31) as unsigned bytes, offset 16 subtracted
 * through Σq as Q4_0's 8 is */
static T_AVX2 INL __m256i q5_0_bytes_avx2(const nx_block_q5_0 *blk) {
    const __m128i m4 = _mm_set1_epi8(15);
    __m128i v = _mm_loadu_si128((const __m128i *)blk->qs);
    __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
    return _mm256_or_si256(w, q5_hibits_avx2(blk->qh));
}

static T_AVX2 INL void tile_q5_0_avx2_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m256 acc[4][4];
    float off[4][4] = {{0}};
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm256_setzero_ps();
    for (int b = 0; b < A->nb; b++) {
        __m256i xv[4];
        float dx[4], dsx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = _mm256_loadu_si256((const __m256i *)(A->q + i * A->IC + b * NX_QK));
            dx[x] = A->d[i * A->nb + b];
            dsx[x] = A->ds[i * A->nb + b];
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q5_0 *blk = (const nx_block_q5_0 *)(W + r * rb) + b;
            __m256i w = q5_0_bytes_avx2(blk);
            float dw = h2f(blk->d);
            for (int x = 0; x < X; x++) {
                acc[r][x] = _mm256_fmadd_ps(udot32_avx2(w, xv[x]), _mm256_set1_ps(dw * dx[x]), acc[r][x]);
                off[r][x] += dw * dsx[x];
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = hsum256(acc[r][x]) - 16 * off[r][x];
}

/* The eight 6-bit scales and mins of a Q4_K block as bytes (sc[0..7], m[0..7]). */
static INL void q4k_unpack(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4), memcpy(&u1, s + 4, 4), memcpy(&u2, s + 8, 4);
    uint32_t a = u0 & 0x3f3f3f3fu, c = u1 & 0x3f3f3f3fu;
    uint32_t b = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t e = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    memcpy(sc, &a, 4), memcpy(sc + 4, &b, 4), memcpy(m, &c, 4), memcpy(m + 4, &e, 4);
}

static T_AVX2 INL void tile_q4_k_avx2_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m256 acc[4][4];
    float off[4][4] = {{0}};
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int k = 0; k < A->nb / 8; k++) {
        float scf[4][8], mnf[4][8];
        for (int r = 0; r < R; r++) {
            const nx_block_q4_k *blk = (const nx_block_q4_k *)(W + r * rb) + k;
            uint8_t sc[8], m[8];
            q4k_unpack(blk->scales, sc, m);
            float D = h2f(blk->d), M = h2f(blk->dmin);
            for (int j = 0; j < 8; j++) scf[r][j] = D * sc[j], mnf[r][j] = M * m[j];
        }
        for (int j2 = 0; j2 < 4; j2++) {
            __m256i xl[4], xh[4];
            float dl[4], dh[4];
            for (int x = 0; x < X; x++) {
                size_t i = (size_t)(x0 + x), b = (size_t)8 * k + 2 * j2;
                const int8_t *xp = A->q + i * A->IC + b * NX_QK;
                xl[x] = _mm256_loadu_si256((const __m256i *)xp);
                xh[x] = _mm256_loadu_si256((const __m256i *)(xp + 32));
                dl[x] = A->d[i * A->nb + b], dh[x] = A->d[i * A->nb + b + 1];
                for (int r = 0; r < R; r++)
                    off[r][x] += mnf[r][2 * j2] * A->ds[i * A->nb + b] + mnf[r][2 * j2 + 1] * A->ds[i * A->nb + b + 1];
            }
            for (int r = 0; r < R; r++) {
                const nx_block_q4_k *blk = (const nx_block_q4_k *)(W + r * rb) + k;
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * j2));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int x = 0; x < X; x++) {
                    acc[r][x] = _mm256_fmadd_ps(udot32_avx2(lo, xl[x]), _mm256_set1_ps(scf[r][2 * j2] * dl[x]), acc[r][x]);
                    acc[r][x] = _mm256_fmadd_ps(udot32_avx2(hi, xh[x]), _mm256_set1_ps(scf[r][2 * j2 + 1] * dh[x]),
                                                acc[r][x]);
                }
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = hsum256(acc[r][x]) - off[r][x];
}

/* ---- AVX-512 VNNI ---- */

#define T_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

/* quant_row_avx2's arithmetic, 16 lanes at a time */
static T_512 void quant_row_512(int8_t *q, float *d, float *ds, const float *x, int IC, int mode, float s) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    int nb = IC / NX_QK;
    float rowmax = 0;
    if (mode == NX_ACT_ROW) {
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < nb * NX_QK; i += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m);
        rowmax = _mm512_reduce_max_ps(m);
    }
    for (int b = 0; b < nb; b++) {
        const float *v = x + b * NX_QK;
        __m512 x0 = _mm512_loadu_ps(v), x1 = _mm512_loadu_ps(v + 16);
        float amax;
        if (mode == NX_ACT_BLOCK)
            amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0),
                                                                                       _mm512_setzero_ps())));
        else
            amax = mode == NX_ACT_ROW ? rowmax : s;
        float dd = amax / 127, id = dd > 0 ? 1 / dd : 0;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x0, vid), lo), hi),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x1, vid), lo), hi),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(q + b * NX_QK), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + b * NX_QK + 16), _mm512_cvtepi32_epi8(q1));
        d[b] = dd;
        ds[b] = dd * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* lanes 0..7 = p[0], lanes 8..15 = p[1] (p[1] read only when two) */
static T_512 INL __m512 pair_ps(const float *p, bool two) {
    __m512 v = two ? _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p)))
                   : _mm512_castps128_ps512(_mm_load_ss(p));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), v);
}
static T_512 INL __m512 pair2(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}
/* 64 activation bytes of blocks b, b+1 (32 and zeros when only one) */
static T_512 INL __m512i xload(const int8_t *p, bool two) {
    return two ? _mm512_loadu_si512(p) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p));
}

static T_512 INL void tile_q8_0_512_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm512_setzero_ps();
    const __m512i z = _mm512_setzero_si512();
    for (int b = 0; b < A->nb; b += 2) {
        bool two = b + 1 < A->nb;
        __m512i xv[4];
        __m512 dx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = xload(A->q + i * A->IC + b * NX_QK, two);
            dx[x] = pair_ps(A->d + i * A->nb + b, two);
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q8_0 *blk = (const nx_block_q8_0 *)(W + r * rb) + b;
            __m256i w0 = _mm256_loadu_si256((const __m256i *)blk[0].qs);
            __m512i w = two ? _mm512_inserti64x4(_mm512_castsi256_si512(w0),
                                                 _mm256_loadu_si256((const __m256i *)blk[1].qs), 1)
                            : _mm512_zextsi256_si512(w0);
            __m512i aw = _mm512_abs_epi8(w);
            __mmask64 neg = _mm512_movepi8_mask(w);
            __m512 dw = pair2(h2f(blk[0].d), two ? h2f(blk[1].d) : 0.0f);
            for (int x = 0; x < X; x++) {
                __m512i sx = _mm512_mask_sub_epi8(xv[x], neg, z, xv[x]);
                __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, aw, sx));
                acc[r][x] = _mm512_fmadd_ps(p, _mm512_mul_ps(dw, dx[x]), acc[r][x]);
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = _mm512_reduce_add_ps(acc[r][x]);
}

static T_512 INL void tile_q4_0_512_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm512_setzero_ps();
    const __m512i z = _mm512_setzero_si512();
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int b = 0; b < A->nb; b += 2) {
        bool two = b + 1 < A->nb;
        __m512i xv[4];
        __m512 dx[4], dsx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = xload(A->q + i * A->IC + b * NX_QK, two);
            dx[x] = pair_ps(A->d + i * A->nb + b, two);
            dsx[x] = pair_ps(A->ds + i * A->nb + b, two);
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q4_0 *blk = (const nx_block_q4_0 *)(W + r * rb) + b;
            __m128i v0 = _mm_loadu_si128((const __m128i *)blk[0].qs);
            __m128i v1 = two ? _mm_loadu_si128((const __m128i *)blk[1].qs) : _mm_setzero_si128();
            __m256i v = _mm256_set_m128i(v1, v0);
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            /* [b0.lo b1.lo b0.hi b1.hi] → [b0.lo b0.hi b1.lo b1.hi] */
            __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            w = _mm512_shuffle_i64x2(w, w, _MM_SHUFFLE(3, 1, 2, 0));
            __m512 dw = pair2(h2f(blk[0].d), two ? h2f(blk[1].d) : 0.0f);
            for (int x = 0; x < X; x++) {
                __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, w, xv[x]));
                acc[r][x] = _mm512_fmadd_ps(dw, _mm512_fmsub_ps(p, dx[x], dsx[x]), acc[r][x]);
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = _mm512_reduce_add_ps(acc[r][x]);
}

/* IQ4_NL: the levels + 128 as unsigned bytes, so that vpdpbusd takes them
 * as they are; Σ (V + 128)·q − 128·Σq is the signed sum. */
static T_512 INL void tile_iq4_nl_512_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm512_setzero_ps();
    const __m512i z = _mm512_setzero_si512();
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m512i lut = _mm512_add_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)nx_iq4nl_values)),
                                        _mm512_set1_epi8((char)0x80));
    const __m512 sixteen = _mm512_set1_ps(16);
    for (int b = 0; b < A->nb; b += 2) {
        bool two = b + 1 < A->nb;
        __m512i xv[4];
        __m512 dx[4], dsx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = xload(A->q + i * A->IC + b * NX_QK, two);
            dx[x] = pair_ps(A->d + i * A->nb + b, two);
            dsx[x] = _mm512_mul_ps(pair_ps(A->ds + i * A->nb + b, two), sixteen);
        }
        for (int r = 0; r < R; r++) {
            const nx_block_iq4_nl *blk = (const nx_block_iq4_nl *)(W + r * rb) + b;
            __m128i v0 = _mm_loadu_si128((const __m128i *)blk[0].qs);
            __m128i v1 = two ? _mm_loadu_si128((const __m128i *)blk[1].qs) : _mm_setzero_si128();
            __m256i v = _mm256_set_m128i(v1, v0);
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            idx = _mm512_shuffle_i64x2(idx, idx, _MM_SHUFFLE(3, 1, 2, 0));
            __m512i w = _mm512_shuffle_epi8(lut, idx);
            __m512 dw = pair2(h2f(blk[0].d), two ? h2f(blk[1].d) : 0.0f);
            for (int x = 0; x < X; x++) {
                __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, w, xv[x]));
                acc[r][x] = _mm512_fmadd_ps(dw, _mm512_fmsub_ps(p, dx[x], dsx[x]), acc[r][x]);
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = _mm512_reduce_add_ps(acc[r][x]);
}

static T_512 INL void tile_q5_0_512_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm512_setzero_ps();
    const __m512i z = _mm512_setzero_si512();
    const __m512 two_ = _mm512_set1_ps(2); /* the offset 16, spread over the 8 lanes of a block */
    for (int b = 0; b < A->nb; b += 2) {
        bool two = b + 1 < A->nb;
        __m512i xv[4];
        __m512 dx[4], dsx[4];
        for (int x = 0; x < X; x++) {
            size_t i = (size_t)(x0 + x);
            xv[x] = xload(A->q + i * A->IC + b * NX_QK, two);
            dx[x] = pair_ps(A->d + i * A->nb + b, two);
            dsx[x] = _mm512_mul_ps(pair_ps(A->ds + i * A->nb + b, two), two_);
        }
        for (int r = 0; r < R; r++) {
            const nx_block_q5_0 *blk = (const nx_block_q5_0 *)(W + r * rb) + b;
            __m256i w0 = q5_0_bytes_avx2(&blk[0]);
            __m512i w = two ? _mm512_inserti64x4(_mm512_castsi256_si512(w0), q5_0_bytes_avx2(&blk[1]), 1)
                            : _mm512_zextsi256_si512(w0);
            __m512 dw = pair2(h2f(blk[0].d), two ? h2f(blk[1].d) : 0.0f);
            for (int x = 0; x < X; x++) {
                __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, w, xv[x]));
                acc[r][x] = _mm512_fmadd_ps(dw, _mm512_fmsub_ps(p, dx[x], dsx[x]), acc[r][x]);
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = _mm512_reduce_add_ps(acc[r][x]);
}

static T_512 INL void tile_q4_k_512_g(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int x = 0; x < 4; x++) acc[r][x] = _mm512_setzero_ps();
    const __m512i z = _mm512_setzero_si512();
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m512 eighth = _mm512_set1_ps(0.125f);
    for (int k = 0; k < A->nb / 8; k++) {
        __m512 scv[4], mnv[4]; /* D·sc, M·m/8 for sub-blocks 0..7 in lanes 0..7 */
        for (int r = 0; r < R; r++) {
            const nx_block_q4_k *blk = (const nx_block_q4_k *)(W + r * rb) + k;
            uint8_t sc[8], m[8];
            q4k_unpack(blk->scales, sc, m);
            uint64_t s64, m64;
            memcpy(&s64, sc, 8), memcpy(&m64, m, 8);
            __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s64)));
            __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m64)));
            scv[r] = _mm512_castps256_ps512(_mm256_mul_ps(scf, _mm256_set1_ps(h2f(blk->d))));
            mnv[r] = _mm512_mul_ps(_mm512_castps256_ps512(_mm256_mul_ps(mnf, _mm256_set1_ps(h2f(blk->dmin)))), eighth);
        }
        for (int j2 = 0; j2 < 4; j2++) {
            const __m512i idx = _mm512_set_epi32(2 * j2 + 1, 2 * j2 + 1, 2 * j2 + 1, 2 * j2 + 1, 2 * j2 + 1, 2 * j2 + 1,
                                                 2 * j2 + 1, 2 * j2 + 1, 2 * j2, 2 * j2, 2 * j2, 2 * j2, 2 * j2, 2 * j2,
                                                 2 * j2, 2 * j2);
            __m512i xv[4];
            __m512 dx[4], dsx[4];
            for (int x = 0; x < X; x++) {
                size_t i = (size_t)(x0 + x), b = (size_t)8 * k + 2 * j2;
                xv[x] = _mm512_loadu_si512(A->q + i * A->IC + b * NX_QK);
                dx[x] = pair_ps(A->d + i * A->nb + b, true);
                dsx[x] = pair_ps(A->ds + i * A->nb + b, true);
            }
            for (int r = 0; r < R; r++) {
                const nx_block_q4_k *blk = (const nx_block_q4_k *)(W + r * rb) + k;
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * j2));
                __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, m4)),
                                               _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), 1);
                __m512 s = _mm512_permutexvar_ps(idx, scv[r]), mn = _mm512_permutexvar_ps(idx, mnv[r]);
                for (int x = 0; x < X; x++) {
                    __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, w, xv[x]));
                    acc[r][x] = _mm512_fmadd_ps(s, _mm512_mul_ps(p, dx[x]), acc[r][x]);
                    acc[r][x] = _mm512_fnmadd_ps(mn, dsx[x], acc[r][x]);
                }
            }
        }
    }
    for (int x = 0; x < X; x++)
        for (int r = 0; r < R; r++) o[x][r] = _mm512_reduce_add_ps(acc[r][x]);
}

/* ---- AVX-512 VNNI, one input row (decode) ----
 *
 * The 32-blocks' weights as unsigned bytes u = w + OFF (Q8_0: w ⊕ 0x80,
 * i.e. +128; Q4_0 the nibbles, OFF 8; Q5_0 the 5-bit values, OFF 16;
 * IQ4_NL its levels + 128) times the signed activations, so every block is
 * one vpdpbusd with no sign fix-up: Σ w·q = Σ u·q − OFF·Σq, and the
 * offsets of a row sum to OFF · Σ_b dw_b·ds_b (ds = d·Σq), one multiply-add
 * per 16 blocks. The blocks' scales are gathered 16 at a time (one f16 at
 * the start of each block), multiplied by the activations' block scales,
 * and each pair's two products spread over its lanes by one permute. */
/* o[r] = Σ lanes of a[r], r < R: the four sums in one pass of shuffles */
static T_512 INL void reduce4(const __m512 a[4], int R, float o[4]) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1])); /* a0 a1 a0 a1 */
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3])); /* a2 a3 a2 a3 */
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)); /* a0 a1 a2 a3 */
    float v[4];
    _mm_storeu_ps(v, q);
    for (int r = 0; r < R; r++) o[r] = v[r];
}

#define DECODE_512(S, BS, OFF, BYTES)                                                                     \
    static T_512 void dec_##S##_512(const char *W, size_t rb, const qx *A, int x0, int R, float o[4]) {   \
        __m512 acc[4], corr[4];                                                                           \
        for (int r = 0; r < 4; r++) acc[r] = corr[r] = _mm512_setzero_ps();                               \
        const int8_t *q = A->q + (size_t)x0 * A->IC;                                                     \
        const float *dx = A->d + (size_t)x0 * A->nb, *dsx = A->ds + (size_t)x0 * A->nb;                    \
        const __m512i step = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,  \
                                                                 3, 2, 1, 0),                             \
                                                _mm512_set1_epi32(BS));                                    \
        const __m512i pair0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);           \
        const __m512i z = _mm512_setzero_si512();                                                         \
        for (int b0 = 0; b0 < A->nb; b0 += 16) {                                                          \
            int nbc = A->nb - b0 < 16 ? A->nb - b0 : 16;                                                  \
            __mmask16 m = (__mmask16)((1u << nbc) - 1);                                                   \
            __m512 dxv = _mm512_maskz_loadu_ps(m, dx + b0), dsv = _mm512_maskz_loadu_ps(m, dsx + b0);     \
            __m512 sc[4];                                                                                 \
            for (int r = 0; r < R; r++) {                                                                 \
                const char *base = W + r * rb + (size_t)b0 * BS;                                          \
                __m512i g = _mm512_mask_i32gather_epi32(z, m, step, base, 1);                             \
                __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));                                    \
                sc[r] = _mm512_mul_ps(dw, dxv);                                                           \
                corr[r] = _mm512_fmadd_ps(dw, dsv, corr[r]);                                              \
            }                                                                                             \
            __m512i idx = pair0;                                                                          \
            for (int j = 0; j < nbc; j += 2, idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2))) {          \
                bool two = j + 1 < nbc;                                                                   \
                __m512i xv = xload(q + (size_t)(b0 + j) * NX_QK, two);                                    \
                for (int r = 0; r < R; r++) {                                                             \
                    const char *blk = W + r * rb + (size_t)(b0 + j) * BS;                                 \
                    __m512i u = BYTES(blk, two);                                                          \
                    __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, u, xv));                         \
                    acc[r] = _mm512_fmadd_ps(p, _mm512_permutexvar_ps(idx, sc[r]), acc[r]);               \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        for (int r = 0; r < 4; r++) acc[r] = _mm512_fnmadd_ps(_mm512_set1_ps(OFF), corr[r], acc[r]);      \
        reduce4(acc, R, o);                                                                               \
    }

/* the 64 bytes of blocks at p and p + BS (zeros for the second unless two) */
static T_512 INL __m512i join2(__m256i a, __m256i b) { return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1); }

static T_512 INL __m512i bytes_q8_0(const char *p, bool two) {
    const nx_block_q8_0 *blk = (const nx_block_q8_0 *)p;
    __m256i a = _mm256_loadu_si256((const __m256i *)blk[0].qs);
    __m256i b = two ? _mm256_loadu_si256((const __m256i *)blk[1].qs) : _mm256_set1_epi8((char)0x80);
    return _mm512_xor_si512(join2(a, b), _mm512_set1_epi8((char)0x80));
}

/* nibbles of blocks 0, 1 as [b0.lo b0.hi b1.lo b1.hi] (the order of q) */
static T_512 INL __m512i nibbles2(const nx_block_q4_0 *blk, bool two) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m128i v0 = _mm_loadu_si128((const __m128i *)blk[0].qs);
    __m128i v1 = two ? _mm_loadu_si128((const __m128i *)blk[1].qs) : _mm_setzero_si128();
    __m256i v = _mm256_set_m128i(v1, v0);
    __m512i w = join2(_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
    return _mm512_shuffle_i64x2(w, w, _MM_SHUFFLE(3, 1, 2, 0));
}

static T_512 INL __m512i bytes_q4_0(const char *p, bool two) { return nibbles2((const nx_block_q4_0 *)p, two); }

static T_512 INL __m512i bytes_iq4_nl(const char *p, bool two) {
    const __m512i lut = _mm512_add_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)nx_iq4nl_values)),
                                        _mm512_set1_epi8((char)0x80));
    return _mm512_shuffle_epi8(lut, nibbles2((const nx_block_iq4_nl *)p, two));
}

static T_512 INL __m512i bytes_q5_0(const char *p, bool two) {
    const nx_block_q5_0 *blk = (const nx_block_q5_0 *)p;
    __m256i w0 = q5_0_bytes_avx2(&blk[0]);
    return two ? join2(w0, q5_0_bytes_avx2(&blk[1])) : _mm512_zextsi256_si512(w0);
}

DECODE_512(q8_0, 34, 128.0f, bytes_q8_0)
DECODE_512(q4_0, 18, 8.0f, bytes_q4_0)
DECODE_512(iq4_nl, 18, 128.0f, bytes_iq4_nl)
DECODE_512(q5_0, 22, 16.0f, bytes_q5_0)

/* Specialised tiles: 4×1 (decode), 4×4 (prefill), and the general one for
 * edges, each a copy of the generic body with constant R and X. */
#define SPECIALISE(S, ISA, T)                                                                            \
    static T void tile_##S##_##ISA(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) { \
        if (R == 4 && X == 1) tile_##S##_##ISA##_g(W, rb, A, x0, 4, 1, o);                               \
        else if (R == 4 && X == 4) tile_##S##_##ISA##_g(W, rb, A, x0, 4, 4, o);                          \
        else if (R == 4 && X == 2) tile_##S##_##ISA##_g(W, rb, A, x0, 4, 2, o);                          \
        else tile_##S##_##ISA##_g(W, rb, A, x0, R, X, o);                                                \
    }
SPECIALISE(q8_0, avx2, T_AVX2)
SPECIALISE(q4_0, avx2, T_AVX2)
SPECIALISE(q4_k, avx2, T_AVX2)
/* 512-bit 32-block types: one input row through the decode kernels above */
#define SPECIALISE_DEC(S)                                                                                \
    static T_512 void tile_##S##_512(const char *W, size_t rb, const qx *A, int x0, int R, int X, float o[4][4]) { \
        if (X == 1) dec_##S##_512(W, rb, A, x0, R, o[0]);                                                 \
        else if (R == 4 && X == 4) tile_##S##_512_g(W, rb, A, x0, 4, 4, o);                               \
        else if (R == 4 && X == 2) tile_##S##_512_g(W, rb, A, x0, 4, 2, o);                               \
        else tile_##S##_512_g(W, rb, A, x0, R, X, o);                                                     \
    }
SPECIALISE_DEC(q8_0)
SPECIALISE_DEC(q4_0)
SPECIALISE(q4_k, 512, T_512)
SPECIALISE(iq4_nl, avx2, T_AVX2)
SPECIALISE_DEC(iq4_nl)
SPECIALISE(q5_0, avx2, T_AVX2)
SPECIALISE_DEC(q5_0)

/* ---- dispatch ---- */

typedef void (*tile_fn)(const char *, size_t, const qx *, int, int, int, float[4][4]);
typedef void (*quant_fn)(int8_t *, float *, float *, const float *, int, int, float);

typedef struct qkernels {
    const char *name;
    quant_fn quant;
    tile_fn tile[5]; /* Q8_0, Q4_0, Q4_K, IQ4_NL, Q5_0 */
} qkernels;

static const qkernels PATHS[] = {
    {"avx512vnni", quant_row_512, {tile_q8_0_512, tile_q4_0_512, tile_q4_k_512, tile_iq4_nl_512, tile_q5_0_512}},
    {"avx2", quant_row_avx2, {tile_q8_0_avx2, tile_q4_0_avx2, tile_q4_k_avx2, tile_iq4_nl_avx2, tile_q5_0_avx2}},
    {"scalar", quant_row_c, {tile_q8_0_c, tile_q4_0_c, tile_q4_k_c, tile_iq4_nl_c, tile_q5_0_c}},
};
enum { NPATHS = sizeof PATHS / sizeof PATHS[0] };

/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports
 * does not know the name. */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

static bool path_available(int p) {
    __builtin_cpu_init();
    switch (p) {
    case 0:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni") && has_f16c() &&
               __builtin_cpu_supports("fma");
    case 1: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    default: return true;
    }
}

static const qkernels *K; /* the chosen path (set once, before any parallel region) */

static const qkernels *kernels(void) {
    if (K) return K;
    const char *want = getenv("NEXUS_QKERNEL");
    for (int p = 0; want && p < NPATHS; p++)
        if (path_available(p) && !strcmp(want, PATHS[p].name)) return K = &PATHS[p];
    for (int p = 0; p < NPATHS; p++) /* the best this CPU runs */
        if (path_available(p)) return K = &PATHS[p];
    return K = &PATHS[NPATHS - 1];
}

int nx_qkernel_paths(const char **names, int max) {
    int n = 0;
    for (int p = 0; p < NPATHS; p++)
        if (path_available(p) && n < max) names[n++] = PATHS[p].name;
    return n;
}

const char *nx_qkernel_path(void) { return kernels()->name; }

int nx_qkernel_select(const char *name) {
    if (!name) { /* the start-up choice again: NEXUS_QKERNEL, else the best this CPU runs */
        K = NULL;
        kernels();
        return NX_OK;
    }
    for (int p = 0; p < NPATHS; p++)
        if (!strcmp(name, PATHS[p].name)) {
            if (!path_available(p)) return NX_ERR;
            K = &PATHS[p];
            return NX_OK;
        }
    return NX_ERR;
}

static int type_index(nx_dtype t) {
    switch (t) {
    case NX_Q8_0: return 0;
    case NX_Q4_0: return 1;
    case NX_Q4_K: return 2;
    case NX_IQ4_NL: return 3;
    case NX_Q5_0: return 4;
    default: NX_ASSERTM(0, "not an int8-kernel weight type"); return -1;
    }
}

bool nx_qtype(nx_dtype t) { return t == NX_Q8_0 || t == NX_Q4_0 || t == NX_Q4_K || t == NX_IQ4_NL || t == NX_Q5_0; }

static inline void put(float *y, float v, const float *b, int o, bool acc) {
    v += b ? b[o] : 0.0f;
    *y = acc ? *y + v : v;
}

/* Rows parallel when the product is large enough to repay waking threads */
#define PAR_MIN_MACS 32768L

/* Rows of IQ4_NL or Q5_0 as Q8_0 blocks, exactly: the same f16 scale, the
 * integers (V[nibble], 5-bit − 16) as bytes. Prefill widens each block of
 * four rows once, on the stack, and runs the Q8_0 tiles over every group
 * of four inputs, where the type's own tiles unpacked the rows again for
 * each group: single thread, 256 rows, 8% faster for IQ4_NL, 15–20% for
 * Q5_0 (bench_quant prints both). Q4_0's own tiles beat Q8_0's: it is
 * not widened. */
typedef void (*widen_fn)(nx_block_q8_0 *, const char *, int nb);

static void widen_iq4_nl(nx_block_q8_0 *o, const char *p, int nb) {
    const nx_block_iq4_nl *w = (const nx_block_iq4_nl *)p;
    for (int b = 0; b < nb; b++) {
        o[b].d = w[b].d;
        for (int i = 0; i < 16; i++) {
            o[b].qs[i] = nx_iq4nl_values[w[b].qs[i] & 15];
            o[b].qs[i + 16] = nx_iq4nl_values[w[b].qs[i] >> 4];
        }
    }
}

static void widen_q5_0(nx_block_q8_0 *o, const char *p, int nb) {
    const nx_block_q5_0 *w = (const nx_block_q5_0 *)p;
    for (int b = 0; b < nb; b++) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        o[b].d = w[b].d;
        for (int i = 0; i < 16; i++) {
            o[b].qs[i] = (int8_t)(((w[b].qs[i] & 15) | (int)((qh >> i) & 1) << 4) - 16);
            o[b].qs[i + 16] = (int8_t)(((w[b].qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4) - 16);
        }
    }
}

static bool WIDEN = true;

bool nx_qprefill_widen(int on) {
    if (on >= 0) WIDEN = on != 0;
    return WIDEN;
}

typedef struct qjob {
    float *Y;
    const nx_weight *W;
    const float *b;
    const qx *A;
    tile_fn tile, tile8; /* the type's tiles, Q8_0's (with widen) */
    widen_fn widen;      /* NULL: no widening */
    int N;
    bool accumulate;
} qjob;

/* blocks of four weight rows kb0..kb1−1 against every input row */
static void qrows(void *p, int kb0, int kb1, int thread) {
    const qjob *j = p;
    (void)thread;
    int OC = j->W->rows, N = j->N, nb = j->W->cols / NX_QK;
    nx_block_q8_0 wide[j->widen ? 4 * nb : 1];
    for (int kb = kb0; kb < kb1; kb++) {
        int r0 = 4 * kb, R = OC - r0 < 4 ? OC - r0 : 4;
        size_t rb = j->W->row_bytes;
        const char *Wr = (const char *)j->W->data + (size_t)r0 * rb;
        tile_fn tile = j->tile;
        if (j->widen) {
            for (int r = 0; r < R; r++) j->widen(wide + r * nb, Wr + r * rb, nb);
            Wr = (const char *)wide, rb = nb * sizeof(nx_block_q8_0), tile = j->tile8;
        }
        for (int x0 = 0; x0 < N; x0 += 4) {
            int X = N - x0 < 4 ? N - x0 : 4;
            float o[4][4];
            tile(Wr, rb, j->A, x0, R, X, o);
            for (int x = 0; x < X; x++)
                for (int r = 0; r < R; r++)
                    put(&j->Y[(size_t)(x0 + x) * OC + r0 + r], o[x][r], j->b, r0 + r, j->accumulate);
        }
    }
}

void nx_qmatmul(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate, void *scratch) {
    NX_ASSERT(N >= 0 && W->cols % NX_QK == 0);
    const qkernels *k = kernels();
    tile_fn tile = k->tile[type_index(W->type)];
    int OC = W->rows, IC = W->cols;
    qx A = qx_view(scratch, N, IC);
    float s = W->act_scale;
    int mode = W->act;
#pragma omp parallel for schedule(static) if ((long)N * IC >= 65536)
    for (int n = 0; n < N; n++)
        k->quant(A.q + (size_t)n * IC, A.d + (size_t)n * A.nb, A.ds + (size_t)n * A.nb, X + (size_t)n * IC, IC, mode, s);
    int nblk = (OC + 3) / 4;
    widen_fn widen = NULL;
    if (N > CPU_MATVEC_ROWS && (size_t)IC * 34 / 8 <= 65536 && WIDEN) /* four rows on the stack */
        widen = W->type == NX_IQ4_NL ? widen_iq4_nl : W->type == NX_Q5_0 ? widen_q5_0 : NULL;
    qjob j = {Y, W, b, &A, tile, k->tile[0], widen, N, accumulate};
    bool par = (long)OC * IC * (N < 4 ? N : 4) >= PAR_MIN_MACS;
    if (par && N <= CPU_MATVEC_ROWS) { /* decode: the pool's threads */
        cpu_pool_for(nblk, omp_get_max_threads(), qrows, &j);
        return;
    }
#pragma omp parallel for schedule(static) if (par)
    for (int kb = 0; kb < nblk; kb++) qrows(&j, kb, kb + 1, 0);
}

void nx_ref_qmatmul(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate) {
    int OC = W->rows, IC = W->cols, nb = IC / NX_QK;
    void *buf = nx_xmalloc(nx_qact_bytes(1, IC));
    qx A = qx_view(buf, 1, IC);
    float *w = nx_xmalloc(sizeof(float) * (IC ? IC : 1)), *xq = nx_xmalloc(sizeof(float) * (IC ? IC : 1));
    for (int n = 0; n < N; n++) {
        quant_row_c(A.q, A.d, A.ds, X + (size_t)n * IC, IC, W->act, W->act_scale);
        for (int i = 0; i < IC; i++) xq[i] = A.d[i / NX_QK] * A.q[i];
        for (int o = 0; o < OC; o++) {
            nx_type(W->type)->to_f32(w, (const char *)W->data + (size_t)o * W->row_bytes, IC);
            double s = 0;
            for (int i = 0; i < IC; i++) s += (double)w[i] * xq[i];
            put(&Y[(size_t)n * OC + o], (float)s, b, o, accumulate);
        }
    }
    (void)nb;
    free(buf), free(w), free(xq);
}

/* ---- the backend's linear ---- */

/* Many rows: the int8 GEMM above, unless NEXUS_QPREFILL=dequant asks for
 * the widened f32 GEMM (the benchmark compares the two). */
bool cpu_qgemm(const nx_weight *W) {
    static int mode = -1;
    (void)W;
    if (mode < 0) {
        const char *e = getenv("NEXUS_QPREFILL");
        mode = !(e && !strcmp(e, "dequant"));
    }
    return mode;
}

void cpu_qlinear(nx_backend *be, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    int OC = W->rows, IC = W->cols;
    size_t have = cpu_work_bytes(be), row = nx_qact_bytes(1, IC) - 64;
    long chunk = have > 64 ? (long)((have - 64) / row) : 0;
    NX_ASSERTM(chunk >= 1, "CPU workspace too small for 8-bit activations: the weights were not planned "
                           "(nx_backend_plan)");
    if (chunk > 512) chunk = 512;
    void *scratch = cpu_work(be, (nx_qact_bytes((int)chunk, IC) + 3) / 4);
    for (int n0 = 0; n0 < N; n0 += (int)chunk) {
        int n = N - n0 < chunk ? N - n0 : (int)chunk;
        nx_qmatmul(out + (size_t)n0 * OC, W, in + (size_t)n0 * IC, b, n, false, scratch);
    }
}
