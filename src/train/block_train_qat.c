/* QAT mode of the quantized training block (block_train.h, issue 21): latent weights through LSQ, trained
 * biases and LayerNorm affine parameters, the block input's gradient. block_train.c calls these where its
 * forward and backward meet a QAT layer or LayerNorm. */
#include <string.h>

#include "quant/range_scheme.h"
#include "quant/view.h"
#include "train/block_train_qat.h"
#include "train/linear.h"
#include "train/norm_grad.h"

static int uniform(const vitq_i_instance *wq) { return wq && wq->scheme.fake_quant == vitq_i_range_fake_quant; }

static int has_zero_points(const vitq_i_range_state *rs, int64_t groups) {
    for (int64_t g = 0; g < groups; g++)
        if (rs->zero_point[g] != 0.0f) return 1;
    return 0;
}

vitq_status vitq_i_bt_qat_layer(vitq_i_block_train *bt, vitq_i_bt_layer *L, const vitq_i_instance *wq,
                                const float *w, int gscale) {
    const vitq_i_linear *l = L->l;
    size_t count = l->out * l->in;
    /* every QAT layer trains its bias; a uniform weight grid learns its steps (LSQ; an asymmetric grid keeps its
     * whole-number zero points, so the encoding still holds its codes), another scheme has no step to learn */
    L->bias_copy = vitq_i_alloc_array(&bt->alloc, 3 * l->out, sizeof(float));
    if (!L->bias_copy) return vitq_i_oom("QAT biases", 3 * l->out * sizeof(float));
    L->bias_grad = L->bias_copy + l->out, L->db_step = L->bias_grad + l->out;
    if (l->bias) memcpy(L->bias_copy, l->bias, l->out * sizeof(float));
    else memset(L->bias_copy, 0, l->out * sizeof(float));
    memset(L->bias_grad, 0, l->out * sizeof(float));
    L->bias = L->bias_copy;
    if (wq && !uniform(wq))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                           "QAT: weight '%s' has scheme '%s'; QAT learns the steps of uniform weight grids (minmax, "
                           "percentile, omse, percentile-mse)", wq->name, wq->scheme.name);
    if (!wq) return VITQ_OK; /* a float weight stays: the model's rows */
    const vitq_i_range_state *rs = wq->state;
    vitq_status st = vitq_i_lsq_create(&L->lsq, &bt->alloc, wq->name, rs->grid.bits, rs->grid.symmetric,
                                       wq->config.groups, wq->config.channels_per_group, 0);
    if (!st) st = vitq_i_lsq_init_steps(&L->lsq, rs->scale, NULL);
    if (!st && has_zero_points(rs, wq->config.groups)) st = vitq_i_lsq_set_zero_points(&L->lsq, rs->zero_point);
    if (st) return st;
    L->lsq.gscale = (vitq_i_lsq_gscale)gscale;
    L->w_latent = vitq_i_alloc_array(&bt->alloc, count, 2 * sizeof(float));
    if (!L->w_latent) return vitq_i_oom("QAT latent weights", count * 2 * sizeof(float));
    L->w_grad = L->w_latent + count;
    memcpy(L->w_latent, w, count * sizeof(float));
    memset(L->w_grad, 0, count * sizeof(float));
    vitq_tensor_view v = vitq_i_view_rows(L->w_latent, (int64_t)l->out, (int64_t)l->in);
    if (gscale == VITQ_I_LSQ_GSCALE_PER_GROUP) st = vitq_i_lsq_set_magnitude_scale(&L->lsq, &v);
    L->mode = 3;
    return st;
}

vitq_status vitq_i_bt_qat_alloc(vitq_i_block_train *bt) {
    const vitq_i_block *blk = &bt->m->blocks[bt->b];
    size_t d = bt->d, rd = bt->max_images * bt->tokens * d;
    bt->ln_params = vitq_i_alloc_array(&bt->alloc, 8 * d + rd, sizeof(float));
    if (!bt->ln_params) return vitq_i_oom("QAT LayerNorm parameters", (8 * d + rd) * sizeof(float));
    const vitq_i_layernorm_params *ln[2] = {&blk->norm1, &blk->norm2};
    for (int k = 0; k < 2; k++) {
        float *g = bt->ln_params + (size_t)(2 * k) * d, *b = g + d;
        memcpy(g, ln[k]->gamma, d * sizeof(float));
        memcpy(b, ln[k]->beta, d * sizeof(float));
        bt->gamma[k] = g, bt->beta[k] = b;
    }
    bt->ln_grads = bt->ln_params + 4 * d;
    memset(bt->ln_grads, 0, 4 * d * sizeof(float));
    bt->d_in = bt->ln_grads + 4 * d;
    return VITQ_OK;
}

void vitq_i_bt_qat_free(vitq_i_block_train *bt) {
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_bt_layer *L = &bt->layer[k];
        vitq_i_lsq_free(&L->lsq);
        vitq_i_free(&bt->alloc, L->w_latent);
        vitq_i_free(&bt->alloc, L->bias_copy);
    }
    vitq_i_free(&bt->alloc, bt->ln_params);
}

