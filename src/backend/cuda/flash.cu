/* flash.cu — attention over whole sequences without the T×T maps, on the
 * tensor cores (bf16 precision only).
 *
 * For batches of whole sequences {b, 0, T} whose maps nobody keeps (a
 * teacher's forward, evaluation, and training through nx_attention_lse,
 * which also keeps each row's log-sum-exp for the backward below) in
 * bf16 precision: one block of four warps per 128 query rows of one
 * (sequence, head) (64 keys in the backward's dk, dv); each warp holds 32
 * rows' queries (16 for head size 128) as bf16 mma fragments and walks
 * the key tiles of 64 that its rows can see (causal, and from the first
 * key of the window), with an online softmax (as FlashAttention-2, in
 * f32, with a reference maximum that moves only when a score passes it by
 * 2^8: see fwd_tile): S = Q·Kᵀ and O += P·V are m16n8k16
 * bf16 products with f32 accumulation. Tiles are staged in shared memory
 * as bf16, row-major, with vector loads; ldmatrix reads the fragments,
 * transposing where a product needs the other side (.trans), so no tile
 * is stored twice. Only tiles that cross the diagonal, the window's edge
 * or the sequence's end are masked element by element. Nothing is added
 * atomically and every sum runs in a fixed order, so the result is the
 * same on every run. Head sizes 32, 64 and 128; others, fp32 and tf32
 * precision, and kept maps use attention_gemm.cu. */
#include <initializer_list>
#include <type_traits>

#include "cuda_impl.h"

namespace {

enum { FL_ROWS = 64, FL_KEYS = 64, FL_WARPS = 4 };

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* RoPE as the operands are read (nx_attention_lse): row t of a sequence
 * (its position) rotates its columns d and d + D/2 (d < D/2) as nx_rope
 * does, by row t of the tables cs, sn ((positions, D/2)); sign −1 the
 * transposed rotation, for gradients. cs == nullptr: no rotation. */
struct rope_tab {
    const float *cs, *sn;
};

/* the pairs (a.x, b.x) at column d and (a.y, b.y) at d + 1, d even (one
 * 8-byte load from each table) */
template <int D>
__device__ __forceinline__ void rotate2(float2 &a, float2 &b, const rope_tab &r, int t, int d, float sign) {
    float2 c = *(const float2 *)&r.cs[(int64_t)t * (D / 2) + d], sn = *(const float2 *)&r.sn[(int64_t)t * (D / 2) + d];
    sn.x *= sign, sn.y *= sign;
    float2 ya = make_float2(a.x * c.x - b.x * sn.x, a.y * c.y - b.y * sn.y);
    float2 yb = make_float2(b.x * c.x + a.x * sn.x, b.y * c.y + a.y * sn.y);
    a = ya, b = yb;
}

/* 2^x in one MUFU.EX2, results below 2^-126 flushed to 0 (exp2f also
 * scales around the instruction for them: a softmax weight that small is
 * 0 to the sums it enters anyway) */
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* A matrix the kernels read in f32 or (b16) bf16: the queries, keys and
 * values as the q/k/v product left them, and dO as the output projection's
 * backward did. Elements widen to f32 as they are read; index i counts
 * elements. */
struct opnd {
    const void *p;
    bool b16;
};

/* elements i .. i + VEC − 1 (cu_load's alignment: i a multiple of VEC, the
 * base aligned to VEC elements) */
template <int VEC>
__device__ __forceinline__ void ld(float (&v)[VEC], const opnd &s, int64_t i) {
    if (s.b16) cu_load(v, (const bf16 *)s.p + i);
    else cu_load(v, (const float *)s.p + i);
}

/* elements i, i + 1 (i even: the strides are even) */
__device__ __forceinline__ float2 ld2(const opnd &s, int64_t i) {
    float v[2];
    ld(v, s, i);
    return make_float2(v[0], v[1]);
}

/* elements i .. i + 3; v4: i a multiple of 4 and the base 16-byte aligned */
__device__ __forceinline__ float4 ld4(const opnd &s, int64_t i, bool v4) {
    if (v4) {
        float v[4];
        ld(v, s, i);
        return make_float4(v[0], v[1], v[2], v[3]);
    }
    float2 a = ld2(s, i), b = ld2(s, i + 2);
    return make_float4(a.x, a.y, b.x, b.y);
}

/* c += a·b, m16n8k16, bf16 inputs, f32 accumulators (not volatile: the
 * compiler may schedule the products among the other work) */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8×8 bf16 matrices from shared memory: lane l gives the address of
 * row l % 8 of matrix l / 8; r[m] is lane (g, tq)'s pair of matrix m at
 * row g, columns 2tq, 2tq+1 (or, with trans, rows 2tq, 2tq+1 of column g). */
template <bool TRANS>
__device__ __forceinline__ void ldsm4(uint32_t *r, const bf16 *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

/* c (16·MT × NK) = a (16·MT × D: MT row tiles of A fragments) · Bᵀ, B the
 * rows kb..kb+NK of a staged tile of D columns. Each fragment of B read
 * from shared memory feeds 2·MT products, so more row tiles a warp
 * (MT = 2) halve the shared-memory reads per product. The columns (kk)
 * run outermost: the MT·NK/8 products between two into one accumulator
 * are independent, so the tensor cores' latency is hidden in one warp. */
template <int D, int MT, int NK>
__device__ __forceinline__ void mul_abt(float (*c)[NK / 8][4], const uint32_t (*a)[D / 16][4], const bf16 (*B)[D + 8],
                                        int kb, int lane) {
    const int m = lane / 8, r = lane % 8;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++) c[mt][nt][0] = c[mt][nt][1] = c[mt][nt][2] = c[mt][nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt += 2) {
            uint32_t b[4]; /* rows kb + nt·8.. and kb + (nt+1)·8.., columns kk·16 and kk·16 + 8 */
            ldsm4<false>(b, &B[kb + (nt + m / 2) * 8 + r][kk * 16 + (m % 2) * 8]);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(c[mt][nt], a[mt][kk], b[0], b[1]);
                mma16816(c[mt][nt + 1], a[mt][kk], b[2], b[3]);
            }
        }
}

/* A fragments (16 × 16, keys kk·16..) from a warp's f32 accumulators of 16 × 64 */
__device__ __forceinline__ void acc_to_a(uint32_t *a, const float (*c)[4], int kk) {
    a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

/* acc (16·MT × D) += p (16·MT × NK accumulators, rounded to bf16) · B, B the
 * rows kb..kb+NK of a staged tile of D columns */
template <int D, int MT, int NK>
__device__ __forceinline__ void mul_pb(float (*acc)[D / 8][4], const float (*p)[NK / 8][4], const bf16 (*B)[D + 8],
                                       int kb, int lane) {
    const int m = lane / 8, r = lane % 8;
#pragma unroll
    for (int kk = 0; kk < NK / 16; kk++) {
        uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) acc_to_a(pa[mt], p[mt], kk);
#pragma unroll
        for (int n = 0; n < D / 8; n += 2) {
            uint32_t b[4]; /* rows kb + kk·16.. and kb + kk·16 + 8.., columns n·8 and (n+1)·8, transposed */
            ldsm4<true>(b, &B[kb + kk * 16 + (m % 2) * 8 + r][(n + m / 2) * 8]);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(acc[mt][n], pa[mt], b[0], b[1]);
                mma16816(acc[mt][n + 1], pa[mt], b[2], b[3]);
            }
        }
    }
}

/* 64 rows × D of a row-major f32 source (rows from row0, zero past T) into
 * shared memory as bf16; v4: the rows and the source are 16-byte aligned */
