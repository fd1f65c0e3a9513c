/* NumPy .npy files: magic "\x93NUMPY", version, header length, a Python dict literal giving 'descr',
 * 'fortran_order' and 'shape', then the raw array bytes. */
#ifndef VITQ_IO_NPY_H
#define VITQ_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "io/array.h"
#include "vitq.h"

/* Parse a .npy file (versions 1.0, 2.0 and 3.0). Supported dtypes: little-endian (or native on a
 * little-endian host) u1 i1 b1 i2 u2 f2 i4 u4 f4 i8 u8 f8; other or big-endian descrs give
 * VITQ_ERR_DTYPE, fortran_order True VITQ_ERR_UNSUPPORTED, a bad magic or malformed header
 * VITQ_ERR_FORMAT, short data VITQ_ERR_TRUNCATED, extra bytes VITQ_ERR_FORMAT. out->data points into
 * buf. */
vitq_status vitq_i_npy_parse(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out);

/* The header alone of a .npy file in buf[0..n) (n may stop anywhere after it): out gets the type,
 * shape and nbytes the data must have (out->data stays NULL), *data_offset where the data starts.
 * Errors as vitq_i_npy_parse(), without those about the data. */
vitq_status vitq_i_npy_parse_header(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out,
                                    size_t *data_offset);

/* Write a version 1.0 header (magic through the padded dict, a multiple of 64 bytes long) for a
 * C-order little-endian array into buf[0..cap); *len = its length. VITQ_ERR_BUFFER_TOO_SMALL (with
 * *len set to the size needed) when cap is too small; VITQ_ERR_DTYPE for elements numpy lacks (BF16).
 * VITQ_I_NPY_HEADER_MAX bytes are always enough. */
#define VITQ_I_NPY_HEADER_MAX 320
vitq_status vitq_i_npy_write_header(vitq_i_elem elem, int ndim, const uint64_t *shape, char *buf, size_t cap,
                                    size_t *len);

/* Write a whole .npy file: header, then product(shape) elements of `data` (little-endian, row-major),
 * through a temporary file beside `path` and an atomic rename (vitq_i_write_file_atomic_parts): `path`
 * holds its old content or the whole new file. VITQ_ERR_IO naming the path when it cannot be written
 * or is not a regular file (a folder, a device), which is left as it was. */
vitq_status vitq_i_npy_save(const char *path, vitq_i_elem elem, int ndim, const uint64_t *shape, const void *data);

#endif
