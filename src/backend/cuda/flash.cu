/* flash.cu — attention over whole sequences without the T×T maps, on the
 * tensor cores (bf16 precision only).
 *
 * For batches of whole sequences {b, 0, T} whose maps nobody keeps (a
 * teacher's forward, evaluation, and training through nx_attention_lse,
 * which also keeps each row's log-sum-exp for the backward below) in
 * bf16 precision: one block of four
 * warps per 64 query rows of one (sequence, head); each warp holds 16
 * rows' queries as bf16 mma fragments and walks the key tiles of 64 that
 * its rows can see (causal, and from the first key of the window), with
 * an online softmax (running max and sum in f32, as FlashAttention-2):
 * S = Q·Kᵀ and O += P·V are m16n8k16 bf16 products with f32
 * accumulation, K and V staged in shared memory as bf16 (V transposed).
 * Nothing is added atomically and every sum runs in a fixed order, so the
 * result is the same on every run. Head sizes 32, 64 and 128; others,
 * fp32 and tf32 precision, and kept maps use attention_gemm.cu. */
#include "cuda_impl.h"

namespace {

enum { FL_ROWS = 64, FL_KEYS = 64, FL_WARPS = 4 };

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* c += a·b, m16n8k16, bf16 inputs, f32 accumulators */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* grid (⌈T/64⌉, B·NH), 128 threads. q: row b·T + t at q + r·ldq + h·D;
 * keys and values of sequence b at kv.{k,v} + b·kv.seq + j·kv.row + kh·D;
 * out: row r at out + r·NH·D + h·D. */
template <int D>
__global__ void __launch_bounds__(FL_WARPS * 32) flash_fwd_k(float *out, float *lse, const float *q, int64_t ldq,
                                                             nx_kv kv, int T, int NH, int G, int window,
                                                             float scale_log2) {
    __shared__ __nv_bfloat16 Ks[FL_KEYS][D + 8];
    __shared__ __nv_bfloat16 Vt[D][FL_KEYS + 8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / G;
    const int row0 = blockIdx.x * FL_ROWS, wrow = row0 + warp * 16;
    const float *K = kv.k + b * kv.seq + (int64_t)kh * D, *V = kv.v + b * kv.seq + (int64_t)kh * D;

    /* this warp's queries as A fragments: rows wrow+g and wrow+g+8 */
    uint32_t qa[D / 16][4];
    {
        int r0 = wrow + g, r1 = r0 + 8;
        const float *q0 = q + ((int64_t)b * T + (r0 < T ? r0 : T - 1)) * ldq + (int64_t)h * D;
        const float *q1 = q + ((int64_t)b * T + (r1 < T ? r1 : T - 1)) * ldq + (int64_t)h * D;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            int c = kk * 16 + 2 * tq;
            qa[kk][0] = pack_bf16(q0[c], q0[c + 1]);
            qa[kk][1] = pack_bf16(q1[c], q1[c + 1]);
            qa[kk][2] = pack_bf16(q0[c + 8], q0[c + 9]);
            qa[kk][3] = pack_bf16(q1[c + 8], q1[c + 9]);
        }
    }
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    int last = row0 + FL_ROWS - 1 < T - 1 ? row0 + FL_ROWS - 1 : T - 1;
    int kt0 = first_key(row0, window) / FL_KEYS, kt1 = last / FL_KEYS;
    for (int kt = kt0; kt <= kt1; kt++) {
        int key0 = kt * FL_KEYS;
        __syncthreads(); /* the last tile's readers are done */
        for (int i = threadIdx.x; i < FL_KEYS * D; i += FL_WARPS * 32) {
            int j = i / D, d = i % D;
            bool in = key0 + j < T;
            Ks[j][d] = __float2bfloat16_rn(in ? K[(int64_t)(key0 + j) * kv.row + d] : 0.0f);
            Vt[d][j] = __float2bfloat16_rn(in ? V[(int64_t)(key0 + j) * kv.row + d] : 0.0f);
        }
        __syncthreads();
        /* S = Q·Kᵀ for this warp's 16 rows × 64 keys */
        float s[FL_KEYS / 8][4];
#pragma unroll
        for (int nt = 0; nt < FL_KEYS / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const __nv_bfloat16 *kr = &Ks[nt * 8 + g][kk * 16 + 2 * tq];
                mma16816(s[nt], qa[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
        /* mask, scale, online softmax; rows wrow+g (half 0) and wrow+g+8 (half 1) */
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int i = wrow + g + 8 * half, j0 = first_key(i, window);
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < FL_KEYS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int j = key0 + nt * 8 + 2 * tq + e;
                    float v = j <= i && j >= j0 && i < T ? s[nt][2 * half + e] * scale_log2 : -INFINITY;
                    s[nt][2 * half + e] = v;
                    mx = fmaxf(mx, v);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mnew = fmaxf(m[half], mx);
            float base = mnew == -INFINITY ? 0.0f : mnew; /* a row that has seen no key yet */
            float alpha = exp2f(m[half] - base);
            m[half] = mnew;
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < FL_KEYS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float p = exp2f(s[nt][2 * half + e] - base);
                    s[nt][2 * half + e] = p;
                    sum += p;
                }
            l[half] = l[half] * alpha + sum;
#pragma unroll
            for (int n = 0; n < D / 8; n++) o[n][2 * half] *= alpha, o[n][2 * half + 1] *= alpha;
        }
        /* O += P·V: P's accumulators become A fragments, 16 keys a step */
#pragma unroll
        for (int kk = 0; kk < FL_KEYS / 16; kk++) {
            uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const __nv_bfloat16 *vr = &Vt[n * 8 + g][kk * 16 + 2 * tq];
                mma16816(o[n], pa, *(const uint32_t *)vr, *(const uint32_t *)(vr + 8));
            }
        }
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        float sum = l[half];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        int i = wrow + g + 8 * half;
        if (i >= T) continue;
        if (lse && tq == 0) lse[(int64_t)bh * T + i] = (m[half] + log2f(sum)) * 0.6931471805599453f;
        float inv = 1.0f / sum;
        float *orow = out + ((int64_t)b * T + i) * NH * D + (int64_t)h * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            float2 v = make_float2(o[n][2 * half] * inv, o[n][2 * half + 1] * inv);
            *(float2 *)(orow + n * 8 + 2 * tq) = v;
        }
    }
}

