/* Shared state and vtable functions of the range-based schemes (see range_scheme.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi.h"
#include "quant/options.h"
#include "quant/range_scheme.h"
#include "quant/view.h"

/* ---- errors and memory ----------------------------------------------------------------------- */

static vitq_status host_failv(const vitq_scheme_host *host, vitq_status status, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return host->fail(host, status, msg);
}

VITQ_I_PRINTF(3, 4)
static vitq_status host_fail(const vitq_scheme_host *host, vitq_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vitq_status st = host_failv(host, status, fmt, ap);
    va_end(ap);
    return st;
}

vitq_status vitq_i_range_fail(const vitq_i_range_state *s, vitq_status status, const char *fmt, ...) {
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return host_fail(s->host, status, "%s: %s", s->config.name, msg);
}

/* count x elem bytes from the host, NULL on overflow or failure. */
static void *host_array(const vitq_scheme_host *host, size_t count, size_t elem) {
    size_t bytes;
    if (!vitq_i_mul_size(count, elem, &bytes)) return NULL;
    return host->alloc(host, bytes ? bytes : 1);
}

static void host_release(const vitq_scheme_host *host, void *p) {
    if (p) host->free(host, p);
}

/* The pass-1 statistics are large; they go as soon as the parameters are known. */
static void free_pass1(vitq_i_range_state *s) {
    const vitq_scheme_host *h = s->host;
    host_release(h, s->hist), host_release(h, s->hist_lo), host_release(h, s->hist_width);
    host_release(h, s->values), host_release(h, s->value_start), host_release(h, s->value_count);
    s->hist = NULL, s->hist_lo = s->hist_width = NULL;
    s->values = NULL, s->value_start = s->value_count = NULL;
}

void vitq_i_range_destroy(void *state) {
    vitq_i_range_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    free_pass1(s);
    host_release(h, (void *)s->config.name), host_release(h, (void *)s->config.options);
    host_release(h, s->min), host_release(h, s->max), host_release(h, s->seen);
    host_release(h, s->scale), host_release(h, s->zero_point);
    h->free(h, s);
}

/* ---- create ---------------------------------------------------------------------------------- */

static vitq_status check_config(const vitq_scheme *scheme, const vitq_point_config *c, const vitq_scheme_host *h,
                                const char *name) {
    if (c->kind != VITQ_POINT_WEIGHT && c->kind != VITQ_POINT_ACTIVATION)
        return host_fail(h, VITQ_ERR_INVALID_ARGUMENT, "%s: kind %d is not a vitq_point_kind", name, (int)c->kind);
    if (c->bits < scheme->min_bits || c->bits > scheme->max_bits)
        return host_fail(h, VITQ_ERR_OUT_OF_RANGE, "%s: scheme %s implements %d..%d bits, not %d", name, scheme->name,
                         (int)scheme->min_bits, (int)scheme->max_bits, (int)c->bits);
    if (c->symmetric != 0 && c->symmetric != 1)
        return host_fail(h, VITQ_ERR_INVALID_ARGUMENT, "%s: symmetric is %d, not 0 or 1", name, (int)c->symmetric);
    if (c->channels < 1 || c->groups < 1 || c->channels_per_group < 1 || c->channels % c->channels_per_group != 0 ||
        c->channels / c->channels_per_group != c->groups)
        return host_fail(h, VITQ_ERR_SHAPE, "%s: %lld channels do not form %lld groups of %lld", name,
                         (long long)c->channels, (long long)c->groups, (long long)c->channels_per_group);
    for (int32_t i = 0; i < scheme->num_options; i++) {
        const vitq_scheme_option *o = &scheme->options[i];
        double v = c->options ? c->options[i] : o->default_value;
        if (!vitq_i_option_in_range(o, v))
            return host_fail(h, VITQ_ERR_OUT_OF_RANGE, "%s: option %s = %g is not %s in [%g, %g]", name, o->name, v,
                             o->is_integer ? "an integer" : "a number", o->min_value, o->max_value);
    }
    return VITQ_OK;
}

