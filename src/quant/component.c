/* The base of the quantizer components (see component.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "core/abi.h"
#include "quant/options.h"
#include "quant/component.h"
#include "quant/view.h"

/* ---- errors ------------------------------------------------------------------------------------------- */

static vitq_status point_failv(const vitq_scheme_host *h, const char *point, vitq_status status, const char *fmt,
                               va_list ap) {
    char msg[400], full[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(full, sizeof full, "%s: %s", point, msg);
    return h->fail(h, status, full);
}

/* Before the state exists, messages start with the configuration's point name (or the scheme's name). */
VITQ_I_PRINTF(4, 5)
static vitq_status point_fail(const vitq_scheme_host *h, const char *point, vitq_status status, const char *fmt,
                              ...) {
    va_list ap;
    va_start(ap, fmt);
    vitq_status st = point_failv(h, point, status, fmt, ap);
    va_end(ap);
    return st;
}

vitq_status vitq_i_comp_fail(const vitq_i_comp *b, vitq_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vitq_status st = point_failv(b->host, b->name, status, fmt, ap);
    va_end(ap);
    return st;
}

/* The parameter names joined by `sep`, for messages. */
static const char *param_list(const vitq_i_comp_spec *spec, const char *sep, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < spec->num_params && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? sep : "", spec->params[i].name);
        used += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

/* VITQ_OK when every element of a checked view is finite; else the position of the first that is not. */
static vitq_status check_finite(const vitq_i_comp *b, const vitq_tensor_view *x, const char *what) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *p = vitq_i_view_at(x, o, c);
            for (int64_t i = 0; i < x->inner; i++)
                if (!isfinite(p[i]))
                    return vitq_i_comp_fail(b, VITQ_ERR_NON_FINITE, "%s %g at (outer %lld, channel %lld, inner %lld)",
                                            what, (double)p[i], (long long)o, (long long)c, (long long)i);
        }
    return VITQ_OK;
}

/* ---- memory ------------------------------------------------------------------------------------------- */

void *vitq_i_comp_alloc(vitq_i_comp *b, size_t per_group) {
    const vitq_scheme_host *h = b->host;
    size_t bytes;
    for (int i = 0; i < VITQ_I_COMP_BLOCKS; i++) {
        if (b->block[i]) continue;
        void *p = vitq_i_mul_size((size_t)b->groups, per_group, &bytes) ? h->alloc(h, bytes) : NULL;
        if (p) memset(p, 0, bytes);
        else b->oom = 1;
        return b->block[i] = p;
    }
    b->oom = 1; /* a component holding more blocks than the base tracks: a bug that create reports at once */
    return NULL;
}

void *vitq_i_comp_free(vitq_i_comp *b, void *p) {
    for (int i = 0; p && i < VITQ_I_COMP_BLOCKS; i++)
        if (b->block[i] == p) {
            b->host->free(b->host, p);
            b->block[i] = NULL;
            break;
        }
    return NULL;
}

void vitq_i_comp_destroy(void *state) {
    vitq_i_comp *b = state;
    if (!b) return;
    for (int i = 0; i < VITQ_I_COMP_BLOCKS; i++) vitq_i_comp_free(b, b->block[i]);
    b->host->free(b->host, b);
}

/* ---- create ------------------------------------------------------------------------------------------- */

static vitq_status check_options(const vitq_scheme *sc, const vitq_point_config *c, const vitq_scheme_host *h,
                                 const char *point) {
    for (int32_t i = 0; i < sc->num_options; i++) {
        const vitq_scheme_option *o = &sc->options[i];
        double v = c->options ? c->options[i] : o->default_value;
        if (!vitq_i_option_in_range(o, v))
            return point_fail(h, point, VITQ_ERR_OUT_OF_RANGE, "option %s = %g is not %s in [%g, %g]", o->name, v,
                              o->is_integer ? "a whole number" : "a number", o->min_value, o->max_value);
    }
    return VITQ_OK;
}

