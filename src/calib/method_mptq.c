/* MPTQ-ViT (Tai & Wu, arXiv 2401.14895; docs/methods.md): SmoothQuant with bias (SQ-b) and the
 * scale-ratio search (OPT-m); its greedy mixed precision is the calibrator's, over any method
 * (calib/mixed_precision.h).
 *
 * Every post-LayerNorm activation that feeds a linear layer inside the network (qkv, fc1, Swin's
 * patch-merging reduction) is first observed per channel (min, max) on the float network. refine
 * turns each channel's range and the next layer's weight columns into a shift b and a smoothing
 * factor s (quant/smooth.h), folds them into the LayerNorm and the linear layer (an identity of the
 * float network), and the point is then quantized symmetrically per tensor, its range observed again
 * on the folded network; the folded layers' weights are calibrated again. Option shift 0 gives plain
 * SmoothQuant (no shift, symmetric per-tensor quantizer after smoothing).
 *
 * The other points follow the paper's base (PTQ4ViT): twin-uniform quantizers for the post-GELU and
 * post-softmax activations, symmetric per-tensor elsewhere, weights symmetric per output channel.
 *
 * OPT-m (option opt_m): the ratio between the two scales of each twin quantizer is searched per layer
 * instead of set by PTQ4ViT's rule: the post-GELU positive step 2^m times the negative one (m = 0..15,
 * the twin-gelu grid kept in that power-of-two format), the post-softmax split 2^-m, each scored by the
 * Hessian-guided (gradient-weighted) error of the output it feeds (the block search's metric,
 * block_search.h), after the folds, on the network the smoothed points now see. */
#include <math.h>
#include <string.h>

#include "calib/block_search.h"
#include "calib/method.h"
#include "quant/range_scheme.h"
#include "quant/schemes.h"
#include "quant/smooth.h"

enum { OPT_SHIFT, OPT_ALPHA, OPT_M, OPT_IMAGES, OPT_ALPHA_SEARCH };

static const vitq_scheme_option options[] = {
    {"shift", "1: SQ-b, each post-LayerNorm channel centred on its observed (max + min) / 2 before smoothing; "
              "0: plain SmoothQuant (no shift)", 0, 1, 1, 1},
    {"alpha", "migration strength: s = max|X - b|^alpha / max|W|^(1 - alpha) per channel", 0.0, 1.0, 0.5, 0},
    {"opt_m", "1: OPT-m, the twin quantizers' scale ratios searched per layer by the Hessian-guided metric "
              "(post-GELU steps then a power of two apart); 0: PTQ4ViT's calibration of them", 0, 1, 1, 1},
    {"search_images", "calibration images the OPT-m search uses (0: all)", 0, 1 << 20, 0, 1},
    {"alpha_search", "1: alpha per layer, of 0, 0.1, .., 1 the one whose smoothed layer output has the least "
                     "quantization error on calibration rows; 0: option alpha everywhere", 0, 1, 1, 1},
};

/* Rows of the smoothed points' activations (the float network's, which the folds do not change), for the
 * alpha search: at most SAMPLE_ROWS rows per point, spread evenly over the first images. */
#define SAMPLE_ROWS 1024
#define ALPHAS 11 /* 0, 0.1, .., 1 */

typedef struct samples {
    const unsigned char *wanted; /* per point */
    float **rows;                /* per point: [count][d] */
    size_t *count, capacity;
} samples;

static vitq_status sample_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    samples *s = t->ctx;
    if (!s->wanted[point] || !s->rows[point]) return VITQ_OK;
    size_t d = (size_t)(v->channels * v->inner), stride = (size_t)v->outer / s->capacity + 1;
    for (int64_t i = 0; i < v->outer && s->count[point] < s->capacity; i += (int64_t)stride)
        memcpy(s->rows[point] + s->count[point]++ * d, v->data + i * v->outer_stride, d * sizeof(float));
    return VITQ_OK;
}

/* Post-LayerNorm points the fold applies to: inside the network (not the classifier's input). */
static int smoothed(const vitq_i_point_desc *d) { return d->role == VITQ_ROLE_POST_LAYERNORM && !d->edge; }

static vitq_status configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    cfg->scheme = &vitq_i_scheme_minmax;
    cfg->symmetric = 1;
    cfg->granularity = d->kind == VITQ_POINT_WEIGHT ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    /* the statistics of the fold: each channel's own min and max (refine makes the point per tensor) */
    if (smoothed(d)) cfg->granularity = VITQ_GRAN_CHANNEL, cfg->symmetric = 0;
    if (d->role == VITQ_ROLE_POST_GELU) cfg->scheme = &vitq_i_scheme_twin_gelu;
    if (d->role == VITQ_ROLE_POST_SOFTMAX) cfg->scheme = &vitq_i_scheme_twin_softmax, cfg->symmetric = 0;
    vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    /* OPT-m's post-GELU format: the positive step 2^m times the negative one (twin-gelu's option pow2) */
    if (d->role == VITQ_ROLE_POST_GELU) cfg->options[0] = opts[OPT_M];
    return VITQ_OK;
}

