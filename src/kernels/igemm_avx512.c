/* AVX-512 kernels of the integer GEMM, float mode (igemm.h): the float epilogue, one rounding per step
 * (vcvtdq2ps, vmulps, vaddps: no fused multiply-add). Kernels: igemm_int_avx512.h. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/igemm_int_avx512.h"

T512 INLINE void store16(const vitq_i_qtile *t, size_t r, size_t j0, __mmask16 m, __m512i v) {
    float *o = t->out + r * t->ldo + j0;
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(t->col_scale + j0));
    f = _mm512_add_ps(f, _mm512_loadu_ps(t->col_bias + j0));
    if (t->accumulate) f = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), f);
    _mm512_mask_storeu_ps(o, m, f);
}

VITQ_I_QTILES_AVX512(_f32);

#else
typedef int vitq_i_igemm_avx512_unused; /* an empty translation unit is not ISO C */
#endif
