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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quant/schemes.h"
#include "quant/view.h"

#define BINS 2048
#define GRID 100 /* candidates i = 0..GRID */
#define ALPHA 0.01
#define BETA 1.2
#define GELU_MIN 0.16997124f /* -min GELU(x), as PTQ4ViT */

static const vitq_scheme_option options[] = {
    {"pow2", "1: keep scale / negative scale a power of two (the paper's hardware format)", 0.0, 1.0, 0.0, 1},
};

typedef struct gelu_state {
    const vitq_scheme_host *host;
    char name[96];
    int64_t channels, groups, cpg;
    int32_t n;
    int pow2, observed, pass1, fixed;
    float dneg;
    float *max;     /* groups: pass-0 maximum */
    uint64_t *hist; /* groups x BINS: pass-1 counts of x > 0 over (0, max] */
    float *scale;   /* groups: dpos */
} gelu_state;

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
    const vitq_scheme *sc = &vitq_i_scheme_twin_gelu;
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
        return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "scheme %s quantizes activations (GELU outputs), not kind %d",
                    sc->name, (int)c->kind);
    if (c->bits < sc->min_bits || c->bits > sc->max_bits)
        return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "scheme %s needs %d..%d bits (one is the range flag), not %d",
                    sc->name, (int)sc->min_bits, (int)sc->max_bits, (int)c->bits);
    if (c->symmetric != 1)
        return fail(h, p, c->symmetric == 0 ? VITQ_ERR_OUT_OF_RANGE : VITQ_ERR_INVALID_ARGUMENT,
                    "scheme %s has signed codes (the sign is the range flag): symmetric must be 1, not %d", sc->name,
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

static vitq_status check_finite(const gelu_state *s, const vitq_tensor_view *x, const char *what) {
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

/* t rounded to the nearest integer, ties to even, for 0 <= t <= 2^22 (callers clamp first). */
static inline float round_even(float t) { return (t + 12582912.0f) - 12582912.0f; }

static inline int32_t code_of(float x, float dpos, float dneg, int32_t n) {
    if (x >= 0.0f) {
        float t = x / dpos;
        return (int32_t)round_even(t < (float)(n - 1) ? t : (float)(n - 1));
    }
    float t = -x / dneg; /* rounding is symmetric, so round(x) = -round(-x) */
    return -(int32_t)round_even(t < (float)n ? t : (float)n);
}

static inline float value_of(int32_t code, float dpos, float dneg) {
    return code >= 0 ? (float)code * dpos : (float)code * dneg;
}

/* (dneg 2^m) / dneg for integer m, checked exactly in double. */
static int pow2_ratio(float dpos, float dneg) {
    int e;
    return frexp((double)dpos / (double)dneg, &e) == 0.5;
}

/* ---- vtable ----------------------------------------------------------------------------------- */

static void gelu_destroy(void *state) {
    gelu_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    if (s->max) h->free(h, s->max);
    if (s->hist) h->free(h, s->hist);
    if (s->scale) h->free(h, s->scale);
    h->free(h, s);
}

static void *alloc_array(const vitq_scheme_host *h, int64_t count, size_t elem) {
    size_t bytes;
    return vitq_i_mul_size((size_t)count, elem, &bytes) ? h->alloc(h, bytes) : NULL;
}

static vitq_status gelu_create(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {
    vitq_status st = check_config(c, h, out);
    if (st) return st;
    gelu_state *s = h->alloc(h, sizeof *s);
    if (!s) return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the quantizer");
    memset(s, 0, sizeof *s);
    s->host = h;
    snprintf(s->name, sizeof s->name, "%s", c->name ? c->name : "quantizer");
    s->channels = c->channels, s->groups = c->groups, s->cpg = c->channels_per_group;
    s->n = 1 << (c->bits - 1);
    s->pow2 = c->options ? (int)c->options[0] : 0;
    s->dneg = GELU_MIN / (float)s->n;
    s->max = alloc_array(h, s->groups, sizeof(float));
    s->scale = alloc_array(h, s->groups, sizeof(float));
    if (!s->max || !s->scale) {
        gelu_destroy(s);
        return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY,
                    "cannot allocate the twin-gelu quantizer of %lld groups", (long long)c->groups);
    }
    for (int64_t g = 0; g < s->groups; g++) s->max[g] = 0.0f;
    *out = s;
    return VITQ_OK;
}

static void observe_max(gelu_state *s, const vitq_tensor_view *x) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            float m = s->max[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) m = p[i] > m ? p[i] : m;
            s->max[c / s->cpg] = m;
        }
}

static void observe_hist(gelu_state *s, const vitq_tensor_view *x) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / s->cpg;
            if (!(s->max[g] > 0.0f)) continue; /* no positive value in pass 0: nothing to search */
            uint64_t *h = s->hist + g * BINS;
            double per_unit = BINS / (double)s->max[g];
            for (int64_t i = 0; i < x->inner; i++) {
                if (!(p[i] > 0.0f)) continue; /* 0 is exact, negatives use the fixed range */
                double b = (double)p[i] * per_unit;
                h[b < BINS - 1 ? (size_t)b : BINS - 1]++;
            }
        }
}

