/* The integer-only ViT / DeiT (issue 17, docs/design.md "Integer-only execution"): a quantized model
 * compiled into integers (quant/intonly.c) and run here without any floating point: uint8 pixels in,
 * int8/int4 weights, uint8 activation bytes, int32 accumulators, dyadic requantization (kernels/
 * requant.h) between every pair of operators, the residual stream in int32, the integer LayerNorm,
 * softmax and GELU kernels of kernels/intnl.h, int32 logits out (each class at its own scale, applied
 * by the caller).
 *
 * The program's scales live only in the dyadic multipliers: the runtime sees integers. The structures
 * below hold no float member the runtime reads (the packed weights carry float scales for the float
 * GEMM, which the integer GEMM ignores). intvit.c builds with -mgeneral-regs-only
 * (tests/build/check_float_free.sh). */
#ifndef VITQ_KERNELS_INTVIT_H
#define VITQ_KERNELS_INTVIT_H

#include "kernels/igemm.h"
#include "kernels/intnl.h"
#include "kernels/requant.h"

/* Which kernel of intnl.h an operator runs. */
typedef enum vitq_i_iv_kind {
    VITQ_I_IV_LN_INT = 1,     /* vitq_i_int_layernorm (I-BERT, I-ViT) */
    VITQ_I_IV_LN_PTF = 2,     /* vitq_i_ptf_layernorm (FQ-ViT) */
    VITQ_I_IV_SM_IBERT = 3,   /* vitq_i_ibert_softmax */
    VITQ_I_IV_SM_SHIFT = 4,   /* vitq_i_shiftmax */
    VITQ_I_IV_SM_LIS = 5,     /* vitq_i_lis_softmax, then P.V by shifts */
    VITQ_I_IV_GELU_IBERT = 6, /* vitq_i_ibert_gelu */
    VITQ_I_IV_GELU_SHIFT = 7  /* vitq_i_shiftgelu */
} vitq_i_iv_kind;

typedef struct vitq_i_iv_op {
    int32_t kind;
    union {
        vitq_i_int_layernorm_params ln;
        vitq_i_ptf_layernorm_params ptf;
        vitq_i_ibert_softmax_params ibert_softmax;
        vitq_i_shiftmax_params shiftmax;
        vitq_i_lis_params lis;
        vitq_i_ibert_gelu_params ibert_gelu;
        vitq_i_shiftgelu_params shiftgelu;
    } p;
} vitq_i_iv_op;

/* int32 values -> codes of a grid: x * m[c] (m per tensor when nm = 1, else per column), the grid's
 * zero point added, clamped (vitq_i_requant_rows). */
typedef struct vitq_i_iv_requant {
    vitq_i_dyadic *m;
    size_t nm;
    vitq_i_requant_grid g;
} vitq_i_iv_requant;

/* A linear layer: uint8 input bytes (zero point a_zero) x the packed weight, + the int32 bias (at
 * a_scale w_scale[j]; NULL: none). */
typedef struct vitq_i_iv_linear {
    const vitq_i_qpacked *w;
    int32_t a_zero;
    int32_t *bias;
} vitq_i_iv_linear;

/* The residual stream into a LayerNorm into the bytes of the linear layer after it. */
typedef struct vitq_i_iv_norm {
    vitq_i_iv_requant in; /* residual -> the kernel's int16 input codes (PTF: codes with in.g.zero, which is
                           * then subtracted: the kernel takes code - zero) */
    vitq_i_iv_op op;
    vitq_i_iv_requant out; /* the kernel's int32 output (its zero point 0) -> the next layer's bytes */
} vitq_i_iv_norm;

