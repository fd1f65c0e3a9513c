/* Protocol buffers encoder (see protobuf.h). */
#include <string.h>

#include "io/protobuf.h"

enum { WIRE_VARINT = 0, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

void vitq_i_pb_init(vitq_i_pb *pb, const vitq_allocator *a) {
    memset(pb, 0, sizeof *pb);
    pb->alloc = *a;
}

void vitq_i_pb_free(vitq_i_pb *pb) {
    vitq_i_free(&pb->alloc, pb->buf);
    pb->buf = NULL;
    pb->len = pb->cap = 0;
}

size_t vitq_i_pb_varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Capacity for `more` bytes past len; doubles so that a model of n bytes costs O(n) copies. */
static int reserve(vitq_i_pb *pb, size_t more) {
    if (pb->status) return 0;
    if (more <= pb->cap - pb->len) return 1;
    if (more > SIZE_MAX / 2 - pb->len) {
        pb->status = vitq_i_oom("protobuf message", SIZE_MAX);
        return 0;
    }
    size_t need = pb->len + more, cap = pb->cap ? pb->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *grown = vitq_i_alloc(&pb->alloc, cap);
    if (!grown) {
        pb->status = vitq_i_oom("protobuf message", cap);
        return 0;
    }
    if (pb->len) memcpy(grown, pb->buf, pb->len);
    vitq_i_free(&pb->alloc, pb->buf);
    pb->buf = grown;
    pb->cap = cap;
    return 1;
}

static size_t put_varint(uint8_t *dst, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        dst[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (uint8_t)v;
    return n;
}

static void varint(vitq_i_pb *pb, uint64_t v) {
    if (reserve(pb, 10)) pb->len += put_varint(pb->buf + pb->len, v);
}

static void key(vitq_i_pb *pb, uint32_t field, int wire) { varint(pb, (uint64_t)field << 3 | (uint64_t)wire); }

static void raw(vitq_i_pb *pb, const void *data, size_t n) {
    if (!n || !reserve(pb, n)) return;
    memcpy(pb->buf + pb->len, data, n);
    pb->len += n;
}

static uint8_t *extend(vitq_i_pb *pb, size_t n) {
    if (!reserve(pb, n)) return NULL;
    uint8_t *p = pb->buf + pb->len;
    pb->len += n;
    return p;
}

void vitq_i_pb_uint(vitq_i_pb *pb, uint32_t field, uint64_t value) {
    key(pb, field, WIRE_VARINT);
    varint(pb, value);
}

void vitq_i_pb_int(vitq_i_pb *pb, uint32_t field, int64_t value) {
    key(pb, field, WIRE_VARINT);
    varint(pb, (uint64_t)value); /* two's complement: negative values take ten bytes */
}

/* Little-endian bytes of a float whatever the host's byte order. */
static void put_float(uint8_t *dst, float value) {
    uint32_t u;
    memcpy(&u, &value, sizeof u);
    for (int b = 0; b < 4; b++) dst[b] = (uint8_t)(u >> (8 * b));
}

void vitq_i_pb_float(vitq_i_pb *pb, uint32_t field, float value) {
    key(pb, field, WIRE_FIXED32);
    uint8_t *p = extend(pb, 4);
    if (p) put_float(p, value);
}

void vitq_i_pb_bytes(vitq_i_pb *pb, uint32_t field, const void *data, size_t n) {
    key(pb, field, WIRE_BYTES);
    varint(pb, (uint64_t)n);
    raw(pb, data, n);
}

uint8_t *vitq_i_pb_bytes_room(vitq_i_pb *pb, uint32_t field, size_t n) {
    key(pb, field, WIRE_BYTES);
    varint(pb, (uint64_t)n);
    return extend(pb, n);
}

void vitq_i_pb_string(vitq_i_pb *pb, uint32_t field, const char *s) { vitq_i_pb_bytes(pb, field, s, strlen(s)); }

void vitq_i_pb_packed_floats(vitq_i_pb *pb, uint32_t field, const float *values, size_t n) {
    if (n > SIZE_MAX / 4) {
        if (!pb->status) pb->status = vitq_i_oom("protobuf packed floats", SIZE_MAX);
        return;
    }
    key(pb, field, WIRE_BYTES);
    varint(pb, (uint64_t)n * 4);
    uint8_t *p = extend(pb, n * 4);
    for (size_t i = 0; p && i < n; i++) put_float(p + 4 * i, values[i]);
}

void vitq_i_pb_packed_ints(vitq_i_pb *pb, uint32_t field, const int64_t *values, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += vitq_i_pb_varint_size((uint64_t)values[i]);
    key(pb, field, WIRE_BYTES);
    varint(pb, (uint64_t)bytes);
    for (size_t i = 0; i < n; i++) varint(pb, (uint64_t)values[i]);
}

void vitq_i_pb_begin(vitq_i_pb *pb, uint32_t field) {
    if (pb->status) return;
    if (pb->depth == VITQ_I_PB_MAX_DEPTH) {
        pb->status = vitq_i_fail(VITQ_ERR_GENERIC, "protobuf: messages nested deeper than %d", VITQ_I_PB_MAX_DEPTH);
        return;
    }
    key(pb, field, WIRE_BYTES);
    pb->open[pb->depth++] = pb->len;
}

void vitq_i_pb_end(vitq_i_pb *pb) {
    if (pb->status) return;
    if (pb->depth == 0) {
        pb->status = vitq_i_fail(VITQ_ERR_GENERIC, "protobuf: end of a message that was not begun");
        return;
    }
    size_t start = pb->open[--pb->depth], n = pb->len - start, k = vitq_i_pb_varint_size((uint64_t)n);
    if (!reserve(pb, k)) return;
    memmove(pb->buf + start + k, pb->buf + start, n); /* make room for the length in front */
    put_varint(pb->buf + start, (uint64_t)n);
    pb->len += k;
}

vitq_status vitq_i_pb_finish(vitq_i_pb *pb, uint8_t **out, size_t *size) {
    if (!pb->status && pb->depth)
        pb->status = vitq_i_fail(VITQ_ERR_GENERIC, "protobuf: %d messages left open", pb->depth);
    if (!pb->status) reserve(pb, 1); /* an empty message still gets a buffer */
    if (pb->status) {
        vitq_i_pb_free(pb);
        return pb->status;
    }
    *out = pb->buf;
    *size = pb->len;
    pb->buf = NULL;
    pb->len = pb->cap = 0;
    return VITQ_OK;
}
