/* ops.cu — the CUDA backend's row-wise ops (see ops.h for the contracts):
 * embedding, RMSNorm, linear on cuBLAS, RoPE, SwiGLU, add, argmax and
 * their backwards. One thread per element for the elementwise ops, one
 * block per row where a row needs a reduction (done in double, as the
 * reference does); RMSNorm's backward a warp per row, its weight gradient
 * summed in the same pass. Row-major on cuBLAS (column-major): a row-major
 * (R, C) matrix is the column-major (C, R) one, its transpose, so
 * out = in · Wᵀ is computed as outᵀ = W · inᵀ. */
#include <cub/device/device_radix_sort.cuh>

#include <cublasLt.h>

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
 * dwte[id] += Σ dout of its rows, added in row order, VEC columns a thread
 * (a block spans a row of up to 1024 columns in one go). The run's rows are
 * read EB_AHEAD at a time, so that a frequent token's long run (hundreds of
 * rows of real text: the longest run is the kernel's time) waits on one
 * load in EB_AHEAD rather than on each. */
#define EB_AHEAD 16
template <int VEC>
__global__ void embed_back_k(float *dwte, const float *dout, const int32_t *keys, const int32_t *rows, int N, int C) {
    int i = blockIdx.x;
    if (i > 0 && keys[i] == keys[i - 1]) return;
    int id = keys[i];
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float acc[VEC];
        cu_load(acc, dwte + (int64_t)id * C + c);
        for (int j = i;; j += EB_AHEAD) {
            int64_t at[EB_AHEAD];
            float v[EB_AHEAD][VEC];
            bool in[EB_AHEAD]; /* a prefix: the run ends at the first other key */
#pragma unroll
            for (int u = 0; u < EB_AHEAD; u++) {
                in[u] = j + u < N && keys[j + u] == id;
                at[u] = in[u] ? (int64_t)rows[j + u] * C + c : 0;
            }
#pragma unroll
            for (int u = 0; u < EB_AHEAD; u++) {
#pragma unroll
                for (int k = 0; k < VEC; k++) v[u][k] = 0.0f;
                if (in[u]) cu_load(v[u], dout + at[u]);
            }
#pragma unroll
            for (int u = 0; u < EB_AHEAD; u++)
                if (in[u])
#pragma unroll
                    for (int k = 0; k < VEC; k++) acc[k] += v[u][k];
            if (!in[EB_AHEAD - 1]) break;
        }
        cu_store(dwte + (int64_t)id * C + c, acc);
    }
}

/* One block per row: out = w ⊙ x · rsqrt(mean x² + eps), out of type OT;
 * VEC columns a thread (4: C a multiple of 4, 16-byte loads). */
template <class OT, int VEC>
__global__ void rmsnorm_k(OT *out, float *rstd, const float *in, const float *w, int C, float eps) {
    __shared__ double sh[CU_THREADS];
    const float *x = in + (int64_t)blockIdx.x * C;
    OT *o = out + (int64_t)blockIdx.x * C;
    double ss = 0;
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float v[VEC];
        cu_load(v, x + c);
        for (int k = 0; k < VEC; k++) ss += (double)v[k] * v[k];
    }
    ss = cu_block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / C + eps));
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float v[VEC], g[VEC];
        cu_load(v, x + c);
        cu_load(g, w + c);
        for (int k = 0; k < VEC; k++) v[k] = g[k] * (v[k] * r);
        cu_store(o + c, v);
    }
}

/* The fallback's dx, one block per row: dx += r (w⊙dy) − (r³/C) x Σ(w⊙dy⊙x);
 * d16, where not null, the new dx in bf16. */
__global__ void rmsnorm_dx_k(float *din, __nv_bfloat16 *d16, const float *dout, const float *in, const float *w,
                             const float *rstd, int C) {
    __shared__ double sh[CU_THREADS];
    int64_t row = blockIdx.x;
    const float *x = in + row * C, *dy = dout + row * C;
    float *dx = din + row * C, r = rstd[row];
    double dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)w[c] * dy[c] * x[c];
    dot = cu_block_sum(dot, sh);
    float k = (float)(dot * r * r * r / C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = dx[c] + (r * w[c] * dy[c] - k * x[c]);
        dx[c] = v;
        if (d16) d16[row * C + c] = __float2bfloat16_rn(v);
    }
}

/* dw[c] += Σ_n dy ⊙ x · r in two fixed-order stages: the rows are cut into
 * chunks, each chunk's column sums go to part[chunk·C + c] (doubles), then
 * rmsnorm_dw_k adds the chunks. The fallback's first stage: block (column
 * tile, chunk) sums its chunk's rows in order, one thread a column. */
__global__ void rmsnorm_dw_part_k(double *part, const float *dout, const float *in, const float *rstd, int N, int C,
                                  int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int n0 = blockIdx.y * rows_per, n1 = n0 + rows_per < N ? n0 + rows_per : N;
    double s = 0;
    for (int n = n0; n < n1; n++) s += (double)dout[(int64_t)n * C + c] * in[(int64_t)n * C + c] * rstd[n];
    part[(int64_t)blockIdx.y * C + c] = s;
}

