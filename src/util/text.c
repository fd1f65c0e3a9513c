/* The growing string of text.h. */
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void vitq_i_text_append(vitq_i_text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *grown = vitq_i_alloc(t->a, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        if (t->s) memcpy(grown, t->s, t->len + 1);
        vitq_i_free(t->a, t->s);
        t->s = grown;
        t->cap = cap;
    }
}

void vitq_i_text_free(vitq_i_text *t) {
    vitq_i_free(t->a, t->s);
    t->s = NULL;
    t->len = t->cap = 0;
    t->failed = 0;
}
