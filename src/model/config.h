/* Hyper-parameters that tensor shapes do not reveal (heads, LayerNorm eps, GELU form, image size,
 * mean/std), decided from, in this order: explicit options; config.json (Hugging Face or timm hub);
 * HF preprocessor_config.json; the safetensors __metadata__ (vitq.* keys); timm's architecture-name
 * table; and, for timm checkpoints only, what timm's code fixes (eps 1e-6, exact GELU). Every
 * source that states a value the shapes also reveal is checked against them. */
#ifndef VITQ_MODEL_CONFIG_H
#define VITQ_MODEL_CONFIG_H

#include "core/core.h"
#include "io/safetensors.h"
#include "util/json.h"

/* What the checkpoint's shapes say. */
typedef struct vitq_i_shape_facts {
    int swin;        /* 1: Swin (stages below), 0: ViT / DeiT */
    vitq_layout layout;
    int embed_dim, patch_size, in_channels, depth, mlp_dim, num_classes;
    int num_prefix;  /* ViT: 1 or 2 */
    int pos_patches; /* ViT: pos_embed rows minus prefix tokens */
    int distilled;
    /* Swin: per stage, from the blocks' tensors (heads and window from the relative position table) */
    int num_stages;
    int stage_depth[VITQ_MAX_STAGES], stage_dim[VITQ_MAX_STAGES], stage_heads[VITQ_MAX_STAGES];
    int stage_window[VITQ_MAX_STAGES];
    int mask_image_size; /* Swin timm < 0.9: image size implied by a stored attn_mask (0: none) */
} vitq_i_shape_facts;

typedef struct vitq_i_config_inputs {
    const vitq_model_options *opts; /* never NULL */
    const vitq_i_json *config;      /* config.json or NULL */
    const char *config_name;
    const vitq_i_json *preproc;     /* preprocessor_config.json or NULL */
    const char *preproc_name;
    const vitq_i_safetensors *st;   /* for __metadata__ */
    const char *name;               /* weights file name */
} vitq_i_config_inputs;

/* Fill the hyper-parameter members of `info` and their sources. Mean/std may stay undecided
 * (source NONE): only preprocessing needs them, and it fails then with VITQ_ERR_MISSING_CONFIG. */
vitq_status vitq_i_config_resolve(const vitq_i_shape_facts *facts, const vitq_i_config_inputs *in,
                                  vitq_model_info *info, vitq_source *sources);

#endif