template <int D>
__device__ __forceinline__ void stage(bf16 (*dst)[D + 8], const opnd &src, int64_t off, int64_t ld, int row0, int T,
                                      bool v4, const rope_tab &rp = {}) {
    if (rp.cs) { /* columns c, c + 1 and their partners c + D/2, c + D/2 + 1 (strides are even) */
        for (int i = threadIdx.x; i < FL_KEYS * D / 4; i += FL_WARPS * 32) {
            int r = i / (D / 4), c = i % (D / 4) * 2, t = row0 + r;
            float2 x1 = make_float2(0, 0), x2 = make_float2(0, 0);
            if (t < T) {
                x1 = ld2(src, off + (int64_t)t * ld + c), x2 = ld2(src, off + (int64_t)t * ld + c + D / 2);
                rotate2<D>(x1, x2, rp, t, c, 1.0f);
            }
            *(uint32_t *)&dst[r][c] = pack_bf16(x1.x, x1.y);
            *(uint32_t *)&dst[r][c + D / 2] = pack_bf16(x2.x, x2.y);
        }
    } else if (v4) {
        for (int i = threadIdx.x; i < FL_KEYS * D / 4; i += FL_WARPS * 32) {
            int r = i / (D / 4), c = i % (D / 4) * 4;
            float4 x = row0 + r < T ? ld4(src, off + (int64_t)(row0 + r) * ld + c, true) : make_float4(0, 0, 0, 0);
            *(uint2 *)&dst[r][c] = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
        }
    } else {
        for (int i = threadIdx.x; i < FL_KEYS * D / 2; i += FL_WARPS * 32) {
            int r = i / (D / 2), c = i % (D / 2) * 2;
            float2 x = row0 + r < T ? ld2(src, off + (int64_t)(row0 + r) * ld + c) : make_float2(0, 0);
            *(uint32_t *)&dst[r][c] = pack_bf16(x.x, x.y);
        }
    }
}

/* A fragments of a warp's 16 rows r0 + g, r0 + g + 8 of a row-major f32
 * matrix, columns 0..D (zero past T), rotated by rp. A lane's columns c
 * of fragment kk < D/32 have their partners c + D/2 in fragment kk + D/32. */
template <int D>
__device__ __forceinline__ void load_a(uint32_t (*a)[4], const opnd &src, int64_t off, int64_t ld, int r0, int T, int g,
                                       int tq, const rope_tab &rp = {}) {
    const int i0 = r0 + g < T ? r0 + g : T - 1, i1 = r0 + g + 8 < T ? r0 + g + 8 : T - 1;
    const int64_t x0 = off + (int64_t)i0 * ld, x1 = off + (int64_t)i1 * ld;
    float z0 = r0 + g < T ? 1.0f : 0.0f, z1 = r0 + g + 8 < T ? 1.0f : 0.0f;
    float2 u[D / 16][4]; /* rows i0, i1 at column c; rows i0, i1 at c + 8 */
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        int c = kk * 16 + 2 * tq;
        u[kk][0] = ld2(src, x0 + c), u[kk][1] = ld2(src, x1 + c);
        u[kk][2] = ld2(src, x0 + c + 8), u[kk][3] = ld2(src, x1 + c + 8);
    }
    if (rp.cs)
#pragma unroll
        for (int kk = 0; kk < D / 32; kk++) {
            int c = kk * 16 + 2 * tq;
            rotate2<D>(u[kk][0], u[kk + D / 32][0], rp, i0, c, 1.0f);
            rotate2<D>(u[kk][1], u[kk + D / 32][1], rp, i1, c, 1.0f);
            rotate2<D>(u[kk][2], u[kk + D / 32][2], rp, i0, c + 8, 1.0f);
            rotate2<D>(u[kk][3], u[kk + D / 32][3], rp, i1, c + 8, 1.0f);
        }
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        a[kk][0] = pack_bf16(z0 * u[kk][0].x, z0 * u[kk][0].y);
        a[kk][1] = pack_bf16(z1 * u[kk][1].x, z1 * u[kk][1].y);
        a[kk][2] = pack_bf16(z0 * u[kk][2].x, z0 * u[kk][2].y);
        a[kk][3] = pack_bf16(z1 * u[kk][3].x, z1 * u[kk][3].y);
    }
}

/* Do all of rows r0..r0+n-1 see all of keys k0..k0+63 (and both lie inside
 * T)? Then a tile needs no element mask. */
__device__ __forceinline__ bool tile_seen(int r0, int n, int k0, int T, int window) {
    return k0 + FL_KEYS - 1 <= r0 && r0 + n - 1 < T && k0 >= first_key(r0 + n - 1, window);
}

/* Can any of rows r0..r0+n-1 see a key of the tile from k0 (causal, the
 * window's first key, the sequence's end)? A warp skips a tile none of its
 * rows sees: a block of more rows than a tile spans the diagonal twice. */
__device__ __forceinline__ bool tile_sees(int r0, int n, int k0, int T, int window) {
    return r0 < T && k0 <= r0 + n - 1 && k0 + FL_KEYS - 1 >= first_key(r0, window);
}

/* The query tile of this block, the grid's x running from the last tile
 * down: under a causal mask the later tiles see the most keys, and the
 * blocks dispatched last are then the shortest. */
__device__ __forceinline__ int last_tile_first() { return (int)(gridDim.x - 1 - blockIdx.x); }

/* ---- packed operands, copied asynchronously --------------------------------
 * Where the narrowing area holds them (head sizes up to 64), the operands
 * a kernel streams through its tiles are first packed as bf16, one dense
 * (T × D) matrix per (sequence, head), and the tiles then come in with
 * cp.async into two buffers: the next tile is in flight while this one is
 * multiplied. Elsewhere the tiles are staged from f32 as above, one at a
 * time. Both give the same bf16 values, so the same results. */

/* dst[(b·H + h)·T + t][0..D] = bf16 of src[b·seq + t·ld + h·D + 0..D], b < B,
 * rotated by rp where rope is set: one matrix of packed operands. */
struct pack_src {
    bf16 *dst;
    opnd src;
    int64_t ld, seq;
    int H;
    bool rope, v4;
    /* with rowdot: rowdot[(b·H + h)·T + t] = Σ_d src·dot over the head's D
     * values of the row (dot laid out as src) */
    opnd dot;
    float *rowdot;
};
struct pack_set {
    pack_src p[4];
    unsigned first[5]; /* the blocks of matrix z: first[z] .. first[z + 1] − 1 */
};

/* A thread a group of 4 columns of a row (and with rope their 4 partners),
 * the groups of all rows b·T + t of a matrix numbered row by row; blocks
 * one after another over the matrices of ps: several packed in one launch. */
template <int D>
__global__ void pack_k(pack_set ps, int B, int T, rope_tab rp) {
    int z = 0;
    while (z < 3 && blockIdx.x >= ps.first[z + 1]) z++;
    const pack_src &q = ps.p[z];
    const int span = q.rope ? D / 2 : D;     /* the columns of a head that threads start from */
    const unsigned w = (unsigned)(q.H * span / 4), x = (blockIdx.x - ps.first[z]) * blockDim.x + threadIdx.x;
    if (x >= (unsigned)B * T * w) return;
    unsigned r = x / w, j = x % w * 4, b = r / T, t = r % T, h = j / span, d = j % span;
    const int64_t at = b * q.seq + t * q.ld + (int64_t)h * D + d;
    bf16 *y = q.dst + (((int64_t)b * q.H + h) * T + t) * D + d;
    float4 v = ld4(q.src, at, q.v4);
    if (q.rowdot) { /* the D/4 threads of a head (all here, or none) add their products */
        float4 o = ld4(q.dot, at, q.v4);
        float dot = v.x * o.x + v.y * o.y + v.z * o.z + v.w * o.w;
        unsigned m = __activemask();
        for (int k = D / 8; k > 0; k >>= 1) dot += __shfl_xor_sync(m, dot, k);
        if (d == 0) q.rowdot[((int64_t)b * q.H + h) * T + t] = dot;
    }
    if (q.rope) {
        float4 u = ld4(q.src, at + D / 2, q.v4);
        float2 v0 = make_float2(v.x, v.y), v1 = make_float2(v.z, v.w);
        float2 u0 = make_float2(u.x, u.y), u1 = make_float2(u.z, u.w);
        rotate2<D>(v0, u0, rp, (int)t, d, 1.0f);
        rotate2<D>(v1, u1, rp, (int)t, d + 2, 1.0f);
        v = make_float4(v0.x, v0.y, v1.x, v1.y);
        *(uint2 *)(y + D / 2) = make_uint2(pack_bf16(u0.x, u0.y), pack_bf16(u1.x, u1.y));
    }
    *(uint2 *)y = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
}

/* Packs up to four matrices of B sequences of T rows in one launch; rope
 * applies where rp has tables. */
