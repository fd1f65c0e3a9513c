/* LSQ fake quantization with learned steps (lsq.h). The forward takes each code from the library's uniform
 * grid (vitq_i_uniform_code of x - b with zero point 0), so with no offset an LSQ tensor and a saved
 * uniform quantizer of the same step agree bit for bit. Every group is visited element by element in
 * (outer, channel, inner) order and its gradient summed in double: no allocation in the forward and
 * backward, no thread dependence. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/view.h"
#include "train/lsq.h"

vitq_status vitq_i_lsq_create(vitq_i_lsq *q, const vitq_allocator *a, const char *name, int32_t bits,
                              int is_signed, int64_t groups, int64_t cpg, int with_offset) {
    if (!q) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "lsq: quantizer is NULL");
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name ? name : "lsq");
    vitq_status st = vitq_i_allocator_resolve(a, &q->alloc);
    if (st != VITQ_OK) return st;
    if (bits < 2 || bits > 8)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %d bits (LSQ takes 2..8)", q->name, (int)bits);
    if (groups < 1 || cpg < 1 || groups > INT64_MAX / cpg)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %lld groups of %lld channels", q->name, (long long)groups,
                           (long long)cpg);
    q->grid = vitq_i_uniform_grid(bits, is_signed);
    q->groups = groups, q->cpg = cpg;
    q->gscale = VITQ_I_LSQ_GSCALE_AUTO, q->grad_scale = 1.0, q->min_step = 1e-8f;
    q->step = vitq_i_alloc_array(&q->alloc, (size_t)groups, sizeof(float));
    q->step_grad = vitq_i_calloc(&q->alloc, (size_t)groups, sizeof(float));
    if (with_offset) {
        q->offset = vitq_i_calloc(&q->alloc, (size_t)groups, sizeof(float));
        q->offset_grad = vitq_i_calloc(&q->alloc, (size_t)groups, sizeof(float));
    }
    if (!q->step || !q->step_grad || (with_offset && (!q->offset || !q->offset_grad))) {
        vitq_i_lsq_free(q);
        return vitq_i_oom("LSQ steps", (size_t)groups * 4 * sizeof(float));
    }
    for (int64_t g = 0; g < groups; g++) q->step[g] = 1.0f;
    return VITQ_OK;
}

void vitq_i_lsq_free(vitq_i_lsq *q) {
    if (!q) return;
    vitq_i_free(&q->alloc, q->step);
    vitq_i_free(&q->alloc, q->step_grad);
    vitq_i_free(&q->alloc, q->offset);
    vitq_i_free(&q->alloc, q->offset_grad);
    vitq_i_free(&q->alloc, q->group_scale);
    vitq_i_free(&q->alloc, q->zero_point);
    q->step = q->step_grad = q->offset = q->offset_grad = q->zero_point = NULL;
    q->group_scale = NULL;
}

static vitq_status check_view(const vitq_i_lsq *q, const vitq_tensor_view *x) {
    if (!q->step) return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: LSQ quantizer is not created", q->name);
    return vitq_i_view_check(x, q->groups * q->cpg, q->name);
}

static vitq_status check_steps(const vitq_i_lsq *q) {
    for (int64_t g = 0; g < q->groups; g++)
        if (!(q->step[g] > 0.0f) || !isfinite(q->step[g]) || (q->offset && !isfinite(q->offset[g])))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: group %lld has step %g, offset %g (the step must be finite "
                               "and > 0)", q->name, (long long)g, (double)q->step[g],
                               q->offset ? (double)q->offset[g] : 0.0);
    return VITQ_OK;
}

static inline float offset_of(const vitq_i_lsq *q, int64_t g) { return q->offset ? q->offset[g] : 0.0f; }
static inline float zero_of(const vitq_i_lsq *q, int64_t g) { return q->zero_point ? q->zero_point[g] : 0.0f; }

vitq_status vitq_i_lsq_set_zero_points(vitq_i_lsq *q, const float *z) {
    for (int64_t g = 0; g < q->groups; g++)
        if (!(z[g] >= (float)q->grid.qmin && z[g] <= (float)q->grid.qmax) || z[g] != nearbyintf(z[g]))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: zero point %g of group %lld is not a code of [%d, %d]",
                               q->name, (double)z[g], (long long)g, (int)q->grid.qmin, (int)q->grid.qmax);
    if (!q->zero_point) q->zero_point = vitq_i_alloc_array(&q->alloc, (size_t)q->groups, sizeof(float));
    if (!q->zero_point) return vitq_i_oom("LSQ zero points", (size_t)q->groups * sizeof(float));
    memcpy(q->zero_point, z, (size_t)q->groups * sizeof(float));
    return VITQ_OK;
}

/* Offset of element (o, c, 0) of the view from its base. */
static inline int64_t at(const vitq_tensor_view *x, int64_t o, int64_t c) { return o * x->outer_stride + c * x->inner; }

