/* loss.cu — the training losses, their gradients, and the optimiser's
 * kernels on the GPU (see ops.h), mirroring src/backend/cpu/loss.c and
 * optim.c: one block per row of logits (max, log-sum-exp in double, then
 * the row's loss and its gradient in one more pass), row losses summed in
 * a fixed order; Σ g² and the other sums as per-block partials added by
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
#include "cuda_impl.h"

namespace {

__global__ void count_rows_k(int *cnt, const int32_t *targets, int N) {
    __shared__ double sh[CU_THREADS];
    double c = 0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) c += targets[n] >= 0;
    c = cu_block_sum(c, sh);
    if (threadIdx.x == 0) *cnt = (int)c;
}

__global__ void ce_rows_k(double *rowloss, float *dlogits, float weight, const float *logits, const int32_t *targets,
                          const int *cnt, int V) {
    __shared__ float shf[CU_THREADS];
    __shared__ double shd[CU_THREADS];
    int64_t n = blockIdx.x;
    int tg = targets[n];
    if (tg < 0) {
        if (threadIdx.x == 0) rowloss[n] = 0;
        return;
    }
    const float *z = logits + n * V;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, z[i]);
    mx = cu_block_max(mx, shf);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(z[i] - mx);
    s = cu_block_sum(s, shd);
    if (threadIdx.x == 0) rowloss[n] = mx + log(s) - z[tg];
    if (!dlogits) return;
    float g = weight / *cnt, k = (float)(g / s);
    float *d = dlogits + n * V;
    for (int i = threadIdx.x; i < V; i += blockDim.x) d[i] += k * expf(z[i] - mx) - (i == tg ? g : 0.0f);
}

/* One logit's share of its row's divergence (and, for JSD, of Σ ps g):
 * log-probabilities in double, the probabilities weighting them by expf
 * (relative error ~1e-7, where double exp would cost several times the
 * whole pass). */
__device__ __forceinline__ void div_term(nx_kd_kind kind, double lps, double lpt, double &row, double &mg) {
    if (kind == NX_KD_FORWARD_KL) {
        row += (double)expf((float)lpt) * (lpt - lps);
    } else if (kind == NX_KD_REVERSE_KL) {
        row += (double)expf((float)lps) * (lps - lpt);
    } else {
        double ps = exp(lps), pt = exp(lpt);
        double lm = log(0.5 * (ps + pt) > 0 ? 0.5 * (ps + pt) : 1e-300);
        row += 0.5 * ((pt > 0 ? pt * (lpt - lm) : 0) + (ps > 0 ? ps * (lps - lm) : 0));
        mg += ps * 0.5 * (lps - lm);
    }
}

/* Its gradient (before the factor weight · temp / count); kl the row's
 * divergence, mg its Σ ps g. */
__device__ __forceinline__ float grad_term(nx_kd_kind kind, double lpsd, double lptd, float kl, float mg) {
    float lps = (float)lpsd, lpt = (float)lptd, ps = expf(lps), pt = expf(lpt);
    if (kind == NX_KD_FORWARD_KL) return ps - pt;
    if (kind == NX_KD_REVERSE_KL) return ps * ((lps - lpt) - kl);
    return ps * (0.5f * (lps - logf(fmaxf(0.5f * (ps + pt), 1e-38f))) - mg);
}

__global__ void kd_rows_k(double *rowloss, nx_kd_kind kind, float temp, float *dlogits, float weight, const float *st,
                          const float *tt, const int32_t *targets, const int *cnt, int V) {
    __shared__ float shf[CU_THREADS];
    __shared__ double shd[CU_THREADS];
    int64_t n = blockIdx.x;
    if (targets[n] < 0) {
        if (threadIdx.x == 0) rowloss[n] = 0;
        return;
    }
    const float *s = st + n * V, *t = tt + n * V;
    float inv_t = 1.0f / temp, ms = -INFINITY, mt = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) ms = fmaxf(ms, s[i]), mt = fmaxf(mt, t[i]);
    ms = cu_block_max(ms, shf);
    mt = cu_block_max(mt, shf);
    double ss = 0, sst = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        ss += expf((s[i] - ms) * inv_t);
        sst += expf((t[i] - mt) * inv_t);
    }
    ss = cu_block_sum(ss, shd);
    sst = cu_block_sum(sst, shd);
    double lsd = ms * (double)inv_t + log(ss), ltd = mt * (double)inv_t + log(sst);
    double row = 0, mg = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        div_term(kind, s[i] * (double)inv_t - lsd, t[i] * (double)inv_t - ltd, row, mg);
    row = cu_block_sum(row, shd);
    if (kind == NX_KD_JSD) mg = cu_block_sum(mg, shd);
    if (threadIdx.x == 0) rowloss[n] = row;
    if (!dlogits) return;
    float g = weight * temp / *cnt, kl = (float)row, mgf = (float)mg;
    float *d = dlogits + n * V;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        d[i] += g * grad_term(kind, s[i] * (double)inv_t - lsd, t[i] * (double)inv_t - ltd, kl, mgf);
}