/* What the component's kind, bits, symmetry and grouping allow. */
static vitq_status check_point(const vitq_i_comp_spec *spec, const vitq_point_config *c, const vitq_scheme_host *h,
                               const char *point) {
    const vitq_scheme *sc = spec->scheme;
    if (c->kind != VITQ_POINT_ACTIVATION)
        return point_fail(h, point, VITQ_ERR_OUT_OF_RANGE, "scheme %s quantizes activations (%s), not kind %d",
                          sc->name, spec->inputs, (int)c->kind);
    if (c->bits < sc->min_bits || c->bits > sc->max_bits)
        return spec->range_flag
                   ? point_fail(h, point, VITQ_ERR_OUT_OF_RANGE,
                                "scheme %s needs %d..%d bits (one is the range flag), not %d", sc->name,
                                (int)sc->min_bits, (int)sc->max_bits, (int)c->bits)
                   : point_fail(h, point, VITQ_ERR_OUT_OF_RANGE, "scheme %s implements %d..%d bits, not %d", sc->name,
                                (int)sc->min_bits, (int)sc->max_bits, (int)c->bits);
    if (c->symmetric != spec->symmetric) /* the other boolean is out of range, anything else is no boolean */
        return point_fail(h, point, c->symmetric == 0 || c->symmetric == 1 ? VITQ_ERR_OUT_OF_RANGE
                                                                            : VITQ_ERR_INVALID_ARGUMENT,
                          "scheme %s has %s: symmetric must be %d, not %d", sc->name, spec->codes,
                          (int)spec->symmetric, (int)c->symmetric);
    if (c->channels < 1 || c->groups < 1 || c->channels_per_group < 1 ||
        c->groups * c->channels_per_group != c->channels)
        return point_fail(h, point, VITQ_ERR_SHAPE, "%lld channels do not form %lld groups of %lld",
                          (long long)c->channels, (long long)c->groups, (long long)c->channels_per_group);
    return check_options(sc, c, h, point);
}

/* The arguments of create: a place for the state, a complete host, a configuration the component accepts. */
static vitq_status check_create(const vitq_i_comp_spec *spec, const vitq_point_config *c, const vitq_scheme_host *h,
                                void **out) {
    const char *scheme = spec->scheme->name;
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: state is NULL", scheme);
    *out = NULL;
    if (!h || !h->alloc || !h->free || !h->fail)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme %s: create: host is NULL or incomplete", scheme);
    if (h->struct_size < VITQ_I_V1_SCHEME_HOST)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH, "scheme %s: create: vitq_scheme_host.struct_size %u, at least %zu",
                           scheme, (unsigned)h->struct_size, VITQ_I_V1_SCHEME_HOST);
    if (!c || c->struct_size < VITQ_I_V1_POINT_CONFIG)
        return point_fail(h, scheme, c ? VITQ_ERR_ABI_MISMATCH : VITQ_ERR_INVALID_ARGUMENT,
                          "create: config is NULL or its struct_size is below %zu", VITQ_I_V1_POINT_CONFIG);
    return check_point(spec, c, h, c->name ? c->name : "quantizer");
}

