/* cuda.cu — the CUDA backend (built only with `make CUDA=1`).
 *
 * A prototype that proves the backend seam: device memory through the
 * vtable (cudaMalloc, copies both ways, fills, a sync), the linear op on
 * cuBLAS (forward and backward, f32 with TF32 off: results comparable to
 * the CPU's within float rounding) and RMSNorm as CUDA kernels (forward
 * and backward), plus add. Every other op is NULL: tests/test_backend.c
 * reports each as skipped, and a model cannot run here yet (the CUDA
 * issue fills the table). Everything runs on one stream, in order, so a
 * download sees every op queued before it.
 *
 * Row-major on cuBLAS (column-major): a row-major (R, C) matrix is the
 * column-major (C, R) matrix, its transpose, so out = in · Wᵀ is computed
 * as outᵀ = W · inᵀ with W taken transposed. Reductions accumulate in
 * double, as the reference does. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "nexus/ops.h"
}

namespace {

struct cuda_state {
    cublasHandle_t blas;
    int device;
};

cuda_state STATE;

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        char m[256];
        snprintf(m, sizeof m, "%s: %s", what, cudaGetErrorString(e));
        nx_assert_fail("CUDA call succeeded", __FILE__, __LINE__, m);
    }
}

void check_blas(cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        char m[256];
        snprintf(m, sizeof m, "%s: cuBLAS status %d", what, (int)s);
        nx_assert_fail("cuBLAS call succeeded", __FILE__, __LINE__, m);
    }
}

/* ---- memory ---- */

void *cu_alloc(nx_backend *, size_t n) {
    void *p = nullptr;
    if (cudaMalloc(&p, n ? n : 256) != cudaSuccess) {
        cudaGetLastError(); /* clear the error: the caller reports it */
        return nullptr;
    }
    check(cudaMemset(p, 0, n ? n : 256), "cudaMemset");
    return p;
}

void cu_free(nx_backend *, void *p) { check(cudaFree(p), "cudaFree"); }

void cu_upload(nx_backend *, void *dst, const void *src, size_t n) {
    check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "upload");
}

void cu_download(nx_backend *, void *dst, const void *src, size_t n) {
    check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "download");
}

void cu_copy(nx_backend *, void *dst, const void *src, size_t n) {
    check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice), "copy");
}

void cu_fill(nx_backend *, void *dst, int byte, size_t n) { check(cudaMemset(dst, byte, n), "fill"); }

void cu_sync(nx_backend *) { check(cudaDeviceSynchronize(), "sync"); }

int cu_plan(nx_backend *, const nx_work *, nx_err *) { return NX_OK; /* no workspace yet */ }

bool cu_supports_weight(const nx_backend *, nx_dtype t) { return t == NX_F32; }

/* ---- kernels ---- */

__global__ void add_bias(float *out, const float *b, int N, int OC) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < (long)N * OC) out[i] += b[i % OC];
}

/* db[o] += Σ_n dout[n, o] */
__global__ void col_sum(float *db, const float *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    double s = 0;
    for (int n = 0; n < N; n++) s += dout[(long)n * OC + o];
    db[o] += (float)s;
}

__global__ void add_kernel(float *y, const float *x, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

/* Σ over a block of per-thread doubles (blockDim.x a power of two ≤ 1024). */
__device__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* One block per row: out = w ⊙ x · rsqrt(mean x² + eps). */
__global__ void rmsnorm_fwd(float *out, float *rstd, const float *in, const float *w, int C, float eps) {
    __shared__ double sh[256];
    const float *x = in + (long)blockIdx.x * C;
    float *o = out + (long)blockIdx.x * C;
    double ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)x[c] * x[c];
    ss = block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / C + eps));
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = w[c] * (x[c] * r);
}

/* One block per row: dx += r (w⊙dy) − (r³/C) x Σ(w⊙dy⊙x). */
__global__ void rmsnorm_bwd_dx(float *din, const float *dout, const float *in, const float *w, const float *rstd,
                               int C) {
    __shared__ double sh[256];
    long row = blockIdx.x;
    const float *x = in + row * C, *dy = dout + row * C;
    float *dx = din + row * C, r = rstd[row];
    double dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)w[c] * dy[c] * x[c];
    dot = block_sum(dot, sh);
    float k = (float)(dot * r * r * r / C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) dx[c] += r * w[c] * dy[c] - k * x[c];
}