/* The fused backward: dx and dw's chunk sums in one pass, dy and x read
 * once (C a multiple of 4 and at most RMS_COLS, 16-byte aligned arrays).
 * Block b owns the chunk of rows [b·rows_per, (b+1)·rows_per); its warp v
 * the rows n0 + v, n0 + v + RMS_WARPS, … one at a time. Lane l holds the
 * row's 16-byte groups l + 32j (j < J, J = ⌈C/128⌉) of dy, x and din in
 * registers; the row's Σ w⊙dy⊙x is the lane's sum (in double, in its
 * order) reduced by xor shuffles, which leave the same bits in every lane
 * (each step adds the same two values, a + b = b + a); din is written back
 * and dy⊙x·r (double) added to the lane's sums for its columns. At the end
 * the warps add their column sums in warp order through shared memory and
 * the last writes part[b·C + c]. The order of every sum depends on N and
 * C only: the same bits on every run. din is apart from dout and in (the
 * loads of those may go through the read-only cache); d16, where not null,
 * receives the new din in bf16 (8-byte aligned). */
#define RMS_WARPS 4
#define RMS_COLS 1024
template <int J>
__global__ void __launch_bounds__(RMS_WARPS * 32)
    rmsnorm_back_k(float *din, __nv_bfloat16 *d16, double *part, const float *__restrict__ dout,
                   const float *__restrict__ in, const float *__restrict__ w, const float *__restrict__ rstd, int N,
                   int C, int rows_per) {
    __shared__ double sh[RMS_COLS];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int n0 = blockIdx.x * rows_per, n1 = n0 + rows_per < N ? n0 + rows_per : N;
    double acc[J][4];
#pragma unroll
    for (int j = 0; j < J; j++)
#pragma unroll
        for (int k = 0; k < 4; k++) acc[j][k] = 0;
    for (int n = n0 + warp; n < n1; n += RMS_WARPS) { /* n is the same in the whole warp */
        const float *x = in + (int64_t)n * C, *dy = dout + (int64_t)n * C;
        float *dx = din + (int64_t)n * C, r = rstd[n];
        float vy[J][4], vx[J][4], vd[J][4], g[J][4];
#pragma unroll
        for (int j = 0; j < J; j++) { /* every load of the row issued before the first use */
            int c = 4 * (lane + 32 * j);
            if (c < C) {
                cu_load(vy[j], dy + c), cu_load(vx[j], x + c), cu_load(vd[j], dx + c), cu_load(g[j], w + c);
            } else {
#pragma unroll
                for (int k = 0; k < 4; k++) vy[j][k] = vx[j][k] = vd[j][k] = g[j][k] = 0;
            }
        }
        double dot = 0; /* the columns past C add zeros */
#pragma unroll
        for (int j = 0; j < J; j++)
#pragma unroll
            for (int k = 0; k < 4; k++) dot += (double)g[j][k] * vy[j][k] * vx[j][k];
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        float kk = (float)(dot * r * r * r / C);
#pragma unroll
        for (int j = 0; j < J; j++) {
            int c = 4 * (lane + 32 * j);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                vd[j][k] += r * g[j][k] * vy[j][k] - kk * vx[j][k];
                acc[j][k] += (double)vy[j][k] * vx[j][k] * r;
            }
            if (c < C) cu_store(dx + c, vd[j]);
            if (c < C && d16) cu_store(d16 + (int64_t)n * C + c, vd[j]);
        }
    }
    for (int v = 0; v < RMS_WARPS; v++) { /* the warps' sums, added in warp order */
        if (warp == v) {
#pragma unroll
            for (int j = 0; j < J; j++) {
                int c = 4 * (lane + 32 * j);
                if (c >= C) continue;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    double s = v == 0 ? acc[j][k] : sh[c + k] + acc[j][k];
                    if (v == RMS_WARPS - 1) part[(int64_t)blockIdx.x * C + c + k] = s;
                    else sh[c + k] = s;
                }
            }
        }
        if (v + 1 < RMS_WARPS) __syncthreads();
    }
}

/* dw[c] += Σ_k part[k·C + c] over the chunks k, in a fixed order: slice s
 * of column c adds chunks s, s + RMS_SLICES, … in turn, then the slices
 * are added in order. Block (32 columns, RMS_SLICES slices). */
