/* Loading a quantized model file (see qmodel.h and docs/formats.md, "Quantized models"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/weights.h"
#include "quant/codes.h"
#include "quant/integer.h"
#include "quant/nonlinear_file.h"
#include "quant/qmodel.h"
#include "util/json.h"

#define FORMAT_VERSION 2 /* the newest this library reads; 1 lacks vitq.nonlinear */

int vitq_i_qload_is_quantized(const vitq_i_safetensors *st) {
    const char *f = vitq_i_st_meta(st, "vitq.format");
    return f && strcmp(f, "quantized") == 0;
}

/* ---- What the file's own tensors allow -------------------------------------------------------- */
/* Every count in vitq.points is checked against the tensors the file holds before anything is
 * allocated for it, so that a few bytes of metadata cannot ask for gigabytes: a point has at most as
 * many channels as the largest dimension of its layer's tensors (the exact count is checked against
 * the built network in attach), and all points together at most as many channels as the layers'
 * tensors hold values. Quantizer parameter tensors ("<point>.<param>") do not count as layers. */

typedef struct file_bounds {
    unsigned char *is_param; /* [st->count] */
    uint64_t budget;         /* values in the layers' tensors, packed codes counted four per byte */
} file_bounds;

typedef struct name_key {
    const char *s;
    size_t len;
} name_key;

static int cmp_key_name(const void *key, const void *elem) {
    const name_key *k = key;
    const char *name = *(const char *const *)elem;
    int c = strncmp(k->s, name, k->len);
    return c ? c : name[k->len] ? -1 : 0;
}

static int cmp_names(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Values of tensor `a` (0 when empty), packed codes counted up to four per byte. */
static uint64_t tensor_values(const vitq_i_array *a) {
    size_t count, packed;
    if (!vitq_i_shape_count_u64(a->ndim, a->shape, SIZE_MAX, &count)) return 0; /* empty with huge dims */
    if (vitq_i_elem_size(a->elem) != 1) return count;
    return vitq_i_mul_size(count, 4, &packed) ? packed : SIZE_MAX;
}

/* The largest dimension of tensor `a` as a layer sees it: its rows, or its columns (every other
 * dimension together: a patch embedding's C x P x P inputs). */
static uint64_t tensor_extent(const vitq_i_array *a) {
    uint64_t values = tensor_values(a);
    if (!values || a->ndim == 0) return values;
    uint64_t cols = values / a->shape[0];
    return cols > a->shape[0] ? cols : a->shape[0];
}

static vitq_status bounds_build(const vitq_allocator *a, const vitq_i_safetensors *st, const vitq_i_json *root,
                                file_bounds *fb) {
    memset(fb, 0, sizeof *fb);
    const char **names = vitq_i_alloc_array(a, root->count + 1, sizeof *names);
    fb->is_param = vitq_i_calloc(a, st->count + 1, 1);
    if (!names || !fb->is_param) {
        size_t bytes = SIZE_MAX; /* the counts are entries of a header, so their sum cannot wrap */
        vitq_i_mul_size(root->count + st->count, sizeof *names, &bytes);
        vitq_i_free(a, names);
        return vitq_i_oom("quantized model", bytes);
    }
    size_t n = 0;
    for (size_t i = 0; i < root->count; i++) {
        const vitq_i_json *v = vitq_i_json_get(root->items[i], "name");
        if (v && v->type == VITQ_I_JSON_STRING) names[n++] = v->string;
    }
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t t = 0; t < st->count; t++) {
        const char *tn = st->tensors[t].name, *dot = strrchr(tn, '.');
        name_key k = {tn, dot ? (size_t)(dot - tn) : 0};
        fb->is_param[t] = dot && n && bsearch(&k, names, n, sizeof *names, cmp_key_name) != NULL;
        if (!fb->is_param[t]) {
            uint64_t v = tensor_values(&st->tensors[t].array);
            fb->budget = fb->budget > UINT64_MAX - v ? UINT64_MAX : fb->budget + v;
        }
    }
    vitq_i_free(a, names);
    return VITQ_OK;
}

