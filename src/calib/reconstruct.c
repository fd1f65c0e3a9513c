/* Block reconstruction (reconstruct.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "calib/recon_layer.h"
#include "calib/reconstruct.h"
#include "calib/run_stem.h"
#include "data/augment.h"
#include "grad/backward.h"
#include "model/block.h"
#include "train/block_train.h"
#include "train/loss.h"

#define DEFAULT_ITERS 100
#define DEFAULT_BATCH 32

vitq_i_recon_options vitq_i_recon_defaults(int32_t iters, int32_t batch, double drop, int32_t learn_steps,
                                           uint64_t seed) {
    /* BRECQ / QDrop's lambda 0.01 and 20 % warm-up before the regulariser (docs/methods.md 13); their rates
     * (1e-3 for V, 4e-5 for steps) are for 20k steps: at our 100 they barely move anything, and 3e-2 / 1e-3
     * measured best on fmnist-vit (docs/training.md, "Block reconstruction") */
    vitq_i_recon_options o = {iters > 0 ? iters : DEFAULT_ITERS, batch > 0 ? batch : DEFAULT_BATCH, drop, learn_steps,
                              3e-2, 1e-3, 0.01, 0.2, seed, 1, 0, 0};
    return o;
}

/* ---- one block --------------------------------------------------------------------------------------- */

typedef struct recon {
    vitq_i_run *r;
    const vitq_i_recon_options *o;
    size_t n, per_image;  /* images, floats of one image's stream at the current block (Swin: per stage) */
    size_t max_per;       /* the most floats of one image's stream at any block: the buffers' unit */
    float *xf, *xq, *target, *next, *keep, *xb, *tb, *yb, *dy;
    float *fisher;        /* Fisher loss: [depth][n][max_per] weights (NULL: MSE); fb the batch's */
    float *fb, *fisher_b; /* fisher_b: the current block's [n][per_image] */
    uint64_t rng;
} recon;

static int weight_point(const vitq_i_block_sites *s, int k) {
    int in[4] = {s->qkv_in, s->proj_in, s->fc1_in, s->fc2_in};
    return in[k] + 1; /* a layer's weight point follows its input point (points.h) */
}

static void configure(const recon *c, int b, vitq_i_bt_config *cfg) {
    const vitq_i_block_sites *s = &c->r->list->sites.blocks[b];
    const int sites[VITQ_I_BT_SITES] = {s->norm1_in, s->qkv_in, s->q, s->k, s->v, s->scores, s->probs, s->proj_in,
                                        s->norm2_in, s->fc1_in, s->gelu_in, s->fc2_in};
    memset(cfg, 0, sizeof *cfg);
    for (int k = 0; k < VITQ_I_BT_SITES; k++) {
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, sites[k]);
        cfg->act[k] = qp ? &qp->inst : NULL;
        cfg->noise[k] = qp ? qp->noise : NULL;
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        int p = weight_point(s, k);
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, p);
        cfg->weight[k] = c->r->weights[p];
        cfg->wq[k] = qp ? &qp->inst : NULL;
    }
    cfg->adaround = 1;
    cfg->learn_steps = c->o->learn_steps;
    cfg->drop = c->o->drop;
    cfg->seed = c->o->seed * 1000003u + (uint64_t)b;
    cfg->max_images = (size_t)c->o->batch < c->n ? (size_t)c->o->batch : c->n;
}

/* The block's loss over every calibration image with weights w (no dropping); the outputs into c->next. */
static vitq_status evaluate(recon *c, vitq_i_block_train *bt, vitq_i_bt_weights w, double *loss) {
    double sum = 0.0;
    vitq_status st = VITQ_OK;
    for (size_t first = 0; !st && first < c->n; first += bt->max_images) {
        size_t k = c->n - first < bt->max_images ? c->n - first : bt->max_images, off = first * c->per_image;
        double l = 0.0;
        st = vitq_i_block_train_forward(bt, c->xq + off, k, w, 0, c->next + off);
        if (!st)
            st = vitq_i_loss_mse(c->next + off, c->target + off, c->fisher_b ? c->fisher_b + off : NULL,
                                 k * c->per_image, (double)c->n, &l, NULL);
        sum += l;
    }
    *loss = sum;
    return st;
}

static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A batch of random images (without repeats within the batch: a partial Fisher-Yates over an index list
 * would need one; consecutive images from a random start serve as well for a shuffled calibration set,
 * and stay deterministic). QDrop's input mixing: each element of the block input comes from the float
 * stream with probability `drop`, else from the quantized one (QDrop trains a block on inputs that are
 * partly float so that it does not overfit the errors of the blocks before it); eight decisions per hash. */
