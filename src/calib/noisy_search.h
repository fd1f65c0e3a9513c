/* NoisyQuant's passes over the calibration images (noisy_search.c): the noisy bias of every point
 * configured with noisy = 1 (run by the driver after the method's refinement, whatever the scheme),
 * and the authors' output-MSE clipping search, the base quantizer of the noisyquant method. */
#ifndef VITQ_CALIB_NOISY_SEARCH_H
#define VITQ_CALIB_NOISY_SEARCH_H

#include "calib/run.h"

/* Search the noisy bias (mean shift, then amplitude: vitq_i_noisy_bias_search) of every quantized
 * point configured with noisy = 1 (r->cfg[p].noisy), on the inputs the point sees with every earlier
 * quantizer on; a point keeps a bias (qpoint.noise) only where some bias beats none. search_options is
 * reserved (NULL). */
vitq_status vitq_i_noisy_refine(vitq_i_run *run, const double *search_options);

/* The clipping range of every quantized point p with targets[p] != 0 (inputs of linear layers, uniform
 * schemes), searched on `grid` candidates by the layer's output MSE (vitq_i_noisy_clip_search), in
 * forward order on the inputs each point sees with every earlier quantizer on. */
vitq_status vitq_i_noisy_clip_refine(vitq_i_run *run, const unsigned char *targets, int grid);

#endif
