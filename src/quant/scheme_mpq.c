/* "mpq": the Matthew-effect preserving softmax quantizer of APQ-ViT as docs/methods.md section 1 proposes
 * it. The paper's exact formula is UNCONFIRMED (the digest had only the abstract and secondary sources):
 * this is the digest's design, keep it replaceable.
 *
 * Unsigned k-bit codes; with L = 2^k and, per group, the parameters "lower" l and "upper" u (0 <= l <= u):
 *   code 0 = 0; code c in 1..L-1 = l + (c - 1) d, d = (u - l) / (L - 2).
 * x goes to the nearest of these values: 0 when x <= 0 or x < l / 2 (ties go up), else code
 * 1 + clamp(round((x - l) / d), 0, L - 2). The top code is u, the observed maximum: the large "rich"
 * probabilities are never clipped (clipping them is what collapses W4A4 accuracy); l trades the resolution
 * of the many small values for that of the few large ones. With l = 0, codes 0 and 1 are both 0.
 *
 * Calibration, two passes. Pass 0: each group's maximum (u) and a histogram of its values (16 bins per
 * octave over [2^-64, 2^32), as scheme log-sqrt2) for the quantiles. The candidates for l are then
 * {0, quantile(P, 0.5), quantile(P, 0.9), quantile(P, 0.99)} (from the histogram: interpolated inside a bin,
 * up to ~4% off). Pass 1 sums, exactly and for each candidate, the squared error of every value and the
 * squared change of every row's maximum, (max P^_row - max P_row)^2 = (Q(max P_row) - max P_row)^2 (Q is
 * monotone). A row is `tokens` consecutive values when inner = tokens^2 (attention probabilities); when inner
 * is not a square, the values of one group in one outer slice form a row. finalize keeps the candidate of
 * least error + lambda * row error (ties: the smaller l), lambda = option "lambda" (the digest's penalty;
 * APQ-ViT scores with its block-wise BBC metric, which a calibration method can do by setting "lower"). */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"
#include "quant/view.h"

#define CANDIDATES 4

static const double lower_quantiles[CANDIDATES] = {0.0 /* l = 0 */, 0.5, 0.9, 0.99};

static const vitq_scheme_option options[] = {
    {"lambda", "weight of the squared change of each row's maximum against the squared error", 0.0, 1e9, 1.0, 0},
};

typedef struct grid {
    float l, d; /* lowest non-zero value, step */
} grid;

enum { LOWER, UPPER }; /* the parameters, in the order of get_param */

typedef struct mpq_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t top;      /* highest code, L - 1 */
    double lambda;    /* pass 0 is the base's: maxima (u) and histogram (for the candidates) */
    float *cand;          /* groups x CANDIDATES: candidate l */
    double *err, *rows;   /* groups x CANDIDATES: squared error, row-maximum error */
    float *lower, *upper; /* groups: the parameters */
    grid *grids;          /* groups: derived from them */
} mpq_state;

/* ---- the grid --------------------------------------------------------------------------------- */

static grid make_grid(float lower, float upper, int32_t top) {
    grid q = {lower, (upper - lower) / (float)(top - 1)};
    return q;
}

static inline int32_t code_of(const grid *q, float x, int32_t top) {
    if (!(x > 0.0f) || x + x < q->l) return 0;
    if (!(q->d > 0.0f)) return 1;
    float t = (x - q->l) / q->d, last = (float)(top - 1);
    return 1 + (int32_t)vitq_i_round_even(t > 0.0f ? (t < last ? t : last) : 0.0f);
}

static inline float value_of(const grid *q, int32_t code) {
    if (code == 0) return 0.0f;
    float above = (float)(code - 1) * q->d; /* its own statement: never fused into a multiply-add */
    return q->l + above;
}

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t mpq_code(const vitq_i_comp *b, int64_t g, float x) {
    const mpq_state *s = (const mpq_state *)b;
    return code_of(&s->grids[g], x, s->top);
}

static inline float mpq_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const mpq_state *s = (const mpq_state *)b;
    return value_of(&s->grids[g], code);
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void mpq_init(vitq_i_comp *b, const vitq_point_config *c) {
    mpq_state *s = (mpq_state *)b;
    s->top = (1 << c->bits) - 1;
    s->lambda = vitq_i_comp_option(b, c, 0);
    b->code_min = 0, b->code_max = s->top;
    vitq_i_comp_track(b, VITQ_I_COMP_MAX | VITQ_I_COMP_COUNTS);
    s->cand = vitq_i_comp_alloc(b, CANDIDATES * sizeof(float));
    s->err = vitq_i_comp_alloc(b, CANDIDATES * sizeof(double));
    s->rows = vitq_i_comp_alloc(b, CANDIDATES * sizeof(double));
    s->lower = vitq_i_comp_alloc(b, sizeof(float));
    s->upper = vitq_i_comp_alloc(b, sizeof(float));
    s->grids = vitq_i_comp_alloc(b, sizeof(grid));
}

/* The candidates of every group, once pass 0 is complete; the histogram is no longer needed. */
static void start_pass1(mpq_state *s) {
    vitq_i_comp *b = &s->base;
    for (int64_t g = 0; g < b->groups; g++)
        for (int k = 0; k < CANDIDATES; k++)
            s->cand[g * CANDIDATES + k] = k == 0 ? 0.0f : (float)vitq_i_comp_quantile(b, g, lower_quantiles[k]);
    vitq_i_comp_drop_hist(b);
}

