/* ops.cu — the CUDA backend's row-wise ops (see ops.h for the contracts):
 * embedding, RMSNorm, linear on cuBLAS, RoPE, SwiGLU, add, argmax and
 * their backwards. One thread per element for the elementwise ops, one
 * block per row where a row needs a reduction (done in double, as the
 * reference does). Row-major on cuBLAS (column-major): a row-major (R, C)
 * matrix is the column-major (C, R) one, its transpose, so out = in · Wᵀ
 * is computed as outᵀ = W · inᵀ. */
#include <cub/device/device_radix_sort.cuh>

#include "cuda_impl.h"

namespace {

/* A weight element as f32: f32 as is, bf16 the top half of an f32, f16
 * through the hardware conversion. */
__device__ __forceinline__ float widen(const void *data, nx_dtype t, int64_t i) {
    if (t == NX_F32) return ((const float *)data)[i];
    unsigned short h = ((const unsigned short *)data)[i];
    if (t == NX_BF16) return __uint_as_float((unsigned)h << 16);
    return __half2float(__ushort_as_half(h));
}

__global__ void embed_k(float *out, const int32_t *ids, const void *w, nx_dtype t, int N, int C) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= (int64_t)N * C) return;
    int64_t n = i / C, c = i % C;
    out[i] = widen(w, t, (int64_t)ids[n] * C + c);
}

__global__ void iota_k(int32_t *v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) v[i] = i;
}

/* One block per run of equal ids in the sorted order (the others return):
 * dwte[id] += Σ dout of its rows, added in row order. */
__global__ void embed_back_k(float *dwte, const float *dout, const int32_t *keys, const int32_t *rows, int N, int C) {
    int i = blockIdx.x;
    if (i > 0 && keys[i] == keys[i - 1]) return;
    int id = keys[i];
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = dwte[(int64_t)id * C + c];
        for (int j = i; j < N && keys[j] == id; j++) acc += dout[(int64_t)rows[j] * C + c];
        dwte[(int64_t)id * C + c] = acc;
    }
}

/* An activation as stored: f32 as is, bf16 rounded to nearest even. */
__device__ __forceinline__ void put(float *p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* One block per row: out = w ⊙ x · rsqrt(mean x² + eps), out of type OT. */
template <class OT>
__global__ void rmsnorm_k(OT *out, float *rstd, const float *in, const float *w, int C, float eps) {
    __shared__ double sh[CU_THREADS];
    const float *x = in + (int64_t)blockIdx.x * C;
    OT *o = out + (int64_t)blockIdx.x * C;
    double ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)x[c] * x[c];
    ss = cu_block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / C + eps));
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) put(&o[c], w[c] * (x[c] * r));
}

/* One block per row: dx += r (w⊙dy) − (r³/C) x Σ(w⊙dy⊙x). */
__global__ void rmsnorm_dx_k(float *din, const float *dout, const float *in, const float *w, const float *rstd, int C) {
    __shared__ double sh[CU_THREADS];
    int64_t row = blockIdx.x;
    const float *x = in + row * C, *dy = dout + row * C;
    float *dx = din + row * C, r = rstd[row];
    double dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)w[c] * dy[c] * x[c];
    dot = cu_block_sum(dot, sh);
    float k = (float)(dot * r * r * r / C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) dx[c] += r * w[c] * dy[c] - k * x[c];
}

/* dw[c] += Σ_n dy ⊙ x · r in two fixed-order stages: block (column tile,
 * chunk) sums its chunk of rows per column into part[chunk·C + c], then
 * one thread per column adds the chunks in order. */
__global__ void rmsnorm_dw_part_k(double *part, const float *dout, const float *in, const float *rstd, int N, int C,
                                  int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int n0 = blockIdx.y * rows_per, n1 = n0 + rows_per < N ? n0 + rows_per : N;
    double s = 0;
    for (int n = n0; n < n1; n++) s += (double)dout[(int64_t)n * C + c] * in[(int64_t)n * C + c] * rstd[n];
    part[(int64_t)blockIdx.y * C + c] = s;
}

__global__ void rmsnorm_dw_k(float *dw, const double *part, int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int k = 0; k < chunks; k++) s += part[(int64_t)k * C + c];
    dw[c] += (float)s;
}

__global__ void widen_k(float *out, const void *w, nx_dtype t, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) out[i] = widen(w, t, i);
}

