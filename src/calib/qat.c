/* Quantization-aware training on a calibration run (qat.h). */
#include <math.h>
#include <string.h>

#include "calib/qat.h"
#include "calib/qat_head.h"
#include "calib/qat_merge.h"
#include "calib/run_stem.h"
#include "data/augment.h"
#include "grad/backward.h"
#include "train/block_train.h"
#include "train/block_train_qat.h"
#include "train/kd_loss.h"
#include "train/oscillation.h"

#define DEFAULT_MICRO 32

vitq_i_qat_options vitq_i_qat_defaults(void) {
    vitq_i_qat_options o = {4, 64, 4, 0, 5e-4, 0.05, 0.0, 0.01, 1.0, 0, NULL, NULL, NULL};
    return o;
}

typedef struct qat {
    vitq_i_run *r;
    const vitq_i_qat_options *o;
    const vitq_i_net *teacher;
    int depth;
    size_t rows_floats; /* one view's residual stream: tokens x d, the largest over the stages */
    size_t micro, views_per_step, classes;
    vitq_i_block_train *bt;  /* [depth] */
    vitq_i_osc *osc;         /* [depth][layers] */
    int64_t *layer_counts;   /* [depth][layers][2]: the last step's flips and oscillations of each weight */
    vitq_i_qat_head head;
    vitq_i_qat_merge *merge; /* [num_stages]: Swin's patch merging into each later stage */
    vitq_i_adam adam;
    float *views, *xa, *xb, *dx, *t_logits, *logits, *dlogits;
    float *block;
} qat;

static const int *block_sites(const vitq_i_run *r, int b, int sites[VITQ_I_BT_SITES]) {
    const vitq_i_block_sites *s = &r->list->sites.blocks[b];
    const int all[VITQ_I_BT_SITES] = {s->norm1_in, s->qkv_in, s->q,     s->k,        s->v,      s->scores,
                                      s->probs,    s->proj_in, s->norm2_in, s->fc1_in, s->gelu_in, s->fc2_in};
    memcpy(sites, all, sizeof all);
    return sites;
}

static int weight_point(const vitq_i_run *r, int b, int k) {
    const vitq_i_block_sites *s = &r->list->sites.blocks[b];
    int in[VITQ_I_BT_LAYERS] = {s->qkv_in, s->proj_in, s->fc1_in, s->fc2_in};
    return in[k] + 1; /* a layer's weight point follows its input point (points.h) */
}

static vitq_status make_block(qat *q, int b) {
    vitq_i_bt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int sites[VITQ_I_BT_SITES];
    block_sites(q->r, b, sites);
    for (int k = 0; k < VITQ_I_BT_SITES; k++) {
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(q->r, sites[k]);
        cfg.act[k] = qp ? &qp->inst : NULL;
        cfg.noise[k] = qp ? qp->noise : NULL;
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        int p = weight_point(q->r, b, k);
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(q->r, p);
        cfg.weight[k] = q->r->weights[p];
        cfg.wq[k] = qp ? &qp->inst : NULL;
    }
    cfg.qat = 1, cfg.learn_steps = 1, cfg.weight_gscale = VITQ_I_LSQ_GSCALE_PER_GROUP;
    cfg.seed = q->o->seed * 1000003u + (uint64_t)b;
    cfg.max_images = q->micro;
    vitq_status st = vitq_i_block_train_create(&q->bt[b], q->r->alloc, q->r->model, b, &cfg);
    for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
        const vitq_i_bt_layer *L = &q->bt[b].layer[k];
        if (L->mode == 3)
            st = vitq_i_osc_create(&q->osc[b * VITQ_I_BT_LAYERS + k], q->r->alloc, L->l->out * L->l->in);
    }
    return st;
}

