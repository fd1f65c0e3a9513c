/* Checkpoint access through canonical names: layout detection, lookup through the layout's name map
 * (names_vit.c, names_swin.c, names_torchvision.c), fusion of HF query/key/value, the finiteness of
 * what is read, and the record of what was consumed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"

static size_t index_of(const vitq_i_ckpt *c, const vitq_i_st_tensor *t) {
    return (size_t)(t - c->st->tensors);
}

static int has_prefixed(const vitq_i_safetensors *st, const char *prefix, const char *name) {
    char probe[VITQ_I_NAME_LEN];
    snprintf(probe, sizeof probe, "%s%s", prefix, name);
    return vitq_i_st_find(st, probe) != NULL;
}

/* Swin: timm (any version, optionally under "module.") or Hugging Face. 1 if recognised. */
static int detect_swin(vitq_i_ckpt *c) {
    static const char *const timm_prefixes[] = {"", "module."};
    for (size_t i = 0; i < 2; i++)
        if (has_prefixed(c->st, timm_prefixes[i], "layers.0.blocks.0.attn.relative_position_bias_table")) {
            c->family = VITQ_I_FAMILY_SWIN;
            c->prefix = timm_prefixes[i];
            /* timm < 0.9 ends stage 0 with its patch merging; timm >= 0.9 starts stage 1 with it. */
            c->merge_at_stage_end = has_prefixed(c->st, c->prefix, "layers.0.downsample.reduction.weight");
            c->head_fc = has_prefixed(c->st, c->prefix, "head.fc.weight");
            c->layout = c->merge_at_stage_end ? VITQ_LAYOUT_TIMM_PRE09 : VITQ_LAYOUT_TIMM;
            return 1;
        }
    if (vitq_i_st_find(c->st, "swin.embeddings.patch_embeddings.projection.weight")) {
        c->family = VITQ_I_FAMILY_SWIN;
        c->prefix = "";
        c->merge_at_stage_end = 1;
        c->layout = VITQ_LAYOUT_HF;
        return 1;
    }
    return 0;
}

/* torchvision VisionTransformer or SwinTransformer (v1), optionally under "module.". 1 if recognised. */
static int detect_torchvision(vitq_i_ckpt *c) {
    static const char *const prefixes[] = {"", "module."};
    for (size_t i = 0; i < 2; i++) {
        c->prefix = prefixes[i];
        c->layout = VITQ_LAYOUT_TORCHVISION;
        if (has_prefixed(c->st, c->prefix, "conv_proj.weight") &&
            has_prefixed(c->st, c->prefix, "encoder.layers.encoder_layer_0.ln_1.weight")) {
            c->family = VITQ_I_FAMILY_VIT;
            return 1;
        }
        if (has_prefixed(c->st, c->prefix, "features.0.0.weight") &&
            has_prefixed(c->st, c->prefix, "features.1.0.attn.relative_position_bias_table")) {
            c->family = VITQ_I_FAMILY_SWIN;
            return 1;
        }
    }
    c->layout = 0;
    c->prefix = NULL;
    return 0;
}

static int detect_vit(vitq_i_ckpt *c) {
    static const char *const hf_prefixes[] = {"vit.", "deit.", ""};
    c->family = VITQ_I_FAMILY_VIT;
    c->layout = VITQ_LAYOUT_TIMM;
    if (vitq_i_st_find(c->st, "patch_embed.proj.weight")) {
        c->prefix = "";
        return 1;
    }
    if (vitq_i_st_find(c->st, "module.patch_embed.proj.weight")) {
        c->prefix = "module.";
        return 1;
    }
    c->layout = VITQ_LAYOUT_HF;
    for (size_t i = 0; i < 3; i++)
        if (has_prefixed(c->st, hf_prefixes[i], "embeddings.patch_embeddings.projection.weight")) {
            c->prefix = hf_prefixes[i];
            return 1;
        }
    return 0;
}

