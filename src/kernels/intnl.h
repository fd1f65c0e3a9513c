/* Integer-only non-linear kernels of I-BERT (arXiv 2101.01321), FQ-ViT (arXiv 2111.13824) and I-ViT
 * (arXiv 2207.01405): softmax, GELU and LayerNorm computed with int32/int64 arithmetic, shifts and
 * comparisons only (intnl.c contains no floating point at all, so it builds with a flag that forbids
 * it). Each kernel takes a parameter struct of integers prepared at calibration time from the float
 * scales (quant/intnl_params.h, which also gives the scale of each kernel's output) and processes
 * `rows` rows of `n` int16 values, one row at a time: a softmax row, a token's GELU inputs, a token's
 * LayerNorm channels.
 *
 * Conventions used throughout (the papers' PyTorch code rounds with floor and with torch.round):
 *   floor_div(a, b)  = floor(a / b) for any signs (C's `/` truncates toward zero);
 *   floor_shr(a, s)  = floor(a / 2^s), the arithmetic shift, written without shifting negatives;
 *   round_shr(a, s)  = floor((a + 2^(s-1)) / 2^s): round half up (s = 0: a itself);
 *   div_round_even(a, b) = a / b rounded half to even (torch.round), b > 0.
 * Every intermediate's bound is stated in intnl.c beside the operation, for the documented ranges:
 * int16 inputs, 1 <= n <= VITQ_I_INTNL_MAX_N, parameters accepted by the kernel's check function.
 * Each kernel runs that check itself and returns VITQ_ERR_INVALID_ARGUMENT / VITQ_ERR_OUT_OF_RANGE
 * (naming the kernel and the parameter) rather than compute outside its proven range.
 * Vector paths (intnl_dispatch.h: AVX2 for the I-BERT softmax, Shiftmax, both GELUs, the I-BERT/I-ViT
 * LayerNorm sums and output stage, and the P.V) give the scalar code's bits exactly, chosen by
 * vitq_i_features_active(). */
#ifndef VITQ_KERNELS_INTNL_H
#define VITQ_KERNELS_INTNL_H

#include <stdint.h>

#include "vitq.h"

#define VITQ_I_INTNL_MAX_N 4096 /* longest row: tokens of a softmax row, channels of a LayerNorm */

/* ---- integer square root (shared by the LayerNorms) ---- */

/* floor(sqrt(v)) for 0 <= v < 2^62 by I-BERT's Newton iteration (its Algorithm 4, after Crandall &
 * Pomerance): x0 = 2^ceil(bits(v)/2), x_{i+1} = floor((x_i + floor(v / x_i)) / 2), stop at the first
 * x_{i+1} >= x_i and return x_i. */
int64_t vitq_i_isqrt_newton(int64_t v);

/* I-ViT's square root: exactly `iters` steps of the same iteration from k = 2^16, whatever v is
 * (I-ViT uses 10). Never below floor(sqrt(v)). With 10 steps it is floor(sqrt(v)) or one more (the
 * floor iteration can stop on the upper value of its 2-cycle, as at v = 2^32 - 1) for
 * 34596 <= v < 2^44 (tested: all v < 2^20, samples above); below 34596 the steps halve k from 2^16
 * and stop above the root (k >= 2^6 for v = 0). */
int64_t vitq_i_isqrt_fixed(int64_t v, int iters);

/* ---- softmax ---- */

/* I-BERT softmax. Per row: d = x - max(x); i-exp on d with x0 = -0.6931 (ln 2), n = 30:
 * q = max(d, 30 x0_int), z = floor(q / x0_int), r = q - x0_int z, p = r (r + b_int) + c_int
 * (exp(r S) ~ 0.35815147 (rS)^2 + 0.96963238 rS + 1 = p at scale 0.35815147 S^2; exp(d S) ~ p 2^-z), then
 * the requantization of exp to 16 bits e = round_shr(p exp_mult, exp_shift + z) (exp_mult / 2^exp_shift
 * = 32767 / c_int: the row maximum, p = c_int, gives 32767), sum = sum(e), factor = floor(2^32 / sum),
 * out = floor(e factor / 2^(32 - out_bits)) in [0, 2^out_bits - 1], scale 2^-out_bits. */