template <int D>
void pack(std::initializer_list<pack_src> srcs, int B, int T, rope_tab rp) {
    pack_set ps = {};
    int n = 0;
    int64_t blocks = 0;
    NX_ASSERT(srcs.size() <= 4);
    for (pack_src q : srcs) {
        q.rope = q.rope && rp.cs;
        q.v4 = q.ld % 4 == 0 && q.seq % 4 == 0 && (uintptr_t)q.src.p % 16 == 0 &&
               (!q.dot.p || (uintptr_t)q.dot.p % 16 == 0);
        ps.first[n] = (unsigned)blocks;
        blocks += cu_blocks((int64_t)B * T * q.H * (q.rope ? D / 2 : D) / 4);
        ps.p[n++] = q;
    }
    for (int z = n; z <= 4; z++) ps.first[z] = (unsigned)blocks;
    NX_ASSERTM(blocks * CU_THREADS < INT32_MAX, "flash attention: too many rows to pack");
    pack_k<D><<<(unsigned)blocks, CU_THREADS, 0, cu_stream()>>>(ps, B, T, rp);
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async4(void *smem, const void *gmem, bool valid) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 4 : 0));
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/* waits for every copy this thread committed */
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

/* rows row0.. of a packed (T × D) matrix into a tile, asynchronously (zeros
 * past T). Thread x copies 16 bytes at row x / (D/8) + k·STEP, column
 * x % (D/8) · 8, k < 64/STEP: one base address a thread and offsets known
 * at compile time, so a copy is one instruction where the tile lies inside T. */
template <int D>
__device__ __forceinline__ void stage_async(bf16 (*dst)[D + 8], const bf16 *src, int row0, int T) {
    constexpr int CH = D / 8, STEP = FL_WARPS * 32 / CH;
    static_assert(FL_WARPS * 32 % CH == 0 && FL_KEYS % STEP == 0, "a tile's copies split evenly");
    const int r = threadIdx.x / CH, c = threadIdx.x % CH * 8;
    const bf16 *s = src + (int64_t)(row0 + r) * D + c;
    if (row0 + FL_KEYS <= T) {
#pragma unroll
        for (int k = 0; k < FL_KEYS / STEP; k++) cp_async16(&dst[r + k * STEP][c], s + k * STEP * D, true);
    } else {
#pragma unroll
        for (int k = 0; k < FL_KEYS / STEP; k++) {
            bool in = row0 + r + k * STEP < T;
            cp_async16(&dst[r + k * STEP][c], in ? s + k * STEP * D : src, in);
        }
    }
}

/* Wait for the tile of this step; then, once every warp is done with the
 * other buffer (the last step's tile), start the next one's copies into
 * it (issue(other buffer)), if there is one: one barrier a step. */
template <class F>
__device__ __forceinline__ void next_tile(bool more, F issue, int buf) {
    cp_wait_all();
    __syncthreads();
    if (more) {
        issue(buf ^ 1);
        cp_commit();
    }
}

/* ---- forward ---- */

/* The online softmax of one key tile of a warp's 16·MT query rows: its
 * scores S (accumulators of 16·MT × 64) masked (MASK: the tile crosses the
 * diagonal, the window's edge or the end) and turned into weights P in
 * place, O and the row sums l rescaled where needed. m holds each row's
 * reference maximum of scale·log2(e)·S, against which its weights
 * 2^(scale·log2(e)·S − m) are taken. The reference moves (and O and the
 * row sums are rescaled) only where some row of the warp meets a score
 * more than 2^RESCALE_SLACK above it; otherwise weights up to
 * 2^RESCALE_SLACK are summed as they are (the same softmax: O and the sums
 * share the reference, and bf16 rounds a weight relative to its size),
 * which spares most tiles the rescale of O. */
enum { RESCALE_SLACK = 8 };

template <int D, int MT, bool MASK>
__device__ __forceinline__ void softmax_tile(float (*s)[FL_KEYS / 8][4], float (*o)[D / 8][4], float (*m)[2],
                                             float (*l)[2], int wrow, int key0, int T, int window, float scale_log2,
                                             int lane) {
    const int g = lane / 4, tq = lane % 4;
    float top[MT][2];
    bool grow = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int half = 0; half < 2; half++) { /* rows wrow + 16·mt + g (+ 8) */
            const int i = wrow + 16 * mt + g + 8 * half, j0 = MASK ? first_key(i, window) : 0;
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < FL_KEYS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float &v = s[mt][nt][2 * half + e];
                    if (MASK) {
                        int j = key0 + nt * 8 + 2 * tq + e;
                        if (!(j <= i && j >= j0 && i < T)) v = -INFINITY;
                    }
                    mx = fmaxf(mx, v);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            top[mt][half] = mx * scale_log2;
            grow |= top[mt][half] > m[mt][half] + RESCALE_SLACK; /* m = −∞: any key seen */
        }
    if (__any_sync(0xffffffffu, grow))
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                float mnew = fmaxf(m[mt][half], top[mt][half]);
                float alpha = mnew == -INFINITY ? 1.0f : exp2_ftz(m[mt][half] - mnew); /* m = −∞: O, l are 0 */
                m[mt][half] = mnew;
                l[mt][half] *= alpha;
#pragma unroll
                for (int n = 0; n < D / 8; n++) o[mt][n][2 * half] *= alpha, o[mt][n][2 * half + 1] *= alpha;
            }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const float base = m[mt][half] == -INFINITY ? 0.0f : m[mt][half]; /* a row that has seen no key yet */
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < FL_KEYS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float p = exp2_ftz(fmaf(s[mt][nt][2 * half + e], scale_log2, -base));
                    s[mt][nt][2 * half + e] = p;
                    sum += p;
                }
            l[mt][half] += sum;
        }
}

/* One key tile of a warp's rows on mma.sync: S = Q·Kᵀ, softmax_tile, O += P·V. */
template <int D, int MT, bool MASK>
__device__ __forceinline__ void fwd_tile(float (*o)[D / 8][4], float (*m)[2], float (*l)[2],
                                         const uint32_t (*qa)[D / 16][4], const bf16 (*Ks)[D + 8],
                                         const bf16 (*Vs)[D + 8], int wrow, int key0, int T, int window,
                                         float scale_log2, int lane) {
    float s[MT][FL_KEYS / 8][4];
    mul_abt<D, MT, FL_KEYS>(s, qa, Ks, 0, lane);
    softmax_tile<D, MT, MASK>(s, o, m, l, wrow, key0, T, window, scale_log2, lane);
    mul_pb<D, MT, FL_KEYS>(o, s, Vs, 0, lane);
}

/* The tile of a warp's rows if any of them sees it, without element masks
 * where all of them see all of it. */
template <int D, int MT>
__device__ __forceinline__ void fwd_tile_seen(float (*o)[D / 8][4], float (*m)[2], float (*l)[2],
                                              const uint32_t (*qa)[D / 16][4], const bf16 (*Ks)[D + 8],
                                              const bf16 (*Vs)[D + 8], int wrow, int key0, int T, int window,
                                              float scale_log2, int lane) {
    if (!tile_sees(wrow, 16 * MT, key0, T, window)) return;
    if (tile_seen(wrow, 16 * MT, key0, T, window))
        fwd_tile<D, MT, false>(o, m, l, qa, Ks, Vs, wrow, key0, T, window, scale_log2, lane);
    else
        fwd_tile<D, MT, true>(o, m, l, qa, Ks, Vs, wrow, key0, T, window, scale_log2, lane);
}

/* A warp's rows wrow.. of the output (row b·T + i at out + (b·T + i)·NH·D
 * + h·D, bh = b·NH + h), O over its row sums, and (lse) their log-sum-exp */
template <int D, int MT>
__device__ __forceinline__ void store_out(void *out, bool out16, float *lse, const float (*o)[D / 8][4],
                                          const float (*m)[2], const float (*l)[2], int bh, int wrow, int T, int NH,
                                          int lane) {
    const int g = lane / 4, tq = lane % 4, b = bh / NH, h = bh % NH;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float sum = l[mt][half];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            int i = wrow + 16 * mt + g + 8 * half;
            if (i >= T) continue;
            if (lse && tq == 0) lse[(int64_t)bh * T + i] = (m[mt][half] + log2f(sum)) * 0.6931471805599453f;
            float inv = 1.0f / sum;
            int64_t at = ((int64_t)b * T + i) * NH * D + (int64_t)h * D + 2 * tq;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                float x = o[mt][n][2 * half] * inv, y = o[mt][n][2 * half + 1] * inv;
                if (out16) *(uint32_t *)((bf16 *)out + at + n * 8) = pack_bf16(x, y);
                else *(float2 *)((float *)out + at + n * 8) = make_float2(x, y);
            }
        }
}

