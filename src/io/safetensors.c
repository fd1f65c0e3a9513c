/* safetensors reader: header validation (the order is documented in safetensors.h), name lookup,
 * and widening of F32/F16/BF16 tensors to float. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "util/json.h"

/* Supported dtypes, spelled as safetensors spells them. */
static const struct {
    const char *name;
    vitq_i_elem elem;
} dtype_table[] = {
    {"BOOL", VITQ_I_ELEM_BOOL}, {"U8", VITQ_I_ELEM_U8},     {"I8", VITQ_I_ELEM_I8},
    {"I16", VITQ_I_ELEM_I16},   {"U16", VITQ_I_ELEM_U16},   {"F16", VITQ_I_ELEM_F16},
    {"BF16", VITQ_I_ELEM_BF16}, {"I32", VITQ_I_ELEM_I32},   {"U32", VITQ_I_ELEM_U32},
    {"F32", VITQ_I_ELEM_F32},   {"F64", VITQ_I_ELEM_F64},   {"I64", VITQ_I_ELEM_I64},
    {"U64", VITQ_I_ELEM_U64},
};

/* Valid safetensors dtypes vitq has no element type for: told apart from typos in the message. */
static const char *const unsupported_dtypes[] = {"C64",         "F8_E5M2",     "F8_E4M3", "F8_E8M0",
                                                 "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4",      "F6_E2M3",
                                                 "F6_E3M2"};

#define METADATA_KEY "__metadata__"

static vitq_status tensor_fail(vitq_status status, const char *file, const char *tensor, const char *fmt,
                               ...) VITQ_I_PRINTF(4, 5);

/* Fail with "<file>: tensor '<tensor>': <what>". */
static vitq_status tensor_fail(vitq_status status, const char *file, const char *tensor, const char *fmt,
                               ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return vitq_i_fail(status, "%s: tensor '%s': %s", file, tensor, what);
}

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int is_metadata_key(const vitq_i_json *root, size_t i) {
    return root->key_lengths[i] == sizeof METADATA_KEY - 1 &&
           memcmp(root->keys[i], METADATA_KEY, sizeof METADATA_KEY - 1) == 0;
}

/* A JSON value that is a non-negative integer literal no larger than SIZE_MAX. */
static int read_size(const vitq_i_json *v, size_t *out) {
    if (v->type != VITQ_I_JSON_NUMBER || !v->is_integer || v->integer < 0) return 0;
    if ((uint64_t)v->integer > SIZE_MAX) return 0;
    *out = (size_t)v->integer;
    return 1;
}

static vitq_status read_dtype(const char *file, const char *tname, const vitq_i_json *v, vitq_i_elem *out) {
    if (v->type != VITQ_I_JSON_STRING)
        return tensor_fail(VITQ_ERR_FORMAT, file, tname, "dtype: expected a string, got %s",
                           vitq_i_json_type_name(v->type));
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(v->string, dtype_table[i].name) == 0 && strlen(v->string) == v->length) {
            *out = dtype_table[i].elem;
            return VITQ_OK;
        }
    for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof unsupported_dtypes[0]; i++)
        if (strcmp(v->string, unsupported_dtypes[i]) == 0)
            return tensor_fail(VITQ_ERR_DTYPE, file, tname,
                               "dtype %s is valid safetensors but not supported by vitq", v->string);
    return tensor_fail(VITQ_ERR_DTYPE, file, tname, "unknown dtype '%.64s'", v->string);
}