static void add_row(const grid *q, int32_t top, double *rows, float max) {
    for (int k = 0; k < CANDIDATES; k++) {
        double d = (double)value_of(&q[k], code_of(&q[k], max, top)) - (double)max;
        rows[k] += d * d;
    }
}

static void observe_errors(mpq_state *s, const vitq_tensor_view *x) {
    int64_t cpg = s->base.cpg;
    int64_t t = (int64_t)sqrt((double)x->inner);
    while (t * t > x->inner) t--;
    while ((t + 1) * (t + 1) <= x->inner) t++;
    int64_t row = t * t == x->inner ? t : 0; /* 0: a row is a group within one outer slice */
    for (int64_t o = 0; o < x->outer; o++) {
        float group_max = 0.0f;
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / cpg;
            grid q[CANDIDATES];
            for (int k = 0; k < CANDIDATES; k++) q[k] = make_grid(s->cand[g * CANDIDATES + k], s->base.max[g], s->top);
            double *err = s->err + g * CANDIDATES, *rows = s->rows + g * CANDIDATES;
            for (int64_t i = 0; i < x->inner; i++)
                for (int k = 0; k < CANDIDATES; k++) {
                    double d = (double)p[i] - (double)value_of(&q[k], code_of(&q[k], p[i], s->top));
                    err[k] += d * d;
                }
            for (int64_t r = 0; row && r < x->inner; r += row) {
                float m = p[r];
                for (int64_t i = r + 1; i < r + row; i++) m = p[i] > m ? p[i] : m;
                add_row(q, s->top, rows, m);
            }
            if (row) continue;
            for (int64_t i = 0; i < x->inner; i++)
                if (p[i] > group_max || (i == 0 && c % cpg == 0)) group_max = p[i];
            if (c % cpg == cpg - 1) add_row(q, s->top, rows, group_max);
        }
    }
}

/* Pass 0 is the base's statistics; pass 1 the errors of the candidates they give. */
static vitq_status mpq_observe(vitq_i_comp *b, int32_t pass, const vitq_tensor_view *x) {
    mpq_state *s = (mpq_state *)b;
    if (pass == 0) return VITQ_OK;
    if (!b->pass1) start_pass1(s);
    observe_errors(s, x);
    return VITQ_OK;
}

/* The candidate of least error + lambda * row error (ties: the smaller l); the top is the maximum. */
static void mpq_choose(vitq_i_comp *b) {
    mpq_state *s = (mpq_state *)b;
    for (int64_t g = 0; g < b->groups; g++) {
        const double *err = s->err + g * CANDIDATES, *rows = s->rows + g * CANDIDATES;
        int best = 0;
        for (int k = 1; k < CANDIDATES; k++)
            if (err[k] + s->lambda * rows[k] < err[best] + s->lambda * rows[best]) best = k;
        s->lower[g] = s->cand[g * CANDIDATES + best];
        s->upper[g] = b->max[g];
    }
}

/* The grids need both ends: set_param gives one at a time. */
static void mpq_derive(vitq_i_comp *b) {
    mpq_state *s = (mpq_state *)b;
    if (!vitq_i_comp_complete(b)) return;
    for (int64_t g = 0; g < b->groups; g++) s->grids[g] = make_grid(s->lower[g], s->upper[g], s->top);
}

/* Each value is checked against the other end when that one is known (set lower before raising it above
 * the current upper, upper first to lower it below the current lower). */
static vitq_status check_end(const vitq_i_comp *b, int32_t param, int64_t g, float v) {
    const mpq_state *s = (const mpq_state *)b;
    const char *name = param == UPPER ? "upper" : "lower", *other_name = param == UPPER ? "lower" : "upper";
    float other = param == UPPER ? s->lower[g] : s->upper[g];
    if (!isfinite(v) || !(v >= 0.0f))
        return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is not finite and >= 0", name, (long long)g,
                                (double)v);
    if (vitq_i_comp_known(b, !param) && (param == UPPER ? v < other : v > other))
        return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is %s %s[%lld] = %g", name, (long long)g,
                                (double)v, param == UPPER ? "below" : "above", other_name, (long long)g, (double)other);
    return VITQ_OK;
}

static const vitq_i_comp_param params[] = {
    [LOWER] = {"lower", offsetof(mpq_state, lower), check_end},
    [UPPER] = {"upper", offsetof(mpq_state, upper), check_end},
};

static const vitq_i_comp_spec spec = {
    .scheme = &vitq_i_scheme_mpq, .size = sizeof(mpq_state), .inputs = "attention probabilities", .symmetric = 0,
    .codes = "unsigned codes for values >= 0", .range_flag = 0, .holds = "quantizer", .num_params = 2,
    .params = params,
    .init = mpq_init, .observe = mpq_observe, .choose = mpq_choose, .derive = mpq_derive, .drop = NULL,
};

VITQ_I_COMPONENT(vitq_i_scheme_mpq, spec, "mpq",
                 "APQ-ViT softmax quantizer (MPQ, unconfirmed form): 0 plus a uniform grid from a searched lower end "
                 "to the maximum", 2, 2, (int32_t)(sizeof options / sizeof options[0]), options, mpq_code, mpq_value);
