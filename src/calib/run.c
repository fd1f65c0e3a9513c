/* The services of a calibration run (run.h) that the driver (calibrate.c), the methods and the
 * searches share: forward passes over the calibration images, progress, quantizers of points, and
 * weights. Nothing here calls up into a method or the driver. */
#include <math.h>
#include <string.h>

#include "calib/run.h"
#include "quant/view.h"

void vitq_i_run_view_range(const vitq_tensor_view *v, float *lo, float *hi) {
    for (int64_t o = 0; o < v->outer; o++) {
        const float *x = v->data + o * v->outer_stride;
        for (int64_t k = 0; k < v->channels * v->inner; k++) {
            if (x[k] < *lo) *lo = x[k];
            if (x[k] > *hi) *hi = x[k];
        }
    }
}

vitq_status vitq_i_run_forward(vitq_i_run *r, size_t first, size_t n, vitq_i_taps *taps, float *logits) {
    size_t classes = (size_t)r->model->info.num_classes;
    float *own = logits ? NULL : vitq_i_alloc_array(r->alloc, n * classes, sizeof(float));
    if (!logits && !own) return vitq_i_oom("calibration logits", n * classes * sizeof(float));
    vitq_status st = vitq_i_net_forward(r->model, r->images + first * r->per_image, n, logits ? logits : own,
                                               taps);
    vitq_i_free(r->alloc, own);
    return st;
}

vitq_status vitq_i_run_progress(vitq_i_run *r, const char *stage) {
    r->progress_done++;
    if (r->progress_done > r->progress_total) r->progress_total = r->progress_done;
    vitq_i_progress p = {r->opts->progress, r->opts->progress_user};
    return vitq_i_progress_step(&p, stage, r->progress_done, r->progress_total, "calibration");
}

vitq_status vitq_i_run_recreate(vitq_i_run *r, int p, const vitq_scheme *scheme, vitq_point_config *cfg) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const vitq_i_point_desc *d = &r->list->points[p];
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
    vitq_status st = vitq_i_config_groups(cfg, d->heads);
    if (st) return st;
    /* The scheme's state keeps pointers into the instance (host, name): create it in place. cfg may
     * and scheme may point into the old instance, so take what they refer to first. */
    if (cfg->options) memcpy(options, cfg->options, (size_t)scheme->num_options * sizeof(double));
    else vitq_i_scheme_option_defaults(scheme, options);
    vitq_point_config copy = *cfg;
    copy.name = d->name;
    copy.options = options;
    vitq_scheme table = *scheme; /* scheme may be the old instance's own copy */
    vitq_i_instance_destroy(&qp->inst);
    return vitq_i_instance_create(&qp->inst, r->alloc, &table, &copy);
}

vitq_status vitq_i_run_calibrate_weight(vitq_i_run *r, int p) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const vitq_i_point_desc *d = &r->list->points[p];
    const vitq_scheme *s = &qp->inst.scheme;
    vitq_tensor_view v = vitq_i_view_rows(r->weights[p], d->channels, d->inner);
    vitq_status st = VITQ_OK;
    qp->observed_min = INFINITY;
    qp->observed_max = -INFINITY;
    vitq_i_run_view_range(&v, &qp->observed_min, &qp->observed_max);
    for (int pass = 0; !st && pass < s->num_passes; pass++) st = s->observe(qp->inst.state, pass, &v);
    return st ? st : s->finalize(qp->inst.state);
}

vitq_status vitq_i_run_fake_weight(const vitq_i_run *r, int p, float *out) {
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const vitq_i_point_desc *d = &r->list->points[p];
    memcpy(out, r->weights[p], (size_t)(d->channels * d->inner) * sizeof(float));
    if (!qp) return VITQ_OK;
    vitq_tensor_view v = vitq_i_view_rows(out, d->channels, d->inner);
    return qp->inst.scheme.fake_quant(qp->inst.state, &v);
}

