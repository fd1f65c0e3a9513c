/* Image datasets from IDX or .npy files (plain or gzip), with optional labels, and feeding them to
 * a model. Pixels stay in their stored type and layout; conversion to the model's input happens in
 * bounded batches at forward time. */
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

/* Bytes of a file or buffer, gunzipped when needed; *owned is what to free (may be NULL). */
static vitq_status unpack(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                          uint8_t **owned, const uint8_t **bytes, size_t *n) {
    *owned = NULL;
    if (vitq_i_is_gzip(data, size)) {
        vitq_status st = vitq_i_gzip_decompress(a, data, size, name, owned, n);
        *bytes = *owned;
        return st;
    }
    *bytes = data;
    *n = size;
    return VITQ_OK;
}

static int is_npy(const uint8_t *b, size_t n) { return n >= 6 && b[0] == 0x93 && memcmp(b + 1, "NUMPY", 5) == 0; }

static vitq_status parse_array(const uint8_t *b, size_t n, const char *name, vitq_i_array *arr) {
    return is_npy(b, n) ? vitq_i_npy_parse(b, n, name, arr) : vitq_i_idx_parse(b, n, name, arr);
}

static int is_channel_count(uint64_t c) { return c == 1 || c == 3 || c == 4; }

/* Shape -> count, height, width, channels, layout. */
static vitq_status describe_images(const vitq_i_array *arr, const char *name, vitq_dataset_info *info) {
    char shape[96];
    vitq_i_shape_str(arr, shape, sizeof shape);
    if (arr->elem != VITQ_I_ELEM_U8 && arr->elem != VITQ_I_ELEM_F32)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: images of type %s: only uint8 pixels or float32 model inputs", name,
                           vitq_i_elem_name(arr->elem));
    const uint64_t *s = arr->shape;
    info->count = s[0];
    if (arr->ndim == 3) {
        info->height = (int32_t)s[1];
        info->width = (int32_t)s[2];
        info->channels = 1;
        info->layout = VITQ_PIXELS_NHWC;
    } else if (arr->ndim == 4) {
        /* NCHW when the channel axis is unambiguous there (PyTorch's order wins a tie such as
         * [N,3,3,3]); NHWC when only the last axis can be channels. */
        int nchw = is_channel_count(s[1]) && s[2] == s[3];
        int nhwc = is_channel_count(s[3]) && s[1] == s[2];
        if (!nchw && !nhwc)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s is neither [N,C,S,S] nor [N,S,S,C] with C in 1,3,4",
                               name, shape);
        info->layout = nchw ? VITQ_PIXELS_NCHW : VITQ_PIXELS_NHWC;
        info->channels = (int32_t)(nchw ? s[1] : s[3]);
        info->height = (int32_t)(nchw ? s[2] : s[1]);
        info->width = (int32_t)(nchw ? s[3] : s[2]);
    } else {
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s must have 3 ([N,H,W]) or 4 dimensions", name, shape);
    }
    if (info->count == 0 || info->height <= 0 || info->width <= 0 || s[1] > 1u << 20 || s[2] > 1u << 20)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: image array %s is empty or too large", name, shape);
    info->dtype = arr->elem == VITQ_I_ELEM_U8 ? VITQ_DTYPE_U8 : VITQ_DTYPE_F32;
    return VITQ_OK;
}

static vitq_status read_labels(vitq_dataset *ds, const uint8_t *data, size_t size, const char *name) {
    uint8_t *owned;
    const uint8_t *bytes;
    size_t n;
    vitq_i_array arr;
    vitq_status st = unpack(&ds->alloc, data, size, name, &owned, &bytes, &n);
    if (!st) st = parse_array(bytes, n, name, &arr);
    if (!st && (arr.ndim != 1 || arr.shape[0] != ds->info.count))
        st = vitq_i_fail(VITQ_ERR_SHAPE, "%s: %llu labels (rank %d) for %llu images", name,
                         (unsigned long long)(arr.ndim ? arr.shape[0] : 1), arr.ndim,
                         (unsigned long long)ds->info.count);
    if (!st) {
        ds->labels = vitq_i_alloc_array(&ds->alloc, (size_t)arr.shape[0], sizeof(int32_t));
        if (!ds->labels) st = vitq_i_oom("labels", (size_t)arr.shape[0] * sizeof(int32_t));
    }
    for (size_t i = 0; !st && i < (size_t)ds->info.count; i++) {
        int64_t v;
        switch (arr.elem) {
        case VITQ_I_ELEM_U8: v = arr.data[i]; break;
        case VITQ_I_ELEM_I32: { int32_t x; memcpy(&x, arr.data + 4 * i, 4); v = x; break; }
        case VITQ_I_ELEM_I64: memcpy(&v, arr.data + 8 * i, 8); break;
        case VITQ_I_ELEM_U16: { uint16_t x; memcpy(&x, arr.data + 2 * i, 2); v = x; break; }
        default:
            st = vitq_i_fail(VITQ_ERR_DTYPE, "%s: labels of type %s: use uint8, uint16, int32 or int64", name,
                             vitq_i_elem_name(arr.elem));
            v = 0;
        }
        if (!st && (v < 0 || v > INT32_MAX))
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: label %zu is %lld", name, i, (long long)v);
        if (!st) ds->labels[i] = (int32_t)v;
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
    const uint8_t *bytes = NULL;
    size_t n = 0;
    vitq_i_array arr;
    if (!st) st = unpack(&a, images, images_size, images_name, &ds->raw, &bytes, &n);
    if (!st && !ds->raw) { /* keep our own copy: the caller's buffer may go away */
        ds->raw = vitq_i_alloc(&a, n);
        if (!ds->raw) st = vitq_i_oom(images_name, n);
        else memcpy(ds->raw, bytes, n);
        bytes = ds->raw;
    }
    if (!st) st = parse_array(bytes, n, images_name, &arr);
    if (!st) st = describe_images(&arr, images_name, &ds->info);
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

const char *vitq_i_dataset_name(const vitq_dataset *ds) { return ds->name; }
