/* The state of the quantized training block (block_train.h): its configuration, points, layers and buffers,
 * shared by block_train.c and the element-wise and attention pieces of block_train_ops.c. */
#ifndef VITQ_TRAIN_BLOCK_TRAIN_STATE_H
#define VITQ_TRAIN_BLOCK_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "model/net.h"
#include "quant/registry.h"
#include "train/adaround.h"
#include "train/lsq.h"
#include "train/ste.h"

/* Activation sites, in the order of vitq_i_block_sites (model/taps.h). */
enum {
    VITQ_I_BT_NORM1_IN, VITQ_I_BT_QKV_IN, VITQ_I_BT_Q, VITQ_I_BT_K, VITQ_I_BT_V, VITQ_I_BT_SCORES, VITQ_I_BT_PROBS,
    VITQ_I_BT_PROJ_IN, VITQ_I_BT_NORM2_IN, VITQ_I_BT_FC1_IN, VITQ_I_BT_GELU_IN, VITQ_I_BT_FC2_IN, VITQ_I_BT_SITES
};
/* Linear layers. */
enum { VITQ_I_BT_QKV, VITQ_I_BT_PROJ, VITQ_I_BT_FC1, VITQ_I_BT_FC2, VITQ_I_BT_LAYERS };

/* What the weights of a forward are. */
typedef enum vitq_i_bt_weights {
    VITQ_I_BT_SOFT = 0,  /* AdaRound's soft weights (training) */
    VITQ_I_BT_HARD = 1,  /* AdaRound's hard rounding */
    VITQ_I_BT_START = 2  /* the starting quantizers' fake-quantized weights */
} vitq_i_bt_weights;

typedef struct vitq_i_bt_config {
    const vitq_i_instance *act[VITQ_I_BT_SITES];  /* NULL: the site stays in float */
    const float *noise[VITQ_I_BT_SITES];          /* NoisyQuant's fixed bias before the quantizer, or NULL */
    const float *weight[VITQ_I_BT_LAYERS];        /* float rows [out][in] of the layer */
    const vitq_i_instance *wq[VITQ_I_BT_LAYERS];  /* the weight's quantizer, NULL: float */
    int adaround;     /* learn the rounding of weights on a uniform grid (others keep their quantizer's) */
    int learn_steps;  /* learn the steps of uniform activation points without noise (others stay fixed) */
    double drop;      /* QDrop: probability an activation element stays float in a training forward */
    uint64_t seed;
    size_t max_images; /* the most images a forward takes */
    /* QAT (issue 21): the weights of uniform quantizers become latent floats fake-quantized by LSQ
     * with learned steps (block_train_qat.c), the biases and LayerNorm affine parameters are trained too (the
     * block's own copies), and the backward forms the block input's gradient. `adaround` is ignored then. */
    int qat;
    int weight_gscale; /* QAT: the weight steps' gradient scale, a vitq_i_lsq_gscale (PER_GROUP: VVTQ's) */
} vitq_i_bt_config;

typedef struct vitq_i_bt_point {
    const vitq_i_instance *inst;
    const float *noise;
    int learned;          /* step learned (uniform, no noise) */
    vitq_i_ste ste;       /* the fixed interval (fixed points) */
    vitq_i_uniform grid;  /* learned points */
    int64_t groups, cpg;
    float *step, *step_grad, *zero_point, *start_step; /* learned points: groups each */
} vitq_i_bt_point;

typedef struct vitq_i_bt_layer {
    const vitq_i_linear *l;
    int mode;             /* 0 float, 1 fixed quantizer, 2 AdaRound, 3 QAT (LSQ on latent weights) */
    vitq_i_adaround ar;   /* mode 2 */
    float *w_start;       /* [out][in]: float (mode 0) or the quantizer's fake-quantized weight */
    float *w_cur;         /* the weights of the last forward */
    float *panels;        /* packed w_cur */
    vitq_i_packed packed;
    int packed_kind;      /* the vitq_i_bt_weights packed, -1: none */
    float *dw;            /* [out][in] */
    const float *bias;    /* what the forward adds: the model's, or (QAT) the layer's trained copy */
    /* QAT (mode 3): LSQ of the latent weight, the latent weight and its gradient, the bias copy and its gradient
     * (a QAT layer in float or with a fixed quantizer still trains its bias; its weight stays) */
    vitq_i_lsq lsq;
    float *w_latent, *w_grad, *bias_copy, *bias_grad, *db_step, *frozen_w;
} vitq_i_bt_layer;

typedef struct vitq_i_block_train {
    vitq_allocator alloc;
    const vitq_i_net *m;
    int b, nthreads;
    size_t max_images, n, tokens, d, hidden, heads, hd;
    size_t seq;            /* tokens per attention sequence: tokens (ViT, DeiT), window^2 (Swin); the attention
                            * pieces of block_train_ops.c take n * (sequences per image) sequences of seq tokens */
    size_t windows;        /* attention sequences per image: 1 (ViT, DeiT), (grid / win)^2 (Swin) */
    /* Swin: its block's geometry (vitq_i_block_geom_of) and the relative position bias and shifted-window mask
     * the scores add (the model's own arrays). LN1's output, q, k, v, the scores, the probabilities and proj's
     * input are in window order (model/swin_geometry.h), as the model's block taps them; the rest in grid order. */
    int swin, grid, win, shift;
    vitq_i_attn_bias bias;
    vitq_i_bt_point pt[VITQ_I_BT_SITES];
    vitq_i_bt_layer layer[VITQ_I_BT_LAYERS];
    double drop;
    uint64_t seed;
    int64_t step;          /* training forwards so far: the QDrop mask's counter */
    int dropping;          /* the last forward dropped */
    /* saved by the forward (pre: a point's input; q: its output) */
    float *x_in, *a1, *ln1, *l1q, *qkv, *qkvq, *s, *sq, *p, *pq, *att, *attq, *xm, *a2, *ln2, *l2q, *h, *hq, *g,
        *gq, *out;
    float *dx, *dh, *dqkv, *ds, *dp, *scratch, *lin_scratch;
    float *block;          /* the allocation the buffers live in */
    double *partial;       /* per task of the element-wise loops: a learned step's partial gradient sums */
    /* Gradient checks (tests): the straight-through surrogate. With surrogate 1 a forward stores in
     * frozen[site] (caller-owned, the size of the site's buffer) each element's rounding residual; with 2
     * every quantizer is replaced by its clamp plus that frozen residual, a function whose exact
     * derivatives are what the backward computes (so finite differences can check it). */
    int surrogate;
    float *frozen[VITQ_I_BT_SITES];
    /* QAT: LayerNorm 1 and 2's affine parameters (the model's, or trained copies) and their gradients, the block
     * input's gradient [n * tokens][d] (grid order), the allocation they live in */
    int qat;
    const float *gamma[2], *beta[2];
    float *ln_params, *ln_grads, *d_in;
} vitq_i_block_train;

#endif
