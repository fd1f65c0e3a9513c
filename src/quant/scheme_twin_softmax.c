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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quant/schemes.h"
#include "quant/view.h"

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
    const vitq_scheme_host *host;
    char name[96];
    int64_t channels, groups, cpg;
    int32_t n; /* levels per range */
    int form, observed, fixed;
    twin cand[SPLITS];
    double *err;  /* groups x SPLITS squared errors, until finalize */
    float *split; /* groups: the parameter */
    twin *grid;   /* groups: derived from split */
} twin_state;

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
    const vitq_scheme *sc = &vitq_i_scheme_twin_softmax;
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
        return fail(h, p, VITQ_ERR_OUT_OF_RANGE, "scheme %s needs %d..%d bits (one is the range flag), not %d",
                    sc->name, (int)sc->min_bits, (int)sc->max_bits, (int)c->bits);
    if (c->symmetric != 0)
        return fail(h, p, c->symmetric == 1 ? VITQ_ERR_OUT_OF_RANGE : VITQ_ERR_INVALID_ARGUMENT,
                    "scheme %s has unsigned codes for values in [0, 1]: symmetric must be 0, not %d", sc->name,
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

/* VITQ_OK when every element is finite; else the position of the first that is not. */
static vitq_status check_finite(const twin_state *s, const vitq_tensor_view *x, const char *what) {
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

/* t rounded to the nearest integer, ties to even, for 0 <= t <= 2^22: adding 1.5 * 2^23 leaves no fraction
 * bits (callers clamp first, which also keeps the codes in range). */
static inline float round_even(float t) { return (t + 12582912.0f) - 12582912.0f; }

static inline int32_t low_code(const twin *t, int32_t n, float x) {
    float q = x * t->inv, top = (float)(n - 1); /* x / d1 without a division */
    return (int32_t)round_even(q > 0.0f ? (q < top ? q : top) : 0.0f);
}

static inline int32_t high_code(int32_t n, float x) {
    float q = x * (float)(n - 1), top = (float)(n - 1);
    return (int32_t)round_even(q > 0.0f ? (q < top ? q : top) : 0.0f);
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

/* ---- vtable ----------------------------------------------------------------------------------- */

static void twin_destroy(void *state) {
    twin_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    if (s->err) h->free(h, s->err);
    if (s->split) h->free(h, s->split);
    if (s->grid) h->free(h, s->grid);
    h->free(h, s);
}

static void *alloc_array(const vitq_scheme_host *h, int64_t count, size_t elem) {
    size_t bytes;
    return vitq_i_mul_size((size_t)count, elem, &bytes) ? h->alloc(h, bytes) : NULL;
}

static vitq_status twin_create(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {
    vitq_status st = check_config(c, h, out);
    if (st) return st;
    twin_state *s = h->alloc(h, sizeof *s);
    if (!s) return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the quantizer");
    memset(s, 0, sizeof *s);
    s->host = h;
    snprintf(s->name, sizeof s->name, "%s", c->name ? c->name : "quantizer");
    s->channels = c->channels, s->groups = c->groups, s->cpg = c->channels_per_group;
    s->n = 1 << (c->bits - 1);
    s->form = c->options ? (int)c->options[0] : 0;
    for (int k = 0; k < SPLITS; k++) s->cand[k] = make_twin(ldexpf(1.0f, -k), s->n);
    s->err = alloc_array(h, s->groups, SPLITS * sizeof(double));
    s->split = alloc_array(h, s->groups, sizeof(float));
    s->grid = alloc_array(h, s->groups, sizeof(twin));
    if (!s->err || !s->split || !s->grid) {
        twin_destroy(s);
        return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY,
                    "cannot allocate the twin-softmax statistics of %lld groups", (long long)c->groups);
    }
    memset(s->err, 0, (size_t)s->groups * SPLITS * sizeof(double));
    *out = s;
    return VITQ_OK;
}

static vitq_status twin_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    twin_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    if (pass != 0) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme twin-softmax has 1 pass", (int)pass);
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    vitq_status st = vitq_i_view_check(x, s->channels, s->name);
    if (!st) st = check_finite(s, x, "observed");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            double *e = s->err + (c / s->cpg) * SPLITS;
            for (int64_t i = 0; i < x->inner; i++) {
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
    s->observed = 1;
    return VITQ_OK;
}

/* The statistics go once the parameters are known, whichever way they became known. */
static void fix(twin_state *s) {
    if (s->err) s->host->free(s->host, s->err);
    s->err = NULL;
    s->fixed = 1;
}

static vitq_status twin_finalize(void *state) {
    twin_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize after the parameters were set (or twice)");
    if (!s->observed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize before any data was observed");
    for (int64_t g = 0; g < s->groups; g++) {
        const double *e = s->err + g * SPLITS;
        int best = 0;
        for (int k = 1; k < SPLITS; k++)
            if (e[k] < e[best]) best = k;
        s->split[g] = s->cand[best].s;
        s->grid[g] = s->cand[best];
    }
    fix(s);
    return VITQ_OK;
}

/* The checks every use of the parameters starts with. */
static vitq_status ready(const twin_state *s, const vitq_tensor_view *x, const char *what) {
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of split)", what);
    return vitq_i_view_check(x, s->channels, s->name);
}

static vitq_status twin_fake_quant(void *state, const vitq_tensor_view *x) {
    twin_state *s = state;
    vitq_status st = ready(s, x, "fake_quant");
    if (!st) st = check_finite(s, x, "fake_quant of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c);
            const twin *t = &s->grid[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) p[i] = value_of(t, s->n, s->form, code_of(t, s->n, p[i]));
        }
    return VITQ_OK;
}

static vitq_status twin_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    twin_state *s = state;
    vitq_status st = ready(s, x, "quantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    if (!st) st = check_finite(s, x, "quantize of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            const twin *t = &s->grid[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) *codes++ = code_of(t, s->n, p[i]);
        }
    return VITQ_OK;
}

static vitq_status twin_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    twin_state *s = state;
    vitq_status st = ready(s, out, "dequantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    if (st) return st;
    int64_t count = vitq_i_view_count(out);
    for (int64_t i = 0; i < count; i++)
        if (codes[i] < 0 || codes[i] >= 2 * s->n)
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [0, %d]", (int)codes[i],
                        (long long)i, (int)(2 * s->n - 1));
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++) {
            float *p = vitq_i_view_at(out, o, c);
            const twin *t = &s->grid[c / s->cpg];
            for (int64_t i = 0; i < out->inner; i++) p[i] = value_of(t, s->n, s->form, *codes++);
        }
    return VITQ_OK;
}

