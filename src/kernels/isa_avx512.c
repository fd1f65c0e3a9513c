/* The AVX-512 path (F, DQ, BW, VL): 14 x 32 GEMM micro-kernel on zmm registers and 16-lane forms of
 * the shared formulas (vmath.h, isa.h, uniform.h), operation for operation the scalar ones.
 *
 * Micro-kernel: 14 rows x 32 columns = 28 zmm accumulators, 2 zmm of the packed panel and 1
 * broadcast per k step: 31 of the 32 registers. A is read in place (row pointers a + r * lda): the
 * broadcasts need no packing, the drivers keep the rows a kernel call sweeps in cache, and the kernel
 * prefetches each row's next cache line. */
#include "kernels/isa.h"

#if VITQ_I_HAVE_X86
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/vmath.h"

#define TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET
#define MR 14

/* ---- GEMM micro-kernel ------------------------------------------------------------------------- */

INLINE void tile_rows(const size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                      float *c, size_t ldc, int accumulate) {
    __m512 lo[MR], hi[MR];
    /* unrolled loops over rows (here and below) keep the accumulators in registers */
#pragma GCC unroll 14
    for (size_t r = 0; r < rows; r++) {
        lo[r] = accumulate ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
        hi[r] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
    }
    /* a second row base keeps every address a base + index * {1,2,4,8} + offset */
    const float *a7 = rows > 7 ? a + 7 * lda : a;
    for (size_t kk = 0; kk < k; kk++) {
        /* 14 row streams are more than the hardware prefetcher follows: ask for each row's next line
         * (integer arithmetic: the address may lie past the row, a prefetch never faults) */
        if (kk % 16 == 0)
            for (size_t r = 0; r < rows; r++)
                _mm_prefetch((const char *)((uintptr_t)(r < 7 ? a + r * lda : a7 + (r - 7) * lda) + 64), _MM_HINT_T0);
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
        for (size_t r = 0; r < rows; r++) {
            __m512 x = _mm512_set1_ps(r < 7 ? a[r * lda] : a7[(r - 7) * lda]);
            lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
        }
        a++;
        a7++;
        b += ldb;
    }
#pragma GCC unroll 14
    for (size_t r = 0; r < rows; r++) {
        _mm512_storeu_ps(c + r * ldc, lo[r]);
        _mm512_storeu_ps(c + r * ldc + 16, hi[r]);
    }
}

TARGET static void tile(size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                        size_t ldc, int accumulate) {
    switch (rows) {
#define ROWS(n)                                                                                                  \
    case n: tile_rows(n, k, a, lda, b, ldb, c, ldc, accumulate); break;
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12)
        ROWS(13) ROWS(14)
#undef ROWS
    default: break;
    }
}

/* ---- the shared formulas on 16 lanes (scalar originals: activations.c) ------------------------ */

INLINE __m512 splat(float v) { return _mm512_set1_ps(v); }
INLINE __m512i splat_i(uint32_t v) { return _mm512_set1_epi32((int)v); }

/* max(c, x) and min(c, x) return x when x is NaN, as the scalar `c > x ? c : x` does. Two shortcuts
 * give the scalar's bits: roundscale rounds to the nearest even integer as the magic-number addition
 * does, and scalef (p * 2^kf, one rounding) equals the scalar's two exact-then-rounded products. The
 * softmax passes has_lo = 0: adding a zero lo changes r only from -0 to +0, which leaves p alike. */
