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
VITQ_I_VMATH_INLINE float erf_slope(float x) {
    float ax = vitq_i_bits_float(vitq_i_float_bits(x) & 0x7fffffffu);
    ax = VITQ_I_GELU_ABS_MAX < ax ? VITQ_I_GELU_ABS_MAX : ax;
    float k = (ax - 0.5f) + VITQ_I_ROUND_MAGIC, u = ax - (k - VITQ_I_ROUND_MAGIC);
    uint32_t j = (vitq_i_float_bits(k) - vitq_i_float_bits(VITQ_I_ROUND_MAGIC)) & 15u;
    const float(*g)[16] = vitq_i_gelu_poly; /* Horner written out: a loop here would keep the row loop scalar */
    float rt = fmaf(fmaf(fmaf(g[7][j], u, g[6][j]), u, g[5][j]), u, g[4][j]);
    rt = fmaf(fmaf(fmaf(fmaf(rt, u, g[3][j]), u, g[2][j]), u, g[1][j]), u, g[0][j]);
    float sq = ax * ax, sq_err = fmaf(ax, ax, -sq);
    float e = vitq_i_exp_split(-0.5f * sq, -0.5f * sq_err), tail = rt * e; /* e^(-x^2/2), Phi(-|x|) */
    float cdf = x < 0.0f ? tail : 1.0f - tail;
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x; /* keeps infinity times 0 out */
    xc = VITQ_I_GELU_X_MAX < xc ? VITQ_I_GELU_X_MAX : xc;
    return fmaf(xc, e * INV_SQRT_2PI, cdf);
}

VITQ_I_VMATH_INLINE float tanh_slope(float x) {
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x;
    float xt = VITQ_I_GELU_X_MAX < xc ? VITQ_I_GELU_X_MAX : xc, x2 = xt * xt;
    float inner = fmaf(VITQ_I_GELU_TANH_C * x2, xt, xt);
    float t = VITQ_I_GELU_TANH_K2 * inner, t_err = fmaf(VITQ_I_GELU_TANH_K2, inner, -t);
    /* s = e^(-|2y|), 2y = t + t_err */
    uint32_t sign = vitq_i_float_bits(t) & 0x80000000u;
    float s = vitq_i_exp_split(vitq_i_bits_float(vitq_i_float_bits(t) | 0x80000000u), vitq_i_bits_float(vitq_i_float_bits(t_err) ^ sign ^ 0x80000000u));
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