static vitq_status check_options(const vitq_i_run *r, const vitq_i_qat_options *o, size_t n) {
    if (r->model->pre_logits.out)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "QAT: a ViT representation layer (pre_logits) is not supported");
    if (!r->model->blocks[0].qkv.weight)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "QAT: the run has no private copy of the model");
    if (o->epochs < 1 || o->batch < 1 || o->crops < 0 || o->crops > 64 || o->micro < 0 || n < 1)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "QAT: %d epochs, batch %d, %d crops, micro-batch %d, %zu images "
                                                  "(epochs, batch and images >= 1, crops 0..64)",
                           o->epochs, o->batch, o->crops, o->micro, n);
    if (!(o->lr > 0.0 && o->lr < 1.0) || !(o->weight_decay >= 0.0 && o->weight_decay < 1.0) ||
        !(o->warmup >= 0.0 && o->warmup <= o->epochs) || !(o->obr_lambda >= 0.0 && o->obr_lambda <= 10.0) ||
        !(o->temperature > 0.0 && o->temperature <= 100.0))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "QAT: learning rate %g (0..1), weight decay %g (0..1), warm-up %g "
                                                  "(0..epochs), regulariser %g (0..10), temperature %g (0..100)",
                           o->lr, o->weight_decay, o->warmup, o->obr_lambda, o->temperature);
    return VITQ_OK;
}

static vitq_status setup(qat *q, size_t n) {
    vitq_i_run *r = q->r;
    const vitq_model_info *i = &r->model->info;
    q->depth = i->depth;
    for (int b = 0; b < q->depth; b++) {
        size_t tokens, d;
        vitq_i_block_shape(r->model, b, &tokens, &d, NULL, NULL, NULL);
        if (tokens * d > q->rows_floats) q->rows_floats = tokens * d;
    }
    size_t batch = (size_t)q->o->batch < n ? (size_t)q->o->batch : n;
    q->views_per_step = batch * (size_t)(q->o->crops ? q->o->crops : 1);
    q->micro = q->o->micro ? (size_t)q->o->micro : DEFAULT_MICRO;
    if (q->micro > q->views_per_step) q->micro = q->views_per_step;
    q->classes = (size_t)i->num_classes;
    q->bt = vitq_i_calloc(r->alloc, (size_t)q->depth, sizeof *q->bt);
    q->merge = vitq_i_calloc(r->alloc, (size_t)i->num_stages, sizeof *q->merge);
    q->osc = vitq_i_calloc(r->alloc, (size_t)q->depth * VITQ_I_BT_LAYERS, sizeof *q->osc);
    q->layer_counts = vitq_i_calloc(r->alloc, (size_t)q->depth * VITQ_I_BT_LAYERS * 2, sizeof *q->layer_counts);
    size_t stream = q->micro * q->rows_floats, k = q->micro * q->classes;
    size_t floats = q->views_per_step * r->per_image + 3 * stream + 3 * k;
    q->block = vitq_i_alloc_array(r->alloc, floats, sizeof(float));
    if (!q->bt || !q->osc || !q->layer_counts || !q->merge || !q->block) return vitq_i_oom("QAT buffers", floats * sizeof(float));
    q->views = q->block, q->xa = q->views + q->views_per_step * r->per_image, q->xb = q->xa + stream;
    q->dx = q->xb + stream, q->t_logits = q->dx + stream, q->logits = q->t_logits + k, q->dlogits = q->logits + k;
    vitq_status st = vitq_i_qat_head_create(&q->head, r, q->micro);
    for (int s = 1; !st && i->arch == VITQ_ARCH_SWIN && s < i->num_stages; s++)
        st = vitq_i_qat_merge_create(&q->merge[s], r, s, q->micro);
    for (int b = 0; !st && b < q->depth; b++) st = make_block(q, b);
    return st;
}

static void teardown(qat *q) {
    vitq_i_run *r = q->r;
    for (int b = 0; q->bt && b < q->depth; b++) vitq_i_block_train_free(&q->bt[b]);
    for (int k = 0; q->osc && k < q->depth * VITQ_I_BT_LAYERS; k++) vitq_i_osc_free(&q->osc[k]);
    vitq_i_qat_head_free(&q->head);
    for (int s = 0; q->merge && s < r->model->info.num_stages; s++) vitq_i_qat_merge_free(&q->merge[s]);
    vitq_i_free(r->alloc, q->merge);
    vitq_i_adam_free(&q->adam);
    vitq_i_free(r->alloc, q->bt);
    vitq_i_free(r->alloc, q->osc);
    vitq_i_free(r->alloc, q->layer_counts);
    vitq_i_free(r->alloc, q->block);
}

