/* IDX parser. The header is tiny and fixed, so every field is checked before the data is trusted. */
#include <string.h>

#include "core/core.h"
#include "io/idx.h"

#define IDX_MAX_DIMS 4 /* MNIST-like data: labels [N], images [N,H,W] or [N,H,W,C] */

static const char *idx_type_name(unsigned code) {
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

vitq_status vitq_i_idx_parse_header(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out,
                                    size_t *data_offset) {
    if (!name) name = "(buffer)";
    if ((!buf && n) || !out || !data_offset)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL argument", name);
    memset(out, 0, sizeof *out);
    if (n < 4) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: %zu bytes, shorter than the 4-byte IDX magic", name, n);
    if (buf[0] != 0 || buf[1] != 0)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: not an IDX file: magic starts %02x %02x, expected 00 00", name,
                           buf[0], buf[1]);
    unsigned type = buf[2], ndim = buf[3];
    if (type != 0x08)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: IDX type code 0x%02x (%s) is not supported, only 0x08 (unsigned "
                           "byte)", name, type, idx_type_name(type));
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: IDX file has %u dimensions, 1 to %d supported", name, ndim,
                           IDX_MAX_DIMS);
    size_t off = 4 + 4 * (size_t)ndim;
    if (n < off)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: IDX header needs %zu bytes for %u dimensions, file has %zu",
                           name, off, ndim, n);
    for (unsigned i = 0; i < ndim; i++) {
        const uint8_t *p = buf + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        /* The format's sizes are signed 32-bit integers (as MNIST's writers declare them): a set top
         * bit is a negative size, whatever the unsigned reading would allow. */
        if (d > INT32_MAX)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: IDX dimension %u is %lld (bytes %02x %02x %02x %02x): sizes "
                               "cannot be negative", name, i, (long long)d - ((long long)1 << 32), p[0], p[1], p[2],
                               p[3]);
        out->shape[i] = d;
    }
    size_t count = 0;
    int empty = 0; /* a zero dimension makes the file empty whatever the others say */
    for (unsigned i = 0; i < ndim; i++) empty |= out->shape[i] == 0;
    out->ndim = (int)ndim;
    if (!empty && !vitq_i_shape_count_u64((int)ndim, out->shape, SIZE_MAX, &count)) {
        char shape[96];
        vitq_i_shape_str(out, shape, sizeof shape);
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: IDX dimensions %s need more bytes than the address space holds",
                           name, shape);
    }
    out->elem = VITQ_I_ELEM_U8;
    out->nbytes = count;
    *data_offset = off;
    return VITQ_OK;
}

vitq_status vitq_i_idx_parse(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out) {
    if (!name) name = "(buffer)";
    size_t off = 0;
    vitq_status st = vitq_i_idx_parse_header(buf, n, name, out, &off);
    if (st) return st;
    size_t count = out->nbytes;
    if (n - off < count) {
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: IDX data is %zu bytes, dimensions need %zu", name, n - off,
                           count);
    }
    if (n - off > count) {
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: IDX data is %zu bytes, dimensions need only %zu (%zu extra at "
                           "byte %zu)", name, n - off, count, n - off - count, off + count);
    }
    out->data = buf + off;
    return VITQ_OK;
}
