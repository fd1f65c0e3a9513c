/* The AVX2 + FMA path: 6 x 16 GEMM micro-kernel on ymm registers (a 32-column tile is two of them)
 * and 8-lane forms of the shared formulas (vmath.h, isa.h, uniform.h), operation for operation the scalar
 * ones.
 *
 * Micro-kernel: 6 rows x 16 columns = 12 ymm accumulators, 2 ymm of the panel and 1 broadcast: 15 of
 * the 16 registers. Its fused multiply-adds are those of the AVX-512 kernel, so the two paths give the
 * same GEMM bits. Tails shorter than a vector go through a small zero-padded buffer. */
#include "kernels/isa.h"

#if VITQ_I_HAVE_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/vmath.h"

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET
#define MR 6

/* ---- GEMM micro-kernel ------------------------------------------------------------------------- */

INLINE void tile_rows(const size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                      float *c, size_t ldc, int accumulate) {
    __m256 lo[MR], hi[MR];
    /* unrolled loops over rows (here and below) keep the accumulators in registers */
#pragma GCC unroll 14
    for (size_t r = 0; r < rows; r++) {
        lo[r] = accumulate ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
        hi[r] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
    }
    for (size_t kk = 0; kk < k; kk++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 14
        for (size_t r = 0; r < rows; r++) {
            __m256 x = _mm256_broadcast_ss(a + r * lda);
            lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
        }
        a++;
        b += ldb;
    }
#pragma GCC unroll 14
    for (size_t r = 0; r < rows; r++) {
        _mm256_storeu_ps(c + r * ldc, lo[r]);
        _mm256_storeu_ps(c + r * ldc + 8, hi[r]);
    }
}

TARGET static void tile16(size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                          size_t ldc, int accumulate) {
    switch (rows) {
#define ROWS(n)                                                                                                  \
    case n: tile_rows(n, k, a, lda, b, ldb, c, ldc, accumulate); break;
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6)
#undef ROWS
    default: break;
    }
}

TARGET static void tile(size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                        size_t ldc, int accumulate) {
    tile16(rows, k, a, lda, b, ldb, c, ldc, accumulate);
    tile16(rows, k, a, lda, b + 16, ldb, c + 16, ldc, accumulate);
}

/* ---- the shared formulas on 8 lanes (scalar originals: activations.c) ------------------------- */

INLINE __m256 splat(float v) { return _mm256_set1_ps(v); }
INLINE __m256i splat_i(uint32_t v) { return _mm256_set1_epi32((int)v); }

/* max(c, x) and min(c, x) return x when x is NaN, as the scalar `c > x ? c : x` does. The softmax
 * passes has_lo = 0: adding a zero lo changes r only from -0 to +0, which leaves p alike. */
INLINE __m256 exp_split(__m256 hi, __m256 lo, const int has_lo) {
    hi = _mm256_max_ps(splat(VITQ_I_EXP_LO), hi);
    hi = _mm256_min_ps(splat(VITQ_I_EXP_HI), hi);
    __m256 k = _mm256_add_ps(_mm256_mul_ps(hi, splat(VITQ_I_LOG2E)), splat(VITQ_I_ROUND_MAGIC));
    __m256 kf = _mm256_sub_ps(k, splat(VITQ_I_ROUND_MAGIC));
    __m256 r = _mm256_fmadd_ps(kf, splat(-VITQ_I_LN2_HI), hi);
    r = _mm256_fmadd_ps(kf, splat(-VITQ_I_LN2_LO), r);
    if (has_lo) r = _mm256_add_ps(r, lo);
    const float *c = vitq_i_exp_poly;
    __m256 p = _mm256_fmadd_ps(splat(c[4]), r, splat(c[3]));
    p = _mm256_fmadd_ps(p, r, splat(c[2]));
    p = _mm256_fmadd_ps(p, r, splat(c[1]));
    p = _mm256_fmadd_ps(p, r, splat(c[0]));
    p = _mm256_fmadd_ps(p, r, splat(1.0f));
    p = _mm256_fmadd_ps(p, r, splat(1.0f));
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_castps_si256(splat(VITQ_I_ROUND_MAGIC)));
    __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, splat_i(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, splat_i(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* Coefficient c of interval j (0..15) per lane: two 8-entry permutes and a select on bit 3 of j. */
INLINE __m256 table16(const float *row, __m256i j, __m256 upper) {
    __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(row), j);
    __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(row + 8), j);
    return _mm256_blendv_ps(lo, hi, upper);
}

