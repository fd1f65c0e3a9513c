/* Pieces every family's forward pass shares. */
#ifndef VITQ_MODEL_FORWARD_COMMON_H
#define VITQ_MODEL_FORWARD_COMMON_H

#include "model/taps.h"
#include "model/vit.h"

/* Site `field` of `sites` when tapping, else -1. */
#define VITQ_I_SITE(taps, sites, field) ((taps) ? (sites)->field : -1)

/* VITQ_ERR_NON_FINITE naming the image and element of the first NaN / infinity in input[0..count). */
vitq_status vitq_i_check_finite(const float *input, size_t count, size_t per_image);

/* One allocation from `a` cut into `count` float slots of sizes[k] floats, each 64-byte aligned;
 * *slots[k] point into it, *block is what to free. */
vitq_status vitq_i_carve_workspace(const vitq_allocator *a, const size_t *sizes, float **const *slots, int count,
                                   float **block);

/* Linear layer l on `rows` rows of `in` (row stride lda) whose input is tap site `site`: the taps' own
 * implementation when they have one for it (integer kernels of a quantized model), else the tap (which
 * may change `in` in place) and the float GEMM. */
void vitq_i_linear_tapped(vitq_i_taps *taps, int site, const vitq_i_linear *l, float *in, size_t lda, size_t rows,
                          float *out, size_t ldc, vitq_i_epilogue e, int nthreads);

/* The patch embedding (a p x p convolution of stride p) of n NCHW images as im2col + GEMM:
 * out[image][grid y][grid x][embed_dim]. `patches` holds n * tokens * C*p*p floats of scratch. */
void vitq_i_patch_embed(const vitq_model *m, const float *images, size_t n, float *patches, float *out,
                        int nthreads, vitq_i_taps *taps);

/* The MLP half of a pre-LN block: x += fc2(gelu(fc1(LN2(x)))) over `rows` tokens of width d. `ln`
 * (rows x d) and `hid` (rows x fc1.out) are scratch. */
void vitq_i_mlp_residual(const vitq_i_block *blk, float *x, float *ln, float *hid, size_t rows, size_t d, float eps,
                         int gelu, int nthreads, vitq_i_taps *taps, const vitq_i_block_sites *sites);

/* LayerNorm of x into out, tapping its input at `site` first (on a copy in `out`, so that the
 * residual stream in x stays as it is). */
void vitq_i_layernorm_tapped(vitq_i_taps *taps, int site, float *x, size_t rows, size_t d,
                             const vitq_i_layernorm_params *ln, float eps, float *out, int nthreads);

/* Attention of `seqs` sequences of `tokens` tokens from qkv into out, tapping Q, K, V and, through the
 * staged kernels and the `probs` buffer ([seqs][heads][tokens][tokens]), the scores and
 * probabilities. Without taps it is vitq_i_attention_biased. */
void vitq_i_attention_tapped(vitq_i_taps *taps, const vitq_i_block_sites *sites, float *qkv, size_t seqs,
                             size_t tokens, size_t dim, size_t heads, const vitq_i_attn_bias *bias, float *out,
                             float *scratch, float *probs, int nthreads);

/* Images per chunk so that a chunk holds about `rows` tokens (at least 1, at most n). */
size_t vitq_i_chunk_images(size_t rows, size_t tokens_per_image, size_t n);

#endif