/* The layer of `point`: the tensors under the longest prefix of its name, cut after a '.', that has
 * any (never the empty prefix). Returns their largest extent, 0 when no prefix has a tensor;
 * *prefix_len receives the prefix's length. The name index is sorted, so a prefix's tensors are one
 * run of it. */
static uint64_t layer_extent(const vitq_i_safetensors *st, const file_bounds *fb, const char *point,
                             size_t *prefix_len) {
    *prefix_len = 0;
    for (size_t end = strlen(point); end-- > 0;) {
        if (point[end] != '.') continue;
        size_t len = end + 1, lo = 0, hi = st->count;
        while (lo < hi) { /* first name not below the prefix */
            size_t mid = lo + (hi - lo) / 2;
            if (strncmp(st->by_name[mid]->name, point, len) < 0) lo = mid + 1;
            else hi = mid;
        }
        uint64_t extent = 0;
        for (size_t i = lo; i < st->count && strncmp(st->by_name[i]->name, point, len) == 0; i++) {
            const vitq_i_st_tensor *t = st->by_name[i];
            if (fb->is_param[t - st->tensors]) continue;
            uint64_t e = tensor_extent(&t->array);
            if (e > extent) extent = e;
        }
        *prefix_len = len;
        if (extent) return extent;
    }
    return 0;
}

/* Channels of each entry within its layer, and of all entries together within the file's budget
 * (entries without a name or a valid count are refused one by one in load_point). */
static vitq_status check_channels(const vitq_i_safetensors *st, const vitq_i_json *root, const file_bounds *fb) {
    uint64_t total = 0;
    for (size_t i = 0; i < root->count; i++) {
        const vitq_i_json *v = vitq_i_json_get(root->items[i], "channels");
        const vitq_i_json *n = vitq_i_json_get(root->items[i], "name");
        if (!v || v->type != VITQ_I_JSON_NUMBER || !v->is_integer || v->integer < 1 || !n ||
            n->type != VITQ_I_JSON_STRING)
            continue;
        const char *name = n->string;
        uint64_t channels = (uint64_t)v->integer;
        size_t prefix = 0;
        uint64_t extent = layer_extent(st, fb, name, &prefix);
        if (!extent)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' belongs to no layer of the file (%s%.*s%s)", st->name,
                               name, prefix ? "no tensor under '" : "its name has no layer part", (int)prefix, name,
                               prefix ? "'" : "");
        if (channels > extent)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' has %llu channels, more than its layer '%.*s' has "
                               "(its tensors' largest dimension is %llu)", st->name, name,
                               (unsigned long long)channels, (int)prefix - 1, name, (unsigned long long)extent);
        total = total > UINT64_MAX - channels ? UINT64_MAX : total + channels;
    }
    if (total > fb->budget)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: vitq.points lists %llu channels in all, more than the %llu values "
                           "of the layers' tensors", st->name, (unsigned long long)total,
                           (unsigned long long)fb->budget);
    return VITQ_OK;
}

static vitq_status remember_name(vitq_i_qload *p, const char *name, size_t capacity) {
    if (!p->names) {
        p->names = vitq_i_calloc(&p->alloc, capacity, sizeof *p->names);
        if (!p->names) return vitq_i_oom("quantized model", capacity * sizeof *p->names);
    }
    if (p->num_names >= capacity) return vitq_i_fail(VITQ_ERR_FORMAT, "too many quantizer parameters");
    p->names[p->num_names] = vitq_i_strdup(&p->alloc, name);
    if (!p->names[p->num_names]) return vitq_i_oom("quantized model", strlen(name));
    p->num_names++;
    return VITQ_OK;
}

typedef struct remember_ctx {
    vitq_i_qload *p;
    size_t capacity;
} remember_ctx;

static vitq_status remember_tensor(void *ctx, const char *name) {
    remember_ctx *rc = ctx;
    return remember_name(rc->p, name, rc->capacity);
}

