/* The quantized training block: set-up, forward, backward (block_train.h). */
#include <math.h>
#include <string.h>

#include "grad/backward.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "model/block.h"
#include "model/swin_geometry.h"
#include "quant/range_scheme.h"
#include "quant/view.h"
#include "train/block_train.h"
#include "train/block_train_ops.h"
#include "train/block_train_qat.h"
#include "train/linear.h"
#include "train/norm_grad.h"

#define MAX_LEARNED_GROUPS 64 /* groups of a learned step: its partial sums per task have this room */

static const vitq_i_linear *layer_of(const vitq_i_block *blk, int k) {
    return k == VITQ_I_BT_QKV ? &blk->qkv : k == VITQ_I_BT_PROJ ? &blk->proj : k == VITQ_I_BT_FC1 ? &blk->fc1
                                                                                                : &blk->fc2;
}

static int is_uniform(const vitq_i_instance *inst) { return inst && inst->scheme.fake_quant == vitq_i_range_fake_quant; }

static vitq_status setup_point(vitq_i_block_train *bt, int site, const vitq_i_bt_config *cfg) {
    vitq_i_bt_point *pt = &bt->pt[site];
    const vitq_i_instance *inst = cfg->act[site];
    pt->inst = inst;
    pt->noise = cfg->noise[site];
    if (!inst) return VITQ_OK;
    pt->groups = inst->config.groups;
    pt->cpg = inst->config.channels_per_group;
    if (cfg->learn_steps && is_uniform(inst) && !pt->noise && pt->groups <= MAX_LEARNED_GROUPS) {
        const vitq_i_range_state *rs = inst->state;
        size_t g = (size_t)pt->groups;
        pt->learned = 1;
        pt->grid = rs->grid;
        pt->step = vitq_i_alloc_array(&bt->alloc, 4 * g, sizeof(float));
        if (!pt->step) return vitq_i_oom("learned steps", 4 * g * sizeof(float));
        pt->step_grad = pt->step + g, pt->zero_point = pt->step + 2 * g, pt->start_step = pt->step + 3 * g;
        memcpy(pt->step, rs->scale, g * sizeof(float));
        memcpy(pt->start_step, rs->scale, g * sizeof(float));
        memcpy(pt->zero_point, rs->zero_point, g * sizeof(float));
        memset(pt->step_grad, 0, g * sizeof(float));
        return VITQ_OK;
    }
    return vitq_i_ste_from_instance(&pt->ste, &bt->alloc, inst);
}