/* grid (⌈T/(64·MT)⌉, B·NH), 128 threads, 16·MT query rows a warp. q: row
 * b·T + t at q + r·ldq + h·D, rotated by rp as it is read; keys and values
 * of sequence b at kv.{k,v} + b·kv.seq + j·kv.row + kh·D (the keys rotated
 * by rp as they are staged), or (PACKED) packed at kp, vp (rotated when
 * packed); out: row r at out + r·NH·D + h·D, f32 or (out16) bf16. */
template <int D, bool PACKED, int MT>
__global__ void __launch_bounds__(FL_WARPS * 32)
    flash_fwd_k(void *out, bool out16, float *lse, const void *q, bool q16, int64_t ldq, nx_kv kv, const bf16 *kp,
                const bf16 *vp, int T, int NH, int G, int window, float scale_log2, bool v4, rope_tab rp) {
    constexpr int S = PACKED ? 2 : 1, ROWS = 16 * MT * FL_WARPS;
    __shared__ __align__(16) bf16 Ks[S][FL_KEYS][D + 8];
    __shared__ __align__(16) bf16 Vs[S][FL_KEYS][D + 8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / G;
    const int row0 = last_tile_first() * ROWS, wrow = row0 + warp * 16 * MT;

    int last = row0 + ROWS - 1 < T - 1 ? row0 + ROWS - 1 : T - 1;
    int kt0 = first_key(row0, window) / FL_KEYS, kt1 = last / FL_KEYS;
    const int64_t at = ((int64_t)b * (NH / G) + kh) * T * D;
    auto issue = [&](int kt, int buf) {
        stage_async<D>(Ks[buf], kp + at, kt * FL_KEYS, T);
        stage_async<D>(Vs[buf], vp + at, kt * FL_KEYS, T);
    };
    if constexpr (PACKED) { /* the first tile's copies in flight while the queries load */
        issue(kt0, 0);
        cp_commit();
    }
    uint32_t qa[MT][D / 16][4];
    float o[MT][D / 8][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        load_a<D>(qa[mt], opnd{q, q16}, (int64_t)b * T * ldq + (int64_t)h * D, ldq, wrow + 16 * mt, T, g, tq, rp);
#pragma unroll
        for (int n = 0; n < D / 8; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
    }

    if constexpr (PACKED) {
        for (int kt = kt0; kt <= kt1; kt++) {
            int buf = (kt - kt0) & 1;
            next_tile(kt < kt1, [&](int nb) { issue(kt + 1, nb); }, buf);
            fwd_tile_seen<D, MT>(o, m, l, qa, Ks[buf], Vs[buf], wrow, kt * FL_KEYS, T, window, scale_log2, lane);
        }
    } else {
        const int64_t kvo = b * kv.seq + (int64_t)kh * D;
        for (int kt = kt0; kt <= kt1; kt++) {
            __syncthreads(); /* the last tile's readers are done */
            stage<D>(Ks[0], opnd{kv.k, q16}, kvo, kv.row, kt * FL_KEYS, T, v4, rp);
            stage<D>(Vs[0], opnd{kv.v, q16}, kvo, kv.row, kt * FL_KEYS, T, v4);
            __syncthreads();
            fwd_tile_seen<D, MT>(o, m, l, qa, Ks[0], Vs[0], wrow, kt * FL_KEYS, T, window, scale_log2, lane);
        }
    }
    store_out<D, MT>(out, out16, lse, o, m, l, bh, wrow, T, NH, lane);
}

/* ---- forward on Hopper's warpgroup products (wgmma, sm_90a) ----------------
 * The packed forward for head size 64 where the GPU is an H100/H200
 * (CU.wgmma): two warpgroups of four warps a block, 64 query rows each.
 * S = Q·Kᵀ and O += P·V are wgmma m64n64k16 products that read Q, K and V
 * straight from shared memory, where the tiles lie with the 128-byte
 * swizzle (16-byte chunk c of row r at chunk c ⊕ (r mod 8)); the queries
 * are rotated and stored there once, and P comes from registers in the
 * mma.sync fragments above. (Q kept as register fragments for all key
 * tiles gave wrong scores from the second tile on, on an H200 with CUDA
 * 13, and right ones when loaded again for each tile; why, not found.) The
 * accumulators have mma.sync's layout, so softmax_tile serves both
 * kernels. A warpgroup's products run asynchronously beside the other
 * warpgroups' softmax, and with fewer registers (no ldmatrix fragments) a
 * scheduler keeps four warps instead of two. The same bf16 operands and
 * f32 sums, but the tensor cores' summation order may differ from
 * mma.sync's in the last bits. */
enum { WG_THREADS = 256, WG_ROWS = 128 };

/* the device code of sm_90a alone (the compute_90 PTX has an empty kernel,
 * which the host never launches there) */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FL_WGMMA 1

/* the descriptor of a 64 × 64 bf16 tile in shared memory (1024-byte
 * aligned, rows of 128 bytes, swizzled as above): start address, 8-row
 * groups 1024 bytes apart (the stride field), 128-byte swizzle. A product
 * over columns kk·16.. of K-major rows starts 32·kk bytes in; over rows
 * kk·16.. (V, transposed) 2048·kk bytes in. */
__device__ __forceinline__ uint64_t wg_desc(const bf16 *tile) {
    uint64_t a = (unsigned)__cvta_generic_to_shared(tile);
    return (a & 0x3FFFF) >> 4 | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

#define WG_D32                                                                                                 \
    "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),       \
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),   \
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),   \
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),   \
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define WG_D_OPS                                                                                                    \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29," \
    "%30,%31}, "

/* d (64 × 64 of the warpgroup: a warp's 16 rows as mma.sync's
 * accumulators) = (acc ? d : 0) + A · Bᵀ, A (64 × 16) and B (64 × 16)
 * K-major tiles at their descriptors: S = Q·Kᵀ */
__device__ __forceinline__ void wgmma_abt(float (*d)[4], uint64_t a, uint64_t b, bool acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D_OPS "%32, %33, p, 1, 1, 0, 0;\n}\n"
                 : WG_D32
                 : "l"(a), "l"(b), "r"((int)acc));
}

/* d += a · B, a the warp's A fragment (16 × 16, from registers: P), B the
 * 16 × 64 operand at its descriptor, stored N-major (V's rows) */
__device__ __forceinline__ void wgmma_pb(float (*d)[4], const uint32_t *a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D_OPS "{%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                 : WG_D32
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

/* the products' ordering: fence before a batch (registers it reads or
 * accumulates into were written since), commit the batch, wait for it */
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit_wait() {
    asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

/* Pins the registers of a batch of products, as CUTLASS's
 * warpgroup_fence_operand does: before its fence (no write to them, not
 * even a copy the compiler makes for the asm's operands, may fall between
 * the fence and the products) and after its wait (no read of the
 * accumulators before it, no reuse of an A fragment's registers while the
 * products are in flight). */
template <int N>
__device__ __forceinline__ void keep(float (&v)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(v[i][0]), "+f"(v[i][1]), "+f"(v[i][2]), "+f"(v[i][3])::"memory");
}
template <int N>
__device__ __forceinline__ void keep(uint32_t (&v)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(v[i][0]), "+r"(v[i][1]), "+r"(v[i][2]), "+r"(v[i][3])::"memory");
}

/* a warp's A fragments (rows r0.. of a 64 × 64 tile, as load_a gives
 * them) into the swizzled tile */
__device__ __forceinline__ void store_swizzled(bf16 *tile, const uint32_t (*a)[4], int r0, int g, int tq) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int row = r0 + g + (j & 1) * 8, col = kk * 16 + 2 * tq + (j >> 1) * 8;
            *(uint32_t *)(tile + row * 64 + (col / 8 ^ (row & 7)) * 8 + col % 8) = a[kk][j];
        }
}

/* rows row0.. of a packed (T × 64) matrix into a swizzled tile,
 * asynchronously (zeros past T): thread x copies chunk x mod 8 of rows
 * x / 8 and x / 8 + 32 */
