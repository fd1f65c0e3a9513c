/* The table of timm architecture names (Swin weights all use ImageNet statistics). Mean/std are only given where every pretrained tag of the
 * name shares them (DeiT: ImageNet statistics); ViT tags differ (0.5 for augreg/in21k, ImageNet for
 * DINO), so a ViT needs its config for them. */
#include <string.h>

#include "model/arch_table.h"

static const vitq_i_arch_entry table[] = {
    {"deit_tiny_patch16_224", 192, 12, 3, 16, 224, 0, 1, 0},
    {"deit_small_patch16_224", 384, 12, 6, 16, 224, 0, 1, 0},
    {"deit_base_patch16_224", 768, 12, 12, 16, 224, 0, 1, 0},
    {"deit_base_patch16_384", 768, 12, 12, 16, 384, 0, 1, 0},
    {"deit_tiny_distilled_patch16_224", 192, 12, 3, 16, 224, 1, 1, 0},
    {"deit_small_distilled_patch16_224", 384, 12, 6, 16, 224, 1, 1, 0},
    {"deit_base_distilled_patch16_224", 768, 12, 12, 16, 224, 1, 1, 0},
    {"deit_base_distilled_patch16_384", 768, 12, 12, 16, 384, 1, 1, 0},
    {"vit_tiny_patch16_224", 192, 12, 3, 16, 224, 0, 0, 0},
    {"vit_tiny_patch16_384", 192, 12, 3, 16, 384, 0, 0, 0},
    {"vit_small_patch16_224", 384, 12, 6, 16, 224, 0, 0, 0},
    {"vit_small_patch16_384", 384, 12, 6, 16, 384, 0, 0, 0},
    {"vit_small_patch32_224", 384, 12, 6, 32, 224, 0, 0, 0},
    {"vit_small_patch32_384", 384, 12, 6, 32, 384, 0, 0, 0},
    {"vit_small_patch8_224", 384, 12, 6, 8, 224, 0, 0, 0},
    {"vit_base_patch16_224", 768, 12, 12, 16, 224, 0, 0, 0},
    {"vit_base_patch16_384", 768, 12, 12, 16, 384, 0, 0, 0},
    {"vit_base_patch32_224", 768, 12, 12, 32, 224, 0, 0, 0},
    {"vit_base_patch32_384", 768, 12, 12, 32, 384, 0, 0, 0},
    {"vit_base_patch8_224", 768, 12, 12, 8, 224, 0, 0, 0},
    {"vit_large_patch16_224", 1024, 24, 16, 16, 224, 0, 0, 0},
    {"vit_large_patch16_384", 1024, 24, 16, 16, 384, 0, 0, 0},
    {"vit_large_patch32_384", 1024, 24, 16, 32, 384, 0, 0, 0},
    {"vit_huge_patch14_224", 1280, 32, 16, 14, 224, 0, 0, 0},
    /* Swin: embed_dim and heads of stage 0, blocks of all stages (2-2-6-2 tiny, 2-2-18-2 others) */
    {"swin_tiny_patch4_window7_224", 96, 12, 3, 4, 224, 0, 1, 7},
    {"swin_small_patch4_window7_224", 96, 24, 3, 4, 224, 0, 1, 7},
    {"swin_base_patch4_window7_224", 128, 24, 4, 4, 224, 0, 1, 7},
    {"swin_base_patch4_window12_384", 128, 24, 4, 4, 384, 0, 1, 12},
    {"swin_large_patch4_window7_224", 192, 24, 6, 4, 224, 0, 1, 7},
    {"swin_large_patch4_window12_384", 192, 24, 6, 4, 384, 0, 1, 12},
};

const vitq_i_arch_entry *vitq_i_arch_lookup(const char *name) {
    if (!name) return NULL;
    size_t len = strcspn(name, ".");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0) return &table[i];
    return NULL;
}
