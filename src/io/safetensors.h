/* Reader of safetensors buffers (docs: checkpoint-formats.md 4.1): validates the whole header and the
 * data layout up front, then hands out zero-copy typed views of the tensors.
 *
 * Validation order, each failure naming the file and, where there is one, the tensor:
 *  a. size: buffer < 8 bytes or header length past the end -> VITQ_ERR_TRUNCATED; header length over
 *     100,000,000 -> VITQ_ERR_FORMAT;
 *  b. header: must start with '{' and be one strict JSON object (right-padding with spaces allowed,
 *     duplicate keys rejected) -> VITQ_ERR_FORMAT;
 *  c. each tensor entry: an object with exactly dtype, shape and data_offsets (else FORMAT); dtype one
 *     of BOOL U8 I8 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64 (other safetensors types and unknown
 *     names -> VITQ_ERR_DTYPE); shape of at most VITQ_I_MAX_DIMS non-negative integers and offsets two
 *     non-negative integers with begin <= end (else FORMAT); shape x element size == end - begin
 *     (else VITQ_ERR_SHAPE); names may not contain NUL (FORMAT);
 *  d. __metadata__: an object of strings (null counts as absent, as in the reference reader) ->
 *     else FORMAT;
 *  e. the non-empty tensors, sorted by offset, tile [0, total) exactly (holes and overlaps ->
 *     FORMAT); empty tensors may sit anywhere in [0, total];
 *  f. total > data section -> VITQ_ERR_TRUNCATED; total < data section -> FORMAT (trailing bytes).
 */
#ifndef VITQ_IO_SAFETENSORS_H
#define VITQ_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/array.h"
#include "vitq.h"

/* Largest header the reference implementation accepts (MAX_HEADER_SIZE). */
#define VITQ_I_ST_MAX_HEADER ((uint64_t)100000000)

typedef struct vitq_i_st_tensor vitq_i_st_tensor;
/* Computes the float values of a tensor whose bytes are not floats (a quantized weight: its codes
 * dequantized); see vitq_i_st_to_f32. */
typedef vitq_status (*vitq_i_st_fill_fn)(void *user, const vitq_i_st_tensor *t, float *dst);

struct vitq_i_st_tensor {
    char *name;         /* NUL-terminated, owned by the vitq_i_safetensors */
    vitq_i_array array; /* array.data points into the caller's buffer (possibly unaligned); NULL for a
                           file opened with vitq_i_st_open until vitq_i_st_pin */
    size_t begin, end;  /* data_offsets, relative to the data section */
    /* Set by the quantized-model reader (quant/qload.c) on a quantized weight: `fill` gives its float
     * values, and `pack_later` tells the model builders to check them but build no float panels (the
     * loader chooses the layer's kernel once the model exists). */
    vitq_i_st_fill_fn fill;
    void *fill_user;
    int pack_later;
};

typedef struct vitq_i_safetensors {
    vitq_allocator alloc;      /* copy of the allocator everything below came from */
    char *name;                /* copy of the file name, for messages */
    const uint8_t *data;       /* data section: the caller's buffer + 8 + header_size */
    size_t data_size;
    size_t header_size;        /* N, the JSON header length (padding included) */
    vitq_i_st_tensor *tensors; /* in header order */
    size_t count;
    char **meta_keys;          /* __metadata__ entries in header order */
    char **meta_values;
    size_t meta_count;
    vitq_i_st_tensor **by_name; /* tensors sorted by name (strcmp), for vitq_i_st_find */
    char *strings;             /* one block holding every name, key and value */
    uint8_t *owned;            /* tensor bytes that are copies, not views (io/pth.c: strided tensors) */
    /* A file opened with vitq_i_st_open: tensors are read from it when asked for, one at a time, so
     * that loading never holds the whole file. */
    vitq_i_file *file;
    uint64_t file_data;        /* file offset of the data section */
    uint8_t **pinned;          /* copies made by vitq_i_st_pin, [count] */
} vitq_i_safetensors;

/* Parse the safetensors file held in buf[0..n). The buffer stays owned by the caller and must outlive
 * *out (tensor views point into it). `a` may be NULL (malloc/free); `name` may be NULL. On failure
 * *out is left zeroed, so vitq_i_st_free() on it is harmless. */
vitq_status vitq_i_st_parse(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *name,
                            vitq_i_safetensors *out);
/* The same checks on the safetensors file at `path`, reading only its 8-byte length and its header;
 * the file stays open in *out and tensors are read from it on request (vitq_i_st_to_f32,
 * vitq_i_st_read, vitq_i_st_pin). A read that fails later is VITQ_ERR_IO naming the file and tensor. */
vitq_status vitq_i_st_open(const vitq_allocator *a, const char *path, const char *name, vitq_i_safetensors *out);
/* Free what vitq_i_st_parse() allocated and zero *st. NULL or a zeroed struct is a no-op. */
void vitq_i_st_free(vitq_i_safetensors *st);

/* The tensor called `tensor_name`, or NULL. O(log count). */
const vitq_i_st_tensor *vitq_i_st_find(const vitq_i_safetensors *st, const char *tensor_name);
/* The __metadata__ value of `key`, or NULL. */
const char *vitq_i_st_meta(const vitq_i_safetensors *st, const char *key);

/* Convert tensor `t` of `st` to floats: dst receives vitq_i_array_count(&t->array) values. A tensor
 * with a `fill` function gets its values from it; otherwise F32 is copied, F16 and BF16 are widened
 * exactly (subnormals, infinities and NaN payloads kept), and any other dtype fails with VITQ_ERR_DTYPE naming the tensor. Reads bytes, so unaligned data and big-endian
 * hosts are fine. */
vitq_status vitq_i_st_to_f32(const vitq_i_safetensors *st, const vitq_i_st_tensor *t, float *dst);
/* The stored bytes of `t` (t->array.nbytes of them) into dst, from the buffer or from the file. */
vitq_status vitq_i_st_read(const vitq_i_safetensors *st, const vitq_i_st_tensor *t, void *dst);
/* Make t->array.data valid for a tensor of an opened file: its bytes are read into a copy that lives
 * until vitq_i_st_free (for readers that index the bytes; keep it to small tensors). No-op when the
 * data is already there. */
vitq_status vitq_i_st_pin(vitq_i_safetensors *st, vitq_i_st_tensor *t);

#endif
