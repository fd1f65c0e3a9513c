/* Writer of safetensors files: tensors (borrowed until written, or handed over) and __metadata__
 * strings (copied), laid out in the order added, header padded with spaces to 8 bytes. */
#ifndef VITQ_IO_ST_WRITER_H
#define VITQ_IO_ST_WRITER_H

#include "core/core.h"

typedef struct vitq_i_st_entry {
    char *name;
    const char *dtype; /* "F32", "I8", "U8", "I32" (static strings) */
    int ndim;
    uint64_t shape[4];
    const void *data;
    size_t nbytes;
    int owned; /* data came from the writer's allocator and is freed with the writer */
} vitq_i_st_entry;

typedef struct vitq_i_st_writer {
    vitq_allocator alloc;
    vitq_i_st_entry *entries;
    size_t count, capacity;
    char **meta; /* key, value, key, value, ... */
    size_t meta_count, meta_capacity;
} vitq_i_st_writer;

void vitq_i_stw_init(vitq_i_st_writer *w, const vitq_allocator *a);
void vitq_i_stw_free(vitq_i_st_writer *w);
vitq_status vitq_i_stw_add(vitq_i_st_writer *w, const char *name, const char *dtype, int ndim, const uint64_t *shape,
                           const void *data, size_t nbytes);
/* As vitq_i_stw_add with data allocated from the writer's allocator, which the writer now owns (and
 * frees with itself, also when this call fails): for tensors made only to be written. */
vitq_status vitq_i_stw_add_owned(vitq_i_st_writer *w, const char *name, const char *dtype, int ndim,
                                 const uint64_t *shape, void *data, size_t nbytes);
vitq_status vitq_i_stw_meta(vitq_i_st_writer *w, const char *key, const char *value);
/* The whole file into a new buffer from the writer's allocator. */
vitq_status vitq_i_stw_finish(vitq_i_st_writer *w, uint8_t **out, size_t *size);

#endif
