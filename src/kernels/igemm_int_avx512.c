/* AVX-512 kernels of the integer GEMM, integer mode (igemm.h): + the integer bias, stored as int32. No
 * floating point (tests/build/check_float_free.sh reads the disassembly). Kernels: igemm_int_avx512.h. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/igemm_int_avx512.h"

T512 INLINE void store16(const vitq_i_qtile *t, size_t r, size_t j0, __mmask16 m, __m512i v) {
    v = _mm512_add_epi32(v, _mm512_loadu_si512(t->col_ibias + j0));
    _mm512_mask_storeu_epi32(t->iout + r * t->ldo + j0, m, v);
}

VITQ_I_QTILES_AVX512(_i32);

#else
typedef int vitq_i_igemm_int_avx512_unused; /* an empty translation unit is not ISO C */
#endif
