/* The uniform integer grid of the built-in schemes, quant-level part: parameters from a clipping
 * range, view-level (fake) quantization and squared errors. The grid itself (vitq_i_uniform, its code,
 * value and fake-quant functions, the vectorised runs) is kernels/uniform.h, included here; a group g
 * has scale[g] and zero_point[g], and fake_quant and dequantize(quantize(x)) agree bit for bit. */
#ifndef VITQ_QUANT_UNIFORM_H
#define VITQ_QUANT_UNIFORM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/uniform.h"

/* Scale and zero point that cover the clipping range [lo, hi] (lo <= hi).
 * Asymmetric: the range is widened to contain 0 (so that 0 is exactly a code), scale = (hi - lo) /
 * (2^b - 1), zero = clamp(nearbyint(-lo / scale), 0, 2^b - 1). Symmetric: scale = max(|lo|, |hi|) /
 * (2^(b-1) - 1), zero 0, so +-amax are both codes and -2^(b-1) only catches clipped values.
 * An empty or non-finite range gives scale 1, zero 0, under which a tensor of zeros is exact. */
void vitq_i_uniform_params(const vitq_i_uniform *u, double lo, double hi, float *scale, float *zero_point);

/* View-level operations; channel c uses scale[c / channels_per_group], zero_point[c / channels_per_group].
 * The view must already be checked (vitq_i_view_check). Codes are dense in (outer, channel, inner) order;
 * dequantize expects codes within [qmin, qmax]. Elements between slices (outer_stride gap) are untouched. */
void vitq_i_uniform_fake_quant(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                               int64_t channels_per_group, const vitq_tensor_view *x);
void vitq_i_uniform_quantize(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                             int64_t channels_per_group, const vitq_tensor_view *x, int32_t *codes);
void vitq_i_uniform_dequantize(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                               int64_t channels_per_group, const int32_t *codes, const vitq_tensor_view *out);

/* Sum over values[0..n) of (x - fq(x))^2 in double, for one candidate scale and zero point. */
double vitq_i_uniform_sq_error(const vitq_i_uniform *u, float scale, float zero_point, const float *values, size_t n);

/* The same over a histogram: counts[i] values taken to sit at the bin centre lo + (i + 0.5) * width. */
double vitq_i_uniform_hist_sq_error(const vitq_i_uniform *u, float scale, float zero_point, const uint64_t *counts,
                                    size_t bins, double lo, double width);

#endif
