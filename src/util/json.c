/* Strict JSON parser (RFC 8259) into an arena-allocated tree; see json.h for the rules. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/json.h"

/* ---------------------------------------------------------------------------------------------- */
/* Arena: nodes, strings and member arrays are carved from a few large blocks, so a header with      */
/* thousands of tensors costs a handful of allocator calls and one free walk.                        */
/* ---------------------------------------------------------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t size, used; /* bytes of payload after the (padded) header */
} arena_block;

/* Payload starts after the header rounded up, so it keeps the allocator's 64-byte alignment. */
#define ARENA_HEADER ((sizeof(arena_block) + 63) & ~(size_t)63)
#define ARENA_MIN_BLOCK ((size_t)4096)
#define ARENA_MAX_BLOCK ((size_t)1 << 24)

typedef struct {
    const vitq_allocator *a;
    arena_block *blocks;
    size_t next_size; /* payload size of the next block: grows so big inputs need few blocks */
} arena;

static void arena_release(arena *ar) {
    arena_block *b = ar->blocks;
    while (b) {
        arena_block *next = b->next;
        vitq_i_free(ar->a, b);
        b = next;
    }
    ar->blocks = NULL;
}

/* `size` bytes aligned to `align` (a power of two <= 64), or NULL when memory runs out. */
static void *arena_alloc(arena *ar, size_t size, size_t align) {
    arena_block *b = ar->blocks;
    if (b) {
        size_t at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->size && size <= b->size - at) {
            b->used = at + size;
            return (char *)b + ARENA_HEADER + at;
        }
    }
    size_t payload = ar->next_size;
    if (payload < size) payload = size;
    size_t total;
    if (!vitq_i_add_size(payload, ARENA_HEADER, &total)) return NULL;
    b = vitq_i_alloc(ar->a, total);
    if (!b) return NULL;
    b->next = ar->blocks;
    b->size = payload;
    b->used = size;
    ar->blocks = b;
    ar->next_size = ar->next_size < ARENA_MAX_BLOCK / 2 ? ar->next_size * 2 : ARENA_MAX_BLOCK;
    return (char *)b + ARENA_HEADER;
}

/* ---------------------------------------------------------------------------------------------- */
/* Parser state                                                                                    */
/* ---------------------------------------------------------------------------------------------- */

/* A key seen in an open object: kept with its position to report the second of two equal keys. */
typedef struct {
    const char *s;
    size_t len;
    size_t pos;
} key_entry;

typedef struct {
    const char *text;
    size_t len, pos;
    const char *name;
    arena ar;
    /* Members of the containers being parsed, innermost last; copied to the arena (exactly sized)
     * when a container closes, so the tree needs no reallocation. */
    vitq_i_json **values;
    size_t nvalues, cap_values;
    key_entry *keys;
    size_t nkeys, cap_keys;
    int depth;
} parser;

/* The whole tree is owned by the arena; the root node sits in a document that remembers it. */
typedef struct {
    vitq_i_json root; /* first member: vitq_i_json_free() casts the root back to the document */
    arena ar;
} json_doc;

static vitq_status fail_at(const parser *p, size_t pos, const char *fmt, ...) VITQ_I_PRINTF(3, 4);

static vitq_status fail_at(const parser *p, size_t pos, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* Line and column are counted only on failure: the hot path never tracks them. */
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return vitq_i_fail(VITQ_ERR_FORMAT, "%s: line %zu col %zu: %s", p->name, line, col, what);
}

static vitq_status fail_oom(const parser *p, size_t bytes) {
    return vitq_i_fail(VITQ_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for the JSON tree",
                       p->name, bytes);
}

/* Room for one more item on a stack of `elem`-sized items: returns the (possibly moved) stack, or
 * NULL with the error set. Capacity doubles, so pushes cost amortised O(1). */
