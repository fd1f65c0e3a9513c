/* VVTQ's oscillation-aware bin regulariser, its schedule and the code-flip tracker (oscillation.h).
 * A group's rows are contiguous ([rows][in], row r in group r / cpg), so every loop walks one group's
 * block in element order with that group's bin statistics in fixed arrays on the stack. */
#include <math.h>
#include <string.h>

#include "train/oscillation.h"

/* Arguments common to the regulariser and the tracker; NaN weights refused here, before anything is
 * written, so that both leave their outputs untouched on failure. */
static vitq_status check_tensor(const char *name, const float *w, int64_t rows, int64_t in, const float *step,
                                int64_t groups, int64_t cpg, const vitq_i_uniform *grid) {
    if (!w || !step || !grid) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: weights, steps or grid is NULL", name);
    int64_t n;
    if (rows < 1 || in < 1 || groups < 1 || cpg < 1 || !vitq_i_mul_i64(rows, in, &n) ||
        !vitq_i_mul_i64(groups, cpg, &n) || groups * cpg != rows)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: [%lld][%lld] weights in %lld groups of %lld rows", name,
                           (long long)rows, (long long)in, (long long)groups, (long long)cpg);
    if (grid->qmin > grid->qmax || (int64_t)grid->qmax - grid->qmin + 1 > VITQ_I_OSC_MAX_LEVELS)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: codes [%d, %d] (at most %d levels)", name, (int)grid->qmin,
                           (int)grid->qmax, VITQ_I_OSC_MAX_LEVELS);
    for (int64_t g = 0; g < groups; g++)
        if (!(step[g] > 0.0f) || !isfinite(step[g]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: group %lld has step %g (it must be finite and > 0)", name,
                               (long long)g, (double)step[g]);
    for (int64_t i = 0; i < rows * in; i++)
        if (isnan(w[i]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: weight [%lld][%lld] is NaN", name, (long long)(i / in),
                               (long long)(i % in));
    return VITQ_OK;
}

/* Code q of w (zero point z) and x = w_clip; returns 1 when w lies inside the range (w_clip = w, gradient
 * passes). The range test uses the float u of vitq_i_uniform_code, the test of LSQ's backward, whose range
 * on a zero-point grid is [qmin - z, qmax - z]. */
static inline int quantize(const vitq_i_uniform *grid, float w, float s, float z, int32_t *q, double *x) {
    const float lo = (float)grid->qmin - z, hi = (float)grid->qmax - z;
    float u = w / s, clamped = u < lo ? lo : u > hi ? hi : u;
    int inside = (u >= lo) & (u <= hi); /* selects, not branches: weights fall on either side at random */
    *q = vitq_i_uniform_code(grid, w, s, z);
    *x = inside ? (double)w : (double)clamped * s;
    return inside;
}

/* Zero points must be whole numbers inside the grid, or codes and levels would disagree with LSQ's. */
static vitq_status check_zero_points(const char *name, const float *zero_point, int64_t groups,
                                     const vitq_i_uniform *grid) {
    for (int64_t g = 0; zero_point && g < groups; g++)
        if (!(zero_point[g] >= (float)grid->qmin && zero_point[g] <= (float)grid->qmax) ||
            zero_point[g] != floorf(zero_point[g]))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: group %lld has zero point %g (a whole number in "
                               "[%d, %d])", name, (long long)g, (double)zero_point[g], (int)grid->qmin,
                               (int)grid->qmax);
    return VITQ_OK;
}

vitq_status vitq_i_obr(const char *name, const float *w, int64_t rows, int64_t in, const float *step,
                       const float *zero_point, int64_t groups, int64_t cpg, const vitq_i_uniform *grid, double lambda,
                       float *dw, double *loss) {
    if (!name) name = "obr";
    vitq_status st = check_tensor(name, w, rows, in, step, groups, cpg, grid);
    if (st == VITQ_OK) st = check_zero_points(name, zero_point, groups, grid);
    if (st != VITQ_OK) return st;
    if (!(lambda >= 0.0) || !isfinite(lambda))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: regulariser weight %g (it must be finite and >= 0)", name,
                           lambda);
    const int32_t qmin = grid->qmin;
    const int levels = grid->qmax - qmin + 1;
    const int64_t per_group = cpg * in;
    const double inv_n = 1.0 / (double)(rows * in);
    int64_t count[VITQ_I_OSC_MAX_LEVELS];
    double sum[VITQ_I_OSC_MAX_LEVELS], mean[VITQ_I_OSC_MAX_LEVELS], m2[VITQ_I_OSC_MAX_LEVELS];
    double squares = 0.0, variances = 0.0;
    for (int64_t g = 0; g < groups; g++) {
        const float s = step[g], z = zero_point ? zero_point[g] : 0.0f;
        const double sd = s;
        const float *wg = w + g * per_group;
        float *dg = dw ? dw + g * per_group : NULL;
        memset(count, 0, (size_t)levels * sizeof count[0]);
        memset(sum, 0, (size_t)levels * sizeof sum[0]);
        memset(m2, 0, (size_t)levels * sizeof m2[0]);
        /* pass 1: members and mean offset from the level of every bin, and the squared offsets */
        for (int64_t i = 0; i < per_group; i++) {
            int32_t q;
            double x;
            quantize(grid, wg[i], s, z, &q, &x);
            double d = x - ((double)q - z) * sd;
            count[q - qmin]++, sum[q - qmin] += d, squares += d * d;
        }
        for (int k = 0; k < levels; k++) mean[k] = count[k] ? sum[k] / (double)count[k] : 0.0;
        /* pass 2: squared deviations from the bin means, and the gradient */
        for (int64_t i = 0; i < per_group; i++) {
            int32_t q;
            double x;
            int inside = quantize(grid, wg[i], s, z, &q, &x);
            int k = q - qmin;
            double d = x - ((double)q - z) * sd, dev = d - mean[k];
            m2[k] += dev * dev;
            if (dg && inside) {
                double grad = 2.0 * d * inv_n;
                if (count[k] >= 2) grad += 2.0 * dev / (double)(count[k] - 1);
                dg[i] += (float)(lambda * grad);
            }
        }
        for (int k = 0; k < levels; k++)
            if (count[k] >= 2) variances += m2[k] / (double)(count[k] - 1);
    }
    if (loss) *loss = lambda * (squares * inv_n + variances);
    return VITQ_OK;
}

