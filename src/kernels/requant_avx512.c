/* The AVX-512 paths of vitq_i_requant_rows (vitq_i_requant_block) and the int32 residual add (requant.h):
 * requant_avx2.c's steps on 16 int32 lanes, integer instructions only, with what AVX-512 adds: masked
 * loads and stores for the last cols % 16 columns (no padded copies), down-converting stores (vpmovdb,
 * vpmovdw) instead of packs, 64-bit arithmetic shifts, minima and maxima for the int32 residual add.
 * - Magnitudes as in requant_avx2.c: |x| as an unsigned lane, capped (requantization) at
 *   2^clamp(shift - 9, 0, 31), where the rounded magnitude already reaches 2^21, so every capped input
 *   gives a code clamped to the same end as the exact one, and every magnitude stays below 2^31; the
 *   64-bit products on the even and the odd lanes (vpmuludq), the rounding half, the per-lane shift;
 *   the sign back by a masked subtraction from 0 (half away from zero).
 * - Requantization clamps to [qmin - zero, qmax - zero] before adding zero + offset: no sum overflows.
 * - The int32 residual add keeps 64 bits until its clamp to [lo, hi], as the portable code does. */
#include "kernels/requant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define INLINE static inline __attribute__((always_inline)) TARGET

_Static_assert(sizeof(vitq_i_dyadic) == 8, "vitq_i_dyadic is two packed int32s");

#define BLOCK 128 /* columns whose unpacked multipliers are reused across the rows */

/* The multipliers of 16 columns as the lanes use them (requant_avx2.c's lanes8, twice as wide). */
typedef struct lanes16 {
    __m512i mul_e, mul_o, sh_e, sh_o, half_e, half_o, cap;
} lanes16;

INLINE __m512i halves(__m512i sh) { return _mm512_srli_epi64(_mm512_sllv_epi64(_mm512_set1_epi64(1), sh), 1); }

/* 2^clamp(shift - 9, 0, 31) of 16 shifts. */
INLINE __m512i caps(__m512i sh) {
    __m512i e = _mm512_min_epi32(_mm512_max_epi32(_mm512_sub_epi32(sh, _mm512_set1_epi32(9)), _mm512_setzero_si512()),
                                 _mm512_set1_epi32(31));
    return _mm512_sllv_epi32(_mm512_set1_epi32(1), e);
}

INLINE lanes16 lanes_one(vitq_i_dyadic d) {
    lanes16 l;
    l.mul_e = l.mul_o = _mm512_set1_epi64(d.mult);
    l.sh_e = l.sh_o = _mm512_set1_epi64(d.shift);
    l.half_e = l.half_o = halves(l.sh_e);
    l.cap = caps(_mm512_set1_epi32(d.shift));
    return l;
}

/* The multipliers of the n <= 16 columns at m (the lanes past n: zero multipliers, never stored). */
INLINE lanes16 lanes_cols(const vitq_i_dyadic *m, size_t n) {
    /* one {mult, shift} pair per 64-bit lane: a holds columns 0..7, b columns 8..15 */
    __mmask8 ka = (__mmask8)(n >= 8 ? 0xFF : (1u << n) - 1);
    __mmask8 kb = (__mmask8)(n >= 16 ? 0xFF : n > 8 ? (1u << (n - 8)) - 1 : 0);
    __m512i a = _mm512_maskz_loadu_epi64(ka, m), b = _mm512_maskz_loadu_epi64(kb, m + 8);
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    __m512i ev = _mm512_permutex2var_epi64(a, even, b), od = _mm512_permutex2var_epi64(a, odd, b);
    lanes16 l;
    l.mul_e = ev; /* vpmuludq reads the low dwords (the mults) */
    l.mul_o = od;
    l.sh_e = _mm512_srli_epi64(ev, 32);
    l.sh_o = _mm512_srli_epi64(od, 32);
    l.half_e = halves(l.sh_e);
    l.half_o = halves(l.sh_o);
    /* the shifts (the odd dwords of a, then of b) in column order */
    const __m512i sh_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    l.cap = caps(_mm512_permutex2var_epi32(a, sh_idx, b));
    return l;
}

