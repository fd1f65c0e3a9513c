/* The calibrator: per-point configuration (generic defaults, a method's, the caller's) and the
 * calibration images. The run that turns the float model into a quantized one is calibrate.c. */
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "calib/calibrator.h"
#include "calib/glob.h"
#include "calib/methods.h"
#include "core/abi.h"
#include "data/dataset.h"
#include "model/forward_common.h"
#include "quant/options.h"
#include "quant/schemes.h"

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
    o->recon_drop = 0.5;
    o->recon_learn_steps = 1;
}

void vitq_calibrator_stats_init(vitq_calibrator_stats *s) {
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
}

static int nonlinear_input(vitq_point_role role) {
    return role == VITQ_ROLE_LAYERNORM_INPUT || role == VITQ_ROLE_SOFTMAX_INPUT || role == VITQ_ROLE_GELU_INPUT;
}

/* Bits of the image in the paper setting: what the method's reference code does to the input of the
 * patch embedding. RepQ-ViT's code quantizes it at 8 bits whatever the activation bits; PTQ4ViT's
 * leaves it in float, and APQ-ViT and NoisyQuant build on PTQ4ViT's code. Kept here, beside the
 * other setting rules, rather than as a member of every method table: it is a fact about the papers'
 * experiments, not about how a method calibrates. */
static int32_t paper_image_bits(const vitq_i_method *method) {
    return method && !strcmp(method->name, "repq-vit") ? 8 : 0;
}

static void default_config(const vitq_calibrator_options *o, const vitq_i_method *method, const vitq_scheme *scheme,
                           const vitq_i_point_desc *d, vitq_i_point_cfg *c) {
    int weight = d->kind == VITQ_POINT_WEIGHT, paper = o->setting == VITQ_SETTING_PAPER;
    c->scheme = scheme;
    c->bits = weight ? o->weight_bits : o->activation_bits;
    if (d->edge && o->edge_bits && !paper) c->bits = o->edge_bits;
    if (nonlinear_input(d->role)) c->bits = 0;
    c->nonlinear = nonlinear_input(d->role) ? o->nonlinear : VITQ_NONLINEAR_FLOAT;
    /* The image is 8-bit pixels already: an integer pipeline takes them as they are and folds the
     * normalisation into the patch embedding, exactly. Putting the normalised floats on a new 8-bit
     * grid would only add error (and PTQ4ViT's code leaves it in float too). Settable like any point. */
    if (d->role == VITQ_ROLE_IMAGE) c->bits = paper ? paper_image_bits(method) : 0;
    c->granularity = weight ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    c->symmetric = weight;
    vitq_i_scheme_option_defaults(scheme, c->options);
}

/* Points the method's reference code leaves in float, in the paper setting. NoisyQuant's official code
 * (its linear base, method option base 0; base 2 is vitq's own variant of it) quantizes the linear layers
 * of the blocks only: the attention's matrix-product operands (Q, K, V, P), the patch embedding (a
 * convolution there) and the classifier stay in float. Over PTQ4ViT (base 1) it quantizes what PTQ4ViT
 * does. The option index is noisyquant's "base", its first. */
static int paper_keeps_float(const vitq_i_method *method, const double *method_options, const vitq_i_point_desc *d) {
    if (!method || strcmp(method->name, "noisyquant") != 0 || method_options[0] == 1.0) return 0;
    return d->edge || d->role == VITQ_ROLE_QUERY || d->role == VITQ_ROLE_KEY || d->role == VITQ_ROLE_VALUE ||
           d->role == VITQ_ROLE_POST_SOFTMAX;
}

