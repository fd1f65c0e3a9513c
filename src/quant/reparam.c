/* RepQ-ViT: per-channel quantization of a LayerNorm output folded into LayerNorm and the next linears.
 *
 * Derivation (why b_c uses the rounded per-tensor zero point). Let y_c be channel c of the old
 * LayerNorm output, t_c = y_c / s_c, and the per-channel code q_c = clamp(round(t_c) + z_c, 0, Q)
 * with value (q_c - z_c) s_c. The fold makes the new output y'_c = y_c / r_c - b_c (gamma and beta of
 * channel c both divided by r_c, then b_c subtracted from beta), with r_c = s_c / S and S the
 * per-tensor scale. Its per-tensor code is
 *     q'_c = clamp(round(y'_c / S) + Z, 0, Q) = clamp(round(t_c - b_c / S) + Z, 0, Q).
 * Choosing b_c = (Z - z_c) S gives t_c - b_c / S = t_c + (z_c - Z); when Z is an integer this is an
 * integer shift of t_c, which passes through the rounding, so q'_c = clamp(round(t_c) + z_c, 0, Q)
 * = q_c: the same codes, clipping included (same code range). This b_c equals the paper's
 * min_c / r_c - min~ (min_c = -z_c s_c, min~ = -Z S) written without the s_c / s_c round trip.
 * With the mean zero point left fractional (as RepQ-ViT's reference code does) the shift is not an
 * integer and the rounding grid moves: codes differ by one for a fraction of the inputs, so the
 * fold is only approximate. Hence Z = nearbyint(mean z_c): any integer keeps the identity exact,
 * the nearest one keeps the LayerNorm shifts b_c as close as possible to the paper's, and
 * nearbyint (ties to even) is the rounding every other zero point of vitq uses.
 * The dequantized values then agree channel by channel: (q'_c - Z) S = (q_c - z_c) S - b_c
 * = (value of q_c) / r_c - b_c, so a linear reading them with W'[:,c] = W[:,c] r_c and
 * bias' = bias + W' . b computes sum_c W[:,c] (value of q_c) + bias, the old layer's output. Without
 * quantization the same algebra with y_c in place of the value gives the unchanged FP32 output.
 * Caveat: the rounding is half to even, which an odd integer shift does not commute with, so an
 * input that is exactly a tie (t_c = k + 1/2 in float) may get a code one apart; float rounding of
 * y'_c near a tie does the same. Both concern a vanishing fraction of real inputs. */
#include <math.h>
#include <string.h>

#include "quant/reparam.h"

/* New weight, bias and panels of one linear, built completely before anything is changed. */
typedef struct staged_linear {
    float *weight;
    float *bias;
    vitq_i_packed packed;
} staged_linear;

static vitq_status check_quant_params(const float *scale, const float *zero_point, size_t d) {
    if (!scale || !zero_point)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: per-channel %s is NULL",
                           scale ? "zero_point" : "scale");
    for (size_t c = 0; c < d; c++) {
        if (!(scale[c] > 0.0f) || !isfinite(scale[c]))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: scale[%zu] = %g is not positive and finite",
                               c, (double)scale[c]);
        /* a fractional zero point is no grid of vitq, and it would break the exact code identity */
        if (!isfinite(zero_point[c]) || zero_point[c] != nearbyintf(zero_point[c]))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: zero_point[%zu] = %g is not an integer", c,
                               (double)zero_point[c]);
    }
    return VITQ_OK;
}

static vitq_status check_linears(vitq_i_linear *const *next, int num_next, size_t d) {
    if (!next || num_next < 1)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "RepQ fold: no linear layer to compensate the LayerNorm change (next %s, num_next %d)",
                           next ? "set" : "NULL", num_next);
    for (int i = 0; i < num_next; i++) {
        const vitq_i_linear *l = next[i];
        if (!l || !l->weight)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: linear %d %s is NULL", i,
                               l ? "weight" : "pointer");
        if (l->in != d || l->out == 0)
            return vitq_i_fail(VITQ_ERR_SHAPE, "RepQ fold: linear %d is %zu -> %zu, expected %zu inputs", i, l->in,
                               l->out, d);
        /* folding twice into one layer would scale its columns by r_c^2 */
        for (int j = 0; j < i; j++)
            if (next[j] == l)
                return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: linear %d is linear %d again", i, j);
    }
    return VITQ_OK;
}

static vitq_status check_args(const vitq_allocator *a, const vitq_i_layernorm_params *ln, size_t d,
                              vitq_i_linear *const *next, int num_next, const float *scale, const float *zero_point,
                              const float *tensor_scale, const float *tensor_zero) {
    if (!a || !ln || !tensor_scale || !tensor_zero)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: %s is NULL",
                           !a ? "allocator" : !ln ? "LayerNorm" : "an output pointer");
    if (!ln->gamma || !ln->beta)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: LayerNorm %s is NULL", ln->gamma ? "beta" : "gamma");
    if (d == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "RepQ fold: LayerNorm width is 0");
    vitq_status st = check_quant_params(scale, zero_point, d);
    return st ? st : check_linears(next, num_next, d);
}

/* Mean scale and rounded mean zero point (reasons in the comment at the top). Means in double: d can
 * be thousands of channels. The mean of positive finite floats is positive and finite. */
