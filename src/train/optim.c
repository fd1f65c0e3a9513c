/* Adam / AdamW and the learning-rate schedules (optim.h). The moments are stored in float (two floats per
 * trained value, as the parameters themselves) and each element's update is computed in double from
 * them, one element after another: the result depends only on the inputs, never on threads. */
#include <math.h>
#include <string.h>

#include "train/optim.h"

#define PI 3.14159265358979323846

double vitq_i_schedule_factor(const vitq_i_schedule *s, int64_t step) {
    if (!s || s->kind == VITQ_I_LR_CONSTANT) return 1.0;
    if (step < 0) step = 0;
    if (step < s->warmup) return (double)(step + 1) / (double)s->warmup;
    if (s->kind == VITQ_I_LR_WARMUP) return 1.0;
    double span = (double)(s->total - s->warmup);
    double p = span > 0.0 ? (double)(step - s->warmup) / span : 1.0;
    if (p > 1.0) p = 1.0;
    return s->min_factor + (1.0 - s->min_factor) * 0.5 * (1.0 + cos(PI * p));
}

vitq_status vitq_i_schedule_check(const vitq_i_schedule *s, const char *what) {
    if (!s) return VITQ_OK;
    if (s->kind != VITQ_I_LR_CONSTANT && s->kind != VITQ_I_LR_WARMUP && s->kind != VITQ_I_LR_COSINE)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: unknown schedule kind %d", what, (int)s->kind);
    if (s->kind == VITQ_I_LR_CONSTANT) return VITQ_OK;
    if (s->warmup < 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: warm-up of %lld steps", what, (long long)s->warmup);
    if (s->kind == VITQ_I_LR_COSINE) {
        if (s->total <= s->warmup)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: cosine schedule of %lld steps leaves none after a "
                               "warm-up of %lld", what, (long long)s->total, (long long)s->warmup);
        if (!(s->min_factor >= 0.0 && s->min_factor <= 1.0))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: min_factor %g is not in [0, 1]", what, s->min_factor);
    }
    return VITQ_OK;
}

vitq_i_adam_options vitq_i_adam_defaults(void) {
    vitq_i_adam_options o;
    memset(&o, 0, sizeof o);
    o.beta1 = 0.9, o.beta2 = 0.999, o.eps = 1e-8, o.decoupled = 1;
    o.schedule.kind = VITQ_I_LR_CONSTANT;
    return o;
}

static vitq_status check_options(const vitq_i_adam_options *opt, const vitq_i_param_group *groups, int num_groups) {
    if (!(opt->beta1 >= 0.0 && opt->beta1 < 1.0) || !(opt->beta2 >= 0.0 && opt->beta2 < 1.0))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: betas %g, %g must be in [0, 1)", opt->beta1, opt->beta2);
    if (!(opt->eps > 0.0) || !isfinite(opt->eps))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: eps %g must be finite and > 0", opt->eps);
    for (int g = 0; g < num_groups; g++)
        if (!(groups[g].lr >= 0.0) || !isfinite(groups[g].lr) || !(groups[g].weight_decay >= 0.0) ||
            !isfinite(groups[g].weight_decay))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: group %d has learning rate %g and weight decay %g "
                               "(both must be finite and >= 0)", g, groups[g].lr, groups[g].weight_decay);
    return vitq_i_schedule_check(&opt->schedule, "adam");
}