vitq_status vitq_i_run_set_weight(vitq_i_run *r, int p, int quantized) {
    const vitq_i_point_desc *d = &r->list->points[p];
    vitq_i_linear *l = d->weight;
    if (!l->weight)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: quantized weights are swapped in on a private copy only", d->name);
    float *w = vitq_i_alloc_array(r->alloc, l->out * l->in, sizeof(float));
    if (!w) return vitq_i_oom(d->name, l->out * l->in * sizeof(float));
    vitq_status st = quantized ? vitq_i_run_fake_weight(r, p, w) : VITQ_OK;
    if (!quantized) memcpy(w, l->weight, l->out * l->in * sizeof(float));
    vitq_i_packed fresh;
    if (!st) st = vitq_i_gemm_pack(r->alloc, w, l->out, l->in, &fresh);
    if (!st) {
        vitq_i_gemm_packed_free(r->alloc, &l->packed);
        l->packed = fresh;
    }
    vitq_i_free(r->alloc, w);
    return st;
}

size_t vitq_i_run_stream_group(const vitq_i_net *m, size_t n, size_t budget, size_t *per_stream) {
    size_t depth = (size_t)m->info.depth;
    *per_stream = m->stages ? 0 : (size_t)m->info.num_tokens * (size_t)m->info.embed_dim;
    size_t group = *per_stream ? budget / ((depth + 1) * *per_stream * sizeof(float)) : n;
    return group < 1 ? 1 : group > n ? n : group;
}

vitq_status vitq_i_run_set_weights(vitq_i_run *r, int quantized) {
    vitq_status st = VITQ_OK;
    for (int i = 0; i < r->q->count; i++) {
        int p = r->q->qpoints[i].point;
        if (r->list->points[p].kind != VITQ_POINT_WEIGHT) continue;
        vitq_status s = vitq_i_run_set_weight(r, p, quantized);
        if (!st) st = s;
    }
    return st;
}

/* vitq_i_run_observe_points: the taps of the chosen points only. */
typedef struct reobserve_ctx {
    vitq_i_run *r;
    int pass;
} reobserve_ctx;

static vitq_status reobserve_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    reobserve_ctx *c = t->ctx;
    return vitq_i_run_observe_view(vitq_i_run_qpoint(c->r, point), c->pass, v);
}

vitq_status vitq_i_run_observe_view(vitq_i_qpoint *qp, int pass, const vitq_tensor_view *v) {
    if (pass == 0) vitq_i_run_view_range(v, &qp->observed_min, &qp->observed_max);
    return pass < qp->inst.scheme.num_passes ? qp->inst.scheme.observe(qp->inst.state, pass, v) : VITQ_OK;
}

vitq_status vitq_i_run_observe_points(vitq_i_run *r, const int *points, int n) {
    unsigned char *active = vitq_i_calloc(r->alloc, (size_t)r->list->count + 1, 1);
    if (!active) return vitq_i_oom("re-observed points", (size_t)r->list->count);
    int passes = 0;
    for (int i = 0; i < n; i++) {
        vitq_i_qpoint *qp = vitq_i_run_qpoint(r, points[i]);
        if (!qp || r->list->points[points[i]].kind != VITQ_POINT_ACTIVATION) continue;
        active[points[i]] = 1;
        qp->observed_min = INFINITY;
        qp->observed_max = -INFINITY;
        if (qp->inst.scheme.num_passes > passes) passes = qp->inst.scheme.num_passes;
    }
    vitq_i_sites sites;
    memset(&sites, 0, sizeof sites);
    vitq_status st = vitq_i_sites_filter(r->alloc, r->model, r->list, active, &sites);
    reobserve_ctx ctx = {r, 0};
    size_t batches = (r->num_images + VITQ_I_FEED_BATCH - 1) / VITQ_I_FEED_BATCH;
    r->progress_total += (int64_t)((size_t)passes * batches);
    for (int pass = 0; !st && pass < passes; pass++) {
        ctx.pass = pass;
        for (size_t first = 0; !st && first < r->num_images; first += VITQ_I_FEED_BATCH) {
            size_t k = r->num_images - first < VITQ_I_FEED_BATCH ? r->num_images - first : VITQ_I_FEED_BATCH;
            vitq_i_taps taps = {.sites = &sites, .apply = reobserve_tap, .ctx = &ctx};
            st = vitq_i_run_forward(r, first, k, &taps, NULL);
            if (!st) st = vitq_i_run_progress(r, "calibrate");
        }
    }
    for (int p = 0; !st && p < r->list->count; p++) {
        vitq_i_qpoint *qp = active[p] ? vitq_i_run_qpoint(r, p) : NULL;
        if (qp) st = qp->inst.scheme.finalize(qp->inst.state);
    }
    vitq_i_sites_free(r->alloc, &sites);
    vitq_i_free(r->alloc, active);
    return st;
}