/* Check one tensor entry (rule c of safetensors.h) and fill everything of *t but name and data. */
static vitq_status read_entry(const char *file, const char *tname, const vitq_i_json *e, vitq_i_st_tensor *t) {
    if (e->type != VITQ_I_JSON_OBJECT)
        return tensor_fail(VITQ_ERR_FORMAT, file, tname, "expected an object, got %s",
                           vitq_i_json_type_name(e->type));
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    const vitq_i_json *f[3];
    for (int k = 0; k < 3; k++) {
        f[k] = vitq_i_json_get(e, fields[k]);
        if (!f[k]) return tensor_fail(VITQ_ERR_FORMAT, file, tname, "missing \"%s\"", fields[k]);
    }
    /* All three are present and keys are unique, so any fourth key is an unknown field. */
    if (e->count != 3) {
        for (size_t i = 0; i < e->count; i++) {
            int known = 0;
            for (int k = 0; k < 3; k++)
                known |= e->key_lengths[i] == strlen(fields[k]) && strcmp(e->keys[i], fields[k]) == 0;
            if (!known)
                return tensor_fail(VITQ_ERR_FORMAT, file, tname, "unknown field \"%.64s\"", e->keys[i]);
        }
    }

    vitq_status st = read_dtype(file, tname, f[0], &t->array.elem);
    if (st) return st;

    const vitq_i_json *shape = f[1];
    if (shape->type != VITQ_I_JSON_ARRAY)
        return tensor_fail(VITQ_ERR_FORMAT, file, tname, "shape: expected an array, got %s",
                           vitq_i_json_type_name(shape->type));
    if (shape->count > VITQ_I_MAX_DIMS)
        return tensor_fail(VITQ_ERR_FORMAT, file, tname, "shape has %zu dimensions, at most %d supported",
                           shape->count, VITQ_I_MAX_DIMS);
    t->array.ndim = (int)shape->count;
    for (size_t i = 0; i < shape->count; i++) {
        const vitq_i_json *d = shape->items[i];
        if (d->type != VITQ_I_JSON_NUMBER || !d->is_integer || d->integer < 0)
            return tensor_fail(VITQ_ERR_FORMAT, file, tname,
                               "shape entry %zu is not a non-negative integer", i);
        t->array.shape[i] = (uint64_t)d->integer;
    }

    const vitq_i_json *offs = f[2];
    if (offs->type != VITQ_I_JSON_ARRAY || offs->count != 2 || !read_size(offs->items[0], &t->begin) ||
        !read_size(offs->items[1], &t->end))
        return tensor_fail(VITQ_ERR_FORMAT, file, tname,
                           "data_offsets must be two non-negative integers [begin, end]");
    if (t->begin > t->end)
        return tensor_fail(VITQ_ERR_FORMAT, file, tname, "data_offsets [%zu, %zu] end before they begin",
                           t->begin, t->end);

    /* Bytes the shape needs. A zero dimension makes the tensor empty whatever the others say, so
     * it is tested first: otherwise [2^40, 2^40, 0] would look like an overflow. */
    char shape_buf[160];
    size_t count = 0, need = 0;
    int empty = 0;
    for (int i = 0; i < t->array.ndim; i++) empty |= t->array.shape[i] == 0;
    if (!empty && (!vitq_i_shape_count_u64(t->array.ndim, t->array.shape, SIZE_MAX, &count) ||
                   !vitq_i_mul_size(count, vitq_i_elem_size(t->array.elem), &need)))
        return tensor_fail(VITQ_ERR_SHAPE, file, tname, "shape %s of %s needs more bytes than memory holds",
                           vitq_i_shape_str(&t->array, shape_buf, sizeof shape_buf),
                           vitq_i_elem_name(t->array.elem));
    if (need != t->end - t->begin)
        return tensor_fail(VITQ_ERR_SHAPE, file, tname, "shape %s of %s needs %zu bytes, offsets give %zu",
                           vitq_i_shape_str(&t->array, shape_buf, sizeof shape_buf),
                           vitq_i_elem_name(t->array.elem), need, t->end - t->begin);
    t->array.nbytes = need;
    return VITQ_OK;
}

/* Rule d: __metadata__ is an object of strings (null: none). Returns its entry count in *count. */
static vitq_status check_metadata(const char *file, const vitq_i_json *meta, size_t *count) {
    *count = 0;
    if (!meta || meta->type == VITQ_I_JSON_NULL) return VITQ_OK;
    if (meta->type != VITQ_I_JSON_OBJECT)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: __metadata__: expected an object of strings, got %s", file,
                           vitq_i_json_type_name(meta->type));
    for (size_t i = 0; i < meta->count; i++) {
        const vitq_i_json *v = meta->items[i];
        if (v->type != VITQ_I_JSON_STRING)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: __metadata__ key '%s': expected a string, got %s",
                               file, meta->keys[i], vitq_i_json_type_name(v->type));
        /* Keys and values are handed out as C strings: an embedded NUL would silently cut them. */
        if (strlen(meta->keys[i]) != meta->key_lengths[i] || strlen(v->string) != v->length)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: __metadata__ key '%s' contains a NUL character", file,
                               meta->keys[i]);
    }
    *count = meta->count;
    return VITQ_OK;
}