static void *stack_reserve(const parser *p, void *stack, size_t used, size_t *cap, size_t elem) {
    if (used < *cap) return stack;
    size_t new_cap = *cap ? *cap * 2 : 64, bytes;
    if (!vitq_i_mul_size(new_cap, elem, &bytes)) {
        fail_oom(p, SIZE_MAX);
        return NULL;
    }
    void *grown = vitq_i_alloc(p->ar.a, bytes);
    if (!grown) {
        fail_oom(p, bytes);
        return NULL;
    }
    if (used) memcpy(grown, stack, used * elem);
    vitq_i_free(p->ar.a, stack);
    *cap = new_cap;
    return grown;
}

static int at_end(const parser *p) { return p->pos >= p->len; }

static unsigned char peek(const parser *p) { return (unsigned char)p->text[p->pos]; }

static void skip_space(parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Describe the byte at `pos` for an error message. */
static const char *describe_byte(const parser *p, size_t pos, char *buf, size_t cap) {
    if (pos >= p->len) return "end of input";
    unsigned char c = (unsigned char)p->text[pos];
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

static vitq_i_json *new_node(parser *p, vitq_i_json_type type) {
    vitq_i_json *n = arena_alloc(&p->ar, sizeof *n, 16);
    if (n) {
        memset(n, 0, sizeof *n);
        n->type = type;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------- */
/* Strings                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at text[at..at+4) (all before `end`) into *cp. */
static int read_hex4(const parser *p, size_t at, size_t end, unsigned *cp) {
    if (end - at < 4) return 0;
    unsigned v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = hex_value((unsigned char)p->text[at + i]);
        if (h < 0) return 0;
        v = v * 16 + (unsigned)h;
    }
    *cp = v;
    return 1;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at text[at..end), or 0 when it is not one (overlong
 * forms, encoded surrogates and code points above U+10FFFF are all ill-formed: RFC 3629). */
static size_t utf8_sequence(const parser *p, size_t at, size_t end) {
    const unsigned char *s = (const unsigned char *)p->text + at;
    size_t avail = end - at, n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        if (s[0] == 0xE0) lo = 0xA0; /* below: overlong */
        if (s[0] == 0xED) hi = 0x9F; /* above: UTF-16 surrogates */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        if (s[0] == 0xF0) lo = 0x90; /* below: overlong */
        if (s[0] == 0xF4) hi = 0x8F; /* above: beyond U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* Parse the string whose opening quote is at p->pos into arena memory (decoded, NUL-terminated). */
static vitq_status parse_string(parser *p, const char **out, size_t *out_len) {
    size_t open = p->pos, begin = open + 1, end = begin;
    /* Find the closing quote first so the decoded copy can be sized: decoding never grows text. */
    while (end < p->len && p->text[end] != '"') end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail_at(p, open, "unterminated string");
    char *dst = arena_alloc(&p->ar, end - begin + 1, 1);
    if (!dst) return fail_oom(p, end - begin + 1);
    size_t n = 0, i = begin;
    while (i < end) {
        unsigned char c = (unsigned char)p->text[i];
        if (c < 0x20)
            return fail_at(p, i, "control character 0x%02x in a string (must be escaped)", c);
        if (c >= 0x80) {
            size_t len = utf8_sequence(p, i, end);
            if (!len) return fail_at(p, i, "invalid UTF-8 byte 0x%02x in a string", c);
            memcpy(dst + n, p->text + i, len);
            n += len;
            i += len;
            continue;
        }
        if (c != '\\') {
            dst[n++] = (char)c;
            i++;
            continue;
        }
        unsigned char e = (unsigned char)p->text[i + 1]; /* i + 1 < end: the scan skipped pairs */
        static const char plain_from[] = "\"\\/bfnrt", plain_to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(plain_from, e) : NULL;
        if (hit) {
            dst[n++] = plain_to[hit - plain_from];
            i += 2;
            continue;
        }
        if (e != 'u') {
            char d[16];
            return fail_at(p, i, "invalid escape '\\' followed by %s", describe_byte(p, i + 1, d, sizeof d));
        }
        unsigned cp;
        if (!read_hex4(p, i + 2, end, &cp)) return fail_at(p, i, "\\u must be followed by 4 hex digits");
        size_t esc = i;
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail_at(p, esc, "lone low surrogate \\u%04X in a string", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* UTF-16 pair: the high half must be followed at once by an escaped low half. */
            unsigned low;
            if (end - i < 2 || p->text[i] != '\\' || p->text[i + 1] != 'u' ||
                !read_hex4(p, i + 2, end, &low) || low < 0xDC00 || low > 0xDFFF)
                return fail_at(p, esc, "high surrogate \\u%04X not followed by a low surrogate", cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
        }
        n += put_utf8(dst + n, cp);
    }
    dst[n] = '\0';
    p->pos = end + 1;
    *out = dst;
    *out_len = n;
    return VITQ_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Numbers                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

static int is_digit(const parser *p, size_t at) {
    return at < p->len && p->text[at] >= '0' && p->text[at] <= '9';
}

/* strtod on the literal text[begin..end), which is not NUL-terminated and whose '.' the C library
 * reads as the current locale's decimal point: a host program may have called setlocale(). */
static vitq_status literal_to_double(parser *p, size_t begin, size_t end, double *out) {
    char small[80];
    char point[8] = ".";
    size_t n = end - begin;
    size_t cap = n + sizeof point;
    char *buf = cap <= sizeof small ? small : vitq_i_alloc(p->ar.a, cap);
    if (!buf) return fail_oom(p, cap);
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t k = 0;
        for (size_t i = begin; i < end; i++) {
            if (p->text[i] == '.') {
                memcpy(buf + k, point, strlen(point));
                k += strlen(point);
            } else {
                buf[k++] = p->text[i];
            }
        }
        buf[k] = '\0';
        char *stop;
        *out = strtod(buf, &stop);
        if ((size_t)(stop - buf) == k) break;
        /* The locale uses another decimal point: learn it from the formatter, which follows the
         * same locale, and retry once. */
        char probe[16];
        snprintf(probe, sizeof probe, "%.1f", 1.5);
        size_t plen = strlen(probe) - 2; /* between the '1' and the '5' */
        if (plen == 0 || plen >= sizeof point) plen = 1;
        memcpy(point, probe + 1, plen);
        point[plen] = '\0';
    }
    if (buf != small) vitq_i_free(p->ar.a, buf);
    return VITQ_OK;
}

static vitq_status parse_number(parser *p, vitq_i_json **out) {
    size_t begin = p->pos, i = begin;
    int negative = 0, plain = 1;
    if (p->text[i] == '-') {
        negative = 1;
        i++;
    }
    if (!is_digit(p, i)) return fail_at(p, i, "expected a digit in a number");
    if (p->text[i] == '0') {
        i++;
        if (is_digit(p, i)) return fail_at(p, i - 1, "leading zero in a number");
    } else {
        while (is_digit(p, i)) i++;
    }
    size_t int_end = i;
    if (i < p->len && p->text[i] == '.') {
        plain = 0;
        i++;
        if (!is_digit(p, i)) return fail_at(p, i, "expected a digit after the decimal point");
        while (is_digit(p, i)) i++;
    }
    if (i < p->len && (p->text[i] == 'e' || p->text[i] == 'E')) {
        plain = 0;
        i++;
        if (i < p->len && (p->text[i] == '+' || p->text[i] == '-')) i++;
        if (!is_digit(p, i)) return fail_at(p, i, "expected a digit in the exponent");
        while (is_digit(p, i)) i++;
    }
    vitq_i_json *n = new_node(p, VITQ_I_JSON_NUMBER);
    if (!n) return fail_oom(p, sizeof *n);
    vitq_status st = literal_to_double(p, begin, i, &n->number);
    if (st) return st;
    if (!isfinite(n->number)) return fail_at(p, begin, "number out of the range of a double");
    if (plain) {
        /* Exact integer value from the digits (the double loses precision above 2^53). The
         * magnitude may reach 2^63 for a negative number. */
        uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, mag = 0;
        int fits = 1;
        for (size_t k = begin + (size_t)negative; k < int_end && fits; k++) {
            unsigned d = (unsigned)(p->text[k] - '0');
            if (mag > (limit - d) / 10) fits = 0;
            else mag = mag * 10 + d;
        }
        if (fits) {
            n->is_integer = 1;
            n->integer = negative ? (mag == limit ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        }
    }
    p->pos = i;
    *out = n;
    return VITQ_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Containers                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

static vitq_status parse_value(parser *p, vitq_i_json **out);

static int key_cmp(const void *x, const void *y) {
    const key_entry *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Reject an object whose keys (entries [base, p->nkeys) of the key stack) repeat one: sort a copy of
 * the entries, report the repeated key that appears first in the text. Sorting keeps this
 * O(n log n) for safetensors headers with thousands of tensors. */
static vitq_status check_duplicates(parser *p, size_t base) {
    size_t n = p->nkeys - base;
    if (n < 2) return VITQ_OK;
    key_entry *k = p->keys + base;
    qsort(k, n, sizeof *k, key_cmp);
    size_t worst = SIZE_MAX, which = 0;
    for (size_t i = 1; i < n; i++)
        if (k[i].len == k[i - 1].len && memcmp(k[i].s, k[i - 1].s, k[i].len) == 0 && k[i].pos < worst) {
            worst = k[i].pos;
            which = i;
        }
    if (worst == SIZE_MAX) return VITQ_OK;
    int shown = k[which].len > 200 ? 200 : (int)k[which].len;
    return fail_at(p, worst, "duplicate key \"%.*s\"", shown, k[which].s);
}

/* Copy the members gathered since `vbase`/`kbase` into exactly sized arena arrays of `node`. */
static vitq_status close_container(parser *p, vitq_i_json *node, size_t vbase, size_t kbase) {
    size_t n = p->nvalues - vbase, bytes;
    node->count = n;
    if (n) {
        if (!vitq_i_mul_size(n, sizeof *node->items, &bytes)) return fail_oom(p, SIZE_MAX);
        node->items = arena_alloc(&p->ar, bytes, 16);
        if (!node->items) return fail_oom(p, bytes);
        memcpy(node->items, p->values + vbase, bytes);
    }
    if (node->type == VITQ_I_JSON_OBJECT && n) {
        /* n pointers fitted in memory above, so n pointers or sizes cannot overflow here. */
        node->keys = arena_alloc(&p->ar, n * sizeof *node->keys, 16);
        node->key_lengths = arena_alloc(&p->ar, n * sizeof *node->key_lengths, 16);
        if (!node->keys || !node->key_lengths) return fail_oom(p, n * sizeof *node->key_lengths);
        for (size_t i = 0; i < n; i++) {
            node->keys[i] = p->keys[kbase + i].s;
            node->key_lengths[i] = p->keys[kbase + i].len;
        }
        vitq_status st = check_duplicates(p, kbase);
        if (st) return st;
    }
    p->nvalues = vbase;
    p->nkeys = kbase;
    return VITQ_OK;
}

static vitq_status push_value(parser *p, vitq_i_json *v) {
    vitq_i_json **values = stack_reserve(p, p->values, p->nvalues, &p->cap_values, sizeof v);
    if (!values) return VITQ_ERR_OUT_OF_MEMORY;
    p->values = values;
    p->values[p->nvalues++] = v;
    return VITQ_OK;
}

/* Parse an array or object whose opening bracket is at p->pos. */
static vitq_status parse_container(parser *p, vitq_i_json_type type, vitq_i_json **out) {
    int is_object = type == VITQ_I_JSON_OBJECT;
    char close = is_object ? '}' : ']';
    char d[16];
    if (p->depth >= VITQ_I_JSON_MAX_DEPTH)
        return fail_at(p, p->pos, "containers nested deeper than %d levels", VITQ_I_JSON_MAX_DEPTH);
    p->depth++;
    vitq_i_json *node = new_node(p, type);
    if (!node) return fail_oom(p, sizeof *node);
    size_t vbase = p->nvalues, kbase = p->nkeys;
    p->pos++;
    skip_space(p);
    if (!at_end(p) && p->text[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            vitq_status st;
            skip_space(p);
            if (is_object) {
                if (at_end(p) || peek(p) != '"')
                    return fail_at(p, p->pos, "expected a string key, found %s",
                                   describe_byte(p, p->pos, d, sizeof d));
                key_entry k;
                k.pos = p->pos;
                st = parse_string(p, &k.s, &k.len);
                if (st) return st;
                key_entry *keys = stack_reserve(p, p->keys, p->nkeys, &p->cap_keys, sizeof k);
                if (!keys) return VITQ_ERR_OUT_OF_MEMORY;
                p->keys = keys;
                p->keys[p->nkeys++] = k;
                skip_space(p);
                if (at_end(p) || peek(p) != ':')
                    return fail_at(p, p->pos, "expected ':' after a key, found %s",
                                   describe_byte(p, p->pos, d, sizeof d));
                p->pos++;
            }
            vitq_i_json *v;
            st = parse_value(p, &v);
            if (st) return st;
            st = push_value(p, v);
            if (st) return st;
            skip_space(p);
            if (!at_end(p) && peek(p) == ',') {
                p->pos++;
                continue;
            }
            if (!at_end(p) && peek(p) == (unsigned char)close) {
                p->pos++;
                break;
            }
            return fail_at(p, p->pos, "expected ',' or '%c', found %s", close,
                           describe_byte(p, p->pos, d, sizeof d));
        }
    }
    vitq_status st = close_container(p, node, vbase, kbase);
    if (st) return st;
    p->depth--;
    *out = node;
    return VITQ_OK;
}

static vitq_status parse_literal(parser *p, const char *word, vitq_i_json_type type, int boolean,
                                 vitq_i_json **out) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return fail_at(p, p->pos, "invalid literal (expected %s)", word);
    vitq_i_json *node = new_node(p, type);
    if (!node) return fail_oom(p, sizeof *node);
    node->boolean = boolean;
    p->pos += n;
    *out = node;
    return VITQ_OK;
}

static vitq_status parse_value(parser *p, vitq_i_json **out) {
    char d[16];
    skip_space(p);
    if (at_end(p)) return fail_at(p, p->pos, "unexpected end of input, expected a value");
    unsigned char c = peek(p);
    switch (c) {
    case '{': return parse_container(p, VITQ_I_JSON_OBJECT, out);
    case '[': return parse_container(p, VITQ_I_JSON_ARRAY, out);
    case 't': return parse_literal(p, "true", VITQ_I_JSON_BOOL, 1, out);
    case 'f': return parse_literal(p, "false", VITQ_I_JSON_BOOL, 0, out);
    case 'n': return parse_literal(p, "null", VITQ_I_JSON_NULL, 0, out);
    case '"': {
        vitq_i_json *node = new_node(p, VITQ_I_JSON_STRING);
        if (!node) return fail_oom(p, sizeof *node);
        *out = node;
        return parse_string(p, &node->string, &node->length);
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, out);
        return fail_at(p, p->pos, "unexpected %s, expected a value", describe_byte(p, p->pos, d, sizeof d));
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Public entry points                                                                             */
/* ---------------------------------------------------------------------------------------------- */

vitq_status vitq_i_json_parse(const vitq_allocator *a, const char *text, size_t len, const char *name,
                              vitq_i_json **out) {
    if (!name) name = "JSON";
    if (!out || !a || (!text && len))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: JSON parser given a NULL argument", name);
    *out = NULL;
    parser p;
    memset(&p, 0, sizeof p);
    p.text = text;
    p.len = len;
    p.name = name;
    p.ar.a = a;
    /* First block sized from the input: most documents then fit in one or two blocks. */
    p.ar.next_size = len < ARENA_MIN_BLOCK ? ARENA_MIN_BLOCK : len > ARENA_MAX_BLOCK ? ARENA_MAX_BLOCK : len;

    vitq_status st = VITQ_OK;
    json_doc *doc = arena_alloc(&p.ar, sizeof *doc, 16);
    if (!doc) st = fail_oom(&p, sizeof *doc);
    /* A UTF-8 byte order mark is tolerated (RFC 8259 section 8.1 allows ignoring it). */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;
    vitq_i_json *root = NULL;
    if (!st) st = parse_value(&p, &root);
    if (!st) {
        skip_space(&p);
        if (!at_end(&p)) {
            char d[16];
            st = fail_at(&p, p.pos, "unexpected %s after the JSON value",
                         describe_byte(&p, p.pos, d, sizeof d));
        }
    }
    vitq_i_free(a, p.values);
    vitq_i_free(a, p.keys);
    if (st) {
        arena_release(&p.ar);
        return st;
    }
    doc->root = *root; /* the root's members already live in the arena; only the node is copied */
    doc->ar = p.ar;
    *out = &doc->root;
    return VITQ_OK;
}

void vitq_i_json_free(const vitq_allocator *a, vitq_i_json *root) {
    if (!root) return;
    json_doc *doc = (json_doc *)root;
    arena ar = doc->ar; /* copied out: the document itself lives in one of the blocks */
    ar.a = a;
    arena_release(&ar);
}

const char *vitq_i_json_type_name(vitq_i_json_type type) {
    switch (type) {
    case VITQ_I_JSON_NULL: return "null";
    case VITQ_I_JSON_BOOL: return "boolean";
    case VITQ_I_JSON_NUMBER: return "number";
    case VITQ_I_JSON_STRING: return "string";
    case VITQ_I_JSON_ARRAY: return "array";
    case VITQ_I_JSON_OBJECT: return "object";
    }
    return "unknown";
}

const vitq_i_json *vitq_i_json_get(const vitq_i_json *object, const char *key) {
    if (!object || object->type != VITQ_I_JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < object->count; i++)
        if (object->key_lengths[i] == n && memcmp(object->keys[i], key, n) == 0) return object->items[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Typed readers                                                                                   */
/* ---------------------------------------------------------------------------------------------- */

/* The value of `key`, or NULL (with *found = 0) when absent or null. */
static const vitq_i_json *lookup(const vitq_i_json *object, const char *key, int *found) {
    const vitq_i_json *v = vitq_i_json_get(object, key);
    if (v && v->type == VITQ_I_JSON_NULL) v = NULL;
    if (found) *found = v != NULL;
    return v;
}

static vitq_status wrong_type(const char *name, const char *key, const char *want, const vitq_i_json *v) {
    return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': expected %s, got %s", name ? name : "JSON", key,
                       want, vitq_i_json_type_name(v->type));
}

vitq_status vitq_i_json_get_int(const vitq_i_json *object, const char *key, const char *name,
                                int64_t min, int64_t max, int64_t *out, int *found) {
    const vitq_i_json *v = lookup(object, key, found);
    if (!v) return VITQ_OK;
    if (found) *found = 0;
    if (v->type != VITQ_I_JSON_NUMBER) return wrong_type(name, key, "an integer", v);
    if (!v->is_integer)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': expected an integer, got %.17g",
                           name ? name : "JSON", key, v->number);
    if (v->integer < min || v->integer > max)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': %lld is outside [%lld, %lld]",
                           name ? name : "JSON", key, (long long)v->integer, (long long)min,
                           (long long)max);
    *out = v->integer;
    if (found) *found = 1;
    return VITQ_OK;
}

vitq_status vitq_i_json_get_number(const vitq_i_json *object, const char *key, const char *name,
                                   double *out, int *found) {
    const vitq_i_json *v = lookup(object, key, found);
    if (!v) return VITQ_OK;
    if (found) *found = 0;
    if (v->type != VITQ_I_JSON_NUMBER) return wrong_type(name, key, "a number", v);
    *out = v->number;
    if (found) *found = 1;
    return VITQ_OK;
}

vitq_status vitq_i_json_get_bool(const vitq_i_json *object, const char *key, const char *name,
                                 int *out, int *found) {
    const vitq_i_json *v = lookup(object, key, found);
    if (!v) return VITQ_OK;
    if (found) *found = 0;
    if (v->type != VITQ_I_JSON_BOOL) return wrong_type(name, key, "true or false", v);
    *out = v->boolean;
    if (found) *found = 1;
    return VITQ_OK;
}

vitq_status vitq_i_json_get_string(const vitq_i_json *object, const char *key, const char *name,
                                   const char **out, int *found) {
    const vitq_i_json *v = lookup(object, key, found);
    if (!v) return VITQ_OK;
    if (found) *found = 0;
    if (v->type != VITQ_I_JSON_STRING) return wrong_type(name, key, "a string", v);
    if (strlen(v->string) != v->length)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': string contains a NUL character",
                           name ? name : "JSON", key);
    *out = v->string;
    if (found) *found = 1;
    return VITQ_OK;
}

/* The array of `key` with min..max members, or NULL when absent; fails on anything else. */
static vitq_status lookup_array(const vitq_i_json *object, const char *key, const char *name,
                                size_t min_count, size_t max_count, const vitq_i_json **arr, int *found) {
    const vitq_i_json *v = lookup(object, key, found);
    *arr = NULL;
    if (!v) return VITQ_OK;
    if (found) *found = 0;
    if (v->type != VITQ_I_JSON_ARRAY) return wrong_type(name, key, "an array", v);
    if (v->count < min_count || v->count > max_count)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': array has %zu values, expected %zu to %zu",
                           name ? name : "JSON", key, v->count, min_count, max_count);
    *arr = v;
    return VITQ_OK;
}

vitq_status vitq_i_json_get_floats(const vitq_i_json *object, const char *key, const char *name,
                                   size_t min_count, size_t max_count, float *dst, size_t *count,
                                   int *found) {
    const vitq_i_json *arr;
    vitq_status st = lookup_array(object, key, name, min_count, max_count, &arr, found);
    if (st || !arr) return st;
    /* Check every member before writing, so a failure leaves dst untouched. */
    for (size_t i = 0; i < arr->count; i++) {
        const vitq_i_json *v = arr->items[i];
        if (v->type != VITQ_I_JSON_NUMBER)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': item %zu: expected a number, got %s",
                               name ? name : "JSON", key, i, vitq_i_json_type_name(v->type));
        /* Checked on the double: converting an out-of-range double to float is undefined. */
        if (fabs(v->number) > FLT_MAX)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': item %zu (%g) overflows a float",
                               name ? name : "JSON", key, i, v->number);
    }
    for (size_t i = 0; i < arr->count; i++) dst[i] = (float)arr->items[i]->number;
    *count = arr->count;
    if (found) *found = 1;
    return VITQ_OK;
}

vitq_status vitq_i_json_get_ints(const vitq_i_json *object, const char *key, const char *name,
                                 size_t min_count, size_t max_count, int64_t *dst, size_t *count,
                                 int *found) {
    const vitq_i_json *arr;
    vitq_status st = lookup_array(object, key, name, min_count, max_count, &arr, found);
    if (st || !arr) return st;
    for (size_t i = 0; i < arr->count; i++) {
        const vitq_i_json *v = arr->items[i];
        if (v->type != VITQ_I_JSON_NUMBER || !v->is_integer)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: key '%s': item %zu is not an integer",
                               name ? name : "JSON", key, i);
    }
    for (size_t i = 0; i < arr->count; i++) dst[i] = arr->items[i]->integer;
    *count = arr->count;
    if (found) *found = 1;
    return VITQ_OK;
}