/* out (rows × cols, dense) = bf16 (round to nearest even) of in's rows at
 * stride ld; grid (column blocks of 4 columns a thread, rows); v4: 16-byte
 * loads and 8-byte stores (ld and cols multiples of 4, aligned bases) */
__global__ void narrow_k(unsigned short *out, const float *in, int64_t rows, int cols, int64_t ld, bool v4) {
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (c >= cols) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *x = in + r * ld + c;
        unsigned short *o = out + r * cols + c;
        if (v4) {
            float4 v = *(const float4 *)x;
            __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
            *(uint2 *)o = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
        } else {
            for (int k = 0; k < 4 && c + k < cols; k++) o[k] = __bfloat16_as_ushort(__float2bfloat16_rn(x[k]));
        }
    }
}

__global__ void add_bias_k(float *out, const float *b, int N, int OC) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < (int64_t)N * OC) out[i] += b[i % OC];
}

/* db[o] += Σ_n dout[n, o], in row order */
__global__ void col_sum_k(float *db, const float *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    double s = 0;
    for (int n = 0; n < N; n++) s += dout[(int64_t)n * OC + o];
    db[o] += (float)s;
}

/* Row-wise elementwise kernels run on a grid of (column blocks, rows),
 * the rows grid-strided past 65535: no 64-bit division per element. */
dim3 rows_grid(int64_t rows, int64_t cols) {
    return dim3(cu_blocks(cols), (unsigned)(rows < 65535 ? (rows > 0 ? rows : 1) : 65535));
}

/* q_embed = (q * cos) + (rotate_half(q) * sin); the inverse by −angle */
__global__ void rope_k(float *x, int64_t ldx, const int32_t *pos, const float *cs, const float *sn, int N, int H,
                       int HS, float sign) {
    int half = HS / 2, j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H * half) return;
    int h = j / half, k = j % half;
    for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
        float *v = x + n * ldx + h * HS;
        float c = cs[(int64_t)pos[n] * half + k], s = sign * sn[(int64_t)pos[n] * half + k];
        float x1 = v[k], x2 = v[k + half];
        v[k] = x1 * c - x2 * s;
        v[k + half] = x2 * c + x1 * s;
    }
}

__device__ __forceinline__ float swiglu1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* four values to 16 (f32) or 8 (bf16) bytes */
__device__ __forceinline__ void put4(float *p, float a, float b, float c, float d) {
    *(float4 *)p = make_float4(a, b, c, d);
}
__device__ __forceinline__ void put4(__nv_bfloat16 *p, float a, float b, float c, float d) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(a, b), hi = __floats2bfloat162_rn(c, d);
    *(uint2 *)p = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
}

/* h = silu(gate) ⊙ up of type OT; VEC columns a thread (4: 16-byte loads,
 * F a multiple of 4) */
template <int VEC, class OT>
__global__ void swiglu_k(OT *h, const float *gu, int N, int F) {
    int f = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (f >= F) return;
    for (int64_t r = blockIdx.y; r < N; r += gridDim.y) {
        const float *g = gu + r * 2 * F + f, *u = g + F;
        if (VEC == 4) {
            float4 a = *(const float4 *)g, b = *(const float4 *)u;
            put4(h + r * F + f, swiglu1(a.x, b.x), swiglu1(a.y, b.y), swiglu1(a.z, b.z), swiglu1(a.w, b.w));
        } else {
            put(h + r * F + f, swiglu1(*g, *u));
        }
    }
}

__global__ void swiglu_back_k(float *dgu, const float *dh, const float *gu, int N, int F) {
    int f = blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= F) return;
    for (int64_t r = blockIdx.y; r < N; r += gridDim.y) {
        float g = gu[r * 2 * F + f], u = gu[r * 2 * F + F + f], d = dh[r * F + f];
        float s = 1.0f / (1.0f + expf(-g)), silu = g * s;
        dgu[r * 2 * F + F + f] = d * silu;
        dgu[r * 2 * F + f] = d * u * s * (1.0f + g * (1.0f - s));
    }
}

__global__ void add_k(float *y, const float *x, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

/* One block per row: the first index of the maximum (torch.argmax). */
__global__ void argmax_k(int32_t *out, const float *x, int V) {
    __shared__ float bv[CU_THREADS];
    __shared__ int bi[CU_THREADS];
    const float *r = x + (int64_t)blockIdx.x * V;
    float best = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        if (r[i] > best) best = r[i], idx = i; /* strictly greater: the lowest index per thread */
    bv[threadIdx.x] = best, bi[threadIdx.x] = idx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float v = bv[threadIdx.x + s];
            int j = bi[threadIdx.x + s];
            if (v > bv[threadIdx.x] || (v == bv[threadIdx.x] && j < bi[threadIdx.x])) bv[threadIdx.x] = v, bi[threadIdx.x] = j;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = bi[0] == 0x7fffffff ? 0 : bi[0];
}

} // namespace

