/* Weight, bias and input gradients of a linear layer on the packed GEMM (linear.h).
 *
 * dw = dy^T x is a GEMM c = a . b^T with a = dy^T [out][rows] (a transposed copy of dy) and b = x^T
 * [in][rows], which the GEMM packs straight from x with strides (1, in): no second copy. The GEMM sums
 * each element in increasing row order in one float accumulator, whatever the threads. */
#include <string.h>

#include "grad/backward.h"
#include "kernels/kernels.h"
#include "train/linear.h"

#define ALIGN 16 /* floats: keeps every part of the scratch 64-byte aligned */
#define TILE 32  /* transpose tile */

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

size_t vitq_i_linear_weight_grad_floats(size_t rows, size_t in, size_t out) {
    size_t t, total, packed = vitq_i_gemm_packed_floats(in, rows);
    if (packed == SIZE_MAX || !vitq_i_mul_size(out, rows, &t) || t > SIZE_MAX - ALIGN) return SIZE_MAX;
    if (out > SIZE_MAX / 4 || !vitq_i_add_size(round_up(2 * out), round_up(t), &total) ||
        !vitq_i_add_size(total, packed, &total))
        return SIZE_MAX;
    return total;
}

/* dst[c][r] = src[r][c] for a rows x cols matrix, in tiles so that both sides stay in cache. */
static void transpose(const float *src, size_t rows, size_t cols, float *dst) {
    for (size_t r0 = 0; r0 < rows; r0 += TILE)
        for (size_t c0 = 0; c0 < cols; c0 += TILE) {
            size_t r1 = r0 + TILE < rows ? r0 + TILE : rows, c1 = c0 + TILE < cols ? c0 + TILE : cols;
            for (size_t r = r0; r < r1; r++)
                for (size_t c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
        }
}

void vitq_i_linear_weight_grad(const float *x, const float *dy, size_t rows, size_t in, size_t out, float *dw,
                               float *db, int accumulate, float *scratch, int nthreads) {
    double *sums = (double *)(void *)scratch; /* 2 * out floats hold out doubles */
    float *dyt = scratch + round_up(2 * out);
    float *panels = dyt + round_up(out * rows);
    if (db) {
        memset(sums, 0, out * sizeof(double));
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < out; j++) sums[j] += dy[r * out + j];
        for (size_t j = 0; j < out; j++) db[j] = accumulate ? db[j] + (float)sums[j] : (float)sums[j];
    }
    if (!dw) return;
    if (rows == 0) {
        if (!accumulate) memset(dw, 0, out * in * sizeof(float));
        return;
    }
    transpose(dy, rows, out, dyt);
    vitq_i_packed xt;
    vitq_i_gemm_pack_strided(x, 1, in, in, rows, panels, &xt);
    vitq_i_gemm(dyt, rows, out, &xt, NULL, dw, in, accumulate ? VITQ_I_EPI_RESIDUAL : VITQ_I_EPI_NONE, nthreads);
}

size_t vitq_i_linear_input_grad_floats(size_t in, size_t out) { return vitq_i_transposed_floats(out, in); }

void vitq_i_linear_input_grad(const float *w, const float *dy, size_t rows, size_t in, size_t out, float *dx,
                              int accumulate, float *scratch, int nthreads) {
    vitq_i_packed wt;
    vitq_i_pack_transposed(w, out, in, scratch, &wt);
    vitq_i_linear_backward(&wt, dy, rows, dx, accumulate, nthreads);
}
