/* ops_ref.c — naive references for the kernels of ops.c: the plainest loops
 * that say the math, in double, without BLAS or threads. Only tests and
 * benchmarks call these. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/core.h"
#include "nexus/ops.h"

void nx_ref_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C,
                            float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)in[(long)n * C + c] * in[(long)n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        rstd[n] = (float)r;
        for (int c = 0; c < C; c++) out[(long)n * C + c] = (float)(w[c] * in[(long)n * C + c] * r);
    }
}

void nx_ref_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in,
                             const float *w, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * C, *dy = dout + (long)n * C;
        double r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * x[c];
        for (int c = 0; c < C; c++) {
            din[(long)n * C + c] += (float)(r * w[c] * dy[c] - dot * r * r * r / C * x[c]);
            dw[c] += (float)(dy[c] * x[c] * r);
        }
    }
}

void nx_ref_linear_forward(float *out, const float *in, const float *W, const float *b, int N,
                           int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < IC; i++) s += (double)in[(long)n * IC + i] * W[(long)o * IC + i];
            out[(long)n * OC + o] = (float)s;
        }
}

void nx_ref_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                            const float *W, int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IC && din; i++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(long)n * OC + o] * W[(long)o * IC + i];
            din[(long)n * IC + i] += (float)s;
        }
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)dout[(long)n * OC + o] * in[(long)n * IC + i];
            dW[(long)o * IC + i] += (float)s;
        }
        if (db) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(long)n * OC + o];
            db[o] += (float)s;
        }
    }
}

void nx_ref_rope_forward(float *x, const int32_t *pos, int N, int H, int HS, double theta) {
    int half = HS / 2;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *v = x + ((long)n * H + h) * HS;
            for (int i = 0; i < half; i++) {
                double a = pos[n] / pow(theta, 2.0 * i / HS);
                double x1 = v[i], x2 = v[i + half];
                v[i] = (float)(x1 * cos(a) - x2 * sin(a));
                v[i + half] = (float)(x2 * cos(a) + x1 * sin(a));
            }
        }
}

void nx_ref_attention_forward(float *out, const float *q, const float *k, const float *v, int B,
                              int T, int NH, int KVH, int HS) {
    int G = NH / KVH;
    double *p = nx_xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qv = q + (((long)b * T + t) * NH + h) * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *kv = k + (((long)b * T + j) * KVH + h / G) * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)qv[d] * kv[d];
                    p[j] = s / sqrt((double)HS);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                float *o = out + (((long)b * T + t) * NH + h) * HS;
                for (int d = 0; d < HS; d++) {
                    double s = 0;
                    for (int j = 0; j <= t; j++) s += p[j] / sum * v[(((long)b * T + j) * KVH + h / G) * HS + d];
                    o[d] = (float)s;
                }
            }
    free(p);
}

void nx_ref_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, int B, int T, int NH, int KVH,
                               int HS) {
    int G = NH / KVH;
    double sc = 1.0 / sqrt((double)HS);
    long nq = (long)B * T * NH * HS, nk = (long)B * T * KVH * HS;
    memset(dq, 0, nq * sizeof(float));
    memset(dk, 0, nk * sizeof(float));
    memset(dv, 0, nk * sizeof(float));
    double *p = nx_xmalloc(sizeof(double) * T), *dp = nx_xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qv = q + (((long)b * T + t) * NH + h) * HS;
                const float *go = dout + (((long)b * T + t) * NH + h) * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *kv = k + (((long)b * T + j) * KVH + h / G) * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)qv[d] * kv[d];
                    p[j] = s * sc;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                double dot = 0;
                for (int j = 0; j <= t; j++) {
                    p[j] /= sum;
                    const float *vv = v + (((long)b * T + j) * KVH + h / G) * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)go[d] * vv[d];
                    dp[j] = s;
                    dot += s * p[j];
                    float *dvv = dv + (((long)b * T + j) * KVH + h / G) * HS;
                    for (int d = 0; d < HS; d++) dvv[d] += (float)(p[j] * go[d]);
                }
                for (int j = 0; j <= t; j++) {
                    double ds = p[j] * (dp[j] - dot) * sc;
                    const float *kv = k + (((long)b * T + j) * KVH + h / G) * HS;
                    float *dkv = dk + (((long)b * T + j) * KVH + h / G) * HS;
                    float *dqv = dq + (((long)b * T + t) * NH + h) * HS;
                    for (int d = 0; d < HS; d++) {
                        dqv[d] += (float)(ds * kv[d]);
                        dkv[d] += (float)(ds * qv[d]);
                    }
                }
            }
    free(p);
    free(dp);
}

void nx_ref_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}
