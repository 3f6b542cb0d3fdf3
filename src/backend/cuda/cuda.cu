/* cuda.cu — the CUDA backend (built only with `make CUDA=1`): device
 * memory through the vtable, the planned workspace, the span tables and
 * the deterministic sum that the op files share, and the op table.
 *
 * Every op runs on the default stream, in order, so a download sees every
 * op queued before it and the host never waits in the middle of a step:
 * the trainer's one download of its step scalars is the only sync. Linear
 * layers run on cuBLAS in fp32 with TF32 off (CUBLAS_PEDANTIC_MATH), so
 * results agree with the CPU's within float rounding; the other ops are
 * this folder's kernels (ops.cu, attention.cu, loss.cu), each checked
 * against the reference backend by tests/test_backend.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unordered_map>

#include "cuda_impl.h"

cu_state CU;

void cu_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        char m[256];
        snprintf(m, sizeof m, "%s: %s", what, cudaGetErrorString(e));
        nx_assert_fail("CUDA call succeeded", __FILE__, __LINE__, m);
    }
}

void cu_check_blas(cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        char m[256];
        snprintf(m, sizeof m, "%s: cuBLAS status %d", what, (int)s);
        nx_assert_fail("cuBLAS call succeeded", __FILE__, __LINE__, m);
    }
}

/* A replay (nx_backend_replay): see cu_replay. */
struct nx_replay {
    enum { WARM, RECORDED, DIRECT } state;
    cudaGraphExec_t exec;
    unsigned epoch; /* CU.epoch when recorded */
};

namespace {

/* Sizes of the live allocations, for the allocated bytes and their peak. */
std::unordered_map<void *, size_t> SIZES;

/* The device's use now (total − free), kept as its peak. */
void sample_device(size_t *free_b = nullptr, size_t *total_b = nullptr) {
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    if ((double)(t - f) > CU.used_peak) CU.used_peak = (double)(t - f);
    if (free_b) *free_b = f;
    if (total_b) *total_b = t;
}

/* cudaMalloc, counted; false (the error cleared) when the memory is not there. */
bool counted_malloc(void **p, size_t n) {
    if (cudaMalloc(p, n) != cudaSuccess) {
        cudaGetLastError();
        *p = nullptr;
        return false;
    }
    SIZES[*p] = n;
    CU.allocated += (double)n;
    if (CU.allocated > CU.peak) CU.peak = CU.allocated;
    sample_device();
    return true;
}

void counted_free(void *p) {
    if (!p) return;
    auto it = SIZES.find(p);
    if (it != SIZES.end()) {
        CU.allocated -= (double)it->second;
        SIZES.erase(it);
    }
    cu_check(cudaFree(p), "cudaFree");
}

void *cu_alloc(nx_backend *, size_t n) {
    void *p = nullptr;
    if (!counted_malloc(&p, n ? n : 256)) return nullptr; /* the caller reports it */
    cu_check(cudaMemset(p, 0, n ? n : 256), "cudaMemset");
    return p;
}

void cu_mem_info(nx_backend *, nx_mem_info *o) {
    size_t f = 0, t = 0;
    sample_device(&f, &t);
    *o = nx_mem_info{true, CU.allocated, CU.peak, (double)f, (double)t, CU.used_peak};
}

void cu_free(nx_backend *, void *p) { counted_free(p); }

/* In stream order, without waiting for the ops queued before it: from
 * pageable memory the copy is staged before the call returns, so src may
 * be reused at once (cudaMemcpy would first wait for the device to finish
 * its queue, leaving it idle while the next ops are queued). */
void cu_upload(nx_backend *, void *dst, const void *src, size_t n) {
    cu_check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cu_stream()), "upload");
}

void cu_download(nx_backend *, void *dst, const void *src, size_t n) {
    cu_check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "download");
}

void cu_copy(nx_backend *, void *dst, const void *src, size_t n) {
    cu_check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice), "copy");
}

void cu_fill(nx_backend *, void *dst, int byte, size_t n) { cu_check(cudaMemset(dst, byte, n), "fill"); }

void cu_sync(nx_backend *) { cu_check(cudaDeviceSynchronize(), "sync"); }

size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* The workspace proper for sizes w (sizes.c). */
size_t work_need(const nx_work *w) {
    size_t sort = 0;
    cu_sort_bytes((size_t)(w->rows > 0 ? w->rows : 1), &sort);
    return cu_workspace_bytes(w, sort);
}

