/* matvec.c — the decode kernels of cpu.h, for f32, bf16 and f16 weights.
 *
 * Batch 1: four weight rows per step share each 8-float load of x, so the
 * loop issues one x load and four W loads per four FMAs and the memory
 * system, not the core, is the limit. Rows are split statically over
 * threads in blocks of four, so each thread streams a contiguous slab of W.
 *
 * Small batches: for a block of four weight rows, every pair of input rows
 * is dotted against them (eight accumulators) while the rows sit in L1, so
 * W crosses the memory bus once per step whatever N is.
 *
 * One kernel family serves every weight type: the only difference is how
 * eight weights are loaded into an f32 register (LOAD8: a plain load, a
 * 16-bit shift for bf16, the F16C conversion for f16), so a bf16 row gives
 * the same sums as its f32 widening, and reads half the bytes. The AVX2
 * paths are compiled under __AVX2__ && __FMA__; the portable loops compute
 * the same sums in another order (float rounding differs at the 1e-6 level,
 * which the tests allow). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

/* Parallel only when the matrix is big enough to repay waking threads. */
#define PAR_MIN_ELEMS 32768L

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

#define LOAD8_f32(p) _mm256_loadu_ps(p)
#define LOAD8_bf16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#ifdef __F16C__
#define LOAD8_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#endif
#endif

#define ONE_f32(x) (x)
#define ONE_bf16(x) nx_bf16_to_f32(x)
#define ONE_f16(x) nx_f16_to_f32(x)

/* While a block of 4 rows is read, fetch the next block into cache at the
 * same pace: at step i (every 16 elements) the 4·16 elements at 4·i of the
 * next block. Streaming with the hardware prefetcher alone leaves ~10% of
 * the read bandwidth unused here. Prefetches past the end of W are
 * harmless (they never fault). */
#define PREFETCH_NEXT(W, IC, i)                                                    \
    do {                                                                           \
        const char *p_ = (const char *)((W) + 4 * (long)(IC) + 4 * (long)(i));     \
        for (unsigned k_ = 0; k_ < sizeof *(W); k_++) _mm_prefetch(p_ + 64 * k_, _MM_HINT_T0); \
    } while (0)

/* The kernels of one weight type T (suffix S): dot1, dot4, dot4x2, and the
 * batch-1 and small-batch loops over rows. */
