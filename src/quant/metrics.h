/* Error metrics between a reference tensor and its approximation (vitq_metric in vitq.h): in the quant
 * layer, as schemes get them through their host (instance.c) and calibration and reports use them too. */
#ifndef VITQ_QUANT_METRICS_H
#define VITQ_QUANT_METRICS_H

#include <stddef.h>

#include "core/core.h"

/* `m` of `approx` against `ref` (n floats each), accumulated in double. No validation: NaN for an
 * unknown metric, non-finite inputs propagate. n == 0 gives MSE 0, cosine 1, SQNR +inf (nothing differs).
 *  MSE:    mean of (ref - approx)^2.
 *  COSINE: ref.approx / (|ref| |approx|); 1 when both are all zero, 0 when only one is.
 *  SQNR:   10 log10(sum ref^2 / sum (ref - approx)^2) dB; +inf when they are equal, -inf when ref is all
 *          zero and approx is not (no signal, only noise). */
double vitq_i_metric(vitq_metric m, const float *ref, const float *approx, size_t n);

#endif