/* round(ax mult / 2^shift) of the even (qe) and the odd (qo) lanes of the unsigned magnitudes ax. */
INLINE void magnitudes(__m512i ax, const lanes16 *l, __m512i *qe, __m512i *qo) {
    __m512i pe = _mm512_mul_epu32(ax, l->mul_e), po = _mm512_mul_epu32(_mm512_srli_epi64(ax, 32), l->mul_o);
    *qe = _mm512_srlv_epi64(_mm512_add_epi64(pe, l->half_e), l->sh_e);
    *qo = _mm512_srlv_epi64(_mm512_add_epi64(po, l->half_o), l->sh_o);
}

/* Codes (zero point and offset added) of 16 inputs; lo = qmin - zero, hi = qmax - zero, zoff = zero + offset. */
INLINE __m512i codes16(__m512i x, const lanes16 *l, __m512i lo, __m512i hi, __m512i zoff) {
    __m512i qe, qo;
    magnitudes(_mm512_min_epu32(_mm512_abs_epi32(x), l->cap), l, &qe, &qo);
    __m512i mag = _mm512_mask_blend_epi32((__mmask16)0xAAAA, qe, _mm512_slli_epi64(qo, 32));
    __m512i v = _mm512_mask_sub_epi32(mag, _mm512_movepi32_mask(x), _mm512_setzero_si512(), mag);
    return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), zoff);
}

enum { OUT_I8 = VITQ_I_RQ_INT8, OUT_U8 = VITQ_I_RQ_UINT8, OUT_I16 = VITQ_I_RQ_INT16 };

/* Stores the lanes of k of 16 codes (within the output type: truncation changes none) at element `at`. */
INLINE void store16(int type, __m512i v, __mmask16 k, void *out, size_t at) {
    if (type == OUT_I16) _mm256_mask_storeu_epi16((int16_t *)out + at, k, _mm512_cvtepi32_epi16(v));
    else _mm_mask_storeu_epi8((uint8_t *)out + at, k, _mm512_cvtepi32_epi8(v));
}

INLINE __mmask16 first16(size_t n) { return (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1); }

INLINE void requant_segment(int type, int percol, const int32_t *x, size_t n, const lanes16 *l, __m512i lo, __m512i hi,
                            __m512i zoff, void *out, size_t at) {
    size_t c = 0;
    for (; c + 16 <= n; c += 16)
        store16(type, codes16(_mm512_loadu_si512(x + c), percol ? l + c / 16 : l, lo, hi, zoff), 0xFFFF, out, at + c);
    if (c == n) return;
    __mmask16 k = first16(n - c);
    store16(type, codes16(_mm512_maskz_loadu_epi32(k, x + c), percol ? l + c / 16 : l, lo, hi, zoff), k, out, at + c);
}

INLINE void requant_all(int type, const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                        size_t nm, int32_t zero, int32_t qmin, int32_t qmax, int32_t offset, void *out, size_t ldo) {
    /* |zero| <= 2^16, offset <= 128, qmin, qmax within int16: no sum overflows */
    const __m512i lo = _mm512_set1_epi32(qmin - zero), hi = _mm512_set1_epi32(qmax - zero);
    const __m512i zoff = _mm512_set1_epi32(zero + offset);
    if (nm == 1) {
        lanes16 l = lanes_one(m[0]);
        for (size_t r = 0; r < rows; r++) requant_segment(type, 0, x + r * ldx, cols, &l, lo, hi, zoff, out, r * ldo);
        return;
    }
    lanes16 l[BLOCK / 16];
    for (size_t c0 = 0; c0 < cols; c0 += BLOCK) {
        size_t n = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        for (size_t g = 0; g * 16 < n; g++) l[g] = lanes_cols(m + c0 + g * 16, n - g * 16 < 16 ? n - g * 16 : 16);
        for (size_t r = 0; r < rows; r++)
            requant_segment(type, 1, x + r * ldx + c0, n, l, lo, hi, zoff, out, r * ldo + c0);
    }
}

