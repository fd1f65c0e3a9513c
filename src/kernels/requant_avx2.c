/* The AVX2 paths of vitq_i_requant_rows and the residual adds (requant.h): the portable code's steps on
 * 8 int32 lanes, integer instructions only.
 * - Sign and magnitude: |x| as an unsigned lane (|INT32_MIN| = 2^31 is exact there); the rounding of
 *   the magnitude, then the sign back: half away from zero (x = 0 gives 0, as it should).
 * - 64-bit products |x| mult < 2^62: vpmuludq on the even and the odd lanes, the rounding half
 *   2^(shift-1) (0 for shift 0) and the per-lane shift with vpsrlvq: all non-negative.
 * - The int16 residual add caps the magnitude at 2^20 before narrowing to 32 bits: |res| <= 2^15 and the
 *   result range lies within [-32768, 32767] (the checks), so any magnitude >= 2^20 clamps to the same
 *   end either way and the cap changes no result.
 * - Requantization caps |x| instead, before the multiply (one unsigned min): at cap = 2^clamp(shift - 9,
 *   0, 31) the rounded magnitude is already >= 2^21 (mult >= 2^30), so every |x| >= cap gives a code
 *   clamped to the same end (|zero| <= 2^16, [qmin, qmax] within int16), and the magnitudes stay below
 *   2^31 (<= 2^22 + 1 for shift >= 9; for shift < 9 |x| <= 1 and the magnitude is below 2^31): they fit
 *   the 32-bit lanes without the 64-bit compare and blend. The clamp to [qmin - zero, qmax - zero]
 *   comes before adding the zero point (plus the UINT8 offset), so nothing overflows.
 * - The int32 residual add keeps 64 bits to the end: res + round(...) is clamped to [lo, hi] as a 64-bit
 *   value (any int32 lo <= hi), then narrowed.
 * Per-column multipliers are unpacked into vectors once per block of columns and reused by every row;
 * a per-tensor multiplier lives in registers. The last cols % 8 columns of a row go through the same
 * code from a zero-padded copy (their multipliers padded with valid ones). */
#include "kernels/requant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* lanes_cols loads the {mult, shift} pairs as 64-bit lanes */
_Static_assert(sizeof(vitq_i_dyadic) == 8, "vitq_i_dyadic is two packed int32s");

#define BLOCK 128 /* columns whose unpacked multipliers (16 groups, 3 KB) are reused across the rows */

/* The multipliers of 8 columns as the lanes use them: the mults and shifts of the even columns in the
 * low dwords of the 64-bit lanes (for vpmuludq / vpsrlvq), those of the odd columns likewise, and the
 * rounding halves 2^(shift-1) (0 for shift 0). */
typedef struct lanes8 {
    __m256i mul_e, mul_o, sh_e, sh_o, half_e, half_o;
    __m256i cap; /* the |x| cap of requantization, per 32-bit lane in column order (header comment) */
} lanes8;

/* 2^clamp(shift - 9, 0, 31) of 8 shifts (32-bit lanes). */
INLINE __m256i caps(__m256i sh) {
    __m256i e = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(sh, _mm256_set1_epi32(9)), _mm256_setzero_si256()),
                                 _mm256_set1_epi32(31));
    return _mm256_sllv_epi32(_mm256_set1_epi32(1), e);
}

/* The halves (1 << shift) >> 1 of 64-bit shift counts: 0 for shift 0. */
INLINE __m256i halves(__m256i sh) { return _mm256_srli_epi64(_mm256_sllv_epi64(_mm256_set1_epi64x(1), sh), 1); }

/* One multiplier for all 8 lanes. */
INLINE lanes8 lanes_one(vitq_i_dyadic d) {
    lanes8 l;
    l.mul_e = l.mul_o = _mm256_set1_epi64x(d.mult);
    l.sh_e = l.sh_o = _mm256_set1_epi64x(d.shift);
    l.half_e = l.half_o = halves(l.sh_e);
    l.cap = caps(_mm256_set1_epi32(d.shift));
    return l;
}

