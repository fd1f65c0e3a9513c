/* "minmax": clip at the observed range; one pass, no options. */
#include "quant/range_scheme.h"
#include "quant/schemes.h"

static vitq_status minmax_range(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    vitq_i_range_observed(s, group, lo, hi);
    return VITQ_OK;
}

VITQ_I_RANGE_SCHEME(vitq_i_scheme_minmax, "minmax", "uniform grid over the observed min..max range", 1, 0, NULL,
                    minmax_range);
