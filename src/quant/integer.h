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
/* Where the codes of weight points that do not hold them (qp->codes NULL) are read from: `load` gives
 * a new buffer of qp->codes_bytes bytes (freed by the caller with q's allocator) or a status. The
 * loader reads them from the file one layer at a time (quant/qload.c), so that no layer's codes
 * wait in memory beside another's panels. */
typedef struct vitq_i_codes_source {
    vitq_status (*load)(void *user, const vitq_i_qpoint *qp, uint8_t **codes);
    void *user;
} vitq_i_codes_source;

/* `source` may be NULL (every weight point holds its codes). */
vitq_status vitq_i_integer_build(vitq_i_net *m, vitq_i_qmodel *q, const vitq_i_codes_source *source, int *layers,
                                 int *attentions);

/* The weight codes of layer l, which runs the integer kernel for weight point wp, in the storage of
 * quant/codes.h (what a quantized file holds) into `out` (wp->codes_bytes bytes). Scratch from `a`. */
vitq_status vitq_i_integer_weight_codes(const vitq_allocator *a, const vitq_i_linear *l, const vitq_i_qpoint *wp,
                                        uint8_t *out);

/* 1 and *grid when activation point `point` is quantized on a grid the integer kernels take (uniform,
 * one group, at most 8 bits, no noise). */
int vitq_i_integer_point_grid(const vitq_i_qmodel *q, int point, vitq_i_qact *grid);

/* The weight of layer l (weight point qp) as integers: codes [out][in], per-output-channel scale and
 * zero point, from its integer panels or its quantizer. VITQ_ERR_UNSUPPORTED when they are not one
 * uniform grid of at most 8 bits per channel. Free with vitq_i_weight_ints_free (also after failure). */
typedef struct vitq_i_weight_ints {
    int32_t *codes;
    float *scale;
    int32_t *zero;
    int bits, symmetric;
} vitq_i_weight_ints;
vitq_status vitq_i_integer_weight_ints(const vitq_allocator *a, const vitq_i_qpoint *qp, const vitq_i_linear *l,
                                       vitq_i_weight_ints *out);
void vitq_i_weight_ints_free(const vitq_allocator *a, vitq_i_weight_ints *w);

#endif
