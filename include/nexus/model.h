/* model.h — Llama-family decoder-only transformers (llama, qwen2, qwen3, mistral):
 * the parameter table, models held in any weight type on any backend, and
 * the one forward that training, evaluation, prefill and decode share.
 *
 * Parameters. A model's tensors live in one buffer on its backend, laid
 * out by one table (nx_model_params): Hugging Face names and shapes, each
 * tensor's type and byte offset. Matrices take the model's weight type
 * (f32 for a model that trains; bf16 or f16 for a teacher or for
 * inference; block types once the quantizer adds them); norms and biases
 * are always f32. q/k/v projections are stored back to back, as are
 * gate/up, so that each group is one matrix (nx_weight) read once per
 * forward; their biases likewise. The same table laid out in f32 shapes
 * gradients and optimiser moments, so nx_weights_bind gives named views
 * into any of them (llm.c style).
 *
 * The forward runs a batch of rows described by spans (ops.h): training
 * and evaluation are B sequences of T tokens from position 0, attending
 * among themselves; inference appends rows to sequences held in a KV cache
 * (a prefill chunk, one decode row per sequence, or both at once), so a
 * cache is one more input of the same code. Activations are planned once
 * for the largest batch (nx_acts). */
#ifndef NEXUS_MODEL_H
#define NEXUS_MODEL_H

#include "nexus/backend.h"
#include "nexus/ops.h"

typedef enum nx_arch { NX_ARCH_LLAMA, NX_ARCH_QWEN2, NX_ARCH_MISTRAL, NX_ARCH_QWEN3, NX_ARCH_COUNT } nx_arch;

/* The one table of architecture names: Hugging Face's model_type
 * ("llama", "qwen2", "mistral", "qwen3") and its architectures[] class name
 * ("LlamaForCausalLM", ...). nx_arch_parse returns NX_ERR for a model_type
 * nexus cannot run; nx_arch_list gives "llama, qwen2, qwen3, mistral" for messages. */
const char *nx_arch_name(nx_arch a);
const char *nx_arch_class(nx_arch a);
int nx_arch_parse(const char *model_type, nx_arch *out);
const char *nx_arch_list(void);

typedef struct nx_model_config {
    nx_arch arch;
    int V;            /* vocab_size */
    int C;            /* hidden_size */
    int L;            /* num_hidden_layers */
    int NH;           /* num_attention_heads */
    int KVH;          /* num_key_value_heads (NH % KVH == 0) */
    int HS;           /* head_dim (default C / NH) */
    int F;            /* intermediate_size */
    int max_pos;      /* max_position_embeddings */
    float eps;        /* rms_norm_eps */
    float rope_theta; /* rope_theta or rope_parameters.rope_theta */
    nx_rope_scaling rope; /* rope_parameters / rope_scaling beyond theta (zeroed: none) */
    int window;       /* sliding_window of the layers that slide, 0: none */
    int window_from;  /* the first layer that slides: layers window_from .. L−1 do */
    bool qk_norm;     /* qwen3: RMSNorm of each head of q and k (q_norm, k_norm) before RoPE */
    bool tied;        /* tie_word_embeddings: lm_head shares embed_tokens */
    bool qkv_bias;    /* q/k/v projections have a bias (qwen2 always; llama attention_bias) */
    bool o_bias;      /* o_proj has a bias (llama attention_bias) */
    int bos_id, eos_id; /* -1 when absent */
    nx_dtype dtype;   /* dtype the config names (torch_dtype / dtype), for saving */
} nx_model_config;

/* Named views into one parameter-shaped buffer. Shapes in comments;
 * Q = NH·HS, KV = KVH·HS. */
typedef struct nx_layer_weights {
    float *ln1;      /* (C)          input_layernorm.weight */
    nx_weight qkv;   /* (Q+2KV, C)   self_attn.{q,k,v}_proj.weight, stacked by rows */
    float *bqkv;     /* (Q+2KV)      their biases, or NULL */
    float *qn, *kn;  /* (HS), (HS)  self_attn.{q,k}_norm.weight (qk_norm), or NULL */
    nx_weight o;     /* (C, Q)       self_attn.o_proj.weight */
    float *bo;       /* (C)          self_attn.o_proj.bias, or NULL */
    float *ln2;      /* (C)          post_attention_layernorm.weight */
    nx_weight gu;    /* (2F, C)      mlp.{gate,up}_proj.weight, stacked by rows */
    nx_weight down;  /* (C, F)       mlp.down_proj.weight */
} nx_layer_weights;