typedef struct {
    size_t begin, end, index;
} range;

static int range_cmp(const void *x, const void *y) {
    const range *a = x, *b = y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Rules e and f: the non-empty tensors tile the data section exactly. */
static vitq_status check_layout(const vitq_i_safetensors *s) {
    size_t nonempty = 0;
    for (size_t i = 0; i < s->count; i++) nonempty += s->tensors[i].end > s->tensors[i].begin;
    range *r = vitq_i_alloc_array(&s->alloc, nonempty, sizeof *r);
    if (!r) return vitq_i_oom("safetensors layout check", nonempty * sizeof *r);
    size_t k = 0;
    for (size_t i = 0; i < s->count; i++)
        if (s->tensors[i].end > s->tensors[i].begin)
            r[k++] = (range){s->tensors[i].begin, s->tensors[i].end, i};
    qsort(r, nonempty, sizeof *r, range_cmp);

    vitq_status st = VITQ_OK;
    size_t total = 0;
    for (size_t i = 0; i < nonempty && !st; i++) {
        if (r[i].begin > total)
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: bytes [%zu,%zu) belong to no tensor (next is '%s')",
                             s->name, total, r[i].begin, s->tensors[r[i].index].name);
        else if (r[i].begin < total) /* r[i-1] ended at `total`: i > 0 since total starts at 0 */
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: tensors '%s' [%zu,%zu) and '%s' [%zu,%zu) overlap",
                             s->name, s->tensors[r[i - 1].index].name, r[i - 1].begin, r[i - 1].end,
                             s->tensors[r[i].index].name, r[i].begin, r[i].end);
        total = r[i].end;
    }
    vitq_i_free(&s->alloc, r);
    if (st) return st;

    for (size_t i = 0; i < s->count; i++)
        if (s->tensors[i].begin > total)
            return tensor_fail(VITQ_ERR_FORMAT, s->name, s->tensors[i].name,
                               "empty tensor at offset %zu lies past the %zu bytes of tensor data",
                               s->tensors[i].begin, total);
    if (total > s->data_size)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: tensors need %zu bytes of data, file has %zu: truncated",
                           s->name, total, s->data_size);
    if (total < s->data_size)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: %zu trailing bytes after the %zu bytes of tensor data",
                           s->name, s->data_size - total, total);
    return VITQ_OK;
}

