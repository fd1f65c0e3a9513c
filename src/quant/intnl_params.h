/* Calibration-time side of the integer non-linear kernels (kernels/intnl.h): from the float scales
 * (and LayerNorm's gamma, beta and output scale, FQ-ViT's per-channel factors) compute each kernel's
 * integer parameters and the scale of its output, once; the kernels then run without floating point.
 * Also the exact functions the kernels approximate, in double, for measuring their error.
 *
 * Every prepare function refuses (VITQ_ERR_OUT_OF_RANGE, naming the kernel and the value) a scale
 * outside the range its kernel's overflow bounds are proven for, and ends by running the kernel's own
 * check, so a prepared struct is always accepted by its kernel. Constants are the papers' (their
 * released code's): ln 2 as -0.6931, sqrt 2 as 1.4142, the exp polynomial 0.35815147 x^2 + 0.96963238 x
 * + 1, the erf polynomial a = -0.2888, b = -1.769, the sigmoid factor 1.702. */
#ifndef VITQ_QUANT_INTNL_PARAMS_H
#define VITQ_QUANT_INTNL_PARAMS_H

#include "kernels/intnl.h"

/* I-BERT softmax of int16 scores at scale S in [2^-14, 0.5]; output scale 2^-out_bits. */
vitq_status vitq_i_ibert_softmax_prepare(double scale, int32_t out_bits, vitq_i_ibert_softmax_params *p,
                                         double *out_scale);
/* I-ViT Shiftmax for rows of up to max_n scores, S in [2^-14, 1]; output scale 2^-(out_bits - 1).
 * Refuses a scale under which such a row can reach I-ViT's clamp of the exp sum at 2^31 - 1
 * (max_n |x0| 2^15 >= 2^31, x0 = floor(-1/S): S below ~max_n / 2^16), where the outputs stop summing
 * to one: Shiftmax wants coarse (8-bit-like) scores. */
vitq_status vitq_i_shiftmax_prepare(double scale, int32_t out_bits, int32_t max_n, vitq_i_shiftmax_params *p,
                                    double *out_scale);
/* FQ-ViT Log-Int-Softmax, S in [2^-9, 0.5] (the exact 50-bit exps need it); codes of `bits` bits. */
vitq_status vitq_i_lis_prepare(double scale, int32_t bits, vitq_i_lis_params *p);
/* The probability a Log-Int-Softmax code stands for: 2^-code, 0 for the top code 2^bits - 1. */
double vitq_i_lis_value(int32_t code, int32_t bits);

/* I-BERT i-GELU, S in [2^-14, 0.5]. The shift after the erf polynomial is I-BERT's 14 when that puts
 * |one| (the erf's unit) in [2^8, 2^15); otherwise the smallest shift >= 0 with |one| < 2^14 (I-BERT's
 * int32 inputs have tiny scales; int16 and int8 inputs would lose the erf at 14), raised further if
 * the kernel's int32 output bound needs it. */
vitq_status vitq_i_ibert_gelu_prepare(double scale, vitq_i_ibert_gelu_params *p, double *out_scale);
/* I-ViT ShiftGELU, S >= 1 / (127 * 1.702): |x0| <= 127 keeps the sum of the two exps below I-ViT's
 * clamp at 2^31 - 1 (the kernel takes |x0| up to 255, where that sum saturates for rows whose maximum
 * is small); output scale S 2^-(out_bits - 1). */
vitq_status vitq_i_shiftgelu_prepare(double scale, int32_t out_bits, vitq_i_shiftgelu_params *p, double *out_scale);

/* A LayerNorm's affine part and its integer output grid: out codes at scale out_scale with zero point
 * out.zero, clamped to [out.min, out.max]. |beta_c| / out_scale must stay below 2^15. */
typedef struct vitq_i_ln_affine {
    int32_t channels;
    const float *gamma, *beta;
    double out_scale;
    vitq_i_ln_out out;
} vitq_i_ln_affine;

/* I-BERT or I-ViT LayerNorm into ch[channels] (the caller's array, referenced by *p). The input
 * scale cancels out. Per channel c, with S_y = sqrt(C) / 2^30 and F = gamma_c S_y / out_scale: the
 * largest shift <= 62 with |mult| = |round(F 2^shift)| < 2^31 and |beta_c / out_scale| 2^shift <= 2^60;
 * bias = bias_int mult with I-BERT's bias_int = floor((beta_c / gamma_c) / S_y) when that product fits
 * 2^61, else round(beta_c / out_scale 2^shift) (a channel with tiny gamma); gamma_c = 0: mult 0,
 * bias = round(beta_c / out_scale 2^30), shift 30. */
vitq_status vitq_i_int_layernorm_prepare(vitq_i_ln_variant variant, const vitq_i_ln_affine *a,
                                         vitq_i_ln_channel *ch, vitq_i_int_layernorm_params *p);

/* FQ-ViT's Power-of-Two Factor from calibration data x[tokens][channels] and the observed range
 * [min_all, max_all] (all batches): s8 = (max - min) / (2^bits - 1), zero point clamp(-round(min / s8),
 * 0, 2^bits - 1), and per channel the alpha in 0..3 whose scale s8 / 2^(3 - alpha) fake-quantizes the
 * channel's values with the least squared error (ties: the smaller alpha). s_min = s8 / 8. */
vitq_status vitq_i_ptf_alpha(const float *x, int64_t tokens, int32_t channels, double min_all, double max_all,
                             int32_t bits, double *s_min, int32_t *zero_point, int32_t *alpha);
/* The integer a PTF LayerNorm receives for value x of a channel with factor alpha: the code
 * clamp(round(x / (s_min 2^alpha)) + zero_point, 0, 2^bits - 1) minus the zero point. */
int16_t vitq_i_ptf_input(float x, double s_min, int32_t zero_point, int32_t alpha, int32_t bits);

/* FQ-ViT PTF LayerNorm into ch[channels] from alpha[channels] (vitq_i_ptf_alpha). G_c = C |gamma_c| /
 * out_scale must be below 2^31; one below 2^-31 counts as gamma_c = 0. */
vitq_status vitq_i_ptf_layernorm_prepare(const vitq_i_ln_affine *a, const int32_t *alpha, vitq_i_ptf_channel *ch,
                                         vitq_i_ptf_layernorm_params *p);

/* ---- what the kernels approximate, in double ---- */

/* out = softmax(x) over n values. */
void vitq_i_softmax_ref(const double *x, int64_t n, double *out);
/* GELU(x) = x / 2 (1 + erf(x / sqrt 2)). */
double vitq_i_gelu_ref(double x);
/* LayerNorm of C values: (x - mean) / sqrt(var + eps) gamma + beta (population variance). */
void vitq_i_layernorm_ref(const double *x, int64_t C, const float *gamma, const float *beta, double eps, double *out);

#endif