/* One thread per channel: dw[c] += Σ_n dy ⊙ x · r (a fixed order: deterministic). */
__global__ void rmsnorm_bwd_dw(float *dw, const float *dout, const float *in, const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int n = 0; n < N; n++) s += (double)dout[(long)n * C + c] * in[(long)n * C + c] * rstd[n];
    dw[c] += (float)s;
}

unsigned blocks(int64_t n, int t) { return (unsigned)((n + t - 1) / t); }

/* ---- ops ---- */

void cu_linear(nx_backend *, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    int OC = W->rows, IC = W->cols;
    const float one = 1.0f, zero = 0.0f;
    /* outᵀ (OC, N) = W (OC, IC) · inᵀ (IC, N) */
    check_blas(cublasSgemm(STATE.blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &one, (const float *)W->data, IC, in,
                           IC, &zero, out, OC),
               "linear");
    if (b && N > 0) add_bias<<<blocks((int64_t)N * OC, 256), 256>>>(out, b, N, OC);
}

void cu_linear_backward(nx_backend *, float *din, float *dW, float *db, const float *dout, const float *in,
                        const nx_weight *W, int N) {
    int OC = W->rows, IC = W->cols;
    const float one = 1.0f;
    if (din) /* dinᵀ (IC, N) += Wᵀ (IC, OC) · doutᵀ (OC, N) */
        check_blas(cublasSgemm(STATE.blas, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, (const float *)W->data, IC,
                               dout, OC, &one, din, IC),
                   "linear backward (input)");
    /* dWᵀ (IC, OC) += inᵀ (IC, N) · dout (N, OC) */
    check_blas(cublasSgemm(STATE.blas, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &one, in, IC, dout, OC, &one, dW, IC),
               "linear backward (weights)");
    if (db) col_sum<<<blocks(OC, 128), 128>>>(db, dout, N, OC);
}

void cu_rmsnorm(nx_backend *, float *out, float *rstd, const float *in, const float *w, int N, int C, float eps) {
    if (N > 0) rmsnorm_fwd<<<N, 256>>>(out, rstd, in, w, C, eps);
}

void cu_rmsnorm_backward(nx_backend *, float *din, float *dw, const float *dout, const float *in, const float *w,
                         const float *rstd, int N, int C) {
    if (N == 0) return;
    rmsnorm_bwd_dx<<<N, 256>>>(din, dout, in, w, rstd, C);
    rmsnorm_bwd_dw<<<blocks(C, 128), 128>>>(dw, dout, in, rstd, N, C);
}

void cu_add(nx_backend *, float *y, const float *x, int64_t n) {
    if (n > 0) add_kernel<<<blocks(n, 256), 256>>>(y, x, n);
}

nx_ops make_ops() {
    nx_ops o = {};
    o.linear = cu_linear;
    o.linear_backward = cu_linear_backward;
    o.rmsnorm = cu_rmsnorm;
    o.rmsnorm_backward = cu_rmsnorm_backward;
    o.add = cu_add;
    return o;
}

nx_ops OPS = make_ops();
nx_backend CUDA;
bool READY;

} // namespace

extern "C" nx_backend *nx_backend_cuda(nx_err *err) {
    if (READY) return &CUDA;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        nx_fail(err, "no CUDA device found (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return nullptr;
    }
    if (cudaSetDevice(0) != cudaSuccess || cublasCreate(&STATE.blas) != CUBLAS_STATUS_SUCCESS) {
        nx_fail(err, "could not start CUDA and cuBLAS on device 0");
        return nullptr;
    }
    /* fp32 exactly: no TF32, no reduced-precision reductions */
    check_blas(cublasSetMathMode(STATE.blas, CUBLAS_PEDANTIC_MATH), "math mode");
    CUDA.name = "cuda";
    CUDA.host_memory = false;
    CUDA.ops = &OPS;
    CUDA.alloc = cu_alloc;
    CUDA.free = cu_free;
    CUDA.upload = cu_upload;
    CUDA.download = cu_download;
    CUDA.copy = cu_copy;
    CUDA.fill = cu_fill;
    CUDA.sync = cu_sync;
    CUDA.plan = cu_plan;
    CUDA.supports_weight = cu_supports_weight;
    CUDA.impl = &STATE;
    READY = true;
    return &CUDA;
}
