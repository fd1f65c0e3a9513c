/* LSQ: a uniform fake quantizer whose step sizes are learned (Esser et al., "Learned Step Size
 * Quantization", arXiv 1902.08153), the quantizer of QAT (issue 21, VVTQ) and of the activation steps of
 * block reconstruction (issue 20). Per group g (per tensor: one group; per channel: one per channel):
 *
 *   u = (x - b) / s,   c = clamp(round(u), qmin, qmax),   y = c s + b
 *
 * s = step[g] > 0, b = offset[g] (0 without offsets; VVTQ's unsigned post-GELU input learns one), round
 * half to even as the library's uniform grid (kernels/uniform.h), so with b = 0 the codes and values are
 * those of a uniform quantizer of scale s and zero point 0, bit for bit. Codes: signed [-2^(k-1),
 * 2^(k-1) - 1] or unsigned [0, 2^k - 1], k = 2..8.
 *
 * Backward (the straight-through estimator: round has derivative 0 almost everywhere, so LSQ replaces it
 * by the identity in the chain rule while keeping its value):
 *   inside, qmin <= u <= qmax:  dy/dx = 1,  dy/ds = round(u) - u,  dy/db = 0
 *   below,  u < qmin:           dy/dx = 0,  dy/ds = qmin,          dy/db = 1
 *   above,  u > qmax:           dy/dx = 0,  dy/ds = qmax,          dy/db = 1
 * The step's gradient is multiplied by the gradient scale g_s (LSQ: 1/sqrt(N qmax), N the elements that
 * share the step; it keeps the step's update in proportion to its size; VVTQ's weights: 1/sqrt(qmax
 * ||w_g||_1), one per group, which follows the group's magnitude). Offsets are not scaled.
 *
 * Layout: x is a vitq_tensor_view (channel c of the view uses group c / cpg); every other array of a call
 * (y, dy, dx) has x's layout, the same offsets from its own base pointer. */
#ifndef VITQ_TRAIN_LSQ_H
#define VITQ_TRAIN_LSQ_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/uniform.h"

typedef enum vitq_i_lsq_gscale {
    VITQ_I_LSQ_GSCALE_OFF = 0,  /* g_s = 1 */
    VITQ_I_LSQ_GSCALE_AUTO = 1, /* g_s = 1 / sqrt(N qmax), N = elements per group in the backward's view */
    VITQ_I_LSQ_GSCALE_FIXED = 2, /* g_s = the `grad_scale` member, the same for every group */
    VITQ_I_LSQ_GSCALE_PER_GROUP = 3 /* g_s = group_scale[g] (vitq_i_lsq_set_magnitude_scale: VVTQ's weights) */
} vitq_i_lsq_gscale;

typedef struct vitq_i_lsq {
    vitq_allocator alloc;
    char name[96];         /* for messages: the point or tensor */
    vitq_i_uniform grid;   /* bits, signed or not, qmin / qmax */
    int64_t groups, cpg;   /* channels = groups * cpg */
    float *step;           /* groups: s, a trained parameter (vitq_i_param) */
    float *step_grad;      /* groups: accumulated by backward */
    float *offset;         /* groups or NULL: b */
    float *offset_grad;    /* groups or NULL */
    /* groups or NULL: a fixed whole-number zero point z per group (an asymmetric uniform grid, as a PTQ
     * result's weights may have): codes c = clamp(round((x - b) / s) + z), y = (c - z) s + b, and the clamp's
     * edges in the gradient become qmin - z and qmax - z (vitq_i_lsq_set_zero_points) */
    float *zero_point;
    vitq_i_lsq_gscale gscale;
    double grad_scale;     /* used with VITQ_I_LSQ_GSCALE_FIXED */
    double *group_scale;   /* groups or NULL (until first set): used with VITQ_I_LSQ_GSCALE_PER_GROUP */
    float min_step;        /* vitq_i_lsq_project keeps steps >= this (default 1e-8) */
} vitq_i_lsq;

/* A quantizer of `bits` (2..8) bits, signed (1) or unsigned (0), for views of groups * cpg channels,
 * with offsets when with_offset. Steps start at 1, offsets and gradients at 0; gradient scale AUTO.
 * VITQ_ERR_INVALID_ARGUMENT (naming `name`) for bits out of range or counts < 1; VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_lsq_create(vitq_i_lsq *q, const vitq_allocator *a, const char *name, int32_t bits,
                              int is_signed, int64_t groups, int64_t cpg, int with_offset);
void vitq_i_lsq_free(vitq_i_lsq *q);

/* LSQ's initial steps from data: s_g = 2 mean|x - b_g| / sqrt(qmax) over the group's elements of x (a
 * group whose values are all equal to its offset gets s = 1: any step is exact there).
 * VITQ_ERR_NON_FINITE naming the group for NaN / infinity, VITQ_ERR_SHAPE for a view of other channels. */