typedef struct vitq_i_iv_block {
    vitq_i_iv_norm norm1;
    vitq_i_iv_linear qkv;
    vitq_i_iv_requant to_q, to_k, to_v; /* qkv's int32 columns [0, d), [d, 2d), [2d, 3d) -> Q, K, V bytes */
    const vitq_i_qact *k_grid, *v_grid; /* for packing K and V as the right-hand side (their scales unused) */
    int32_t q_zero, p_zero;             /* GEMM zero points of the Q and P bytes */
    vitq_i_dyadic to_scores;            /* Q.K^T int32 (at s_q s_k) -> the softmax's int16 input */
    vitq_i_iv_op softmax;
    vitq_i_iv_requant to_p;             /* the softmax's int32 output -> P bytes (I-BERT, Shiftmax) */
    int32_t v_zero;                     /* LIS: V's zero point (P.V by shifts on V codes - zero) */
    int32_t lis_frac;                   /* LIS: fraction bits of its P.V (out at s_v 2^-frac) */
    vitq_i_iv_requant to_proj;          /* P.V int32 -> proj's input bytes (per tensor) */
    vitq_i_iv_linear proj;
    vitq_i_dyadic *proj_res;            /* [d] proj's int32 -> the residual stream */
    vitq_i_iv_norm norm2;
    vitq_i_iv_linear fc1;
    vitq_i_iv_requant to_gelu;          /* fc1's int32 (per column) -> the GELU's int16 input */
    vitq_i_iv_op gelu;
    vitq_i_iv_requant to_fc2;           /* the GELU's int32 -> fc2's input bytes */
    vitq_i_iv_linear fc2;
    vitq_i_dyadic *fc2_res;             /* [d] */
} vitq_i_iv_block;

typedef struct vitq_i_intvit {
    int32_t channels, image_size, patch, grid, tokens, prefix, dim, heads, hidden, depth, classes;
    /* the patch embedding, one GEMM per colour channel (the normalisation (p / 255 - mean_c) / std_c is
     * a different factor per channel: its 1 / (255 std_c) goes into that channel's multipliers, its
     * mean into embed_const), each adding into the residual stream */
    vitq_i_qpacked patch_w[VITQ_MAX_CHANNELS];  /* [dim] x [patch^2] */
    vitq_i_dyadic *patch_res[VITQ_MAX_CHANNELS]; /* [dim] */
    int32_t *embed_const;                        /* [tokens][dim]: class / distillation tokens and position
                                                  * embeddings, the bias and the mean term, at S_res */
    vitq_i_iv_block *blocks;                     /* [depth] */
    vitq_i_iv_norm norm;                         /* the final norm (class token) -> the head's bytes */
    vitq_i_iv_norm norm_dist;                    /* the same norm (distillation token) -> head_dist's bytes */
    vitq_i_iv_linear head, head_dist;            /* head_dist.w NULL: one head */
} vitq_i_intvit;

/* Bytes of scratch vitq_i_intvit_run needs for n images on nthreads threads (0: all), SIZE_MAX when
 * that does not fit in memory. */
size_t vitq_i_intvit_scratch_bytes(const vitq_i_intvit *p, size_t n, int nthreads);

/* Logits of n images of uint8 pixels (NCHW) as int32: logits[i][c] of the head (and logits_dist of the
 * distillation head, when the program has one; else NULL), each class at its own scale (the program's
 * builder keeps them). `scratch` holds vitq_i_intvit_scratch_bytes(p, n, nthreads) bytes, 64-byte aligned.
 * The GEMMs, the attention heads and the row operators run on nthreads threads (0: all); every result
 * is computed by one task in a fixed order, so the logits do not depend on the thread count. */
vitq_status vitq_i_intvit_run(const vitq_i_intvit *p, const uint8_t *pixels, size_t n, int32_t *logits,
                              int32_t *logits_dist, void *scratch, int nthreads);

/* Query rows per step of an attention head: `rows` in [1, 64] instead of the default (64), anything else
 * the default. The logits do not depend on it (every row's result depends on that row only); tests use
 * it to take the several-steps path on small models. Not thread-safe against running models. */
void vitq_i_intvit_force_query_rows(int rows);

#endif