static vitq_status gelu_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    gelu_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    if (pass < 0 || pass > 1) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme twin-gelu has 2 passes", (int)pass);
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    if (pass == 0 && s->pass1) return FAIL(s, VITQ_ERR_BAD_STATE, "observe pass 0 after pass 1 began");
    if (pass == 1 && !s->observed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe pass 1 before pass 0 saw any data");
    vitq_status st = vitq_i_view_check(x, s->channels, s->name);
    if (!st) st = check_finite(s, x, "observed");
    if (st) return st;
    if (pass == 0) {
        observe_max(s, x);
        s->observed = 1;
        return VITQ_OK;
    }
    if (!s->pass1) {
        s->hist = alloc_array(s->host, s->groups, BINS * sizeof(uint64_t));
        if (!s->hist) return FAIL(s, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate %lld histograms", (long long)s->groups);
        memset(s->hist, 0, (size_t)s->groups * BINS * sizeof(uint64_t));
        s->pass1 = 1;
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
    double width = (double)s->max[g] / BINS, init = (double)s->max[g] / (s->n - 1), best_err = INFINITY;
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

static void fix(gelu_state *s) {
    if (s->hist) s->host->free(s->host, s->hist);
    s->hist = NULL;
    s->fixed = 1;
}

static vitq_status gelu_finalize(void *state) {
    gelu_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize after the parameters were set (or twice)");
    if (!s->pass1) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize before pass 1 (scheme twin-gelu needs 2 passes)");
    for (int64_t g = 0; g < s->groups; g++) s->scale[g] = s->max[g] > 0.0f ? search_scale(s, g) : s->dneg;
    fix(s);
    return VITQ_OK;
}

static vitq_status ready(const gelu_state *s, const vitq_tensor_view *x, const char *what) {
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of scale)", what);
    return vitq_i_view_check(x, s->channels, s->name);
}

static vitq_status gelu_fake_quant(void *state, const vitq_tensor_view *x) {
    gelu_state *s = state;
    vitq_status st = ready(s, x, "fake_quant");
    if (!st) st = check_finite(s, x, "fake_quant of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c), d = s->scale[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) p[i] = value_of(code_of(p[i], d, s->dneg, s->n), d, s->dneg);
        }
    return VITQ_OK;
}

static vitq_status gelu_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    gelu_state *s = state;
    vitq_status st = ready(s, x, "quantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    if (!st) st = check_finite(s, x, "quantize of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            float d = s->scale[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) *codes++ = code_of(p[i], d, s->dneg, s->n);
        }
    return VITQ_OK;
}

static vitq_status gelu_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    gelu_state *s = state;
    vitq_status st = ready(s, out, "dequantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    if (st) return st;
    int64_t count = vitq_i_view_count(out);
    for (int64_t i = 0; i < count; i++)
        if (codes[i] < -s->n || codes[i] >= s->n)
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [%d, %d]", (int)codes[i],
                        (long long)i, (int)-s->n, (int)(s->n - 1));
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++) {
            float *p = vitq_i_view_at(out, o, c), d = s->scale[c / s->cpg];
            for (int64_t i = 0; i < out->inner; i++) p[i] = value_of(*codes++, d, s->dneg);
        }
    return VITQ_OK;
}

static int32_t gelu_param_count(void *state) {
    (void)state;
    return 1;
}

static vitq_status gelu_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count) {
    gelu_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    if (!name || !values || !count)
        return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index != 0) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there is 1 parameter", (int)index);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = "scale", *values = s->scale, *count = s->groups;
    return VITQ_OK;
}

/* Any time: a saved model loads this way, and a calibration method searches the step by setting it. */
static vitq_status gelu_set_param(void *state, const char *name, const float *values, int64_t count) {
    gelu_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    if (strcmp(name, "scale") != 0)
        return FAIL(s, VITQ_ERR_UNKNOWN_NAME, "scheme twin-gelu has no parameter '%s' (scale)", name);
    if (!values) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param scale: values is NULL");
    if (count != s->groups)
        return FAIL(s, VITQ_ERR_SHAPE, "set_param scale: %lld values, expected %lld (one per group)", (long long)count,
                    (long long)s->groups);
    for (int64_t g = 0; g < count; g++) {
        if (!isfinite(values[g]) || !(values[g] > 0.0f))
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "scale[%lld] = %g is not a finite positive step", (long long)g,
                        (double)values[g]);
        if (s->pow2 && !pow2_ratio(values[g], s->dneg))
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "scale[%lld] = %g is not a power of two times the negative step %g "
                        "(option pow2)", (long long)g, (double)values[g], (double)s->dneg);
    }
    memcpy(s->scale, values, (size_t)count * sizeof(float));
    fix(s);
    return VITQ_OK;
}

const vitq_scheme vitq_i_scheme_twin_gelu = {
    sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, "twin-gelu",
    "PTQ4ViT twin uniform for GELU outputs: a fixed negative step, a searched positive one", 2, 3, 8,
    (int32_t)(sizeof options / sizeof options[0]), options, gelu_create, gelu_destroy, gelu_observe, gelu_finalize,
    gelu_fake_quant, gelu_quantize, gelu_dequantize, gelu_param_count, gelu_get_param, gelu_set_param, NULL};
