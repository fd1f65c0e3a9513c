/* Every float tensor of a loaded model under its timm name (Swin: timm >= 0.9, classifier head.fc),
 * in the shapes timm stores, so that a model can be written back as a checkpoint vitq loads. */
#ifndef VITQ_MODEL_TENSORS_H
#define VITQ_MODEL_TENSORS_H

#include "model/net.h"

/* `data` holds the tensor, except for the weight of a linear layer, which the model keeps only in
 * packed form: then data is NULL and `layer` is the layer (model/weights.h reads its rows). */
typedef vitq_status (*vitq_i_tensor_fn)(void *ctx, const char *name, int ndim, const uint64_t *shape,
                                        const float *data, const vitq_i_linear *layer);

vitq_status vitq_i_model_tensors(const vitq_i_net *m, vitq_i_tensor_fn fn, void *ctx);

#endif