/* Set every parameter listed in entry `e` from its "<point>.<param>" tensor. */
static vitq_status load_params(vitq_i_qload *p, const vitq_i_safetensors *st, const vitq_i_json *e,
                               vitq_i_qpoint *qp, size_t name_capacity) {
    const vitq_i_json *params = vitq_i_json_get(e, "params");
    if (!params || params->type != VITQ_I_JSON_ARRAY)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: vitq.points entry '%s' has no params list", st->name, qp->inst.name);
    for (size_t k = 0; k < params->count; k++) {
        char full[VITQ_I_POINT_NAME + 64];
        if (params->items[k]->type != VITQ_I_JSON_STRING)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: params of '%s' must be strings", st->name, qp->inst.name);
        const char *param = params->items[k]->string;
        if (snprintf(full, sizeof full, "%s.%s", qp->inst.name, param) >= (int)sizeof full)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: parameter name '%.40s...' of '%s' is too long", st->name, param,
                               qp->inst.name);
        const vitq_i_st_tensor *t = vitq_i_st_find(st, full);
        if (!t) return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: quantizer parameter tensor '%s' is missing", st->name, full);
        if (t->array.elem != VITQ_I_ELEM_F32 || t->array.ndim != 1)
            return vitq_i_fail(VITQ_ERR_DTYPE, "%s: tensor '%s' must be a 1-D F32 array", st->name, full);
        uint64_t count = t->array.shape[0];
        float *values = vitq_i_alloc_array(&p->alloc, (size_t)count + 1, sizeof(float));
        if (!values) return vitq_i_oom(full, (size_t)count * sizeof(float));
        vitq_status s = vitq_i_st_to_f32(st, t, values);
        if (!s) s = qp->inst.scheme.set_param(qp->inst.state, param, values, (int64_t)count);
        vitq_i_free(&p->alloc, values);
        if (!s) s = remember_name(p, full, name_capacity);
        if (s) return s;
    }
    return VITQ_OK;
}

/* The fixed noisy bias of a NoisyQuant point: "<point>.noise", one F32 per channel. */
static vitq_status load_noise(vitq_i_qload *p, const vitq_i_safetensors *st, vitq_i_qpoint *qp,
                              size_t name_capacity) {
    char full[VITQ_I_POINT_NAME + 16];
    snprintf(full, sizeof full, "%s.noise", qp->inst.name);
    const vitq_i_st_tensor *t = vitq_i_st_find(st, full);
    int64_t channels = qp->inst.config.channels;
    if (!t) return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: noisy bias tensor '%s' is missing", st->name, full);
    if (qp->inst.config.kind == VITQ_POINT_WEIGHT)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: '%s': a weight point has no noisy bias", st->name, full);
    if (t->array.elem != VITQ_I_ELEM_F32 || t->array.ndim != 1 || t->array.shape[0] != (uint64_t)channels)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' must be F32 [%lld]", st->name, full, (long long)channels);
    qp->noise = vitq_i_alloc_array(&p->alloc, (size_t)channels, sizeof(float));
    if (!qp->noise) return vitq_i_oom(full, (size_t)channels * sizeof(float));
    vitq_status s = vitq_i_st_to_f32(st, t, qp->noise);
    for (int64_t c = 0; !s && c < channels; c++)
        if (!isfinite(qp->noise[c]))
            s = vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: tensor '%s' holds %g at %lld", st->name, full,
                            (double)qp->noise[c], (long long)c);
    return s ? s : remember_name(p, full, name_capacity);
}

/* The stored shape of a weight point and its code tensor, checked before anything is allocated for
 * them: positive dimensions whose product fits in memory, rows = channels, and a code tensor of
 * exactly rows x (packed row) bytes. */
typedef struct weight_layout {
    int64_t shape[4];
    size_t ndim, count;
    int64_t inner; /* count / rows */
    vitq_i_st_tensor *tensor;
} weight_layout;

