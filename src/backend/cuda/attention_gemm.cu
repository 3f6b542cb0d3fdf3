/* attention_gemm.cu — attention over whole sequences as batched GEMMs.
 *
 * Training batches, evaluation and a teacher's forward hand attention B
 * spans {b, 0, T}: whole sequences from position 0. For those the work is
 * three matrix products per (sequence, head) — S = Q·Kᵀ·scale, P =
 * softmax(S) under the causal mask, O = P·V — and in the backward dP =
 * dO·Vᵀ, dS = P ⊙ (dP − Σ dP⊙P), dQ = dS·K, dK = Σ_g dSᵀ·Q, dV = Σ_g
 * Pᵀ·dO. Each product is one cuBLAS batched call over every (b, h)
 * (pointer arrays built on the device), in the backend's precision, so
 * attention runs on the tensor cores as PyTorch's eager SDPA-math path
 * does; the masked half of each product is computed and multiplied by
 * zeros (simple, and still far faster than a row-per-block kernel), as
 * is the part outside a sliding window.
 *
 * Scores live in the maps (probs) when the caller keeps them, else in
 * the workspace's score area, a chunk of (b, h) pairs at a time. The
 * row-per-block kernel of attention.cu serves every other batch
 * (decode, chunked prefill, mixed slots). Deterministic: cuBLAS GEMMs
 * are run-to-run reproducible on one GPU, and the row kernels reduce in
 * a fixed order. */
#include "cuda_impl.h"

