/* sizes.h — the sizes of the CUDA backend's own buffers, shared by the
 * backend (cuda.cu) and the memory plans that count them without a GPU
 * (sizes.c, plain C, built in every build). */
#ifndef NEXUS_BACKEND_CUDA_SIZES_H
#define NEXUS_BACKEND_CUDA_SIZES_H

#include <stddef.h>
#include <stdint.h>

/* Blocks of a grid-stride reduction: partial sums are this many doubles. */
enum { CU_PARTIALS = 512, CU_THREADS = 256 };
/* Attention by GEMMs (attention_gemm.cu): the score area holds this many
 * floats (a chunk of T×T maps), a batched product at most this many
 * (sequence, head) pairs. RMSNorm's weight gradient: partial column sums. */
#define CU_SCORE_FLOATS ((int64_t)1 << 24)
#define CU_MAX_PAIRS ((int64_t)16384)
#define CU_NORM_PARTIALS ((int64_t)1 << 19)
/* bf16 precision: the bf16 operands of linear's products, in chunks */
#define CU_NARROW_BYTES ((int64_t)128 << 20)
/* ... and cublasLt's workspace for the products that add a residual */
#define CU_LT_BYTES ((int64_t)32 << 20)

/* The workspace proper for sizes w (sizes.c): nx_cuda_work_bytes adds the
 * buffers allocated beside it. */
#ifdef __cplusplus
extern "C" {
#endif
size_t cu_workspace_bytes(const struct nx_work *w, size_t sort_bytes);
#ifdef __cplusplus
}
#endif

#endif
