/* "mpq": the Matthew-effect preserving quantizer of APQ-ViT (ACM MM 2022) for attention probabilities, in the
 * reading of docs/methods.md: the paper's text was not reachable, only its abstract, which asks the softmax
 * quantizer to keep the power-law shape of the attention map and the dominance of its large values. A
 * uniform grid keeps the large values but zeroes the long tail of small ones (at 4 bits nearly every
 * probability of a 197-token row); a log grid keeps the tail but rounds 0.7 to 0.5 or 1. A power grid does
 * both: its levels follow a power law themselves.
 *
 * Unsigned k-bit codes, L = 2^k, top = L - 1; per group the parameters "lower" l and "upper" u (0 <= l <= u):
 *   value(0) = 0, value(1) = l, value(top) = u, value(c) = u (c / top)^p with p = ln(u / l) / ln(top),
 * so the exponent p is what l encodes (l = u / top: the uniform grid; smaller l: denser near 0, coarser at
 * the top; l = 0: only 0 and u). x goes to the nearest value (ties up): 0 for x <= 0, u for x >= u. The top
 * is the observed maximum, so the large "rich" probabilities are never clipped.
 *
 * Calibration, two passes. Pass 0: each group's maximum (u). Pass 1 sums, exactly and for each candidate
 * exponent p in {1, 1.5, ..., 4} and for l = 0, the squared error of every value and the squared change of
 * every row's maximum, (Q(max P_row) - max P_row)^2 (Q is monotone). A row is `tokens` consecutive values
 * when inner = tokens^2 (attention probabilities); when inner is not a square, the values of one group in
 * one outer slice form a row. finalize keeps the candidate of least error + lambda * row error (ties: the
 * first, l = 0 then increasing p). APQ-ViT's calibration then tunes l by its block-wise metric
 * (calib/block_search.c), which a method does by setting "lower". */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"
#include "quant/view.h"

#define CANDIDATES 8

/* Candidate exponents; 0 stands for l = 0 (no level between 0 and u). */
static const double powers[CANDIDATES] = {0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0};

static const vitq_scheme_option options[] = {
    {"lambda", "weight of the squared change of each row's maximum against the squared error", 0.0, 1e9, 1.0, 0},
};

enum { LOWER, UPPER }; /* the parameters, in the order of get_param */

typedef struct mpq_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t top;      /* highest code, L - 1 */
    double lambda;    /* pass 0 is the base's: the maxima (u) */
    float *cgrid;         /* groups x CANDIDATES grids (below), pass 1 only */
    double *err, *rows;   /* groups x CANDIDATES: squared error, row-maximum error */
    float *lower, *upper; /* groups: the parameters */
    float *grid;          /* groups: the grid they give */
} mpq_state;

/* A grid is L values then L - 1 thresholds, the midpoints between neighbouring values. */
static inline size_t grid_floats(int32_t top) { return 2 * (size_t)top + 1; }

/* ---- the grid --------------------------------------------------------------------------------- */

static void make_grid(double l, double u, int32_t top, float *g) {
    float *v = g, *t = g + top + 1;
    double p = l > 0.0 && u > l ? log(u / l) / log((double)top) : 0.0;
    v[0] = 0.0f;
    for (int32_t c = 1; c <= top; c++) {
        double x = c == top ? u : !(l > 0.0) ? 0.0 : c == 1 ? l : u * pow((double)c / top, p);
        v[c] = (float)x;
    }
    for (int32_t c = 0; c < top; c++) t[c] = (float)(((double)v[c] + (double)v[c + 1]) / 2.0);
}

