/* MPTQ-ViT's SQ-b and OPT-m as stages of any method (mptq_stages.h; docs/methods.md, MPTQ-ViT).
 *
 * The smoothing stage measures what it needs itself, in one float pass with taps over every calibration
 * image: each smoothed channel's minimum and maximum, and (alpha search) up to SAMPLE_ROWS rows of the
 * first images. So it does not depend on how the method configured the point's quantizer for its own
 * calibration: after the fold the point's quantizer is made again as the method configured it and
 * observed on the folded network. */
#include <math.h>
#include <string.h>

#include "calib/block_search.h"
#include "calib/mptq_stages.h"
#include "quant/smooth.h"

/* Rows of the smoothed points' activations for the alpha search: at most SAMPLE_ROWS rows per point,
 * spread evenly over the first images (the float network's; the folds do not change them). */
#define SAMPLE_ROWS 1024
#define ALPHAS 11 /* 0, 0.1, .., 1 */

int vitq_i_smooth_options_from(const double *opts, vitq_i_smooth_options *out) {
    if (opts[0] == 0) return 0;
    out->shift = opts[0] == 1;
    out->alpha = opts[1];
    out->alpha_search = opts[2] != 0;
    return 1;
}

/* What the float pass keeps, per point of the run (NULL where not smoothed). */
typedef struct stats {
    float **lo, **hi;   /* [channels] each */
    float **rows;       /* [capacity][channels]: alpha search samples */
    size_t *count, capacity;
    int sampling;       /* the pass is over the first images: rows are taken */
} stats;

static vitq_status stats_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    stats *s = t->ctx;
    if (!s->lo[point]) return VITQ_OK;
    size_t d = (size_t)(v->channels * v->inner);
    float *lo = s->lo[point], *hi = s->hi[point];
    for (int64_t i = 0; i < v->outer; i++) {
        const float *x = v->data + i * v->outer_stride;
        for (size_t c = 0; c < d; c++) {
            if (x[c] < lo[c]) lo[c] = x[c];
            if (x[c] > hi[c]) hi[c] = x[c];
        }
    }
    if (!s->sampling || !s->rows[point]) return VITQ_OK;
    size_t stride = (size_t)v->outer / s->capacity + 1;
    for (int64_t i = 0; i < v->outer && s->count[point] < s->capacity; i += (int64_t)stride)
        memcpy(s->rows[point] + s->count[point]++ * d, v->data + i * v->outer_stride, d * sizeof(float));
    return VITQ_OK;
}

/* The post-LayerNorm points the fold applies to, with the LayerNorm and the layer that reads each. */
typedef struct site {
    int point;
    vitq_i_layernorm_params *ln;
    vitq_i_linear *next;
} site;

static int smoothed_sites(vitq_i_net *m, const vitq_i_sites *sites, site *out) {
    int n = 0;
    for (int b = 0; b < m->info.depth; b++) {
        vitq_i_block *blk = &m->blocks[b];
        out[n++] = (site){sites->blocks[b].qkv_in, &blk->norm1, &blk->qkv};
        out[n++] = (site){sites->blocks[b].fc1_in, &blk->norm2, &blk->fc1};
    }
    for (int s = 1; m->stages && s < m->info.num_stages; s++)
        out[n++] = (site){sites->stages[s].merge_in, &m->stages[s].merge_norm, &m->stages[s].merge};
    return n;
}

/* Per-channel ranges of the smoothed points over every calibration image, samples from the first batch. */
static vitq_status take_stats(vitq_i_run *r, stats *s, int sample) {
    for (int p = 0; p < r->list->count; p++) {
        if (!s->lo[p]) continue;
        size_t d = (size_t)r->list->points[p].channels;
        for (size_t c = 0; c < d; c++) s->lo[p][c] = INFINITY, s->hi[p][c] = -INFINITY;
        if (!sample) continue;
        s->rows[p] = vitq_i_alloc_array(r->alloc, s->capacity, d * sizeof(float));
        if (!s->rows[p]) return vitq_i_oom("smoothing alpha search rows", s->capacity * d * sizeof(float));
    }
    vitq_i_taps taps = {.sites = &r->list->sites, .apply = stats_tap, .ctx = s};
    vitq_status st = VITQ_OK;
    for (size_t first = 0; !st && first < r->num_images; first += VITQ_I_FEED_BATCH) {
        size_t k = r->num_images - first < VITQ_I_FEED_BATCH ? r->num_images - first : VITQ_I_FEED_BATCH;
        s->sampling = sample && first == 0;
        st = vitq_i_run_forward(r, first, k, &taps, NULL);
    }
    return st;
}

/* The alpha of least smoothed-output error on the point's sample rows (alpha_search), else o->alpha. */
static vitq_status choose_alpha(vitq_i_run *r, int p, const stats *s, vitq_i_linear *next,
                                const vitq_i_smooth_options *o, double *bs, double *alpha) {
    *alpha = o->alpha;
    if (!o->alpha_search || !s->rows[p] || !s->count[p]) return VITQ_OK;
    vitq_i_linear *const nexts[1] = {next};
    size_t d = next->in;
    double best = INFINITY;
    vitq_status st = VITQ_OK;
    int wbits = r->cfg[p + 1].bits ? r->cfg[p + 1].bits : 16;
    for (int k = 0; !st && k < ALPHAS; k++) {
        double a = k / (double)(ALPHAS - 1), err = INFINITY;
        st = vitq_i_smooth_factors(s->lo[p], s->hi[p], d, nexts, 1, a, o->shift, bs, bs + d);
        if (!st)
            st = vitq_i_smooth_error(r->alloc, s->rows[p], s->count[p], d, next, s->lo[p], s->hi[p], bs, bs + d,
                                     r->cfg[p].bits, wbits, &err);
        if (!st && err < best) best = err, *alpha = a; /* ties: the smaller alpha */
    }
    return st;
}

