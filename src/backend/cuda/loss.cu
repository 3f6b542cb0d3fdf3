/* loss.cu — the training losses, their gradients, and the optimiser's
 * kernels on the GPU (see ops.h), mirroring src/backend/cpu/loss.c and
 * optim.c: the three row losses in one kernel, one block per row of
 * logits (maxima, sums of exponentials and the KL divergence in one pass,
 * the gradient in one more; see loss_rows_k), row losses summed in a fixed
 * order; Σ g² and the other sums as per-block partials added by
 * one block; AdamW elementwise, checking its guard values itself so that a
 * non-finite step changes nothing without the host deciding; the sparsity
 * mask elementwise, a select (a pruned weight is exactly +0).
 *
 * Gradients (z = logits / temp; the temp² factor makes the row gradient
 * temp · (that) / count):
 *   CE:          ∂/∂logit = softmax − onehot
 *   forward KL:  ps − pt
 *   reverse KL:  ps ⊙ (log ps − log pt − KL)
 *   JSD:         ps ⊙ (g − Σ ps g),  g = ½ log(ps / m) */
#include <float.h>

#include "cuda_impl.h"

namespace {

__global__ void count_rows_k(int *cnt, const int32_t *targets, int N) {
    __shared__ double sh[CU_THREADS];
    double c = 0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) c += targets[n] >= 0;
    c = cu_block_sum(c, sh);
    if (threadIdx.x == 0) *cnt = (int)c;
}

/* ---- the row losses (loss_rows_k) -----------------------------------------
 * One kernel serves nx_cross_entropy, nx_kd_loss and nx_distill_loss: one
 * block per row, VEC logits per thread a step (VEC 4: 16-byte loads).
 *
 * Pass 1 reads the student's and the teacher's logits once. Each thread
 * keeps, per side, a running maximum m and, relative to it, Σ exp(x − m)
 * (the student's, for CE) and Σ exp((x − m)/temp), rescaled when its
 * maximum grows; for forward and reverse KL also the divergence, as
 *   KL = ± (E_w[y − x]/temp − (lse_t − lse_s)),
 * E_w over the teacher's probabilities (forward KL) or the student's
 * (reverse), lse the log-sum-exp of logits/temp, and y − x taken relative
 * to its value at the row's target (c0), so that an offset between the two
 * sides costs no precision. A VEC group's terms are added in float, its
 * sums to double accumulators (one conversion per sum and group); the
 * threads' sums are brought to the row's maxima in double and added in a
 * fixed order (cu_block_sums).
 *
 * JSD's divergence needs the normalised probabilities: one more pass. The
 * last pass writes the gradient (adds it, for nx_cross_entropy and
 * nx_kd_loss), each probability from its float log-probability.
 *
 * Numerics. Every exponential is 2^u by the hardware's ex2 (expf's core),
 * u = (x − m)·k with k = log2(e)/temp rounded to float: all sums and
 * probabilities of a row use the same k, so its rounding changes the
 * temperature by at most 3e-8 (relatively), alike everywhere. The last
 * passes subtract the row's log-sum-exp (double) as two floats, hi + lo:
 * a log-probability is then as exact as the double one rounded to float.
 * A term's x − m rounds relative to its size, and a term far below the
 * maximum weighs little, so each rounding counts by its term's weight. */

/* 2^u by the hardware (ex2.approx.ftz: about 2 ulp; below 2^-126, 0) */
__device__ __forceinline__ float exp2_hw(float u) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(u));
    return r;
}

/* A row's double constant as hi + lo, two floats */
struct split_c {
    float hi, lo;
};
__device__ __forceinline__ split_c split_of(double c) {
    float h = (float)c;
    return {h, (float)(c - h)};
}
/* x·k − c: one rounding for the product less c's high part, one for its low */
__device__ __forceinline__ float minus_c(float x, float k, split_c c) { return fmaf(x, k, -c.hi) - c.lo; }