void cu_sort_bytes(size_t n, size_t *bytes) {
    *bytes = 0;
    cub::DeviceRadixSort::SortPairs(nullptr, *bytes, (const int32_t *)nullptr, (int32_t *)nullptr,
                                    (const int32_t *)nullptr, (int32_t *)nullptr, (int)n);
}

void cu_embed(nx_backend *, float *out, const int32_t *ids, const nx_weight *wte, int N) {
    if (N == 0) return;
    embed_k<<<cu_blocks((int64_t)N * wte->cols), CU_THREADS, 0, cu_stream()>>>(out, ids, wte->data, wte->type, N, wte->cols);
    CU_LAUNCHED("embed");
}

void cu_embed_backward(nx_backend *, float *dwte, const float *dout, const int32_t *ids, int N, int C) {
    if (N == 0) return;
    cu_work_reset();
    int32_t *keys = (int32_t *)cu_work(N * sizeof(int32_t)), *rows_in = (int32_t *)cu_work(N * sizeof(int32_t));
    int32_t *rows = (int32_t *)cu_work(N * sizeof(int32_t));
    size_t bytes = 0;
    cu_sort_bytes(N, &bytes);
    void *tmp = cu_work(bytes);
    iota_k<<<cu_blocks(N), CU_THREADS, 0, cu_stream()>>>(rows_in, N);
    /* radix sort is stable: rows of one id keep their order */
    cu_check(cub::DeviceRadixSort::SortPairs(tmp, bytes, ids, keys, rows_in, rows, N), "sort ids");
    embed_back_k<<<N, 128, 0, cu_stream()>>>(dwte, dout, keys, rows, N, C);
    CU_LAUNCHED("embed backward");
}

void cu_rmsnorm_to(nx_backend *, void *out, nx_dtype ot, float *rstd, const float *in, const float *w, int N, int C,
                   float eps) {
    NX_ASSERT(ot == NX_F32 || ot == NX_BF16);
    if (N == 0) return;
    if (ot == NX_BF16)
        rmsnorm_k<<<N, CU_THREADS, 0, cu_stream()>>>((__nv_bfloat16 *)out, rstd, in, w, C, eps);
    else
        rmsnorm_k<<<N, CU_THREADS, 0, cu_stream()>>>((float *)out, rstd, in, w, C, eps);
    CU_LAUNCHED("rmsnorm");
}

void cu_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C, float eps) {
    cu_rmsnorm_to(be, out, NX_F32, rstd, in, w, N, C, eps);
}

void cu_rmsnorm_backward(nx_backend *, float *din, float *dw, const float *dout, const float *in, const float *w,
                         const float *rstd, int N, int C) {
    if (N == 0) return;
    rmsnorm_dx_k<<<N, CU_THREADS, 0, cu_stream()>>>(din, dout, in, w, rstd, C);
    /* chunks of 64 rows or more, as many as the partials hold */
    int64_t most = CU_NORM_PARTIALS / C > 0 ? CU_NORM_PARTIALS / C : 1;
    int chunks = (int)((N + 63) / 64 < most ? (N + 63) / 64 : most), rows_per = (N + chunks - 1) / chunks;
    chunks = (N + rows_per - 1) / rows_per;
    cu_work_reset();
    double *part = (double *)cu_work((size_t)chunks * C * sizeof(double));
    rmsnorm_dw_part_k<<<dim3(cu_blocks(C, 128), chunks), 128, 0, cu_stream()>>>(part, dout, in, rstd, N, C, rows_per);
    rmsnorm_dw_k<<<cu_blocks(C, 128), 128, 0, cu_stream()>>>(dw, part, chunks, C);
    CU_LAUNCHED("rmsnorm backward");
}

/* C = A·B + beta·C in column-major cuBLAS terms, f32 in and out, the
 * products in the backend's precision (CU.compute). */
static void cu_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, const char *what) {
    const float one = 1.0f;
    cu_check_blas(cublasGemmEx(CU.blas, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, C,
                               CUDA_R_32F, ldc, CU.compute, CUBLAS_GEMM_DEFAULT),
                  what);
}

