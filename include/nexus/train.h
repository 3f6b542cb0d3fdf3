/* train.h — one optimisation step of distillation (or plain language-model
 * training when there is no teacher), with everything it needs planned up
 * front: student activations and gradients, teacher activations, AdamW
 * state. Nothing is allocated inside nx_trainer_step.
 *
 * A step takes accum micro-batches of B × T inputs with their next-token
 * targets (from the data loader: windows of T + 1 tokens). It runs the teacher forward without gradients, the
 * student forward and backward on
 *     loss = alpha · kd(student, teacher; temp) + (1 − alpha) · ce
 * (kd is forward KL, reverse KL or JSD, each scaled by temp²), plus
 * optional hidden-state and attention-map losses on mapped layers, averages
 * gradients over micro-batches, clips the global norm and applies AdamW at
 * the scheduled learning rate.
 *
 * Everything runs as ops on the student's backend (the teacher must share
 * it); the host downloads the step's loss terms and gradient norm once, at
 * the end of the step. The update itself checks them (nx_adamw_update's
 * guard), so a non-finite step changes nothing without the backend waiting
 * for the host.
 *
 * A pruned student carries a mask (nx_trainer_set_mask): after every
 * update its pruned weights are set back to zero (nx_mask), so that
 * training heals the weights that remain and the zeros stay. */
#ifndef NEXUS_TRAIN_H
#define NEXUS_TRAIN_H

#include "nexus/model.h"
#include "nexus/optim.h"

typedef struct nx_train_opts {
    int B, T, accum;            /* micro-batch rows, sequence length, micro-batches per step */
    float alpha, temp;          /* KD weight, temperature (alpha ignored without a teacher) */
    nx_kd_kind kd;
    float lr, min_lr, beta1, beta2, eps, weight_decay, clip;
    nx_sched sched;
    int64_t warmup, total_steps;
    /* Layer map for the two losses below: student layer layer_map[i][0]
     * is matched with teacher layer layer_map[i][1]. */
    int n_layer_map;
    const int (*layer_map)[2];
    /* Hidden-state loss: hidden_weight × mean over the pairs of the mean
     * squared difference between the output h_s of the student layer and
     * h_t of the teacher layer. Where the widths differ h_s is first mapped
     * by a learned matrix (C_t × C_s, one per pair, trained with the
     * student, initialised as torch.nn.Linear's weight from proj_seed).
     * 0: off. */
    float hidden_weight;
    uint64_t proj_seed;
    /* Attention transfer: attention_weight × mean over pairs, batch rows,
     * head groups and query positions of KL(A_t ‖ A_s) over key positions,
     * A the softmax attention maps. With equal head counts each head is a
     * group (MiniLM); otherwise each side's maps are averaged over its heads
     * (one group). 0: off. */
    float attention_weight;
    /* Activation recomputation (NX_ACTS_RECOMPUTE): the same gradients for
     * about one more forward, in far less activation memory. Not with
     * attention_weight > 0. */
    bool recompute;
} nx_train_opts;

typedef struct nx_step_stats {
    int64_t step;               /* index of this step (0-based) */
    double loss, ce, kd, hidden, attention; /* means over the step's micro-batches (unweighted terms) */
    double grad_norm;           /* before clipping */
    float lr;
    int64_t tokens;             /* tokens this step trained on */
    char bad_tensor[96];        /* on a non-finite loss: the first gradient that went bad */
} nx_step_stats;

typedef struct nx_trainer {
    nx_train_opts o;
    nx_model *student;
    const nx_model *teacher;    /* NULL: no distillation (nexus train) */
    nx_backend *be;             /* the student's */
    nx_acts sa, ta;
    size_t n_train;             /* trained floats: the student's, then the projections' */
    float *proj;                /* hidden-state projections (student->params + nparams), or NULL */
    float *grads;               /* (n_train) */
    float *dhidden;             /* (L+1, B*T, C) gradients of the hidden loss, or NULL */
    float *py;                  /* (B*T, C_t) projected student states, or NULL */
    float **dprobs;             /* [student L]: attention-map gradients of mapped layers, or NULL */
    int32_t *targets;           /* (B*T) the micro-batch's targets, on the backend */
    double *stats;              /* (nstats) the step's loss terms and Σ g², on the backend */
    double *stats_host;         /* (nstats) */
    int nstats;
    nx_adamw opt;               /* over n_train */
    int64_t step;               /* steps done */
    float *host_state;          /* (3 n_train) host copies for checkpoints; NULL with host memory */
    uint8_t *mask;              /* (n_train) on the backend: 0 = held at zero; NULL: no mask */
    uint8_t *mask_host;         /* (n_train) its host copy, for checkpoints */
    void *p16;                  /* (n_train) bf16 copy of the trained floats, which the student's products
                                   read (nx_weight.bf16), where the activations are bf16; else NULL */
} nx_trainer;

/* What trains, as host memory (n_train floats each): parameters and the
 * AdamW moments, for a checkpoint. With a host-memory backend these are
 * the trainer's own buffers; otherwise copies downloaded by
 * nx_trainer_state. After writing into them (a resume),
 * nx_trainer_state_upload puts them where the trainer works. */
typedef struct nx_train_state {
    float *params, *m, *v;
} nx_train_state;

nx_train_state nx_trainer_state(nx_trainer *tr);
/* Keeps the student's parameters where mask (host, student->nparams bytes
 * in the f32 parameter layout) is 0 at zero from now on: zeroes them now
 * and after every step. The trainer's own parameters (projections) are
 * never masked. Fails when memory cannot be had. */
int nx_trainer_set_mask(nx_trainer *tr, const uint8_t *mask, nx_err *err);
void nx_trainer_state_upload(nx_trainer *tr);

/* The student and teacher must outlive the trainer; teacher may be NULL.
 * With hidden-state projections the student's parameter buffer is grown to
 * carry them (nx_model_reserve). Fails (with a message) when shapes
 * disagree: vocabulary, T beyond max_position_embeddings, a layer map out
 * of range, or memory cannot be had. */
int nx_trainer_init(nx_trainer *tr, nx_model *student, const nx_model *teacher,
                    const nx_train_opts *o, nx_err *err);
void nx_trainer_free(nx_trainer *tr);
/* Bytes nx_trainer_init allocates for the hidden-state and attention
 * losses (projections with their gradients and AdamW moments, loss
 * gradient buffers); 0 without a teacher. For memory estimates. */
size_t nx_trainer_loss_bytes(const nx_model_config *s, const nx_model_config *t, const nx_train_opts *o);
/* Bytes of nx_trainer.p16 where the backend holds activations in bf16 (t
 * may be NULL). */
size_t nx_trainer_bf16_bytes(const nx_model_config *s, const nx_model_config *t, const nx_train_opts *o);

/* One step on accum × B × T inputs and targets (target −1: position left
 * out). Returns NX_ERR without updating anything when the loss or the
 * gradient is not finite (st->bad_tensor names where it shows first). */
int nx_trainer_step(nx_trainer *tr, const int32_t *inputs, const int32_t *targets,
                    nx_step_stats *st);

/* Is every value of an f32 parameter-shaped host buffer finite? For the
 * NaN guard: on failure names the first parameter (HF name) holding a
 * non-finite value in name (may be NULL). */
bool nx_params_finite(const nx_model_config *cfg, const float *buf, char *name, size_t name_len);

#endif