/* Per-channel observed range of point p's quantizer into lo, hi (d channels); 0 when the point has no
 * such statistics (the caller configured it otherwise: it is left as configured). */
static int channel_ranges(const vitq_i_qpoint *qp, size_t d, float *lo, float *hi) {
    if (qp->inst.config.granularity != VITQ_GRAN_CHANNEL || qp->inst.scheme.observe != vitq_i_range_observe ||
        qp->inst.config.channels != (int64_t)d)
        return 0;
    const vitq_i_range_state *s = qp->inst.state;
    for (size_t c = 0; c < d; c++) {
        double l, h;
        vitq_i_range_observed(s, (int64_t)c, &l, &h);
        lo[c] = (float)l, hi[c] = (float)h;
    }
    return 1;
}

/* The alpha of least smoothed-output error on the point's sample rows (alpha_search), else option alpha. */
static vitq_status choose_alpha(vitq_i_run *r, int p, const samples *smp, const float *lo, const float *hi,
                                vitq_i_linear *next, double *bs, double *alpha) {
    const double *o = r->method_options;
    *alpha = o[OPT_ALPHA];
    if (!o[OPT_ALPHA_SEARCH] || !smp->rows[p] || !smp->count[p]) return VITQ_OK;
    vitq_i_linear *const nexts[1] = {next};
    size_t d = next->in;
    double best = INFINITY;
    vitq_status st = VITQ_OK;
    for (int k = 0; !st && k < ALPHAS; k++) {
        double a = k / (double)(ALPHAS - 1), err = INFINITY;
        st = vitq_i_smooth_factors(lo, hi, d, nexts, 1, a, o[OPT_SHIFT] != 0, bs, bs + d);
        if (!st)
            st = vitq_i_smooth_error(r->alloc, smp->rows[p], smp->count[p], d, next, lo, hi, bs, bs + d,
                                     r->cfg[p].bits, r->cfg[p + 1].bits ? r->cfg[p + 1].bits : 16, &err);
        if (!st && err < best) best = err, *alpha = a; /* ties: the smaller alpha */
    }
    return st;
}

/* SQ-b (or SmoothQuant) on point p, the output of `ln` read by `next`; *folded set when it was. */
static vitq_status smooth_point(vitq_i_run *r, int p, vitq_i_layernorm_params *ln, vitq_i_linear *next,
                                const samples *smp, int *folded) {
    *folded = 0;
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (!qp) return VITQ_OK; /* left in float: nothing to smooth for */
    if (p + 1 >= r->list->count || r->list->points[p + 1].weight != next)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: mptq-vit expects the weight of its layer right after it",
                           r->list->points[p].name);
    size_t d = next->in;
    float *range = vitq_i_alloc_array(r->alloc, d, 2 * sizeof(float));
    double *bs = vitq_i_alloc_array(r->alloc, d, 2 * sizeof(double));
    vitq_status st = !range || !bs ? vitq_i_oom("mptq-vit smoothing factors", d * 24) : VITQ_OK;
    if (!st && channel_ranges(qp, d, range, range + d)) {
        vitq_i_linear *const nexts[1] = {next};
        const double *o = r->method_options;
        double alpha;
        st = choose_alpha(r, p, smp, range, range + d, next, bs, &alpha);
        if (!st) st = vitq_i_smooth_factors(range, range + d, d, nexts, 1, alpha, o[OPT_SHIFT] != 0, bs, bs + d);
        if (!st) st = vitq_i_smooth_fold(r->alloc, ln, d, nexts, 1, bs, bs + d);
        if (!st) { /* the deployed quantizer: one symmetric grid, observed again once every fold is done */
            vitq_point_config cfg = qp->inst.config;
            cfg.granularity = VITQ_GRAN_TENSOR;
            cfg.symmetric = 1;
            st = vitq_i_run_recreate(r, p, &qp->inst.scheme, &cfg);
        }
        vitq_i_qpoint *wp = vitq_i_run_qpoint(r, p + 1);
        if (!st && wp) { /* the weight changed: a fresh quantizer sees it */
            vitq_point_config wcfg = wp->inst.config;
            st = vitq_i_run_recreate(r, p + 1, &wp->inst.scheme, &wcfg);
            if (!st) st = vitq_i_run_calibrate_weight(r, p + 1);
        }
        *folded = !st;
    }
    vitq_i_free(r->alloc, range);
    vitq_i_free(r->alloc, bs);
    return st;
}

