/* sizes.c — the bytes of the CUDA backend's workspace for planned sizes
 * (backend.h: nx_cuda_work_bytes). Plain C and built without CUDA too, so
 * that a run's GPU memory plan is counted by the function that sizes the
 * allocation on the device (cu_plan in cuda.cu). */
#include <stdlib.h>
#include <string.h>

#include "nexus/backend.h"
#include "sizes.h"

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* The workspace holds: the partial sums; per row a double (row losses)
 * and four ints (sort keys and values); the radix sort's own temporary
 * storage; one widened non-f32 matrix; the pointer arrays of a batched
 * product; RMSNorm's partial column sums. */
size_t cu_workspace_bytes(const nx_work *w, size_t sort_bytes) {
    size_t rows = (size_t)(w->rows > 0 ? w->rows : 1);
    return align256(CU_PARTIALS * sizeof(double)) + 2 * align256(sizeof(int)) + align256(rows * sizeof(double)) +
           4 * align256(rows * sizeof(int32_t)) + align256(sort_bytes) +
           align256((size_t)w->weight_elems * sizeof(float)) + align256(3 * CU_MAX_PAIRS * sizeof(void *)) +
           align256(CU_NORM_PARTIALS * sizeof(double)) + 4096;
}

/* The workspace and, each its own allocation: the span tables (two ints
 * per row); attention's score area (CU_SCORE_FLOATS), made when attention
 * is planned; the narrowing area of bf16 precision and cublasLt's
 * workspace (CU_NARROW_BYTES + CU_LT_BYTES, in every plan: a plan does not
 * know the precision). */
size_t nx_cuda_work_bytes(const nx_work *w, size_t sort_bytes) {
    size_t rows = (size_t)(w->rows > 0 ? w->rows : 1);
    return cu_workspace_bytes(w, sort_bytes) + 2 * align256(rows * sizeof(int32_t)) +
           (w->ctx > 0 ? (size_t)CU_SCORE_FLOATS * sizeof(float) : 0) + (size_t)(CU_NARROW_BYTES + CU_LT_BYTES);
}

size_t nx_cuda_sort_bound(size_t n) { return 16 * n + ((size_t)1 << 20); }

bool nx_cuda_flash(int HS, int64_t pairs, bool training) {
    const char *v = getenv("NEXUS_CUDA_FLASH");
    bool size = HS == 32 || HS == 64 || (HS == 128 && !training);
    return size && pairs <= 65535 && !(v && !strcmp(v, "0")); /* pairs: a grid's y */
}