typedef struct vitq_i_ibert_softmax_params {
    int32_t x0_int;    /* floor(-0.6931 / S), in [-11356, -1] */
    int32_t b_int;     /* floor(2.70732 / S), in [-x0_int, 44357] */
    int32_t c_int;     /* floor(2.79211 / S^2), in [1, 2^30) */
    int32_t exp_mult;  /* in [2^30, 2^31) */
    int32_t exp_shift; /* in [0, 62] */
    int32_t out_bits;  /* in [1, 16] */
} vitq_i_ibert_softmax_params;

vitq_status vitq_i_ibert_softmax(const vitq_i_ibert_softmax_params *p, const int16_t *x, int64_t rows, int64_t n,
                                 int32_t *out);

/* I-ViT Shiftmax. Per row: d = x - max(x); d' = d + floor_shr(d, 1) - floor_shr(d, 4) (times
 * log2 e ~ 1.4375); ShiftExp with n = 15: q = max(d', 15 x0), z = floor(q / x0), r = q - x0 z,
 * e = floor((r/2 - x0) 2^(15 - z)); sum = min(sum(e), 2^31 - 1); factor = floor((2^31 - 1) / sum);
 * out = floor(e factor / 2^(32 - out_bits)) in [0, 2^(out_bits-1) - 1], scale 2^-(out_bits - 1).
 * Once sum(e) reaches the clamp (rows * |x0| 2^15 >= 2^31: fine scales, long rows) the outputs no
 * longer sum to one: I-ViT's behaviour, kept; vitq_i_shiftmax_prepare refuses such scales. */
typedef struct vitq_i_shiftmax_params {
    int32_t x0;       /* floor(-1 / S), in [-16384, -1] */
    int32_t out_bits; /* in [2, 16] */
} vitq_i_shiftmax_params;

vitq_status vitq_i_shiftmax(const vitq_i_shiftmax_params *p, const int16_t *x, int64_t rows, int64_t n,
                            int32_t *out);

/* FQ-ViT Log-Int-Softmax. Per row: I-BERT's i-exp (n = 30) without requantization,
 * e = max(p 2^(30 - z), 0) exactly; sum = sum(e); v = div_round_even(sum, e); k = floor(log2 v),
 * q = k + (v - 2^k >= 2^(k-1)) (the log2 rounding at 1.5 2^k). Code q in [0, 2^bits - 2] stands for
 * the probability 2^-q; the top code 2^bits - 1 stands for 0 and is given when q >= 2^bits - 1 (or
 * e = 0). That is the log2 quantizer of quant/ (scale 1): FQ-ViT keeps 2^bits levels and a separate
 * zero mask, 2^bits + 1 states, which bits cannot hold, so its deepest level 2^-(2^bits - 1) becomes 0
 * here (at 4 bits, probabilities below ~2^-14.4). */
typedef struct vitq_i_lis_params {
    int32_t x0_int; /* as I-BERT, in [-355, -1] (S >= 2^-9) */
    int32_t b_int;  /* in [-x0_int, 1387] */
    int32_t c_int;  /* in [1, 2^20) */
    int32_t bits;   /* in [2, 8] */
} vitq_i_lis_params;

vitq_status vitq_i_lis_softmax(const vitq_i_lis_params *p, const int16_t *x, int64_t rows, int64_t n, uint8_t *codes);

/* FQ-ViT's P.V by shifts: out[r][d] = sum_j round_shr(v[j][d] 2^frac, codes[r][j]) over the tokens j
 * whose code is not the zero code 2^bits - 1: each term rounded half up on its own (FQ-ViT writes
 * V >> q, a floor, which biases every term by -1/2 unit: -98 units on a 197-token row at frac 0).
 * codes: [rows][tokens], v: [tokens][dim] int8, out: [rows][dim] int32 at scale S_V 2^-frac.
 * frac in [0, 12], tokens in [1, 4096]. */
