/* cpu_impl.h — what the files of the CPU backend share: its state
 * (the planned workspace), the thread count its parallel loops use, and
 * the op functions each file contributes to the table in cpu.c. */
#ifndef NEXUS_BACKEND_CPU_H
#define NEXUS_BACKEND_CPU_H

#include "nexus/cpu.h"
#include "nexus/ops.h"

/* Rows of one attention block: queries are multiplied against the keys
 * they can see RB at a time (about half the work of the full causal
 * square, with GEMMs large enough to be efficient). */
enum { CPU_ATT_RB = 64 };
/* Up to this many rows, linear runs the matrix-vector kernels (each weight
 * read once for all rows); above, GEMM. */
enum { CPU_MATVEC_ROWS = 8 };

typedef struct cpu_state {
    char *work;          /* the workspace */
    size_t work_bytes;
    int threads;         /* per-thread slices were planned for this many */
    nx_work planned;
} cpu_state;

/* Threads for a parallel op: OpenMP's count, capped by the plan. */
int cpu_threads(const nx_backend *be);
/* Thread t's slice of `per_thread` floats of the workspace (asserted planned). */
float *cpu_scratch(const nx_backend *be, int t, size_t per_thread);
/* The whole workspace as n floats (asserted planned). */
float *cpu_work(const nx_backend *be, size_t n);
size_t cpu_work_bytes(const nx_backend *be);

/* pool.c: fn(ctx, begin, end, t) over one contiguous range of 0..n−1 per
 * thread t < T, on the decode pool's threads (they poll briefly for the
 * next loop instead of sleeping: see pool.c), or as an OpenMP loop over
 * the same ranges when the pool is off (NEXUS_POOL=0, nx_cpu_pool(0)). */
typedef void (*cpu_range_fn)(void *ctx, int begin, int end, int thread);
void cpu_pool_for(int n, int T, cpu_range_fn fn, void *ctx);

/* quant.c: block-typed weights through the 8-bit kernels (scratch from the
 * workspace); cpu_qgemm: whether many rows take them too (else the widened GEMM). */
void cpu_qlinear(nx_backend *, float *, const float *, const nx_weight *, const float *, int);
bool cpu_qgemm(const nx_weight *W);
/* ops.c */
void cpu_embed(nx_backend *, float *, const int32_t *, const nx_weight *, int);
void cpu_embed_backward(nx_backend *, float *, const float *, const int32_t *, int, int);
void cpu_rmsnorm(nx_backend *, float *, float *, const float *, const float *, int, int, float);
void cpu_rmsnorm_backward(nx_backend *, float *, float *, const float *, const float *, const float *,
                          const float *, int, int);
void cpu_linear(nx_backend *, float *, const float *, const nx_weight *, const float *, int);
void cpu_linear_backward(nx_backend *, float *, float *, float *, const float *, const float *,
                         const nx_weight *, int);
void cpu_rope(nx_backend *, float *, int64_t, const int32_t *, const float *, const float *, int, int, int,
              bool);
void cpu_swiglu(nx_backend *, float *, const float *, int, int);
void cpu_swiglu_backward(nx_backend *, float *, const float *, const float *, int, int);
void cpu_add(nx_backend *, float *, const float *, int64_t);
void cpu_argmax(nx_backend *, int32_t *, const float *, int, int);
/* attention.c */
void cpu_kv_store(nx_backend *, nx_kv, const float *, const float *, int64_t, const nx_span *, int, int);
void cpu_attention(nx_backend *, float *, float *, const float *, int64_t, nx_kv, const nx_span *, int, int,
                   int, int, int);
void cpu_attention_backward(nx_backend *, float *, float *, float *, float *, const float *, const float *,
                            const float *, const float *, const float *, const float *, int64_t, int, int,
                            int, int, int, int);
void cpu_copy2d(nx_backend *, float *, int64_t, const float *, int64_t, int, int);
/* loss.c */
void cpu_cross_entropy(nx_backend *, double *, float *, float, const float *, const int32_t *, int, int);
void cpu_kd_loss(nx_backend *, double *, nx_kd_kind, float, float *, float, const float *, const float *,
                 const int32_t *, int, int);
void cpu_sqdiff(nx_backend *, double *, float *, bool, const float *, const float *, int64_t, float);
void cpu_attention_kl(nx_backend *, double *, float *, const float *, const float *, int, int, int, int,
                      float);
/* optim.c */
void cpu_sumsq(nx_backend *, double *, const float *, int64_t);
void cpu_mask(nx_backend *, float *, const uint8_t *, int64_t);
void cpu_adamw(nx_backend *, float *, const float *, float *, float *, int64_t, const nx_adamw_args *,
               const double *, int);

#endif
