/* Public API joining datasets and models: the logits of a dataset's images. */
#include "api/model.h"
#include "data/dataset.h"

/* Images per forward pass: enough to keep the kernels busy, few enough to bound the batch buffer. */
#define FORWARD_BATCH 64

vitq_status vitq_model_forward_dataset(const vitq_model *handle, const vitq_dataset *ds, uint64_t first, size_t n,
                                       float *logits) {
    if (!handle || !ds || !logits)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_forward_dataset: NULL argument");
    const vitq_i_net *model = handle->net;
    const vitq_model_info *mi = &model->info;
    size_t per = (size_t)mi->in_channels * (size_t)mi->image_size * (size_t)mi->image_size;
    size_t batch = n < FORWARD_BATCH ? n : FORWARD_BATCH;
    vitq_status st = vitq_i_dataset_images(model, ds, first, n, NULL); /* range and shape checks */
    if (!st) st = vitq_i_dataset_check_labels(ds, first, n, mi->num_classes);
    if (st || n == 0) return st;
    size_t elems = 0, bytes = 0;
    float *input = vitq_i_mul_size(batch, per, &elems) ? vitq_i_alloc_array(&model->alloc, elems, sizeof(float)) : NULL;
    if (!input) return vitq_i_oom("dataset batch", vitq_i_mul_size(elems, sizeof(float), &bytes) ? bytes : SIZE_MAX);
    for (size_t done = 0; !st && done < n; done += batch) {
        size_t count = n - done < batch ? n - done : batch;
        vitq_pixel_layout layout;
        const uint8_t *pixels = handle->intonly ? vitq_i_dataset_pixels(ds, first + done, &layout) : NULL;
        if (pixels) /* an integer-only model takes the stored bytes as they are */
            st = vitq_model_forward_u8(handle, pixels, count, layout, logits + done * (size_t)mi->num_classes);
        else st = vitq_i_dataset_images(model, ds, first + done, count, input);
        if (!st && !pixels) st = vitq_model_forward(handle, input, count, logits + done * (size_t)mi->num_classes);
        if (st == VITQ_ERR_NON_FINITE) vitq_i_error_prefix("%s: images from %llu", vitq_i_dataset_name(ds), (unsigned long long)(first + done));
        if (!st)
            st = vitq_i_progress_step(&handle->progress, "forward", (int64_t)(done + count), (int64_t)n,
                                      "vitq_model_forward_dataset");
    }
    vitq_i_free(&model->alloc, input);
    return st;
}
