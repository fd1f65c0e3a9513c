/* Integer parameters of the non-linear kernels from float scales (intnl_params.h). Floors and rounds
 * are taken in double on the papers' constants, as their PyTorch code takes them; each function ends
 * with the kernel's own check. */
#include "quant/intnl_params.h"

#include <math.h>

#include "core/core.h"
#include "kernels/uniform.h"

#define X0_LN2 (-0.6931)                    /* I-BERT's ln 2 cut of the exp range */
#define EXP_A 0.35815147                    /* exp(t) ~ 0.35815147 t^2 + 0.96963238 t + 1 = A (t^2 + B t + C) */
#define EXP_B (0.96963238 / EXP_A)          /* 2.70732 */
#define EXP_C (1.0 / EXP_A)                 /* 2.79212 */
#define ERF_A (-0.2888)                     /* erf(t) ~ sgn(t) (A (min(|t|, -B) + B)^2 + 1) */
#define ERF_B (-1.769)
#define SQRT2_IBERT 1.4142
#define SIGMOID_K 1.702                     /* I-ViT: GELU(x) ~ x sigmoid(1.702 x) */

static vitq_status scale_in(const char *kernel, double s, double lo, double hi) {
    if (!(s >= lo && s <= hi)) /* also refuses NaN */
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: input scale %g outside [%g, %g]", kernel, s, lo, hi);
    return VITQ_OK;
}

static vitq_status bits_in(const char *kernel, const char *name, int32_t v, int32_t lo, int32_t hi) {
    if (v < lo || v > hi)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: %s %d outside [%d, %d]", kernel, name, (int)v, (int)lo, (int)hi);
    return VITQ_OK;
}

/* mult 2^-shift = r (> 0) with mult in [2^30, 2^31). */
static void dyadic(double r, int32_t *mult, int32_t *shift) {
    int e;
    double f = frexp(r, &e); /* r = f 2^e, f in [0.5, 1) */
    double m = nearbyint(f * 2147483648.0);
    int s = 31 - e;
    if (m >= 2147483648.0) { /* f rounded up to 1 */
        m = 1073741824.0;
        s--;
    }
    *mult = (int32_t)m;
    *shift = s;
}

/* I-BERT's i-exp integers for scale S (also FQ-ViT's). */
static void ibert_exp_ints(double scale, int32_t *x0_int, int32_t *b_int, int32_t *c_int) {
    *x0_int = (int32_t)floor(X0_LN2 / scale);
    *b_int = (int32_t)floor(EXP_B / scale);
    *c_int = (int32_t)floor(EXP_C / (scale * scale));
}

vitq_status vitq_i_ibert_softmax_prepare(double scale, int32_t out_bits, vitq_i_ibert_softmax_params *p,
                                         double *out_scale) {
    const char *k = "I-BERT softmax";
    vitq_status st;
    if ((st = scale_in(k, scale, ldexp(1, -14), 0.5)) || (st = bits_in(k, "output bits", out_bits, 1, 16))) return st;
    ibert_exp_ints(scale, &p->x0_int, &p->b_int, &p->c_int);
    /* The 16-bit requantization of exp (I-BERT's QuantAct after i-exp): its calibrated maximum is the
     * exp of 0, c_int S_p exactly (every row has its maximum), so the 16-bit scale is c_int S_p / 32767
     * and the multiplier from S_p is 32767 / c_int. */
    dyadic(32767.0 / p->c_int, &p->exp_mult, &p->exp_shift);
    p->out_bits = out_bits;
    if (out_scale) *out_scale = ldexp(1, -out_bits);
    return vitq_i_ibert_softmax_check(p);
}

