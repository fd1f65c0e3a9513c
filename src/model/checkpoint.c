/* Layout detection and canonical-name translation for ViT / DeiT checkpoints. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"

#define NAME_MAX_LEN 256

/* timm suffix -> Hugging Face suffix, inside a block ("blocks.N." <-> "encoder.layer.N."). */
static const char *const hf_block_names[][2] = {
    {"norm1.weight", "layernorm_before.weight"},
    {"norm1.bias", "layernorm_before.bias"},
    {"norm2.weight", "layernorm_after.weight"},
    {"norm2.bias", "layernorm_after.bias"},
    {"attn.proj.weight", "attention.output.dense.weight"},
    {"attn.proj.bias", "attention.output.dense.bias"},
    {"mlp.fc1.weight", "intermediate.dense.weight"},
    {"mlp.fc1.bias", "intermediate.dense.bias"},
    {"mlp.fc2.weight", "output.dense.weight"},
    {"mlp.fc2.bias", "output.dense.bias"},
};

/* Top-level names; `prefix` ("vit." / "deit." / "") is prepended to the embeddings and final norm,
 * classifier names stand alone. */
static const char *const hf_top_names[][3] = {
    /* canonical, HF name, 1 if it takes the prefix */
    {"patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight", "1"},
    {"patch_embed.proj.bias", "embeddings.patch_embeddings.projection.bias", "1"},
    {"cls_token", "embeddings.cls_token", "1"},
    {"dist_token", "embeddings.distillation_token", "1"},
    {"pos_embed", "embeddings.position_embeddings", "1"},
    {"norm.weight", "layernorm.weight", "1"},
    {"norm.bias", "layernorm.bias", "1"},
    {"mask_token", "embeddings.mask_token", "1"},
};

/* Known timm / HF tensors vitq refuses with an explanation rather than a bare "unexpected". */
static const char *const variant_notes[][2] = {
    {"fc_norm.", "average-pooled ViTs (fc_norm) are not supported yet"},
    {"reg_token", "register tokens are not supported yet"},
    {"norm_pre.", "pre-norm ViTs (norm_pre, CLIP style) are not supported yet"},
    {".ls1.", "LayerScale (DeiT-III) is not supported yet"},
    {".ls2.", "LayerScale (DeiT-III) is not supported yet"},
    {".q_norm.", "query/key normalisation is not supported yet"},
    {".k_norm.", "query/key normalisation is not supported yet"},
    {"pooler.", "the HF pooler is not used by image classification"},
    {"attn_pool.", "attention pooling heads are not supported yet"},
    {"head.fc.", "Swin / classifier-with-fc heads are not supported by the ViT loader"},
};

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Translate canonical -> this checkpoint's name (without fused qkv). 0 if it has no equivalent. */
static int translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    if (c->layout == VITQ_LAYOUT_TIMM) {
        snprintf(out, cap, "%s%s", c->prefix, canon);
        return 1;
    }
    unsigned block;
    int pos = 0;
    if (sscanf(canon, "blocks.%u.%n", &block, &pos) == 1 && pos > 0) {
        const char *rest = canon + pos;
        for (size_t i = 0; i < sizeof hf_block_names / sizeof hf_block_names[0]; i++)
            if (strcmp(rest, hf_block_names[i][0]) == 0) {
                snprintf(out, cap, "%sencoder.layer.%u.%s", c->prefix, block, hf_block_names[i][1]);
                return 1;
            }
        return 0;
    }
    for (size_t i = 0; i < sizeof hf_top_names / sizeof hf_top_names[0]; i++)
        if (strcmp(canon, hf_top_names[i][0]) == 0) {
            snprintf(out, cap, "%s%s", hf_top_names[i][2][0] == '1' ? c->prefix : "", hf_top_names[i][1]);
            return 1;
        }
    /* Classifier names depend on the HF class: ViT/DeiT "classifier", DeiT-with-teacher
     * "cls_classifier" + "distillation_classifier". */
    const char *suffix = strrchr(canon, '.');
    if (!suffix) return 0;
    if (starts_with(canon, "head_dist.")) {
        snprintf(out, cap, "distillation_classifier%s", suffix);
        return 1;
    }
    if (starts_with(canon, "head.")) {
        char probe[NAME_MAX_LEN];
        snprintf(probe, sizeof probe, "cls_classifier%s", suffix);
        if (vitq_i_st_find(c->st, probe))
            snprintf(out, cap, "%s", probe);
        else
            snprintf(out, cap, "classifier%s", suffix);
        return 1;
    }
    return 0;
}

