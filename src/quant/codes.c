/* Packing of integer weight codes (see codes.h). */
#include "quant/codes.h"

int vitq_i_code_storage_bits(int bits) { return bits > 4 ? 8 : bits > 2 ? 4 : 2; }

size_t vitq_i_code_row_bytes(int64_t cols, int storage_bits) {
    return (size_t)((cols * storage_bits + 7) / 8);
}

void vitq_i_code_range(int bits, int symmetric, int32_t *qmin, int32_t *qmax) {
    *qmin = symmetric ? -(1 << (bits - 1)) : 0;
    *qmax = symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
}

vitq_status vitq_i_codes_pack(const int32_t *codes, int64_t rows, int64_t cols, int bits, int symmetric, uint8_t *out,
                              const char *what) {
    int sb = vitq_i_code_storage_bits(bits);
    size_t row_bytes = vitq_i_code_row_bytes(cols, sb);
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

void vitq_i_codes_unpack(const uint8_t *in, int64_t rows, int64_t cols, int bits, int symmetric, int32_t *codes) {
    int sb = vitq_i_code_storage_bits(bits);
    size_t row_bytes = vitq_i_code_row_bytes(cols, sb);
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
}
