/* Fuzz target: vitq_dataset_load_memory, the public reader of image and label files (IDX or .npy, plain
 * or gzip; format detection, shape rules, label types), then vitq_model_forward_dataset on a small fixed
 * model when the images fit it (uint8 preprocessing, NHWC to NCHW).
 * Input: bytes 0-1 little-endian length L of the images file, L bytes of it, then the labels file (none
 * when nothing follows). The model is tests/fixtures/models/odd-vit-timm-tanh-bf16 (16x16, 1 channel, 3 classes),
 * read once from the working directory; fuzz/run.sh runs targets from the repository root. */
#include "fuzz_common.h"

static vitq_model *fixed_model;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (vitq_model_load_file("tests/fixtures/models/odd-vit-timm-tanh-bf16", NULL, &fixed_model) != VITQ_OK)
        fprintf(stderr, "fuzz_dataset: no fixed model (%s): forward passes are not fuzzed\n", vitq_last_error());
    return 0;
}

static void check_dataset(const vitq_dataset *ds) {
    vitq_dataset_info info;
    vitq_dataset_info_init(&info);
    FUZZ_ASSERT(vitq_dataset_get_info(ds, &info) == VITQ_OK);
    FUZZ_ASSERT(info.count > 0 && info.height > 0 && info.width > 0);
    FUZZ_ASSERT(info.channels == 1 || info.channels == 3 || info.channels == 4);
    FUZZ_ASSERT(info.dtype == VITQ_DTYPE_U8 || info.dtype == VITQ_DTYPE_F32);
    int32_t label = -1;
    vitq_i_error_clear();
    vitq_status st = vitq_dataset_label(ds, info.count - 1, &label);
    fuzz_check_status(st);
    FUZZ_ASSERT(info.has_labels ? st == VITQ_OK && label >= 0 : st == VITQ_ERR_BAD_STATE);
    FUZZ_ASSERT(vitq_dataset_label(ds, info.count, &label) != VITQ_OK);
    if (!fixed_model) return;
    size_t n = info.count < 3 ? (size_t)info.count : 3;
    float logits[3 * 3];
    vitq_i_error_clear();
    st = vitq_model_forward_dataset(fixed_model, ds, info.count - n, n, logits);
    fuzz_check_status(st);
    int fits = info.height == 16 && info.width == 16 && info.channels == 1, bad_label = 0;
    for (size_t i = 0; info.has_labels && i < n; i++) {
        FUZZ_ASSERT(vitq_dataset_label(ds, info.count - n + i, &label) == VITQ_OK);
        bad_label |= label >= 3; /* the model's classes */
    }
    /* float images may hold NaN or infinity, which forward refuses; labels must name a class */
    int ok = !fits ? st == VITQ_ERR_SHAPE
                   : bad_label ? st == VITQ_ERR_OUT_OF_RANGE
                               : st == VITQ_OK || (info.dtype == VITQ_DTYPE_F32 && st == VITQ_ERR_NON_FINITE);
    if (!ok)
        fprintf(stderr, "fuzz: forward_dataset on %llu images %dx%dx%d (dtype %d, layout %d): %s (%s)\n",
                (unsigned long long)info.count, (int)info.height, (int)info.width, (int)info.channels, (int)info.dtype,
                (int)info.layout, vitq_status_name(st), vitq_last_error());
    FUZZ_ASSERT(ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2;
    size -= 2;
    if (n > size) n = size;
    fuzz_alloc_state state;
    vitq_allocator a = fuzz_allocator(&state, 0);
    vitq_dataset *ds = NULL;
    vitq_i_error_clear();
    vitq_status st = vitq_dataset_load_memory(data, n, size > n ? data + n : NULL, size - n, &a, &ds);
    fuzz_check_status(st);
    FUZZ_ASSERT((st == VITQ_OK) == (ds != NULL));
    if (ds) {
        check_dataset(ds);
        vitq_dataset_free(ds);
    }
    FUZZ_ASSERT(state.live == 0);
    return 0;
}