__device__ __forceinline__ void stage_swizzled(bf16 *dst, const bf16 *src, int row0, int T) {
    constexpr int STEP = WG_THREADS / 8;
    const int r = threadIdx.x / 8, c = threadIdx.x % 8;
    const bf16 *s = src + (int64_t)(row0 + r) * 64 + c * 8;
#pragma unroll
    for (int k = 0; k < FL_KEYS / STEP; k++) {
        const int row = r + k * STEP;
        bool in = row0 + row < T;
        cp_async16(dst + row * 64 + (c ^ (row & 7)) * 8, in ? s + k * STEP * 64 : src, in);
    }
}

#endif

/* grid (⌈T/128⌉, B·NH), 256 threads; as flash_fwd_k<64, true, ·> with
 * warpgroup products: q row b·T + t at q + r·ldq + h·64 (rotated by rp as
 * it is read), keys and values packed at kp, vp */
__global__ void __launch_bounds__(WG_THREADS, 2)
    flash_fwd_wg_k(void *out, bool out16, float *lse, const void *q, bool q16, int64_t ldq, const bf16 *kp,
                   const bf16 *vp, int T, int NH, int G, int window, float scale_log2, rope_tab rp) {
#ifdef FL_WGMMA
    constexpr int D = 64;
    __shared__ __align__(1024) bf16 Ks[2][FL_KEYS * D];
    __shared__ __align__(1024) bf16 Vs[2][FL_KEYS * D];
    __shared__ __align__(1024) bf16 Qs[2][64 * D]; /* a warpgroup's queries */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / G;
    const int row0 = last_tile_first() * WG_ROWS, grow0 = row0 + warp / 4 * 64, wrow = row0 + warp * 16;

    int last = row0 + WG_ROWS - 1 < T - 1 ? row0 + WG_ROWS - 1 : T - 1;
    int kt0 = first_key(row0, window) / FL_KEYS, kt1 = last / FL_KEYS;
    const int64_t at = ((int64_t)b * (NH / G) + kh) * T * D;
    auto issue = [&](int kt, int buf) {
        stage_swizzled(Ks[buf], kp + at, kt * FL_KEYS, T);
        stage_swizzled(Vs[buf], vp + at, kt * FL_KEYS, T);
    };
    issue(kt0, 0);
    cp_commit();
    { /* the queries into shared memory (the loop's first barrier and fence publish them) */
        uint32_t qa[D / 16][4];
        load_a<D>(qa, opnd{q, q16}, (int64_t)b * T * ldq + (int64_t)h * D, ldq, wrow, T, g, tq, rp);
        store_swizzled(Qs[warp / 4], qa, warp % 4 * 16, g, tq);
    }
    float o[1][D / 8][4], m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
    const uint64_t dq = wg_desc(Qs[warp / 4]);
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[0][n][0] = o[0][n][1] = o[0][n][2] = o[0][n][3] = 0.0f;

    for (int kt = kt0; kt <= kt1; kt++) {
        const int buf = (kt - kt0) & 1, key0 = kt * FL_KEYS;
        cp_wait_all();
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); /* the copies, seen by the products */
        __syncthreads();
        if (kt < kt1) {
            issue(kt + 1, buf ^ 1);
            cp_commit();
        }
        if (!tile_sees(grow0, 64, key0, T, window)) continue; /* the warpgroup's rows: its products are collective */
        float s[1][FL_KEYS / 8][4];
        const uint64_t dk = wg_desc(Ks[buf]), dv = wg_desc(Vs[buf]);
        keep(s[0]);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) wgmma_abt(s[0], dq + 2 * kk, dk + 2 * kk, kk > 0);
        wg_commit_wait();
        keep(s[0]);
        if (tile_seen(wrow, 16, key0, T, window))
            softmax_tile<D, 1, false>(s, o, m, l, wrow, key0, T, window, scale_log2, lane);
        else
            softmax_tile<D, 1, true>(s, o, m, l, wrow, key0, T, window, scale_log2, lane);
        uint32_t pa[FL_KEYS / 16][4];
#pragma unroll
        for (int kk = 0; kk < FL_KEYS / 16; kk++) acc_to_a(pa[kk], s[0], kk);
        keep(o[0]);
        keep(pa);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < FL_KEYS / 16; kk++) wgmma_pb(o[0], pa[kk], dv + (2048 >> 4) * kk);
        wg_commit_wait();
        keep(o[0]);
        keep(pa);
    }
    store_out<D, 1>(out, out16, lse, o, m, l, bh, wrow, T, NH, lane);
#endif
}

/* Can tiles be read with 16-byte loads: every row stride a multiple of 4
 * floats and every base 16-byte aligned? (Else 8-byte loads and stores:
 * the strides must be even, as (NH + 2·KVH)·HS is.) */
bool aligned4(std::initializer_list<const void *> p, std::initializer_list<int64_t> ld) {
    bool ok = true;
    for (const void *x : p) ok = ok && (uintptr_t)x % 16 == 0;
    for (int64_t s : ld) {
        NX_ASSERTM(s % 2 == 0, "flash attention: row strides must be even");
        ok = ok && s % 4 == 0;
    }
    return ok;
}

/* How many sequences' packed operands (elems each) the narrowing area
 * holds at once; 0: none, or a head size without the packed kernels. */
int packed_sequences(int D, int64_t elems, int B) {
    int64_t n = D <= 64 ? CU.narrow_elems / elems : 0;
    return (int)(n < B ? n : B);
}

/* 32 query rows a warp (two row tiles, MT = 2) for head sizes up to 64,
 * where the registers allow it; else 16, and where NEXUS_CUDA_FLASH_MT=1
 * (to measure against) */
bool two_row_tiles(int D) {
    static const bool one = getenv("NEXUS_CUDA_FLASH_MT") && atoi(getenv("NEXUS_CUDA_FLASH_MT")) == 1;
    return D <= 64 && !one;
}

template <int D, int MT>
void launch_mt(void *out, bool out16, float *lse, const void *q, bool q16, int64_t ldq, nx_kv kv, int B, int T,
               int NH, int KVH, int window, rope_tab rp) {
    float scale_log2 = 1.4426950408889634f / sqrtf((float)D);
    bool v4 = aligned4({q, kv.k, kv.v}, {ldq, kv.row, kv.seq});
    const size_t es = q16 ? 2 : 4;
    unsigned tiles = (unsigned)((T + 64 * MT - 1) / (64 * MT));
    int nb = packed_sequences(D, 2LL * KVH * T * D, B);
    if (nb == 0) {
        flash_fwd_k<D, false, MT><<<dim3(tiles, (unsigned)(B * NH)), FL_WARPS * 32, 0, cu_stream()>>>(
            out, out16, lse, q, q16, ldq, kv, nullptr, nullptr, T, NH, NH / KVH, window, scale_log2, v4, rp);
    } else if constexpr (D <= 64) {
        bf16 *kp = (bf16 *)CU.narrow, *vp = kp + (int64_t)nb * KVH * T * D;
        for (int b0 = 0; b0 < B; b0 += nb) {
            int n = B - b0 < nb ? B - b0 : nb;
            const char *k = (const char *)kv.k + b0 * kv.seq * es, *v = (const char *)kv.v + b0 * kv.seq * es;
            pack<D>({{kp, {k, q16}, kv.row, kv.seq, KVH, true}, {vp, {v, q16}, kv.row, kv.seq, KVH, false}}, n, T, rp);
            int64_t o0 = (int64_t)b0 * T * NH * D;
            void *o = out16 ? (void *)((bf16 *)out + o0) : (void *)((float *)out + o0);
            float *l = lse ? lse + (int64_t)b0 * NH * T : nullptr;
            const void *qb = (const char *)q + b0 * T * ldq * es;
            if (D == 64 && MT == 2 && CU.wgmma) /* the same 128 rows a block */
                flash_fwd_wg_k<<<dim3(tiles, (unsigned)(n * NH)), WG_THREADS, 0, cu_stream()>>>(
                    o, out16, l, qb, q16, ldq, kp, vp, T, NH, NH / KVH, window, scale_log2, rp);
            else
                flash_fwd_k<D, true, MT><<<dim3(tiles, (unsigned)(n * NH)), FL_WARPS * 32, 0, cu_stream()>>>(
                    o, out16, l, qb, q16, ldq, kv, kp, vp, T, NH, NH / KVH, window, scale_log2, v4, rp);
        }
    }
    CU_LAUNCHED("flash attention");
}

