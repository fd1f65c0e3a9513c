/* Tap sites of the forward pass: where simulated quantization (or a calibrator's observation)
 * reaches the activations. A forward pass without taps (NULL) runs the kernels alone, untouched.
 * Taps run on the calling thread, between kernels, so an apply function needs no locking. A site a
 * layer's integer kernel realises itself (its input quantized into codes) is simply not tapped.
 *
 * The input sites of the non-linear operators (a LayerNorm's input, the softmax's scores, the GELU's
 * input) may also be replaced: after `apply`, the pass offers the operator to `replace`, which may
 * compute it its own way (an integer-only kernel of the quantized model) and write its output; the
 * float kernel then does not run. */
#ifndef VITQ_MODEL_TAPS_H
#define VITQ_MODEL_TAPS_H

#include "core/core.h"

/* Point index of each activation site of a block; -1: not tapped. */
typedef struct vitq_i_block_sites {
    int norm1_in, qkv_in, q, k, v, scores, probs, proj_in, norm2_in, fc1_in, gelu_in, fc2_in;
} vitq_i_block_sites;

typedef struct vitq_i_stage_sites {
    int merge_norm_in, merge_in; /* Swin patch merging (stages >= 1) */
} vitq_i_stage_sites;

typedef struct vitq_i_sites {
    int patch_in, patch_norm_in, norm_in, head_in, head_dist_in;
    int pre_logits_in; /* ViT representation layer's input (the final norm's output), -1 without one */
    vitq_i_block_sites *blocks; /* [depth] */
    vitq_i_stage_sites *stages; /* [num_stages], at least 1 */
} vitq_i_sites;

typedef struct vitq_i_taps vitq_i_taps;
struct vitq_i_taps {
    const vitq_i_sites *sites;
    /* Observe or replace the view of point `point` in place. */
    vitq_status (*apply)(vitq_i_taps *t, int point, const vitq_tensor_view *v);
    /* Optional (NULL: nothing is replaced). The operator that reads site `point` (rows x channels at
     * `in`, row stride `stride`; `out` takes rows x channels densely and may be `in` when stride is
     * channels): return 1 when it has written out (or failed: then t->status says why), 0 to leave the
     * operator to the float kernel. */
    int (*replace)(vitq_i_taps *t, int point, const float *in, int64_t rows, int64_t channels, int64_t stride,
                   float *out);
    void *ctx;
    vitq_status status; /* first failure; later taps are skipped */
};

static inline void vitq_i_tap(vitq_i_taps *t, int point, float *data, int64_t outer, int64_t channels, int64_t inner,
                              int64_t stride) {
    if (!t || point < 0 || t->status) return;
    vitq_tensor_view v = {sizeof(vitq_tensor_view), data, outer, channels, inner, stride};
    t->status = t->apply(t, point, &v);
}

/* Offer the operator reading site `point` to t->replace (see there); 1 when it was replaced. */
static inline int vitq_i_tap_replace(vitq_i_taps *t, int point, const float *in, int64_t rows, int64_t channels,
                                     int64_t stride, float *out) {
    if (!t || point < 0 || !t->replace) return 0;
    if (t->status) return 1; /* a failed pass computes nothing more */
    return t->replace(t, point, in, rows, channels, stride, out);
}

#endif
