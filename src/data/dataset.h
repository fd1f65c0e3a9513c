/* Internal access to datasets. */
#ifndef VITQ_DATA_DATASET_H
#define VITQ_DATA_DATASET_H

#include "core/core.h"
#include "model/net.h"

/* Images [first, first + n) of ds as model-ready floats into out (n x C x H x W); out NULL: only
 * check the range and the image shape against the model. */
vitq_status vitq_i_dataset_images(const vitq_i_net *model, const vitq_dataset *ds, uint64_t first, size_t n,
                                  float *out);

/* The dataset's name, for messages. */
const char *vitq_i_dataset_name(const vitq_dataset *ds);

#endif
