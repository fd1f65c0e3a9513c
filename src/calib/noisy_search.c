/* NoisyQuant's passes (docs/methods.md, "NoisyQuant"). Both searches of the authors' code work layer by
 * layer in forward order on the input each layer sees in the quantized network: their calibration
 * forward quantizes a layer as soon as its search is done, so every later layer is searched on inputs
 * that went through the earlier quantizers. A pass here does the same in one forward over the first
 * PASS_IMAGES calibration images: the tap of a point under search runs the search at the point's first
 * visit, on up to SAMPLE_ROWS rows sampled evenly from what reaches it, and then quantizes it (with its
 * noisy bias, if any) like every other active point, before the network goes on. The forward works in
 * chunks of images; the search sees the first chunk (at least ~2k tokens, or all images when fewer).
 *
 * When the run's network is its private copy (a method that copies the model), the weights are
 * fake-quantized for the pass as well, as in the authors' code; on the caller's model (the point option
 * noisy = 1 under a method that does not copy) they stay in float, since a pass may not touch it.
 *
 * The searches of one layer, and the score they minimise, are quant/noisy.h's. */
#include <string.h>

#include "calib/noisy_search.h"
#include "quant/noisy.h"

#define SAMPLE_ROWS 512 /* input rows per layer the searches score (bounded memory and time) */
#define PASS_IMAGES 32  /* images of a pass: the first forward chunk is what the searches see */

typedef vitq_status (*point_search)(vitq_i_run *r, int p, const vitq_i_noisy_layer *l, void *ctx);

typedef struct pass_ctx {
    vitq_i_run *r;
    unsigned char *pending; /* per point: 1 until its search has run */
    point_search search;
    void *ctx;
} pass_ctx;

static vitq_status instance_fake_quant(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

/* Run pc->search for point p on rows sampled from v, the input of the linear layer whose weight is p + 1. */
static vitq_status search_at(pass_ctx *pc, int p, const vitq_tensor_view *v) {
    vitq_i_run *r = pc->r;
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const vitq_i_point_desc *w = p + 1 < r->list->count ? &r->list->points[p + 1] : NULL;
    size_t in = (size_t)qp->inst.config.channels;
    if (!w || w->kind != VITQ_POINT_WEIGHT || (size_t)w->inner != in || v->inner != 1 || (size_t)v->channels != in)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: NoisyQuant's searches need the input of a linear layer",
                           qp->inst.name);
    size_t stride = ((size_t)v->outer + SAMPLE_ROWS - 1) / SAMPLE_ROWS, rows = ((size_t)v->outer + stride - 1) / stride;
    size_t out = (size_t)w->channels;
    float *x = vitq_i_alloc_array(r->alloc, rows * in, sizeof(float));
    float *wq = vitq_i_alloc_array(r->alloc, out * in, sizeof(float));
    vitq_i_packed packed = {0, 0, NULL};
    vitq_status st = x && wq ? VITQ_OK : vitq_i_oom(qp->inst.name, (rows + out) * in * sizeof(float));
    for (size_t i = 0; !st && i < rows; i++)
        memcpy(x + i * in, v->data + (int64_t)(i * stride) * v->outer_stride, in * sizeof(float));
    if (!st) st = vitq_i_run_fake_weight(r, p + 1, wq);
    if (!st) st = vitq_i_gemm_pack(r->alloc, wq, out, in, &packed);
    vitq_i_noisy_layer layer = {r->alloc, x, rows, in, &packed, r->model->num_threads};
    if (!st) st = pc->search(r, p, &layer, pc->ctx);
    vitq_i_gemm_packed_free(r->alloc, &packed);
    vitq_i_free(r->alloc, wq);
    vitq_i_free(r->alloc, x);
    return st;
}

static vitq_status pass_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    pass_ctx *pc = t->ctx;
    vitq_i_qpoint *qp = vitq_i_run_qpoint(pc->r, point);
    if (!qp) return VITQ_OK;
    vitq_status st = VITQ_OK;
    if (pc->pending[point]) {
        pc->pending[point] = 0;
        st = search_at(pc, point, v);
        if (!st) st = vitq_i_run_progress(pc->r, "noisy bias");
    }
    if (st) return st;
    if (qp->noise) return vitq_i_noisy_fake_quant(instance_fake_quant, &qp->inst, qp->noise, v);
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

/* The network is the run's private copy when the weight rows the run reads are the layers' own (run.h). */
static int private_network(const vitq_i_run *r) {
    for (int p = 0; p < r->list->count; p++) {
        const vitq_i_point_desc *d = &r->list->points[p];
        if (d->kind == VITQ_POINT_WEIGHT) return r->weights[p] && r->weights[p] == d->weight->weight;
    }
    return 0;
}

