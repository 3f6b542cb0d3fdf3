/* loss.h — training losses over logits (N, V) with fused gradients.
 *
 * targets[n] is the next token for row n, or -1 to leave the row out (the
 * last position of a sequence, padding). Every loss is a mean over the rows
 * that count, so a batch's loss is comparable across sequence lengths.
 * Each function returns the loss value and, when dlogits is not NULL, ADDS
 * weight × ∂loss/∂logits into it — so a mix alpha·kd + (1−alpha)·ce is two
 * calls into one gradient buffer.
 *
 * Distillation losses (PROTOCOLS.md): with p = softmax(logits / temp),
 *   forward KL  = temp² · mean KL(p_teacher ‖ p_student)
 *   reverse KL  = temp² · mean KL(p_student ‖ p_teacher)
 *   JSD         = temp² · mean ½KL(p_t ‖ m) + ½KL(p_s ‖ m), m = (p_t + p_s)/2 */
#ifndef NEXUS_LOSS_H
#define NEXUS_LOSS_H

#include <stdint.h>

typedef enum nx_kd_kind { NX_KD_FORWARD_KL, NX_KD_REVERSE_KL, NX_KD_JSD } nx_kd_kind;

double nx_cross_entropy(float *dlogits, float weight, const float *logits, const int32_t *targets,
                        int N, int V);
double nx_kd_loss(nx_kd_kind kind, float temp, float *dlogits, float weight, const float *student,
                  const float *teacher, const int32_t *targets, int N, int V);

/* Naive references (double throughout). */
double nx_ref_cross_entropy(float *dlogits, float weight, const float *logits,
                            const int32_t *targets, int N, int V);
double nx_ref_kd_loss(nx_kd_kind kind, float temp, float *dlogits, float weight,
                      const float *student, const float *teacher, const int32_t *targets, int N,
                      int V);

#endif
