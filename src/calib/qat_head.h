/* The quantized classifier of a run for QAT (qat.h): ViT / DeiT, the prefix tokens' final LayerNorm and the
 * head (and the distillation head); Swin, the final LayerNorm of every token, their mean and the head; with the
 * run's quantizers at the norm's input and the heads' inputs and weights, and its backward to the last block's
 * output through the straight-through estimator (the heads and the norm are not trained: their gradient is
 * only carried through). Its own kernels rather than the forward pass's classify, because the backward needs
 * the values before each quantizer. */
#ifndef VITQ_CALIB_QAT_HEAD_H
#define VITQ_CALIB_QAT_HEAD_H

#include "calib/run.h"
#include "train/ste.h"

typedef struct vitq_i_qat_head {
    const vitq_i_run *r;
    int prefix;                 /* 1, or 2 with a distillation head */
    int swin;                   /* mean pooling over every token (prefix 1) */
    size_t d, tokens, classes, max_images;
    int point_norm, point_head[2];
    vitq_i_ste ste_norm, ste_head[2]; /* for the points that are quantized (has_*) */
    int has_norm, has_head[2];
    float *w[2];                /* the heads' fake-quantized weights [classes][d] */
    /* ViT: [prefix][images][d]; Swin: feat, featq, ln and dln [images][tokens][d], lnq the pooled features
     * [images][d] before the head's quantizer, pool after it; out [images][classes] */
    float *feat, *featq, *ln, *lnq, *dln, *pool, *out;
    float *block;
} vitq_i_qat_head;

vitq_status vitq_i_qat_head_create(vitq_i_qat_head *h, const vitq_i_run *r, size_t max_images);
void vitq_i_qat_head_free(vitq_i_qat_head *h);

/* logits [n][classes] of the last block's output x [n][tokens][d]. */
vitq_status vitq_i_qat_head_forward(vitq_i_qat_head *h, const float *x, size_t n, float *logits);

/* dx [n][tokens][d] (zero but at the prefix tokens) from d_logits, for the last forward. */
void vitq_i_qat_head_backward(vitq_i_qat_head *h, const float *d_logits, size_t n, float *dx);

#endif
