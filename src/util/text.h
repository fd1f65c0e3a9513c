/* A growing string for writing JSON and other text: appends never fail one by one; the first
 * failure (out of memory) sticks in `failed` and later appends do nothing, so a writer appends
 * everything and checks once. */
#ifndef VITQ_UTIL_TEXT_H
#define VITQ_UTIL_TEXT_H

#include <stddef.h>

#include "core/core.h"

typedef struct vitq_i_text {
    const vitq_allocator *a;
    char *s; /* NUL-terminated once anything was appended; NULL before */
    size_t len, cap;
    int failed;
} vitq_i_text;

/* printf-style append. */
void vitq_i_text_append(vitq_i_text *t, const char *fmt, ...) VITQ_I_PRINTF(2, 3);
/* Free the string and reset t (its allocator stays). */
void vitq_i_text_free(vitq_i_text *t);

#endif