static vitq_status check_weight(vitq_i_safetensors *st, const vitq_i_json *e, const vitq_point_config *cfg,
                                weight_layout *w) {
    const char *name = cfg->name;
    vitq_status s = vitq_i_json_get_ints(e, "shape", st->name, 2, 4, w->shape, &w->ndim, NULL);
    if (s) return s;
    char text[128];
    int k = snprintf(text, sizeof text, "[");
    for (size_t d = 0; d < w->ndim && k > 0 && (size_t)k < sizeof text; d++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s%lld", d ? "," : "", (long long)w->shape[d]);
    if (k > 0 && (size_t)k < sizeof text) snprintf(text + k, sizeof text - (size_t)k, "]");
    for (size_t d = 0; d < w->ndim; d++)
        if (w->shape[d] < 1)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s': shape %s: dimension %zu is %lld (dimensions are "
                               "positive)", st->name, name, text, d, (long long)w->shape[d]);
    if (!vitq_i_shape_count_i64((int)w->ndim, w->shape, SIZE_MAX / sizeof(float), &w->count))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s': shape %s: the product of its dimensions is more values "
                           "than memory holds", st->name, name, text);
    if (w->shape[0] != cfg->channels)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' has shape %s but %lld channels", st->name, name, text,
                           (long long)cfg->channels);
    w->inner = (int64_t)(w->count / (size_t)w->shape[0]);
    w->tensor = (vitq_i_st_tensor *)vitq_i_st_find(st, name); /* st is ours to adjust */
    if (!w->tensor) return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: quantized weight '%s' is missing", st->name, name);
    size_t row_bytes = vitq_i_code_row_bytes(w->inner, vitq_i_code_storage_bits(cfg->bits));
    int want_i8 = vitq_i_code_storage_bits(cfg->bits) == 8 && cfg->symmetric;
    const vitq_i_array *t = &w->tensor->array;
    if (t->elem != (want_i8 ? VITQ_I_ELEM_I8 : VITQ_I_ELEM_U8) || t->ndim != 2 ||
        t->shape[0] != (uint64_t)w->shape[0] || t->shape[1] != row_bytes) {
        char stored[96];
        vitq_i_shape_str(t, stored, sizeof stored);
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: quantized weight '%s' is %s %s, but %d-bit codes of shape %s are "
                           "stored as %s [%lld, %zu]", st->name, name, vitq_i_elem_name(t->elem), stored,
                           (int)cfg->bits, text, want_i8 ? "I8" : "U8", (long long)w->shape[0], row_bytes);
    }
    return VITQ_OK;
}

/* Where a weight point's codes are, so that they are read when a layer needs them and never all at
 * once: the code tensor as the file stores it (a copy of its entry, since the entry itself becomes
 * the F32 tensor the builders read) and the weight's shape. */
struct vitq_i_qload_weight {
    vitq_allocator alloc;
    const vitq_i_safetensors *st;
    vitq_i_st_tensor stored;
    vitq_i_qpoint *qp;
    int64_t rows, inner;
    size_t count;
};

/* The codes of w as stored (qp->codes_bytes bytes), into a new buffer. */
static vitq_status read_codes(const struct vitq_i_qload_weight *w, uint8_t **out) {
    *out = vitq_i_alloc(&w->alloc, w->stored.array.nbytes ? w->stored.array.nbytes : 1);
    if (!*out) return vitq_i_oom(w->qp->inst.name, w->stored.array.nbytes);
    vitq_status s = vitq_i_st_read(w->st, &w->stored, *out);
    if (s) {
        vitq_i_free(&w->alloc, *out);
        *out = NULL;
    }
    return s;
}

/* The weight of w as its quantizer dequantizes its codes, into dst (count floats). */
static vitq_status dequantize(const struct vitq_i_qload_weight *w, const uint8_t *codes, float *dst) {
    const vitq_point_config *cfg = &w->qp->inst.config;
    int32_t *ints = vitq_i_alloc_array(&w->alloc, w->count, sizeof(int32_t));
    if (!ints) return vitq_i_oom(w->qp->inst.name, w->count * sizeof(int32_t));
    vitq_status s = vitq_i_codes_unpack(codes, w->rows, w->inner, cfg->bits, cfg->symmetric, ints);
    vitq_tensor_view v = {sizeof v, dst, 1, w->rows, w->inner, (int64_t)w->count};
    if (!s) s = w->qp->inst.scheme.dequantize(w->qp->inst.state, ints, &v);
    vitq_i_free(&w->alloc, ints);
    return s;
}

