/* The in-memory model (ViT, DeiT, Swin): float32 weights in PyTorch layout plus the packed copies the
 * GEMM reads. Built by vit_build.c / swin_build.c from any supported checkpoint layout; immutable
 * afterwards, so several threads may run forward passes on one model. Blocks of every family share
 * one struct, so that quantizers see the same linear layers everywhere. */
#ifndef VITQ_MODEL_VIT_H
#define VITQ_MODEL_VIT_H

#include "core/core.h"
#include "kernels/kernels.h"
#include "model/taps.h"

typedef struct vitq_i_linear {
    size_t in, out;
    float *weight; /* [out][in], PyTorch layout: NULL in a loaded model, which keeps only the packed
                    * form; calibration attaches it to its own copy (model/weights.h) */
    float *bias;   /* [out]; zeros when the checkpoint has none */
    vitq_i_packed packed; /* float panels; freed (NULL) when the layer runs only in integers */
    const struct vitq_i_int_linear *integer; /* integer form of a quantized model's layer (quant/integer.h) */
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
} vitq_i_block;

/* A Swin stage: patch merging of the previous stage's output (stages >= 1), then blocks. */
typedef struct vitq_i_stage {
    int first_block;                      /* index into vitq_model.blocks */
    vitq_i_layernorm_params merge_norm;   /* [4 * previous dim] */
    vitq_i_linear merge;                  /* 4 * previous dim -> dim, no bias */
    float *mask;                          /* [windows][w*w][w*w] for shifted blocks, or NULL */
} vitq_i_stage;

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

    vitq_i_layernorm_params patch_norm; /* Swin: LayerNorm after the patch embedding */
    vitq_i_stage *stages;               /* Swin: info.num_stages of them */

    struct vitq_i_qmodel *quant; /* simulated quantization of a quantized model (quant/qmodel.h), or NULL */
};

/* Forward pass of n normalised NCHW images to logits (vit_forward.c, swin_forward.c). */
/* `taps` (NULL: plain FP32) reach the activation points for calibration or simulated quantization. */
vitq_status vitq_i_vit_forward(const vitq_model *m, const float *input, size_t n, float *logits, vitq_i_taps *taps);
vitq_status vitq_i_swin_forward(const vitq_model *m, const float *input, size_t n, float *logits, vitq_i_taps *taps);

/* Block b alone on the residual stream x ([n * tokens of the block][its width], grid order) of n images,
 * in place, with `taps` (NULL: FP32): what blockwise calibration runs per candidate. */
vitq_status vitq_i_vit_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps);
vitq_status vitq_i_swin_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps);
vitq_status vitq_i_model_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps);

/* Forward pass of either family with `taps` (NULL: FP32, even on a quantized model). */
vitq_status vitq_i_model_forward_taps(const vitq_model *m, const float *input, size_t n, float *logits,
                                      vitq_i_taps *taps);

/* Release everything a (possibly half-built) model owns, then the model itself. */
void vitq_i_model_destroy(vitq_model *m);

#endif
