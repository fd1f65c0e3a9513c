/* Schemes by name (registry.c) and configured instances of a scheme (instance.c). */
#ifndef VITQ_QUANT_REGISTRY_H
#define VITQ_QUANT_REGISTRY_H

#include "core/core.h"

#define VITQ_I_MAX_SCHEME_OPTIONS 16
#define VITQ_I_SCHEME_NAME 48

/* The scheme called `name` in `r` (NULL: built-ins), or NULL with VITQ_ERR_UNKNOWN_NAME recorded
 * (the message lists the known names). */
const vitq_scheme *vitq_i_registry_find(const vitq_registry *r, const char *name);

/* The options of scheme `s` through the one option parser (quant/options.h), messages naming the scheme. */
/* Index of option `key` of scheme `s`, or -1. */
int vitq_i_scheme_option_index(const vitq_scheme *s, const char *key);
/* Parse `text` as a value of option `index` of `s` into *value (range and integrality checked). */
vitq_status vitq_i_scheme_option_parse(const vitq_scheme *s, int index, const char *text, double *value);
vitq_status vitq_i_scheme_option_check(const vitq_scheme *s, int index, double value);
/* Defaults of every option of `s` into values[0 .. num_options). */
void vitq_i_scheme_option_defaults(const vitq_scheme *s, double *values);

/* One live quantizer of one tensor: a copy of the scheme table, its configuration and state. */
typedef struct vitq_i_instance {
    vitq_allocator alloc;
    vitq_scheme scheme;
    vitq_point_config config;
    char name[96];
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
    vitq_scheme_host host;
    void *state;
} vitq_i_instance;

/* Create the scheme's state for `config` (its name and options are copied; config->options may
 * be NULL for the defaults). The instance must stay at its address while it lives (host.impl). */
vitq_status vitq_i_instance_create(vitq_i_instance *inst, const vitq_allocator *a, const vitq_scheme *scheme,
                                   const vitq_point_config *config);
void vitq_i_instance_destroy(vitq_i_instance *inst);
/* dst (created before, with the allocator it keeps) becomes a quantizer equal to the finalized src: the
 * same scheme and configuration, src's parameters set into it (as a saved file would give them). */
vitq_status vitq_i_instance_copy(vitq_i_instance *dst, const vitq_i_instance *src);

/* Fill config->groups and channels_per_group from its granularity, channels and `heads` (channels of
 * one head are consecutive). VITQ_ERR_OUT_OF_RANGE naming `config->name` when per-head does not apply. */
vitq_status vitq_i_config_groups(vitq_point_config *config, int64_t heads);

/* Parse "tensor" / "channel" / "head" (or 1 / 2 / 3) into *granularity. */
vitq_status vitq_i_parse_granularity(const char *text, int32_t *granularity);
const char *vitq_i_granularity_name(int32_t granularity);

#endif
