/* Integer weight codes as a saved model stores them: one byte per code up to 8 bits (I8 when
 * symmetric, U8 otherwise), two 3..4-bit or four 2-bit codes per byte (U8, value code - qmin, the
 * lowest bits first). Each row starts on a byte. */
#ifndef VITQ_QUANT_CODES_H
#define VITQ_QUANT_CODES_H

#include "core/core.h"

int vitq_i_code_storage_bits(int bits);
/* Bytes of one packed row of `cols` codes: ceil(cols * storage_bits / 8), computed without forming
 * cols * storage_bits (which a file's column count could overflow). 0 for cols <= 0, a storage
 * width outside 1..8, or a length beyond SIZE_MAX. */
size_t vitq_i_code_row_bytes(int64_t cols, int storage_bits);
/* Lowest and highest code of a point. */
void vitq_i_code_range(int bits, int symmetric, int32_t *qmin, int32_t *qmax);
/* Pack codes [rows][cols] into out (rows * vitq_i_code_row_bytes bytes). VITQ_ERR_OUT_OF_RANGE naming
 * `what` when a code is outside the range of its bits. Both unpack and pack refuse
 * (VITQ_ERR_INVALID_ARGUMENT) bits outside 2..8 and sizes whose codes or bytes do not fit in memory
 * (negative ones included), before touching a buffer: the caller's buffers hold rows * cols codes
 * and rows * row bytes, so those products exist. */
vitq_status vitq_i_codes_pack(const int32_t *codes, int64_t rows, int64_t cols, int bits, int symmetric, uint8_t *out,
                              const char *what);
vitq_status vitq_i_codes_unpack(const uint8_t *in, int64_t rows, int64_t cols, int bits, int symmetric,
                                int32_t *codes);

#endif
