/* The calibration stage of the integer non-linear operators (quant/nonlinear.h): statistics of each
 * operator's input in the quantized network, the kernels' parameters, and for VITQ_NONLINEAR_MIXED the
 * per-operator choice of mixed non-linear quantization (arXiv 2407.18437): for every operator and every
 * candidate method, the SQNR of the network's logits against the float network's when only that
 * operator runs that method, everything upstream quantized as the final model is; the method that
 * loses least is kept. */
#ifndef VITQ_CALIB_NONLINEAR_SEARCH_H
#define VITQ_CALIB_NONLINEAR_SEARCH_H

#include "calib/run.h"

/* Images the mixed selection measures on at most (the first ones of the calibration set). */
#define VITQ_I_NL_SEARCH_IMAGES 64

/* Run after every quantizer is final (weights included): fills r->q->nl from r->cfg[p].nonlinear.
 * A point whose probabilities an FQ-ViT softmax gives loses its quantizer. */
vitq_status vitq_i_nonlinear_refine(vitq_i_run *r);

#endif
