/* Gradients of a linear layer y = x w^T + b for training (the grad layer computes activation gradients
 * only): for x [rows][in], w [out][in] and dy [rows][out],
 *   dw = dy^T x  [out][in],   db = sum over rows of dy  [out],   dx = dy w  [rows][in].
 * All three run on the library's packed GEMM (kernels.h), so they are as fast as the forward and their
 * results do not depend on the thread count. The caller provides the scratch (sizes below), so a
 * training loop allocates once. */
#ifndef VITQ_TRAIN_LINEAR_H
#define VITQ_TRAIN_LINEAR_H

#include <stddef.h>

#include "core/core.h"

/* Floats of scratch vitq_i_linear_weight_grad needs (SIZE_MAX on overflow). The scratch must be aligned for
 * a double (its first part holds db's sums; vitq_i_alloc's 64-byte blocks are). */
size_t vitq_i_linear_weight_grad_floats(size_t rows, size_t in, size_t out);

/* dw [out][in] and db [out] (either may be NULL; accumulate != 0: += instead of =). The sum over rows is
 * one float accumulator per element of dw in row order (the GEMM's), per element of db in double. */
void vitq_i_linear_weight_grad(const float *x, const float *dy, size_t rows, size_t in, size_t out, float *dw,
                               float *db, int accumulate, float *scratch, int nthreads);

/* Floats of scratch vitq_i_linear_input_grad needs. */
size_t vitq_i_linear_input_grad_floats(size_t in, size_t out);

/* dx [rows][in] (accumulate: +=) = dy w for a PyTorch-layout w [out][in] (packed transposed into the
 * scratch on every call: the weight of a trained layer changes between steps). */
void vitq_i_linear_input_grad(const float *w, const float *dy, size_t rows, size_t in, size_t out, float *dx,
                              int accumulate, float *scratch, int nthreads);

#endif
