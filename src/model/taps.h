/* Tap sites of the forward pass: where simulated quantization (or a calibrator's observation)
 * reaches the activations. A forward pass without taps (NULL) is the plain FP32 one, untouched.
 * Taps run on the calling thread, between kernels, so an apply function needs no locking. */
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
    vitq_i_block_sites *blocks; /* [depth] */
    vitq_i_stage_sites *stages; /* [num_stages], at least 1 */
} vitq_i_sites;

typedef struct vitq_i_taps vitq_i_taps;
struct vitq_i_linear;
struct vitq_i_attn_bias;
struct vitq_i_taps {
    const vitq_i_sites *sites;
    /* Observe or replace the view of point `point` in place. */
    vitq_status (*apply)(vitq_i_taps *t, int point, const vitq_tensor_view *v);
    void *ctx;
    vitq_status status; /* first failure; later taps are skipped */
    /* Optional: run the linear layer whose input is point `point` in its own way (integer kernels)
     * instead of tapping the input and running the float GEMM. Returns 1 when it did (failures go to
     * status), 0 to let the caller go on as usual. */
    int (*linear)(vitq_i_taps *t, int point, const struct vitq_i_linear *layer, const float *in, size_t lda,
                  size_t rows, float *out, size_t ldc, int epilogue, int nthreads);
    /* Optional: the MLP fc2(gelu(fc1(in))) added to out, fc1's input tapped at `fc1_point` and fc2's at
     * `fc2_point` (the GELU input not tapped), in its own way; returns 1 when it did. */
    int (*mlp)(vitq_i_taps *t, int fc1_point, int fc2_point, const struct vitq_i_linear *fc1,
               const struct vitq_i_linear *fc2, const float *in, size_t rows, float *out, int gelu_epilogue,
               int nthreads);
    void *scratch; /* per forward pass, for `linear`, `mlp` and `attention` (freed by whoever made the taps) */
    size_t scratch_bytes;
    /* Optional: the attention of `seqs` sequences from qkv into out, with the block's q, k, v and
     * probability sites, in its own way (integer products); returns 1 when it did. */
    int (*attention)(vitq_i_taps *t, const vitq_i_block_sites *sites, const float *qkv, size_t seqs, size_t tokens,
                     size_t dim, size_t heads, const struct vitq_i_attn_bias *bias, float *out, int nthreads);
    /* 1 when `attention` takes every block (or fails with status set): the forward pass then keeps no
     * buffer of scores and probabilities. */
    int attention_all;
};

/* Whether a forward pass with these taps needs the [seqs][heads][tokens][tokens] scores buffer. */
static inline int vitq_i_taps_need_scores(const vitq_i_taps *t) { return t && !t->attention_all; }

static inline void vitq_i_tap(vitq_i_taps *t, int point, float *data, int64_t outer, int64_t channels, int64_t inner,
                              int64_t stride) {
    if (!t || point < 0 || t->status) return;
    vitq_tensor_view v = {sizeof(vitq_tensor_view), data, outer, channels, inner, stride};
    t->status = t->apply(t, point, &v);
}

#endif