vitq_status vitq_i_shiftmax_prepare(double scale, int32_t out_bits, int32_t max_n, vitq_i_shiftmax_params *p,
                                    double *out_scale) {
    const char *k = "I-ViT Shiftmax";
    vitq_status st;
    if ((st = scale_in(k, scale, ldexp(1, -14), 1)) || (st = bits_in(k, "output bits", out_bits, 2, 16)) ||
        (st = bits_in(k, "row length", max_n, 1, VITQ_I_INTNL_MAX_N)))
        return st;
    p->x0 = (int32_t)floor(-1.0 / scale);
    /* Each exp is at most |x0| 2^15 (the row maximum's), so the sum stays below the clamp if: */
    if ((double)max_n * -p->x0 * 32768.0 > 2147483647.0)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "%s: input scale %g too fine for rows of %d scores: their exp sum can reach I-ViT's clamp "
                           "2^31 - 1 (needs rows * ceil(1/S) * 2^15 < 2^31)",
                           k, scale, (int)max_n);
    p->out_bits = out_bits;
    if (out_scale) *out_scale = ldexp(1, 1 - out_bits);
    return vitq_i_shiftmax_check(p);
}

vitq_status vitq_i_lis_prepare(double scale, int32_t bits, vitq_i_lis_params *p) {
    const char *k = "FQ-ViT Log-Int-Softmax";
    vitq_status st;
    if ((st = scale_in(k, scale, ldexp(1, -9), 0.5)) || (st = bits_in(k, "code bits", bits, 2, 8))) return st;
    ibert_exp_ints(scale, &p->x0_int, &p->b_int, &p->c_int);
    p->bits = bits;
    return vitq_i_lis_check(p);
}

double vitq_i_lis_value(int32_t code, int32_t bits) {
    return code >= (1 << bits) - 1 || code < 0 ? 0.0 : ldexp(1, -code);
}

/* I-BERT's erf unit floor(1 / S_erf) for the shift k, S_erf = a S'^2 2^k < 0. */
static double gelu_one(double sp, int k) { return floor(1.0 / (ERF_A * sp * sp * ldexp(1, k))); }

vitq_status vitq_i_ibert_gelu_prepare(double scale, vitq_i_ibert_gelu_params *p, double *out_scale) {
    const char *k = "I-BERT i-GELU";
    vitq_status st = scale_in(k, scale, ldexp(1, -14), 0.5);
    if (st) return st;
    double sp = scale / SQRT2_IBERT;
    p->b_int = (int32_t)floor(ERF_B / sp);
    double c = floor((1.0 / ERF_A) / (sp * sp)); /* >= -6.93 2^28 > -2^31 for S >= 2^-14 */
    p->c_int = (int32_t)c;
    int shift = 14; /* I-BERT's */
    double one = -gelu_one(sp, shift);
    if (one < 256 || one >= 32768) { /* else the smallest shift with |one| < 2^14 */
        shift = 0;
        while (shift < 40 && -gelu_one(sp, shift) >= 16384) shift++;
    }
    for (;; shift++) { /* the bound |y| + |one| <= 65535 (vitq_i_ibert_gelu_check) */
        p->shift = shift;
        p->one = (int32_t)gelu_one(sp, shift);
        int64_t b2 = (int64_t)p->b_int * p->b_int, cm = -(int64_t)p->c_int;
        if (((b2 > cm ? b2 : cm) >> shift) + 1 - p->one <= 65535 || shift >= 40) break;
    }
    if (out_scale) *out_scale = scale * -(ERF_A * sp * sp * ldexp(1, p->shift)) / 2;
    return vitq_i_ibert_gelu_check(p);
}

vitq_status vitq_i_shiftgelu_prepare(double scale, int32_t out_bits, vitq_i_shiftgelu_params *p, double *out_scale) {
    const char *k = "I-ViT ShiftGELU";
    vitq_status st;
    if ((st = scale_in(k, scale, 1.0 / (255 * SIGMOID_K), 65536)) || (st = bits_in(k, "output bits", out_bits, 2, 16)))
        return st;
    p->x0 = (int32_t)floor(-1.0 / (SIGMOID_K * scale)); /* I-ViT's code: the sigmoid's scale is S 1.702 */
    /* Each exp reaches |x0| 2^23 (at the row's maximum); e1 + e2 then stays below I-ViT's clamp of the
     * sum at 2^31 - 1 only for |x0| < 128. Past it a row with a small maximum m (e2 = exp(-1.702 m) not
     * negligible) saturates the sum and its sigmoid at the maximum reads 1 instead of sigmoid(1.702 m):
     * the kernel accepts such x0 (I-ViT's behaviour), a preparation does not make them. */
    if (p->x0 < -127)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "%s: input scale %g too fine: x0 = %d, and the exp sum saturates at 2^31 - 1 unless "
                           "|x0| <= 127 (S >= 1 / (127 1.702))", k, scale, (int)p->x0);
    p->out_bits = out_bits;
    if (out_scale) *out_scale = ldexp(scale, 1 - out_bits);
    return vitq_i_shiftgelu_check(p);
}

