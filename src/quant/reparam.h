/* RepQ-ViT scale reparameterisation (docs: methods.md section 7). Calibration gives the output of a
 * LayerNorm per-channel asymmetric quantization, which integer kernels cannot use directly; the fold
 * moves the per-channel differences into the LayerNorm affine parameters and into the linear layers
 * that read the LayerNorm output, so that one per-tensor (scale, zero point) reproduces exactly the
 * same integer codes. */
#ifndef VITQ_QUANT_REPARAM_H
#define VITQ_QUANT_REPARAM_H

#include <stddef.h>

#include "core/core.h"
#include "model/net.h"

/* Fold per-channel asymmetric activation quantization (scale[c], zero_point[c], c < d) of the output
 * of LayerNorm `ln` into ln's affine parameters and the weights and biases of the `num_next` linear
 * layers that read that output (all with in == d), so that one per-tensor (scale, zero point) remains:
 * *tensor_scale = mean scale, *tensor_zero = nearbyint(mean zero point),
 * gamma_c /= r_c, beta_c = beta_c / r_c - b_c, W[:,c] *= r_c, bias += W_new . b,
 * with r_c = scale_c / tensor_scale and b_c = (tensor_zero - zero_point_c) * tensor_scale (which is
 * min_c / r_c - min~ of methods.md section 7 with the rounded zero point; see reparam.c).
 *
 * Per-tensor fake quantization with (tensor_scale, tensor_zero) of the new LayerNorm output, followed
 * by the new linears, equals per-channel fake quantization of the old output followed by the old
 * linears, up to float rounding; without quantization the linears' outputs are unchanged too.
 *
 * Zero points must be integers (as every uniform grid of vitq stores them) and scales positive and
 * finite; the same linear may not appear twice. Each changed weight is re-packed with
 * vitq_i_gemm_pack from `a`, and the old panels are freed to `a`: `a` must be the allocator that owns
 * the linears (the model's). A linear with bias NULL gets a bias allocated from `a`.
 * All or nothing: on any error (including out of memory) nothing has been changed.
 * The folded weights have new per-row ranges: calibrate their weight quantizers after the fold. */
vitq_status vitq_i_repq_fold(const vitq_allocator *a, vitq_i_layernorm_params *ln, size_t d,
                             vitq_i_linear *const *next, int num_next, const float *scale, const float *zero_point,
                             float *tensor_scale, float *tensor_zero);

/* The column factors r_c of a fold read back from the two LayerNorms it relates: `original` (the float
 * model's) and `folded` (a quantized model's), r_c = gamma_c / gamma'_c. A folded linear's weight is
 * then the original weight with column c times r_c (the bias and the LayerNorm are the folded model's
 * own). *changed is 0 when the two LayerNorms are bit-identical (no fold: every r_c is 1).
 * A channel whose gamma is 0 in both keeps r_c = 1: its LayerNorm output is a constant beta, the fold
 * leaves no trace of r_c there, and a constant input column only moves the bias.
 * VITQ_ERR_INVALID_ARGUMENT naming `what` and the channel when a factor is not positive and finite
 * (the folded LayerNorm is not a rescaling of the original: not the same float model). */
vitq_status vitq_i_repq_unfold_factors(const vitq_i_layernorm_params *original, const vitq_i_layernorm_params *folded,
                                       size_t d, const char *what, double *r, int *changed);

#endif
