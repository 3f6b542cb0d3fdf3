/* prune.h — pruning a model: measuring what its parts do on calibration
 * data, zeroing weights (unstructured and N:M sparsity), and cutting whole
 * heads, channels and layers out of it (a physically smaller model).
 *
 * Calibration. nx_calib runs forwards of the model over calibration
 * batches and keeps, per layer, what the pruners rank by: for the input of
 * each linear (ln1 → q/k/v, attention output → o, ln2 → gate/up, SwiGLU
 * output → down) the sum of squares and the sum of magnitudes of every
 * input channel, each attention head's output norm, and each layer's
 * block influence (1 − cos of its input and output). The activations are
 * downloaded from the model's backend; the sums are host loops over those
 * copies, in double.
 *
 * Unstructured (nx_prune_sparse), over the matrices of the layers (q, k,
 * v, o, gate, up, down; embeddings and head are kept, as Wanda and
 * SparseGPT do):
 *   magnitude  score |W_ij|; the lowest `sparsity` of each matrix
 *              (per-layer) or of all of them together (global);
 *   wanda      score |W_ij| · ‖X_j‖₂ (Sun et al. 2023), ‖X_j‖ the norm of
 *              input channel j over the calibration tokens; the lowest
 *              `sparsity` of each output row;
 *   N:M        either score, keeping the n highest of every m consecutive
 *              weights of a row (2:4, 4:8: semi-structured sparsity).
 * The result is the same model with zeros, and a mask (one byte per float
 * of the f32 parameter buffer: 1 kept, 0 pruned) that training applies
 * after each step (nx_mask) so the zeros stay.
 *
 * Structured (Minitron, Muralidharan et al. 2024): importance by mean
 * activation magnitude on calibration data: an attention head by the norm
 * of its output, a KV group by the sum over its heads, an FFN neuron by
 * |SwiGLU output|, a hidden (embedding) channel by |RMSNorm output| summed
 * over both norms of every layer; a layer by its block influence or by a
 * score the caller measured (perplexity with the layer removed). A plan
 * (nx_prune_plan) lists what is kept; nx_prune_apply copies those weights,
 * unchanged, into a model of the smaller shape. Heads go by whole KV
 * groups (and, optionally, the same number of query heads from each
 * remaining group), so grouped-query attention stays valid. */
#ifndef NEXUS_PRUNE_H
#define NEXUS_PRUNE_H

#include "nexus/model.h"

/* ---- calibration ------------------------------------------------------------ */

typedef struct nx_calib {
    nx_model_config cfg;      /* of the model measured */
    const nx_model *m;
    nx_acts a;                /* B × T training-layout activations: every layer kept */
    int B, T;
    int64_t rows;             /* tokens measured so far */
    /* Σ x² and Σ |x| per input channel of each layer's linears, over the rows */
    double *ln1_sq, *ln1_abs; /* (L, C)  input of q/k/v */
    double *att_sq, *att_abs; /* (L, Q)  input of o, Q = NH·HS */
    double *ln2_sq, *ln2_abs; /* (L, C)  input of gate/up */
    double *h_sq, *h_abs;     /* (L, F)  input of down */
    double *head;             /* (L, NH) Σ over rows of ‖head output‖₂ */
    double *bi;               /* (L)     Σ over rows of 1 − cos(x_l, x_l+1) */
    float *host;              /* download buffer */
} nx_calib;

/* Plans activations for forwards of up to B sequences of T tokens of m
 * (which must outlive the calibration) and zeroed sums. */
int nx_calib_init(nx_calib *c, const nx_model *m, int B, int T, nx_err *err);
/* Runs one forward of b ≤ B sequences of T ids (host, each < V) and adds
 * its activations to the sums. */
void nx_calib_add(nx_calib *c, const int32_t *ids, int b);
void nx_calib_free(nx_calib *c);

/* ---- unstructured ------------------------------------------------------------ */

typedef enum nx_prune_method { NX_PRUNE_MAGNITUDE, NX_PRUNE_WANDA, NX_PRUNE_MINITRON } nx_prune_method;
/* "magnitude", "wanda", "minitron" */
const char *nx_prune_method_name(nx_prune_method m);
int nx_prune_method_parse(const char *s, nx_prune_method *out);

typedef struct nx_sparse_opts {
    nx_prune_method method;   /* magnitude or wanda */
    double sparsity;          /* fraction of the layers' matrices zeroed, [0, 1); ignored with N:M */
    int n, m;                 /* N:M: keep n of every m weights along a row; 0, 0: off */
    bool global;              /* magnitude: one threshold over every matrix (else per matrix) */
} nx_sparse_opts;

