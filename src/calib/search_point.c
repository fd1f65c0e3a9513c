/* The search of one point's parameter (search_point.h): its candidates, the metric, the loop.
 *
 * Candidates, by what the point's scheme offers (docs/methods.md, "PTQ4ViT", "APQ-ViT"):
 *   "scale" of a symmetric uniform scheme, and twin-gelu's positive step: PTQ4ViT's grid
 *       (alpha + i (beta - alpha) / grid) * max / (2^(k-1) - 0.5), i = 0 .. grid - 1, max = max|x| per group
 *       (twin-gelu: the largest positive value), the reference code's start and range; its loop stops one
 *       short of i = grid, and so does this one;
 *   "scale" of other schemes: the same multipliers on the calibrated value;
 *   "split" (twin-softmax): 2^-i, i = 0 .. 19, as the reference code;
 *   twin-gelu's positive step in its power-of-two format (option pow2: OPT-m of MPTQ-ViT, in a ratios-only
 *       search or in a method's full one): 2^m times the negative step, m = 0 .. 15 (PTQ4ViT notes no
 *       gain beyond 15), the ratio the paper searches per layer;
 *   "lower" (mpq): the lowest level u top^-p for the exponents p = 1, 1.25, .. 4 (u, the top, stays the
 *       maximum: the large attention values are never clipped).
 * The candidate of least score wins (ties: the first), as the reference code's argmax over its similarity
 * does; the value the point held before is not a candidate, only the incumbent bottom elimination measures
 * its threshold on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calib/search_point.h"

enum { KIND_NONE, KIND_SCALE_REF, KIND_SCALE_REL, KIND_SPLIT, KIND_LOWER, KIND_RATIO };

#define SPLITS 20
#define RATIOS 16        /* OPT-m: m = 0 .. 15 */
#define GELU_MIN 0.16997124f /* -min GELU(x): twin-gelu's negative range (scheme_twin_gelu.c) */
#define POWERS 13 /* 1, 1.25, .. 4 */

typedef struct cands {
    int kind;
    const char *param;
    int64_t groups;
    int count;
    double top;  /* mpq: 2^k - 1 */
    float *base; /* [groups]: REF the reference start, REL the calibrated value, LOWER the tops */
    float *values; /* [groups]: one candidate */
} cands;

/* ---- the metric --------------------------------------------------------------------------------- */

static inline float term(const vitq_i_metric *m, const float *out, size_t i) {
    float e = m->grad[i] * (out[i] - m->ref[i]);
    return e * e;
}

double vitq_i_metric_score(const vitq_i_metric *m, const float *out) {
    double sum = 0.0;
    for (size_t i = 0; i < m->n; i++) {
        float e = term(m, out, i);
        if (e >= m->threshold) sum += e;
    }
    return sum;
}

void vitq_i_metric_columns(const vitq_i_metric *m, const float *out, double *scores) {
    memset(scores, 0, m->cols * sizeof(double));
    for (size_t i = 0; i < m->n; i++) {
        float e = term(m, out, i);
        if (e >= m->threshold) scores[i % m->cols] += e;
    }
}

/* The k-th smallest of v[0..n) (v is reordered): Hoare partitions around a median of three. */
static float select_kth(float *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j], v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

float vitq_i_metric_threshold(const vitq_i_metric *m, const float *out, double eliminate, float *work) {
    if (!(eliminate > 0.0) || m->n == 0) return 0.0f;
    for (size_t i = 0; i < m->n; i++) work[i] = term(m, out, i);
    return select_kth(work, m->n, (size_t)(eliminate * (double)(m->n - 1)));
}

/* ---- the candidates ------------------------------------------------------------------------------ */

static int has_param(const vitq_i_qpoint *qp, const char *name, const float **values, int64_t *count) {
    const vitq_scheme *s = &qp->inst.scheme;
    for (int32_t k = 0; k < s->param_count(qp->inst.state); k++) {
        const char *n;
        if (s->get_param(qp->inst.state, k, &n, values, count) == VITQ_OK && strcmp(n, name) == 0) return 1;
    }
    return 0;
}

/* max|x| of each group of point p (twin-gelu: the largest positive value); 0 when unknown. */
static void group_max(const vitq_i_run *r, int p, const vitq_i_qpoint *qp, int64_t groups, int positive, float *max) {
    const vitq_i_point_desc *d = &r->list->points[p];
    for (int64_t g = 0; g < groups; g++) max[g] = 0.0f;
    if (d->kind == VITQ_POINT_WEIGHT && r->weights && r->weights[p] && d->channels % groups == 0) {
        int64_t per = d->channels / groups * d->inner;
        const float *w = r->weights[p];
        for (int64_t g = 0; g < groups; g++)
            for (int64_t i = 0; i < per; i++) {
                float v = positive ? w[g * per + i] : fabsf(w[g * per + i]);
                if (v > max[g]) max[g] = v;
            }
        return;
    }
    if (groups != 1) return;
    float hi = isfinite(qp->observed_max) ? qp->observed_max : 0.0f;
    float lo = isfinite(qp->observed_min) ? -qp->observed_min : 0.0f;
    max[0] = positive || hi > lo ? hi : lo;
}

