/* The calibrator: per-point configuration, calibration images, and the run that turns a float model
 * into a quantized one.
 *
 * Statistics come from the float network: weights are observed as they are, activations on forward
 * passes of the fed images without any quantization (the observers of the baseline schemes; the
 * blockwise methods of later schemes run their own passes). A run ends by serialising the result as
 * a quantized file in memory and loading it back, so that a quantized model from a run and one
 * loaded from disk are built by the same code and behave bit for bit the same. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "calib/glob.h"
#include "data/dataset.h"
#include "model/forward_common.h"
#include "quant/codes.h"
#include "quant/qmodel.h"
#include "quant/view.h"

#define FEED_BATCH 8 /* images per forward pass of a calibration pass: the unit of progress reports */

typedef struct point_cfg {
    const vitq_scheme *scheme;
    int32_t bits, granularity, symmetric;
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
} point_cfg;

struct vitq_calibrator {
    vitq_allocator user_alloc; /* what the caller gave (or the model's) */
    vitq_allocator alloc;      /* the same, counting bytes for the stats */
    size_t live, peak;
    const vitq_model *model;
    vitq_calibrator_options opts;
    vitq_i_point_list list;
    point_cfg *cfg;
    float *observed; /* [2 * points]: min, max of the last run */
    float *images;
    size_t num_images, capacity, per_image;
    vitq_calibrator_stats stats;
};

/* ---- counting allocator: a 64-byte header keeps each block's size --------------------------- */

#define HEADER 64

static void *count_alloc(void *user, size_t size, size_t align) {
    vitq_calibrator *c = user;
    (void)align; /* the header is 64 bytes and the block 64-aligned: alignment up to 64 holds */
    if (size > SIZE_MAX - HEADER) return NULL;
    uint8_t *p = vitq_i_alloc(&c->user_alloc, size + HEADER);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    c->live += size;
    if (c->live > c->peak) c->peak = c->live;
    return p + HEADER;
}

static void count_free(void *user, void *ptr) {
    vitq_calibrator *c = user;
    uint8_t *p = (uint8_t *)ptr - HEADER;
    size_t size;
    memcpy(&size, p, sizeof size);
    c->live -= size;
    vitq_i_free(&c->user_alloc, p);
}

/* ---- creation and configuration ------------------------------------------------------------- */

void vitq_calibrator_options_init(vitq_calibrator_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->scheme = "minmax";
    o->weight_bits = 8;
    o->activation_bits = 8;
    o->edge_bits = 8;
}

void vitq_calibrator_stats_init(vitq_calibrator_stats *s) {
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
}

static int nonlinear_input(vitq_point_role role) {
    return role == VITQ_ROLE_LAYERNORM_INPUT || role == VITQ_ROLE_SOFTMAX_INPUT || role == VITQ_ROLE_GELU_INPUT;
}

static void default_config(const vitq_calibrator_options *o, const vitq_scheme *scheme, const vitq_i_point_desc *d,
                           point_cfg *c) {
    int weight = d->kind == VITQ_POINT_WEIGHT;
    c->scheme = scheme;
    c->bits = weight ? o->weight_bits : o->activation_bits;
    if (d->edge && o->edge_bits) c->bits = o->edge_bits;
    if (nonlinear_input(d->role)) c->bits = 0;
    c->granularity = weight ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    c->symmetric = weight;
    vitq_i_scheme_option_defaults(scheme, c->options);
}

static vitq_status check_bits(int32_t bits, const char *what) {
    if (bits != 0 && (bits < 2 || bits > 8))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s = %d: 0 (float) or 2..8", what, (int)bits);
    return VITQ_OK;
}

