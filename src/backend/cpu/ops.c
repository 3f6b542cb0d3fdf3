/* ops.c — the CPU backend's row-wise ops (see ops.h for the contracts):
 * embedding, RMSNorm, linear, RoPE, SwiGLU, add, argmax, and their
 * backwards. Matrix work goes through nx_gemm (OpenBLAS) or, for a few
 * rows, the matrix-vector kernels of matvec.c; the rest is OpenMP over
 * rows. Each kernel quotes the PyTorch/HF line it mirrors; the reference
 * backend (src/backend/ref) holds the naive versions the tests compare
 * against. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

void cpu_embed(nx_backend *be, float *out, const int32_t *ids, const nx_weight *wte, int N) {
    (void)be;
    int C = wte->cols;
    const nx_type_traits *tt = nx_type(wte->type);
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) {
        NX_ASSERTM(ids[n] >= 0 && ids[n] < wte->rows, "token id out of the vocabulary");
        const char *row = (const char *)wte->data + (size_t)ids[n] * wte->row_bytes;
        if (wte->type == NX_F32) memcpy(out + (long)n * C, row, C * sizeof(float));
        else tt->to_f32(out + (long)n * C, row, C);
    }
}

void cpu_embed_backward(nx_backend *be, float *dwte, const float *dout, const int32_t *ids, int N, int C) {
    (void)be;
    /* serial over rows keeps repeated ids race-free */
    for (int n = 0; n < N; n++) {
        float *d = dwte + (long)ids[n] * C;
        const float *g = dout + (long)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* variance = hidden.pow(2).mean(-1, keepdim=True)
 * hidden = hidden * torch.rsqrt(variance + eps); return weight * hidden */
void cpu_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C,
                 float eps) {
    (void)be;
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * C;
        float *o = out + (long)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        if (rstd) rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = w[c] * (x[c] * r);
    }
}

void cpu_rmsnorm_backward(nx_backend *be, float *din, float *dw, const float *dout, const float *in,
                          const float *w, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static) num_threads(cpu_threads(be))
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * C, *dy = dout + (long)n * C;
        float *dx = din + (long)n * C;
        float r = rstd[n];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * x[c];
        float k = (float)(dot * r * r * r / C);
        for (int c = 0; c < C; c++) dx[c] += r * w[c] * dy[c] - k * x[c];
    }
    /* dw by columns, each summed over the rows in order: the same bits for
     * any thread count, and no per-thread partials */
#pragma omp parallel for schedule(static) num_threads(cpu_threads(be)) if ((long)N * C > 16384)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float acc[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = in + (long)n * C, *dy = dout + (long)n * C;
            float r = rstd[n];
            for (int c = c0; c < c1; c++) acc[c - c0] += dy[c] * x[c] * r;
        }
        for (int c = c0; c < c1; c++) dw[c] += acc[c - c0];
    }
}

/* nn.Linear: out = in @ W.T + b. A few rows (decode) run the matrix-vector
 * kernels, which read each weight once for all rows and widen bf16/f16
 * rows in registers; many rows run GEMM, on a widened f32 copy of W in the
 * workspace when W is not f32. Block-typed weights run the 8-bit kernels
 * of quant.c for a few rows, and for many rows either those (an int8
 * GEMM, rows in chunks that fit the workspace) or the widened GEMM, as
 * cpu_qgemm decides. */
void cpu_linear(nx_backend *be, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    int OC = W->rows, IC = W->cols;
    if (nx_qtype(W->type) && (N <= CPU_MATVEC_ROWS || cpu_qgemm(W))) {
        cpu_qlinear(be, out, in, W, b, N);
        return;
    }
    if (N <= CPU_MATVEC_ROWS) {
        nx_matvec(out, W, in, b, N, false);
        return;
    }
    const float *Wf = W->data;
    if (W->type != NX_F32) {
        float *wide = cpu_work(be, (size_t)OC * IC);
        const nx_type_traits *tt = nx_type(W->type);
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++)
            tt->to_f32(wide + (size_t)o * IC, (const char *)W->data + (size_t)o * W->row_bytes, IC);
        Wf = wide;
    }
    nx_gemm(false, true, N, OC, IC, 1.0f, in, IC, Wf, IC, 0.0f, out, OC);
    if (b) {
#pragma omp parallel for schedule(static) if (N > 16)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(long)n * OC + o] += b[o];
    }
}

void cpu_linear_backward(nx_backend *be, float *din, float *dW, float *db, const float *dout, const float *in,
                         const nx_weight *W, int N) {
    (void)be;
    int OC = W->rows, IC = W->cols;
    const float *Wf = W->data;
    if (din) nx_gemm(false, false, N, IC, OC, 1.0f, dout, OC, Wf, IC, 1.0f, din, IC);
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

/* q_embed = (q * cos) + (rotate_half(q) * sin); the inverse rotates by the
 * negative angle (the transpose), which is the backward. */
void cpu_rope(nx_backend *be, float *x, int64_t ldx, const int32_t *pos, const float *cos_t,
              const float *sin_t, int N, int H, int HS, bool inverse) {
    (void)be;
    int half = HS / 2;
    float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (long)pos[n] * half, *sn = sin_t + (long)pos[n] * half;
        for (int h = 0; h < H; h++) {
            float *v = x + n * ldx + (long)h * HS;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], c = cs[i], s = sign * sn[i];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

/* down_proj(act_fn(gate_proj(x)) * up_proj(x)); silu(g) = g·σ(g) */
void cpu_swiglu(nx_backend *be, float *h, const float *gu, int N, int F) {
    (void)be;
    /* vectorised, a few µs per row: waking a thread costs more below ~16 rows */
#pragma omp parallel for schedule(static) if ((long)N * F >= 16384)
    for (long r = 0; r < N; r++) nx_silu_mul(h + r * F, gu + r * 2 * F, gu + r * 2 * F + F, F);
}

void cpu_swiglu_backward(nx_backend *be, float *dgu, const float *dh, const float *gu, int N, int F) {
    (void)be;
#pragma omp parallel for collapse(2) schedule(static) if ((long)N * F > 4096)
    for (long r = 0; r < N; r++)
        for (long f = 0; f < F; f++) {
            float g = gu[r * 2 * F + f], u = gu[r * 2 * F + F + f], d = dh[r * F + f];
            float s = 1.0f / (1.0f + expf(-g)), silu = g * s;
            dgu[r * 2 * F + F + f] = d * silu;
            dgu[r * 2 * F + f] = d * u * s * (1.0f + g * (1.0f - s));
        }
}

void cpu_add(nx_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* torch.argmax: the first index of the maximum */
void cpu_argmax(nx_backend *be, int32_t *out, const float *x, int N, int V) {
    (void)be;
#pragma omp parallel for schedule(static) if (N > 4)
    for (int n = 0; n < N; n++) {
        const float *r = x + (long)n * V;
        int best = 0;
        for (int i = 1; i < V; i++)
            if (r[i] > r[best]) best = i;
        out[n] = best;
    }
}
