/* The built-in quantization schemes: one `const vitq_scheme` table (vitq.h) per file, listed once in
 * scheme_list.h, from which this header declares them all. */
#ifndef VITQ_QUANT_SCHEMES_H
#define VITQ_QUANT_SCHEMES_H

#include "core/core.h"

#define VITQ_I_SCHEME(table, file) extern const vitq_scheme table;
#include "quant/scheme_list.h"
#undef VITQ_I_SCHEME

#endif