typedef struct nx_weights {
    nx_weight wte;            /* (V, C) model.embed_tokens.weight */
    nx_layer_weights *layer;  /* [L] */
    float *lnf;               /* (C) model.norm.weight */
    nx_weight head;           /* (V, C) lm_head.weight; the embeddings when tied */
} nx_weights;

/* One row of the parameter table. */
typedef struct nx_param {
    char name[96];        /* Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight" */
    int ndim;
    int64_t shape[2];
    nx_dtype type;        /* the matrices' weight type, or F32 (norms, biases) */
    size_t off;           /* bytes into the buffer */
    size_t nbytes;
    size_t numel;
} nx_param;

/* Fills tab (when not NULL) with the tensors of cfg with matrices of type
 * wtype, in Hugging Face order, and returns how many there are. Tied heads
 * have no lm_head row. */
int nx_model_params(const nx_model_config *cfg, nx_dtype wtype, nx_param *tab);
/* Bytes of the buffer that holds them (groups 64-byte aligned). */
size_t nx_model_size(const nx_model_config *cfg, nx_dtype wtype);

/* Matrix groups: the units in which matrices take a type (a quantized
 * model mixes them: sensitive groups kept wider, a Q4_K group whose rows
 * do not hold whole super-blocks in a 32-block type). q/k/v and gate/up
 * are stacked and share one. Group 0 is the embeddings, 1 + 4l + k the
 * k-th matrix of layer l (NX_GROUP_*), 4L + 1 the head (the embeddings'
 * own when tied). act and act_scale are the 8-bit kernels' input scaling
 * (nx_weight). */
enum { NX_GROUP_QKV, NX_GROUP_O, NX_GROUP_GU, NX_GROUP_DOWN };
typedef struct nx_group_type {
    nx_dtype type;
    nx_act_quant act;
    float act_scale;
} nx_group_type;
int nx_model_ngroups(const nx_model_config *cfg);
/* The group of tensor `name` (a Hugging Face matrix name), or −1 for
 * tensors that are not matrices (norms, biases) or unknown names. */
int nx_model_group(const nx_model_config *cfg, const char *name);
/* Rows and columns of group g's matrix (stacked groups as one). */
void nx_model_group_shape(const nx_model_config *cfg, int g, int *rows, int *cols);
/* nx_model_params / nx_model_size with each group's type from gt[ngroups]. */
int nx_model_params_typed(const nx_model_config *cfg, const nx_group_type *gt, nx_param *tab);
size_t nx_model_size_typed(const nx_model_config *cfg, const nx_group_type *gt);
size_t nx_model_numel(const nx_model_config *cfg);   /* floats of the f32 buffer, padding included */
size_t nx_model_count(const nx_model_config *cfg);   /* parameters: the sum of the tensors' sizes */
/* Binds w (whose layer array must hold cfg->L entries) to a buffer laid out
 * for weight type wtype on backend be. */
void nx_weights_bind(nx_weights *w, const nx_model_config *cfg, nx_dtype wtype, nx_backend *be, void *base);
/* f32 view of tensor p in a buffer laid out in f32. */
static inline float *nx_param_f32(const nx_param *p, void *base) { return (float *)((char *)base + p->off); }
/* The attention window of layer l (ops.h), 0 for full attention. */
static inline int nx_layer_window(const nx_model_config *c, int l) {
    return c->window > 0 && l >= c->window_from ? c->window : 0;
}
/* Checks a config for internal consistency (positive sizes, NH % KVH, ...)
 * and that its sizes can be held: at most NX_MAX_LAYERS layers, row counts
 * that fit an int, parameters countable in 64 bits (2^46). */
#define NX_MAX_LAYERS 4096
int nx_model_config_check(const nx_model_config *cfg, nx_err *err);

