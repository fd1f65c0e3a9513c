/* SmoothQuant / SQ-b fold (smooth.h).
 *
 * Why it is an identity. LayerNorm gives y = gamma * xhat + beta per channel (xhat the normalised
 * input); with gamma' = gamma / s and beta' = (beta - b) / s it gives y' = (y - b) / s. A reader
 * with W'[:, c] = W[:, c] s_c and bias' = bias + W b computes
 *     W' y' + bias' = sum_c W[:, c] (y_c - b_c) + bias + W b = W y + bias,
 * the old output. The shift term uses the original W (the b it cancels is in the old coordinates),
 * summed in double: b_c can be large beside the spread of y_c, and W b cancels against W' y' at run
 * time, so its own rounding should not add to the float rounding of the two products. */
#include <math.h>
#include <string.h>

#include "quant/smooth.h"

static vitq_status check_linears(vitq_i_linear *const *next, int num_next, size_t d) {
    if (!next || num_next < 1)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: no linear layer reads the LayerNorm (next %s, %d)",
                           next ? "set" : "NULL", num_next);
    for (int i = 0; i < num_next; i++) {
        const vitq_i_linear *l = next[i];
        if (!l || !l->weight)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: linear %d %s is NULL (row-major weights are "
                               "attached on a calibration copy only)", i, l ? "weight" : "pointer");
        if (l->in != d || l->out == 0)
            return vitq_i_fail(VITQ_ERR_SHAPE, "smooth fold: linear %d is %zu -> %zu, expected %zu inputs", i, l->in,
                               l->out, d);
        for (int j = 0; j < i; j++) /* its columns would be scaled by s twice */
            if (next[j] == l)
                return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: linear %d is linear %d again", i, j);
    }
    return VITQ_OK;
}

/* max |W[:, c]| over every reader. */
static double column_max(vitq_i_linear *const *next, int num_next, size_t c) {
    double m = 0.0;
    for (int i = 0; i < num_next; i++)
        for (size_t o = 0; o < next[i]->out; o++) m = fmax(m, fabs((double)next[i]->weight[o * next[i]->in + c]));
    return m;
}

vitq_status vitq_i_smooth_factors(const float *lo, const float *hi, size_t d, vitq_i_linear *const *next, int num_next,
                                  double alpha, int shift, double *b, double *s) {
    if (!lo || !hi || !b || !s)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth factors: %s is NULL",
                           !lo ? "lo" : !hi ? "hi" : !b ? "b" : "s");
    if (d == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth factors: no channel");
    if (!(alpha >= 0.0 && alpha <= 1.0))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "smooth factors: alpha = %g is not in [0, 1]", alpha);
    vitq_status st = check_linears(next, num_next, d);
    if (st) return st;
    for (size_t c = 0; c < d; c++) {
        double l = lo[c], h = hi[c];
        if (!isfinite(l) || !isfinite(h) || l > h)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth factors: channel %zu range [%g, %g] is not a finite "
                               "observed range", c, l, h);
        b[c] = shift ? 0.5 * (h + l) : 0.0;
        double xmax = shift ? 0.5 * (h - l) : fmax(fabs(l), fabs(h));
        double wmax = column_max(next, num_next, c);
        /* a constant channel (xmax 0, e.g. gamma 0) or a column no output reads (wmax 0): nothing to
         * balance, and the power would be 0 or infinite */
        double f = xmax > 0.0 && wmax > 0.0 ? pow(xmax, alpha) / pow(wmax, 1.0 - alpha) : 1.0;
        /* extreme ratios whose float image would be 0 or infinite keep the channel as it is */
        s[c] = isfinite(f) && (float)f > 0.0f && isfinite((float)f) && isfinite((float)(1.0 / f)) ? f : 1.0;
    }
    return VITQ_OK;
}

/* New weight, bias and panels of one linear, built before anything changes. */
typedef struct staged {
    float *weight, *bias;
    vitq_i_packed packed;
} staged;

