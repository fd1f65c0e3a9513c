/* IDX parser: valid image and label files built in memory, every header error with its status, and
 * the real Fashion-MNIST labels when present. */
#include <stdint.h>

#include "core/core.h"
#include "harness.h"
#include "io/idx.h"
#include "io/inflate.h"

/* An IDX file of `ndim` dims (big-endian) followed by `data_n` bytes i*7 mod 256; returns its size. */
static size_t make_idx(uint8_t *buf, uint8_t type, uint8_t ndim, const uint32_t *dims, size_t data_n) {
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = type;
    buf[3] = ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    size_t off = 4 + 4 * (size_t)ndim;
    for (size_t i = 0; i < data_n; i++) buf[off + i] = (uint8_t)(i * 7);
    return off + data_n;
}

static void test_images_3d(void) {
    uint8_t buf[256];
    const uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(buf, 0x08, 3, dims, 24);
    vitq_i_array a;
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "img.idx", &a), VITQ_OK);
    CHECK(a.elem == VITQ_I_ELEM_U8 && a.ndim == 3);
    CHECK(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4);
    CHECK(a.data == buf + 16 && a.nbytes == 24);
    CHECK(a.data[5] == 35 && a.data[23] == (uint8_t)(23 * 7));
    CHECK(vitq_i_array_count(&a) == 24);
}

static void test_labels_and_4d(void) {
    uint8_t buf[256];
    const uint32_t one[1] = {10};
    size_t n = make_idx(buf, 0x08, 1, one, 10);
    vitq_i_array a;
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "labels.idx", &a), VITQ_OK);
    CHECK(a.ndim == 1 && a.shape[0] == 10 && a.nbytes == 10 && a.data == buf + 8);
    const uint32_t four[4] = {2, 2, 2, 3};
    n = make_idx(buf, 0x08, 4, four, 24);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "rgb.idx", &a), VITQ_OK);
    CHECK(a.ndim == 4 && a.shape[3] == 3 && a.nbytes == 24 && a.data == buf + 20);
    const uint32_t empty[3] = {0, 28, 28};
    n = make_idx(buf, 0x08, 3, empty, 0);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "empty.idx", &a), VITQ_OK);
    CHECK(a.shape[0] == 0 && a.nbytes == 0);
}

static void test_wrong_type(void) {
    uint8_t buf[64];
    const uint32_t dims[1] = {4};
    vitq_i_array a;
    size_t n = make_idx(buf, 0x0D, 1, dims, 16);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "float.idx", &a), VITQ_ERR_DTYPE);
    CHECK(strstr(vitq_last_error(), "float.idx") && strstr(vitq_last_error(), "0x0d"));
    n = make_idx(buf, 0x09, 1, dims, 4);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "s8.idx", &a), VITQ_ERR_DTYPE);
    CHECK(strstr(vitq_last_error(), "0x09") != NULL);
    n = make_idx(buf, 0x42, 1, dims, 4);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "odd.idx", &a), VITQ_ERR_DTYPE);
}

static void test_bad_header(void) {
    uint8_t buf[64];
    const uint32_t dims[5] = {1, 1, 1, 1, 1};
    vitq_i_array a;
    size_t n = make_idx(buf, 0x08, 1, dims, 1);
    buf[1] = 3;
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "magic.idx", &a), VITQ_ERR_FORMAT);
    CHECK(strstr(vitq_last_error(), "magic.idx") != NULL);
    n = make_idx(buf, 0x08, 0, dims, 1);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "ndim0.idx", &a), VITQ_ERR_FORMAT);
    n = make_idx(buf, 0x08, 5, dims, 1);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "ndim5.idx", &a), VITQ_ERR_FORMAT);
    /* Dimensions whose product overflows size_t. */
    const uint32_t huge[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = make_idx(buf, 0x08, 4, huge, 0);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "huge.idx", &a), VITQ_ERR_FORMAT);
    CHECK_STATUS(vitq_i_idx_parse(NULL, 0, "null.idx", &a), VITQ_ERR_TRUNCATED);
    CHECK_STATUS(vitq_i_idx_parse(buf, n, "x", NULL), VITQ_ERR_INVALID_ARGUMENT);
}

static void test_truncated_and_trailing(void) {
    uint8_t buf[128];
    const uint32_t dims[3] = {2, 3, 4};
    vitq_i_array a;
    size_t n = make_idx(buf, 0x08, 3, dims, 24);
    /* Every shorter length: magic, dims or data cut short. */
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, buf, k);
        CHECK_STATUS(vitq_i_idx_parse(cut, k, "cut.idx", &a), VITQ_ERR_TRUNCATED);
        free(cut);
    }
    CHECK_STATUS(vitq_i_idx_parse(buf, n - 1, "short.idx", &a), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "short.idx") && strstr(vitq_last_error(), "23"));
    CHECK_STATUS(vitq_i_idx_parse(buf, n + 3, "long.idx", &a), VITQ_ERR_FORMAT);
    CHECK(strstr(vitq_last_error(), "long.idx") != NULL);
}

/* Real labels: gunzip, parse, 10000 labels in 0..9, each class 1000 times. */
static void test_fashion_labels(void) {
    const char *path = "data/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (!vitq_i_path_exists(path)) path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (!vitq_i_path_exists(path)) {
        SKIP("Fashion-MNIST labels not found");
        return;
    }
    vitq_allocator al;
    vitq_i_allocator_resolve(NULL, &al);
    uint8_t *gz = NULL, *raw = NULL;
    size_t gz_n = 0, raw_n = 0;
    CHECK_STATUS(vitq_i_read_file(&al, path, &gz, &gz_n), VITQ_OK);
    CHECK_STATUS(vitq_i_gzip_decompress(&al, gz, gz_n, path, &raw, &raw_n), VITQ_OK);
    vitq_i_array a;
    if (raw) {
        CHECK_STATUS(vitq_i_idx_parse(raw, raw_n, path, &a), VITQ_OK);
        CHECK(a.ndim == 1 && a.shape[0] == 10000);
        int counts[10] = {0}, bad = 0;
        for (size_t i = 0; i < a.nbytes; i++) {
            if (a.data[i] < 10) counts[a.data[i]]++;
            else bad++;
        }
        CHECK(bad == 0);
        for (int c = 0; c < 10; c++) CHECK(counts[c] == 1000);
    }
    vitq_i_free(&al, raw);
    vitq_i_free(&al, gz);
}

int main(void) {
    RUN(test_images_3d);
    RUN(test_labels_and_4d);
    RUN(test_wrong_type);
    RUN(test_bad_header);
    RUN(test_truncated_and_trailing);
    RUN(test_fashion_labels);
    HARNESS_EXIT();
}