/* AdamW over every block's parameters: group 0 the latent weights (decayed), 1 the rest. */
static vitq_status make_optimizer(qat *q, int64_t total_steps, int64_t warmup_steps) {
    int count = 0;
    vitq_i_bt_qat_groups g = {0, 1, 1};
    for (int b = 0; b < q->depth; b++) count += vitq_i_block_train_qat_params(&q->bt[b], NULL, 0, g);
    vitq_i_param *params = vitq_i_alloc_array(q->r->alloc, (size_t)count, sizeof *params);
    if (!params) return vitq_i_oom("QAT parameter list", (size_t)count * sizeof *params);
    int at = 0;
    for (int b = 0; b < q->depth; b++) at += vitq_i_block_train_qat_params(&q->bt[b], params + at, count - at, g);
    vitq_i_param_group groups[2] = {{q->o->lr, q->o->weight_decay}, {q->o->lr, 0.0}};
    vitq_i_adam_options ao = vitq_i_adam_defaults();
    ao.schedule = (vitq_i_schedule){VITQ_I_LR_COSINE, warmup_steps, total_steps, 0.0};
    vitq_status st = vitq_i_adam_init(&q->adam, q->r->alloc, params, count, groups, 2, &ao);
    vitq_i_free(q->r->alloc, params);
    return st;
}

/* The views of one step: crop k of image idx[i] (the epoch's k-th, from its own counter-based stream) at
 * k * count + i; without crops the images themselves. */
static vitq_status make_views(qat *q, const float *images, const size_t *idx, size_t count, int64_t epoch) {
    const vitq_model_info *i = &q->r->model->info;
    size_t per = q->r->per_image;
    int crops = q->o->crops;
    if (!crops) {
        for (size_t j = 0; j < count; j++) memcpy(q->views + j * per, images + idx[j] * per, per * sizeof(float));
        return VITQ_OK;
    }
    vitq_i_augment a = vitq_i_augment_defaults();
    vitq_status st = VITQ_OK;
    for (int k = 0; !st && k < crops; k++)
        for (size_t j = 0; !st && j < count; j++) {
            uint64_t rng = vitq_i_augment_stream(q->o->seed ^ 0x9a7u, idx[j], (uint64_t)(epoch * crops + k));
            st = vitq_i_augment_image(&a, images + idx[j] * per, i->in_channels, i->image_size, i->image_size,
                                      q->views + ((size_t)k * count + j) * per, &rng);
        }
    return st;
}

/* Forward and backward of views [first, first + m) of the step's `total`; the loss's share (its mean over the
 * step) into *loss, the student's agreements with the teacher into *agree. */
static vitq_status micro_step(qat *q, size_t first, size_t m, size_t total, double *loss, size_t *agree) {
    vitq_i_run *r = q->r;
    const float *views = q->views + first * r->per_image;
    vitq_status st = vitq_i_net_forward(q->teacher, views, m, q->t_logits, NULL);
    vitq_i_stem_job job = {views, m, 0, q->xa, NULL, NULL};
    if (!st) st = vitq_i_run_stem(r, &job, 1);
    float *x = q->xa, *y = q->xb, *t;
    for (int b = 0; !st && b < q->depth; b++) {
        int s = vitq_i_merge_before(r->model, b);
        if (s) {
            st = vitq_i_qat_merge_forward(&q->merge[s], x, m, y);
            t = x, x = y, y = t;
        }
        if (!st) st = vitq_i_block_train_forward(&q->bt[b], x, m, VITQ_I_BT_SOFT, 1, y);
        t = x, x = y, y = t;
    }
    if (!st) st = vitq_i_qat_head_forward(&q->head, x, m, q->logits);
    double l = 0.0;
    if (!st) st = vitq_i_loss_kd(q->logits, q->t_logits, m, q->classes, q->o->temperature, &l, q->dlogits);
    if (st) return st;
    *agree += vitq_i_top1_agreement(q->logits, q->t_logits, m, q->classes);
    float share = (float)((double)m / (double)total); /* the step's loss is the mean over all its views */
    for (size_t k = 0; k < m * q->classes; k++) q->dlogits[k] *= share;
    *loss += l * (double)m / (double)total;
    vitq_i_qat_head_backward(&q->head, q->dlogits, m, q->dx);
    const float *d = q->dx;
    for (int b = q->depth - 1; !st && b >= 0; b--) {
        st = vitq_i_block_train_backward(&q->bt[b], d);
        d = vitq_i_block_train_input_grad(&q->bt[b]);
        int s = vitq_i_merge_before(r->model, b);
        if (!st && s && b > 0) { /* the forward's streams are free now: the merging's gradient goes there */
            vitq_i_qat_merge_backward(&q->merge[s], d, m, q->xb);
            d = q->xb;
        }
    }
    return st;
}