/* The float values of a quantized weight tensor (its `fill`, io/safetensors.h). */
static vitq_status fill_weight(void *user, const vitq_i_st_tensor *t, float *dst) {
    (void)t;
    const struct vitq_i_qload_weight *w = user;
    uint8_t *codes;
    vitq_status s = read_codes(w, &codes);
    if (!s) s = dequantize(w, codes, dst);
    vitq_i_free(&w->alloc, codes);
    return s;
}

/* Make the tensor of a weight point an F32 tensor of its shape whose values are its codes
 * dequantized on request; the codes stay in the file (or the caller's buffer) until the layer's
 * kernel is built (vitq_i_qload_finish). */
static vitq_status load_weight(vitq_i_qload *p, const vitq_i_safetensors *st, const weight_layout *wl,
                               vitq_i_qpoint *qp) {
    vitq_i_st_tensor *t = wl->tensor;
    struct vitq_i_qload_weight *w = &p->weights[p->num_weights++];
    *w = (struct vitq_i_qload_weight){p->alloc, st, *t, qp, wl->shape[0], wl->inner, wl->count};
    qp->codes_bytes = t->array.nbytes;
    qp->ndim = (int)wl->ndim;
    for (size_t d = 0; d < wl->ndim; d++) {
        qp->shape[d] = (uint64_t)wl->shape[d];
        t->array.shape[d] = (uint64_t)wl->shape[d];
    }
    t->array.elem = VITQ_I_ELEM_F32;
    t->array.ndim = (int)wl->ndim;
    t->array.data = NULL;
    t->array.nbytes = wl->count * sizeof(float);
    t->fill = fill_weight;
    t->fill_user = w;
    t->pack_later = 1;
    return VITQ_OK;
}

