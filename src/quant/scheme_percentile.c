/* "percentile": clip at a percentile of the observed values, so that rare outliers do not stretch the
 * grid; percentile 100 is minmax. Exact for weights (sorted copy), from a 2048-bin histogram for
 * activations (see vitq_i_range_percentile). */
#include "quant/range_scheme.h"
#include "quant/schemes.h"

static const vitq_scheme_option percentile_options[] = {
    {"percentile", "keep this percentile of the values (of |x| when symmetric) inside the range", 50.0, 100.0, 99.99,
     0},
};

static vitq_status percentile_range(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    double p = vitq_i_range_option(s, 0);
    if (s->config.symmetric) {
        *hi = vitq_i_range_percentile(s, group, p);
        *lo = -*hi;
    } else {
        /* The same share is clipped off each tail. */
        *lo = vitq_i_range_percentile(s, group, 100.0 - p);
        *hi = vitq_i_range_percentile(s, group, p);
    }
    return VITQ_OK;
}

VITQ_I_RANGE_SCHEME(vitq_i_scheme_percentile, "percentile", "uniform grid clipped at a percentile of the values", 2, 1,
                    percentile_options, percentile_range);
