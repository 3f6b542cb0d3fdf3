/* cpu.c — the CPU backend: host memory, the planned workspace, and the
 * table of ops implemented by the other files of this folder (ops.c,
 * attention.c, loss.c, optim.c over gemm.c, matvec.c and vexp.c).
 *
 * The workspace is one host buffer grown by nx_backend_plan at set-up
 * time to the largest of: two vocabulary rows per thread (the fused
 * losses), one attention block of scores per thread (CPU_ATT_RB rows of
 * ctx keys), and one f32 copy of the largest non-f32 matrix (linear widens
 * a bf16 or f16 matrix once per call when it multiplies many rows, so that
 * GEMM runs in f32). Ops only read the plan; nothing grows during a step. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../host.h"
#include "cpu_impl.h"

static cpu_state STATE;

static int cpu_plan(nx_backend *be, const nx_work *w, nx_err *err) {
    cpu_state *s = be->impl;
    int threads = omp_get_max_threads();
    if (threads < s->threads) threads = s->threads;
    nx_work p = nx_work_max(s->planned, *w);
    size_t loss = (size_t)threads * 2 * (size_t)p.vocab, att = (size_t)threads * CPU_ATT_RB * (size_t)p.ctx;
    size_t need = loss > att ? loss : att;
    if ((size_t)p.weight_elems > need) need = (size_t)p.weight_elems;
    need *= sizeof(float);
    if (need > s->work_bytes) {
        void *n = nx_host_alloc(be, need);
        if (!n)
            return nx_fail(err, "out of memory: could not allocate %.1f MiB of CPU workspace", need / 1048576.0);
        free(s->work);
        s->work = n;
        s->work_bytes = need;
    }
    s->threads = threads;
    s->planned = p;
    return NX_OK;
}

static bool cpu_supports_weight(const nx_backend *be, nx_dtype t) {
    (void)be;
    return t == NX_F32 || t == NX_BF16 || t == NX_F16 || nx_qtype(t);
}

int cpu_threads(const nx_backend *be) {
    const cpu_state *s = be->impl;
    int t = omp_get_max_threads();
    return s->threads > 0 && t > s->threads ? s->threads : t;
}

float *cpu_scratch(const nx_backend *be, int t, size_t per_thread) {
    const cpu_state *s = be->impl;
    NX_ASSERTM((size_t)(t + 1) * per_thread * sizeof(float) <= s->work_bytes,
               "CPU workspace too small: the op's sizes were not planned (nx_backend_plan)");
    return (float *)s->work + (size_t)t * per_thread;
}

float *cpu_work(const nx_backend *be, size_t n) { return cpu_scratch(be, 0, n); }

size_t cpu_work_bytes(const nx_backend *be) { return ((const cpu_state *)be->impl)->work_bytes; }

static const nx_ops CPU_OPS = {
    .embed = cpu_embed,
    .embed_backward = cpu_embed_backward,
    .rmsnorm = cpu_rmsnorm,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .linear = cpu_linear,
    .linear_backward = cpu_linear_backward,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .attention_backward = cpu_attention_backward,
    .copy2d = cpu_copy2d,
    .swiglu = cpu_swiglu,
    .swiglu_backward = cpu_swiglu_backward,
    .add = cpu_add,
    .cross_entropy = cpu_cross_entropy,
    .kd_loss = cpu_kd_loss,
    .argmax = cpu_argmax,
    .sqdiff = cpu_sqdiff,
    .attention_kl = cpu_attention_kl,
    .sumsq = cpu_sumsq,
    .adamw = cpu_adamw,
    .mask = cpu_mask,
};

/* host memory: upload, download and copy are all memmove (host.h) */
static nx_backend CPU = {
    .name = "cpu",
    .host_memory = true,
    .ops = &CPU_OPS,
    .alloc = nx_host_alloc,
    .free = nx_host_free,
    .upload = nx_host_copy,
    .download = nx_host_copy,
    .copy = nx_host_copy,
    .fill = nx_host_fill,
    .sync = nx_host_sync,
    .plan = cpu_plan,
    .supports_weight = cpu_supports_weight,
    .impl = &STATE,
};

nx_backend *nx_backend_cpu(void) { return &CPU; }