typedef struct nx_model {
    nx_model_config cfg;
    nx_backend *be;
    nx_dtype wtype;       /* type of the matrices (with groups: of layer 0's gate/up) */
    nx_group_type *groups; /* [ngroups] each group's type, or NULL: all wtype */
    void *data;           /* every tensor, on be, laid out by tab */
    size_t nbytes;
    float *params;        /* == data when the model trains (wtype F32), else NULL */
    size_t nparams;       /* floats of the model's own tensors (F32 only, else 0) */
    size_t nextra;        /* room after them for a trainer's own parameters (nx_model_reserve) */
    nx_param *tab;        /* the parameter table */
    int ntab;
    nx_weights w;
    nx_layer_weights *layer_store;
} nx_model;

/* Allocates a model of this shape on be with matrices of type wtype (which
 * the backend must support) and zeroed tensors. */
int nx_model_init_on(nx_model *m, const nx_model_config *cfg, nx_dtype wtype, nx_backend *be, nx_err *err);
/* The same with each matrix group's type from gt[nx_model_ngroups] (every
 * type must be one the backend supports, and each group's rows a whole
 * number of its blocks). Only an all-f32 model made by nx_model_init_on
 * trains (m->params). */
int nx_model_init_typed(nx_model *m, const nx_model_config *cfg, const nx_group_type *gt, nx_backend *be,
                        nx_err *err);
/* The type of group g. */
nx_group_type nx_model_group_type(const nx_model *m, int g);
/* The same in f32 on the CPU backend: a model that can train. */
int nx_model_init(nx_model *m, const nx_model_config *cfg, nx_err *err);
/* Bytes a model of this shape takes on a backend when its matrices are of
 * type wtype, with the workspace a non-f32 matrix needs to be widened. */
size_t nx_model_bytes(const nx_model_config *cfg, nx_dtype wtype);
/* Index of the tensor called name, or −1. */
int nx_model_find(const nx_model *m, const char *name);
/* Tensor i from host data of type st (converted to the tensor's type:
 * copied when equal, else widened to f32 and rounded to nearest even). */
void nx_model_set(nx_model *m, int i, const void *src, nx_dtype st);
/* Tensor i widened to f32 into host memory (numel floats). */
void nx_model_get(const nx_model *m, int i, float *dst);
/* Random init as transformers does: normal(0, std) for matrices and
 * embeddings, ones for norms, zeros for biases (f32 models). */
void nx_model_init_random(nx_model *m, float std, nx_rng *rng);
/* The same distribution drawn on every core: each tensor's chunks of 2^20
 * values from their own generator (seeded from seed, the tensor and the
 * chunk), so the weights depend on seed alone, not on the threads — but
 * are not nx_model_init_random's draws. For large random models (a
 * stand-in teacher of billions of parameters). */
void nx_model_init_random_parallel(nx_model *m, float std, uint64_t seed);
void nx_model_free(nx_model *m);
/* Grows the parameter buffer of an f32 model to hold `extra` zeroed floats
 * after the model's own (keeping them and rebinding m->w) and returns the
 * first of them, or NULL (err set) when memory cannot be had. A trainer
 * keeps parameters of its own there (hidden-state projections) so that one
 * optimiser, one clip and one checkpoint cover all that trains; nothing
 * that reads or writes the model itself looks past nparams. */
float *nx_model_reserve(nx_model *m, size_t extra, nx_err *err);
/* Points the matrices of an f32 model (its products' weights) at their
 * bf16 copy in p16, a buffer parallel to m->params element for element
 * (nx_weight.bf16); NULL unbinds them. */
void nx_model_bind_bf16(nx_model *m, const void *p16);

/* ---- KV cache ----------------------------------------------------------------
 * Keys (after RoPE) and values of S sequences of up to T positions, per
 * layer: (L, S, T, KVH·HS) each, on the model's backend. The cache holds
 * no lengths: whoever appends rows (spans) knows where each sequence is. */
typedef struct nx_kv_cache {
    int L, S, T, D;       /* layers, sequences, positions, KVH·HS */
    float *k, *v;
    nx_arena arena;
} nx_kv_cache;

int nx_kv_cache_init(nx_kv_cache *c, const nx_model *m, int S, int T, nx_err *err);
size_t nx_kv_cache_bytes(const nx_model_config *cfg, int S, int T);
void nx_kv_cache_free(nx_kv_cache *c);
nx_kv nx_kv_cache_layer(const nx_kv_cache *c, int l);

