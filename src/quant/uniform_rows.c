/* Fake quantization of a contiguous run of floats with one scale and zero point: the hot path of
 * simulated activations (attention q/k/v and probabilities of a quantized model). The AVX-512 path
 * repeats vitq_i_uniform_fq's float operations lane by lane (one IEEE division, the same magic-number
 * rounding, the same clamps, NaN -> 0), so it gives the scalar results bit for bit. */
#include "kernels/cpu.h"
#include "quant/uniform.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx512f"))) static void run_avx512(const vitq_i_uniform *u, float *p, int64_t n, float s,
                                                         float z) {
    const __m512 scale = _mm512_set1_ps(s), zero = _mm512_set1_ps(z), limit = _mm512_set1_ps(4194304.0f);
    const __m512 nlimit = _mm512_set1_ps(-4194304.0f), magic = _mm512_set1_ps(12582912.0f);
    const __m512 qmin = _mm512_set1_ps((float)u->qmin), qmax = _mm512_set1_ps((float)u->qmax);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(p + i);
        __m512 t = _mm512_div_ps(x, scale);
        __mmask16 nan = _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
        t = _mm512_min_ps(_mm512_max_ps(t, nlimit), limit);
        __m512 v = _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(t, magic), magic), zero);
        v = _mm512_min_ps(_mm512_max_ps(v, qmin), qmax);
        v = _mm512_mask_mov_ps(v, nan, zero); /* NaN: the zero point's code, value 0 */
        _mm512_storeu_ps(p + i, _mm512_mul_ps(_mm512_sub_ps(v, zero), scale));
    }
    for (; i < n; i++) p[i] = vitq_i_uniform_fq(u, p[i], s, z);
}
#endif

void vitq_i_uniform_fq_run(const vitq_i_uniform *u, float *p, int64_t n, float scale, float zero_point) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (vitq_i_isa_active() == VITQ_I_ISA_AVX512) {
        run_avx512(u, p, n, scale, zero_point);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) p[i] = vitq_i_uniform_fq(u, p[i], scale, zero_point);
}
