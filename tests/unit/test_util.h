/* Helpers shared by the model tests: reading .npy fixtures and comparing logits with the golden
 * tolerance max|got - want| <= 1e-4 * max|want| + 1e-5. */
#ifndef VITQ_TEST_UTIL_H
#define VITQ_TEST_UTIL_H

#include "core/core.h"
#include "harness.h"
#include "io/npy.h"

/* Whole .npy file as float32 (F32 arrays only); NULL when missing. *count = number of elements. */
static inline float *load_npy_f32(const char *path, uint64_t *rows, uint64_t *cols) {
    vitq_allocator a;
    uint8_t *buf;
    size_t n;
    vitq_i_array arr;
    vitq_i_allocator_resolve(NULL, &a);
    if (vitq_i_read_file(&a, path, &buf, &n)) return NULL;
    float *out = NULL;
    if (vitq_i_npy_parse(buf, n, path, &arr) == VITQ_OK && arr.elem == VITQ_I_ELEM_F32) {
        out = malloc(arr.nbytes + 4);
        memcpy(out, arr.data, arr.nbytes);
        *rows = arr.shape[0];
        *cols = arr.ndim > 1 ? vitq_i_array_count(&arr) / arr.shape[0] : 1;
    }
    vitq_i_free(&a, buf);
    return out;
}

/* Integer .npy (u8/u16/i32/i64) as int64; NULL when missing. */
static inline int64_t *load_npy_int(const char *path, uint64_t *count) {
    vitq_allocator a;
    uint8_t *buf;
    size_t n;
    vitq_i_array arr;
    vitq_i_allocator_resolve(NULL, &a);
    if (vitq_i_read_file(&a, path, &buf, &n)) return NULL;
    int64_t *out = NULL;
    if (vitq_i_npy_parse(buf, n, path, &arr) == VITQ_OK) {
        *count = vitq_i_array_count(&arr);
        out = malloc(*count * sizeof(int64_t) + 8);
        size_t es = vitq_i_elem_size(arr.elem);
        for (uint64_t i = 0; i < *count; i++) {
            int64_t v = 0;
            if (arr.elem == VITQ_I_ELEM_U8) v = arr.data[i];
            else if (arr.elem == VITQ_I_ELEM_U16) { uint16_t x; memcpy(&x, arr.data + i * es, 2); v = x; }
            else if (arr.elem == VITQ_I_ELEM_I32) { int32_t x; memcpy(&x, arr.data + i * es, 4); v = x; }
            else if (arr.elem == VITQ_I_ELEM_I64) memcpy(&v, arr.data + i * es, 8);
            out[i] = v;
        }
    }
    vitq_i_free(&a, buf);
    return out;
}

/* Golden comparison; prints the worst element on failure. Returns 1 when within tolerance. */
static inline int logits_match(const char *what, const float *got, const float *want, size_t n) {
    double max_want = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) max_want = fabs(want[i]) > max_want ? fabs(want[i]) : max_want;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst || d != d) worst = d, at = i;
    }
    double tol = 1e-4 * max_want + 1e-5;
    if (!(worst <= tol)) {
        printf("    %s: max |logit - golden| = %.3g at %zu (got %.7g, want %.7g) > tolerance %.3g\n", what, worst, at,
               (double)got[at], (double)want[at], tol);
        harness_check_failures++;
        return 0;
    }
    printf("    %s: max |logit - golden| = %.3g (tolerance %.3g)\n", what, worst, tol);
    return 1;
}

/* Save quantized model q to memory and load it again with `execution` (a vitq_execution). */
static inline vitq_model *reload_quantized(const vitq_model *q, int32_t execution) {
    size_t size = 0;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    void *bytes = malloc(size);
    if (!bytes) return NULL;
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = execution;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "quantized", &o, &m), VITQ_OK);
    free(bytes);
    return m;
}

#endif
