/* "percentile-mse": RepQ-ViT's range search (docs/methods.md §7): clip at each of the percentiles
 * 99.9, 99.99 and 99.999 (both tails for an asymmetric point, of |x| for a symmetric one) and keep the
 * one of least squared quantization error. Unlike omse, which may clip to a tenth of the observed
 * range when that minimises the error, the clip never goes below the 99.9th percentile: the few
 * large activations a minimum-error range cuts off (post-GELU, post-LayerNorm outliers) carry much of
 * what the next layer computes. Exact for weights, from the 2048-bin histogram for activations. */
#include "quant/range_scheme.h"
#include "quant/schemes.h"

static vitq_status pct_mse_range(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    static const double percentiles[] = {99.9, 99.99, 99.999};
    double best = 0.0;
    for (int k = 0; k < 3; k++) {
        double p = percentiles[k], l, h = vitq_i_range_percentile(s, group, p);
        l = s->config.symmetric ? -h : vitq_i_range_percentile(s, group, 100.0 - p);
        double e = vitq_i_range_sq_error(s, group, l, h);
        if (k == 0 || e < best) best = e, *lo = l, *hi = h;
    }
    return VITQ_OK;
}

VITQ_I_RANGE_SCHEME(vitq_i_scheme_percentile_mse, "percentile-mse",
                    "uniform grid clipped at the percentile (99.9, 99.99, 99.999) of least squared error", 2, 0, NULL,
                    pct_mse_range);