vitq_status vitq_calibrator_create(const vitq_model *model, const vitq_calibrator_options *options,
                                   vitq_calibrator **out) {
    if (!out || !model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_create: NULL argument");
    *out = NULL;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    if (options) {
        if (options->struct_size < offsetof(vitq_calibrator_options, progress) || options->struct_size > 1u << 20)
            return vitq_i_fail(VITQ_ERR_ABI_MISMATCH,
                               "vitq_calibrator_create: options->struct_size %u (call vitq_calibrator_options_init)",
                               (unsigned)options->struct_size);
        memcpy(&o, options, options->struct_size < sizeof o ? options->struct_size : sizeof o);
        o.struct_size = sizeof o;
    }
    if (model->quant)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: the model is already quantized; calibrate its float model",
                           model->name);
    vitq_status st = check_bits(o.weight_bits, "weight_bits");
    if (!st) st = check_bits(o.activation_bits, "activation_bits");
    if (!st) st = check_bits(o.edge_bits, "edge_bits");
    if (st) return st;
    const vitq_scheme *scheme = vitq_i_registry_find(o.registry, o.scheme ? o.scheme : "minmax");
    if (!scheme) return VITQ_ERR_UNKNOWN_NAME;
    vitq_allocator user;
    if ((st = vitq_i_allocator_resolve(o.allocator ? o.allocator : &model->alloc, &user))) return st;
    vitq_calibrator *c = vitq_i_calloc(&user, 1, sizeof *c);
    if (!c) return vitq_i_oom("calibrator", sizeof *c);
    c->user_alloc = user;
    c->alloc = (vitq_allocator){sizeof(vitq_allocator), count_alloc, count_free, c};
    c->model = model;
    c->opts = o;
    c->opts.scheme = NULL; /* the caller's string need not outlive this call */
    const vitq_model_info *i = &model->info;
    c->per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    vitq_calibrator_stats_init(&c->stats);
    /* The point list only reads the model; it keeps pointers to the layers for weight points. */
    st = vitq_i_points_build(&c->alloc, (vitq_model *)model, &c->list);
    if (!st) {
        c->cfg = vitq_i_calloc(&c->alloc, (size_t)c->list.count, sizeof *c->cfg);
        c->observed = vitq_i_calloc(&c->alloc, 2 * (size_t)c->list.count, sizeof(float));
        if (!c->cfg || !c->observed) st = vitq_i_oom("calibrator points", (size_t)c->list.count * sizeof *c->cfg);
    }
    for (int p = 0; !st && p < c->list.count; p++) default_config(&o, scheme, &c->list.points[p], &c->cfg[p]);
    if (st) {
        vitq_calibrator_free(c);
        return st;
    }
    *out = c;
    return VITQ_OK;
}

void vitq_calibrator_free(vitq_calibrator *c) {
    if (!c) return;
    vitq_allocator user = c->user_alloc;
    vitq_i_free(&c->alloc, c->images);
    vitq_i_free(&c->alloc, c->cfg);
    vitq_i_free(&c->alloc, c->observed);
    vitq_i_points_free(&c->alloc, &c->list);
    vitq_i_free(&user, c);
}

int32_t vitq_calibrator_num_points(const vitq_calibrator *c) { return c ? c->list.count : 0; }

vitq_status vitq_calibrator_point_info(const vitq_calibrator *c, int32_t index, vitq_point_info *info) {
    if (!c || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_point_info: NULL argument");
    if (index < 0 || index >= c->list.count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_point_info: index %d of %d points", (int)index,
                           c->list.count);
    const vitq_i_point_desc *d = &c->list.points[index];
    const point_cfg *p = &c->cfg[index];
    vitq_point_info full;
    vitq_point_info_init(&full);
    full.name = d->name;
    full.kind = d->kind;
    full.role = d->role;
    full.bits = p->bits;
    full.granularity = p->granularity;
    full.symmetric = p->symmetric;
    full.scheme = p->scheme->name;
    full.channels = d->channels;
    full.heads = d->heads;
    full.observed_min = c->observed[2 * index];
    full.observed_max = c->observed[2 * index + 1];
    return vitq_i_point_info_out(&full, info, "vitq_calibrator_point_info");
}

/* Apply key = value to one point. */
static vitq_status set_one(vitq_calibrator *c, int p, const char *key, const char *value) {
    point_cfg *cfg = &c->cfg[p];
    const vitq_i_point_desc *d = &c->list.points[p];
    int64_t v;
    vitq_status st;
    if (strcmp(key, "bits") == 0) {
        if ((st = vitq_i_parse_int(key, value, 0, 8, &v)) || (st = check_bits((int32_t)v, "bits"))) return st;
        cfg->bits = (int32_t)v;
    } else if (strcmp(key, "granularity") == 0) {
        int32_t g;
        if ((st = vitq_i_parse_granularity(value, &g))) return st;
        if (g == VITQ_GRAN_HEAD && d->heads == 0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: granularity 'head' does not apply (no attention heads)",
                               d->name);
        cfg->granularity = g;
    } else if (strcmp(key, "symmetric") == 0) {
        if ((st = vitq_i_parse_int(key, value, 0, 1, &v))) return st;
        cfg->symmetric = (int32_t)v;
    } else if (strcmp(key, "scheme") == 0) {
        const vitq_scheme *s = vitq_i_registry_find(c->opts.registry, value);
        if (!s) return VITQ_ERR_UNKNOWN_NAME;
        cfg->scheme = s;
        vitq_i_scheme_option_defaults(s, cfg->options);
    } else {
        int index = vitq_i_scheme_option_index(cfg->scheme, key);
        if (index < 0)
            return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME,
                               "%s: '%s' is not bits, granularity, symmetric, scheme or an option of scheme '%s'",
                               d->name, key, cfg->scheme->name);
        return vitq_i_scheme_option_parse(cfg->scheme, index, value, &cfg->options[index]);
    }
    return VITQ_OK;
}

