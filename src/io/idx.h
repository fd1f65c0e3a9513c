/* IDX files (the MNIST / Fashion-MNIST format): magic 0, 0, type code, number of dimensions, then one
 * big-endian uint32 per dimension, then the data in row-major order. */
#ifndef VITQ_IO_IDX_H
#define VITQ_IO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "io/array.h"
#include "vitq.h"

/* Parse an already decompressed IDX file. Only type 0x08 (unsigned byte) is supported (others:
 * VITQ_ERR_DTYPE); 1 to 4 dimensions (else VITQ_ERR_FORMAT); the data must be exactly as long as the
 * dimensions say (short: VITQ_ERR_TRUNCATED, long: VITQ_ERR_FORMAT). out->data points into buf. */
vitq_status vitq_i_idx_parse(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out);

#endif