INLINE __m256 gelu_erf(__m256 x) {
    __m256 ax = _mm256_min_ps(splat(VITQ_I_GELU_ABS_MAX), _mm256_and_ps(x, _mm256_castsi256_ps(splat_i(0x7fffffffu))));
    __m256 k = _mm256_add_ps(_mm256_sub_ps(ax, splat(0.5f)), splat(VITQ_I_ROUND_MAGIC));
    __m256i j = _mm256_and_si256(
        _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_castps_si256(splat(VITQ_I_ROUND_MAGIC))), splat_i(15));
    __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(j, 28)); /* sign bit = bit 3 of j */
    __m256 u = _mm256_sub_ps(ax, _mm256_sub_ps(k, splat(VITQ_I_ROUND_MAGIC)));
    __m256 rt = table16(vitq_i_gelu_poly[7], j, upper);
    for (int c = 6; c >= 0; c--) rt = _mm256_fmadd_ps(rt, u, table16(vitq_i_gelu_poly[c], j, upper));
    __m256 sq = _mm256_mul_ps(ax, ax), sq_err = _mm256_fmsub_ps(ax, ax, sq);
    __m256 tail = _mm256_mul_ps(rt, exp_split(_mm256_mul_ps(splat(-0.5f), sq), _mm256_mul_ps(splat(-0.5f), sq_err), 1));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(splat(1.0f), tail), tail, neg);
    return _mm256_mul_ps(_mm256_max_ps(splat(VITQ_I_GELU_X_MIN), x), phi);
}

INLINE __m256 gelu_tanh(__m256 x) {
    __m256 xc = _mm256_max_ps(splat(VITQ_I_GELU_X_MIN), x), xt = _mm256_min_ps(splat(VITQ_I_GELU_X_MAX), xc);
    __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(splat(VITQ_I_GELU_TANH_C), _mm256_mul_ps(xt, xt)), xt, xt);
    __m256 t = _mm256_mul_ps(splat(VITQ_I_GELU_TANH_K2), inner);
    __m256 t_err = _mm256_fmsub_ps(splat(VITQ_I_GELU_TANH_K2), inner, t);
    __m256 top = _mm256_castsi256_ps(splat_i(0x80000000u));
    __m256 sign = _mm256_and_ps(t, top);
    __m256 s = exp_split(_mm256_or_ps(t, top), _mm256_xor_ps(t_err, _mm256_xor_ps(sign, top)), 1);
    __m256 num = _mm256_blendv_ps(xc, _mm256_mul_ps(xc, s), sign);
    return _mm256_div_ps(num, _mm256_add_ps(splat(1.0f), s));
}

/* ---- row kernels ------------------------------------------------------------------------------- */

INLINE __m256 epilogue8(__m256 v, const float *bias, const float *c, const vitq_i_epilogue e) {
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    if (e == VITQ_I_EPI_GELU_ERF) v = gelu_erf(v);
    if (e == VITQ_I_EPI_GELU_TANH) v = gelu_tanh(v);
    if (e == VITQ_I_EPI_RESIDUAL) v = _mm256_add_ps(_mm256_loadu_ps(c), v);
    return v;
}

INLINE void epilogue_loop(const float *acc, const float *bias, float *c, size_t n, const vitq_i_epilogue e) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(c + j, epilogue8(_mm256_loadu_ps(acc + j), bias ? bias + j : NULL, c + j, e));
    if (j < n) {
        float va[8] = {0}, vb[8] = {0}, vc[8] = {0};
        size_t rest = n - j;
        memcpy(va, acc + j, rest * sizeof(float));
        if (bias) memcpy(vb, bias + j, rest * sizeof(float));
        memcpy(vc, c + j, rest * sizeof(float));
        _mm256_storeu_ps(vc, epilogue8(_mm256_loadu_ps(va), bias ? vb : NULL, vc, e));
        memcpy(c + j, vc, rest * sizeof(float));
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

/* Lanes i < count set (as a float mask for blendv / and). */
INLINE __m256 first_lanes(size_t count) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count < 8 ? count : 8)), idx));
}