vitq_status vitq_i_comp_create(const vitq_i_comp_spec *spec, const vitq_point_config *c, const vitq_scheme_host *h,
                               void **out) {
    vitq_status st = check_create(spec, c, h, out);
    if (st) return st;
    const char *point = c->name ? c->name : "quantizer";
    vitq_i_comp *b = h->alloc(h, spec->size);
    if (!b) return point_fail(h, point, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the quantizer");
    memset(b, 0, spec->size);
    b->spec = spec, b->host = h;
    snprintf(b->name, sizeof b->name, "%s", point);
    b->channels = c->channels, b->groups = c->groups, b->cpg = c->channels_per_group;
    spec->init(b, c);
    if (b->oom) {
        vitq_i_comp_destroy(b);
        return point_fail(h, point, VITQ_ERR_OUT_OF_MEMORY, "cannot allocate the %s %s of %lld groups",
                          spec->scheme->name, spec->holds, (long long)c->groups);
    }
    *out = b;
    return VITQ_OK;
}

double vitq_i_comp_option(const vitq_i_comp *b, const vitq_point_config *c, int32_t i) {
    return c->options ? c->options[i] : b->spec->scheme->options[i].default_value;
}

/* ---- statistics ------------------------------------------------------------------------------------- */

void vitq_i_comp_track(vitq_i_comp *b, unsigned what) {
    if (what & VITQ_I_COMP_MAX) b->max = vitq_i_comp_alloc(b, sizeof(float));
    if (what & VITQ_I_COMP_COUNTS) b->cnt = vitq_i_comp_alloc(b, VITQ_I_OCT_BINS * sizeof(uint64_t));
    if (what & VITQ_I_COMP_SUMS) b->sum = vitq_i_comp_alloc(b, VITQ_I_OCT_BINS * sizeof(double));
}

void vitq_i_comp_drop_hist(vitq_i_comp *b) {
    b->cnt = vitq_i_comp_free(b, b->cnt);
    b->sum = vitq_i_comp_free(b, b->sum);
}

/* Bin of x: its exponent and top 4 mantissa bits, read off the float's bits. */
static size_t oct_bin(float x) {
    if (!(x >= 0x1p-64f)) return 0;
    if (x >= 0x1p32f) return VITQ_I_OCT_BINS - 1;
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return 1 + (u >> (23 - 4)) - (size_t)VITQ_I_OCT_LOW * VITQ_I_OCT_SUB;
}

/* Bounds of bin k (0 < k < last): biased exponent (k - 1) / SUB + LOW, mantissa step (k - 1) % SUB. */
static void oct_bounds(size_t k, double *lo, double *hi) {
    int e = (int)((k - 1) / VITQ_I_OCT_SUB) + VITQ_I_OCT_LOW - 127;
    *lo = ldexp(1.0 + (double)((k - 1) % VITQ_I_OCT_SUB) / VITQ_I_OCT_SUB, e);
    *hi = *lo + ldexp(1.0 / VITQ_I_OCT_SUB, e);
}

/* A group's values in x into the maximum and histogram of the group, those that are tracked. */
static void add_span(vitq_i_comp *b, int64_t g, const float *p, int64_t n) {
    if (b->max) {
        float m = b->max[g];
        for (int64_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
        b->max[g] = m;
    }
    uint64_t *cnt = b->cnt ? b->cnt + g * VITQ_I_OCT_BINS : NULL;
    double *sum = b->sum ? b->sum + g * VITQ_I_OCT_BINS : NULL;
    for (int64_t i = 0; cnt && i < n; i++) {
        size_t k = oct_bin(p[i]);
        cnt[k]++;
        if (sum) sum[k] += p[i];
    }
}

static void add_stats(vitq_i_comp *b, const vitq_tensor_view *x) {
    int64_t n = b->cpg * x->inner;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) add_span(b, g, vitq_i_comp_span(b, x, o, g), n);
}

double vitq_i_comp_quantile(const vitq_i_comp *b, int64_t g, double t) {
    const uint64_t *cnt = b->cnt + g * VITQ_I_OCT_BINS;
    double total = 0.0, cum = 0.0, max = b->max[g];
    for (size_t k = 0; k < VITQ_I_OCT_BINS; k++) total += (double)cnt[k];
    double target = t * total;
    for (size_t k = 0; k < VITQ_I_OCT_BINS; k++) {
        double c = (double)cnt[k], lo = 0.0, hi = 0.0;
        if (c == 0.0 || cum + c < target) {
            cum += c;
            continue;
        }
        if (k == VITQ_I_OCT_BINS - 1) lo = 0x1p32, hi = max;
        else if (k > 0) oct_bounds(k, &lo, &hi);
        double v = lo + (target - cum) / c * (hi - lo);
        return v < max ? v : max;
    }
    return max;
}

double vitq_i_comp_hist_error(const vitq_i_comp *b, int64_t g, float (*fq)(float x, float scale, int32_t top),
                              float scale, int32_t top) {
    const uint64_t *cnt = b->cnt + g * VITQ_I_OCT_BINS;
    const double *sum = b->sum + g * VITQ_I_OCT_BINS;
    double e = 0.0;
    for (size_t k = 0; k < VITQ_I_OCT_BINS; k++) {
        if (!cnt[k]) continue;
        double mean = sum[k] / (double)cnt[k], d = mean - fq((float)mean, scale, top);
        e += (double)cnt[k] * d * d;
    }
    return e;
}

/* ---- calibration -------------------------------------------------------------------------------------- */

vitq_status vitq_i_comp_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    vitq_i_comp *b = state;
    if (!b) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "observe: state is NULL");
    int32_t passes = b->spec->scheme->num_passes;
    if (pass < 0 || pass >= passes)
        return vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "pass %d, but scheme %s has %d pass%s", (int)pass,
                                b->spec->scheme->name, (int)passes, passes == 1 ? "" : "es");
    if (b->known) return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "observe after the parameters were set");
    if (pass == 0 && b->pass1) return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "observe pass 0 after pass 1 began");
    if (pass == 1 && !b->observed)
        return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "observe pass 1 before pass 0 saw any data");
    vitq_status st = vitq_i_view_check(x, b->channels, b->name);
    if (!st) st = check_finite(b, x, "observed");
    if (st) return st;
    if (pass == 0) add_stats(b, x);
    if (b->spec->observe) st = b->spec->observe(b, pass, x);
    if (st) return st;
    if (pass == 0) b->observed = 1;
    else b->pass1 = 1; /* after the callback: it sees pass1 == 0 at the first batch of pass 1 */
    return VITQ_OK;
}

/* Parameters just became known: what they determine is rebuilt, the statistics can no longer be used. */
static void settle(vitq_i_comp *b) {
    if (b->spec->derive) b->spec->derive(b);
    if (b->spec->drop) b->spec->drop(b);
    vitq_i_comp_drop_hist(b);
}

vitq_status vitq_i_comp_finalize(void *state) {
    vitq_i_comp *b = state;
    if (!b) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "finalize: state is NULL");
    const vitq_scheme *sc = b->spec->scheme;
    if (b->known) return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "finalize after the parameters were set (or twice)");
    if (sc->num_passes > 1 && !b->pass1)
        return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "finalize before pass 1 (scheme %s needs %d passes)", sc->name,
                                (int)sc->num_passes);
    if (!b->observed) return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "finalize before any data was observed");
    b->spec->choose(b);
    b->known = (1u << b->spec->num_params) - 1u;
    settle(b);
    return VITQ_OK;
}

