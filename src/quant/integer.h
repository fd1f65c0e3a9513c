/* Integer execution of a quantized model: each linear layer whose input and weight quantizers are
 * uniform grids of at most 8 bits runs as uint8 activation codes x int8 / int4 weight codes with int32
 * accumulation (kernels/igemm.h) instead of fake quantization around a float GEMM. Everything else
 * (LayerNorm, softmax, GELU, layers with other quantizers) stays as the simulation runs it. The two
 * attention products run in integers too where q, k, v and the probabilities allow
 * (integer_attention.c).
 *
 * The integer layer computes the same products as the simulation: the activation codes are the
 * simulation's codes bit for bit (same division, rounding and clamping) and the weight codes are the
 * file's. Only the summation differs: exact in int32 here, float in the simulation, so logits differ by
 * float rounding of the simulation's sums (tests/unit/test_integer.c bounds it). */
#ifndef VITQ_QUANT_INTEGER_H
#define VITQ_QUANT_INTEGER_H

#include "kernels/igemm.h"
#include "quant/qmodel.h"

typedef struct vitq_i_int_linear {
    const struct vitq_i_linear *layer; /* the model's layer (bias, shapes) */
    vitq_allocator alloc;              /* the quantized model's, for activation buffers */
    vitq_i_qact act;                   /* the input's grid */
    int32_t act_zero;                  /* the GEMM's zero point of the activation bytes */
    vitq_i_qpacked weight;             /* codes packed for the kernels: the only copy the model keeps */
    const vitq_i_qpoint *wpoint;       /* the weight's quantizer (dequantization) */
} vitq_i_int_linear;

/* Grids of an attention whose products run in integers (integer_attention.c). */
typedef struct vitq_i_int_attention {
    vitq_i_qact q, k, v, p; /* queries, keys, values, probabilities */
} vitq_i_int_attention;

/* Build the integer form of every eligible layer of m (m->quant set) into q->ints, indexed by the
 * layer's input point, and point the layer at it (vitq_i_linear.integer). With `free_float` the float
 * packed copies of those layers and their weight points' codes are released: the layer then runs only
 * in integers, whatever taps a forward pass brings (forward_common.c), and its weight exists once, as
 * integer panels (vitq_i_integer_weight_rows / _codes read it back). */
vitq_status vitq_i_integer_build(vitq_model *m, vitq_i_qmodel *q, int free_float);
/* The same build also gives an integer attention (q->attns, by the block's q point) to every block
 * whose q, k, v and probabilities have grids the kernels take (as a layer input: uniform, one group,
 * at most 8 bits, integer zero point, no noise) and whose scores are not quantized. */
void vitq_i_integer_free(vitq_i_qmodel *q);

/* The layer's weight as the simulation multiplies it: the codes dequantized by the weight's quantizer
 * into dst[out][in]. Scratch from `a`. */
vitq_status vitq_i_integer_weight_rows(const vitq_allocator *a, const vitq_i_int_linear *f, float *dst);
/* The weight codes in the storage of quant/codes.h (what a quantized file holds) into `out`
 * (the point's codes_bytes bytes). Scratch from `a`. */
vitq_status vitq_i_integer_weight_codes(const vitq_allocator *a, const vitq_i_int_linear *f, uint8_t *out);

/* The layer on `rows` float rows: quantize them with the layer's input grid into *scratch (grown from
 * f->alloc as needed; the caller frees it), then the integer GEMM. */
vitq_status vitq_i_integer_run(const vitq_i_int_linear *f, const float *in, size_t lda, size_t rows, float *out,
                               size_t ldc, int epilogue, int nthreads, void **scratch, size_t *scratch_bytes);

/* The taps hook (vitq_i_taps.linear) of a quantized model with integer forms: the input is quantized
 * straight into codes, without the fake-quantization tap. */
int vitq_i_integer_linear(vitq_i_taps *t, int point, const struct vitq_i_linear *layer, const float *in, size_t lda,
                          size_t rows, float *out, size_t ldc, int epilogue, int nthreads);

/* The taps hook (vitq_i_taps.attention) of a block with an integer attention: codes of q, k and v,
 * integer Q.K^T and P.V per (sequence, head), the simulation's softmax. Returns 0 (the simulation's
 * path) for other blocks. */
int vitq_i_integer_attention(vitq_i_taps *t, const vitq_i_block_sites *sites, const float *qkv, size_t seqs,
                             size_t tokens, size_t dim, size_t heads, const vitq_i_attn_bias *bias, float *out,
                             int nthreads);

/* *scratch holding at least `need` bytes (grown from `a`; the contents are not kept). */
vitq_status vitq_i_integer_reserve(const vitq_allocator *a, size_t need, void **scratch, size_t *scratch_bytes);

/* The taps hook (vitq_i_taps.mlp): when fc1 and fc2 both run in integers, fc1's GELU epilogue writes
 * fc2's input codes directly (vitq_i_qgemm_requant: the same codes as quantizing the float result). */
int vitq_i_integer_mlp(vitq_i_taps *t, int fc1_point, int fc2_point, const struct vitq_i_linear *fc1,
                       const struct vitq_i_linear *fc2, const float *in, size_t rows, float *out, int gelu_epilogue,
                       int nthreads);

#endif
