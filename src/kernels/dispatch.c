/* The choice of instruction-set table (isa.h). Kept apart from the tables and from the drivers so that
 * the kernels' files depend on one another in one direction only: drivers -> dispatch -> tables. */
#include "kernels/isa.h"

const vitq_i_isa_kernels *vitq_i_kernels_active(void) {
#if VITQ_I_HAVE_X86
    switch (vitq_i_isa_active()) {
    case VITQ_I_ISA_AVX512: return &vitq_i_kernels_avx512;
    case VITQ_I_ISA_AVX2: return &vitq_i_kernels_avx2;
    default: break;
    }
#endif
    return &vitq_i_kernels_generic;
}

/* The fake quantization of a run through the active path (the hot path of simulated activations:
 * attention q/k/v and probabilities of a quantized model). */
void vitq_i_uniform_fq_run(const vitq_i_uniform *u, float *p, int64_t n, float scale, float zero_point) {
    if (n > 0) vitq_i_kernels_active()->uniform_fq(u, p, (size_t)n, scale, zero_point);
}
