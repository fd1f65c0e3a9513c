/* "twin-softmax": PTQ4ViT's twin uniform quantizer of attention probabilities in [0, 1] (docs/methods.md
 * 6.2). k bits = a range flag (the high bit of the code) + k - 1 bits of level; n = 2^(k-1) levels per
 * range; the split s = 2^-i, i in 0..19, one per group (parameter "split"):
 *   low range,  x < s:  code c     = clamp(round(x / d1), 0, n - 1),          value c * d1, d1 = s / (n - 1)
 *   high range, x >= s: code n + j, j = clamp(round(x * (n - 1)), 0, n - 1),  value j / (n - 1)
 * Codes are unsigned, in [0, 2^k - 1]; negative values go to code 0, values above 1 to the top code.
 * Both grids start at 0, so the high range never produces its codes j < s (n - 1): that is the price of
 * the paper's hardware argument, a step ratio d2 / d1 = 2^i that is a shift between two grids sharing
 * their zero (a high grid anchored at s would not align with the low one).
 *
 * Option form = 1 gives the values of the reference code instead (hahnyuan/PTQ4ViT, methods.md 6.2), which
 * adds both parts, Q2(clamp(x, s, 1)) + Q1(clamp(x, 0, s)): the codes are the same, but a low code carries
 * the constant Q2(s) and a high code the constant Q1(s) (= s). Use it to reproduce the published numbers.
 *
 * Calibration, one pass: the 20 candidate splits are known in advance, so observe sums the squared error
 * of each exactly (in double) over every value, 20 numbers per group; finalize keeps the least (ties: the
 * larger split). */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"

#define SPLITS 20 /* candidate splits 2^0 .. 2^-19 */

static const vitq_scheme_option options[] = {
    {"form", "0: piecewise twin uniform (the paper); 1: the summed form of the reference code", 0.0, 1.0, 0.0, 1},
};

/* One split's grid, all derived from s (so set_param and finalize build the same one). */
typedef struct twin {
    float s, d1;
    float inv;                 /* 1 / d1 = (n - 1) / s, exact: s is a power of two */
    float low_at_s, high_at_s; /* form 1: Q1(s) and Q2(s), the constant parts */
} twin;

typedef struct twin_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t n;        /* levels per range */
    int form;
    twin cand[SPLITS];
    double *err;  /* groups x SPLITS squared errors, until the split is known */
    float *split; /* groups: the parameter */
    twin *grid;   /* groups: derived from split */
} twin_state;

/* ---- the grid --------------------------------------------------------------------------------- */

static inline int32_t low_code(const twin *t, int32_t n, float x) {
    float q = x * t->inv, top = (float)(n - 1); /* x / d1 without a division */
    return (int32_t)vitq_i_round_even(q > 0.0f ? (q < top ? q : top) : 0.0f);
}

static inline int32_t high_code(int32_t n, float x) {
    float q = x * (float)(n - 1), top = (float)(n - 1);
    return (int32_t)vitq_i_round_even(q > 0.0f ? (q < top ? q : top) : 0.0f);
}

static inline int32_t code_of(const twin *t, int32_t n, float x) {
    return x >= t->s ? n + high_code(n, x) : low_code(t, n, x);
}

static inline float low_value(const twin *t, int form, int32_t c) {
    float v = (float)c * t->d1;
    return form ? t->high_at_s + v : v;
}

static inline float high_value(int32_t j, int32_t n) { return (float)j / (float)(n - 1); }

static inline float value_of(const twin *t, int32_t n, int form, int32_t code) {
    if (code < n) return low_value(t, form, code);
    float v = high_value(code - n, n);
    return form ? v + t->low_at_s : v;
}

static twin make_twin(float s, int32_t n) {
    twin t = {s, s / (float)(n - 1), (float)(n - 1) / s, 0.0f, 0.0f};
    t.low_at_s = (float)low_code(&t, n, s) * t.d1;
    t.high_at_s = (float)high_code(n, s) / (float)(n - 1);
    return t;
}

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t twin_code(const vitq_i_comp *b, int64_t g, float x) {
    const twin_state *s = (const twin_state *)b;
    return code_of(&s->grid[g], s->n, x);
}

