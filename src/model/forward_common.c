/* Pieces every family's forward pass shares (see forward_common.h). */
#include <math.h>

#include "model/forward_common.h"

vitq_status vitq_i_check_finite(const float *input, size_t count, size_t per_image) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(input[i]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "input: image %zu, element %zu is %s", i / per_image,
                               i % per_image, isnan(input[i]) ? "NaN" : "infinite");
    return VITQ_OK;
}

int vitq_i_pass_needs_probs(const vitq_i_net *m, const vitq_i_taps *taps) {
    for (int b = 0; taps && b < m->info.depth; b++)
        if (vitq_i_block_needs_probs(taps, b)) return 1;
    return 0;
}

size_t vitq_i_chunk_images(size_t rows, size_t tokens_per_image, size_t n) {
    size_t chunk = rows / tokens_per_image;
    if (chunk < 1) chunk = 1;
    return chunk > n ? n : chunk;
}
