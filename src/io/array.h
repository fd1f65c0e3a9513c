/* A typed n-dimensional view into a parsed file buffer (IDX, .npy, safetensors): the element type,
 * the shape and the bytes, which stay owned by the buffer that was parsed. */
#ifndef VITQ_IO_ARRAY_H
#define VITQ_IO_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#define VITQ_I_MAX_DIMS 8

typedef enum vitq_i_elem {
    VITQ_I_ELEM_INVALID = 0,
    VITQ_I_ELEM_U8,
    VITQ_I_ELEM_I8,
    VITQ_I_ELEM_BOOL,
    VITQ_I_ELEM_I16,
    VITQ_I_ELEM_U16,
    VITQ_I_ELEM_F16,
    VITQ_I_ELEM_BF16,
    VITQ_I_ELEM_I32,
    VITQ_I_ELEM_U32,
    VITQ_I_ELEM_F32,
    VITQ_I_ELEM_I64,
    VITQ_I_ELEM_U64,
    VITQ_I_ELEM_F64
} vitq_i_elem;

typedef struct vitq_i_array {
    vitq_i_elem elem;
    int ndim;
    uint64_t shape[VITQ_I_MAX_DIMS];
    const uint8_t *data; /* little-endian, row-major; may be unaligned: read with memcpy */
    size_t nbytes;       /* = product(shape) * element size, checked by the parser */
} vitq_i_array;

/* Size in bytes of one element (0 for VITQ_I_ELEM_INVALID). */
size_t vitq_i_elem_size(vitq_i_elem elem);
/* Short name as safetensors spells it ("F32", "U8", ...). */
const char *vitq_i_elem_name(vitq_i_elem elem);
/* Number of elements of `a` (product of the shape; 1 for rank 0; UINT64_MAX for a product that
 * overflows, which no parsed array has). */
uint64_t vitq_i_array_count(const vitq_i_array *a);
/* Format the shape as "[a,b,c]" into buf (always NUL-terminated). */
const char *vitq_i_shape_str(const vitq_i_array *a, char *buf, size_t cap);

#endif