TARGET void vitq_i_requant_rows_avx512(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                                       size_t nm, const vitq_i_requant_grid *g, int32_t offset, void *out, size_t ldo) {
    switch (g->type) {
    case VITQ_I_RQ_INT8: requant_all(OUT_I8, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, 0, out, ldo); break;
    case VITQ_I_RQ_UINT8:
        requant_all(OUT_U8, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, offset, out, ldo);
        break;
    default: requant_all(OUT_I16, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, 0, out, ldo); break;
    }
}

/* ---- the int32 residual add ---- */

/* clamp(res + round(x mult / 2^shift), lo, hi) for 16 int32 residuals, in 64 bits until the clamp. */
INLINE __m512i add32(__m512i res, __m512i x, const lanes16 *l, __m512i lo, __m512i hi) {
    __m512i qe, qo;
    magnitudes(_mm512_abs_epi32(x), l, &qe, &qo); /* |x| <= 2^31, mult < 2^31: q < 2^62 */
    /* the signs of the even and the odd elements of x as masks of the 64-bit lanes */
    __mmask8 ne = _mm512_movepi64_mask(_mm512_slli_epi64(x, 32)), no = _mm512_movepi64_mask(x);
    __m512i re = _mm512_srai_epi64(_mm512_slli_epi64(res, 32), 32), ro = _mm512_srai_epi64(res, 32);
    /* res + sign * q: |q| < 2^62 and |res| <= 2^31, no overflow */
    __m512i te = _mm512_mask_sub_epi64(_mm512_add_epi64(re, qe), ne, re, qe);
    __m512i to = _mm512_mask_sub_epi64(_mm512_add_epi64(ro, qo), no, ro, qo);
    te = _mm512_min_epi64(_mm512_max_epi64(te, lo), hi);
    to = _mm512_min_epi64(_mm512_max_epi64(to, lo), hi);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, te, _mm512_slli_epi64(to, 32));
}

INLINE void res32_segment(int percol, int32_t *res, const int32_t *x, size_t n, const lanes16 *l, __m512i lo,
                          __m512i hi) {
    size_t c = 0;
    for (; c + 16 <= n; c += 16) {
        __m512i v = add32(_mm512_loadu_si512(res + c), _mm512_loadu_si512(x + c), percol ? l + c / 16 : l, lo, hi);
        _mm512_storeu_si512(res + c, v);
    }
    if (c == n) return;
    __mmask16 k = first16(n - c);
    __m512i v = add32(_mm512_maskz_loadu_epi32(k, res + c), _mm512_maskz_loadu_epi32(k, x + c), percol ? l + c / 16 : l,
                      lo, hi);
    _mm512_mask_storeu_epi32(res + c, k, v);
}

TARGET void vitq_i_residual_add_i32_avx512(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows,
                                           size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    const __m512i vlo = _mm512_set1_epi64(lo), vhi = _mm512_set1_epi64(hi);
    if (nm == 1) {
        lanes16 l = lanes_one(m[0]);
        for (size_t r = 0; r < rows; r++) res32_segment(0, res + r * ldr, x + r * ldx, cols, &l, vlo, vhi);
        return;
    }
    lanes16 l[BLOCK / 16];
    for (size_t c0 = 0; c0 < cols; c0 += BLOCK) {
        size_t n = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        for (size_t g = 0; g * 16 < n; g++) l[g] = lanes_cols(m + c0 + g * 16, n - g * 16 < 16 ? n - g * 16 : 16);
        for (size_t r = 0; r < rows; r++) res32_segment(1, res + r * ldr + c0, x + r * ldx + c0, n, l, vlo, vhi);
    }
}

#else
typedef int vitq_i_requant_avx512_unused; /* an empty translation unit is not ISO C */
#endif
