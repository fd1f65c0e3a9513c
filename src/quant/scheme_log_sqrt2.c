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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quant/schemes.h"
#include "quant/view.h"

#define SQRT2F 1.41421356f
#define ROOT4_2 1.18920711500272106672 /* 2^1/4 */
#define ROOT4_8 1.68179283050742908606 /* 2^3/4 */
#define CANDIDATES 4
/* Histogram: HSUB bins per octave from 2^-64 (biased exponent HLOW) up to 2^32; bin 0 holds everything
 * below (zeros and negatives too), the last bin everything above. */
#define HSUB 16
#define HLOW 63
#define HBINS (96 * HSUB + 2)

static const double quantiles[CANDIDATES] = {0.999, 0.9999, 0.99999, 1.0};

typedef struct lsq_state {
    const vitq_scheme_host *host;
    char name[96];
    int64_t channels, groups, cpg;
    int32_t zero; /* the code of 0: L - 1 */
    int observed, fixed;
    float *max;     /* groups: observed maximum */
    uint64_t *cnt;  /* groups x HBINS counts */
    double *sum;    /* groups x HBINS sums of the values */
    float *scale;   /* groups: s */
} lsq_state;

/* ---- errors and checks ------------------------------------------------------------------------ */

VITQ_I_PRINTF(4, 5)
static vitq_status fail(const vitq_scheme_host *h, const char *point, vitq_status status, const char *fmt, ...) {
    char msg[400], full[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s: %s", point, msg);
    return h->fail(h, status, full);
}
#define FAIL(s, status, ...) fail((s)->host, (s)->name, status, __VA_ARGS__)

static vitq_status check_config(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {
    const vitq_scheme *sc = &vitq_i_scheme_log_sqrt2;
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: state is NULL", sc->name);
    *out = NULL;
    if (!h || !h->alloc || !h->free || !h->fail || h->struct_size != sizeof *h)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: host is NULL, incomplete or of another "
                           "size", sc->name);
    if (!c || c->struct_size != sizeof *c)
        return fail(h, sc->name, c ? VITQ_ERR_ABI_MISMATCH : VITQ_ERR_INVALID_ARGUMENT,
                    "create: config is NULL or its struct_size is not %zu", sizeof *c);
    const char *p = c->name ? c->name : "quantizer";
    if (c->kind != VITQ_POINT_ACTIVATION)
        return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "scheme %s quantizes activations (attention probabilities), "
                    "not kind %d", sc->name, (int)c->kind);
    if (c->bits < sc->min_bits || c->bits > sc->max_bits)
        return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "scheme %s implements %d..%d bits, not %d", sc->name,
                    (int)sc->min_bits, (int)sc->max_bits, (int)c->bits);
    if (c->symmetric != 0)
        return fail(h, p, c->symmetric == 1 ? VITQ_ERR_OUT_OF_RANGE : VITQ_ERR_INVALID_ARGUMENT,
                    "scheme %s has unsigned codes for values >= 0: symmetric must be 0, not %d", sc->name,
                    (int)c->symmetric);
    if (c->channels < 1 || c->groups < 1 || c->channels_per_group < 1 || c->groups * c->channels_per_group != c->channels)
        return fail(h, p, VITQ_ERR_SHAPE, "%lld channels do not form %lld groups of %lld", (long long)c->channels,
                    (long long)c->groups, (long long)c->channels_per_group);
    for (int32_t i = 0; i < sc->num_options; i++) {
        const vitq_scheme_option *o = &sc->options[i];
        double v = c->options ? c->options[i] : o->default_value;
        if (!(v >= o->min_value && v <= o->max_value) || (o->is_integer && v != floor(v)))
            return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "option %s = %g is not %s in [%g, %g]", o->name, v,
                        o->is_integer ? "a whole number" : "a number", o->min_value, o->max_value);
    }
    return VITQ_OK;
}

static vitq_status check_finite(const lsq_state *s, const vitq_tensor_view *x, const char *what) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++)
                if (!isfinite(p[i]))
                    return FAIL(s, VITQ_ERR_NON_FINITE, "%s %g at (outer %lld, channel %lld, inner %lld)", what,
                                (double)p[i], (long long)o, (long long)c, (long long)i);
        }
    return VITQ_OK;
}

/* ---- the grid --------------------------------------------------------------------------------- */

/* The fields of a double: r = (1 + frac / 2^52) 2^(exp - 1023) for a normal r, which x / s always is. */
static inline uint64_t bits_of(double r) {
    uint64_t b;
    memcpy(&b, &r, sizeof b);
    return b;
}
#define FRAC(b) ((b) & 0xFFFFFFFFFFFFFull)