/* A point's configuration from the options and the method (not from vitq_calibrator_set). */
static vitq_status configure_point(vitq_calibrator *c, int p) {
    const vitq_scheme *scheme = c->method ? &vitq_i_scheme_minmax : c->scheme;
    default_config(&c->opts, c->method, scheme, &c->list.points[p], &c->cfg[p]);
    if (c->opts.setting == VITQ_SETTING_PAPER && paper_keeps_float(c->method, c->method_options, &c->list.points[p]))
        c->cfg[p].bits = 0;
    if (!c->method || !c->cfg[p].bits) return VITQ_OK;
    return c->method->configure(&c->list.points[p], &c->cfg[p], c->method_options);
}

static vitq_status check_bits(int32_t bits, const char *what) {
    if (bits != 0 && (bits < 2 || bits > 8))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s = %d: 0 (float) or 2..8", what, (int)bits);
    return VITQ_OK;
}

vitq_status vitq_i_calibrator_create(const vitq_i_net *model, const vitq_calibrator_options *options,
                                   vitq_calibrator **out) {
    if (!out || !model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_create: NULL argument");
    *out = NULL;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    if (options) {
        vitq_status st = vitq_i_check_struct_size(options->struct_size, VITQ_I_V1_CALIBRATOR_OPTIONS,
                                                  "vitq_calibrator_create", "vitq_calibrator_options");
        if (st) return st;
        vitq_i_struct_in(&o, sizeof o, options, options->struct_size);
    }
    vitq_status st = check_bits(o.weight_bits, "weight_bits");
    if (!st) st = check_bits(o.activation_bits, "activation_bits");
    if (!st) st = check_bits(o.edge_bits, "edge_bits");
    if (!st && (o.nonlinear < VITQ_NONLINEAR_FLOAT || o.nonlinear > VITQ_NONLINEAR_MIXED))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "nonlinear = %d: a vitq_nonlinear, 0 (float) .. 4 (mixed)",
                         (int)o.nonlinear);
    if (!st && (isnan(o.target_bits) || o.target_bits < 0 || (o.target_bits > 0 && o.target_bits < 2) ||
                o.target_bits > 8))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "target_bits = %g: 0 (no target) or 2..8", o.target_bits);
    if (!st && (o.candidate_bits & ~0x1FCu))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "candidate_bits = 0x%x: only bits 2..8 may be set (width b: 1 << b)",
                         (unsigned)o.candidate_bits);
    if (!st && (o.reconstruct < 0 || o.reconstruct > 1 || o.recon_iters < 0 || o.recon_batch < 0 ||
                !(o.recon_drop >= 0.0 && o.recon_drop <= 1.0) || o.recon_learn_steps < 0 || o.recon_learn_steps > 1))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "reconstruction options: reconstruct %d (0 or 1), recon_iters %d and "
                         "recon_batch %d (>= 0), recon_drop %g (0..1), recon_learn_steps %d (0 or 1)",
                         (int)o.reconstruct, (int)o.recon_iters, (int)o.recon_batch, o.recon_drop,
                         (int)o.recon_learn_steps);
    if (!st && (o.recon_loss < VITQ_RECON_LOSS_MSE || o.recon_loss > VITQ_RECON_LOSS_FISHER))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "recon_loss = %d: VITQ_RECON_LOSS_MSE (0) or VITQ_RECON_LOSS_FISHER (1)",
                         (int)o.recon_loss);
    if (!st && (o.recon_augment < 0 || o.recon_augment > 64))
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "recon_augment = %d: augmented views per image, 0..64",
                         (int)o.recon_augment);
    if (!st && o.setting != VITQ_SETTING_DEFAULT && o.setting != VITQ_SETTING_PAPER)
        st = vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "setting = %d: VITQ_SETTING_DEFAULT (0) or VITQ_SETTING_PAPER (1)",
                         (int)o.setting);
    if (st) return st;
    /* A method name (ptq4vit, repq-vit, ...) chooses every point's quantizer itself; any other name is
     * a scheme of the registry used everywhere. */
    const vitq_i_method *method = o.scheme ? vitq_i_method_find(o.scheme) : NULL;
    const vitq_scheme *scheme = method ? &vitq_i_scheme_minmax
                                       : vitq_i_registry_find(o.registry, o.scheme ? o.scheme : "minmax");
    if (!scheme) {
        char names[256];
        vitq_i_method_names(names, sizeof names);
        vitq_i_error_prefix("scheme (or one of the methods %s)", names);
        return VITQ_ERR_UNKNOWN_NAME;
    }
    vitq_allocator user;
    if ((st = vitq_i_allocator_resolve(o.allocator ? o.allocator : &model->alloc, &user))) return st;
    vitq_calibrator *c = vitq_i_calloc(&user, 1, sizeof *c);
    if (!c) return vitq_i_oom("calibrator", sizeof *c);
    c->user_alloc = user;
    c->alloc = (vitq_allocator){sizeof(vitq_allocator), count_alloc, count_free, c};
    c->model = model;
    c->opts = o;
    c->opts.scheme = NULL; /* the caller's string need not outlive this call */
    c->method = method;
    c->scheme = scheme;
    for (int k = 0; method && k < method->num_options; k++) c->method_options[k] = method->options[k].default_value;
    const vitq_model_info *i = &model->info;
    c->per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    vitq_calibrator_stats_init(&c->stats);
    /* The point list only reads the model; it keeps pointers to the layers for weight points. */
    st = vitq_i_points_build(&c->alloc, (vitq_i_net *)model, &c->list);
    if (!st) {
        c->cfg = vitq_i_calloc(&c->alloc, (size_t)c->list.count, sizeof *c->cfg);
        c->observed = vitq_i_calloc(&c->alloc, 2 * (size_t)c->list.count, sizeof(float));
        if (!c->cfg || !c->observed) st = vitq_i_oom("calibrator points", (size_t)c->list.count * sizeof *c->cfg);
    }
    if (!st && !(c->user_set = vitq_i_calloc(&c->alloc, (size_t)c->list.count, 1)))
        st = vitq_i_oom("calibrator points", (size_t)c->list.count);
    for (int p = 0; !st && p < c->list.count; p++) st = configure_point(c, p);
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
    vitq_i_free(&c->alloc, c->user_set);
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
    const vitq_i_point_cfg *p = &c->cfg[index];
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

