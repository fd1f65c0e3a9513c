/* "log2": FQ-ViT's log2 quantizer of attention probabilities (docs/methods.md 0.2, 8.1). Unsigned k-bit
 * codes; with L = 2^k and s the group's "scale":
 *   code q = round(-log2(x / s)) clamped below at 0 (x > s gives s), value s 2^-q, for q <= L - 2;
 *   code L - 1 = exactly 0: x <= 0, and every x whose round(-log2(x / s)) >= L - 1.
 * FQ-ViT keeps L levels s 2^-q, q < L, and marks the zeros (round >= 2^k) outside the code: 2^k + 1 states,
 * which k bits cannot hold. Here the deepest level, s 2^-(L-1), gives way to the exact 0, so that codes
 * fit in k bits and dequantize(quantize(x)) is fake_quant(x): x in (s 2^-(L-1/2), s 2^-(L-3/2)] becomes 0
 * instead of s 2^-(L-1), a difference of at most s 2^-(L-3/2) on the smallest values.
 *
 * The rounding is done on the exponent, exactly: x / s = m 2^e with m in [1/2, 1) has -log2 = -e - log2 m,
 * -log2 m in (0, 1], which rounds up to 1 iff m < 1/sqrt 2 (never a tie: 1/sqrt 2 is irrational); both m
 * and e are read off the bits of the double x / s, and 2^-q is built from its bits (no libm call per value).
 *
 * Calibration, one pass: s = the group's observed maximum (FQ-ViT quantizes the probabilities themselves,
 * s = 1: set the parameter to get that). With option search = 1, s is instead the candidate of least
 * squared error among max 2^(-j/16), j = 0..16 (one octave: halving s only shifts the levels by one),
 * the error taken over a histogram of the values (16 bins per octave over [2^-64, 2^32), each bin's values
 * standing at their mean: an approximation for the bins a rounding boundary cuts). No positive value: s = 1. */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"

#define SQRT2 1.41421356237309504880
#define CANDIDATES 17

static const vitq_scheme_option options[] = {
    {"search", "0: scale = observed maximum; 1: scale of least squared error within an octave below it", 0.0, 1.0,
     0.0, 1},
};

typedef struct log2_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t zero;     /* the code of 0: L - 1 */
    int search;       /* the base keeps the maxima, and for the search the histogram with its sums */
    float *scale;     /* groups: s */
} log2_state;

/* ---- the grid --------------------------------------------------------------------------------- */

static inline int32_t code_of(float x, float s, int32_t zero) {
    if (!(x > 0.0f)) return zero;
    /* frexp without the call: x / s = m 2^e, m = (1 + frac / 2^52) / 2, and m < 1/sqrt 2 iff the mantissa
     * is below that of sqrt 2 */
    uint64_t b = vitq_i_bits_of((double)x / (double)s); /* a normal double: x / s always is */
    int64_t e = (int64_t)(b >> 52) - 1022, q = -e + (VITQ_I_FRAC(b) < VITQ_I_FRAC(vitq_i_bits_of(SQRT2)));
    return q < 0 ? 0 : q >= zero ? zero : (int32_t)q;
}

/* s 2^-code, as ldexpf(s, -code): 2^-code built from its bits, the product exact in double, rounded once. */
static inline float value_of(int32_t code, float s, int32_t zero) {
    if (code == zero) return 0.0f;
    uint64_t b = (uint64_t)(1023 - code) << 52;
    double p;
    memcpy(&p, &b, sizeof p);
    return (float)((double)s * p);
}

static float fake_of(float x, float s, int32_t zero) { return value_of(code_of(x, s, zero), s, zero); }

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t log2_code(const vitq_i_comp *b, int64_t g, float x) {
    const log2_state *s = (const log2_state *)b;
    return code_of(x, s->scale[g], s->zero);
}

static inline float log2_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const log2_state *s = (const log2_state *)b;
    return value_of(code, s->scale[g], s->zero);
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void log2_init(vitq_i_comp *b, const vitq_point_config *c) {
    log2_state *s = (log2_state *)b;
    s->zero = (1 << c->bits) - 1;
    s->search = (int)vitq_i_comp_option(b, c, 0);
    b->code_min = 0, b->code_max = s->zero;
    /* the histogram serves the search only */
    vitq_i_comp_track(b, VITQ_I_COMP_MAX | (s->search ? VITQ_I_COMP_COUNTS | VITQ_I_COMP_SUMS : 0u));
    s->scale = vitq_i_comp_alloc(b, sizeof(float));
}

/* The maximum, or with search the candidate below it of least error on the histogram. */
static void log2_choose(vitq_i_comp *b) {
    log2_state *s = (log2_state *)b;
    for (int64_t g = 0; g < b->groups; g++) {
        float max = b->max[g];
        s->scale[g] = max > 0.0f ? max : 1.0f;
        if (!s->search || !(max > 0.0f)) continue;
        double best = vitq_i_comp_hist_error(b, g, fake_of, max, s->zero); /* ties keep the larger: nothing clipped */
        for (int j = 1; j < CANDIDATES; j++) {
            float cand = (float)((double)max * exp2(-j / 16.0));
            double e = cand > 0.0f ? vitq_i_comp_hist_error(b, g, fake_of, cand, s->zero) : INFINITY;
            if (e < best) best = e, s->scale[g] = cand;
        }
    }
}

/* A calibration method searches the scale by setting it (FQ-ViT's own choice is s = 1). */
static const vitq_i_comp_param params[] = {{"scale", offsetof(log2_state, scale), vitq_i_comp_check_scale}};

static const vitq_i_comp_spec spec = {
    .scheme = &vitq_i_scheme_log2, .size = sizeof(log2_state), .inputs = "attention probabilities", .symmetric = 0,
    .codes = "unsigned codes for values >= 0", .range_flag = 0, .holds = "quantizer", .num_params = 1,
    .params = params,
    .init = log2_init, .observe = NULL, .choose = log2_choose, .derive = NULL, .drop = NULL,
};

VITQ_I_COMPONENT(vitq_i_scheme_log2, spec, "log2",
                 "FQ-ViT log2 for attention probabilities: levels s 2^-q and an exact zero", 1, 2,
                 (int32_t)(sizeof options / sizeof options[0]), options, log2_code, log2_value);