static inline int32_t code_of(float x, float s, int32_t zero) {
    if (!(x > 0.0f)) return zero;
    /* frexp without the call: x / s = m 2^e, m = (1 + frac / 2^52) / 2; m < 2^-1/4 iff the mantissa is
     * below that of 2^3/4, m < 2^-3/4 iff below that of 2^1/4 */
    uint64_t b = bits_of((double)x / (double)s), f = FRAC(b);
    int64_t e = (int64_t)(b >> 52) - 1022;
    int64_t q = -2 * e + (f < FRAC(bits_of(ROOT4_8))) + (f < FRAC(bits_of(ROOT4_2)));
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

/* Histogram bin of x: its exponent and top 4 mantissa bits, read off the float's bits. */
static size_t hist_bin(float x) {
    if (!(x >= 0x1p-64f)) return 0;
    if (x >= 0x1p32f) return HBINS - 1;
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return 1 + (b >> (23 - 4)) - (size_t)HLOW * HSUB;
}

/* ---- vtable ----------------------------------------------------------------------------------- */

static void lsq_destroy(void *state) {
    lsq_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    if (s->max) h->free(h, s->max);
    if (s->cnt) h->free(h, s->cnt);
    if (s->sum) h->free(h, s->sum);
    if (s->scale) h->free(h, s->scale);
    h->free(h, s);
}

static void *alloc_array(const vitq_scheme_host *h, int64_t count, size_t elem) {
    size_t bytes;
    return vitq_i_mul_size((size_t)count, elem, &bytes) ? h->alloc(h, bytes) : NULL;
}

static vitq_status lsq_create(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {
    vitq_status st = check_config(c, h, out);
    if (st) return st;
    lsq_state *s = h->alloc(h, sizeof *s);
    if (!s) return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the quantizer");
    memset(s, 0, sizeof *s);
    s->host = h;
    snprintf(s->name, sizeof s->name, "%s", c->name ? c->name : "quantizer");
    s->channels = c->channels, s->groups = c->groups, s->cpg = c->channels_per_group;
    s->zero = (1 << c->bits) - 1;
    s->max = alloc_array(h, s->groups, sizeof(float));
    s->scale = alloc_array(h, s->groups, sizeof(float));
    s->cnt = alloc_array(h, s->groups, HBINS * sizeof(uint64_t));
    s->sum = alloc_array(h, s->groups, HBINS * sizeof(double));
    if (!s->max || !s->scale || !s->cnt || !s->sum) {
        lsq_destroy(s);
        return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY,
                    "cannot allocate the log-sqrt2 quantizer of %lld groups", (long long)c->groups);
    }
    for (int64_t g = 0; g < s->groups; g++) s->max[g] = 0.0f;
    memset(s->cnt, 0, (size_t)s->groups * HBINS * sizeof(uint64_t));
    memset(s->sum, 0, (size_t)s->groups * HBINS * sizeof(double));
    *out = s;
    return VITQ_OK;
}

static vitq_status lsq_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    lsq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    if (pass != 0) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme log-sqrt2 has 1 pass", (int)pass);
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    vitq_status st = vitq_i_view_check(x, s->channels, s->name);
    if (!st) st = check_finite(s, x, "observed");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / s->cpg;
            float m = s->max[g];
            for (int64_t i = 0; i < x->inner; i++) m = p[i] > m ? p[i] : m;
            s->max[g] = m;
            uint64_t *cnt = s->cnt + g * HBINS;
            double *sum = s->sum + g * HBINS;
            for (int64_t i = 0; i < x->inner; i++) {
                size_t b = hist_bin(p[i]);
                cnt[b]++;
                sum[b] += p[i];
            }
        }
    s->observed = 1;
    return VITQ_OK;
}

/* Squared error of scale s on group g's histogram, each bin's values at their mean (the spread inside a
 * bin adds the same to every candidate whose levels do not cut the bin). */
static double hist_error(const lsq_state *s, int64_t g, float scale) {
    const uint64_t *cnt = s->cnt + g * HBINS;
    const double *sum = s->sum + g * HBINS;
    double e = 0.0;
    for (size_t b = 0; b < HBINS; b++) {
        if (!cnt[b]) continue;
        double mean = sum[b] / (double)cnt[b], d = mean - value_of(code_of((float)mean, scale, s->zero), scale, s->zero);
        e += (double)cnt[b] * d * d;
    }
    return e;
}

/* The value below which a fraction t of group g's values lies (at most the maximum): the bin where the
 * cumulative count reaches t * total, interpolated linearly inside it. */
