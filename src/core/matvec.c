/* matvec.c — the decode kernels of matvec.h.
 *
 * Batch 1 (nx_matvec): four weight rows per step share each 8-float load of
 * x, so the loop issues one x load and four W loads per four FMAs and the
 * memory system, not the core, is the limit. Rows are split statically over
 * threads in blocks of four, so each thread streams a contiguous slab of W.
 *
 * Small batches (nx_matvec_batch): for a block of four weight rows, every
 * pair of input rows is dotted against them (eight accumulators) while the
 * rows sit in L1, so W crosses the memory bus once per step whatever N is.
 *
 * The AVX2 paths are compiled only under __AVX2__ && __FMA__; the portable
 * loops below them compute the same sums in a different order (float
 * rounding differs at the 1e-6 level, which the tests allow). */
#include "nexus/matvec.h"

#include "nexus/core.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* While a block of 4 rows (4·IC floats, contiguous) is read, fetch the
 * next block into cache at the same pace: at step i (every 16 floats) the
 * 64 floats at 4·i of the next block. Streaming with the hardware
 * prefetcher alone leaves ~10% of the read bandwidth unused here. Prefetches
 * past the end of W are harmless (they never fault). */
static inline void prefetch_next(const float *W, int IC, int i) {
    const char *p = (const char *)(W + 4 * (long)IC + 4 * (long)i);
    _mm_prefetch(p, _MM_HINT_T0);
    _mm_prefetch(p + 64, _MM_HINT_T0);
    _mm_prefetch(p + 128, _MM_HINT_T0);
    _mm_prefetch(p + 192, _MM_HINT_T0);
}

/* out[r] = W[r]·x for r < 4 */
static inline void dot4(float out[4], const float *W, const float *x, int IC) {
    const float *w0 = W, *w1 = W + IC, *w2 = W + 2 * (long)IC, *w3 = W + 3 * (long)IC;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= IC; i += 8) {
        if ((i & 15) == 0) prefetch_next(W, IC, i);
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
    }
    float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
    for (; i < IC; i++) {
        s0 += w0[i] * x[i];
        s1 += w1[i] * x[i];
        s2 += w2[i] * x[i];
        s3 += w3[i] * x[i];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

static inline float dot1(const float *w, const float *x, int IC) {
    __m256 a = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= IC; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
    float s = hsum8(a);
    for (; i < IC; i++) s += w[i] * x[i];
    return s;
}

/* o[j][r] = W[r]·x_j for 4 rows and 2 inputs: 8 accumulators, 6 loads per 8 FMAs */
static inline void dot4x2(float o[2][4], const float *W, const float *x0, const float *x1, int IC) {
    const float *w0 = W, *w1 = W + IC, *w2 = W + 2 * (long)IC, *w3 = W + 3 * (long)IC;
    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps(),
           a03 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(),
           a12 = _mm256_setzero_ps(), a13 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= IC; i += 8) {
        if ((i & 15) == 0) prefetch_next(W, IC, i);
        __m256 u = _mm256_loadu_ps(x0 + i), v = _mm256_loadu_ps(x1 + i);
        __m256 c0 = _mm256_loadu_ps(w0 + i), c1 = _mm256_loadu_ps(w1 + i);
        a00 = _mm256_fmadd_ps(c0, u, a00);
        a10 = _mm256_fmadd_ps(c0, v, a10);
        a01 = _mm256_fmadd_ps(c1, u, a01);
        a11 = _mm256_fmadd_ps(c1, v, a11);
        __m256 c2 = _mm256_loadu_ps(w2 + i), c3 = _mm256_loadu_ps(w3 + i);
        a02 = _mm256_fmadd_ps(c2, u, a02);
        a12 = _mm256_fmadd_ps(c2, v, a12);
        a03 = _mm256_fmadd_ps(c3, u, a03);
        a13 = _mm256_fmadd_ps(c3, v, a13);
    }
    o[0][0] = hsum8(a00), o[0][1] = hsum8(a01), o[0][2] = hsum8(a02), o[0][3] = hsum8(a03);
    o[1][0] = hsum8(a10), o[1][1] = hsum8(a11), o[1][2] = hsum8(a12), o[1][3] = hsum8(a13);
    for (; i < IC; i++)
        for (int r = 0; r < 4; r++) {
            o[0][r] += W[(long)r * IC + i] * x0[i];
            o[1][r] += W[(long)r * IC + i] * x1[i];
        }
}