/* ---- bf16 precision: the products on bf16 operands ------------------------
 * As autocast computes them: bf16 operands, f32 accumulation and output.
 * bf16 weights are read as stored; f32 weights and the activations are
 * narrowed into the narrowing area (CU.narrow_elems bf16 values) a chunk
 * of rows at a time. (cuBLAS's FAST_16BF on f32 storage rounds the same way but runs
 * at about half the rate: bench/cuda_gemm.cu.) */
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* dst (rows × cols, dense) = bf16 of src's rows × cols at row stride ld */
static const unsigned short *narrowed(unsigned short *dst, const float *src, int64_t rows, int64_t cols, int64_t ld) {
    bool v4 = cols % 4 == 0 && ld % 4 == 0 && (uintptr_t)src % 16 == 0 && (uintptr_t)dst % 8 == 0;
    narrow_k<<<rows_grid(rows, (cols + 3) / 4), CU_THREADS, 0, cu_stream()>>>(dst, src, rows, (int)cols, ld, v4);
    return dst;
}

static void gemm16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *A, int lda,
                   const void *B, int ldb, float beta, float *C, int ldc, const char *what) {
    const float one = 1.0f;
    cu_check_blas(cublasGemmEx(CU.blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C,
                               CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  what);
}

/* f32 weights and the activations are narrowed for every product: that
 * pays only for large products, where the bf16 rate is near twice
 * FAST_16BF's (narrowing moves 6 bytes an element; on an H200 the rate
 * gain is 1.3x at 384 columns and 1.9x from 1024: bench/cuda_gemm.cu).
 * On teacher-19m -> S7M (256 and 384 wide) narrowing cost 9%. */
static bool products_in_bf16(const nx_weight *W, int N) {
    if (CU.prec != NX_PREC_BF16 || !CU.native_bf16) return false;
    return W->type == NX_BF16 || (W->type == NX_F32 && N >= 512 && W->rows >= 1024 && W->cols >= 1024);
}

/* out (N × OC) = in (N × IC) · Wᵀ: chunks of W's rows (when narrowed) and
 * of in's rows; in16: the input already in bf16 (the activations' type),
 * used as it is (in unused) */
static void linear_bf16(float *out, const float *in, const unsigned short *in16, const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    bool wide = W->type == NX_F32;
    int64_t wr = wide ? min64(OC, (in16 ? CU.narrow_elems : CU.narrow_elems / 2) / IC) : OC;
    int64_t xr = in16 ? N : min64(N, (CU.narrow_elems - (wide ? wr * IC : 0)) / IC);
    NX_ASSERTM(wr > 0 && xr > 0, "linear: rows too long for the bf16 narrowing area");
    unsigned short *w16 = CU.narrow, *x16 = CU.narrow + (wide ? wr * IC : 0);
    for (int o0 = 0; o0 < OC; o0 += (int)wr) {
        int oc = (int)min64(wr, OC - o0);
        const void *w = wide ? narrowed(w16, (const float *)W->data + (int64_t)o0 * IC, oc, IC, IC)
                             : (const void *)((const unsigned short *)W->data + (int64_t)o0 * IC);
        for (int r0 = 0; r0 < N; r0 += (int)xr) {
            int n = (int)min64(xr, N - r0);
            const unsigned short *x = in16 ? in16 + (int64_t)r0 * IC : x16;
            if (!in16 && (o0 == 0 || xr < N)) narrowed(x16, in + (int64_t)r0 * IC, n, IC, IC); /* else still there */
            /* outᵀ (oc, n) = W (oc, IC) · inᵀ (IC, n) */
            gemm16(CUBLAS_OP_T, CUBLAS_OP_N, oc, n, IC, w, IC, x, IC, 0.0f, out + (int64_t)r0 * OC + o0, OC,
                   "linear (bf16)");
        }
    }
}

/* din += dout · W and dW += doutᵀ · in, f32 weights. W is narrowed once
 * beside chunks of the rows of in and dout, each narrowed once for both
 * products (in not at all when in16 holds it in bf16); a W too large for
 * that is narrowed a chunk of its rows at a time for din, and the rows'
 * chunks then serve dW alone. */
static void linear_backward_bf16(float *din, float *dW, const float *dout, const float *in, const unsigned short *in16,
                                 const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    const float *Wf = (const float *)W->data;
    int64_t whole = (int64_t)OC * IC, row = (in16 ? 0 : IC) + OC;
    bool together = whole + row <= CU.narrow_elems;
    if (din && !together) { /* chunks of W's rows (the sum's terms) and of dout's rows */
        int64_t wr = min64(OC, CU.narrow_elems / 2 / IC), dr = min64(N, (CU.narrow_elems - wr * IC) / wr);
        NX_ASSERTM(wr > 0 && dr > 0, "linear backward: rows too long for the bf16 narrowing area");
        unsigned short *w16 = CU.narrow, *d16 = CU.narrow + wr * IC;
        for (int o0 = 0; o0 < OC; o0 += (int)wr) {
            int oc = (int)min64(wr, OC - o0);
            narrowed(w16, Wf + (int64_t)o0 * IC, oc, IC, IC);
            for (int r0 = 0; r0 < N; r0 += (int)dr) {
                int n = (int)min64(dr, N - r0);
                narrowed(d16, dout + (int64_t)r0 * OC + o0, n, oc, OC);
                /* dinᵀ (IC, n) += W_cᵀ (IC, oc) · dout_cᵀ (oc, n) */
                gemm16(CUBLAS_OP_N, CUBLAS_OP_N, IC, n, oc, w16, IC, d16, oc, 1.0f, din + (int64_t)r0 * IC, IC,
                       "linear backward (input, bf16)");
            }
        }
    }
    int64_t wsz = din && together ? whole : 0, rr = min64(N, (CU.narrow_elems - wsz) / row);
    NX_ASSERTM(rr > 0, "linear backward: rows too long for the bf16 narrowing area");
    unsigned short *w16 = CU.narrow, *x16 = CU.narrow + wsz, *d16 = x16 + rr * IC;
    if (wsz) narrowed(w16, Wf, OC, IC, IC);
    if (in16) d16 = x16; /* no room for in */
    for (int r0 = 0; r0 < N; r0 += (int)rr) {
        int n = (int)min64(rr, N - r0);
        const unsigned short *x = in16 ? in16 + (int64_t)r0 * IC : narrowed(x16, in + (int64_t)r0 * IC, n, IC, IC);
        narrowed(d16, dout + (int64_t)r0 * OC, n, OC, OC);
        if (wsz) /* dinᵀ (IC, n) += Wᵀ (IC, OC) · doutᵀ (OC, n) */
            gemm16(CUBLAS_OP_N, CUBLAS_OP_N, IC, n, OC, w16, IC, d16, OC, 1.0f, din + (int64_t)r0 * IC, IC,
                   "linear backward (input, bf16)");
        /* dWᵀ (IC, OC) += in_cᵀ (IC, n) · dout_c (n, OC) */
        gemm16(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, n, x, IC, d16, OC, 1.0f, dW, IC, "linear backward (weights, bf16)");
    }
}

void cu_linear(nx_backend *, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    int OC = W->rows, IC = W->cols;
    if (N == 0) return;
    if (products_in_bf16(W, N)) {
        linear_bf16(out, in, nullptr, W, N);
    } else {
        const float *Wf = (const float *)W->data;
        if (W->type != NX_F32) { /* widened into the workspace, then fp32 GEMM */
            cu_work_reset();
            float *wide = (float *)cu_work((size_t)OC * IC * sizeof(float));
            widen_k<<<cu_blocks((int64_t)OC * IC), CU_THREADS, 0, cu_stream()>>>(wide, W->data, W->type, (int64_t)OC * IC);
            Wf = wide;
        }
        /* outᵀ (OC, N) = W (OC, IC) · inᵀ (IC, N) */
        cu_gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, Wf, IC, in, IC, 0.0f, out, OC, "linear");
    }
    if (b) add_bias_k<<<cu_blocks((int64_t)N * OC), CU_THREADS, 0, cu_stream()>>>(out, b, N, OC);
    CU_LAUNCHED("linear");
}

