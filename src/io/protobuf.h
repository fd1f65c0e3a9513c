/* A protocol buffers encoder, written from the wire-format specification: what vitq needs to write
 * ONNX models (quant/onnx_export.c) without a protobuf library.
 *
 * A message is a run of fields, each a key varint (field number << 3 | wire type) and a value:
 *   wire type 0 (varint): 7 bits per byte, least significant group first, high bit set on every byte
 *     but the last; int32/int64 are the two's complement as uint64, so a negative value takes 10 bytes;
 *   wire type 2 (length-delimited): a varint byte count, then the bytes (strings, bytes, packed repeated
 *     scalars, nested messages);
 *   wire type 5 (fixed32): four little-endian bytes (float).
 * A nested message is opened with vitq_i_pb_begin and closed with vitq_i_pb_end: its bytes are written
 * in place and moved up by the size of the length prefix once their count is known, so nothing is built
 * twice. Errors are sticky: after the first failure (out of memory, nesting too deep) every call does
 * nothing and vitq_i_pb_finish returns that status. */
#ifndef VITQ_IO_PROTOBUF_H
#define VITQ_IO_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define VITQ_I_PB_MAX_DEPTH 16

typedef struct vitq_i_pb {
    vitq_allocator alloc;
    uint8_t *buf;
    size_t len, cap;
    size_t open[VITQ_I_PB_MAX_DEPTH]; /* where each open message's content starts */
    int depth;
    vitq_status status; /* first failure */
} vitq_i_pb;

void vitq_i_pb_init(vitq_i_pb *pb, const vitq_allocator *a);
/* Release the buffer (a finished buffer belongs to the caller and is not released). */
void vitq_i_pb_free(vitq_i_pb *pb);

/* Bytes of the varint of v (1..10). */
size_t vitq_i_pb_varint_size(uint64_t v);

/* Fields. uint64 for uint32/uint64/enum/bool values, int64 for int32/int64 (sign-extended). */
void vitq_i_pb_uint(vitq_i_pb *pb, uint32_t field, uint64_t value);
void vitq_i_pb_int(vitq_i_pb *pb, uint32_t field, int64_t value);
void vitq_i_pb_float(vitq_i_pb *pb, uint32_t field, float value);
void vitq_i_pb_bytes(vitq_i_pb *pb, uint32_t field, const void *data, size_t n);
void vitq_i_pb_string(vitq_i_pb *pb, uint32_t field, const char *s);
/* Packed repeated fields (one length-delimited field holding every value). */
void vitq_i_pb_packed_floats(vitq_i_pb *pb, uint32_t field, const float *values, size_t n);
void vitq_i_pb_packed_ints(vitq_i_pb *pb, uint32_t field, const int64_t *values, size_t n);

/* A nested message as field `field`: begin, its fields, end. */
void vitq_i_pb_begin(vitq_i_pb *pb, uint32_t field);
void vitq_i_pb_end(vitq_i_pb *pb);

/* A length-delimited field of n bytes that the caller fills: the key and length are written and the
 * room for the n bytes is returned (NULL after a failure; the bytes count as written). For data that
 * needs converting on the way (little-endian floats of a tensor) without a copy of its own. */
uint8_t *vitq_i_pb_bytes_room(vitq_i_pb *pb, uint32_t field, size_t n);

/* The encoded bytes, handed to the caller (free with vitq_i_free on the same allocator); every message
 * must be closed. On failure nothing is handed over and the buffer is released. */
vitq_status vitq_i_pb_finish(vitq_i_pb *pb, uint8_t **out, size_t *size);

#endif