/* The GEMM of every quantized weight point reads its fake-quantized weight (on) or the float one (off). */
static vitq_status swap_weights(vitq_i_run *r, int on) {
    vitq_status st = VITQ_OK;
    for (int p = 0; p < r->list->count; p++) {
        if (r->list->points[p].kind != VITQ_POINT_WEIGHT || !vitq_i_run_qpoint(r, p)) continue;
        vitq_status s = vitq_i_run_set_weight(r, p, on);
        if (!st) st = s; /* switching back goes on past a failure: every layer must get its float weight */
        if (st && on) break;
    }
    return st;
}

/* One pass: search every quantized point with pending[p] set, in forward order (pending is consumed). */
static vitq_status run_pass(vitq_i_run *r, unsigned char *pending, point_search search, void *ctx) {
    int targets = 0;
    for (int p = 0; p < r->list->count; p++) {
        if (pending[p] && !vitq_i_run_qpoint(r, p)) pending[p] = 0;
        targets += pending[p];
    }
    if (!targets) return VITQ_OK;
    r->progress_total += targets;
    int quantized = private_network(r);
    vitq_status st = quantized ? swap_weights(r, 1) : VITQ_OK;
    pass_ctx pc = {r, pending, search, ctx};
    vitq_i_taps taps = {.sites = &r->q->sites, .apply = pass_tap, .ctx = &pc};
    size_t images = r->num_images < PASS_IMAGES ? r->num_images : PASS_IMAGES;
    if (!st) st = vitq_i_run_forward(r, 0, images, &taps, NULL);
    if (quantized) {
        vitq_status back = swap_weights(r, 0);
        if (!st) st = back;
    }
    for (int p = 0; !st && p < r->list->count; p++)
        if (pending[p])
            st = vitq_i_fail(VITQ_ERR_CONFIG, "%s: the forward pass never reached this point, so it was not searched",
                             r->list->points[p].name);
    return st;
}

/* ---- the noisy bias ---------------------------------------------------------------------------- */

static vitq_status noise_at(vitq_i_run *r, int p, const vitq_i_noisy_layer *l, void *ctx) {
    (void)ctx;
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    float *unit = vitq_i_alloc_array(r->alloc, l->in, sizeof(float));
    float *noise = vitq_i_alloc_array(r->alloc, l->in, sizeof(float));
    vitq_status st = unit && noise ? VITQ_OK : vitq_i_oom(qp->inst.name, 2 * l->in * sizeof(float));
    vitq_i_noisy_choice choice;
    if (!st) vitq_i_noise_draw(qp->inst.config.seed, unit, l->in);
    /* the mean shift is part of the authors' noisy bias (their --search_mean; their PTQ4ViT fork always) */
    if (!st) st = vitq_i_noisy_bias_search(l, &qp->inst, unit, 1, noise, &choice);
    if (!st && (choice.shift != 0.0 || choice.amplitude != 0.0)) {
        vitq_i_free(r->alloc, qp->noise);
        qp->noise = noise;
        noise = NULL;
    }
    vitq_i_free(r->alloc, unit);
    vitq_i_free(r->alloc, noise);
    return st;
}

vitq_status vitq_i_noisy_refine(vitq_i_run *r, const double *search_options) {
    (void)search_options;
    unsigned char *pending = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    if (!pending) return vitq_i_oom("noisy bias", (size_t)r->list->count);
    for (int p = 0; p < r->list->count; p++) pending[p] = r->cfg[p].noisy != 0;
    vitq_status st = run_pass(r, pending, noise_at, NULL);
    vitq_i_free(r->alloc, pending);
    return st;
}

/* ---- the clipping range ------------------------------------------------------------------------ */

static vitq_status clip_at(vitq_i_run *r, int p, const vitq_i_noisy_layer *l, void *ctx) {
    return vitq_i_noisy_clip_search(l, &vitq_i_run_qpoint(r, p)->inst, *(const int *)ctx, NULL, NULL);
}

vitq_status vitq_i_noisy_clip_refine(vitq_i_run *r, const unsigned char *targets, int grid) {
    unsigned char *pending = vitq_i_alloc(r->alloc, (size_t)r->list->count + 1);
    if (!pending) return vitq_i_oom("clip search", (size_t)r->list->count);
    memcpy(pending, targets, (size_t)r->list->count);
    vitq_status st = run_pass(r, pending, clip_at, &grid);
    vitq_i_free(r->alloc, pending);
    return st;
}
