/* Reconstruction losses of the training core and their gradients (docs/training.md):
 *   MSE:                  L = sum_i (y_i - t_i)^2 / norm
 *   Fisher-weighted MSE:  L = sum_i f_i (y_i - t_i)^2 / norm
 * f_i >= 0 is the diagonal of the Fisher information of the task loss at the output, estimated by squared
 * gradients (dL/dy_i)^2 on the float model (BRECQ, arXiv 2102.05426; PTQ4ViT's Hessian-guided metric is
 * the same quadratic form, docs/methods.md 6.1). `norm` is the caller's normalisation: the number of
 * samples for BRECQ's "sum over features, mean over the batch", the element count for a plain mean. */
#ifndef VITQ_TRAIN_LOSS_H
#define VITQ_TRAIN_LOSS_H

#include <stddef.h>

#include "core/core.h"

/* *loss (summed in double, in order) and, when dy is not NULL, dy_i = 2 f_i (y_i - t_i) / norm (f_i = 1
 * when fisher is NULL). dy may alias y. VITQ_ERR_INVALID_ARGUMENT for NULL arrays, a negative weight or
 * norm not finite and > 0 (dy may then be partly written); VITQ_ERR_NON_FINITE when the loss is not
 * finite (a NaN in y, t or f). */
vitq_status vitq_i_loss_mse(const float *y, const float *t, const float *fisher, size_t n, double norm,
                            double *loss, float *dy);

#endif
