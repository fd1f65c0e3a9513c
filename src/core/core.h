/* Internal services every module uses: error reporting, allocation through the handle's allocator,
 * file reading. Internal symbols carry the `vitq_i_` prefix so that static firmware links never clash
 * with the host's names (hidden visibility does nothing inside an archive). */
#ifndef VITQ_CORE_H
#define VITQ_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

#if defined(__GNUC__)
#define VITQ_I_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VITQ_I_PRINTF(a, b)
#endif

/* Record a detail message for vitq_last_error() and return `status` (so `return vitq_i_fail(...)`). */
vitq_status vitq_i_fail(vitq_status status, const char *fmt, ...) VITQ_I_PRINTF(2, 3);
/* Prefix the current detail message with "<prefix>: " (adds context while an error travels up). */
void vitq_i_error_prefix(const char *fmt, ...) VITQ_I_PRINTF(1, 2);
void vitq_i_error_clear(void);

/* A caller's progress callback (fn NULL: none) and its argument. */
typedef struct vitq_i_progress {
    vitq_progress_fn fn;
    void *user;
} vitq_i_progress;
/* Tell p's callback that `done` of `total` units of `stage` are done. VITQ_ERR_CANCELLED, naming
 * `what` (the call: "report", "calibration"), when the callback asks to stop; VITQ_OK when p or its
 * callback is NULL. */
vitq_status vitq_i_progress_step(const vitq_i_progress *p, const char *stage, int64_t done, int64_t total,
                                 const char *what);

/* Wall-clock seconds (for durations only). */
double vitq_i_now_seconds(void);

/* Validate a caller's allocator (NULL means malloc/free) and copy it into *out. */
vitq_status vitq_i_allocator_resolve(const vitq_allocator *in, vitq_allocator *out);

/* Allocate `size` bytes aligned to 64 from `a`; NULL on failure (or size 0 -> a 1-byte block).
 * Does not set an error: callers say what they were allocating. */
void *vitq_i_alloc(const vitq_allocator *a, size_t size);
/* As vitq_i_alloc for count * elem bytes, NULL on overflow. */
void *vitq_i_alloc_array(const vitq_allocator *a, size_t count, size_t elem);
/* As vitq_i_alloc_array, zero-filled. */
void *vitq_i_calloc(const vitq_allocator *a, size_t count, size_t elem);
void vitq_i_free(const vitq_allocator *a, void *ptr);
/* Grow *array (*cap elements of `elem` bytes) to hold at least `need`, doubling from 16; the new
 * slots are zeroed. VITQ_ERR_OUT_OF_MEMORY naming `what` (also when the size would overflow); *array
 * is unchanged on failure. */
vitq_status vitq_i_grow_array(const vitq_allocator *a, void **array, size_t *cap, size_t need, size_t elem,
                              const char *what);
/* Copy of a NUL-terminated string (NULL -> NULL). */
char *vitq_i_strdup(const vitq_allocator *a, const char *s);
/* One allocation from `a` cut into `count` float slots of sizes[k] floats, each 64-byte aligned
 * (a forward pass's workspace); *slots[k] point into it, *block is what to free. */
vitq_status vitq_i_carve_workspace(const vitq_allocator *a, const size_t *sizes, float **const *slots, int count,
                                   float **block);

/* Fail with VITQ_ERR_OUT_OF_MEMORY naming what could not be allocated. */
vitq_status vitq_i_oom(const char *what, size_t bytes);

/* Checked arithmetic (core/checked.c), the one place sizes read from files are combined: every
 * function returns 1 when *out is valid and 0 on overflow (or a negative input where a count is
 * meant), never wrapping. Use these before any multiplication, addition or allocation whose
 * operands come from a file, a header or a caller. */
int vitq_i_mul_size(size_t a, size_t b, size_t *out);
int vitq_i_add_size(size_t a, size_t b, size_t *out);
int vitq_i_mul3_size(size_t a, size_t b, size_t c, size_t *out);
int vitq_i_mul_i64(int64_t a, int64_t b, int64_t *out);
int vitq_i_add_i64(int64_t a, int64_t b, int64_t *out);
/* Product of ndim dimensions that must each be in [0, limit] (limit <= SIZE_MAX), the product also at
 * most `limit`: the element count of a shape read from a file. 0 if a dimension is negative or
 * anything exceeds limit. ndim 0 gives 1 (a scalar). */
int vitq_i_shape_count_i64(int ndim, const int64_t *shape, uint64_t limit, size_t *out);
int vitq_i_shape_count_u64(int ndim, const uint64_t *shape, uint64_t limit, size_t *out);

/* Write data[0..n) to `path` through a temporary file beside it and an atomic rename, so that `path`
 * holds either its previous content or all of the new one, never a part (errors, kills, full disks).
 * Refuses (VITQ_ERR_IO) a `path` that exists and is not a regular file (a device, a folder); on
 * failure only the temporary file is removed. */
vitq_status vitq_i_write_file_atomic(const char *path, const void *data, size_t n);
/* The same for `count` pieces written one after another (a header and a payload). */
vitq_status vitq_i_write_file_atomic_parts(const char *path, const void *const *parts, const size_t *sizes,
                                           int count);
/* 1 when paths a and b name the same existing file (same device and inode), 0 otherwise. */
int vitq_i_same_file(const char *a, const char *b);

/* Read a whole file into memory from `a`. Fails with VITQ_ERR_IO naming the path. */
vitq_status vitq_i_read_file(const vitq_allocator *a, const char *path, uint8_t **data, size_t *size);
/* Up to `cap` bytes from the start of the file at `path` into buf, *got how many (fewer for a short
 * file). Fails with VITQ_ERR_IO naming the path. */
vitq_status vitq_i_read_file_head(const char *path, void *buf, size_t cap, size_t *got);

/* A file read piece by piece (a safetensors file read tensor by tensor, so that loading never holds
 * the whole file): open gives its size, read_at n bytes at an offset (1 on success), close ends it. */
typedef struct vitq_i_file vitq_i_file;
vitq_status vitq_i_file_open(const char *path, const char *name, vitq_i_file **out, uint64_t *size);
int vitq_i_file_read_at(vitq_i_file *f, uint64_t at, void *dst, size_t n);
void vitq_i_file_close(vitq_i_file *f);
/* 1 if `path` is an existing regular file or directory. */
int vitq_i_path_is_dir(const char *path);
int vitq_i_path_exists(const char *path);

#endif
