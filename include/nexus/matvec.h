/* matvec.h — matrix-vector products for decoding a token at a time.
 *
 * At batch 1 every weight matrix is read once per token for one dot product
 * per row, so decode speed is memory bandwidth: the kernel streams W
 * row-major, four rows at a time against one x held in L1, with AVX2/FMA
 * where the compiler targets it (-march=native) and a portable loop
 * otherwise, split over OpenMP threads by rows. The small-batch variant
 * reads each weight row once for all N inputs. nx_ref_matvec is the naive
 * double-accumulating reference the tests hold both against. */
#ifndef NEXUS_MATVEC_H
#define NEXUS_MATVEC_H

#include <stdbool.h>

/* y[o] = (accumulate ? y[o] : 0) + W[o,:]·x + (b ? b[o] : 0) for o < OC.
 * W is (OC, IC) row-major (as nn.Linear stores it). y must not alias W or x. */
void nx_matvec(float *y, const float *W, const float *x, const float *b, int OC, int IC,
               bool accumulate);

/* Y[n,o] = (accumulate ? Y[n,o] : 0) + W[o,:]·X[n,:] + (b ? b[o] : 0), n < N.
 * X is (N, IC), Y is (N, OC). Meant for N up to ~16 (decode batches). */
void nx_matvec_batch(float *Y, const float *W, const float *X, const float *b, int N, int OC,
                     int IC, bool accumulate);

/* x·y over n floats (vectorised like the kernels above). */
float nx_dot(const float *x, const float *y, int n);

/* Naive reference of nx_matvec_batch (double accumulation, one thread). */
void nx_ref_matvec(float *Y, const float *W, const float *X, const float *b, int N, int OC, int IC,
                   bool accumulate);

#endif
