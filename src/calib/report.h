/* The per-point damage report (vitq_model_report, report.c). */
#ifndef VITQ_CALIB_REPORT_H
#define VITQ_CALIB_REPORT_H

#include "quant/qmodel.h"

/* vitq_model_report of the quantized network qm with quantizers q against the float network ref
 * (arguments checked by the caller, except that the two networks are the same architecture), with
 * progress ("report", forward passes) and cancellation through `progress` (may be NULL). capacity 0
 * only sets *count and runs nothing. */
vitq_status vitq_i_report(const vitq_i_net *ref, const vitq_i_net *qm, const vitq_i_qmodel *q, const vitq_dataset *ds,
                          uint64_t first, size_t n, vitq_report_row *rows, int32_t capacity, int32_t *count,
                          double *output_cosine, const vitq_i_progress *progress);

#endif
