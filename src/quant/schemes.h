/* The built-in quantization schemes. Each is a `const vitq_scheme` table (vitq.h) in a file of its
 * own; the registry (registry.c) lists them. */
#ifndef VITQ_QUANT_SCHEMES_H
#define VITQ_QUANT_SCHEMES_H

#include "core/core.h"

extern const vitq_scheme vitq_i_scheme_minmax;     /* scheme_minmax.c: observed range */
extern const vitq_scheme vitq_i_scheme_percentile; /* scheme_percentile.c: clip at a percentile */
extern const vitq_scheme vitq_i_scheme_percentile_mse; /* scheme_percentile_mse.c: RepQ-ViT's percentile search */
extern const vitq_scheme vitq_i_scheme_omse;       /* scheme_omse.c: range of least squared error */
extern const vitq_scheme vitq_i_scheme_twin_softmax; /* scheme_twin_softmax.c: PTQ4ViT twin uniform, softmax */
extern const vitq_scheme vitq_i_scheme_twin_gelu;    /* scheme_twin_gelu.c: PTQ4ViT twin uniform, post-GELU */
extern const vitq_scheme vitq_i_scheme_log2;         /* scheme_log2.c: FQ-ViT log2 */
extern const vitq_scheme vitq_i_scheme_log_sqrt2;    /* scheme_log_sqrt2.c: RepQ-ViT log-sqrt2 */
extern const vitq_scheme vitq_i_scheme_mpq;          /* scheme_mpq.c: APQ-ViT softmax quantizer (MPQ) */

#endif
