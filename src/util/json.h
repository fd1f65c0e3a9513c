/* A small strict JSON (RFC 8259) reader that builds a read-only tree, for safetensors headers and
 * config.json files.
 *
 * Strictness: the whole input must be one value (surrounding whitespace allowed, a leading UTF-8
 * byte order mark is skipped); strings must be valid UTF-8 without raw control characters, escapes
 * are decoded (\uXXXX surrogate pairs become one code point, lone surrogates are rejected); objects
 * may not repeat a key; containers nest at most VITQ_I_JSON_MAX_DEPTH deep; numbers follow the RFC
 * grammar and must fit a finite double. Every failure is VITQ_ERR_FORMAT with the message
 * "<name>: line L col C: <what>" (out of memory: VITQ_ERR_OUT_OF_MEMORY).
 *
 * Memory: the whole tree (nodes, strings, item arrays) lives in a few large blocks taken from the
 * allocator; vitq_i_json_free() returns them all. Nodes are never modified after parsing, so one tree
 * may be read by several threads. */
#ifndef VITQ_UTIL_JSON_H
#define VITQ_UTIL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

#define VITQ_I_JSON_MAX_DEPTH 128

typedef enum vitq_i_json_type {
    VITQ_I_JSON_NULL,
    VITQ_I_JSON_BOOL,
    VITQ_I_JSON_NUMBER,
    VITQ_I_JSON_STRING,
    VITQ_I_JSON_ARRAY,
    VITQ_I_JSON_OBJECT
} vitq_i_json_type;

typedef struct vitq_i_json vitq_i_json;

struct vitq_i_json {
    vitq_i_json_type type;
    int boolean;          /* BOOL: 0 or 1 */
    /* NUMBER: 1 when the literal has no fraction and no exponent and fits int64_t; then `integer`
     * is its exact value ("1.0" and "1e2" are not integers: a strict reader wants integer syntax). */
    int is_integer;
    double number;        /* NUMBER: nearest double (also set for integers; -0 stays -0.0) */
    int64_t integer;      /* NUMBER with is_integer */
    const char *string;   /* STRING: decoded UTF-8, NUL-terminated; may hold \u0000, see length */
    size_t length;        /* STRING: bytes without the terminator */
    size_t count;         /* ARRAY / OBJECT: number of members */
    vitq_i_json **items;  /* ARRAY / OBJECT: values in document order */
    const char **keys;    /* OBJECT: keys in document order, decoded and NUL-terminated */
    size_t *key_lengths;  /* OBJECT: byte length of each key (a key may contain \u0000) */
};

/* Parse `len` bytes of `text` (need not be NUL-terminated). `name` (the file name, may be NULL)
 * prefixes error messages. On success *out is the root, freed with vitq_i_json_free(a, root);
 * on failure *out is NULL. `a` must be a resolved allocator (not NULL). */
vitq_status vitq_i_json_parse(const vitq_allocator *a, const char *text, size_t len, const char *name,
                              vitq_i_json **out);
/* Free a tree from vitq_i_json_parse() with the same allocator. NULL is a no-op. */
void vitq_i_json_free(const vitq_allocator *a, vitq_i_json *root);

/* "null", "boolean", "number", "string", "array", "object". */
const char *vitq_i_json_type_name(vitq_i_json_type type);

/* Member `key` of `object`; NULL when absent or when `object` is NULL or not an object. */
const vitq_i_json *vitq_i_json_get(const vitq_i_json *object, const char *key);

/*
 * Typed readers for config files. Each looks up `key` in `object` and:
 *  - returns VITQ_OK with *found = 0 when the key is absent or its value is null (config files use
 *    null for "not set");
 *  - returns VITQ_OK with *found = 1 and the value stored when it has the right type;
 *  - otherwise fails with VITQ_ERR_CONFIG, message "<name>: key '<key>': <what is wrong>", and
 *    leaves the outputs alone.
 * `found` may be NULL when the caller does not need to tell absence apart.
 */
/* An integer literal (see is_integer) within [min, max]. */
vitq_status vitq_i_json_get_int(const vitq_i_json *object, const char *key, const char *name,
                                int64_t min, int64_t max, int64_t *out, int *found);
/* Any number. */
vitq_status vitq_i_json_get_number(const vitq_i_json *object, const char *key, const char *name,
                                   double *out, int *found);
/* true or false, stored as 1 or 0. */
vitq_status vitq_i_json_get_bool(const vitq_i_json *object, const char *key, const char *name,
                                 int *out, int *found);
/* A string without \u0000 (so the C string is the whole value); points into the tree. */
vitq_status vitq_i_json_get_string(const vitq_i_json *object, const char *key, const char *name,
                                   const char **out, int *found);
/* An array of min_count..max_count numbers, each finite as a float, stored into dst[0..*count). */
vitq_status vitq_i_json_get_floats(const vitq_i_json *object, const char *key, const char *name,
                                   size_t min_count, size_t max_count, float *dst, size_t *count,
                                   int *found);
/* An array of min_count..max_count integer literals, stored into dst[0..*count). */
vitq_status vitq_i_json_get_ints(const vitq_i_json *object, const char *key, const char *name,
                                 size_t min_count, size_t max_count, int64_t *dst, size_t *count,
                                 int *found);

#endif