/* The bin regulariser at weight lambda on every LSQ weight (its gradient added); its value into *value. */
static vitq_status regularise(qat *q, double lambda, double *value) {
    vitq_status st = VITQ_OK;
    *value = 0.0;
    for (int b = 0; !st && b < q->depth; b++)
        for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
            vitq_i_bt_layer *L = &q->bt[b].layer[k];
            if (L->mode != 3) continue;
            double v = 0.0;
            st = vitq_i_obr(L->lsq.name, L->w_latent, (int64_t)L->l->out, (int64_t)L->l->in, L->lsq.step,
                            L->lsq.zero_point, L->lsq.groups, L->lsq.cpg, &L->lsq.grid, lambda,
                            lambda > 0.0 ? L->w_grad : NULL, &v);
            *value += v;
        }
    return st;
}

/* Codes flipped and oscillating in this step, over every LSQ weight. */
static vitq_status count_flips(qat *q, int64_t *flips, int64_t *osc) {
    vitq_status st = VITQ_OK;
    *flips = *osc = 0;
    for (int b = 0; !st && b < q->depth; b++)
        for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
            vitq_i_bt_layer *L = &q->bt[b].layer[k];
            if (L->mode != 3) continue;
            int64_t f = 0, o = 0;
            st = vitq_i_osc_update(&q->osc[b * VITQ_I_BT_LAYERS + k], L->lsq.name, L->w_latent, (int64_t)L->l->out,
                                   (int64_t)L->l->in, L->lsq.step, L->lsq.zero_point, L->lsq.groups, L->lsq.cpg,
                                   &L->lsq.grid, &f, &o);
            *flips += f, *osc += o;
            q->layer_counts[2 * (b * VITQ_I_BT_LAYERS + k)] = f, q->layer_counts[2 * (b * VITQ_I_BT_LAYERS + k) + 1] = o;
        }
    return st;
}

/* VVTQ recomputes the weights' magnitude-aware gradient scales from the current latent weights every step. */
static vitq_status rescale(qat *q) {
    vitq_status st = VITQ_OK;
    for (int b = 0; !st && b < q->depth; b++)
        for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
            vitq_i_bt_layer *L = &q->bt[b].layer[k];
            if (L->mode != 3) continue;
            vitq_tensor_view v = {sizeof v, L->w_latent, 1, (int64_t)L->l->out, (int64_t)L->l->in,
                                  (int64_t)(L->l->out * L->l->in)};
            st = vitq_i_lsq_set_magnitude_scale(&L->lsq, &v);
        }
    return st;
}

/* The trained network into the run: weights as LSQ quantizes them (and their steps as the quantizers' scales),
 * biases, LayerNorms, activation steps. */
static vitq_status write_back(qat *q) {
    vitq_i_run *r = q->r;
    vitq_status st = VITQ_OK;
    for (int b = 0; !st && b < q->depth; b++) {
        vitq_i_block_train *bt = &q->bt[b];
        vitq_i_block *blk = &r->model->blocks[b];
        vitq_i_linear *layers[VITQ_I_BT_LAYERS] = {&blk->qkv, &blk->proj, &blk->fc1, &blk->fc2};
        int sites[VITQ_I_BT_SITES];
        block_sites(r, b, sites);
        for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
            int p = weight_point(r, b, k);
            vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
            memcpy(layers[k]->bias, bt->layer[k].bias_copy, layers[k]->out * sizeof(float));
            if (qp && vitq_i_block_train_qat_weight(bt, k, r->weights[p], NULL))
                st = qp->inst.scheme.set_param(qp->inst.state, "scale", bt->layer[k].lsq.step, qp->inst.config.groups);
            if (!st) st = vitq_i_run_set_weight(r, p, 0);
        }
        vitq_i_layernorm_params *ln[2] = {&blk->norm1, &blk->norm2};
        for (int k = 0; k < 2; k++) {
            memcpy(ln[k]->gamma, bt->gamma[k], bt->d * sizeof(float));
            memcpy(ln[k]->beta, bt->beta[k], bt->d * sizeof(float));
        }
        for (int k = 0; !st && k < VITQ_I_BT_SITES; k++) {
            const vitq_i_bt_point *pt = &bt->pt[k];
            vitq_i_qpoint *qp = vitq_i_run_qpoint(r, sites[k]);
            if (pt->learned && qp) st = qp->inst.scheme.set_param(qp->inst.state, "scale", pt->step, pt->groups);
        }
    }
    return st;
}

