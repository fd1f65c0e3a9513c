/* Portable C kernels of the integer GEMM (see igemm.h): the reference every vector path must match
 * bit for bit, and the path of CPUs without AVX2. Plain loops over the packed panel layout.
 * One accumulation body for both output modes: included by igemm_int_generic.c (integer mode, no
 * floating point) and igemm_generic.c (float mode), each of which defines store_acc, the store of one
 * corrected accumulator acc' (igemm.h) of row r, channel j. */
#ifndef VITQ_KERNELS_IGEMM_INT_GENERIC_H
#define VITQ_KERNELS_IGEMM_INT_GENERIC_H

#include "kernels/igemm.h"

#define NR VITQ_I_QGEMM_NR
#define MR 4
#define GROUP 64 /* bytes of one 16-channel group of a panel step */

static inline void store_acc(const vitq_i_qtile *t, size_t r, size_t j, uint32_t acc);

/* The four activation bytes of quad q for each of the tile's rows (in place, or from the tail). */
static void gather_quad(const vitq_i_qtile *t, size_t q, int32_t a[MR][4]) {
    for (size_t r = 0; r < t->nrows; r++) {
        const uint8_t *p = 4 * q < t->kdirect ? t->rows[r] + 4 * q : t->tail + 8 * r + (4 * q - t->kdirect);
        for (size_t i = 0; i < 4; i++) a[r][i] = p[i];
    }
}

/* The corrections every path implements, in wrapping int32, then the mode's store. */
static void finish(const vitq_i_qtile *t, uint32_t acc[MR][NR]) {
    for (size_t r = 0; r < t->nrows; r++) {
        uint32_t rs = t->need_row_sums ? (uint32_t)t->row_sum[r] : 0u;
        for (size_t j = 0; j < t->ncols; j++)
            store_acc(t, r, j, acc[r][j] - (uint32_t)t->col_zero[j] * rs + (uint32_t)t->col_add[j]);
    }
}

/* Within a k-step of the panel, channel j's four bytes sit at 4 * j (groups of 16 channels follow
 * one another), so one step is a plain [48][4] array. */
static void tile8(const vitq_i_qtile *t) {
    uint32_t acc[MR][NR] = {{0}};
    int32_t a[MR][4];
    for (size_t q = 0; q < t->kpad / 4; q++) {
        const int8_t *b = (const int8_t *)(t->panel + q * 3 * GROUP);
        gather_quad(t, q, a);
        for (size_t r = 0; r < t->nrows; r++)
            for (size_t j = 0; j < NR; j++)
                acc[r][j] += (uint32_t)(a[r][0] * b[4 * j] + a[r][1] * b[4 * j + 1] + a[r][2] * b[4 * j + 2] +
                                        a[r][3] * b[4 * j + 3]);
    }
    finish(t, acc);
}

static void tile4(const vitq_i_qtile *t) {
    uint32_t acc[MR][NR] = {{0}};
    int32_t lo[MR][4], hi[MR][4];
    for (size_t o = 0; o < t->kpad / 8; o++) {
        const uint8_t *b = t->panel + o * 3 * GROUP;
        gather_quad(t, 2 * o, lo);
        gather_quad(t, 2 * o + 1, hi);
        for (size_t r = 0; r < t->nrows; r++)
            for (size_t j = 0; j < NR; j++) {
                int32_t s = 0;
                for (size_t i = 0; i < 4; i++) s += lo[r][i] * (b[4 * j + i] & 15) + hi[r][i] * (b[4 * j + i] >> 4);
                acc[r][j] += (uint32_t)s;
            }
    }
    finish(t, acc);
}

/* The table of the output mode M (_f32 or _i32, igemm.h): one line in each including file. */
#define VITQ_I_QTILES_GENERIC(M) const vitq_i_qimpl vitq_i_qimpl_generic##M = {MR, MR, tile8, tile4}

#endif