template <int VEC>
__device__ __forceinline__ float max_of(const float (&v)[VEC]) {
    float m = v[0];
#pragma unroll
    for (int k = 1; k < VEC; k++) m = fmaxf(m, v[k]);
    return m;
}

/* What a row's first pass sums (the same for every thread of its block) */
struct row_plan {
    bool ce;                /* CE's log-sum-exp (its loss) */
    bool kd, fwd, rev, jsd; /* a teacher; its divergence */
    float k1, kt, c0;       /* log2 e; log2 e / temp; y − x at the target */
};

/* Pass 1's per-thread sums: the maxima of the student's (ms) and the
 * teacher's (mt) logits so far; s1 = Σ 2^((x − ms)·k1), ss = Σ 2^((x −
 * ms)·kt), st = Σ 2^((y − mt)·kt); p = Σ w·((y − c0) − x), w the terms of
 * st (forward KL) or ss (reverse KL). */
struct row_sums {
    float ms = -FLT_MAX, mt = -FLT_MAX; /* not −∞: a group of −∞ logits adds 0, not NaN */
    double s1 = 0, ss = 0, st = 0, p = 0;

    template <int VEC>
    __device__ __forceinline__ void add(const float (&x)[VEC], const float (&y)[VEC], const row_plan &r) {
        float gm = max_of(x), z[VEC], es[VEC];
        if (gm > ms) {
            float f = ms - gm;
            if (r.ce) s1 *= exp2_hw(f * r.k1);
            if (r.kd) {
                float fs = exp2_hw(f * r.kt);
                ss *= fs;
                if (r.rev) p *= fs;
            }
            ms = gm;
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) z[k] = x[k] - ms;
        if (r.ce) {
            float a1 = 0;
#pragma unroll
            for (int k = 0; k < VEC; k++) a1 += exp2_hw(z[k] * r.k1);
            s1 += a1;
        }
        if (!r.kd) return;
        float as = 0;
#pragma unroll
        for (int k = 0; k < VEC; k++) as += es[k] = exp2_hw(z[k] * r.kt);
        ss += as;
        float gt = max_of(y);
        if (gt > mt) {
            float ft = exp2_hw((mt - gt) * r.kt);
            st *= ft;
            if (r.fwd) p *= ft;
            mt = gt;
        }
        float at = 0, ap = 0;
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float e = exp2_hw((y[k] - mt) * r.kt);
            at += e;
            ap = fmaf(r.fwd ? e : es[k], (y[k] - r.c0) - x[k], ap);
        }
        st += at;
        if (r.fwd || r.rev) p += ap;
    }

    /* the sums brought to the row's maxima Ms, Mt */
    __device__ __forceinline__ void rebase(float Ms, float Mt, const row_plan &r) {
        double ds = (double)ms - Ms, dt = (double)mt - Mt;
        if (r.ce) s1 *= exp2(ds * r.k1);
        if (!r.kd) return;
        double fs = exp2(ds * r.kt), ft = exp2(dt * r.kt);
        ss *= fs;
        st *= ft;
        p *= r.fwd ? ft : fs;
    }
};

/* What the later passes need of their row: probabilities 2^((x − M)·k −
 * log2 Σ), log-probabilities x/temp − lse */
struct row_probs {
    float Ms, Mt, k1, kt, it; /* the maxima; log2 e; log2 e / temp; 1/temp */
    split_c c1, cs, ct;       /* log2 of the row's sums s1, ss, st */
    split_c ls, lt;           /* lse of the student's and the teacher's logits/temp */
    __device__ float p1(float x) const { return exp2_hw(minus_c(x - Ms, k1, c1)); } /* softmax(x) */
    __device__ float ps(float x) const { return exp2_hw(minus_c(x - Ms, kt, cs)); } /* softmax(x/temp) */
    __device__ float pt(float y) const { return exp2_hw(minus_c(y - Mt, kt, ct)); }
    __device__ float lps(float x) const { return minus_c(x, it, ls); }
    __device__ float lpt(float y) const { return minus_c(y, it, lt); }
};