static vitq_status setup_layer(vitq_i_block_train *bt, int k, const vitq_i_bt_config *cfg) {
    vitq_i_bt_layer *L = &bt->layer[k];
    const vitq_i_linear *l = layer_of(&bt->m->blocks[bt->b], k);
    size_t count = l->out * l->in;
    L->l = l;
    L->packed_kind = -1;
    L->bias = l->bias;
    if (!cfg->weight[k])
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "block %d: no float weight for linear layer %d", bt->b, k);
    L->w_start = vitq_i_alloc_array(&bt->alloc, count, 3 * sizeof(float));
    L->panels = vitq_i_alloc_array(&bt->alloc, vitq_i_gemm_packed_floats(l->out, l->in), sizeof(float));
    if (!L->w_start || !L->panels) return vitq_i_oom("training block weights", count * 4 * sizeof(float));
    L->w_cur = L->w_start + count, L->dw = L->w_cur + count;
    memcpy(L->w_start, cfg->weight[k], count * sizeof(float));
    const vitq_i_instance *wq = cfg->wq[k];
    if (cfg->qat) {
        vitq_status st = vitq_i_bt_qat_layer(bt, L, wq, cfg->weight[k], cfg->weight_gscale);
        if (st || L->mode == 3) return st;
    }
    if (!wq) return VITQ_OK;
    vitq_tensor_view v = vitq_i_view_rows(L->w_start, (int64_t)l->out, (int64_t)l->in);
    vitq_status st = wq->scheme.fake_quant(wq->state, &v);
    if (st) return st;
    L->mode = 1;
    if (!cfg->adaround || !is_uniform(wq)) return VITQ_OK;
    const vitq_i_range_state *rs = wq->state;
    L->mode = 2;
    st = vitq_i_adaround_create(&L->ar, &bt->alloc, wq->name, cfg->weight[k], (int64_t)l->out, (int64_t)l->in,
                                &rs->grid, rs->scale, rs->zero_point, wq->config.groups, wq->config.channels_per_group);
    L->ar.nthreads = bt->nthreads; /* fixed chunks: the same bits on any thread count */
    return st;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static vitq_status alloc_buffers(vitq_i_block_train *bt) {
    size_t rows = bt->max_images * bt->tokens, d = bt->d, hid = bt->hidden;
    size_t rd = rows * d, pp = bt->max_images * bt->heads * bt->tokens * bt->seq; /* windows x seq^2 per head */
    size_t lin = 0;
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        const vitq_i_linear *l = bt->layer[k].l;
        lin = max_size(lin, vitq_i_linear_weight_grad_floats(rows, l->in, l->out));
        lin = max_size(lin, vitq_i_linear_input_grad_floats(l->in, l->out));
    }
    if (bt->qat) lin = max_size(lin, vitq_i_layernorm_param_grad_floats(rows, d));
    size_t scratch = (size_t)bt->nthreads * vitq_i_attention_scratch_floats(bt->seq, bt->hd);
    enum { N = 28 };
    size_t sizes[N] = {rd,       rd,       rd,       rd,       3 * rd,  3 * rd,  pp,      pp,      pp,      pp,
                       rd,       rd,       rd,       rd,       rd,      rd,      rows * hid, rows * hid, rows * hid,
                       rows * hid, rd,     2 * rd,   rows * hid, 3 * rd, pp,      pp,      scratch, lin};
    float **slots[N] = {&bt->x_in, &bt->a1,  &bt->ln1, &bt->l1q, &bt->qkv, &bt->qkvq, &bt->s,  &bt->sq, &bt->p,
                        &bt->pq,   &bt->att, &bt->attq, &bt->xm, &bt->a2,  &bt->ln2, &bt->l2q, &bt->h,  &bt->hq,
                        &bt->g,    &bt->gq,  &bt->out, &bt->dx,  &bt->dh,  &bt->dqkv, &bt->ds, &bt->dp, &bt->scratch,
                        &bt->lin_scratch};
    vitq_status st = vitq_i_carve_workspace(&bt->alloc, sizes, slots, N, &bt->block);
    if (st) vitq_i_error_prefix("training block %d (%zu images)", bt->b, bt->max_images);
    size_t tasks = (rows + VITQ_I_BT_ROWS_PER_TASK - 1) / VITQ_I_BT_ROWS_PER_TASK;
    bt->partial = st ? NULL : vitq_i_alloc_array(&bt->alloc, tasks * MAX_LEARNED_GROUPS, sizeof(double));
    if (!st && !bt->partial) st = vitq_i_oom("learned step sums", tasks * MAX_LEARNED_GROUPS * sizeof(double));
    return st;
}

vitq_status vitq_i_block_train_create(vitq_i_block_train *bt, const vitq_allocator *a, const vitq_i_net *m, int b,
                                      const vitq_i_bt_config *cfg) {
    memset(bt, 0, sizeof *bt);
    vitq_status st = vitq_i_allocator_resolve(a, &bt->alloc);
    if (st) return st;
    if (!m || !cfg || b < 0 || b >= m->info.depth || cfg->max_images < 1)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "training block %d: no model, configuration or images", b);
    bt->m = m; /* from here on vitq_i_block_train_free releases what was made */
    if (!(cfg->drop >= 0.0 && cfg->drop <= 1.0))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "QDrop probability %g: 0..1", cfg->drop);
    bt->m = m;
    bt->b = b;
    bt->nthreads = vitq_i_resolve_threads(m->num_threads);
    bt->max_images = cfg->max_images;
    bt->drop = cfg->drop;
    bt->seed = cfg->seed;
    vitq_i_block_shape(m, b, &bt->tokens, &bt->d, &bt->hidden, &bt->heads, &bt->seq);
    bt->hd = bt->d / bt->heads;
    bt->windows = bt->tokens / bt->seq;
    vitq_i_block_geom g;
    vitq_i_block_geom_of(m, b, 1, &g);
    bt->swin = g.swin, bt->grid = g.grid, bt->win = g.win, bt->shift = g.blk->shift, bt->bias = g.bias;
    const vitq_i_block *blk = &m->blocks[b];
    bt->gamma[0] = blk->norm1.gamma, bt->beta[0] = blk->norm1.beta;
    bt->gamma[1] = blk->norm2.gamma, bt->beta[1] = blk->norm2.beta;
    bt->qat = cfg->qat;
    if (bt->qat) st = vitq_i_bt_qat_alloc(bt);
    for (int s = 0; !st && s < VITQ_I_BT_SITES; s++) st = setup_point(bt, s, cfg);
    for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) st = setup_layer(bt, k, cfg);
    if (!st) st = alloc_buffers(bt);
    if (st) vitq_i_block_train_free(bt);
    return st;
}