/* The per-point keys with a numeric value, checked by the one option parser (quant/options.h);
 * "granularity" and "scheme" take names. */
enum { KEY_BITS, KEY_SYMMETRIC, KEY_NOISY, NUM_KEYS };
static const vitq_scheme_option point_keys[NUM_KEYS] = {
    {"bits", "0 (left in float) or 2..8", 0, 8, 8, 1},
    {"symmetric", "1: signed codes and zero point 0; 0: unsigned codes with a zero point", 0, 1, 0, 1},
    {"noisy", "1: NoisyQuant's noisy bias before the quantizer (inputs of linear layers only)", 0, 1, 0, 1},
};

/* Apply key = value to `cfg`, a configuration of point p (vitq_calibrator_set passes copies first). */
static vitq_status set_one(const vitq_calibrator *c, int p, vitq_i_point_cfg *cfg, const char *key,
                           const char *value) {
    const vitq_i_point_desc *d = &c->list.points[p];
    vitq_status st;
    if (strcmp(key, "granularity") == 0) {
        int32_t g;
        if ((st = vitq_i_parse_granularity(value, &g))) return st;
        if (g == VITQ_GRAN_HEAD && d->heads == 0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: granularity 'head' does not apply (no attention heads)",
                               d->name);
        cfg->granularity = g;
        return VITQ_OK;
    }
    if (strcmp(key, "nonlinear") == 0) {
        int32_t m = vitq_i_nl_method_parse(value);
        if (m < 0)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: nonlinear = '%s': float, ibert, fqvit, ivit or mixed (0..4)",
                               d->name, value);
        if (m && !nonlinear_input(d->role))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "%s: nonlinear applies to the input of a LayerNorm, softmax or GELU only", d->name);
        cfg->nonlinear = m;
        return VITQ_OK;
    }
    if (strcmp(key, "scheme") == 0) {
        const vitq_scheme *s = vitq_i_registry_find(c->opts.registry, value);
        if (!s) return VITQ_ERR_UNKNOWN_NAME;
        cfg->scheme = s;
        vitq_i_scheme_option_defaults(s, cfg->options);
        return VITQ_OK;
    }
    int k = vitq_i_option_index(point_keys, NUM_KEYS, key);
    if (k >= 0) {
        int64_t v;
        if ((st = vitq_i_option_parse_int(&point_keys[k], d->name, value, &v))) return st;
        if (k == KEY_BITS && v == 1) return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: bits = 1: 0 (float) or 2..8", d->name);
        if (k == KEY_NOISY && v && !vitq_i_role_is_linear_input(d->role))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "%s: noisy bias applies to the input of a linear layer only (its denoising bias "
                               "goes into that layer)", d->name);
        if (k == KEY_BITS) cfg->bits = (int32_t)v;
        if (k == KEY_SYMMETRIC) cfg->symmetric = (int32_t)v;
        if (k == KEY_NOISY) cfg->noisy = (int32_t)v;
        return VITQ_OK;
    }
    int index = vitq_i_scheme_option_index(cfg->scheme, key);
    if (index < 0)
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME,
                           "%s: '%s' is not bits, granularity, symmetric, scheme, noisy, nonlinear or an option of "
                           "scheme '%s'",
                           d->name, key, cfg->scheme->name);
    char owner[160];
    snprintf(owner, sizeof owner, "%s (scheme '%s')", d->name, cfg->scheme->name);
    return vitq_i_option_parse(&cfg->scheme->options[index], owner, value, &cfg->options[index]);
}

