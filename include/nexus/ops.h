/* ops.h — the op contracts every backend implements: the transformer's
 * building blocks forward and backward, the training losses and AdamW,
 * each over backend memory (llm.c style: plain buffers, explicit shapes).
 *
 * Callers use the nx_<op>(be, ...) functions below; a backend fills an
 * nx_ops table (NULL for an op it lacks: calling it is an assertion
 * failure naming the op and the backend, and tests/test_backend.c skips
 * it). The reference backend ("ref") defines each op with naive loops in
 * double precision; the others are tested against it.
 *
 * Conventions. Dimension letters: N rows (tokens), C channels, B batch,
 * T time, NH heads, KVH kv heads, HS head size, V vocab, F ffn width.
 * Pointers are backend memory unless a comment says host. Backward ops ADD
 * into parameter gradients (dw, dW, db, dwte) and into input gradients
 * (din), except where a comment says written. Buffers never alias unless
 * a comment says so. Scalar results (losses, sums) are written to a double
 * in backend memory, so that a GPU step runs without waiting for the host;
 * the caller downloads them once per step. */
#ifndef NEXUS_OPS_H
#define NEXUS_OPS_H

#include <stdint.h>

#include "nexus/backend.h"

typedef enum nx_kd_kind { NX_KD_FORWARD_KL, NX_KD_REVERSE_KL, NX_KD_JSD } nx_kd_kind;

/* How a backward treats the parameter gradients it is given: NX_GRAD_ADD
 * adds into them (the default of every backward op, and a step's later
 * micro-batches); NX_GRAD_WRITE writes them, where the buffer holds no
 * earlier sum (a step's first micro-batch): a product's beta 0, so the
 * buffer needs no zeroing first and the product does not read it back.
 * The result is the same as NX_GRAD_ADD into zeros. */
typedef enum nx_grad_mode { NX_GRAD_ADD, NX_GRAD_WRITE } nx_grad_mode;

/* Rows of one sequence: len consecutive tokens of sequence seq, at
 * positions pos .. pos+len−1. A batch of rows is a list of spans in row
 * order: training is B spans {b, 0, T}; a prefill chunk one span; a decode
 * step one span of length 1 per sequence; continuous batching mixes them. */
typedef struct nx_span {
    int seq, pos, len;
} nx_span;

/* Keys and values as attention reads them: those of sequence s at
 * position t start at k + s·seq + t·row (and v likewise), KVH·HS floats
 * each, after RoPE for the keys. A KV cache, or a training batch's own
 * projections. */
typedef struct nx_kv {
    float *k, *v;
    int64_t row, seq;
} nx_kv;

/* AdamW hyper-parameters of one update (torch.optim.AdamW), bias
 * corrections for this step included, and the gradient clip. */
/* Rotary scaling as transformers' ROPE_INIT_FUNCTIONS compute it
 * (modeling_rope_utils.py), from rope_parameters / rope_scaling:
 *   default  inv_freq_i = theta^(−2i/HS)
 *   linear   inv_freq / factor
 *   dynamic  NTK: theta ← theta·(factor·S/max_pos − (factor−1))^(HS/(HS−2)) for a
 *            sequence of S > max_pos positions, else the default
 *   yarn     a ramp between inv_freq/factor and inv_freq over the dimensions
 *            whose rotations in original_max_pos positions lie between
 *            beta_slow and beta_fast; cos and sin scaled by attention_factor
 *   llama3   wavelengths past original_max_pos/low_freq_factor divided by
 *            factor, below original_max_pos/high_freq_factor kept, smoothed
 *            in between
 * A zeroed struct is the default rope. */
typedef enum nx_rope_type { NX_ROPE_DEFAULT, NX_ROPE_LINEAR, NX_ROPE_DYNAMIC, NX_ROPE_YARN, NX_ROPE_LLAMA3 } nx_rope_type;
typedef struct nx_rope_scaling {
    nx_rope_type type;
    double factor;                 /* linear, dynamic, yarn, llama3 */
    int original_max_pos;          /* yarn, llama3: original_max_position_embeddings */
    int max_pos;                   /* dynamic: max_position_embeddings */
    double low_freq_factor, high_freq_factor;  /* llama3 */
    double beta_fast, beta_slow;   /* yarn (32, 1 when 0) */
    double attention_factor;       /* yarn: the cos/sin scale (derived from factor, mscale when 0) */
    double mscale, mscale_all_dim; /* yarn, optional (0: absent) */
    bool no_truncate;              /* yarn "truncate": false */
} nx_rope_scaling;

