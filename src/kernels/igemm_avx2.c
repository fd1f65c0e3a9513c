/* AVX2 kernels of the integer GEMM, float mode (igemm.h): the float epilogue, one rounding per step
 * (vcvtdq2ps, vmulps, vaddps: no fused multiply-add). Kernels: igemm_int_avx2.h. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/igemm_int_avx2.h"

TAVX2 INLINE void store8(const vitq_i_qtile *t, size_t r, size_t j0, __m256i v) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(t->col_scale + j0));
    f = _mm256_add_ps(f, _mm256_loadu_ps(t->col_bias + j0));
    float *o = t->out + r * t->ldo + j0;
    size_t left = t->ncols - j0;
    if (left >= 8) {
        if (t->accumulate) f = _mm256_add_ps(_mm256_loadu_ps(o), f);
        _mm256_storeu_ps(o, f);
    } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, f);
        for (size_t i = 0; i < left; i++) o[i] = t->accumulate ? o[i] + tmp[i] : tmp[i];
    }
}

VITQ_I_QTILES_AVX2(_f32);

#else
typedef int vitq_i_igemm_avx2_unused; /* an empty translation unit is not ISO C */
#endif