static vitq_status load_point(vitq_i_qload *p, vitq_i_safetensors *st, const vitq_registry *registry,
                              const vitq_i_json *e, vitq_i_qpoint *qp, size_t name_capacity) {
    const char *file = st->name, *name = NULL, *scheme_name = NULL, *gran = NULL;
    int64_t bits, sym, channels, groups, cpg, seed = 0, revision = 0;
    double lo = 0, hi = 0;
    vitq_status s = vitq_i_json_get_string(e, "name", file, &name, NULL);
    if (!s && !name) s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: a vitq.points entry has no name", file);
    if (!s) s = vitq_i_json_get_string(e, "scheme", file, &scheme_name, NULL);
    if (!s) s = vitq_i_json_get_string(e, "granularity", file, &gran, NULL);
    if (!s) s = vitq_i_json_get_int(e, "bits", file, 2, 8, &bits, NULL);
    if (!s) s = vitq_i_json_get_int(e, "symmetric", file, 0, 1, &sym, NULL);
    if (!s) s = vitq_i_json_get_int(e, "channels", file, 1, INT32_MAX, &channels, NULL);
    if (!s) s = vitq_i_json_get_int(e, "groups", file, 1, INT32_MAX, &groups, NULL);
    if (!s) s = vitq_i_json_get_int(e, "channels_per_group", file, 1, INT32_MAX, &cpg, NULL);
    if (!s) s = vitq_i_json_get_int(e, "seed", file, 0, INT64_MAX, &seed, NULL);
    if (!s) s = vitq_i_json_get_int(e, "revision", file, 0, UINT32_MAX, &revision, NULL);
    if (!s) s = vitq_i_json_get_number(e, "observed_min", file, &lo, NULL);
    if (!s) s = vitq_i_json_get_number(e, "observed_max", file, &hi, NULL);
    if (s) return s;
    if (!scheme_name || !gran) return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' lacks scheme or granularity", file, name);
    if (strlen(name) >= VITQ_I_POINT_NAME)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point name '%.40s...' is longer than any point's (%d characters)",
                           file, name, VITQ_I_POINT_NAME - 1);
    const vitq_scheme *scheme = vitq_i_registry_find(registry, scheme_name);
    if (!scheme) {
        vitq_i_error_prefix("%s: point '%s' (pass a registry holding it in vitq_model_options.registry)", file, name);
        return VITQ_ERR_UNKNOWN_NAME;
    }
    if ((uint64_t)revision != scheme->revision)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                           "%s: point '%s' was saved with revision %lld of scheme '%s', whose parameters meant something "
                           "else then; this library reads revision %u: quantize the model again", file, name,
                           (long long)revision, scheme->name, (unsigned)scheme->revision);
    vitq_point_config cfg = {sizeof cfg, name, vitq_i_json_get(e, "shape") ? VITQ_POINT_WEIGHT : VITQ_POINT_ACTIVATION,
                             0, (int32_t)bits, 0, (int32_t)sym, channels, groups, cpg, NULL, (uint64_t)seed, NULL};
    if ((s = vitq_i_parse_granularity(gran, &cfg.granularity))) return s;
    int64_t product = 0;
    if ((!vitq_i_mul_i64(groups, cpg, &product) || product != channels) && !(groups == 1 && cpg == channels))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s': %lld groups of %lld channels is not %lld channels", file,
                           name, (long long)groups, (long long)cpg, (long long)channels);
    weight_layout wl;
    memset(&wl, 0, sizeof wl);
    if (cfg.kind == VITQ_POINT_WEIGHT && (s = check_weight(st, e, &cfg, &wl))) return s;
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
    vitq_i_scheme_option_defaults(scheme, options);
    const vitq_i_json *opts = vitq_i_json_get(e, "options");
    for (size_t k = 0; opts && opts->type == VITQ_I_JSON_OBJECT && k < opts->count; k++) {
        int index = vitq_i_scheme_option_index(scheme, opts->keys[k]);
        if (index < 0 || opts->items[k]->type != VITQ_I_JSON_NUMBER)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s': scheme '%s' has no numeric option '%s'", file, name,
                               scheme->name, opts->keys[k]);
        if ((s = vitq_i_scheme_option_check(scheme, index, opts->items[k]->number))) return s;
        options[index] = opts->items[k]->number;
    }
    cfg.options = options;
    if ((s = vitq_i_instance_create(&qp->inst, &p->alloc, scheme, &cfg))) return s;
    qp->observed_min = (float)lo;
    qp->observed_max = (float)hi;
    if ((s = load_params(p, st, e, qp, name_capacity))) return s;
    if (vitq_i_json_get(e, "noise") && (s = load_noise(p, st, qp, name_capacity))) return s;
    return cfg.kind == VITQ_POINT_WEIGHT ? load_weight(p, st, &wl, qp) : VITQ_OK;
}