namespace {

/* The operand of pair i = (b, h), b = i / H, h = i % H, of a batched
 * product: base + b·sb + (h / div)·sh − off (bytes). */
struct cu_ptrs {
    const char *base;
    int64_t sb, sh, off;
    int div;
};

__global__ void pointers_k(const void **a, const void **b, void **c, cu_ptrs pa, cu_ptrs pb, cu_ptrs pc, int H,
                           int i0, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int bi = (i0 + i) / H, h = (i0 + i) % H;
    a[i] = pa.base + bi * pa.sb + (h / pa.div) * pa.sh - pa.off;
    b[i] = pb.base + bi * pb.sb + (h / pb.div) * pb.sh - pb.off;
    c[i] = (void *)(pc.base + bi * pc.sb + (h / pc.div) * pc.sh - pc.off);
}

/* strides in floats */
cu_ptrs at(const float *base, int64_t sb, int64_t sh, int div = 1, int64_t off = 0) {
    const int64_t f = (int64_t)sizeof(float);
    return cu_ptrs{(const char *)base, sb * f, sh * f, off * f, div};
}

/* C_i = alpha·op(A_i)·op(B_i) + beta·C_i for the pairs i0 .. i0+n of H
 * heads, in column-major cuBLAS terms. */
void batched(cublasOperation_t ta, cublasOperation_t tb, int m, int nn, int k, float alpha, cu_ptrs A, int lda,
             cu_ptrs B, int ldb, float beta, cu_ptrs C, int ldc, int H, int i0, int n, const char *what) {
    cu_work_reset();
    const void **a = (const void **)cu_work(3 * (size_t)n * sizeof(void *));
    const void **b = a + n;
    void **c = (void **)(b + n);
    pointers_k<<<cu_blocks(n), CU_THREADS, 0, cu_stream()>>>(a, b, c, A, B, C, H, i0, n);
    CU_LAUNCHED(what);
    cu_check_blas(cublasGemmBatchedEx(CU.blas, ta, tb, m, nn, k, &alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, &beta,
                                      c, CUDA_R_32F, ldc, n, CU.compute, CUBLAS_GEMM_DEFAULT),
                  what);
}

/* One warp per row t of one (b, h) map: P = softmax over the keys j0..t
 * the row sees of the scaled scores in place, zeros elsewhere. */
__global__ void softmax_rows_k(float *S, int64_t rows, int T, int window) {
    int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return;
    int lane = threadIdx.x % 32, t = (int)(r % T), j0 = first_key(t, window);
    float *s = S + r * T;
    float mx = -INFINITY;
    for (int j = j0 + lane; j <= t; j += 32) mx = fmaxf(mx, s[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0;
    for (int j = j0 + lane; j <= t; j += 32) sum += s[j] = expf(s[j] - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.0f / sum;
    for (int j = lane; j < T; j += 32) s[j] = j >= j0 && j <= t ? s[j] * inv : 0.0f;
}

/* One warp per row: dS = P ⊙ (dP + dP_add − Σ (dP + dP_add)⊙P) · scale in
 * place of dP, zeros where the row sees no key. */
__global__ void softmax_back_rows_k(float *dS, const float *Pm, const float *add, int64_t rows, int T, int window,
                                    float scale) {
    int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return;
    int lane = threadIdx.x % 32, t = (int)(r % T), j0 = first_key(t, window);
    float *d = dS + r * T;
    const float *p = Pm + r * T, *a = add ? add + r * T : nullptr;
    float dot = 0;
    for (int j = j0 + lane; j <= t; j += 32) {
        float x = d[j] + (a ? a[j] : 0.0f);
        d[j] = x;
        dot += x * p[j];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    for (int j = lane; j < T; j += 32) d[j] = j >= j0 && j <= t ? p[j] * (d[j] - dot) * scale : 0.0f;
}

} // namespace

bool cu_whole_sequences(const nx_span *spans, int nspans) {
    for (int s = 0; s < nspans; s++)
        if (spans[s].seq != s || spans[s].pos != 0 || spans[s].len != spans[0].len) return false;
    return nspans > 0;
}

bool cu_attention_whole(const nx_span *spans, int nspans, int NH) {
    int T = nspans ? spans[0].len : 0;
    return T >= 16 && (int64_t)T * T <= CU_SCORE_FLOATS && (int64_t)nspans * NH <= CU_MAX_PAIRS &&
           cu_whole_sequences(spans, nspans);
}

void cu_attention_gemm(float *out, float *probs, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH,
                       int HS, int window) {
    int G = NH / KVH, all = B * NH;
    int64_t TT = (int64_t)T * T, ldo = (int64_t)NH * HS, NTT = NH * TT;
    float scale = 1.0f / sqrtf((float)HS);
    /* every pair at once into the maps, else as many as the score area holds */
    int per = probs ? all : (int)(CU_SCORE_FLOATS / TT < all ? CU_SCORE_FLOATS / TT : all);
    for (int i0 = 0; i0 < all; i0 += per) {
        int n = all - i0 < per ? all - i0 : per;
        cu_ptrs S = probs ? at(probs, NTT, TT) : at(cu_scores(), NTT, TT, 1, i0 * TT);
        float *S0 = probs ? probs + i0 * TT : cu_scores();
        /* row-major S (queries × keys) is col-major Sᵀ = Kᵀᵀ·Qᵀ, scaled */
        batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, scale, at(kv.k, kv.seq, HS, G), (int)kv.row, at(q, T * ldq, HS),
                (int)ldq, 0.0f, S, T, NH, i0, n, "attention scores");
        softmax_rows_k<<<(unsigned)(((int64_t)n * T + 7) / 8), 256, 0, cu_stream()>>>(S0, (int64_t)n * T, T, window);
        CU_LAUNCHED("attention softmax");
        /* Oᵀ = Vᵀ · Pᵀ */
        batched(CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, 1.0f, at(kv.v, kv.seq, HS, G), (int)kv.row, S, T, 0.0f,
                at(out, T * ldo, HS), (int)ldo, NH, i0, n, "attention values");
    }
}

void cu_attention_gemm_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *probs,
                                const float *dprobs_add, const float *q, const float *k, const float *v, int64_t ld,
                                int B, int T, int NH, int KVH, int HS, int window) {
    int G = NH / KVH, n = B * NH;
    int64_t TT = (int64_t)T * T, ldo = (int64_t)NH * HS, lds = T * ld, ldd = T * ldo, NTT = NH * TT;
    float scale = 1.0f / sqrtf((float)HS);
    /* dP (queries × keys) = dO · Vᵀ, as col-major dPᵀ = Vᵀᵀ · dOᵀ */
    batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, 1.0f, at(v, lds, HS, G), (int)ld, at(dout, ldd, HS), (int)ldo, 0.0f,
            at(scratch, NTT, TT), T, NH, 0, n, "attention backward dP");
    softmax_back_rows_k<<<(unsigned)(((int64_t)n * T + 7) / 8), 256, 0, cu_stream()>>>(scratch, probs, dprobs_add, (int64_t)n * T, T,
                                                                       window, scale);
    CU_LAUNCHED("attention backward dS");
    /* dQᵀ = Kᵀ · dSᵀ */
    batched(CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, 1.0f, at(k, lds, HS, G), (int)ld, at(scratch, NTT, TT), T, 0.0f,
            at(dq, lds, HS), (int)ld, NH, 0, n, "attention backward dQ");
    /* per member g of each group, over the pairs (b, kv head): dKᵀ += Qᵀ · dS, dVᵀ += dOᵀ · P */
    for (int g = 0; g < G; g++) {
        float beta = g ? 1.0f : 0.0f;
        batched(CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, 1.0f, at(q + g * HS, lds, G * HS), (int)ld,
                at(scratch + g * TT, NTT, G * TT), T, beta, at(dk, lds, HS), (int)ld, KVH, 0, B * KVH,
                "attention backward dK");
        batched(CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, 1.0f, at(dout + g * HS, ldd, G * HS), (int)ldo,
                at(probs + g * TT, NTT, G * TT), T, beta, at(dv, lds, HS), (int)ld, KVH, 0, B * KVH,
                "attention backward dV");
    }
}
