/* Image datasets from IDX or .npy files (plain or gzip), with optional labels, and feeding them to
 * a model. Pixels stay in their stored type and layout; conversion to the model's input happens in
 * bounded batches at forward time. */
#include <stdio.h>
#include <string.h>

#include "core/abi.h"
#include "data/dataset.h"
#include "io/idx.h"
#include "io/inflate.h"
#include "io/npy.h"
#include "model/net.h"

struct vitq_dataset {
    vitq_allocator alloc;
    vitq_dataset_info info;
    uint8_t *raw;         /* decompressed file contents; pixels point into it */
    const uint8_t *pixels;
    int32_t *labels;      /* [count] or NULL */
    char *name;
};

void vitq_dataset_info_init(vitq_dataset_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

/* The most of a compressed file decompressed to read its header: a .npy preamble and the longest
 * header numpy's version 1.0 writes (IDX headers are 8 to 20 bytes). */
#define HEADER_PEEK ((size_t)12 + 65536)
/* Largest image side accepted: far beyond any ViT input, small enough that sizes stay exact. */
#define MAX_SIDE ((uint64_t)1 << 20)

static int is_npy(const uint8_t *b, size_t n) { return n >= 6 && b[0] == 0x93 && memcmp(b + 1, "NUMPY", 5) == 0; }

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* The .npy reader for .npy magic, the IDX reader for IDX magic (00 00), the .npy reader again for
 * other files named .npy (it reports their bad magic); anything else is neither, said with the bytes
 * seen. `header_only`: the header alone (`n` may end after it), else the whole file. */
static vitq_status parse_array(const uint8_t *b, size_t n, const char *name, int header_only, vitq_i_array *arr,
                               size_t *data_at) {
    *data_at = 0;
    int npy = is_npy(b, n), idx = n < 2 || (b[0] == 0 && b[1] == 0);
    if (!npy && !idx) npy = ends_with(name, ".npy") || ends_with(name, ".npy.gz");
    if (npy) return header_only ? vitq_i_npy_parse_header(b, n, name, arr, data_at) : vitq_i_npy_parse(b, n, name, arr);
    if (idx) return header_only ? vitq_i_idx_parse_header(b, n, name, arr, data_at) : vitq_i_idx_parse(b, n, name, arr);
    char seen[32] = "";
    for (size_t i = 0, k = 0; i < 6 && i < n; i++)
        k += (size_t)snprintf(seen + k, sizeof seen - k, "%s%02x", i ? " " : "", b[i]);
    return vitq_i_fail(VITQ_ERR_FORMAT, "%s: neither an IDX file (magic 00 00) nor a .npy file (magic 93 4e 55 4d 50 "
                       "59): the file starts %s", name, seen);
}

/* A check of an array's header (type, shape) before its data is decompressed or used. */
typedef vitq_status (*header_check)(void *ctx, const vitq_i_array *arr, const char *name);

/* The array held by a file's bytes. Its header is read first (from the first HEADER_PEEK bytes of a
 * gzip file) and checked by `check`; a gzip file is then decompressed only up to the size the header
 * implies, into *owned (NULL for plain bytes, which arr points into). */
static vitq_status read_array(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                              header_check check, void *ctx, uint8_t **owned, vitq_i_array *arr) {
    *owned = NULL;
    const uint8_t *bytes = data;
    size_t n = size, data_at = 0, total = 0;
    vitq_status st;
    if (vitq_i_is_gzip(data, size)) {
        uint8_t *head = NULL;
        size_t head_n = 0;
        st = vitq_i_gzip_peek(a, data, size, name, HEADER_PEEK, &head, &head_n);
        if (!st) st = parse_array(head, head_n, name, 1, arr, &data_at);
        if (st == VITQ_ERR_TRUNCATED && head_n == HEADER_PEEK)
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: header longer than the %zu bytes read from a compressed file", name,
                             HEADER_PEEK);
        int npy = head && is_npy(head, head_n);
        vitq_i_free(a, head);
        if (!st) st = check(ctx, arr, name);
        if (!st && !vitq_i_add_size(data_at, arr->nbytes, &total))
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: header and data need more bytes than the address space holds", name);
        if (st) return st;
        char why[160];
        snprintf(why, sizeof why, "its %s header implies (%zu header bytes + %zu of data)", npy ? ".npy" : "IDX",
                 data_at, arr->nbytes);
        st = vitq_i_gzip_decompress_limit(a, data, size, name, total, why, owned, &n);
        if (st) return st;
        bytes = *owned;
    } else {
        st = parse_array(bytes, n, name, 1, arr, &data_at);
        if (!st) st = check(ctx, arr, name);
        if (st) return st;
    }
    return parse_array(bytes, n, name, 0, arr, &data_at);
}

