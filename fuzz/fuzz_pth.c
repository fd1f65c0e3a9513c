/* Fuzz target: the torch.save checkpoint reader (src/io/pth.h: zip directory, non-executing pickle
 * machine, state-dict choice) on raw bytes, so the corpus holds real .pth files. Beyond no crash and
 * no leak: a parsed file's tensors are views inside the input or copies in the owned block, with byte
 * counts matching shape x element size, names that look up to themselves, and floats that convert;
 * and the same input with one allocation failing (chosen from the input) fails cleanly. */
#include "fuzz_common.h"
#include "io/pth.h"

/* Every failure is a known status (VITQ_ERR_UNSAFE included) with a message. */
static void check_status(vitq_status st) {
    const char *e = vitq_last_error();
    FUZZ_ASSERT(e != NULL);
    if (st == VITQ_OK) return;
    FUZZ_ASSERT(st > VITQ_OK && st <= VITQ_ERR_UNSAFE);
    FUZZ_ASSERT(strlen(e) > 0);
}

static void check_tensors(const vitq_i_safetensors *st, const uint8_t *data, size_t size) {
    FUZZ_ASSERT(st->count > 0 && st->name != NULL && st->meta_count == 0);
    unsigned sum = 0;
    for (size_t i = 0; i < st->count; i++) {
        const vitq_i_st_tensor *t = &st->tensors[i];
        const vitq_i_array *a = &t->array;
        size_t esize = vitq_i_elem_size(a->elem);
        FUZZ_ASSERT(t->name && esize > 0 && a->ndim >= 0 && a->ndim <= VITQ_I_MAX_DIMS);
        FUZZ_ASSERT(vitq_i_st_find(st, t->name) == t);
        FUZZ_ASSERT(vitq_i_array_count(a) * esize == a->nbytes);
        int view = a->data >= data && a->data <= data + size;
        FUZZ_ASSERT(view ? a->nbytes <= (size_t)(data + size - a->data) : (st->owned && a->data >= st->owned));
        for (size_t b = 0; b < a->nbytes; b++) sum += a->data[b]; /* ASan sees any byte out of bounds */
        if (a->elem == VITQ_I_ELEM_F32 || a->elem == VITQ_I_ELEM_F16 || a->elem == VITQ_I_ELEM_BF16) {
            size_t count = a->nbytes / esize;
            float *f = malloc(count ? count * sizeof *f : 1);
            FUZZ_ASSERT(f && vitq_i_st_to_f32(st, t, f) == VITQ_OK);
            free(f);
        }
    }
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_alloc_state state;
    vitq_allocator a = fuzz_allocator(&state, 0);
    vitq_i_safetensors st;
    memset(&st, 0xA5, sizeof st); /* the parser must zero it on failure, whatever it held */
    vitq_i_error_clear();
    vitq_status s = vitq_i_pth_parse(&a, data, size, (size & 1) ? "fuzz.pth" : NULL, &st);
    check_status(s);
    if (s != VITQ_OK) FUZZ_ASSERT(st.tensors == NULL && st.count == 0 && st.strings == NULL && st.owned == NULL);
    else check_tensors(&st, data, size);
    vitq_i_st_free(&st);
    FUZZ_ASSERT(state.live == 0);
    /* Again with one allocation failing: a clean VITQ_ERR_OUT_OF_MEMORY, nothing leaked. */
    unsigned long calls = state.calls;
    if (calls > 0) {
        unsigned long k = 1 + (size ? data[size / 2] : 0) % calls;
        a = fuzz_allocator(&state, k);
        vitq_i_error_clear();
        vitq_status again = vitq_i_pth_parse(&a, data, size, "fuzz.pth", &st);
        check_status(again);
        FUZZ_ASSERT(again == VITQ_ERR_OUT_OF_MEMORY);
        vitq_i_st_free(&st);
        FUZZ_ASSERT(state.live == 0);
    }
    return 0;
}
