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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quant/schemes.h"
#include "quant/view.h"

#define CANDIDATES 4
#define HSUB 16
#define HLOW 63
#define HBINS (96 * HSUB + 2)

static const double lower_quantiles[CANDIDATES] = {0.0 /* l = 0 */, 0.5, 0.9, 0.99};

static const vitq_scheme_option options[] = {
    {"lambda", "weight of the squared change of each row's maximum against the squared error", 0.0, 1e9, 1.0, 0},
};

typedef struct grid {
    float l, d; /* lowest non-zero value, step */
} grid;

typedef struct mpq_state {
    const vitq_scheme_host *host;
    char name[96];
    int64_t channels, groups, cpg;
    int32_t top; /* highest code, L - 1 */
    double lambda;
    int observed, pass1, fixed, lower_set, upper_set;
    float *max;          /* groups: pass-0 maximum */
    uint64_t *cnt;       /* groups x HBINS: pass-0 histogram */
    float *cand;         /* groups x CANDIDATES: candidate l */
    double *err, *rows;  /* groups x CANDIDATES: squared error, row-maximum error */
    float *lower, *upper; /* groups: the parameters */
    grid *grids;         /* groups: derived from them */
} mpq_state;

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
    const vitq_scheme *sc = &vitq_i_scheme_mpq;
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

static vitq_status check_finite(const mpq_state *s, const vitq_tensor_view *x, const char *what) {
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

static grid make_grid(float lower, float upper, int32_t top) {
    grid q = {lower, (upper - lower) / (float)(top - 1)};
    return q;
}

static inline int32_t code_of(const grid *q, float x, int32_t top) {
    if (!(x > 0.0f) || x + x < q->l) return 0;
    if (!(q->d > 0.0f)) return 1;
    float t = (x - q->l) / q->d, last = (float)(top - 1);
    return 1 + (int32_t)round_even(t > 0.0f ? (t < last ? t : last) : 0.0f);
}

static inline float value_of(const grid *q, int32_t code) {
    if (code == 0) return 0.0f;
    float above = (float)(code - 1) * q->d; /* its own statement: never fused into a multiply-add */
    return q->l + above;
}

/* Histogram bin of x: its exponent and top 4 mantissa bits, read off the float's bits. */
static size_t hist_bin(float x) {
    if (!(x >= 0x1p-64f)) return 0;
    if (x >= 0x1p32f) return HBINS - 1;
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return 1 + (b >> (23 - 4)) - (size_t)HLOW * HSUB;
}

/* The value below which a fraction t of group g's values lies (at most the maximum): the bin where the
 * cumulative count reaches t * total, interpolated linearly inside it (bin 0 counts as 0). */
static double quantile(const mpq_state *s, int64_t g, double t) {
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

/* ---- vtable ----------------------------------------------------------------------------------- */

static void mpq_destroy(void *state) {
    mpq_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    void *blocks[] = {s->max, s->cnt, s->cand, s->err, s->rows, s->lower, s->upper, s->grids};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (blocks[i]) h->free(h, blocks[i]);
    h->free(h, s);
}

static void *alloc_array(const vitq_scheme_host *h, int64_t count, size_t elem) {
    size_t bytes;
    return vitq_i_mul_size((size_t)count, elem, &bytes) ? h->alloc(h, bytes) : NULL;
}

static vitq_status mpq_create(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {
    vitq_status st = check_config(c, h, out);
    if (st) return st;
    mpq_state *s = h->alloc(h, sizeof *s);
    if (!s) return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the quantizer");
    memset(s, 0, sizeof *s);
    s->host = h;
    snprintf(s->name, sizeof s->name, "%s", c->name ? c->name : "quantizer");
    s->channels = c->channels, s->groups = c->groups, s->cpg = c->channels_per_group;
    s->top = (1 << c->bits) - 1;
    s->lambda = c->options ? c->options[0] : 1.0;
    int64_t g = s->groups;
    s->max = alloc_array(h, g, sizeof(float));
    s->cnt = alloc_array(h, g, HBINS * sizeof(uint64_t));
    s->cand = alloc_array(h, g, CANDIDATES * sizeof(float));
    s->err = alloc_array(h, g, CANDIDATES * sizeof(double));
    s->rows = alloc_array(h, g, CANDIDATES * sizeof(double));
    s->lower = alloc_array(h, g, sizeof(float));
    s->upper = alloc_array(h, g, sizeof(float));
    s->grids = alloc_array(h, g, sizeof(grid));
    if (!s->max || !s->cnt || !s->cand || !s->err || !s->rows || !s->lower || !s->upper || !s->grids) {
        mpq_destroy(s);
        return fail(h, c->name ? c->name : "quantizer", VITQ_ERR_OUT_OF_MEMORY,
                    "cannot allocate the mpq quantizer of %lld groups", (long long)g);
    }
    for (int64_t i = 0; i < g; i++) s->max[i] = 0.0f;
    memset(s->cnt, 0, (size_t)g * HBINS * sizeof(uint64_t));
    memset(s->err, 0, (size_t)g * CANDIDATES * sizeof(double));
    memset(s->rows, 0, (size_t)g * CANDIDATES * sizeof(double));
    *out = s;
    return VITQ_OK;
}

static void observe_stats(mpq_state *s, const vitq_tensor_view *x) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / s->cpg;
            uint64_t *cnt = s->cnt + g * HBINS;
            float m = s->max[g];
            for (int64_t i = 0; i < x->inner; i++) {
                m = p[i] > m ? p[i] : m;
                cnt[hist_bin(p[i])]++;
            }
            s->max[g] = m;
        }
}

/* The candidates of every group, once pass 0 is complete; the histogram is no longer needed. */
static void start_pass1(mpq_state *s) {
    for (int64_t g = 0; g < s->groups; g++)
        for (int k = 0; k < CANDIDATES; k++)
            s->cand[g * CANDIDATES + k] = k == 0 ? 0.0f : (float)quantile(s, g, lower_quantiles[k]);
    s->host->free(s->host, s->cnt);
    s->cnt = NULL;
    s->pass1 = 1;
}

static void add_row(const grid *q, int32_t top, double *rows, float max) {
    for (int k = 0; k < CANDIDATES; k++) {
        double d = (double)value_of(&q[k], code_of(&q[k], max, top)) - (double)max;
        rows[k] += d * d;
    }
}

static void observe_errors(mpq_state *s, const vitq_tensor_view *x) {
    int64_t t = (int64_t)sqrt((double)x->inner);
    while (t * t > x->inner) t--;
    while ((t + 1) * (t + 1) <= x->inner) t++;
    int64_t row = t * t == x->inner ? t : 0; /* 0: a row is a group within one outer slice */
    for (int64_t o = 0; o < x->outer; o++) {
        float group_max = 0.0f;
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / s->cpg;
            grid q[CANDIDATES];
            for (int k = 0; k < CANDIDATES; k++) q[k] = make_grid(s->cand[g * CANDIDATES + k], s->max[g], s->top);
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
                if (p[i] > group_max || (i == 0 && c % s->cpg == 0)) group_max = p[i];
            if (c % s->cpg == s->cpg - 1) add_row(q, s->top, rows, group_max);
        }
    }
}

