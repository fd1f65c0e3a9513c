/* The in-memory ViT / DeiT model: float32 weights in PyTorch layout plus the packed copies the GEMM
 * reads. Built by vit_build.c from any supported checkpoint layout; immutable afterwards, so several
 * threads may run forward passes on one model. */
#ifndef VITQ_MODEL_VIT_H
#define VITQ_MODEL_VIT_H

#include "core/core.h"
#include "kernels/kernels.h"

typedef struct vitq_i_linear {
    size_t in, out;
    float *weight; /* [out][in], PyTorch layout (quantizers read this) */
    float *bias;   /* [out]; zeros when the checkpoint has none */
    vitq_i_packed packed;
} vitq_i_linear;

typedef struct vitq_i_layernorm_params {
    float *gamma, *beta; /* [dim] */
} vitq_i_layernorm_params;

typedef struct vitq_i_block {
    vitq_i_layernorm_params norm1, norm2;
    vitq_i_linear qkv, proj, fc1, fc2;
} vitq_i_block;

struct vitq_model {
    vitq_allocator alloc;
    vitq_model_info info;
    vitq_source sources[VITQ_HPARAM_COUNT];
    int num_threads;
    char *name; /* file name for messages */

    vitq_i_linear patch_embed; /* conv weight [D, C, p, p] seen as [D, C*p*p] */
    float *cls_token;          /* [D] */
    float *dist_token;         /* [D] or NULL */
    float *pos_embed;          /* [tokens][D] */
    vitq_i_block *blocks;      /* [depth] */
    vitq_i_layernorm_params norm;
    vitq_i_linear head;
    vitq_i_linear head_dist; /* distilled DeiT only (out == 0 otherwise) */
};

/* Forward pass of n normalised NCHW images to logits (vit_forward.c). */
vitq_status vitq_i_vit_forward(const vitq_model *m, const float *input, size_t n, float *logits);

/* Release everything a (possibly half-built) model owns, then the model itself. */
void vitq_i_model_destroy(vitq_model *m);

#endif