INLINE double fold4(__m256d s) {
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

/* 16 double lanes (four ymm) folded in halves, as isa_generic.c's softmax. */
TARGET static void softmax(float *x, size_t n) {
    if (n == 0) return;
    __m256 vmax = splat(-INFINITY);
    for (size_t i = 0; i < n; i += 8) {
        __m256 m = first_lanes(n - i);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(splat(-INFINITY), _mm256_maskload_ps(x + i, _mm256_castps_si256(m)), m));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    __m256 max = _mm256_broadcastss_ps(m4);
    __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    for (size_t i = 0; i < n; i += 8) {
        __m256 m = first_lanes(n - i);
        __m256i mi = _mm256_castps_si256(m);
        __m256 e = exp_split(_mm256_sub_ps(_mm256_maskload_ps(x + i, mi), max), _mm256_setzero_ps(), 0);
        e = _mm256_and_ps(e, m);
        _mm256_maskstore_ps(x + i, mi, e);
        size_t q = (i / 8) % 2 * 2; /* elements i..i+7 are lanes 0..7 or 8..15 of 16 */
        s[q] = _mm256_add_pd(s[q], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s[q + 1] = _mm256_add_pd(s[q + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    /* lanes l += l + 8, then l += l + 4: (s0 + s2) + (s1 + s3) */
    double sum = fold4(_mm256_add_pd(_mm256_add_pd(s[0], s[2]), _mm256_add_pd(s[1], s[3])));
    __m256 inv = splat((float)(1.0 / sum));
    for (size_t i = 0; i < n; i += 8) {
        __m256i mi = _mm256_castps_si256(first_lanes(n - i));
        _mm256_maskstore_ps(x + i, mi, _mm256_mul_ps(_mm256_maskload_ps(x + i, mi), inv));
    }
}

/* 8 double lanes (two ymm), as isa_generic.c's layernorm. */
TARGET static void layernorm(const float *x, size_t dim, const float *gamma, const float *beta, float eps,
                             float *out) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (size_t i = 0; i < dim; i += 8) {
        __m256 v = _mm256_maskload_ps(x + i, _mm256_castps_si256(first_lanes(dim - i)));
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double mean = fold4(_mm256_add_pd(s0, s1)) / (double)dim;
    __m256d vmean = _mm256_set1_pd(mean);
    s0 = s1 = _mm256_setzero_pd();
    for (size_t i = 0; i < dim; i += 8) {
        __m256 m = first_lanes(dim - i);
        __m256 v = _mm256_maskload_ps(x + i, _mm256_castps_si256(m));
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vmean);
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vmean);
        __m256d m0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(_mm256_castps256_ps128(m))));
        __m256d m1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(_mm256_extractf128_ps(m, 1))));
        d0 = _mm256_and_pd(d0, m0);
        d1 = _mm256_and_pd(d1, m1);
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(d0, d0));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(d1, d1));
    }
    __m256d rstd = _mm256_set1_pd(1.0 / sqrt(fold4(_mm256_add_pd(s0, s1)) / (double)dim + (double)eps));
    for (size_t i = 0; i < dim; i += 8) {
        __m256i mi = _mm256_castps_si256(first_lanes(dim - i));
        __m256 v = _mm256_maskload_ps(x + i, mi);
        __m128 y0 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vmean), rstd));
        __m128 y1 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vmean), rstd));
        __m256 y = _mm256_insertf128_ps(_mm256_castps128_ps256(y0), y1, 1);
        y = _mm256_add_ps(_mm256_mul_ps(y, _mm256_maskload_ps(gamma + i, mi)), _mm256_maskload_ps(beta + i, mi));
        _mm256_maskstore_ps(out + i, mi, y);
    }
}

/* ---- the uniform grid on 8 lanes (scalar original: kernels/uniform.h) ------------------------- */

/* vitq_i_uniform_code of 8 lanes, as floats: one IEEE division, the pre-clamp, the magic-number
 * rounding, + zero, the clamp to [qmin, qmax], NaN -> the zero point. Every lane is then an integer of
 * the grid (or the zero point), so converting it is exact. Both row operations below use it. */
INLINE __m256 uniform_code8(__m256 x, __m256 scale, __m256 zero, __m256 qmin, __m256 qmax) {
    __m256 t = _mm256_div_ps(x, scale);
    __m256 nan = _mm256_cmp_ps(t, t, _CMP_UNORD_Q);
    t = _mm256_min_ps(_mm256_max_ps(t, splat(-VITQ_I_UNIFORM_LIMIT)), splat(VITQ_I_UNIFORM_LIMIT));
    __m256 v = _mm256_sub_ps(_mm256_add_ps(t, splat(VITQ_I_UNIFORM_MAGIC)), splat(VITQ_I_UNIFORM_MAGIC));
    v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, zero), qmin), qmax);
    return _mm256_blendv_ps(v, zero, nan);
}

TARGET static void uniform_fq(const vitq_i_uniform *u, float *p, size_t n, float scale, float zero) {
    const __m256 s = splat(scale), z = splat(zero), qmin = splat((float)u->qmin), qmax = splat((float)u->qmax);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = uniform_code8(_mm256_loadu_ps(p + i), s, z, qmin, qmax);
        _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_sub_ps(v, z), s)); /* vitq_i_uniform_value */
    }
    for (; i < n; i++) p[i] = vitq_i_uniform_fq(u, p[i], scale, zero);
}

TARGET static void uniform_u8(const vitq_i_uniform *u, const float *x, size_t n, float scale, float zero,
                              int32_t offset, uint8_t *out) {
    const __m256 s = splat(scale), z = splat(zero), qmin = splat((float)u->qmin), qmax = splat((float)u->qmax);
    const __m256i off = _mm256_set1_epi32(offset);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i c = _mm256_add_epi32(_mm256_cvtps_epi32(uniform_code8(_mm256_loadu_ps(x + i), s, z, qmin, qmax)), off);
        /* bytes in [0, 255] by the caller's contract: the saturating packs keep them as they are */
        __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(void *)(out + i), _mm_packus_epi16(w, w));
    }
    for (; i < n; i++) out[i] = (uint8_t)(vitq_i_uniform_code(u, x[i], scale, zero) + offset);
}

const vitq_i_isa_kernels vitq_i_kernels_avx2 = {MR, tile, epilogue, softmax, layernorm, uniform_fq, uniform_u8};

#else
typedef int vitq_i_no_avx2; /* ISO C wants a declaration in every translation unit */
#endif
