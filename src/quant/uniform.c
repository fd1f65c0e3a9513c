/* Uniform grid, quant level: parameters from a clipping range, view-level (fake) quantization, squared
 * errors (the grid's numerics: kernels/uniform.h). */
#include <float.h>

#include "quant/uniform.h"
#include "quant/view.h"

/* The float scale of a width spread over `steps` steps, or 0 when it is unusable (so the caller falls
 * back to the degenerate grid). Huge ranges saturate at FLT_MAX rather than becoming infinite. */
static float scale_of(double width, double steps) {
    if (!(width > 0.0) || !isfinite(width)) return 0.0f;
    double s = width / steps;
    if (s > FLT_MAX) return FLT_MAX;
    float f = (float)s;
    return f > 0.0f ? f : 0.0f;
}

void vitq_i_uniform_params(const vitq_i_uniform *u, double lo, double hi, float *scale, float *zero_point) {
    *scale = 1.0f;
    *zero_point = 0.0f;
    if (u->symmetric) {
        double amax = fmax(fabs(lo), fabs(hi));
        float s = scale_of(amax, (double)u->qmax);
        if (s > 0.0f) *scale = s;
        return;
    }
    if (lo > 0.0) lo = 0.0;
    if (hi < 0.0) hi = 0.0;
    float s = scale_of(hi - lo, (double)u->qmax);
    if (!(s > 0.0f)) return;
    double z = nearbyint(-lo / (double)s);
    *scale = s;
    *zero_point = (float)(z < u->qmin ? u->qmin : z > u->qmax ? u->qmax : z);
}

void vitq_i_uniform_fake_quant(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                               int64_t channels_per_group, const vitq_tensor_view *x) {
    int64_t row = x->channels * x->inner;
    for (int64_t o = 0; o < x->outer; o++) {
        if (channels_per_group >= x->channels) {
            /* one group: the slice is one contiguous run (the hot path of per-tensor activations) */
            vitq_i_uniform_fq_run(u, x->data + o * x->outer_stride, row, scale[0], zero_point[0]);
            continue;
        }
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c);
            float s = scale[c / channels_per_group], z = zero_point[c / channels_per_group];
            for (int64_t i = 0; i < x->inner; i++) p[i] = vitq_i_uniform_fq(u, p[i], s, z);
        }
    }
}

void vitq_i_uniform_quantize(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                             int64_t channels_per_group, const vitq_tensor_view *x, int32_t *codes) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            float s = scale[c / channels_per_group], z = zero_point[c / channels_per_group];
            for (int64_t i = 0; i < x->inner; i++) *codes++ = vitq_i_uniform_code(u, p[i], s, z);
        }
}

void vitq_i_uniform_dequantize(const vitq_i_uniform *u, const float *scale, const float *zero_point,
                               int64_t channels_per_group, const int32_t *codes, const vitq_tensor_view *out) {
    (void)u; /* the value of a code does not depend on the code range */
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++) {
            float *p = vitq_i_view_at(out, o, c);
            float s = scale[c / channels_per_group], z = zero_point[c / channels_per_group];
            for (int64_t i = 0; i < out->inner; i++) p[i] = vitq_i_uniform_value(*codes++, s, z);
        }
}

double vitq_i_uniform_sq_error(const vitq_i_uniform *u, float scale, float zero_point, const float *values,
                               size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)values[i] - (double)vitq_i_uniform_fq(u, values[i], scale, zero_point);
        e += d * d;
    }
    return e;
}

double vitq_i_uniform_hist_sq_error(const vitq_i_uniform *u, float scale, float zero_point, const uint64_t *counts,
                                    size_t bins, double lo, double width) {
    double e = 0.0;
    for (size_t i = 0; i < bins; i++) {
        if (!counts[i]) continue; /* activation histograms are mostly empty in the tails */
        float x = (float)(lo + ((double)i + 0.5) * width);
        double d = (double)x - (double)vitq_i_uniform_fq(u, x, scale, zero_point);
        e += d * d * (double)counts[i];
    }
    return e;
}