#define AVX_KERNELS(S, T)                                                                          \
    static inline float dot1_##S(const T *w, const float *x, int IC) {                             \
        __m256 a = _mm256_setzero_ps();                                                            \
        int i = 0;                                                                                 \
        for (; i + 8 <= IC; i += 8) a = _mm256_fmadd_ps(LOAD8_##S(w + i), _mm256_loadu_ps(x + i), a); \
        float s = hsum8(a);                                                                        \
        for (; i < IC; i++) s += ONE_##S(w[i]) * x[i];                                             \
        return s;                                                                                  \
    }                                                                                              \
    /* out[r] = W[r]·x for r < 4 */                                                                \
    static inline void dot4_##S(float out[4], const T *W, const float *x, int IC) {                \
        const T *w0 = W, *w1 = W + IC, *w2 = W + 2 * (long)IC, *w3 = W + 3 * (long)IC;             \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),       \
               a3 = _mm256_setzero_ps();                                                           \
        int i = 0;                                                                                 \
        for (; i + 8 <= IC; i += 8) {                                                              \
            if ((i & 15) == 0) PREFETCH_NEXT(W, IC, i);                                            \
            __m256 xv = _mm256_loadu_ps(x + i);                                                    \
            a0 = _mm256_fmadd_ps(LOAD8_##S(w0 + i), xv, a0);                                       \
            a1 = _mm256_fmadd_ps(LOAD8_##S(w1 + i), xv, a1);                                       \
            a2 = _mm256_fmadd_ps(LOAD8_##S(w2 + i), xv, a2);                                       \
            a3 = _mm256_fmadd_ps(LOAD8_##S(w3 + i), xv, a3);                                       \
        }                                                                                          \
        float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);                      \
        for (; i < IC; i++) {                                                                      \
            s0 += ONE_##S(w0[i]) * x[i];                                                           \
            s1 += ONE_##S(w1[i]) * x[i];                                                           \
            s2 += ONE_##S(w2[i]) * x[i];                                                           \
            s3 += ONE_##S(w3[i]) * x[i];                                                           \
        }                                                                                          \
        out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;                                        \
    }                                                                                              \
    /* o[j][r] = W[r]·x_j for 4 rows and 2 inputs: 8 accumulators, 6 loads per 8 FMAs */           \
    static inline void dot4x2_##S(float o[2][4], const T *W, const float *x0, const float *x1, int IC) { \
        const T *w0 = W, *w1 = W + IC, *w2 = W + 2 * (long)IC, *w3 = W + 3 * (long)IC;             \
        __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps(),    \
               a03 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(),    \
               a12 = _mm256_setzero_ps(), a13 = _mm256_setzero_ps();                               \
        int i = 0;                                                                                 \
        for (; i + 8 <= IC; i += 8) {                                                              \
            if ((i & 15) == 0) PREFETCH_NEXT(W, IC, i);                                            \
            __m256 u = _mm256_loadu_ps(x0 + i), v = _mm256_loadu_ps(x1 + i);                       \
            __m256 c0 = LOAD8_##S(w0 + i), c1 = LOAD8_##S(w1 + i);                                 \
            a00 = _mm256_fmadd_ps(c0, u, a00);                                                     \
            a10 = _mm256_fmadd_ps(c0, v, a10);                                                     \
            a01 = _mm256_fmadd_ps(c1, u, a01);                                                     \
            a11 = _mm256_fmadd_ps(c1, v, a11);                                                     \
            __m256 c2 = LOAD8_##S(w2 + i), c3 = LOAD8_##S(w3 + i);                                 \
            a02 = _mm256_fmadd_ps(c2, u, a02);                                                     \
            a12 = _mm256_fmadd_ps(c2, v, a12);                                                     \
            a03 = _mm256_fmadd_ps(c3, u, a03);                                                     \
            a13 = _mm256_fmadd_ps(c3, v, a13);                                                     \
        }                                                                                          \
        o[0][0] = hsum8(a00), o[0][1] = hsum8(a01), o[0][2] = hsum8(a02), o[0][3] = hsum8(a03);    \
        o[1][0] = hsum8(a10), o[1][1] = hsum8(a11), o[1][2] = hsum8(a12), o[1][3] = hsum8(a13);    \
        for (; i < IC; i++)                                                                        \
            for (int r = 0; r < 4; r++) {                                                          \
                o[0][r] += ONE_##S(W[(long)r * IC + i]) * x0[i];                                   \
                o[1][r] += ONE_##S(W[(long)r * IC + i]) * x1[i];                                   \
            }                                                                                      \
    }

#define PORTABLE_KERNELS(S, T)                                                                     \
    static inline float dot1_##S(const T *w, const float *x, int IC) {                             \
        float s = 0;                                                                               \
        for (int i = 0; i < IC; i++) s += ONE_##S(w[i]) * x[i];                                    \
        return s;                                                                                  \
    }                                                                                              \
    static inline void dot4_##S(float out[4], const T *W, const float *x, int IC) {                \
        for (int r = 0; r < 4; r++) out[r] = dot1_##S(W + (long)r * IC, x, IC);                    \
    }                                                                                              \
    static inline void dot4x2_##S(float o[2][4], const T *W, const float *x0, const float *x1, int IC) { \
        dot4_##S(o[0], W, x0, IC);                                                                 \
        dot4_##S(o[1], W, x1, IC);                                                                 \
    }

static inline void put(float *y, float v, const float *b, int o, bool acc) {
    v += b ? b[o] : 0.0f;
    *y = acc ? *y + v : v;
}

/* batch 1: blocks k0..k1−1 of four rows (a range of the decode pool) */
typedef struct mvjob {
    float *Y;
    const void *W;
    const float *X, *b;
    int IC;
    bool acc;
} mvjob;

