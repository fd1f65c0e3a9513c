/* Calibration-time side of dyadic requantization (kernels/requant.h): the integer multiplier and
 * shift of a real factor (a ratio of scales, e.g. a_scale * w_scale[j] / out_scale), chosen once from
 * the float scales so that the kernels run without floating point. */
#ifndef VITQ_QUANT_DYADIC_H
#define VITQ_QUANT_DYADIC_H

#include "kernels/requant.h"

/* The dyadic number closest to `factor` with mult in [2^30, 2^31 - 1] and the largest shift that
 * allows (the most precise one): with factor = f 2^e, f in [0.5, 1), mult = round(f 2^31) (half up)
 * and shift = 31 - e, or mult = 2^30 and shift = 30 - e when f 2^31 rounds up to 2^31. The relative
 * error |mult 2^-shift - factor| / factor is at most 2^-31 (half a unit of mult >= 2^30).
 * The kernels take shift in [0, 62], so the representable factors are [(2^31 - 1/2) 2^-63, 2^31 - 1/2)
 * (about [2^-32, 2^31)). VITQ_ERR_OUT_OF_RANGE (naming the factor) for factors <= 0, not finite, or
 * outside that range; *out is zeroed then. */
vitq_status vitq_i_dyadic_from_real(double factor, vitq_i_dyadic *out);

/* The real number d stands for, mult 2^-shift (exact in double). */
double vitq_i_dyadic_value(vitq_i_dyadic d);

#endif