/* Copies of the point name and option values, and the per-group arrays; 0 when an allocation failed. */
static int alloc_state(vitq_i_range_state *s, const vitq_point_config *c, const char *name) {
    const vitq_scheme_host *h = s->host;
    size_t g = (size_t)c->groups, len = strlen(name) + 1;
    char *name_copy = h->alloc(h, len);
    double *opts = host_array(h, s->scheme->num_options ? (size_t)s->scheme->num_options : 1, sizeof(double));
    s->config.name = name_copy, s->config.options = opts;
    s->min = host_array(h, g, sizeof(float)), s->max = host_array(h, g, sizeof(float));
    s->seen = host_array(h, g, sizeof(uint64_t));
    s->scale = host_array(h, g, sizeof(float)), s->zero_point = host_array(h, g, sizeof(float));
    if (!name_copy || !opts || !s->min || !s->max || !s->seen || !s->scale || !s->zero_point) return 0;
    memcpy(name_copy, name, len);
    for (int32_t i = 0; i < s->scheme->num_options; i++)
        opts[i] = c->options ? c->options[i] : s->scheme->options[i].default_value;
    memset(s->seen, 0, g * sizeof(uint64_t));
    return 1;
}

vitq_status vitq_i_range_create(const vitq_scheme *scheme, vitq_i_range_fn range, const vitq_point_config *config,
                                const vitq_scheme_host *host, void **state) {
    if (!state) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: state is NULL", scheme->name);
    *state = NULL;
    if (!host || !host->alloc || !host->free || !host->fail)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: host is NULL or incomplete", scheme->name);
    if (host->struct_size < VITQ_I_V1_SCHEME_HOST) /* larger: a later library's host, whose prefix we know */
        return host_fail(host, VITQ_ERR_ABI_MISMATCH, "scheme %s: vitq_scheme_host.struct_size is %u, at least %zu",
                         scheme->name, (unsigned)host->struct_size, VITQ_I_V1_SCHEME_HOST);
    if (!config) return host_fail(host, VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: config is NULL", scheme->name);
    const char *name = config->name ? config->name : "quantizer";
    if (config->struct_size < VITQ_I_V1_POINT_CONFIG)
        return host_fail(host, VITQ_ERR_ABI_MISMATCH, "%s: vitq_point_config.struct_size is %u, at least %zu", name,
                         (unsigned)config->struct_size, VITQ_I_V1_POINT_CONFIG);
    vitq_status st = check_config(scheme, config, host, name);
    if (st != VITQ_OK) return st;

    vitq_i_range_state *s = host->alloc(host, sizeof *s);
    if (!s) return host_fail(host, VITQ_ERR_OUT_OF_MEMORY, "%s: cannot allocate the %s quantizer", name, scheme->name);
    memset(s, 0, sizeof *s);
    s->scheme = scheme, s->range = range, s->host = host;
    s->config = *config;
    s->config.name = NULL, s->config.options = NULL; /* owned copies below, so destroy may run at any point */
    s->grid = vitq_i_uniform_grid(config->bits, config->symmetric);
    if (!alloc_state(s, config, name)) {
        vitq_i_range_destroy(s);
        return host_fail(host, VITQ_ERR_OUT_OF_MEMORY, "%s: cannot allocate the %s quantizer for %lld groups", name,
                         scheme->name, (long long)config->groups);
    }
    *state = s;
    return VITQ_OK;
}

/* ---- observe --------------------------------------------------------------------------------- */

static vitq_status check_finite(const vitq_i_range_state *s, const vitq_tensor_view *x) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++)
                if (!isfinite(p[i]))
                    return vitq_i_range_fail(s, VITQ_ERR_NON_FINITE,
                                             "observed %g at (outer %lld, channel %lld, inner %lld)", (double)p[i],
                                             (long long)o, (long long)c, (long long)i);
        }
    return VITQ_OK;
}

static void observe_range(vitq_i_range_state *s, const vitq_tensor_view *x) {
    int64_t cpg = s->config.channels_per_group;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / cpg;
            float lo = s->min[g], hi = s->max[g];
            if (!s->seen[g]) lo = hi = p[0];
            for (int64_t i = 0; i < x->inner; i++) {
                lo = p[i] < lo ? p[i] : lo;
                hi = p[i] > hi ? p[i] : hi;
            }
            s->min[g] = lo, s->max[g] = hi;
            s->seen[g] += (uint64_t)x->inner;
        }
}

