/* "log-sqrt2": RepQ-ViT's log-sqrt2 quantizer of attention probabilities (docs/methods.md 0.2, 7). Unsigned
 * k-bit codes; with L = 2^k and s the group's "scale":
 *   code q = round(-2 log2(x / s)) clamped below at 0 (x > s gives s), for q <= L - 2, value
 *   s 2^(-ceil(q/2)) (1 + (sqrt 2 - 1)(q mod 2)) = s 2^(-q/2): an even code is a shift, an odd one a shift
 *   and a factor sqrt 2 (RepQ-ViT folds that factor into the next matmul);
 *   code L - 1 = exactly 0: x <= 0, and every x whose round(-2 log2(x / s)) >= L - 1.
 * RepQ-ViT keeps L levels and marks the zeros (q >= 2^k) outside the code, 2^k + 1 states that k bits cannot
 * hold: here the deepest level, s 2^(-(L-1)/2), gives way to the exact 0, so that codes fit in k bits and
 * dequantize(quantize(x)) is fake_quant(x) (x in (s 2^(-L/2 + 1/4), s 2^(-L/2 + 3/4)] becomes 0).
 *
 * The rounding is done on the exponent, exactly: x / s = m 2^e with m in [1/2, 1) has -2 log2 = -2e - 2 log2 m,
 * -2 log2 m in (0, 2], which rounds to 1 for m < 2^-1/4 and to 2 for m < 2^-3/4 (never a tie: both are
 * irrational); m and e are read off the bits of the double x / s (no libm call per value).
 *
 * Calibration, one pass, as RepQ-ViT: s = quantile(x, p) for p in {0.999, 0.9999, 0.99999} and p = 1 (the
 * maximum), keeping the one of least squared error (ties: the first). Both the quantiles and the errors come
 * from a histogram of each group's values, 16 bins per octave over [2^-64, 2^32) (bin 0 holds zeros, negatives
 * and smaller values, the last bin larger ones): a quantile is interpolated linearly inside its bin (up to
 * ~4% off), and a bin's values stand at their mean for the error (an approximation for the bins a rounding
 * boundary cuts; elsewhere the spread inside a bin adds the same to every candidate). No positive value:
 * s = 1. */
#include <math.h>

#include "quant/component.h"
#include "quant/schemes.h"

#define SQRT2F 1.41421356f
#define ROOT4_2 1.18920711500272106672 /* 2^1/4 */
#define ROOT4_8 1.68179283050742908606 /* 2^3/4 */
#define CANDIDATES 4

static const double quantiles[CANDIDATES] = {0.999, 0.9999, 0.99999, 1.0};

typedef struct lsq_state {
    vitq_i_comp base; /* first: the base's functions take the state for a vitq_i_comp */
    int32_t zero;     /* the code of 0: L - 1 */
    float *scale;     /* groups: s (the statistics are the base's: maxima, histogram with sums) */
} lsq_state;

/* ---- the grid --------------------------------------------------------------------------------- */

static inline int32_t code_of(float x, float s, int32_t zero) {
    if (!(x > 0.0f)) return zero;
    /* frexp without the call: x / s = m 2^e, m = (1 + frac / 2^52) / 2; m < 2^-1/4 iff the mantissa is
     * below that of 2^3/4, m < 2^-3/4 iff below that of 2^1/4 */
    uint64_t b = vitq_i_bits_of((double)x / (double)s), f = VITQ_I_FRAC(b); /* normal: x / s always is */
    int64_t e = (int64_t)(b >> 52) - 1022;
    int64_t q = -2 * e + (f < VITQ_I_FRAC(vitq_i_bits_of(ROOT4_8))) + (f < VITQ_I_FRAC(vitq_i_bits_of(ROOT4_2)));
    return q < 0 ? 0 : q >= zero ? zero : (int32_t)q;
}

/* s 2^(-ceil(q/2)) (times sqrt 2 for odd q): 2^-k built from its bits, s 2^-k exact in double and rounded
 * once (as ldexpf), then the factor sqrt 2 (1 + (sqrt 2 - 1) in float) for an odd code. */
static inline float value_of(int32_t code, float s, int32_t zero) {
    if (code == zero) return 0.0f;
    uint64_t b = (uint64_t)(1023 - (code + 1) / 2) << 52;
    double p;
    memcpy(&p, &b, sizeof p);
    static const float factor[2] = {1.0f, SQRT2F}; /* a multiply, not a branch: the parity is random */
    return (float)((double)s * p) * factor[code & 1];
}

static float fake_of(float x, float s, int32_t zero) { return value_of(code_of(x, s, zero), s, zero); }

/* The grid of group g, element by element (the kernels of the base inline these). */
static inline int32_t lsq_code(const vitq_i_comp *b, int64_t g, float x) {
    const lsq_state *s = (const lsq_state *)b;
    return code_of(x, s->scale[g], s->zero);
}

static inline float lsq_value(const vitq_i_comp *b, int64_t g, int32_t code) {
    const lsq_state *s = (const lsq_state *)b;
    return value_of(code, s->scale[g], s->zero);
}

/* ---- calibration ------------------------------------------------------------------------------ */

static void lsq_init(vitq_i_comp *b, const vitq_point_config *c) {
    lsq_state *s = (lsq_state *)b;
    s->zero = (1 << c->bits) - 1;
    b->code_min = 0, b->code_max = s->zero;
    vitq_i_comp_track(b, VITQ_I_COMP_MAX | VITQ_I_COMP_COUNTS | VITQ_I_COMP_SUMS);
    s->scale = vitq_i_comp_alloc(b, sizeof(float));
}

/* The quantile candidate of least error on the histogram (ties: the first); none positive: 1. */
static void lsq_choose(vitq_i_comp *b) {
    lsq_state *s = (lsq_state *)b;
    for (int64_t g = 0; g < b->groups; g++) {
        double best = INFINITY;
        s->scale[g] = 1.0f;
        for (int k = 0; k < CANDIDATES; k++) {
            float cand = quantiles[k] < 1.0 ? (float)vitq_i_comp_quantile(b, g, quantiles[k]) : b->max[g];
            double e = cand > 0.0f ? vitq_i_comp_hist_error(b, g, fake_of, cand, s->zero) : INFINITY;
            if (e < best) best = e, s->scale[g] = cand;
        }
    }
}

/* A calibration method searches the scale by setting it. */
static const vitq_i_comp_param params[] = {{"scale", offsetof(lsq_state, scale), vitq_i_comp_check_scale}};

static const vitq_i_comp_spec spec = {
    .scheme = &vitq_i_scheme_log_sqrt2, .size = sizeof(lsq_state), .inputs = "attention probabilities",
    .symmetric = 0, .codes = "unsigned codes for values >= 0", .range_flag = 0, .holds = "quantizer",
    .num_params = 1, .params = params,
    .init = lsq_init, .observe = NULL, .choose = lsq_choose, .derive = NULL, .drop = NULL,
};

VITQ_I_COMPONENT(vitq_i_scheme_log_sqrt2, spec, "log-sqrt2",
                 "RepQ-ViT log-sqrt2 for attention probabilities: levels s 2^(-q/2) and an exact zero", 1, 2, 0, NULL,
                 lsq_code, lsq_value);
