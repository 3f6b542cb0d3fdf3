/* ops.h — the transformer's building blocks, each a forward and a backward
 * over plain f32 buffers (llm.c style), with a naive reference (nx_ref_*)
 * that the tests hold them against, alongside finite differences.
 *
 * Conventions. Dimension letters: N rows (tokens = B*T), C channels,
 * B batch, T time, NH heads, KVH kv heads, HS head size, V vocab, F ffn.
 * Backward functions ADD into parameter gradients (dw, db, dwte) and into
 * the input gradient din, except where a comment says "written". Buffers
 * never alias unless a comment says in place. */
#ifndef NEXUS_OPS_H
#define NEXUS_OPS_H

#include <stdint.h>

/* out[n,:] = wte[ids[n],:] */
void nx_embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C);
/* dwte[ids[n],:] += dout[n,:] */
void nx_embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C);

/* HF LlamaRMSNorm: out = w * x * rsqrt(mean(x²) + eps); rstd[n] saved. */
void nx_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C,
                        float eps);
void nx_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in,
                         const float *w, const float *rstd, int N, int C);

/* out(N,OC) = in(N,IC) · Wᵀ + b, W stored (OC, IC) as in PyTorch; b may be NULL. */
void nx_linear_forward(float *out, const float *in, const float *W, const float *b, int N, int IC,
                       int OC);
/* din += dout·W (din may be NULL), dW += doutᵀ·in, db += Σ dout (db may be NULL). */
void nx_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                        const float *W, int N, int IC, int OC);

/* Rotary tables for positions [0, max_pos): cos/sin (max_pos, HS/2), angle
 * p · theta^(-2i/HS), computed in double. */
void nx_rope_tables(float *cos_t, float *sin_t, int max_pos, int HS, double theta);
/* In place on x (N, H, HS), row n at position pos[n]; HF rotate_half:
 * x1 = x[:HS/2], x2 = x[HS/2:]; out = (x1·cos − x2·sin, x2·cos + x1·sin). */
void nx_rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                     int H, int HS);
/* In place on dx: the transpose rotation. */
void nx_rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                      int H, int HS);

/* Causal grouped-query attention. q (B,T,NH,HS), k/v (B,T,KVH,HS); head h
 * reads kv head h / (NH/KVH). probs (B,NH,T,T) receives the softmax (rows
 * above the diagonal are zero); out (B,T,NH,HS). Scale 1/sqrt(HS). */
void nx_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          int B, int T, int NH, int KVH, int HS);
/* dq, dk, dv are written (not added). scratch: B*NH*T*T floats.
 * dprobs_add, when not NULL, is a further gradient w.r.t. probs (B,NH,T,T)
 * from a loss on the attention maps; entries above the diagonal are ignored. */
void nx_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *probs, const float *dprobs_add, const float *q, const float *k,
                           const float *v, int B, int T, int NH, int KVH, int HS);

/* SwiGLU: out = silu(gate) * up, elementwise over n values. */
void nx_swiglu_forward(float *out, const float *gate, const float *up, long n);
/* dgate, dup are written. */
void nx_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, long n);

/* y[i] = exp((x[i] − shift) · scale) for i < n; returns Σ y in double.
 * AVX2 polynomial (max relative error ≈ 2e-7, like expf) with a scalar
 * fallback; nx_ref_exp_sum is the expf loop it is tested against. Inputs
 * with (x − shift)·scale below −87 give 0. */
double nx_exp_sum(float *y, const float *x, float shift, float scale, long n);
double nx_ref_exp_sum(float *y, const float *x, float shift, float scale, long n);

/* y += x, elementwise. */
void nx_add_inplace(float *y, const float *x, long n);

/* ---- naive references (double accumulation, no BLAS, no threads) ---- */
void nx_ref_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C,
                            float eps);
void nx_ref_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in,
                             const float *w, const float *rstd, int N, int C);
void nx_ref_linear_forward(float *out, const float *in, const float *W, const float *b, int N,
                           int IC, int OC);
void nx_ref_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                            const float *W, int N, int IC, int OC);
void nx_ref_rope_forward(float *x, const int32_t *pos, int N, int H, int HS, double theta);
void nx_ref_attention_forward(float *out, const float *q, const float *k, const float *v, int B,
                              int T, int NH, int KVH, int HS);
void nx_ref_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, int B, int T, int NH, int KVH,
                               int HS);
void nx_ref_swiglu_forward(float *out, const float *gate, const float *up, long n);

#endif
