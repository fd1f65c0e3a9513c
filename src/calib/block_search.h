/* Gradient-weighted, block-by-block search of quantizer parameters (block_search.c): the engine of
 * the PTQ4ViT and APQ-ViT methods. */
#ifndef VITQ_CALIB_BLOCK_SEARCH_H
#define VITQ_CALIB_BLOCK_SEARCH_H

#include "calib/search_point.h"

/* Search every block's points in forward order, and the patch embedding, Swin's patch merging and the
 * classifiers where they are quantized. */
vitq_status vitq_i_block_search(vitq_i_run *run, const vitq_i_block_search_options *options);

#endif
