/* Checked arithmetic on sizes and counts (see core.h). Written without compiler builtins so that
 * every C11 compiler, including firmware toolchains, gets the same answers. */
#include "core/core.h"

int vitq_i_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int vitq_i_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

int vitq_i_mul3_size(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return vitq_i_mul_size(a, b, &ab) && vitq_i_mul_size(ab, c, out);
}

int vitq_i_mul_i64(int64_t a, int64_t b, int64_t *out) {
    if (a == 0 || b == 0) {
        *out = 0;
        return 1;
    }
    /* Compare magnitudes in unsigned arithmetic, where INT64_MIN's magnitude is representable. */
    uint64_t ua = a < 0 ? (uint64_t)0 - (uint64_t)a : (uint64_t)a;
    uint64_t ub = b < 0 ? (uint64_t)0 - (uint64_t)b : (uint64_t)b;
    int negative = (a < 0) != (b < 0);
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (ua > limit / ub) return 0;
    uint64_t mag = ua * ub;
    if (negative)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 1;
}

int vitq_i_add_i64(int64_t a, int64_t b, int64_t *out) {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return 0;
    *out = a + b;
    return 1;
}

int vitq_i_shape_count_u64(int ndim, const uint64_t *shape, uint64_t limit, size_t *out) {
    if (ndim < 0 || limit > SIZE_MAX) return 0;
    uint64_t count = 1;
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] > limit) return 0;
        empty |= shape[i] == 0;
    }
    if (empty) { /* [2^40, 2^40, 0] holds nothing: no product to overflow */
        *out = 0;
        return 1;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] > limit) return 0;
        if (shape[i] != 0 && count > limit / shape[i]) return 0;
        count *= shape[i];
    }
    *out = (size_t)count;
    return 1;
}

int vitq_i_shape_count_i64(int ndim, const int64_t *shape, uint64_t limit, size_t *out) {
    if (ndim < 0) return 0;
    uint64_t dims[16];
    if (ndim > 16) return 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return 0;
        dims[i] = (uint64_t)shape[i];
    }
    return vitq_i_shape_count_u64(ndim, dims, limit, out);
}