static int by_name_cmp(const void *x, const void *y) {
    const vitq_i_st_tensor *const *a = x, *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

/* Copy `len` bytes plus a terminator to *cursor and advance it. */
static char *put_string(char **cursor, const char *s, size_t len) {
    char *at = *cursor;
    memcpy(at, s, len);
    at[len] = '\0';
    *cursor += len + 1;
    return at;
}

/* Copy names, metadata and the file name out of the JSON tree (which is freed after parsing) into
 * one block, and build the name index. */
static vitq_status copy_strings(vitq_i_safetensors *s, const vitq_i_json *root, const vitq_i_json *meta,
                                const char *file) {
    size_t file_len = strlen(file), bytes = file_len + 1;
    /* Each name, key and value is shorter than the header (<= 100 MB), so these sums cannot wrap. */
    for (size_t i = 0; i < root->count; i++)
        if (!is_metadata_key(root, i)) bytes += root->key_lengths[i] + 1;
    for (size_t i = 0; i < s->meta_count; i++) bytes += meta->key_lengths[i] + meta->items[i]->length + 2;
    s->strings = vitq_i_alloc(&s->alloc, bytes);
    s->by_name = vitq_i_alloc_array(&s->alloc, s->count, sizeof *s->by_name);
    if (s->meta_count) {
        s->meta_keys = vitq_i_alloc_array(&s->alloc, s->meta_count, sizeof *s->meta_keys);
        s->meta_values = vitq_i_alloc_array(&s->alloc, s->meta_count, sizeof *s->meta_values);
    }
    if (!s->strings || !s->by_name || (s->meta_count && (!s->meta_keys || !s->meta_values)))
        return vitq_i_fail(VITQ_ERR_OUT_OF_MEMORY, "%s: cannot allocate the tensor index", file);

    char *cursor = s->strings;
    s->name = put_string(&cursor, file, file_len);
    size_t k = 0;
    for (size_t i = 0; i < root->count; i++)
        if (!is_metadata_key(root, i)) s->tensors[k++].name = put_string(&cursor, root->keys[i], root->key_lengths[i]);
    for (size_t i = 0; i < s->meta_count; i++) {
        s->meta_keys[i] = put_string(&cursor, meta->keys[i], meta->key_lengths[i]);
        s->meta_values[i] = put_string(&cursor, meta->items[i]->string, meta->items[i]->length);
    }
    for (size_t i = 0; i < s->count; i++) s->by_name[i] = &s->tensors[i];
    qsort(s->by_name, s->count, sizeof *s->by_name, by_name_cmp);
    return VITQ_OK;
}

/* Rules c to f on a parsed header `root`; fills *s (whose alloc, data and sizes are set). */
static vitq_status build(vitq_i_safetensors *s, const vitq_i_json *root, const char *file) {
    const vitq_i_json *meta = vitq_i_json_get(root, METADATA_KEY);
    s->count = root->count - (meta != NULL);
    s->tensors = vitq_i_calloc(&s->alloc, s->count, sizeof *s->tensors);
    if (!s->tensors) return vitq_i_oom("safetensors tensor table", s->count * sizeof *s->tensors);

    size_t k = 0;
    for (size_t i = 0; i < root->count; i++) {
        if (is_metadata_key(root, i)) continue;
        const char *tname = root->keys[i];
        /* Names are used as C strings: an embedded NUL would make two distinct keys collide. */
        if (strlen(tname) != root->key_lengths[i])
            return tensor_fail(VITQ_ERR_FORMAT, file, tname, "name contains a NUL character");
        vitq_status st = read_entry(file, tname, root->items[i], &s->tensors[k++]);
        if (st) return st;
    }
    vitq_status st = check_metadata(file, meta, &s->meta_count);
    if (st) return st;
    /* Duplicate names were already rejected by the JSON parser (duplicate keys), so every name is
     * unique; copying them now lets the layout messages below name the tensors. */
    st = copy_strings(s, root, meta, file);
    if (st) return st;
    st = check_layout(s);
    if (st) return st;
    if (s->data) /* a file's tensors are read on request */
        for (size_t i = 0; i < s->count; i++) s->tensors[i].array.data = s->data + s->tensors[i].begin;
    return VITQ_OK;
}

/* The header length of the first 8 bytes, checked against the `n` bytes of the file (rule a). */
static vitq_status read_header_size(const uint8_t *first8, size_t n, const char *name, size_t *header_size) {
    if (n < 8)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: file of %zu bytes is too short for the 8-byte header length",
                           name, n);
    uint64_t header_len = read_le64(first8);
    if (header_len > n - 8)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: header length %llu past end of file of size %zu", name,
                           (unsigned long long)header_len, n);
    if (header_len > VITQ_I_ST_MAX_HEADER)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", name,
                           (unsigned long long)header_len, (unsigned long long)VITQ_I_ST_MAX_HEADER);
    *header_size = (size_t)header_len;
    return VITQ_OK;
}

/* Rules b to f on the header text (s->header_size bytes); fills *s, whose alloc and sizes are set.
 * On failure frees what *s holds. */
static vitq_status parse_header(vitq_i_safetensors *s, const char *header, const char *name) {
    vitq_status st;
    if (s->header_size == 0 || header[0] != '{') {
        st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: header does not start with '{'", name);
    } else {
        char json_name[600];
        snprintf(json_name, sizeof json_name, "%s: header", name);
        vitq_i_json *root = NULL;
        st = vitq_i_json_parse(&s->alloc, header, s->header_size, json_name, &root);
        if (!st && root->type != VITQ_I_JSON_OBJECT) /* cannot happen after '{', kept as a guard */
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: header is not a JSON object", name);
        else if (!st)
            st = build(s, root, name);
        vitq_i_json_free(&s->alloc, root);
    }
    if (st) vitq_i_st_free(s);
    return st;
}

