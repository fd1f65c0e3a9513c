/* Portable C kernels of the integer GEMM, integer mode (igemm.h): the corrections and the integer bias
 * in wrapping int32, nothing else. No floating point (the reference of the integer-only runtime:
 * tests/build/check_float_free.sh). */
#include "kernels/igemm_int_generic.h"

static inline void store_acc(const vitq_i_qtile *t, size_t r, size_t j, uint32_t acc) {
    t->iout[r * t->ldo + j] = vitq_i_wrap_i32(acc + (uint32_t)t->col_ibias[j]);
}

VITQ_I_QTILES_GENERIC(_i32);
