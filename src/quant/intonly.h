/* Compiling a quantized ViT / DeiT into the integer-only program of kernels/intvit.h
 * (VITQ_EXECUTION_INTEGER_ONLY). Float is used here, once, to turn every ratio of scales into a dyadic
 * multiplier and every float constant (biases, embeddings, the image normalisation) into integers;
 * running the program needs none.
 *
 * The model must be fully integer: every linear layer on integer kernels (uniform input and weight
 * grids of at most 8 bits), Q, K, V and (unless FQ-ViT's softmax gives them) the probabilities on
 * uniform grids, and every LayerNorm, softmax and GELU an integer operator (--nonlinear). The image
 * enters as uint8 pixels: the patch embedding's input point is not used (the pixels are the exact
 * integers a normalised image comes from). Swin and the ViT representation layer (tanh) are not
 * supported: VITQ_ERR_UNSUPPORTED names what is missing. */
#ifndef VITQ_QUANT_INTONLY_H
#define VITQ_QUANT_INTONLY_H

#include "kernels/intvit.h"
#include "quant/qmodel.h"

typedef struct vitq_i_intonly {
    vitq_allocator alloc;
    vitq_i_intvit prog;
    float *logit_scale, *logit_scale_dist; /* [classes]: the value of one unit of each head's int32 logits */
    double res_scale;                      /* the residual stream's scale */
    void **owned;                          /* every block the program points to */
    size_t num_owned, cap_owned;
    vitq_i_qpacked *packed;                /* the patch embedding's per-channel panels (owned) */
    int num_packed;
} vitq_i_intonly;

/* The program of network m quantized by q (q's integer kernels built: vitq_i_integer_build). */
vitq_status vitq_i_intonly_build(const vitq_i_net *m, const vitq_i_qmodel *q, vitq_i_intonly **out);
void vitq_i_intonly_free(vitq_i_intonly *p);

/* Float logits of n images of uint8 pixels (NCHW) through the program: the int32 logits times their
 * scales (a distilled model: the mean of both heads). */
vitq_status vitq_i_intonly_forward(const vitq_i_intonly *p, const uint8_t *pixels, size_t n, float *logits,
                                   int nthreads);

#endif