void cu_linear_backward(nx_backend *, float *din, float *dW, float *db, const float *dout, const float *in,
                        const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    if (N == 0) return;
    if (products_in_bf16(W, N)) {
        linear_backward_bf16(din, dW, dout, in, nullptr, W, N);
    } else {
        if (din) /* dinᵀ (IC, N) += Wᵀ (IC, OC) · doutᵀ (OC, N) */
            cu_gemm(CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, (const float *)W->data, IC, dout, OC, 1.0f, din, IC,
                    "linear backward (input)");
        /* dWᵀ (IC, OC) += inᵀ (IC, N) · dout (N, OC) */
        cu_gemm(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, in, IC, dout, OC, 1.0f, dW, IC, "linear backward (weights)");
    }
    if (db) col_sum_k<<<cu_blocks(OC, 128), 128, 0, cu_stream()>>>(db, dout, N, OC);
    CU_LAUNCHED("linear backward");
}

/* The input in bf16 (the activations' type): the products on bf16
 * operands whatever the weights' size (f32 weights narrowed, f16 ones
 * widened into the workspace first) or the precision. */
void cu_linear_from(nx_backend *, float *out, const void *in, nx_dtype it, const nx_weight *W, const float *b, int N) {
    NX_ASSERT(it == NX_BF16);
    int OC = W->rows, IC = W->cols;
    if (N == 0) return;
    nx_weight Wf = *W;
    if (W->type == NX_F16) { /* widened into the workspace, then narrowed as an f32 matrix */
        cu_work_reset();
        Wf.data = cu_work((size_t)OC * IC * sizeof(float));
        Wf.type = NX_F32;
        widen_k<<<cu_blocks((int64_t)OC * IC), CU_THREADS, 0, cu_stream()>>>((float *)Wf.data, W->data, W->type,
                                                                             (int64_t)OC * IC);
    }
    linear_bf16(out, nullptr, (const unsigned short *)in, &Wf, N);
    if (b) add_bias_k<<<cu_blocks((int64_t)N * OC), CU_THREADS, 0, cu_stream()>>>(out, b, N, OC);
    CU_LAUNCHED("linear");
}