static int is_channel_count(uint64_t c) { return c == 1 || c == 3 || c == 4; }

/* A height or width: 1 to MAX_SIDE, said with the axis it sits on. */
static vitq_status check_side(const char *name, const char *shape, const char *what, int axis, uint64_t v) {
    if (v == 0)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image %s (dimension %d of %s) is 0", name, what, axis, shape);
    if (v > MAX_SIDE)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image %s (dimension %d of %s) is %llu, more than the %llu accepted",
                           name, what, axis, shape, (unsigned long long)v, (unsigned long long)MAX_SIDE);
    return VITQ_OK;
}

/* Shape -> count, height, width, channels, layout (a header_check; ctx is the dataset info). */
static vitq_status describe_images(void *ctx, const vitq_i_array *arr, const char *name) {
    vitq_dataset_info *info = ctx;
    char shape[96];
    vitq_i_shape_str(arr, shape, sizeof shape);
    if (arr->elem != VITQ_I_ELEM_U8 && arr->elem != VITQ_I_ELEM_F32)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: images of type %s: only uint8 pixels or float32 model inputs", name,
                           vitq_i_elem_name(arr->elem));
    const uint64_t *s = arr->shape;
    int h_axis = 1, w_axis = 2, c_axis = 0;
    if (arr->ndim == 4) {
        /* NCHW when the channel axis is unambiguous there (PyTorch's order wins a tie such as
         * [N,3,3,3]); NHWC when only the last axis can be channels. */
        int nchw = is_channel_count(s[1]) && s[2] == s[3];
        int nhwc = is_channel_count(s[3]) && s[1] == s[2];
        if (!nchw && !nhwc)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s is neither [N,C,S,S] nor [N,S,S,C] with C in 1,3,4",
                               name, shape);
        info->layout = nchw ? VITQ_PIXELS_NCHW : VITQ_PIXELS_NHWC;
        c_axis = nchw ? 1 : 3;
        h_axis = nchw ? 2 : 1;
        w_axis = nchw ? 3 : 2;
    } else if (arr->ndim == 3) {
        info->layout = VITQ_PIXELS_NHWC;
    } else {
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s must have 3 ([N,H,W]) or 4 dimensions", name, shape);
    }
    if (s[0] == 0)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s holds no images (dimension 0 is 0)", name, shape);
    vitq_status st = check_side(name, shape, "height", h_axis, s[h_axis]);
    if (!st) st = check_side(name, shape, "width", w_axis, s[w_axis]);
    if (st) return st;
    info->count = s[0];
    info->height = (int32_t)s[h_axis];
    info->width = (int32_t)s[w_axis];
    info->channels = c_axis ? (int32_t)s[c_axis] : 1;
    info->dtype = arr->elem == VITQ_I_ELEM_U8 ? VITQ_DTYPE_U8 : VITQ_DTYPE_F32;
    return VITQ_OK;
}

/* One label per image, of an integer type (a header_check; ctx is the dataset). */
static vitq_status check_labels(void *ctx, const vitq_i_array *arr, const char *name) {
    const vitq_dataset *ds = ctx;
    if (arr->ndim != 1 || arr->shape[0] != ds->info.count)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: %llu labels (rank %d) for %llu images", name,
                           (unsigned long long)(arr->ndim ? arr->shape[0] : 1), arr->ndim,
                           (unsigned long long)ds->info.count);
    if (arr->elem != VITQ_I_ELEM_U8 && arr->elem != VITQ_I_ELEM_U16 && arr->elem != VITQ_I_ELEM_I32 &&
        arr->elem != VITQ_I_ELEM_I64)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: labels of type %s: use uint8, uint16, int32 or int64", name,
                           vitq_i_elem_name(arr->elem));
    return VITQ_OK;
}