/* The multipliers of 8 consecutive columns from their {mult, shift} pairs. */
INLINE lanes8 lanes_cols(const vitq_i_dyadic *m) {
    /* each {mult, shift} pair is one 64-bit lane: a holds columns 0..3, b columns 4..7 */
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)m);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(m + 4));
    /* the even columns are qwords 0 and 2 of a and of b: [a0 a2 . .] and [. . b0 b2] blended; the odd ones
     * qwords 1 and 3 */
    __m256i ev = _mm256_blend_epi32(_mm256_permute4x64_epi64(a, 0x08), _mm256_permute4x64_epi64(b, 0x80), 0xF0);
    __m256i od = _mm256_blend_epi32(_mm256_permute4x64_epi64(a, 0x0D), _mm256_permute4x64_epi64(b, 0xD0), 0xF0);
    lanes8 l;
    l.mul_e = ev; /* vpmuludq reads the low dwords (the mults), vpsrlvq the whole lane: the shifts moved down */
    l.mul_o = od;
    l.sh_e = _mm256_srli_epi64(ev, 32);
    l.sh_o = _mm256_srli_epi64(od, 32);
    l.half_e = halves(l.sh_e);
    l.half_o = halves(l.sh_o);
    /* the shifts (odd dwords) of a and of b in column order */
    const __m256i odd = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    l.cap = caps(_mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(a, odd), _mm256_permutevar8x32_epi32(b, odd),
                                           0x20));
    return l;
}

/* Unpacked multipliers of the `n` columns at m (n <= BLOCK), the last group padded with m[0]. */
INLINE void lanes_block(const vitq_i_dyadic *m, size_t n, lanes8 *out) {
    size_t g = 0;
    for (; (g + 1) * 8 <= n; g++) out[g] = lanes_cols(m + g * 8);
    if (g * 8 == n) return;
    vitq_i_dyadic pad[8];
    for (size_t i = 0; i < 8; i++) pad[i] = g * 8 + i < n ? m[g * 8 + i] : m[0];
    out[g] = lanes_cols(pad);
}

/* round(|x| mult / 2^shift) of the even lanes (qe) and the odd lanes (qo), 64-bit, below 2^62. */
INLINE void magnitudes(__m256i ax, const lanes8 *l, __m256i *qe, __m256i *qo) {
    __m256i pe = _mm256_mul_epu32(ax, l->mul_e), po = _mm256_mul_epu32(_mm256_srli_epi64(ax, 32), l->mul_o);
    *qe = _mm256_srlv_epi64(_mm256_add_epi64(pe, l->half_e), l->sh_e);
    *qo = _mm256_srlv_epi64(_mm256_add_epi64(po, l->half_o), l->sh_o);
}

/* round(x mult / 2^shift) capped to [-2^20, 2^20], as 8 int32 lanes. */
INLINE __m256i rounded_capped(__m256i x, const lanes8 *l) {
    const __m256i cap = _mm256_set1_epi64x(1 << 20);
    __m256i qe, qo;
    magnitudes(_mm256_abs_epi32(x), l, &qe, &qo);
    qe = _mm256_blendv_epi8(qe, cap, _mm256_cmpgt_epi64(qe, cap)); /* q < 2^62: the signed compare is exact */
    qo = _mm256_blendv_epi8(qo, cap, _mm256_cmpgt_epi64(qo, cap));
    __m256i mag = _mm256_blend_epi32(qe, _mm256_slli_epi64(qo, 32), 0xAA);
    return _mm256_sign_epi32(mag, x);
}

/* Requantized codes (offset added) of 8 inputs: lo = qmin - zero, hi = qmax - zero, zoff = zero + offset
 * (header comment). */
INLINE __m256i codes8(__m256i x, const lanes8 *l, __m256i lo, __m256i hi, __m256i zoff) {
    __m256i qe, qo;
    magnitudes(_mm256_min_epu32(_mm256_abs_epi32(x), l->cap), l, &qe, &qo);
    __m256i v = _mm256_sign_epi32(_mm256_blend_epi32(qe, _mm256_slli_epi64(qo, 32), 0xAA), x);
    return _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi), zoff);
}

enum { OUT_I8 = VITQ_I_RQ_INT8, OUT_U8 = VITQ_I_RQ_UINT8, OUT_I16 = VITQ_I_RQ_INT16, OUT_I32 = 3 };

/* Stores 8 codes, already within the output type (the packs saturate nothing), at out + at elements. */
INLINE void store8(int type, __m256i v, void *out, size_t at) {
    if (type == OUT_I32) {
        _mm256_storeu_si256((__m256i *)(void *)((int32_t *)out + at), v);
        return;
    }
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    if (type == OUT_I16) _mm_storeu_si128((__m128i *)(void *)((int16_t *)out + at), w);
    else if (type == OUT_I8) _mm_storel_epi64((__m128i *)(void *)((int8_t *)out + at), _mm_packs_epi16(w, w));
    else _mm_storel_epi64((__m128i *)(void *)((uint8_t *)out + at), _mm_packus_epi16(w, w));
}

