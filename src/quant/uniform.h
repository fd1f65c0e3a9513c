/* The uniform integer grid of the built-in schemes. A group g has a float scale[g] > 0 and a zero point
 * zero[g] (an integer stored as float); code q stands for (q - zero) * scale. Symmetric grids use signed
 * codes [-2^(b-1), 2^(b-1) - 1] with zero point 0, asymmetric ones unsigned codes [0, 2^b - 1].
 * fake_quant and dequantize(quantize(x)) share the two inline functions below, so they agree bit for bit. */
#ifndef VITQ_QUANT_UNIFORM_H
#define VITQ_QUANT_UNIFORM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct vitq_i_uniform {
    int32_t bits;
    int32_t symmetric;
    int32_t qmin, qmax; /* code range */
} vitq_i_uniform;

/* The grid of `bits` (2..16) bits, symmetric (1) or asymmetric (0). */
vitq_i_uniform vitq_i_uniform_grid(int32_t bits, int32_t symmetric);

/* Scale and zero point that cover the clipping range [lo, hi] (lo <= hi).
 * Asymmetric: the range is widened to contain 0 (so that 0 is exactly a code), scale = (hi - lo) /
 * (2^b - 1), zero = clamp(nearbyint(-lo / scale), 0, 2^b - 1). Symmetric: scale = max(|lo|, |hi|) /
 * (2^(b-1) - 1), zero 0, so +-amax are both codes and -2^(b-1) only catches clipped values.
 * An empty or non-finite range gives scale 1, zero 0, under which a tensor of zeros is exact. */
void vitq_i_uniform_params(const vitq_i_uniform *u, double lo, double hi, float *scale, float *zero_point);

/* Code of x: clamp(nearbyintf(x / scale) + zero, qmin, qmax), rounding half to even as PyTorch does.
 * NaN maps to the zero point (value 0) so that no NaN ever becomes an undefined integer conversion. */
static inline int32_t vitq_i_uniform_code(const vitq_i_uniform *u, float x, float scale, float zero_point) {
    float t = x / scale;
    /* Round half to even without a libm call: adding and subtracting 1.5 * 2^23 rounds to an integer
     * in the default rounding mode, exactly while |t| < 2^22; larger |t| is clamped below anyway, so
     * pre-clamp it (a NaN fails both comparisons and stays NaN). */
    const float limit = 4194304.0f, magic = 12582912.0f;
    t = t > limit ? limit : t < -limit ? -limit : t;
    float v = ((t + magic) - magic) + zero_point;
    if (v >= (float)u->qmax) return u->qmax;
    if (v >= (float)u->qmin) return (int32_t)v;
    return v < (float)u->qmin ? u->qmin : (int32_t)zero_point;
}

/* Value of code q. */
static inline float vitq_i_uniform_value(int32_t q, float scale, float zero_point) {
    return ((float)q - zero_point) * scale;
}

/* x quantized and dequantized. */
static inline float vitq_i_uniform_fq(const vitq_i_uniform *u, float x, float scale, float zero_point) {
    return vitq_i_uniform_value(vitq_i_uniform_code(u, x, scale, zero_point), scale, zero_point);
}

/* p[i] = vitq_i_uniform_fq(p[i]) for i < n, vectorized where the CPU allows (same results). */
void vitq_i_uniform_fq_run(const vitq_i_uniform *u, float *p, int64_t n, float scale, float zero_point);

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