/* What point p offers to search; c->kind KIND_NONE when nothing. */
static vitq_status describe(vitq_i_run *r, int p, const vitq_i_block_search_options *o, cands *c) {
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const float *v = NULL, *other = NULL;
    int64_t count = 0, other_count = 0;
    memset(c, 0, sizeof *c);
    if (has_param(qp, "split", &v, &count)) c->kind = KIND_SPLIT, c->param = "split", c->count = SPLITS;
    else if (has_param(qp, "lower", &v, &count) && has_param(qp, "upper", &other, &other_count) &&
             other_count == count)
        c->kind = KIND_LOWER, c->param = "lower", c->count = POWERS;
    else if (has_param(qp, "scale", &v, &count)) c->kind = KIND_SCALE_REL, c->param = "scale", c->count = o->grid;
    if (c->kind == KIND_NONE || count < 1) return VITQ_OK;
    c->groups = count;
    c->top = (double)((1 << r->cfg[p].bits) - 1);
    c->base = vitq_i_alloc_array(r->alloc, (size_t)count * 2, sizeof(float));
    if (!c->base) return vitq_i_oom(qp->inst.name, (size_t)count * 8);
    c->values = c->base + count;
    memcpy(c->base, c->kind == KIND_LOWER ? other : v, (size_t)count * sizeof(float));
    if (c->kind != KIND_SCALE_REL) return VITQ_OK;
    /* OPT-m: twin-gelu kept in its power-of-two format (option pow2) searches the ratio; base = the negative step */
    if (strcmp(qp->inst.scheme.name, "twin-gelu") == 0 && r->cfg[p].options[0] != 0) {
        float dneg = GELU_MIN / (float)(1 << (r->cfg[p].bits - 1));
        for (int64_t g = 0; g < count; g++) c->base[g] = dneg;
        c->kind = KIND_RATIO, c->count = RATIOS;
        return VITQ_OK;
    }
    /* PTQ4ViT's start: symmetric uniform grids and twin-gelu's positive step */
    const float *zero;
    int64_t zcount;
    int gelu = strcmp(qp->inst.scheme.name, "twin-gelu") == 0;
    if (!gelu && !(r->cfg[p].symmetric && has_param(qp, "zero_point", &zero, &zcount))) return VITQ_OK;
    group_max(r, p, qp, count, gelu, c->values);
    for (int64_t g = 0; g < count; g++)
        if (!(c->values[g] > 0.0f)) return VITQ_OK; /* unknown range: stay relative */
    double levels = (double)(1 << (r->cfg[p].bits - 1)) - 0.5;
    for (int64_t g = 0; g < count; g++) c->base[g] = (float)((double)c->values[g] / levels);
    c->kind = KIND_SCALE_REF;
    return VITQ_OK;
}

/* Candidate i's value for group g. */
static float candidate_value(const cands *c, const vitq_i_block_search_options *o, int i, int64_t g) {
    double v;
    if (c->kind == KIND_SPLIT) v = ldexp(1.0, -i);
    else if (c->kind == KIND_RATIO) v = ldexp((double)c->base[g], i);
    else if (c->kind == KIND_LOWER) v = fmin((double)c->base[g] * pow(c->top, -(1.0 + 0.25 * i)), c->base[g]);
    else v = (o->alpha + i * (o->beta - o->alpha) / o->grid) * (double)c->base[g];
    return (float)v;
}

/* Candidate i into c->values. */
static void candidate(const cands *c, const vitq_i_block_search_options *o, int i) {
    for (int64_t g = 0; g < c->groups; g++) c->values[g] = candidate_value(c, o, i, g);
}

vitq_status vitq_i_search_start(vitq_i_run *r, int p) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (!qp) return VITQ_OK;
    vitq_i_block_search_options o = {0};
    o.grid = 1;
    cands c;
    vitq_status st = describe(r, p, &o, &c);
    if (!st && c.kind == KIND_SCALE_REF) st = qp->inst.scheme.set_param(qp->inst.state, c.param, c.base, c.groups);
    if (!st && c.kind == KIND_SCALE_REF && r->list->points[p].kind == VITQ_POINT_WEIGHT)
        st = vitq_i_run_set_weight(r, p, 1);
    vitq_i_free(r->alloc, c.base);
    return st;
}