/* Sample rows of every smoothed point (wanted) in one float pass over the first images. */
static vitq_status take_samples(vitq_i_run *r, samples *smp) {
    size_t count = (size_t)r->list->count, images = r->num_images < VITQ_I_FEED_BATCH ? r->num_images : VITQ_I_FEED_BATCH;
    for (size_t p = 0; p < count; p++) {
        if (!smp->wanted[p]) continue;
        smp->rows[p] = vitq_i_alloc_array(r->alloc, smp->capacity, (size_t)r->list->points[p].channels * sizeof(float));
        if (!smp->rows[p]) return vitq_i_oom("mptq-vit alpha search rows", smp->capacity * sizeof(float));
    }
    vitq_i_taps taps = {.sites = &r->list->sites, .apply = sample_tap, .ctx = smp};
    return vitq_i_run_forward(r, 0, images, &taps, NULL);
}

/* The post-LayerNorm points the fold applies to, with the LayerNorm and the layer that reads each. */
typedef struct smoothed_site {
    int point;
    vitq_i_layernorm_params *ln;
    vitq_i_linear *next;
} smoothed_site;

static int smoothed_sites(vitq_i_net *m, const vitq_i_sites *sites, smoothed_site *out) {
    int n = 0;
    for (int b = 0; b < m->info.depth; b++) {
        vitq_i_block *blk = &m->blocks[b];
        out[n++] = (smoothed_site){sites->blocks[b].qkv_in, &blk->norm1, &blk->qkv};
        out[n++] = (smoothed_site){sites->blocks[b].fc1_in, &blk->norm2, &blk->fc1};
    }
    for (int s = 1; m->stages && s < m->info.num_stages; s++)
        out[n++] = (smoothed_site){sites->stages[s].merge_in, &m->stages[s].merge_norm, &m->stages[s].merge};
    return n;
}

static vitq_status refine(vitq_i_run *r) {
    vitq_i_net *m = r->model;
    size_t max_sites = (size_t)(2 * m->info.depth + m->info.num_stages + 1), count = (size_t)r->list->count;
    int *points = vitq_i_alloc_array(r->alloc, max_sites, sizeof(int));
    smoothed_site *site = vitq_i_alloc_array(r->alloc, max_sites, sizeof *site);
    unsigned char *wanted = vitq_i_calloc(r->alloc, count, 1);
    samples smp = {wanted, vitq_i_calloc(r->alloc, count, sizeof(float *)), vitq_i_calloc(r->alloc, count, sizeof(size_t)),
                   SAMPLE_ROWS};
    vitq_status st = points && site && wanted && smp.rows && smp.count ? VITQ_OK
                                                                        : vitq_i_oom("mptq-vit points", max_sites * 32);
    int n = 0, folded = 0, sites = st ? 0 : smoothed_sites(m, &r->list->sites, site);
    for (int i = 0; i < sites; i++)
        if (site[i].point >= 0) wanted[site[i].point] = vitq_i_run_qpoint(r, site[i].point) != NULL;
    if (!st && r->method_options[OPT_ALPHA_SEARCH] != 0) st = take_samples(r, &smp);
    for (int i = 0; !st && i < sites; i++) {
        st = smooth_point(r, site[i].point, site[i].ln, site[i].next, &smp, &folded);
        if (folded) points[n++] = site[i].point;
    }
    /* The float network is the same function after the folds, so one pass observes every smoothed
     * point on the activations it will quantize. */
    if (!st && n) st = vitq_i_run_observe_points(r, points, n);
    if (!st && r->method_options[OPT_M] != 0) {
        vitq_i_block_search_options o = {0};
        o.rounds = 1;
        o.images = (size_t)r->method_options[OPT_IMAGES];
        o.ratios_only = 1;
        st = vitq_i_block_search(r, &o);
    }
    for (size_t p = 0; smp.rows && p < count; p++) vitq_i_free(r->alloc, smp.rows[p]);
    vitq_i_free(r->alloc, smp.rows);
    vitq_i_free(r->alloc, smp.count);
    vitq_i_free(r->alloc, wanted);
    vitq_i_free(r->alloc, site);
    vitq_i_free(r->alloc, points);
    return st;
}

/* refine folds into the network: it works on a private copy. */
const vitq_i_method vitq_i_method_mptq = {
    "mptq-vit", "MPTQ-ViT: SmoothQuant with bias (SQ-b) folded into LayerNorm, symmetric per-tensor post-LayerNorm "
                "quantizers, twin-uniform GELU/softmax quantizers with their scale ratios searched (OPT-m)", 1,
    (int32_t)(sizeof options / sizeof options[0]), options, configure, refine};
