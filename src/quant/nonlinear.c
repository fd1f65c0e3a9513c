/* Integer-only non-linear operators of a quantized model (nonlinear.h): choosing the grids and the
 * kernels' parameters, and running an operator in the simulation. */
#include "quant/nonlinear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/uniform.h"
#include "quant/intnl_params.h"

static const char *const method_names[] = {"float", "ibert", "fqvit", "ivit", "mixed"};

int vitq_i_nl_op_of_role(vitq_point_role role) {
    return role == VITQ_ROLE_LAYERNORM_INPUT ? VITQ_I_NL_LAYERNORM
           : role == VITQ_ROLE_SOFTMAX_INPUT ? VITQ_I_NL_SOFTMAX
           : role == VITQ_ROLE_GELU_INPUT    ? VITQ_I_NL_GELU
                                             : -1;
}

int vitq_i_nl_has_kernel(int32_t method, int op) {
    return method >= VITQ_NONLINEAR_IBERT && method <= VITQ_NONLINEAR_IVIT &&
           !(method == VITQ_NONLINEAR_FQVIT && op == VITQ_I_NL_GELU);
}

int32_t vitq_i_nl_kernel_of(int32_t method, int op) {
    return method == VITQ_NONLINEAR_FQVIT && op == VITQ_I_NL_GELU ? VITQ_NONLINEAR_IBERT : method;
}

const char *vitq_i_nl_method_name(int32_t method) {
    return method >= 0 && method <= VITQ_NONLINEAR_MIXED ? method_names[method] : NULL;
}

int32_t vitq_i_nl_method_parse(const char *name) {
    if (!name) return -1;
    for (int32_t m = 0; m <= VITQ_NONLINEAR_MIXED; m++)
        if (!strcmp(name, method_names[m]) || (name[0] == '0' + m && name[1] == '\0')) return m;
    return -1;
}

const char *vitq_i_nl_op_name(int op) {
    return op == VITQ_I_NL_LAYERNORM ? "layernorm" : op == VITQ_I_NL_SOFTMAX ? "softmax" : op == VITQ_I_NL_GELU ? "gelu" : "?";
}

/* ---- FQ-ViT's Power-of-Two Factor, gathered over every calibration batch ---- */

void vitq_i_nl_ptf_grid(double lo, double hi, double *s8, int32_t *zero) {
    vitq_i_uniform grid = vitq_i_uniform_grid(VITQ_I_NL_PTF_BITS, 0);
    double s = (hi - lo) / grid.qmax;
    if (!(s >= 1.1920928955078125e-07)) s = 1.1920928955078125e-07; /* FQ-ViT's floor at float32 epsilon */
    double zp = -nearbyint(lo / s);
    *s8 = s;
    *zero = (int32_t)(zp < 0 ? 0 : zp > grid.qmax ? grid.qmax : zp);
}

void vitq_i_nl_ptf_errors(const float *x, int64_t rows, int64_t channels, int64_t stride, double lo, double hi,
                          double *err) {
    double s8;
    int32_t zero;
    vitq_i_nl_ptf_grid(lo, hi, &s8, &zero);
    vitq_i_uniform grid = vitq_i_uniform_grid(VITQ_I_NL_PTF_BITS, 0);
    for (int al = 0; al < 4; al++) {
        float s = (float)ldexp(s8, al - 3);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < channels; c++) {
                float v = x[r * stride + c];
                double d = (double)v - vitq_i_uniform_fq(&grid, v, s, (float)zero);
                err[c * 4 + al] += d * d;
            }
    }
}

/* ---- preparation ---- */

/* The 16-bit grid of a tensor whose values reach |x| <= m, no finer than `finest`, no coarser than
 * `coarsest` (the kernel's accepted scales). */
static double grid16(const vitq_i_nl_stats *s, double finest, double coarsest) {
    double m = fmax(fabs(s->lo), fabs(s->hi));
    double scale = m / 32767.0;
    return scale < finest ? finest : scale > coarsest ? coarsest : scale;
}

