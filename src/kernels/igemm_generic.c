/* Portable C kernels of the integer GEMM, float mode (igemm.h): the epilogue every path implements,
 * one rounding per step (no fused multiply-add). The accumulation: igemm_int_generic.h. */
#include "kernels/igemm_int_generic.h"

static inline void store_acc(const vitq_i_qtile *t, size_t r, size_t j, uint32_t acc) {
    float *o = t->out + r * t->ldo + j;
    float p = (float)vitq_i_wrap_i32(acc) * t->col_scale[j];
    float v = p + t->col_bias[j];
    if (t->accumulate) v = *o + v;
    *o = v;
}

VITQ_I_QTILES_GENERIC(_f32);