static vitq_status read_labels(vitq_dataset *ds, const uint8_t *data, size_t size, const char *name) {
    uint8_t *owned = NULL;
    vitq_i_array arr;
    vitq_status st = read_array(&ds->alloc, data, size, name, check_labels, ds, &owned, &arr);
    if (!st) {
        ds->labels = vitq_i_alloc_array(&ds->alloc, (size_t)arr.shape[0], sizeof(int32_t));
        size_t bytes = SIZE_MAX;
        vitq_i_mul_size((size_t)arr.shape[0], sizeof(int32_t), &bytes);
        if (!ds->labels) st = vitq_i_oom("labels", bytes);
    }
    size_t es = vitq_i_elem_size(arr.elem);
    for (size_t i = 0; !st && i < (size_t)ds->info.count; i++) {
        int64_t v = 0;
        const uint8_t *p = arr.data + es * i; /* i < count: within the array's checked bytes */
        switch (arr.elem) {
        case VITQ_I_ELEM_U8: v = *p; break;
        case VITQ_I_ELEM_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
        case VITQ_I_ELEM_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
        default: memcpy(&v, p, 8); break; /* I64, the last type check_labels lets through */
        }
        if (v < 0)
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: label %zu is %lld: labels are class indices, 0 or more", name, i,
                             (long long)v);
        else if (v > INT32_MAX)
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: label %zu is %lld, beyond any class index (at most %ld)", name, i,
                             (long long)v, (long)INT32_MAX);
        else
            ds->labels[i] = (int32_t)v;
    }
    vitq_i_free(&ds->alloc, owned);
    return st;
}

static vitq_status dataset_create(const vitq_allocator *allocator, const uint8_t *images, size_t images_size,
                                  const char *images_name, const uint8_t *labels, size_t labels_size,
                                  const char *labels_name, vitq_dataset **out) {
    vitq_allocator a;
    vitq_status st = vitq_i_allocator_resolve(allocator, &a);
    if (st) return st;
    vitq_dataset *ds = vitq_i_calloc(&a, 1, sizeof *ds);
    if (!ds) return vitq_i_oom("dataset", sizeof *ds);
    ds->alloc = a;
    vitq_dataset_info_init(&ds->info);
    ds->name = vitq_i_strdup(&a, images_name);
    if (!ds->name) st = vitq_i_oom("dataset name", 0);
    vitq_i_array arr;
    if (!st) st = read_array(&a, images, images_size, images_name, describe_images, &ds->info, &ds->raw, &arr);
    if (!st && !ds->raw) { /* keep our own copy: the caller's buffer may go away */
        ds->raw = vitq_i_alloc(&a, images_size);
        if (!ds->raw) st = vitq_i_oom(images_name, images_size);
        else memcpy(ds->raw, images, images_size);
        if (!st) arr.data = ds->raw + (arr.data - images);
    }
    if (!st) ds->pixels = arr.data;
    if (!st && labels) st = read_labels(ds, labels, labels_size, labels_name);
    ds->info.has_labels = ds->labels != NULL;
    if (st) {
        vitq_dataset_free(ds);
        return st;
    }
    *out = ds;
    return VITQ_OK;
}

vitq_status vitq_dataset_load_memory(const void *images, size_t images_size, const void *labels, size_t labels_size,
                                     const vitq_allocator *allocator, vitq_dataset **out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_load_memory: out is NULL");
    *out = NULL;
    if (!images) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_load_memory: images is NULL");
    return dataset_create(allocator, images, images_size, "<images>", labels, labels_size, "<labels>", out);
}

vitq_status vitq_dataset_load_file(const char *images_path, const char *labels_path, const vitq_allocator *allocator,
                                   vitq_dataset **out) {
    vitq_allocator a;
    uint8_t *img = NULL, *lab = NULL;
    size_t img_n = 0, lab_n = 0;
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_load_file: out is NULL");
    *out = NULL;
    if (!images_path) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_load_file: images_path is NULL");
    vitq_status st = vitq_i_allocator_resolve(allocator, &a);
    if (!st) st = vitq_i_read_file(&a, images_path, &img, &img_n);
    if (!st && labels_path) st = vitq_i_read_file(&a, labels_path, &lab, &lab_n);
    if (!st) st = dataset_create(&a, img, img_n, images_path, lab, lab_n, labels_path, out);
    vitq_i_free(&a, img);
    vitq_i_free(&a, lab);
    return st;
}