static double quantile(const lsq_state *s, int64_t g, double t) {
    const uint64_t *cnt = s->cnt + g * HBINS;
    double total = 0.0, cum = 0.0, max = s->max[g];
    for (size_t b = 0; b < HBINS; b++) total += (double)cnt[b];
    double target = t * total;
    for (size_t b = 0; b < HBINS; b++) {
        double c = (double)cnt[b], lo = 0.0, hi = 0.0;
        if (c == 0.0 || cum + c < target) {
            cum += c;
            continue;
        }
        if (b == HBINS - 1) {
            lo = 0x1p32, hi = max;
        } else if (b > 0) { /* bin b: biased exponent (b - 1) / HSUB + HLOW, mantissa step (b - 1) % HSUB */
            int e = (int)((b - 1) / HSUB) + HLOW - 127;
            lo = ldexp(1.0 + (double)((b - 1) % HSUB) / HSUB, e), hi = lo + ldexp(1.0 / HSUB, e);
        }
        double v = lo + (target - cum) / c * (hi - lo);
        return v < max ? v : max;
    }
    return max;
}

static void fix(lsq_state *s) {
    const vitq_scheme_host *h = s->host;
    if (s->cnt) h->free(h, s->cnt);
    if (s->sum) h->free(h, s->sum);
    s->cnt = NULL, s->sum = NULL;
    s->fixed = 1;
}

static vitq_status lsq_finalize(void *state) {
    lsq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize after the parameters were set (or twice)");
    if (!s->observed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize before any data was observed");
    for (int64_t g = 0; g < s->groups; g++) {
        double best = INFINITY;
        s->scale[g] = 1.0f;
        for (int k = 0; k < CANDIDATES; k++) {
            float cand = quantiles[k] < 1.0 ? (float)quantile(s, g, quantiles[k]) : s->max[g];
            double e = cand > 0.0f ? hist_error(s, g, cand) : INFINITY;
            if (e < best) best = e, s->scale[g] = cand;
        }
    }
    fix(s);
    return VITQ_OK;
}

static vitq_status ready(const lsq_state *s, const vitq_tensor_view *x, const char *what) {
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of scale)", what);
    return vitq_i_view_check(x, s->channels, s->name);
}

static vitq_status lsq_fake_quant(void *state, const vitq_tensor_view *x) {
    lsq_state *s = state;
    vitq_status st = ready(s, x, "fake_quant");
    if (!st) st = check_finite(s, x, "fake_quant of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c), sc = s->scale[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) p[i] = value_of(code_of(p[i], sc, s->zero), sc, s->zero);
        }
    return VITQ_OK;
}

static vitq_status lsq_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    lsq_state *s = state;
    vitq_status st = ready(s, x, "quantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    if (!st) st = check_finite(s, x, "quantize of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            float sc = s->scale[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) *codes++ = code_of(p[i], sc, s->zero);
        }
    return VITQ_OK;
}

static vitq_status lsq_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    lsq_state *s = state;
    vitq_status st = ready(s, out, "dequantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    if (st) return st;
    int64_t count = vitq_i_view_count(out);
    for (int64_t i = 0; i < count; i++)
        if (codes[i] < 0 || codes[i] > s->zero)
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [0, %d]", (int)codes[i],
                        (long long)i, (int)s->zero);
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++) {
            float *p = vitq_i_view_at(out, o, c), sc = s->scale[c / s->cpg];
            for (int64_t i = 0; i < out->inner; i++) p[i] = value_of(*codes++, sc, s->zero);
        }
    return VITQ_OK;
}

static int32_t lsq_param_count(void *state) {
    (void)state;
    return 1;
}

static vitq_status lsq_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count) {
    lsq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    if (!name || !values || !count)
        return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index != 0) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there is 1 parameter", (int)index);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = "scale", *values = s->scale, *count = s->groups;
    return VITQ_OK;
}

/* Any time: a saved model loads this way, and a calibration method searches the scale by setting it. */
static vitq_status lsq_set_param(void *state, const char *name, const float *values, int64_t count) {
    lsq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    if (strcmp(name, "scale") != 0)
        return FAIL(s, VITQ_ERR_UNKNOWN_NAME, "scheme log-sqrt2 has no parameter '%s' (scale)", name);
    if (!values) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param scale: values is NULL");
    if (count != s->groups)
        return FAIL(s, VITQ_ERR_SHAPE, "set_param scale: %lld values, expected %lld (one per group)", (long long)count,
                    (long long)s->groups);
    for (int64_t g = 0; g < count; g++)
        if (!isfinite(values[g]) || !(values[g] > 0.0f))
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "scale[%lld] = %g is not a finite positive scale", (long long)g,
                        (double)values[g]);
    memcpy(s->scale, values, (size_t)count * sizeof(float));
    fix(s);
    return VITQ_OK;
}

const vitq_scheme vitq_i_scheme_log_sqrt2 = {
    sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, "log-sqrt2",
    "RepQ-ViT log-sqrt2 for attention probabilities: levels s 2^(-q/2) and an exact zero", 1, 2, 8, 0, NULL,
    lsq_create, lsq_destroy, lsq_observe, lsq_finalize,
    lsq_fake_quant, lsq_quantize, lsq_dequantize, lsq_param_count, lsq_get_param, lsq_set_param, NULL};
