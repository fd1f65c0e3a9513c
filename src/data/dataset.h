/* Internal access to datasets. */
#ifndef VITQ_DATA_DATASET_H
#define VITQ_DATA_DATASET_H

#include "core/core.h"

/* Images [first, first + n) of ds as model-ready floats into out (n x C x H x W); out NULL: only
 * check the range and the image shape against the model. */
vitq_status vitq_i_dataset_images(const vitq_model *model, const vitq_dataset *ds, uint64_t first, size_t n,
                                  float *out);

#endif