vitq_status vitq_i_lsq_init_data(vitq_i_lsq *q, const vitq_tensor_view *x);

/* VVTQ's weight steps: per group the least-squares step of its own codes. Starting from s = max|w - b| /
 * qmax (unsigned codes: max(w - b) / qmax), repeat: c = the forward's codes of w at s, s = <w - b, c> /
 * <c, c>, until |delta s / s| < 1e-5 or 100 rounds. A round cannot raise the group's quantization error
 * (the step is least squares for the codes, the codes nearest for the step), so the result is no worse
 * than max/qmax, and once the codes stop changing it is a fixed point, a local minimum of the error.
 * Not the global one (measured against a fine grid search over s): within 0.4 % of its error on groups
 * of 4096 at 2..4 bits; small groups have many fixed points (rows of 256: mostly within 1.5x, a 2-bit
 * Laplace row once 3.8x); at 5 bits or more the rounds move s by less than 1e-5 long before the codes
 * settle (up to ~1.25x on groups of 4096 to 36864).
 * Offsets are kept. A group of zeros (w = b; unsigned: no w above b, so every code is 0 whatever the
 * step), or one whose start underflows, gets s = 1, as in vitq_i_lsq_init_data.
 * VITQ_ERR_NON_FINITE naming the group for NaN / infinity, VITQ_ERR_SHAPE for a view of other channels;
 * on an error no step has changed. */
vitq_status vitq_i_lsq_init_fit(vitq_i_lsq *q, const vitq_tensor_view *w);

/* VVTQ's magnitude-aware gradient scales of weight steps: group_scale[g] = 1 / sqrt(qmax sum|w - b|)
 * over the group's elements of w (the latent, unquantized weights; b = 0 without offsets, as for
 * weights; a group of zeros gets 1), and gscale becomes VITQ_I_LSQ_GSCALE_PER_GROUP. The weights change
 * in training, so VVTQ recomputes this before each backward. Allocates group_scale on first use
 * (VITQ_ERR_OUT_OF_MEMORY); errors as vitq_i_lsq_init_fit, and then nothing changes. */
vitq_status vitq_i_lsq_set_magnitude_scale(vitq_i_lsq *q, const vitq_tensor_view *w);

/* Steps (and, with offsets, offsets: NULL keeps them) from given values, e.g. a PTQ result's scales.
 * A uniform asymmetric result of scale s and integer zero point z is offset b = -z s with unsigned codes.
 * VITQ_ERR_OUT_OF_RANGE naming the group for a step that is not finite and > 0 (nothing changes then). */
vitq_status vitq_i_lsq_init_steps(vitq_i_lsq *q, const float *steps, const float *offsets);

/* Fixed zero points z[groups] (whole numbers inside the code range; copied). VITQ_ERR_OUT_OF_RANGE naming the
 * group otherwise (nothing changes then); VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_lsq_set_zero_points(vitq_i_lsq *q, const float *z);

/* y = fake quantization of x (y may be x->data: in place). VITQ_ERR_SHAPE for a view of other channels,
 * VITQ_ERR_NON_FINITE naming the group when a step is not finite and > 0 (e.g. after a bad update). */
vitq_status vitq_i_lsq_forward(const vitq_i_lsq *q, const vitq_tensor_view *x, float *y);

/* Given x (the forward's input) and dy, accumulate the step (and offset) gradients and write dx (NULL:
 * not wanted; accumulate != 0: dx += instead of =). Sums over a group in double, in element order.
 * Errors as vitq_i_lsq_forward, and VITQ_ERR_BAD_STATE for PER_GROUP scales never set. */
vitq_status vitq_i_lsq_backward(vitq_i_lsq *q, const vitq_tensor_view *x, const float *dy, float *dx,
                                int accumulate);

/* 1 / sqrt(n qmax): LSQ's gradient scale for a step shared by n elements. */
double vitq_i_lsq_auto_scale(int64_t n, int32_t qmax);

/* Clamp every step to >= min_step (after an optimizer update: a step must stay positive). */
void vitq_i_lsq_project(vitq_i_lsq *q);

/* Zero the step and offset gradients. */
void vitq_i_lsq_zero_grad(vitq_i_lsq *q);

#endif