void vitq_dataset_free(vitq_dataset *ds) {
    if (!ds) return;
    vitq_allocator a = ds->alloc;
    vitq_i_free(&a, ds->raw);
    vitq_i_free(&a, ds->labels);
    vitq_i_free(&a, ds->name);
    vitq_i_free(&a, ds);
}

vitq_status vitq_dataset_get_info(const vitq_dataset *ds, vitq_dataset_info *info) {
    if (!ds || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_get_info: NULL argument");
    vitq_status st = vitq_i_check_struct_size(info->struct_size, VITQ_I_V1_DATASET_INFO, "vitq_dataset_get_info",
                                              "vitq_dataset_info");
    if (st) return st;
    vitq_i_struct_out(info, info->struct_size, &ds->info, sizeof ds->info);
    return VITQ_OK;
}

vitq_status vitq_dataset_label(const vitq_dataset *ds, uint64_t index, int32_t *label) {
    if (!ds || !label) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_dataset_label: NULL argument");
    if (!ds->labels) return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: the dataset has no labels", ds->name);
    if (index >= ds->info.count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: label index %llu >= %llu images", ds->name,
                           (unsigned long long)index, (unsigned long long)ds->info.count);
    *label = ds->labels[index];
    return VITQ_OK;
}

/* float32 NHWC images -> NCHW model input. */
static void nhwc_to_nchw(const uint8_t *src, size_t n, size_t hw, size_t c, float *dst) {
    for (size_t b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++)
            for (size_t ch = 0; ch < c; ch++)
                memcpy(&dst[(b * c + ch) * hw + p], src + ((b * hw + p) * c + ch) * sizeof(float), sizeof(float));
}

/* Images [first, first + n) of ds as model-ready floats into out (NULL: only check the range and the
 * shape against the model). */
vitq_status vitq_i_dataset_images(const vitq_i_net *model, const vitq_dataset *ds, uint64_t first, size_t n,
                                  float *out) {
    const vitq_model_info *mi = &model->info;
    const vitq_dataset_info *di = &ds->info;
    if (first > di->count || n > di->count - first)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: images [%llu, %llu) out of range (%llu images)", ds->name,
                           (unsigned long long)first, (unsigned long long)(first + n), (unsigned long long)di->count);
    if (di->height != mi->image_size || di->width != mi->image_size || di->channels != mi->in_channels)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: images are %dx%dx%d (HxWxC), the model takes %dx%dx%d", ds->name,
                           di->height, di->width, di->channels, mi->image_size, mi->image_size, mi->in_channels);
    /* Sides are at most 2^20 and channels 4 (describe_images), and [first, first + n) lies within the
     * images, whose bytes the parser checked: none of these products can wrap. */
    size_t c = (size_t)di->channels, hw = (size_t)di->height * (size_t)di->width, per = c * hw;
    size_t elem = di->dtype == VITQ_DTYPE_U8 ? 1 : sizeof(float);
    if (!out) return VITQ_OK; /* checks only */
    const uint8_t *src = ds->pixels + (size_t)first * per * elem;
    if (di->dtype == VITQ_DTYPE_U8) return vitq_i_net_preprocess_u8(model, src, n, (vitq_pixel_layout)di->layout, out);
    if (di->layout == VITQ_PIXELS_NCHW)
        memcpy(out, src, n * per * sizeof(float));
    else
        nhwc_to_nchw(src, n, hw, c, out);
    return VITQ_OK;
}

vitq_status vitq_i_dataset_check_labels(const vitq_dataset *ds, uint64_t first, size_t n, int32_t classes) {
    for (size_t i = 0; ds->labels && i < n; i++) {
        int32_t label = ds->labels[first + i]; /* never negative: refused at load */
        if (label >= classes)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: the label of image %llu is %d, but the model has %d classes "
                               "(labels 0 to %d)", ds->name, (unsigned long long)(first + i), (int)label, (int)classes,
                               (int)classes - 1);
    }
    return VITQ_OK;
}

const uint8_t *vitq_i_dataset_pixels(const vitq_dataset *ds, uint64_t first, vitq_pixel_layout *layout) {
    const vitq_dataset_info *di = &ds->info;
    if (di->dtype != VITQ_DTYPE_U8) return NULL;
    *layout = (vitq_pixel_layout)di->layout;
    return ds->pixels + (size_t)first * (size_t)di->channels * (size_t)di->height * (size_t)di->width;
}

const char *vitq_i_dataset_name(const vitq_dataset *ds) { return ds->name; }
