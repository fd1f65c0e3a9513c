/* Parameter gradients of LayerNorm for training (src/grad has only its input gradient): for
 * y = xhat * gamma + beta with xhat = (x - mean) / sqrt(var + eps) over each row of x [rows][dim]
 * (biased variance, as vitq_i_layernorm) and dy [rows][dim],
 *   dgamma_j = sum over rows of dy_rj xhat_rj,   dbeta_j = sum over rows of dy_rj.
 * mean and 1/sqrt(var + eps) are computed exactly as the forward's row kernel does (double, its
 * canonical lane order), so xhat is the forward's before its rounding to float.
 * Rows go in a fixed grid of tasks that depends on rows only (at least 64 rows a task, at most 128
 * tasks); each task sums its rows in order into doubles of its own, then the tasks are added in task
 * order: bit-identical results for any thread count. */
#ifndef VITQ_TRAIN_NORM_GRAD_H
#define VITQ_TRAIN_NORM_GRAD_H

#include <stddef.h>

/* Floats of scratch vitq_i_layernorm_param_grad needs: two doubles per task and column (SIZE_MAX on
 * overflow). The scratch must be aligned for a double (vitq_i_alloc's 64-byte blocks are). */
size_t vitq_i_layernorm_param_grad_floats(size_t rows, size_t dim);

/* dgamma [dim] and dbeta [dim] (either may be NULL). accumulate != 0: each becomes (float)(old + sum),
 * one rounding; otherwise (float)sum (0 when rows is 0). nthreads as the kernels (0 = all). */
void vitq_i_layernorm_param_grad(const float *x, const float *dy, size_t rows, size_t dim, float eps, float *dgamma,
                                 float *dbeta, int accumulate, float *scratch, int nthreads);

#endif
