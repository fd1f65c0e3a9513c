/* Public access to a model's class names (the network keeps them, model/class_names.h reads them). */
#include "api/model.h"

vitq_status vitq_model_class_name(const vitq_model *model, int32_t index, const char **name) {
    if (!model || !name)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_class_name: %s is NULL", !model ? "model" : "name");
    *name = NULL;
    const vitq_i_net *net = model->net;
    if (index < 0 || index >= net->info.num_classes)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "vitq_model_class_name: class %d is outside [0, %d) of %s",
                           (int)index, (int)net->info.num_classes, net->name);
    if (net->class_names) *name = net->class_names[index];
    return VITQ_OK;
}