static size_t type_size(int type) { return type == OUT_I32 ? 4 : type == OUT_I16 ? 2 : 1; }

/* One row segment of n columns: codes of x[0..n) into out at element `at`. l: one lanes8 per group of 8
 * (percol) or the single one. */
INLINE void requant_segment(int type, int percol, const int32_t *x, size_t n, const lanes8 *l, __m256i lo,
                            __m256i hi, __m256i zoff, void *out, size_t at) {
    size_t c = 0;
    for (; c + 8 <= n; c += 8)
        store8(type,
               codes8(_mm256_loadu_si256((const __m256i *)(const void *)(x + c)), percol ? l + c / 8 : l, lo, hi, zoff),
               out, at + c);
    if (c == n) return;
    int32_t xb[8] = {0};
    unsigned char ob[32];
    memcpy(xb, x + c, (n - c) * sizeof(int32_t));
    store8(type,
           codes8(_mm256_loadu_si256((const __m256i *)(const void *)xb), percol ? l + c / 8 : l, lo, hi, zoff), ob,
           0);
    memcpy((unsigned char *)out + (at + c) * type_size(type), ob, (n - c) * type_size(type));
}

INLINE void requant_all(int type, const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                        size_t nm, int32_t zero, int32_t qmin, int32_t qmax, int32_t offset, void *out, size_t ldo) {
    /* |zero| <= 2^16, offset <= 128, qmin, qmax within int16: no sum overflows */
    const __m256i lo = _mm256_set1_epi32(qmin - zero), hi = _mm256_set1_epi32(qmax - zero);
    const __m256i zoff = _mm256_set1_epi32(zero + offset);
    if (nm == 1) {
        lanes8 l = lanes_one(m[0]);
        for (size_t r = 0; r < rows; r++)
            requant_segment(type, 0, x + r * ldx, cols, &l, lo, hi, zoff, out, r * ldo);
        return;
    }
    lanes8 l[BLOCK / 8];
    for (size_t c0 = 0; c0 < cols; c0 += BLOCK) {
        size_t n = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        lanes_block(m + c0, n, l);
        for (size_t r = 0; r < rows; r++)
            requant_segment(type, 1, x + r * ldx + c0, n, l, lo, hi, zoff, out, r * ldo + c0);
    }
}

TARGET void vitq_i_requant_rows_avx2(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                                     size_t nm, const vitq_i_requant_grid *g, int32_t offset, void *out, size_t ldo) {
    switch (g->type) {
    case VITQ_I_RQ_INT8: requant_all(OUT_I8, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, 0, out, ldo); break;
    case VITQ_I_RQ_UINT8:
        requant_all(OUT_U8, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, offset, out, ldo);
        break;
    default: requant_all(OUT_I16, x, ldx, rows, cols, m, nm, g->zero, g->qmin, g->qmax, 0, out, ldo); break;
    }
}

TARGET void vitq_i_requant_row_avx2(const int32_t *x, size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t zero,
                                    int32_t qmin, int32_t qmax, int32_t offset, int32_t *codes) {
    requant_all(OUT_I32, x, cols, 1, cols, m, nm, zero, qmin, qmax, offset, codes, cols);
}

/* ---- residual adds ---- */

/* clamp(res + round(x mult / 2^shift), lo, hi) for 8 int16 residuals (sign-extended in res32). */
INLINE __m256i add16(__m256i res32, __m256i x, const lanes8 *l, __m256i lo, __m256i hi) {
    __m256i v = _mm256_add_epi32(res32, rounded_capped(x, l));
    return _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
}

INLINE void res16_segment(int percol, int16_t *res, const int32_t *x, size_t n, const lanes8 *l, __m256i lo,
                          __m256i hi) {
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256i r = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(res + c)));
        __m256i v =
            add16(r, _mm256_loadu_si256((const __m256i *)(const void *)(x + c)), percol ? l + c / 8 : l, lo, hi);
        _mm_storeu_si128((__m128i *)(void *)(res + c),
                         _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
    }
    if (c == n) return;
    int32_t xb[8] = {0};
    int16_t rb[8] = {0};
    memcpy(xb, x + c, (n - c) * sizeof *xb);
    memcpy(rb, res + c, (n - c) * sizeof *rb);
    __m256i r = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(const void *)rb));
    __m256i v = add16(r, _mm256_loadu_si256((const __m256i *)(const void *)xb), percol ? l + c / 8 : l, lo, hi);
    _mm_storeu_si128((__m128i *)(void *)rb, _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
    memcpy(res + c, rb, (n - c) * sizeof *rb);
}