typedef struct nx_adamw_args {
    float lr, beta1, beta2, eps, weight_decay;
    double bc1, bc2;       /* 1 − beta1^t, 1 − beta2^t for this step t */
    float clip;            /* global-norm clip (> 0), 0: off */
    void *p16;             /* NULL, or n bf16 values: p rounded after the update (nx_weight.bf16) */
} nx_adamw_args;

struct nx_ops {
    void (*embed)(nx_backend *, float *out, const int32_t *ids, const nx_weight *wte, int N);
    void (*embed_backward)(nx_backend *, float *dwte, const float *dout, const int32_t *ids, int N, int C);
    void (*rmsnorm)(nx_backend *, float *out, float *rstd, const float *in, const float *w, int N, int C,
                    float eps);
    void (*rmsnorm_backward)(nx_backend *, float *din, float *dw, const float *dout, const float *in,
                             const float *w, const float *rstd, int N, int C);
    /* optional: nx_rmsnorm_backward_to */
    void (*rmsnorm_backward_to)(nx_backend *, float *din, void *din_at, nx_dtype at, float *dw, const float *dout,
                                const float *in, const float *w, const float *rstd, int N, int C);
    void (*linear)(nx_backend *, float *out, const float *in, const nx_weight *W, const float *b, int N);
    void (*linear_backward)(nx_backend *, float *din, float *dW, float *db, const float *dout,
                            const float *in, const nx_weight *W, int N);
    void (*rope)(nx_backend *, float *x, int64_t ldx, const int32_t *pos, const float *cos_t,
                 const float *sin_t, int N, int H, int HS, bool inverse);
    void (*spans)(nx_backend *, const nx_span *spans, int nspans); /* optional */
    void (*kv_store)(nx_backend *, nx_kv kv, const float *k, const float *v, int64_t ld,
                     const nx_span *spans, int nspans, int D);
    void (*attention)(nx_backend *, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv,
                      const nx_span *spans, int nspans, int NH, int KVH, int HS, int window);
    void (*attention_backward)(nx_backend *, float *dq, float *dk, float *dv, float *scratch,
                               const float *dout, const float *probs, const float *dprobs_add,
                               const float *q, const float *k, const float *v, int64_t ld, int B, int T,
                               int NH, int KVH, int HS, int window);
    /* optional (NULL: never fits): training attention without the maps */
    bool (*attention_lse_fits)(nx_backend *, int HS, int B, int T, int NH);
    void (*attention_lse)(nx_backend *, void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ld,
                          nx_kv kv, const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH,
                          int HS, int window);
    void (*attention_lse_backward)(nx_backend *, void *dq, void *dk, void *dv, nx_dtype gt, float *scratch,
                                   const void *dout, nx_dtype dt, const void *out, nx_dtype ot, const float *lse,
                                   const void *q, const void *k, const void *v, nx_dtype qt, int64_t ld,
                                   const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH,
                                   int HS, int window);
    void (*copy2d)(nx_backend *, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols);
    void (*swiglu)(nx_backend *, float *h, const float *gu, int N, int F);
    /* optional: the same ops with their activation side in another type
     * (nx_backend_act_type; the entry points pass NX_F32 to the ops above) */
    void (*rmsnorm_to)(nx_backend *, void *out, nx_dtype ot, float *rstd, const float *in, const float *w, int N,
                       int C, float eps);
    void (*swiglu_to)(nx_backend *, void *h, const void *gu, nx_dtype at, int N, int F);
    void (*swiglu_backward_from)(nx_backend *, void *dgu, const void *dh, nx_dtype ht, const void *gu, nx_dtype gt,
                                 int N, int F);
    void (*linear_from)(nx_backend *, float *out, const void *in, nx_dtype it, const nx_weight *W, const float *b,
                        int N);
    void (*linear_to)(nx_backend *, void *out, nx_dtype ot, const void *in, nx_dtype it, const nx_weight *W, int N);
    void (*linear_backward_from)(nx_backend *, void *din, nx_dtype dit, float *dW, float *db, nx_grad_mode gm,
                                 const void *dout, nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W,
                                 int N);
    /* optional: out = res + linear (nx_linear_add) */
    void (*linear_add)(nx_backend *, float *out, const float *res, const void *in, nx_dtype it, const nx_weight *W,
                       const float *b, int N);
    void (*swiglu_backward)(nx_backend *, float *dgu, const float *dh, const float *gu, int N, int F);
    void (*add)(nx_backend *, float *y, const float *x, int64_t n);
    void (*cross_entropy)(nx_backend *, double *loss, float *dlogits, float weight, const float *logits,
                          const int32_t *targets, int N, int V);
    void (*kd_loss)(nx_backend *, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                    const float *student, const float *teacher, const int32_t *targets, int N, int V);
    /* optional: both losses in fewer passes over the logits (nx_distill_loss) */
    void (*distill_loss)(nx_backend *, double *ce, double *kd, nx_kd_kind kind, float temp, void *dlogits,
                         nx_dtype dt, float w_ce, float w_kd, const void *student, nx_dtype st,
                         const void *teacher, nx_dtype tt, const int32_t *targets, int N, int V);
    void (*argmax)(nx_backend *, int32_t *out, const float *x, int N, int V);
    void (*sqdiff)(nx_backend *, double *sum, float *dy, bool add, const float *y, const float *t,
                   int64_t n, float scale);
    void (*attention_kl)(nx_backend *, double *sum, float *dprobs, const float *ps, const float *pt, int B,
                         int T, int NHs, int NHt, float coef);
    void (*sumsq)(nx_backend *, double *sum, const float *x, int64_t n);
    void (*adamw)(nx_backend *, float *p, const float *g, float *m, float *v, int64_t n,
                  const nx_adamw_args *a, const double *guard, int nguard);
    void (*mask)(nx_backend *, float *p, const uint8_t *mask, int64_t n);
    /* optional: nx_round_bf16 */
    void (*round_bf16)(nx_backend *, void *dst, const float *src, int64_t n);
};

