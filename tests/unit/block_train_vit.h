/* ViT block 0 for the training-block tests (test_reconstruct.c, test_qat.c): the layout of each site's input in
 * the block's buffers, and W4A4 min-max quantizers of every site and weight observed on a float forward. */
#ifndef VITQ_TEST_BLOCK_TRAIN_VIT_H
#define VITQ_TEST_BLOCK_TRAIN_VIT_H

#include <string.h>

#include "api/model.h"
#include "calib_util.h"
#include "harness.h"
#include "model/weights.h"
#include "quant/registry.h"
#include "quant/schemes.h"
#include "train/block_train.h"

/* The view of site s's input in a training block's buffers after a forward on n images. */
static inline vitq_tensor_view site_view(const vitq_i_block_train *bt, int s, size_t n) {
    size_t rows = n * bt->tokens, d = bt->d, hid = bt->hidden;
    int64_t h = (int64_t)bt->heads, tt = (int64_t)(bt->tokens * bt->tokens);
    float *base[VITQ_I_BT_SITES] = {bt->x_in, bt->ln1, bt->qkv, bt->qkv + d, bt->qkv + 2 * d, bt->s, bt->p,
                                    bt->att, bt->xm, bt->ln2, bt->h, bt->g};
    vitq_tensor_view v = {sizeof v, base[s], (int64_t)rows, (int64_t)d, 1, (int64_t)d};
    if (s >= VITQ_I_BT_Q && s <= VITQ_I_BT_V) v.outer_stride = (int64_t)(3 * d);
    if (s == VITQ_I_BT_SCORES || s == VITQ_I_BT_PROBS) v = (vitq_tensor_view){sizeof v, base[s], (int64_t)n, h, tt, h * tt};
    if (s == VITQ_I_BT_GELU_IN || s == VITQ_I_BT_FC2_IN) v.channels = v.outer_stride = (int64_t)hid;
    return v;
}

typedef struct quantizers {
    vitq_i_instance act[VITQ_I_BT_SITES], w[VITQ_I_BT_LAYERS];
} quantizers;

static inline vitq_status make_instance(const vitq_allocator *a, vitq_i_instance *inst, const char *name, vitq_point_kind kind, int bits,
                                 int granularity, int symmetric, int64_t channels, int64_t heads) {
    vitq_point_config c = {.struct_size = sizeof c, .name = name, .kind = kind, .role = 0, .bits = bits,
                           .granularity = granularity, .symmetric = symmetric, .channels = channels, .seed = 1};
    vitq_status st = vitq_i_config_groups(&c, heads);
    return st ? st : vitq_i_instance_create(inst, a, &vitq_i_scheme_minmax, &c);
}

/* W4A4 min-max quantizers of block 0 observed on a float forward of `bt0` (which has none). */
static inline void observe(const vitq_allocator *a, quantizers *q, const vitq_i_block_train *bt0, size_t n) {
    const vitq_i_block *blk = &bt0->m->blocks[0];
    const vitq_i_linear *layers[4] = {&blk->qkv, &blk->proj, &blk->fc1, &blk->fc2};
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_tensor_view v = site_view(bt0, s, n);
        int attn = s == VITQ_I_BT_SCORES || s == VITQ_I_BT_PROBS;
        CHECK_STATUS(make_instance(a, &q->act[s], "act", VITQ_POINT_ACTIVATION, 4, attn ? VITQ_GRAN_HEAD : VITQ_GRAN_TENSOR,
                                   0, v.channels, attn ? v.channels : 0), VITQ_OK);
        CHECK_STATUS(q->act[s].scheme.observe(q->act[s].state, 0, &v), VITQ_OK);
        CHECK_STATUS(q->act[s].scheme.finalize(q->act[s].state), VITQ_OK);
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_tensor_view v = {sizeof v, layers[k]->weight, 1, (int64_t)layers[k]->out, (int64_t)layers[k]->in,
                              (int64_t)(layers[k]->out * layers[k]->in)};
        CHECK_STATUS(make_instance(a, &q->w[k], "w", VITQ_POINT_WEIGHT, 4, VITQ_GRAN_CHANNEL, 1, v.channels, 0), VITQ_OK);
        CHECK_STATUS(q->w[k].scheme.observe(q->w[k].state, 0, &v), VITQ_OK);
        CHECK_STATUS(q->w[k].scheme.finalize(q->w[k].state), VITQ_OK);
    }
}

/* A configuration of block 0 of m with its float weights and nothing quantized, for up to `images` images. */
static inline void block0_config(const vitq_i_net *m, size_t images, vitq_i_bt_config *cfg) {
    const vitq_i_block *blk = &m->blocks[0];
    memset(cfg, 0, sizeof *cfg);
    cfg->weight[0] = blk->qkv.weight, cfg->weight[1] = blk->proj.weight, cfg->weight[2] = blk->fc1.weight,
    cfg->weight[3] = blk->fc2.weight;
    cfg->max_images = images;
}

/* The model at `path` with row-major weights on one thread (the checks' forwards then repeat bit for bit) and
 * block 0's float configuration for n images; NULL (a skip reported by load) when the model is missing. */
static inline vitq_model *load_block0(const char *path, size_t n, vitq_i_bt_config *cfg) {
    vitq_model *handle = load(path);
    if (!handle) return NULL;
    CHECK_STATUS(vitq_i_model_attach_rows(handle->net), VITQ_OK);
    vitq_model_set_num_threads(handle, 1);
    block0_config(handle->net, n, cfg);
    return handle;
}

static inline void quantizers_free(quantizers *q) {
    for (int s = 0; s < VITQ_I_BT_SITES; s++) vitq_i_instance_destroy(&q->act[s]);
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) vitq_i_instance_destroy(&q->w[k]);
}

#endif
