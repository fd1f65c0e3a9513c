/* Block reconstruction (reconstruct.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "calib/reconstruct.h"
#include "model/block.h"
#include "model/stem.h"
#include "quant/noisy.h"
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
                              3e-2, 1e-3, 0.01, 0.2, seed};
    return o;
}

/* ---- the two streams' embeddings ------------------------------------------------------------------- */

typedef struct embed_ctx {
    vitq_i_run *r;
} embed_ctx;

static vitq_status instance_fq(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

static vitq_status quant_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const embed_ctx *c = t->ctx;
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, point);
    if (!qp) return VITQ_OK;
    if (qp->noise) return vitq_i_noisy_fake_quant(instance_fq, (void *)&qp->inst, qp->noise, v);
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

/* The residual stream entering block 0 of every calibration image: the float network's (quantized 0) or the
 * quantized one's (its patch embedding's points applied). */
static vitq_status embed(vitq_i_run *r, int quantized, float *x) {
    const vitq_model_info *i = &r->model->info;
    size_t n = r->num_images, tokens = (size_t)i->num_tokens, d = (size_t)i->embed_dim;
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    int wp = r->list->sites.patch_in + 1;
    float *patches = vitq_i_alloc_array(r->alloc, n * tokens * (patch_in + d), sizeof(float));
    if (!patches) return vitq_i_oom("reconstruction embedding", n * tokens * (patch_in + d) * sizeof(float));
    vitq_status st = quantized && vitq_i_run_qpoint(r, wp) ? vitq_i_run_set_weight(r, wp, 1) : VITQ_OK;
    embed_ctx c = {r};
    vitq_i_taps taps = {.sites = &r->list->sites, .apply = quant_tap, .ctx = &c};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, r->model, quantized ? &taps : NULL);
    if (!st) vitq_i_vit_embed(&p, r->images, n, patches, patches + n * tokens * patch_in, x);
    vitq_status pst = vitq_i_pass_end(&p);
    if (!st) st = pst;
    if (!st && quantized) st = taps.status;
    vitq_status off = quantized && vitq_i_run_qpoint(r, wp) ? vitq_i_run_set_weight(r, wp, 0) : VITQ_OK;
    vitq_i_free(r->alloc, patches);
    return st ? st : off;
}

/* ---- one block --------------------------------------------------------------------------------------- */

typedef struct recon {
    vitq_i_run *r;
    const vitq_i_recon_options *o;
    size_t n, per_image;  /* images, floats of one image's stream */
    float *xf, *xq, *target, *next, *keep, *xb, *tb, *yb, *dy;
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
        if (!st) st = vitq_i_loss_mse(c->next + off, c->target + off, NULL, k * c->per_image, (double)c->n, &l, NULL);
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
 * and stay deterministic). */
static size_t gather(recon *c, size_t batch) {
    size_t start = (size_t)(next_random(&c->rng) % c->n);
    for (size_t i = 0; i < batch; i++) {
        size_t img = (start + i) % c->n;
        memcpy(c->xb + i * c->per_image, c->xq + img * c->per_image, c->per_image * sizeof(float));
        memcpy(c->tb + i * c->per_image, c->target + img * c->per_image, c->per_image * sizeof(float));
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
        if (!st) st = vitq_i_loss_mse(c->yb, c->tb, NULL, batch * c->per_image, (double)batch, &loss, c->dy);
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

vitq_status vitq_i_reconstruct(vitq_i_run *r, const vitq_i_recon_options *o, vitq_i_recon_block *report) {
    const vitq_i_net *m = r->model;
    if (m->info.arch == VITQ_ARCH_SWIN)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "block reconstruction of %s: Swin's window blocks and patch merging "
                           "are not supported yet (ViT and DeiT are)", m->name);
    if (!m->blocks[0].qkv.weight)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "block reconstruction: the run has no private copy of the model");
    if (o->iters < 1 || o->batch < 1 || !(o->drop >= 0.0 && o->drop <= 1.0))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "block reconstruction: %d iterations, batch %d, QDrop %g", o->iters,
                           o->batch, o->drop);
    recon c = {r, o, r->num_images, (size_t)m->info.num_tokens * (size_t)m->info.embed_dim, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, o->seed ^ 0x5eedu};
    size_t batch = (size_t)o->batch < c.n ? (size_t)o->batch : c.n, all = c.n * c.per_image, part = batch * c.per_image;
    float *block = vitq_i_alloc_array(r->alloc, 5 * all + 4 * part, sizeof(float));
    if (!block) return vitq_i_oom("block reconstruction streams", (5 * all + 4 * part) * sizeof(float));
    c.xf = block, c.xq = c.xf + all, c.target = c.xq + all, c.next = c.target + all, c.keep = c.next + all;
    c.xb = c.keep + all, c.tb = c.xb + part, c.yb = c.tb + part, c.dy = c.yb + part;
    vitq_status st = embed(r, 0, c.xf);
    if (!st) st = embed(r, 1, c.xq);
    int depth = m->info.depth;
    r->progress_total += depth;
    double t0 = vitq_i_now_seconds();
    for (int b = 0; !st && b < depth; b++) {
        vitq_i_recon_block rep = {0, 0, 0};
        st = one_block(&c, b, &rep);
        if (report) report[b] = rep;
        double left = (vitq_i_now_seconds() - t0) / (b + 1) * (depth - b - 1);
        char stage[160];
        snprintf(stage, sizeof stage, "reconstruct block %d/%d: loss %.4g -> %.4g%s, %.0f s left", b + 1, depth,
                 rep.before, rep.after, rep.kept ? " (worse: kept the start)" : "", left);
        /* the block's line as a stage of its own that is over (a progress display prints a finished stage
         * at once), then the run's overall count */
        vitq_i_progress line = {r->opts->progress, r->opts->progress_user};
        if (!st) st = vitq_i_progress_step(&line, stage, 1, 1, "calibration");
        if (!st) st = vitq_i_run_progress(r, "reconstruct");
    }
    vitq_i_free(r->alloc, block);
    return st;
}