/* ---- the loop ------------------------------------------------------------------------------------ */

typedef struct best_of {
    double *score; /* [groups] */
    int *index;    /* [groups]: -1 none yet */
    double *cols;  /* [cols] per-column scores, per-group search only */
} best_of;

static vitq_status try_all(vitq_i_run *r, int p, const vitq_i_block_search_options *o, vitq_i_metric *m,
                           int per_group, vitq_i_search_run_fn run, void *ctx, cands *c, best_of *b) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    int is_weight = r->list->points[p].kind == VITQ_POINT_WEIGHT;
    int64_t groups = per_group ? c->groups : 1;
    const float *out;
    vitq_status st = VITQ_OK;
    m->threshold = 0.0f;
    if (o->bbc && o->eliminate > 0.0) { /* the incumbent's terms set the threshold */
        float *work = vitq_i_alloc_array(r->alloc, m->n ? m->n : 1, sizeof(float));
        if (!work) return vitq_i_oom("bottom elimination", m->n * sizeof(float));
        if (is_weight) st = vitq_i_run_set_weight(r, p, 1);
        if (!st) st = run(ctx, &out);
        if (!st) m->threshold = vitq_i_metric_threshold(m, out, o->eliminate, work);
        vitq_i_free(r->alloc, work);
    }
    for (int i = 0; !st && i < c->count; i++) {
        candidate(c, o, i);
        if (qp->inst.scheme.set_param(qp->inst.state, c->param, c->values, c->groups)) continue; /* refused */
        if (is_weight) st = vitq_i_run_set_weight(r, p, 1);
        if (!st) st = run(ctx, &out);
        if (st) break;
        if (per_group) vitq_i_metric_columns(m, out, b->cols);
        for (int64_t g = 0; g < groups; g++) {
            double v = 0.0;
            if (per_group)
                for (size_t k = (size_t)g * m->cols / (size_t)groups; k < (size_t)(g + 1) * m->cols / (size_t)groups; k++)
                    v += b->cols[k];
            else v = vitq_i_metric_score(m, out);
            if (isfinite(v) && v < b->score[g]) b->score[g] = v, b->index[g] = i;
        }
    }
    return st;
}

vitq_status vitq_i_search_point(vitq_i_run *r, int p, const vitq_i_block_search_options *o, vitq_i_metric *m,
                                int per_group, vitq_i_search_run_fn run, void *ctx) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (!qp) return VITQ_OK;
    const vitq_i_point_desc *d = &r->list->points[p];
    cands c;
    vitq_status st = describe(r, p, o, &c);
    if (st || c.kind == KIND_NONE) return st;
    per_group = per_group && d->kind == VITQ_POINT_WEIGHT && c.groups > 1 && m->cols == (size_t)d->channels &&
                d->channels % c.groups == 0;
    int64_t groups = per_group ? c.groups : 1;
    float *incumbent = vitq_i_alloc_array(r->alloc, (size_t)c.groups, sizeof(float));
    best_of b = {vitq_i_alloc_array(r->alloc, (size_t)groups, sizeof(double)),
                 vitq_i_alloc_array(r->alloc, (size_t)groups, sizeof(int)),
                 per_group ? vitq_i_alloc_array(r->alloc, m->cols, sizeof(double)) : NULL};
    const float *now = NULL;
    int64_t count = 0;
    if (!incumbent || !b.score || !b.index || (per_group && !b.cols)) st = vitq_i_oom(qp->inst.name, m->cols * 8);
    if (!st && !has_param(qp, c.param, &now, &count)) st = vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: no %s", d->name, c.param);
    if (!st) {
        memcpy(incumbent, now, (size_t)c.groups * sizeof(float));
        for (int64_t g = 0; g < groups; g++) b.score[g] = INFINITY, b.index[g] = -1;
        st = try_all(r, p, o, m, per_group, run, ctx, &c, &b);
    }
    /* each group its best candidate; none finite (every candidate refused): the incumbent again */
    for (int64_t g = 0; !st && g < c.groups; g++) {
        int i = b.index[per_group ? g : 0];
        c.values[g] = i < 0 ? incumbent[g] : candidate_value(&c, o, i, g);
    }
    if (!st) st = qp->inst.scheme.set_param(qp->inst.state, c.param, c.values, c.groups);
    if (!st && d->kind == VITQ_POINT_WEIGHT) st = vitq_i_run_set_weight(r, p, 1);
    vitq_i_free(r->alloc, incumbent);
    vitq_i_free(r->alloc, b.score);
    vitq_i_free(r->alloc, b.index);
    vitq_i_free(r->alloc, b.cols);
    vitq_i_free(r->alloc, c.base);
    return st;
}