/* The output grid of the I-BERT / I-ViT / PTF LayerNorms: symmetric 16 bits over the largest value a
 * normalised token can give, |gamma_c| sqrt(C) + |beta_c| (|x - mean| / std <= sqrt(C) for any token):
 * the operator then never clips, and the next point's quantizer takes it from there. */
static vitq_i_ln_affine ln_affine(const vitq_i_layernorm_params *ln, int32_t C) {
    double bound = 0;
    for (int32_t c = 0; c < C; c++) {
        double b = fabs(ln->gamma[c]) * sqrt((double)C) + fabs(ln->beta[c]);
        if (b > bound) bound = b;
    }
    vitq_i_ln_affine a = {C, ln->gamma, ln->beta, (bound > 0 ? bound : 1.0) / 32767.0, {0, -32767, 32767}};
    return a;
}

static vitq_status prepare_layernorm(const vitq_allocator *a, const char *name, int32_t method,
                                     const vitq_i_nl_stats *s, const vitq_i_layernorm_params *ln, vitq_i_qnl *out) {
    int32_t C = out->channels;
    if (!ln || !ln->gamma || !ln->beta)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: no LayerNorm parameters for the integer LayerNorm", name);
    vitq_i_ln_affine aff = ln_affine(ln, C);
    out->out_scale = aff.out_scale;
    if (method != VITQ_NONLINEAR_FQVIT) {
        out->in_bits = VITQ_I_NL_INPUT_BITS;
        out->in_scale = grid16(s, 1e-30, 1e30);
        out->ln_ch = vitq_i_alloc_array(a, (size_t)C, sizeof *out->ln_ch);
        if (!out->ln_ch) return vitq_i_oom(name, (size_t)C * sizeof *out->ln_ch);
        vitq_i_ln_variant v = method == VITQ_NONLINEAR_IBERT ? VITQ_I_LN_IBERT : VITQ_I_LN_IVIT;
        return vitq_i_int_layernorm_prepare(v, &aff, out->ln_ch, &out->k.int_layernorm);
    }
    if (!s->ptf_err)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: FQ-ViT's LayerNorm needs the per-channel statistics", name);
    double s8;
    vitq_i_nl_ptf_grid(s->lo, s->hi, &s8, &out->in_zero);
    out->in_bits = VITQ_I_NL_PTF_BITS;
    out->in_scale = s8 / 8;
    out->alpha = vitq_i_alloc_array(a, (size_t)C, sizeof *out->alpha);
    out->ptf_ch = vitq_i_alloc_array(a, (size_t)C, sizeof *out->ptf_ch);
    if (!out->alpha || !out->ptf_ch) return vitq_i_oom(name, (size_t)C * sizeof *out->ptf_ch);
    for (int32_t c = 0; c < C; c++) { /* the least error; ties keep the smaller alpha, as FQ-ViT's index(min) */
        const double *e = s->ptf_err + (size_t)c * 4;
        out->alpha[c] = 0;
        for (int al = 1; al < 4; al++)
            if (e[al] < e[out->alpha[c]]) out->alpha[c] = al;
    }
    return vitq_i_ptf_layernorm_prepare(&aff, out->alpha, out->ptf_ch, &out->k.ptf_layernorm);
}

/* ---- I-ViT's scales ----
 * Shiftmax and ShiftGELU normalise with factor = floor((2^31 - 1) / sum of exps), a small integer when
 * the exps are large, and their exps grow as 1 / S: a fine input grid buys input resolution with a
 * coarse normalisation (a factor of 2 is off by up to a third). I-ViT's 8-bit inputs sit at one
 * point of that trade; here the scale is the one, among the finest the kernel accepts and coarser
 * ones by half octaves, whose kernel is closest to the exact function on probe rows spanning the
 * observed range. */

#define PROBE_N 256

/* Largest error of nl against the exact operator on probe rows over [lo, hi]: GELU rows from lo up to
 * a maximum of hi, hi / 2 and hi / 4 (ShiftGELU's exps are relative to the row's maximum); softmax
 * rows of the operator's length, over the whole range and over its top 2 units. */