/* ---- forward ------------------------------------------------------------ */

/* out[n,:] = row ids[n] of wte as f32 (any weight type); ids (N) int32. */
void nx_embed(nx_backend *be, float *out, const int32_t *ids, const nx_weight *wte, int N);
/* HF LlamaRMSNorm: out = w ⊙ x · rsqrt(mean(x²) + eps); rstd[n] saved
 * (rstd may be NULL). */
void nx_rmsnorm(nx_backend *be, float *out, float *rstd, const float *in, const float *w, int N, int C,
                float eps);
/* nn.Linear: out(N, W.rows) = in(N, W.cols) · Wᵀ + b; b (W.rows) may be
 * NULL. W of any type the backend supports. */
void nx_linear(nx_backend *be, float *out, const float *in, const nx_weight *W, const float *b, int N);
/* HF rotate_half RoPE in place on H heads of HS values in each row n of x
 * (row stride ldx), at position pos[n]: x1 = x[:HS/2], x2 = x[HS/2:];
 * out = (x1·cos − x2·sin, x2·cos + x1·sin); cos/sin tables (P, HS/2) from
 * nx_rope_tables. inverse: the transposed rotation (the backward). */
void nx_rope(nx_backend *be, float *x, int64_t ldx, const int32_t *pos, const float *cos_t,
             const float *sin_t, int N, int H, int HS, bool inverse);
/* Host: the rotary tables for positions [0, P): cos and sin of p ·
 * inv_freq_i in double, inv_freq from theta and the scaling s (NULL: the
 * default, 1 / theta ** (arange(0, HS, 2) / HS)), times the scaling's
 * attention factor (yarn). A dynamic scaling uses the frequencies of a
 * sequence of P positions. */
void nx_rope_tables(float *cos_t, float *sin_t, int P, int HS, double theta, const nx_rope_scaling *s);
/* Host: the inverse frequencies (HS/2) and the attention factor the tables
 * are made of, for a sequence of seq_len positions (dynamic only). */
double nx_rope_inv_freq(double *inv_freq, int HS, double theta, const nx_rope_scaling *s, int seq_len);
/* The spans of the forward that follows, before its ops: a device backend
 * puts the rows' sequences and positions in device memory now, so that
 * kv_store and attention find them there (and a replay, which queues no
 * copies, reads them: nx_backend_replay). A no-op where the ops read the
 * host's spans. */
void nx_spans(nx_backend *be, const nx_span *spans, int nspans);
/* Copies each row's keys k and values v (D floats at row stride ld) into
 * kv at (span.seq, span.pos + i). spans: host. */
void nx_kv_store(nx_backend *be, nx_kv kv, const float *k, const float *v, int64_t ld, const nx_span *spans,
                 int nspans, int D);