vitq_status vitq_i_adam_init(vitq_i_adam *o, const vitq_allocator *a, const vitq_i_param *params, int count,
                             const vitq_i_param_group *groups, int num_groups, const vitq_i_adam_options *opt) {
    if (!o) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: optimizer is NULL");
    memset(o, 0, sizeof *o);
    vitq_status st = vitq_i_allocator_resolve(a, &o->alloc);
    if (st != VITQ_OK) return st;
    if (!params || count <= 0 || !groups || num_groups <= 0 || !opt)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: %d parameters in %d groups (need at least one of each, "
                           "and options)", count, num_groups);
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        const vitq_i_param *p = &params[i];
        if (!p->value || !p->grad || p->n == 0)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: parameter %d has no values or gradients", i);
        if (p->group < 0 || p->group >= num_groups)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adam: parameter %d is in group %d of %d", i, p->group,
                               num_groups);
        if (!vitq_i_add_size(total, p->n, &total)) return vitq_i_oom("adam moments", SIZE_MAX);
    }
    st = check_options(opt, groups, num_groups);
    if (st != VITQ_OK) return st;
    o->opt = *opt;
    o->params = vitq_i_alloc_array(&o->alloc, (size_t)count, sizeof *o->params);
    o->groups = vitq_i_alloc_array(&o->alloc, (size_t)num_groups, sizeof *o->groups);
    o->m = vitq_i_calloc(&o->alloc, total, sizeof(float));
    o->v = vitq_i_calloc(&o->alloc, total, sizeof(float));
    if (!o->params || !o->groups || !o->m || !o->v) {
        vitq_i_adam_free(o);
        return vitq_i_oom("adam moments", total * 2 * sizeof(float));
    }
    memcpy(o->params, params, (size_t)count * sizeof *params);
    memcpy(o->groups, groups, (size_t)num_groups * sizeof *groups);
    o->count = count, o->num_groups = num_groups;
    return VITQ_OK;
}

void vitq_i_adam_free(vitq_i_adam *o) {
    if (!o) return;
    vitq_i_free(&o->alloc, o->params);
    vitq_i_free(&o->alloc, o->groups);
    vitq_i_free(&o->alloc, o->m);
    vitq_i_free(&o->alloc, o->v);
    vitq_allocator keep = o->alloc;
    memset(o, 0, sizeof *o);
    o->alloc = keep;
}

double vitq_i_adam_lr(const vitq_i_adam *o, int g) {
    return o->groups[g].lr * vitq_i_schedule_factor(&o->opt.schedule, o->steps);
}

void vitq_i_adam_zero_grad(vitq_i_adam *o) {
    for (int i = 0; i < o->count; i++) memset(o->params[i].grad, 0, o->params[i].n * sizeof(float));
}

vitq_status vitq_i_adam_step(vitq_i_adam *o) {
    if (!o || !o->m) return vitq_i_fail(VITQ_ERR_BAD_STATE, "adam: step on an optimizer that is not set up");
    for (int i = 0; i < o->count; i++) {
        const vitq_i_param *p = &o->params[i];
        for (size_t j = 0; j < p->n; j++)
            if (!isfinite(p->grad[j]))
                return vitq_i_fail(VITQ_ERR_NON_FINITE, "adam: gradient %zu of parameter %d is %g; no update made", j,
                                   i, (double)p->grad[j]);
    }
    const double b1 = o->opt.beta1, b2 = o->opt.beta2, eps = o->opt.eps;
    double t = (double)(o->steps + 1);
    double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t); /* bias corrections */
    float *m = o->m, *v = o->v;
    for (int i = 0; i < o->count; i++) {
        const vitq_i_param *p = &o->params[i];
        double lr = vitq_i_adam_lr(o, p->group), wd = o->groups[p->group].weight_decay;
        double shrink = o->opt.decoupled ? 1.0 - lr * wd : 1.0, l2 = o->opt.decoupled ? 0.0 : wd;
        for (size_t j = 0; j < p->n; j++) {
            double w = p->value[j], g = (double)p->grad[j] + l2 * w;
            double mj = b1 * m[j] + (1.0 - b1) * g, vj = b2 * v[j] + (1.0 - b2) * g * g;
            m[j] = (float)mj, v[j] = (float)vj;
            /* from the stored (float) moments, so a resumed run (moments saved as floats) continues exactly */
            double update = ((double)m[j] / c1) / (sqrt((double)v[j] / c2) + eps);
            p->value[j] = (float)(w * shrink - lr * update);
        }
        m += p->n, v += p->n;
    }
    o->steps++;
    return VITQ_OK;
}