/* ---- the fused training loss (nx_distill_loss) ---------------------------
 * One block per row, two passes over the row's logits (three for reverse
 * KL and JSD, whose gradient needs the row's divergence first). Pass 1
 * keeps, per thread, running maxima and sums of exponentials, a sum
 * rescaled when its maximum grows; the block then brings them to the row's
 * maxima. The later passes are kd_rows_k's and ce_rows_k's, term for term,
 * and write the row's gradient instead of adding it. */

/* running max m and Σ exp(x − m) (e1) and Σ exp((x − m)·inv_t) (et) */
struct run_sum {
    float m = -INFINITY;
    double e1 = 0, et = 0;
    __device__ void add(float x, float inv_t, bool both) {
        if (x > m) {
            if (m > -INFINITY) {
                e1 *= exp((double)m - x);
                et *= exp(((double)m - x) * inv_t);
            }
            m = x;
        }
        if (both) e1 += expf(x - m);
        et += expf((x - m) * inv_t);
    }
    /* the sums brought to the block's max M */
    __device__ void rebase(float M, float inv_t) {
        if (m == M) return;
        e1 = m > -INFINITY ? e1 * exp((double)m - M) : 0;
        et = m > -INFINITY ? et * exp(((double)m - M) * inv_t) : 0;
    }
};

struct kd_args {
    double *ce_rows, *kd_rows;
    nx_kd_kind kind;
    float temp, w_ce, w_kd;
    void *dlogits; /* of type DT (distill_rows_k) */
    const float *st;
    const void *tt; /* of type TT */
    const int32_t *targets;
    const int *cnt;
    int V;
};

template <int VEC, class DT, class TT>
__global__ void distill_rows_k(kd_args a) {
    __shared__ float shf[CU_THREADS];
    __shared__ double shd[CU_THREADS];
    int64_t n = blockIdx.x;
    int V = a.V, tg = a.targets[n];
    const float *s = a.st + n * V;
    const TT *t = a.tt ? (const TT *)a.tt + n * V : nullptr;
    DT *d = a.dlogits ? (DT *)a.dlogits + n * V : nullptr;
    if (tg < 0) {
        if (threadIdx.x == 0) {
            a.ce_rows[n] = 0;
            if (t) a.kd_rows[n] = 0;
        }
        const float zero[1] = {0.0f};
        for (int i = threadIdx.x; d && i < V; i += blockDim.x) cu_store(d + i, zero);
        return;
    }
    float inv_t = 1.0f / a.temp;
    run_sum rs, rt; /* student: e1 for CE, et for KD; teacher: et */
    for (int i = threadIdx.x * VEC; i < V; i += blockDim.x * VEC) {
        float x[VEC], y[VEC];
        cu_load(x, s + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) rs.add(x[k], inv_t, true);
        if (!t) continue;
        cu_load(y, t + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) rt.add(y[k], inv_t, false);
    }
    float ms = cu_block_max(rs.m, shf), mt = t ? cu_block_max(rt.m, shf) : 0.0f;
    rs.rebase(ms, inv_t);
    double se = cu_block_sum(rs.e1, shd), ss = 0, sst = 0;
    if (t) {
        rt.rebase(mt, inv_t);
        ss = cu_block_sum(rs.et, shd);
        sst = cu_block_sum(rt.et, shd);
    }
    if (threadIdx.x == 0) a.ce_rows[n] = ms + log(se) - s[tg];
    /* as ce_rows_k and kd_rows_k */
    float gce = a.w_ce > 0 ? a.w_ce / *a.cnt : 0.0f, kce = (float)(gce / se);
    double lsd = ms * (double)inv_t + log(ss), ltd = mt * (double)inv_t + log(sst);
    nx_kd_kind kind = a.kind;
    bool row_first = t && kind != NX_KD_FORWARD_KL; /* the gradient needs the row's divergence */
    bool row_later = t && !row_first;                /* forward KL: summed in the gradient's pass */
    double row = 0, mg = 0;
    if (t && row_first) {
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float y[1];
            cu_load(y, t + i);
            div_term(kind, s[i] * (double)inv_t - lsd, y[0] * (double)inv_t - ltd, row, mg);
        }
        row = cu_block_sum(row, shd);
        if (kind == NX_KD_JSD) mg = cu_block_sum(mg, shd);
    }
    if (!d && !row_later) { /* losses only, all summed */
        if (t && threadIdx.x == 0) a.kd_rows[n] = row;
        return;
    }
    float g = t ? a.w_kd * a.temp / *a.cnt : 0.0f, kl = (float)row, mgf = (float)mg;
    for (int i = threadIdx.x * VEC; i < V; i += blockDim.x * VEC) {
        float out[VEC], x[VEC], y[VEC];
        cu_load(x, s + i);
        if (t) cu_load(y, t + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            out[k] = gce > 0 ? kce * expf(x[k] - ms) - (i + k == tg ? gce : 0.0f) : 0.0f;
            if (!t) continue;
            double lps = x[k] * (double)inv_t - lsd, lpt = y[k] * (double)inv_t - ltd;
            if (row_later) div_term(kind, lps, lpt, row, mg);
            out[k] += g * grad_term(kind, lps, lpt, kl, mgf);
        }
        if (d) cu_store(d + i, out);
    }
    if (row_later) row = cu_block_sum(row, shd);
    if (t && threadIdx.x == 0) a.kd_rows[n] = row;
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