/* ---- activations -----------------------------------------------------------
 * Activations for batches of up to B × T rows, planned once. With
 * NX_ACTS_TRAIN every layer keeps what its backward needs and backward
 * scratch is planned too; without, layers share one set of buffers.
 * NX_ACTS_KEEP_PROBS keeps every layer's attention maps (a teacher for
 * attention transfer). Every layer's output (the hidden states) is kept
 * unless NX_ACTS_STREAM (generation: two residual buffers in turn).
 * NX_ACTS_FLASH (without NX_ACTS_KEEP_PROBS): attention through
 * nx_attention_lse (only where it fits), which rotates q and k as it reads
 * them and writes its output in the activation type; with NX_ACTS_TRAIN
 * the backward recomputes the maps from each row's log-sum-exp, which is
 * all that is kept of them.
 * NX_ACTS_RECOMPUTE with NX_ACTS_TRAIN (and without NX_ACTS_KEEP_PROBS):
 * the forward keeps only each layer's input (the residual stream); the
 * backward recomputes a layer's activations from it just before that
 * layer's backward, into one shared set (activation recomputation: the
 * same gradients, bit for bit, for about one more forward).
 * The matrix products' inputs (ln1, ln2, h) are held in the backend's
 * nx_backend_act_type (nx_acts.at: bf16 on CUDA in bf16 precision), unless
 * NX_ACTS_F32 (calibration reads them as f32 floats); a memory plan, which
 * has no backend, passes NX_ACTS_BF16 to nx_acts_bytes to count them so.
 * NX_ACTS_LOGITS_AT: the logits in that type too (nx_acts.lt), where the
 * head's weights are f32 or bf16: a trainer's teacher and student, whose
 * logits only nx_distill_loss reads (autocast writes both in bf16). */
enum {
    NX_ACTS_INFER = 0, NX_ACTS_TRAIN = 1, NX_ACTS_KEEP_PROBS = 2, NX_ACTS_STREAM = 4, NX_ACTS_FLASH = 8,
    NX_ACTS_RECOMPUTE = 16, NX_ACTS_BF16 = 32, NX_ACTS_F32 = 64, NX_ACTS_LOGITS_AT = 128
};

typedef struct nx_acts {
    nx_backend *be;
    int rows, ctx;          /* capacity: rows per forward, positions */
    int out_rows;           /* rows of the final norm and logits */
    int B, T;               /* training shape (rows = B·T) */
    bool train, keep_probs, stream, flash, recompute;
    int cur_B, cur_T, cur_N; /* shape of the last forward (cur_B, cur_T for B×T forwards) */
    nx_arena arena;         /* on be */
    float *rope_cos, *rope_sin; /* (ctx, HS/2) */
    int32_t *pos, *ids;     /* (rows) positions and ids of the last forward */
    int32_t *pos_host;      /* (rows) host staging for pos */
    nx_span *spans_host;    /* (B) host: the spans of a B × T forward */
    float *res;             /* (L+1, rows, C) residual stream (2 buffers with STREAM) */
    /* per layer when training (stride per layer), shared otherwise; ln1,
     * ln2 and h (the products' inputs) and gu of type at, and with flash
     * att and (without qk_norm or a q/k/v bias) qkv too (f32 otherwise) */
    nx_dtype at;
    void *ln1, *ln2, *h, *gu;
    float *rstd1, *qkv, *probs, *att, *mid, *rstd2;
    float *lse;             /* (L, B, NH, T) with flash: the rows' log-sum-exp instead of probs */
    float *qraw, *kraw, *rstdq, *rstdk; /* qk_norm: q (rows, Q) and k (rows, KV) before their norms, (rows·NH), (rows·KVH) */
    float *last;            /* (rows, C) the rows whose logits are wanted (NX_OUT_LAST) */
    float *lnf, *rstdf;     /* (out_rows, C), (out_rows) after the final norm */
    float *logits;          /* (out_rows, V) of type lt */
    nx_dtype lt;            /* NX_F32 unless NX_ACTS_LOGITS_AT */
    /* backward scratch (train only); dh, dgu and dlogits of type at, datt
     * and dqkv of att's and qkv's types (the products' gradients as they
     * read and write them); dres_at: with at other than f32, the residual
     * gradient dres (f32) in type at, as the next products read it */
    float *dres, *dln, *datt, *dqkv, *dprobs, *dlnf;
    void *dh, *dgu, *dres_at;
    float *dqk, *dqk2;      /* qk_norm: (rows, Q) each */
    void *dlogits;          /* (rows, V): the loss writes here, backward reads it */
} nx_acts;