/* Allocate the pass-1 statistics, now that the pass-0 range of every group is final. */
static vitq_status start_pass1(vitq_i_range_state *s) {
    const vitq_scheme_host *h = s->host;
    size_t g = (size_t)s->config.groups;
    if (s->config.kind == VITQ_POINT_WEIGHT) {
        uint64_t total = 0;
        for (size_t i = 0; i < g; i++) total += s->seen[i];
        s->value_start = host_array(h, g, sizeof(uint64_t));
        s->value_count = host_array(h, g, sizeof(uint64_t));
        s->values = total <= SIZE_MAX ? host_array(h, (size_t)total, sizeof(float)) : NULL;
        if (!s->value_start || !s->value_count || !s->values) {
            free_pass1(s);
            return vitq_i_range_fail(s, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate a copy of %llu weight values",
                                     (unsigned long long)total);
        }
        for (size_t i = 0, at = 0; i < g; at += s->seen[i], i++) s->value_start[i] = at, s->value_count[i] = 0;
    } else {
        s->hist = host_array(h, g, VITQ_I_HIST_BINS * sizeof(uint64_t));
        s->hist_lo = host_array(h, g, sizeof(double)), s->hist_width = host_array(h, g, sizeof(double));
        if (!s->hist || !s->hist_lo || !s->hist_width) {
            free_pass1(s);
            return vitq_i_range_fail(s, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate histograms of %zu groups", g);
        }
        memset(s->hist, 0, g * VITQ_I_HIST_BINS * sizeof(uint64_t));
        for (size_t i = 0; i < g; i++) {
            double lo, hi;
            vitq_i_range_observed(s, (int64_t)i, &lo, &hi);
            if (s->config.symmetric) lo = 0.0; /* histogram of |x| */
            s->hist_lo[i] = lo;
            s->hist_width[i] = (hi - lo) / VITQ_I_HIST_BINS;
        }
    }
    s->pass1_started = 1;
    return VITQ_OK;
}

static vitq_status observe_values(vitq_i_range_state *s, const vitq_tensor_view *x) {
    int64_t cpg = s->config.channels_per_group;
    uint64_t per_group = (uint64_t)(x->outer * cpg * x->inner);
    /* Check every group before copying anything, so a refused batch leaves the state as it was. */
    for (int64_t g = 0; g < s->config.groups; g++)
        if (s->value_count[g] + per_group > s->seen[g])
            return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE,
                                     "pass 1 sees more values than pass 0 (%llu) in group %lld: both passes must "
                                     "observe the same data", (unsigned long long)s->seen[g], (long long)g);
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / cpg;
            float *dst = s->values + s->value_start[g] + s->value_count[g];
            memcpy(dst, p, (size_t)x->inner * sizeof(float));
            s->value_count[g] += (uint64_t)x->inner;
        }
    return VITQ_OK;
}

static void observe_hist(vitq_i_range_state *s, const vitq_tensor_view *x) {
    int64_t cpg = s->config.channels_per_group;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            int64_t g = c / cpg;
            uint64_t *counts = s->hist + g * VITQ_I_HIST_BINS;
            double lo = s->hist_lo[g], width = s->hist_width[g];
            for (int64_t i = 0; i < x->inner; i++) {
                double v = s->config.symmetric ? fabs((double)p[i]) : (double)p[i];
                /* Values outside the pass-0 range (pass 1 saw other data) land in the edge bins. */
                double t = width > 0.0 ? (v - lo) / width : v > lo ? VITQ_I_HIST_BINS : 0.0;
                size_t bin = t >= VITQ_I_HIST_BINS ? VITQ_I_HIST_BINS - 1 : t > 0.0 ? (size_t)t : 0;
                counts[bin]++;
            }
        }
}

vitq_status vitq_i_range_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    vitq_i_range_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    if (pass < 0 || pass >= s->scheme->num_passes)
        return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme %s has %d pass(es)", (int)pass,
                                 s->scheme->name, (int)s->scheme->num_passes);
    if (s->finalized) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    vitq_status st = vitq_i_view_check(x, s->config.channels, s->config.name);
    if (st == VITQ_OK) st = check_finite(s, x);
    if (st != VITQ_OK) return st;
    if (pass == 0) {
        if (s->pass1_started) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "observe pass 0 after pass 1 began");
        observe_range(s, x);
        return VITQ_OK;
    }
    if (!s->seen[0]) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "observe pass 1 before pass 0 saw any data");
    if (!s->pass1_started && (st = start_pass1(s)) != VITQ_OK) return st;
    if (s->config.kind == VITQ_POINT_WEIGHT) return observe_values(s, x);
    observe_hist(s, x);
    return VITQ_OK;
}

/* ---- statistics for the range callbacks -------------------------------------------------------- */

