/* The search of the linear layers outside the transformer blocks (edge_search.c): the patch embedding,
 * Swin's patch merging and the classifiers, which PTQ4ViT's code searches as it does every layer. */
#ifndef VITQ_CALIB_EDGE_SEARCH_H
#define VITQ_CALIB_EDGE_SEARCH_H

#include "calib/search_point.h"

typedef struct vitq_i_edge_layer {
    const vitq_i_linear *layer; /* in the run's network */
    int in_point;               /* its input point (its weight point follows it) */
    const float *x;             /* [rows][layer->in]: its input as the search sees it */
    size_t rows;
    const float *ref, *grad;    /* [rows][layer->out]: the float layer's output on the float input, the loss
                                 * gradient there */
} vitq_i_edge_layer;

/* Search the layer's weight, then its input (each when quantized), for options->rounds rounds, scored on the
 * layer's output (bottom-eliminated when options->bbc); a weight with a parameter per output channel gets
 * each channel's best. Both points are marked in `active` during the search; options->sequential leaves
 * them marked and the weight fake-quantized in the packed copy, else they are unmarked and the float
 * weight is packed again. */
vitq_status vitq_i_edge_search(vitq_i_run *r, const vitq_i_block_search_options *options, unsigned char *active,
                               const vitq_i_edge_layer *e);

#endif
