/* Classification losses of quantization-aware training on the logits, with their gradients:
 *   knowledge distillation (soft labels from a float teacher, temperature T):
 *     p = softmax(teacher / T), log q = log_softmax(student / T),
 *     L = (1/n) sum_i -sum_c p_ic log q_ic,   dL/dz_ic = (q_ic - p_ic) / (T n)
 *   hard labels (T = 1, p the one-hot of the label):
 *     L = (1/n) sum_i -log q_i,label_i,       dL/dz_ic = (q_ic - [c == label_i]) / n
 * The KD gradient is the exact derivative of L as written. Hinton et al. (arXiv 1503.02531) scale the
 * soft term by T^2 so that its gradient keeps its size across temperatures; a caller that wants that
 * multiplies the loss and the gradient by T^2 itself (nothing here hides it).
 * KD minimises at q = p (the gradient is zero there): its value is then the teacher's entropy, not 0,
 * which is why it is cross-entropy and not the KL divergence; the gradients of the two are equal.
 * Everything is in double (a stable log-sum-exp per image, images summed in order) on the caller's
 * thread: the logits of a batch are small next to the network. Results do not depend on the threads. */
#ifndef VITQ_TRAIN_KD_LOSS_H
#define VITQ_TRAIN_KD_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* student and teacher are [n][classes]. *loss is the mean over the n images; when d_student is not
 * NULL it gets dL/d student (may alias student). Everything is validated before anything is written:
 * VITQ_ERR_INVALID_ARGUMENT for a NULL array, n or classes 0, or a temperature not finite and > 0;
 * VITQ_ERR_NON_FINITE naming the image for a NaN or infinity in either logits, or when the logits
 * divided by a tiny temperature overflow (d_student may then be written up to that image). */
vitq_status vitq_i_loss_kd(const float *student, const float *teacher, size_t n, size_t classes,
                           double temperature, double *loss, float *d_student);

/* Hard-label cross-entropy: logits [n][classes], labels [n]; *loss the mean over the images, d_logits
 * (may be NULL, may alias logits) its gradient. Errors as vitq_i_loss_kd, and VITQ_ERR_OUT_OF_RANGE
 * naming the image for a label outside 0..classes-1 (checked before anything is written). */
vitq_status vitq_i_loss_ce(const float *logits, const int32_t *labels, size_t n, size_t classes, double *loss,
                           float *d_logits);

/* The index of the first largest of classes (> 0) values (the convention of src/grad's argmax). NaN
 * never compares larger, so pass finite rows (the losses above check theirs). */
size_t vitq_i_argmax(const float *row, size_t classes);

/* Images among n ([n][classes] each, classes > 0) whose top-1 class is the same in a and b: a
 * student's agreement with its teacher. */
size_t vitq_i_top1_agreement(const float *a, const float *b, size_t n, size_t classes);

/* Images whose top-1 class equals their label (a label out of range never does). */
size_t vitq_i_top1_correct(const float *logits, const int32_t *labels, size_t n, size_t classes);

#endif
