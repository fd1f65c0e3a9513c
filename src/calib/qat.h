/* Quantization-aware training (issue 21; VVTQ, docs/training.md "Quantization-aware training"): a stage of a
 * calibration run, after the scheme's or method's calibration (which gives the starting steps) and before the
 * weights are encoded. Every transformer block trains at once on the whole network's loss: latent weights
 * fake-quantized by LSQ with learned steps (VVTQ's magnitude-aware gradient scale), the steps of the uniform
 * activation points, biases and LayerNorm affine parameters; the patch embedding and the classifier keep their
 * (8-bit) quantization and weights. The loss is knowledge distillation from a float teacher computed on the fly
 * (soft-label cross-entropy) on several random resized crops and flips of each image (data/augment.h), plus
 * VVTQ's oscillation-aware bin regulariser from a quarter of the run on. AdamW with linear warm-up and cosine
 * decay; an optimizer step accumulates the gradients of every view of its images, forward by forward
 * (`micro` views at a time), so memory does not grow with the batch. At the end the weights become LSQ's
 * quantized values (which the ordinary encoding turns into exactly LSQ's codes), the learned steps the
 * quantizers' scales, and the biases and LayerNorm parameters the run's network's. ViT, DeiT and Swin (its patch
 * mergings, like the classifier, keep their quantization and carry the gradient: qat_merge.h); deterministic
 * for a seed, whatever the thread count. */
#ifndef VITQ_CALIB_QAT_H
#define VITQ_CALIB_QAT_H

#include <stdint.h>
#include <stdio.h>

#include "calib/qat_checkpoint.h"
#include "calib/run.h"

typedef struct vitq_i_qat_options {
    int32_t epochs;      /* passes over the training images */
    int32_t batch;       /* images per optimizer step (each gives `crops` views) */
    int32_t crops;       /* random resized crops per image and step (0: the image itself, unaugmented) */
    int32_t micro;       /* views per forward and backward (memory); 0: 32 */
    double lr;           /* AdamW's rate for every parameter */
    double weight_decay; /* on the latent weights only (not on steps, biases, LayerNorms) */
    double warmup;       /* warm-up, in epochs */
    double obr_lambda;   /* the bin regulariser's final weight (VVTQ: 0.01; 0: off) */
    double temperature;  /* of the distillation */
    uint64_t seed;
    FILE *log;           /* a CSV line per optimizer step, or NULL */
    const char *checkpoint; /* written (atomically) at the end of every epoch, or NULL (qat_checkpoint.h) */
    const char *resume;     /* a checkpoint of this run to go on from, or NULL */
} vitq_i_qat_options;

/* Defaults (docs/training.md): VVTQ's AdamW 5e-4, 4 crops, bin regulariser 0.01, temperature 1; 4 epochs of
 * 64 images, warm-up 0; no log, checkpoint or resume. */
vitq_i_qat_options vitq_i_qat_defaults(void);


/* Train r's quantized network on n images (r->per_image floats each, preprocessed as calibration images) with
 * teacher (NULL: r's float network, before training). report (may be NULL) takes o->epochs entries.
 * VITQ_ERR_UNSUPPORTED for a ViT representation layer, VITQ_ERR_BAD_STATE without a private copy,
 * VITQ_ERR_OUT_OF_RANGE for bad options (naming them), VITQ_ERR_CANCELLED from the progress callback. */
vitq_status vitq_i_qat(vitq_i_run *r, const vitq_i_qat_options *o, const float *images, size_t n,
                       const vitq_i_net *teacher, vitq_i_qat_epoch *report);

#endif
