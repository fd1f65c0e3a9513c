/* Element-type table shared by every reader. */
#include <stdio.h>

#include "core/core.h"
#include "io/array.h"

typedef struct {
    const char *name;
    size_t size;
} elem_info;

static const elem_info elem_table[] = {
    [VITQ_I_ELEM_INVALID] = {"?", 0}, [VITQ_I_ELEM_U8] = {"U8", 1},     [VITQ_I_ELEM_I8] = {"I8", 1},
    [VITQ_I_ELEM_BOOL] = {"BOOL", 1}, [VITQ_I_ELEM_I16] = {"I16", 2},   [VITQ_I_ELEM_U16] = {"U16", 2},
    [VITQ_I_ELEM_F16] = {"F16", 2},   [VITQ_I_ELEM_BF16] = {"BF16", 2}, [VITQ_I_ELEM_I32] = {"I32", 4},
    [VITQ_I_ELEM_U32] = {"U32", 4},   [VITQ_I_ELEM_F32] = {"F32", 4},   [VITQ_I_ELEM_I64] = {"I64", 8},
    [VITQ_I_ELEM_U64] = {"U64", 8},   [VITQ_I_ELEM_F64] = {"F64", 8},
};

static const elem_info *lookup(vitq_i_elem e) {
    if ((int)e < 0 || (size_t)e >= sizeof elem_table / sizeof elem_table[0]) return &elem_table[0];
    return &elem_table[e];
}

size_t vitq_i_elem_size(vitq_i_elem elem) { return lookup(elem)->size; }

const char *vitq_i_elem_name(vitq_i_elem elem) { return lookup(elem)->name; }

uint64_t vitq_i_array_count(const vitq_i_array *a) {
    size_t n;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] == 0) return 0; /* empty whatever the other dimensions say */
    /* A parsed array's count fits in memory (its parser checked); anything else saturates. */
    return vitq_i_shape_count_u64(a->ndim, a->shape, SIZE_MAX, &n) ? n : UINT64_MAX;
}

const char *vitq_i_shape_str(const vitq_i_array *a, char *buf, size_t cap) {
    size_t used = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < a->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? "," : "",
                                 (unsigned long long)a->shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}