#define LOOPS(S, T)                                                                                \
    static void mv1_##S(void *p, int k0, int k1, int thread) {                                     \
        const mvjob *j = p;                                                                        \
        const T *W = j->W;                                                                         \
        int IC = j->IC;                                                                            \
        (void)thread;                                                                              \
        for (int k = k0; k < k1; k++) {                                                            \
            float s[4];                                                                            \
            dot4_##S(s, W + (long)4 * k * IC, j->X, IC);                                           \
            for (int r = 0; r < 4; r++) put(&j->Y[4 * k + r], s[r], j->b, 4 * k + r, j->acc);      \
        }                                                                                          \
    }                                                                                              \
    static void matvec_##S(float *Y, const T *W, const float *X, const float *b, int N, int OC, int IC, \
                           bool acc) {                                                             \
        int nblk = OC / 4;                                                                         \
        if (N == 1) {                                                                              \
            mvjob j = {Y, W, X, b, IC, acc};                                                       \
            if ((long)OC * IC >= PAR_MIN_ELEMS) cpu_pool_for(nblk, omp_get_max_threads(), mv1_##S, &j); \
            else mv1_##S(&j, 0, nblk, 0);                                                          \
            for (int o = 4 * nblk; o < OC; o++) put(&Y[o], dot1_##S(W + (long)o * IC, X, IC), b, o, acc); \
            return;                                                                                \
        }                                                                                          \
        /* blocks of 4 weight rows (in L1 while every input pair passes) */                        \
        _Pragma("omp parallel for schedule(static) if ((long)OC * IC * N >= PAR_MIN_ELEMS)")       \
        for (int k = 0; k < nblk; k++) {                                                           \
            const T *Wk = W + (long)4 * k * IC;                                                    \
            int n = 0;                                                                             \
            for (; n + 2 <= N; n += 2) {                                                           \
                float s[2][4];                                                                     \
                dot4x2_##S(s, Wk, X + (long)n * IC, X + (long)(n + 1) * IC, IC);                   \
                for (int j = 0; j < 2; j++)                                                        \
                    for (int r = 0; r < 4; r++)                                                    \
                        put(&Y[(long)(n + j) * OC + 4 * k + r], s[j][r], b, 4 * k + r, acc);       \
            }                                                                                      \
            if (n < N) {                                                                           \
                float s[4];                                                                        \
                dot4_##S(s, Wk, X + (long)n * IC, IC);                                             \
                for (int r = 0; r < 4; r++) put(&Y[(long)n * OC + 4 * k + r], s[r], b, 4 * k + r, acc); \
            }                                                                                      \
        }                                                                                          \
        for (int o = 4 * nblk; o < OC; o++)                                                        \
            for (int n = 0; n < N; n++)                                                            \
                put(&Y[(long)n * OC + o], dot1_##S(W + (long)o * IC, X + (long)n * IC, IC), b, o, acc); \
    }

#if defined(__AVX2__) && defined(__FMA__)
AVX_KERNELS(f32, float)
AVX_KERNELS(bf16, uint16_t)
#ifdef __F16C__
AVX_KERNELS(f16, uint16_t)
#else
PORTABLE_KERNELS(f16, uint16_t)
#endif
#else
PORTABLE_KERNELS(f32, float)
PORTABLE_KERNELS(bf16, uint16_t)
PORTABLE_KERNELS(f16, uint16_t)
#endif
LOOPS(f32, float)
LOOPS(bf16, uint16_t)
LOOPS(f16, uint16_t)

float nx_dot(const float *x, const float *y, int n) { return dot1_f32(x, y, n); }

void nx_matvec(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate) {
    NX_ASSERT(N >= 0 && W->rows >= 0 && W->cols >= 0);
    switch (W->type) {
    case NX_F32: matvec_f32(Y, W->data, X, b, N, W->rows, W->cols, accumulate); break;
    case NX_BF16: matvec_bf16(Y, W->data, X, b, N, W->rows, W->cols, accumulate); break;
    case NX_F16: matvec_f16(Y, W->data, X, b, N, W->rows, W->cols, accumulate); break;
    default: {
        NX_ASSERTM(nx_qtype(W->type), "nx_matvec: weight type without a matrix-vector kernel");
        void *scratch = nx_xmalloc(nx_qact_bytes(N, W->cols));
        nx_qmatmul(Y, W, X, b, N, accumulate, scratch);
        free(scratch);
    }
    }
}

void nx_ref_matvec(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate) {
    if (nx_qtype(W->type)) {
        nx_ref_qmatmul(Y, W, X, b, N, accumulate);
        return;
    }
    int OC = W->rows, IC = W->cols;
    float *row = nx_xmalloc(sizeof(float) * (IC ? IC : 1));
    for (int o = 0; o < OC; o++) {
        nx_type(W->type)->to_f32(row, (const char *)W->data + (size_t)o * W->row_bytes, IC);
        for (int n = 0; n < N; n++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)row[i] * X[(long)n * IC + i];
            float *y = &Y[(long)n * OC + o];
            *y = (float)(accumulate ? *y + s : s);
        }
    }
    free(row);
}