/* For HF fused qkv: the query/key/value names of canonical "blocks.N.attn.qkv.{weight,bias}". */
static int hf_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][NAME_MAX_LEN]) {
    unsigned block;
    char kind[16];
    if (c->layout != VITQ_LAYOUT_HF) return 0;
    if (sscanf(canon, "blocks.%u.attn.qkv.%15s", &block, kind) != 2) return 0;
    static const char *const which[3] = {"query", "key", "value"};
    for (int i = 0; i < 3; i++)
        snprintf(parts[i], NAME_MAX_LEN, "%sencoder.layer.%u.attention.attention.%s.%s", c->prefix, block,
                 which[i], kind);
    return 1;
}

static size_t index_of(const vitq_i_ckpt *c, const vitq_i_st_tensor *t) {
    return (size_t)(t - c->st->tensors);
}

vitq_status vitq_i_ckpt_open(vitq_i_ckpt *c, const vitq_allocator *a, const vitq_i_safetensors *st,
                             const char *name) {
    memset(c, 0, sizeof *c);
    c->alloc = a;
    c->st = st;
    c->name = name;
    static const char *const hf_prefixes[] = {"vit.", "deit.", ""};
    if (vitq_i_st_find(st, "patch_embed.proj.weight")) {
        c->layout = VITQ_LAYOUT_TIMM;
        c->prefix = "";
    } else if (vitq_i_st_find(st, "module.patch_embed.proj.weight")) {
        c->layout = VITQ_LAYOUT_TIMM;
        c->prefix = "module.";
    } else {
        for (size_t i = 0; i < 3 && !c->prefix; i++) {
            char probe[NAME_MAX_LEN];
            snprintf(probe, sizeof probe, "%sembeddings.patch_embeddings.projection.weight", hf_prefixes[i]);
            if (vitq_i_st_find(st, probe)) {
                c->layout = VITQ_LAYOUT_HF;
                c->prefix = hf_prefixes[i];
            }
        }
    }
    if (!c->prefix) {
        if (vitq_i_st_find(st, "swin.embeddings.patch_embeddings.projection.weight") ||
            vitq_i_st_find(st, "layers.0.blocks.0.attn.relative_position_bias_table"))
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: Swin checkpoints are not supported yet", name);
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                           "%s: unknown checkpoint layout: found neither 'patch_embed.proj.weight' (timm) nor "
                           "'[vit.|deit.]embeddings.patch_embeddings.projection.weight' (Hugging Face)",
                           name);
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
    if (!translate(c, canon, actual, cap)) return NULL;
    return vitq_i_st_find(c->st, actual);
}

int vitq_i_ckpt_has(const vitq_i_ckpt *c, const char *canon) {
    char parts[3][NAME_MAX_LEN], actual[NAME_MAX_LEN];
    /* Any of the three parts counts: reading then names whichever part is missing. */
    if (hf_qkv_parts(c, canon, parts))
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
    char parts[3][NAME_MAX_LEN], actual[NAME_MAX_LEN];
    if (hf_qkv_parts(c, canon, parts)) {
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
    if (st == VITQ_OK) c->used[index_of(c, t)] = 1;
    return st;
}

vitq_status vitq_i_ckpt_read(vitq_i_ckpt *c, const char *canon, int ndim, const uint64_t *shape,
                             float *dst) {
    char parts[3][NAME_MAX_LEN], actual[NAME_MAX_LEN];
    if (hf_qkv_parts(c, canon, parts)) {
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

void vitq_i_ckpt_ignore(vitq_i_ckpt *c, const char *canon) {
    char actual[NAME_MAX_LEN];
    const vitq_i_st_tensor *t = find_plain(c, canon, actual, sizeof actual);
    if (t) c->used[index_of(c, t)] = 1;
}

vitq_status vitq_i_ckpt_check_all_used(const vitq_i_ckpt *c) {
    for (size_t i = 0; i < c->st->count; i++) {
        if (c->used[i]) continue;
        const char *tname = c->st->tensors[i].name;
        for (size_t v = 0; v < sizeof variant_notes / sizeof variant_notes[0]; v++)
            if (strstr(tname, variant_notes[v][0]))
                return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: tensor '%s': %s", c->name, tname,
                                   variant_notes[v][1]);
        return vitq_i_fail(VITQ_ERR_UNEXPECTED_TENSOR,
                           "%s: tensor '%s' is not part of a %s ViT/DeiT that vitq understands", c->name, tname,
                           c->layout == VITQ_LAYOUT_HF ? "Hugging Face" : "timm");
    }
    return VITQ_OK;
}
