/* cuda_gemm.cu — cuBLAS GEMM rates of linear's shapes in the CUDA backend's
 * two bf16-precision forms, in one process: f32 storage with
 * CUBLAS_COMPUTE_32F_FAST_16BF (the operands rounded inside cuBLAS) against
 * bf16 storage with f32 accumulation (bf16 or f32 output), and their ratio;
 * and the time to narrow the activations' side to bf16 as a share of the
 * bf16 product's.
 * This is what decides src/backend/cuda/ops.cu's products_in_bf16.
 *
 *   nvcc -O2 -gencode arch=compute_90,code=sm_90 -o cuda_gemm bench/cuda_gemm.cu -lcublas && ./cuda_gemm
 *
 * Shapes: M × N × K of outᵀ = W · inᵀ with N = tokens of a step: the 1.1 B
 * teacher and 0.2 B student of bench/kd-1b.yaml (8 × 1024 tokens) and
 * teacher-19m / S7M (64 × 256). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>

__global__ void fill(float *x, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
}

__global__ void narrow(__nv_bfloat16 *y, const float *x, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16(x[i]);
}

/* as the backend narrows activations: 4 values a thread, 16-byte loads */
__global__ void narrow4(__nv_bfloat16 *y, const float *x, long n4) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 v = ((const float4 *)x)[i];
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    ((__nv_bfloat162 *)y)[2 * i] = lo, ((__nv_bfloat162 *)y)[2 * i + 1] = hi;
}

/* ms per narrowing of n values (the activations' side of a product) */
static double time_narrow(__nv_bfloat16 *y, const float *x, long n) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    long n4 = n / 4;
    narrow4<<<(n4 + 255) / 256, 256>>>(y, x, n4);
    cudaEventRecord(e0);
    for (int i = 0; i < 20; i++) narrow4<<<(n4 + 255) / 256, 256>>>(y, x, n4);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return ms / 20;
}

/* ms per call of one form: 0 f32 + FAST_16BF, 1 bf16 -> f32, 2 bf16 -> bf16
 * (the better of two timed rounds of 20 calls) */
static double time_form(cublasHandle_t h, int form, int m, int n, int k, const float *A, const float *B,
                        const __nv_bfloat16 *Ah, const __nv_bfloat16 *Bh, void *C) {
    const float one = 1, zero = 0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    double best = 1e30;
    for (int round = 0; round < 3; round++) { /* the first warms up */
        cudaEventRecord(e0);
        for (int i = 0; i < 20; i++) {
            if (form == 0)
                cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_32F, k, B, CUDA_R_32F, k, &zero, C,
                             CUDA_R_32F, m, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT);
            else
                cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, Ah, CUDA_R_16BF, k, Bh, CUDA_R_16BF, k, &zero,
                             C, form == 1 ? CUDA_R_32F : CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        }
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (round > 0 && ms / 20 < best) best = ms / 20;
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return best;
}

int main(void) {
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cuda_gemm: no CUDA device or cuBLAS\n");
        return 1;
    }
    /* the 1.1 B teacher's q/k/v, o, gate/up, down and head; the student's; S7M's */
    const int shapes[][3] = {{2560, 8192, 2048}, {2048, 8192, 2048}, {11264, 8192, 2048}, {2048, 8192, 5632},
                             {32000, 8192, 2048}, {1536, 8192, 1024}, {1024, 8192, 1024}, {5632, 8192, 1024},
                             {1024, 8192, 2816}, {32000, 8192, 1024}, {1024, 2816, 8192}, {1536, 16384, 384},
                             {8192, 16384, 384}};
    printf("%-22s %14s %14s %14s %10s %14s\n", "M x N x K", "f32+FAST_16BF", "bf16->f32", "bf16->bf16", "bf16/f32",
           "narrow/gemm");
    for (const auto &s : shapes) {
        int m = s[0], n = s[1], k = s[2];
        long na = (long)m * k, nb = (long)n * k;
        float *A, *B, *C;
        __nv_bfloat16 *Ah, *Bh;
        cudaMalloc(&A, 4 * na), cudaMalloc(&B, 4 * nb), cudaMalloc(&C, 4L * m * n);
        cudaMalloc(&Ah, 2 * na), cudaMalloc(&Bh, 2 * nb);
        fill<<<(na + 255) / 256, 256>>>(A, na), fill<<<(nb + 255) / 256, 256>>>(B, nb);
        narrow<<<(na + 255) / 256, 256>>>(Ah, A, na), narrow<<<(nb + 255) / 256, 256>>>(Bh, B, nb);
        double t[3], f = 2.0 * m * n * k;
        for (int form = 0; form < 3; form++) t[form] = time_form(h, form, m, n, k, A, B, Ah, Bh, C);
        char shape[32];
        snprintf(shape, sizeof shape, "%d x %d x %d", m, n, k);
        double tn = time_narrow(Bh, B, nb); /* the activations (N × K) narrowed for the product */
        printf("%-22s %9.1f TF/s %9.1f TF/s %9.1f TF/s %9.2fx %13.1f%%\n", shape, f / t[0] / 1e9, f / t[1] / 1e9,
               f / t[2] / 1e9, t[0] / t[1], 100 * tn / t[1]);
        cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(Ah), cudaFree(Bh);
    }
    cublasDestroy(h);
    return 0;
}
