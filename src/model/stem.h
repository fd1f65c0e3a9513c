/* The parts of a forward pass around the blocks, shared by the forward pass (vit_forward.c,
 * swin_forward.c) and the backward pass's own forward (grad/backward.c), so that the two compute the
 * same bits: the embeddings, Swin's patch merging and the heads. */
#ifndef VITQ_MODEL_STEM_H
#define VITQ_MODEL_STEM_H

#include "model/block.h"

/* timm builds every Swin LayerNorm with PyTorch's default eps; HF applies config.layer_norm_eps to
 * the blocks and the final norm only, and keeps the default for the patch-embedding and patch-merging
 * norms. So those two use 1e-5 whatever the configuration says. */
#define VITQ_I_SWIN_STEM_EPS 1e-5f

/* The patch embedding (a p x p convolution of stride p) of n NCHW images as im2col + GEMM:
 * out[image][grid y][grid x][embed_dim]. `patches` holds n * tokens * C*p*p floats of scratch. */
void vitq_i_patch_embed(vitq_i_pass *p, const float *images, size_t n, float *patches, float *out);

/* ViT / DeiT: the patch embedding of n images (into `embed`, n * patches * d floats), prefix tokens and
 * position embeddings: the residual stream x ([n][tokens][d]). */
void vitq_i_vit_embed(vitq_i_pass *p, const float *images, size_t n, float *patches, float *embed, float *x);

/* Swin: the patch embedding of n images into x, then the patch LayerNorm. */
void vitq_i_swin_embed(vitq_i_pass *p, const float *images, size_t n, float *patches, float *x);

/* Swin's patch merging into stage s >= 1: 2x2 neighbours of the previous stage's output `prev`
 * gathered into `gather` ([rows][4 d_prev]), LayerNorm, reduction into x. prev may be x. */
void vitq_i_swin_merge(vitq_i_pass *p, int s, size_t n, const float *prev, float *gather, float *x);

/* ViT / DeiT head: the prefix tokens of x copied into feat ([prefix token][n][d]), the final LayerNorm
 * into feat_ln (may be feat), the representation layer's tanh output into rep ([n][R], when the model
 * has one), the classifier into logits; distilled: the distillation head's logits into logits_dist and
 * their mean with the class head's into logits. */
void vitq_i_vit_classify_into(vitq_i_pass *p, size_t n, const float *x, float *feat, float *feat_ln, float *rep,
                              float *logits, float *logits_dist);

/* The same with rep allocated (and freed) here when the model has a representation layer; a failed
 * allocation is the pass's status. */
void vitq_i_vit_classify(vitq_i_pass *p, size_t n, const float *x, float *feat, float *feat_ln, float *logits,
                         float *logits_dist);

/* Swin head: the final LayerNorm of every token of x into ln, the mean over tokens into pooled, the
 * classifier into logits. */
void vitq_i_swin_classify(vitq_i_pass *p, size_t n, float *x, float *ln, float *pooled, float *logits);

#endif
