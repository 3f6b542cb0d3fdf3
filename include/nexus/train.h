/* train.h — one optimisation step of distillation (or plain language-model
 * training when there is no teacher), with everything it needs planned up
 * front: student activations and gradients, teacher activations, AdamW
 * state. Nothing is allocated inside nx_trainer_step.
 *
 * A step takes accum micro-batches of B × T inputs with their next-token
 * targets (from the data loader: windows of T + 1 tokens). It runs the teacher forward without gradients, the
 * student forward and backward on
 *     loss = alpha · kd(student, teacher; temp) + (1 − alpha) · ce
 * (kd is forward KL, reverse KL or JSD, each scaled by temp²), plus an
 * optional hidden-state loss on mapped layers, averages
 * gradients over micro-batches, clips the global norm and applies AdamW at
 * the scheduled learning rate. */
#ifndef NEXUS_TRAIN_H
#define NEXUS_TRAIN_H

#include "nexus/loss.h"
#include "nexus/model.h"
#include "nexus/optim.h"

typedef struct nx_train_opts {
    int B, T, accum;            /* micro-batch rows, sequence length, micro-batches per step */
    float alpha, temp;          /* KD weight, temperature (alpha ignored without a teacher) */
    nx_kd_kind kd;
    float lr, min_lr, beta1, beta2, eps, weight_decay, clip;
    nx_sched sched;
    int64_t warmup, total_steps;
    /* Hidden-state loss: hidden_weight × mean over the pairs of the mean
     * squared difference between the output of student layer hidden_pairs[i][0]
     * and of teacher layer hidden_pairs[i][1] (equal widths). 0: off. */
    float hidden_weight;
    int n_hidden_pairs;
    const int (*hidden_pairs)[2];
} nx_train_opts;

typedef struct nx_step_stats {
    int64_t step;               /* index of this step (0-based) */
    double loss, ce, kd, hidden; /* means over the step's micro-batches (hidden: unweighted) */
    double grad_norm;           /* before clipping */
    float lr;
    int64_t tokens;             /* tokens this step trained on */
    char bad_tensor[96];        /* on a non-finite loss: the first gradient that went bad */
} nx_step_stats;

typedef struct nx_trainer {
    nx_train_opts o;
    nx_model *student;
    const nx_model *teacher;    /* NULL: no distillation (nexus train) */
    nx_acts sa, ta;
    float *grads;               /* student-parameter-shaped */
    float *dhidden;             /* (L+1, B*T, C) gradients of the hidden loss, or NULL */
    nx_adamw opt;
    int64_t step;               /* steps done */
} nx_trainer;

/* The student and teacher must outlive the trainer; teacher may be NULL.
 * Fails (with a message) when shapes disagree: vocabulary, T beyond
 * max_position_embeddings, or memory cannot be had. */
int nx_trainer_init(nx_trainer *tr, nx_model *student, const nx_model *teacher,
                    const nx_train_opts *o, nx_err *err);
void nx_trainer_free(nx_trainer *tr);

/* One step on accum × B × T inputs and targets (target −1: position left
 * out). Returns NX_ERR without updating anything when the loss or the
 * gradient is not finite (st->bad_tensor names where it shows first). */
int nx_trainer_step(nx_trainer *tr, const int32_t *inputs, const int32_t *targets,
                    nx_step_stats *st);

/* Is every value finite? For the NaN guard: on failure names the first
 * parameter (HF name) holding a non-finite value in name (may be NULL). */
bool nx_params_finite(const nx_model_config *cfg, const float *buf, char *name, size_t name_len);

#endif