int cu_plan(nx_backend *, const nx_work *w, nx_err *err) {
    nx_work p = nx_work_max(CU.planned, *w);
    size_t need = work_need(&p);
    if (need > CU.work_bytes) {
        cu_check(cudaDeviceSynchronize(), "sync before growing the workspace");
        void *n = nullptr;
        if (!counted_malloc(&n, need))
            return nx_fail(err, "out of GPU memory: could not allocate %.1f MiB of CUDA workspace", need / 1048576.0);
        counted_free(CU.work);
        CU.work = (char *)n;
        CU.epoch++;
        CU.work_bytes = need;
    }
    if (p.ctx > 0 && !CU.scores && !counted_malloc((void **)&CU.scores, CU_SCORE_FLOATS * sizeof(float)))
        return nx_fail(err, "out of GPU memory: could not allocate %.0f MiB for attention scores",
                       CU_SCORE_FLOATS * 4 / 1048576.0);
    size_t rows = (size_t)(p.rows > 0 ? p.rows : 1);
    if (rows > CU.rows_cap) {
        cu_check(cudaDeviceSynchronize(), "sync before growing the span tables");
        void *d = nullptr;
        if (!counted_malloc(&d, 2 * rows * sizeof(int32_t)))
            return nx_fail(err, "out of GPU memory: could not allocate the span tables of %zu rows", rows);
        counted_free(CU.rows_dev);
        free(CU.rows_host), free(CU.rows_last);
        CU.rows_dev = (int32_t *)d;
        CU.epoch++;
        CU.rows_host = (int32_t *)nx_xmalloc(2 * rows * sizeof(int32_t));
        CU.rows_last = (int32_t *)nx_xmalloc(2 * rows * sizeof(int32_t));
        CU.rows_last_n = -1;
        CU.rows_cap = rows;
    }
    CU.planned = p;
    return NX_OK;
}

bool cu_supports_weight(const nx_backend *, nx_dtype t) { return t == NX_F32 || t == NX_BF16 || t == NX_F16; }

__global__ void finish_sum(double *out, const double *partials, int n, double scale) {
    __shared__ double sh[CU_THREADS];
    double s = 0;
    /* a fixed assignment of partials to threads and a fixed tree: the same
     * sum every time */
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
    s = cu_block_sum(s, sh);
    if (threadIdx.x == 0) *out = scale * s;
}

/* ---- replays: CUDA graphs ----
 * The first run with a replay handle runs the ops as usual (modules load,
 * kernel attributes are set); the second captures them from a stream of
 * the backend's own into a graph, and that and every later run launch the
 * graph on the default stream. A capture the driver refuses leaves the
 * handle running the ops as called, and so does an op that cannot be
 * recorded (CU.unrecordable: attention over a cache too long for its
 * kernel's shared memory at every position). A graph holds the addresses
 * of the workspace and the span tables and the kernels of one precision:
 * when a plan moves those or the precision changes (CU.epoch), it is
 * recorded again. */
void cu_replay(nx_backend *, nx_replay **r, void (*fn)(void *), void *ctx) {
    if (!*r) {
        *r = (nx_replay *)nx_xcalloc(1, sizeof **r);
        fn(ctx);
        return;
    }
    nx_replay *p = *r;
    if (p->state == nx_replay::RECORDED && p->epoch != CU.epoch) { /* buffers moved, or the precision changed */
        cudaGraphExecDestroy(p->exec);
        p->state = nx_replay::WARM;
    }
    if (p->state == nx_replay::WARM) {
        if (!CU.rec) cu_check(cudaStreamCreateWithFlags(&CU.rec, cudaStreamNonBlocking), "replay stream");
        CU.stream = CU.rec;
        cu_check_blas(cublasSetStream(CU.blas, CU.rec), "replay stream");
        cu_check(cudaStreamBeginCapture(CU.rec, cudaStreamCaptureModeThreadLocal), "begin a replay");
        CU.unrecordable = false;
        fn(ctx);
        cudaGraph_t g = nullptr;
        cudaError_t e = cudaStreamEndCapture(CU.rec, &g);
        CU.stream = 0;
        cu_check_blas(cublasSetStream(CU.blas, 0), "default stream");
        p->state = e == cudaSuccess && !CU.unrecordable && cudaGraphInstantiate(&p->exec, g, 0) == cudaSuccess
                       ? nx_replay::RECORDED
                       : nx_replay::DIRECT;
        if (g) cudaGraphDestroy(g);
        p->epoch = CU.epoch;
        (void)cudaGetLastError(); /* a refused capture's error, if any */
    }
    if (p->state == nx_replay::RECORDED) cu_check(cudaGraphLaunch(p->exec, 0), "replay");
    else fn(ctx);
}

