/* Build a ViT / DeiT model from a parsed checkpoint and its configuration files. */
#ifndef VITQ_MODEL_VIT_BUILD_H
#define VITQ_MODEL_VIT_BUILD_H

#include "model/config.h"
#include "model/vit.h"

/* `in` carries the options, config files and metadata; its `st` is the checkpoint. The model owns
 * copies of everything it needs: the checkpoint buffer may be freed afterwards. */
vitq_status vitq_i_vit_build(const vitq_allocator *a, const vitq_i_config_inputs *in, vitq_model **out);

#endif