/* The affine part's own checks, shared by both LayerNorm preparations. */
static vitq_status affine_check(const char *k, const vitq_i_ln_affine *a) {
    if (!a || !a->gamma || !a->beta) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL gamma or beta", k);
    vitq_status st = bits_in(k, "channels", a->channels, 1, VITQ_I_INTNL_MAX_N);
    if (st) return st;
    if (!(a->out_scale > 0 && isfinite(a->out_scale)))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: output scale %g is not a positive number", k, a->out_scale);
    for (int32_t c = 0; c < a->channels; c++) {
        if (!isfinite(a->gamma[c]) || !isfinite(a->beta[c]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: gamma or beta of channel %d is not finite", k, (int)c);
        if (fabs(a->beta[c] / a->out_scale) >= 32768.0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: beta of channel %d is %g output steps (limit 2^15)", k,
                               (int)c, a->beta[c] / a->out_scale);
    }
    return VITQ_OK;
}

/* One channel of the I-BERT / I-ViT output stage (vitq_i_int_layernorm_prepare's rule). */
static vitq_status ln_channel(const char *k, int32_t c, double gamma, double beta, double sy, double out_scale,
                              vitq_i_ln_channel *ch) {
    double bo = beta / out_scale; /* |bo| < 2^15 */
    if (gamma == 0) {
        ch->mult = 0;
        ch->shift = 30;
        ch->bias = (int64_t)nearbyint(ldexp(bo, 30));
        return VITQ_OK;
    }
    double f = gamma * sy / out_scale;
    int s = 62;
    while (s >= 0 && (fabs(nearbyint(ldexp(f, s))) > 2147483647.0 || fabs(ldexp(bo, s)) > ldexp(1, 60))) s--;
    if (s < 0)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: channel %d: gamma %g / output scale %g is too large", k, (int)c,
                           gamma, out_scale);
    ch->shift = s;
    ch->mult = (int32_t)nearbyint(ldexp(f, s));
    double bias_int = floor((beta / gamma) / sy); /* I-BERT's bias_int */
    double lim = ldexp(1, 61);
    if (ch->mult != 0 && fabs(bias_int) * fabs((double)ch->mult) <= lim / 2)
        ch->bias = (int64_t)bias_int * ch->mult; /* exact: both factors are integers, the product < 2^60 */
    else
        ch->bias = (int64_t)nearbyint(ldexp(bo, s)); /* |.| <= 2^60 by the choice of s */
    return VITQ_OK;
}

vitq_status vitq_i_int_layernorm_prepare(vitq_i_ln_variant variant, const vitq_i_ln_affine *a,
                                         vitq_i_ln_channel *ch, vitq_i_int_layernorm_params *p) {
    const char *k = variant == VITQ_I_LN_IVIT ? "I-ViT I-LayerNorm" : "I-BERT LayerNorm";
    vitq_status st = affine_check(k, a);
    if (st) return st;
    if (!ch || !p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL output", k);
    double sy = sqrt((double)a->channels) / 1073741824.0; /* the scale of the normalized y */
    for (int32_t c = 0; c < a->channels; c++)
        if ((st = ln_channel(k, c, a->gamma[c], a->beta[c], sy, a->out_scale, &ch[c]))) return st;
    p->variant = variant;
    p->channels = a->channels;
    p->ch = ch;
    p->out = a->out;
    return vitq_i_int_layernorm_check(p);
}

vitq_status vitq_i_ptf_alpha(const float *x, int64_t tokens, int32_t channels, double min_all, double max_all,
                             int32_t bits, double *s_min, int32_t *zero_point, int32_t *alpha) {
    const char *k = "FQ-ViT PTF";
    vitq_status st;
    if (!x || !s_min || !zero_point || !alpha || tokens < 1)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL argument or no tokens", k);
    if ((st = bits_in(k, "bits", bits, 2, 8)) || (st = bits_in(k, "channels", channels, 1, VITQ_I_INTNL_MAX_N)))
        return st;
    if (!(isfinite(min_all) && isfinite(max_all) && min_all <= max_all))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: observed range [%g, %g] is not a finite range", k, min_all,
                           max_all);
    vitq_i_uniform grid = vitq_i_uniform_grid(bits, 0);
    double s8 = (max_all - min_all) / grid.qmax;
    if (s8 < 1.1920928955078125e-07) s8 = 1.1920928955078125e-07; /* FQ-ViT clamps at float32 epsilon */
    double zp = -nearbyint(min_all / s8);
    zp = zp < 0 ? 0 : zp > grid.qmax ? grid.qmax : zp;
    for (int32_t c = 0; c < channels; c++) {
        double best = INFINITY;
        alpha[c] = 0;
        for (int32_t al = 0; al <= 3; al++) {
            float s = (float)ldexp(s8, al - 3);
            double err = 0;
            for (int64_t t = 0; t < tokens; t++) {
                float v = x[t * channels + c];
                double d = (double)v - vitq_i_uniform_fq(&grid, v, s, (float)zp);
                err += d * d;
            }
            if (err < best) { /* ties keep the smaller alpha, as FQ-ViT's index(min) */
                best = err;
                alpha[c] = al;
            }
        }
    }
    *s_min = s8 / 8;
    *zero_point = (int32_t)zp;
    return VITQ_OK;
}

int16_t vitq_i_ptf_input(float x, double s_min, int32_t zero_point, int32_t alpha, int32_t bits) {
    vitq_i_uniform grid = vitq_i_uniform_grid(bits, 0);
    return (int16_t)(vitq_i_uniform_code(&grid, x, (float)ldexp(s_min, alpha), (float)zero_point) - zero_point);
}

vitq_status vitq_i_ptf_layernorm_prepare(const vitq_i_ln_affine *a, const int32_t *alpha, vitq_i_ptf_channel *ch,
                                         vitq_i_ptf_layernorm_params *p) {
    const char *k = "FQ-ViT PTF LayerNorm";
    vitq_status st = affine_check(k, a);
    if (st) return st;
    if (!alpha || !ch || !p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL alpha or output", k);
    for (int32_t c = 0; c < a->channels; c++) {
        double g = a->channels * fabs((double)a->gamma[c]) / a->out_scale; /* FQ-ViT's A_c times R */
        if (g >= 2147483648.0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: channel %d: C |gamma| / output scale = %g reaches 2^31", k,
                               (int)c, g);
        ch[c].alpha = alpha[c];
        ch[c].bq = (int64_t)nearbyint(ldexp(a->beta[c] / a->out_scale, 16));
        if (g < ldexp(1, -31)) { /* zero, or too small for a 31-bit mantissa with ge <= 62 */
            ch[c].sign = 0;
            ch[c].g = 0;
            ch[c].ge = 0;
            continue;
        }
        dyadic(g, &ch[c].g, &ch[c].ge);
        ch[c].sign = a->gamma[c] > 0 ? 1 : -1;
    }
    p->channels = a->channels;
    p->ch = ch;
    p->out = a->out;
    return vitq_i_ptf_layernorm_check(p);
}

void vitq_i_softmax_ref(const double *x, int64_t n, double *out) {
    double m = x[0], sum = 0;
    for (int64_t j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < n; j++) sum += out[j] = exp(x[j] - m);
    for (int64_t j = 0; j < n; j++) out[j] /= sum;
}

double vitq_i_gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

void vitq_i_layernorm_ref(const double *x, int64_t C, const float *gamma, const float *beta, double eps, double *out) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; c++) mean += x[c];
    mean /= C;
    for (int64_t c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    double inv = 1.0 / sqrt(var / C + eps);
    for (int64_t c = 0; c < C; c++) out[c] = (x[c] - mean) * inv * gamma[c] + beta[c];
}
