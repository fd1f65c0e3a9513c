/* SmoothQuant and MPTQ-ViT's SmoothQuant with bias (SQ-b) (docs: methods.md, MPTQ-ViT). The output X
 * of a LayerNorm that feeds linear layers is shifted by a per-channel b and divided by a per-channel
 * s > 0, X' = (X - b) / s; the shift and the division are folded into the LayerNorm affine
 * parameters, the multiplication by s into the weight columns of the layers that read X and the shift
 * into their biases, so that the float network computes the same function while X' is centred
 * (max + min = 0 per channel with SQ-b) and its channels are balanced against the weights' columns:
 * one symmetric per-tensor quantizer then fits it. */
#ifndef VITQ_QUANT_SMOOTH_H
#define VITQ_QUANT_SMOOTH_H

#include <stddef.h>

#include "core/core.h"
#include "model/net.h"

/* Shift b[c] and smoothing factor s[c] of the d channels of a LayerNorm output observed in [lo[c],
 * hi[c]] on calibration data, read by the `num_next` linears `next` (all with in == d):
 *   b_c = (hi_c + lo_c) / 2 when `shift` (SQ-b), 0 otherwise (plain SmoothQuant);
 *   s_c = max|X_c - b_c|^alpha / max|W[:, c]|^(1 - alpha), the column maximum over every linear of next,
 * where max|X_c - b_c| = (hi_c - lo_c) / 2 with the shift and max(|lo_c|, |hi_c|) without it.
 * A channel whose activation range or weight column is all zeros has no balance to strike: s_c = 1
 * (also when the power overflows or underflows to 0 or infinity), and its shift alone is folded.
 * alpha in [0, 1]; ranges finite with lo <= hi (a channel never observed is an error naming it). */
vitq_status vitq_i_smooth_factors(const float *lo, const float *hi, size_t d, vitq_i_linear *const *next, int num_next,
                                  double alpha, int shift, double *b, double *s);

/* Fold (b, s) into LayerNorm `ln` (width d) and the linears `next` that read its output:
 *   gamma'_c = gamma_c / s_c,  beta'_c = (beta_c - b_c) / s_c,
 *   W'[:, c] = W[:, c] s_c,    bias' = bias + W b  (the original W, accumulated in double).
 * A linear with bias NULL gets one allocated from `a`. Weights are row-major [out][in] (attached rows,
 * model/weights.h) and each changed weight's panels are re-packed from `a`, the old ones freed to it:
 * `a` must own the linears (the model's allocator). s must be positive and finite, b finite, every
 * folded value finite; the same linear may not appear twice. All or nothing: on any error nothing has
 * changed. The folded weights have new ranges: calibrate their quantizers again afterwards. */
vitq_status vitq_i_smooth_fold(const vitq_allocator *a, vitq_i_layernorm_params *ln, size_t d,
                               vitq_i_linear *const *next, int num_next, const double *b, const double *s);

/* The squared error, summed over the `rows` sample rows x (rows x d, LayerNorm outputs) and the outputs of
 * linear `next`, of its product with X' = (x - b) / s quantized symmetric per tensor at abits (step from
 * the smoothed observed range [lo, hi] of every channel, as the deployed quantizer's) and W' = W diag(s)
 * symmetric per output row at wbits, against the exact product: what MPTQ-ViT's smoothing aims to make
 * small, for choosing alpha per layer. The bias cancels (bias' = bias + W b). */
vitq_status vitq_i_smooth_error(const vitq_allocator *a, const float *x, size_t rows, size_t d,
                                const vitq_i_linear *next, const float *lo, const float *hi, const double *b,
                                const double *s, int abits, int wbits, double *error);

#endif