/* The CSV log's columns: the step's, then each tracked weight's flips and oscillations. */
static void log_header(const qat *q) {
    fprintf(q->o->log, "epoch,step,lr,loss,agreement,obr_lambda,obr,flips,oscillations,seconds");
    for (int k = 0; k < q->depth * VITQ_I_BT_LAYERS; k++)
        if (q->osc[k].count) {
            const char *name = q->bt[k / VITQ_I_BT_LAYERS].layer[k % VITQ_I_BT_LAYERS].lsq.name;
            fprintf(q->o->log, ",%s flips,%s oscillations", name, name);
        }
    fputc('\n', q->o->log);
}

static void log_layers(const qat *q) {
    for (int k = 0; k < q->depth * VITQ_I_BT_LAYERS; k++)
        if (q->osc[k].count)
            fprintf(q->o->log, ",%lld,%lld", (long long)q->layer_counts[2 * k], (long long)q->layer_counts[2 * k + 1]);
    fputc('\n', q->o->log);
}

/* A progress line for step t of `total`. */
static vitq_status report_step(qat *q, int epoch, double loss, double agree, double rate, double left) {
    char stage[160];
    snprintf(stage, sizeof stage, "QAT epoch %d/%d: loss %.4f, agreement %.1f %%, %.1f views/s, %.0f s left", epoch + 1,
             q->o->epochs, loss, 100.0 * agree, rate, left);
    return vitq_i_run_progress(q->r, stage);
}

/* A shuffled order of n images for the epoch (Fisher-Yates from the seed's stream). */
static void shuffle(size_t *idx, size_t n, uint64_t seed, int epoch) {
    uint64_t rng = vitq_i_augment_stream(seed ^ 0x5u, (uint64_t)epoch, 0);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(vitq_i_augment_next(&rng) % i), t = idx[i - 1];
        idx[i - 1] = idx[j], idx[j] = t;
    }
}

/* A checkpoint of this run restored: its epoch to go on with into *start (0 without one). */
static vitq_status resume(qat *q, const vitq_i_qat_shape *shape, vitq_i_qat_epoch *report, int *start) {
    *start = 0;
    if (!q->o->resume) return VITQ_OK;
    int num = q->depth * VITQ_I_BT_LAYERS;
    vitq_status st = vitq_i_qat_checkpoint_load(q->o->resume, q->r->alloc, shape, &q->adam, q->osc, num, report, start);
    for (int k = 0; !st && k < num; k++) /* a tracker past its first update knows its grid */
        if (q->osc[k].count) q->osc[k].grid = q->bt[k / VITQ_I_BT_LAYERS].layer[k % VITQ_I_BT_LAYERS].lsq.grid;
    return st;
}