template <int D>
void launch(void *out, bool out16, float *lse, const void *q, bool q16, int64_t ldq, nx_kv kv, int B, int T, int NH,
            int KVH, int window, rope_tab rp) {
    if constexpr (D <= 64)
        if (two_row_tiles(D)) return launch_mt<D, 2>(out, out16, lse, q, q16, ldq, kv, B, T, NH, KVH, window, rp);
    launch_mt<D, 1>(out, out16, lse, q, q16, ldq, kv, B, T, NH, KVH, window, rp);
}

/* ---- backward (head sizes 32 and 64) ---------------------------------------
 * From the forward's output O and log-sum-exp L (natural log, per row), P =
 * exp(scale·QKᵀ − L) is recomputed per tile. D_i = Σ_d dO_id O_id first
 * (as dO is packed, or by rowdot_k);
 * then one kernel per 64 query rows: dS = P ⊙ (dO·Vᵀ − D), dQ = scale·dS·K
 * over the key tiles; and one per 64 keys of a kv head: over the heads of
 * its group and the query tiles that see its keys, dV = Σ Pᵀ·dO, dK =
 * scale·Σ dSᵀ·Q. Every sum in a fixed order: no atomics. */

/* rowdot[bh·T + i] = Σ_d dout[i, h, d] · out[i, h, d] (one warp per row;
 * dout and out f32 or bf16) */
__global__ void rowdot_k(float *rowdot, opnd dout, opnd out, int B, int T, int NH, int D) {
    int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (w >= (int64_t)B * NH * T) return;
    int64_t bh = w / T, i = w % T, b = bh / NH, h = bh % NH, at = ((b * T + i) * NH + h) * D;
    float s = 0;
    for (int d = lane; d < D; d += 32) {
        float a[1], o[1];
        ld(a, dout, at + d), ld(o, out, at + d);
        s += a[0] * o[0];
    }
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
    if (lane == 0) rowdot[w] = s;
}

/* a warp's 16 rows r0 + g (+ 8) of D f32 accumulators, times k and
 * rotated back by rp (the transposed rotation: a gradient with respect to
 * the operand before its rotation), to a row-major matrix from element
 * off of base, f32 or (b16) bf16. A lane's columns of accumulator n < D/16
 * have their partners in n + D/16. */
template <int D>
__device__ __forceinline__ void store_rows(void *base, bool b16, int64_t off, int64_t ld, const float (*acc)[4],
                                           float k, int r0, int T, int g, int tq, const rope_tab &rp = {}) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = r0 + g + 8 * half;
        if (i >= T) continue;
        float2 v[D / 8];
#pragma unroll
        for (int n = 0; n < D / 8; n++) v[n] = make_float2(k * acc[n][2 * half], k * acc[n][2 * half + 1]);
        if (rp.cs)
#pragma unroll
            for (int n = 0; n < D / 16; n++) rotate2<D>(v[n], v[n + D / 16], rp, i, n * 8 + 2 * tq, -1.0f);
        int64_t row = off + (int64_t)i * ld + 2 * tq;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            if (b16) *(uint32_t *)((bf16 *)base + row + n * 8) = pack_bf16(v[n].x, v[n].y);
            else *(float2 *)((float *)base + row + n * 8) = v[n];
    }
}

/* The operands of the backward: as the forward left them (q, k, v at row
 * stride ld, dout at NH·D), and, packed, those the kernels stream; the
 * gradients' type. */
struct bwd_args {
    const void *dout; /* f32 or (d16) bf16 */
    const float *lse, *rowdot;
    const void *q, *k, *v; /* f32 or (q16) bf16 */
    bool q16, d16, g16;    /* g16: dq, dk, dv written in bf16 */
    const bf16 *qp, *dop, *kp, *vp; /* packed, or null */
    int64_t ld;
    int T, NH, G, window;
    float scale;
    bool v4;
    rope_tab rope; /* q and k rotated as they are read; dq and dk rotated back */
};

/* One key tile of a warp's 16·MT query rows, in halves of 32 keys (fewer
 * registers): dS = P ⊙ (dO·Vᵀ − D), dQ += dS·K; L2: each row's log-sum-exp
 * in log2 units, Dr its row dot; MASK as in the forward. */
template <int D, int MT, bool MASK>
__device__ __forceinline__ void dq_tile(float (*acc)[D / 8][4], const uint32_t (*qa)[D / 16][4],
                                        const uint32_t (*da)[D / 16][4], const float (*L2)[2], const float (*Dr)[2],
                                        const bf16 (*Ks)[D + 8], const bf16 (*Vs)[D + 8], int wrow, int key0,
                                        const bwd_args &a, int lane) {
    const int g = lane / 4, tq = lane % 4;
    const float scale_log2 = a.scale * 1.4426950408889634f;
#pragma unroll 1
    for (int kb = 0; kb < FL_KEYS; kb += 32) {
        float s[MT][4][4], dp[MT][4][4];
        mul_abt<D, MT, 32>(s, qa, Ks, kb, lane);  /* S = Q·Kᵀ */
        mul_abt<D, MT, 32>(dp, da, Vs, kb, lane); /* dP = dO·Vᵀ */
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int half = e / 2, i = wrow + 16 * mt + g + 8 * half, j = key0 + kb + nt * 8 + 2 * tq + e % 2;
                    bool seen = !MASK || (i < a.T && j <= i && j >= first_key(i, a.window));
                    float p = seen ? exp2_ftz(fmaf(s[mt][nt][e], scale_log2, -L2[mt][half])) : 0.0f;
                    s[mt][nt][e] = p * (dp[mt][nt][e] - Dr[mt][half]);
                }
        mul_pb<D, MT, 32>(acc, s, Ks, kb, lane); /* dQ += dS·K */
    }
}