vitq_status vitq_calibrator_set(vitq_calibrator *c, const char *pattern, const char *key, const char *value) {
    if (!c || !pattern || !key || !value)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_set: NULL argument");
    int matched = 0;
    for (int p = 0; p < c->list.count; p++) {
        if (!vitq_i_glob_match(pattern, c->list.points[p].name)) continue;
        matched++;
        vitq_status st = set_one(c, p, key, value);
        if (st) return st;
    }
    if (!matched)
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "no quantization point matches '%s' (vitq points MODEL lists them)",
                           pattern);
    return VITQ_OK;
}

/* ---- calibration images ----------------------------------------------------------------------- */

static vitq_status reserve(vitq_calibrator *c, size_t more) {
    size_t need = c->num_images + more;
    if (need <= c->capacity) return VITQ_OK;
    size_t cap = c->capacity ? c->capacity * 2 : 32;
    while (cap < need) cap *= 2;
    float *grown = vitq_i_alloc_array(&c->alloc, cap * c->per_image, sizeof(float));
    if (!grown) return vitq_i_oom("calibration images", cap * c->per_image * sizeof(float));
    if (c->images) memcpy(grown, c->images, c->num_images * c->per_image * sizeof(float));
    vitq_i_free(&c->alloc, c->images);
    c->images = grown;
    c->capacity = cap;
    return VITQ_OK;
}

vitq_status vitq_calibrator_feed(vitq_calibrator *c, const float *images, size_t n) {
    if (!c || (!images && n)) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_feed: NULL argument");
    vitq_status st = vitq_i_check_finite(images, n * c->per_image, c->per_image);
    if (!st) st = reserve(c, n);
    if (st) return st;
    memcpy(c->images + c->num_images * c->per_image, images, n * c->per_image * sizeof(float));
    c->num_images += n;
    return VITQ_OK;
}


vitq_status vitq_calibrator_feed_dataset(vitq_calibrator *c, const vitq_dataset *dataset, uint64_t first, size_t n) {
    if (!c || !dataset) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_feed_dataset: NULL argument");
    vitq_status st = reserve(c, n);
    if (!st) st = vitq_i_dataset_images(c->model, dataset, first, n, c->images + c->num_images * c->per_image);
    if (!st) c->num_images += n;
    return st;
}

/* ---- the run ------------------------------------------------------------------------------------ */

static double now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Range of a view (for reports and point info). */
static void view_range(const vitq_tensor_view *v, float *lo, float *hi) {
    for (int64_t o = 0; o < v->outer; o++) {
        const float *x = v->data + o * v->outer_stride;
        for (int64_t k = 0; k < v->channels * v->inner; k++) {
            if (x[k] < *lo) *lo = x[k];
            if (x[k] > *hi) *hi = x[k];
        }
    }
}

typedef struct observe_ctx {
    vitq_i_qmodel *q;
    int pass;
} observe_ctx;

static vitq_status observe_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    observe_ctx *oc = t->ctx;
    vitq_i_qpoint *qp = &oc->q->qpoints[oc->q->of_point[point]];
    if (oc->pass == 0) view_range(v, &qp->observed_min, &qp->observed_max);
    if (oc->pass >= qp->inst.scheme.num_passes) return VITQ_OK;
    return qp->inst.scheme.observe(qp->inst.state, oc->pass, v);
}