#define RMS_SLICES 16
__global__ void rmsnorm_dw_k(float *dw, const double *part, int chunks, int C) {
    __shared__ double sh[RMS_SLICES][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    if (c < C) {
#pragma unroll 4
        for (int k = threadIdx.y; k < chunks; k += RMS_SLICES) s += part[(int64_t)k * C + c];
    }
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    double t = 0;
    for (int v = 0; v < RMS_SLICES; v++) t += sh[v][threadIdx.x];
    dw[c] += (float)t;
}

template <int J>
void rmsnorm_back(float *din, __nv_bfloat16 *d16, double *part, const float *dout, const float *in, const float *w,
                  const float *rstd, int N, int C, int rows_per, int chunks) {
    rmsnorm_back_k<J><<<chunks, RMS_WARPS * 32, 0, cu_stream()>>>(din, d16, part, dout, in, w, rstd, N, C, rows_per);
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

/* db[o] (+)= Σ_n dout[n, o], in row order: written where write, else added to */
__global__ void col_sum_k(float *db, const float *dout, int N, int OC, bool write) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    double s = 0;
    for (int n = 0; n < N; n++) s += dout[(int64_t)n * OC + o];
    db[o] = write ? (float)s : db[o] + (float)s;
}

/* Row-wise elementwise kernels run on a grid of (column blocks, rows),
 * the rows grid-strided past 65535: no 64-bit division per element. */
dim3 rows_grid(int64_t rows, int64_t cols) {
    return dim3(cu_blocks(cols), (unsigned)(rows < 65535 ? (rows > 0 ? rows : 1) : 65535));
}

/* q_embed = (q * cos) + (rotate_half(q) * sin); the inverse by −angle.
 * VEC pairs a thread (4: half a head a multiple of 4, 16-byte accesses). */
template <int VEC>
__global__ void rope_k(float *x, int64_t ldx, const int32_t *pos, const float *cs, const float *sn, int N, int H,
                       int HS, float sign) {
    int half = HS / 2, j = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (j >= H * half) return;
    int h = j / half, k = j % half;
    for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
        float *v = x + n * ldx + h * HS;
        float c[VEC], s[VEC], x1[VEC], x2[VEC], y1[VEC], y2[VEC];
        cu_load(c, cs + (int64_t)pos[n] * half + k);
        cu_load(s, sn + (int64_t)pos[n] * half + k);
        cu_load(x1, v + k);
        cu_load(x2, v + k + half);
        for (int u = 0; u < VEC; u++) {
            float su = sign * s[u];
            y1[u] = x1[u] * c[u] - x2[u] * su;
            y2[u] = x2[u] * c[u] + x1[u] * su;
        }
        cu_store(v + k, y1);
        cu_store(v + k + half, y2);
    }
}

__device__ __forceinline__ float swiglu1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* h = silu(gate) ⊙ up, gu of type IT and h of type OT; VEC columns a
 * thread (4: vector accesses, F a multiple of 4) */
template <int VEC, class IT, class OT>
__global__ void swiglu_k(OT *h, const IT *gu, int N, int F) {
    int f = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (f >= F) return;
    for (int64_t r = blockIdx.y; r < N; r += gridDim.y) {
        float g[VEC], u[VEC];
        cu_load(g, gu + r * 2 * F + f);
        cu_load(u, gu + r * 2 * F + F + f);
        for (int k = 0; k < VEC; k++) g[k] = swiglu1(g[k], u[k]);
        cu_store(h + r * F + f, g);
    }
}

/* dgate, dup of h = silu(gate) ⊙ up, gu and dgu of type GT, dh of type HT;
 * VEC as swiglu_k */
template <int VEC, class GT, class HT>
__global__ void swiglu_back_k(GT *dgu, const HT *dh, const GT *gu, int N, int F) {
    int f = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (f >= F) return;
    for (int64_t r = blockIdx.y; r < N; r += gridDim.y) {
        float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
        cu_load(g, gu + r * 2 * F + f);
        cu_load(u, gu + r * 2 * F + F + f);
        cu_load(d, dh + r * F + f);
        for (int k = 0; k < VEC; k++) {
            float s = 1.0f / (1.0f + expf(-g[k])), silu = g[k] * s;
            du[k] = d[k] * silu;
            dg[k] = d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
        }
        cu_store(dgu + r * 2 * F + F + f, du);
        cu_store(dgu + r * 2 * F + f, dg);
    }
}

/* y += x, VEC elements a thread (4: n a multiple of 4, 16-byte accesses) */
template <int VEC>
__global__ void add_k(float *y, const float *x, int64_t n) {
    int64_t i = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float a[VEC], b[VEC];
    cu_load(a, y + i);
    cu_load(b, x + i);
    for (int k = 0; k < VEC; k++) a[k] += b[k];
    cu_store(y + i, a);
}

/* y += x on rows × cols at row stride ld (both) */
__global__ void add2d_k(float *y, const float *x, int64_t rows, int cols, int64_t ld) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) y[r * ld + c] += x[r * ld + c];
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
    if (C % 4 == 0 && cu_aligned16(dwte) && cu_aligned16(dout))
        embed_back_k<4><<<N, 256, 0, cu_stream()>>>(dwte, dout, keys, rows, N, C);
    else embed_back_k<1><<<N, 256, 0, cu_stream()>>>(dwte, dout, keys, rows, N, C);
    CU_LAUNCHED("embed backward");
}

void cu_rmsnorm_to(nx_backend *, void *out, nx_dtype ot, float *rstd, const float *in, const float *w, int N, int C,
                   float eps) {
    NX_ASSERT(ot == NX_F32 || ot == NX_BF16);
    if (N == 0) return;
    bool v4 = C % 4 == 0 && cu_aligned16(in) && cu_aligned16(w) && (uintptr_t)out % (ot == NX_BF16 ? 8 : 16) == 0;
    if (ot == NX_BF16 && v4)
        rmsnorm_k<__nv_bfloat16, 4><<<N, CU_THREADS, 0, cu_stream()>>>((__nv_bfloat16 *)out, rstd, in, w, C, eps);
    else if (ot == NX_BF16)
        rmsnorm_k<__nv_bfloat16, 1><<<N, CU_THREADS, 0, cu_stream()>>>((__nv_bfloat16 *)out, rstd, in, w, C, eps);
    else if (v4)
        rmsnorm_k<float, 4><<<N, CU_THREADS, 0, cu_stream()>>>((float *)out, rstd, in, w, C, eps);
    else
        rmsnorm_k<float, 1><<<N, CU_THREADS, 0, cu_stream()>>>((float *)out, rstd, in, w, C, eps);
    CU_LAUNCHED("rmsnorm");
}

