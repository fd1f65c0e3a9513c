/* The element-wise and attention pieces of the quantized training block (block_train.h): a point's
 * quantization forward (fixed quantizer or learned step, QDrop's mask) and backward (straight-through or
 * LSQ), and the attention's backward with a quantized probability matrix. Used by block_train.c only. */
#ifndef VITQ_TRAIN_BLOCK_TRAIN_OPS_H
#define VITQ_TRAIN_BLOCK_TRAIN_OPS_H

#include "train/block_train_state.h"

/* Rows (outer indices of a view) per task of the element-wise loops: a fixed grid, so the sums of a learned
 * step's gradient (per task, then in task order) do not depend on the thread count. */
#define VITQ_I_BT_ROWS_PER_TASK 16

/* The QDrop mask of `site` at the block's current step: 1 when element e of the point's view keeps its float
 * value. */
uint64_t vitq_i_bt_mask_key(const vitq_i_block_train *bt, int site);
int vitq_i_bt_dropped(uint64_t key, size_t e, double drop);

/* Quantize the view v (which holds the point's input, copied from `pre` at the same offsets) in place. */
vitq_status vitq_i_bt_point_forward(const vitq_i_block_train *bt, int site, const vitq_tensor_view *v,
                                    const float *pre);

/* Back through the quantizer of `site`: v views its input (the forward's `pre`), dy (same offsets from its
 * own base, pointing at the view's first element) is replaced by the gradient at the input; learned steps
 * accumulate their gradients. */
void vitq_i_bt_point_backward(vitq_i_block_train *bt, int site, const vitq_tensor_view *v, float *dy);

/* The GELU of the block's model (erf or tanh form) on count elements, by the active path's vector code (bit
 * for bit the scalar vitq_i_gelu_erf / _tanh). */
void vitq_i_bt_gelu(const vitq_i_block_train *bt, const float *x, size_t count, float *y);
/* dh = dh * GELU'(hq) over the first count elements (the fc2 side's gradient back to fc1's output), in
 * parallel over a fixed grid. */
void vitq_i_bt_gelu_backward(vitq_i_block_train *bt, size_t count);

/* Attention backward for n sequences: given qkvq (its input), p (softmax output), pq (the quantized
 * probabilities the product used) and d_att [rows][d], write dp (w.r.t. pq) and dqkv's v part
 * (vitq_i_bt_attn_dv); then, once the caller turned dp into ds (w.r.t. the softmax input),
 * vitq_i_bt_attn_dqk writes dqkv's q and k parts. vitq_i_bt_softmax_back: ds = softmax' (p, dp) per row.
 * Per (sequence, head) they run the packed GEMM on one thread: its panels come from bt->scratch, which must
 * hold nthreads x vitq_i_attention_scratch_floats(seq, hd) floats; vitq_i_bt_attn_dv uses ds and
 * vitq_i_bt_attn_dqk dp as scratch (each is free at that point of the backward). */
void vitq_i_bt_attn_dv(vitq_i_block_train *bt, size_t n, const float *d_att, float *dqkv);
void vitq_i_bt_softmax_back(vitq_i_block_train *bt, size_t n);
void vitq_i_bt_attn_dqk(vitq_i_block_train *bt, size_t n, float *dqkv);

#endif