/* grid (⌈T/(64·MT)⌉, B·NH): dq of 64·MT query rows, 16·MT a warp */
template <int D, bool PACKED, int MT>
__global__ void __launch_bounds__(FL_WARPS * 32) flash_bwd_dq_k(void *dq, bwd_args a) {
    constexpr int S = PACKED ? 2 : 1, ROWS = 16 * MT * FL_WARPS;
    __shared__ __align__(16) bf16 Ks[S][FL_KEYS][D + 8];
    __shared__ __align__(16) bf16 Vs[S][FL_KEYS][D + 8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int T = a.T, NH = a.NH, bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / a.G;
    const int row0 = last_tile_first() * ROWS, wrow = row0 + warp * 16 * MT;
    int last = row0 + ROWS - 1 < T - 1 ? row0 + ROWS - 1 : T - 1;
    int kt0 = first_key(row0, a.window) / FL_KEYS, kt1 = last / FL_KEYS;
    const int64_t at = ((int64_t)b * (NH / a.G) + kh) * T * D;
    auto issue = [&](int kt, int buf) {
        stage_async<D>(Ks[buf], a.kp + at, kt * FL_KEYS, T);
        stage_async<D>(Vs[buf], a.vp + at, kt * FL_KEYS, T);
    };
    if constexpr (PACKED) { /* the first tile's copies in flight while the rows load */
        issue(kt0, 0);
        cp_commit();
    }
    uint32_t qa[MT][D / 16][4], da[MT][D / 16][4];
    float L2[MT][2], Dr[MT][2], acc[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        if constexpr (PACKED) { /* from the packed copies: bf16, q rotated already */
            load_a<D>(qa[mt], opnd{a.qp, true}, (int64_t)bh * T * D, D, wrow + 16 * mt, T, g, tq);
            load_a<D>(da[mt], opnd{a.dop, true}, (int64_t)bh * T * D, D, wrow + 16 * mt, T, g, tq);
        } else {
            load_a<D>(qa[mt], opnd{a.q, a.q16}, (int64_t)b * T * a.ld + (int64_t)h * D, a.ld, wrow + 16 * mt, T, g,
                      tq, a.rope);
            load_a<D>(da[mt], opnd{a.dout, a.d16}, (int64_t)b * T * NH * D + (int64_t)h * D, (int64_t)NH * D,
                      wrow + 16 * mt, T, g, tq);
        }
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int i = wrow + 16 * mt + g + 8 * half;
            L2[mt][half] = i < T ? a.lse[(int64_t)bh * T + i] * 1.4426950408889634f : 0.0f;
            Dr[mt][half] = i < T ? a.rowdot[(int64_t)bh * T + i] : 0.0f;
        }
#pragma unroll
        for (int n = 0; n < D / 8; n++) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
    }
    /* a tile the warp's rows see, unmasked where they see all of it */
    auto tile = [&](const bf16 (*Kt)[D + 8], const bf16 (*Vt)[D + 8], int key0) {
        if (!tile_sees(wrow, 16 * MT, key0, T, a.window)) return;
        if (tile_seen(wrow, 16 * MT, key0, T, a.window))
            dq_tile<D, MT, false>(acc, qa, da, L2, Dr, Kt, Vt, wrow, key0, a, lane);
        else
            dq_tile<D, MT, true>(acc, qa, da, L2, Dr, Kt, Vt, wrow, key0, a, lane);
    };
    if constexpr (PACKED) {
        for (int kt = kt0; kt <= kt1; kt++) {
            int buf = (kt - kt0) & 1;
            next_tile(kt < kt1, [&](int nb) { issue(kt + 1, nb); }, buf);
            tile(Ks[buf], Vs[buf], kt * FL_KEYS);
        }
    } else {
        const int64_t kvo = (int64_t)b * T * a.ld + (int64_t)kh * D;
        for (int kt = kt0; kt <= kt1; kt++) {
            __syncthreads();
            stage<D>(Ks[0], opnd{a.k, a.q16}, kvo, a.ld, kt * FL_KEYS, T, a.v4, a.rope);
            stage<D>(Vs[0], opnd{a.v, a.q16}, kvo, a.ld, kt * FL_KEYS, T, a.v4);
            __syncthreads();
            tile(Ks[0], Vs[0], kt * FL_KEYS);
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        store_rows<D>(dq, a.g16, (int64_t)b * T * a.ld + (int64_t)h * D, a.ld, acc[mt], a.scale, wrow + 16 * mt, T, g,
                      tq, a.rope);
}

/* One query tile of a warp's 16 keys: Pᵀ, dSᵀ = Pᵀ ⊙ (V·dOᵀ − D), dV += Pᵀ·dO, dK += dSᵀ·Q;
 * Ls: the tile's log-sum-exps (natural), Ds its row dots; MASK: not every
 * query of the tile sees every key of the warp. */
template <int D, bool MASK>
__device__ __forceinline__ void dkv_tile(float (*adk)[D / 8][4], float (*adv)[D / 8][4],
                                         const uint32_t (*ka)[D / 16][4], const uint32_t (*va)[D / 16][4],
                                         const bf16 (*Qs)[D + 8], const bf16 (*Os)[D + 8], const float *Ls,
                                         const float *Ds, int wkey, int q0, const bwd_args &a, int lane) {
    const int g = lane / 4, tq = lane % 4, T = a.T, window = a.window;
    const float scale_log2 = a.scale * 1.4426950408889634f;
    float st[1][FL_ROWS / 8][4], dpt[1][FL_ROWS / 8][4];
    mul_abt<D, 1, FL_ROWS>(st, ka, Qs, 0, lane);  /* Sᵀ = K·Qᵀ */
    mul_abt<D, 1, FL_ROWS>(dpt, va, Os, 0, lane); /* dPᵀ = V·dOᵀ */
#pragma unroll
    for (int nt = 0; nt < FL_ROWS / 8; nt++) {
        float2 Lc = *(const float2 *)&Ls[nt * 8 + 2 * tq], Dc = *(const float2 *)&Ds[nt * 8 + 2 * tq];
        Lc.x *= 1.4426950408889634f, Lc.y *= 1.4426950408889634f;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int j = wkey + g + 8 * (e / 2), i = q0 + nt * 8 + 2 * tq + e % 2;
            bool seen = !MASK || (i < T && j < T && j <= i && (window == 0 || i - j < window));
            float p = seen ? exp2_ftz(fmaf(st[0][nt][e], scale_log2, -(e % 2 ? Lc.y : Lc.x))) : 0.0f;
            st[0][nt][e] = p;
            dpt[0][nt][e] = p * (dpt[0][nt][e] - (e % 2 ? Dc.y : Dc.x));
        }
    }
    mul_pb<D, 1, FL_ROWS>(adv, st, Os, 0, lane);  /* dV += Pᵀ·dO */
    mul_pb<D, 1, FL_ROWS>(adk, dpt, Qs, 0, lane); /* dK += dSᵀ·Q */
}

/* grid (⌈T/64⌉, B·KVH): dk and dv of 64 keys of one kv head, over the
 * query tiles of each head of its group that see them */
template <int D, bool PACKED>
__global__ void __launch_bounds__(FL_WARPS * 32) flash_bwd_dkv_k(void *dk, void *dv, bwd_args a) {
    constexpr int S = PACKED ? 2 : 1;
    __shared__ __align__(16) bf16 Qs[S][FL_ROWS][D + 8];
    __shared__ __align__(16) bf16 Os[S][FL_ROWS][D + 8];
    __shared__ __align__(16) float Ls[S][FL_ROWS];
    __shared__ __align__(16) float Ds[S][FL_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int T = a.T, NH = a.NH, G = a.G, KVH = NH / G, bk = blockIdx.y, b = bk / KVH, kh = bk % KVH;
    const int key0 = blockIdx.x * FL_KEYS, wkey = key0 + warp * 16;
    uint32_t ka[1][D / 16][4], va[1][D / 16][4];
    if constexpr (PACKED) { /* from the packed copies: bf16, k rotated already */
        load_a<D>(ka[0], opnd{a.kp, true}, (int64_t)bk * T * D, D, wkey, T, g, tq);
        load_a<D>(va[0], opnd{a.vp, true}, (int64_t)bk * T * D, D, wkey, T, g, tq);
    } else {
        load_a<D>(ka[0], opnd{a.k, a.q16}, (int64_t)b * T * a.ld + (int64_t)kh * D, a.ld, wkey, T, g, tq, a.rope);
        load_a<D>(va[0], opnd{a.v, a.q16}, (int64_t)b * T * a.ld + (int64_t)kh * D, a.ld, wkey, T, g, tq);
    }
    float adk[1][D / 8][4], adv[1][D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) adk[0][n][e] = adv[0][n][e] = 0.0f;
    /* a query tile, unmasked where each of its queries sees every key of the warp */
    auto tile = [&](const bf16 (*Qt)[D + 8], const bf16 (*Ot)[D + 8], const float *Lt, const float *Dt, int q0) {
        if (wkey + 15 <= q0 && q0 + FL_ROWS - 1 < T && (a.window == 0 || q0 + FL_ROWS - 1 - wkey < a.window))
            dkv_tile<D, false>(adk, adv, ka, va, Qt, Ot, Lt, Dt, wkey, q0, a, lane);
        else dkv_tile<D, true>(adk, adv, ka, va, Qt, Ot, Lt, Dt, wkey, q0, a, lane);
    };
    int klast = key0 + FL_KEYS - 1 < T - 1 ? key0 + FL_KEYS - 1 : T - 1;
    int qlast = a.window > 0 && klast + a.window - 1 < T - 1 ? klast + a.window - 1 : T - 1;
    /* steps: (head gi of the group, query tile qt), heads outer */
    const int qt0 = key0 / FL_ROWS, nq = qlast / FL_ROWS - qt0 + 1, steps = G * nq;
    auto lse_row = [&](int gi) { return ((int64_t)b * NH + kh * G + gi) * T; };
    if constexpr (PACKED) {
        auto issue = [&](int it, int buf) {
            int gi = it / nq, q0 = (qt0 + it % nq) * FL_ROWS;
            int64_t at = lse_row(gi) * D; /* (b·NH + h)·T·D */
            stage_async<D>(Qs[buf], a.qp + at, q0, T);
            stage_async<D>(Os[buf], a.dop + at, q0, T);
            for (int i = threadIdx.x; i < FL_ROWS; i += FL_WARPS * 32) {
                bool in = q0 + i < T;
                cp_async4(&Ls[buf][i], a.lse + lse_row(gi) + (in ? q0 + i : 0), in);
                cp_async4(&Ds[buf][i], a.rowdot + lse_row(gi) + (in ? q0 + i : 0), in);
            }
        };
        issue(0, 0);
        cp_commit();
        for (int it = 0; it < steps; it++) {
            int buf = it & 1;
            next_tile(it + 1 < steps, [&](int nb) { issue(it + 1, nb); }, buf);
            tile(Qs[buf], Os[buf], Ls[buf], Ds[buf], (qt0 + it % nq) * FL_ROWS);
        }
    } else {
        for (int it = 0; it < steps; it++) {
            int gi = it / nq, h = kh * G + gi, q0 = (qt0 + it % nq) * FL_ROWS;
            __syncthreads();
            stage<D>(Qs[0], opnd{a.q, a.q16}, (int64_t)b * T * a.ld + (int64_t)h * D, a.ld, q0, T, a.v4, a.rope);
            stage<D>(Os[0], opnd{a.dout, a.d16}, (int64_t)b * T * NH * D + (int64_t)h * D, (int64_t)NH * D, q0, T,
                     a.v4);
            for (int i = threadIdx.x; i < FL_ROWS; i += FL_WARPS * 32) {
                Ls[0][i] = q0 + i < T ? a.lse[lse_row(gi) + q0 + i] : 0.0f;
                Ds[0][i] = q0 + i < T ? a.rowdot[lse_row(gi) + q0 + i] : 0.0f;
            }
            __syncthreads();
            tile(Qs[0], Os[0], Ls[0], Ds[0], q0);
        }
    }
    const int64_t kvo = (int64_t)b * T * a.ld + (int64_t)kh * D;
    store_rows<D>(dk, a.g16, kvo, a.ld, adk[0], a.scale, wkey, T, g, tq, a.rope);
    store_rows<D>(dv, a.g16, kvo, a.ld, adv[0], 1.0f, wkey, T, g, tq);
}

template <int D>
void launch_backward(void *dq, void *dk, void *dv, bool g16, float *rowdot, const void *dout, bool d16,
                     const void *out, bool out16, const float *lse, const void *q, const void *k, const void *v,
                     bool q16, int64_t ld, int B, int T, int NH, int KVH, int window, rope_tab rp) {
    bwd_args a = {dout,    lse,     rowdot,  q,  k,  v,  q16,      d16,    g16,
                  nullptr, nullptr, nullptr, nullptr, ld, T, NH, NH / KVH, window, 1.0f / sqrtf((float)D),
                  aligned4({q, k, v, dout}, {ld, (int64_t)NH * D}), rp};
    const size_t es = q16 ? 2 : 4, des = d16 ? 2 : 4, ges = g16 ? 2 : 4;
    unsigned tiles = (unsigned)((T + FL_ROWS - 1) / FL_ROWS);
    /* dq of a chunk of n sequences (c: its operands, packed or not) */
    auto launch_dq = [&](void *out_dq, const bwd_args &c, int n, auto packed) {
        constexpr bool P = decltype(packed)::value;
        if (two_row_tiles(D))
            flash_bwd_dq_k<D, P, 2><<<dim3((T + 127) / 128, (unsigned)(n * NH)), FL_WARPS * 32, 0, cu_stream()>>>(
                out_dq, c);
        else flash_bwd_dq_k<D, P, 1><<<dim3(tiles, (unsigned)(n * NH)), FL_WARPS * 32, 0, cu_stream()>>>(out_dq, c);
    };
    int nb = packed_sequences(D, 2LL * (NH + KVH) * T * D, B);
    if (nb == 0) {
        int64_t rows = (int64_t)B * NH * T;
        rowdot_k<<<cu_blocks(rows * 32), CU_THREADS, 0, cu_stream()>>>(rowdot, opnd{dout, d16}, opnd{out, out16}, B, T,
                                                                       NH, D);
        launch_dq(dq, a, B, std::false_type());
        flash_bwd_dkv_k<D, false><<<dim3(tiles, (unsigned)(B * KVH)), FL_WARPS * 32, 0, cu_stream()>>>(dk, dv, a);
        CU_LAUNCHED("flash attention backward");
        return;
    }
    bf16 *qp = (bf16 *)CU.narrow, *dop = qp + (int64_t)nb * NH * T * D, *kp = dop + (int64_t)nb * NH * T * D;
    bf16 *vp = kp + (int64_t)nb * KVH * T * D;
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        int64_t r = (int64_t)b0 * T; /* the chunk's first row */
        bwd_args c = a;
        c.dout = (const char *)dout + r * NH * D * des, c.lse = lse + (int64_t)b0 * NH * T;
        c.rowdot = rowdot + (int64_t)b0 * NH * T;
        c.q = (const char *)q + r * ld * es, c.k = (const char *)k + r * ld * es, c.v = (const char *)v + r * ld * es;
        c.qp = qp, c.dop = dop, c.kp = kp, c.vp = vp;
        /* packing dout also takes its row dots with out */
        const char *o = (const char *)out + r * NH * D * (out16 ? 2 : 4);
        pack<D>({{qp, {c.q, q16}, ld, T * ld, NH, true},
                 {dop, {c.dout, d16}, (int64_t)NH * D, (int64_t)T * NH * D, NH, false, false, {o, out16},
                  (float *)c.rowdot},
                 {kp, {c.k, q16}, ld, T * ld, KVH, true},
                 {vp, {c.v, q16}, ld, T * ld, KVH, false}},
                n, T, rp);
        launch_dq((char *)dq + r * ld * ges, c, n, std::true_type());
        flash_bwd_dkv_k<D, true><<<dim3(tiles, (unsigned)(n * KVH)), FL_WARPS * 32, 0, cu_stream()>>>(
            (char *)dk + r * ld * ges, (char *)dv + r * ld * ges, c);
    }
    CU_LAUNCHED("flash attention backward");
}

} // namespace