INLINE __m512 exp_split(__m512 hi, __m512 lo, const int has_lo) {
    hi = _mm512_max_ps(splat(VITQ_I_EXP_LO), hi);
    hi = _mm512_min_ps(splat(VITQ_I_EXP_HI), hi);
    __m512 kf = _mm512_roundscale_ps(_mm512_mul_ps(hi, splat(VITQ_I_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(kf, splat(-VITQ_I_LN2_HI), hi);
    r = _mm512_fmadd_ps(kf, splat(-VITQ_I_LN2_LO), r);
    if (has_lo) r = _mm512_add_ps(r, lo);
    const float *c = vitq_i_exp_poly;
    __m512 p = _mm512_fmadd_ps(splat(c[4]), r, splat(c[3]));
    p = _mm512_fmadd_ps(p, r, splat(c[2]));
    p = _mm512_fmadd_ps(p, r, splat(c[1]));
    p = _mm512_fmadd_ps(p, r, splat(c[0]));
    p = _mm512_fmadd_ps(p, r, splat(1.0f));
    p = _mm512_fmadd_ps(p, r, splat(1.0f));
    return _mm512_scalef_ps(p, kf);
}

INLINE __m512 gelu_erf(__m512 x) {
    __m512 ax = _mm512_min_ps(splat(VITQ_I_GELU_ABS_MAX), _mm512_abs_ps(x));
    __m512 k = _mm512_add_ps(_mm512_sub_ps(ax, splat(0.5f)), splat(VITQ_I_ROUND_MAGIC));
    __m512i j = _mm512_and_si512(
        _mm512_sub_epi32(_mm512_castps_si512(k), _mm512_castps_si512(splat(VITQ_I_ROUND_MAGIC))), splat_i(15));
    __m512 u = _mm512_sub_ps(ax, _mm512_sub_ps(k, splat(VITQ_I_ROUND_MAGIC)));
    __m512 rt = _mm512_permutexvar_ps(j, _mm512_loadu_ps(vitq_i_gelu_poly[7]));
    for (int c = 6; c >= 0; c--)
        rt = _mm512_fmadd_ps(rt, u, _mm512_permutexvar_ps(j, _mm512_loadu_ps(vitq_i_gelu_poly[c])));
    __m512 sq = _mm512_mul_ps(ax, ax), sq_err = _mm512_fmsub_ps(ax, ax, sq);
    __m512 tail = _mm512_mul_ps(rt, exp_split(_mm512_mul_ps(splat(-0.5f), sq), _mm512_mul_ps(splat(-0.5f), sq_err), 1));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 phi = _mm512_mask_blend_ps(neg, _mm512_sub_ps(splat(1.0f), tail), tail);
    return _mm512_mul_ps(_mm512_max_ps(splat(VITQ_I_GELU_X_MIN), x), phi);
}

INLINE __m512 gelu_tanh(__m512 x) {
    __m512 xc = _mm512_max_ps(splat(VITQ_I_GELU_X_MIN), x), xt = _mm512_min_ps(splat(VITQ_I_GELU_X_MAX), xc);
    __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(splat(VITQ_I_GELU_TANH_C), _mm512_mul_ps(xt, xt)), xt, xt);
    __m512 t = _mm512_mul_ps(splat(VITQ_I_GELU_TANH_K2), inner);
    __m512 t_err = _mm512_fmsub_ps(splat(VITQ_I_GELU_TANH_K2), inner, t);
    __m512i tb = _mm512_castps_si512(t), top = splat_i(0x80000000u);
    __m512i sign = _mm512_and_si512(tb, top);
    __m512 s = exp_split(_mm512_castsi512_ps(_mm512_or_si512(tb, top)),
                         _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(t_err), _mm512_xor_si512(sign, top))), 1);
    __m512 num = _mm512_mask_blend_ps(_mm512_test_epi32_mask(sign, sign), xc, _mm512_mul_ps(xc, s));
    return _mm512_div_ps(num, _mm512_add_ps(splat(1.0f), s));
}

INLINE __mmask16 first_lanes(size_t count) {
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1u);
}

/* ---- row kernels ------------------------------------------------------------------------------- */

INLINE void epilogue_loop(const float *acc, const float *bias, float *c, size_t n, const vitq_i_epilogue e) {
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = first_lanes(n - j);
        __m512 v = _mm512_maskz_loadu_ps(m, acc + j);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
        if (e == VITQ_I_EPI_GELU_ERF) v = gelu_erf(v);
        if (e == VITQ_I_EPI_GELU_TANH) v = gelu_tanh(v);
        if (e == VITQ_I_EPI_RESIDUAL) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + j), v);
        _mm512_mask_storeu_ps(c + j, m, v);
    }
}

TARGET static void epilogue(const float *acc, const float *bias, float *c, size_t n, vitq_i_epilogue e) {
    switch (e) {
    case VITQ_I_EPI_GELU_ERF: epilogue_loop(acc, bias, c, n, VITQ_I_EPI_GELU_ERF); break;
    case VITQ_I_EPI_GELU_TANH: epilogue_loop(acc, bias, c, n, VITQ_I_EPI_GELU_TANH); break;
    case VITQ_I_EPI_RESIDUAL: epilogue_loop(acc, bias, c, n, VITQ_I_EPI_RESIDUAL); break;
    default: epilogue_loop(acc, bias, c, n, VITQ_I_EPI_NONE); break;
    }
}

/* 16 double lanes (two zmm) folded in halves, as isa_generic.c's softmax. */
TARGET static void softmax(float *x, size_t n) {
    if (n == 0) return;
    __m512 vmax = splat(-INFINITY);
    for (size_t i = 0; i < n; i += 16)
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(splat(-INFINITY), first_lanes(n - i), x + i));
    __m512 max = splat(_mm512_reduce_max_ps(vmax));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        __m512 e = exp_split(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max), _mm512_setzero_ps(), 0);
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    __m512d s8 = _mm512_add_pd(s0, s1);
    __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    __m512 inv = splat((float)(1.0 / sum));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