static void tensor_params(const float *scale, const float *zero_point, size_t d, float *ts, float *tz) {
    double s = 0.0, z = 0.0;
    for (size_t c = 0; c < d; c++) s += scale[c], z += zero_point[c];
    *ts = (float)(s / (double)d);
    *tz = (float)nearbyint(z / (double)d);
}

static void free_staged(const vitq_allocator *a, staged_linear *s, int n) {
    for (int i = 0; i < n; i++) {
        vitq_i_free(a, s[i].weight);
        vitq_i_free(a, s[i].bias);
        vitq_i_gemm_packed_free(a, &s[i].packed);
    }
}

/* W' = W diag(r), bias' = bias + W' b (double accumulation: b_c can be large against the output,
 * and the sum cancels against W' y' at run time), and the panels of W'. */
static vitq_status stage_linear(const vitq_allocator *a, const vitq_i_linear *l, const double *r, const double *b,
                                staged_linear *s) {
    size_t in = l->in, out = l->out;
    s->weight = vitq_i_alloc_array(a, out, in * sizeof(float));
    s->bias = vitq_i_alloc_array(a, out, sizeof(float));
    if (!s->weight || !s->bias) return vitq_i_oom("RepQ fold: folded linear", out * in * sizeof(float));
    for (size_t o = 0; o < out; o++) {
        const float *w = l->weight + o * in;
        float *wn = s->weight + o * in;
        double acc = l->bias ? (double)l->bias[o] : 0.0;
        for (size_t c = 0; c < in; c++) {
            wn[c] = (float)((double)w[c] * r[c]);
            acc += (double)wn[c] * b[c]; /* the rounded W' is what the GEMM will multiply b with */
        }
        s->bias[o] = (float)acc;
    }
    return vitq_i_gemm_pack(a, s->weight, out, in, &s->packed);
}

/* Move a staged linear into place; the old panels (and the staging buffers) go back to `a`. */
static void commit_linear(const vitq_allocator *a, vitq_i_linear *l, staged_linear *s) {
    memcpy(l->weight, s->weight, l->out * l->in * sizeof(float));
    if (l->bias) {
        memcpy(l->bias, s->bias, l->out * sizeof(float));
        vitq_i_free(a, s->bias);
    } else {
        l->bias = s->bias; /* the layer had none: the staged one becomes the layer's */
    }
    vitq_i_free(a, s->weight);
    vitq_i_gemm_packed_free(a, &l->packed);
    l->packed = s->packed;
    memset(s, 0, sizeof *s);
}

static void fold_layernorm(vitq_i_layernorm_params *ln, const double *r, const double *b, size_t d) {
    for (size_t c = 0; c < d; c++) {
        ln->gamma[c] = (float)((double)ln->gamma[c] / r[c]);
        ln->beta[c] = (float)((double)ln->beta[c] / r[c] - b[c]);
    }
}

vitq_status vitq_i_repq_fold(const vitq_allocator *a, vitq_i_layernorm_params *ln, size_t d,
                             vitq_i_linear *const *next, int num_next, const float *scale, const float *zero_point,
                             float *tensor_scale, float *tensor_zero) {
    vitq_status st = check_args(a, ln, d, next, num_next, scale, zero_point, tensor_scale, tensor_zero);
    if (st) return st;
    float ts, tz;
    tensor_params(scale, zero_point, d, &ts, &tz);
    double *r = vitq_i_alloc_array(a, d, 2 * sizeof(double)), *b = r ? r + d : NULL;
    staged_linear *staged = vitq_i_calloc(a, (size_t)num_next, sizeof(staged_linear));
    if (!r || !staged) {
        st = vitq_i_oom("RepQ fold: factors", d * 2 * sizeof(double));
        goto done;
    }
    for (size_t c = 0; c < d; c++) {
        r[c] = (double)scale[c] / (double)ts;
        b[c] = ((double)tz - (double)zero_point[c]) * (double)ts;
    }
    for (int i = 0; i < num_next && !st; i++) st = stage_linear(a, next[i], r, b, &staged[i]);
    if (st) goto done;
    /* nothing can fail from here on: the model changes all at once or not at all */
    for (int i = 0; i < num_next; i++) commit_linear(a, next[i], &staged[i]);
    fold_layernorm(ln, r, b, d);
    *tensor_scale = ts;
    *tensor_zero = tz;
done:
    if (staged) free_staged(a, staged, num_next);
    vitq_i_free(a, staged);
    vitq_i_free(a, r);
    return st;
}

vitq_status vitq_i_repq_unfold_factors(const vitq_i_layernorm_params *original, const vitq_i_layernorm_params *folded,
                                       size_t d, const char *what, double *r, int *changed) {
    *changed = memcmp(original->gamma, folded->gamma, d * sizeof(float)) != 0 ||
               memcmp(original->beta, folded->beta, d * sizeof(float)) != 0;
    for (size_t c = 0; c < d; c++) {
        double g = original->gamma[c], gf = folded->gamma[c];
        r[c] = g == 0.0 && gf == 0.0 ? 1.0 : g / gf;
        if (!(r[c] > 0.0) || !isfinite(r[c]))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: channel %zu: gamma %g in the float model and %g in the "
                               "quantized one is not a positive rescaling (was the quantized model made from this "
                               "float model?)", what, c, g, gf);
    }
    return VITQ_OK;
}
