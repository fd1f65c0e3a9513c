/* timm's standard ViT / DeiT / Swin architecture names and the hyper-parameters their names imply. */
#ifndef VITQ_MODEL_ARCH_TABLE_H
#define VITQ_MODEL_ARCH_TABLE_H

typedef struct vitq_i_arch_entry {
    const char *name;
    int embed_dim, depth, num_heads, patch_size, image_size;
    int distilled;
    int imagenet_norm; /* 1: timm's IMAGENET_DEFAULT mean/std hold for every pretrained tag */
    int swin_window;   /* Swin: window side (0: a ViT / DeiT); depth then counts all stages' blocks */
} vitq_i_arch_entry;

/* Look up a timm architecture name; a pretrained tag after '.' is ignored ("deit_tiny_patch16_224.fb_in1k").
 * NULL when unknown. */
const vitq_i_arch_entry *vitq_i_arch_lookup(const char *name);

#endif
