/* ViT / DeiT tensor names: canonical (timm) <-> Hugging Face ViTForImageClassification, DeiT classes. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"

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
    {"head.fc.", "a classifier with an fc sub-module is not part of a ViT/DeiT"},
};

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int vitq_i_vit_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
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
        char probe[VITQ_I_NAME_LEN];
        snprintf(probe, sizeof probe, "cls_classifier%s", suffix);
        if (vitq_i_st_find(c->st, probe))
            snprintf(out, cap, "%s", probe);
        else
            snprintf(out, cap, "classifier%s", suffix);
        return 1;
    }
    return 0;
}

int vitq_i_vit_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]) {
    unsigned block;
    char kind[16];
    if (c->layout != VITQ_LAYOUT_HF) return 0;
    if (sscanf(canon, "blocks.%u.attn.qkv.%15s", &block, kind) != 2) return 0;
    static const char *const which[3] = {"query", "key", "value"};
    for (int i = 0; i < 3; i++)
        snprintf(parts[i], VITQ_I_NAME_LEN, "%sencoder.layer.%u.attention.attention.%s.%s", c->prefix, block,
                 which[i], kind);
    return 1;
}

const char *vitq_i_vit_variant_note(const char *tensor) {
    for (size_t v = 0; v < sizeof variant_notes / sizeof variant_notes[0]; v++)
        if (strstr(tensor, variant_notes[v][0])) return variant_notes[v][1];
    return NULL;
}
