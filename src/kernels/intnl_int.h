/* Integer helpers of the non-linear kernels shared by the scalar reference (intnl.c) and the vector
 * paths (intnl_avx2.c, intnl_avx512.c), so that the scalar steps a vector path keeps (a row's ShiftGELU
 * e2, its tails) are the reference's own code. Integer arithmetic only: intnl.c, which includes this,
 * builds with -mgeneral-regs-only (tests/build/check_float_free.sh). Conventions: intnl.h. */
#ifndef VITQ_KERNELS_INTNL_INT_H
#define VITQ_KERNELS_INTNL_INT_H

#include <stdint.h>

#define VITQ_I_I31 2147483647LL /* 2^31 - 1 */

/* floor(a / 2^s), 0 <= s <= 62, |a| < 2^63: the arithmetic shift without shifting a negative value. */
static inline int64_t vitq_i_floor_shr(int64_t a, int s) { return a >= 0 ? a >> s : -((-a - 1) >> s) - 1; }

/* floor((a + 2^(s-1)) / 2^s), round half up: for s <= 62 any |a| <= 2^62 (a + 2^(s-1) < 2^63); for
 * s >= 63 the result is 0 when |a| < 2^62. */
static inline int64_t vitq_i_round_shr(int64_t a, int s) {
    if (s == 0) return a;
    if (s >= 63) return 0; /* |a| < 2^62 <= 2^(s-1): a + 2^(s-1) lies in (0, 2^s) */
    return vitq_i_floor_shr(a + ((int64_t)1 << (s - 1)), s);
}

/* floor(a / b), b != 0, no overflow for the ranges used (|a| < 2^63, b != -1 when a = INT64_MIN). */
static inline int64_t vitq_i_floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

/* floor((r/2 - x0) 2^(nexp - z)) for the ShiftExp of d' (already multiplied by log2 e), with
 * q = max(d', nexp x0), z = floor(q / x0), r = q - x0 z in (x0, 0], base = r - 2 x0 in (-x0, -2 x0].
 * For d' <= 0, z in [0, nexp] and the result is at most 2 |x0| 2^(nexp - 1) = |x0| 2^nexp.
 * For d' > 0 (ShiftGELU's e2 when the row maximum is negative), z < 0 and the value grows without
 * bound: it saturates at 2^31 - 1. |d'| <= 94208, |x0| <= 16384: |nexp x0| < 2^19, |x0 z| <= 94208 + |x0|. */
static inline int64_t vitq_i_shift_exp(int64_t dp, int32_t x0, int nexp) {
    int64_t q = dp < (int64_t)nexp * x0 ? (int64_t)nexp * x0 : dp;
    int64_t z = vitq_i_floor_div(q, x0);
    int64_t base = q - (int64_t)x0 * z - 2 * (int64_t)x0; /* in [1, 32768] */
    int64_t s = nexp - z - 1;                             /* the power of two of base / 2 */
    if (s < 0) return base >> 1;                          /* z = nexp: floor(base / 2), base > 0 */
    if (s > 31) return VITQ_I_I31;                        /* base >= 1: base 2^s >= 2^32 */
    int64_t v = base << s;                                /* <= 2^15 2^31 = 2^46 */
    return v < VITQ_I_I31 ? v : VITQ_I_I31;
}

/* d' = d + floor(d / 2) - floor(d / 16): d log2 e with log2 e ~ 1 + 1/2 - 1/16. |d| <= 65535: |d'| <= 94208. */
static inline int64_t vitq_i_times_log2e(int64_t d) { return d + vitq_i_floor_shr(d, 1) - vitq_i_floor_shr(d, 4); }

#endif
