/* Dyadic requantization between the ops of the integer-only path: an int32 value x at scale S_in
 * becomes a code at scale S_out by the real factor S_in / S_out, approximated as mult * 2^-shift with
 * integer mult and shift (quant/dyadic.h prepares them from the float scales at calibration time).
 * requant.c has no floating point at all (it builds with -mgeneral-regs-only).
 *
 * The rounding, everywhere in this file: round(x * mult / 2^shift) rounds the exact rational value
 * half away from zero (2.5 -> 3, -2.5 -> -3), computed with 64-bit intermediates:
 *     p = x * mult  (|p| < 2^62),  round = sign(p) * floor((|p| + 2^(shift-1)) / 2^shift)
 * (shift 0: p itself), so the result is symmetric under negating x.
 * Parameter ranges (checked by every kernel, VITQ_ERR_OUT_OF_RANGE naming the parameter):
 *     mult in [2^30, 2^31 - 1], shift in [0, 62]: factors in [2^-32, 2^31).
 * Every intermediate then fits int64: |p| <= 2^31 (2^31 - 1) < 2^62, |p| + 2^61 < 2^63. */
#ifndef VITQ_KERNELS_REQUANT_H
#define VITQ_KERNELS_REQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

#define VITQ_I_DYADIC_MULT_MIN 1073741824 /* 2^30 */
#define VITQ_I_DYADIC_MULT_MAX 2147483647 /* 2^31 - 1 */
#define VITQ_I_DYADIC_SHIFT_MAX 62

/* The real factor mult * 2^-shift. */
typedef struct vitq_i_dyadic {
    int32_t mult;
    int32_t shift;
} vitq_i_dyadic;

/* VITQ_OK, or VITQ_ERR_OUT_OF_RANGE naming `what` (e.g. "requant rows: mult[3]") and the bad field. */
vitq_status vitq_i_dyadic_check(vitq_i_dyadic d, const char *what, size_t index);

/* round(x * d.mult / 2^d.shift) as above, for a d that passes vitq_i_dyadic_check. */
int64_t vitq_i_dyadic_apply(int32_t x, vitq_i_dyadic d);

/* The type of the codes vitq_i_requant_rows writes. */
typedef enum vitq_i_requant_type {
    VITQ_I_RQ_INT8 = 0,  /* int8_t code, qmin >= -128, qmax <= 127 */
    VITQ_I_RQ_UINT8 = 1, /* uint8_t byte = code + offset, the activation bytes of igemm.h: offset 128 when
                          * qmin < 0 (codes in [-128, 127]), else 0 (codes in [0, 255]) */
    VITQ_I_RQ_INT16 = 2  /* int16_t code, qmin >= -32768, qmax <= 32767 */
} vitq_i_requant_type;

/* The output grid of vitq_i_requant_rows: codes clamped to [qmin, qmax] around the zero point. */
typedef struct vitq_i_requant_grid {
    vitq_i_requant_type type;
    int32_t zero;       /* in [-65536, 65536] */
    int32_t qmin, qmax; /* qmin <= qmax, within the range of `type` */
} vitq_i_requant_grid;

/* code[r][c] = clamp(round(x[r][c] * mult / 2^shift) + zero, qmin, qmax) for `rows` rows of `cols`
 * int32s (row stride ldx), written as g->type at out + r * ldo + c (ldo in elements of that type).
 * `m` holds one multiplier (nm = 1: per tensor) or one per column (nm = cols: per output channel,
 * after a GEMM whose column j has scale a_scale * w_scale[j]).
 * Errors (nothing written): VITQ_ERR_INVALID_ARGUMENT (NULL pointers with rows, cols > 0, nm not 1
 * or cols, strides below cols, unknown type), VITQ_ERR_OUT_OF_RANGE (a multiplier, the zero point or
 * [qmin, qmax] outside its range, named). */
vitq_status vitq_i_requant_rows(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                                size_t nm, const vitq_i_requant_grid *g, void *out, size_t ldo);

/* The checks of vitq_i_requant_rows that do not depend on the matrices: the grid and the multipliers
 * (nm = 1 or cols). After VITQ_OK, vitq_i_requant_block with them (m + c0 and nm = the block's columns for
 * per-column multipliers, on a block of columns [c0, c0 + n) of the checked ones) needs no checks: the
 * integer-only runtime requantizes every GEMM tile in its epilogue and checks once per GEMM. */
vitq_status vitq_i_requant_check(const vitq_i_dyadic *m, size_t nm, size_t cols, const vitq_i_requant_grid *g);
/* vitq_i_requant_rows without its checks (valid pointers and strides, arguments that passed
 * vitq_i_requant_check): the same codes. */
void vitq_i_requant_block(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m, size_t nm,
                          const vitq_i_requant_grid *g, void *out, size_t ldo);

/* Integer residual add: res[r][c] = clamp(res[r][c] + round(x[r][c] * mult / 2^shift), lo, hi), for a
 * branch's int32 output x (at its own scale, per column for a GEMM's output) added into the residual
 * stream kept as integer codes at the stream's scale (the factor is S_x / S_res). `m`, nm as for
 * vitq_i_requant_rows. The int32 form takes any lo <= hi; the int16 form needs
 * -32768 <= lo <= hi <= 32767. Errors as vitq_i_requant_rows's (lo > hi or outside the type:
 * VITQ_ERR_OUT_OF_RANGE); nothing is written then. */
vitq_status vitq_i_residual_add_i32(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                    const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);
vitq_status vitq_i_residual_add_i16(int16_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                    const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);

/* The multiplier checks of vitq_i_residual_add_i32, and the add without its checks (arguments that passed
 * them, any lo <= hi), as vitq_i_requant_check / vitq_i_requant_block. */
vitq_status vitq_i_residual_check(const vitq_i_dyadic *m, size_t nm, size_t cols);
void vitq_i_residual_add_i32_block(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                   const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);

/* ---- the AVX2 paths of vitq_i_requant_rows and the residual adds (requant_avx2.c) ----
 * requant.c must build without vector registers, so the vector code lives in its own file; requant.c
 * calls it when vitq_i_features_active() has AVX2 (vitq_i_isa_force / VITQ_ISA lower it). It gives
 * the portable code's bits for every argument the public functions accept. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VITQ_I_REQUANT_AVX2 1
/* codes[c] = clamp(round(x[c] * m / 2^shift) + zero, qmin, qmax) + offset for c < cols, with m[c]
 * (nm == cols) or m[0] (nm == 1); the arguments passed vitq_i_requant_rows's checks. */
void vitq_i_requant_row_avx2(const int32_t *x, size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t zero,
                             int32_t qmin, int32_t qmax, int32_t offset, int32_t *codes);
/* vitq_i_requant_rows's work, its arguments checked, `offset` the UINT8 offset it derived (else 0). */
void vitq_i_requant_rows_avx2(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                              size_t nm, const vitq_i_requant_grid *g, int32_t offset, void *out, size_t ldo);
/* The residual adds' work, their arguments checked (rows, cols > 0). */
void vitq_i_residual_add_i32_avx2(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                  const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);
void vitq_i_residual_add_i16_avx2(int16_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                  const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);
/* The AVX-512 paths (requant_avx512.c), taken before the AVX2 ones when vitq_i_features_active() has
 * AVX-512: the same bits for every argument the public functions accept. */
#define VITQ_I_REQUANT_AVX512 1
void vitq_i_requant_rows_avx512(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                                size_t nm, const vitq_i_requant_grid *g, int32_t offset, void *out, size_t ldo);
void vitq_i_residual_add_i32_avx512(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                    const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi);
#endif

#endif
