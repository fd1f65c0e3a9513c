/* Weight oscillation in quantization-aware training (issue 21, VVTQ: "Variation-aware Vision Transformer
 * Quantization", arXiv 2307.00331): the oscillation-aware bin regulariser that pulls latent weights to the
 * centres of their quantization bins, its schedule, and a tracker that counts code flips between steps.
 *
 * The weights are those of an LSQ quantizer (train/lsq.h): a [rows][in] tensor whose row r uses step s_g and
 * whole-number zero point z_g (0 when the grid has none), g = r / cpg (groups * cpg == rows), codes on a
 * uniform grid of at most 256 levels:
 *
 *   u = w / s (float, the division of vitq_i_uniform_code),  q = vitq_i_uniform_code(w, s, z),
 *   w_hat = (q - z) s,  w_clip = clamp(u, qmin - z, qmax - z) s   (= w itself inside that range)
 *
 * so q and w_hat agree bit for bit with vitq_i_lsq_forward. A zero point moves the range, not the bins:
 * bins are still per group and code. */
#ifndef VITQ_TRAIN_OSCILLATION_H
#define VITQ_TRAIN_OSCILLATION_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/uniform.h"

/* The largest number of levels (qmax - qmin + 1) either function accepts: 8-bit codes. */
#define VITQ_I_OSC_MAX_LEVELS 256

/* The bin regulariser of one weight tensor, times lambda:
 *
 *   L = mean_i (w_hat_i - w_clip_i)^2  +  sum_{group g, code n, count >= 2} Var{ w_clip_i : i in g, q_i = n }
 *
 * Var is the unbiased variance (divided by count - 1), torch.var's default that VVTQ's code uses. Bins are
 * per group and code: a bin pools weights that share one step, so its members are all near the same level
 * q s (VVTQ with one step per tensor has one bin per code; with head-wise steps its bins pool code n over
 * all heads, whose levels differ; per group is the consistent reading).
 *
 * Gradient (dw += lambda dL/dw when dw is not NULL; the value only otherwise): w_hat is a constant (a
 * stopgrad, as in VVTQ's code), and so is the step. The regulariser is about the latent weights: inside
 * the range w_clip = w does not depend on s at all, and only the clipped members of the two end bins would
 * pass s a gradient (through their variance), a side effect, not the regulariser's purpose; the step
 * learns from the task loss through LSQ. With x_i = w_clip_i, d_i = x_i - w_hat_i,
 * N = rows in, n the member count of i's bin and m its mean of x:
 *   inside the range:     dL/dw_i = 2 d_i / N + (n >= 2 ? 2 (x_i - m) / (n - 1) : 0)
 *   outside:              dL/dw_i = 0 (x_i is the constant qmin s or qmax s; it still counts in its bin)
 * (the mean's own derivative drops out because the deviations of a bin sum to 0).
 *
 * Work: two passes over each group in element order with per-code count and sums in double on the stack
 * (no allocation, no threads): deterministic, bit-identical on every run. Bin statistics are taken on
 * d = x - q s, which is at most s/2 inside the range, so the variance does not lose digits to a level far
 * from 0; the second pass sums squared deviations from the bin mean (no one-pass cancellation).
 *
 * *loss (may be NULL) = lambda L. Errors (nothing written then): VITQ_ERR_INVALID_ARGUMENT for NULL
 * pointers, counts < 1, groups * cpg != rows, a grid of more than VITQ_I_OSC_MAX_LEVELS levels, a zero point
 * that is not a whole number in [qmin, qmax] (zero_point may be NULL: every z is 0);
 * VITQ_ERR_NON_FINITE naming the group for a step that is not finite and > 0, or the element for a NaN
 * weight; VITQ_ERR_OUT_OF_RANGE for lambda not finite or < 0. `name` (NULL: "obr") names the tensor. */
vitq_status vitq_i_obr(const char *name, const float *w, int64_t rows, int64_t in, const float *step,
                       const float *zero_point, int64_t groups, int64_t cpg, const vitq_i_uniform *grid, double lambda,
                       float *dw, double *loss);

/* VVTQ's weight of the regulariser at progress = epoch / total epochs: 0 before 0.25, then a cosine ramp
 * from 0 to max_lambda at 1:  max + 0.5 (0 - max) (1 + cos(pi (progress - 0.25) / 0.75)).
 * progress is clamped to [0, 1] (NaN gives 0). */
double vitq_i_obr_lambda(double progress, double max_lambda);

/* Oscillation statistics of one weight tensor: each update quantizes the current latent weights (codes as
 * above) and compares with the codes of the two previous updates. A flip: the code differs from the
 * previous update's. An oscillation: a flip back to the code of two updates ago (a -> b -> a). Codes are
 * stored as q - qmin in one byte per weight, two generations. */
typedef struct vitq_i_osc {
    vitq_allocator alloc;
    size_t count;          /* weights tracked */
    uint8_t *prev, *prev2; /* count each: codes - qmin of the previous update and of the one before */
    int64_t updates;       /* updates so far */
    vitq_i_uniform grid;   /* the grid of the first update; later updates must use the same */
    int64_t flips, oscillations; /* totals over all updates */
} vitq_i_osc;

/* A tracker of `count` weights. VITQ_ERR_INVALID_ARGUMENT for count 0, VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_osc_create(vitq_i_osc *o, const vitq_allocator *a, size_t count);
void vitq_i_osc_free(vitq_i_osc *o);

/* Codes of w ([rows][in], steps and grid as vitq_i_obr) against the previous updates: *flips and
 * *oscillations (either may be NULL) of this update, also added to the totals. The first update records
 * the codes and counts 0; oscillations are counted from the third. Errors (the tracker unchanged then):
 * VITQ_ERR_SHAPE for rows in != count, VITQ_ERR_INVALID_ARGUMENT as vitq_i_obr or for a grid other than
 * the first update's, VITQ_ERR_NON_FINITE as vitq_i_obr, VITQ_ERR_BAD_STATE for a tracker not created. */
vitq_status vitq_i_osc_update(vitq_i_osc *o, const char *name, const float *w, int64_t rows, int64_t in,
                              const float *step, const float *zero_point, int64_t groups, int64_t cpg,
                              const vitq_i_uniform *grid, int64_t *flips, int64_t *oscillations);

#endif
