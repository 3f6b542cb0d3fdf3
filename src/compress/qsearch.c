/* qsearch.c — block quantization that minimises an importance-weighted
 * squared error instead of rounding to nearest (quantize.h).
 *
 * For a block x with weights w (the importance of each input column,
 * E[x_c²] from calibration), a symmetric type (Q8_0, Q4_0) stores one
 * scale d and integers q in [lo, hi]: for each candidate divisor t on a
 * grid around the block's extreme, q = clamp(round(x·t/ext)), then the
 * scale that is optimal for those q by weighted least squares,
 * d = Σ w·x·q / Σ w·q², is rounded to f16 and the integers re-chosen
 * against it; the candidate with the smallest Σ w·(x − d·q)² wins. Q4_K
 * does the same per sub-block for an affine map x ≈ a·q − m (q in 0..15,
 * m ≥ 0), solving the 2×2 weighted least squares for (a, m), then rounds
 * the eight scales and mins to 6 bits against the super-block's largest,
 * and re-chooses every q against the stored values. The idea is
 * llama.cpp's (make_qx_quants, make_qkx2_quants); the code is ours. */
#include <math.h>
#include <string.h>

#include "nexus/blocks.h"
#include "nexus/quantize.h"

static float f16r(float x) { return nx_f16_to_f32(nx_f32_to_f16(x)); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Weighted error of x ≈ d·q with q = clamp(round(x/d)) in [lo, hi]; fills q. */
static double sym_err(const float *x, const float *w, int n, float d, int lo, int hi, int8_t *q) {
    float id = d != 0 ? 1 / d : 0;
    double e = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (int8_t)clampi((int)nearbyintf(x[i] * id), lo, hi);
        double r = x[i] - d * q[i];
        e += w[i] * r * r;
    }
    return e;
}

/* Best f16 scale for one symmetric block; q gets the integers. */
static float sym_block(const float *x, const float *w, int n, int lo, int hi, int8_t *q) {
    float ext = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(ext)) ext = x[i];
    if (ext == 0) {
        memset(q, 0, n);
        return 0;
    }
    int8_t tq[256];
    float best_d = 0;
    double best = INFINITY;
    /* the extreme onto either end of the range, a little inside or beyond it */
    for (int side = 0; side < 2; side++)
        for (int k = -10; k <= 10; k++) {
            float t = (side ? hi : lo) + 0.1f * k;
            if (fabsf(t) < 1) continue;
            sym_err(x, w, n, ext / t, lo, hi, tq);
            double sxq = 0, sqq = 0;
            for (int i = 0; i < n; i++) sxq += (double)w[i] * x[i] * tq[i], sqq += (double)w[i] * tq[i] * tq[i];
            if (sqq <= 0) continue;
            float d = f16r((float)(sxq / sqq));
            double e = sym_err(x, w, n, d, lo, hi, tq);
            if (e < best) best = e, best_d = d;
        }
    sym_err(x, w, n, best_d, lo, hi, q);
    return best_d;
}

/* IQ4_NL: the nearest of the 16 levels (ascending) to v. */
static int nl_index(float v) {
    int i = 0;
    while (i < 15 && v > 0.5f * (nx_iq4nl_values[i] + nx_iq4nl_values[i + 1])) i++;
    return i;
}

static double nl_err(const float *x, const float *w, int n, float d, uint8_t *q) {
    float id = d != 0 ? 1 / d : 0;
    double e = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (uint8_t)nl_index(x[i] * id);
        double r = x[i] - d * nx_iq4nl_values[q[i]];
        e += w[i] * r * r;
    }
    return e;
}

/* Best f16 scale for an IQ4_NL block (the same search over the levels). */
static float nl_block(const float *x, const float *w, int n, uint8_t *q) {
    float ext = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(ext)) ext = x[i];
    if (ext == 0) {
        memset(q, 8, n); /* level 1: the smallest magnitude; times d = 0 */
        return 0;
    }
    uint8_t tq[256];
    float best_d = 0;
    double best = INFINITY;
    for (int side = 0; side < 2; side++)
        for (int k = -12; k <= 12; k++) {
            float t = (side ? 113.0f : -127.0f) + 1.5f * k;
            nl_err(x, w, n, ext / t, tq);
            double sxq = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                double v = nx_iq4nl_values[tq[i]];
                sxq += w[i] * x[i] * v, sqq += w[i] * v * v;
            }
            if (sqq <= 0) continue;
            float d = f16r((float)(sxq / sqq));
            double e = nl_err(x, w, n, d, tq);
            if (e < best) best = e, best_d = d;
        }
    nl_err(x, w, n, best_d, q);
    return best_d;
}