/* Create the quantizer of every active point of c into q (q->list is c's list, borrowed). */
static vitq_status create_quantizers(vitq_calibrator *c, vitq_i_qmodel *q) {
    int active = 0;
    for (int p = 0; p < c->list.count; p++) active += c->cfg[p].bits > 0;
    q->qpoints = vitq_i_calloc(&c->alloc, (size_t)active + 1, sizeof *q->qpoints);
    q->of_point = vitq_i_alloc_array(&c->alloc, (size_t)c->list.count, sizeof(int));
    if (!q->qpoints || !q->of_point) return vitq_i_oom("quantizers", (size_t)active * sizeof *q->qpoints);
    for (int p = 0; p < c->list.count; p++) {
        q->of_point[p] = -1;
        const point_cfg *pc = &c->cfg[p];
        const vitq_i_point_desc *d = &c->list.points[p];
        if (!pc->bits) continue;
        vitq_i_qpoint *qp = &q->qpoints[q->count];
        vitq_point_config cfg = {sizeof cfg, d->name, d->kind, d->role, pc->bits, pc->granularity, pc->symmetric,
                                 d->channels, 0, 0, pc->options, c->opts.seed * 1000003u + (uint64_t)p};
        vitq_status st = vitq_i_config_groups(&cfg, d->heads);
        if (!st) st = vitq_i_instance_create(&qp->inst, &c->alloc, pc->scheme, &cfg);
        if (st) return st;
        qp->point = p;
        qp->observed_min = INFINITY;
        qp->observed_max = -INFINITY;
        q->of_point[p] = q->count++;
    }
    return VITQ_OK;
}

/* Observe, finalize and encode every weight point. */
static vitq_status quantize_weights(vitq_calibrator *c, vitq_i_qmodel *q) {
    for (int i = 0; i < q->count; i++) {
        vitq_i_qpoint *qp = &q->qpoints[i];
        const vitq_i_point_desc *d = &c->list.points[qp->point];
        if (d->kind != VITQ_POINT_WEIGHT) continue;
        const vitq_scheme *s = &qp->inst.scheme;
        vitq_tensor_view v = vitq_i_view_rows(d->weight->weight, d->channels, d->inner);
        vitq_status st = VITQ_OK;
        view_range(&v, &qp->observed_min, &qp->observed_max);
        for (int pass = 0; !st && pass < s->num_passes; pass++) st = s->observe(qp->inst.state, pass, &v);
        if (!st) st = s->finalize(qp->inst.state);
        if (st) return st;
        size_t count = (size_t)(d->channels * d->inner);
        int32_t *codes = vitq_i_alloc_array(&c->alloc, count, sizeof(int32_t));
        qp->codes_bytes = (size_t)d->channels * vitq_i_code_row_bytes(d->inner, vitq_i_code_storage_bits(qp->inst.config.bits));
        qp->codes = vitq_i_alloc(&c->alloc, qp->codes_bytes);
        if (!codes || !qp->codes) st = vitq_i_oom(d->name, count * sizeof(int32_t));
        if (!st) st = s->quantize(qp->inst.state, &v, codes);
        if (!st)
            st = vitq_i_codes_pack(codes, d->channels, d->inner, qp->inst.config.bits, qp->inst.config.symmetric,
                                   qp->codes, d->name);
        vitq_i_free(&c->alloc, codes);
        if (st) return st;
    }
    return VITQ_OK;
}