INLINE double fold8(__m512d s) {
    __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s), _mm512_extractf64x4_pd(s, 1));
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

INLINE __mmask8 first_lanes8(size_t count) {
    return count >= 8 ? (__mmask8)0xff : (__mmask8)((1u << count) - 1u);
}

/* 8 double lanes (one zmm), as isa_generic.c's layernorm. */
TARGET static void layernorm(const float *x, size_t dim, const float *gamma, const float *beta, float eps,
                             float *out) {
    __m512d s = _mm512_setzero_pd();
    for (size_t i = 0; i < dim; i += 8)
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(first_lanes8(dim - i), x + i)));
    double mean = fold8(s) / (double)dim;
    __m512d vmean = _mm512_set1_pd(mean);
    s = _mm512_setzero_pd();
    for (size_t i = 0; i < dim; i += 8) {
        __mmask8 m = first_lanes8(dim - i);
        __m512d d = _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i)), vmean);
        s = _mm512_add_pd(s, _mm512_mul_pd(d, d));
    }
    __m512d rstd = _mm512_set1_pd(1.0 / sqrt(fold8(s) / (double)dim + (double)eps));
    for (size_t i = 0; i < dim; i += 8) {
        __mmask8 m = first_lanes8(dim - i);
        __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i)), vmean);
        __m256 y = _mm512_cvtpd_ps(_mm512_mul_pd(d, rstd));
        y = _mm256_add_ps(_mm256_mul_ps(y, _mm256_maskz_loadu_ps(m, gamma + i)), _mm256_maskz_loadu_ps(m, beta + i));
        _mm256_mask_storeu_ps(out + i, m, y);
    }
}

/* ---- the uniform grid on 16 lanes (scalar original: kernels/uniform.h) ------------------------ */

/* vitq_i_uniform_code of 16 lanes, as floats: one IEEE division, the pre-clamp, the magic-number
 * rounding, + zero, the clamp to [qmin, qmax], NaN -> the zero point. Every lane is then an integer of
 * the grid (or the zero point), so converting it is exact. Both row operations below use it. */
INLINE __m512 uniform_code16(__m512 x, __m512 scale, __m512 zero, __m512 qmin, __m512 qmax) {
    __m512 t = _mm512_div_ps(x, scale);
    __mmask16 nan = _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
    t = _mm512_min_ps(_mm512_max_ps(t, splat(-VITQ_I_UNIFORM_LIMIT)), splat(VITQ_I_UNIFORM_LIMIT));
    __m512 v = _mm512_sub_ps(_mm512_add_ps(t, splat(VITQ_I_UNIFORM_MAGIC)), splat(VITQ_I_UNIFORM_MAGIC));
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zero), qmin), qmax);
    return _mm512_mask_mov_ps(v, nan, zero);
}

TARGET static void uniform_fq(const vitq_i_uniform *u, float *p, size_t n, float scale, float zero) {
    const __m512 s = splat(scale), z = splat(zero), qmin = splat((float)u->qmin), qmax = splat((float)u->qmax);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = uniform_code16(_mm512_loadu_ps(p + i), s, z, qmin, qmax);
        _mm512_storeu_ps(p + i, _mm512_mul_ps(_mm512_sub_ps(v, z), s)); /* vitq_i_uniform_value */
    }
    for (; i < n; i++) p[i] = vitq_i_uniform_fq(u, p[i], scale, zero);
}

TARGET static void uniform_u8(const vitq_i_uniform *u, const float *x, size_t n, float scale, float zero,
                              int32_t offset, uint8_t *out) {
    const __m512 s = splat(scale), z = splat(zero), qmin = splat((float)u->qmin), qmax = splat((float)u->qmax);
    const __m512i off = _mm512_set1_epi32(offset);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i c = _mm512_add_epi32(_mm512_cvtps_epi32(uniform_code16(_mm512_loadu_ps(x + i), s, z, qmin, qmax)), off);
        _mm_storeu_si128((__m128i *)(void *)(out + i), _mm512_cvtepi32_epi8(c)); /* c in [0, 255] */
    }
    for (; i < n; i++) out[i] = (uint8_t)(vitq_i_uniform_code(u, x[i], scale, zero) + offset);
}

const vitq_i_isa_kernels vitq_i_kernels_avx512 = {MR, tile, epilogue, softmax, layernorm, uniform_fq, uniform_u8};

#else
typedef int vitq_i_no_avx512; /* ISO C wants a declaration in every translation unit */
#endif