typedef struct nx_sparse_stats {
    size_t pruned;            /* weights zeroed */
    size_t prunable;          /* weights of the layers' matrices */
    size_t params;            /* parameters of the whole model */
} nx_sparse_stats;

/* "N:M" (e.g. "2:4") into n and m; errors quote the text. */
int nx_sparse_parse_pattern(const char *s, int *n, int *m, nx_err *err);
/* Checks options against a shape before anything runs: sparsity in
 * [0, 1), 0 < n < m, every matrix's row length a multiple of m, a known
 * method, global only with magnitude. */
int nx_sparse_check(const nx_model_config *cfg, const nx_sparse_opts *o, nx_err *err);
/* Zeroes the chosen weights of m (f32, any backend) and fills mask
 * (m->nparams bytes, the f32 layout: 1 kept, 0 pruned; everything outside
 * the layers' matrices 1). calib is needed by wanda (NULL otherwise) and
 * must come from a model of m's shape. Weights already zero count like
 * any other (ties are broken by position, so the count is exact). */
int nx_prune_sparse(nx_model *m, const nx_calib *calib, const nx_sparse_opts *o, uint8_t *mask,
                    nx_sparse_stats *st, nx_err *err);
/* Sets to zero every parameter of m (f32) whose mask byte is 0 (after
 * loading a pruned model, or a mask from elsewhere); fails only when the
 * backend has no memory for the mask. */
int nx_prune_apply_mask(nx_model *m, const uint8_t *mask, nx_err *err);
/* Is tensor i of a parameter table one of the prunable layer matrices? */
bool nx_prune_is_sparse_target(const nx_param *p);

/* ---- structured ---------------------------------------------------------------- */

/* What each axis keeps; 0: the model's own. Heads: kv_heads KV groups of
 * heads / kv_heads query heads each. */
typedef struct nx_prune_shape {
    int hidden, ffn, heads, kv_heads, layers;
} nx_prune_shape;

enum { NX_AXIS_HIDDEN = 1, NX_AXIS_FFN = 2, NX_AXIS_HEADS = 4, NX_AXIS_LAYERS = 8 };

/* The shape of src pruned to want, into out (src's config with C, F, NH,
 * KVH, L replaced). Errors name the axis: a size above the model's, not
 * positive, heads that GQA cannot keep (heads not a multiple of kv_heads,
 * more query heads per group than the model has, or heads alone that are
 * not a whole number of groups). head_dim stays the model's. */
int nx_prune_shape_resolve(const nx_model_config *src, const nx_prune_shape *want, nx_model_config *out,
                           nx_err *err);
/* The largest shape with at most target parameters that shrinks the named
 * axes (NX_AXIS_* bits) by one common fraction f: each keeps ⌊f · size⌋
 * (hidden and ffn rounded down to a multiple of `multiple`, heads in whole
 * KV groups, at least one of each), f searched in steps of 1/4096. Fails
 * when target is above the model's count or no shape fits. */
int nx_prune_fit(const nx_model_config *src, int64_t target, unsigned axes, int multiple, nx_prune_shape *out,
                 nx_err *err);

/* What a structured prune keeps, by index into the source model, each
 * list ascending. */
typedef struct nx_prune_plan {
    nx_model_config src, dst;
    int *layers;      /* (dst.L) source layers */
    int *hidden;      /* (dst.C) source hidden channels */
    int *groups;      /* (dst.L, dst.KVH) source KV groups of each kept layer */
    int *heads;       /* (dst.L, dst.NH) source query heads, grouped as their KV groups */
    int *ffn;         /* (dst.L, dst.F) source FFN neurons */
} nx_prune_plan;

/* The plan that keeps the most important parts (see the top of this file)
 * for the shape dst (from nx_prune_shape_resolve). layer_score (src L,
 * higher = keep; NULL: block influence from calib) ranks the layers.
 * Importance ties go to the lower index. */
void nx_prune_plan_make(nx_prune_plan *p, const nx_calib *c, const nx_model_config *dst, const double *layer_score);
/* The plan that keeps the given lists (an identity plan of src when all
 * are NULL); for tests and callers with their own ranking. Lists are
 * copied; each must be ascending and in range (asserted). */
void nx_prune_plan_from(nx_prune_plan *p, const nx_model_config *src, const nx_model_config *dst, const int *layers,
                        const int *hidden, const int *groups, const int *heads, const int *ffn);
void nx_prune_plan_free(nx_prune_plan *p);
/* A new f32 model on src's backend holding the kept weights of src
 * unchanged (out is initialised here; free with nx_model_free). */
int nx_prune_apply(const nx_model *src, const nx_prune_plan *p, nx_model *out, nx_err *err);

#endif