static vitq_status observe_activations(vitq_calibrator *c, vitq_i_qmodel *q) {
    int passes = 0;
    unsigned char *active = vitq_i_calloc(&c->alloc, (size_t)c->list.count, 1);
    if (!active) return vitq_i_oom("calibration", (size_t)c->list.count);
    for (int i = 0; i < q->count; i++) {
        const vitq_i_qpoint *qp = &q->qpoints[i];
        if (c->list.points[qp->point].kind != VITQ_POINT_ACTIVATION) continue;
        active[qp->point] = 1;
        if (qp->inst.scheme.num_passes > passes) passes = qp->inst.scheme.num_passes;
    }
    vitq_status st = vitq_i_sites_filter(&c->alloc, c->model, &c->list, active, &q->sites);
    vitq_i_free(&c->alloc, active);
    size_t classes = (size_t)c->model->info.num_classes;
    float *logits = st ? NULL : vitq_i_alloc_array(&c->alloc, FEED_BATCH * classes, sizeof(float));
    if (!st && !logits) st = vitq_i_oom("calibration logits", FEED_BATCH * classes * sizeof(float));
    observe_ctx oc = {q, 0};
    int64_t total = (int64_t)(passes * ((c->num_images + FEED_BATCH - 1) / FEED_BATCH)), done = 0;
    for (int pass = 0; !st && pass < passes; pass++) {
        oc.pass = pass;
        for (size_t first = 0; !st && first < c->num_images; first += FEED_BATCH) {
            size_t n = c->num_images - first < FEED_BATCH ? c->num_images - first : FEED_BATCH;
            vitq_i_taps taps = {&q->sites, observe_tap, &oc, VITQ_OK};
            st = vitq_i_model_forward_taps(c->model, c->images + first * c->per_image, n, logits, &taps);
            if (!st && c->opts.progress && c->opts.progress(c->opts.progress_user, "calibrate", ++done, total))
                st = vitq_i_fail(VITQ_ERR_CANCELLED, "calibration cancelled by the progress callback");
        }
    }
    vitq_i_free(&c->alloc, logits);
    for (int i = 0; !st && i < q->count; i++)
        if (c->list.points[q->qpoints[i].point].kind == VITQ_POINT_ACTIVATION)
            st = q->qpoints[i].inst.scheme.finalize(q->qpoints[i].inst.state);
    return st;
}

static void release(vitq_calibrator *c, vitq_i_qmodel *q) {
    for (int i = 0; q->qpoints && i < q->count; i++) {
        vitq_i_instance_destroy(&q->qpoints[i].inst);
        vitq_i_free(&c->alloc, q->qpoints[i].codes);
    }
    vitq_i_free(&c->alloc, q->qpoints);
    vitq_i_free(&c->alloc, q->of_point);
    vitq_i_sites_free(&c->alloc, &q->sites);
}

vitq_status vitq_calibrator_run(vitq_calibrator *c, vitq_model **quantized) {
    if (!c || !quantized) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_run: NULL argument");
    *quantized = NULL;
    if (c->num_images == 0)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_calibrator_run: no calibration images (vitq_calibrator_feed)");
    double t0 = now_seconds();
    c->peak = c->live;
    vitq_i_qmodel q;
    memset(&q, 0, sizeof q);
    q.alloc = c->alloc;
    q.list = c->list; /* borrowed: qsave only reads names */
    vitq_status st = create_quantizers(c, &q);
    if (!st) st = quantize_weights(c, &q);
    if (!st) st = observe_activations(c, &q);
    for (int i = 0; i < q.count; i++) {
        const vitq_i_qpoint *qp = &q.qpoints[i];
        c->observed[2 * qp->point] = isfinite(qp->observed_min) ? qp->observed_min : 0.0f;
        c->observed[2 * qp->point + 1] = isfinite(qp->observed_max) ? qp->observed_max : 0.0f;
    }
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (!st) st = vitq_i_qsave(&c->alloc, c->model, &q, &bytes, &size);
    release(c, &q);
    if (!st) {
        vitq_model_options mo;
        vitq_model_options_init(&mo);
        mo.allocator = &c->user_alloc;
        mo.registry = c->opts.registry;
        mo.num_threads = c->model->num_threads;
        st = vitq_model_load_memory(bytes, size, c->model->name, &mo, quantized);
    }
    vitq_i_free(&c->alloc, bytes);
    c->stats.images = c->num_images;
    c->stats.seconds = now_seconds() - t0;
    c->stats.peak_bytes = c->peak;
    return st;
}

vitq_status vitq_calibrator_get_stats(const vitq_calibrator *c, vitq_calibrator_stats *stats) {
    if (!c || !stats) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_get_stats: NULL argument");
    if (stats->struct_size < sizeof(uint32_t) || stats->struct_size > 1u << 20)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH, "vitq_calibrator_get_stats: stats->struct_size %u",
                           (unsigned)stats->struct_size);
    uint32_t size = stats->struct_size;
    memcpy(stats, &c->stats, size < sizeof c->stats ? size : sizeof c->stats);
    stats->struct_size = size;
    return VITQ_OK;
}
