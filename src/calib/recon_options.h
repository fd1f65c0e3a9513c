/* The options and per-piece report of reconstruction, shared by the block stage (reconstruct.h) and the
 * single-layer one (recon_layer.h). */
#ifndef VITQ_CALIB_RECON_OPTIONS_H
#define VITQ_CALIB_RECON_OPTIONS_H

#include <stdint.h>

typedef struct vitq_i_recon_options {
    int32_t iters;      /* Adam steps per block */
    int32_t batch;      /* images per step (at most the calibration images) */
    double drop;        /* QDrop probability */
    int32_t learn_steps;
    double lr_v, lr_step, lambda, warmup;
    uint64_t seed;
    int mix_input;      /* QDrop's mixing of the block input: each element float with probability drop */
    int fisher;         /* 1: the loss weighted by the float network's diagonal Fisher (BRECQ), 0: MSE */
    int32_t augment;    /* augmented views (random resized crops, flips) per calibration image, 0: none */
} vitq_i_recon_options;

/* Per block: the losses before and after, and whether the result was kept. */
typedef struct vitq_i_recon_block {
    double before, after;
    int kept;
} vitq_i_recon_block;

#endif
