/* model.h — Llama-family decoder-only transformers (llama, qwen2, mistral).
 *
 * Layout follows llm.c: all parameters live in one f32 buffer; nx_weights
 * is a struct of named pointers into such a buffer, so the same binding
 * serves parameters, gradients and optimiser moments. Names and shapes are
 * Hugging Face's (weight matrices stored (out, in), row-major), listed once
 * by nx_model_params() so that I/O, optimisers and tests walk one table.
 *
 * Forward and backward for a batch (B, T) of token ids, with activations in
 * an nx_acts buffer planned for the largest B×T up front. */
#ifndef NEXUS_MODEL_H
#define NEXUS_MODEL_H

#include "nexus/core.h"

typedef enum nx_arch { NX_ARCH_LLAMA, NX_ARCH_QWEN2, NX_ARCH_MISTRAL, NX_ARCH_COUNT } nx_arch;

/* The one table of architecture names: Hugging Face's model_type
 * ("llama", "qwen2", "mistral") and its architectures[] class name
 * ("LlamaForCausalLM", ...). nx_arch_parse returns NX_ERR for a model_type
 * nexus cannot run; nx_arch_list gives "llama, qwen2, mistral" for messages. */
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
    bool tied;        /* tie_word_embeddings: lm_head shares embed_tokens */
    bool qkv_bias;    /* q/k/v projections have a bias (qwen2 always; llama attention_bias) */
    bool o_bias;      /* o_proj has a bias (llama attention_bias) */
    int bos_id, eos_id; /* -1 when absent */
    nx_dtype dtype;   /* dtype the config names (torch_dtype / dtype), for saving */
} nx_model_config;

/* Named pointers into one parameter-shaped buffer. Shapes in comments. */
typedef struct nx_layer_weights {
    float *ln1;      /* (C)            input_layernorm.weight */
    float *wq, *bq;  /* (NH*HS, C), (NH*HS)   self_attn.q_proj */
    float *wk, *bk;  /* (KVH*HS, C), (KVH*HS) self_attn.k_proj */
    float *wv, *bv;  /* (KVH*HS, C), (KVH*HS) self_attn.v_proj */
    float *wo, *bo;  /* (C, NH*HS), (C)       self_attn.o_proj */
    float *ln2;      /* (C)            post_attention_layernorm.weight */
    float *wg;       /* (F, C)         mlp.gate_proj.weight */
    float *wu;       /* (F, C)         mlp.up_proj.weight */
    float *wd;       /* (C, F)         mlp.down_proj.weight */
} nx_layer_weights;

typedef struct nx_weights {
    float *wte;               /* (V, C) model.embed_tokens.weight */
    nx_layer_weights *layer;  /* [L] */
    float *lnf;               /* (C) model.norm.weight */
    float *head;              /* (V, C) lm_head.weight; == wte when tied */
} nx_weights;

/* One row of the parameter table. */
typedef struct nx_param {
    char name[96];        /* Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight" */
    int ndim;
    int64_t shape[2];
    size_t offset;        /* in floats, into the parameter buffer */
    size_t numel;
} nx_param;

/* Fills tab (when not NULL) with the parameters of cfg, in HF order, and
 * returns how many there are. Tied heads have no lm_head row. */
int nx_model_params(const nx_model_config *cfg, nx_param *tab);
size_t nx_model_numel(const nx_model_config *cfg);   /* floats of the buffer, with alignment padding */
size_t nx_model_count(const nx_model_config *cfg);   /* parameters: the sum of the tensors' sizes */
/* Binds w (whose layer array must hold cfg->L entries) to buffer base. */
void nx_weights_bind(nx_weights *w, const nx_model_config *cfg, float *base);
/* Checks a config for internal consistency (positive sizes, NH % KVH, ...). */
int nx_model_config_check(const nx_model_config *cfg, nx_err *err);

typedef struct nx_model {
    nx_model_config cfg;
    float *params;        /* nparams + nextra floats, 64-byte aligned, owned; NULL when held in bf16 */
    size_t nparams;       /* the model's own: nx_model_numel(cfg) */
    size_t nextra;        /* room after them for a trainer's own parameters (see nx_model_reserve) */
    nx_weights w;         /* bound to params (unbound when held in bf16) */
    nx_layer_weights *layer_store;
    /* A model held in bf16 (a teacher, forward only): params16 has the
     * nparams values in the f32 layout's order; the forward widens one
     * layer, or the final norm and head, at a time into stage. */
    uint16_t *params16;
    float *stage;
} nx_model;

/* Where the parts of the flat parameter layout start, in floats. Layer l
 * starts at layer0 + l * layer_span and is laid out as layer 0 is (see
 * nx_layer_bind). head == wte (0) when tied. */
typedef struct nx_layout {
    size_t layer0, layer_span, lnf, head;
} nx_layout;
nx_layout nx_model_layout(const nx_model_config *cfg);
/* Binds one layer's weights to a buffer holding that layer alone. */
void nx_layer_bind(nx_layer_weights *lw, const nx_model_config *cfg, float *base);