static double probe_error(const vitq_allocator *a, const vitq_i_qnl *nl, const vitq_i_nl_stats *s) {
    int softmax = nl->op == VITQ_I_NL_SOFTMAX;
    int64_t n = softmax ? (s->row_max > 0 && s->row_max <= PROBE_N ? s->row_max : PROBE_N) : PROBE_N;
    float x[PROBE_N], y[PROBE_N];
    double in[PROBE_N], ref[PROBE_N], worst = 0;
    for (int r = 0; r < 3; r++) {
        double top = softmax ? s->hi : s->hi > 0 ? ldexp(s->hi, -r) : s->hi;
        double bottom = softmax && r == 1 ? fmax(s->lo, s->hi - 2) : s->lo;
        if (softmax && r == 2) break;
        for (int64_t j = 0; j < n; j++) x[j] = (float)(bottom + (top - bottom) * (double)j / (double)(n > 1 ? n - 1 : 1));
        if (vitq_i_qnl_run(a, nl, x, 1, n, n, y)) return INFINITY;
        if (softmax) {
            for (int64_t j = 0; j < n; j++) in[j] = x[j];
            vitq_i_softmax_ref(in, n, ref);
        }
        for (int64_t j = 0; j < n; j++) {
            double e = fabs((softmax ? ref[j] : vitq_i_gelu_ref(x[j])) - y[j]);
            if (e > worst) worst = e;
        }
    }
    return worst;
}

/* Prepare nl (op, method set) at input scale `scale`. */
static vitq_status prepare_at(vitq_i_qnl *nl, double scale, int64_t row_max) {
    nl->in_scale = scale;
    if (nl->op == VITQ_I_NL_SOFTMAX)
        return vitq_i_shiftmax_prepare(scale, VITQ_I_NL_OUT_BITS, (int32_t)row_max, &nl->k.shiftmax, &nl->out_scale);
    return vitq_i_shiftgelu_prepare(scale, VITQ_I_NL_OUT_BITS, &nl->k.shiftgelu, &nl->out_scale);
}

static vitq_status prepare_ivit(const vitq_allocator *a, const vitq_i_nl_stats *s, double finest, vitq_i_qnl *out) {
    double range = fmax(fabs(s->lo), fabs(s->hi)), best_err = INFINITY, best = 0;
    double first = grid16(s, finest, 65536);
    for (int k = 0; k < 40; k++) {
        double scale = first * pow(2.0, k / 2.0);
        if (k > 0 && scale > range / 7) break; /* no coarser than a 3-bit grid */
        vitq_status st = prepare_at(out, scale, s->row_max);
        if (st == VITQ_ERR_OUT_OF_RANGE) {
            vitq_i_error_clear();
            continue;
        }
        if (st) return st;
        double e = probe_error(a, out, s);
        if (e < best_err) best_err = e, best = scale;
    }
    if (best == 0) return prepare_at(out, first, s->row_max); /* nothing accepted: its error */
    return prepare_at(out, best, s->row_max);
}

static vitq_status prepare_softmax(const vitq_allocator *a, int32_t method, const vitq_i_nl_stats *s, vitq_i_qnl *out) {
    out->in_bits = VITQ_I_NL_INPUT_BITS;
    if (method == VITQ_NONLINEAR_IBERT) {
        out->in_scale = grid16(s, ldexp(1, -14), 0.5);
        return vitq_i_ibert_softmax_prepare(out->in_scale, VITQ_I_NL_OUT_BITS, &out->k.ibert_softmax, &out->out_scale);
    }
    if (method == VITQ_NONLINEAR_FQVIT) {
        out->in_scale = grid16(s, ldexp(1, -9), 0.5);
        out->out_scale = 1.0;
        return vitq_i_lis_prepare(out->in_scale, VITQ_I_NL_LIS_BITS, &out->k.lis);
    }
    /* Shiftmax: no finer than the scale whose row exp sums stay below I-ViT's clamp, |x0| = ceil(1/S) <=
     * floor((2^16 - 1) / tokens) */
    int64_t n = s->row_max > 0 ? s->row_max : 1;
    double coarse = 1.0 / (double)((65535 / n) > 0 ? 65535 / n : 1);
    return prepare_ivit(a, s, coarse > ldexp(1, -14) ? coarse : ldexp(1, -14), out);
}