static size_t gather(recon *c, size_t batch) {
    size_t start = (size_t)(next_random(&c->rng) % c->n);
    unsigned threshold = (unsigned)(c->o->drop * 256.0 + 0.5);
    for (size_t i = 0; i < batch; i++) {
        size_t img = (start + i) % c->n, off = img * c->per_image;
        float *xb = c->xb + i * c->per_image;
        memcpy(xb, c->xq + off, c->per_image * sizeof(float));
        memcpy(c->tb + i * c->per_image, c->target + off, c->per_image * sizeof(float));
        if (c->fisher_b) memcpy(c->fb + i * c->per_image, c->fisher_b + off, c->per_image * sizeof(float));
        for (size_t e = 0; c->o->mix_input && threshold && e < c->per_image; e += 8) {
            uint64_t h = next_random(&c->rng);
            for (size_t k = e; k < e + 8 && k < c->per_image; k++, h >>= 8)
                if ((unsigned)(h & 255u) < threshold) xb[k] = c->xf[off + k];
        }
    }
    return batch;
}

static vitq_status train(recon *c, vitq_i_block_train *bt) {
    vitq_i_param params[VITQ_I_BT_LAYERS + VITQ_I_BT_SITES];
    int count = vitq_i_block_train_params(bt, params, VITQ_I_BT_LAYERS + VITQ_I_BT_SITES, 0, 1);
    if (!count) return VITQ_OK; /* nothing to learn in this block */
    vitq_i_param_group groups[2] = {{c->o->lr_v, 0.0}, {c->o->lr_step, 0.0}};
    vitq_i_adam_options ao = vitq_i_adam_defaults();
    vitq_i_adam adam;
    vitq_status st = vitq_i_adam_init(&adam, c->r->alloc, params, count, groups, 2, &ao);
    if (st) return st;
    vitq_i_adaround_anneal an = vitq_i_adaround_anneal_defaults(c->o->iters);
    an.warmup = c->o->warmup;
    size_t batch = bt->max_images;
    for (int64_t t = 0; !st && t < c->o->iters; t++) {
        gather(c, batch);
        vitq_i_adam_zero_grad(&adam);
        double loss = 0.0;
        st = vitq_i_block_train_forward(bt, c->xb, batch, VITQ_I_BT_SOFT, 1, c->yb);
        if (!st)
            st = vitq_i_loss_mse(c->yb, c->tb, c->fisher_b ? c->fb : NULL, batch * c->per_image, (double)batch, &loss,
                                 c->dy);
        if (!st) st = vitq_i_block_train_backward(bt, c->dy);
        int on = 0;
        double beta = vitq_i_adaround_beta(&an, t, &on);
        if (!st && on) vitq_i_block_train_reg(bt, beta, c->o->lambda);
        if (!st) {
            vitq_status s2 = vitq_i_adam_step(&adam);
            if (s2 && s2 != VITQ_ERR_NON_FINITE) st = s2; /* a non-finite batch is skipped */
        }
        vitq_i_block_train_project(bt);
    }
    vitq_i_adam_free(&adam);
    return st;
}

/* The hard rounding into the run's weight rows (and the float panels: the stream's later passes read them),
 * the learned steps into the points' quantizers. */
static vitq_status write_back(recon *c, int b, const vitq_i_block_train *bt) {
    const vitq_i_block_sites *s = &c->r->list->sites.blocks[b];
    const int sites[VITQ_I_BT_SITES] = {s->norm1_in, s->qkv_in, s->q, s->k, s->v, s->scores, s->probs, s->proj_in,
                                        s->norm2_in, s->fc1_in, s->gelu_in, s->fc2_in};
    vitq_status st = VITQ_OK;
    for (int k = 0; !st && k < VITQ_I_BT_LAYERS; k++) {
        int p = weight_point(s, k);
        if (vitq_i_block_train_hard(bt, k, c->r->weights[p])) st = vitq_i_run_set_weight(c->r, p, 0);
    }
    for (int k = 0; !st && k < VITQ_I_BT_SITES; k++) {
        const vitq_i_bt_point *pt = &bt->pt[k];
        vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, sites[k]);
        if (pt->learned && qp) st = qp->inst.scheme.set_param(qp->inst.state, "scale", pt->step, pt->groups);
    }
    return st;
}

static vitq_status one_block(recon *c, int b, vitq_i_recon_block *rep) {
    vitq_i_bt_config cfg;
    configure(c, b, &cfg);
    vitq_i_block_train bt;
    memcpy(c->target, c->xf, c->n * c->per_image * sizeof(float));
    vitq_status st = vitq_i_net_block_forward(c->r->model, b, c->target, c->n, NULL);
    if (!st) st = vitq_i_block_train_create(&bt, c->r->alloc, c->r->model, b, &cfg);
    if (st) return st;
    st = evaluate(c, &bt, VITQ_I_BT_START, &rep->before);
    if (!st) memcpy(c->keep, c->next, c->n * c->per_image * sizeof(float));
    if (!st) st = train(c, &bt);
    if (!st) st = evaluate(c, &bt, VITQ_I_BT_HARD, &rep->after);
    rep->kept = !st && !(rep->after < rep->before); /* also a NaN: the start stays */
    if (!st && !rep->kept) st = write_back(c, b, &bt);
    float *t = c->xq; /* the next block's inputs: the chosen result's outputs */
    c->xq = rep->kept ? c->keep : c->next;
    if (rep->kept) c->keep = t;
    else c->next = t;
    t = c->xf, c->xf = c->target, c->target = t; /* the float stream on */
    vitq_i_block_train_free(&bt);
    return st;
}