template <int D>
void launch(float *out, float *lse, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH,
            int window) {
    dim3 grid((unsigned)((T + FL_ROWS - 1) / FL_ROWS), (unsigned)(B * NH));
    float scale_log2 = 1.4426950408889634f / sqrtf((float)D);
    flash_fwd_k<D><<<grid, FL_WARPS * 32>>>(out, lse, q, ldq, kv, T, NH, NH / KVH, window, scale_log2);
    CU_LAUNCHED("flash attention");
}

/* ---- backward (head sizes 32 and 64) ---------------------------------------
 * From the forward's output O and log-sum-exp L (natural log, per row), P =
 * exp(scale·QKᵀ − L) is recomputed per tile. D_i = Σ_d dO_id O_id first;
 * then one kernel per 64 query rows: dS = P ⊙ (dO·Vᵀ − D), dQ = scale·dS·K
 * over the key tiles; and one per 64 keys of a kv head: over the heads of
 * its group and the query tiles that see its keys, dV = Σ Pᵀ·dO, dK =
 * scale·Σ dSᵀ·Q. Every sum in a fixed order: no atomics. */

/* rowdot[bh·T + i] = Σ_d dout[i, h, d] · out[i, h, d] (one warp per row) */
__global__ void rowdot_k(float *rowdot, const float *dout, const float *out, int B, int T, int NH, int D) {
    int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (w >= (int64_t)B * NH * T) return;
    int64_t bh = w / T, i = w % T, b = bh / NH, h = bh % NH;
    const float *a = dout + ((b * T + i) * NH + h) * D, *o = out + ((b * T + i) * NH + h) * D;
    float s = 0;
    for (int d = lane; d < D; d += 32) s += a[d] * o[d];
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
    if (lane == 0) rowdot[w] = s;
}

/* A fragments of a warp's 16 rows r0, r0 + 8 (+ g) of a row-major f32 matrix, columns 0..D */
template <int D>
__device__ __forceinline__ void load_a(uint32_t (*a)[4], const float *base, int64_t ld, int r0, int T, int g, int tq) {
    const float *x0 = base + (int64_t)(r0 + g < T ? r0 + g : T - 1) * ld;
    const float *x1 = base + (int64_t)(r0 + g + 8 < T ? r0 + g + 8 : T - 1) * ld;
    float z0 = r0 + g < T ? 1.0f : 0.0f, z1 = r0 + g + 8 < T ? 1.0f : 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        int c = kk * 16 + 2 * tq;
        a[kk][0] = pack_bf16(z0 * x0[c], z0 * x0[c + 1]);
        a[kk][1] = pack_bf16(z1 * x1[c], z1 * x1[c + 1]);
        a[kk][2] = pack_bf16(z0 * x0[c + 8], z0 * x0[c + 9]);
        a[kk][3] = pack_bf16(z1 * x1[c + 8], z1 * x1[c + 9]);
    }
}

