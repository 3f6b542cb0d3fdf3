/* backend.c — what callers use of a backend: memory through its vtable,
 * planned arenas on it, and the nx_<op> entry points of ops.h, each of
 * which checks that the backend has the op and forwards to it. Keeping
 * the checks here means a backend fills a table and nothing else, and a
 * missing op fails with its name rather than a NULL call. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/backend.h"
#include "nexus/ops.h"
#include "host.h"

/* ---- host memory (cpu, ref) ---- */

void *nx_host_alloc(nx_backend *be, size_t n) {
    (void)be;
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

void nx_host_free(nx_backend *be, void *p) {
    (void)be;
    free(p);
}

void nx_host_copy(nx_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    memmove(dst, src, n);
}

void nx_host_fill(nx_backend *be, void *dst, int byte, size_t n) {
    (void)be;
    memset(dst, byte, n);
}

void nx_host_sync(nx_backend *be) { (void)be; }

nx_weight nx_weight_view(nx_backend *be, nx_dtype type, int rows, int cols, void *data) {
    NX_ASSERT(rows >= 0 && cols >= 0);
    return (nx_weight){.type = type, .rows = rows, .cols = cols, .row_bytes = nx_row_bytes(type, cols),
                       .data = data, .be = be};
}

#ifndef NX_HAVE_CUDA
nx_backend *nx_backend_cuda(nx_err *err) {
    nx_fail(err, "this nexus was built without CUDA: rebuild with `make CUDA=1` on a machine with the CUDA toolkit");
    return NULL;
}
#endif

/* transformers' yarn helpers (modeling_rope_utils.py): the dimension whose
 * wavelength makes num_rot rotations in max_pos positions, and the mscale. */
static double yarn_dim(double num_rot, int dim, double base, int max_pos) {
    return (dim * log(max_pos / (num_rot * 2 * M_PI))) / (2 * log(base));
}
static double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0; }

double nx_rope_inv_freq(double *inv, int HS, double theta, const nx_rope_scaling *s, int seq_len) {
    int half = HS / 2;
    nx_rope_type type = s ? s->type : NX_ROPE_DEFAULT;
    double base = theta, att = 1.0;
    if (type == NX_ROPE_DYNAMIC && seq_len > s->max_pos) /* base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2)) */
        base = theta * pow(s->factor * seq_len / s->max_pos - (s->factor - 1), (double)HS / (HS - 2));
    /* inv_freq = 1 / base ** (arange(0, dim, 2) / dim) */
    for (int i = 0; i < half; i++) inv[i] = 1.0 / pow(base, (2.0 * i) / HS);
    if (type == NX_ROPE_LINEAR)
        for (int i = 0; i < half; i++) inv[i] /= s->factor;
    if (type == NX_ROPE_LLAMA3) {
        double old = s->original_max_pos, lo_wl = old / s->low_freq_factor, hi_wl = old / s->high_freq_factor;
        for (int i = 0; i < half; i++) {
            double wl = 2 * M_PI / inv[i], f = inv[i];
            if (wl > lo_wl) f = inv[i] / s->factor;          /* low frequencies: divided by factor */
            else if (!(wl < hi_wl)) {                        /* medium: smoothed between the two */
                double smooth = (old / wl - s->low_freq_factor) / (s->high_freq_factor - s->low_freq_factor);
                f = (1 - smooth) * inv[i] / s->factor + smooth * inv[i];
            }
            inv[i] = f;
        }
    }
    if (type == NX_ROPE_YARN) {
        double factor = s->factor;
        att = s->attention_factor;
        if (!(att > 0))
            att = s->mscale > 0 && s->mscale_all_dim > 0 ? yarn_mscale(factor, s->mscale) / yarn_mscale(factor, s->mscale_all_dim)
                                                          : yarn_mscale(factor, 1.0);
        double bf = s->beta_fast > 0 ? s->beta_fast : 32, bs = s->beta_slow > 0 ? s->beta_slow : 1;
        double lo = yarn_dim(bf, HS, theta, s->original_max_pos), hi = yarn_dim(bs, HS, theta, s->original_max_pos);
        if (!s->no_truncate) lo = floor(lo), hi = ceil(hi);
        lo = lo > 0 ? lo : 0;
        hi = hi < HS - 1 ? hi : HS - 1;
        if (lo == hi) hi += 0.001; /* "Prevent singularity" */
        for (int i = 0; i < half; i++) {
            double ramp = (i - lo) / (hi - lo), extra = 1 - (ramp < 0 ? 0 : ramp > 1 ? 1 : ramp);
            inv[i] = inv[i] / factor * (1 - extra) + inv[i] * extra;
        }
    }
    return att;
}

