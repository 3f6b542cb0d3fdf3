/* attention.cu — causal grouped-query attention on the GPU, one kernel
 * for training, evaluation, prefill and decode (see ops.h), and its
 * training backward.
 *
 * Forward: one block per (row, head). The block reads its query, scores
 * every key its row sees (keys first .. pos of its sequence's cache, or of
 * the batch's own keys; first = pos − window + 1 under a sliding window,
 * else 0) into shared memory, takes the softmax there, writes
 * the map row when the maps are kept, and sums the values. Rows of a
 * batch carry their sequence and position (cu_span_rows), so prefill
 * chunks and decode rows of different sequences share one launch.
 *
 * Backward, per training batch of B sequences of T: one block per (row t,
 * head h) forms dP = dO·Vᵀ (+ the maps' own gradient), dS = P ⊙ (dP −
 * Σ dP ⊙ P)/√HS into the scratch buffer and dQ = dS·K; then one block per
 * (key row j, kv head) sums dK = Σ dSᵀ Q and dV = Σ Pᵀ dO over the heads of
 * its group and the rows t ≥ j that see key j (t < j + window under a
 * window), in a fixed order (no atomics). Entries of the maps outside a
 * row's window are zero, as in the CPU backend. */
#include "cuda_impl.h"

namespace {

enum { ATT_THREADS = 128 };


__global__ void kv_store_k(float *kc, float *vc, int64_t krow, int64_t kseq, const float *k, const float *v,
                           int64_t ld, const int32_t *seq, const int32_t *pos, int N, int D) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= (int64_t)N * D) return;
    int64_t r = i / D, d = i % D, at = seq[r] * kseq + pos[r] * krow + d;
    kc[at] = k[r * ld + d];
    vc[at] = v[r * ld + d];
}

/* grid (N rows, NH heads); dynamic shared memory: HS + ctx floats */
__global__ void attend_k(float *out, float *probs, const float *q, int64_t ldq, const float *kb, const float *vb,
                         int64_t krow, int64_t kseq, const int32_t *seq, const int32_t *pos, int NH, int G, int HS,
                         int T, int window, float scale) {
    extern __shared__ float sm[];
    __shared__ float red[ATT_THREADS];
    __shared__ double redd[ATT_THREADS];
    float *qs = sm, *S = sm + HS;
    int64_t r = blockIdx.x;
    int h = blockIdx.y, last = pos[r], j0 = first_key(last, window);
    const float *K = kb + seq[r] * kseq + (h / G) * HS, *V = vb + seq[r] * kseq + (h / G) * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) qs[d] = q[r * ldq + (int64_t)h * HS + d];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = j0 + threadIdx.x; j <= last; j += blockDim.x) {
        const float *kj = K + j * krow;
        float s = 0;
        for (int d = 0; d < HS; d++) s += qs[d] * kj[d];
        S[j] = s * scale;
        mx = fmaxf(mx, S[j]);
    }
    mx = cu_block_max(mx, red);
    double sum = 0;
    for (int j = j0 + threadIdx.x; j <= last; j += blockDim.x) sum += S[j] = expf(S[j] - mx);
    float inv = (float)(1.0 / cu_block_sum(sum, redd));
    for (int j = j0 + threadIdx.x; j <= last; j += blockDim.x) S[j] *= inv;
    __syncthreads();
    if (probs) { /* training rows: sequence b = r / T at position t = r % T */
        float *row = probs + (((r / T) * NH + h) * (int64_t)T + r % T) * T;
        for (int j = threadIdx.x; j < T; j += blockDim.x) row[j] = j >= j0 && j <= last ? S[j] : 0.0f;
    }
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float o = 0;
        for (int j = j0; j <= last; j++) o += S[j] * V[j * krow + d];
        out[r * (int64_t)NH * HS + (int64_t)h * HS + d] = o;
    }
}

/* grid (B·T rows, NH heads): dS into the scratch, dQ written. */
__global__ void attend_back_q_k(float *dq, float *dS_all, const float *dout, const float *probs, const float *dprobs_add,
                                const float *q, const float *k, const float *v, int64_t ld, int T, int NH, int G,
                                int HS, int window, float scale) {
    extern __shared__ float sm[];
    __shared__ double redd[ATT_THREADS];
    float *dO = sm, *dS = sm + HS;
    int64_t r = blockIdx.x, b = r / T;
    int t = (int)(r % T), h = blockIdx.y, kh = h / G, j0 = first_key(t, window);
    int64_t mrow = ((b * NH + h) * (int64_t)T + t) * T;
    const float *P = probs + mrow;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) dO[d] = dout[r * (int64_t)NH * HS + (int64_t)h * HS + d];
    __syncthreads();
    double dot = 0;
    for (int j = j0 + threadIdx.x; j <= t; j += blockDim.x) {
        const float *vj = v + (b * T + j) * ld + (int64_t)kh * HS;
        float s = 0;
        for (int d = 0; d < HS; d++) s += dO[d] * vj[d];
        if (dprobs_add) s += dprobs_add[mrow + j];
        dS[j] = s;
        dot += (double)s * P[j];
    }
    float dd = (float)cu_block_sum(dot, redd);
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        bool seen = j >= j0 && j <= t;
        float x = seen ? P[j] * (dS[j] - dd) * scale : 0.0f;
        if (seen) dS[j] = x;
        dS_all[mrow + j] = x;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float acc = 0;
        for (int j = j0; j <= t; j++) acc += dS[j] * k[(b * T + j) * ld + (int64_t)kh * HS + d];
        dq[r * ld + (int64_t)h * HS + d] = acc;
    }
}

