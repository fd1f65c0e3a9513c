/* The choice of the integer non-linear kernels' vector path (intnl_dispatch.h). No floating point:
 * it builds with -mgeneral-regs-only like intnl.c (tests/build/check_float_free.sh). */
#include "kernels/intnl_dispatch.h"

#include <stddef.h>

#include "kernels/cpu.h"

const vitq_i_intnl_paths vitq_i_intnl_generic = {"generic", NULL, NULL, NULL, NULL, NULL, NULL, NULL};

/* The AVX-512 table holds the AVX2 row functions but for the I-BERT softmax and the LayerNorm output
 * stage: these kernels are bound by their per-row scalar steps and ShiftGELU's divisions more than by the
 * vector width, and on the machines measured (Zen 4, which splits 512-bit operations in two) wider lanes
 * gained nothing that would pay for a second copy to keep bit-exact (bench/bench_intnl.c); the
 * exceptions: the I-BERT softmax's 16-lane form (masked tails, the exp reduction's steps as masks) took
 * the integer-only DeiT-S about 1-3 ms/image faster (docs/performance.md, "Integer-only execution"), and
 * the LayerNorm output stage, whose int64 lanes AVX2 must emulate (floor shifts by a sign mask, clamps by
 * compares and blends), runs about a quarter faster with vpsravq / vpminsq / vpmaxsq on 8 int64 lanes.
 * A 16-lane I-BERT GELU fused with its two requantizations (in registers, no int16 / int32 buffers)
 * measured no faster than the three passes on Zen 4: its work is arithmetic, not memory. */
const vitq_i_intnl_paths *vitq_i_intnl_active(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned f = vitq_i_features_active();
    if (f & VITQ_I_CPU_AVX512) return &vitq_i_intnl_avx512;
    if (f & VITQ_I_CPU_AVX2_FMA) return &vitq_i_intnl_avx2;
#endif
    return &vitq_i_intnl_generic;
}
