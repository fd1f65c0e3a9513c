/* From a canonical (timm) tensor name to the checkpoint's own, by the detected layout's name map
 * (names_vit.c, names_swin.c, names_torchvision.c). Apart from checkpoint.c so that the diagnosis of
 * a file that does not load (checkpoint_diagnose.c) can use the maps without a cycle. */
#include "model/checkpoint.h"

int vitq_i_ckpt_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap) {
    if (c->layout == VITQ_LAYOUT_TORCHVISION) return vitq_i_tv_translate(c, canon, out, cap);
    return c->family == VITQ_I_FAMILY_SWIN ? vitq_i_swin_translate(c, canon, out, cap)
                                           : vitq_i_vit_translate(c, canon, out, cap);
}

int vitq_i_ckpt_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]) {
    return c->family == VITQ_I_FAMILY_SWIN ? vitq_i_swin_qkv_parts(c, canon, parts)
                                           : vitq_i_vit_qkv_parts(c, canon, parts);
}

const char *vitq_i_ckpt_layout_label(const vitq_i_ckpt *c) {
    int swin = c->family == VITQ_I_FAMILY_SWIN;
    switch (c->layout) {
    case VITQ_LAYOUT_HF: return swin ? "Hugging Face Swin" : "Hugging Face ViT/DeiT";
    case VITQ_LAYOUT_TORCHVISION: return swin ? "torchvision Swin" : "torchvision ViT";
    case VITQ_LAYOUT_TIMM_PRE09: return "timm < 0.9 Swin";
    default: return swin ? "timm >= 0.9 Swin" : "timm ViT/DeiT";
    }
}