static vitq_status prepare_gelu(const vitq_allocator *a, int32_t kernel, const vitq_i_nl_stats *s, vitq_i_qnl *out) {
    out->in_bits = VITQ_I_NL_INPUT_BITS;
    if (kernel == VITQ_NONLINEAR_IBERT) {
        out->in_scale = grid16(s, ldexp(1, -14), 0.5);
        return vitq_i_ibert_gelu_prepare(out->in_scale, &out->k.ibert_gelu, &out->out_scale);
    }
    /* ShiftGELU takes no scale finer than 1 / (127 1.702) (the sum of its exps within 31 bits); a little
     * margin above it so that floor(-1 / (1.702 S)) cannot round down to -128 */
    return prepare_ivit(a, s, 1.0 / (126.5 * 1.702), out);
}

vitq_status vitq_i_qnl_prepare(const vitq_allocator *a, const char *name, int point, int op, int32_t method,
                               const vitq_i_nl_stats *stats, const vitq_i_layernorm_params *ln, vitq_i_qnl *out) {
    memset(out, 0, sizeof *out);
    for (int m = 0; m < VITQ_I_NL_METHODS; m++) out->dsqnr[m] = NAN;
    out->point = point;
    out->op = op;
    if (method < VITQ_NONLINEAR_IBERT || method > VITQ_NONLINEAR_IVIT)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: no integer %s for method %d", name, vitq_i_nl_op_name(op),
                           (int)method);
    out->method = vitq_i_nl_kernel_of(method, op);
    if (!(isfinite(stats->lo) && isfinite(stats->hi) && stats->lo <= stats->hi))
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: no finite range observed for the integer %s", name,
                           vitq_i_nl_op_name(op));
    vitq_status st;
    out->channels = op == VITQ_I_NL_LAYERNORM ? stats->channels : 0;
    switch (op) {
    case VITQ_I_NL_LAYERNORM: st = prepare_layernorm(a, name, out->method, stats, ln, out); break;
    case VITQ_I_NL_SOFTMAX: st = prepare_softmax(a, out->method, stats, out); break;
    default: st = prepare_gelu(a, out->method, stats, out); break;
    }
    if (st) {
        vitq_i_error_prefix("%s", name);
        vitq_i_qnl_free(a, out);
    }
    return st;
}

void vitq_i_qnl_free(const vitq_allocator *a, vitq_i_qnl *nl) {
    if (!nl) return;
    vitq_i_free(a, nl->ln_ch);
    vitq_i_free(a, nl->ptf_ch);
    vitq_i_free(a, nl->alpha);
    nl->ln_ch = NULL;
    nl->ptf_ch = NULL;
    nl->alpha = NULL;
}

/* ---- running ---- */

/* The input grid's code of x: x / scale rounded half to even, clamped to the signed grid. */
static int16_t code16(float x, double inv_scale, int32_t bits) {
    double lim = ldexp(1, bits - 1) - 1, v = nearbyint((double)x * inv_scale);
    if (v != v) return 0; /* NaN: the zero point, as the uniform quantizers give it */
    if (v < -lim) v = -lim;
    if (v > lim) v = lim;
    return (int16_t)v;
}

/* Rows per chunk: the int16 input and int32 output of ~64k values at a time. */
#define CHUNK_VALUES 65536

