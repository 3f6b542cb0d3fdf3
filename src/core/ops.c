/* ops.c — fast forward/backward kernels of the transformer (see ops.h for
 * the contracts). Matrix work goes through nx_gemm; the rest is OpenMP over
 * rows. Each kernel quotes the PyTorch/HF line it mirrors; ops_ref.c holds
 * the naive versions the tests compare against. */
#include "nexus/ops.h"

#include <math.h>
#include <string.h>

#include "nexus/core.h"
#include "nexus/gemm.h"

void nx_embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) memcpy(out + (long)n * C, wte + (long)ids[n] * C, C * sizeof(float));
}

void nx_embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C) {
    /* Serial over rows keeps repeated ids race-free; parallel over channels. */
    for (int n = 0; n < N; n++) {
        float *d = dwte + (long)ids[n] * C;
        const float *g = dout + (long)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* variance = hidden.pow(2).mean(-1, keepdim=True)
 * hidden = hidden * torch.rsqrt(variance + eps); return weight * hidden */
void nx_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C,
                        float eps) {
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * C;
        float *o = out + (long)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = w[c] * (x[c] * r);
    }
}

/* y = w ⊙ x r, r = (mean x² + eps)^-½:
 * dx = r (w⊙dy) − (r³/C) x Σ(w⊙dy⊙x);  dw += Σ_n dy ⊙ x r */
void nx_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in,
                         const float *w, const float *rstd, int N, int C) {
#pragma omp parallel
    {
        /* per-thread dw partials, reduced at the end, keep results
         * independent of scheduling for a fixed thread count */
        float dwl[C];
        memset(dwl, 0, sizeof dwl);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = in + (long)n * C, *dy = dout + (long)n * C;
            float *dx = din + (long)n * C;
            float r = rstd[n];
            double dot = 0;
            for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * x[c];
            float k = (float)(dot * r * r * r / C);
            for (int c = 0; c < C; c++) {
                dx[c] += r * w[c] * dy[c] - k * x[c];
                dwl[c] += dy[c] * x[c] * r;
            }
        }
#pragma omp critical
        for (int c = 0; c < C; c++) dw[c] += dwl[c];
    }
}

void nx_linear_forward(float *out, const float *in, const float *W, const float *b, int N, int IC,
                       int OC) {
    /* nn.Linear: out = in @ W.T + b */
    nx_gemm(false, true, N, OC, IC, 1.0f, in, IC, W, IC, 0.0f, out, OC);
    if (b) {
#pragma omp parallel for schedule(static) if (N > 16)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(long)n * OC + o] += b[o];
    }
}

void nx_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                        const float *W, int N, int IC, int OC) {
    if (din) nx_gemm(false, false, N, IC, OC, 1.0f, dout, OC, W, IC, 1.0f, din, IC);
    nx_gemm(true, false, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dW, IC);
    if (db) {
#pragma omp parallel for schedule(static) if (OC > 64)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(long)n * OC + o];
            db[o] += (float)s;
        }
    }
}

void nx_rope_tables(float *cos_t, float *sin_t, int max_pos, int HS, double theta) {
    int half = HS / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            /* inv_freq = 1 / base ** (arange(0, dim, 2) / dim); freqs = pos * inv_freq */
            double inv = 1.0 / pow(theta, (2.0 * i) / HS);
            double a = p * inv;
            cos_t[(long)p * half + i] = (float)cos(a);
            sin_t[(long)p * half + i] = (float)sin(a);
        }
}

static void rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                       int H, int HS, float sign) {
    int half = HS / 2;
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (long)pos[n] * half, *sn = sin_t + (long)pos[n] * half;
        for (int h = 0; h < H; h++) {
            float *v = x + ((long)n * H + h) * HS;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], c = cs[i], s = sign * sn[i];
                /* q_embed = (q * cos) + (rotate_half(q) * sin) */
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

void nx_rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                     int H, int HS) {
    rope_apply(x, pos, cos_t, sin_t, N, H, HS, 1.0f);
}

void nx_rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                      int H, int HS) {
    rope_apply(dx, pos, cos_t, sin_t, N, H, HS, -1.0f); /* rotation by −angle = transpose */
}

/* One (b, h): S = Q Kᵀ/√HS (causal), P = softmax(S), O = P V. Rows are
 * computed only up to the diagonal: row t multiplies t+1 keys. */
