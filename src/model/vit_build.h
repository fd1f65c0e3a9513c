/* Build a model from an opened checkpoint (its family decides the builder) and its configuration. */
#ifndef VITQ_MODEL_VIT_BUILD_H
#define VITQ_MODEL_VIT_BUILD_H

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/net.h"

/* `in` carries the options, config files and metadata; `c` the checkpoint (allocator included). The
 * model owns copies of everything it needs: the checkpoint buffer may be freed afterwards. */
vitq_status vitq_i_vit_build(vitq_i_ckpt *c, const vitq_i_config_inputs *in, vitq_i_net **out);
vitq_status vitq_i_swin_build(vitq_i_ckpt *c, const vitq_i_config_inputs *in, vitq_i_net **out);

#endif
