/* The elementary functions of the kernels (exp of the softmax, the two GELUs): one formula, written
 * once as scalar C (activations.c) and once per vector instruction set (isa_avx2.c, isa_avx512.c)
 * with the same IEEE operations in the same order: multiply-adds are always fused (fmaf in C), every
 * other operation is a single rounding. So every path, scalar or vector, gives the same bits, and a
 * GELU fused into a GEMM equals the GELU applied afterwards.
 *
 * exp(x): x = n ln2 + r (Cody-Waite, |r| <= ln2/2), e^r by a degree-6 polynomial (1 + r + r^2 Q(r),
 *   Q a minimax fit of relative error 3.1e-9), times 2^n applied in two halves so that subnormal
 *   results round once (AVX-512: vscalefps, the same single rounding). x is clamped to [-104, 89] first (beyond: 0 or inf anyway); NaN stays NaN.
 *   Measured error <= 0.87 ulp over the whole float range.
 *
 * gelu_erf(x) = x Phi(x). Phi(-|x|) = R(|x|) e^(-x^2/2) with R(t) = Phi(-t) e^(t^2/2) smooth and
 *   positive: a degree-7 minimax polynomial per unit interval of t in [0, 16) (relative error
 *   <= 2.9e-8), e^(-x^2/2) from the exponential above with x^2 split into its rounded value and the
 *   exact rounding error (one fma), so the tail keeps its relative accuracy. Phi(x) = 1 - Phi(-x)
 *   for x >= 0 (no cancellation: Phi(-x) <= 1/2). Measured error <= 3.5 ulp of the exact x Phi(x)
 *   for |x| < 13 (where the result is a normal float), far better than 0.5 x (1 + erff(x / sqrt 2))
 *   whose negative tail cancels. Both GELUs: gelu(-inf) = -0, gelu(inf) = inf, NaN stays NaN.
 *
 * gelu_tanh(x) = 0.5 x (1 + tanh(y)), y = sqrt(2/pi) (x + 0.044715 x^3), computed as the identical
 *   x sigmoid(2y) = x / (1 + e^(-2y)) (for 2y < 0: x e^(2y) / (1 + e^(2y)), so the exponential never
 *   overflows; 2y keeps its product rounding error as a second term). The float evaluation of the
 *   cubic limits the relative error in the negative tail, where the result is e^(-|2y|) small:
 *   measured <= 2.8 ulp for |x| < 1, <= 11 ulp for |x| < 3, <= 37 ulp for |x| < 6, at most about
 *   4 + 2 |2y| ulp in general (0.5 x (1 + tanhf(y)) loses everything there to cancellation); the
 *   absolute error stays below 4 ulp of |x| everywhere.
 *
 * ("Measured": against double-precision libm over every 61st float bit pattern; tests/unit/
 * test_kernels.c re-checks every 4001st with these bounds, plus the special values.)
 *
 * The constants below are the single source of the formulas; vitq_i_exp_poly and vitq_i_gelu_poly
 * are defined in activations.c. */
#ifndef VITQ_KERNELS_VMATH_H
#define VITQ_KERNELS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* x + 1.5 * 2^23 rounds x (|x| < 2^22) to an integer held in the low mantissa bits. */
#define VITQ_I_ROUND_MAGIC 12582912.0f
#define VITQ_I_EXP_LO (-104.0f) /* e^-104 < 2^-150: rounds to 0 */
#define VITQ_I_EXP_HI 89.0f     /* e^89 > FLT_MAX: inf */
#define VITQ_I_LOG2E 1.44269504f
/* ln 2 split: LN2_HI has 9 trailing zero bits, so n * LN2_HI is exact for |n| < 512. */
#define VITQ_I_LN2_HI 0.693145752f
#define VITQ_I_LN2_LO 1.42860677e-06f

/* GELU: |x| is clamped to the table (Phi(-16) underflows), x to >= -16 so that -inf gives -0; the
 * tanh form's 2y is computed from x clamped to <= 16 too (sigmoid(2y) is 1 in float from x = 5.7). */
#define VITQ_I_GELU_ABS_MAX 15.99f
#define VITQ_I_GELU_X_MIN (-16.0f)
#define VITQ_I_GELU_X_MAX 16.0f
#define VITQ_I_GELU_TANH_C 0.044715f
#define VITQ_I_GELU_TANH_K2 1.59576912f /* 2 sqrt(2/pi) */

/* Q(r) = c2 + c3 r + ... + c6 r^4, Horner from the last. */
extern const float vitq_i_exp_poly[5];
/* R on [j, j+1]: sum_c vitq_i_gelu_poly[c][j] (t - j)^c. */
extern const float vitq_i_gelu_poly[8][16];

/* The scalar exponential every float kernel shares (activations.c's GELUs and softmax, gelu_slope.c's
 * derivatives): inline always, so that a row loop calling it still vectorises, with the same operations
 * (hence bits) wherever it is compiled. */
#if defined(__GNUC__) || defined(__clang__)
#define VITQ_I_VMATH_INLINE static inline __attribute__((always_inline))
#else
#define VITQ_I_VMATH_INLINE static inline
#endif

VITQ_I_VMATH_INLINE uint32_t vitq_i_float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

VITQ_I_VMATH_INLINE float vitq_i_bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^(hi + lo) for |lo| tiny against ulp(hi)*2^10: the reduction absorbs lo exactly enough. Integer
 * arithmetic on the rounded value's bits instead of float-to-int conversions: defined for NaN too. */
VITQ_I_VMATH_INLINE float vitq_i_exp_split(float hi, float lo) {
    hi = VITQ_I_EXP_LO > hi ? VITQ_I_EXP_LO : hi; /* comparisons written so that NaN passes through */
    hi = VITQ_I_EXP_HI < hi ? VITQ_I_EXP_HI : hi;
    float k = hi * VITQ_I_LOG2E + VITQ_I_ROUND_MAGIC;
    float kf = k - VITQ_I_ROUND_MAGIC;
    float r = fmaf(kf, -VITQ_I_LN2_HI, hi);
    r = fmaf(kf, -VITQ_I_LN2_LO, r);
    r = r + lo;
    const float *c = vitq_i_exp_poly;
    float p = fmaf(fmaf(fmaf(fmaf(c[4], r, c[3]), r, c[2]), r, c[1]), r, c[0]);
    p = fmaf(fmaf(p, r, 1.0f), r, 1.0f);
    int32_t n = (int32_t)(vitq_i_float_bits(k) - vitq_i_float_bits(VITQ_I_ROUND_MAGIC));
    int32_t n1 = (n - (n & 1)) / 2, n2 = n - n1; /* n1 = floor(n / 2): both halves stay normal */
    return (p * vitq_i_bits_float((uint32_t)(n1 + 127) << 23)) * vitq_i_bits_float((uint32_t)(n2 + 127) << 23);
}

#endif