void cu_cross_entropy(nx_backend *, double *loss, float *dlogits, float weight, const float *logits,
                      const int32_t *targets, int N, int V) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double)), *rows = (double *)cu_work(N * sizeof(double) + 8);
    int *cnt = (int *)cu_work(sizeof(int));
    count_rows_k<<<1, CU_THREADS, 0, cu_stream()>>>(cnt, targets, N);
    if (N > 0) ce_rows_k<<<N, CU_THREADS, 0, cu_stream()>>>(rows, dlogits, weight, logits, targets, cnt, V);
    unsigned gb = grid_for(N);
    sum_rows_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, rows, N);
    finish_mean_k<<<1, CU_THREADS, 0, cu_stream()>>>(loss, partials, gb, cnt, 1.0);
    CU_LAUNCHED("cross entropy");
}

void cu_kd_loss(nx_backend *, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                const float *student, const float *teacher, const int32_t *targets, int N, int V) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double)), *rows = (double *)cu_work(N * sizeof(double) + 8);
    int *cnt = (int *)cu_work(sizeof(int));
    count_rows_k<<<1, CU_THREADS, 0, cu_stream()>>>(cnt, targets, N);
    if (N > 0) kd_rows_k<<<N, CU_THREADS, 0, cu_stream()>>>(rows, kind, temp, dlogits, weight, student, teacher, targets, cnt, V);
    unsigned gb = grid_for(N);
    sum_rows_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, rows, N);
    finish_mean_k<<<1, CU_THREADS, 0, cu_stream()>>>(loss, partials, gb, cnt, (double)temp * temp);
    CU_LAUNCHED("kd loss");
}

/* distill_rows_k for the gradient's type (bf16: d16) and the teacher's (t16) */
template <int VEC>
static void distill_rows_vec(const kd_args &a, bool d16, bool t16, int N) {
    if (d16 && t16) distill_rows_k<VEC, __nv_bfloat16, __nv_bfloat16><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (d16) distill_rows_k<VEC, __nv_bfloat16, float><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else if (t16) distill_rows_k<VEC, float, __nv_bfloat16><<<N, CU_THREADS, 0, cu_stream()>>>(a);
    else distill_rows_k<VEC, float, float><<<N, CU_THREADS, 0, cu_stream()>>>(a);
}

static void distill_rows(const kd_args &a, bool v4, bool d16, bool t16, int N) {
    if (v4) distill_rows_vec<4>(a, d16, t16, N);
    else distill_rows_vec<1>(a, d16, t16, N);
}

void cu_distill_loss(nx_backend *, double *ce, double *kd, nx_kd_kind kind, float temp, void *dlogits, nx_dtype dt,
                     float w_ce, float w_kd, const float *student, const void *teacher, nx_dtype tt,
                     const int32_t *targets, int N, int V) {
    cu_work_reset();
    double *partials = (double *)cu_work(CU_PARTIALS * sizeof(double));
    double *ce_rows = (double *)cu_work(N * sizeof(double) + 8), *kd_rows = (double *)cu_work(N * sizeof(double) + 8);
    int *cnt = (int *)cu_work(sizeof(int));
    count_rows_k<<<1, CU_THREADS, 0, cu_stream()>>>(cnt, targets, N);
    kd_args a = {ce_rows, kd_rows, kind, temp, w_ce, w_kd, dlogits, student, teacher, targets, cnt, V};
    NX_ASSERT((dt == NX_F32 || dt == NX_BF16) && (tt == NX_F32 || tt == NX_BF16));
    bool v4 = V % 4 == 0 && cu_aligned16(student) && cu_aligned16(dlogits) && cu_aligned16(teacher);
    if (N > 0) distill_rows(a, v4, dt == NX_BF16, tt == NX_BF16, N);
    unsigned gb = grid_for(N);
    sum_rows_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, ce_rows, N);
    finish_mean_k<<<1, CU_THREADS, 0, cu_stream()>>>(ce, partials, gb, cnt, 1.0);
    if (teacher) {
        sum_rows_k<<<gb, CU_THREADS, 0, cu_stream()>>>(partials, kd_rows, N);
        finish_mean_k<<<1, CU_THREADS, 0, cu_stream()>>>(kd, partials, gb, cnt, (double)temp * temp);
    }
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