void nx_rope_tables(float *cos_t, float *sin_t, int P, int HS, double theta, const nx_rope_scaling *s) {
    int half = HS / 2;
    double *inv = nx_xmalloc(sizeof(double) * (half > 0 ? half : 1));
    double att = nx_rope_inv_freq(inv, HS, theta, s, P);
    for (int p = 0; p < P; p++)
        for (int i = 0; i < half; i++) {
            double a = p * inv[i]; /* freqs = pos * inv_freq; cos = cos(emb) * attention_scaling */
            cos_t[(long)p * half + i] = (float)(cos(a) * att);
            sin_t[(long)p * half + i] = (float)(sin(a) * att);
        }
    free(inv);
}

nx_backend *nx_backend_by_name(const char *name, nx_err *err) {
    if (!strcmp(name, "cpu")) return nx_backend_cpu();
    if (!strcmp(name, "ref")) return nx_backend_ref();
    if (!strcmp(name, "cuda")) return nx_backend_cuda(err);
    nx_fail(err, "unknown device '%s' (known: cpu, cuda)", name);
    return NULL;
}

void *nx_backend_alloc(nx_backend *be, size_t bytes, const char *what, nx_err *err) {
    void *p = be->alloc(be, bytes);
    if (!p)
        nx_fail(err, "out of memory: could not allocate %.1f MiB on %s for %s", bytes / 1048576.0, be->name,
                what);
    return p;
}

void nx_backend_free(nx_backend *be, void *p) {
    if (p) be->free(be, p);
}

void nx_backend_upload(nx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) be->upload(be, dst, src, bytes);
}

void nx_backend_download(nx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) be->download(be, dst, src, bytes);
}

void nx_backend_copy(nx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) be->copy(be, dst, src, bytes);
}

void nx_backend_zero(nx_backend *be, void *dst, size_t bytes) {
    if (bytes) be->fill(be, dst, 0, bytes);
}

void nx_backend_sync(nx_backend *be) { be->sync(be); }

int nx_backend_plan(nx_backend *be, const nx_work *w, nx_err *err) { return be->plan(be, w, err); }

void nx_backend_mem_info(nx_backend *be, nx_mem_info *out) {
    memset(out, 0, sizeof *out);
    if (be->mem_info) be->mem_info(be, out);
}

int nx_backend_set_precision(nx_backend *be, nx_precision p, nx_err *err) {
    if (be->set_precision) return be->set_precision(be, p, err);
    if (p == NX_PREC_FP32) return NX_OK;
    return nx_fail(err, "the %s backend computes in fp32 only: use precision: fp32, or device: cuda", be->name);
}

int nx_precision_parse(const char *s, nx_precision *p, nx_err *err) {
    static const char *const names[] = {"fp32", "tf32", "bf16"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) return *p = (nx_precision)i, NX_OK;
    return nx_fail(err, "unknown precision '%s' (known: fp32, tf32, bf16)", s);
}

nx_dtype nx_precision_hold(nx_precision p) { return p == NX_PREC_BF16 ? NX_BF16 : NX_F32; }

bool nx_backend_supports_weight(const nx_backend *be, nx_dtype t) { return be->supports_weight(be, t); }

nx_work nx_work_max(nx_work a, nx_work b) {
#define MAX(f) (a.f > b.f ? a.f : b.f)
    return (nx_work){MAX(rows), MAX(vocab), MAX(ctx), MAX(weight_elems)};
#undef MAX
}

int nx_arena_init(nx_arena *a, nx_backend *be, size_t size, nx_err *err) {
    *a = (nx_arena){.size = size, .be = be};
    a->base = nx_backend_alloc(be, size ? size : 64, "planned buffers", err);
    return a->base ? NX_OK : NX_ERR;
}

