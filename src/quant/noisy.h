/* NoisyQuant (docs: methods.md section 4): a fixed, per-input-channel uniform "noisy bias" added to
 * a linear layer's input before its quantizer flattens peaky activation histograms; the noise is
 * removed again after the quantizer (fake quantization) or, equivalently, folded into a denoising
 * bias of the layer (deployment). Weights are not touched. */
#ifndef VITQ_QUANT_NOISY_H
#define VITQ_QUANT_NOISY_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* unit[c] = u_c, uniform in [-1, 1) on the grid k / 2^23, from splitmix64 seeded with `seed`. Integer
 * arithmetic and exact conversions only, so one seed gives the same noise on every platform. */
void vitq_i_noise_draw(uint64_t seed, float *unit, size_t channels);

/* noise[c] = shift + k * unit[c] (noise may be unit). With shift 0 and k >= 0 every value lies in
 * [-k, k): the product never rounds up to k. */
void vitq_i_noise_scale(const float *unit, size_t channels, float k, float shift, float *noise);

/* x <- Q(x + noise) - noise, noise[c] added to every element of channel c (the usual activation view
 * has inner == 1, outer = tokens, channels = in; other views broadcast noise over inner too).
 * `quant` fake-quantizes a view in place. On failure of `quant` the noise is taken off again, so x
 * holds its old values up to float rounding, and quant's status is returned. */
vitq_status vitq_i_noisy_fake_quant(vitq_status (*quant)(void *ctx, const vitq_tensor_view *v), void *ctx,
                                    const float *noise, const vitq_tensor_view *x);

/* Denoising bias: bias_out[o] = bias[o] - sum_c wq[o][c] * noise[c] (double accumulation), wq the
 * quantized (dequantized) weight [out][in]; then Wq.Q(x + N) + bias_out = Wq.(Q(x + N) - N) + bias.
 * bias NULL means zeros; bias_out may be bias. */
void vitq_i_noisy_denoise_bias(const float *wq, const float *bias, size_t out, size_t in, const float *noise,
                               float *bias_out);

#endif