/* JSD at one logit: ½ log(ps / m), m = ½(ps + pt) (the gradient's g), and
 * the logit's share of the row's divergence */
struct jsd_term {
    float g, row;
};
__device__ __forceinline__ jsd_term jsd_at(float lps, float lpt, float ps, float pt) {
    float lm = logf(fmaxf(0.5f * (ps + pt), 1e-38f));
    return {0.5f * (lps - lm), 0.5f * ((pt > 0 ? pt * (lpt - lm) : 0.0f) + (ps > 0 ? ps * (lps - lm) : 0.0f))};
}

/* Calls f(i, x, y) for each VEC group of the row that this thread covers (i
 * its first index; y the teacher's logits, zeros when t is NULL), loading
 * the next group before working on this one: two groups' loads in flight. */
template <int VEC, class ST, class TT, class F>
__device__ __forceinline__ void sweep(const ST *s, const TT *t, int V, F &&f) {
    const int step = blockDim.x * VEC;
    int i = threadIdx.x * VEC;
    float x[VEC] = {}, y[VEC] = {};
    if (i < V) {
        cu_load(x, s + i);
        if (t) cu_load(y, t + i);
    }
    for (; i < V; i += step) {
        float xn[VEC] = {}, yn[VEC] = {};
        if (i + step < V) {
            cu_load(xn, s + i + step);
            if (t) cu_load(yn, t + i + step);
        }
        f(i, x, y);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[k] = xn[k], y[k] = yn[k];
    }
}

/* the divergence's share of the gradient (G_NONE: none) */
enum { G_NONE, G_FWD, G_REV, G_JSD };

/* The gradient's pass: d = (d +, when add) gce·(softmax − onehot(tg)) + g·∂KD/∂(logits/temp) */
template <int G, int VEC, class ST, class DT, class TT>
__device__ __forceinline__ void grad_pass(const row_probs &r, float gce, int tg, float g, float mg, split_c lr,
                                          const ST *s, const TT *t, DT *d, int V, bool add) {
    sweep<VEC>(s, G == G_NONE ? nullptr : t, V, [&](int i, const float (&x)[VEC], const float (&y)[VEC]) {
        float out[VEC] = {};
        if (gce != 0.0f) {
#pragma unroll
            for (int k = 0; k < VEC; k++) out[k] = gce * r.p1(x[k]) - (i + k == tg ? gce : 0.0f);
        }
        if (G != G_NONE) {
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                float ps = r.ps(x[k]), kd;
                if (G == G_FWD) kd = ps - r.pt(y[k]);
                else if (G == G_REV) kd = ps * minus_c(x[k] - y[k], r.it, lr); /* ps (log ps − log pt − KL) */
                else kd = ps * (jsd_at(r.lps(x[k]), r.lpt(y[k]), ps, r.pt(y[k])).g - mg);
                out[k] = fmaf(g, kd, out[k]);
            }
        }
        if (add) {
            float was[VEC];
            cu_load(was, d + i);
#pragma unroll
            for (int k = 0; k < VEC; k++) out[k] += was[k];
        }
        cu_store(d + i, out);
    });
}

struct loss_args {
    double *ce_rows; /* CE's row losses (NULL: not wanted, and no CE gradient) */
    double *kd_rows; /* KD's, when there is a teacher */
    nx_kd_kind kind;
    float temp, w_ce, w_kd; /* the gradient's weights (w_ce used with ce_rows) */
    void *dlogits;          /* of type DT; NULL: losses only */
    bool add;               /* add the gradient to dlogits (DT float) instead of writing it */
    const void *st; /* of type ST */
    const void *tt; /* of type TT; NULL: CE only */
    const int32_t *targets;
    const int *cnt;
    int V;
};