/* A fragments (16 × 16 per step) from a warp's f32 accumulators of 16 × 64 */
__device__ __forceinline__ void acc_to_a(uint32_t *a, const float (*c)[4], int kk) {
    a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

/* rows × D of a row-major f32 source (rows from row0, zero past T) into
 * shared memory as bf16, row-major (rm[r][d]) and/or transposed (tr[d][r]) */
template <int D>
__device__ __forceinline__ void stage(__nv_bfloat16 (*rm)[D + 8], __nv_bfloat16 (*tr)[FL_KEYS + 8], const float *src,
                                      int64_t ld, int row0, int T) {
    for (int i = threadIdx.x; i < FL_KEYS * D; i += FL_WARPS * 32) {
        int r = i / D, d = i % D;
        __nv_bfloat16 v = __float2bfloat16_rn(row0 + r < T ? src[(int64_t)(row0 + r) * ld + d] : 0.0f);
        if (rm) rm[r][d] = v;
        if (tr) tr[d][r] = v;
    }
}

/* grid (⌈T/64⌉, B·NH): dq of 64 query rows */
template <int D>
__global__ void __launch_bounds__(FL_WARPS * 32)
    flash_bwd_dq_k(float *dq, const float *dout, const float *lse, const float *rowdot, const float *q,
                   const float *k, const float *v, int64_t ld, int T, int NH, int G, int window, float scale) {
    __shared__ __nv_bfloat16 Ks[FL_KEYS][D + 8], Vs[FL_KEYS][D + 8], Kt[D][FL_KEYS + 8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / G;
    const int row0 = blockIdx.x * FL_ROWS, wrow = row0 + warp * 16;
    const float scale_log2 = scale * 1.4426950408889634f;
    const float *Q = q + (int64_t)b * T * ld + (int64_t)h * D, *K = k + (int64_t)b * T * ld + (int64_t)kh * D;
    const float *V = v + (int64_t)b * T * ld + (int64_t)kh * D;
    const float *dO = dout + (int64_t)b * T * NH * D + (int64_t)h * D;
    uint32_t qa[D / 16][4], da[D / 16][4];
    load_a<D>(qa, Q, ld, wrow, T, g, tq);
    load_a<D>(da, dO, (int64_t)NH * D, wrow, T, g, tq);
    float L2[2], Dr[2];
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = wrow + g + 8 * half;
        L2[half] = i < T ? lse[(int64_t)bh * T + i] * 1.4426950408889634f : 0.0f;
        Dr[half] = i < T ? rowdot[(int64_t)bh * T + i] : 0.0f;
    }
    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    int last = row0 + FL_ROWS - 1 < T - 1 ? row0 + FL_ROWS - 1 : T - 1;
    for (int kt = first_key(row0, window) / FL_KEYS; kt <= last / FL_KEYS; kt++) {
        int key0 = kt * FL_KEYS;
        __syncthreads();
        stage<D>(Ks, Kt, K, ld, key0, T);
        stage<D>(Vs, nullptr, V, ld, key0, T);
        __syncthreads();
        float s[FL_KEYS / 8][4], dp[FL_KEYS / 8][4];
#pragma unroll
        for (int nt = 0; nt < FL_KEYS / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const __nv_bfloat16 *kr = &Ks[nt * 8 + g][kk * 16 + 2 * tq], *vr = &Vs[nt * 8 + g][kk * 16 + 2 * tq];
                mma16816(s[nt], qa[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
                mma16816(dp[nt], da[kk], *(const uint32_t *)vr, *(const uint32_t *)(vr + 8));
            }
        }
        /* dS = P ⊙ (dP − D), zero where the row does not see the key */
#pragma unroll
        for (int nt = 0; nt < FL_KEYS / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int half = e / 2, i = wrow + g + 8 * half, j = key0 + nt * 8 + 2 * tq + e % 2;
                bool seen = i < T && j <= i && j >= first_key(i, window);
                float p = seen ? exp2f(s[nt][e] * scale_log2 - L2[half]) : 0.0f;
                s[nt][e] = p * (dp[nt][e] - Dr[half]);
            }
        /* dQ += dS · K */
#pragma unroll
        for (int kk = 0; kk < FL_KEYS / 16; kk++) {
            uint32_t a[4];
            acc_to_a(a, s, kk);
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const __nv_bfloat16 *kr = &Kt[n * 8 + g][kk * 16 + 2 * tq];
                mma16816(acc[n], a, *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = wrow + g + 8 * half;
        if (i >= T) continue;
        float *row = dq + ((int64_t)b * T + i) * ld + (int64_t)h * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            row[n * 8 + 2 * tq] = scale * acc[n][2 * half], row[n * 8 + 2 * tq + 1] = scale * acc[n][2 * half + 1];
    }
}

/* grid (⌈T/64⌉, B·KVH): dk and dv of 64 keys of one kv head */
template <int D>
__global__ void __launch_bounds__(FL_WARPS * 32)
    flash_bwd_dkv_k(float *dk, float *dv, const float *dout, const float *lse, const float *rowdot, const float *q,
                    const float *k, const float *v, int64_t ld, int T, int NH, int G, int window, float scale) {
    __shared__ __nv_bfloat16 Qs[FL_ROWS][D + 8], Os[FL_ROWS][D + 8], Qt[D][FL_ROWS + 8], Ot[D][FL_ROWS + 8];
    __shared__ float Ls[FL_ROWS], Ds[FL_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int KVH = NH / G, bk = blockIdx.y, b = bk / KVH, kh = bk % KVH;
    const int key0 = blockIdx.x * FL_KEYS, wkey = key0 + warp * 16;
    const float scale_log2 = scale * 1.4426950408889634f;
    const float *K = k + (int64_t)b * T * ld + (int64_t)kh * D, *V = v + (int64_t)b * T * ld + (int64_t)kh * D;
    uint32_t ka[D / 16][4], va[D / 16][4];
    load_a<D>(ka, K, ld, wkey, T, g, tq);
    load_a<D>(va, V, ld, wkey, T, g, tq);
    float adk[D / 8][4], adv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) adk[n][e] = adv[n][e] = 0.0f;
    int klast = key0 + FL_KEYS - 1 < T - 1 ? key0 + FL_KEYS - 1 : T - 1;
    int qlast = window > 0 && klast + window - 1 < T - 1 ? klast + window - 1 : T - 1;
    for (int gi = 0; gi < G; gi++) {
        int h = kh * G + gi;
        const float *Q = q + (int64_t)b * T * ld + (int64_t)h * D;
        const float *dO = dout + (int64_t)b * T * NH * D + (int64_t)h * D;
        const float *Lr = lse + ((int64_t)b * NH + h) * T, *Dr = rowdot + ((int64_t)b * NH + h) * T;
        for (int qt = key0 / FL_ROWS; qt <= qlast / FL_ROWS; qt++) {
            int q0 = qt * FL_ROWS;
            __syncthreads();
            stage<D>(Qs, Qt, Q, ld, q0, T);
            stage<D>(Os, Ot, dO, (int64_t)NH * D, q0, T);
            for (int i = threadIdx.x; i < FL_ROWS; i += FL_WARPS * 32) {
                Ls[i] = q0 + i < T ? Lr[q0 + i] * 1.4426950408889634f : 0.0f;
                Ds[i] = q0 + i < T ? Dr[q0 + i] : 0.0f;
            }
            __syncthreads();
            /* Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for this warp's 16 keys × 64 queries */
            float st[FL_ROWS / 8][4], dpt[FL_ROWS / 8][4];
#pragma unroll
            for (int nt = 0; nt < FL_ROWS / 8; nt++) {
                st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.0f;
                dpt[nt][0] = dpt[nt][1] = dpt[nt][2] = dpt[nt][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    const __nv_bfloat16 *qr = &Qs[nt * 8 + g][kk * 16 + 2 * tq], *orow = &Os[nt * 8 + g][kk * 16 + 2 * tq];
                    mma16816(st[nt], ka[kk], *(const uint32_t *)qr, *(const uint32_t *)(qr + 8));
                    mma16816(dpt[nt], va[kk], *(const uint32_t *)orow, *(const uint32_t *)(orow + 8));
                }
            }
            /* Pᵀ, and dSᵀ = Pᵀ ⊙ (dPᵀ − D) */
#pragma unroll
            for (int nt = 0; nt < FL_ROWS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int j = wkey + g + 8 * (e / 2), c = nt * 8 + 2 * tq + e % 2, i = q0 + c;
                    bool seen = i < T && j < T && j <= i && (window == 0 || i - j < window);
                    float p = seen ? exp2f(st[nt][e] * scale_log2 - Ls[c]) : 0.0f;
                    st[nt][e] = p;
                    dpt[nt][e] = p * (dpt[nt][e] - Ds[c]);
                }
            /* dV += Pᵀ·dO, dK += dSᵀ·Q */
#pragma unroll
            for (int kk = 0; kk < FL_ROWS / 16; kk++) {
                uint32_t pa[4], sa[4];
                acc_to_a(pa, st, kk);
                acc_to_a(sa, dpt, kk);
#pragma unroll
                for (int n = 0; n < D / 8; n++) {
                    const __nv_bfloat16 *orow = &Ot[n * 8 + g][kk * 16 + 2 * tq], *qr = &Qt[n * 8 + g][kk * 16 + 2 * tq];
                    mma16816(adv[n], pa, *(const uint32_t *)orow, *(const uint32_t *)(orow + 8));
                    mma16816(adk[n], sa, *(const uint32_t *)qr, *(const uint32_t *)(qr + 8));
                }
            }
        }
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int j = wkey + g + 8 * half;
        if (j >= T) continue;
        float *kr = dk + ((int64_t)b * T + j) * ld + (int64_t)kh * D, *vr = dv + ((int64_t)b * T + j) * ld + (int64_t)kh * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            int c = n * 8 + 2 * tq;
            kr[c] = scale * adk[n][2 * half], kr[c + 1] = scale * adk[n][2 * half + 1];
            vr[c] = adv[n][2 * half], vr[c + 1] = adv[n][2 * half + 1];
        }
    }
}

template <int D>
void launch_backward(float *dq, float *dk, float *dv, float *rowdot, const float *dout, const float *out,
                     const float *lse, const float *q, const float *k, const float *v, int64_t ld, int B, int T, int NH,
                     int KVH, int window) {
    int64_t rows = (int64_t)B * NH * T;
    rowdot_k<<<cu_blocks(rows * 32), CU_THREADS>>>(rowdot, dout, out, B, T, NH, D);
    float scale = 1.0f / sqrtf((float)D);
    unsigned tiles = (unsigned)((T + FL_ROWS - 1) / FL_ROWS);
    flash_bwd_dq_k<D><<<dim3(tiles, (unsigned)(B * NH)), FL_WARPS * 32>>>(dq, dout, lse, rowdot, q, k, v, ld, T, NH,
                                                                         NH / KVH, window, scale);
    flash_bwd_dkv_k<D><<<dim3(tiles, (unsigned)(B * KVH)), FL_WARPS * 32>>>(dk, dv, dout, lse, rowdot, q, k, v, ld, T,
                                                                           NH, NH / KVH, window, scale);
    CU_LAUNCHED("flash attention backward");
}

} // namespace

bool cu_flash_fits(int HS, int pairs) { return CU.prec == NX_PREC_BF16 && nx_cuda_flash(HS, pairs, false); }

void cu_flash_attention(float *out, float *lse, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH,
                        int HS, int window) {
    if (HS == 32) launch<32>(out, lse, q, ldq, kv, B, T, NH, KVH, window);
    else if (HS == 64) launch<64>(out, lse, q, ldq, kv, B, T, NH, KVH, window);
    else launch<128>(out, lse, q, ldq, kv, B, T, NH, KVH, window);
}

bool cu_flash_training_fits(nx_backend *, int HS, int B, int T, int NH) {
    (void)T;
    return CU.prec == NX_PREC_BF16 && nx_cuda_flash(HS, (int64_t)B * NH, true);
}

void cu_attention_lse(nx_backend *, float *out, float *lse, const float *q, int64_t ld, nx_kv kv, int B, int T, int NH,
                      int KVH, int HS, int window) {
    cu_flash_attention(out, lse, q, ld, kv, B, T, NH, KVH, HS, window);
}

void cu_attention_lse_backward(nx_backend *, float *dq, float *dk, float *dv, float *scratch, const float *dout,
                               const float *out,
                               const float *lse, const float *q, const float *k, const float *v, int64_t ld, int B,
                               int T, int NH, int KVH, int HS, int window) {
    if (HS == 32) launch_backward<32>(dq, dk, dv, scratch, dout, out, lse, q, k, v, ld, B, T, NH, KVH, window);
    else launch_backward<64>(dq, dk, dv, scratch, dout, out, lse, q, k, v, ld, B, T, NH, KVH, window);
}
