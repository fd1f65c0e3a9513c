/* Integer execution of a quantized model: the quant layer's choice of kernels. When a quantized model
 * is built, each linear layer whose input and weight quantizers are uniform grids of at most 8 bits
 * gets an integer kernel (kernels/qlinear.h: uint8 activation codes x int8 / int4 weight codes, int32
 * accumulation), and each block whose q, k, v and probabilities are such grids (scores not quantized)
 * gets an integer attention. The network's layers then run those kernels; the forward pass does not
 * branch on quantization. Everything else (LayerNorm, softmax, GELU, layers with other quantizers)
 * stays as the simulation runs it.
 *
 * The integer kernels compute the simulation's products: the activation codes are the simulation's
 * codes bit for bit (same division, rounding and clamping) and the weight codes are the file's. Only
 * the summation differs: exact in int32 here, float in the simulation, so logits differ by float
 * rounding of the simulation's sums (tests/unit/test_integer.c bounds it). */
#ifndef VITQ_QUANT_INTEGER_H
#define VITQ_QUANT_INTEGER_H

#include "quant/qmodel.h"

/* Give every eligible layer and attention of m (whose quantizers q holds) its integer kernel. The
 * float panels of those layers and their weight points' codes are released: the weight then exists
 * once, as integer panels (vitq_i_integer_weight_codes reads it back). The input sites the kernels
 * realise themselves are left out of q->run_sites, the sites of q's forward taps. The counts of
 * integer layers and attentions go to *layers and *attentions. */
vitq_status vitq_i_integer_build(vitq_i_net *m, vitq_i_qmodel *q, int *layers, int *attentions);

/* The weight codes of layer l, which runs the integer kernel for weight point wp, in the storage of
 * quant/codes.h (what a quantized file holds) into `out` (wp->codes_bytes bytes). Scratch from `a`. */
vitq_status vitq_i_integer_weight_codes(const vitq_allocator *a, const vitq_i_linear *l, const vitq_i_qpoint *wp,
                                        uint8_t *out);

#endif