vitq_status vitq_i_qload_prepare(const vitq_allocator *a, vitq_i_safetensors *st, const vitq_registry *registry,
                                 vitq_i_qload *p) {
    memset(p, 0, sizeof *p);
    p->alloc = *a;
    const char *version = vitq_i_st_meta(st, "vitq.format_version"), *table = vitq_i_st_meta(st, "vitq.points");
    if (!version || (strcmp(version, "1") != 0 && strcmp(version, "2") != 0))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: quantized model format version '%s' (this library reads 1 to %d)",
                           st->name, version ? version : "(none)", FORMAT_VERSION);
    if (!table) return vitq_i_fail(VITQ_ERR_FORMAT, "%s: quantized model without vitq.points metadata", st->name);
    vitq_i_json *root = NULL;
    vitq_status s = vitq_i_json_parse(a, table, strlen(table), "vitq.points", &root);
    if (s) return s;
    if (root->type != VITQ_I_JSON_ARRAY) {
        vitq_i_json_free(a, root);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: vitq.points is not a JSON array", st->name);
    }
    p->q = vitq_i_calloc(a, 1, sizeof *p->q);
    if (p->q) p->q->qpoints = vitq_i_calloc(a, root->count + 1, sizeof *p->q->qpoints);
    p->weights = vitq_i_calloc(a, root->count + 1, sizeof *p->weights);
    size_t bytes = SIZE_MAX;
    vitq_i_mul_size(root->count, sizeof(vitq_i_qpoint), &bytes);
    if (!p->q || !p->q->qpoints || !p->weights) s = vitq_i_oom("quantized model", bytes);
    if (p->q) p->q->alloc = *a;
    file_bounds fb;
    memset(&fb, 0, sizeof fb);
    if (!s) s = bounds_build(a, st, root, &fb);
    if (!s) s = check_channels(st, root, &fb); /* before any entry allocates */
    int nl_count = 0;
    if (!s) s = vitq_i_nl_count(a, st, &nl_count);
    if (!s && nl_count && strcmp(version, "2") != 0) /* a version 1 reader would have run them in float */
        s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: integer non-linear operators in a file of format version %s (they "
                        "need version 2)", st->name, version);
    size_t name_capacity = 1 + (size_t)nl_count * VITQ_I_NL_MAX_TENSORS; /* every listed parameter of every point */
    for (size_t i = 0; i < root->count; i++) {
        const vitq_i_json *params = vitq_i_json_get(root->items[i], "params");
        if (params && params->type == VITQ_I_JSON_ARRAY) name_capacity += params->count + 1; /* + noise */
    }
    for (size_t i = 0; !s && i < root->count; i++) {
        s = load_point(p, st, registry, root->items[i], &p->q->qpoints[i], name_capacity);
        p->q->count = (int)i + 1; /* so that a failure frees what this entry created */
    }
    if (!s && nl_count) {
        p->nl = vitq_i_calloc(a, (size_t)nl_count, sizeof *p->nl);
        p->nl_names = vitq_i_calloc(a, (size_t)nl_count, sizeof *p->nl_names);
        if (!p->nl || !p->nl_names) s = vitq_i_oom("integer operators", (size_t)nl_count * sizeof *p->nl);
        p->nl_count = nl_count;
        remember_ctx rc = {p, name_capacity};
        /* The operators' tables are read by indexing their bytes: a file's are brought in (small,
         * a few integers per channel; freed with st). */
        for (size_t t = 0; !s && t < st->count; t++)
            if (strstr(st->tensors[t].name, ".nl_")) s = vitq_i_st_pin(st, &st->tensors[t]);
        if (!s) s = vitq_i_nl_read(a, st, p->nl, p->nl_names, nl_count, remember_tensor, &rc);
    }
    vitq_i_free(a, fb.is_param);
    vitq_i_json_free(a, root);
    return s;
}

vitq_status vitq_i_qload_attach(vitq_i_qload *p, vitq_i_net *m, vitq_i_qmodel **out) {
    vitq_i_qmodel *q = p->q;
    vitq_status s = vitq_i_points_build(&q->alloc, m, &q->list);
    if (s) return s;
    q->of_point = vitq_i_alloc_array(&q->alloc, (size_t)q->list.count, sizeof(int));
    unsigned char *active = vitq_i_calloc(&q->alloc, (size_t)q->list.count, 1);
    if (!q->of_point || !active) {
        vitq_i_free(&q->alloc, active);
        return vitq_i_oom("quantized model", (size_t)q->list.count * sizeof(int));
    }
    for (int i = 0; i < q->list.count; i++) q->of_point[i] = -1;
    for (int i = 0; !s && i < q->count; i++) {
        vitq_i_qpoint *qp = &q->qpoints[i];
        int point = vitq_i_points_find(&q->list, qp->inst.name);
        const vitq_i_point_desc *d = point >= 0 ? &q->list.points[point] : NULL;
        if (!d)
            s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: quantization point '%s' does not exist in this model", m->name,
                            qp->inst.name);
        else if (d->channels != qp->inst.config.channels || d->kind != (vitq_point_kind)qp->inst.config.kind)
            s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' has %lld channels (%s) in the file, %lld (%s) in the model",
                            m->name, d->name, (long long)qp->inst.config.channels,
                            qp->inst.config.kind == VITQ_POINT_WEIGHT ? "weight" : "activation", (long long)d->channels,
                            d->kind == VITQ_POINT_WEIGHT ? "weight" : "activation");
        else if (q->of_point[point] >= 0)
            s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' is listed twice", m->name, d->name);
        if (s) break;
        qp->point = point;
        q->of_point[point] = i;
        active[point] = d->kind == VITQ_POINT_ACTIVATION;
    }
    if (!s && p->nl_count) {
        s = vitq_i_nl_attach(q, p->nl, p->nl_names, p->nl_count, m->name);
        p->nl = NULL; /* q's now, also when the check failed */
        p->nl_count = 0;
        vitq_i_qmodel_mark_sites(q, active);
    }
    if (!s) s = vitq_i_sites_filter(&q->alloc, m, &q->list, active, &q->sites);
    vitq_i_free(&q->alloc, active);
    if (s) return s;
    *out = q;
    m->info.num_quantized_points = q->count;
    p->q = NULL;
    return VITQ_OK;
}

