/* DEFLATE (RFC 1951) and gzip (RFC 1952) decoding of whole in-memory buffers, so that datasets such
 * as the Fashion-MNIST .gz files load without zlib. Output is allocated from the caller's allocator.
 * Errors: VITQ_ERR_CORRUPT_DATA (bad stream or checksum), VITQ_ERR_TRUNCATED (input ends early),
 * VITQ_ERR_FORMAT (not gzip: magic, method, reserved flags, trailing garbage), VITQ_ERR_OUT_OF_MEMORY. */
#ifndef VITQ_IO_INFLATE_H
#define VITQ_IO_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

/* 1 if the buffer starts with the gzip magic bytes 1f 8b. */
int vitq_i_is_gzip(const uint8_t *src, size_t n);

/* Decompress all gzip members of src[0..n) (concatenated members are joined; zero padding after the
 * last member is ignored). *out is allocated from `a` (never NULL on success, even for empty output)
 * and is freed with vitq_i_free(a, *out). `name` is used in error messages. */
vitq_status vitq_i_gzip_decompress(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                                   uint8_t **out, size_t *out_n);

/* As vitq_i_gzip_decompress(), for data whose size is known in advance (a file's own header says how
 * long it is): the output may not exceed `limit` bytes. Decoding stops at the first byte past it and
 * fails with VITQ_ERR_FORMAT, "<name>: decompressed data runs past the <limit> bytes <why>", so a
 * small compressed file never takes more memory than its header promised (a gzip bomb). */
vitq_status vitq_i_gzip_decompress_limit(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                                         size_t limit, const char *why, uint8_t **out, size_t *out_n);

/* The first min(want, total) decompressed bytes of src[0..n), to read a header before deciding how
 * much to decompress: decoding stops after `want` bytes, without the checksum (which covers the
 * rest); data shorter than `want` is decompressed and checked whole. Errors as vitq_i_gzip_decompress(). */
vitq_status vitq_i_gzip_peek(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name, size_t want,
                             uint8_t **out, size_t *out_n);

/* Decode one raw DEFLATE stream (no wrapper). *consumed (may be NULL) receives the number of input
 * bytes the stream used, up to the byte boundary after its last block; later bytes are not looked at. */
vitq_status vitq_i_inflate_raw(const vitq_allocator *a, const uint8_t *src, size_t n, const char *name,
                               uint8_t **out, size_t *out_n, size_t *consumed);

/* Update a CRC-32 (gzip/zlib polynomial) with n bytes; start with crc = 0. */
uint32_t vitq_i_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
