/* Gradient-weighted, block-by-block search of quantizer parameters (block_search.c): the engine of
 * the PTQ4ViT and APQ-ViT methods. */
#ifndef VITQ_CALIB_BLOCK_SEARCH_H
#define VITQ_CALIB_BLOCK_SEARCH_H

#include "calib/run.h"

typedef struct vitq_i_block_search {
    int bbc;          /* 0: Hessian-guided metric on each layer's output; 1: bottom-eliminated, on the block output */
    double eliminate; /* bbc: fraction of the smallest terms dropped (the p-th percentile threshold) */
    int sequential;   /* 1: points searched earlier in the block stay quantized */
    int grid;         /* candidates alpha + i (beta - alpha) / grid, i = 0 .. grid, times the calibrated scale */
    double alpha, beta;
    int rounds;       /* alternating rounds over each pair */
    size_t images;    /* calibration images the search uses (0: all) */
} vitq_i_block_search_options;

vitq_status vitq_i_block_search(vitq_i_run *run, const vitq_i_block_search_options *options);

#endif