void cu_linear_backward_from(nx_backend *, float *din, float *dW, float *db, const float *dout, const void *in,
                             nx_dtype it, const nx_weight *W, int N) {
    NX_ASSERT(it == NX_BF16 && W->type == NX_F32);
    if (N == 0) return;
    linear_backward_bf16(din, dW, dout, nullptr, (const unsigned short *)in, W, N);
    if (db) col_sum_k<<<cu_blocks(W->rows, 128), 128, 0, cu_stream()>>>(db, dout, N, W->rows);
    CU_LAUNCHED("linear backward");
}

void cu_rope(nx_backend *, float *x, int64_t ldx, const int32_t *pos, const float *cs, const float *sn, int N, int H,
             int HS, bool inverse) {
    int64_t n = (int64_t)N * H * (HS / 2);
    if (n == 0) return;
    rope_k<<<rows_grid(N, (int64_t)H * (HS / 2)), CU_THREADS, 0, cu_stream()>>>(x, ldx, pos, cs, sn, N, H, HS, inverse ? -1.0f : 1.0f);
    CU_LAUNCHED("rope");
}

template <class OT>
static void swiglu_as(OT *h, const float *gu, int N, int F) {
    if (F % 4 == 0 && (uintptr_t)h % 16 == 0 && (uintptr_t)gu % 16 == 0)
        swiglu_k<4><<<rows_grid(N, F / 4), CU_THREADS, 0, cu_stream()>>>(h, gu, N, F);
    else
        swiglu_k<1><<<rows_grid(N, F), CU_THREADS, 0, cu_stream()>>>(h, gu, N, F);
}

void cu_swiglu_to(nx_backend *, void *h, nx_dtype ht, const float *gu, int N, int F) {
    NX_ASSERT(ht == NX_F32 || ht == NX_BF16);
    if ((int64_t)N * F == 0) return;
    if (ht == NX_BF16) swiglu_as((__nv_bfloat16 *)h, gu, N, F);
    else swiglu_as((float *)h, gu, N, F);
    CU_LAUNCHED("swiglu");
}

void cu_swiglu(nx_backend *be, float *h, const float *gu, int N, int F) { cu_swiglu_to(be, h, NX_F32, gu, N, F); }

void cu_swiglu_backward(nx_backend *, float *dgu, const float *dh, const float *gu, int N, int F) {
    if ((int64_t)N * F == 0) return;
    swiglu_back_k<<<rows_grid(N, F), CU_THREADS, 0, cu_stream()>>>(dgu, dh, gu, N, F);
    CU_LAUNCHED("swiglu backward");
}

void cu_add(nx_backend *, float *y, const float *x, int64_t n) {
    if (n == 0) return;
    add_k<<<cu_blocks(n), CU_THREADS, 0, cu_stream()>>>(y, x, n);
    CU_LAUNCHED("add");
}

void cu_argmax(nx_backend *, int32_t *out, const float *x, int N, int V) {
    if (N == 0) return;
    argmax_k<<<N, CU_THREADS, 0, cu_stream()>>>(out, x, V);
    CU_LAUNCHED("argmax");
}
