/* Swin's patch merging into stage s of a run's quantized network for QAT (qat.h): gather each 2 x 2
 * neighbourhood, LayerNorm, reduction layer, with the run's quantizers at the norm's and the layer's inputs and
 * on its weight; and its backward to the previous stage's output through the straight-through estimator. The
 * merging's own parameters are not trained (as the classifier's): the gradient is only carried through. */
#ifndef VITQ_CALIB_QAT_MERGE_H
#define VITQ_CALIB_QAT_MERGE_H

#include "calib/run.h"
#include "train/ste.h"

typedef struct vitq_i_qat_merge {
    const vitq_i_run *r;
    int stage, grid_prev, nthreads;
    size_t dim_prev, in, out, rows_per_image; /* in = 4 dim_prev, out = the stage's dim */
    int point_norm, point_in;
    vitq_i_ste ste_norm, ste_in;
    int has_norm, has_in;
    float *w;                      /* fake-quantized reduction weight [out][in] */
    float *panels;                 /* w packed for the forward */
    vitq_i_packed packed;
    float *gather, *gq, *ln, *lnq; /* [images * rows][in] */
    float *scratch;                /* the input gradient's packed weight */
    float *block;
} vitq_i_qat_merge;

vitq_status vitq_i_qat_merge_create(vitq_i_qat_merge *g, const vitq_i_run *r, int stage, size_t max_images);
void vitq_i_qat_merge_free(vitq_i_qat_merge *g);

/* x [n][rows][out] from the previous stage's output prev [n][grid_prev^2][dim_prev]. */
vitq_status vitq_i_qat_merge_forward(vitq_i_qat_merge *g, const float *prev, size_t n, float *x);

/* d_prev [n][grid_prev^2][dim_prev] from dx, for the last forward. */
void vitq_i_qat_merge_backward(vitq_i_qat_merge *g, const float *dx, size_t n, float *d_prev);

#endif