/* Affine sub-block: x ≈ a·q − m, q in 0..15, a > 0, m >= 0. */
static void affine_block(const float *x, const float *w, int n, float *a_out, float *m_out) {
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    if (hi - lo <= 0) {
        *a_out = 0, *m_out = -lo;
        return;
    }
    double best = INFINITY;
    float ba = (hi - lo) / 15, bm = -lo;
    for (int k = -12; k <= 12; k++) {
        float is = (15 + 0.1f * k) / (hi - lo);
        double sw = 0, sq = 0, sx = 0, sqq = 0, sxq = 0;
        int q[256];
        for (int i = 0; i < n; i++) {
            q[i] = clampi((int)nearbyintf((x[i] - lo) * is), 0, 15);
            sw += w[i], sq += w[i] * q[i], sx += w[i] * x[i], sqq += (double)w[i] * q[i] * q[i],
                sxq += (double)w[i] * x[i] * q[i];
        }
        double det = sw * sqq - sq * sq;
        if (det <= 0) continue;
        double a = (sw * sxq - sq * sx) / det, b = (sx - a * sq) / sw; /* x ≈ a·q + b */
        if (b > 0) b = 0, a = sqq > 0 ? sxq / sqq : 0;
        if (a <= 0) continue;
        double e = 0;
        for (int i = 0; i < n; i++) {
            double r = x[i] - (a * clampi((int)nearbyint((x[i] - b) / a), 0, 15) + b);
            e += w[i] * r * r;
        }
        if (e < best) best = e, ba = (float)a, bm = (float)-b;
    }
    *a_out = ba, *m_out = bm;
}

static void q8_0_weighted(void *dst, const float *x, int64_t n, int cols, const float *imp) {
    nx_block_q8_0 *b = dst;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *w = imp + (i * NX_QK) % cols;
        int8_t q[NX_QK];
        float d = sym_block(x + i * NX_QK, w, NX_QK, -127, 127, q);
        b[i].d = nx_f32_to_f16(d);
        memcpy(b[i].qs, q, NX_QK);
    }
}

static void q4_0_weighted(void *dst, const float *x, int64_t n, int cols, const float *imp) {
    nx_block_q4_0 *b = dst;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *w = imp + (i * NX_QK) % cols;
        int8_t q[NX_QK];
        float d = sym_block(x + i * NX_QK, w, NX_QK, -8, 7, q);
        b[i].d = nx_f32_to_f16(d);
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)((q[j] + 8) | (q[j + 16] + 8) << 4);
    }
}

static void q5_0_weighted(void *dst, const float *x, int64_t n, int cols, const float *imp) {
    nx_block_q5_0 *b = dst;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *w = imp + (i * NX_QK) % cols;
        int8_t q[NX_QK];
        uint8_t u[NX_QK];
        float d = sym_block(x + i * NX_QK, w, NX_QK, -16, 15, q);
        b[i].d = nx_f32_to_f16(d);
        for (int j = 0; j < NX_QK; j++) u[j] = (uint8_t)(q[j] + 16);
        nx_q5_0_pack(&b[i], u);
    }
}

static void iq4_nl_weighted(void *dst, const float *x, int64_t n, int cols, const float *imp) {
    nx_block_iq4_nl *b = dst;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n / NX_QK; i++) {
        const float *w = imp + (i * NX_QK) % cols;
        uint8_t q[NX_QK];
        float d = nl_block(x + i * NX_QK, w, NX_QK, q);
        b[i].d = nx_f32_to_f16(d);
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
    }
}

static void q4_k_weighted(void *dst, const float *x, int64_t n, int cols, const float *imp) {
    nx_block_q4_k *b = dst;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n / NX_QK_K; i++) {
        const float *v = x + i * NX_QK_K, *w = imp + (i * NX_QK_K) % cols;
        float a[8], m[8], amax = 0, mmax = 0;
        for (int j = 0; j < 8; j++) {
            affine_block(v + 32 * j, w + 32 * j, 32, &a[j], &m[j]);
            amax = fmaxf(amax, a[j]), mmax = fmaxf(mmax, m[j]);
        }
        float D = f16r(amax / 63), M = f16r(mmax / 63);
        uint8_t sc[8], mq[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = D > 0 ? (uint8_t)clampi((int)nearbyintf(a[j] / D), 0, 63) : 0;
            mq[j] = M > 0 ? (uint8_t)clampi((int)nearbyintf(m[j] / M), 0, 63) : 0;
        }
        b[i].d = nx_f32_to_f16(D), b[i].dmin = nx_f32_to_f16(M);
        nx_q4k_pack_scales(b[i].scales, sc, mq);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int j = 0; j < 8; j++) {
            float s = D * sc[j], mn = M * mq[j], is = s > 0 ? 1 / s : 0;
            for (int l = 0; l < 32; l++) {
                int q = clampi((int)nearbyintf((v[32 * j + l] + mn) * is), 0, 15);
                b[i].qs[32 * (j / 2) + l] |= (uint8_t)(q << (4 * (j & 1)));
            }
        }
    }
}

void nx_quantize_weighted(nx_dtype t, void *dst, const float *src, int64_t n, int cols, const float *imp) {
    NX_ASSERT(cols > 0 && cols % nx_type(t)->block == 0 && n % cols == 0);
    if (!imp) {
        nx_type(t)->from_f32(dst, src, n);
        return;
    }
    switch (t) {
    case NX_Q8_0: q8_0_weighted(dst, src, n, cols, imp); break;
    case NX_Q4_0: q4_0_weighted(dst, src, n, cols, imp); break;
    case NX_Q4_K: q4_k_weighted(dst, src, n, cols, imp); break;
    case NX_IQ4_NL: iq4_nl_weighted(dst, src, n, cols, imp); break;
    case NX_Q5_0: q5_0_weighted(dst, src, n, cols, imp); break;
    default: nx_type(t)->from_f32(dst, src, n); break;
    }
}