/* Blocks per multiprocessor the registers must allow: 5 of 256 threads (48
 * registers; the VEC 4 kernels need no spills at that) */
enum { LOSS_BLOCKS_PER_SM = 5 };

template <int VEC, class ST, class DT, class TT>
__global__ void __launch_bounds__(CU_THREADS, LOSS_BLOCKS_PER_SM) loss_rows_k(loss_args a) {
    __shared__ float shf[2 * CU_THREADS / 32];
    __shared__ double shd[4 * CU_THREADS / 32];
    int64_t n = blockIdx.x;
    int V = a.V, tg = a.targets[n];
    const ST *s = (const ST *)a.st + n * V;
    const TT *t = a.tt ? (const TT *)a.tt + n * V : nullptr;
    DT *d = a.dlogits ? (DT *)a.dlogits + n * V : nullptr;
    if (tg < 0) {
        if (threadIdx.x == 0) {
            if (a.ce_rows) a.ce_rows[n] = 0;
            if (t) a.kd_rows[n] = 0;
        }
        const float zero[VEC] = {};
        for (int i = threadIdx.x * VEC; d && !a.add && i < V; i += blockDim.x * VEC) cu_store(d + i, zero);
        return;
    }
    float it = 1.0f / a.temp;
    row_plan pl = {a.ce_rows != nullptr, t != nullptr, t && a.kind == NX_KD_FORWARD_KL, t && a.kind == NX_KD_REVERSE_KL,
                   t && a.kind == NX_KD_JSD, (float)M_LOG2E, (float)(M_LOG2E * it), 0.0f};
    float xt[1]; /* the target's logit */
    cu_load(xt, s + tg);
    if (pl.fwd || pl.rev) {
        float y[1];
        cu_load(y, t + tg);
        pl.c0 = y[0] - xt[0];
    }
    row_sums rs;
    sweep<VEC>(s, t, V, [&](int, const float (&x)[VEC], const float (&y)[VEC]) { rs.add(x, y, pl); });
    float mx[2] = {rs.ms, rs.mt};
    cu_block_maxs(mx, shf);
    rs.rebase(mx[0], mx[1], pl);
    double sum[4] = {rs.s1, rs.ss, rs.st, rs.p};
    cu_block_sums(sum, shd);
    double lsd = mx[0] * (double)it + log(sum[1]), ltd = mx[1] * (double)it + log(sum[2]), row = 0, mg = 0;
    if (pl.ce && threadIdx.x == 0) a.ce_rows[n] = mx[0] + log(sum[0]) - xt[0];
    if (pl.fwd || pl.rev) row = (pl.fwd ? 1 : -1) * (it * (sum[3] / (pl.fwd ? sum[2] : sum[1]) + pl.c0) - (ltd - lsd));
    row_probs r = {mx[0], mx[1], pl.k1, pl.kt, it, split_of(log2(sum[0])), split_of(log2(sum[1])),
                   split_of(log2(sum[2])), split_of(lsd), split_of(ltd)};
    if (pl.jsd) { /* its divergence needs the probabilities */
        double acc[2] = {0, 0};
        sweep<VEC>(s, t, V, [&](int, const float (&x)[VEC], const float (&y)[VEC]) {
            float rw = 0, pg = 0;
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                float ps = r.ps(x[k]);
                jsd_term j = jsd_at(r.lps(x[k]), r.lpt(y[k]), ps, r.pt(y[k]));
                rw += j.row;
                pg += ps * j.g;
            }
            acc[0] += rw, acc[1] += pg;
        });
        cu_block_sums(acc, shd);
        row = acc[0], mg = acc[1];
    }
    if (t && threadIdx.x == 0) a.kd_rows[n] = row;
    if (!d) return;
    float cnt = (float)*a.cnt, gce = pl.ce ? a.w_ce / cnt : 0.0f, g = t ? a.w_kd * a.temp / cnt : 0.0f;
    split_c lr = split_of(lsd - ltd + row);
    if (g == 0.0f) grad_pass<G_NONE, VEC>(r, gce, tg, g, 0, lr, s, t, d, V, a.add);
    else if (pl.fwd) grad_pass<G_FWD, VEC>(r, gce, tg, g, 0, lr, s, t, d, V, a.add);
    else if (pl.rev) grad_pass<G_REV, VEC>(r, gce, tg, g, 0, lr, s, t, d, V, a.add);
    else grad_pass<G_JSD, VEC>(r, gce, tg, g, (float)mg, lr, s, t, d, V, a.add);
}