void vitq_i_range_observed(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    *lo = s->min[group], *hi = s->max[group];
    if (s->config.symmetric) {
        double amax = fmax(fabs(*lo), fabs(*hi));
        *lo = -amax, *hi = amax;
    }
}

double vitq_i_range_percentile(const vitq_i_range_state *s, int64_t group, double q) {
    double lo, hi;
    vitq_i_range_observed(s, group, &lo, &hi);
    if (s->config.symmetric) lo = 0.0;
    if (q <= 0.0) return lo;
    if (q >= 100.0) return hi;
    double v = hi;
    if (s->values) {
        const float *x = s->values + s->value_start[group];
        uint64_t n = s->value_count[group];
        if (n == 0) return hi;
        double r = q / 100.0 * (double)(n - 1);
        uint64_t i = (uint64_t)r;
        double a = x[i], b = i + 1 < n ? x[i + 1] : x[i];
        if (s->config.symmetric) a = fabs(a), b = fabs(b);
        v = a + (r - (double)i) * (b - a);
    } else {
        const uint64_t *counts = s->hist + group * VITQ_I_HIST_BINS;
        double total = 0.0, cum = 0.0;
        for (size_t i = 0; i < VITQ_I_HIST_BINS; i++) total += (double)counts[i];
        double target = q / 100.0 * total;
        for (size_t i = 0; i < VITQ_I_HIST_BINS; i++) {
            double c = (double)counts[i];
            if (c > 0.0 && cum + c >= target) {
                v = s->hist_lo[group] + ((double)i + (target - cum) / c) * s->hist_width[group];
                break;
            }
            cum += c;
        }
    }
    return v < lo ? lo : v > hi ? hi : v;
}

double vitq_i_range_sq_error(const vitq_i_range_state *s, int64_t group, double lo, double hi) {
    float scale, zero;
    vitq_i_uniform_params(&s->grid, lo, hi, &scale, &zero);
    if (s->values)
        return vitq_i_uniform_sq_error(&s->grid, scale, zero, s->values + s->value_start[group],
                                       (size_t)s->value_count[group]);
    return vitq_i_uniform_hist_sq_error(&s->grid, scale, zero, s->hist + group * VITQ_I_HIST_BINS, VITQ_I_HIST_BINS,
                                        s->hist_lo[group], s->hist_width[group]);
}

/* ---- finalize -------------------------------------------------------------------------------- */

static int cmp_value(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* By magnitude, ties by value, so that the order (and every sum over it) is fully determined. */
static int cmp_magnitude(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b, ax = fabsf(x), ay = fabsf(y);
    if (ax != ay) return (ax > ay) - (ax < ay);
    return (x > y) - (x < y);
}

vitq_status vitq_i_range_finalize(void *state) {
    vitq_i_range_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    if (s->finalized) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "finalize called twice");
    if (!s->seen[0]) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "finalize before any data was observed");
    if (s->scheme->num_passes > 1 && !s->pass1_started)
        return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "finalize before pass 1 (scheme %s needs %d passes)",
                                 s->scheme->name, (int)s->scheme->num_passes);
    if (s->values)
        for (int64_t g = 0; g < s->config.groups; g++)
            qsort(s->values + s->value_start[g], (size_t)s->value_count[g], sizeof(float),
                  s->config.symmetric ? cmp_magnitude : cmp_value);
    for (int64_t g = 0; g < s->config.groups; g++) {
        double lo = 0.0, hi = 0.0;
        vitq_status st = s->range(s, g, &lo, &hi);
        if (st != VITQ_OK) return st;
        if (!(lo <= hi))
            return vitq_i_range_fail(s, VITQ_ERR_GENERIC, "scheme %s chose the range [%g, %g] for group %lld",
                                     s->scheme->name, lo, hi, (long long)g);
        vitq_i_uniform_params(&s->grid, lo, hi, &s->scale[g], &s->zero_point[g]);
    }
    free_pass1(s);
    s->scale_set = s->zero_set = s->finalized = 1;
    return VITQ_OK;
}

/* ---- quantization ---------------------------------------------------------------------------- */

/* The checks every use of the parameters starts with. */
static vitq_status ready(const vitq_i_range_state *s, const vitq_tensor_view *x, const char *what) {
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!s->finalized)
        return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of scale and zero_point)",
                                 what);
    return vitq_i_view_check(x, s->config.channels, s->config.name);
}