/* The number of thresholds at or below x: the nearest value's code, ties up. */
static inline int32_t code_of(const float *g, int32_t top, float x) {
    if (!(x > 0.0f)) return 0;
    const float *t = g + top + 1;
    int32_t lo = 0, hi = top;
    while (lo < hi) {
        int32_t mid = (lo + hi) / 2;
        if (x >= t[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The lowest non-zero value of candidate k for the top u. */
static double candidate_lower(int k, double u, int32_t top) {
    return powers[k] > 0.0 ? u * pow((double)top, -powers[k]) : 0.0;
}

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t mpq_code(const vitq_i_comp *b, int64_t g, float x) {
    const mpq_state *s = (const mpq_state *)b;
    return code_of(s->grid + (size_t)g * grid_floats(s->top), s->top, x);
}

static inline float mpq_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const mpq_state *s = (const mpq_state *)b;
    return s->grid[(size_t)g * grid_floats(s->top) + (size_t)code];
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void mpq_init(vitq_i_comp *b, const vitq_point_config *c) {
    mpq_state *s = (mpq_state *)b;
    s->top = (1 << c->bits) - 1;
    s->lambda = vitq_i_comp_option(b, c, 0);
    b->code_min = 0, b->code_max = s->top;
    vitq_i_comp_track(b, VITQ_I_COMP_MAX);
    s->err = vitq_i_comp_alloc(b, CANDIDATES * sizeof(double));
    s->rows = vitq_i_comp_alloc(b, CANDIDATES * sizeof(double));
    s->lower = vitq_i_comp_alloc(b, sizeof(float));
    s->upper = vitq_i_comp_alloc(b, sizeof(float));
    s->grid = vitq_i_comp_alloc(b, grid_floats(s->top) * sizeof(float));
}

/* The candidates' grids of every group, once pass 0 (the maxima) is complete. */
static vitq_status start_pass1(mpq_state *s) {
    vitq_i_comp *b = &s->base;
    size_t per = grid_floats(s->top);
    s->cgrid = vitq_i_comp_alloc(b, CANDIDATES * per * sizeof(float));
    if (!s->cgrid)
        return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the candidate grids of %lld groups",
                                (long long)b->groups);
    for (int64_t g = 0; g < b->groups; g++)
        for (int k = 0; k < CANDIDATES; k++) {
            double u = b->max[g];
            make_grid(candidate_lower(k, u, s->top), u, s->top, s->cgrid + ((size_t)g * CANDIDATES + (size_t)k) * per);
        }
    return VITQ_OK;
}

static void add_row(const mpq_state *s, const float *grids, double *rows, float max) {
    size_t per = grid_floats(s->top);
    for (int k = 0; k < CANDIDATES; k++) {
        const float *q = grids + (size_t)k * per;
        double d = (double)q[code_of(q, s->top, max)] - (double)max;
        rows[k] += d * d;
    }
}

static void observe_errors(mpq_state *s, const vitq_tensor_view *x) {
    int64_t cpg = s->base.cpg;
    size_t per = grid_floats(s->top);
    int64_t t = (int64_t)sqrt((double)x->inner);
    while (t * t > x->inner) t--;
    while ((t + 1) * (t + 1) <= x->inner) t++;
    int64_t row = t * t == x->inner ? t : 0; /* 0: a row is a group within one outer slice */
    for (int64_t o = 0; o < x->outer; o++) {
        float group_max = 0.0f;
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / cpg;
            const float *grids = s->cgrid + (size_t)g * CANDIDATES * per;
            double *err = s->err + g * CANDIDATES, *rows = s->rows + g * CANDIDATES;
            for (int64_t i = 0; i < x->inner; i++)
                for (int k = 0; k < CANDIDATES; k++) {
                    const float *q = grids + (size_t)k * per;
                    double d = (double)p[i] - (double)q[code_of(q, s->top, p[i])];
                    err[k] += d * d;
                }
            for (int64_t r = 0; row && r < x->inner; r += row) {
                float m = p[r];
                for (int64_t i = r + 1; i < r + row; i++) m = p[i] > m ? p[i] : m;
                add_row(s, grids, rows, m);
            }
            if (row) continue;
            for (int64_t i = 0; i < x->inner; i++)
                if (p[i] > group_max || (i == 0 && c % cpg == 0)) group_max = p[i];
            if (c % cpg == cpg - 1) add_row(s, grids, rows, group_max);
        }
    }
}

/* Pass 0 is the base's statistics; pass 1 the errors of the candidates they give. */
static vitq_status mpq_observe(vitq_i_comp *b, int32_t pass, const vitq_tensor_view *x) {
    mpq_state *s = (mpq_state *)b;
    if (pass == 0) return VITQ_OK;
    if (!b->pass1) {
        vitq_status st = start_pass1(s);
        if (st) return st;
    }
    observe_errors(s, x);
    return VITQ_OK;
}

/* The candidate of least error + lambda * row error (ties: the first); the top is the maximum. */
static void mpq_choose(vitq_i_comp *b) {
    mpq_state *s = (mpq_state *)b;
    for (int64_t g = 0; g < b->groups; g++) {
        const double *err = s->err + g * CANDIDATES, *rows = s->rows + g * CANDIDATES;
        int best = 0;
        for (int k = 1; k < CANDIDATES; k++)
            if (err[k] + s->lambda * rows[k] < err[best] + s->lambda * rows[best]) best = k;
        s->lower[g] = (float)candidate_lower(best, b->max[g], s->top);
        s->upper[g] = b->max[g];
        if (s->lower[g] > s->upper[g]) s->lower[g] = s->upper[g]; /* float rounding of u / top^p, p >= 1 */
    }
}

/* The grids need both ends: set_param gives one at a time. */
static void mpq_derive(vitq_i_comp *b) {
    mpq_state *s = (mpq_state *)b;
    if (!vitq_i_comp_complete(b)) return;
    for (int64_t g = 0; g < b->groups; g++)
        make_grid(s->lower[g], s->upper[g], s->top, s->grid + (size_t)g * grid_floats(s->top));
}

static void mpq_drop(vitq_i_comp *b) {
    mpq_state *s = (mpq_state *)b;
    s->cgrid = vitq_i_comp_free(b, s->cgrid);
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
    .init = mpq_init, .observe = mpq_observe, .choose = mpq_choose, .derive = mpq_derive, .drop = mpq_drop,
};

/* Revision 1: the power grid. Revision 0 (vitq 0.4 and before) read the same "lower" and "upper" as a uniform
 * grid from lower to upper; its files are refused rather than read under this meaning. */
VITQ_I_COMPONENT_REVISION(vitq_i_scheme_mpq, spec, "mpq",
                 "APQ-ViT softmax quantizer (MPQ, power-law reading): 0, then u (c / top)^p from the lowest level "
                 "\"lower\" to the maximum \"upper\"", 2, 2, (int32_t)(sizeof options / sizeof options[0]), options,
                 mpq_code, mpq_value, 1);