static vitq_status mpq_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    mpq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    if (pass < 0 || pass > 1) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme mpq has 2 passes", (int)pass);
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    if (pass == 0 && s->pass1) return FAIL(s, VITQ_ERR_BAD_STATE, "observe pass 0 after pass 1 began");
    if (pass == 1 && !s->observed) return FAIL(s, VITQ_ERR_BAD_STATE, "observe pass 1 before pass 0 saw any data");
    vitq_status st = vitq_i_view_check(x, s->channels, s->name);
    if (!st) st = check_finite(s, x, "observed");
    if (st) return st;
    if (pass == 0) {
        observe_stats(s, x);
        s->observed = 1;
        return VITQ_OK;
    }
    if (!s->pass1) start_pass1(s);
    observe_errors(s, x);
    return VITQ_OK;
}

/* No more statistics once the parameters come from elsewhere or from finalize. */
static void fix(mpq_state *s) {
    if (s->cnt) s->host->free(s->host, s->cnt);
    s->cnt = NULL;
    s->fixed = 1;
}

static vitq_status mpq_finalize(void *state) {
    mpq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    if (s->fixed) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize after the parameters were set (or twice)");
    if (!s->pass1) return FAIL(s, VITQ_ERR_BAD_STATE, "finalize before pass 1 (scheme mpq needs 2 passes)");
    for (int64_t g = 0; g < s->groups; g++) {
        const double *err = s->err + g * CANDIDATES, *rows = s->rows + g * CANDIDATES;
        int best = 0;
        for (int k = 1; k < CANDIDATES; k++)
            if (err[k] + s->lambda * rows[k] < err[best] + s->lambda * rows[best]) best = k;
        s->lower[g] = s->cand[g * CANDIDATES + best];
        s->upper[g] = s->max[g];
        s->grids[g] = make_grid(s->lower[g], s->upper[g], s->top);
    }
    s->lower_set = s->upper_set = 1;
    fix(s);
    return VITQ_OK;
}

