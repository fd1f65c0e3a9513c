/* NoisyQuant's noisy bias, searched per layer (noisy_search.c): a component any point can use with
 * noisy = 1, run by the driver after the method's refinement. */
#ifndef VITQ_CALIB_NOISY_SEARCH_H
#define VITQ_CALIB_NOISY_SEARCH_H

#include "calib/run.h"

/* Search the noisy bias of every quantized point configured with noisy = 1 (r->cfg[p].noisy); a point
 * keeps noise (qpoint.noise) only where some noise beats none. search_options is reserved (NULL). */
vitq_status vitq_i_noisy_refine(vitq_i_run *run, const double *search_options);

#endif
