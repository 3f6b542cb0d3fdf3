/* cuda_impl.h — what the files of the CUDA backend share: its state (the
 * cuBLAS handle, the planned workspace), error checks, the workspace's
 * bump allocator, the per-row span tables, the deterministic two-stage
 * sum, and the op functions each file contributes to the table in cuda.cu.
 *
 * Determinism. A run resumed from a checkpoint must give the same bits on
 * the same GPU, so nothing here adds floats atomically: every reduction
 * runs in a fixed order (per-block partial sums over a fixed grid, then
 * one block adding the partials in index order), and the embedding's
 * backward sorts rows by token id (a stable radix sort) before adding. */
#ifndef NEXUS_BACKEND_CUDA_IMPL_H
#define NEXUS_BACKEND_CUDA_IMPL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "nexus/ops.h"
}

#include "sizes.h"

struct cu_state {
    cublasHandle_t blas;
    cublasLtHandle_t lt;   /* the products that add a residual (ops.cu, gemm16_add) */
    bool lt_on;            /* off (NEXUS_CUDA_LT=0): the residual added in a pass of its own */
    cublasComputeType_t compute; /* of linear's products (nx_precision) */
    nx_precision prec;
    /* bf16 precision's bf16 operands for cuBLAS, on unless
     * NEXUS_CUDA_BF16_WEIGHTS=0 (to measure against); flash attention's
     * switch is nx_cuda_flash's */
    bool native_bf16;
    /* flash attention's forward on warpgroup products (flash.cu): on an
     * sm_90 GPU (H100/H200) unless NEXUS_CUDA_WGMMA=0 */
    bool wgmma;
    char *work;            /* the workspace (device) */
    size_t work_bytes, work_used;
    nx_work planned;
    float *scores;         /* CU_SCORE_FLOATS (device), once attention is planned */
    unsigned short *narrow; /* CU_NARROW_BYTES (device), once bf16 precision is set, and
                             * cublasLt's CU_LT_BYTES of workspace after them */
    int64_t narrow_elems;   /* of it used: all, or fewer to test the chunking (NEXUS_CUDA_NARROW_ELEMS) */
    int32_t *rows_host;    /* (2 · rows) host staging of the span tables */
    int32_t *rows_dev;     /* (2 · rows) the span tables on the device */
    int32_t *rows_last;    /* what rows_dev holds: rows_last_n rows (−1: nothing) */
    int rows_last_n;
    size_t rows_cap;
    double allocated, peak, used_peak; /* bytes: nx_mem_info */
    /* The stream every op queues on (cu_stream): the legacy default one,
     * but rec while a replay is recorded (a graph is captured from a
     * stream of its own). */
    cudaStream_t stream, rec;
    unsigned epoch; /* counts moves of the workspace or span tables and precision changes (replays) */
    bool unrecordable; /* set by an op that cannot be recorded as called (a replay then runs op by op) */
};

extern cu_state CU;

void cu_check(cudaError_t e, const char *what);
void cu_check_blas(cublasStatus_t s, const char *what);
#define CU_LAUNCHED(what) cu_check(cudaGetLastError(), what)

static inline cudaStream_t cu_stream(void) { return CU.stream; }
/* Are the ops being recorded (nx_backend_replay)? */
static inline bool cu_recording(void) { return CU.stream != 0; }

/* Workspace: reset at the start of an op, then bump-allocated (256-byte
 * aligned; asserts that the plan covers it). */
void cu_work_reset(void);
void *cu_work(size_t bytes);

static inline unsigned cu_blocks(int64_t n, int t = CU_THREADS) { return (unsigned)((n + t - 1) / t); }

/* Per-row sequence and position of a batch of spans, on the device (its
 * own buffer, valid until the next call): seq[r], pos[r] for r < N.
 * Returns N. */
int cu_span_rows(const nx_span *spans, int nspans, int32_t **seq, int32_t **pos);

/* Bytes of temporary storage the stable radix sort of n (key, value)
 * int pairs needs (the embedding backward). */
void cu_sort_bytes(size_t n, size_t *bytes);

/* *out = scale · Σ partials[0..n) in index order (one block). */
void cu_finish_sum(double *out, const double *partials, int n, double scale);

/* Σ (max) over a block of per-thread values, K of them at once (one pair
 * of barriers); blockDim.x a multiple of 32 (at most 1024), sh at least
 * K · blockDim.x / 32 long; every thread gets the results. Each warp
 * reduces by shuffles, then every thread combines the warps' results in
 * warp order: a fixed order, so the same on every run (and each value the
 * same bits as reduced alone). */
