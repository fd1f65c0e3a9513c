/* NoisyQuant (docs/methods.md, "NoisyQuant"): a fixed, per-input-channel uniform "noisy bias" added to
 * a linear layer's input before its quantizer flattens peaky activation histograms; the noise is
 * removed again after the quantizer (fake quantization) or, equivalently, folded into a denoising
 * bias of the layer (deployment). Weights are not touched. Also the searches of one layer the
 * authors' code runs: the clipping range and the noisy bias, each by the layer's output error
 * (calib/noisy_search.c runs them over a network). */
#ifndef VITQ_QUANT_NOISY_H
#define VITQ_QUANT_NOISY_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "quant/registry.h"

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

/* ---- the searches of one layer (docs/methods.md, "NoisyQuant") ------------------------------------
 * Every search scores the mean squared error of a linear layer's output when its input goes through
 * the quantizer, x^ . Wq^T, against the same layer on the unquantized input, x . Wq^T, both with the
 * quantized weight Wq (the bias cancels), as the authors' code does. */

typedef struct vitq_i_noisy_layer {
    const vitq_allocator *alloc;
    const float *x;          /* [rows][in] input rows */
    size_t rows, in;
    const vitq_i_packed *wq; /* the quantized weight (out x in), packed */
    int nthreads;            /* of the GEMMs (vitq_i_gemm: <= 0 all) */
} vitq_i_noisy_layer;

/* Output MSE of the layer with its input through inst's quantizer after the noisy bias `noise` (in
 * floats, or NULL: the plain quantizer): x^ = Q(x + N) - N. */
vitq_status vitq_i_noisy_output_mse(const vitq_i_noisy_layer *l, const vitq_i_instance *inst, const float *noise,
                                    double *mse);

/* The base search of the authors' code (EasyQuant-like): the clipping range alpha * [lo_g, hi_g] of
 * the rows' own range per group of inst ([-amax_g, amax_g] for a symmetric point), alpha = i / grid for
 * i = grid, grid - 1, .., 1, scored by the output MSE; inst (a uniform scheme with "scale" and
 * "zero_point") is left with the best range. From the widest down, replacing only on a strictly smaller
 * error: ties keep the wider range. *alpha and *mse (either may be NULL) get the choice and its score. */
vitq_status vitq_i_noisy_clip_search(const vitq_i_noisy_layer *l, vitq_i_instance *inst, int grid, double *alpha,
                                     double *mse);

/* Candidates per quantization step of the noisy-bias search: shift t, |t| <= 1, and amplitude k,
 * 0 <= k <= 2, both in steps of 1 / VITQ_I_NOISY_STEPS. */
#define VITQ_I_NOISY_STEPS 20

typedef struct vitq_i_noisy_choice {
    double shift;     /* chosen mean of the noisy bias, in quantization steps (0: none) */
    double amplitude; /* chosen K, in steps: the noise is uniform in [shift - K, shift + K) steps */
    double mse_plain; /* output MSE of the plain quantizer */
    double mse_shift; /* ... with the shift alone (K = 0) */
    double mse;       /* ... with the chosen noisy bias */
} vitq_i_noisy_choice;

/* NoisyQuant's noisy bias for one layer on inst's grid (its per-group "scale" is the step D_c of input
 * channel c): first the mean shift N_c = t D_c over t = 0, +-1/STEPS, .., +-1 (skipped when mean_shift is
 * 0), then the amplitude N_c = (t + k u_c) D_c over k = 0, 1/STEPS, .., 2 with t fixed, u = `unit`
 * (vitq_i_noise_draw). Each keeps a candidate only on a strictly smaller output MSE, in the order
 * listed (the shift by increasing |t|), so ties keep the smaller shift and the smaller amplitude, and
 * no noise at all wins unless some noise does better. noise[in] receives the chosen bias (all zeros
 * when neither search moved); *choice (may be NULL) what was chosen and its scores. */
vitq_status vitq_i_noisy_bias_search(const vitq_i_noisy_layer *l, const vitq_i_instance *inst, const float *unit,
                                     int mean_shift, float *noise, vitq_i_noisy_choice *choice);

#endif
