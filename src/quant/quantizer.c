/* The public stand-alone quantizer: one scheme instance for tensors the caller hands in. The scheme
 * state is created at the first observation, when the channel count becomes known. */
#include <stdio.h>
#include <string.h>

#include "quant/options.h"
#include "quant/registry.h"
#include "quant/view.h"

struct vitq_quantizer {
    vitq_allocator alloc;
    const vitq_scheme *scheme;
    vitq_point_config config; /* channels 0 until the first observation */
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
    int64_t heads;
    int created, finalized;
    vitq_i_instance inst;
};

vitq_status vitq_quantizer_create(const vitq_registry *registry, const char *scheme, const vitq_allocator *allocator,
                                  vitq_quantizer **out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_create: out is NULL");
    *out = NULL;
    vitq_allocator a;
    vitq_status st = vitq_i_allocator_resolve(allocator, &a);
    if (st) return st;
    const vitq_scheme *s = vitq_i_registry_find(registry, scheme);
    if (!s) return VITQ_ERR_UNKNOWN_NAME;
    vitq_quantizer *q = vitq_i_calloc(&a, 1, sizeof *q);
    if (!q) return vitq_i_oom("quantizer", sizeof *q);
    q->alloc = a;
    q->scheme = s;
    q->config.struct_size = sizeof q->config;
    q->config.name = "quantizer";
    q->config.kind = VITQ_POINT_ACTIVATION;
    q->config.bits = s->max_bits < 8 ? s->max_bits : 8;
    q->config.granularity = VITQ_GRAN_TENSOR;
    vitq_i_scheme_option_defaults(s, q->options);
    *out = q;
    return VITQ_OK;
}

void vitq_quantizer_free(vitq_quantizer *q) {
    if (!q) return;
    vitq_allocator a = q->alloc;
    if (q->created) vitq_i_instance_destroy(&q->inst);
    vitq_i_free(&a, q);
}

/* The quantizer's own numeric keys, checked by the one option parser; bits takes the scheme's range. */
enum { KEY_BITS, KEY_SYMMETRIC, KEY_HEADS, KEY_SEED, NUM_KEYS };
static const vitq_scheme_option keys[NUM_KEYS] = {
    {"bits", "bit width, within the scheme's range", 2, 8, 8, 1},
    {"symmetric", "1: signed codes and zero point 0; 0: unsigned codes with a zero point", 0, 1, 0, 1},
    {"heads", "attention heads the channels divide into (granularity head)", 1, INT32_MAX, 1, 1},
    {"seed", "for schemes that draw random numbers", 0, (double)INT64_MAX, 0, 1},
};

vitq_status vitq_quantizer_set(vitq_quantizer *q, const char *key, const char *value) {
    if (!q || !key || !value) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_set: NULL argument");
    if (q->created)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_quantizer_set(%s): options are fixed once data was observed", key);
    if (strcmp(key, "granularity") == 0) return vitq_i_parse_granularity(value, &q->config.granularity);
    if (strcmp(key, "kind") == 0) {
        if (strcmp(value, "weight") == 0)
            q->config.kind = VITQ_POINT_WEIGHT;
        else if (strcmp(value, "activation") == 0)
            q->config.kind = VITQ_POINT_ACTIVATION;
        else
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "kind = '%s' (weight or activation)", value);
        return VITQ_OK;
    }
    int k = vitq_i_option_index(keys, NUM_KEYS, key);
    if (k >= 0) {
        vitq_scheme_option o = keys[k];
        if (k == KEY_BITS) o.min_value = q->scheme->min_bits, o.max_value = q->scheme->max_bits;
        int64_t v;
        vitq_status st = vitq_i_option_parse_int(&o, "quantizer", value, &v);
        if (st) return st;
        if (k == KEY_BITS) q->config.bits = (int32_t)v;
        if (k == KEY_SYMMETRIC) q->config.symmetric = (int32_t)v;
        if (k == KEY_HEADS) q->heads = v;
        if (k == KEY_SEED) q->config.seed = (uint64_t)v;
        return VITQ_OK;
    }
    int index = vitq_i_scheme_option_index(q->scheme, key);
    if (index < 0)
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME,
                           "quantizer option '%s': not bits, granularity, symmetric, heads, kind, seed or an "
                           "option of scheme '%s'",
                           key, q->scheme->name);
    return vitq_i_scheme_option_parse(q->scheme, index, value, &q->options[index]);
}