vitq_status vitq_i_ckpt_open(vitq_i_ckpt *c, const vitq_allocator *a, const vitq_i_safetensors *st,
                             const char *name) {
    memset(c, 0, sizeof *c);
    c->alloc = a;
    c->st = st;
    c->name = name;
    if (!detect_swin(c) && !detect_torchvision(c) && !detect_vit(c)) {
        if (vitq_i_st_find(st, "layers.0.blocks.0.attn.logit_scale") ||
            vitq_i_st_find(st, "swinv2.embeddings.patch_embeddings.projection.weight") ||
            vitq_i_st_find(st, "features.1.0.attn.logit_scale") ||
            vitq_i_st_find(st, "module.features.1.0.attn.logit_scale"))
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: Swin V2 checkpoints are not supported yet", name);
        if (vitq_i_st_find(st, "conv_proj.conv_last.weight") || vitq_i_st_find(st, "module.conv_proj.conv_last.weight"))
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "%s: torchvision ViTs with a convolutional stem (conv_stem_configs) are not supported yet",
                               name);
        memset(c, 0, sizeof *c);
        c->alloc = a;
        c->st = st;
        c->name = name;
        vitq_status fail = vitq_i_fail(
            VITQ_ERR_UNSUPPORTED,
            "%s: unknown checkpoint layout: found none of 'patch_embed.proj.weight' (timm ViT/DeiT), "
            "'layers.0.blocks.0.attn.relative_position_bias_table' (timm Swin), "
            "'[vit.|deit.|swin.]embeddings.patch_embeddings.projection.weight' (Hugging Face), "
            "'conv_proj.weight' + 'encoder.layers.encoder_layer_0.ln_1.weight' (torchvision ViT), "
            "'features.0.0.weight' + 'features.1.0.attn.relative_position_bias_table' (torchvision Swin)",
            name);
        return vitq_i_ckpt_explain(c, fail);
    }
    c->used = vitq_i_calloc(a, st->count ? st->count : 1, 1);
    if (!c->used) return vitq_i_oom("checkpoint bookkeeping", st->count);
    return VITQ_OK;
}

void vitq_i_ckpt_close(vitq_i_ckpt *c) {
    if (c->alloc) vitq_i_free(c->alloc, c->used);
    c->used = NULL;
}

static const vitq_i_st_tensor *find_plain(const vitq_i_ckpt *c, const char *canon, char *actual, size_t cap) {
    if (!vitq_i_ckpt_translate(c, canon, actual, cap)) return NULL;
    return vitq_i_st_find(c->st, actual);
}

int vitq_i_ckpt_has(const vitq_i_ckpt *c, const char *canon) {
    char parts[3][VITQ_I_NAME_LEN], actual[VITQ_I_NAME_LEN];
    /* Any of the three parts counts: reading then names whichever part is missing. */
    if (vitq_i_ckpt_qkv_parts(c, canon, parts))
        return vitq_i_st_find(c->st, parts[0]) || vitq_i_st_find(c->st, parts[1]) ||
               vitq_i_st_find(c->st, parts[2]);
    return find_plain(c, canon, actual, sizeof actual) != NULL;
}

static vitq_status missing(const vitq_i_ckpt *c, const char *canon, const char *actual) {
    if (strcmp(canon, actual) == 0)
        return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: missing tensor '%s'", c->name, canon);
    return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: missing tensor '%s' (timm name '%s')", c->name, actual,
                       canon);
}

vitq_status vitq_i_ckpt_shape(const vitq_i_ckpt *c, const char *canon, int *ndim, uint64_t *shape) {
    char parts[3][VITQ_I_NAME_LEN], actual[VITQ_I_NAME_LEN];
    if (vitq_i_ckpt_qkv_parts(c, canon, parts)) {
        const vitq_i_st_tensor *t[3];
        for (int i = 0; i < 3; i++) {
            t[i] = vitq_i_st_find(c->st, parts[i]);
            if (!t[i]) return missing(c, canon, parts[i]);
        }
        for (int i = 1; i < 3; i++) {
            if (t[i]->array.ndim != t[0]->array.ndim ||
                memcmp(t[i]->array.shape, t[0]->array.shape, sizeof(uint64_t) * (size_t)t[0]->array.ndim)) {
                char s0[64], si[64];
                return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' has shape %s but '%s' has %s", c->name,
                                   parts[i], vitq_i_shape_str(&t[i]->array, si, sizeof si), parts[0],
                                   vitq_i_shape_str(&t[0]->array, s0, sizeof s0));
            }
        }
        *ndim = t[0]->array.ndim;
        memcpy(shape, t[0]->array.shape, sizeof(uint64_t) * (size_t)*ndim);
        shape[0] *= 3;
        return VITQ_OK;
    }
    const vitq_i_st_tensor *t = find_plain(c, canon, actual, sizeof actual);
    if (!t) return missing(c, canon, actual);
    *ndim = t->array.ndim;
    memcpy(shape, t->array.shape, sizeof(uint64_t) * (size_t)*ndim);
    return VITQ_OK;
}