vitq_status vitq_i_range_fake_quant(void *state, const vitq_tensor_view *x) {
    vitq_i_range_state *s = state;
    vitq_status st = ready(s, x, "fake_quant");
    if (st != VITQ_OK) return st;
    vitq_i_uniform_fake_quant(&s->grid, s->scale, s->zero_point, s->config.channels_per_group, x);
    return VITQ_OK;
}

vitq_status vitq_i_range_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    vitq_i_range_state *s = state;
    vitq_status st = ready(s, x, "quantize");
    if (st != VITQ_OK) return st;
    if (!codes) return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    vitq_i_uniform_quantize(&s->grid, s->scale, s->zero_point, s->config.channels_per_group, x, codes);
    return VITQ_OK;
}

vitq_status vitq_i_range_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    vitq_i_range_state *s = state;
    vitq_status st = ready(s, out, "dequantize");
    if (st != VITQ_OK) return st;
    if (!codes) return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    /* Codes come from the caller (a saved model): a value outside the grid means corrupt data. */
    int64_t n = vitq_i_view_count(out);
    for (int64_t i = 0; i < n; i++)
        if (codes[i] < s->grid.qmin || codes[i] > s->grid.qmax)
            return vitq_i_range_fail(s, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [%d, %d]",
                                     (int)codes[i], (long long)i, (int)s->grid.qmin, (int)s->grid.qmax);
    vitq_i_uniform_dequantize(&s->grid, s->scale, s->zero_point, s->config.channels_per_group, codes, out);
    return VITQ_OK;
}

/* ---- parameters ------------------------------------------------------------------------------ */

static const char *const param_names[2] = {"scale", "zero_point"};

int32_t vitq_i_range_param_count(void *state) {
    (void)state;
    return 2;
}

vitq_status vitq_i_range_get_param(void *state, int32_t index, const char **name, const float **values,
                                   int64_t *count) {
    vitq_i_range_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    if (!name || !values || !count)
        return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index < 0 || index > 1)
        return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there are 2 parameters",
                                 (int)index);
    if (!s->finalized) return vitq_i_range_fail(s, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = param_names[index];
    *values = index == 0 ? s->scale : s->zero_point;
    *count = s->config.groups;
    return VITQ_OK;
}

/* VITQ_OK when every value is a usable scale (is_scale) or zero point of this grid. */
static vitq_status check_param(const vitq_i_range_state *s, int is_scale, const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int ok = is_scale ? isfinite(v[i]) && v[i] > 0.0f
                          : v[i] == nearbyintf(v[i]) && v[i] >= (float)s->grid.qmin && v[i] <= (float)s->grid.qmax &&
                                (!s->grid.symmetric || v[i] == 0.0f);
        if (!ok)
            return vitq_i_range_fail(s, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is not %s", param_names[!is_scale],
                                     (long long)i, (double)v[i],
                                     is_scale           ? "a finite positive scale"
                                     : s->grid.symmetric ? "0 (symmetric grid)"
                                                         : "an integer zero point within the code range");
    }
    return VITQ_OK;
}

vitq_status vitq_i_range_set_param(void *state, const char *name, const float *values, int64_t count) {
    vitq_i_range_state *s = state;
    if (!s) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    int is_scale = strcmp(name, "scale") == 0;
    if (!is_scale && strcmp(name, "zero_point") != 0)
        return vitq_i_range_fail(s, VITQ_ERR_UNKNOWN_NAME, "scheme %s has no parameter '%s' (scale, zero_point)",
                                 s->scheme->name, name);
    if (!values) return vitq_i_range_fail(s, VITQ_ERR_INVALID_ARGUMENT, "set_param %s: values is NULL", name);
    if (count != s->config.groups)
        return vitq_i_range_fail(s, VITQ_ERR_SHAPE, "set_param %s: %lld values, expected %lld (one per group)", name,
                                 (long long)count, (long long)s->config.groups);
    vitq_status st = check_param(s, is_scale, values, count);
    if (st != VITQ_OK) return st;
    memcpy(is_scale ? s->scale : s->zero_point, values, (size_t)count * sizeof(float));
    if (is_scale) s->scale_set = 1;
    else s->zero_set = 1;
    if (s->scale_set && s->zero_set && !s->finalized) {
        free_pass1(s); /* the statistics can no longer be used */
        s->finalized = 1;
    }
    return VITQ_OK;
}
