/* The integer GEMM of igemm.h with each tile's int32 results handed to a callback instead of stored:
 * the integer-only runtime (kernels/intvit.c) requantizes them, or adds them into its residual stream,
 * while they are in L1, so no int32 matrix of a whole layer goes to memory and comes back. The int32s a
 * sink sees are exactly vitq_i_qgemm_i32's (the same tiles write them). No floating point
 * (tests/build/check_float_free.sh): defined in igemm_int.c. */
#ifndef VITQ_KERNELS_IGEMM_INT_SINK_H
#define VITQ_KERNELS_IGEMM_INT_SINK_H

#include "kernels/igemm.h"

/* Receives c[r0 + i][c0 + j] = x[i * ldx + j] for i < nrows, j < ncols (one tile: nrows <=
 * VITQ_I_QGEMM_MR_MAX, ncols <= VITQ_I_QGEMM_NR). Called from the GEMM's worker threads, each tile once;
 * tiles never overlap, so a sink writing only its own block of an output needs no lock. */
typedef void (*vitq_i_qgemm_sink)(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x,
                                  size_t ldx);

/* vitq_i_qgemm_i32 (same arguments, checks and errors) with the output given to `sink` tile by tile. */
vitq_status vitq_i_qgemm_i32_sink(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                                  const int32_t *bias, vitq_i_qgemm_sink sink, void *ctx, int nthreads);

#endif