void vitq_i_block_train_free(vitq_i_block_train *bt) {
    if (!bt || !bt->m) return;
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_i_ste_free(&bt->pt[s].ste);
        vitq_i_free(&bt->alloc, bt->pt[s].step);
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_adaround_free(&bt->layer[k].ar);
        vitq_i_free(&bt->alloc, bt->layer[k].w_start);
        vitq_i_free(&bt->alloc, bt->layer[k].panels);
    }
    vitq_i_bt_qat_free(bt);
    vitq_i_free(&bt->alloc, bt->block);
    vitq_i_free(&bt->alloc, bt->partial);
    memset(bt, 0, sizeof *bt);
}

/* ---- forward ------------------------------------------------------------------------------------- */

/* The weights of layer k for a forward of kind w, packed. QAT's latent weights change every step: they are
 * quantized and packed on every forward. */
static vitq_status prepare_layer(vitq_i_block_train *bt, int k, vitq_i_bt_weights w) {
    vitq_i_bt_layer *L = &bt->layer[k];
    const vitq_i_linear *l = L->l;
    if (L->mode == 3) {
        vitq_status st = vitq_i_bt_qat_weights(bt, L);
        if (!st) vitq_i_gemm_pack_strided(L->w_cur, l->in, 1, l->out, l->in, L->panels, &L->packed);
        return st;
    }
    int kind = L->mode == 2 ? (int)w : VITQ_I_BT_START;
    if (kind == VITQ_I_BT_START && L->packed_kind == VITQ_I_BT_START) return VITQ_OK;
    const float *src = L->w_start;
    if (kind == VITQ_I_BT_SOFT) vitq_i_adaround_soft(&L->ar, L->w_cur), src = L->w_cur;
    if (kind == VITQ_I_BT_HARD) vitq_i_adaround_hard(&L->ar, L->w_cur), src = L->w_cur;
    if (src != L->w_cur) memcpy(L->w_cur, src, l->out * l->in * sizeof(float));
    vitq_i_gemm_pack_strided(L->w_cur, l->in, 1, l->out, l->in, L->panels, &L->packed);
    L->packed_kind = kind;
    return VITQ_OK;
}

static void linear(vitq_i_block_train *bt, int k, const float *in, size_t rows, float *out, vitq_i_epilogue e) {
    const vitq_i_linear *l = bt->layer[k].l;
    vitq_i_gemm(in, l->in, rows, &bt->layer[k].packed, bt->layer[k].bias, out, l->out, e, bt->nthreads);
}

/* dst = src (count floats), then the point's quantizer on the view v of dst. */
static vitq_status quantize_copy(vitq_i_block_train *bt, int site, const float *src, float *dst, size_t count,
                                 vitq_tensor_view v) {
    if (dst != src) memcpy(dst, src, count * sizeof(float));
    return vitq_i_bt_point_forward(bt, site, &v, src + (v.data - dst));
}

static vitq_tensor_view rows_view(float *x, size_t rows, size_t width, size_t stride) {
    vitq_tensor_view v = {sizeof(vitq_tensor_view), x, (int64_t)rows, (int64_t)width, 1, (int64_t)stride};
    return v;
}

/* Scores or probabilities of n images: [sequences][heads][seq][seq], the model's view of them. */
static vitq_tensor_view attn_view(const vitq_i_block_train *bt, float *x, size_t n) {
    int64_t tt = (int64_t)(bt->seq * bt->seq), h = (int64_t)bt->heads;
    vitq_tensor_view v = {sizeof(vitq_tensor_view), x, (int64_t)(n * bt->windows), h, tt, h * tt};
    return v;
}

/* Swin: token rows of n images from grid order into window order (after the block's cyclic shift). Its adjoint
 * is vitq_i_swin_unpartition_add, so each moves a gradient the other way. */
static void to_windows(const vitq_i_block_train *bt, const float *grid, size_t n, float *win) {
    vitq_i_swin_partition(grid, n, bt->grid, bt->win, bt->shift, bt->d, win);
}

static void from_windows_add(const vitq_i_block_train *bt, const float *win, size_t n, float *grid) {
    vitq_i_swin_unpartition_add(win, n, bt->grid, bt->win, bt->shift, bt->d, grid);
}