void nx_arena_free(nx_arena *a) {
    if (a->base) nx_backend_free(a->be, a->base);
    *a = (nx_arena){0};
}

/* ---- op entry points ---- */

static void missing(const nx_backend *be, const char *op) {
    char m[128];
    snprintf(m, sizeof m, "backend '%s' has no op %s", be->name, op);
    nx_assert_fail("op implemented", __FILE__, __LINE__, m);
}

#define OP(name) (be->ops->name ? be->ops->name : (missing(be, #name), be->ops->name))

/* NEXUS_PROFILE=1 in the environment: every op waits for its backend
 * before and after, its time is added to its name, and the table is
 * printed to stderr at exit — where a step's time goes, per op, on any
 * backend (slower while on, since nothing overlaps). */
enum { PROF_MAX = 48 };
static struct prof {
    const char *name;
    double seconds;
    long calls;
} PROF[PROF_MAX];
static int prof_state = -1; /* -1: environment not read yet */

static int prof_by_time(const void *a, const void *b) {
    double x = ((const struct prof *)a)->seconds, y = ((const struct prof *)b)->seconds;
    return (x < y) - (x > y);
}

static void prof_report(void) {
    double total = 0;
    int n = 0;
    while (n < PROF_MAX && PROF[n].name) total += PROF[n++].seconds;
    qsort(PROF, (size_t)n, sizeof PROF[0], prof_by_time);
    fprintf(stderr, "op profile (NEXUS_PROFILE): %.3f s in ops\n", total);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  %-20s %9.3f s %5.1f%% %9ld calls %9.1f us/call\n", PROF[i].name, PROF[i].seconds,
                100 * PROF[i].seconds / (total > 0 ? total : 1), PROF[i].calls, 1e6 * PROF[i].seconds / PROF[i].calls);
}

static double prof_begin(nx_backend *be) {
    if (prof_state < 0) {
        const char *e = getenv("NEXUS_PROFILE");
        prof_state = e && *e && strcmp(e, "0");
        if (prof_state) atexit(prof_report);
    }
    if (!prof_state) return 0;
    be->sync(be);
    return nx_now();
}

static void prof_end(nx_backend *be, const char *name, double t0) {
    if (!prof_state) return;
    be->sync(be);
    double dt = nx_now() - t0;
    for (int i = 0; i < PROF_MAX; i++)
        if (!PROF[i].name || PROF[i].name == name) {
            PROF[i].name = name;
            PROF[i].seconds += dt;
            PROF[i].calls++;
            return;
        }
}

void nx_backend_replay(nx_backend *be, nx_replay **r, void (*fn)(void *ctx), void *ctx) {
    prof_begin(be); /* reads NEXUS_PROFILE the first time */
    if (prof_state || !be->replay) fn(ctx); /* profiled: op by op */
    else be->replay(be, r, fn, ctx);
}

nx_dtype nx_backend_act_type(nx_backend *be) { return be->act_type ? be->act_type(be) : NX_F32; }

void nx_backend_replay_free(nx_backend *be, nx_replay *r) {
    if (r && be->replay_free) be->replay_free(be, r);
}

#define CALL(name, ...)                  \
    do {                                 \
        double t0_ = prof_begin(be);     \
        OP(name)(__VA_ARGS__);           \
        prof_end(be, #name, t0_);        \
    } while (0)

void nx_embed(nx_backend *be, float *out, const int32_t *ids, const nx_weight *wte, int N) {
    CALL(embed, be, out, ids, wte, N);
}

void nx_embed_backward(nx_backend *be, float *dwte, const float *dout, const int32_t *ids, int N, int C) {
    CALL(embed_backward, be, dwte, dout, ids, N, C);
}

void nx_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C,
                float eps) {
    CALL(rmsnorm, be, out, rstd, in, w, N, C, eps);
}

void nx_rmsnorm_backward(nx_backend *be, float *din, float *dw, const float *dout, const float *in,
                         const float *w, const float *rstd, int N, int C) {
    CALL(rmsnorm_backward, be, din, dw, dout, in, w, rstd, N, C);
}

void nx_linear(nx_backend *be, float *out, const float *in, const nx_weight *W, const float *b, int N) {
    NX_ASSERTM(be->supports_weight(be, W->type), "linear: this backend cannot take weights of this type");
    CALL(linear, be, out, in, W, b, N);
}

