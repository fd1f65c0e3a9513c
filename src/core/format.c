/* The freestanding subset's vsnprintf (format.h). */
#include "core/format.h"

#include <stdint.h>
#include <string.h>

typedef struct sink {
    char *buf;
    size_t size, len; /* len: characters the whole text has so far */
} sink;

static void put(sink *s, char c) {
    if (s->len + 1 < s->size) s->buf[s->len] = c;
    s->len++;
}

/* `text` of n characters padded to `width` (left-justified when `left`; '0' pads after a sign). */
static void put_field(sink *s, const char *text, size_t n, int width, int left, int zero) {
    size_t pad = width > 0 && (size_t)width > n ? (size_t)width - n : 0;
    if (zero && !left && n > 0 && text[0] == '-') {
        put(s, '-');
        text++, n--;
    }
    if (!left)
        for (size_t i = 0; i < pad; i++) put(s, zero ? '0' : ' ');
    for (size_t i = 0; i < n; i++) put(s, text[i]);
    if (left)
        for (size_t i = 0; i < pad; i++) put(s, ' ');
}

/* The digits of v in `base` (10 or 16), after a '-' when neg, at the end of tmp; returns the start. */
static char *digits(uintmax_t v, int neg, unsigned base, int upper, char *end) {
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = end;
    do {
        *--p = set[v % base];
        v /= base;
    } while (v);
    if (neg) *--p = '-';
    return p;
}

enum { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T };

static intmax_t signed_arg(va_list *ap, int len) {
    switch (len) {
    case LEN_L: return va_arg(*ap, long);
    case LEN_LL: return va_arg(*ap, long long);
    case LEN_Z: return (intmax_t)va_arg(*ap, size_t);
    case LEN_J: return va_arg(*ap, intmax_t);
    case LEN_T: return va_arg(*ap, ptrdiff_t);
    case LEN_HH: return (signed char)va_arg(*ap, int);
    case LEN_H: return (short)va_arg(*ap, int);
    default: return va_arg(*ap, int);
    }
}

static uintmax_t unsigned_arg(va_list *ap, int len) {
    switch (len) {
    case LEN_L: return va_arg(*ap, unsigned long);
    case LEN_LL: return va_arg(*ap, unsigned long long);
    case LEN_Z: return va_arg(*ap, size_t);
    case LEN_J: return va_arg(*ap, uintmax_t);
    case LEN_T: return (uintmax_t)va_arg(*ap, ptrdiff_t);
    case LEN_HH: return (unsigned char)va_arg(*ap, unsigned);
    case LEN_H: return (unsigned short)va_arg(*ap, unsigned);
    default: return va_arg(*ap, unsigned);
    }
}

int vitq_i_vformat(char *buf, size_t size, const char *fmt, va_list ap_in) {
    sink s = {buf, size, 0};
    va_list ap;
    va_copy(ap, ap_in);
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&s, *f);
            continue;
        }
        const char *start = f++;
        int left = 0, zero = 0, width = 0, len = LEN_NONE;
        for (;; f++) {
            if (*f == '-') left = 1;
            else if (*f == '0') zero = 1;
            else break;
        }
        while (*f >= '0' && *f <= '9' && width < 10000) width = width * 10 + (*f++ - '0');
        if (*f == 'h' || *f == 'l') {
            int twice = f[1] == f[0];
            len = *f == 'h' ? (twice ? LEN_HH : LEN_H) : (twice ? LEN_LL : LEN_L);
            f += twice ? 2 : 1;
        } else if (*f == 'z' || *f == 'j' || *f == 't') {
            len = *f == 'z' ? LEN_Z : *f == 'j' ? LEN_J : LEN_T;
            f++;
        }
        char tmp[48], *end = tmp + sizeof tmp;
        switch (*f) {
        case 'd':
        case 'i': {
            intmax_t v = signed_arg(&ap, len);
            /* the magnitude without negating INTMAX_MIN */
            uintmax_t m = v < 0 ? (uintmax_t)0 - (uintmax_t)v : (uintmax_t)v;
            char *p = digits(m, v < 0, 10, 0, end);
            put_field(&s, p, (size_t)(end - p), width, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            char *p = digits(unsigned_arg(&ap, len), 0, *f == 'u' ? 10 : 16, *f == 'X', end);
            put_field(&s, p, (size_t)(end - p), width, left, zero);
            break;
        }
        case 'c': tmp[0] = (char)va_arg(ap, int), put_field(&s, tmp, 1, width, left, 0); break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str) str = "(null)";
            put_field(&s, str, strlen(str), width, left, 0);
            break;
        }
        case '%': put(&s, '%'); break;
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
            /* no floating point here: the value is skipped (a double is only copied, never computed on) */
            (void)va_arg(ap, double);
            put_field(&s, "?", 1, width, left, 0);
            break;
        case '\0': /* a lone '%' at the end */
            f--;
            for (const char *c = start; c <= f; c++) put(&s, *c);
            break;
        default:
            for (const char *c = start; c <= f; c++) put(&s, *c);
        }
    }
    va_end(ap);
    if (size > 0) buf[s.len < size ? s.len : size - 1] = '\0';
    return s.len > INT32_MAX ? INT32_MAX : (int)s.len;
}
