/* AdaRound: learned rounding of a weight tensor on a fixed uniform grid (Nagel et al., "Up or Down?
 * Adaptive Rounding for Post-Training Quantization", arXiv 2004.10568; constants as BRECQ / QDrop's code,
 * docs/methods.md 13). Each weight w rounds down or up, chosen by a trained variable V:
 *
 *   h(V)   = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1),   zeta = 1.1, gamma = -0.1 (rectified sigmoid)
 *   w_soft = s (clamp(floor(w / s) + z + h(V), qmin, qmax) - z)
 *   f_reg  = sum over weights of 1 - |2 h(V) - 1|^beta    (0 exactly when every h is 0 or 1)
 *
 * s and z are the group's scale and zero point (symmetric grids: z = 0, signed codes); V starts where
 * h(V) = w / s - floor(w / s), so w_soft = w at first (inside the grid's range). beta is annealed from
 * 20 to 2 after a warm-up without the regulariser (vitq_i_adaround_anneal). At the end every weight takes
 * code clamp(floor(w / s) + z + [h(V) >= 0.5], qmin, qmax): an ordinary quantized weight.
 *
 * Layout: `count` = channels * inner weights, channel-major (a weight [out][in] is channels = out, inner =
 * in); channel c uses scale[c / cpg], zero_point[c / cpg]. */
#ifndef VITQ_TRAIN_ADAROUND_H
#define VITQ_TRAIN_ADAROUND_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/uniform.h"

#define VITQ_I_ADAROUND_ZETA 1.1
#define VITQ_I_ADAROUND_GAMMA (-0.1)

typedef struct vitq_i_adaround {
    vitq_allocator alloc;
    char name[96];
    vitq_i_uniform grid;
    int64_t channels, inner, groups, cpg;
    size_t count;       /* channels * inner */
    float *scale, *zero_point; /* groups: copies */
    float *base;        /* count: floor(w / s) + z, the code rounding down would give (unclamped) */
    float *v;           /* count: V, the trained variable (vitq_i_param) */
    float *v_grad;      /* count: accumulated by the backward functions */
    int nthreads;       /* threads of the per-step functions (soft, backward, reg); 1 after create. Results
                         * do not depend on it */
    double *chunk_sums; /* the regulariser's value per chunk of weights */
} vitq_i_adaround;

/* Rounding variables for weight w (count = channels * inner floats) on `grid` with per-group scale and
 * zero point (groups * cpg = channels). VITQ_ERR_INVALID_ARGUMENT naming `name` for bad counts,
 * VITQ_ERR_OUT_OF_RANGE for a scale that is not finite and > 0, VITQ_ERR_NON_FINITE for a NaN or infinite
 * weight, VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_adaround_create(vitq_i_adaround *r, const vitq_allocator *a, const char *name, const float *w,
                                   int64_t channels, int64_t inner, const vitq_i_uniform *grid, const float *scale,
                                   const float *zero_point, int64_t groups, int64_t cpg);
void vitq_i_adaround_free(vitq_i_adaround *r);

/* h(V) and dh/dV (0 where the clamp holds h at 0 or 1). */
double vitq_i_adaround_h(double v);
double vitq_i_adaround_dh(double v);

/* w_soft[count] from the current V. */
void vitq_i_adaround_soft(const vitq_i_adaround *r, float *w_soft);

/* v_grad += dL/dV given d_soft = dL/dw_soft: d_soft s h'(V) where the code is inside [qmin, qmax], else 0. */
void vitq_i_adaround_backward(vitq_i_adaround *r, const float *d_soft);

/* f_reg at `beta` (> 0); adds lambda * df_reg/dV to v_grad when lambda != 0. */
double vitq_i_adaround_reg(vitq_i_adaround *r, double beta, double lambda);

/* The annealing of BRECQ / QDrop: no regulariser during the first warmup * iters steps (active = 0), then
 * beta decays linearly from beta_start to beta_end over the remaining ones. */
typedef struct vitq_i_adaround_anneal {
    int64_t iters;
    double warmup;               /* fraction, 0.2 */
    double beta_start, beta_end; /* 20, 2 */
} vitq_i_adaround_anneal;

vitq_i_adaround_anneal vitq_i_adaround_anneal_defaults(int64_t iters);
/* beta at step t (0-based) and whether the regulariser is on. */
double vitq_i_adaround_beta(const vitq_i_adaround_anneal *a, int64_t t, int *active);

/* Hard rounding: codes[count] (h >= 0.5 rounds up), in [qmin, qmax]. */
void vitq_i_adaround_codes(const vitq_i_adaround *r, int32_t *codes);
/* Hard-rounded weights (code - z) s, what the codes dequantize to. */
void vitq_i_adaround_hard(const vitq_i_adaround *r, float *w_hard);

/* Weights whose h is within `tol` of 0 or 1 (the regulariser's progress; all of them at the end). */
size_t vitq_i_adaround_settled(const vitq_i_adaround *r, double tol);

#endif