void cu_replay_free(nx_backend *, nx_replay *r) {
    if (!r) return;
    if (r->state == nx_replay::RECORDED) cudaGraphExecDestroy(r->exec);
    free(r);
}

/* bf16 precision holds the products' inputs in bf16 (they are rounded so anyway), unless
 * NEXUS_CUDA_BF16_WEIGHTS=0 (the comparison without bf16 operands) */
nx_dtype cu_act_type(nx_backend *) { return CU.prec == NX_PREC_BF16 && CU.native_bf16 ? NX_BF16 : NX_F32; }

void cu_spans(nx_backend *, const nx_span *spans, int nspans) {
    int32_t *seq, *pos;
    cu_span_rows(spans, nspans, &seq, &pos);
}

nx_ops make_ops() {
    nx_ops o = {};
    o.embed = cu_embed;
    o.embed_backward = cu_embed_backward;
    o.rmsnorm = cu_rmsnorm;
    o.rmsnorm_backward = cu_rmsnorm_backward;
    o.rmsnorm_backward_to = cu_rmsnorm_backward_to;
    o.linear = cu_linear;
    o.linear_backward = cu_linear_backward;
    o.rope = cu_rope;
    o.spans = cu_spans;
    o.kv_store = cu_kv_store;
    o.attention = cu_attention;
    o.attention_backward = cu_attention_backward;
    o.attention_lse_fits = cu_flash_training_fits;
    o.attention_lse = cu_attention_lse;
    o.attention_lse_backward = cu_attention_lse_backward;
    o.copy2d = cu_copy2d;
    o.swiglu = cu_swiglu;
    o.rmsnorm_to = cu_rmsnorm_to;
    o.swiglu_to = cu_swiglu_to;
    o.linear_from = cu_linear_from;
    o.linear_to = cu_linear_to;
    o.swiglu_backward_from = cu_swiglu_backward_from;
    o.linear_backward_from = cu_linear_backward_from;
    o.linear_add = cu_linear_add;
    o.swiglu_backward = cu_swiglu_backward;
    o.add = cu_add;
    o.cross_entropy = cu_cross_entropy;
    o.kd_loss = cu_kd_loss;
    o.distill_loss = cu_distill_loss;
    o.argmax = cu_argmax;
    o.sqdiff = cu_sqdiff;
    o.attention_kl = cu_attention_kl;
    o.sumsq = cu_sumsq;
    o.adamw = cu_adamw;
    o.mask = cu_mask;
    o.round_bf16 = cu_round_bf16;
    return o;
}

nx_ops OPS = make_ops();
nx_backend BACKEND;
bool READY;

} // namespace

void cu_work_reset(void) { CU.work_used = 0; }

void *cu_work(size_t bytes) {
    size_t at = align256(CU.work_used);
    NX_ASSERTM(at + bytes <= CU.work_bytes, "CUDA workspace too small: the op's sizes were not planned (nx_backend_plan)");
    CU.work_used = at + bytes;
    return CU.work + at;
}

int cu_span_rows(const nx_span *spans, int nspans, int32_t **seq, int32_t **pos) {
    int N = 0;
    for (int s = 0; s < nspans; s++) N += spans[s].len;
    NX_ASSERTM((size_t)N <= CU.rows_cap, "CUDA workspace too small for the batch's rows (nx_backend_plan)");
    *seq = *pos = CU.rows_dev;
    if (N == 0) return 0;
    int32_t *h = CU.rows_host;
    for (int s = 0, r = 0; s < nspans; s++)
        for (int i = 0; i < spans[s].len; i++, r++) h[r] = spans[s].seq, h[N + r] = spans[s].pos + i;
    /* The layers of one forward share their spans: the tables go up once.
     * From pageable memory the copy is staged at once and runs in stream
     * order, after the ops still reading the last tables. */
    size_t bytes = 2 * (size_t)N * sizeof(int32_t);
    if (N != CU.rows_last_n || memcmp(h, CU.rows_last, bytes) != 0) {
        cu_check(cudaMemcpyAsync(CU.rows_dev, h, bytes, cudaMemcpyHostToDevice, cu_stream()), "span tables");
        memcpy(CU.rows_last, h, bytes);
        CU.rows_last_n = N;
    }
    *seq = CU.rows_dev;
    *pos = CU.rows_dev + N;
    return N;
}

