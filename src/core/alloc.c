/* Allocation through the allocator each handle keeps. The default allocator aligns to 64 bytes so
 * that kernels may use aligned vector loads on any buffer vitq allocates. */
#include <stdlib.h>
#include <string.h>

#include "core/abi.h"

#define VITQ_I_ALIGN 64

/* The freestanding subset (VITQ_FREESTANDING, docs/firmware.md) has no heap: no default allocator, so
 * that linking the library pulls in neither malloc nor posix_memalign (which bare-metal C libraries lack);
 * a caller's allocator still works. */
#if !defined(VITQ_FREESTANDING)
static void *default_alloc(void *user, size_t size, size_t align) {
    (void)user;
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size ? size : 1) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}
#endif

vitq_status vitq_i_allocator_resolve(const vitq_allocator *in, vitq_allocator *out) {
    if (!in) {
#if defined(VITQ_FREESTANDING)
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "allocator: NULL, and a freestanding build has no default "
                           "allocator");
#else
        out->struct_size = sizeof *out;
        out->alloc = default_alloc;
        out->free = default_free;
        out->user = NULL;
        return VITQ_OK;
#endif
    }
    vitq_status st = vitq_i_check_struct_size(in->struct_size, VITQ_I_V1_ALLOCATOR, "allocator", "vitq_allocator");
    if (st) return st;
    memset(out, 0, sizeof *out);
    vitq_i_struct_in(out, sizeof *out, in, in->struct_size);
    if (!out->alloc || !out->free)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "allocator: alloc and free must both be set");
    return VITQ_OK;
}

void *vitq_i_alloc(const vitq_allocator *a, size_t size) {
    return a->alloc(a->user, size ? size : 1, VITQ_I_ALIGN);
}

void *vitq_i_alloc_array(const vitq_allocator *a, size_t count, size_t elem) {
    size_t bytes;
    if (!vitq_i_mul_size(count, elem, &bytes)) return NULL;
    return vitq_i_alloc(a, bytes);
}

void *vitq_i_calloc(const vitq_allocator *a, size_t count, size_t elem) {
    size_t bytes;
    if (!vitq_i_mul_size(count, elem, &bytes)) return NULL;
    void *p = vitq_i_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void vitq_i_free(const vitq_allocator *a, void *ptr) {
    if (ptr) a->free(a->user, ptr);
}

char *vitq_i_strdup(const vitq_allocator *a, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = vitq_i_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

vitq_status vitq_i_carve_workspace(const vitq_allocator *a, const size_t *sizes, float **const *slots, int count,
                                   float **block) {
    size_t total = 0, rounded;
    *block = NULL;
    for (int s = 0; s < count; s++) /* 16 floats: every slot 64-byte aligned */
        if (!vitq_i_add_size(sizes[s], 15, &rounded) || !vitq_i_add_size(total, rounded & ~(size_t)15, &total))
            return vitq_i_oom("forward workspace", SIZE_MAX);
    *block = vitq_i_alloc_array(a, total, sizeof(float));
    if (!*block) return vitq_i_oom("forward workspace", total > SIZE_MAX / sizeof(float) ? SIZE_MAX : total * sizeof(float));
    float *p = *block;
    for (int s = 0; s < count; s++) {
        /* An empty slot is NULL, not a pointer at its neighbour: code that writes to a slot it did not
         * size then faults at once instead of corrupting the next one. */
        *slots[s] = sizes[s] ? p : NULL;
        p += (sizes[s] + 15) & ~(size_t)15;
    }
    return VITQ_OK;
}

vitq_status vitq_i_grow_array(const vitq_allocator *a, void **array, size_t *cap, size_t need, size_t elem,
                              const char *what) {
    if (need <= *cap) return VITQ_OK;
    size_t c = *cap ? *cap : 16, bytes;
    while (c < need)
        if (!vitq_i_mul_size(c, 2, &c)) return vitq_i_oom(what, SIZE_MAX);
    if (!vitq_i_mul_size(c, elem, &bytes)) return vitq_i_oom(what, SIZE_MAX);
    uint8_t *p = vitq_i_alloc(a, bytes);
    if (!p) return vitq_i_oom(what, bytes);
    if (*cap) memcpy(p, *array, *cap * elem);
    memset(p + *cap * elem, 0, bytes - *cap * elem); /* new slots start zeroed */
    vitq_i_free(a, *array);
    *array = p;
    *cap = c;
    return VITQ_OK;
}
