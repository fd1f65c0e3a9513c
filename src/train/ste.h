/* The straight-through estimator (STE) through the framework's fixed quantizers, so that a block
 * reconstruction (issue 20) can back-propagate through every quantization point, whatever its scheme.
 *
 * A quantizer's true derivative is 0 almost everywhere (it is a step function). The STE replaces each
 * rounding by the identity in the chain rule (Bengio et al. 2013; the rule of LSQ, PTQ4ViT's and QDrop's
 * training code): the gradient passes unchanged where the input lies inside the range the quantizer
 * represents, and is 0 where the quantizer clips (there the output truly is constant). So each group of a
 * point has one interval [lo, hi]:
 *
 *   uniform (minmax, percentile, omse, percentile-mse; scale s, zero point z):  [(qmin - z) s, (qmax - z) s]
 *   twin-gelu (n = 2^(k-1), dneg = 0.16997124 / n, dpos = "scale"):            [-n dneg, (n - 1) dpos]
 *   twin-softmax (either form):                                               [0, 1]
 *   log2 (L = 2^k, s = "scale"): codes q <= L - 2 are levels s 2^-q, deeper values become exactly 0,
 *     which happens below s 2^-(L - 3/2):                                      [s 2^-(L - 3/2), s]
 *   log-sqrt2: levels s 2^(-q/2), q <= L - 2, zero below s 2^-((L - 3/2)/2):  [s 2^-((L - 3/2)/2), s]
 *   mpq (levels 0 .. "upper"; the level 0 is rounded to, not clipped to):     [0, upper]
 *
 * dx = dy where lo <= x <= hi, else 0 (a NaN input passes nothing). Schemes registered by a host
 * application are refused (VITQ_ERR_UNSUPPORTED): their ranges are unknown here. */
#ifndef VITQ_TRAIN_STE_H
#define VITQ_TRAIN_STE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/uniform.h"
#include "quant/registry.h"

typedef struct vitq_i_ste {
    vitq_allocator alloc;
    int64_t groups, cpg; /* channel c of a view uses group c / cpg */
    float *lo, *hi;      /* groups: the pass-through interval, both ends included */
} vitq_i_ste;

/* The STE of a uniform grid with per-group scale and zero point (groups * cpg channels). */
vitq_status vitq_i_ste_uniform(vitq_i_ste *s, const vitq_allocator *a, const vitq_i_uniform *grid,
                               const float *scale, const float *zero_point, int64_t groups, int64_t cpg);

/* The STE of a finalized (or loaded) quantizer instance of a built-in scheme (the table above).
 * VITQ_ERR_UNSUPPORTED naming the point and scheme for another scheme; the instance's errors when its
 * parameters are not known yet. */
vitq_status vitq_i_ste_from_instance(vitq_i_ste *s, const vitq_allocator *a, const vitq_i_instance *inst);

void vitq_i_ste_free(vitq_i_ste *s);

/* dx = dy masked by the intervals, for the input x of the quantizer's forward; dy and dx have x's layout
 * (the same offsets from their base pointers); dx may be dy (in place); accumulate: dx += instead.
 * VITQ_ERR_SHAPE (naming `what`) for a view of other channels. */
vitq_status vitq_i_ste_backward(const vitq_i_ste *s, const vitq_tensor_view *x, const float *dy, float *dx,
                                int accumulate, const char *what);

#endif
