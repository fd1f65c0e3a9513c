/* AVX2 kernels of the integer GEMM, integer mode (igemm.h): + the integer bias, stored as int32. No
 * floating point (tests/build/check_float_free.sh reads the disassembly). Kernels: igemm_int_avx2.h. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/igemm_int_avx2.h"

TAVX2 INLINE void store8(const vitq_i_qtile *t, size_t r, size_t j0, __m256i v) {
    v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)(t->col_ibias + j0)));
    int32_t *o = t->iout + r * t->ldo + j0;
    size_t left = t->ncols - j0;
    if (left >= 8) {
        _mm256_storeu_si256((__m256i *)o, v);
        return;
    }
    /* the first `left` lanes only (masked-off lanes touch no memory) */
    __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_epi32((int *)o, lanes, v);
}

VITQ_I_QTILES_AVX2(_i32);

#else
typedef int vitq_i_igemm_int_avx2_unused; /* an empty translation unit is not ISO C */
#endif