vitq_status vitq_i_qnl_run(const vitq_allocator *a, const vitq_i_qnl *nl, const float *in, int64_t rows,
                           int64_t channels, int64_t stride, float *out) {
    if (rows <= 0) return VITQ_OK;
    if (channels < 1) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "integer non-linear operator: %lld channels",
                                         (long long)channels);
    int64_t chunk = channels >= CHUNK_VALUES ? 1 : CHUNK_VALUES / channels;
    if (chunk > rows) chunk = rows;
    size_t values = (size_t)(chunk * channels);
    int16_t *x = vitq_i_alloc_array(a, values, sizeof *x);
    int32_t *y = vitq_i_alloc_array(a, values, sizeof *y);
    if (!x || !y) {
        vitq_i_free(a, x);
        vitq_i_free(a, y);
        return vitq_i_oom("integer non-linear operator", values * (sizeof *x + sizeof *y));
    }
    double inv = 1.0 / nl->in_scale;
    vitq_status st = VITQ_OK;
    for (int64_t r0 = 0; !st && r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        for (int64_t r = 0; r < n; r++) {
            const float *src = in + (r0 + r) * stride;
            int16_t *dst = x + r * channels;
            if (nl->alpha)
                for (int64_t c = 0; c < channels; c++)
                    dst[c] = vitq_i_ptf_input(src[c], nl->in_scale, nl->in_zero, nl->alpha[c], nl->in_bits);
            else
                for (int64_t c = 0; c < channels; c++) dst[c] = code16(src[c], inv, nl->in_bits);
        }
        int lis = 0;
        switch (nl->op * 4 + nl->method) {
        case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_FQVIT:
            st = vitq_i_ptf_layernorm(&nl->k.ptf_layernorm, x, n, y);
            break;
        case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IBERT:
        case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IVIT:
            st = vitq_i_int_layernorm(&nl->k.int_layernorm, x, n, y);
            break;
        case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IBERT:
            st = vitq_i_ibert_softmax(&nl->k.ibert_softmax, x, n, channels, y);
            break;
        case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_FQVIT:
            st = vitq_i_lis_softmax(&nl->k.lis, x, n, channels, (uint8_t *)y);
            lis = 1;
            break;
        case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IVIT:
            st = vitq_i_shiftmax(&nl->k.shiftmax, x, n, channels, y);
            break;
        case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IBERT: st = vitq_i_ibert_gelu(&nl->k.ibert_gelu, x, n, channels, y); break;
        case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IVIT: st = vitq_i_shiftgelu(&nl->k.shiftgelu, x, n, channels, y); break;
        default: st = vitq_i_fail(VITQ_ERR_BAD_STATE, "integer non-linear operator: op %d, method %d", (int)nl->op, (int)nl->method);
        }
        float *o = out + r0 * channels;
        size_t count = (size_t)(n * channels);
        if (!st && lis) {
            const uint8_t *codes = (const uint8_t *)y;
            for (size_t i = 0; i < count; i++) o[i] = (float)vitq_i_lis_value(codes[i], nl->k.lis.bits);
        } else if (!st) {
            int32_t zero = nl->op == VITQ_I_NL_LAYERNORM ? nl->k.int_layernorm.out.zero : 0;
            if (nl->op == VITQ_I_NL_LAYERNORM && nl->alpha) zero = nl->k.ptf_layernorm.out.zero;
            for (size_t i = 0; i < count; i++) o[i] = (float)((double)(y[i] - zero) * nl->out_scale);
        }
    }
    vitq_i_free(a, x);
    vitq_i_free(a, y);
    return st;
}

const vitq_i_layernorm_params *vitq_i_nl_layernorm_of(const vitq_i_net *m, const vitq_i_sites *sites, int point) {
    if (point < 0) return NULL;
    if (sites->norm_in == point) return &m->norm;
    if (sites->patch_norm_in == point) return &m->patch_norm;
    for (int b = 0; b < m->info.depth; b++) {
        if (sites->blocks[b].norm1_in == point) return &m->blocks[b].norm1;
        if (sites->blocks[b].norm2_in == point) return &m->blocks[b].norm2;
    }
    for (int s = 0; m->stages && s < m->info.num_stages; s++)
        if (sites->stages[s].merge_norm_in == point) return &m->stages[s].merge_norm;
    return NULL;
}