/* Causal grouped-query attention of the rows of spans (host): row i of a
 * span (queries q, row stride ldq, NH·HS floats), at position p = pos+i,
 * attends to the keys and values j of its sequence in kv with
 * p − window < j ≤ p (window 0: all j ≤ p; transformers'
 * sliding_window_overlay, kv_idx > q_idx − sliding_window); head h reads
 * kv head h / (NH/KVH); scale 1/√HS. out (N, NH·HS) contiguous. probs,
 * when not NULL, receives the softmax (B, NH, T, T) with zeros outside
 * the causal window, and then spans must be {b, 0, T} for b < B. */
void nx_attention(nx_backend *be, float *out, float *probs, const float *q, int64_t ldq, nx_kv kv,
                  const nx_span *spans, int nspans, int NH, int KVH, int HS, int window);
/* Attention over B whole sequences {b, 0, T} without the maps, a backend's
 * fast path (the CUDA backend's flash attention in bf16 precision, head
 * sizes 32 and 64): only where nx_attention_lse_fits. q, kv.k and kv.v
 * point at elements of type qt and out is written in type ot (each NX_F32
 * or the backend's nx_backend_act_type: q, k, v as the q/k/v product
 * leaves them, out as the output projection reads it); lse (B, NH, T)
 * receives each row's log-sum-exp (natural log) of its scaled scores over
 * the keys it sees, for the backward. With rope tables (nx_rope's, at
 * least T positions), q and the keys kv.k are given before their rotation
 * and rotated as they are read, row t of a sequence at position t: the
 * same attention as nx_rope on q and k first, without a pass of its own
 * and leaving q and k as they are. NULL tables: q and k as given. */
bool nx_attention_lse_fits(nx_backend *be, int HS, int B, int T, int NH);
void nx_attention_lse(nx_backend *be, void *out, nx_dtype ot, float *lse, const void *q, nx_dtype qt, int64_t ld,
                      nx_kv kv, const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                      int window);
/* dst[r, 0..cols) = src[r, 0..cols) for r < rows; row strides ldd and lds
 * (floats). A strided view made contiguous or back (Qwen3's per-head q/k
 * norms run over the q and k parts of the stacked q/k/v rows). */
void nx_copy2d(nx_backend *be, float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols);
/* SwiGLU on rows of gu = [gate | up] (N, 2F): h = silu(gate) ⊙ up (N, F). */
void nx_swiglu(nx_backend *be, float *h, const float *gu, int N, int F);
/* nx_rmsnorm writing its output in type ot, nx_swiglu (and its backward)
 * with h and gu in type at (gu and dgu in gt, dh in ht), nx_linear and
 * nx_linear_backward reading in in type it (and dout in type dt, no bias
 * then; din is OVERWRITTEN: din = dout·W, which spares the backend zeroing
 * it and its product reading it; nx_linear_backward_to writes it in type
 * dit), and nx_linear_to writing out in type ot (no bias): NX_F32, or the
 * backend's nx_backend_act_type (NX_BF16: rounded to nearest even, as the
 * products of bf16 precision round their inputs anyway, and as autocast
 * keeps the products' outputs and the gradients of their inputs). The
 * matrix products' inputs held in bf16 need no narrowing pass, and the ops
 * that write and read them move half the bytes. */
void nx_rmsnorm_to(nx_backend *be, void *out, nx_dtype ot, float *rstd, const float *in, const float *w, int N,
                   int C, float eps);
void nx_swiglu_to(nx_backend *be, void *h, const void *gu, nx_dtype at, int N, int F);
void nx_swiglu_backward_from(nx_backend *be, void *dgu, const void *dh, nx_dtype ht, const void *gu, nx_dtype gt,
                             int N, int F);
void nx_linear_from(nx_backend *be, float *out, const void *in, nx_dtype it, const nx_weight *W, const float *b,
                    int N);
void nx_linear_to(nx_backend *be, void *out, nx_dtype ot, const void *in, nx_dtype it, const nx_weight *W, int N);
/* The two backward entries take gm (nx_grad_mode) for dW and db: added
 * to, or written (NX_GRAD_WRITE: neither zeroed first nor read; a backend
 * without its own linear_backward_from zeroes them, then adds). */
void nx_linear_backward_from(nx_backend *be, float *din, float *dW, float *db, nx_grad_mode gm, const void *dout,
                             nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W, int N);
void nx_linear_backward_to(nx_backend *be, void *din, nx_dtype dit, float *dW, float *db, nx_grad_mode gm,
                           const void *dout, nx_dtype dt, const void *in, nx_dtype it, const nx_weight *W, int N);
