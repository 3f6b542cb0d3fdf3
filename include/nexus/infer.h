/* infer.h — inference: prefill and KV-cache decode, and token sampling.
 *
 * nx_infer holds everything a generation needs, planned once in one arena:
 * per layer a K and a V cache (B, T, KVH, HS), rotary tables for T
 * positions, and scratch for a prefill chunk of up to P tokens or a decode
 * step of up to B sequences. Nothing is allocated per token.
 *
 * Each sequence b has its own length len[b] (the position its next token
 * takes), so sequences of a batch may hold prompts of different lengths:
 * prefill them one at a time (nx_infer_prefill), then decode them together
 * (nx_infer_decode), each at its own position.
 *
 * Prefill runs a chunk of n tokens as matrices (GEMM through nx_gemm, the
 * kernels of ops.c for RMSNorm/SwiGLU) and attends over the cache, so a
 * prompt longer than P is processed in chunks with the same result. Decode
 * is matrix-vector (nx_matvec / nx_matvec_batch). Where q/k/v (and gate/up)
 * weights lie back to back in the parameter buffer — always, for models
 * without q/k/v biases whose matrices are multiples of 16 floats — they are
 * multiplied as one fused matrix, reading x once. */
#ifndef NEXUS_INFER_H
#define NEXUS_INFER_H

#include "nexus/core.h"
#include "nexus/model.h"

typedef struct nx_infer {
    const nx_model *m;  /* not owned; must outlive the state */
    int B, T, P;        /* sequences, context per sequence, prefill chunk capacity */
    int *len;           /* (B) tokens held per sequence */
    float *kc, *vc;     /* (L, B, T, KVH, HS) caches, after RoPE for K */
    float *rope_cos, *rope_sin; /* (T, HS/2) */
    int R;              /* scratch rows: max(B, P) */
    float *x, *xn, *rstd, *qkv, *att, *gu, *h; /* (R,C) (R,C) (R) (R,Q+2KV) (R,Q) (R,2F) (R,F) */
    int32_t *pos;       /* (R) position of each scratch row */
    float *scores;      /* (threads, P or 1, T) attention scores */
    int nthreads;
    float *logits;      /* (B, V): logits of each sequence's last processed token */
    bool fused_qkv, fused_gu;
    nx_arena arena;
} nx_infer;

/* Plans a state for B sequences of up to T tokens each (T ≤ the model's
 * max_position_embeddings) and prefill chunks of up to P tokens. Fails with
 * a message when the sizes are out of range or memory cannot be had. */
int nx_infer_init(nx_infer *s, const nx_model *m, int B, int T, int P, nx_err *err);
void nx_infer_free(nx_infer *s);
/* Empties every sequence (len = 0); the cache contents need no clearing. */
void nx_infer_reset(nx_infer *s);

/* Appends n ≥ 1 tokens to sequence b (caller ensures len[b] + n ≤ T and ids
 * < V; asserted) and leaves the logits of the last one in s->logits + b·V.
 * Any n is allowed: chunks of P are run in turn. */
void nx_infer_prefill(nx_infer *s, int b, const int32_t *ids, int n);

/* One decode step: appends ids[b] to each sequence b < nb (each len[b] < T,
 * asserted) and writes its next-token logits to s->logits + b·V. */
void nx_infer_decode(nx_infer *s, const int32_t *ids, int nb);

/* Bytes of weights a batch-1 decode step reads (all matrices but the
 * embedding table, of which one row is read, plus norms and biases). */
double nx_infer_bytes_per_token(const nx_model_config *c);

/* ---- sampling ------------------------------------------------------------
 * The order of transformers' generate: repetition penalty on the raw logits
 * (each distinct token of the history once: logit < 0 ? logit·p : logit/p),
 * then, unless greedy, temperature, top-k, top-p and min-p, each filter
 * renormalising over what the previous kept, then one draw from nx_rng.
 * Greedy (temperature 0) is argmax, the lowest id on ties as torch.argmax. */
typedef struct nx_sample_opts {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off; in (0, 1] */
    float min_p;              /* 0: off; in [0, 1) */
    float repetition_penalty; /* 1: off; > 0 */
} nx_sample_opts;

nx_sample_opts nx_sample_defaults(void); /* greedy, all filters off */

typedef struct nx_sampler {
    nx_sample_opts o;
    int V;
    nx_rng rng;
    float *work;      /* (V) */
    int32_t *idx;     /* (V) */
    uint8_t *seen;    /* (V) */
} nx_sampler;

/* Validates o (names the bad option) and plans the sampler's buffers. */
int nx_sampler_init(nx_sampler *s, const nx_sample_opts *o, int V, uint64_t seed, nx_err *err);
void nx_sampler_free(nx_sampler *s);
/* Next token from logits (V), given the ids so far (prompt and generated,
 * for the repetition penalty; may be NULL when nhist is 0). */
int32_t nx_sampler_sample(nx_sampler *s, const float *logits, const int32_t *hist, int nhist);

/* ---- stop strings ---------------------------------------------------------
 * Streaming text with stop strings: given the decoded text so far (len
 * bytes), returns the offset of the earliest complete occurrence of any stop
 * string, or −1. *safe receives how many bytes may be printed now: up to
 * the stop (when found), else short of any tail that could still grow into
 * a stop string, and never inside an incomplete UTF-8 character. */
long nx_stop_scan(const char *text, size_t len, const char *const *stops, int nstops,
                  size_t *safe);

#endif
