/* timm builds a model as create_model(architecture, **model_args): the architecture name fixes
 * defaults (width, depth, heads, patch, image size, window) and the hub config's model_args override
 * any of them. This applies that rule to vitq's table of architecture names. */
#ifndef VITQ_MODEL_TIMM_ARGS_H
#define VITQ_MODEL_TIMM_ARGS_H

#include "core/core.h"
#include "model/arch_table.h"
#include "util/json.h"

/* *out = *base with every model_args member vitq knows laid over it: embed_dim, depth, num_heads,
 * patch_size, img_size (a number or a square [h, w]) and, for Swin, depths (their sum becomes the
 * depth), num_heads as a list (stage 0's becomes num_heads) and window_size (a number or a square
 * pair). `overridden` receives the names applied ("embed_dim, depth"; "" when none). model_args may
 * be NULL. A member of the wrong type or value is VITQ_ERR_CONFIG naming `file`. */
vitq_status vitq_i_timm_apply_model_args(const vitq_i_arch_entry *base, const vitq_i_json *model_args,
                                         const char *file, vitq_i_arch_entry *out, char *overridden, size_t cap);

/* A model_args size that may be a number or a square pair ([h, w], h == w), e.g. img_size:
 * 1 found (*out set), 0 absent, -1 invalid (error set naming file and key). */
int vitq_i_timm_square(const vitq_i_json *model_args, const char *file, const char *key, int *out);

#endif