static inline float twin_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const twin_state *s = (const twin_state *)b;
    return value_of(&s->grid[g], s->n, s->form, code);
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void twin_init(vitq_i_comp *b, const vitq_point_config *c) {
    twin_state *s = (twin_state *)b;
    s->n = 1 << (c->bits - 1);
    s->form = (int)vitq_i_comp_option(b, c, 0);
    b->code_min = 0, b->code_max = 2 * s->n - 1;
    for (int k = 0; k < SPLITS; k++) s->cand[k] = make_twin(ldexpf(1.0f, -k), s->n);
    s->err = vitq_i_comp_alloc(b, SPLITS * sizeof(double));
    s->split = vitq_i_comp_alloc(b, sizeof(float));
    s->grid = vitq_i_comp_alloc(b, sizeof(twin));
}

static vitq_status twin_observe(vitq_i_comp *b, int32_t pass, const vitq_tensor_view *x) {
    twin_state *s = (twin_state *)b;
    int64_t n = b->cpg * x->inner;
    (void)pass;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) {
            const float *p = vitq_i_comp_span(b, x, o, g);
            double *e = s->err + g * SPLITS;
            for (int64_t i = 0; i < n; i++) {
                /* value_of(code_of(v)) for every split, the high part (the same for every split <= v) once */
                float v = p[i], high = high_value(high_code(s->n, v), s->n);
                for (int k = 0; k < SPLITS; k++) {
                    const twin *t = &s->cand[k];
                    float y = v >= t->s ? (s->form ? high + t->low_at_s : high)
                                        : low_value(t, s->form, low_code(t, s->n, v));
                    double d = (double)v - (double)y;
                    e[k] += d * d;
                }
            }
        }
    return VITQ_OK;
}

/* The split of least error (ties: the larger). */
static void twin_choose(vitq_i_comp *b) {
    twin_state *s = (twin_state *)b;
    for (int64_t g = 0; g < b->groups; g++) {
        const double *e = s->err + g * SPLITS;
        int best = 0;
        for (int k = 1; k < SPLITS; k++)
            if (e[k] < e[best]) best = k;
        s->split[g] = s->cand[best].s;
    }
}

static void twin_derive(vitq_i_comp *b) {
    twin_state *s = (twin_state *)b;
    for (int64_t g = 0; g < b->groups; g++) s->grid[g] = make_twin(s->split[g], s->n);
}

static void twin_drop(vitq_i_comp *b) {
    twin_state *s = (twin_state *)b;
    s->err = vitq_i_comp_free(b, s->err);
}

/* A calibration method searches the split by setting it: only the candidates of finalize are splits. */
static vitq_status check_split(const vitq_i_comp *b, int32_t param, int64_t g, float v) {
    int e = 0;
    float m = isfinite(v) ? frexpf(v, &e) : 0.0f;
    (void)param;
    if (m == 0.5f && e <= 1 && e >= 2 - SPLITS) return VITQ_OK;
    return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "split[%lld] = %g is not a power of two 2^-i, i in 0..%d",
                            (long long)g, (double)v, SPLITS - 1);
}

static const vitq_i_comp_param params[] = {{"split", offsetof(twin_state, split), check_split}};

static const vitq_i_comp_spec spec = {
    .scheme = &vitq_i_scheme_twin_softmax, .size = sizeof(twin_state), .inputs = "attention probabilities",
    .symmetric = 0, .codes = "unsigned codes for values in [0, 1]", .range_flag = 1, .holds = "statistics",
    .num_params = 1, .params = params,
    .init = twin_init, .observe = twin_observe, .choose = twin_choose, .derive = twin_derive, .drop = twin_drop,
};

VITQ_I_COMPONENT(vitq_i_scheme_twin_softmax, spec, "twin-softmax",
                 "PTQ4ViT twin uniform for attention probabilities: two ranges split at a searched power of two", 1, 3,
                 (int32_t)(sizeof options / sizeof options[0]), options, twin_code, twin_value);
