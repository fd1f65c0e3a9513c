/* "twin-gelu": PTQ4ViT's twin uniform quantizer of GELU outputs (docs/methods.md 6.2). Signed k-bit codes in
 * [-n, n - 1], n = 2^(k-1), the sign being the range flag:
 *   x < 0:  code clamp(round(x / dneg), -n, 0), value code * dneg, dneg = 0.16997124 / n, fixed so that the
 *           n negative codes reach GELU's minimum, -0.17;
 *   x >= 0: code clamp(round(x / dpos), 0, n - 1), value code * dpos, dpos per group (parameter "scale").
 * (The reference code adds a positive and a negative part; one of them is always 0, so this is the same.)
 * Option pow2 = 1 keeps dpos / dneg a power of two, the paper's hardware format (its code does not).
 * The codes are signed, so the point must be symmetric (the contract of vitq_scheme: signed codes are
 * the symmetric ones, and a saved model stores them so).
 *
 * Calibration, two passes: pass 0 finds each group's maximum; pass 1 counts the positive values in a
 * 2048-bin histogram over (0, max]. finalize tries dpos = (alpha + i (beta - alpha) / 100) max / (n - 1),
 * i = 0..100 with PTQ4ViT's alpha = 0.01, beta = 1.2 (methods.md 6.3; with pow2 each candidate is rounded,
 * in log scale, to the nearest power-of-two multiple of dneg) and keeps the one of least squared error on
 * the positive values (the negative range is fixed: it cannot change the choice). A candidate's error is
 * integrated over each bin as if its values were spread evenly: close for steps much finer or much coarser
 * than a bin, an approximation in between. No positive value at all: dpos = dneg. */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"

#define BINS 2048
#define GRID 100 /* candidates i = 0..GRID */
#define ALPHA 0.01
#define BETA 1.2
#define GELU_MIN 0.16997124f /* -min GELU(x), as PTQ4ViT */

static const vitq_scheme_option options[] = {
    {"pow2", "1: keep scale / negative scale a power of two (the paper's hardware format)", 0.0, 1.0, 0.0, 1},
};

typedef struct gelu_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t n;
    int pow2;
    float dneg;
    uint64_t *hist; /* groups x BINS: pass-1 counts of x > 0 over (0, b->max], the pass-0 maximum */
    float *scale;   /* groups: dpos */
} gelu_state;

/* ---- the grid --------------------------------------------------------------------------------- */

static inline int32_t code_of(float x, float dpos, float dneg, int32_t n) {
    if (x >= 0.0f) {
        float t = x / dpos;
        return (int32_t)vitq_i_round_even(t < (float)(n - 1) ? t : (float)(n - 1));
    }
    float t = -x / dneg; /* rounding is symmetric, so round(x) = -round(-x) */
    return -(int32_t)vitq_i_round_even(t < (float)n ? t : (float)n);
}

static inline float value_of(int32_t code, float dpos, float dneg) {
    return code >= 0 ? (float)code * dpos : (float)code * dneg;
}

/* (dneg 2^m) / dneg for integer m, checked exactly in double. */
static int pow2_ratio(float dpos, float dneg) {
    int e;
    return frexp((double)dpos / (double)dneg, &e) == 0.5;
}

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t gelu_code(const vitq_i_comp *b, int64_t g, float x) {
    const gelu_state *s = (const gelu_state *)b;
    return code_of(x, s->scale[g], s->dneg, s->n);
}

static inline float gelu_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const gelu_state *s = (const gelu_state *)b;
    return value_of(code, s->scale[g], s->dneg);
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void gelu_init(vitq_i_comp *b, const vitq_point_config *c) {
    gelu_state *s = (gelu_state *)b;
    s->n = 1 << (c->bits - 1);
    s->pow2 = (int)vitq_i_comp_option(b, c, 0);
    s->dneg = GELU_MIN / (float)s->n;
    b->code_min = -s->n, b->code_max = s->n - 1;
    vitq_i_comp_track(b, VITQ_I_COMP_MAX);
    s->scale = vitq_i_comp_alloc(b, sizeof(float));
}

static void observe_hist(gelu_state *s, const vitq_tensor_view *x) {
    const vitq_i_comp *b = &s->base;
    int64_t n = b->cpg * x->inner;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) {
            const float *p = vitq_i_comp_span(b, x, o, g);
            if (!(b->max[g] > 0.0f)) continue; /* no positive value in pass 0: nothing to search */
            uint64_t *h = s->hist + g * BINS;
            double per_unit = BINS / (double)b->max[g];
            for (int64_t i = 0; i < n; i++) {
                if (!(p[i] > 0.0f)) continue; /* 0 is exact, negatives use the fixed range */
                double bin = (double)p[i] * per_unit;
                h[bin < BINS - 1 ? (size_t)bin : BINS - 1]++;
            }
        }
}