vitq_status vitq_i_lis_pv(const uint8_t *codes, int64_t rows, int64_t tokens, int32_t bits, const int8_t *v,
                          int64_t dim, int32_t frac, int32_t *out);

/* ---- GELU ---- */

/* I-BERT i-GELU, elementwise (rows only batch the call). With S' = S / 1.4142:
 * y = sgn(x) ((min(|x|, -b_int) + b_int)^2 + c_int) (the erf polynomial -0.2888 (t - 1.769)^2 + 1 at
 * scale -0.2888 S'^2), y = floor_shr(y, shift), out = -x (y + one), scale S 0.2888 S'^2 2^shift / 2.
 * I-BERT writes x (y + one) with a negative scale; the sign is folded here so the scale is positive. */
typedef struct vitq_i_ibert_gelu_params {
    int32_t b_int; /* floor(-1.769 / S'), in [-40989, -1] */
    int32_t c_int; /* floor(-3.46260 / S'^2), in [-2^31, -1] */
    int32_t shift; /* I-BERT: 14; in [0, 40] */
    int32_t one;   /* floor(1 / (-0.2888 S'^2 2^shift)), negative */
} vitq_i_ibert_gelu_params;

vitq_status vitq_i_ibert_gelu(const vitq_i_ibert_gelu_params *p, const int16_t *x, int64_t rows, int64_t n,
                              int32_t *out);

/* I-ViT ShiftGELU, x sigma(1.702 x). Per row (a token's channels): m = max(x);
 * e1 = ShiftExp(x - m), e2 = ShiftExp(-m) with n = 23 and x0 = floor(-1 / (1.702 S)) (ShiftExp as in
 * Shiftmax; e2 saturates at 2^31 - 1 when -m > 0 makes it larger, which leaves the result unchanged
 * since the sum saturates there too); sum = min(e1 + e2, 2^31 - 1);
 * sig = floor(e1 floor((2^31 - 1) / sum) / 2^(32 - out_bits)); out = x sig, scale S 2^-(out_bits - 1). */
typedef struct vitq_i_shiftgelu_params {
    int32_t x0;       /* floor(-1 / (1.702 S)), in [-255, -1] */
    int32_t out_bits; /* bits of sig, in [2, 16] */
} vitq_i_shiftgelu_params;

vitq_status vitq_i_shiftgelu(const vitq_i_shiftgelu_params *p, const int16_t *x, int64_t rows, int64_t n,
                             int32_t *out);

/* ---- LayerNorm ---- */

/* The integer output grid of a LayerNorm: codes v + zero clamped to [min, max],
 * -2^16 <= min <= max <= 2^16, |zero| <= 2^16. */
typedef struct vitq_i_ln_out {
    int32_t zero, min, max;
} vitq_i_ln_out;

/* Per-channel output stage of the I-BERT and I-ViT LayerNorms: out = clamp(round_shr(y mult + bias,
 * shift) + zero, min, max) for the normalized y (|y| <= 2^30, scale sqrt(C) / 2^30). That is
 * I-BERT's y + bias_int followed by the requantization of its per-channel scale S_y gamma_c to the
 * output scale: bias = bias_int mult. */
typedef struct vitq_i_ln_channel {
    int32_t mult;  /* any int32 */
    int32_t shift; /* in [0, 62] */
    int64_t bias;  /* |bias| <= 2^61 */
} vitq_i_ln_channel;

typedef enum vitq_i_ln_variant {
    VITQ_I_LN_IBERT = 0, /* std = vitq_i_isqrt_newton(var), factor = floor(2^31 / std) */
    VITQ_I_LN_IVIT = 1   /* std = vitq_i_isqrt_fixed(var, 10), factor = floor((2^31 - 1) / std) */
} vitq_i_ln_variant;