vitq_status vitq_i_lsq_init_data(vitq_i_lsq *q, const vitq_tensor_view *x) {
    vitq_status st = check_view(q, x);
    if (st != VITQ_OK) return st;
    double root = sqrt((double)q->grid.qmax);
    for (int64_t g = 0; g < q->groups; g++) {
        double sum = 0.0, b = offset_of(q, g);
        for (int64_t o = 0; o < x->outer; o++)
            for (int64_t c = g * q->cpg; c < (g + 1) * q->cpg; c++) {
                const float *p = x->data + at(x, o, c);
                for (int64_t i = 0; i < x->inner; i++) sum += fabs((double)p[i] - b);
            }
        if (!isfinite(sum))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: group %lld holds NaN or infinity", q->name, (long long)g);
        double mean = sum / (double)(x->outer * q->cpg * x->inner);
        float s = (float)(2.0 * mean / root);
        q->step[g] = s > 0.0f ? s : 1.0f;
    }
    return VITQ_OK;
}

/* Over group g's elements of x, in element order: sum |x - b| and the largest value the codes can reach,
 * max |x - b| for signed codes, max (x - b, 0) for unsigned ones. */
static void group_abs(const vitq_i_lsq *q, const vitq_tensor_view *x, int64_t g, double *sum, double *max) {
    double b = offset_of(q, g), s = 0.0, m = 0.0;
    int is_signed = q->grid.qmin < 0;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = g * q->cpg; c < (g + 1) * q->cpg; c++) {
            const float *p = x->data + at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++) {
                double d = (double)p[i] - b, a = is_signed ? fabs(d) : d;
                s += fabs(d);
                m = a > m ? a : m;
            }
        }
    *sum = s, *max = m;
}

/* Every group checked before any changes, so a refused call leaves the quantizer as it was. */
static vitq_status check_finite(const vitq_i_lsq *q, const vitq_tensor_view *x) {
    for (int64_t g = 0; g < q->groups; g++) {
        double sum, max;
        group_abs(q, x, g, &sum, &max);
        if (!isfinite(sum))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: group %lld holds NaN or infinity", q->name, (long long)g);
    }
    return VITQ_OK;
}

/* One least-squares round: the forward's codes c of group g at step s, then <x - b, c> / <c, c> (0 when
 * every code is 0). */
static double ls_step(const vitq_i_lsq *q, const vitq_tensor_view *x, int64_t g, float s) {
    float b = offset_of(q, g);
    double xc = 0.0, cc = 0.0;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = g * q->cpg; c < (g + 1) * q->cpg; c++) {
            const float *p = x->data + at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++) {
                double code = vitq_i_uniform_code(&q->grid, p[i] - b, s, 0.0f);
                xc += ((double)p[i] - b) * code, cc += code * code;
            }
        }
    return cc > 0.0 ? xc / cc : 0.0;
}

vitq_status vitq_i_lsq_init_fit(vitq_i_lsq *q, const vitq_tensor_view *w) {
    vitq_status st = check_view(q, w);
    if (st == VITQ_OK) st = check_finite(q, w);
    if (st != VITQ_OK) return st;
    for (int64_t g = 0; g < q->groups; g++) {
        double sum, max;
        group_abs(q, w, g, &sum, &max);
        float s = (float)(max / q->grid.qmax);
        if (!(s > 0.0f)) { /* zeros (or nearly; unsigned: nothing above b): every step is as good */
            q->step[g] = 1.0f;
            continue;
        }
        for (int round = 0; round < 100; round++) {
            float next = (float)ls_step(q, w, g, s);
            if (!(next > 0.0f)) { /* every code 0 (not seen: the start codes its largest value qmax) */
                s = 1.0f;
                break;
            }
            double change = fabs((double)next - s) / s;
            s = next;
            if (change < 1e-5) break;
        }
        q->step[g] = s;
    }
    return VITQ_OK;
}

vitq_status vitq_i_lsq_set_magnitude_scale(vitq_i_lsq *q, const vitq_tensor_view *w) {
    vitq_status st = check_view(q, w);
    if (st == VITQ_OK) st = check_finite(q, w);
    if (st != VITQ_OK) return st;
    if (!q->group_scale) {
        q->group_scale = vitq_i_alloc_array(&q->alloc, (size_t)q->groups, sizeof(double));
        if (!q->group_scale) return vitq_i_oom("LSQ gradient scales", (size_t)q->groups * sizeof(double));
    }
    for (int64_t g = 0; g < q->groups; g++) {
        double sum, max;
        group_abs(q, w, g, &sum, &max);
        q->group_scale[g] = sum > 0.0 ? 1.0 / sqrt((double)q->grid.qmax * sum) : 1.0;
    }
    q->gscale = VITQ_I_LSQ_GSCALE_PER_GROUP;
    return VITQ_OK;
}