double vitq_i_obr_lambda(double progress, double max_lambda) {
    if (!(progress > 0.25)) return 0.0; /* also NaN */
    if (progress > 1.0) progress = 1.0;
    const double pi = 3.14159265358979323846;
    return max_lambda + 0.5 * (0.0 - max_lambda) * (1.0 + cos(pi * (progress - 0.25) / 0.75));
}

vitq_status vitq_i_osc_create(vitq_i_osc *o, const vitq_allocator *a, size_t count) {
    if (!o) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "oscillation tracker is NULL");
    memset(o, 0, sizeof *o);
    vitq_status st = vitq_i_allocator_resolve(a, &o->alloc);
    if (st != VITQ_OK) return st;
    if (count == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "oscillation tracker of 0 weights");
    o->prev = vitq_i_alloc_array(&o->alloc, count, 1);
    o->prev2 = vitq_i_alloc_array(&o->alloc, count, 1);
    if (!o->prev || !o->prev2) {
        vitq_i_osc_free(o);
        return vitq_i_oom("oscillation tracker codes", 2 * count);
    }
    o->count = count;
    return VITQ_OK;
}

void vitq_i_osc_free(vitq_i_osc *o) {
    if (!o) return;
    vitq_i_free(&o->alloc, o->prev);
    vitq_i_free(&o->alloc, o->prev2);
    o->prev = o->prev2 = NULL;
    o->count = 0;
}

vitq_status vitq_i_osc_update(vitq_i_osc *o, const char *name, const float *w, int64_t rows, int64_t in,
                              const float *step, const float *zero_point, int64_t groups, int64_t cpg,
                              const vitq_i_uniform *grid, int64_t *flips, int64_t *oscillations) {
    if (!name) name = "oscillation tracker";
    if (!o || !o->prev) return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: tracker is not created", name);
    vitq_status st = check_tensor(name, w, rows, in, step, groups, cpg, grid);
    if (st == VITQ_OK) st = check_zero_points(name, zero_point, groups, grid);
    if (st != VITQ_OK) return st;
    if ((uint64_t)(rows * in) != (uint64_t)o->count)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: %lld weights given to a tracker of %zu", name, (long long)(rows * in),
                           o->count);
    if (o->updates > 0 && (grid->qmin != o->grid.qmin || grid->qmax != o->grid.qmax))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: codes [%d, %d], the tracker's are [%d, %d]", name,
                           (int)grid->qmin, (int)grid->qmax, (int)o->grid.qmin, (int)o->grid.qmax);
    const int64_t per_group = cpg * in;
    int64_t flipped = 0, back = 0;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t i = g * per_group; i < (g + 1) * per_group; i++) {
            uint8_t k = (uint8_t)(vitq_i_uniform_code(grid, w[i], step[g], zero_point ? zero_point[g] : 0.0f) -
                                  grid->qmin);
            uint8_t p = o->updates > 0 ? o->prev[i] : k;
            if (k != p) {
                flipped++;
                if (o->updates >= 2 && k == o->prev2[i]) back++;
            }
            o->prev2[i] = p, o->prev[i] = k;
        }
    if (o->updates == 0) o->grid = *grid;
    o->updates++;
    o->flips += flipped, o->oscillations += back;
    if (flips) *flips = flipped;
    if (oscillations) *oscillations = back;
    return VITQ_OK;
}