/* Activations of m for B sequences of T tokens (mode: NX_ACTS_* flags). */
int nx_acts_init(nx_acts *a, const nx_model *m, int B, int T, unsigned mode, nx_err *err);
/* Activations for forwards of up to rows rows at positions below ctx over
 * a KV cache, with logits for up to out_rows of them (inference; mode
 * NX_ACTS_INFER or NX_ACTS_STREAM). */
int nx_acts_init_rows(nx_acts *a, const nx_model *m, int rows, int out_rows, int ctx, unsigned mode,
                      nx_err *err);
/* Bytes nx_acts_init would allocate (the same plan, counted, nothing allocated);
 * SIZE_MAX when B × T or the sizes are too large to count (nx_acts_init refuses those). */
size_t nx_acts_bytes(const nx_model_config *cfg, int B, int T, unsigned mode);
void nx_acts_free(nx_acts *a);

/* Hidden state i of the last forward as Hugging Face reports it
 * (output_hidden_states): i = 0 embeddings, 1..L−1 layer outputs, L the
 * last layer's output after the final norm; (cur_N, C), backend memory. */
const float *nx_acts_hidden(const nx_acts *a, const nx_model_config *cfg, int i);
/* Attention probabilities of layer l in the last forward, (cur_B, NH,
 * cur_T, cur_T) with zeros above the diagonal. Needs TRAIN or KEEP_PROBS. */
const float *nx_acts_probs(const nx_acts *a, const nx_model_config *cfg, int l);

/* ---- forward / backward ----------------------------------------------------- */

/* What a forward produces besides the cache and hidden states. */
typedef enum nx_out {
    NX_OUT_NONE,    /* nothing after the last layer */
    NX_OUT_HIDDEN,  /* the final norm of every row (hidden state L), no logits */
    NX_OUT_ALL,     /* logits of every row: (N, V) */
    NX_OUT_LAST,    /* logits of each span's last row: (nspans, V) in span order */
} nx_out;

typedef struct nx_batch {
    int N;                  /* rows */
    const int32_t *ids;     /* (N) host, each < V (asserted) */
    const nx_span *spans;   /* host, in row order, lengths summing to N */
    int nspans;
    nx_kv_cache *kv;        /* NULL: spans are {b, 0, T} and attend among themselves */
    nx_out out;
} nx_batch;

/* The one forward. With a cache the rows' keys and values are stored at
 * their positions first, and every row attends to its sequence's cache;
 * without, B = nspans sequences of T = spans[0].len tokens attend among
 * themselves (training, evaluation). Logits land in a->logits. */
void nx_model_run(const nx_model *m, nx_acts *a, const nx_batch *b);
/* nx_model_run in its two halves: the host's part (checks, and the ids,
 * positions and span tables put in device memory), then the ops alone —
 * a fixed sequence for batches of one shape, which nx_backend_replay can
 * record and replay (a decode step). */
void nx_model_prepare(const nx_model *m, nx_acts *a, const nx_batch *b);
void nx_model_compute(const nx_model *m, nx_acts *a, const nx_batch *b);
/* B × T token ids (host) from position 0, without a cache: the forward of
 * training and evaluation. With logits false the LM head is skipped
 * (hidden states only). */
void nx_model_forward(const nx_model *m, nx_acts *a, const int32_t *ids, int B, int T, bool logits);

/* Backward of the last B × T forward from a->dlogits into grads (an f32
 * parameter-shaped buffer on the model's backend, see nx_weights_bind):
 * NX_GRAD_ADD adds into it; NX_GRAD_WRITE writes all of it (the products'
 * dW with beta 0, the rest zeroed first), where it holds no earlier sum,
 * as a step's first micro-batch: the same values as adding into zeros,
 * without zeroing and reading back the whole buffer. dhidden, when not NULL, holds (L+1, N, C) extra gradients w.r.t.
 * res[0..L] (hidden-state losses); dprobs, when not NULL, L pointers (each
 * NULL or (B, NH, T, T)) of extra gradients w.r.t. the attention maps
 * (attention transfer). */
void nx_model_backward(const nx_model *m, nx_acts *a, float *grads, nx_grad_mode gm, const float *dhidden,
                       float *const *dprobs);

#endif