void nx_linear_backward(nx_backend *be, float *din, float *dW, float *db, const float *dout, const float *in,
                        const nx_weight *W, int N) {
    NX_ASSERTM(W->type == NX_F32, "linear backward needs f32 weights");
    CALL(linear_backward, be, din, dW, db, dout, in, W, N);
}

/* ---- the same with typed activations: f32 goes to the ops above ---- */

static void typed(bool op) { NX_ASSERTM(op, "activations other than f32 on a backend that holds f32 only"); }

void nx_rmsnorm_to(nx_backend *be, void *out, nx_dtype ot, float *rstd, const float *in, const float *w, int N,
                   int C, float eps) {
    if (ot == NX_F32) {
        nx_rmsnorm(be, out, rstd, in, w, N, C, eps);
        return;
    }
    typed(be->ops->rmsnorm_to != NULL);
    CALL(rmsnorm_to, be, out, ot, rstd, in, w, N, C, eps);
}

void nx_rmsnorm_backward_to(nx_backend *be, float *din, void *din_at, nx_dtype at, float *dw, const float *dout,
                            const float *in, const float *w, const float *rstd, int N, int C) {
    if (!din_at) {
        nx_rmsnorm_backward(be, din, dw, dout, in, w, rstd, N, C);
        return;
    }
    typed(be->ops->rmsnorm_backward_to != NULL);
    NX_ASSERTM(at != NX_F32 && at == nx_backend_act_type(be), "rmsnorm backward: din's copy in the activation type");
    CALL(rmsnorm_backward_to, be, din, din_at, at, dw, dout, in, w, rstd, N, C);
}

void nx_swiglu_to(nx_backend *be, void *h, const void *gu, nx_dtype at, int N, int F) {
    if (at == NX_F32) {
        nx_swiglu(be, h, gu, N, F);
        return;
    }
    typed(be->ops->swiglu_to != NULL);
    CALL(swiglu_to, be, h, gu, at, N, F);
}

void nx_swiglu_backward_from(nx_backend *be, void *dgu, const void *dh, nx_dtype ht, const void *gu, nx_dtype gt,
                             int N, int F) {
    if (gt == NX_F32 && ht == NX_F32) {
        nx_swiglu_backward(be, dgu, dh, gu, N, F);
        return;
    }
    typed(be->ops->swiglu_backward_from != NULL);
    CALL(swiglu_backward_from, be, dgu, dh, ht, gu, gt, N, F);
}

void nx_linear_to(nx_backend *be, void *out, nx_dtype ot, const void *in, nx_dtype it, const nx_weight *W, int N) {
    if (ot == NX_F32) {
        nx_linear_from(be, out, in, it, W, NULL, N);
        return;
    }
    NX_ASSERTM(be->supports_weight(be, W->type), "linear: this backend cannot take weights of this type");
    typed(be->ops->linear_to != NULL);
    CALL(linear_to, be, out, ot, in, it, W, N);
}

void nx_linear_from(nx_backend *be, float *out, const void *in, nx_dtype it, const nx_weight *W, const float *b,
                    int N) {
    if (it == NX_F32) {
        nx_linear(be, out, in, W, b, N);
        return;
    }
    NX_ASSERTM(be->supports_weight(be, W->type), "linear: this backend cannot take weights of this type");
    typed(be->ops->linear_from != NULL);
    CALL(linear_from, be, out, in, it, W, b, N);
}

void nx_linear_backward_from(nx_backend *be, float *din, float *dW, float *db, nx_grad_mode gm, const void *dout,
                             nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W, int N) {
    nx_linear_backward_to(be, din, NX_F32, dW, db, gm, dout, dt, in, it, W, N);
}

