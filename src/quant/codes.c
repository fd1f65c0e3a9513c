/* Packing of integer weight codes (see codes.h). */
#include "quant/codes.h"

int vitq_i_code_storage_bits(int bits) { return bits > 4 ? 8 : bits > 2 ? 4 : 2; }

size_t vitq_i_code_row_bytes(int64_t cols, int storage_bits) {
    if (cols <= 0 || storage_bits < 1 || storage_bits > 8) return 0;
    /* cols = 8q + r: 8q codes take q * storage_bits bytes exactly, the r others round up. */
    uint64_t q = (uint64_t)cols / 8, r = (uint64_t)cols % 8;
    uint64_t bytes = q * (uint64_t)storage_bits + (r * (uint64_t)storage_bits + 7) / 8;
    return bytes > SIZE_MAX ? 0 : (size_t)bytes;
}

/* rows x cols codes exist in memory (as int32) and so do their packed rows: then every index below,
 * r * cols + c and r * row_bytes, fits. */
static vitq_status check_layout(int64_t rows, int64_t cols, int bits, const char *what, size_t *row_bytes) {
    int64_t dims[2] = {rows, cols};
    size_t count, bytes;
    if (bits < 2 || bits > 8)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %d-bit codes (2 to 8 bits are stored)", what, bits);
    *row_bytes = vitq_i_code_row_bytes(cols, vitq_i_code_storage_bits(bits));
    if (!vitq_i_shape_count_i64(2, dims, SIZE_MAX / sizeof(int32_t), &count) ||
        (count && (!*row_bytes || !vitq_i_mul_size((size_t)rows, *row_bytes, &bytes))))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %lld x %lld codes do not fit in memory", what,
                           (long long)rows, (long long)cols);
    return VITQ_OK;
}

void vitq_i_code_range(int bits, int symmetric, int32_t *qmin, int32_t *qmax) {
    *qmin = symmetric ? -(1 << (bits - 1)) : 0;
    *qmax = symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
}

vitq_status vitq_i_codes_pack(const int32_t *codes, int64_t rows, int64_t cols, int bits, int symmetric, uint8_t *out,
                              const char *what) {
    int sb = vitq_i_code_storage_bits(bits);
    size_t row_bytes;
    vitq_status st = check_layout(rows, cols, bits, what, &row_bytes);
    if (st) return st;
    int32_t qmin, qmax;
    vitq_i_code_range(bits, symmetric, &qmin, &qmax);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *dst = out + (size_t)r * row_bytes;
        for (size_t b = 0; b < row_bytes; b++) dst[b] = 0;
        for (int64_t c = 0; c < cols; c++) {
            int32_t q = codes[r * cols + c];
            if (q < qmin || q > qmax)
                return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: code %d at [%lld][%lld] is outside [%d, %d] of %d bits",
                                   what, (int)q, (long long)r, (long long)c, (int)qmin, (int)qmax, bits);
            if (sb == 8) {
                dst[c] = (uint8_t)(symmetric ? (uint8_t)(int8_t)q : (uint8_t)q);
            } else {
                uint32_t v = (uint32_t)(q - qmin);
                int per_byte = 8 / sb;
                dst[c / per_byte] |= (uint8_t)(v << ((c % per_byte) * sb));
            }
        }
    }
    return VITQ_OK;
}

vitq_status vitq_i_codes_unpack(const uint8_t *in, int64_t rows, int64_t cols, int bits, int symmetric,
                                int32_t *codes) {
    int sb = vitq_i_code_storage_bits(bits);
    size_t row_bytes;
    vitq_status st = check_layout(rows, cols, bits, "weight codes", &row_bytes);
    if (st) return st;
    int32_t qmin, qmax;
    vitq_i_code_range(bits, symmetric, &qmin, &qmax);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = in + (size_t)r * row_bytes;
        for (int64_t c = 0; c < cols; c++) {
            if (sb == 8) {
                codes[r * cols + c] = symmetric ? (int32_t)(int8_t)src[c] : (int32_t)src[c];
            } else {
                int per_byte = 8 / sb;
                uint32_t v = ((uint32_t)src[c / per_byte] >> ((c % per_byte) * sb)) & ((1u << sb) - 1);
                codes[r * cols + c] = (int32_t)v + qmin;
            }
        }
    }
    return VITQ_OK;
}
