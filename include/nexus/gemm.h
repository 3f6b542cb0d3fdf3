/* gemm.h — the one matrix-multiply entry point of nexus.
 *
 * Row-major: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, where
 * op(X) is X or Xᵀ. lda/ldb/ldc are row strides of the matrices as stored.
 * src/core/gemm.c is the only file that includes cblas.h; everything else
 * multiplies through here so that a backend (CUDA, int8) slots in at one
 * place. nx_gemm_ref is the naive triple loop (double accumulator) that the
 * tests hold the fast path against. */
#ifndef NEXUS_GEMM_H
#define NEXUS_GEMM_H

#include <stdbool.h>

void nx_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

void nx_gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Raw cblas_sgemm with the same arguments, for the benchmark's baseline. */
void nx_gemm_cblas_raw(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc);

/* y[M] = alpha * op(A) x + beta * y, A row-major M×N (or N×M transposed). */
void nx_gemv(bool trans_a, int M, int N, float alpha, const float *A, int lda, const float *x,
             float beta, float *y);

#endif
