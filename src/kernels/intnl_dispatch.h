/* The vector paths of the integer non-linear kernels (intnl.h) and the choice among them.
 *
 * Why a table: intnl.c must stay free of floating point and build with -mgeneral-regs-only
 * (tests/build/check_float_free.sh), which also forbids the vector registers, so it can neither hold
 * the vector code nor include <immintrin.h>. The vector row functions live in intnl_avx2.c
 * (per-function target attributes), which fills the AVX2 table and the AVX-512 one (the AVX2 entries
 * but one, see intnl_dispatch.c); intnl_dispatch.c returns the table of the active instruction set (vitq_i_features_active(), so vitq_i_isa_force and
 * VITQ_ISA lower it). intnl.c asks for it once per kernel call and runs an entry when it is not NULL,
 * else its own scalar code, which stays the reference: every entry gives the scalar code's bits for
 * every input and every parameter struct the kernel's check accepts (tests/unit/test_intnl.c).
 * This header names no type of intnl.h (the parameters travel as const void *, as in intnl.c's row
 * functions), so intnl.c including it makes no include cycle; the vector files use nothing of
 * intnl.o, so the symbol graph has none either (tests/arch/check_layers.py). */
#ifndef VITQ_KERNELS_INTNL_DISPATCH_H
#define VITQ_KERNELS_INTNL_DISPATCH_H

#include <stdint.h>

/* One row of a kernel, as intnl.c's own row functions: the kernel's checked parameter struct, n inputs
 * (1 <= n <= VITQ_I_INTNL_MAX_N), the row's outputs. */
typedef void (*vitq_i_intnl_row_fn)(const void *p, const int16_t *x, int64_t n, void *out);

typedef struct vitq_i_intnl_paths {
    const char *name;
    vitq_i_intnl_row_fn ibert_softmax; /* p: vitq_i_ibert_softmax_params, out: int32_t */
    vitq_i_intnl_row_fn shiftmax;      /* p: vitq_i_shiftmax_params, out: int32_t */
    vitq_i_intnl_row_fn ibert_gelu;    /* p: vitq_i_ibert_gelu_params, out: int32_t */
    vitq_i_intnl_row_fn shiftgelu;     /* p: vitq_i_shiftgelu_params, out: int32_t */
    /* The integer LayerNorms' statistics of n <= 4096 int16 values: *s1 = sum x, *s2 = sum x^2. */
    void (*ln_sums)(const int16_t *x, int64_t n, int64_t *s1, int64_t *s2);
    /* FQ-ViT's P.V, one token: o[d] += round_shr(v[d] 2^frac, q) for d < dim; frac in [0, 12],
     * q in [0, 254] (intnl.h). */
    void (*pv_token)(const int8_t *v, int64_t dim, int32_t frac, int32_t q, int32_t *o);
    /* The I-BERT / I-ViT LayerNorm's output stage of one row of n channels: for each c,
     * y = floor_shr((x[c] - mu) factor, 1), out[c] = clamp(round_shr(y mult_c + bias_c, shift_c) + zero,
     * min, max). ch: the checked vitq_i_ln_channel array, grid: its vitq_i_ln_out. mu in
     * [-32768, 32767], factor in [0, 2^31] with |x[c] - mu| factor <= 2^31 (intnl.c's bound, which
     * keeps |y| <= 2^30). */
    void (*ln_output)(const int16_t *x, int64_t n, int64_t mu, int64_t factor, const void *ch, const void *grid,
                      int32_t *out);
} vitq_i_intnl_paths;

/* The table of the active path; the generic one has only NULL entries. Never NULL. */
const vitq_i_intnl_paths *vitq_i_intnl_active(void);

extern const vitq_i_intnl_paths vitq_i_intnl_generic;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
extern const vitq_i_intnl_paths vitq_i_intnl_avx2;
extern const vitq_i_intnl_paths vitq_i_intnl_avx512;
#endif

#endif
