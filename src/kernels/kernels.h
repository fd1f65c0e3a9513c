/* Float32 tensor kernels of the forward pass. Every kernel has a simple reference it is tested
 * against (tests/unit/test_kernels.c). Row-major everywhere. */
#ifndef VITQ_KERNELS_H
#define VITQ_KERNELS_H

#include <stddef.h>

#include "core/core.h"

/* Weights of a linear layer packed for vitq_i_gemm: panels of VITQ_I_GEMM_NR output features, each
 * panel k-major (K x NR floats: row kk holds w[p*NR .. p*NR+NR)[kk]), the last one zero-padded.
 * Packed once at load time; the one layout serves every instruction-set path. */
#define VITQ_I_GEMM_NR 32
/* The most rows any path's micro-kernel takes at once (AVX-512: 14, AVX2: 6, portable C: 4). */
#define VITQ_I_GEMM_MR 14

typedef struct vitq_i_packed {
    size_t n;      /* output features (rows of the PyTorch weight) */
    size_t k;      /* input features */
    float *panels; /* vitq_i_gemm_packed_floats(n, k) floats */
} vitq_i_packed;

/* Pack a PyTorch-layout weight w[n][k]. The panels come from `a`. */
vitq_status vitq_i_gemm_pack(const vitq_allocator *a, const float *w, size_t n, size_t k,
                             vitq_i_packed *out);
void vitq_i_gemm_packed_free(const vitq_allocator *a, vitq_i_packed *p);
/* The PyTorch-layout weight w[n][k] back from its panels, exactly: the panels are the only copy a
 * loaded model keeps, and saving, reports and calibration read the weight from them. */
void vitq_i_gemm_unpack(const vitq_i_packed *p, float *w);

/* Floats the panels of an n x k weight take: ceil(n / NR) * NR * k (SIZE_MAX on overflow). */
size_t vitq_i_gemm_packed_floats(size_t n, size_t k);
/* Pack into caller-owned panels (vitq_i_gemm_packed_floats(n, k) floats) the n x k matrix whose
 * element (j, kk) is w[j * row_stride + kk * col_stride], and point *out at them (nothing is
 * allocated; the caller frees `panels`). Strides let a transposed weight be packed without a copy. */
void vitq_i_gemm_pack_strided(const float *w, size_t row_stride, size_t col_stride, size_t n, size_t k,
                              float *panels, vitq_i_packed *out);

/* What vitq_i_gemm does to each output after the product. */
typedef enum vitq_i_epilogue {
    VITQ_I_EPI_NONE = 0,     /* c = a.w^T + bias */
    VITQ_I_EPI_GELU_ERF = 1, /* c = gelu_erf(a.w^T + bias) */
    VITQ_I_EPI_GELU_TANH = 2,
    VITQ_I_EPI_RESIDUAL = 3 /* c += a.w^T + bias (residual connection, c holds the input) */
} vitq_i_epilogue;

/* c[m][n] = epilogue(sum_k a[m][k] w[n][k] + bias[n]); `bias` may be NULL; `a` must not overlap `c`.
 * Each output element is computed by the same instruction sequence wherever it sits in the matrix
 * (one accumulator, k in increasing order), so results do not depend on m, on the row an input sits
 * in, or on the thread count. The AVX2 and AVX-512 paths both use fused multiply-adds and give the
 * same bits; the portable C path rounds products and sums separately (see tests/unit/test_kernels.c
 * for the tolerance between them). nthreads <= 0: all available. */
void vitq_i_gemm(const float *a, size_t lda, size_t m, const vitq_i_packed *w, const float *bias,
                 float *c, size_t ldc, vitq_i_epilogue epilogue, int nthreads);

/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over `dim` features, for `rows` rows.
 * In place allowed. Statistics in double: the LayerNorm of real checkpoints sees large means. */
void vitq_i_layernorm(const float *x, size_t rows, size_t dim, const float *gamma, const float *beta,
                      float eps, float *out, int nthreads);

/* GELU, exact (x * Phi(x)) and tanh forms. The fused GEMM epilogues of every path compute the same
 * formula bit for bit, so fused and unfused GELU agree exactly (accuracy: src/kernels/vmath.h). */
float vitq_i_gelu_erf(float x);
float vitq_i_gelu_tanh(float x);
/* e^x within 1 ulp (vmath.h); the exponential of the softmax. */
float vitq_i_exp(float x);

/* Numerically stable softmax of x[0..n) in place (max subtracted first, sum in double). Every
 * instruction-set path gives the same bits. */
void vitq_i_softmax(float *x, size_t n);

/* Multi-head scaled dot-product attention for `batch` sequences of `tokens` tokens.
 * qkv: [batch*tokens][3*dim] with q | k | v blocks, heads as consecutive head_dim slices (timm).
 * out: [batch*tokens][dim]. scratch: vitq_i_attention_scratch_floats() floats per thread (64-byte
 * aligned scratch is faster, not required). */
size_t vitq_i_attention_scratch_floats(size_t tokens, size_t head_dim);
void vitq_i_attention(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                      float *out, float *scratch, int nthreads);

/* Additive terms of the attention scores before the softmax (Swin window attention):
 * score[i][j] = q_i.k_j * scale + head_bias[h][i][j] + mask[b % mask_period][i][j]. Either may be NULL. */
typedef struct vitq_i_attn_bias {
    const float *head_bias; /* [heads][tokens][tokens]: relative position bias */
    const float *mask;      /* [mask_period][tokens][tokens]: 0 or -100 (shifted windows) */
    size_t mask_period;     /* windows per image: sequence b (a window) uses mask b % mask_period */
} vitq_i_attn_bias;

/* vitq_i_attention with the additive terms of `bias` (NULL: none). */
void vitq_i_attention_biased(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *out, float *scratch, int nthreads);

/* The attention in three stages, for simulated quantization between them. Results equal
 * vitq_i_attention_biased bit for bit when nothing changes the buffers in between.
 * scores: [batch][heads][tokens][tokens] (written by _scores, softmaxed in place by _softmax, read by
 * _apply as probabilities). scratch as for vitq_i_attention_biased. */
void vitq_i_attention_scores(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *scores, float *scratch, int nthreads);
void vitq_i_attention_softmax(float *scores, size_t rows, size_t tokens, int nthreads);
void vitq_i_attention_apply(const float *probs, const float *qkv, size_t batch, size_t tokens, size_t dim,
                            size_t heads, float *out, float *scratch, int nthreads);

#endif