/* ---- the Fisher weights ------------------------------------------------------------------------------- */

typedef struct fisher_ctx {
    const vitq_i_net *m;
    float *fisher;
    size_t stride; /* floats per block */
} fisher_ctx;

static size_t stream_floats(const vitq_i_net *m, int b) {
    size_t tokens, d;
    vitq_i_block_shape(m, b, &tokens, &d, NULL, NULL, NULL);
    return tokens * d;
}

static int keep_fisher(void *ctx, int block, size_t first, size_t n, const float *x_in, const float *d_out) {
    (void)x_in;
    const fisher_ctx *f = ctx;
    size_t per = stream_floats(f->m, block);
    float *dst = f->fisher + (size_t)block * f->stride + first * per;
    for (size_t k = 0; k < n * per; k++) dst[k] = d_out[k] * d_out[k];
    return 0;
}

/* BRECQ's diagonal Fisher of every block's output: the squared gradient of the float network's
 * cross-entropy against its own top-1 class (grad/backward.h), per element. Each block's weights are
 * scaled to mean 1, so that the loss keeps the size of the plain MSE and AdaRound's lambda its meaning;
 * BRECQ leaves them as they come, which ties lambda to the model's gradient scale. */
static vitq_status fisher_weights(recon *c, const float *images) {
    int depth = c->r->model->info.depth;
    fisher_ctx f = {c->r->model, c->fisher, c->n * c->max_per};
    vitq_status st = vitq_i_model_backward(c->r->model, images, c->n, NULL, NULL, keep_fisher, &f);
    for (int b = 0; !st && b < depth; b++) {
        size_t all = c->n * stream_floats(c->r->model, b);
        float *w = c->fisher + (size_t)b * f.stride;
        double sum = 0.0;
        for (size_t k = 0; k < all; k++) sum += w[k];
        float scale = sum > 0.0 ? (float)((double)all / sum) : 1.0f;
        for (size_t k = 0; k < all; k++) w[k] = sum > 0.0 ? w[k] * scale : 1.0f;
    }
    return st;
}

/* The images reconstruction trains on: the calibration images, then o->augment augmented views of each (view
 * k of image i at k * n + i after them). *images is r's own when there are no views, else an allocation the
 * caller frees (*owned). */
static vitq_status training_images(vitq_i_run *r, const vitq_i_recon_options *o, const float **images, size_t *n,
                                   float **owned) {
    const vitq_model_info *i = &r->model->info;
    size_t per = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size, base = r->num_images;
    *images = r->images, *n = base, *owned = NULL;
    if (o->augment < 1) return VITQ_OK;
    size_t total = base * (size_t)(1 + o->augment);
    float *all = vitq_i_alloc_array(r->alloc, total * per, sizeof(float));
    if (!all) return vitq_i_oom("augmented calibration images", total * per * sizeof(float));
    memcpy(all, r->images, base * per * sizeof(float));
    vitq_i_augment a = vitq_i_augment_defaults();
    vitq_status st = vitq_i_augment_batch(&a, r->images, base, i->in_channels, i->image_size, i->image_size, 0,
                                          o->augment, o->seed ^ 0xa06u, r->model->num_threads, all + base * per);
    if (st) {
        vitq_i_free(r->alloc, all);
        return st;
    }
    *images = all, *n = total, *owned = all;
    return VITQ_OK;
}

/* Swin's patch merging into stage s on both streams, its reduction layer reconstructed on the way
 * (recon_layer.h: the quantized network's merged input against the float network's output of the layer). */