static vitq_status stage(const vitq_allocator *a, const vitq_i_linear *l, const double *b, const double *s,
                         staged *out) {
    size_t in = l->in, n = l->out;
    out->weight = vitq_i_alloc_array(a, n, in * sizeof(float));
    out->bias = vitq_i_alloc_array(a, n, sizeof(float));
    if (!out->weight || !out->bias) return vitq_i_oom("smooth fold: folded linear", n * in * sizeof(float));
    for (size_t o = 0; o < n; o++) {
        const float *w = l->weight + o * in;
        float *wn = out->weight + o * in;
        double acc = l->bias ? (double)l->bias[o] : 0.0;
        for (size_t c = 0; c < in; c++) {
            acc += (double)w[c] * b[c]; /* the original W: b is in the old coordinates */
            wn[c] = (float)((double)w[c] * s[c]);
            if (!isfinite(wn[c]))
                return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "smooth fold: weight [%zu, %zu] = %g times s = %g overflows",
                                   o, c, (double)w[c], s[c]);
        }
        out->bias[o] = (float)acc;
        if (!isfinite(out->bias[o]))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "smooth fold: bias [%zu] overflows with the shift", o);
    }
    return vitq_i_gemm_pack(a, out->weight, n, in, &out->packed);
}

static void free_staged(const vitq_allocator *a, staged *s, int n) {
    for (int i = 0; s && i < n; i++) {
        vitq_i_free(a, s[i].weight);
        vitq_i_free(a, s[i].bias);
        vitq_i_gemm_packed_free(a, &s[i].packed);
    }
}

/* Move a staged linear into place (the layer keeps its weight buffer: calibration's rows point at
 * it); the old panels go back to `a`. */
static void commit(const vitq_allocator *a, vitq_i_linear *l, staged *s) {
    memcpy(l->weight, s->weight, l->out * l->in * sizeof(float));
    if (l->bias) {
        memcpy(l->bias, s->bias, l->out * sizeof(float));
        vitq_i_free(a, s->bias);
    } else {
        l->bias = s->bias;
    }
    vitq_i_free(a, s->weight);
    vitq_i_gemm_packed_free(a, &l->packed);
    l->packed = s->packed;
    memset(s, 0, sizeof *s);
}

static vitq_status check_fold_args(const vitq_allocator *a, const vitq_i_layernorm_params *ln, size_t d,
                                   const double *b, const double *s, float *gamma, float *beta) {
    if (!a || !ln || !b || !s)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: %s is NULL",
                           !a ? "allocator" : !ln ? "LayerNorm" : !b ? "b" : "s");
    if (!ln->gamma || !ln->beta)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: LayerNorm %s is NULL", ln->gamma ? "beta" : "gamma");
    if (d == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: LayerNorm width is 0");
    for (size_t c = 0; c < d; c++) {
        if (!(s[c] > 0.0) || !isfinite(s[c]) || !isfinite(b[c]))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth fold: channel %zu: s = %g, b = %g (s must be "
                               "positive and finite, b finite)", c, s[c], b[c]);
        gamma[c] = (float)((double)ln->gamma[c] / s[c]);
        beta[c] = (float)(((double)ln->beta[c] - b[c]) / s[c]);
        if (!isfinite(gamma[c]) || !isfinite(beta[c]))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "smooth fold: LayerNorm channel %zu overflows (s = %g, b = %g)",
                               c, s[c], b[c]);
    }
    return VITQ_OK;
}