/* Pass 0 is the base's maximum; pass 1 the histograms. */
static vitq_status gelu_observe(vitq_i_comp *b, int32_t pass, const vitq_tensor_view *x) {
    gelu_state *s = (gelu_state *)b;
    if (pass == 0) return VITQ_OK;
    if (!b->pass1) { /* the histograms span (0, max]: pass 0 is complete */
        s->hist = vitq_i_comp_alloc(b, BINS * sizeof(uint64_t));
        if (!s->hist)
            return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate %lld histograms", (long long)b->groups);
    }
    observe_hist(s, x);
    return VITQ_OK;
}

static double cube(double v) { return v * v * v; }

/* Mean squared error over [a, b) (values spread evenly) of the grid k d, k = 0..top: the integral of
 * (x - k d)^2 over each rounding cell [(k - 1/2) d, (k + 1/2) d) the interval meets, the top cell open. */
static double spread_error(double a, double b, double d, int32_t top) {
    double e = 0.0;
    double k0 = floor(a / d + 0.5);
    for (int32_t k = k0 < top ? (int32_t)k0 : top;; k++) {
        double lo = fmax(a, (k - 0.5) * d), hi = k >= top ? b : fmin(b, (k + 0.5) * d), v = k * d;
        if (hi > lo) e += (cube(hi - v) - cube(lo - v)) / 3.0;
        if (hi >= b) break;
    }
    return e / (b - a);
}

/* The positive step of least squared error on group g's histogram (PTQ4ViT's grid). */
static float search_scale(const gelu_state *s, int64_t g) {
    const uint64_t *h = s->hist + g * BINS;
    float max = s->base.max[g];
    double width = (double)max / BINS, init = (double)max / (s->n - 1), best_err = INFINITY;
    float best = s->dneg;
    for (int i = 0; i <= GRID; i++) {
        double cand = (ALPHA + i * (BETA - ALPHA) / GRID) * init;
        if (s->pow2) cand = ldexp((double)s->dneg, (int)lround(log2(cand / (double)s->dneg)));
        float d = (float)cand;
        if (!(d > 0.0f) || !isfinite(d)) continue;
        double err = 0.0;
        for (size_t b = 0; b < BINS; b++)
            if (h[b]) err += (double)h[b] * spread_error((double)b * width, (double)(b + 1) * width, d, s->n - 1);
        if (err < best_err) best_err = err, best = d;
    }
    return best;
}

static void gelu_choose(vitq_i_comp *b) {
    gelu_state *s = (gelu_state *)b;
    for (int64_t g = 0; g < b->groups; g++) s->scale[g] = b->max[g] > 0.0f ? search_scale(s, g) : s->dneg;
}

static void gelu_drop(vitq_i_comp *b) {
    gelu_state *s = (gelu_state *)b;
    s->hist = vitq_i_comp_free(b, s->hist);
}

/* A calibration method searches the step by setting it; with pow2 it must keep the hardware format. */
static vitq_status check_step(const vitq_i_comp *b, int32_t param, int64_t g, float v) {
    const gelu_state *s = (const gelu_state *)b;
    (void)param;
    if (!isfinite(v) || !(v > 0.0f))
        return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "scale[%lld] = %g is not a finite positive step",
                                (long long)g, (double)v);
    if (s->pow2 && !pow2_ratio(v, s->dneg))
        return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "scale[%lld] = %g is not a power of two times the negative "
                                "step %g (option pow2)", (long long)g, (double)v, (double)s->dneg);
    return VITQ_OK;
}

static const vitq_i_comp_param params[] = {{"scale", offsetof(gelu_state, scale), check_step}};

static const vitq_i_comp_spec spec = {
    .scheme = &vitq_i_scheme_twin_gelu, .size = sizeof(gelu_state), .inputs = "GELU outputs", .symmetric = 1,
    .codes = "signed codes (the sign is the range flag)", .range_flag = 1, .holds = "quantizer",
    .num_params = 1, .params = params,
    .init = gelu_init, .observe = gelu_observe, .choose = gelu_choose, .derive = NULL, .drop = gelu_drop,
};

VITQ_I_COMPONENT(vitq_i_scheme_twin_gelu, spec, "twin-gelu",
                 "PTQ4ViT twin uniform for GELU outputs: a fixed negative step, a searched positive one", 2, 3,
                 (int32_t)(sizeof options / sizeof options[0]), options, gelu_code, gelu_value);