template <int K, class T, class Op>
static __device__ __forceinline__ void cu_block_reduce(T (&v)[K], T *sh, T init, Op op) {
    int nw = blockDim.x / 32;
#pragma unroll
    for (int j = 0; j < K; j++) {
        for (int k = 16; k > 0; k >>= 1) v[j] = op(v[j], __shfl_xor_sync(0xffffffffu, v[j], k));
        if (threadIdx.x % 32 == 0) sh[j * nw + threadIdx.x / 32] = v[j];
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < K; j++) {
        T r = init;
        for (int w = 0; w < nw; w++) r = op(r, sh[j * nw + w]);
        v[j] = r;
    }
    __syncthreads();
}
struct cu_sum_op {
    __device__ double operator()(double a, double b) const { return a + b; }
};
struct cu_max_op {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
template <int K>
static __device__ __forceinline__ void cu_block_sums(double (&v)[K], double *sh) {
    cu_block_reduce(v, sh, 0.0, cu_sum_op());
}
template <int K>
static __device__ __forceinline__ void cu_block_maxs(float (&v)[K], float *sh) {
    cu_block_reduce(v, sh, -INFINITY, cu_max_op());
}
static __device__ __forceinline__ double cu_block_sum(double v, double *sh) {
    double r[1] = {v};
    cu_block_sums(r, sh);
    return r[0];
}
static __device__ __forceinline__ float cu_block_max(float v, float *sh) {
    float r[1] = {v};
    cu_block_maxs(r, sh);
    return r[0];
}

/* VEC consecutive floats (VEC 4: one 16-byte access, p 16-byte aligned;
 * VEC 2: one 8-byte access, p 8-byte aligned) */
template <int VEC>
static __device__ __forceinline__ void cu_load(float (&v)[VEC], const float *p) {
    if constexpr (VEC == 4) {
        float4 q = *(const float4 *)p;
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else if constexpr (VEC == 2) {
        float2 q = *(const float2 *)p;
        v[0] = q.x, v[1] = q.y;
    } else {
        for (int k = 0; k < VEC; k++) v[k] = p[k];
    }
}
/* ... from bf16 (VEC 4: one 8-byte load, p 8-byte aligned; VEC 2: one
 * 4-byte load, p 4-byte aligned) */
template <int VEC>
static __device__ __forceinline__ void cu_load(float (&v)[VEC], const __nv_bfloat16 *p) {
    if constexpr (VEC == 4) {
        uint2 q = *(const uint2 *)p;
        v[0] = __uint_as_float(q.x << 16), v[1] = __uint_as_float(q.x & 0xffff0000u);
        v[2] = __uint_as_float(q.y << 16), v[3] = __uint_as_float(q.y & 0xffff0000u);
    } else if constexpr (VEC == 2) {
        uint32_t q = *(const uint32_t *)p;
        v[0] = __uint_as_float(q << 16), v[1] = __uint_as_float(q & 0xffff0000u);
    } else {
        for (int k = 0; k < VEC; k++) v[k] = __bfloat162float(p[k]);
    }
}
template <int VEC>
static __device__ __forceinline__ void cu_store(float *p, const float (&v)[VEC]) {
    if constexpr (VEC == 4) *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    else for (int k = 0; k < VEC; k++) p[k] = v[k];
}
/* ... rounded to bf16 (VEC 4: one 8-byte store) */
template <int VEC>
static __device__ __forceinline__ void cu_store(__nv_bfloat16 *p, const float (&v)[VEC]) {
    if constexpr (VEC == 4) {
        __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
        *(uint2 *)p = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
    } else {
        for (int k = 0; k < VEC; k++) p[k] = __float2bfloat16_rn(v[k]);
    }
}
static inline bool cu_aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

/* The first key a query at position p sees (ops.h: p − window < j). */
static __device__ __forceinline__ int first_key(int p, int window) {
    return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
}

/* The score area of attention by GEMMs. */
static inline float *cu_scores(void) { return CU.scores; }

/* ops.cu */
void cu_embed(nx_backend *, float *, const int32_t *, const nx_weight *, int);
void cu_embed_backward(nx_backend *, float *, const float *, const int32_t *, int, int);
void cu_rmsnorm(nx_backend *, float *, float *, const float *, const float *, int, int, float);
void cu_rmsnorm_backward(nx_backend *, float *, float *, const float *, const float *, const float *,
                         const float *, int, int);
void cu_rmsnorm_backward_to(nx_backend *, float *, void *, nx_dtype, float *, const float *, const float *,
                            const float *, const float *, int, int);
void cu_linear(nx_backend *, float *, const float *, const nx_weight *, const float *, int);
void cu_linear_backward(nx_backend *, float *, float *, float *, const float *, const float *, const nx_weight *,
                        int);
void cu_rope(nx_backend *, float *, int64_t, const int32_t *, const float *, const float *, int, int, int, bool);
void cu_swiglu(nx_backend *, float *, const float *, int, int);
void cu_rmsnorm_to(nx_backend *, void *, nx_dtype, float *, const float *, const float *, int, int, float);
void cu_swiglu_to(nx_backend *, void *, const void *, nx_dtype, int, int);
void cu_swiglu_backward_from(nx_backend *, void *, const void *, nx_dtype, const void *, nx_dtype, int, int);
void cu_linear_to(nx_backend *, void *, nx_dtype, const void *, nx_dtype, const nx_weight *, int);
void cu_linear_from(nx_backend *, float *, const void *, nx_dtype, const nx_weight *, const float *, int);
void cu_linear_backward_from(nx_backend *, void *, nx_dtype, float *, float *, nx_grad_mode, const void *, nx_dtype,
                             const void *, nx_dtype, const nx_weight *, int);
void cu_linear_add(nx_backend *, float *, const float *, const void *, nx_dtype, const nx_weight *, const float *, int);
void cu_swiglu_backward(nx_backend *, float *, const float *, const float *, int, int);
void cu_add(nx_backend *, float *, const float *, int64_t);
void cu_argmax(nx_backend *, int32_t *, const float *, int, int);
/* attention.cu */
void cu_kv_store(nx_backend *, nx_kv, const float *, const float *, int64_t, const nx_span *, int, int);
void cu_attention(nx_backend *, float *, float *, const float *, int64_t, nx_kv, const nx_span *, int, int, int,
                  int, int);
void cu_attention_backward(nx_backend *, float *, float *, float *, float *, const float *, const float *,
                           const float *, const float *, const float *, const float *, int64_t, int, int, int,
                           int, int, int);
void cu_copy2d(nx_backend *, float *, int64_t, const float *, int64_t, int, int);
/* attention_gemm.cu: whole sequences {b, 0, T} as batched GEMMs */
bool cu_whole_sequences(const nx_span *spans, int nspans); /* spans {s, 0, T} for every s */
bool cu_attention_whole(const nx_span *spans, int nspans, int NH);
void cu_attention_gemm(float *out, float *probs, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH,
                       int HS, int window);
void cu_attention_gemm_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *probs,
                                const float *dprobs_add, const float *q, const float *k, const float *v, int64_t ld,
                                int B, int T, int NH, int KVH, int HS, int window);
/* flash.cu: whole sequences without maps, bf16 precision, head sizes 32, 64, 128 */
bool cu_flash_fits(int HS, int pairs); /* pairs: sequences × heads */
void cu_flash_attention(void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ldq, nx_kv kv,
                        const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                        int window);
bool cu_flash_training_fits(nx_backend *, int HS, int B, int T, int NH);
void cu_attention_lse(nx_backend *, void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ld,
                      nx_kv kv, const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                      int window);
void cu_attention_lse_backward(nx_backend *, void *dq, void *dk, void *dv, nx_dtype gt, float *scratch,
                               const void *dout, nx_dtype dt, const void *out, nx_dtype ot, const float *lse,
                               const void *q, const void *k, const void *v, nx_dtype qt, int64_t ld,
                               const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                               int window);
/* loss.cu */
void cu_cross_entropy(nx_backend *, double *, float *, float, const float *, const int32_t *, int, int);
void cu_kd_loss(nx_backend *, double *, nx_kd_kind, float, float *, float, const float *, const float *,
                const int32_t *, int, int);
void cu_distill_loss(nx_backend *, double *, double *, nx_kd_kind, float, void *, nx_dtype, float, float, const void *,
                     nx_dtype, const void *, nx_dtype, const int32_t *, int, int);
void cu_sqdiff(nx_backend *, double *, float *, bool, const float *, const float *, int64_t, float);
void cu_attention_kl(nx_backend *, double *, float *, const float *, const float *, int, int, int, int, float);
void cu_sumsq(nx_backend *, double *, const float *, int64_t);
void cu_adamw(nx_backend *, float *, const float *, float *, float *, int64_t, const nx_adamw_args *,
              const double *, int);
void cu_mask(nx_backend *, float *, const uint8_t *, int64_t);
void cu_round_bf16(nx_backend *, void *, const float *, int64_t);

#endif
