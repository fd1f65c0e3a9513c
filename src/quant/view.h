/* Checks and traversal of vitq_tensor_view (see vitq.h). */
#ifndef VITQ_QUANT_VIEW_H
#define VITQ_QUANT_VIEW_H

#include "core/core.h"

/* VITQ_OK when `v` is usable by a quantizer configured for `channels` channels (0: any), else
 * VITQ_ERR_INVALID_ARGUMENT / VITQ_ERR_SHAPE / VITQ_ERR_ABI_MISMATCH naming `what`. */
vitq_status vitq_i_view_check(const vitq_tensor_view *v, int64_t channels, const char *what);

/* Number of elements of the view. */
static inline int64_t vitq_i_view_count(const vitq_tensor_view *v) { return v->outer * v->channels * v->inner; }

/* Pointer to the `inner` consecutive elements of slice o, channel c. */
static inline float *vitq_i_view_at(const vitq_tensor_view *v, int64_t o, int64_t c) {
    return v->data + o * v->outer_stride + c * v->inner;
}

/* A view of `rows` x `cols` floats (row-major, row stride `stride`) whose channels are the columns. */
static inline vitq_tensor_view vitq_i_view_columns(float *data, int64_t rows, int64_t cols, int64_t stride) {
    vitq_tensor_view v = {sizeof(vitq_tensor_view), data, rows, cols, 1, stride};
    return v;
}

/* A weight [out][in] whose channels are the rows. */
static inline vitq_tensor_view vitq_i_view_rows(float *data, int64_t rows, int64_t cols) {
    vitq_tensor_view v = {sizeof(vitq_tensor_view), data, 1, rows, cols, rows * cols};
    return v;
}

#endif