/* I-BERT / I-ViT LayerNorm over a token's `channels` values: mu = div_round_even(sum(x), C),
 * y = x - mu, var = sum(y^2) (int64: I-BERT's overflow shift is never needed), std as the variant
 * says, factor (0 when std = 0: then every y is 0), y = floor_shr(y factor, 1), then the channel's
 * output stage. */
typedef struct vitq_i_int_layernorm_params {
    int32_t variant; /* vitq_i_ln_variant */
    int32_t channels;
    const vitq_i_ln_channel *ch; /* channels entries */
    vitq_i_ln_out out;
} vitq_i_int_layernorm_params;

vitq_status vitq_i_int_layernorm(const vitq_i_int_layernorm_params *p, const int16_t *x, int64_t rows,
                                 int32_t *out);

/* FQ-ViT Power-of-Two-Factor LayerNorm channel: the input x_c at scale s_min 2^alpha_c, G_c =
 * C |gamma_c| / s_out = g 2^-ge (g in [2^30, 2^31), or 0 when gamma_c = 0), bq = round(beta_c / s_out
 * 2^16). */
typedef struct vitq_i_ptf_channel {
    int32_t alpha; /* in [0, 3] */
    int32_t sign;  /* sign of gamma_c: -1, 0 or 1 */
    int32_t g;     /* 0 or in [2^30, 2^31) */
    int32_t ge;    /* in [0, 62] */
    int64_t bq;    /* |bq| <= 2^31 */
} vitq_i_ptf_channel;

/* Per token: xt_c = x_c 2^alpha_c, S1 = sum(xt), S2 = sum(xt^2), R = vitq_i_isqrt_newton(C S2 - S1^2)
 * (FQ-ViT's std is s_min R / C). R = 0 (a constant token) or g = 0: out = round_shr(bq, 16) (beta).
 * Otherwise A_c = G_c / R through Q = floor(g 2^32 / R) = floor(A_c 2^(32+ge)):
 * N = clamp(7 - floor(log2 A), 0, 31), M = min(floor(A 2^N), 255) = min(Q >> (32 + ge - N), 255),
 * a16 = min(floor(A 2^N 2^16), 2^24 - 1) (FQ-ViT's A 2^N at 16 fraction bits; the cap only acts where M
 * saturates), B = round_shr(bq 2^N - sign floor_div(a16 S1, C), 16)
 * (= round((beta/s_out - gamma/s_out mu/sigma) 2^N)), out = clamp(round_shr(sign M xt + B, N) + zero). */
typedef struct vitq_i_ptf_layernorm_params {
    int32_t channels;
    const vitq_i_ptf_channel *ch;
    vitq_i_ln_out out;
} vitq_i_ptf_layernorm_params;

vitq_status vitq_i_ptf_layernorm(const vitq_i_ptf_layernorm_params *p, const int16_t *x, int64_t rows,
                                 int32_t *out);

/* ---- parameter checks ---- */

/* Each kernel runs its check first; a runtime loading parameters from a file calls them to refuse
 * bad ones early. VITQ_ERR_OUT_OF_RANGE names the parameter and its range. */
vitq_status vitq_i_ibert_softmax_check(const vitq_i_ibert_softmax_params *p);
vitq_status vitq_i_shiftmax_check(const vitq_i_shiftmax_params *p);
vitq_status vitq_i_lis_check(const vitq_i_lis_params *p);
vitq_status vitq_i_ibert_gelu_check(const vitq_i_ibert_gelu_params *p);
vitq_status vitq_i_shiftgelu_check(const vitq_i_shiftgelu_params *p);
vitq_status vitq_i_int_layernorm_check(const vitq_i_int_layernorm_params *p);
vitq_status vitq_i_ptf_layernorm_check(const vitq_i_ptf_layernorm_params *p);

#endif
