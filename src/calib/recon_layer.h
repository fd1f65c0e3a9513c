/* Reconstruction of one linear layer outside the transformer blocks (Swin's patch merging; the same shape
 * serves a patch embedding or a head): AdaRound on the layer's weight alone, so that the layer on the
 * quantized network's (already quantized) input reproduces the float network's output of that layer. The
 * single-layer case of block reconstruction (reconstruct.h): the same optimiser, annealing, constants and
 * keep-the-start rule, without activation steps to learn (the input arrives quantized). */
#ifndef VITQ_CALIB_RECON_LAYER_H
#define VITQ_CALIB_RECON_LAYER_H

#include "calib/recon_options.h"
#include "calib/run.h"

/* The layer y = x w^T + bias of weight point p (r->weights[p], [out][in] rows; its quantizer a uniform grid,
 * else nothing is learned and *kept is 1) on n images of `rows_per_image` rows each: x [n * rows][in] its
 * quantized input, y [n * rows][out] the float output to reproduce. rep gets the loss (squared error summed
 * over the outputs, averaged over the images) with the starting quantizer and with the hardened rounding;
 * when lower, the hardened weights s (code - z) replace r->weights[p] and its panels are repacked in float
 * (the caller quantizes them again when it runs the layer). */
vitq_status vitq_i_recon_linear(vitq_i_run *r, int p, size_t out, size_t in, const float *bias, const float *x,
                                const float *y, size_t n, size_t rows_per_image, const vitq_i_recon_options *o,
                                vitq_i_recon_block *rep);

#endif
