/* "omse": the clipping range of least squared quantization error among alpha x the observed range, for
 * `grid` values of alpha evenly spaced in [min_ratio, 1]. alpha = 1 (the minmax range) is always a
 * candidate and wins ties, so on the observed data omse never does worse than minmax (exactly for
 * weights, whose error is summed over every value; up to the bin-centre approximation for activations).
 * The default search, 100 ratios from 0.1 to 1 (step ~0.009), can clip to a tenth of the observed range,
 * which the heavy tails of ViT activations (post-LayerNorm, post-GELU) call for. */
#include "quant/range_scheme.h"
#include "quant/schemes.h"

static const vitq_scheme_option omse_options[] = {
    {"grid", "number of candidate ranges searched", 10.0, 1000.0, 100.0, 1},
    {"min_ratio", "smallest candidate range, as a fraction of the observed one", 0.01, 1.0, 0.1, 0},
};

static vitq_status omse_range(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    int n = (int)vitq_i_range_option(s, 0);
    double min_ratio = vitq_i_range_option(s, 1), lo0, hi0;
    vitq_i_range_observed(s, group, &lo0, &hi0);
    double best = vitq_i_range_sq_error(s, group, lo0, hi0);
    *lo = lo0, *hi = hi0;
    /* From the widest candidate down, replacing only on a strictly smaller error: ties keep the larger range. */
    for (int k = n - 2; k >= 0; k--) {
        double alpha = min_ratio + (1.0 - min_ratio) * (double)k / (double)(n - 1);
        double e = vitq_i_range_sq_error(s, group, alpha * lo0, alpha * hi0);
        if (e < best) best = e, *lo = alpha * lo0, *hi = alpha * hi0;
    }
    return VITQ_OK;
}

VITQ_I_RANGE_SCHEME(vitq_i_scheme_omse, "omse", "uniform grid over the range of least squared quantization error", 2,
                    2, omse_options, omse_range);
