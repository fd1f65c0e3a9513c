/* Checks of vitq_tensor_view. */
#include "core/abi.h"
#include "quant/view.h"

vitq_status vitq_i_view_check(const vitq_tensor_view *v, int64_t channels, const char *what) {
    if (!v) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: view is NULL", what);
    vitq_status st = vitq_i_check_struct_size(v->struct_size, VITQ_I_V1_TENSOR_VIEW, what, "vitq_tensor_view");
    if (st) return st;
    if (!v->data) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: view data is NULL", what);
    if (v->outer < 1 || v->channels < 1 || v->inner < 1)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: view has outer %lld, channels %lld, inner %lld (all must be >= 1)",
                           what, (long long)v->outer, (long long)v->channels, (long long)v->inner);
    if (v->channels > INT64_MAX / v->inner || (v->outer > 1 && v->outer_stride < v->channels * v->inner))
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: view outer_stride %lld is less than channels x inner = %lld", what,
                           (long long)v->outer_stride, (long long)(v->channels * v->inner));
    if (channels > 0 && v->channels != channels)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: view has %lld channels, the quantizer was set up for %lld", what,
                           (long long)v->channels, (long long)channels);
    return VITQ_OK;
}
