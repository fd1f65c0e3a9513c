/* torchvision tensor names -> vitq's canonical (timm) names, for both families.
 *
 * VisionTransformer (torchvision >= 0.12): conv_proj, class_token, encoder.pos_embedding,
 * encoder.layers.encoder_layer_N.{ln_1, self_attention, ln_2, mlp}, encoder.ln, heads.{pre_logits, head}.
 * self_attention is an nn.MultiheadAttention whose in_proj_weight [3D, D] stacks q, k, v rows as
 * timm's qkv does; mlp is an MLPBlock (Linear, GELU, Dropout, Linear, Dropout), so its layers are
 * mlp.0 and mlp.3, or mlp.linear_1 / mlp.linear_2 in files older than torchvision's version-2 MLPBlock
 * (torchvision renames those on load; vitq reads either).
 *
 * SwinTransformer (v1): features.0 = (Conv2d, Permute, LayerNorm); features.(2S+1).B = block B of
 * stage S, whose MLP is mlp.0 / mlp.3; features.(2S+2) = the patch merging after stage S, i.e. the one
 * that makes the input of stage S+1 (canonical layers.(S+1).downsample); then norm and head. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/name_map.h"

/* canonical suffix inside blocks.N. -> torchvision suffix inside encoder.layers.encoder_layer_N. */
static const char *const vit_block_names[][2] = {
    {"norm1.", "ln_1."},
    {"norm2.", "ln_2."},
    {"attn.qkv.weight", "self_attention.in_proj_weight"},
    {"attn.qkv.bias", "self_attention.in_proj_bias"},
    {"attn.proj.", "self_attention.out_proj."},
    {"mlp.fc1.", "mlp.0."},
    {"mlp.fc2.", "mlp.3."},
};

/* MLPBlock version 1 names of the same layers (what the first torchvision ViT releases saved). */
static const char *const vit_block_names_v1[][2] = {
    {"mlp.fc1.", "mlp.linear_1."},
    {"mlp.fc2.", "mlp.linear_2."},
};

static const char *const vit_top_names[][2] = {
    {"patch_embed.proj.", "conv_proj."},
    {"cls_token", "class_token"},
    {"pos_embed", "encoder.pos_embedding"},
    {"norm.", "encoder.ln."},
    {"head.", "heads.head."},
    {"pre_logits.fc.", "heads.pre_logits."},
};

static const char *const swin_block_names[][2] = {
    {"mlp.fc1.", "mlp.0."},
    {"mlp.fc2.", "mlp.3."},
};

static const char *const swin_top_names[][2] = {
    {"patch_embed.proj.", "features.0.0."},
    {"patch_embed.norm.", "features.0.2."},
    {"norm.", "norm."},
    {"head.", "head."},
};

static const char *const variant_notes[][2] = {
    {"conv_proj.conv_", "torchvision ViTs with a convolutional stem (conv_stem_configs) are not supported yet"},
    {".q_proj_weight", "nn.MultiheadAttention with separate query/key/value weights (kdim/vdim) is not supported"},
    {"logit_scale", "Swin V2 (cosine attention, logit_scale) is not supported yet"},
    {"cpb_mlp", "Swin V2 (continuous position bias) is not supported yet"},
    {"relative_coords_table", "Swin V2 (continuous position bias) is not supported yet"},
};

#define COUNT(t) (sizeof t / sizeof t[0])

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }


static int vit_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    unsigned block;
    int pos = 0;
    if (sscanf(canon, "blocks.%u.%n", &block, &pos) == 1 && pos > 0) {
        char pre[VITQ_I_NAME_LEN];
        snprintf(pre, sizeof pre, "%sencoder.layers.encoder_layer_%u.", c->prefix, block);
        if (!vitq_i_ckpt_map_prefix(vit_block_names, COUNT(vit_block_names), canon + pos, pre, out, cap)) return 0;
        /* the version-1 MLP name when the file has it and not the current one */
        char old[VITQ_I_NAME_LEN];
        if (!vitq_i_st_find(c->st, out) &&
            vitq_i_ckpt_map_prefix(vit_block_names_v1, COUNT(vit_block_names_v1), canon + pos, pre, old, sizeof old) &&
            vitq_i_st_find(c->st, old))
            snprintf(out, cap, "%s", old);
        return 1;
    }
    return vitq_i_ckpt_map_prefix(vit_top_names, COUNT(vit_top_names), canon, c->prefix, out, cap);
}

static int swin_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    unsigned stage, block;
    int pos = 0;
    char pre[VITQ_I_NAME_LEN];
    if (sscanf(canon, "layers.%u.downsample.%n", &stage, &pos) == 1 && pos > 0) {
        if (stage == 0) return 0;
        snprintf(out, cap, "%sfeatures.%u.%s", c->prefix, 2 * stage, canon + pos);
        return 1;
    }
    if (sscanf(canon, "layers.%u.blocks.%u.%n", &stage, &block, &pos) == 2 && pos > 0) {
        const char *rest = canon + pos;
        snprintf(pre, sizeof pre, "%sfeatures.%u.%u.", c->prefix, 2 * stage + 1, block);
        if (vitq_i_ckpt_map_prefix(swin_block_names, COUNT(swin_block_names), rest, pre, out, cap)) return 1;
        if (starts_with(rest, "attn_mask")) return 0; /* computed by torchvision's forward, never stored */
        snprintf(out, cap, "%s%s", pre, rest);        /* norm1, norm2, attn.* keep timm's names */
        return 1;
    }
    return vitq_i_ckpt_map_prefix(swin_top_names, COUNT(swin_top_names), canon, c->prefix, out, cap);
}

int vitq_i_tv_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    return c->family == VITQ_I_FAMILY_SWIN ? swin_translate(c, canon, out, cap) : vit_translate(c, canon, out, cap);
}

const char *vitq_i_tv_variant_note(const char *tensor) {
    for (size_t v = 0; v < COUNT(variant_notes); v++)
        if (strstr(tensor, variant_notes[v][0])) return variant_notes[v][1];
    return NULL;
}
