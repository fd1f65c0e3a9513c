/* vitq_model_export_c: a model's integer-only program as C source for a firmware (docs/firmware.md). */
#include "api/model.h"
#include "quant/export_c.h"

vitq_status vitq_model_export_c(const vitq_model *model, const char *symbol, const char *c_path, const char *h_path) {
    if (!model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_export_c: NULL model");
    if (!model->intonly)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_model_export_c: the model has no integer-only program (load a "
                           "quantized model with execution VITQ_EXECUTION_INTEGER_ONLY)");
    return vitq_i_export_c(model->intonly, &model->net->alloc, symbol, NULL, c_path, h_path);
}