vitq_status vitq_calibrator_set(vitq_calibrator *c, const char *pattern, const char *key, const char *value) {
    if (!c || !pattern || !key || !value)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_set: NULL argument");
    /* All or nothing: the change is tried on a copy of every matching point's configuration before any
     * point changes, so that a value one point refuses leaves every point as it was. */
    int matched = 0;
    for (int p = 0; p < c->list.count; p++) {
        if (!vitq_i_glob_match(pattern, c->list.points[p].name)) continue;
        matched++;
        vitq_i_point_cfg trial = c->cfg[p];
        vitq_status st = set_one(c, p, &trial, key, value);
        if (st) return st;
    }
    if (!matched)
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "no quantization point matches '%s' (vitq points MODEL lists them)",
                           pattern);
    for (int p = 0; p < c->list.count; p++) {
        if (!vitq_i_glob_match(pattern, c->list.points[p].name)) continue;
        vitq_status st = set_one(c, p, &c->cfg[p], key, value); /* succeeds: the same change was just tried */
        if (st) return st;
        c->user_set[p] = 1;
    }
    return VITQ_OK;
}

/* Configure again every point the caller has not set by hand (method options may choose quantizers). */
static vitq_status reconfigure(vitq_calibrator *c) {
    vitq_status st = VITQ_OK;
    for (int p = 0; !st && p < c->list.count; p++)
        if (!c->user_set[p]) st = configure_point(c, p);
    return st;
}

vitq_status vitq_calibrator_set_option(vitq_calibrator *c, const char *key, const char *value) {
    if (!c || !key || !value)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_set_option: NULL argument");
    if (!c->method) {
        char names[256];
        vitq_i_method_names(names, sizeof names);
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "option '%s': the calibrator runs no method (one of %s)", key,
                           names);
    }
    const vitq_i_method *m = c->method;
    int k = vitq_i_option_index(m->options, m->num_options, key);
    if (k < 0) {
        char known[256];
        vitq_i_option_names(m->options, m->num_options, known, sizeof known);
        return vitq_i_fail(VITQ_ERR_UNKNOWN_NAME, "method %s has no option '%s' (known: %s)", m->name, key, known);
    }
    char owner[64];
    snprintf(owner, sizeof owner, "method %s", m->name);
    double v, before = c->method_options[k];
    vitq_status st = vitq_i_option_parse(&m->options[k], owner, value, &v);
    if (st) return st;
    c->method_options[k] = v;
    /* options may choose quantizers (repq-vit's post_gelu): configure again, except where the caller
     * has configured a point by hand; a failure puts the option and the points back as they were */
    if ((st = reconfigure(c))) {
        c->method_options[k] = before;
        reconfigure(c);
    }
    return st;
}

