/* The GELUs' derivatives (gelu_slope.h). The scalar functions below are written branch-free (selects only,
 * every division and exponential computed unconditionally) so that the row loops, compiled once per
 * instruction set with target attributes, vectorise: the compiler then emits the same IEEE operations per
 * lane (fmaf as a fused multiply-add, no contraction elsewhere in ISO C mode), hence the same bits. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/gelu_slope.h"
#include "kernels/isa.h"
#include "kernels/vmath.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define INV_SQRT_2PI 0.398942280f
#define ALWAYS_INLINE static inline __attribute__((always_inline))

#if !(defined(__GNUC__) || defined(__clang__))
#undef ALWAYS_INLINE
#define ALWAYS_INLINE static inline
#endif

ALWAYS_INLINE uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

ALWAYS_INLINE float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^(hi + lo), lo a small correction to hi: vmath.h's reduction and polynomial, 2^n applied in two halves
 * so that a subnormal result rounds once. */
ALWAYS_INLINE float exp2parts(float hi, float lo) {
    hi = VITQ_I_EXP_LO > hi ? VITQ_I_EXP_LO : hi; /* NaN passes through */
    hi = VITQ_I_EXP_HI < hi ? VITQ_I_EXP_HI : hi;
    float k = hi * VITQ_I_LOG2E + VITQ_I_ROUND_MAGIC, kf = k - VITQ_I_ROUND_MAGIC;
    float r = fmaf(kf, -VITQ_I_LN2_HI, hi);
    r = fmaf(kf, -VITQ_I_LN2_LO, r) + lo;
    const float *c = vitq_i_exp_poly;
    float p = fmaf(fmaf(fmaf(fmaf(c[4], r, c[3]), r, c[2]), r, c[1]), r, c[0]);
    p = fmaf(fmaf(p, r, 1.0f), r, 1.0f);
    int32_t n = (int32_t)(bits_of(k) - bits_of(VITQ_I_ROUND_MAGIC)), n1 = (n - (n & 1)) / 2, n2 = n - n1;
    return (p * float_of((uint32_t)(n1 + 127) << 23)) * float_of((uint32_t)(n2 + 127) << 23);
}

ALWAYS_INLINE float erf_slope(float x) {
    float ax = float_of(bits_of(x) & 0x7fffffffu);
    ax = VITQ_I_GELU_ABS_MAX < ax ? VITQ_I_GELU_ABS_MAX : ax;
    float k = (ax - 0.5f) + VITQ_I_ROUND_MAGIC, u = ax - (k - VITQ_I_ROUND_MAGIC);
    uint32_t j = (bits_of(k) - bits_of(VITQ_I_ROUND_MAGIC)) & 15u;
    const float(*g)[16] = vitq_i_gelu_poly; /* Horner written out: a loop here would keep the row loop scalar */
    float rt = fmaf(fmaf(fmaf(g[7][j], u, g[6][j]), u, g[5][j]), u, g[4][j]);
    rt = fmaf(fmaf(fmaf(fmaf(rt, u, g[3][j]), u, g[2][j]), u, g[1][j]), u, g[0][j]);
    float sq = ax * ax, sq_err = fmaf(ax, ax, -sq);
    float e = exp2parts(-0.5f * sq, -0.5f * sq_err), tail = rt * e; /* e^(-x^2/2), Phi(-|x|) */
    float cdf = x < 0.0f ? tail : 1.0f - tail;
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x; /* keeps infinity times 0 out */
    xc = VITQ_I_GELU_X_MAX < xc ? VITQ_I_GELU_X_MAX : xc;
    return fmaf(xc, e * INV_SQRT_2PI, cdf);
}

ALWAYS_INLINE float tanh_slope(float x) {
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x;
    float xt = VITQ_I_GELU_X_MAX < xc ? VITQ_I_GELU_X_MAX : xc, x2 = xt * xt;
    float inner = fmaf(VITQ_I_GELU_TANH_C * x2, xt, xt);
    float t = VITQ_I_GELU_TANH_K2 * inner, t_err = fmaf(VITQ_I_GELU_TANH_K2, inner, -t);
    /* s = e^(-|2y|), 2y = t + t_err */
    uint32_t sign = bits_of(t) & 0x80000000u;
    float s = exp2parts(float_of(bits_of(t) | 0x80000000u), float_of(bits_of(t_err) ^ sign ^ 0x80000000u));
    float one_s = 1.0f + s, num = t < 0.0f ? s : 1.0f;
    float sig = num / one_s, dsig = s / (one_s * one_s); /* sigmoid(2y), sigmoid (1 - sigmoid) */
    float dt = VITQ_I_GELU_TANH_K2 * fmaf(3.0f * VITQ_I_GELU_TANH_C, x2, 1.0f);
    return fmaf(xt * dt, dsig, sig);
}

float vitq_i_gelu_erf_slope(float x) { return erf_slope(x); }
float vitq_i_gelu_tanh_slope(float x) { return tanh_slope(x); }

/* The row loop, one copy per instruction set. */
#define SLOPE_ROWS(name, attr)                                                                                  \
    attr static void name(const float *x, const float *dy, size_t n, int tanh_form, float *dx) {             \
        if (tanh_form)                                                                                        \
            for (size_t i = 0; i < n; i++) dx[i] = dy[i] * tanh_slope(x[i]);                                  \
        else                                                                                                  \
            for (size_t i = 0; i < n; i++) dx[i] = dy[i] * erf_slope(x[i]);                                   \
    }

SLOPE_ROWS(rows_generic, )
#if VITQ_I_HAVE_X86
SLOPE_ROWS(rows_avx2, __attribute__((target("avx2,fma"))))
SLOPE_ROWS(rows_avx512, __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))))
#endif

void vitq_i_gelu_slope_mul(const float *x, const float *dy, size_t n, int tanh_form, float *dx) {
#if VITQ_I_HAVE_X86
    vitq_i_isa isa = vitq_i_isa_active();
    if (isa == VITQ_I_ISA_AVX512) {
        rows_avx512(x, dy, n, tanh_form, dx);
        return;
    }
    if (isa == VITQ_I_ISA_AVX2) {
        rows_avx2(x, dy, n, tanh_form, dx);
        return;
    }
#endif
    rows_generic(x, dy, n, tanh_form, dx);
}