static vitq_status merge_stage(recon *c, int s, vitq_i_recon_block *rep) {
    vitq_i_run *r = c->r;
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    size_t prev = c->n * (size_t)i->stage_grid[s - 1] * (size_t)i->stage_grid[s - 1] * (size_t)i->stage_dim[s - 1];
    size_t rows = (size_t)i->stage_grid[s] * (size_t)i->stage_grid[s];
    vitq_i_stem_job j = {NULL, c->n, s, c->xf, c->next, NULL};
    vitq_status st = vitq_i_run_stem(r, &j, 0);
    memcpy(c->keep, c->xq, prev * sizeof(float)); /* to merge again with the reconstructed weights */
    j.x = c->xq, j.capture = c->target;
    if (!st) st = vitq_i_run_stem(r, &j, 1);
    int p = r->list->sites.stages[s].merge_in + 1;
    if (!st)
        st = vitq_i_recon_linear(r, p, m->stages[s].merge.out, m->stages[s].merge.in, m->stages[s].merge.bias,
                                 c->target, c->xf, c->n, rows, c->o, rep);
    if (!st && !rep->kept) {
        memcpy(c->xq, c->keep, prev * sizeof(float));
        j.capture = NULL;
        st = vitq_i_run_stem(r, &j, 1);
    }
    return st;
}

/* Report a finished piece (a block or a merging) as a stage of its own that is over (a progress display
 * prints a finished stage at once), then the run's overall count. */
static vitq_status report_piece(vitq_i_run *r, const char *what, const vitq_i_recon_block *rep, double left) {
    char stage[160];
    snprintf(stage, sizeof stage, "reconstruct %s: loss %.4g -> %.4g%s, %.0f s left", what, rep->before, rep->after,
             rep->kept ? " (worse: kept the start)" : "", left);
    vitq_i_progress line = {r->opts->progress, r->opts->progress_user};
    vitq_status st = vitq_i_progress_step(&line, stage, 1, 1, "calibration");
    return st ? st : vitq_i_run_progress(r, "reconstruct");
}

vitq_status vitq_i_reconstruct(vitq_i_run *r, const vitq_i_recon_options *o, vitq_i_recon_block *report) {
    const vitq_i_net *m = r->model;
    if (!m->blocks[0].qkv.weight)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "block reconstruction: the run has no private copy of the model");
    if (o->iters < 1 || o->batch < 1 || !(o->drop >= 0.0 && o->drop <= 1.0))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "block reconstruction: %d iterations, batch %d, QDrop %g", o->iters,
                           o->batch, o->drop);
    int depth = m->info.depth;
    recon c = {.r = r, .o = o, .rng = o->seed ^ 0x5eedu};
    for (int b = 0; b < depth; b++) c.max_per = stream_floats(m, b) > c.max_per ? stream_floats(m, b) : c.max_per;
    const float *images;
    float *owned;
    vitq_status st = training_images(r, o, &images, &c.n, &owned);
    if (st) return st;
    size_t batch = (size_t)o->batch < c.n ? (size_t)o->batch : c.n, all = c.n * c.max_per, part = batch * c.max_per;
    size_t fisher = o->fisher ? (size_t)depth * all + part : 0, floats = 5 * all + 4 * part + fisher;
    float *block = vitq_i_alloc_array(r->alloc, floats, sizeof(float));
    if (!block) {
        vitq_i_free(r->alloc, owned);
        return vitq_i_oom("block reconstruction streams", floats * sizeof(float));
    }
    c.xf = block, c.xq = c.xf + all, c.target = c.xq + all, c.next = c.target + all, c.keep = c.next + all;
    c.xb = c.keep + all, c.tb = c.xb + part, c.yb = c.tb + part, c.dy = c.yb + part;
    if (o->fisher) c.fisher = c.dy + part, c.fb = c.fisher + (size_t)depth * all;
    st = c.fisher ? fisher_weights(&c, images) : VITQ_OK;
    vitq_i_stem_job embedding = {images, c.n, 0, c.xf, NULL, NULL};
    if (!st) st = vitq_i_run_stem(r, &embedding, 0);
    embedding.x = c.xq;
    if (!st) st = vitq_i_run_stem(r, &embedding, 1);
    vitq_i_free(r->alloc, owned); /* the streams hold all that is needed from here on */
    int merges = m->info.arch == VITQ_ARCH_SWIN ? m->info.num_stages - 1 : 0;
    r->progress_total += depth + merges;
    double t0 = vitq_i_now_seconds();
    for (int b = 0; !st && b < depth; b++) {
        vitq_i_recon_block rep = {0, 0, 0};
        int s = vitq_i_merge_before(m, b);
        char what[64];
        if (s) {
            st = merge_stage(&c, s, &rep);
            snprintf(what, sizeof what, "merging into stage %d", s + 1);
            if (!st) st = report_piece(r, what, &rep, (vitq_i_now_seconds() - t0) / b * (depth - b));
        }
        c.per_image = stream_floats(m, b);
        c.fisher_b = c.fisher ? c.fisher + (size_t)b * all : NULL;
        if (!st) st = one_block(&c, b, &rep);
        if (report) report[b] = rep;
        snprintf(what, sizeof what, "block %d/%d", b + 1, depth);
        if (!st) st = report_piece(r, what, &rep, (vitq_i_now_seconds() - t0) / (b + 1) * (depth - b - 1));
    }
    vitq_i_free(r->alloc, block);
    return st;
}
