/* The STE's pass-through intervals of the built-in schemes, and the masked backward (ste.h).
 *
 * A scheme is recognised by its fake_quant function, not by its name alone: the instance holds a copy of
 * the table, and the range schemes share vitq_i_range_fake_quant while every component has its own. The
 * intervals follow the "clamp, then round" reading of each grid: round is the identity in the chain rule,
 * the clamp is not. The twin-gelu negative step repeats scheme_twin_gelu.c's constant; the tests check
 * every interval against the instance's own fake quantization (constant outside, tracking x inside). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "quant/range_scheme.h"
#include "quant/schemes.h"
#include "quant/view.h"
#include "train/ste.h"

#define GELU_MIN 0.16997124f /* -min GELU, as scheme_twin_gelu.c */

static vitq_status ste_alloc(vitq_i_ste *s, const vitq_allocator *a, int64_t groups, int64_t cpg, const char *what) {
    memset(s, 0, sizeof *s);
    vitq_status st = vitq_i_allocator_resolve(a, &s->alloc);
    if (st != VITQ_OK) return st;
    if (groups < 1 || cpg < 1 || groups > INT64_MAX / cpg)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %lld groups of %lld channels", what, (long long)groups,
                           (long long)cpg);
    s->groups = groups, s->cpg = cpg;
    s->lo = vitq_i_alloc_array(&s->alloc, (size_t)groups, sizeof(float));
    s->hi = vitq_i_alloc_array(&s->alloc, (size_t)groups, sizeof(float));
    if (!s->lo || !s->hi) {
        vitq_i_ste_free(s);
        return vitq_i_oom("STE ranges", (size_t)groups * 2 * sizeof(float));
    }
    return VITQ_OK;
}

void vitq_i_ste_free(vitq_i_ste *s) {
    if (!s) return;
    vitq_i_free(&s->alloc, s->lo);
    vitq_i_free(&s->alloc, s->hi);
    s->lo = s->hi = NULL;
}

static void set_uniform(vitq_i_ste *s, const vitq_i_uniform *grid, const float *scale, const float *zero_point) {
    for (int64_t g = 0; g < s->groups; g++) {
        s->lo[g] = vitq_i_uniform_value(grid->qmin, scale[g], zero_point[g]);
        s->hi[g] = vitq_i_uniform_value(grid->qmax, scale[g], zero_point[g]);
    }
}

vitq_status vitq_i_ste_uniform(vitq_i_ste *s, const vitq_allocator *a, const vitq_i_uniform *grid,
                               const float *scale, const float *zero_point, int64_t groups, int64_t cpg) {
    if (!s || !grid || !scale || !zero_point)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "ste: NULL grid, scale or zero point");
    vitq_status st = ste_alloc(s, a, groups, cpg, "ste");
    if (st == VITQ_OK) set_uniform(s, grid, scale, zero_point);
    return st;
}

/* Parameter `name` of the instance, one value per group. */
static vitq_status param_of(const vitq_i_instance *inst, const char *name, const float **values) {
    int32_t n = inst->scheme.param_count(inst->state);
    for (int32_t k = 0; k < n; k++) {
        const char *pn;
        int64_t count;
        vitq_status st = inst->scheme.get_param(inst->state, k, &pn, values, &count);
        if (st != VITQ_OK) return st;
        if (strcmp(pn, name) != 0) continue;
        if (count != inst->config.groups)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: parameter %s has %lld values for %lld groups", inst->name, name,
                               (long long)count, (long long)inst->config.groups);
        return VITQ_OK;
    }
    return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "%s: scheme %s has no parameter %s", inst->name, inst->scheme.name,
                       name);
}

/* s 2^-e as a float, rounded up so that the interval never takes in a value the grid sends to 0; at least
 * the smallest positive float (0 itself is always sent to the code of 0). */
static float scaled_pow2_up(float s, double e) {
    double v = (double)s * exp2(-e);
    float f = (float)v;
    if ((double)f < v) f = nextafterf(f, INFINITY);
    return f > 0.0f ? f : FLT_TRUE_MIN;
}