/* partials[b] = Σ over block b's grid-stride share of the row losses */
__global__ void sum_rows_k(double *partials, const double *rowloss, int N) {
    __shared__ double sh[CU_THREADS];
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x)
        s += rowloss[i];
    s = cu_block_sum(s, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

/* *out = scale / cnt · Σ partials (0 when no row counts) */
__global__ void finish_mean_k(double *out, const double *partials, int n, const int *cnt, double scale) {
    __shared__ double sh[CU_THREADS];
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
    s = cu_block_sum(s, sh);
    if (threadIdx.x == 0) *out = *cnt ? scale * s / *cnt : 0.0;
}

__global__ void sqdiff_k(double *partials, float *dy, bool add, const float *y, const float *t, int64_t n, float scale) {
    __shared__ double sh[CU_THREADS];
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float d = y[i] - t[i];
        s += (double)d * d;
        dy[i] = (add ? dy[i] : 0.0f) + scale * d;
    }
    s = cu_block_sum(s, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sumsq_k(double *partials, const float *x, int64_t n) {
    __shared__ double sh[CU_THREADS];
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = cu_block_sum(s, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

/* one thread per (b, group, query t): KL over the keys it sees */
__global__ void attention_kl_k(double *partials, float *dprobs, const float *As, const float *At, int B, int T, int hs,
                               int ht, float coef) {
    __shared__ double sh[CU_THREADS];
    int groups = hs == ht ? hs : 1, gs = hs / groups, gt = ht / groups;
    int64_t TT = (int64_t)T * T, items = (int64_t)B * groups * T;
    double kl = 0;
    for (int64_t it = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; it < items; it += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = it / ((int64_t)groups * T);
        int k = (int)((it / T) % groups), t = (int)(it % T);
        const float *s0 = As + (b * hs + (int64_t)k * gs) * TT, *t0 = At + (b * ht + (int64_t)k * gt) * TT;
        float *d0 = dprobs + (b * hs + (int64_t)k * gs) * TT;
        for (int j = 0; j <= t; j++) {
            int64_t at = (int64_t)t * T + j;
            float ps = 0, pt = 0;
            for (int h = 0; h < gs; h++) ps += s0[h * TT + at];
            for (int h = 0; h < gt; h++) pt += t0[h * TT + at];
            ps = fmaxf(ps / gs, 1e-30f);
            pt /= gt;
            if (pt <= 0) continue;
            kl += (double)pt * (log((double)pt) - log((double)ps));
            float d = -coef * pt / ps / gs;
            for (int h = 0; h < gs; h++) d0[h * TT + at] += d;
        }
    }
    kl = cu_block_sum(kl, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = kl;
}

__global__ void adamw_k(float *p, const float *g, float *m, float *v, int64_t n, nx_adamw_args a, const double *guard,
                        int nguard) {
    for (int i = 0; i < nguard; i++)
        if (!isfinite(guard[i])) return;
    double norm = sqrt(guard[nguard - 1]);
    float c = a.clip > 0 && norm > a.clip ? (float)(a.clip / (norm + 1e-6)) : 1.0f;
    float step = (float)(a.lr / a.bc1), bc2s = (float)sqrt(a.bc2);
    float b1 = a.beta1, b2 = a.beta2, eps = a.eps, wd = a.lr * a.weight_decay;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i] * c, pi = p[i] * (1.0f - wd), mi = m[i] + (gi - m[i]) * (1.0f - b1);
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        m[i] = mi, v[i] = vi;
        p[i] = pi - step * mi / (sqrtf(vi) / bc2s + eps);
        if (a.p16) ((__nv_bfloat16 *)a.p16)[i] = __float2bfloat16_rn(p[i]);
    }
}

unsigned grid_for(int64_t n) {
    int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
    return (unsigned)(b < 1 ? 1 : b > CU_PARTIALS ? CU_PARTIALS : b);
}

} // namespace

/* loss_rows_k on N rows: 16-byte accesses where V and the pointers allow,
 * for the student's type (bf16: s16, which comes with d16), the
 * gradient's (d16) and the teacher's (t16) */
template <int VEC>
static void loss_rows_vec(const loss_args &a, bool s16, bool d16, bool t16, int N) {
    typedef __nv_bfloat16 bf;
    if (s16 && t16) loss_rows_k<VEC, bf, bf, bf><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (s16) loss_rows_k<VEC, bf, bf, float><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (d16 && t16) loss_rows_k<VEC, float, bf, bf><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (d16) loss_rows_k<VEC, float, bf, float><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (t16) loss_rows_k<VEC, float, float, bf><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else loss_rows_k<VEC, float, float, float><<<N, CU_THREADS, 0, cu_stream()>>>(a);
}

static void loss_rows(const loss_args &a, bool s16, bool d16, bool t16, int N) {
    NX_ASSERT(!s16 || d16);
    if (N == 0) return;
    if (a.V % 4 == 0 && cu_aligned16(a.st) && cu_aligned16(a.dlogits) && cu_aligned16(a.tt))
        loss_rows_vec<4>(a, s16, d16, t16, N);
    else loss_rows_vec<1>(a, s16, d16, t16, N);
}

/* The row losses' workspace: partials, one row loss per row for each of
 * nrows losses, the count of rows (counted here) */
struct rows_work {
    double *partials, *rows[2];
    int *cnt;
};
static rows_work rows_begin(const int32_t *targets, int N, int nrows) {
    cu_work_reset();
    rows_work w = {(double *)cu_work(CU_PARTIALS * sizeof(double)), {nullptr, nullptr}, nullptr};
    for (int k = 0; k < nrows; k++) w.rows[k] = (double *)cu_work(N * sizeof(double) + 8);
    w.cnt = (int *)cu_work(sizeof(int));
    count_rows_k<<<1, CU_THREADS, 0, cu_stream()>>>(w.cnt, targets, N);
    return w;
}
/* *out = scale · mean of the counted rows' losses */
static void rows_mean(const rows_work &w, double *out, const double *rows, int N, double scale) {
    unsigned gb = grid_for(N);
    sum_rows_k<<<gb, CU_THREADS, 0, cu_stream()>>>(w.partials, rows, N);
    finish_mean_k<<<1, CU_THREADS, 0, cu_stream()>>>(out, w.partials, gb, w.cnt, scale);
}

void cu_cross_entropy(nx_backend *, double *loss, float *dlogits, float weight, const float *logits,
                      const int32_t *targets, int N, int V) {
    rows_work w = rows_begin(targets, N, 1);
    loss_args a = {w.rows[0], nullptr, NX_KD_FORWARD_KL, 1.0f, weight, 0.0f, dlogits, true, logits, nullptr, targets,
                   w.cnt, V};
    loss_rows(a, false, false, false, N);
    rows_mean(w, loss, w.rows[0], N, 1.0);
    CU_LAUNCHED("cross entropy");
}

void cu_kd_loss(nx_backend *, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                const float *student, const float *teacher, const int32_t *targets, int N, int V) {
    rows_work w = rows_begin(targets, N, 1);
    loss_args a = {nullptr, w.rows[0], kind, temp, 0.0f, weight, dlogits, true, student, teacher, targets, w.cnt, V};
    loss_rows(a, false, false, false, N);
    rows_mean(w, loss, w.rows[0], N, (double)temp * temp);
    CU_LAUNCHED("kd loss");
}

void cu_distill_loss(nx_backend *, double *ce, double *kd, nx_kd_kind kind, float temp, void *dlogits, nx_dtype dt,
                     float w_ce, float w_kd, const void *student, nx_dtype st, const void *teacher, nx_dtype tt,
                     const int32_t *targets, int N, int V) {
    NX_ASSERT((dt == NX_F32 || dt == NX_BF16) && (st == NX_F32 || st == NX_BF16) && (tt == NX_F32 || tt == NX_BF16));
    rows_work w = rows_begin(targets, N, 2);
    loss_args a = {w.rows[0], w.rows[1], kind,    temp,    w_ce > 0 ? w_ce : 0.0f, w_kd, dlogits, false,
                   student,   teacher,   targets, w.cnt, V};
    loss_rows(a, st == NX_BF16, dt == NX_BF16, tt == NX_BF16, N);
    rows_mean(w, ce, w.rows[0], N, 1.0);
    if (teacher) rows_mean(w, kd, w.rows[1], N, (double)temp * temp);
    CU_LAUNCHED("distill loss");
}

void cu_sqdiff(nx_backend *, double *sum, float *dy, bool add, const float *y, const float *t, int64_t n, float scale) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double));
    unsigned gb = grid_for(n);
    sqdiff_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, dy, add, y, t, n, scale);
    cu_finish_sum(sum, partials, gb, 1.0);
    CU_LAUNCHED("sqdiff");
}