/* A NaN or infinity in a weight would poison every logit silently: refuse it, naming where it is. */
static vitq_status check_finite(const vitq_i_ckpt *c, const vitq_i_st_tensor *t, const float *x) {
    if (c->allow_non_finite) return VITQ_OK;
    size_t n = (size_t)vitq_i_array_count(&t->array);
    size_t i = 0;
    while (i < n && isfinite(x[i])) i++;
    if (i == n) return VITQ_OK;
    /* the element as a multi-index of the tensor's own shape, last dimension fastest */
    char where[128] = "";
    size_t rest = i, len = 0;
    for (int k = t->array.ndim - 1; k >= 0 && t->array.shape[k]; k--) {
        char part[32];
        snprintf(part, sizeof part, "[%llu]", (unsigned long long)(rest % t->array.shape[k]));
        rest /= t->array.shape[k];
        size_t pl = strlen(part);
        if (len + pl >= sizeof where) break;
        memmove(where + pl, where, len + 1);
        memcpy(where, part, pl);
        len += pl;
    }
    if (!len) snprintf(where, sizeof where, "its only element"); /* a 0-d tensor */
    return vitq_i_fail(VITQ_ERR_NON_FINITE,
                       "%s: tensor '%s' holds %s at %s (element %zu of %zu); set allow_non_finite in the model "
                       "options to load it anyway",
                       c->name, t->name, isnan(x[i]) ? "NaN" : x[i] > 0 ? "+infinity" : "-infinity", where, i, n);
}

static vitq_status read_one(vitq_i_ckpt *c, const vitq_i_st_tensor *t, int ndim, const uint64_t *shape,
                            float *dst) {
    int same = t->array.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->array.shape[i] == shape[i];
    if (!same) {
        char got[96], want[96];
        vitq_i_array w;
        memset(&w, 0, sizeof w);
        w.ndim = ndim;
        memcpy(w.shape, shape, sizeof(uint64_t) * (size_t)ndim);
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' has shape %s, the model needs %s", c->name, t->name,
                           vitq_i_shape_str(&t->array, got, sizeof got), vitq_i_shape_str(&w, want, sizeof want));
    }
    vitq_status st = vitq_i_st_to_f32(c->st, t, dst);
    if (!st) st = check_finite(c, t, dst);
    if (st == VITQ_OK) c->used[index_of(c, t)] = 1;
    return st;
}

vitq_status vitq_i_ckpt_read(vitq_i_ckpt *c, const char *canon, int ndim, const uint64_t *shape,
                             float *dst) {
    char parts[3][VITQ_I_NAME_LEN], actual[VITQ_I_NAME_LEN];
    if (vitq_i_ckpt_qkv_parts(c, canon, parts)) {
        uint64_t part_shape[VITQ_I_MAX_DIMS];
        memcpy(part_shape, shape, sizeof(uint64_t) * (size_t)ndim);
        if (shape[0] % 3) return vitq_i_fail(VITQ_ERR_SHAPE, "%s: qkv rows not a multiple of 3", c->name);
        part_shape[0] = shape[0] / 3;
        size_t part = 1;
        for (int i = 0; i < ndim; i++) part *= (size_t)part_shape[i];
        for (int i = 0; i < 3; i++) {
            const vitq_i_st_tensor *t = vitq_i_st_find(c->st, parts[i]);
            if (!t) return missing(c, canon, parts[i]);
            vitq_status st = read_one(c, t, ndim, part_shape, dst + (size_t)i * part);
            if (st != VITQ_OK) return st;
        }
        return VITQ_OK;
    }
    const vitq_i_st_tensor *t = find_plain(c, canon, actual, sizeof actual);
    if (!t) return missing(c, canon, actual);
    return read_one(c, t, ndim, shape, dst);
}

