/* The registry of quantization schemes: the built-ins in a const table (no global mutable state)
 * and, in a vitq_registry, copies of them plus the schemes a host application adds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/registry.h"
#include "quant/schemes.h"

static const vitq_scheme *const builtins[] = {&vitq_i_scheme_minmax,       &vitq_i_scheme_percentile,
                                              &vitq_i_scheme_omse,         &vitq_i_scheme_percentile_mse, &vitq_i_scheme_twin_softmax,
                                              &vitq_i_scheme_twin_gelu,    &vitq_i_scheme_log2,
                                              &vitq_i_scheme_log_sqrt2,    &vitq_i_scheme_mpq};
#define NUM_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

struct vitq_registry {
    vitq_allocator alloc;
    vitq_scheme *schemes;
    int count, capacity;
};

int32_t vitq_registry_count(const vitq_registry *r) { return r ? r->count : NUM_BUILTINS; }

const vitq_scheme *vitq_registry_get(const vitq_registry *r, int32_t index) {
    if (index < 0 || index >= vitq_registry_count(r)) return NULL;
    return r ? &r->schemes[index] : builtins[index];
}

const vitq_scheme *vitq_i_registry_find(const vitq_registry *r, const char *name) {
    char known[512] = "";
    size_t used = 0;
    for (int32_t i = 0; name && i < vitq_registry_count(r); i++)
        if (strcmp(vitq_registry_get(r, i)->name, name) == 0) return vitq_registry_get(r, i);
    for (int32_t i = 0; i < vitq_registry_count(r) && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", vitq_registry_get(r, i)->name);
        if (n > 0) used += (size_t)n;
    }
    vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "no quantization scheme '%s' (known: %s)", name ? name : "(null)", known);
    return NULL;
}

static int valid_name(const char *s) {
    if (!s || !*s || strlen(s) >= VITQ_I_SCHEME_NAME) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

/* Everything vitq_registry_add promises to check, for a table already copied to full size. */
static vitq_status check_scheme(const vitq_scheme *s) {
    if (!valid_name(s->name))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "scheme name '%s' is empty, too long or not made of letters, digits, '-' and '_'",
                           s->name ? s->name : "(null)");
    if (!s->create || !s->destroy || !s->observe || !s->finalize || !s->fake_quant || !s->quantize ||
        !s->dequantize || !s->param_count || !s->get_param || !s->set_param)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme '%s': a required function is NULL", s->name);
    if (s->min_bits < 2 || s->max_bits > 8 || s->min_bits > s->max_bits)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme '%s': bit range %d..%d is not within 2..8", s->name,
                           (int)s->min_bits, (int)s->max_bits);
    if (s->num_passes < 1 || s->num_passes > 2)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme '%s': num_passes %d (1 or 2)", s->name,
                           (int)s->num_passes);
    if (s->num_options < 0 || s->num_options > VITQ_I_MAX_SCHEME_OPTIONS || (s->num_options && !s->options))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme '%s': %d options (at most %d)", s->name,
                           (int)s->num_options, VITQ_I_MAX_SCHEME_OPTIONS);
    for (int i = 0; i < s->num_options; i++) {
        const vitq_scheme_option *o = &s->options[i];
        if (!valid_name(o->name) || !(o->min_value <= o->default_value && o->default_value <= o->max_value))
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                               "scheme '%s': option %d has a bad name or a default outside [min, max]", s->name, i);
    }
    return VITQ_OK;
}

vitq_status vitq_registry_create(const vitq_allocator *allocator, vitq_registry **out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_registry_create: out is NULL");
    *out = NULL;
    vitq_allocator a;
    vitq_status st = vitq_i_allocator_resolve(allocator, &a);
    if (st) return st;
    vitq_registry *r = vitq_i_calloc(&a, 1, sizeof *r);
    if (!r) return vitq_i_oom("registry", sizeof *r);
    r->alloc = a;
    r->capacity = NUM_BUILTINS + 8;
    r->schemes = vitq_i_calloc(&a, (size_t)r->capacity, sizeof *r->schemes);
    if (!r->schemes) {
        vitq_i_free(&a, r);
        return vitq_i_oom("registry", (size_t)r->capacity * sizeof *r->schemes);
    }
    for (int i = 0; i < NUM_BUILTINS; i++) r->schemes[r->count++] = *builtins[i];
    *out = r;
    return VITQ_OK;
}

vitq_status vitq_registry_add(vitq_registry *r, const vitq_scheme *scheme) {
    if (!r || !scheme) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_registry_add: NULL argument");
    if (scheme->struct_size != sizeof(vitq_scheme) || scheme->abi_version != VITQ_SCHEME_ABI_VERSION)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH,
                           "vitq_registry_add: scheme has struct_size %u and abi_version %u; this library "
                           "expects %zu and %d (VITQ_SCHEME_ABI_VERSION)",
                           (unsigned)scheme->struct_size, (unsigned)scheme->abi_version, sizeof(vitq_scheme),
                           VITQ_SCHEME_ABI_VERSION);
    vitq_status st = check_scheme(scheme);
    if (st) return st;
    for (int i = 0; i < r->count; i++)
        if (strcmp(r->schemes[i].name, scheme->name) == 0)
            return vitq_i_fail(VITQ_ERR_CONFIG, "vitq_registry_add: a scheme called '%s' is already registered",
                               scheme->name);
    if (r->count == r->capacity) {
        vitq_scheme *grown = vitq_i_calloc(&r->alloc, (size_t)r->capacity * 2, sizeof *grown);
        if (!grown) return vitq_i_oom("registry", (size_t)r->capacity * 2 * sizeof *grown);
        memcpy(grown, r->schemes, (size_t)r->count * sizeof *grown);
        vitq_i_free(&r->alloc, r->schemes);
        r->schemes = grown;
        r->capacity *= 2;
    }
    r->schemes[r->count++] = *scheme;
    return VITQ_OK;
}

void vitq_registry_free(vitq_registry *r) {
    if (!r) return;
    vitq_allocator a = r->alloc;
    vitq_i_free(&a, r->schemes);
    vitq_i_free(&a, r);
}

int vitq_i_scheme_option_index(const vitq_scheme *s, const char *key) {
    for (int i = 0; i < s->num_options; i++)
        if (strcmp(s->options[i].name, key) == 0) return i;
    return -1;
}

vitq_status vitq_i_scheme_option_check(const vitq_scheme *s, int index, double value) {
    const vitq_scheme_option *o = &s->options[index];
    if (!(value >= o->min_value && value <= o->max_value))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "scheme '%s': option %s = %g is outside [%g, %g]", s->name, o->name,
                           value, o->min_value, o->max_value);
    if (o->is_integer && value != floor(value))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "scheme '%s': option %s = %g must be a whole number", s->name,
                           o->name, value);
    return VITQ_OK;
}

vitq_status vitq_i_scheme_option_parse(const vitq_scheme *s, int index, const char *text, double *value) {
    char *end;
    double v = text ? strtod(text, &end) : 0.0;
    if (!text || end == text || *end)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "scheme '%s': option %s = '%s' is not a number", s->name,
                           s->options[index].name, text ? text : "(null)");
    vitq_status st = vitq_i_scheme_option_check(s, index, v);
    if (!st) *value = v;
    return st;
}

void vitq_i_scheme_option_defaults(const vitq_scheme *s, double *values) {
    for (int i = 0; i < s->num_options; i++) values[i] = s->options[i].default_value;
}
