/* A quantized transformer block for training (block reconstruction, issue 20): the forward of one ViT /
 * DeiT / Swin block with a quantizer at every activation point and learned rounding of its four weights, and the
 * backward that gives the gradients of a loss on the block's output with respect to AdaRound's V of each
 * weight and the step of each learned activation quantizer. The block input's gradient is not formed.
 *
 * Forward (pre-LN block; Q(.) is the point's quantizer, the identity for a point left in float):
 *   a1 = Q_norm1(x);  l1 = Q_qkv_in(LN1(a1));  qkv = Q_q|k|v(l1 Wqkv^T + b)
 *   s = Q_scores(scale q k^T);  p = softmax(s);  o = Q_proj_in(Q_probs(p) v)
 *   xm = x + o Wproj^T + b;  l2 = Q_fc1_in(LN2(Q_norm2(xm)));  h = Q_gelu_in(l2 W1^T + b1)
 *   out = xm + Q_fc2_in(gelu(h)) W2^T + b2
 * Weights: AdaRound's soft weights (training), its hard rounding, or the starting quantizer's own rounding.
 * Activation points: the point's fixed quantizer (any built-in scheme) with the straight-through estimator
 * (ste.h), or, for uniform points, a learned step (LSQ: the zero point stays, the scale is trained; its
 * gradient scaled by 1 / sqrt(N qmax)). QDrop: in a training forward each element of every quantized
 * activation keeps its float value with probability `drop` (a fresh mask per step from a counter-based
 * hash of the seed, the step, the point and the element, so the backward recomputes it without storing it).
 *
 * The kernels are the forward pass's own (packed GEMM, staged attention, LayerNorm) and the training
 * core's (linear.h); the attention's backward is here because a quantized P and the softmax's own output
 * differ.
 *
 * Swin: as model/block.c computes it, LN1's output is moved into window order (after the block's cyclic
 * shift), the scores add the relative position bias and (shifted blocks) the region mask, and proj's output
 * is added back onto the grid. The input, the output and the MLP's points are in grid order; LN1's output
 * (the qkv-input point), q, k, v, the scores and probabilities ([n * windows][heads][seq][seq]) and proj's
 * input are in window order, the same elements the model's taps see. Patch merging is not part of a block. */
#ifndef VITQ_TRAIN_BLOCK_TRAIN_H
#define VITQ_TRAIN_BLOCK_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "train/block_train_state.h"
#include "train/optim.h"

/* Set up block b of m (any family; a Swin block has its stage's width) with the quantizers of `cfg` (which must
 * outlive bt). VITQ_ERR_UNSUPPORTED for an activation scheme without a straight-through rule;
 * VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_block_train_create(vitq_i_block_train *bt, const vitq_allocator *a, const vitq_i_net *m, int b,
                                      const vitq_i_bt_config *cfg);
void vitq_i_block_train_free(vitq_i_block_train *bt);

/* out[n * tokens][d] = the quantized block on x (same shape, grid order for Swin; x is copied). train != 0: a training forward
 * (QDrop masks, a new step of the mask's counter); the state for vitq_i_block_train_backward is kept. */
vitq_status vitq_i_block_train_forward(vitq_i_block_train *bt, const float *x, size_t n, vitq_i_bt_weights w,
                                       int train, float *out);

/* Given d_out (the loss's gradient at the last forward's output), accumulate AdaRound's V gradients (soft
 * weights only) and the learned steps' gradients; QAT: also the latent weights', biases' and LayerNorms'
 * gradients, and the block input's gradient (vitq_i_block_train_input_grad). */
vitq_status vitq_i_block_train_backward(vitq_i_block_train *bt, const float *d_out);

/* The trained parameters: every AdaRound V (group v_group), every learned step (group step_group), into
 * params[0 .. max); the count (which may exceed max: then only max are written). */
int vitq_i_block_train_params(vitq_i_block_train *bt, vitq_i_param *params, int max, int v_group, int step_group);

/* Zero the gradients of every trained parameter (QAT's included). */
void vitq_i_block_train_zero_grad(vitq_i_block_train *bt);

/* AdaRound's regulariser of every weight at beta; adds lambda times its gradient. */
double vitq_i_block_train_reg(vitq_i_block_train *bt, double beta, double lambda);

/* Keep learned steps (QAT's weight steps included) positive (after an optimizer step). */
void vitq_i_block_train_project(vitq_i_block_train *bt);

/* Weights of AdaRound layer `layer` hardened, dequantized into w [out][in] (s (code - z)); 0 when the layer
 * is not AdaRound's (w untouched). */
int vitq_i_block_train_hard(const vitq_i_block_train *bt, int layer, float *w);

#endif
