/* The QAT mode of the quantized training block (cfg->qat, block_train.h; issue 21): its parameters, input
 * gradient and trained weights for the QAT stage (calib/qat.h), and the pieces block_train.c calls. */
#ifndef VITQ_TRAIN_BLOCK_TRAIN_QAT_H
#define VITQ_TRAIN_BLOCK_TRAIN_QAT_H

#include "train/block_train_state.h"
#include "train/optim.h"

/* Parameter groups of QAT's parameters: latent weights (weight decay), weight and activation steps, biases and
 * LayerNorm affine parameters. */
typedef struct vitq_i_bt_qat_groups {
    int weights, steps, others;
} vitq_i_bt_qat_groups;

/* Every trained parameter of a QAT block (latent weights, biases, LayerNorm gamma and beta, weight and learned
 * activation steps) into params[0 .. max); the count (which may exceed max). */
int vitq_i_block_train_qat_params(vitq_i_block_train *bt, vitq_i_param *params, int max, vitq_i_bt_qat_groups g);

/* QAT: the gradient at the last backward's block input, [n * tokens][d] in grid order (NULL before a backward
 * or outside QAT). */
const float *vitq_i_block_train_input_grad(const vitq_i_block_train *bt);

/* QAT layer `layer`'s weight as the network will run it (LSQ of the latent weight, [out][in]) into w and its
 * steps into steps (the quantizer's groups; NULL: not wanted); 0 when the layer has no LSQ weight (nothing
 * written). */
int vitq_i_block_train_qat_weight(const vitq_i_block_train *bt, int layer, float *w, float *steps);

/* ---- called by block_train.c ---------------------------------------------------------------------- */

/* Layer L in QAT mode: its bias copied for training; with a weight quantizer wq (which must be a uniform grid:
 * VITQ_ERR_UNSUPPORTED naming it otherwise) its weight w becomes the latent weight of an LSQ quantizer that
 * starts at wq's scales and keeps its zero points, gradient scale `gscale` (a vitq_i_lsq_gscale). */
vitq_status vitq_i_bt_qat_layer(vitq_i_block_train *bt, vitq_i_bt_layer *L, const vitq_i_instance *wq,
                                const float *w, int gscale);
/* The trained LayerNorm copies (bt->gamma, bt->beta point at them), their gradients and the input gradient. */
vitq_status vitq_i_bt_qat_alloc(vitq_i_block_train *bt);
void vitq_i_bt_qat_free(vitq_i_block_train *bt);

/* L->w_cur = LSQ(latent weight) (its surrogate in gradient checks). */
vitq_status vitq_i_bt_qat_weights(const vitq_i_block_train *bt, vitq_i_bt_layer *L);
/* Accumulate the bias gradient and (mode 3) the latent weight's and its steps' gradients of layer L given its
 * input x and output gradient dy. */
vitq_status vitq_i_bt_qat_linear_back(vitq_i_block_train *bt, vitq_i_bt_layer *L, const float *x, const float *dy,
                                      size_t rows);
/* Accumulate LayerNorm k's (0: norm1, 1: norm2) affine gradients given its input x and output gradient dy. */
void vitq_i_bt_qat_norm_back(vitq_i_block_train *bt, int k, const float *x, const float *dy, size_t rows);

#endif
