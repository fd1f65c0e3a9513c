/* Public API of the ONNX export (vitq.h, "ONNX export"; docs/onnx.md). */
#include <string.h>

#include "api/model.h"
#include "core/abi.h"
#include "quant/onnx_export.h"

#define ONNX_OPTIONS_V1 VITQ_I_V1_SIZE(vitq_onnx_options, opset) /* first released in 0.8 */

void vitq_onnx_options_init(vitq_onnx_options *options) {
    if (!options) return;
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
}

/* The model's ONNX bytes (from the model's allocator). */
static vitq_status serialize(const vitq_model *model, const vitq_onnx_options *options, const char *fn,
                             uint8_t **bytes, size_t *n) {
    vitq_onnx_options o;
    vitq_onnx_options_init(&o);
    if (options) {
        vitq_status st = vitq_i_check_struct_size(options->struct_size, ONNX_OPTIONS_V1, fn, "vitq_onnx_options");
        if (st) return st;
        vitq_i_struct_in(&o, sizeof o, options, options->struct_size);
    }
    int opset = o.opset ? o.opset : VITQ_I_ONNX_OPSET_MAX;
    vitq_status st = vitq_i_onnx_export(&model->net->alloc, model->net, model->quant, opset, bytes, n);
    if (st) vitq_i_error_prefix("%s", fn);
    return st;
}

vitq_status vitq_model_export_onnx(const vitq_model *model, const char *path, const vitq_onnx_options *options) {
    if (!model || !path || !*path)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_export_onnx: NULL model or path");
    uint8_t *bytes;
    size_t n;
    vitq_status st = serialize(model, options, path, &bytes, &n);
    if (st) return st;
    /* written beside `path` and renamed over it, as vitq_model_save: never a part of a model */
    st = vitq_i_write_file_atomic(path, bytes, n);
    vitq_i_free(&model->net->alloc, bytes);
    return st;
}

vitq_status vitq_model_export_onnx_memory(const vitq_model *model, const vitq_onnx_options *options, void *buffer,
                                          size_t capacity, size_t *size) {
    const char *fn = "vitq_model_export_onnx_memory";
    if (!model || !size) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    uint8_t *bytes;
    size_t n;
    vitq_status st = serialize(model, options, fn, &bytes, &n);
    if (st) return st;
    *size = n;
    if (buffer && capacity < n)
        st = vitq_i_fail(VITQ_ERR_BUFFER_TOO_SMALL, "%s: %zu bytes needed, %zu given", fn, n, capacity);
    else if (buffer)
        memcpy(buffer, bytes, n);
    vitq_i_free(&model->net->alloc, bytes);
    return st;
}