void cu_attention_kl(nx_backend *, double *sum, float *dprobs, const float *ps, const float *pt, int B, int T, int hs,
                     int ht, float coef) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double));
    int groups = hs == ht ? hs : 1;
    unsigned gb = grid_for((int64_t)B * groups * T);
    attention_kl_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, dprobs, ps, pt, B, T, hs, ht, coef);
    cu_finish_sum(sum, partials, gb, 1.0);
    CU_LAUNCHED("attention kl");
}

void cu_sumsq(nx_backend *, double *sum, const float *x, int64_t n) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double));
    unsigned gb = grid_for(n);
    sumsq_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, x, n);
    cu_finish_sum(sum, partials, gb, 1.0);
    CU_LAUNCHED("sumsq");
}

void cu_adamw(nx_backend *, float *p, const float *g, float *m, float *v, int64_t n, const nx_adamw_args *a,
              const double *guard, int nguard) {
    if (n == 0) return;
    adamw_k<<<cu_blocks(n) < 4096 ? cu_blocks(n) : 4096, CU_THREADS, 0, cu_stream()>>>(p, g, m, v, n, *a, guard, nguard);
    CU_LAUNCHED("adamw");
}

namespace {

__global__ void mask_k(float *p, const uint8_t *mask, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = mask[i] ? p[i] : 0.0f;
}

} // namespace

void cu_mask(nx_backend *, float *p, const uint8_t *mask, int64_t n) {
    if (n == 0) return;
    mask_k<<<cu_blocks(n) < 4096 ? cu_blocks(n) : 4096, CU_THREADS, 0, cu_stream()>>>(p, mask, n);
    CU_LAUNCHED("mask");
}

namespace {
__global__ void round_bf16_k(__nv_bfloat16 *dst, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}
} // namespace

void cu_round_bf16(nx_backend *, void *dst, const float *src, int64_t n) {
    if (n == 0) return;
    round_bf16_k<<<cu_blocks(n) < 4096 ? cu_blocks(n) : 4096, CU_THREADS, 0, cu_stream()>>>((__nv_bfloat16 *)dst, src,
                                                                                             n);
    CU_LAUNCHED("round to bf16");
}