vitq_status vitq_i_smooth_fold(const vitq_allocator *a, vitq_i_layernorm_params *ln, size_t d,
                               vitq_i_linear *const *next, int num_next, const double *b, const double *s) {
    if (!a || !ln || d == 0 || !b || !s) return check_fold_args(a, ln, d, b, s, NULL, NULL);
    float *affine = vitq_i_alloc_array(a, d, 2 * sizeof(float));
    if (!affine) return vitq_i_oom("smooth fold: LayerNorm", d * 2 * sizeof(float));
    vitq_status st = check_fold_args(a, ln, d, b, s, affine, affine + d);
    if (!st) st = check_linears(next, num_next, d);
    staged *st_lin = NULL;
    if (!st) {
        st_lin = vitq_i_calloc(a, (size_t)num_next, sizeof(staged));
        if (!st_lin) st = vitq_i_oom("smooth fold: staging", (size_t)num_next * sizeof(staged));
    }
    for (int i = 0; !st && i < num_next; i++) st = stage(a, next[i], b, s, &st_lin[i]);
    if (!st) { /* nothing can fail from here on: all of it changes, or nothing */
        for (int i = 0; i < num_next; i++) commit(a, next[i], &st_lin[i]);
        memcpy(ln->gamma, affine, d * sizeof(float));
        memcpy(ln->beta, affine + d, d * sizeof(float));
    }
    free_staged(a, st_lin, num_next);
    vitq_i_free(a, st_lin);
    vitq_i_free(a, affine);
    return st;
}

/* Symmetric rounding onto `levels` = 2^(bits-1) codes each side at step `step` (codes -levels..levels-1). */
static inline double quantize_sym(double x, double step, double levels) {
    double q = nearbyint(x / step);
    q = q < -levels ? -levels : q > levels - 1 ? levels - 1 : q;
    return q * step;
}

vitq_status vitq_i_smooth_error(const vitq_allocator *a, const float *x, size_t rows, size_t d,
                                const vitq_i_linear *next, const float *lo, const float *hi, const double *b,
                                const double *s, int abits, int wbits, double *error) {
    if (!a || !x || !next || !next->weight || !lo || !hi || !b || !s || !error || next->in != d || abits < 2 ||
        wbits < 2 || abits > 16 || wbits > 16)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "smooth error: bad arguments");
    double alevels = ldexp(1.0, abits - 1), wlevels = ldexp(1.0, wbits - 1), amax = 0.0;
    for (size_t c = 0; c < d; c++) /* the range the deployed per-tensor quantizer sees: every channel's */
        amax = fmax(amax, fmax(fabs((lo[c] - b[c]) / s[c]), fabs((hi[c] - b[c]) / s[c])));
    double astep = amax > 0 ? amax / (alevels - 1) : 1.0, total = 0.0;
    /* X' and its quantized values once (rows x d each), then W' row by row against them */
    float *xs = vitq_i_alloc_array(a, 2 * rows, d * sizeof(float));
    double *ws = vitq_i_alloc_array(a, 2 * d, sizeof(double));
    if (!xs || !ws) {
        vitq_i_free(a, xs);
        vitq_i_free(a, ws);
        return vitq_i_oom("smooth error", 2 * rows * d * sizeof(float));
    }
    float *xq = xs + rows * d;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < d; c++) {
            double v = ((double)x[r * d + c] - b[c]) / s[c];
            xs[r * d + c] = (float)v;
            xq[r * d + c] = (float)quantize_sym(v, astep, alevels);
        }
    for (size_t o = 0; o < next->out; o++) {
        const float *w = next->weight + o * d;
        double wmax = 0.0;
        for (size_t c = 0; c < d; c++) ws[c] = (double)w[c] * s[c], wmax = fmax(wmax, fabs(ws[c]));
        double wstep = wmax > 0 ? wmax / (wlevels - 1) : 1.0;
        for (size_t c = 0; c < d; c++) ws[d + c] = quantize_sym(ws[c], wstep, wlevels);
        for (size_t r = 0; r < rows; r++) {
            const float *xr = xs + r * d, *qr = xq + r * d;
            double exact = 0.0, approx = 0.0;
            for (size_t c = 0; c < d; c++) exact += xr[c] * ws[c], approx += qr[c] * ws[d + c];
            total += (exact - approx) * (exact - approx);
        }
    }
    vitq_i_free(a, xs);
    vitq_i_free(a, ws);
    *error = total;
    return VITQ_OK;
}
