/* Pieces the families' forward passes share besides the block (model/block.h). */
#ifndef VITQ_MODEL_FORWARD_COMMON_H
#define VITQ_MODEL_FORWARD_COMMON_H

#include "model/block.h"
#include "model/stem.h"

/* VITQ_ERR_NON_FINITE naming the image and element of the first NaN / infinity in input[0..count). */
vitq_status vitq_i_check_finite(const float *input, size_t count, size_t per_image);

/* Whether some block of a pass with these taps needs the buffer of scores (vitq_i_block_bufs.probs). */
int vitq_i_pass_needs_probs(const vitq_i_net *m, const vitq_i_taps *taps);

/* Images per chunk so that a chunk holds about `rows` tokens (at least 1, at most n). */
size_t vitq_i_chunk_images(size_t rows, size_t tokens_per_image, size_t n);

/* ViT / DeiT in pieces, for callers that run many passes sharing a prefix (the damage report): the
 * residual stream of n images entering each block b into at[b] (b in [0, depth]; at[depth] is the
 * stream before the final LayerNorm; NULL entries skipped; each [n][tokens][d]), without taps; and the
 * pass from the stream x entering block b (x is read, not changed) to the logits, with taps. Their
 * logits are bit-identical to vitq_i_vit_forward's. Swin models: VITQ_ERR_INVALID_ARGUMENT. */
vitq_status vitq_i_vit_streams(const vitq_i_net *m, const float *input, size_t n, float *const *at);
/* The same with taps (the streams of a quantized pass) and, when logits is set, the pass's logits. */
vitq_status vitq_i_vit_streams_taps(const vitq_i_net *m, const float *input, size_t n, float *const *at,
                                    vitq_i_taps *taps, float *logits);
vitq_status vitq_i_vit_forward_from(const vitq_i_net *m, int b, const float *x, size_t n, float *logits,
                                    vitq_i_taps *taps);
/* Blocks from..to-1 only, with taps: from -1 starts at the images `input` (embeddings first), else
 * `input` is the stream entering block `from`; the stream entering block `to` goes to `out`
 * ([n][tokens][d]). -1 <= from < to <= depth. */
#define VITQ_I_MAX_SPAN_AT 64
vitq_status vitq_i_vit_forward_span(const vitq_i_net *m, int from, int to, const float *input, size_t n, float *out,
                                    vitq_i_taps *taps);

#endif