vitq_status vitq_quantizer_set_int(vitq_quantizer *q, const char *key, int64_t value) {
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)value);
    return vitq_quantizer_set(q, key, text);
}

vitq_status vitq_quantizer_set_float(vitq_quantizer *q, const char *key, double value) {
    char text[64];
    snprintf(text, sizeof text, "%.17g", value);
    return vitq_quantizer_set(q, key, text);
}

int32_t vitq_quantizer_num_passes(const vitq_quantizer *q) { return q ? q->scheme->num_passes : 0; }

static vitq_status ensure_created(vitq_quantizer *q, const vitq_tensor_view *x) {
    if (q->created) return VITQ_OK;
    vitq_status st = vitq_i_view_check(x, 0, "quantizer");
    if (st) return st;
    q->config.channels = x->channels;
    q->config.options = q->options;
    if ((st = vitq_i_config_groups(&q->config, q->heads))) return st;
    if ((st = vitq_i_instance_create(&q->inst, &q->alloc, q->scheme, &q->config))) return st;
    q->created = 1;
    return VITQ_OK;
}

vitq_status vitq_quantizer_observe(vitq_quantizer *q, int32_t pass, const vitq_tensor_view *x) {
    if (!q) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_observe: quantizer is NULL");
    if (pass < 0 || pass >= q->scheme->num_passes)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "vitq_quantizer_observe: pass %d, scheme '%s' has %d", (int)pass,
                           q->scheme->name, (int)q->scheme->num_passes);
    if (q->finalized) return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_quantizer_observe: already finalized");
    vitq_status st = ensure_created(q, x);
    if (!st) st = vitq_i_view_check(x, q->config.channels, "quantizer");
    return st ? st : q->inst.scheme.observe(q->inst.state, pass, x);
}

vitq_status vitq_quantizer_finalize(vitq_quantizer *q) {
    if (!q) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_finalize: quantizer is NULL");
    if (!q->created) return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_quantizer_finalize: nothing was observed");
    vitq_status st = q->inst.scheme.finalize(q->inst.state);
    if (!st) q->finalized = 1;
    return st;
}

static vitq_status ready(const vitq_quantizer *q, const vitq_tensor_view *x, const char *fn) {
    if (!q) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: quantizer is NULL", fn);
    if (!q->finalized) return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: call vitq_quantizer_finalize first", fn);
    return vitq_i_view_check(x, q->config.channels, fn);
}

vitq_status vitq_quantizer_fake_quant(vitq_quantizer *q, const vitq_tensor_view *x) {
    vitq_status st = ready(q, x, "vitq_quantizer_fake_quant");
    return st ? st : q->inst.scheme.fake_quant(q->inst.state, x);
}

vitq_status vitq_quantizer_quantize(vitq_quantizer *q, const vitq_tensor_view *x, int32_t *codes) {
    vitq_status st = ready(q, x, "vitq_quantizer_quantize");
    if (!st && !codes) st = vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_quantize: codes is NULL");
    return st ? st : q->inst.scheme.quantize(q->inst.state, x, codes);
}

vitq_status vitq_quantizer_dequantize(vitq_quantizer *q, const int32_t *codes, const vitq_tensor_view *out) {
    vitq_status st = ready(q, out, "vitq_quantizer_dequantize");
    if (!st && !codes) st = vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_dequantize: codes is NULL");
    return st ? st : q->inst.scheme.dequantize(q->inst.state, codes, out);
}

vitq_status vitq_quantizer_param(const vitq_quantizer *q, const char *name, const float **values, int64_t *count) {
    if (!q || !name || !values || !count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_quantizer_param: NULL argument");
    if (!q->finalized) return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_quantizer_param: not finalized");
    int32_t n = q->inst.scheme.param_count(q->inst.state);
    for (int32_t i = 0; i < n; i++) {
        const char *pname;
        vitq_status st = q->inst.scheme.get_param(q->inst.state, i, &pname, values, count);
        if (st) return st;
        if (strcmp(pname, name) == 0) return VITQ_OK;
    }
    return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "quantizer (scheme %s) has no parameter '%s'", q->scheme->name, name);
}