void nx_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          int B, int T, int NH, int KVH, int HS) {
    int G = NH / KVH, qs = NH * HS, ks = KVH * HS;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for schedule(dynamic) collapse(2)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *Q = q + (long)b * T * qs + h * HS;
            const float *K = k + (long)b * T * ks + (h / G) * HS;
            const float *Vv = v + (long)b * T * ks + (h / G) * HS;
            float *P = probs + ((long)b * NH + h) * T * T;
            float *O = out + (long)b * T * qs + h * HS;
            nx_gemm(false, true, T, T, HS, scale, Q, qs, K, ks, 0.0f, P, T);
            for (int t = 0; t < T; t++) {
                float *row = P + (long)t * T, mx = -INFINITY;
                for (int j = 0; j <= t; j++) mx = row[j] > mx ? row[j] : mx;
                float sum = 0;
                for (int j = 0; j <= t; j++) {
                    row[j] = expf(row[j] - mx);
                    sum += row[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j <= t; j++) row[j] *= inv;
                for (int j = t + 1; j < T; j++) row[j] = 0.0f;
            }
            nx_gemm(false, false, T, HS, T, 1.0f, P, T, Vv, ks, 0.0f, O, qs);
        }
}

/* dP = dO Vᵀ (+ dprobs_add); dV = Pᵀ dO; dS = P ⊙ (dP − rowsum(dP ⊙ P));
 * dQ = dS K/√HS; dK = dSᵀ Q/√HS. Heads sharing a kv head are handled by one iteration so
 * that dK/dV accumulate without races. */
void nx_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *probs, const float *dprobs_add, const float *q, const float *k,
                           const float *v, int B, int T, int NH, int KVH, int HS) {
    int G = NH / KVH, qs = NH * HS, ks = KVH * HS;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for schedule(dynamic) collapse(2)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < KVH; kh++) {
            const float *K = k + (long)b * T * ks + kh * HS, *Vv = v + (long)b * T * ks + kh * HS;
            float *dK = dk + (long)b * T * ks + kh * HS, *dV = dv + (long)b * T * ks + kh * HS;
            for (int t = 0; t < T; t++) {
                memset(dK + (long)t * ks, 0, HS * sizeof(float));
                memset(dV + (long)t * ks, 0, HS * sizeof(float));
            }
            for (int g = 0; g < G; g++) {
                int h = kh * G + g;
                const float *Q = q + (long)b * T * qs + h * HS, *dO = dout + (long)b * T * qs + h * HS;
                const float *P = probs + ((long)b * NH + h) * T * T;
                float *dP = scratch + ((long)b * NH + h) * T * T;
                float *dQ = dq + (long)b * T * qs + h * HS;
                nx_gemm(false, true, T, T, HS, 1.0f, dO, qs, Vv, ks, 0.0f, dP, T);
                nx_gemm(true, false, T, HS, T, 1.0f, P, T, dO, qs, 1.0f, dV, ks);
                const float *add = dprobs_add ? dprobs_add + ((long)b * NH + h) * T * T : NULL;
                for (int t = 0; t < T; t++) {
                    const float *pr = P + (long)t * T;
                    float *dr = dP + (long)t * T;
                    if (add)
                        for (int j = 0; j <= t; j++) dr[j] += add[(long)t * T + j];
                    double dot = 0;
                    for (int j = 0; j <= t; j++) dot += (double)dr[j] * pr[j];
                    float d = (float)dot;
                    for (int j = 0; j <= t; j++) dr[j] = pr[j] * (dr[j] - d) * scale;
                    for (int j = t + 1; j < T; j++) dr[j] = 0.0f;
                }
                nx_gemm(false, false, T, HS, T, 1.0f, dP, T, K, ks, 0.0f, dQ, qs);
                nx_gemm(true, false, T, HS, T, 1.0f, dP, T, Q, qs, 1.0f, dK, ks);
            }
        }
}

/* down_proj(act_fn(gate_proj(x)) * up_proj(x)); silu(g) = g·σ(g) */
void nx_swiglu_forward(float *out, const float *gate, const float *up, long n) {
#pragma omp parallel for schedule(static) if (n > 4096)
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void nx_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, long n) {
#pragma omp parallel for schedule(static) if (n > 4096)
    for (long i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g)), silu = g * s;
        dup[i] = dout[i] * silu;
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    }
}

void nx_add_inplace(float *y, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (long i = 0; i < n; i++) y[i] += x[i];
}
