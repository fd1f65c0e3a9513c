/* The built-in quantization schemes. Each is a `const vitq_scheme` table (vitq.h) in a file of its
 * own; the registry (registry.c) lists them. */
#ifndef VITQ_QUANT_SCHEMES_H
#define VITQ_QUANT_SCHEMES_H

#include "core/core.h"

extern const vitq_scheme vitq_i_scheme_minmax;     /* scheme_minmax.c: observed range */
extern const vitq_scheme vitq_i_scheme_percentile; /* scheme_percentile.c: clip at a percentile */
extern const vitq_scheme vitq_i_scheme_omse;       /* scheme_omse.c: range of least squared error */

#endif
