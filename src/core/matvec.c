/* matvec.c — the decode kernels of matvec.h.
 *
 * Batch 1 (nx_matvec): four weight rows per step share each 8-float load of
 * x, so the loop issues one x load and four W loads per four FMAs and the
 * memory system, not the core, is the limit. Rows are split statically over
 * threads in blocks of four, so each thread streams a contiguous slab of W.
 *
 * Small batches (nx_matvec_batch): for a block of two weight rows, every
 * input row is dotted against both while the rows sit in L1, so W crosses
 * the memory bus once per step whatever N is.
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

/* out[r] = W[r]·x for r < 4 */
static inline void dot4(float out[4], const float *W, const float *x, int IC) {
    const float *w0 = W, *w1 = W + IC, *w2 = W + 2 * (long)IC, *w3 = W + 3 * (long)IC;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= IC; i += 8) {
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

/* out[0] = w0·x, out[1] = w1·x */
static inline void dot2(float out[2], const float *w0, const float *w1, const float *x, int IC) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= IC; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
    }
    float s0 = hsum8(a0), s1 = hsum8(a1);
    for (; i < IC; i++) {
        s0 += w0[i] * x[i];
        s1 += w1[i] * x[i];
    }
    out[0] = s0, out[1] = s1;
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
static inline void dot2(float out[2], const float *w0, const float *w1, const float *x, int IC) {
    out[0] = dot1(w0, x, IC);
    out[1] = dot1(w1, x, IC);
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

void nx_matvec_batch(float *Y, const float *W, const float *X, const float *b, int N, int OC,
                     int IC, bool accumulate) {
    NX_ASSERT(N >= 0 && OC >= 0 && IC >= 0);
    if (N == 1) {
        nx_matvec(Y, W, X, b, OC, IC, accumulate);
        return;
    }
    int npair = (OC + 1) / 2;
#pragma omp parallel for schedule(static) if ((long)OC * IC * N >= PAR_MIN_ELEMS)
    for (int k = 0; k < npair; k++) {
        int o = 2 * k;
        bool two = o + 1 < OC;
        const float *w0 = W + (long)o * IC, *w1 = two ? w0 + IC : w0;
        for (int n = 0; n < N; n++) {
            float s[2];
            dot2(s, w0, w1, X + (long)n * IC, IC);
            float *yr = Y + (long)n * OC;
            for (int r = 0; r < (two ? 2 : 1); r++) {
                float v = s[r] + (b ? b[o + r] : 0.0f);
                yr[o + r] = accumulate ? yr[o + r] + v : v;
            }
        }
    }
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
