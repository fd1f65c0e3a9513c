/* The damage of each quantized point in isolation, for the report (report.c). */
#ifndef VITQ_CALIB_REPORT_ISOLATE_H
#define VITQ_CALIB_REPORT_ISOLATE_H

#include "quant/points.h"
#include "quant/qmodel.h"

/* cosine[i] (i < q->count): the cosine of the logits against `fp_logits` (ref's logits of the n
 * images) when only q's point i is quantized in the float network `ref`: an activation point through a
 * tap, a weight point with its layer's weights replaced by the quantized ones. `ref_list` is ref's
 * point list (its layers by name). One forward pass per point, but a ViT pass starts at the block of
 * its point: images go in groups whose residual streams entering every block are kept (at most
 * VITQ_I_STREAM_BUDGET bytes), so a point in the last block costs one block, not the whole model.
 * `group` images per group (0: vitq_i_report_group's choice). Progress: one unit per point and group,
 * from *done on (*done advanced), of `total`. */
#define VITQ_I_STREAM_BUDGET ((size_t)64 << 20)
vitq_status vitq_i_report_isolation(const vitq_i_net *ref, const vitq_i_qmodel *q, const vitq_i_point_list *ref_list,
                                    const float *images, size_t n, const float *fp_logits, size_t group,
                                    double *cosine, const vitq_i_progress *progress, int64_t *done, int64_t total);

/* Images per group for `ref` and n images (n for Swin, whose passes always start at the image). */
size_t vitq_i_report_group(const vitq_i_net *ref, size_t n);

#endif