/* out = res + in · Wᵀ (+ b): nx_linear_from and nx_add in one op, where the
 * backend adds res in the product's epilogue (CUDA, bf16 products) rather
 * than in a pass of its own. res and out are distinct (N, W->rows). */
void nx_linear_add(nx_backend *be, float *out, const float *res, const void *in, nx_dtype it, const nx_weight *W,
                   const float *b, int N);
/* y += x elementwise. */
void nx_add(nx_backend *be, float *y, const float *x, int64_t n);
/* out[n] = argmax of row n of x (N, V), the lowest index on ties. */
void nx_argmax(nx_backend *be, int32_t *out, const float *x, int N, int V);

/* ---- backward ----------------------------------------------------------- */

/* The backward of nx_attention_lse: dq, dk, dv written in type gt (row
 * stride ld, as q, k and v) from dout (B·T, NH·HS, type dt), the forward's
 * out (type ot) and lse; scratch (B·NH·T floats). q, k, v (type qt) and
 * the rope tables as given to the forward: dq and dk are then the
 * gradients of q and k before their rotation. Each type NX_F32 or the
 * backend's nx_backend_act_type (dout as the output projection's backward
 * writes it, dq, dk, dv as the q/k/v product's backward reads them). */
void nx_attention_lse_backward(nx_backend *be, void *dq, void *dk, void *dv, nx_dtype gt, float *scratch,
                               const void *dout, nx_dtype dt, const void *out, nx_dtype ot, const float *lse,
                               const void *q, const void *k, const void *v, nx_dtype qt, int64_t ld,
                               const float *rope_cos, const float *rope_sin, int B, int T, int NH, int KVH, int HS,
                               int window);
/* dwte[ids[n],:] += dout[n,:] (dwte f32). */
void nx_embed_backward(nx_backend *be, float *dwte, const float *dout, const int32_t *ids, int N, int C);
/* y = w ⊙ x r, r = (mean x² + eps)^-½: dx += r (w⊙dy) − (r³/C) x Σ(w⊙dy⊙x);
 * dw += Σ_n dy ⊙ x r. */
void nx_rmsnorm_backward(nx_backend *be, float *din, float *dw, const float *dout, const float *in,
                         const float *w, const float *rstd, int N, int C);
/* The same, and din_at, when not NULL, receives the updated din in type at
 * (the backend's nx_backend_act_type, not NX_F32; rounded as the typed ops
 * round): the residual gradient, which stays f32 as it accumulates, as the
 * products that read it next take it, without a narrowing pass of theirs. */
void nx_rmsnorm_backward_to(nx_backend *be, float *din, void *din_at, nx_dtype at, float *dw, const float *dout,
                            const float *in, const float *w, const float *rstd, int N, int C);
/* din += dout·W (din may be NULL), dW += doutᵀ·in, db += Σ_n dout (db may
 * be NULL). W f32; dW has its shape. */
void nx_linear_backward(nx_backend *be, float *din, float *dW, float *db, const float *dout, const float *in,
                        const nx_weight *W, int N);
/* The backward of nx_attention over B spans {b, 0, T} whose keys and
 * values are the batch's own, with the same window: q, k, v and dq, dk, dv
 * share row stride ld (q: NH·HS, k and v: KVH·HS floats per row); dout
 * (N, NH·HS). dq, dk, dv are written. scratch: B·NH·T·T floats.
 * dprobs_add, when not NULL, is a further gradient w.r.t. probs (B, NH,
 * T, T) from a loss on the maps; entries outside the causal window are
 * ignored. */
void nx_attention_backward(nx_backend *be, float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *probs, const float *dprobs_add, const float *q, const float *k,
                           const float *v, int64_t ld, int B, int T, int NH, int KVH, int HS, int window);
/* dgu = [dgate | dup] (N, 2F), written. */
void nx_swiglu_backward(nx_backend *be, float *dgu, const float *dh, const float *gu, int N, int F);

/* ---- losses --------------------------------------------------------------
 * targets[n] (int32) is the next token of row n, or −1 to leave the row
 * out. Each loss writes its mean over the rows that count to *loss (0 when
 * none count) and, when dlogits is not NULL, ADDS weight × ∂loss/∂logits
 * into it: a mix alpha·kd + (1−alpha)·ce is two calls into one buffer.
 * With p = softmax(logits / temp):
 *   forward KL = temp² · mean KL(p_teacher ‖ p_student)
 *   reverse KL = temp² · mean KL(p_student ‖ p_teacher)
 *   JSD        = temp² · mean ½KL(p_t ‖ m) + ½KL(p_s ‖ m), m = (p_t + p_s)/2 */
