/* Internal access to datasets. */
#ifndef VITQ_DATA_DATASET_H
#define VITQ_DATA_DATASET_H

#include "core/core.h"
#include "model/net.h"

/* Images [first, first + n) of ds as model-ready floats into out (n x C x H x W); out NULL: only
 * check the range and the image shape against the model. */
vitq_status vitq_i_dataset_images(const vitq_i_net *model, const vitq_dataset *ds, uint64_t first, size_t n,
                                  float *out);

/* The uint8 pixels of images [first, first + n) of a uint8 dataset (a range vitq_i_dataset_images
 * accepted), in their stored layout into *layout; NULL for a float dataset. */
const uint8_t *vitq_i_dataset_pixels(const vitq_dataset *ds, uint64_t first, vitq_pixel_layout *layout);

/* Labels of images [first, first + n) (a range vitq_i_dataset_images accepted) against a model's
 * `classes`: VITQ_ERR_OUT_OF_RANGE naming the first image whose label is not below it (a label set
 * of another model would otherwise score silently wrong). VITQ_OK when the dataset has no labels. */
vitq_status vitq_i_dataset_check_labels(const vitq_dataset *ds, uint64_t first, size_t n, int32_t classes);

/* The dataset's name, for messages. */
const char *vitq_i_dataset_name(const vitq_dataset *ds);

#endif
