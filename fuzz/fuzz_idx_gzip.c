/* Fuzz target: the DEFLATE / gzip decoder (src/io/inflate.h) and the IDX reader (src/io/idx.h), the
 * chain a dataset file goes through. The input is decoded as raw DEFLATE; then, when it is gzip, it is
 * decompressed and the result read as IDX (otherwise the input itself). Checks: no crash or leak, a
 * message for every failure, consumed bytes within the input, IDX views inside their buffer with a
 * byte count equal to the shape's, and CRC-32 composing over a split.
 * Built with -DVITQ_FUZZ_ZLIB (the Makefile does so when zlib's header and library are present) the
 * raw DEFLATE result is also compared with zlib's: both accept or both reject, and agree on the bytes
 * and on how much input the stream used. zlib is only the oracle here, never part of the library. */
#include "fuzz_common.h"
#include "io/idx.h"
#include "io/inflate.h"

#ifdef VITQ_FUZZ_ZLIB
#include <zlib.h>

/* zlib's raw inflate of src: 1 and the output when the stream ends inside src, 0 otherwise. */
static int zlib_inflate_raw(const uint8_t *src, size_t n, uint8_t **out, size_t *out_n, size_t *consumed) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) abort();
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    FUZZ_ASSERT(buf);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    int rc;
    do {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            FUZZ_ASSERT(buf);
        }
        z.next_out = buf + len;
        z.avail_out = (uInt)(cap - len);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
    } while (rc == Z_OK || (rc == Z_BUF_ERROR && z.avail_out == 0));
    *consumed = n - z.avail_in;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return 0;
    }
    *out = buf;
    *out_n = len;
    return 1;
}

static void compare_with_zlib(const uint8_t *data, size_t size, vitq_status st, const uint8_t *out, size_t out_n,
                              size_t used) {
    uint8_t *zout = NULL;
    size_t zn = 0, zused = 0;
    int ok = zlib_inflate_raw(data, size, &zout, &zn, &zused);
    if (ok != (st == VITQ_OK)) {
        fprintf(stderr, "fuzz: raw DEFLATE: vitq %s (%s), zlib %s\n", vitq_status_name(st), vitq_last_error(),
                ok ? "accepts" : "rejects");
        abort();
    }
    if (ok) {
        FUZZ_ASSERT(zn == out_n && (!zn || memcmp(zout, out, zn) == 0));
        FUZZ_ASSERT(zused == used);
        FUZZ_ASSERT(vitq_i_crc32(0, out, out_n) == (uint32_t)crc32(0L, out, (uInt)out_n));
    }
    free(zout);
}
#endif

static void check_idx(const uint8_t *buf, size_t n) {
    vitq_i_array a;
    vitq_i_error_clear();
    vitq_status st = vitq_i_idx_parse(buf, n, "fuzz.idx", &a);
    fuzz_check_status(st);
    if (st != VITQ_OK) return;
    size_t es = vitq_i_elem_size(a.elem);
    FUZZ_ASSERT(a.elem == VITQ_I_ELEM_U8 && es == 1 && a.ndim >= 1 && a.ndim <= 4);
    FUZZ_ASSERT(vitq_i_array_count(&a) == a.nbytes);
    for (int d = 0; d < a.ndim && a.nbytes; d++) FUZZ_ASSERT(a.shape[d] <= a.nbytes);
    FUZZ_ASSERT(!a.nbytes || (a.data >= buf && a.data + a.nbytes == buf + n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_alloc_state state;
    vitq_allocator a = fuzz_allocator(&state, 0);

    uint8_t *out = NULL;
    size_t out_n = 0, used = 0;
    vitq_i_error_clear();
    vitq_status st = vitq_i_inflate_raw(&a, data, size, "fuzz.deflate", &out, &out_n, &used);
    fuzz_check_status(st);
    if (st == VITQ_OK) FUZZ_ASSERT(out != NULL && used <= size);
#ifdef VITQ_FUZZ_ZLIB
    compare_with_zlib(data, size, st, out, out_n, used);
#endif
    if (st == VITQ_OK) vitq_i_free(&a, out);

    size_t half = size / 2;
    FUZZ_ASSERT(vitq_i_crc32(vitq_i_crc32(0, data, half), data + half, size - half) == vitq_i_crc32(0, data, size));

    int gz = vitq_i_is_gzip(data, size);
    FUZZ_ASSERT(gz == (size >= 2 && data[0] == 0x1f && data[1] == 0x8b));
    if (gz) {
        out = NULL;
        vitq_i_error_clear();
        st = vitq_i_gzip_decompress(&a, data, size, "fuzz.gz", &out, &out_n);
        fuzz_check_status(st);
        if (st == VITQ_OK) {
            FUZZ_ASSERT(out != NULL);
            check_idx(out, out_n);
            vitq_i_free(&a, out);
        }
    } else {
        check_idx(data, size);
    }
    FUZZ_ASSERT(state.live == 0);
    return 0;
}