/* The codes of weight point qp, read from where the file keeps them (integer.h's codes source). */
static vitq_status load_codes(void *user, const vitq_i_qpoint *qp, uint8_t **codes) {
    const vitq_i_qload *p = user;
    for (int i = 0; i < p->num_weights; i++)
        if (p->weights[i].qp == qp) return read_codes(&p->weights[i], codes);
    *codes = NULL;
    return VITQ_ERR_UNSUPPORTED; /* not a point of the file: its layer stays as it is */
}

vitq_status vitq_i_qload_finish(vitq_i_qload *p, vitq_i_net *m, vitq_i_qmodel *q, int simulated, int *layers,
                                int *attentions) {
    *layers = *attentions = 0;
    vitq_i_codes_source source = {load_codes, p};
    vitq_status s = simulated ? VITQ_OK : vitq_i_integer_build(m, q, &source, layers, attentions);
    /* The other quantized layers run on float panels of their dequantized weight, and keep their
     * codes (saving and reports read them): built layer by layer, each one's floats freed at once. */
    for (int i = 0; !s && i < p->num_weights; i++) {
        const struct vitq_i_qload_weight *w = &p->weights[i];
        vitq_i_qpoint *qp = w->qp;
        vitq_i_linear *l = qp->point >= 0 && qp->point < q->list.count ? q->list.points[qp->point].weight : NULL;
        if (l && l->integer) continue; /* its integer panels hold the codes */
        if (!qp->codes) s = read_codes(w, &qp->codes);
        if (s || !l || l->packed.panels) continue;
        float *floats = vitq_i_alloc_array(&m->alloc, w->count, sizeof(float));
        if (!floats) s = vitq_i_oom(qp->inst.name, w->count * sizeof(float));
        if (!s) s = dequantize(w, qp->codes, floats);
        if (!s) s = vitq_i_gemm_pack(&m->alloc, floats, l->out, l->in, &l->packed);
        vitq_i_free(&m->alloc, floats);
    }
    const vitq_i_linear *l;
    for (size_t i = 0; !s && (l = vitq_i_model_linear_at(m, i)) != NULL; i++)
        if (l->out && !l->packed.panels && !l->integer) /* a quantized weight no point claimed */
            s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: linear layer %zu has a quantized weight that no quantization point "
                            "of the model uses", m->name, i);
    return s;
}

void vitq_i_qload_free(vitq_i_qload *p) {
    for (size_t i = 0; i < p->num_names; i++) vitq_i_free(&p->alloc, p->names[i]);
    vitq_i_free(&p->alloc, p->names);
    vitq_i_free(&p->alloc, p->weights);
    for (int i = 0; p->nl && i < p->nl_count; i++) vitq_i_qnl_free(&p->alloc, &p->nl[i]);
    vitq_i_free(&p->alloc, p->nl);
    vitq_i_free(&p->alloc, p->nl_names);
    vitq_i_qmodel_free(p->q);
    memset(p, 0, sizeof *p);
}
