/* The derivatives of the two GELUs (kernels.h), for training's backward through them:
 *
 *   erf form:  d/dx x Phi(x) = Phi(x) + x phi(x),   phi(x) = e^(-x^2/2) / sqrt(2 pi)
 *   tanh form: d/dx x sigmoid(2y) = sigmoid(2y) + x sigmoid(2y) (1 - sigmoid(2y)) 2y',
 *              2y = 2 sqrt(2/pi) (x + 0.044715 x^3),  2y' = 2 sqrt(2/pi) (1 + 3 0.044715 x^2)
 *
 * built from the pieces of the forward GELUs (vmath.h): Phi(-|x|) = R(|x|) e^(-x^2/2) with the same
 * polynomial table and the same split exponential, so e^(-x^2/2) serves both terms, and sigmoid from
 * e^(-|2y|) without overflow. One scalar formula; the row function repeats it on the active vector path
 * with the same IEEE operations (fused multiply-adds written as fmaf), so every path gives the same bits
 * (tests/unit/test_gelu_slope.c checks them against each other and against double precision). */
#ifndef VITQ_KERNELS_GELU_SLOPE_H
#define VITQ_KERNELS_GELU_SLOPE_H

#include <stddef.h>

float vitq_i_gelu_erf_slope(float x);
float vitq_i_gelu_tanh_slope(float x);

/* dx[i] = dy[i] * slope(x[i]) for i < n, slope of the tanh form when tanh_form != 0; dx may be dy. */
void vitq_i_gelu_slope_mul(const float *x, const float *dy, size_t n, int tanh_form, float *dx);

#endif