void cu_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C, float eps) {
    cu_rmsnorm_to(be, out, NX_F32, rstd, in, w, N, C, eps);
}

/* din_at: the new din in bf16 too, where not null */
void cu_rmsnorm_backward_to(nx_backend *, float *din, void *din_at, nx_dtype at, float *dw, const float *dout,
                            const float *in, const float *w, const float *rstd, int N, int C) {
    NX_ASSERT(!din_at || at == NX_BF16);
    if (N == 0 || C == 0) return;
    __nv_bfloat16 *d16 = (__nv_bfloat16 *)din_at;
    bool fused = C % 4 == 0 && C <= RMS_COLS && cu_aligned16(din) && cu_aligned16(dout) && cu_aligned16(in) &&
                 cu_aligned16(w) && (uintptr_t)d16 % 8 == 0;
    /* Fused: chunks of 32 rows or more (8 a warp), at most 1024 of them (a
     * short second stage) and as many as the partials hold (C ≤ 1024: 512
     * or more). 8192 rows make 256 blocks of 4 warps: at most 255 registers
     * a thread (C = 1024 takes 254) let 2 blocks share an SM, so an H200's
     * 132 SMs hold them all at once, in one wave, every warp with 8 rows;
     * at C = 1024 a warp has a row's dy, x and din (12 KB) in flight at
     * once, 96 KB an SM, about three times what keeps HBM busy. The
     * fallback: chunks of 64 rows or more. */
    int least = fused ? 32 : 64;
    int64_t most = CU_NORM_PARTIALS / C > 0 ? CU_NORM_PARTIALS / C : 1;
    if (fused && most > 1024) most = 1024;
    int chunks = (int)((N + least - 1) / least < most ? (N + least - 1) / least : most);
    int rows_per = (N + chunks - 1) / chunks;
    chunks = (N + rows_per - 1) / rows_per;
    cu_work_reset();
    double *part = (double *)cu_work((size_t)chunks * C * sizeof(double));
    if (fused) {
        switch ((C + 127) / 128) {
        case 1: rmsnorm_back<1>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 2: rmsnorm_back<2>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 3: rmsnorm_back<3>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 4: rmsnorm_back<4>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 5: rmsnorm_back<5>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 6: rmsnorm_back<6>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        case 7: rmsnorm_back<7>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        default: rmsnorm_back<8>(din, d16, part, dout, in, w, rstd, N, C, rows_per, chunks); break;
        }
    } else {
        rmsnorm_dx_k<<<N, CU_THREADS, 0, cu_stream()>>>(din, d16, dout, in, w, rstd, C);
        rmsnorm_dw_part_k<<<dim3(cu_blocks(C, 128), chunks), 128, 0, cu_stream()>>>(part, dout, in, rstd, N, C,
                                                                                    rows_per);
    }
    rmsnorm_dw_k<<<cu_blocks(C, 32), dim3(32, RMS_SLICES), 0, cu_stream()>>>(dw, part, chunks, C);
    CU_LAUNCHED("rmsnorm backward");
}

void cu_rmsnorm_backward(nx_backend *be, float *din, float *dw, const float *dout, const float *in, const float *w,
                         const float *rstd, int N, int C) {
    cu_rmsnorm_backward_to(be, din, nullptr, NX_F32, dw, dout, in, w, rstd, N, C);
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

/* C (f32, or bf16 when c16) = A·B + beta·C, bf16 operands, f32 accumulation */
static void gemm16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *A, int lda,
                   const void *B, int ldb, float beta, void *C, int ldc, const char *what, bool c16 = false) {
    const float one = 1.0f;
    cu_check_blas(cublasGemmEx(CU.blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C,
                               c16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  what);
}

/* ---- D = A·B + C with C ≠ D (cublasLt): the residual added in the
 * product's epilogue. A plan (descriptors and the heuristic's algorithm)
 * is kept per shape, strides and alignment; a shape the table has no room
 * for, or that cublasLt has no algorithm for, returns false and the caller
 * adds in a pass of its own. */
struct lt_plan {
    int ta, tb, m, n, k, lda, ldb, ldc, align;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    bool ok;
};
static lt_plan LT[64];
static int NLT;

/* the largest power of two up to 256 that divides every address */
static int common_align(const void *const *p, int n) {
    uintptr_t bits = 256;
    for (int i = 0; i < n; i++) bits |= (uintptr_t)p[i];
    return (int)(bits & (~bits + 1));
}

static const lt_plan *lt_plan_for(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                                  int ldc, int align) {
    for (int i = 0; i < NLT; i++) {
        const lt_plan &p = LT[i];
        if (p.ta == ta && p.tb == tb && p.m == m && p.n == n && p.k == k && p.lda == lda && p.ldb == ldb &&
            p.ldc == ldc && p.align == align)
            return p.ok ? &p : nullptr;
    }
    if (NLT == (int)(sizeof LT / sizeof LT[0])) return nullptr;
    lt_plan &p = LT[NLT++];
    p = lt_plan{(int)ta, (int)tb, m, n, k, lda, ldb, ldc, align};
    cu_check_blas(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLt descriptor");
    cu_check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "cublasLt");
    cu_check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "cublasLt");
    cu_check_blas(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m,
                                             lda), "cublasLt layout");
    cu_check_blas(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k,
                                             ldb), "cublasLt layout");
    cu_check_blas(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, m, n, ldc), "cublasLt layout");
    cublasLtMatmulPreference_t pref;
    cu_check_blas(cublasLtMatmulPreferenceCreate(&pref), "cublasLt preference");
    uint64_t ws = CU_LT_BYTES;
    uint32_t al = (uint32_t)align;
    cu_check_blas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
                  "cublasLt preference");
    const cublasLtMatmulPreferenceAttributes_t aligns[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (auto at : aligns) cu_check_blas(cublasLtMatmulPreferenceSetAttribute(pref, at, &al, sizeof al), "cublasLt");
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    p.ok = cublasLtMatmulAlgoGetHeuristic(CU.lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &h, &found) ==
               CUBLAS_STATUS_SUCCESS && found > 0;
    if (p.ok) p.algo = h.algo;
    cublasLtMatmulPreferenceDestroy(pref);
    return p.ok ? &p : nullptr;
}

