/* An integer-only program (quant/intonly.h) as an embedded blob (kernels/embedded.h) and as the C
 * source `vitq export-c` writes (docs/firmware.md). */
#ifndef VITQ_QUANT_EXPORT_C_H
#define VITQ_QUANT_EXPORT_C_H

#include "quant/intonly.h"

/* The blob of p: *blob (from a, 64-byte aligned) holds *words 64-bit words. */
vitq_status vitq_i_export_blob(const vitq_i_intonly *p, const vitq_allocator *a, uint64_t **blob, size_t *words);

/* The descriptor of a blob of p (its dimensions, the pointer to blob). */
void vitq_i_export_descriptor(const vitq_i_intonly *p, const uint64_t *blob, size_t words, vitq_embedded_model *out);

/* The C source and header of p under `symbol` (a C identifier), written atomically. `source` (may be
 * NULL) is named in the files' comments. */
vitq_status vitq_i_export_c(const vitq_i_intonly *p, const vitq_allocator *a, const char *symbol, const char *source,
                            const char *c_path, const char *h_path);

#endif
