/* Fuzz target: the .npy reader (src/io/npy.h). A parsed array must lie inside the buffer with a byte
 * count equal to shape x element size (no wrapped product), and writing a header for it with
 * vitq_i_npy_write_header then parsing header + data must give the same array back. */
#include "fuzz_common.h"
#include "io/npy.h"

static void check_array(const vitq_i_array *a, const uint8_t *buf, size_t n) {
    size_t es = vitq_i_elem_size(a->elem);
    FUZZ_ASSERT(es > 0 && a->ndim >= 0 && a->ndim <= VITQ_I_MAX_DIMS);
    FUZZ_ASSERT(vitq_i_array_count(a) * es == a->nbytes);
    for (int d = 0; d < a->ndim && a->nbytes; d++) FUZZ_ASSERT(a->shape[d] <= a->nbytes / es);
    if (a->nbytes) FUZZ_ASSERT(a->data >= buf && a->data + a->nbytes <= buf + n);
    if (a->nbytes) FUZZ_ASSERT(a->data + a->nbytes == buf + n); /* extra bytes are an error */
}

static void check_round_trip(const vitq_i_array *a) {
    char head[VITQ_I_NPY_HEADER_MAX];
    size_t len = 0;
    vitq_i_error_clear();
    vitq_status s = vitq_i_npy_write_header(a->elem, a->ndim, a->shape, head, sizeof head, &len);
    fuzz_check_status(s);
    FUZZ_ASSERT(s == VITQ_OK && len <= sizeof head && len % 64 == 0);
    uint8_t *file = malloc(len + a->nbytes + 1);
    FUZZ_ASSERT(file);
    memcpy(file, head, len);
    if (a->nbytes) memcpy(file + len, a->data, a->nbytes);
    vitq_i_array b;
    vitq_i_error_clear();
    s = vitq_i_npy_parse(file, len + a->nbytes, "round-trip.npy", &b);
    fuzz_check_status(s);
    if (s != VITQ_OK) fprintf(stderr, "fuzz: the header written for a parsed array does not parse: %s\n",
                              vitq_last_error());
    FUZZ_ASSERT(s == VITQ_OK);
    FUZZ_ASSERT(b.elem == a->elem && b.ndim == a->ndim && b.nbytes == a->nbytes);
    FUZZ_ASSERT(memcmp(b.shape, a->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0);
    FUZZ_ASSERT(!a->nbytes || memcmp(b.data, a->data, a->nbytes) == 0);
    free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vitq_i_array a;
    vitq_i_error_clear();
    vitq_status s = vitq_i_npy_parse(data, size, "fuzz.npy", &a);
    fuzz_check_status(s);
    if (s != VITQ_OK) return 0;
    check_array(&a, data, size);
    check_round_trip(&a);
    return 0;
}