vitq_status vitq_i_st_parse(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *name,
                            vitq_i_safetensors *out) {
    if (!name) name = "safetensors";
    if (!out || (!buf && n))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: safetensors parser given a NULL argument", name);
    memset(out, 0, sizeof *out);
    vitq_i_safetensors s;
    memset(&s, 0, sizeof s);
    vitq_status st = vitq_i_allocator_resolve(a, &s.alloc);
    if (!st) st = read_header_size(buf, n, name, &s.header_size);
    if (st) return st;
    s.data = buf + 8 + s.header_size;
    s.data_size = n - 8 - s.header_size;
    st = parse_header(&s, (const char *)buf + 8, name);
    if (!st) *out = s;
    return st;
}

vitq_status vitq_i_st_open(const vitq_allocator *a, const char *path, const char *name, vitq_i_safetensors *out) {
    if (!name) name = path ? path : "safetensors";
    if (!out || !path)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: safetensors reader given a NULL argument", name);
    memset(out, 0, sizeof *out);
    vitq_i_safetensors s;
    memset(&s, 0, sizeof s);
    vitq_status st = vitq_i_allocator_resolve(a, &s.alloc);
    if (st) return st;
    vitq_i_file *f;
    uint64_t end;
    if ((st = vitq_i_file_open(path, name, &f, &end))) return st;
    uint8_t first8[8];
    if (end > SIZE_MAX) {
        st = vitq_i_fail(VITQ_ERR_IO, "%s: %llu bytes do not fit this machine's memory", name, (unsigned long long)end);
    } else if (end >= 8 && !vitq_i_file_read_at(f, 0, first8, 8)) {
        st = vitq_i_fail(VITQ_ERR_IO, "%s: read error", name);
    } else {
        st = read_header_size(first8, (size_t)end, name, &s.header_size);
    }
    char *header = NULL;
    vitq_allocator alloc = s.alloc;
    if (!st) {
        header = vitq_i_alloc(&s.alloc, s.header_size ? s.header_size : 1);
        if (!header) st = vitq_i_oom("safetensors header", s.header_size);
        else if (!vitq_i_file_read_at(f, 8, header, s.header_size)) st = vitq_i_fail(VITQ_ERR_IO, "%s: read error", name);
    }
    if (!st) {
        s.file_data = 8 + (uint64_t)s.header_size;
        s.data_size = (size_t)end - 8 - s.header_size;
        st = parse_header(&s, header, name); /* frees s on failure */
    }
    vitq_i_free(&alloc, header); /* s's allocator is gone when parse_header failed */
    if (!st) s.pinned = vitq_i_calloc(&s.alloc, s.count ? s.count : 1, sizeof *s.pinned);
    if (!st && !s.pinned) {
        st = vitq_i_oom("safetensors tensor copies", s.count * sizeof *s.pinned);
        vitq_i_st_free(&s);
    }
    if (st) {
        vitq_i_file_close(f);
        return st;
    }
    s.file = f;
    *out = s;
    return VITQ_OK;
}

vitq_status vitq_i_st_read(const vitq_i_safetensors *st, const vitq_i_st_tensor *t, void *dst) {
    if (!st || !t || (!dst && t->array.nbytes))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "safetensors read given a NULL argument");
    if (!t->array.nbytes) return VITQ_OK;
    if (t->array.data) {
        memcpy(dst, t->array.data, t->array.nbytes);
        return VITQ_OK;
    }
    /* begin <= the data section's size, checked by the layout rules, so the sum cannot wrap */
    if (!st->file || !vitq_i_file_read_at(st->file, st->file_data + t->begin, dst, t->array.nbytes))
        return tensor_fail(VITQ_ERR_IO, st->name, t->name, "cannot read its %zu bytes at offset %llu", t->array.nbytes,
                           (unsigned long long)(st->file_data + t->begin));
    return VITQ_OK;
}

vitq_status vitq_i_st_pin(vitq_i_safetensors *st, vitq_i_st_tensor *t) {
    if (t->array.data || !t->array.nbytes) return VITQ_OK;
    size_t i = (size_t)(t - st->tensors);
    if (!st->pinned || i >= st->count)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: tensor '%s' is not one of this file's", st->name, t->name);
    uint8_t *copy = vitq_i_alloc(&st->alloc, t->array.nbytes);
    if (!copy) return vitq_i_oom(t->name, t->array.nbytes);
    vitq_status s = vitq_i_st_read(st, t, copy);
    if (s) {
        vitq_i_free(&st->alloc, copy);
        return s;
    }
    st->pinned[i] = copy;
    t->array.data = copy;
    return VITQ_OK;
}

