/* The public helpers about models that need nothing but the model layer: option and info struct
 * initialisers, names of hyper-parameters and of their sources. */
#include <string.h>

#include "core/core.h"

void vitq_model_options_init(vitq_model_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
}

void vitq_model_info_init(vitq_model_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

static const char *const hparam_names[VITQ_HPARAM_COUNT] = {"num_heads", "layer_norm_eps", "gelu",
                                                            "image_size", "mean", "std"};

const char *vitq_hparam_name(vitq_hparam h) {
    return (int)h >= 0 && h < VITQ_HPARAM_COUNT ? hparam_names[h] : "unknown";
}

const char *vitq_source_string(vitq_source s) {
    switch (s) {
    case VITQ_SOURCE_NONE: return "undecided";
    case VITQ_SOURCE_OVERRIDE: return "option";
    case VITQ_SOURCE_CONFIG_JSON: return "config.json";
    case VITQ_SOURCE_PREPROCESSOR: return "preprocessor_config.json";
    case VITQ_SOURCE_METADATA: return "__metadata__";
    case VITQ_SOURCE_ARCH_TABLE: return "timm architecture name";
    case VITQ_SOURCE_LAYOUT: return "checkpoint layout default";
    case VITQ_SOURCE_SHAPES: return "tensor shapes";
    }
    return "unknown source";
}
