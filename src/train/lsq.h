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
 * share the step; it keeps the step's update in proportion to its size). Offsets are not scaled.
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
    VITQ_I_LSQ_GSCALE_FIXED = 2 /* g_s = the `grad_scale` member (VVTQ's magnitude-aware scales: the caller's) */
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
    vitq_i_lsq_gscale gscale;
    double grad_scale;     /* used with VITQ_I_LSQ_GSCALE_FIXED */
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

/* Steps (and, with offsets, offsets: NULL keeps them) from given values, e.g. a PTQ result's scales.
 * A uniform asymmetric result of scale s and integer zero point z is offset b = -z s with unsigned codes.
 * VITQ_ERR_OUT_OF_RANGE naming the group for a step that is not finite and > 0 (nothing changes then). */
vitq_status vitq_i_lsq_init_steps(vitq_i_lsq *q, const float *steps, const float *offsets);

/* y = fake quantization of x (y may be x->data: in place). VITQ_ERR_SHAPE for a view of other channels,
 * VITQ_ERR_NON_FINITE naming the group when a step is not finite and > 0 (e.g. after a bad update). */
vitq_status vitq_i_lsq_forward(const vitq_i_lsq *q, const vitq_tensor_view *x, float *y);

/* Given x (the forward's input) and dy, accumulate the step (and offset) gradients and write dx (NULL:
 * not wanted; accumulate != 0: dx += instead of =). Sums over a group in double, in element order.
 * Errors as vitq_i_lsq_forward. */
vitq_status vitq_i_lsq_backward(vitq_i_lsq *q, const vitq_tensor_view *x, const float *dy, float *dx,
                                int accumulate);

/* 1 / sqrt(n qmax): LSQ's gradient scale for a step shared by n elements. */
double vitq_i_lsq_auto_scale(int64_t n, int32_t qmax);

/* Clamp every step to >= min_step (after an optimizer update: a step must stay positive). */
void vitq_i_lsq_project(vitq_i_lsq *q);

/* Zero the step and offset gradients. */
void vitq_i_lsq_zero_grad(vitq_i_lsq *q);

#endif