void cu_finish_sum(double *out, const double *partials, int n, double scale) {
    finish_sum<<<1, CU_THREADS, 0, cu_stream()>>>(out, partials, n, scale);
    CU_LAUNCHED("finish_sum");
}

static bool switched_on(const char *var) {
    const char *v = getenv(var);
    return !v || strcmp(v, "0") != 0;
}

/* fp32: pedantic f32 products; tf32 / bf16: the inputs rounded on the
 * tensor cores, f32 accumulation (cuBLAS's FAST_TF32 / FAST_16BF). */
static int cu_set_precision(nx_backend *, nx_precision p, nx_err *err) {
    if (p == NX_PREC_BF16 && !CU.narrow && !counted_malloc((void **)&CU.narrow, CU_NARROW_BYTES + CU_LT_BYTES))
        return nx_fail(err, "out of GPU memory: could not allocate %.0f MiB for bf16 operands",
                       (CU_NARROW_BYTES + CU_LT_BYTES) / 1048576.0);
    CU.prec = p;
    CU.epoch++;
    CU.compute = p == NX_PREC_BF16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                 : p == NX_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                     : CUBLAS_COMPUTE_32F_PEDANTIC;
    cu_check_blas(cublasSetMathMode(CU.blas, p == NX_PREC_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH),
                  "math mode");
    return NX_OK;
}

extern "C" nx_backend *nx_backend_cuda(nx_err *err) {
    if (READY) return &BACKEND;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        nx_fail(err, "no CUDA device found (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return nullptr;
    }
    if (cudaSetDevice(0) != cudaSuccess || cublasCreate(&CU.blas) != CUBLAS_STATUS_SUCCESS ||
        cublasLtCreate(&CU.lt) != CUBLAS_STATUS_SUCCESS) {
        nx_fail(err, "could not start CUDA and cuBLAS on device 0");
        return nullptr;
    }
    /* fp32 exactly until asked otherwise: no TF32, no reduced-precision reductions */
    CU.compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    CU.prec = NX_PREC_FP32;
    cu_check_blas(cublasSetMathMode(CU.blas, CUBLAS_PEDANTIC_MATH), "math mode");
    CU.native_bf16 = switched_on("NEXUS_CUDA_BF16_WEIGHTS");
    CU.lt_on = switched_on("NEXUS_CUDA_LT");
    cudaDeviceProp prop;
    CU.wgmma = cudaGetDeviceProperties(&prop, 0) == cudaSuccess && prop.major == 9 && prop.minor == 0 &&
               switched_on("NEXUS_CUDA_WGMMA");
    CU.narrow_elems = CU_NARROW_BYTES / 2;
    if (const char *ne = getenv("NEXUS_CUDA_NARROW_ELEMS"))
        CU.narrow_elems = atoll(ne) >= 4096 && atoll(ne) < CU.narrow_elems ? atoll(ne) : CU.narrow_elems;
    BACKEND.name = "cuda";
    BACKEND.host_memory = false;
    BACKEND.ops = &OPS;
    BACKEND.alloc = cu_alloc;
    BACKEND.free = cu_free;
    BACKEND.upload = cu_upload;
    BACKEND.download = cu_download;
    BACKEND.copy = cu_copy;
    BACKEND.fill = cu_fill;
    BACKEND.sync = cu_sync;
    BACKEND.plan = cu_plan;
    BACKEND.supports_weight = cu_supports_weight;
    BACKEND.set_precision = cu_set_precision;
    BACKEND.mem_info = cu_mem_info;
    BACKEND.act_type = cu_act_type;
    BACKEND.replay = switched_on("NEXUS_CUDA_GRAPHS") ? cu_replay : nullptr; /* =0: every step op by op */
    BACKEND.replay_free = cu_replay_free;
    BACKEND.impl = &CU;
    nx_err pe;
    nx_work w = {};
    w.rows = 4096;
    if (cu_plan(&BACKEND, &w, &pe)) {
        nx_fail(err, "%s", pe.msg);
        return nullptr;
    }
    READY = true;
    return &BACKEND;
}