/* Fold the smoothing of point p (the output of `ln`, read by `next`), then remake its quantizer and the
 * weight's after it. */
static vitq_status smooth_point(vitq_i_run *r, int p, const site *at, const stats *s, const vitq_i_smooth_options *o) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (p + 1 >= r->list->count || r->list->points[p + 1].weight != at->next)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: smoothing expects the weight of its layer right after it",
                           r->list->points[p].name);
    size_t d = at->next->in;
    double *bs = vitq_i_alloc_array(r->alloc, d, 2 * sizeof(double));
    if (!bs) return vitq_i_oom("smoothing factors", d * 2 * sizeof(double));
    vitq_i_linear *const nexts[1] = {at->next};
    double alpha;
    vitq_status st = choose_alpha(r, p, s, at->next, o, bs, &alpha);
    if (!st) st = vitq_i_smooth_factors(s->lo[p], s->hi[p], d, nexts, 1, alpha, o->shift, bs, bs + d);
    if (!st) st = vitq_i_smooth_fold(r->alloc, at->ln, d, nexts, 1, bs, bs + d);
    vitq_i_free(r->alloc, bs);
    if (!st) { /* a fresh quantizer, observed once every fold is done */
        vitq_point_config cfg = qp->inst.config;
        st = vitq_i_run_recreate(r, p, &qp->inst.scheme, &cfg);
    }
    vitq_i_qpoint *wp = vitq_i_run_qpoint(r, p + 1);
    if (!st && wp) { /* the weight changed: a fresh quantizer sees it */
        vitq_point_config wcfg = wp->inst.config;
        st = vitq_i_run_recreate(r, p + 1, &wp->inst.scheme, &wcfg);
        if (!st) st = vitq_i_run_calibrate_weight(r, p + 1);
    }
    return st;
}

static void free_stats(const vitq_allocator *a, stats *s, size_t count) {
    for (size_t p = 0; p < count; p++) {
        if (s->lo) vitq_i_free(a, s->lo[p]);
        if (s->hi) vitq_i_free(a, s->hi[p]);
        if (s->rows) vitq_i_free(a, s->rows[p]);
    }
    vitq_i_free(a, s->lo);
    vitq_i_free(a, s->hi);
    vitq_i_free(a, s->rows);
    vitq_i_free(a, s->count);
}

vitq_status vitq_i_smooth_stage(vitq_i_run *r, const vitq_i_smooth_options *o) {
    vitq_i_net *m = r->model;
    size_t max_sites = (size_t)(2 * m->info.depth + m->info.num_stages + 1), count = (size_t)r->list->count;
    int *points = vitq_i_alloc_array(r->alloc, max_sites, sizeof(int));
    site *sites = vitq_i_alloc_array(r->alloc, max_sites, sizeof *sites);
    stats s = {vitq_i_calloc(r->alloc, count, sizeof(float *)), vitq_i_calloc(r->alloc, count, sizeof(float *)),
               vitq_i_calloc(r->alloc, count, sizeof(float *)), vitq_i_calloc(r->alloc, count, sizeof(size_t)),
               SAMPLE_ROWS, 0};
    vitq_status st = points && sites && s.lo && s.hi && s.rows && s.count ? VITQ_OK
                                                                           : vitq_i_oom("smoothing points", count * 32);
    int n = 0, num_sites = st ? 0 : smoothed_sites(m, &r->list->sites, sites);
    for (int i = 0; !st && i < num_sites; i++) {
        int p = sites[i].point;
        if (p < 0 || !vitq_i_run_qpoint(r, p)) continue; /* left in float: nothing to smooth for */
        size_t d = (size_t)r->list->points[p].channels;
        s.lo[p] = vitq_i_alloc_array(r->alloc, d, sizeof(float));
        s.hi[p] = vitq_i_alloc_array(r->alloc, d, sizeof(float));
        if (!s.lo[p] || !s.hi[p]) st = vitq_i_oom("smoothing ranges", d * 2 * sizeof(float));
    }
    r->progress_total += num_sites;
    if (!st) st = take_stats(r, &s, o->alpha_search);
    for (int i = 0; !st && i < num_sites; i++) {
        int p = sites[i].point;
        if (p < 0 || !s.lo[p]) continue;
        st = smooth_point(r, p, &sites[i], &s, o);
        if (!st) points[n++] = p;
        if (!st) st = vitq_i_run_progress(r, "smooth");
    }
    /* The float network is the same function after the folds, so one pass observes every smoothed
     * point on the activations it will quantize. */
    if (!st && n) st = vitq_i_run_observe_points(r, points, n);
    free_stats(r->alloc, &s, count);
    vitq_i_free(r->alloc, sites);
    vitq_i_free(r->alloc, points);
    return st;
}

void vitq_i_opt_m_configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, int on) {
    if (on && d->role == VITQ_ROLE_POST_GELU && cfg->scheme && strcmp(cfg->scheme->name, "twin-gelu") == 0)
        cfg->options[0] = 1; /* twin-gelu's option pow2 */
}

vitq_status vitq_i_opt_m_stage(vitq_i_run *r, size_t images) {
    vitq_i_block_search_options o = {0};
    o.rounds = 1;
    o.images = images;
    o.ratios_only = 1;
    return vitq_i_block_search(r, &o);
}
