/* Public API of quantized models: point descriptions and saving. */
#include <string.h>

#include "api/model.h"
#include "core/abi.h"

vitq_status vitq_model_point_info(const vitq_model *model, int32_t index, vitq_point_info *info) {
    if (!model || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_point_info: NULL argument");
    if (!model->quant || index < 0 || index >= model->quant->count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_point_info: index %d, the model has %d points",
                           (int)index, model->quant ? model->quant->count : 0);
    vitq_point_info full;
    vitq_point_info_init(&full);
    vitq_i_qmodel_point_info(model->quant, index, &full);
    return vitq_i_point_info_out(&full, info, "vitq_model_point_info");
}

void vitq_nonlinear_info_init(vitq_nonlinear_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

vitq_status vitq_model_nonlinear_info(const vitq_model *model, int32_t index, vitq_nonlinear_info *info) {
    const char *fn = "vitq_model_nonlinear_info";
    if (!model || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    int count = model->quant ? model->quant->nl_count : 0;
    if (index < 0 || index >= count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: index %d, the model has %d integer operators", fn,
                           (int)index, count);
    vitq_status st = vitq_i_check_struct_size(info->struct_size, VITQ_I_V1_NONLINEAR_INFO, fn, "vitq_nonlinear_info");
    if (st) return st;
    const vitq_i_qnl *nl = &model->quant->nl[index];
    vitq_nonlinear_info full;
    vitq_nonlinear_info_init(&full);
    full.point = model->quant->list.points[nl->point].name;
    full.op = vitq_i_nl_op_name(nl->op);
    full.method = nl->method;
    full.input_bits = nl->in_bits;
    full.input_scale = nl->in_scale;
    for (int m = 0; m < VITQ_I_NL_METHODS; m++) full.dsqnr[m] = nl->dsqnr[m];
    vitq_i_struct_out(info, info->struct_size, &full, sizeof full);
    return VITQ_OK;
}

/* The file bytes of a quantized model (from the model's allocator). */
static vitq_status serialize(const vitq_model *model, const char *fn, uint8_t **bytes, size_t *n) {
    if (!model->quant)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: %s is not a quantized model (float checkpoints are saved by their "
                           "trainer)", fn, model->net->name);
    return vitq_i_qsave(&model->net->alloc, model->net, model->quant, bytes, n);
}

vitq_status vitq_model_save_memory(const vitq_model *model, void *buffer, size_t capacity, size_t *size) {
    if (!model || !size) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_save_memory: NULL argument");
    uint8_t *bytes;
    size_t n;
    vitq_status st = serialize(model, "vitq_model_save_memory", &bytes, &n);
    if (st) return st;
    *size = n;
    if (buffer && capacity < n)
        st = vitq_i_fail(VITQ_ERR_BUFFER_TOO_SMALL, "vitq_model_save_memory: %zu bytes needed, %zu given", n, capacity);
    else if (buffer)
        memcpy(buffer, bytes, n);
    vitq_i_free(&model->net->alloc, bytes);
    return st;
}

vitq_status vitq_model_save(const vitq_model *model, const char *path) {
    if (!model || !path || !*path) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_save: NULL argument");
    uint8_t *bytes;
    size_t n;
    vitq_status st = serialize(model, path, &bytes, &n);
    if (st) return st;
    /* A temporary file beside `path` renamed over it: an error, a full disk or a kill leaves the previous
     * file as it was (saving over the model's own source file is safe too: the model keeps no part of it). */
    st = vitq_i_write_file_atomic(path, bytes, n);
    vitq_i_free(&model->net->alloc, bytes);
    return st;
}