/* The 64-bit lanes of x clamped to [lo, hi] (64-bit lanes). */
INLINE __m256i clamp64(__m256i v, __m256i lo, __m256i hi) {
    v = _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
    return _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
}

/* clamp(res + round(x mult / 2^shift), lo, hi) for 8 int32 residuals, in 64 bits until the clamp. */
INLINE __m256i add32(__m256i res, __m256i x, const lanes8 *l, __m256i lo, __m256i hi) {
    __m256i qe, qo;
    magnitudes(_mm256_abs_epi32(x), l, &qe, &qo);
    /* the signs of x over the 64-bit lanes of the even and the odd elements; res sign-extended likewise
     * (an even element's sign copied into its lane's high dword, an odd one's already there) */
    __m256i sx = _mm256_srai_epi32(x, 31), sr = _mm256_srai_epi32(res, 31);
    __m256i ne = _mm256_shuffle_epi32(sx, 0xA0), no = _mm256_shuffle_epi32(sx, 0xF5);
    __m256i re = _mm256_blend_epi32(res, _mm256_shuffle_epi32(sr, 0xA0), 0xAA);
    __m256i ro = _mm256_blend_epi32(_mm256_srli_epi64(res, 32), sr, 0xAA);
    /* res + sign * q: |q| < 2^62 and |res| <= 2^31, no overflow */
    __m256i te = _mm256_add_epi64(re, _mm256_sub_epi64(_mm256_xor_si256(qe, ne), ne));
    __m256i to = _mm256_add_epi64(ro, _mm256_sub_epi64(_mm256_xor_si256(qo, no), no));
    te = clamp64(te, lo, hi);
    to = clamp64(to, lo, hi);
    return _mm256_blend_epi32(te, _mm256_slli_epi64(to, 32), 0xAA);
}

INLINE void res32_segment(int percol, int32_t *res, const int32_t *x, size_t n, const lanes8 *l, __m256i lo,
                          __m256i hi) {
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256i r = _mm256_loadu_si256((const __m256i *)(const void *)(res + c));
        __m256i v =
            add32(r, _mm256_loadu_si256((const __m256i *)(const void *)(x + c)), percol ? l + c / 8 : l, lo, hi);
        _mm256_storeu_si256((__m256i *)(void *)(res + c), v);
    }
    if (c == n) return;
    int32_t xb[8] = {0}, rb[8] = {0};
    memcpy(xb, x + c, (n - c) * sizeof *xb);
    memcpy(rb, res + c, (n - c) * sizeof *rb);
    __m256i v = add32(_mm256_loadu_si256((const __m256i *)(const void *)rb),
                      _mm256_loadu_si256((const __m256i *)(const void *)xb), percol ? l + c / 8 : l, lo, hi);
    _mm256_storeu_si256((__m256i *)(void *)rb, v);
    memcpy(res + c, rb, (n - c) * sizeof *rb);
}

TARGET void vitq_i_residual_add_i32_avx2(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows,
                                         size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    const __m256i vlo = _mm256_set1_epi64x(lo), vhi = _mm256_set1_epi64x(hi);
    if (nm == 1) {
        lanes8 l = lanes_one(m[0]);
        for (size_t r = 0; r < rows; r++) res32_segment(0, res + r * ldr, x + r * ldx, cols, &l, vlo, vhi);
        return;
    }
    lanes8 l[BLOCK / 8];
    for (size_t c0 = 0; c0 < cols; c0 += BLOCK) {
        size_t n = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        lanes_block(m + c0, n, l);
        for (size_t r = 0; r < rows; r++) res32_segment(1, res + r * ldr + c0, x + r * ldx + c0, n, l, vlo, vhi);
    }
}

TARGET void vitq_i_residual_add_i16_avx2(int16_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows,
                                         size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    const __m256i vlo = _mm256_set1_epi32(lo), vhi = _mm256_set1_epi32(hi);
    if (nm == 1) {
        lanes8 l = lanes_one(m[0]);
        for (size_t r = 0; r < rows; r++) res16_segment(0, res + r * ldr, x + r * ldx, cols, &l, vlo, vhi);
        return;
    }
    lanes8 l[BLOCK / 8];
    for (size_t c0 = 0; c0 < cols; c0 += BLOCK) {
        size_t n = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        lanes_block(m + c0, n, l);
        for (size_t r = 0; r < rows; r++) res16_segment(1, res + r * ldr + c0, x + r * ldx + c0, n, l, vlo, vhi);
    }
}

#else
typedef int vitq_i_requant_avx2_unused; /* an empty translation unit is not ISO C */
#endif
