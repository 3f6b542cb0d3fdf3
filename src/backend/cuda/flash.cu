/* flash.cu — attention over whole sequences without the T×T maps, on the
 * tensor cores (bf16 precision only).
 *
 * For batches of whole sequences {b, 0, T} whose maps nobody keeps (a
 * teacher's forward, evaluation) in bf16 precision: one block of four
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
__global__ void __launch_bounds__(FL_WARPS * 32) flash_fwd_k(float *out, const float *q, int64_t ldq, nx_kv kv, int T,
                                                             int NH, int G, int window, float scale_log2) {
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
void launch(float *out, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH, int window) {
    dim3 grid((unsigned)((T + FL_ROWS - 1) / FL_ROWS), (unsigned)(B * NH));
    float scale_log2 = 1.4426950408889634f / sqrtf((float)D);
    flash_fwd_k<D><<<grid, FL_WARPS * 32>>>(out, q, ldq, kv, T, NH, NH / KVH, window, scale_log2);
    CU_LAUNCHED("flash attention");
}

} // namespace

bool cu_flash_fits(int HS, int pairs) {
    return CU.flash && CU.prec == NX_PREC_BF16 && (HS == 32 || HS == 64 || HS == 128) && pairs <= 65535; /* grid y */
}

void cu_flash_attention(float *out, const float *q, int64_t ldq, nx_kv kv, int B, int T, int NH, int KVH, int HS,
                        int window) {
    if (HS == 32) launch<32>(out, q, ldq, kv, B, T, NH, KVH, window);
    else if (HS == 64) launch<64>(out, q, ldq, kv, B, T, NH, KVH, window);
    else launch<128>(out, q, ldq, kv, B, T, NH, KVH, window);
}