#define GELU_ROWS 64

/* The GELU of rows [task * GELU_ROWS, ...) of hq into g. */
static void gelu_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    vitq_i_block_train *bt = ctx;
    size_t rows = bt->n * bt->tokens, first = (size_t)task * GELU_ROWS, end = first + GELU_ROWS < rows ? first + GELU_ROWS : rows;
    if (end > first) vitq_i_bt_gelu(bt, bt->hq + first * bt->hidden, (end - first) * bt->hidden, bt->g + first * bt->hidden);
}

vitq_status vitq_i_block_train_forward(vitq_i_block_train *bt, const float *x, size_t n, vitq_i_bt_weights w,
                                       int train, float *out) {
    if (!bt || !bt->block || !x || n < 1 || n > bt->max_images)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "training block: %zu images (1..%zu) or a NULL argument", n,
                           bt ? bt->max_images : 0);
    size_t rows = n * bt->tokens, d = bt->d, hid = bt->hidden, rd = rows * d, seqs = n * bt->windows;
    size_t pp = seqs * bt->heads * bt->seq * bt->seq;
    float eps = bt->m->info.layer_norm_eps;
    int nt = bt->nthreads;
    bt->n = n;
    if (train) bt->step++;
    bt->dropping = train && bt->drop > 0.0;
    vitq_status st = VITQ_OK;
    for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) st = prepare_layer(bt, k, w);
    if (st) return st;
    memcpy(bt->x_in, x, rd * sizeof(float));
    st = quantize_copy(bt, VITQ_I_BT_NORM1_IN, bt->x_in, bt->a1, rd, rows_view(bt->a1, rows, d, d));
    /* Swin: LayerNorm on the grid (l1q as scratch), its output into window order: the point after it (as every
     * point up to proj's input) sees the rows in the order the model's block taps them */
    vitq_i_layernorm(bt->a1, rows, d, bt->gamma[0], bt->beta[0], eps, bt->swin ? bt->l1q : bt->ln1, nt);
    if (bt->swin) to_windows(bt, bt->l1q, n, bt->ln1);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_QKV_IN, bt->ln1, bt->l1q, rd, rows_view(bt->l1q, rows, d, d));
    linear(bt, VITQ_I_BT_QKV, bt->l1q, rows, bt->qkv, VITQ_I_EPI_NONE);
    memcpy(bt->qkvq, bt->qkv, 3 * rd * sizeof(float));
    for (int s = 0; !st && s < 3; s++)
        st = quantize_copy(bt, VITQ_I_BT_Q + s, bt->qkv, bt->qkvq, 0, rows_view(bt->qkvq + (size_t)s * d, rows, d, 3 * d));
    const vitq_i_attn_bias *bias = bt->swin ? &bt->bias : NULL;
    vitq_i_attention_scores(bt->qkvq, seqs, bt->seq, d, bt->heads, bias, bt->s, bt->scratch, nt);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_SCORES, bt->s, bt->sq, pp, attn_view(bt, bt->sq, n));
    memcpy(bt->p, bt->sq, pp * sizeof(float));
    vitq_i_attention_softmax(bt->p, seqs * bt->heads * bt->seq, bt->seq, nt);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_PROBS, bt->p, bt->pq, pp, attn_view(bt, bt->pq, n));
    vitq_i_attention_apply(bt->pq, bt->qkvq, seqs, bt->seq, d, bt->heads, bt->att, bt->scratch, nt);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_PROJ_IN, bt->att, bt->attq, rd, rows_view(bt->attq, rows, d, d));
    memcpy(bt->xm, bt->x_in, rd * sizeof(float));
    if (bt->swin) { /* proj's output (in a2, free until norm2's point) added back onto the grid, as the model does */
        linear(bt, VITQ_I_BT_PROJ, bt->attq, rows, bt->a2, VITQ_I_EPI_NONE);
        from_windows_add(bt, bt->a2, n, bt->xm);
    } else {
        linear(bt, VITQ_I_BT_PROJ, bt->attq, rows, bt->xm, VITQ_I_EPI_RESIDUAL);
    }
    if (!st) st = quantize_copy(bt, VITQ_I_BT_NORM2_IN, bt->xm, bt->a2, rd, rows_view(bt->a2, rows, d, d));
    vitq_i_layernorm(bt->a2, rows, d, bt->gamma[1], bt->beta[1], eps, bt->ln2, nt);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_FC1_IN, bt->ln2, bt->l2q, rd, rows_view(bt->l2q, rows, d, d));
    linear(bt, VITQ_I_BT_FC1, bt->l2q, rows, bt->h, VITQ_I_EPI_NONE);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_GELU_IN, bt->h, bt->hq, rows * hid, rows_view(bt->hq, rows, hid, hid));
    vitq_i_parallel_for(nt, (int64_t)((rows + GELU_ROWS - 1) / GELU_ROWS), gelu_task, bt);
    if (!st) st = quantize_copy(bt, VITQ_I_BT_FC2_IN, bt->g, bt->gq, rows * hid, rows_view(bt->gq, rows, hid, hid));
    memcpy(bt->out, bt->xm, rd * sizeof(float));
    linear(bt, VITQ_I_BT_FC2, bt->gq, rows, bt->out, VITQ_I_EPI_RESIDUAL);
    if (st) return st;
    if (out) memcpy(out, bt->out, rd * sizeof(float));
    return VITQ_OK;
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* dx = dy W (the forward's weights) into dx; dW of an AdaRound layer into its V gradients; QAT: the bias's, the
 * latent weight's and its steps' gradients. */
static vitq_status linear_back(vitq_i_block_train *bt, int k, const float *x, const float *dy, size_t rows, float *dx) {
    vitq_i_bt_layer *L = &bt->layer[k];
    const vitq_i_linear *l = L->l;
    if (dx) vitq_i_linear_input_grad(L->w_cur, dy, rows, l->in, l->out, dx, 0, bt->lin_scratch, bt->nthreads);
    if (bt->qat) return vitq_i_bt_qat_linear_back(bt, L, x, dy, rows);
    if (L->mode != 2 || L->packed_kind != VITQ_I_BT_SOFT) return VITQ_OK;
    vitq_i_linear_weight_grad(x, dy, rows, l->in, l->out, L->dw, NULL, 0, bt->lin_scratch, bt->nthreads);
    vitq_i_adaround_backward(&L->ar, L->dw);
    return VITQ_OK;
}

vitq_status vitq_i_block_train_backward(vitq_i_block_train *bt, const float *d_out) {
    if (!bt || !bt->block || !d_out || !bt->n)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "training block: backward without a forward (or a NULL gradient)");
    size_t n = bt->n, rows = n * bt->tokens, d = bt->d, hid = bt->hidden, rd = rows * d;
    float eps = bt->m->info.layer_norm_eps, *da = bt->dx, *db = bt->dx + rd;
    int nt = bt->nthreads;
    /* MLP: d_out -> the GELU output -> fc1's output -> LN2's output -> x_mid */
    vitq_status st = linear_back(bt, VITQ_I_BT_FC2, bt->gq, d_out, rows, bt->dh);
    vitq_tensor_view v = rows_view(bt->g, rows, hid, hid);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_FC2_IN, &v, bt->dh);
    vitq_i_bt_gelu_backward(bt, rows * hid);
    v = rows_view(bt->h, rows, hid, hid);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_GELU_IN, &v, bt->dh);
    if (!st) st = linear_back(bt, VITQ_I_BT_FC1, bt->l2q, bt->dh, rows, db);
    v = rows_view(bt->ln2, rows, d, d);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_FC1_IN, &v, db);
    if (bt->qat) vitq_i_bt_qat_norm_back(bt, 1, bt->a2, db, rows);
    vitq_i_layernorm_backward(bt->a2, db, rows, d, bt->gamma[1], eps, db, 0, nt);
    v = rows_view(bt->xm, rows, d, d);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_NORM2_IN, &v, db);
    for (size_t k = 0; k < rd; k++) da[k] = d_out[k] + db[k];
    if (bt->qat) memcpy(bt->d_in, da, rd * sizeof(float)); /* the residual's share of the input gradient */
    /* attention: x_mid -> proj's input -> P^ and V -> the scores -> Q, K -> LN1's output. Swin: the gradient at
     * proj's output is x_mid's in window order (the adjoint of adding it back onto the grid); the bias and the
     * mask are constants added to the scores, so nothing else changes but the sequences' count */
    if (bt->swin) {
        to_windows(bt, da, n, db);
        float *t = da;
        da = db, db = t;
    }
    if (!st) st = linear_back(bt, VITQ_I_BT_PROJ, bt->attq, da, rows, db);
    v = rows_view(bt->att, rows, d, d);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_PROJ_IN, &v, db);
    size_t seqs = n * bt->windows;
    vitq_i_bt_attn_dv(bt, seqs, db, bt->dqkv);
    v = attn_view(bt, bt->p, n);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_PROBS, &v, bt->dp);
    vitq_i_bt_softmax_back(bt, seqs);
    v = attn_view(bt, bt->s, n);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_SCORES, &v, bt->ds);
    vitq_i_bt_attn_dqk(bt, seqs, bt->dqkv);
    for (int s = 0; s < 3; s++) {
        v = rows_view(bt->qkv + (size_t)s * d, rows, d, 3 * d);
        vitq_i_bt_point_backward(bt, VITQ_I_BT_Q + s, &v, bt->dqkv + (size_t)s * d);
    }
    int norm1 = bt->pt[VITQ_I_BT_NORM1_IN].learned || bt->qat, qkv_in = bt->pt[VITQ_I_BT_QKV_IN].learned;
    if (!st) st = linear_back(bt, VITQ_I_BT_QKV, bt->l1q, bt->dqkv, rows, norm1 || qkv_in ? db : NULL);
    if (st || (!norm1 && !qkv_in)) return st; /* the block input's gradient is not wanted */
    v = rows_view(bt->ln1, rows, d, d);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_QKV_IN, &v, db);
    if (!norm1) return VITQ_OK;
    if (bt->swin) { /* back onto the grid: the adjoint of the partition */
        memset(da, 0, rd * sizeof(float));
        from_windows_add(bt, db, n, da);
        db = da;
    }
    if (bt->qat) vitq_i_bt_qat_norm_back(bt, 0, bt->a1, db, rows);
    vitq_i_layernorm_backward(bt->a1, db, rows, d, bt->gamma[0], eps, db, 0, nt);
    v = rows_view(bt->x_in, rows, d, d);
    vitq_i_bt_point_backward(bt, VITQ_I_BT_NORM1_IN, &v, db);
    for (size_t k = 0; bt->qat && k < rd; k++) bt->d_in[k] += db[k];
    return VITQ_OK;
}

