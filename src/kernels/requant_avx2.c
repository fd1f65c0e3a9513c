/* The AVX2 path of vitq_i_requant_rows (requant.h): the portable code's steps on 8 int32 lanes,
 * integer instructions only.
 * - Sign and magnitude: |x| as an unsigned lane (|INT32_MIN| = 2^31 is exact there); the rounding of
 *   the magnitude, then the sign back with vpsignd (x = 0 gives 0, as it should): half away from zero.
 * - 64-bit products |x| mult < 2^62: vpmuludq on the even and the odd lanes, the rounding half
 *   2^(shift-1) (0 for shift 0) and the per-lane shift with vpsllvq / vpsrlvq: all non-negative.
 * - Before narrowing to 32 bits the magnitude is capped at 2^20: |zero| <= 2^16 and the code range
 *   lies within [-32768, 32767] (the checks), so any magnitude >= 2^20 clamps to qmin or qmax either
 *   way and the cap changes no code.
 * The last cols % 8 columns go through the same code from a zero-padded copy. */
#include "kernels/requant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* round(|x| mult / 2^shift), capped at 2^20, for the 64-bit lanes' low dwords of ax, mult, shift. */
INLINE __m256i round_mag(__m256i ax, __m256i mult, __m256i shift) {
    const __m256i one = _mm256_set1_epi64x(1), cap = _mm256_set1_epi64x(1 << 20);
    __m256i sh = _mm256_and_si256(shift, _mm256_set1_epi64x(0xFFFFFFFF));
    __m256i p = _mm256_mul_epu32(ax, mult);
    __m256i half = _mm256_srli_epi64(_mm256_sllv_epi64(one, sh), 1);
    __m256i q = _mm256_srlv_epi64(_mm256_add_epi64(p, half), sh);
    return _mm256_blendv_epi8(q, cap, _mm256_cmpgt_epi64(q, cap)); /* q < 2^62: the signed compare is exact */
}

/* Eight codes from eight inputs and their multipliers and shifts (one per lane). */
INLINE __m256i codes8(__m256i x, __m256i mult, __m256i shift, __m256i zero, __m256i lo, __m256i hi, __m256i off) {
    __m256i ax = _mm256_abs_epi32(x);
    __m256i even = round_mag(ax, mult, shift);
    __m256i odd = round_mag(_mm256_srli_epi64(ax, 32), _mm256_srli_epi64(mult, 32), _mm256_srli_epi64(shift, 32));
    __m256i mag = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA); /* both below 2^21 */
    __m256i v = _mm256_add_epi32(_mm256_sign_epi32(mag, x), zero);
    return _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi), off);
}

/* Multipliers and shifts of 8 consecutive columns from their {mult, shift} pairs. */
INLINE void split8(const vitq_i_dyadic *m, __m256i *mult, __m256i *shift) {
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256i a = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(const void *)m), idx);
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(m + 4)), idx);
    *mult = _mm256_permute2x128_si256(a, b, 0x20);
    *shift = _mm256_permute2x128_si256(a, b, 0x31);
}

TARGET void vitq_i_requant_row_avx2(const int32_t *x, size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t zero,
                                    int32_t qmin, int32_t qmax, int32_t offset, int32_t *codes) {
    const __m256i vz = _mm256_set1_epi32(zero), lo = _mm256_set1_epi32(qmin), hi = _mm256_set1_epi32(qmax);
    const __m256i off = _mm256_set1_epi32(offset);
    __m256i mult = _mm256_set1_epi32(m[0].mult), shift = _mm256_set1_epi32(m[0].shift);
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        if (nm != 1) split8(m + c, &mult, &shift);
        __m256i v = codes8(_mm256_loadu_si256((const __m256i *)(const void *)(x + c)), mult, shift, vz, lo, hi, off);
        _mm256_storeu_si256((__m256i *)(void *)(codes + c), v);
    }
    if (c == cols) return;
    int32_t xb[8] = {0}, cb[8];
    vitq_i_dyadic mb[8];
    for (size_t i = 0; i < 8; i++) mb[i] = m[0]; /* valid padding */
    memcpy(xb, x + c, (cols - c) * sizeof(int32_t));
    if (nm != 1) {
        memcpy(mb, m + c, (cols - c) * sizeof *mb);
        split8(mb, &mult, &shift);
    }
    _mm256_storeu_si256((__m256i *)(void *)cb,
                        codes8(_mm256_loadu_si256((const __m256i *)(const void *)xb), mult, shift, vz, lo, hi, off));
    memcpy(codes + c, cb, (cols - c) * sizeof(int32_t));
}

#else
typedef int vitq_i_requant_avx2_unused; /* an empty translation unit is not ISO C */
#endif
