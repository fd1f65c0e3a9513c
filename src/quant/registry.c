/* The registry of quantization schemes: the built-ins of scheme_list.h in a const table (no global
 * mutable state) and, in a vitq_registry, copies of them plus the schemes a host application adds. */
#include <stdio.h>
#include <string.h>

#include "core/abi.h"
#include "quant/options.h"
#include "quant/registry.h"
#include "quant/schemes.h"

/* Every line of scheme_list.h, in its order. */
static const vitq_scheme *const builtins[] = {
#define VITQ_I_SCHEME(table, file) &table,
#include "quant/scheme_list.h"
#undef VITQ_I_SCHEME
};
#define NUM_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

struct vitq_registry {
    vitq_allocator alloc;
    vitq_scheme *schemes;
    vitq_scheme_option **owned; /* [capacity]: the registry's copy of an added scheme's options, or NULL */
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
    r->owned = vitq_i_calloc(&a, (size_t)r->capacity, sizeof *r->owned);
    if (!r->schemes || !r->owned) {
        vitq_registry_free(r);
        return vitq_i_oom("registry", (size_t)r->capacity * sizeof *r->schemes);
    }
    for (int i = 0; i < NUM_BUILTINS; i++) r->schemes[r->count++] = *builtins[i];
    *out = r;
    return VITQ_OK;
}

/* The options of table t read with its stride (option_size; 0: a table from before it, plain entries)
 * into an array of this library's layout that the registry owns (*owned), which t then points to:
 * whatever header a scheme was built with, everything after registration indexes options plainly. */
static vitq_status own_options(vitq_registry *r, vitq_scheme *t, vitq_scheme_option **owned) {
    *owned = NULL;
    const char *name = t->name ? t->name : "(null)";
    if (t->num_options < 0 || t->num_options > VITQ_I_MAX_SCHEME_OPTIONS || (t->num_options && !t->options))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "scheme '%s': %d options (at most %d)", name,
                           (int)t->num_options, VITQ_I_MAX_SCHEME_OPTIONS);
    size_t stride = t->option_size ? t->option_size : sizeof(vitq_scheme_option);
    if (stride < sizeof(vitq_scheme_option) || stride > VITQ_I_STRUCT_MAX)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH, "vitq_registry_add: scheme '%s': option_size %u; this library takes "
                           "%zu to %u (or 0)", name, (unsigned)t->option_size, sizeof(vitq_scheme_option),
                           VITQ_I_STRUCT_MAX);
    if (!t->num_options) return VITQ_OK;
    *owned = vitq_i_alloc_array(&r->alloc, (size_t)t->num_options, sizeof **owned);
    if (!*owned) return vitq_i_oom("scheme options", (size_t)t->num_options * sizeof **owned);
    for (int32_t i = 0; i < t->num_options; i++)
        memcpy(&(*owned)[i], (const char *)t->options + (size_t)i * stride, sizeof **owned);
    t->options = *owned;
    t->option_size = sizeof(vitq_scheme_option);
    return VITQ_OK;
}

vitq_status vitq_registry_add(vitq_registry *r, const vitq_scheme *scheme) {
    if (!r || !scheme) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_registry_add: NULL argument");
    vitq_status size_st = vitq_i_check_struct_size(scheme->struct_size, VITQ_I_V1_SCHEME, "vitq_registry_add",
                                                   "vitq_scheme");
    if (size_st) return size_st;
    if (scheme->abi_version != VITQ_SCHEME_ABI_VERSION)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH,
                           "vitq_registry_add: scheme '%s' has abi_version %u; this library implements %d "
                           "(VITQ_SCHEME_ABI_VERSION)",
                           scheme->name ? scheme->name : "?", (unsigned)scheme->abi_version, VITQ_SCHEME_ABI_VERSION);
    /* a table of an older header has no option_size (zero: the first release's entries), a newer one
     * members this library does not know */
    vitq_scheme table;
    memset(&table, 0, sizeof table);
    vitq_i_struct_in(&table, sizeof table, scheme, scheme->struct_size);
    vitq_scheme_option *owned = NULL;
    vitq_status st = own_options(r, &table, &owned);
    if (!st) st = check_scheme(&table);
    for (int i = 0; !st && i < r->count; i++)
        if (strcmp(r->schemes[i].name, table.name) == 0)
            st = vitq_i_fail(VITQ_ERR_CONFIG, "vitq_registry_add: a scheme called '%s' is already registered",
                             table.name);
    if (!st && r->count == r->capacity) {
        vitq_scheme *grown = vitq_i_calloc(&r->alloc, (size_t)r->capacity * 2, sizeof *grown);
        vitq_scheme_option **grown_owned = vitq_i_calloc(&r->alloc, (size_t)r->capacity * 2, sizeof *grown_owned);
        if (grown && grown_owned) {
            memcpy(grown, r->schemes, (size_t)r->count * sizeof *grown);
            memcpy(grown_owned, r->owned, (size_t)r->count * sizeof *grown_owned);
            vitq_i_free(&r->alloc, r->schemes);
            vitq_i_free(&r->alloc, r->owned);
            r->schemes = grown, r->owned = grown_owned;
            r->capacity *= 2;
        } else {
            vitq_i_free(&r->alloc, grown);
            vitq_i_free(&r->alloc, grown_owned);
            st = vitq_i_oom("registry", (size_t)r->capacity * 2 * sizeof *grown);
        }
    }
    if (st) {
        vitq_i_free(&r->alloc, owned);
        return st;
    }
    r->owned[r->count] = owned;
    r->schemes[r->count++] = table;
    return VITQ_OK;
}

void vitq_registry_free(vitq_registry *r) {
    if (!r) return;
    vitq_allocator a = r->alloc;
    for (int i = 0; r->owned && i < r->count; i++) vitq_i_free(&a, r->owned[i]);
    vitq_i_free(&a, r->owned);
    vitq_i_free(&a, r->schemes);
    vitq_i_free(&a, r);
}

int vitq_i_scheme_option_index(const vitq_scheme *s, const char *key) {
    return vitq_i_option_index(s->options, s->num_options, key);
}

/* The owner named in option messages: "scheme 'percentile'". */
static void owner_of(const vitq_scheme *s, char *out, size_t size) { snprintf(out, size, "scheme '%s'", s->name); }

vitq_status vitq_i_scheme_option_check(const vitq_scheme *s, int index, double value) {
    char owner[VITQ_I_SCHEME_NAME + 16];
    owner_of(s, owner, sizeof owner);
    return vitq_i_option_check(&s->options[index], owner, value);
}

vitq_status vitq_i_scheme_option_parse(const vitq_scheme *s, int index, const char *text, double *value) {
    char owner[VITQ_I_SCHEME_NAME + 16];
    owner_of(s, owner, sizeof owner);
    return vitq_i_option_parse(&s->options[index], owner, text, value);
}

void vitq_i_scheme_option_defaults(const vitq_scheme *s, double *values) {
    vitq_i_option_defaults(s->options, s->num_options, values);
}