/* ---- parameters ---------------------------------------------------------------------------------- */

int vitq_i_block_train_params(vitq_i_block_train *bt, vitq_i_param *params, int max, int v_group, int step_group) {
    int count = 0;
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_bt_layer *L = &bt->layer[k];
        if (L->mode != 2) continue;
        if (count < max) params[count] = (vitq_i_param){L->ar.v, L->ar.v_grad, L->ar.count, v_group};
        count++;
    }
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_i_bt_point *pt = &bt->pt[s];
        if (!pt->learned) continue;
        if (count < max) params[count] = (vitq_i_param){pt->step, pt->step_grad, (size_t)pt->groups, step_group};
        count++;
    }
    return count;
}

void vitq_i_block_train_zero_grad(vitq_i_block_train *bt) {
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_bt_layer *L = &bt->layer[k];
        if (L->mode == 2) memset(L->ar.v_grad, 0, L->ar.count * sizeof(float));
        if (L->mode == 3) memset(L->w_grad, 0, L->l->out * L->l->in * sizeof(float)), vitq_i_lsq_zero_grad(&L->lsq);
        if (L->bias_grad) memset(L->bias_grad, 0, L->l->out * sizeof(float));
    }
    if (bt->qat) memset(bt->ln_grads, 0, 4 * bt->d * sizeof(float));
    for (int s = 0; s < VITQ_I_BT_SITES; s++)
        if (bt->pt[s].learned) memset(bt->pt[s].step_grad, 0, (size_t)bt->pt[s].groups * sizeof(float));
}

double vitq_i_block_train_reg(vitq_i_block_train *bt, double beta, double lambda) {
    double reg = 0.0;
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++)
        if (bt->layer[k].mode == 2) reg += vitq_i_adaround_reg(&bt->layer[k].ar, beta, lambda);
    return reg;
}

void vitq_i_block_train_project(vitq_i_block_train *bt) {
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++)
        if (bt->layer[k].mode == 3) vitq_i_lsq_project(&bt->layer[k].lsq);
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_i_bt_point *pt = &bt->pt[s];
        for (int64_t g = 0; pt->learned && g < pt->groups; g++)
            if (!(pt->step[g] >= 1e-8f)) pt->step[g] = 1e-8f;
    }
}

int vitq_i_block_train_hard(const vitq_i_block_train *bt, int layer, float *w) {
    if (layer < 0 || layer >= VITQ_I_BT_LAYERS || bt->layer[layer].mode != 2) return 0;
    vitq_i_adaround_hard(&bt->layer[layer].ar, w);
    return 1;
}