vitq_status vitq_i_ckpt_read_int(vitq_i_ckpt *c, const char *canon, int ndim, const uint64_t *shape,
                                 int64_t *dst) {
    char actual[VITQ_I_NAME_LEN];
    const vitq_i_st_tensor *t = find_plain(c, canon, actual, sizeof actual);
    if (!t) return missing(c, canon, actual);
    int same = t->array.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->array.shape[i] == shape[i];
    if (!same) {
        char got[96];
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' has shape %s, not the model's", c->name, t->name,
                           vitq_i_shape_str(&t->array, got, sizeof got));
    }
    if (t->array.elem != VITQ_I_ELEM_I64 && t->array.elem != VITQ_I_ELEM_I32)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: tensor '%s' is %s, expected an integer type (I64 or I32)", c->name,
                           t->name, vitq_i_elem_name(t->array.elem));
    /* The bytes may be in a file (io/safetensors.h): read them, then decode little-endian. */
    size_t n = (size_t)vitq_i_array_count(&t->array), size = t->array.elem == VITQ_I_ELEM_I64 ? 8 : 4;
    uint8_t *p = vitq_i_alloc(c->alloc, t->array.nbytes ? t->array.nbytes : 1);
    if (!p) return vitq_i_oom(t->name, t->array.nbytes);
    vitq_status st = vitq_i_st_read(c->st, t, p);
    for (size_t i = 0; !st && i < n; i++) {
        uint64_t v = 0;
        for (size_t b = size; b-- > 0;) v = v << 8 | p[i * size + b];
        dst[i] = size == 8 ? (int64_t)v : (int64_t)(int32_t)(uint32_t)v;
    }
    vitq_i_free(c->alloc, p);
    if (st) return st;
    c->used[index_of(c, t)] = 1;
    return VITQ_OK;
}

int vitq_i_ckpt_pack_later(const vitq_i_ckpt *c, const char *canon) {
    char parts[3][VITQ_I_NAME_LEN], actual[VITQ_I_NAME_LEN];
    const vitq_i_st_tensor *t = vitq_i_ckpt_qkv_parts(c, canon, parts) ? vitq_i_st_find(c->st, parts[0])
                                                                          : find_plain(c, canon, actual, sizeof actual);
    return t && t->pack_later;
}

void vitq_i_ckpt_ignore_raw(vitq_i_ckpt *c, const char *file_name) {
    const vitq_i_st_tensor *t = vitq_i_st_find(c->st, file_name);
    if (t) c->used[index_of(c, t)] = 1;
}

void vitq_i_ckpt_ignore(vitq_i_ckpt *c, const char *canon) {
    char actual[VITQ_I_NAME_LEN];
    const vitq_i_st_tensor *t = find_plain(c, canon, actual, sizeof actual);
    if (t) c->used[index_of(c, t)] = 1;
}

vitq_status vitq_i_ckpt_check_all_used(const vitq_i_ckpt *c) {
    for (size_t i = 0; i < c->st->count; i++) {
        if (c->used[i]) continue;
        const char *tname = c->st->tensors[i].name;
        const char *note = c->layout == VITQ_LAYOUT_TORCHVISION ? vitq_i_tv_variant_note(tname) : NULL;
        if (!note)
            note = c->family == VITQ_I_FAMILY_SWIN ? vitq_i_swin_variant_note(tname) : vitq_i_vit_variant_note(tname);
        if (note) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: tensor '%s': %s", c->name, tname, note);
        return vitq_i_fail(VITQ_ERR_UNEXPECTED_TENSOR, "%s: tensor '%s' is not part of a %s checkpoint that vitq "
                           "understands", c->name, tname, vitq_i_ckpt_layout_label(c));
    }
    return VITQ_OK;
}