static vitq_status train(qat *q, const float *images, size_t n, vitq_i_qat_epoch *report, size_t *idx) {
    const vitq_i_qat_options *o = q->o;
    size_t batch = (size_t)o->batch < n ? (size_t)o->batch : n, per_epoch = (n + batch - 1) / batch;
    int64_t total = (int64_t)per_epoch * o->epochs;
    vitq_status st = make_optimizer(q, total, (int64_t)(o->warmup * (double)per_epoch + 0.5));
    vitq_i_qat_shape shape = {o->epochs, o->batch, o->crops, n, o->seed};
    int start = 0;
    if (!st) st = resume(q, &shape, report, &start);
    q->r->progress_total += total;
    q->r->progress_done += (int64_t)start * (int64_t)per_epoch;
    double t0 = vitq_i_now_seconds();
    if (!st && o->log && !start) log_header(q);
    for (int e = start; !st && e < o->epochs; e++) {
        vitq_i_qat_epoch ep = {0, 0, 0, 0, 0, 0};
        double te = vitq_i_now_seconds();
        size_t views_seen = 0, agree = 0;
        shuffle(idx, n, o->seed, e);
        for (size_t s = 0; !st && s < per_epoch; s++) {
            size_t count = n - s * batch < batch ? n - s * batch : batch;
            size_t views = count * (size_t)(o->crops ? o->crops : 1);
            double progress = ((double)e + (double)s / (double)per_epoch) / (double)o->epochs;
            double lambda = vitq_i_obr_lambda(progress, o->obr_lambda), loss = 0.0, obr = 0.0;
            st = make_views(q, images, idx + s * batch, count, e);
            vitq_i_adam_zero_grad(&q->adam);
            if (!st) st = rescale(q);
            for (size_t f = 0; !st && f < views; f += q->micro)
                st = micro_step(q, f, views - f < q->micro ? views - f : q->micro, views, &loss, &agree);
            if (!st && (lambda > 0.0 || s + 1 == per_epoch)) /* its value alone only for the epoch's report */
                st = regularise(q, lambda, &obr);
            double lr = vitq_i_adam_lr(&q->adam, 0);
            if (!st) {
                vitq_status s2 = vitq_i_adam_step(&q->adam);
                if (s2 && s2 != VITQ_ERR_NON_FINITE) st = s2; /* a non-finite batch is skipped */
            }
            for (int b = 0; !st && b < q->depth; b++) vitq_i_block_train_project(&q->bt[b]);
            int64_t flips = 0, osc = 0;
            if (!st) st = count_flips(q, &flips, &osc);
            views_seen += views;
            ep.loss += loss / (double)per_epoch, ep.obr = obr;
            ep.flips += (double)flips / (double)per_epoch, ep.oscillations += (double)osc / (double)per_epoch;
            double now = vitq_i_now_seconds(), done = (double)((e - start) * (int64_t)per_epoch + (int64_t)s + 1);
            if (o->log && !st)
                fprintf(o->log, "%d,%zu,%.6g,%.6f,%.4f,%.6g,%.6g,%lld,%lld,%.2f", e + 1, s + 1, lr, loss,
                        (double)agree / (double)views_seen, lambda, obr, (long long)flips, (long long)osc, now - t0);
            if (o->log && !st) log_layers(q);
            if (!st)
                st = report_step(q, e, ep.loss * (double)per_epoch / (double)(s + 1), (double)agree / (double)views_seen,
                                 (double)views_seen / (now - te),
                                 (now - t0) / done * ((double)(total - (int64_t)start * (int64_t)per_epoch) - done));
        }
        ep.agreement = views_seen ? (double)agree / (double)views_seen : 0.0;
        ep.seconds = vitq_i_now_seconds() - te;
        report[e] = ep;
        if (!st && o->checkpoint)
            st = vitq_i_qat_checkpoint_save(o->checkpoint, q->r->alloc, &shape, e + 1, &q->adam, q->osc,
                                            q->depth * VITQ_I_BT_LAYERS, report);
    }
    return st;
}

vitq_status vitq_i_qat(vitq_i_run *r, const vitq_i_qat_options *o, const float *images, size_t n,
                       const vitq_i_net *teacher, vitq_i_qat_epoch *report) {
    vitq_status st = check_options(r, o, n);
    if (st) return st;
    /* the teacher is the float network as it is now: the run's own copy is only changed by write_back */
    qat q = {.r = r, .o = o, .teacher = teacher ? teacher : r->model};
    if (teacher && (teacher->info.num_classes != r->model->info.num_classes ||
                    teacher->info.image_size != r->model->info.image_size ||
                    teacher->info.in_channels != r->model->info.in_channels))
        return vitq_i_fail(VITQ_ERR_SHAPE, "QAT: the teacher takes %dx%d images of %d channels into %d classes, the "
                                           "student %dx%d of %d into %d", teacher->info.image_size,
                           teacher->info.image_size, teacher->info.in_channels, teacher->info.num_classes,
                           r->model->info.image_size, r->model->info.image_size, r->model->info.in_channels,
                           r->model->info.num_classes);
    st = vitq_i_run_set_weights(r, 0);
    size_t *idx = vitq_i_alloc_array(r->alloc, n, sizeof *idx);
    vitq_i_qat_epoch *epochs = vitq_i_calloc(r->alloc, (size_t)o->epochs, sizeof *epochs);
    if (!st && (!idx || !epochs)) st = vitq_i_oom("QAT image order", n * sizeof *idx);
    if (!st) st = setup(&q, n);
    if (!st) st = train(&q, images, n, epochs, idx);
    if (!st) st = write_back(&q);
    if (!st && report) memcpy(report, epochs, (size_t)o->epochs * sizeof *epochs);
    teardown(&q);
    vitq_i_free(r->alloc, idx);
    vitq_i_free(r->alloc, epochs);
    return st;
}
