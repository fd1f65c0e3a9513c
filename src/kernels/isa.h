/* The instruction-set specific pieces behind the kernel drivers (gemm.c, attention.c, norm.c,
 * uniform.c, igemm.c). Each path (isa_generic.c, isa_avx2.c, isa_avx512.c) fills one table; the drivers
 * pick the table of vitq_i_isa_active() at every call (dispatch.c), so a path forced between calls
 * takes effect. */
#ifndef VITQ_KERNELS_ISA_H
#define VITQ_KERNELS_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/uniform.h"

/* x86-64 vector paths are compiled with per-function target attributes; elsewhere they are absent. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VITQ_I_HAVE_X86 1
#else
#define VITQ_I_HAVE_X86 0
#endif

typedef struct vitq_i_isa_kernels {
    /* Rows one tile call takes at most (<= VITQ_I_GEMM_MR). */
    size_t mr;
    /* 32 columns (VITQ_I_GEMM_NR) of `rows` <= mr rows:
     *   c[r][j] = c0[r][j] + sum_{kk<k} a[r*lda + kk] * b[kk*ldb + j],   r < rows, j < 32,
     * where c0 is 0, or c[r][j] itself when `accumulate` (then the sum continues exactly as if the two
     * calls were one: one accumulator per element, kk increasing). b rows need 32 readable floats. */
    void (*tile)(size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                 size_t ldc, int accumulate);
    /* c[j] = epilogue(acc[j] + bias[j], c[j]) for j < n (bias NULL: acc[j]). */
    void (*epilogue)(const float *acc, const float *bias, float *c, size_t n, vitq_i_epilogue e);
    /* vitq_i_softmax of one row. */
    void (*softmax)(float *x, size_t n);
    /* vitq_i_layernorm of one row (out may be x). */
    void (*layernorm)(const float *x, size_t dim, const float *gamma, const float *beta, float eps, float *out);
    /* p[i] = vitq_i_uniform_fq(u, p[i], scale, zero) for i < n (kernels/uniform.h), bit for bit. */
    void (*uniform_fq)(const vitq_i_uniform *u, float *p, size_t n, float scale, float zero);
    /* out[i] = vitq_i_uniform_code(u, x[i], scale, zero) + offset for i < n, as bytes, bit for bit;
     * every code + offset must lie in [0, 255] (the caller's grid guarantees it). */
    void (*uniform_u8)(const vitq_i_uniform *u, const float *x, size_t n, float scale, float zero, int32_t offset,
                       uint8_t *out);
} vitq_i_isa_kernels;

extern const vitq_i_isa_kernels vitq_i_kernels_generic;
#if VITQ_I_HAVE_X86
extern const vitq_i_isa_kernels vitq_i_kernels_avx2;
extern const vitq_i_isa_kernels vitq_i_kernels_avx512;
#endif

/* The table of the active path (dispatch.c). */
const vitq_i_isa_kernels *vitq_i_kernels_active(void);

/* The canonical order of the double sums of the softmax and the LayerNorm, shared by every path so
 * that they give the same bits: element i goes to lane i % LANES, lanes are added in increasing i,
 * then folded in halves (lane l += lane l + LANES/2, ...). */
#define VITQ_I_SOFTMAX_LANES 16
#define VITQ_I_NORM_LANES 8

#endif