vitq_status vitq_i_lsq_init_steps(vitq_i_lsq *q, const float *steps, const float *offsets) {
    if (!q->step || !steps) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: no steps given", q->name);
    for (int64_t g = 0; g < q->groups; g++)
        if (!(steps[g] > 0.0f) || !isfinite(steps[g]) || (offsets && !isfinite(offsets[g])))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: step %g, offset %g of group %lld (the step must be finite "
                               "and > 0)", q->name, (double)steps[g], offsets ? (double)offsets[g] : 0.0,
                               (long long)g);
    if (offsets && !q->offset)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: offsets given to a quantizer created without them", q->name);
    memcpy(q->step, steps, (size_t)q->groups * sizeof(float));
    if (offsets) memcpy(q->offset, offsets, (size_t)q->groups * sizeof(float));
    return VITQ_OK;
}

vitq_status vitq_i_lsq_forward(const vitq_i_lsq *q, const vitq_tensor_view *x, float *y) {
    vitq_status st = check_view(q, x);
    if (st == VITQ_OK) st = check_steps(q);
    if (st != VITQ_OK) return st;
    if (!y) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: output is NULL", q->name);
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            int64_t g = c / q->cpg;
            float s = q->step[g], b = offset_of(q, g), z = zero_of(q, g);
            const float *p = x->data + at(x, o, c);
            float *r = y + at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++)
                r[i] = ((float)vitq_i_uniform_code(&q->grid, p[i] - b, s, z) - z) * s + b;
        }
    return VITQ_OK;
}

double vitq_i_lsq_auto_scale(int64_t n, int32_t qmax) { return 1.0 / sqrt((double)n * (double)qmax); }

static double step_scale(const vitq_i_lsq *q, const vitq_tensor_view *x, int64_t g) {
    if (q->gscale == VITQ_I_LSQ_GSCALE_OFF) return 1.0;
    if (q->gscale == VITQ_I_LSQ_GSCALE_FIXED) return q->grad_scale;
    if (q->gscale == VITQ_I_LSQ_GSCALE_PER_GROUP) return q->group_scale[g];
    return vitq_i_lsq_auto_scale(x->outer * q->cpg * x->inner, q->grid.qmax);
}

vitq_status vitq_i_lsq_backward(vitq_i_lsq *q, const vitq_tensor_view *x, const float *dy, float *dx,
                                int accumulate) {
    vitq_status st = check_view(q, x);
    if (st == VITQ_OK) st = check_steps(q);
    if (st != VITQ_OK) return st;
    if (!dy) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: output gradient is NULL", q->name);
    if (q->gscale == VITQ_I_LSQ_GSCALE_PER_GROUP && !q->group_scale)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: per-group gradient scales were never set", q->name);
    for (int64_t g = 0; g < q->groups; g++) {
        double gs = step_scale(q, x, g);
        float s = q->step[g], b = offset_of(q, g), z = zero_of(q, g);
        const float lo = (float)q->grid.qmin - z, hi = (float)q->grid.qmax - z;
        double ds = 0.0, db = 0.0;
        for (int64_t o = 0; o < x->outer; o++)
            for (int64_t c = g * q->cpg; c < (g + 1) * q->cpg; c++) {
                int64_t base = at(x, o, c);
                const float *p = x->data + base, *d = dy + base;
                float *r = dx ? dx + base : NULL;
                for (int64_t i = 0; i < x->inner; i++) {
                    float u = (p[i] - b) / s; /* the division vitq_i_uniform_code makes */
                    float pass;
                    if (u < lo) {
                        ds += (double)d[i] * lo, db += d[i], pass = 0.0f;
                    } else if (u > hi) {
                        ds += (double)d[i] * hi, db += d[i], pass = 0.0f;
                    } else { /* inside (NaN too: it then poisons the step's gradient, which Adam refuses) */
                        float code = (float)vitq_i_uniform_code(&q->grid, p[i] - b, s, z) - z;
                        ds += (double)d[i] * ((double)code - (double)u), pass = d[i];
                    }
                    if (r) r[i] = accumulate ? r[i] + pass : pass;
                }
            }
        q->step_grad[g] += (float)(ds * gs);
        if (q->offset_grad) q->offset_grad[g] += (float)db;
    }
    return VITQ_OK;
}

void vitq_i_lsq_project(vitq_i_lsq *q) {
    for (int64_t g = 0; g < q->groups; g++)
        if (q->step[g] < q->min_step) q->step[g] = q->min_step; /* a NaN stays, for the forward to report */
}

void vitq_i_lsq_zero_grad(vitq_i_lsq *q) {
    memset(q->step_grad, 0, (size_t)q->groups * sizeof(float));
    if (q->offset_grad) memset(q->offset_grad, 0, (size_t)q->groups * sizeof(float));
}