void nx_linear_backward_to(nx_backend *be, void *din, nx_dtype dit, float *dW, float *db, nx_grad_mode gm,
                           const void *dout, nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W, int N) {
    NX_ASSERTM(W->type == NX_F32, "linear backward needs f32 weights");
    NX_ASSERTM(!db || dt == NX_F32, "linear backward: a bias gradient needs dout in f32");
    NX_ASSERT(gm == NX_GRAD_ADD || gm == NX_GRAD_WRITE);
    if (be->ops->linear_backward_from) {
        CALL(linear_backward_from, be, din, dit, dW, db, gm, dout, dt, in, it, W, N);
        return;
    }
    typed(it == NX_F32 && dt == NX_F32 && dit == NX_F32);
    if (din) nx_backend_zero(be, din, sizeof(float) * N * W->cols);
    if (gm == NX_GRAD_WRITE) { /* zeroed, then added to: the same values as a product's beta 0 */
        nx_backend_zero(be, dW, sizeof(float) * W->rows * W->cols);
        if (db) nx_backend_zero(be, db, sizeof(float) * W->rows);
    }
    nx_linear_backward(be, din, dW, db, dout, in, W, N);
}

void nx_linear_add(nx_backend *be, float *out, const float *res, const void *in, nx_dtype it, const nx_weight *W,
                   const float *b, int N) {
    NX_ASSERT(out != res && out != in);
    if (!be->ops->linear_add) {
        nx_linear_from(be, out, in, it, W, b, N);
        nx_add(be, out, res, (int64_t)N * W->rows);
        return;
    }
    NX_ASSERTM(be->supports_weight(be, W->type), "linear: this backend cannot take weights of this type");
    CALL(linear_add, be, out, res, in, it, W, b, N);
}

void nx_rope(nx_backend *be, float *x, int64_t ldx, const int32_t *pos, const float *cos_t,
             const float *sin_t, int N, int H, int HS, bool inverse) {
    CALL(rope, be, x, ldx, pos, cos_t, sin_t, N, H, HS, inverse);
}

void nx_spans(nx_backend *be, const nx_span *spans, int nspans) {
    if (be->ops->spans) CALL(spans, be, spans, nspans);
}

void nx_kv_store(nx_backend *be, nx_kv kv, const float *k, const float *v, int64_t ld, const nx_span *spans,
                 int nspans, int D) {
    CALL(kv_store, be, kv, k, v, ld, spans, nspans, D);
}

void nx_attention(nx_backend *be, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv,
                  const nx_span *spans, int nspans, int NH, int KVH, int HS, int window) {
    NX_ASSERT(NH % KVH == 0 && window >= 0);
    CALL(attention, be, out, probs, q, ldq, kv, spans, nspans, NH, KVH, HS, window);
}

void nx_attention_backward(nx_backend *be, float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *probs, const float *dprobs_add, const float *q, const float *k,
                           const float *v, int64_t ld, int B, int T, int NH, int KVH, int HS, int window) {
    NX_ASSERT(window >= 0);
    CALL(attention_backward, be, dq, dk, dv, scratch, dout, probs, dprobs_add, q, k, v, ld, B, T, NH, KVH, HS,
         window);
}

bool nx_attention_lse_fits(nx_backend *be, int HS, int B, int T, int NH) {
    return be->ops->attention_lse_fits && be->ops->attention_lse_fits(be, HS, B, T, NH);
}

void nx_attention_lse(nx_backend *be, void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ld,
                      nx_kv kv, const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                      int window) {
    NX_ASSERTM(nx_attention_lse_fits(be, HS, B, T, NH), "nx_attention_lse where it does not fit");
    NX_ASSERT((ot == NX_F32 || ot == nx_backend_act_type(be)) && (qt == NX_F32 || qt == nx_backend_act_type(be)));
    NX_ASSERT(!rope_cos == !rope_sin);
    if (B && T) CALL(attention_lse, be, out, ot, lse, q, qt, ld, kv, rope_cos, rope_sin, B, T, NH, KVH, HS, window);
}

void nx_attention_lse_backward(nx_backend *be, void *dq, void *dk, void *dv, nx_dtype gt, float *scratch,
                               const void *dout, nx_dtype dt, const void *out, nx_dtype ot, const float *lse,
                               const void *q, const void *k, const void *v, nx_dtype qt, int64_t ld,
                               const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                               int window) {
    NX_ASSERTM(nx_attention_lse_fits(be, HS, B, T, NH), "nx_attention_lse_backward where it does not fit");
    nx_dtype at = nx_backend_act_type(be);
    NX_ASSERT((ot == NX_F32 || ot == at) && (qt == NX_F32 || qt == at) && (gt == NX_F32 || gt == at) &&
              (dt == NX_F32 || dt == at));
    NX_ASSERT(!rope_cos == !rope_sin);
    if (B && T)
        CALL(attention_lse_backward, be, dq, dk, dv, gt, scratch, dout, dt, out, ot, lse, q, k, v, qt, ld, rope_cos,
             rope_sin, B, T, NH, KVH, HS, window);
}

