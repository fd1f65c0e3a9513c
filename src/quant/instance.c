/* A configured, live quantizer of one tensor (see registry.h), with the host services it gets. */
#include <stdio.h>
#include <string.h>

#include "quant/metrics.h"
#include "quant/registry.h"

static void *host_alloc(const vitq_scheme_host *h, size_t size) {
    const vitq_i_instance *inst = h->impl;
    return vitq_i_alloc(&inst->alloc, size);
}

static void host_free(const vitq_scheme_host *h, void *ptr) {
    const vitq_i_instance *inst = h->impl;
    if (ptr) vitq_i_free(&inst->alloc, ptr);
}

static vitq_status host_fail(const vitq_scheme_host *h, vitq_status status, const char *message) {
    const vitq_i_instance *inst = h->impl;
    return vitq_i_fail(status, "%s (scheme %s): %s", inst->name, inst->scheme.name, message ? message : "failed");
}

vitq_status vitq_i_instance_create(vitq_i_instance *inst, const vitq_allocator *a, const vitq_scheme *scheme,
                                   const vitq_point_config *config) {
    memset(inst, 0, sizeof *inst);
    inst->alloc = *a;
    inst->scheme = *scheme;
    inst->config = *config;
    snprintf(inst->name, sizeof inst->name, "%s", config->name ? config->name : "quantizer");
    inst->config.name = inst->name;
    if (config->options)
        memcpy(inst->options, config->options, (size_t)scheme->num_options * sizeof(double));
    else
        vitq_i_scheme_option_defaults(scheme, inst->options);
    inst->config.options = inst->options;
    inst->config.scheme_user = scheme->user; /* the registering host's context, whatever the caller passed */
    inst->host.struct_size = sizeof inst->host;
    inst->host.alloc = host_alloc;
    inst->host.free = host_free;
    inst->host.fail = host_fail;
    inst->host.impl = inst;
    inst->host.metric = vitq_i_metric;
    if (config->bits < scheme->min_bits || config->bits > scheme->max_bits)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: %d bits, scheme '%s' implements %d to %d", inst->name,
                           (int)config->bits, scheme->name, (int)scheme->min_bits, (int)scheme->max_bits);
    vitq_status st = scheme->create(&inst->config, &inst->host, &inst->state);
    if (st) {
        inst->state = NULL;
        return st;
    }
    return VITQ_OK;
}

void vitq_i_instance_destroy(vitq_i_instance *inst) {
    if (inst->state) inst->scheme.destroy(inst->state);
    inst->state = NULL;
}

vitq_status vitq_i_instance_copy(vitq_i_instance *dst, const vitq_i_instance *src) {
    vitq_i_instance_destroy(dst);
    vitq_allocator a = dst->alloc;
    vitq_status st = vitq_i_instance_create(dst, &a, &src->scheme, &src->config);
    int32_t n = st ? 0 : src->scheme.param_count(src->state);
    for (int32_t k = 0; !st && k < n; k++) {
        const char *name;
        const float *values;
        int64_t count;
        st = src->scheme.get_param(src->state, k, &name, &values, &count);
        if (!st) st = dst->scheme.set_param(dst->state, name, values, count);
    }
    return st;
}

vitq_status vitq_i_config_groups(vitq_point_config *c, int64_t heads) {
    switch (c->granularity) {
    case VITQ_GRAN_TENSOR:
        c->groups = 1;
        c->channels_per_group = c->channels;
        return VITQ_OK;
    case VITQ_GRAN_CHANNEL:
        c->groups = c->channels;
        c->channels_per_group = 1;
        return VITQ_OK;
    case VITQ_GRAN_HEAD:
        if (heads < 1 || c->channels % heads != 0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "%s: granularity 'head' needs channels (%lld) divided into attention heads (%lld)",
                               c->name, (long long)c->channels, (long long)heads);
        c->groups = heads;
        c->channels_per_group = c->channels / heads;
        return VITQ_OK;
    }
    return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: granularity %d", c->name, (int)c->granularity);
}

const char *vitq_i_granularity_name(int32_t g) {
    return g == VITQ_GRAN_TENSOR ? "tensor" : g == VITQ_GRAN_CHANNEL ? "channel" : g == VITQ_GRAN_HEAD ? "head" : "?";
}

vitq_status vitq_i_parse_granularity(const char *text, int32_t *granularity) {
    static const char *const names[] = {"tensor", "channel", "head"};
    for (int i = 0; text && i < 3; i++)
        if (strcmp(text, names[i]) == 0 || (text[0] == '1' + i && !text[1])) {
            *granularity = i + 1;
            return VITQ_OK;
        }
    return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "granularity '%s' (tensor, channel or head)", text ? text : "(null)");
}
