/* Dyadic multipliers from real factors (dyadic.h). Every step is exact in double except the one
 * rounding of f 2^31 to an integer: f has 53 bits, so f 2^31 and f 2^31 + 1/2 (below 2^32, where
 * doubles step by 2^-21) are exact, and floor gives the half-up rounding whatever the FPU mode. */
#include "quant/dyadic.h"

#include <math.h>
#include <string.h>

#include "core/core.h"

vitq_status vitq_i_dyadic_from_real(double factor, vitq_i_dyadic *out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "dyadic: NULL output");
    memset(out, 0, sizeof *out);
    if (!(factor > 0.0) || !isfinite(factor))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "dyadic: factor %g is not finite and positive", factor);
    int e;
    double f = frexp(factor, &e); /* factor = f 2^e, f in [0.5, 1) */
    double m = floor(ldexp(f, 31) + 0.5);
    int shift = 31 - e;
    if (m >= 2147483648.0) { /* f rounded up to 1: 2^31 2^-shift = 2^30 2^-(shift - 1) */
        m = 1073741824.0;
        shift--;
    }
    if (shift < 0 || shift > VITQ_I_DYADIC_SHIFT_MAX)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "dyadic: factor %g needs shift %d, outside [0, %d] (factors about 2^-32 to 2^31)", factor,
                           shift, VITQ_I_DYADIC_SHIFT_MAX);
    out->mult = (int32_t)m;
    out->shift = shift;
    return VITQ_OK;
}

double vitq_i_dyadic_value(vitq_i_dyadic d) { return ldexp((double)d.mult, -d.shift); }
