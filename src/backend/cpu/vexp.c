/* vexp.c — exp over a row, eight lanes at a time. The losses of a
 * distillation step take one exponential per vocabulary entry per row per
 * model (33 M of them at 16 × 256 × 8192); glibc's scalar expf made them a
 * sixth of the step. SwiGLU takes one per hidden unit per token, a tenth
 * of a quantized model's prefill with expf.
 *
 * Method (Cephes expf): n = round(x·log2 e), r = x − n·ln2 in two parts
 * (hi + lo, so r is exact to float), e^r by a degree-6 polynomial on
 * [−ln2/2, ln2/2], then scale by 2^n through the exponent bits. */
#include <math.h>

#include "nexus/cpu.h"

#ifdef __AVX2__
#include <immintrin.h>

static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
}
#endif

double nx_exp_sum(float *y, const float *x, float shift, float scale, long n) {
    long i = 0;
    double sum = 0;
#ifdef __AVX2__
    __m256 vs = _mm256_set1_ps(shift), vk = _mm256_set1_ps(scale);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs), vk));
        _mm256_storeu_ps(y + i, v);
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(acc0, acc1));
    sum = t[0] + t[1] + t[2] + t[3];
#endif
    for (; i < n; i++) {
        float a = (x[i] - shift) * scale;
        y[i] = a < -87.3f ? 0.0f : expf(a);
        sum += y[i];
    }
    return sum;
}

double nx_ref_exp_sum(float *y, const float *x, float shift, float scale, long n) {
    double sum = 0;
    for (long i = 0; i < n; i++) {
        float a = (x[i] - shift) * scale;
        y[i] = a < -87.3f ? 0.0f : expf(a);
        sum += y[i];
    }
    return sum;
}

/* g / (1 + e^−g) · u: e^−g of a large negative g saturates at e^88 (h → 0),
 * of a large positive one underflows to 0 (h = g·u), as with expf */
void nx_silu_mul(float *h, const float *g, const float *u, long n) {
    long i = 0;
#ifdef __AVX2__
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_xor_ps(gv, sign));
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void nx_ref_silu_mul(float *h, const float *g, const float *u, long n) {
    for (long i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