static vitq_status ready(const mpq_state *s, const vitq_tensor_view *x, const char *what) {
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!s->lower_set || !s->upper_set)
        return FAIL(s, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of lower and upper)", what);
    return vitq_i_view_check(x, s->channels, s->name);
}

static vitq_status mpq_fake_quant(void *state, const vitq_tensor_view *x) {
    mpq_state *s = state;
    vitq_status st = ready(s, x, "fake_quant");
    if (!st) st = check_finite(s, x, "fake_quant of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c);
            const grid *q = &s->grids[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) p[i] = value_of(q, code_of(q, p[i], s->top));
        }
    return VITQ_OK;
}

static vitq_status mpq_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    mpq_state *s = state;
    vitq_status st = ready(s, x, "quantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    if (!st) st = check_finite(s, x, "quantize of");
    if (st) return st;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            const grid *q = &s->grids[c / s->cpg];
            for (int64_t i = 0; i < x->inner; i++) *codes++ = code_of(q, p[i], s->top);
        }
    return VITQ_OK;
}

static vitq_status mpq_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    mpq_state *s = state;
    vitq_status st = ready(s, out, "dequantize");
    if (!st && !codes) st = FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    if (st) return st;
    int64_t count = vitq_i_view_count(out);
    for (int64_t i = 0; i < count; i++)
        if (codes[i] < 0 || codes[i] > s->top)
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [0, %d]", (int)codes[i],
                        (long long)i, (int)s->top);
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++) {
            float *p = vitq_i_view_at(out, o, c);
            const grid *q = &s->grids[c / s->cpg];
            for (int64_t i = 0; i < out->inner; i++) p[i] = value_of(q, *codes++);
        }
    return VITQ_OK;
}

static const char *const param_names[2] = {"lower", "upper"};

static int32_t mpq_param_count(void *state) {
    (void)state;
    return 2;
}

static vitq_status mpq_get_param(void *state, int32_t index, const char **name, const float **values, int64_t *count) {
    mpq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    if (!name || !values || !count)
        return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index < 0 || index > 1)
        return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there are 2 parameters", (int)index);
    if (!s->lower_set || !s->upper_set) return FAIL(s, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = param_names[index], *values = index ? s->upper : s->lower, *count = s->groups;
    return VITQ_OK;
}

/* Any time, one array at a time: a saved model loads this way, and a calibration method searches l by
 * setting it. Each value is checked against the other parameter when that one is known (set lower before
 * raising it above the current upper, upper first to lower it below the current lower). */
static vitq_status mpq_set_param(void *state, const char *name, const float *values, int64_t count) {
    mpq_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    int is_upper = strcmp(name, "upper") == 0;
    if (!is_upper && strcmp(name, "lower") != 0)
        return FAIL(s, VITQ_ERR_UNKNOWN_NAME, "scheme mpq has no parameter '%s' (lower, upper)", name);
    if (!values) return FAIL(s, VITQ_ERR_INVALID_ARGUMENT, "set_param %s: values is NULL", name);
    if (count != s->groups)
        return FAIL(s, VITQ_ERR_SHAPE, "set_param %s: %lld values, expected %lld (one per group)", name,
                    (long long)count, (long long)s->groups);
    int other_set = is_upper ? s->lower_set : s->upper_set;
    for (int64_t g = 0; g < count; g++) {
        float v = values[g], other = is_upper ? s->lower[g] : s->upper[g];
        if (!isfinite(v) || !(v >= 0.0f))
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is not finite and >= 0", name, (long long)g, (double)v);
        if (other_set && (is_upper ? v < other : v > other))
            return FAIL(s, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is %s %s[%lld] = %g", name, (long long)g, (double)v,
                        is_upper ? "below" : "above", param_names[!is_upper], (long long)g, (double)other);
    }
    memcpy(is_upper ? s->upper : s->lower, values, (size_t)count * sizeof(float));
    if (is_upper) s->upper_set = 1;
    else s->lower_set = 1;
    if (s->lower_set && s->upper_set)
        for (int64_t g = 0; g < count; g++) s->grids[g] = make_grid(s->lower[g], s->upper[g], s->top);
    fix(s);
    return VITQ_OK;
}

const vitq_scheme vitq_i_scheme_mpq = {
    sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, "mpq",
    "APQ-ViT softmax quantizer (MPQ, unconfirmed form): 0 plus a uniform grid from a searched lower end to the "
    "maximum", 2, 2, 8, (int32_t)(sizeof options / sizeof options[0]), options, mpq_create, mpq_destroy, mpq_observe,
    mpq_finalize, mpq_fake_quant, mpq_quantize, mpq_dequantize, mpq_param_count, mpq_get_param, mpq_set_param, NULL};
