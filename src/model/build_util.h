/* Helpers of the model builders (vit_build.c, swin_build.c). All report errors naming the tensor. */
#ifndef VITQ_MODEL_BUILD_UTIL_H
#define VITQ_MODEL_BUILD_UTIL_H

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/net.h"

/* What differs between families; vitq_i_build_model does the rest (allocation, configuration,
 * the check that every tensor was consumed, clean-up on failure). */
typedef struct vitq_i_family_builder {
    vitq_status (*collect_facts)(const vitq_i_ckpt *c, vitq_i_shape_facts *f); /* shapes only */
    /* after hyper-parameters are resolved and the members all families share are set from the facts */
    void (*fill_info)(vitq_i_net *m, const vitq_i_shape_facts *f);
    vitq_status (*load_weights)(vitq_i_ckpt *c, vitq_i_net *m);
    void (*count_cost)(vitq_i_net *m); /* num_params and gflops */
} vitq_i_family_builder;

/* patch_embed.proj as a linear layer [D, C*p*p] (the convolution of stride p seen as a GEMM). */
vitq_status vitq_i_build_patch_embed(vitq_i_ckpt *c, vitq_i_net *m);

/* The tensors every pre-LN block has, under `prefix` ("blocks.3", "layers.1.blocks.0"): norm1,
 * attn.qkv (3d x d, bias optional), attn.proj, norm2, mlp.fc1 (hidden x d), mlp.fc2 (biases required).
 * An attention whose qkv has 3 x inner rows with inner != d (heads x head size != width, as in
 * lucidrains' vit-pytorch) is VITQ_ERR_UNSUPPORTED with its own message. */
vitq_status vitq_i_build_block(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t d,
                               size_t hidden, vitq_i_block *blk);

vitq_status vitq_i_build_model(const vitq_i_family_builder *fb, vitq_i_ckpt *c, const vitq_i_config_inputs *in,
                               vitq_i_net **out);

/* Shape of canonical tensor `canon`, which must have `want_ndim` dimensions. */
vitq_status vitq_i_build_shape(const vitq_i_ckpt *c, const char *canon, int want_ndim, uint64_t *shape);
/* Width, input channels and patch size from patch_embed.proj.weight [D, C, p, p]. */
vitq_status vitq_i_build_patch_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f);
/* Classes from head.weight (the checkpoint's own name in the message when it is missing). */
vitq_status vitq_i_build_head_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f);
/* n floats from `a`, or NULL with *st set to an out-of-memory status naming `what`. */
float *vitq_i_build_floats(const vitq_allocator *a, size_t n, const char *what, vitq_status *st);
/* Vector `canon` of n floats into a new array *out. */
vitq_status vitq_i_build_vector(vitq_i_ckpt *c, const vitq_allocator *a, const char *canon, size_t n, float **out);
/* Whether a linear layer's bias may be absent from a checkpoint: only where some implementation has
 * no bias (timm / HF / torchvision qkv_bias=False, Swin's patch-merging reduction). Elsewhere a missing
 * bias is a damaged or mis-mapped file, not a zero. */
typedef enum vitq_i_bias_rule { VITQ_I_BIAS_REQUIRED = 0, VITQ_I_BIAS_OPTIONAL = 1 } vitq_i_bias_rule;

/* Linear layer `prefix`.weight [out, in] and `prefix`.bias [out] (zeros when absent and optional), packed.
 * A required bias that is absent is VITQ_ERR_MISSING_TENSOR naming it. */
vitq_status vitq_i_build_linear(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t out, size_t in,
                                vitq_i_bias_rule bias, vitq_i_linear *l);
/* LayerNorm `prefix`.weight and `prefix`.bias of `dim` values. */
vitq_status vitq_i_build_layernorm(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t dim,
                                   vitq_i_layernorm_params *ln);

#endif