/* The straight-through surrogate of an LSQ weight (block_train_state.h, `surrogate`): w_cur = s (clamp(w / s) +
 * rho) with rho, the rounding residual in steps, frozen by the surrogate-1 forward; its exact derivatives are
 * LSQ's straight-through ones. */
static void surrogate_weights(const vitq_i_block_train *bt, vitq_i_bt_layer *L) {
    const vitq_i_lsq *q = &L->lsq;
    size_t in = L->l->in;
    for (size_t r = 0; r < L->l->out; r++) {
        int64_t g = (int64_t)r / q->cpg;
        double s = q->step[g], z = q->zero_point ? q->zero_point[g] : 0.0, lo = q->grid.qmin - z, hi = q->grid.qmax - z;
        for (size_t j = 0; j < in; j++) {
            size_t e = r * in + j;
            double u = (double)L->w_latent[e] / s, c = u < lo ? lo : u > hi ? hi : u;
            if (bt->surrogate == 1) L->frozen_w[e] = (float)((double)L->w_cur[e] / s - c);
            else L->w_cur[e] = (float)(s * (c + (double)L->frozen_w[e]));
        }
    }
}

vitq_status vitq_i_bt_qat_weights(const vitq_i_block_train *bt, vitq_i_bt_layer *L) {
    vitq_tensor_view v = vitq_i_view_rows(L->w_latent, (int64_t)L->l->out, (int64_t)L->l->in);
    vitq_status st = vitq_i_lsq_forward(&L->lsq, &v, L->w_cur);
    if (!st && bt->surrogate && L->frozen_w) surrogate_weights(bt, L);
    return st;
}

vitq_status vitq_i_bt_qat_linear_back(vitq_i_block_train *bt, vitq_i_bt_layer *L, const float *x, const float *dy,
                                      size_t rows) {
    const vitq_i_linear *l = L->l;
    float *dw = L->mode == 3 ? L->dw : NULL;
    vitq_i_linear_weight_grad(x, dy, rows, l->in, l->out, dw, L->db_step, 0, bt->lin_scratch, bt->nthreads);
    for (size_t o = 0; o < l->out; o++) L->bias_grad[o] += L->db_step[o];
    if (L->mode != 3) return VITQ_OK;
    vitq_tensor_view v = vitq_i_view_rows(L->w_latent, (int64_t)l->out, (int64_t)l->in);
    return vitq_i_lsq_backward(&L->lsq, &v, L->dw, L->w_grad, 1);
}

void vitq_i_bt_qat_norm_back(vitq_i_block_train *bt, int k, const float *x, const float *dy, size_t rows) {
    float *dg = bt->ln_grads + (size_t)(2 * k) * bt->d;
    vitq_i_layernorm_param_grad(x, dy, rows, bt->d, bt->m->info.layer_norm_eps, dg, dg + bt->d, 1, bt->lin_scratch,
                                bt->nthreads);
}

/* ---- parameters (block_train.h) ------------------------------------------------------------------- */

int vitq_i_block_train_qat_params(vitq_i_block_train *bt, vitq_i_param *params, int max, vitq_i_bt_qat_groups g) {
    int count = 0;
#define ADD(value, grad, n, group)                                                                           \
    do {                                                                                                     \
        if (count < max) params[count] = (vitq_i_param){(value), (grad), (n), (group)};                     \
        count++;                                                                                             \
    } while (0)
    for (int k = 0; bt->qat && k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_bt_layer *L = &bt->layer[k];
        if (L->mode == 3) ADD(L->w_latent, L->w_grad, L->l->out * L->l->in, g.weights);
        ADD(L->bias_copy, L->bias_grad, L->l->out, g.others);
        if (L->mode == 3) ADD(L->lsq.step, L->lsq.step_grad, (size_t)L->lsq.groups, g.steps);
    }
    for (int k = 0; bt->qat && k < 4; k++) ADD(bt->ln_params + (size_t)k * bt->d, bt->ln_grads + (size_t)k * bt->d, bt->d, g.others);
    for (int s = 0; s < VITQ_I_BT_SITES; s++)
        if (bt->pt[s].learned) ADD(bt->pt[s].step, bt->pt[s].step_grad, (size_t)bt->pt[s].groups, g.steps);
#undef ADD
    return count;
}

const float *vitq_i_block_train_input_grad(const vitq_i_block_train *bt) { return bt->qat && bt->n ? bt->d_in : NULL; }

int vitq_i_block_train_qat_weight(const vitq_i_block_train *bt, int layer, float *w, float *steps) {
    if (layer < 0 || layer >= VITQ_I_BT_LAYERS || bt->layer[layer].mode != 3) return 0;
    const vitq_i_bt_layer *L = &bt->layer[layer];
    vitq_tensor_view v = vitq_i_view_rows(L->w_latent, (int64_t)L->l->out, (int64_t)L->l->in);
    if (vitq_i_lsq_forward(&L->lsq, &v, w)) return 0; /* steps are kept positive: cannot fail after training */
    if (steps) memcpy(steps, L->lsq.step, (size_t)L->lsq.groups * sizeof(float));
    return 1;
}