static int32_t twin_param_count(void *state) {
    (void)state;
    return 1;
}

static vitq_status twin_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count) {
    twin_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    if (!name || !values || !count)
        return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index != 0) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there is 1 parameter", (int)index);
    if (!s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = "split", *values = s->split, *count = s->groups;
    return VITQ_OK;
}

/* Any time: a saved model loads this way, and a calibration method searches the split by setting it. */
static vitq_status twin_set_param(void *state, const char *name, const float *values, int64_t count) {
    twin_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    if (strcmp(name, "split") != 0)
        return FAIL(s, VITQ_ERR_UNKNOWN_NAME, "scheme twin-softmax has no parameter '%s' (split)", name);
    if (!values) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param split: values is NULL");
    if (count != s->groups)
        return FAIL(s, VITQ_ERR_SHAPE, "set_param split: %lld values, expected %lld (one per group)", (long long)count,
                    (long long)s->groups);
    for (int64_t g = 0; g < count; g++) {
        int e = 0;
        float m = isfinite(values[g]) ? frexpf(values[g], &e) : 0.0f;
        if (m != 0.5f || e > 1 || e < 2 - SPLITS)
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "split[%lld] = %g is not a power of two 2^-i, i in 0..%d",
                        (long long)g, (double)values[g], SPLITS - 1);
    }
    for (int64_t g = 0; g < count; g++) {
        s->split[g] = values[g];
        s->grid[g] = make_twin(values[g], s->n);
    }
    fix(s);
    return VITQ_OK;
}

const vitq_scheme vitq_i_scheme_twin_softmax = {
    sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, "twin-softmax",
    "PTQ4ViT twin uniform for attention probabilities: two ranges split at a searched power of two", 1, 3, 8,
    (int32_t)(sizeof options / sizeof options[0]), options, twin_create, twin_destroy, twin_observe, twin_finalize,
    twin_fake_quant, twin_quantize, twin_dequantize, twin_param_count, twin_get_param, twin_set_param, NULL};
