/* cpu.h — kernels of the CPU backend that tests and benchmarks call
 * directly (everything else reaches them through ops.h).
 *
 * GEMM. Row-major: C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C,
 * op(X) = X or Xᵀ, lda/ldb/ldc the row strides as stored. One entry point
 * wraps OpenBLAS (src/backend/cpu/gemm.c is the only includer of cblas.h);
 * nx_gemm_ref is the naive triple loop (double accumulator) it is tested
 * against, nx_gemm_cblas_raw the raw call for the benchmark's baseline.
 *
 * Matrix-vector products for decoding. At batch 1 every weight matrix is
 * read once per token for one dot product per row, so decode speed is
 * memory bandwidth: the kernel streams W row-major, four rows at a time
 * against one x held in L1 (AVX2/FMA where the compiler targets it, a
 * portable loop otherwise), split over OpenMP threads by rows; the small-
 * batch variant reads each weight row once for all N inputs. Weights may
 * be f32, bf16 or f16: rows are widened in registers as they stream, so a
 * bf16 model reads half the bytes; block types go to nx_qmatmul (below)
 * with scratch allocated per call. nx_ref_matvec is the naive reference
 * (for block types: of nx_qmatmul, with 8-bit inputs).
 *
 * nx_exp_sum: y = exp((x − shift)·scale) over a row and Σ y, vectorised
 * (Cephes expf on AVX2, max relative error ≈ 2e-7 like expf; inputs whose
 * (x − shift)·scale is below −87 give 0); nx_ref_exp_sum is the expf loop.
 * nx_silu_mul: h = g·σ(g)·u over a row (SwiGLU), with the same
 * exponential; nx_ref_silu_mul is the expf loop.
 *
 * nx_cpu_pool: whether batch-1 loops (the linears, attention) run on the
 * CPU backend's decode pool (src/backend/cpu/pool.c: threads that poll
 * briefly for the next loop) rather than OpenMP regions; on = 1 or 0 sets
 * it, −1 only asks. Default on; NEXUS_POOL=0 in the environment turns it
 * off. nx_qprefill_widen: whether nx_qmatmul widens IQ4_NL and Q5_0 rows
 * to Q8_0 blocks for many input rows (exact; faster); same convention,
 * default on (benchmarks and tests compare the two). */
#ifndef NEXUS_CPU_H
#define NEXUS_CPU_H

#include <stdbool.h>

#include "nexus/backend.h"

void nx_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void nx_gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
void nx_gemm_cblas_raw(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Y[n,o] = (accumulate ? Y[n,o] : 0) + W[o,:]·X[n,:] + (b ? b[o] : 0) for
 * n < N, o < W.rows; W (host memory) f32, bf16 or f16, X (N, W.cols). Y
 * must not alias W or X. Meant for N up to ~16 (decode batches). */
void nx_matvec(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate);
void nx_ref_matvec(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate);
/* x·y over n floats (vectorised like the kernels above). */
float nx_dot(const float *x, const float *y, int n);

/* Block-typed weights (Q8_0, Q4_0, Q4_K: src/backend/cpu/quant.c). The
 * inputs are quantized to 8 bits once per call as W.act says (per block
 * of 32 by default) and multiplied with integer dot products: the result
 * is the product of the dequantized weights with the dequantized inputs.
 * nx_qmatmul has nx_matvec's contract for any N, with scratch of
 * nx_qact_bytes(N, W.cols) bytes; nx_ref_qmatmul is its naive reference
 * (double sums). The kernel path (AVX-512 VNNI, AVX2, portable C) is
 * chosen at run time: nx_qkernel_paths lists those this CPU runs (best
 * first), nx_qkernel_path names the one in use, nx_qkernel_select picks
 * one (NX_ERR when this CPU lacks it; NULL: choose again as at start-up).
 * At start-up the best path runs unless NEXUS_QKERNEL names another. */
bool nx_qtype(nx_dtype t);
size_t nx_qact_bytes(int N, int IC);
void nx_qmatmul(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate,
                void *scratch);
void nx_ref_qmatmul(float *Y, const nx_weight *W, const float *X, const float *b, int N, bool accumulate);
int nx_qkernel_paths(const char **names, int max);
const char *nx_qkernel_path(void);
int nx_qkernel_select(const char *name);

double nx_exp_sum(float *y, const float *x, float shift, float scale, long n);
double nx_ref_exp_sum(float *y, const float *x, float shift, float scale, long n);
void nx_silu_mul(float *h, const float *g, const float *u, long n);
bool nx_cpu_pool(int on);
bool nx_qprefill_widen(int on);
void nx_ref_silu_mul(float *h, const float *g, const float *u, long n);

#endif
