/* The network (ViT, DeiT, Swin): its weights in the layout each layer's kernel reads, and its
 * hyper-parameters. Built by vit_build.c / swin_build.c from any supported checkpoint layout; immutable
 * afterwards, so several threads may run forward passes on one network. Blocks of every family share
 * one struct, so that quantizers see the same linear layers everywhere.
 *
 * The network knows nothing of quantization schemes. A quantized model (api/model.h: a network plus
 * the quant layer's state) may give a layer an integer kernel (kernels/qlinear.h) when it is built:
 * the forward pass then runs that kernel instead of the float GEMM, and that is the only difference. */
#ifndef VITQ_MODEL_NET_H
#define VITQ_MODEL_NET_H

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/qlinear.h"
#include "model/taps.h"

typedef struct vitq_i_linear {
    size_t in, out;
    float *weight; /* [out][in], PyTorch layout: NULL in a loaded network, which keeps only the packed
                    * form; calibration attaches it to its own copy (model/weights.h) */
    float *bias;   /* [out]; zeros when the checkpoint has none */
    vitq_i_packed packed; /* float panels; freed (NULL) when the layer runs only in integers */
    vitq_i_qlinear *integer; /* the integer kernel of a quantized model's layer (owned), or NULL */
} vitq_i_linear;

typedef struct vitq_i_layernorm_params {
    float *gamma, *beta; /* [dim] */
} vitq_i_layernorm_params;

typedef struct vitq_i_block {
    vitq_i_layernorm_params norm1, norm2;
    vitq_i_linear qkv, proj, fc1, fc2;
    /* Swin only (NULL / 0 for ViT) */
    float *rel_table; /* [(2w-1)^2][heads] relative position bias table, as stored */
    float *attn_bias; /* [heads][w*w][w*w], the table gathered by the relative position index */
    int shift;        /* cyclic shift of the windows (0, or w/2 on odd blocks) */
    vitq_i_qattention *integer_attention; /* integer Q.K^T and P.V of a quantized model (owned), or NULL */
} vitq_i_block;

/* A Swin stage: patch merging of the previous stage's output (stages >= 1), then blocks. */
typedef struct vitq_i_stage {
    int first_block;                      /* index into vitq_i_net.blocks */
    vitq_i_layernorm_params merge_norm;   /* [4 * previous dim] */
    vitq_i_linear merge;                  /* 4 * previous dim -> dim, no bias */
    float *mask;                          /* [windows][w*w][w*w] for shifted blocks, or NULL */
} vitq_i_stage;

typedef struct vitq_i_net vitq_i_net;
struct vitq_i_net {
    vitq_allocator alloc;
    vitq_model_info info;
    vitq_source sources[VITQ_HPARAM_COUNT];
    int num_threads;
    char *name; /* file name for messages */
    /* [info.num_classes] names from the configuration or __metadata__ (model/class_names.h), one block
     * with the strings after the pointers; NULL when no source names the classes */
    char **class_names;

    vitq_i_linear patch_embed; /* conv weight [D, C, p, p] seen as [D, C*p*p] */
    float *cls_token;          /* [D] */
    float *dist_token;         /* [D] or NULL */
    float *pos_embed;          /* [tokens][D] */
    vitq_i_block *blocks;      /* [depth] */
    vitq_i_layernorm_params norm;
    vitq_i_linear pre_logits;  /* ViT representation layer D -> R, then tanh (out == 0: none) */
    vitq_i_linear head;
    vitq_i_linear head_dist; /* distilled DeiT only (out == 0 otherwise) */

    vitq_i_layernorm_params patch_norm; /* Swin: LayerNorm after the patch embedding */
    vitq_i_stage *stages;               /* Swin: info.num_stages of them */
};

/* Forward pass of n normalised NCHW images to logits (vit_forward.c, swin_forward.c). */
/* `taps` (NULL: plain FP32) reach the activation points for calibration or simulated quantization. */
vitq_status vitq_i_vit_forward(const vitq_i_net *m, const float *input, size_t n, float *logits, vitq_i_taps *taps);
vitq_status vitq_i_swin_forward(const vitq_i_net *m, const float *input, size_t n, float *logits, vitq_i_taps *taps);

/* Forward pass of either family with `taps` (NULL: none). A layer that has an integer kernel runs it
 * whatever the taps. */
vitq_status vitq_i_net_forward(const vitq_i_net *m, const float *input, size_t n, float *logits,
                                      vitq_i_taps *taps);

/* vitq_model_preprocess_u8 of the network (arguments checked). */
vitq_status vitq_i_net_preprocess_u8(const vitq_i_net *m, const uint8_t *pixels, size_t n, vitq_pixel_layout layout,
                                     float *out);

/* The linear layer of `copy` at the place `l` has in `ref`, where copy is ref with its own blocks and
 * stages arrays (a struct copy whose arrays were copied): callers that swap one layer of a shallow copy
 * (reports, calibration passes with quantized weights). NULL when l is not a layer of ref. */
vitq_i_linear *vitq_i_net_same_linear(const vitq_i_net *ref, vitq_i_net *copy, const vitq_i_linear *l);

/* Release everything a (possibly half-built) network owns, then the network itself. */
void vitq_i_net_destroy(vitq_i_net *m);

#endif