bool cu_flash_fits(int HS, int pairs) { return CU.prec == NX_PREC_BF16 && nx_cuda_flash(HS, pairs, false); }

void cu_flash_attention(void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ldq, nx_kv kv,
                        const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                        int window) {
    NX_ASSERT((ot == NX_F32 || ot == NX_BF16) && (qt == NX_F32 || qt == NX_BF16));
    rope_tab rp = {rope_cos, rope_sin};
    bool o16 = ot == NX_BF16, q16 = qt == NX_BF16;
    if (HS == 32) launch<32>(out, o16, lse, q, q16, ldq, kv, B, T, NH, KVH, window, rp);
    else if (HS == 64) launch<64>(out, o16, lse, q, q16, ldq, kv, B, T, NH, KVH, window, rp);
    else launch<128>(out, o16, lse, q, q16, ldq, kv, B, T, NH, KVH, window, rp);
}

bool cu_flash_training_fits(nx_backend *, int HS, int B, int T, int NH) {
    (void)T;
    return CU.prec == NX_PREC_BF16 && nx_cuda_flash(HS, (int64_t)B * NH, true);
}

void cu_attention_lse(nx_backend *, void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ld,
                      nx_kv kv, const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                      int window) {
    cu_flash_attention(out, ot, lse, q, qt, ld, kv, rope_cos, rope_sin, B, T, NH, KVH, HS, window);
}

void cu_attention_lse_backward(nx_backend *, void *dq, void *dk, void *dv, nx_dtype gt, float *scratch,
                               const void *dout, nx_dtype dt, const void *out, nx_dtype ot, const float *lse,
                               const void *q, const void *k, const void *v, nx_dtype qt, int64_t ld,
                               const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                               int window) {
    NX_ASSERT((ot == NX_F32 || ot == NX_BF16) && (qt == NX_F32 || qt == NX_BF16));
    NX_ASSERT((gt == NX_F32 || gt == NX_BF16) && (dt == NX_F32 || dt == NX_BF16));
    rope_tab rp = {rope_cos, rope_sin};
    bool o16 = ot == NX_BF16, q16 = qt == NX_BF16, g16 = gt == NX_BF16, d16 = dt == NX_BF16;
    if (HS == 32)
        launch_backward<32>(dq, dk, dv, g16, scratch, dout, d16, out, o16, lse, q, k, v, q16, ld, B, T, NH, KVH, window,
                            rp);
    else
        launch_backward<64>(dq, dk, dv, g16, scratch, dout, d16, out, o16, lse, q, k, v, q16, ld, B, T, NH, KVH, window,
                            rp);
}