static int is_scheme(const vitq_i_instance *inst, const vitq_scheme *table) {
    return inst->scheme.fake_quant == table->fake_quant && strcmp(inst->scheme.name, table->name) == 0;
}

vitq_status vitq_i_ste_from_instance(vitq_i_ste *s, const vitq_allocator *a, const vitq_i_instance *inst) {
    if (!s || !inst || !inst->state)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "ste: no quantizer instance (or one that was not created)");
    memset(s, 0, sizeof *s);
    const vitq_point_config *c = &inst->config;
    int bits = c->bits;
    const float *p, *z;
    vitq_status st;
    enum { UNIFORM, GELU, SOFTMAX, LOG2, LOG_SQRT2, MPQ, OTHER } kind = OTHER;
    if (inst->scheme.fake_quant == vitq_i_range_fake_quant) kind = UNIFORM;
    else if (is_scheme(inst, &vitq_i_scheme_twin_gelu)) kind = GELU;
    else if (is_scheme(inst, &vitq_i_scheme_twin_softmax)) kind = SOFTMAX;
    else if (is_scheme(inst, &vitq_i_scheme_log2)) kind = LOG2;
    else if (is_scheme(inst, &vitq_i_scheme_log_sqrt2)) kind = LOG_SQRT2;
    else if (is_scheme(inst, &vitq_i_scheme_mpq)) kind = MPQ;
    if (kind == OTHER)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: scheme %s has no straight-through rule (only the built-in "
                           "schemes have)", inst->name, inst->scheme.name);
    /* the parameters first: an instance without them fails before anything is allocated */
    const char *name = kind == UNIFORM || kind == GELU || kind == LOG2 || kind == LOG_SQRT2 ? "scale"
                       : kind == MPQ ? "upper" : "split";
    st = param_of(inst, name, &p);
    if (st == VITQ_OK && kind == UNIFORM) st = param_of(inst, "zero_point", &z);
    if (st == VITQ_OK) st = ste_alloc(s, a, c->groups, c->channels_per_group, inst->name);
    if (st != VITQ_OK) return st;
    double levels = ldexp(1.0, bits); /* L = 2^k */
    int32_t n = 1 << (bits - 1);
    for (int64_t g = 0; g < s->groups; g++) {
        switch (kind) {
        case GELU:
            s->lo[g] = -(float)n * (GELU_MIN / (float)n), s->hi[g] = (float)(n - 1) * p[g];
            break;
        case SOFTMAX:
            s->lo[g] = 0.0f, s->hi[g] = 1.0f;
            break;
        case LOG2:
            s->lo[g] = scaled_pow2_up(p[g], levels - 1.5), s->hi[g] = p[g];
            break;
        case LOG_SQRT2:
            s->lo[g] = scaled_pow2_up(p[g], (levels - 1.5) / 2.0), s->hi[g] = p[g];
            break;
        case MPQ:
            s->lo[g] = 0.0f, s->hi[g] = p[g];
            break;
        default:
            break;
        }
    }
    if (kind == UNIFORM) {
        vitq_i_uniform grid = vitq_i_uniform_grid(bits, c->symmetric);
        set_uniform(s, &grid, p, z);
    }
    return VITQ_OK;
}

vitq_status vitq_i_ste_backward(const vitq_i_ste *s, const vitq_tensor_view *x, const float *dy, float *dx,
                                int accumulate, const char *what) {
    if (!what) what = "ste";
    if (!s || !s->lo || !dy || !dx)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: STE backward without ranges or gradients", what);
    vitq_status st = vitq_i_view_check(x, s->groups * s->cpg, what);
    if (st != VITQ_OK) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            int64_t g = c / s->cpg, off = o * x->outer_stride + c * x->inner;
            float lo = s->lo[g], hi = s->hi[g];
            const float *p = x->data + off, *d = dy + off;
            float *r = dx + off;
            for (int64_t i = 0; i < x->inner; i++) {
                float pass = p[i] >= lo && p[i] <= hi ? d[i] : 0.0f;
                r[i] = accumulate ? r[i] + pass : pass;
            }
        }
    return VITQ_OK;
}
