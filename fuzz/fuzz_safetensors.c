/* Fuzz target: the safetensors reader (src/io/safetensors.h) on raw bytes. Beyond no crash and no leak,
 * a parsed file must keep the promises of the header: every tensor view lies inside the data section,
 * its byte count matches shape x element size, the data section ends where the buffer ends, names look
 * up to themselves, and floats convert (F32, F16, BF16) or fail with VITQ_ERR_DTYPE. */
#include "fuzz_common.h"
#include "io/safetensors.h"

static void check_tensor(const vitq_i_safetensors *st, const vitq_i_st_tensor *t, const uint8_t *buf, size_t n) {
    const vitq_i_array *a = &t->array;
    FUZZ_ASSERT(t->name != NULL);
    FUZZ_ASSERT(a->ndim >= 0 && a->ndim <= VITQ_I_MAX_DIMS);
    FUZZ_ASSERT(t->begin <= t->end && t->end <= st->data_size);
    FUZZ_ASSERT(a->nbytes == t->end - t->begin);
    FUZZ_ASSERT(vitq_i_array_count(a) * vitq_i_elem_size(a->elem) == a->nbytes);
    /* No wrapped product: in a non-empty tensor no dimension exceeds the element count. */
    for (int d = 0; d < a->ndim && a->nbytes; d++) FUZZ_ASSERT(a->shape[d] <= a->nbytes / vitq_i_elem_size(a->elem));
    if (a->nbytes) FUZZ_ASSERT(a->data == st->data + t->begin && a->data >= buf && a->data + a->nbytes <= buf + n);
    FUZZ_ASSERT(vitq_i_st_find(st, t->name) == t);
    char shape[256];
    FUZZ_ASSERT(vitq_i_shape_str(a, shape, sizeof shape) == shape && strlen(shape) < sizeof shape);
    size_t count = (size_t)vitq_i_array_count(a);
    float *f = malloc(count ? count * sizeof *f : 1);
    FUZZ_ASSERT(f);
    vitq_i_error_clear();
    vitq_status s = vitq_i_st_to_f32(st, t, f);
    fuzz_check_status(s);
    int floaty = a->elem == VITQ_I_ELEM_F32 || a->elem == VITQ_I_ELEM_F16 || a->elem == VITQ_I_ELEM_BF16;
    FUZZ_ASSERT(floaty ? s == VITQ_OK : s == VITQ_ERR_DTYPE);
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vitq_i_safetensors st;
    memset(&st, 0xA5, sizeof st); /* the parser must zero it on failure, whatever it held */
    vitq_i_error_clear();
    vitq_status s = vitq_i_st_parse(NULL, data, size, (size & 1) ? "fuzz.safetensors" : NULL, &st);
    fuzz_check_status(s);
    if (s != VITQ_OK) {
        FUZZ_ASSERT(st.tensors == NULL && st.count == 0 && st.strings == NULL && st.name == NULL);
        vitq_i_st_free(&st);
        return 0;
    }
    FUZZ_ASSERT(size >= 8 + st.header_size && st.data == data + 8 + st.header_size);
    FUZZ_ASSERT(st.data_size == size - 8 - st.header_size);
    for (size_t i = 0; i < st.count; i++) check_tensor(&st, &st.tensors[i], data, size);
    for (size_t i = 0; i < st.meta_count; i++) {
        FUZZ_ASSERT(st.meta_keys[i] && st.meta_values[i]);
        const char *v = vitq_i_st_meta(&st, st.meta_keys[i]);
        FUZZ_ASSERT(v != NULL && strcmp(v, st.meta_values[i]) == 0);
    }
    FUZZ_ASSERT(vitq_i_st_find(&st, "\x01no such tensor") == NULL);
    vitq_i_st_free(&st);
    FUZZ_ASSERT(st.count == 0 && st.tensors == NULL);
    return 0;
}
