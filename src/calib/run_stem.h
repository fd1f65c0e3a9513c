/* The quantized network's pieces outside the transformer blocks, on a calibration run: the embedding, Swin's
 * patch merging, and a point's fake quantization, as the forward pass with the run's quantizers computes them.
 * Block reconstruction (reconstruct.h) and QAT (qat.h) run their streams through these. */
#ifndef VITQ_CALIB_RUN_STEM_H
#define VITQ_CALIB_RUN_STEM_H

#include "calib/run.h"

/* What runs outside the blocks on the residual stream: the embedding of the images into stage 0 (stage 0)
 * or Swin's patch merging into stage `stage` (in place on x; `scratch` holds its gathered neighbours,
 * n * the previous stage's floats per image). */
typedef struct vitq_i_stem_job {
    const float *images;
    size_t n;
    int stage;
    float *x, *scratch;
    float *capture; /* merging (quantized network): its reduction layer's input is copied here, or NULL */
} vitq_i_stem_job;

/* The stem step of j on the float network (quantized 0) or the quantized one (its points and its weight's
 * quantizer applied). */
vitq_status vitq_i_run_stem(vitq_i_run *r, const vitq_i_stem_job *j, int quantized);

/* Point `point`'s quantizer (with its noisy bias, if any) on v in place; nothing when the point is not
 * quantized. */
vitq_status vitq_i_run_fake_quant(const vitq_i_run *r, int point, const vitq_tensor_view *v);

/* The stage whose patch merging precedes block b (Swin), 0 if none. */
int vitq_i_merge_before(const vitq_i_net *m, int b);

#endif