void vitq_i_st_free(vitq_i_safetensors *st) {
    if (!st || !st->alloc.free) return;
    vitq_i_free(&st->alloc, st->tensors);
    vitq_i_free(&st->alloc, st->by_name);
    vitq_i_free(&st->alloc, st->meta_keys);
    vitq_i_free(&st->alloc, st->meta_values);
    vitq_i_free(&st->alloc, st->strings);
    vitq_i_free(&st->alloc, st->owned);
    for (size_t i = 0; st->pinned && i < st->count; i++) vitq_i_free(&st->alloc, st->pinned[i]);
    vitq_i_free(&st->alloc, st->pinned);
    vitq_i_file_close(st->file);
    memset(st, 0, sizeof *st);
}

const vitq_i_st_tensor *vitq_i_st_find(const vitq_i_safetensors *st, const char *tensor_name) {
    if (!st || !tensor_name || !st->by_name) return NULL;
    size_t lo = 0, hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(tensor_name, st->by_name[mid]->name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *vitq_i_st_meta(const vitq_i_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Widening to float, by bit manipulation so every value (subnormals, inf, NaN payloads) is exact   */
/* and no floating-point operation can trap or round.                                              */
/* ---------------------------------------------------------------------------------------------- */

static uint32_t f16_to_f32_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0x1F) return sign | 0x7F800000u | (mant << 13); /* inf, NaN (payload kept) */
    if (exp == 0) {
        if (mant == 0) return sign; /* +-0 */
        /* Subnormal: mant * 2^-24. Shift the leading one up to the implicit-bit position. */
        uint32_t e = 127 - 15 + 1;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return sign | (e << 23) | ((mant & 0x3FFu) << 13);
    }
    return sign | ((exp + 127 - 15) << 23) | (mant << 13);
}

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Widen `count` stored values of type `elem` at p (F32, F16 or BF16: checked by the caller) to dst. */
static void widen(vitq_i_elem elem, const uint8_t *p, size_t count, float *dst) {
    switch (elem) {
    case VITQ_I_ELEM_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Same byte order as the file: one copy, whatever the alignment. */
        if (count) memcpy(dst, p, count * sizeof *dst);
        return;
#endif
        for (size_t i = 0; i < count; i++, p += 4)
            dst[i] = bits_to_float((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24);
        return;
    case VITQ_I_ELEM_F16:
        for (size_t i = 0; i < count; i++, p += 2)
            dst[i] = bits_to_float(f16_to_f32_bits((uint16_t)(p[0] | p[1] << 8)));
        return;
    default: /* BF16: the top half of a float32 */
        for (size_t i = 0; i < count; i++, p += 2)
            dst[i] = bits_to_float(((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16);
        return;
    }
}

vitq_status vitq_i_st_to_f32(const vitq_i_safetensors *st, const vitq_i_st_tensor *t, float *dst) {
    if (!st || !t || (!dst && t->array.nbytes))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "safetensors conversion given a NULL argument");
    if (t->fill) return t->fill(t->fill_user, t, dst);
    vitq_i_elem elem = t->array.elem;
    if (elem != VITQ_I_ELEM_F32 && elem != VITQ_I_ELEM_F16 && elem != VITQ_I_ELEM_BF16)
        return tensor_fail(VITQ_ERR_DTYPE, st->name, t->name,
                           "dtype %s cannot be read as float (F32, F16 or BF16 expected)", vitq_i_elem_name(elem));
    size_t esize = vitq_i_elem_size(elem), count = t->array.nbytes / esize;
    if (t->array.data || !count) {
        widen(elem, t->array.data, count, dst);
        return VITQ_OK;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (elem == VITQ_I_ELEM_F32) return vitq_i_st_read(st, t, dst); /* straight into place */
#endif
    /* From the file through a small buffer: no copy of the tensor's bytes beside its floats. */
    uint8_t chunk[4096];
    vitq_i_st_tensor part = *t;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < sizeof chunk / esize ? count - done : sizeof chunk / esize;
        part.begin = t->begin + done * esize;
        part.array.nbytes = n * esize;
        vitq_status s = vitq_i_st_read(st, &part, chunk);
        if (s) return s;
        widen(elem, chunk, n, dst + done);
        done += n;
    }
    return VITQ_OK;
}
