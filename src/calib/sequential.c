/* Sequential activation calibration (sequential.h). */
#include <math.h>
#include <string.h>

#include "calib/sequential.h"
#include "model/forward_common.h"

typedef struct seq_ctx {
    vitq_i_run *r;
    int target;           /* the point being observed (-1: none) */
    int pass;             /* its observation pass */
    unsigned char *ready; /* per point: finalized, so applied */
} seq_ctx;

static vitq_status seq_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    seq_ctx *s = t->ctx;
    vitq_i_qpoint *qp = vitq_i_run_qpoint(s->r, point);
    if (!qp) return VITQ_OK;
    if (point == s->target) { /* observed as it arrives, left as it is (it is quantized once finalized) */
        if (s->pass == 0) vitq_i_run_view_range(v, &qp->observed_min, &qp->observed_max);
        return qp->inst.scheme.observe(qp->inst.state, s->pass, v);
    }
    return s->ready[point] ? qp->inst.scheme.fake_quant(qp->inst.state, v) : VITQ_OK;
}

/* The activation points of a block (or of the stem or the head) in forward order, as site indices. */
static int block_points(const vitq_i_block_sites *b, int *out) {
    const int all[] = {b->norm1_in, b->qkv_in,   b->q,       b->k,      b->v,       b->scores,
                       b->probs,    b->proj_in, b->norm2_in, b->fc1_in, b->gelu_in, b->fc2_in};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] >= 0) out[n++] = all[i];
    return n;
}

/* One span of the network: blocks from..to-1 (from -1: the embeddings), or the head (from == depth). */
typedef struct span {
    int from;
    const float *in;
    float *out; /* stream entering block from + 1 (NULL for the head) */
    float *logits;
} span;

static vitq_status run_span(vitq_i_run *r, const span *sp, seq_ctx *s) {
    vitq_i_taps taps = {.sites = &r->list->sites, .apply = seq_tap, .ctx = s};
    vitq_status st = sp->from == r->model->info.depth
                         ? vitq_i_vit_forward_from(r->model, sp->from, sp->in, r->num_images, sp->logits, &taps)
                         : vitq_i_vit_forward_span(r->model, sp->from, sp->from + 1, sp->in, r->num_images, sp->out,
                                                   &taps);
    return st ? st : vitq_i_run_progress(r, "calibrate");
}

/* Calibrate the points of one span in order, then (out set) run it with all of them applied. */
static vitq_status calibrate_span(vitq_i_run *r, const span *sp, const int *points, int count, seq_ctx *s) {
    vitq_status st = VITQ_OK;
    for (int i = 0; !st && i < count; i++) {
        vitq_i_qpoint *qp = vitq_i_run_qpoint(r, points[i]);
        if (!qp) continue;
        vitq_point_config cfg = qp->inst.config;
        st = vitq_i_run_recreate(r, points[i], &qp->inst.scheme, &cfg); /* fresh statistics */
        qp = vitq_i_run_qpoint(r, points[i]);
        if (!st) {
            qp->observed_min = INFINITY;
            qp->observed_max = -INFINITY;
        }
        s->target = points[i];
        for (int pass = 0; !st && pass < qp->inst.scheme.num_passes; pass++) {
            s->pass = pass;
            st = run_span(r, sp, s);
        }
        if (!st) st = qp->inst.scheme.finalize(qp->inst.state);
        s->ready[points[i]] = 1;
    }
    s->target = -1;
    return !st && sp->out ? run_span(r, sp, s) : st;
}

vitq_status vitq_i_run_observe_sequential(vitq_i_run *r) {
    vitq_i_net *m = r->model;
    if (m->stages) return VITQ_OK; /* Swin: the float statistics stay */
    const vitq_i_sites *sites = &r->list->sites;
    size_t n = r->num_images, stream = (size_t)m->info.num_tokens * (size_t)m->info.embed_dim;
    float *base = vitq_i_alloc_array(r->alloc, n * stream, 2 * sizeof(float)), *a = base, *b = a ? a + n * stream : NULL;
    float *logits = vitq_i_alloc_array(r->alloc, n, (size_t)m->info.num_classes * sizeof(float));
    unsigned char *ready = vitq_i_calloc(r->alloc, (size_t)r->list->count + 1, 1);
    vitq_status st = !base || !logits || !ready ? vitq_i_oom("sequential calibration streams", 2 * n * stream * 4) : VITQ_OK;
    int points[16], passes = 0;
    for (int i = 0; i < r->q->count; i++) passes += r->q->qpoints[i].inst.scheme.num_passes;
    r->progress_total += passes + m->info.depth + 1;
    seq_ctx s = {r, -1, 0, ready};
    if (!st) st = vitq_i_run_set_weights(r, 1);
    span stem = {-1, r->images, a, NULL};
    if (!st) st = calibrate_span(r, &stem, &sites->patch_in, sites->patch_in >= 0, &s);
    for (int blk = 0; !st && blk < m->info.depth; blk++) {
        span sp = {blk, a, b, NULL};
        st = calibrate_span(r, &sp, points, block_points(&sites->blocks[blk], points), &s);
        float *t = a;
        a = b, b = t;
    }
    int head[] = {sites->norm_in, sites->pre_logits_in, sites->head_in, sites->head_dist_in}, nh = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        if (head[i] >= 0) points[nh++] = head[i];
    span top = {m->info.depth, a, NULL, logits};
    if (!st) st = calibrate_span(r, &top, points, nh, &s);
    vitq_status restored = vitq_i_run_set_weights(r, 0); /* the float weights back, whatever happened */
    if (!st) st = restored;
    vitq_i_free(r->alloc, base);
    vitq_i_free(r->alloc, logits);
    vitq_i_free(r->alloc, ready);
    return st;
}
