/* Integer kernels of quantized layers: what a linear layer or an attention runs when its quantizers
 * are uniform grids the integer GEMM (igemm.h) takes. A quantized model chooses them per layer when it
 * is built (quant/integer.c); the forward pass (model/) only sees "this layer has an integer kernel".
 *
 * A layer computes the same products as simulated quantization: its input is quantized with the
 * input grid into the simulation's codes bit for bit (vitq_i_quantize_u8), the weight codes are the
 * quantizer's, and only the summation differs (exact in int32 here, float in the simulation). */
#ifndef VITQ_KERNELS_QLINEAR_H
#define VITQ_KERNELS_QLINEAR_H

#include "kernels/igemm.h"
#include "kernels/kernels.h"

/* A buffer that grows to the largest request of a forward pass and is freed at its end. */
typedef struct vitq_i_scratch {
    vitq_allocator alloc;
    void *data;
    size_t bytes;
} vitq_i_scratch;

/* s->data holding at least `need` bytes (the contents are not kept). */
vitq_status vitq_i_scratch_reserve(vitq_i_scratch *s, size_t need);
void vitq_i_scratch_release(vitq_i_scratch *s);

/* The integer kernel of one linear layer: the input's grid and the weight codes packed as panels (the
 * only copy of the weight the layer keeps). */
typedef struct vitq_i_qlinear {
    vitq_i_qact act;       /* the input's grid */
    int32_t act_zero;      /* the GEMM's zero point of the activation bytes: act.zero + its offset */
    vitq_i_qpacked weight; /* per-output-channel grids */
} vitq_i_qlinear;

/* A kernel for input grid `act` and packed weight `weight` (moved into it) from `a`. */
vitq_status vitq_i_qlinear_create(const vitq_allocator *a, const vitq_i_qact *act, vitq_i_qpacked *weight,
                                  vitq_i_qlinear **out);
void vitq_i_qlinear_free(const vitq_allocator *a, vitq_i_qlinear *f);

/* out = epilogue(in . W^T + bias) for `rows` float rows of in (stride lda): the rows quantized with the
 * input grid into s, then the integer GEMM. bias may be NULL. */
vitq_status vitq_i_qlinear_run(const vitq_i_qlinear *f, const float *bias, const float *in, size_t lda, size_t rows,
                               float *out, size_t ldc, vitq_i_epilogue e, int nthreads, vitq_i_scratch *s);

/* out += fc2(gelu(fc1(in))) over `rows` rows of width fc1->weight.k: fc1's GELU epilogue writes fc2's
 * input codes directly (vitq_i_qgemm_requant: the codes quantizing its float result would give). */
vitq_status vitq_i_qlinear_mlp(const vitq_i_qlinear *fc1, const float *bias1, const vitq_i_qlinear *fc2,
                               const float *bias2, const float *in, size_t rows, float *out, vitq_i_epilogue gelu,
                               int nthreads, vitq_i_scratch *s);

/* The weight as the simulation multiplies it, dst[out][in] = (code - zero) * scale, exactly the
 * values of a uniform quantizer's dequantization. Scratch from `a`. */
vitq_status vitq_i_qlinear_weight_rows(const vitq_allocator *a, const vitq_i_qlinear *f, float *dst);

/* Integer attention: queries, keys, values and probabilities on uniform grids of at most 8 bits.
 * Per (sequence, head): q, k, v codes (the simulation's), K and V^T packed as the GEMM's right-hand side
 * (vitq_i_qgemm_pack_bytes, no allocation), scores = exact integer sums * (scale_q / sqrt(head_dim) *
 * scale_k), + bias, + mask, the float softmax, probabilities to codes, out = (P . V) * scale_p * scale_v.
 * The T x T probabilities never exist in float for more than one head per thread. */
typedef struct vitq_i_qattention {
    vitq_i_qact q, k, v, p;
} vitq_i_qattention;

/* 1 when the attention kernel takes `tokens` tokens of `heads` heads in `dim` channels. */
int vitq_i_qattention_fits(size_t tokens, size_t dim, size_t heads);

/* Attention of `seqs` sequences of `tokens` tokens from qkv ([rows][3 dim]: q, k, v) into out ([rows][dim]). */
vitq_status vitq_i_qattention_run(const vitq_i_qattention *f, const float *qkv, size_t seqs, size_t tokens, size_t dim,
                                  size_t heads, const vitq_i_attn_bias *bias, float *out, int nthreads,
                                  vitq_i_scratch *s);

#endif