/* ---- use ---------------------------------------------------------------------------------------------- */

/* The checks every use of the parameters starts with. */
static vitq_status ready(const vitq_i_comp *b, const vitq_tensor_view *x, const char *what) {
    if (!b) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: state is NULL", what);
    if (!vitq_i_comp_complete(b)) {
        char list[128];
        return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "%s before finalize (or set_param of %s)", what,
                                param_list(b->spec, " and ", list, sizeof list));
    }
    return vitq_i_view_check(x, b->channels, b->name);
}

vitq_status vitq_i_comp_check_fake_quant(const vitq_i_comp *b, const vitq_tensor_view *x) {
    vitq_status st = ready(b, x, "fake_quant");
    return st ? st : check_finite(b, x, "fake_quant of");
}

vitq_status vitq_i_comp_check_quantize(const vitq_i_comp *b, const vitq_tensor_view *x, const int32_t *codes) {
    vitq_status st = ready(b, x, "quantize");
    if (!st && !codes) st = vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "quantize: codes is NULL");
    return st ? st : check_finite(b, x, "quantize of");
}

/* Codes come from the caller (a saved model): one outside the grid means corrupt data. */
vitq_status vitq_i_comp_check_dequantize(const vitq_i_comp *b, const int32_t *codes, const vitq_tensor_view *out) {
    vitq_status st = ready(b, out, "dequantize");
    if (!st && !codes) st = vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "dequantize: codes is NULL");
    if (st) return st;
    int64_t count = vitq_i_view_count(out);
    for (int64_t i = 0; i < count; i++)
        if (codes[i] < b->code_min || codes[i] > b->code_max)
            return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "dequantize: code %d at index %lld is outside [%d, %d]",
                                    (int)codes[i], (long long)i, (int)b->code_min, (int)b->code_max);
    return VITQ_OK;
}

/* ---- parameters --------------------------------------------------------------------------------------- */

vitq_status vitq_i_comp_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count) {
    const vitq_i_comp *b = state;
    if (!b) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "get_param: state is NULL");
    int32_t n = b->spec->num_params;
    if (!name || !values || !count)
        return vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "get_param: name, values and count must be set");
    if (index < 0 || index >= n)
        return vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "get_param: index %d, but there %s %d parameter%s",
                                (int)index, n == 1 ? "is" : "are", (int)n, n == 1 ? "" : "s");
    if (!vitq_i_comp_complete(b)) return vitq_i_comp_fail(b, VITQ_ERR_BAD_STATE, "get_param before finalize");
    *name = b->spec->params[index].name, *values = vitq_i_comp_values(b, index), *count = b->groups;
    return VITQ_OK;
}

static int32_t param_index(const vitq_i_comp_spec *spec, const char *name) {
    for (int32_t i = 0; i < spec->num_params; i++)
        if (strcmp(name, spec->params[i].name) == 0) return i;
    return -1;
}

/* Any time, one array at a time: a saved model loads this way, and a calibration method searches a
 * parameter by setting it. */
vitq_status vitq_i_comp_set_param(void *state, const char *name, const float *values, int64_t count) {
    vitq_i_comp *b = state;
    if (!b) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "set_param: state is NULL");
    if (!name) return vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "set_param: name is NULL");
    int32_t k = param_index(b->spec, name);
    if (k < 0) {
        char list[128];
        return vitq_i_comp_fail(b, VITQ_ERR_UNKNOWN_NAME, "scheme %s has no parameter '%s' (%s)", b->spec->scheme->name,
                                name, param_list(b->spec, ", ", list, sizeof list));
    }
    if (!values) return vitq_i_comp_fail(b, VITQ_ERR_INVALID_ARGUMENT, "set_param %s: values is NULL", name);
    if (count != b->groups)
        return vitq_i_comp_fail(b, VITQ_ERR_SHAPE, "set_param %s: %lld values, expected %lld (one per group)", name,
                                (long long)count, (long long)b->groups);
    for (int64_t g = 0; g < count; g++) {
        vitq_status st = b->spec->params[k].check(b, k, g, values[g]);
        if (st) return st;
    }
    memcpy(vitq_i_comp_values(b, k), values, (size_t)count * sizeof(float));
    b->known |= 1u << k;
    settle(b);
    return VITQ_OK;
}

vitq_status vitq_i_comp_check_scale(const vitq_i_comp *b, int32_t param, int64_t g, float v) {
    if (isfinite(v) && v > 0.0f) return VITQ_OK;
    return vitq_i_comp_fail(b, VITQ_ERR_OUT_OF_RANGE, "%s[%lld] = %g is not a finite positive scale",
                            b->spec->params[param].name, (long long)g, (double)v);
}