/* grid (B·T key rows, KVH kv heads): dK, dV written. */
__global__ void attend_back_kv_k(float *dk, float *dv, const float *dS_all, const float *probs, const float *dout,
                                 const float *q, int64_t ld, int T, int NH, int G, int HS, int window) {
    int64_t r = blockIdx.x, b = r / T;
    int j = (int)(r % T), kh = blockIdx.y, tend = window > 0 && j + window < T ? j + window : T;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float ak = 0, av = 0;
        for (int g = 0; g < G; g++) {
            int h = kh * G + g;
            const float *dS = dS_all + (b * NH + h) * (int64_t)T * T, *P = probs + (b * NH + h) * (int64_t)T * T;
            for (int t = j; t < tend; t++) {
                ak += dS[(int64_t)t * T + j] * q[(b * T + t) * ld + (int64_t)h * HS + d];
                av += P[(int64_t)t * T + j] * dout[(b * T + t) * (int64_t)NH * HS + (int64_t)h * HS + d];
            }
        }
        dk[r * ld + (int64_t)kh * HS + d] = ak;
        dv[r * ld + (int64_t)kh * HS + d] = av;
    }
}

enum { ATT_SHARED_MAX = 200 * 1024 };

size_t shared_bytes(int HS, int64_t ctx) {
    size_t b = (size_t)(HS + ctx) * sizeof(float);
    NX_ASSERTM(b <= ATT_SHARED_MAX, "attention context too long for the CUDA kernel's shared memory");
    return b;
}

void allow_shared(const void *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        cu_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), "shared memory");
}

} // namespace

void cu_kv_store(nx_backend *, nx_kv kv, const float *k, const float *v, int64_t ld, const nx_span *spans, int nspans,
                 int D) {
    cu_work_reset();
    int32_t *seq, *pos;
    int N = cu_span_rows(spans, nspans, &seq, &pos);
    if ((int64_t)N * D == 0) return;
    kv_store_k<<<cu_blocks((int64_t)N * D), CU_THREADS, 0, cu_stream()>>>(kv.k, kv.v, kv.row, kv.seq, k, v, ld, seq, pos, N, D);
    CU_LAUNCHED("kv store");
}

void cu_attention(nx_backend *, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv, const nx_span *spans,
                  int nspans, int NH, int KVH, int HS, int window) {
    cu_work_reset();
    int32_t *seq, *pos;
    int N = cu_span_rows(spans, nspans, &seq, &pos);
    int64_t ctx = 0;
    for (int s = 0; s < nspans; s++) ctx = spans[s].pos + spans[s].len > ctx ? spans[s].pos + spans[s].len : ctx;
    int T = probs ? spans[0].len : 0;
    if (probs)
        for (int s = 0; s < nspans; s++)
            NX_ASSERTM(spans[s].seq == s && spans[s].pos == 0 && spans[s].len == T,
                       "attention maps are kept only for training spans {b, 0, T}");
    if (N == 0) return;
    if (!probs && cu_flash_fits(HS, nspans * NH) && cu_whole_sequences(spans, nspans)) {
        cu_flash_attention(out, NX_F32, nullptr, q, NX_F32, ldq, kv, nullptr, nullptr, nspans, spans[0].len, NH, KVH,
                           HS, window);
        return;
    }
    if (cu_attention_whole(spans, nspans, NH) && (probs || CU.scores)) {
        cu_attention_gemm(out, probs, q, ldq, kv, nspans, spans[0].len, NH, KVH, HS, window);
        return;
    }
    /* A replay's rows reach the cache's end: shared memory for all of it, or
     * the step is not recorded (it runs op by op instead). */
    if (cu_recording()) {
        int64_t cap = kv.seq / kv.row;
        if ((size_t)(HS + cap) * sizeof(float) <= ATT_SHARED_MAX) ctx = cap;
        else CU.unrecordable = true;
    }
    size_t sh = shared_bytes(HS, ctx);
    allow_shared((const void *)attend_k, sh);
    attend_k<<<dim3(N, NH), ATT_THREADS, sh, cu_stream()>>>(out, probs, q, ldq, kv.k, kv.v, kv.row, kv.seq, seq, pos, NH, NH / KVH,
                                               HS, T, window, 1.0f / sqrtf((float)HS));
    CU_LAUNCHED("attention");
}

void cu_attention_backward(nx_backend *, float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *probs, const float *dprobs_add, const float *q, const float *k, const float *v,
                           int64_t ld, int B, int T, int NH, int KVH, int HS, int window) {
    if ((int64_t)B * T == 0) return;
    if (T >= 16 && (int64_t)B * NH <= CU_MAX_PAIRS) {
        cu_attention_gemm_backward(dq, dk, dv, scratch, dout, probs, dprobs_add, q, k, v, ld, B, T, NH, KVH, HS, window);
        return;
    }
    size_t sh = shared_bytes(HS, T);
    allow_shared((const void *)attend_back_q_k, sh);
    attend_back_q_k<<<dim3(B * T, NH), ATT_THREADS, sh, cu_stream()>>>(dq, scratch, dout, probs, dprobs_add, q, k, v, ld, T, NH,
                                                          NH / KVH, HS, window, 1.0f / sqrtf((float)HS));
    attend_back_kv_k<<<dim3(B * T, KVH), 64, 0, cu_stream()>>>(dk, dv, scratch, probs, dout, q, ld, T, NH, NH / KVH, HS, window);
    CU_LAUNCHED("attention backward");
}

void cu_copy2d(nx_backend *, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols) {
    cu_check(cudaMemcpy2D(dst, (size_t)ldd * sizeof(float), src, (size_t)lds * sizeof(float),
                          (size_t)cols * sizeof(float), (size_t)rows, cudaMemcpyDeviceToDevice),
             "copy2d");
}