void nx_cross_entropy(nx_backend *be, double *loss, float *dlogits, float weight, const float *logits,
                      const int32_t *targets, int N, int V);
void nx_kd_loss(nx_backend *be, double *loss, nx_kd_kind kind, float temp, float *dlogits, float weight,
                const float *student, const float *teacher, const int32_t *targets, int N, int V);
/* A training step's loss on its logits: *ce as nx_cross_entropy gives it
 * and, when teacher is not NULL, *kd as nx_kd_loss does; dlogits, when not
 * NULL, is OVERWRITTEN with w_ce·∂ce (where w_ce > 0) + w_kd·∂kd (rows left
 * out: 0), in type dt (NX_F32, or the backend's nx_backend_act_type: the
 * head's backward reads it so); the student's logits are of type st and
 * the teacher's of type tt (the same two; a bf16 student needs a bf16
 * gradient, as autocast keeps both). The same as zeroing dlogits and the two
 * calls, which is what a backend without the fused op runs; the CUDA
 * backend reads the logits twice (three times for JSD; once for losses
 * only, but for JSD) instead of seven times. */
void nx_distill_loss(nx_backend *be, double *ce, double *kd, nx_kd_kind kind, float temp, void *dlogits, nx_dtype dt,
                     float w_ce, float w_kd, const void *student, nx_dtype st, const void *teacher, nx_dtype tt,
                     const int32_t *targets, int N, int V);
/* *sum = Σ (y − t)²; dy = (add ? dy : 0) + scale·(y − t). dy may be y when
 * !add (the gradient replaces y). */
void nx_sqdiff(nx_backend *be, double *sum, float *dy, bool add, const float *y, const float *t, int64_t n,
               float scale);
/* Attention transfer of one layer pair. ps (B, NHs, T, T), pt (B, NHt, T, T)
 * causal maps. Heads form groups: each head its own group when NHs == NHt,
 * else one group of all heads per side; Ā is a group's mean map.
 * *sum = Σ over b, groups, t, j ≤ t of Ā_t log(Ā_t / Ā_s) (terms with
 * Ā_t = 0 left out; Ā_s clamped at 1e-30); dprobs (B, NHs, T, T) +=
 * −coef · Ā_t / Ā_s / (heads per student group) at every map of the group. */
void nx_attention_kl(nx_backend *be, double *sum, float *dprobs, const float *ps, const float *pt, int B,
                     int T, int NHs, int NHt, float coef);

/* ---- optimiser ------------------------------------------------------------ */

/* *sum = Σ x² (double accumulation). */
void nx_sumsq(nx_backend *be, double *sum, const float *x, int64_t n);
/* One AdamW update of p with gradients g, clipped as
 * torch.nn.utils.clip_grad_norm_: with norm = sqrt(guard[nguard−1]) (the
 * gradients' Σ g², from nx_sumsq), g is scaled by clip / (norm + 1e-6)
 * when clip > 0 and norm > clip. Skipped entirely (nothing changes) when
 * any guard[0..nguard) is not finite: a non-finite loss or gradient never
 * reaches the weights. torch.optim.AdamW, decoupled weight decay:
 *   p ·= 1 − lr·wd; m = lerp(m, g, 1 − β1); v = β2 v + (1 − β2) g²
 *   p −= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps) */
void nx_adamw_update(nx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                     const nx_adamw_args *a, const double *guard, int nguard);
/* dst[0..n) = src rounded to bf16 (nearest even): the bf16 copy of f32
 * weights (nx_weight.bf16). Only on backends with the op (CUDA), which
 * nx_backend_has_round_bf16 tells. */
void nx_round_bf16(nx_backend *be, void *dst, const float *src, int64_t n);
bool nx_backend_has_round_bf16(const nx_backend *be);

/* Sparsity: p[i] = 0 wherever mask[i] == 0, p[i] unchanged elsewhere (a
 * select, not a product: a pruned weight is exactly +0 whatever it held).
 * mask (n) uint8 in backend memory. A pruned student's weights stay zero
 * through training by this op after every optimizer step. */
void nx_mask(nx_backend *be, float *p, const uint8_t *mask, int64_t n);

/* Work sizes of the ops, for nx_backend_plan. */
nx_work nx_work_max(nx_work a, nx_work b);

#endif