/* Allocates a model of this shape with zeroed parameters. */
int nx_model_init(nx_model *m, const nx_model_config *cfg, nx_err *err);
/* The same, held in bf16 (half the memory; forward only, computed in f32
 * on weights widened exactly from bf16). */
int nx_model_init_bf16(nx_model *m, const nx_model_config *cfg, nx_err *err);
/* Bytes of weights a model of this shape holds as hold (NX_F32 or NX_BF16,
 * the latter with its staging buffer). */
size_t nx_model_bytes(const nx_model_config *cfg, nx_dtype hold);
/* n parameter values from offset off as f32, whichever way m is held. */
void nx_model_read(const nx_model *m, size_t off, size_t n, float *dst);
/* Random init as transformers does: normal(0, std) for matrices and
 * embeddings, ones for norms, zeros for biases. */
void nx_model_init_random(nx_model *m, float std, nx_rng *rng);
void nx_model_free(nx_model *m);
/* Grows the parameter buffer to hold `extra` zeroed floats after the model's
 * own (keeping them and rebinding m->w) and returns the first of them.
 * A trainer keeps parameters of its own there (hidden-state projections) so
 * that one optimiser, one clip and one checkpoint cover all that trains;
 * nothing that reads or writes the model itself looks past nparams. */
float *nx_model_reserve(nx_model *m, size_t extra);

/* ---- forward / backward ------------------------------------------------ */

/* Activations for batches of up to B × T tokens, planned once. With
 * NX_ACTS_TRAIN every layer keeps what its backward needs and backward
 * scratch is planned too; without, layers share one set of buffers
 * (inference). NX_ACTS_KEEP_PROBS keeps every layer's attention maps in
 * inference too (a teacher for attention transfer). */
enum { NX_ACTS_INFER = 0, NX_ACTS_TRAIN = 1, NX_ACTS_KEEP_PROBS = 2 };

typedef struct nx_acts {
    int B, T;               /* capacity */
    bool train, keep_probs;
    int cur_B, cur_T;       /* shape of the last forward */
    nx_arena arena;
    float *rope_cos, *rope_sin; /* (T, HS/2) */
    int32_t *pos;           /* (B*T) positions 0..T-1 per row */
    int32_t *ids;           /* (B*T) copy of the last input */
    float *res;             /* (L+1, N, C) residual stream: res[0] embeddings, res[l+1] layer l out */
    /* per layer when training (stride lstride_*), shared otherwise */
    float *ln1, *rstd1, *q, *k, *v, *probs, *att, *mid, *ln2, *rstd2, *gate, *up, *h;
    float *lnf, *rstdf;     /* (N, C), (N) after the final norm */
    float *logits;          /* (N, V) */
    /* backward scratch (train only) */
    float *dres, *dln, *datt, *dq, *dk, *dv, *dprobs, *dh, *dgate, *dup, *dlnf;
    float *dlogits;         /* (N, V): the loss writes here, backward reads it */
} nx_acts;

/* mode: NX_ACTS_* flags */
int nx_acts_init(nx_acts *a, const nx_model_config *cfg, int B, int T, unsigned mode, nx_err *err);
/* Bytes nx_acts_init would allocate (the same plan, counted, nothing allocated). */
size_t nx_acts_bytes(const nx_model_config *cfg, int B, int T, unsigned mode);
void nx_acts_free(nx_acts *a);

/* Hidden state i as Hugging Face reports it (output_hidden_states):
 * i = 0 embeddings, 1..L−1 layer outputs, L the last layer's output after
 * the final norm. (N, C) for the last forward. */
const float *nx_acts_hidden(const nx_acts *a, const nx_model_config *cfg, int i);
/* Attention probabilities of layer l in the last forward, (cur_B, NH,
 * cur_T, cur_T) with zeros above the diagonal. Needs TRAIN or KEEP_PROBS. */
const float *nx_acts_probs(const nx_acts *a, const nx_model_config *cfg, int l);

/* Forward B×T token ids (B ≤ a->B, T ≤ a->T; ids < V asserted) to
 * a->logits. With logits false the LM head is skipped (hidden states only). */
void nx_model_forward(const nx_model *m, nx_acts *a, const int32_t *ids, int B, int T, bool logits);

/* Backward of the last forward from a->dlogits, ADDING into grads (a
 * parameter-shaped buffer, see nx_weights_bind). dhidden, when not NULL,
 * holds (L+1, N, C) extra gradients w.r.t. res[0..L] (hidden-state losses);
 * dprobs, when not NULL, L pointers (each NULL or (B, NH, T, T)) of extra
 * gradients w.r.t. the attention maps (attention transfer). */
void nx_model_backward(const nx_model *m, nx_acts *a, float *grads, const float *dhidden,
                       float *const *dprobs);

#endif
