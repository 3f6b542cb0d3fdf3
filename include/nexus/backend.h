/* backend.h — the seam between nexus and the hardware.
 *
 * A backend owns memory and runs ops on it. Model and training code hold
 * backend pointers (which are device pointers on a GPU) and never touch
 * them directly: they allocate, copy and run the ops of ops.h through the
 * backend they were given. Learned from ggml's backends: a backend is a
 * small vtable, a new device is a folder (src/backend/<name>/), and one
 * test (tests/test_backend.c) runs every op of every built backend against
 * the reference backend.
 *
 * Backends:
 *   "ref"   naive loops in double precision on host memory: the definition
 *           the others are tested against (slow; tests only).
 *   "cpu"   OpenBLAS GEMM, AVX2 matrix-vector kernels and OpenMP loops.
 *   "cuda"  built with `make CUDA=1` only: cuBLAS and CUDA kernels.
 *
 * Ops may be asynchronous (a GPU queues them): results are visible to the
 * host after nx_backend_download, which waits for the ops before it.
 *
 * Workspace. Some ops need scratch memory (per-thread rows for the losses,
 * attention scores, a widened copy of a bf16 matrix for GEMM). A planner
 * (activations, a model, a trainer) tells the backend the largest sizes
 * its ops will see with nx_backend_plan, at set-up time; ops then find the
 * scratch ready, and nothing is allocated while a step runs. */
#ifndef NEXUS_BACKEND_H
#define NEXUS_BACKEND_H

#include "nexus/core.h"

typedef struct nx_backend nx_backend;
typedef struct nx_ops nx_ops;
typedef struct nx_replay nx_replay;

/* How a kernel with 8-bit activations (block-typed weights on the CPU)
 * scales the input rows: per block of 32 at run time (the default), one
 * scale per row at run time (dynamic W8A8), or one scale fixed by
 * calibration, values beyond it clipped (static W8A8). */
typedef enum nx_act_quant { NX_ACT_BLOCK, NX_ACT_ROW, NX_ACT_STATIC } nx_act_quant;

/* A weight matrix: rows × cols elements of one type, row-major (PyTorch's
 * nn.Linear layout: rows = out features), each row row_bytes long, in
 * the memory of backend be. act/act_scale: how 8-bit kernels quantize the
 * inputs (act_scale = the calibrated largest |x| for NX_ACT_STATIC).
 * bf16: for f32 weights, NULL or the same values rounded to bf16 (row
 * stride cols), which products on bf16 operands read instead of rounding
 * data themselves; whoever changes data keeps it current (the trainer:
 * nx_adamw_args.p16). */
typedef struct nx_weight {
    nx_dtype type;
    int rows, cols;
    size_t row_bytes;
    void *data;
    const void *bf16;
    nx_backend *be;
    nx_act_quant act;
    float act_scale;
} nx_weight;

nx_weight nx_weight_view(nx_backend *be, nx_dtype type, int rows, int cols, void *data);

/* The largest sizes the ops of a planner will see (0: none of that kind). */
typedef struct nx_work {
    int64_t rows;         /* rows (tokens) of one op */
    int64_t vocab;        /* V of the losses and argmax */
    int64_t ctx;          /* keys one attention row can see */
    int64_t weight_elems; /* elements of the largest non-f32 matrix given to linear */
} nx_work;

/* How the matrix products of linear compute. Training's storage
 * (weights, activations, optimizer state) stays f32 in every mode; only
 * the GEMMs' inputs are rounded (to TF32 or BF16, as PyTorch's TF32 flag
 * and bf16 autocast do), with f32 accumulation. A backend may take
 * shortcuts of the same rounding in BF16 (CUDA: bf16 operands, flash
 * attention where no maps are kept). */
typedef enum nx_precision { NX_PREC_FP32, NX_PREC_TF32, NX_PREC_BF16 } nx_precision;

/* A device's memory (bytes). allocated / peak: what the backend's own
 * allocations (tensors, the ops' workspace) hold now and held at most;
 * device_free / device_total: the device as its driver reports it;
 * device_used_peak: the most of device_total − device_free seen (sampled at
 * every allocation and every query: the driver's context, libraries'
 * workspaces and other processes included). has_device false: a host
 * backend, every figure 0. */
typedef struct nx_mem_info {
    bool has_device;
    double allocated, peak, device_free, device_total, device_used_peak;
} nx_mem_info;

