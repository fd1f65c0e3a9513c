/* Swin tensor names. Canonical names are timm >= 0.9's, except the classifier, which is "head.*" for
 * every family: patch merging "layers.S.downsample.*" belongs to the stage S >= 1 whose input it
 * makes. timm < 0.9 and Hugging Face name the same layer at the end of stage S - 1. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/name_map.h"

/* timm suffix -> HF suffix inside "layers.S.blocks.B." <-> "swin.encoder.layers.S.blocks.B.". */
static const char *const hf_block_names[][2] = {
    {"norm1.", "layernorm_before."},
    {"norm2.", "layernorm_after."},
    {"attn.relative_position_bias_table", "attention.self.relative_position_bias_table"},
    {"attn.relative_position_index", "attention.self.relative_position_index"},
    {"attn.proj.", "attention.output.dense."},
    {"mlp.fc1.", "intermediate.dense."},
    {"mlp.fc2.", "output.dense."},
};

static const char *const hf_top_names[][2] = {
    {"patch_embed.proj.", "swin.embeddings.patch_embeddings.projection."},
    {"patch_embed.norm.", "swin.embeddings.norm."},
    {"norm.", "swin.layernorm."},
    {"head.", "classifier."},
};

static const char *const variant_notes[][2] = {
    {"absolute_pos_embed", "Swin with absolute position embeddings (ape=True) is not supported yet"},
    {"logit_scale", "Swin V2 (cosine attention, logit_scale) is not supported yet"},
    {"cpb_mlp", "Swin V2 (continuous position bias) is not supported yet"},
    {"mask_token", "masked-image-modeling Swin checkpoints are not classifiers"},
    {"pooler.", "the HF pooler has no weights in image classification"},
};

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }


int vitq_i_swin_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    unsigned stage, block;
    int pos = 0;
    char rest[VITQ_I_NAME_LEN];
    if (sscanf(canon, "layers.%u.downsample.%n", &stage, &pos) == 1 && pos > 0) {
        if (!c->merge_at_stage_end) {
            snprintf(out, cap, "%s%s", c->prefix, canon);
            return 1;
        }
        if (stage == 0) return 0;
        snprintf(out, cap, "%s%slayers.%u.downsample.%s", c->prefix,
                 c->layout == VITQ_LAYOUT_HF ? "swin.encoder." : "", stage - 1, canon + pos);
        return 1;
    }
    if (c->layout != VITQ_LAYOUT_HF) {
        if (c->head_fc && starts_with(canon, "head.")) {
            snprintf(out, cap, "%shead.fc.%s", c->prefix, canon + strlen("head."));
            return 1;
        }
        snprintf(out, cap, "%s%s", c->prefix, canon);
        return 1;
    }
    if (sscanf(canon, "layers.%u.blocks.%u.%n", &stage, &block, &pos) == 2 && pos > 0) {
        snprintf(rest, sizeof rest, "swin.encoder.layers.%u.blocks.%u.", stage, block);
        return vitq_i_ckpt_map_prefix(hf_block_names, sizeof hf_block_names / sizeof hf_block_names[0], canon + pos, rest, out,
                          cap);
    }
    return vitq_i_ckpt_map_prefix(hf_top_names, sizeof hf_top_names / sizeof hf_top_names[0], canon, "", out, cap);
}

int vitq_i_swin_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]) {
    unsigned stage, block;
    char kind[16];
    if (c->layout != VITQ_LAYOUT_HF) return 0;
    if (sscanf(canon, "layers.%u.blocks.%u.attn.qkv.%15s", &stage, &block, kind) != 3) return 0;
    static const char *const which[3] = {"query", "key", "value"};
    for (int i = 0; i < 3; i++)
        snprintf(parts[i], VITQ_I_NAME_LEN, "swin.encoder.layers.%u.blocks.%u.attention.self.%s.%s", stage, block,
                 which[i], kind);
    return 1;
}

const char *vitq_i_swin_variant_note(const char *tensor) {
    for (size_t v = 0; v < sizeof variant_notes / sizeof variant_notes[0]; v++)
        if (strstr(tensor, variant_notes[v][0])) return variant_notes[v][1];
    return NULL;
}