/* D = A·B + C, bf16 operands, f32 C and D (leading dimension ldc both) */
static bool gemm16_add(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *A, int lda,
                       const void *B, int ldb, const float *C, float *D, int ldc) {
    if (!CU.lt_on) return false;
    const void *ptrs[] = {A, B, C, D};
    const lt_plan *p = lt_plan_for(ta, tb, m, n, k, lda, ldb, ldc, common_align(ptrs, 4));
    if (!p) return false;
    const float one = 1.0f;
    void *work = (char *)CU.narrow + CU_NARROW_BYTES; /* cublasLt's, after the narrowing area */
    cu_check_blas(cublasLtMatmul(CU.lt, p->op, &one, A, p->a, B, p->b, &one, C, p->c, D, p->c, &p->algo, work,
                                 CU_LT_BYTES, cu_stream()),
                  "linear + residual (bf16)");
    return true;
}

/* y += x on rows × cols at row stride ld: a product's residual, where cublasLt could not add it */
static void cu_add_rows(float *y, const float *x, int64_t rows, int cols, int64_t ld) {
    add2d_k<<<rows_grid(rows, cols), CU_THREADS, 0, cu_stream()>>>(y, x, rows, cols, ld);
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

/* out (N × OC) = in (N × IC) · Wᵀ (+ res, N × OC, where not NULL): chunks
 * of W's rows (when narrowed) and of in's rows; in16: the input already in
 * bf16 (the activations' type), used as it is (in unused); out16: out
 * holds bf16 (no res) */
static void linear_bf16(void *out, const float *in, const unsigned short *in16, const nx_weight *W, int N,
                        const float *res = nullptr, bool out16 = false) {
    NX_ASSERT(!(res && out16));
    int OC = W->rows, IC = W->cols;
    bool wide = W->type == NX_F32 && !W->bf16; /* f32 weights narrowed here, or their bf16 copy read */
    const unsigned short *w16s = (const unsigned short *)(W->type == NX_F32 ? W->bf16 : W->data);
    int64_t wr = wide ? min64(OC, (in16 ? CU.narrow_elems : CU.narrow_elems / 2) / IC) : OC;
    int64_t xr = in16 ? N : min64(N, (CU.narrow_elems - (wide ? wr * IC : 0)) / IC);
    NX_ASSERTM(wr > 0 && xr > 0, "linear: rows too long for the bf16 narrowing area");
    unsigned short *w16 = CU.narrow, *x16 = CU.narrow + (wide ? wr * IC : 0);
    for (int o0 = 0; o0 < OC; o0 += (int)wr) {
        int oc = (int)min64(wr, OC - o0);
        const void *w = wide ? narrowed(w16, (const float *)W->data + (int64_t)o0 * IC, oc, IC, IC)
                             : (const void *)(w16s + (int64_t)o0 * IC);
        for (int r0 = 0; r0 < N; r0 += (int)xr) {
            int n = (int)min64(xr, N - r0);
            const unsigned short *x = in16 ? in16 + (int64_t)r0 * IC : x16;
            if (!in16 && (o0 == 0 || xr < N)) narrowed(x16, in + (int64_t)r0 * IC, n, IC, IC); /* else still there */
            /* outᵀ (oc, n) = W (oc, IC) · inᵀ (IC, n) (+ resᵀ) */
            int64_t at = (int64_t)r0 * OC + o0;
            float *o32 = (float *)out + at;
            if (res && gemm16_add(CUBLAS_OP_T, CUBLAS_OP_N, oc, n, IC, w, IC, x, IC, res + at, o32, OC)) continue;
            void *o = out16 ? (void *)((unsigned short *)out + at) : (void *)o32;
            gemm16(CUBLAS_OP_T, CUBLAS_OP_N, oc, n, IC, w, IC, x, IC, 0.0f, o, OC, "linear (bf16)", out16);
            if (res) cu_add_rows(o32, res + at, n, oc, OC);
        }
    }
}

/* din = din_beta·din + dout · W (din in bf16 where din16, din_beta 0 then)
 * and dW = dW_beta·dW + doutᵀ · in (dW_beta 0 or 1), f32 weights. W is
 * narrowed once (not at all where W->bf16 holds it) beside chunks of the
 * rows of in and dout, each narrowed once for both products (in not at all
 * when in16 holds it in bf16, dout not when dout16 does); a W too large for
 * that is narrowed a chunk of its rows at a time for din (of its columns
 * for a din in bf16, rounded once from the whole sum), and the rows'
 * chunks then serve dW alone. */
static void linear_backward_bf16(void *din, bool din16, float din_beta, float *dW, float dW_beta, const float *dout,
                                 const unsigned short *dout16, const float *in, const unsigned short *in16,
                                 const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    const float *Wf = (const float *)W->data;
    const unsigned short *ws = (const unsigned short *)W->bf16;
    int64_t whole = ws ? 0 : (int64_t)OC * IC, row = (in16 ? 0 : IC) + (dout16 ? 0 : OC);
    bool together = whole + row <= CU.narrow_elems;
    NX_ASSERT(!din16 || din_beta == 0.0f);
    if (din && din16 && !together) { /* chunks of W's columns (each over all the sum's terms) and of dout's rows */
        int64_t wc = min64(IC, CU.narrow_elems / 2 / OC), dr = dout16 ? N : min64(N, (CU.narrow_elems - wc * OC) / OC);
        NX_ASSERTM(wc > 0 && dr > 0, "linear backward: rows too long for the bf16 narrowing area");
        unsigned short *w16 = CU.narrow, *d16 = CU.narrow + wc * OC;
        for (int i0 = 0; i0 < IC; i0 += (int)wc) {
            int ic = (int)min64(wc, IC - i0);
            narrowed(w16, Wf + i0, OC, ic, IC);
            for (int r0 = 0; r0 < N; r0 += (int)dr) {
                int n = (int)min64(dr, N - r0);
                const unsigned short *d = dout16 ? dout16 + (int64_t)r0 * OC
                                                 : narrowed(d16, dout + (int64_t)r0 * OC, n, OC, OC);
                /* din_cᵀ (ic, n) = W_cᵀ (ic, OC) · doutᵀ (OC, n) */
                gemm16(CUBLAS_OP_N, CUBLAS_OP_N, ic, n, OC, w16, ic, d, OC, 0.0f,
                       (unsigned short *)din + (int64_t)r0 * IC + i0, IC, "linear backward (input, bf16)", true);
            }
        }
    }
    if (din && !din16 && !together) { /* chunks of W's rows (the sum's terms) and of dout's rows */
        int64_t wr = min64(OC, CU.narrow_elems / 2 / IC), dr = dout16 ? N : min64(N, (CU.narrow_elems - wr * IC) / wr);
        NX_ASSERTM(wr > 0 && dr > 0, "linear backward: rows too long for the bf16 narrowing area");
        unsigned short *w16 = CU.narrow, *d16 = CU.narrow + wr * IC;
        for (int o0 = 0; o0 < OC; o0 += (int)wr) {
            int oc = (int)min64(wr, OC - o0);
            narrowed(w16, Wf + (int64_t)o0 * IC, oc, IC, IC);
            for (int r0 = 0; r0 < N; r0 += (int)dr) {
                int n = (int)min64(dr, N - r0);
                const unsigned short *d = dout16 ? dout16 + (int64_t)r0 * OC + o0
                                                 : narrowed(d16, dout + (int64_t)r0 * OC + o0, n, oc, OC);
                /* dinᵀ (IC, n) (+)= W_cᵀ (IC, oc) · dout_cᵀ (oc, n) */
                gemm16(CUBLAS_OP_N, CUBLAS_OP_N, IC, n, oc, w16, IC, d, dout16 ? OC : oc, o0 ? 1.0f : din_beta,
                       (float *)din + (int64_t)r0 * IC, IC, "linear backward (input, bf16)");
            }
        }
    }
    int64_t wsz = din && together ? whole : 0, rr = row ? min64(N, (CU.narrow_elems - wsz) / row) : N;
    NX_ASSERTM(rr > 0, "linear backward: rows too long for the bf16 narrowing area");
    unsigned short *w16 = CU.narrow, *x16 = CU.narrow + wsz, *d16 = x16 + (in16 ? 0 : rr * IC);
    if (wsz) narrowed(w16, Wf, OC, IC, IC);
    const unsigned short *wd = ws ? ws : w16;
    for (int r0 = 0; r0 < N; r0 += (int)rr) {
        int n = (int)min64(rr, N - r0);
        const unsigned short *x = in16 ? in16 + (int64_t)r0 * IC : narrowed(x16, in + (int64_t)r0 * IC, n, IC, IC);
        const unsigned short *d = dout16 ? dout16 + (int64_t)r0 * OC : narrowed(d16, dout + (int64_t)r0 * OC, n, OC, OC);
        if (din && together) /* dinᵀ (IC, n) (+)= Wᵀ (IC, OC) · doutᵀ (OC, n) */
            gemm16(CUBLAS_OP_N, CUBLAS_OP_N, IC, n, OC, wd, IC, d, OC, din_beta,
                   (char *)din + (int64_t)r0 * IC * (din16 ? 2 : 4), IC, "linear backward (input, bf16)", din16);
        /* dWᵀ (IC, OC) (+)= in_cᵀ (IC, n) · dout_c (n, OC) */
        gemm16(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, n, x, IC, d, OC, r0 ? 1.0f : dW_beta, dW, IC,
               "linear backward (weights, bf16)");
    }
}

/* din = din_beta·din + dout · W, dW and db (+)= doutᵀ · in and Σ dout
 * (written where gm is NX_GRAD_WRITE); all f32 */
static void linear_backward_f32(float *din, float din_beta, float *dW, float *db, nx_grad_mode gm, const float *dout,
                                const float *in, const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    if (N == 0) return;
    float dW_beta = gm == NX_GRAD_WRITE ? 0.0f : 1.0f;
    if (products_in_bf16(W, N)) {
        linear_backward_bf16(din, false, din_beta, dW, dW_beta, dout, nullptr, in, nullptr, W, N);
    } else {
        if (din) /* dinᵀ (IC, N) (+)= Wᵀ (IC, OC) · doutᵀ (OC, N) */
            cu_gemm(CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, (const float *)W->data, IC, dout, OC, din_beta, din, IC,
                    "linear backward (input)");
        /* dWᵀ (IC, OC) (+)= inᵀ (IC, N) · dout (N, OC) */
        cu_gemm(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, in, IC, dout, OC, dW_beta, dW, IC, "linear backward (weights)");
    }
    if (db) col_sum_k<<<cu_blocks(OC, 128), 128, 0, cu_stream()>>>(db, dout, N, OC, gm == NX_GRAD_WRITE);
    CU_LAUNCHED("linear backward");
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
    linear_backward_f32(din, 1.0f, dW, db, NX_GRAD_ADD, dout, in, W, N);
}

/* The products on bf16 operands whatever the weights' size or the
 * precision: out (bf16 when out16) = in (bf16 when in16) · Wᵀ (+ res), f32
 * weights narrowed, f16 ones widened into the workspace first. */
static void linear_typed(void *out, bool out16, const void *in, bool in16, const nx_weight *W, int N,
                         const float *res = nullptr) {
    int OC = W->rows, IC = W->cols;
    nx_weight Wf = *W;
    if (W->type != NX_F32 && W->type != NX_BF16) { /* widened into the workspace, then narrowed as an f32 matrix */
        NX_ASSERTM(W->type == NX_F16, "linear on bf16 activations: f32, bf16 or f16 weights");
        cu_work_reset();
        Wf.data = cu_work((size_t)OC * IC * sizeof(float));
        Wf.type = NX_F32;
        widen_k<<<cu_blocks((int64_t)OC * IC), CU_THREADS, 0, cu_stream()>>>((float *)Wf.data, W->data, W->type,
                                                                             (int64_t)OC * IC);
    }
    linear_bf16(out, in16 ? nullptr : (const float *)in, in16 ? (const unsigned short *)in : nullptr, &Wf, N, res,
                out16);
}

/* The input in bf16 (the activations' type) */
void cu_linear_from(nx_backend *, float *out, const void *in, nx_dtype it, const nx_weight *W, const float *b, int N) {
    NX_ASSERT(it == NX_BF16);
    if (N == 0) return;
    linear_typed(out, false, in, true, W, N);
    if (b) add_bias_k<<<cu_blocks((int64_t)N * W->rows), CU_THREADS, 0, cu_stream()>>>(out, b, N, W->rows);
    CU_LAUNCHED("linear");
}

/* The output in bf16: the f32 sums rounded by cuBLAS */
void cu_linear_to(nx_backend *, void *out, nx_dtype ot, const void *in, nx_dtype it, const nx_weight *W, int N) {
    NX_ASSERT(ot == NX_BF16 && (it == NX_F32 || it == NX_BF16));
    if (N == 0) return;
    linear_typed(out, true, in, it == NX_BF16, W, N);
    CU_LAUNCHED("linear");
}

/* din overwritten (the products' beta 0: din is neither zeroed first nor
 * read), and dW and db too where gm is NX_GRAD_WRITE; a din in bf16 always
 * from bf16 operands */
void cu_linear_backward_from(nx_backend *, void *din, nx_dtype dit, float *dW, float *db, nx_grad_mode gm,
                             const void *dout, nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W, int N) {
    NX_ASSERT((it == NX_BF16 || it == NX_F32) && (dt == NX_BF16 || dt == NX_F32) && W->type == NX_F32);
    NX_ASSERT((dit == NX_BF16 || dit == NX_F32) && (!db || dt == NX_F32));
    if (it == NX_F32 && dt == NX_F32 && dit == NX_F32) {
        linear_backward_f32((float *)din, 0.0f, dW, db, gm, (const float *)dout, (const float *)in, W, N);
        return;
    }
    if (N == 0) return;
    bool d16 = dt == NX_BF16, i16 = it == NX_BF16;
    linear_backward_bf16(din, dit == NX_BF16, 0.0f, dW, gm == NX_GRAD_WRITE ? 0.0f : 1.0f,
                         d16 ? nullptr : (const float *)dout,
                         d16 ? (const unsigned short *)dout : nullptr, i16 ? nullptr : (const float *)in,
                         i16 ? (const unsigned short *)in : nullptr, W, N);
    if (db)
        col_sum_k<<<cu_blocks(W->rows, 128), 128, 0, cu_stream()>>>(db, (const float *)dout, N, W->rows,
                                                                    gm == NX_GRAD_WRITE);
    CU_LAUNCHED("linear backward");
}

/* The residual in the product's epilogue where the product is on bf16
 * operands (bf16 activations with f32 or bf16 weights, or f32 ones that
 * bf16 precision narrows) and there is no bias; else linear, then add. */
void cu_linear_add(nx_backend *be, float *out, const float *res, const void *in, nx_dtype it, const nx_weight *W,
                   const float *b, int N) {
    NX_ASSERT(it == NX_F32 || it == NX_BF16);
    bool in16 = it == NX_BF16;
    bool fused = !b && N > 0 && (in16 ? W->type == NX_F32 || W->type == NX_BF16 : products_in_bf16(W, N));
    if (fused) {
        linear_typed(out, false, in, in16, W, N, res);
        CU_LAUNCHED("linear + residual");
        return;
    }
    if (in16) cu_linear_from(be, out, in, it, W, b, N);
    else cu_linear(be, out, (const float *)in, W, b, N);
    cu_add(be, out, res, (int64_t)N * W->rows);
}

void cu_rope(nx_backend *, float *x, int64_t ldx, const int32_t *pos, const float *cs, const float *sn, int N, int H,
             int HS, bool inverse) {
    int64_t n = (int64_t)N * H * (HS / 2);
    if (n == 0) return;
    float sign = inverse ? -1.0f : 1.0f;
    if (HS / 2 % 4 == 0 && ldx % 4 == 0 && cu_aligned16(x) && cu_aligned16(cs) && cu_aligned16(sn))
        rope_k<4><<<rows_grid(N, (int64_t)H * (HS / 2) / 4), CU_THREADS, 0, cu_stream()>>>(x, ldx, pos, cs, sn, N, H,
                                                                                          HS, sign);
    else
        rope_k<1><<<rows_grid(N, (int64_t)H * (HS / 2)), CU_THREADS, 0, cu_stream()>>>(x, ldx, pos, cs, sn, N, H, HS,
                                                                                      sign);
    CU_LAUNCHED("rope");
}

template <class IT, class OT>
static void swiglu_as(OT *h, const IT *gu, int N, int F) {
    if (F % 4 == 0 && cu_aligned16(h) && cu_aligned16(gu))
        swiglu_k<4><<<rows_grid(N, F / 4), CU_THREADS, 0, cu_stream()>>>(h, gu, N, F);
    else
        swiglu_k<1><<<rows_grid(N, F), CU_THREADS, 0, cu_stream()>>>(h, gu, N, F);
}

void cu_swiglu_to(nx_backend *, void *h, const void *gu, nx_dtype at, int N, int F) {
    NX_ASSERT(at == NX_F32 || at == NX_BF16);
    if ((int64_t)N * F == 0) return;
    if (at == NX_BF16) swiglu_as((__nv_bfloat16 *)h, (const __nv_bfloat16 *)gu, N, F);
    else swiglu_as((float *)h, (const float *)gu, N, F);
    CU_LAUNCHED("swiglu");
}

void cu_swiglu(nx_backend *be, float *h, const float *gu, int N, int F) { cu_swiglu_to(be, h, gu, NX_F32, N, F); }

template <class GT, class HT>
static void swiglu_back_as(GT *dgu, const HT *dh, const GT *gu, int N, int F) {
    if (F % 4 == 0 && cu_aligned16(dgu) && cu_aligned16(dh) && cu_aligned16(gu))
        swiglu_back_k<4><<<rows_grid(N, F / 4), CU_THREADS, 0, cu_stream()>>>(dgu, dh, gu, N, F);
    else
        swiglu_back_k<1><<<rows_grid(N, F), CU_THREADS, 0, cu_stream()>>>(dgu, dh, gu, N, F);
}

/* gu and dgu in f32 or bf16, dh in f32 or (with gu in bf16) bf16 */
void cu_swiglu_backward_from(nx_backend *, void *dgu, const void *dh, nx_dtype ht, const void *gu, nx_dtype gt, int N,
                             int F) {
    NX_ASSERT((gt == NX_F32 || gt == NX_BF16) && (ht == NX_F32 || ht == gt));
    if ((int64_t)N * F == 0) return;
    typedef __nv_bfloat16 bf16;
    if (gt == NX_BF16 && ht == NX_BF16) swiglu_back_as((bf16 *)dgu, (const bf16 *)dh, (const bf16 *)gu, N, F);
    else if (gt == NX_BF16) swiglu_back_as((bf16 *)dgu, (const float *)dh, (const bf16 *)gu, N, F);
    else swiglu_back_as((float *)dgu, (const float *)dh, (const float *)gu, N, F);
    CU_LAUNCHED("swiglu backward");
}

void cu_swiglu_backward(nx_backend *be, float *dgu, const float *dh, const float *gu, int N, int F) {
    cu_swiglu_backward_from(be, dgu, dh, NX_F32, gu, NX_F32, N, F);
}

void cu_add(nx_backend *, float *y, const float *x, int64_t n) {
    if (n == 0) return;
    if (n % 4 == 0 && cu_aligned16(y) && cu_aligned16(x)) add_k<4><<<cu_blocks(n / 4), CU_THREADS, 0, cu_stream()>>>(y, x, n);
    else add_k<1><<<cu_blocks(n), CU_THREADS, 0, cu_stream()>>>(y, x, n);
    CU_LAUNCHED("add");
}

void cu_argmax(nx_backend *, int32_t *out, const float *x, int N, int V) {
    if (N == 0) return;
    argmax_k<<<N, CU_THREADS, 0, cu_stream()>>>(out, x, V);
    CU_LAUNCHED("argmax");
}