/* ---- calibration images ----------------------------------------------------------------------- */

/* Room for `more` images. Counts near SIZE_MAX are refused before any arithmetic on them: the doubling
 * below would wrap to 0 and never end, and a wrapped byte count would allocate a tiny buffer. */
static vitq_status reserve(vitq_calibrator *c, size_t more, const char *fn) {
    size_t need, limit = SIZE_MAX / sizeof(float) / (c->per_image ? c->per_image : 1);
    if (!vitq_i_add_size(c->num_images, more, &need) || need > limit)
        return vitq_i_fail(VITQ_ERR_OUT_OF_MEMORY,
                           "%s: %zu more calibration images of %zu floats each (%zu held) exceed the address space",
                           fn, more, c->per_image, c->num_images);
    if (need <= c->capacity) return VITQ_OK;
    size_t cap = c->capacity ? c->capacity : 32;
    while (cap < need) cap = cap > limit / 2 ? limit : cap * 2;
    if (cap > limit) cap = need; /* the first 32 images alone would pass the limit */
    float *grown = vitq_i_alloc_array(&c->alloc, cap * c->per_image, sizeof(float));
    if (!grown) return vitq_i_oom("calibration images", cap * c->per_image * sizeof(float));
    if (c->num_images) memcpy(grown, c->images, c->num_images * c->per_image * sizeof(float));
    vitq_i_free(&c->alloc, c->images);
    c->images = grown;
    c->capacity = cap;
    return VITQ_OK;
}

vitq_status vitq_calibrator_feed(vitq_calibrator *c, const float *images, size_t n) {
    if (!c || (!images && n)) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_feed: NULL argument");
    if (n == 0) return VITQ_OK; /* nothing to copy (and c->images may not exist yet) */
    /* the size first: the finiteness scan reads n * per_image floats, which must be a real count */
    vitq_status st = reserve(c, n, "vitq_calibrator_feed");
    if (!st) st = vitq_i_check_finite(images, n * c->per_image, c->per_image);
    if (st) return st;
    memcpy(c->images + c->num_images * c->per_image, images, n * c->per_image * sizeof(float));
    c->num_images += n;
    return VITQ_OK;
}

vitq_status vitq_calibrator_feed_dataset(vitq_calibrator *c, const vitq_dataset *dataset, uint64_t first, size_t n) {
    if (!c || !dataset) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_feed_dataset: NULL argument");
    /* the range and the image shape before any memory is reserved for them */
    vitq_status st = vitq_i_dataset_images(c->model, dataset, first, n, NULL);
    if (st || n == 0) return st;
    st = reserve(c, n, "vitq_calibrator_feed_dataset");
    if (!st) st = vitq_i_dataset_images(c->model, dataset, first, n, c->images + c->num_images * c->per_image);
    if (!st) c->num_images += n;
    return st;
}

vitq_status vitq_calibrator_get_stats(const vitq_calibrator *c, vitq_calibrator_stats *stats) {
    if (!c || !stats) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_get_stats: NULL argument");
    vitq_status st = vitq_i_check_struct_size(stats->struct_size, VITQ_I_V1_CALIBRATOR_STATS,
                                              "vitq_calibrator_get_stats", "vitq_calibrator_stats");
    if (!st) vitq_i_struct_out(stats, stats->struct_size, &c->stats, sizeof c->stats);
    return st;
}