#else
static inline void dot4(float out[4], const float *W, const float *x, int IC) {
    float s[4] = {0, 0, 0, 0};
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < IC; i++) s[r] += W[(long)r * IC + i] * x[i];
    for (int r = 0; r < 4; r++) out[r] = s[r];
}
static inline float dot1(const float *w, const float *x, int IC) {
    float s = 0;
    for (int i = 0; i < IC; i++) s += w[i] * x[i];
    return s;
}
static inline void dot4x2(float o[2][4], const float *W, const float *x0, const float *x1, int IC) {
    dot4(o[0], W, x0, IC);
    dot4(o[1], W, x1, IC);
}
#endif

float nx_dot(const float *x, const float *y, int n) { return dot1(x, y, n); }

/* Parallel only when the matrix is big enough to repay waking threads. */
#define PAR_MIN_ELEMS 32768L

void nx_matvec(float *y, const float *W, const float *x, const float *b, int OC, int IC,
               bool accumulate) {
    NX_ASSERT(OC >= 0 && IC >= 0);
    int nblk = OC / 4;
#pragma omp parallel for schedule(static) if ((long)OC * IC >= PAR_MIN_ELEMS)
    for (int k = 0; k < nblk; k++) {
        float s[4];
        dot4(s, W + (long)4 * k * IC, x, IC);
        for (int r = 0; r < 4; r++) {
            int o = 4 * k + r;
            float v = s[r] + (b ? b[o] : 0.0f);
            y[o] = accumulate ? y[o] + v : v;
        }
    }
    for (int o = 4 * nblk; o < OC; o++) {
        float v = dot1(W + (long)o * IC, x, IC) + (b ? b[o] : 0.0f);
        y[o] = accumulate ? y[o] + v : v;
    }
}

static inline void put(float *y, float v, const float *b, int o, bool acc) {
    v += b ? b[o] : 0.0f;
    *y = acc ? *y + v : v;
}

void nx_matvec_batch(float *Y, const float *W, const float *X, const float *b, int N, int OC,
                     int IC, bool accumulate) {
    NX_ASSERT(N >= 0 && OC >= 0 && IC >= 0);
    if (N == 1) {
        nx_matvec(Y, W, X, b, OC, IC, accumulate);
        return;
    }
    /* blocks of 4 weight rows (in L1 while every input pair passes) */
    int nblk = OC / 4;
#pragma omp parallel for schedule(static) if ((long)OC * IC * N >= PAR_MIN_ELEMS)
    for (int k = 0; k < nblk; k++) {
        const float *Wk = W + (long)4 * k * IC;
        int n = 0;
        for (; n + 2 <= N; n += 2) {
            float s[2][4];
            dot4x2(s, Wk, X + (long)n * IC, X + (long)(n + 1) * IC, IC);
            for (int j = 0; j < 2; j++)
                for (int r = 0; r < 4; r++) put(&Y[(long)(n + j) * OC + 4 * k + r], s[j][r], b, 4 * k + r, accumulate);
        }
        if (n < N) {
            float s[4];
            dot4(s, Wk, X + (long)n * IC, IC);
            for (int r = 0; r < 4; r++) put(&Y[(long)n * OC + 4 * k + r], s[r], b, 4 * k + r, accumulate);
        }
    }
    for (int o = 4 * nblk; o < OC; o++)
        for (int n = 0; n < N; n++)
            put(&Y[(long)n * OC + o], dot1(W + (long)o * IC, X + (long)n * IC, IC), b, o, accumulate);
}

void nx_ref_matvec(float *Y, const float *W, const float *X, const float *b, int N, int OC, int IC,
                   bool accumulate) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)W[(long)o * IC + i] * X[(long)n * IC + i];
            float *y = &Y[(long)n * OC + o];
            *y = (float)(accumulate ? *y + s : s);
        }
}
