/* IDX files (the MNIST / Fashion-MNIST format): magic 0, 0, type code, number of dimensions, then one
 * big-endian uint32 per dimension, then the data in row-major order. */
#ifndef VITQ_IO_IDX_H
#define VITQ_IO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "io/array.h"
#include "vitq.h"

/* The header alone of an IDX file in buf[0..n) (n may stop anywhere after it): out gets the type,
 * shape and nbytes the data must have (out->data stays NULL), *data_offset where the data starts.
 * Dimensions are big-endian 32-bit integers; one with the top bit set is a negative size and fails
 * with VITQ_ERR_FORMAT naming the dimension; so does a product beyond the address space. */
vitq_status vitq_i_idx_parse_header(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out,
                                    size_t *data_offset);

/* Parse an already decompressed IDX file. Only type 0x08 (unsigned byte) is supported (others:
 * VITQ_ERR_DTYPE); 1 to 4 dimensions (else VITQ_ERR_FORMAT); the data must be exactly as long as the
 * dimensions say (short: VITQ_ERR_TRUNCATED, long: VITQ_ERR_FORMAT). out->data points into buf. */
vitq_status vitq_i_idx_parse(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out);

#endif
