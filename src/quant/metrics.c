/* Error metrics: internal version (no checks) and the public vitq_metric_compute (checks arguments). */
#include <math.h>

#include "quant/metrics.h"

static double mse(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return n ? s / (double)n : 0.0;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    /* Two zero vectors are the same vector; a zero vector has no direction to agree with. */
    if (aa == 0.0 && bb == 0.0) return 1.0;
    if (aa == 0.0 || bb == 0.0) return 0.0;
    double c = ab / (sqrt(aa) * sqrt(bb));
    /* Rounding can push |c| a hair past 1; callers compare against 1, so keep it a cosine. */
    return c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
}

static double sqnr(const float *a, const float *b, size_t n) {
    double signal = 0.0, noise = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        signal += (double)a[i] * a[i];
        noise += d * d;
    }
    if (noise == 0.0) return INFINITY;
    if (signal == 0.0) return -INFINITY;
    return 10.0 * log10(signal / noise);
}

double vitq_i_metric(vitq_metric m, const float *ref, const float *approx, size_t n) {
    switch (m) {
    case VITQ_METRIC_MSE: return mse(ref, approx, n);
    case VITQ_METRIC_COSINE: return cosine(ref, approx, n);
    case VITQ_METRIC_SQNR: return sqnr(ref, approx, n);
    }
    return NAN;
}

vitq_status vitq_metric_compute(vitq_metric metric, const float *reference, const float *approx, size_t n,
                                double *out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_metric_compute: out is NULL");
    if (metric != VITQ_METRIC_MSE && metric != VITQ_METRIC_COSINE && metric != VITQ_METRIC_SQNR)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_metric_compute: metric %d is not a vitq_metric",
                           (int)metric);
    if (!reference) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_metric_compute: reference is NULL");
    if (!approx) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_metric_compute: approx is NULL");
    if (n == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_metric_compute: n is 0");
    /* A NaN would silently poison the sums; say where it is instead. */
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(reference[i]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "vitq_metric_compute: reference[%zu] is %g", i,
                               (double)reference[i]);
        if (!isfinite(approx[i]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "vitq_metric_compute: approx[%zu] is %g", i, (double)approx[i]);
    }
    *out = vitq_i_metric(metric, reference, approx, n);
    return VITQ_OK;
}