struct nx_backend {
    const char *name;
    bool host_memory;          /* backend pointers are host pointers */
    const nx_ops *ops;
    /* memory: alloc returns zeroed memory, 64-byte aligned, or NULL */
    void *(*alloc)(nx_backend *be, size_t bytes);
    void (*free)(nx_backend *be, void *p);
    void (*upload)(nx_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(nx_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy)(nx_backend *be, void *dst, const void *src, size_t bytes);
    void (*fill)(nx_backend *be, void *dst, int byte, size_t bytes);
    void (*sync)(nx_backend *be);
    /* grows the workspace for ops up to these sizes (set-up time only) */
    int (*plan)(nx_backend *be, const nx_work *w, nx_err *err);
    /* can ops take weights of this type? */
    bool (*supports_weight)(const nx_backend *be, nx_dtype t);
    /* NULL: computes in fp32 only */
    int (*set_precision)(nx_backend *be, nx_precision p, nx_err *err);
    /* NULL: host memory, nothing to report */
    void (*mem_info)(nx_backend *be, nx_mem_info *out);
    /* NULL: activations in f32 (nx_backend_act_type) */
    nx_dtype (*act_type)(nx_backend *be);
    /* NULL: ops run as called (nx_backend_replay) */
    void (*replay)(nx_backend *be, nx_replay **r, void (*fn)(void *ctx), void *ctx);
    void (*replay_free)(nx_backend *be, nx_replay *r);
    void *impl;                /* the backend's own state */
};

nx_backend *nx_backend_cpu(void);
nx_backend *nx_backend_ref(void);
/* The CUDA backend, or NULL when nexus was built without CUDA or no GPU is
 * present (then err says which). */
nx_backend *nx_backend_cuda(nx_err *err);
/* Sets the precision of linear's products; an error names the backend
 * when it cannot (the CPU computes in fp32 only). */
int nx_backend_set_precision(nx_backend *be, nx_precision p, nx_err *err);
/* The device's memory now (nx_mem_info; all 0 for a host backend). */
void nx_backend_mem_info(nx_backend *be, nx_mem_info *out);
/* Bytes the CUDA backend's workspace takes when planned for sizes w, with
 * attention's score area (w->ctx > 0): the one function that sizes it in
 * src/backend/cuda/ (sort_bytes: the radix sort's temporary storage, as
 * cub reports it there), callable without CUDA for memory plans, which pass
 * sort_bytes = nx_cuda_sort_bound(rows). */
size_t nx_cuda_work_bytes(const nx_work *w, size_t sort_bytes);
/* An upper bound of that sort's temporary storage for n (key, value) int
 * pairs: its alternate key and value buffers and its histograms. */
size_t nx_cuda_sort_bound(size_t n);
/* Does the CUDA backend run flash attention (in bf16 precision) for this
 * head size and B·NH (sequence, head) pairs: head sizes 32, 64 and, but
 * for training (nx_attention_lse), 128; pairs within a grid's 65535;
 * unless NEXUS_CUDA_FLASH=0. The backend and memory plans both ask it. */
bool nx_cuda_flash(int HS, int64_t pairs, bool training);
/* What a CUDA process holds on its GPU beyond its allocations: the
 * context, the kernels' modules, cuBLAS's handle and workspace. Measured
 * on an H200 (driver 580, CUDA 13): 598 MiB (test_backend) and 610 MiB
 * (the nano run of docs/BENCHMARKS.md, "GPU"); 768 MiB leaves a margin. */
#define NX_CUDA_CONTEXT_BYTES ((size_t)768 << 20)
/* "fp32", "tf32" or "bf16" (the spelling of configs and --precision). */
int nx_precision_parse(const char *s, nx_precision *p, nx_err *err);
/* How an inference command holds a model's float weights in precision p:
 * bf16 in bf16 precision (its products round them to bf16 anyway; half
 * the memory, and products on bf16 operands), else f32. */
nx_dtype nx_precision_hold(nx_precision p);
/* The type in which the backend, in its current precision, holds the
 * inputs of the matrix products between ops (ops.h, nx_linear_from):
 * NX_BF16 on CUDA in bf16 precision, else NX_F32. */
nx_dtype nx_backend_act_type(nx_backend *be);
/* Runs fn(ctx), a fixed sequence of ops, through the replay *r (NULL at
 * first). A backend that can record (CUDA: a graph) runs fn on the first
 * call, records its ops on the second, and from then on launches the
 * recording without calling fn: one launch instead of hundreds, for a
 * decode step whose work is launch overhead. So fn must queue ops only (no
 * upload, download, copy or host read) with the same arguments every
 * time; what changes between calls lives in device memory and is written
 * before (nx_model_prepare). Elsewhere, and under NEXUS_PROFILE, fn runs
 * as called. nx_backend_replay_free(be, NULL) is a no-op. */
void nx_backend_replay(nx_backend *be, nx_replay **r, void (*fn)(void *ctx), void *ctx);
void nx_backend_replay_free(nx_backend *be, nx_replay *r);
/* "cpu", "ref" or "cuda". */
nx_backend *nx_backend_by_name(const char *name, nx_err *err);

/* Memory through the backend. nx_backend_alloc fails (NULL, with err naming
 * the size and `what`) instead of exiting: model-sized allocations are
 * errors the caller reports. */
void *nx_backend_alloc(nx_backend *be, size_t bytes, const char *what, nx_err *err);
void nx_backend_free(nx_backend *be, void *p);
void nx_backend_upload(nx_backend *be, void *dst, const void *src, size_t bytes);
void nx_backend_download(nx_backend *be, void *dst, const void *src, size_t bytes);
void nx_backend_copy(nx_backend *be, void *dst, const void *src, size_t bytes);
void nx_backend_zero(nx_backend *be, void *dst, size_t bytes);
void nx_backend_sync(nx_backend *be);
int nx_backend_plan(nx_backend *be, const nx_work *w, nx_err *err);
bool nx_backend_supports_weight(const nx_backend *be, nx_dtype t);

/* Threads of the CPU backend (OpenMP and BLAS); n <= 0: all cores. */
void nx_set_threads(int n);

/* Allocate a planned arena (see core.h) on a backend: size bytes, zeroed. */
int nx_arena_init(nx_arena *a, nx_backend *be, size_t size, nx_err *err);
void nx_arena_free(nx_arena *a);

#endif