void nx_copy2d(nx_backend *be, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols) {
    NX_ASSERT(rows >= 0 && cols >= 0 && ldd >= cols && lds >= cols);
    if (rows && cols) CALL(copy2d, be, dst, ldd, src, lds, rows, cols);
}

void nx_swiglu(nx_backend *be, float *h, const float *gu, int N, int F) { CALL(swiglu, be, h, gu, N, F); }

void nx_swiglu_backward(nx_backend *be, float *dgu, const float *dh, const float *gu, int N, int F) {
    CALL(swiglu_backward, be, dgu, dh, gu, N, F);
}

void nx_add(nx_backend *be, float *y, const float *x, int64_t n) { CALL(add, be, y, x, n); }

void nx_argmax(nx_backend *be, int32_t *out, const float *x, int N, int V) { CALL(argmax, be, out, x, N, V); }

void nx_cross_entropy(nx_backend *be, double *loss, float *dlogits, float weight, const float *logits,
                      const int32_t *targets, int N, int V) {
    CALL(cross_entropy, be, loss, dlogits, weight, logits, targets, N, V);
}

void nx_kd_loss(nx_backend *be, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                const float *student, const float *teacher, const int32_t *targets, int N, int V) {
    CALL(kd_loss, be, loss, kind, temp, dlogits, weight, student, teacher, targets, N, V);
}

void nx_distill_loss(nx_backend *be, double *ce, double *kd, nx_kd_kind kind, float temp, void *dlogits, nx_dtype dt,
                     float w_ce, float w_kd, const void *student, nx_dtype st, const void *teacher, nx_dtype tt,
                     const int32_t *targets, int N, int V) {
    NX_ASSERTM(st == NX_F32 || dt == st, "a student's logits in bf16 need their gradient in bf16");
    if (be->ops->distill_loss) {
        CALL(distill_loss, be, ce, kd, kind, temp, dlogits, dt, w_ce, w_kd, student, st, teacher, tt, targets, N, V);
        return;
    }
    typed(dt == NX_F32 && st == NX_F32 && tt == NX_F32);
    if (dlogits) nx_backend_zero(be, dlogits, sizeof(float) * N * V);
    nx_cross_entropy(be, ce, w_ce > 0 ? dlogits : NULL, w_ce, student, targets, N, V);
    if (teacher) nx_kd_loss(be, kd, kind, temp, dlogits, w_kd, student, teacher, targets, N, V);
}

void nx_sqdiff(nx_backend *be, double *sum, float *dy, bool add, const float *y, const float *t, int64_t n,
               float scale) {
    NX_ASSERT(!add || dy != y);
    CALL(sqdiff, be, sum, dy, add, y, t, n, scale);
}

void nx_attention_kl(nx_backend *be, double *sum, float *dprobs, const float *ps, const float *pt, int B,
                     int T, int NHs, int NHt, float coef) {
    NX_ASSERT(NHs == NHt || (NHs > 0 && NHt > 0));
    CALL(attention_kl, be, sum, dprobs, ps, pt, B, T, NHs, NHt, coef);
}

void nx_sumsq(nx_backend *be, double *sum, const float *x, int64_t n) { CALL(sumsq, be, sum, x, n); }

void nx_adamw_update(nx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                     const nx_adamw_args *a, const double *guard, int nguard) {
    NX_ASSERT(nguard >= 1);
    CALL(adamw, be, p, g, m, v, n, a, guard, nguard);
}

void nx_mask(nx_backend *be, float *p, const uint8_t *mask, int64_t n) { OP(mask)(be, p, mask, n); }

void nx_round_bf16(nx_backend *be, void *dst, const float *src, int64_t n) { OP(round_bf16)(be, dst, src, n); }

bool nx_backend_has_round_bf16(const nx_backend *be) { return be->ops->round_bf16 != NULL; }
