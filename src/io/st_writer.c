/* safetensors writer (see st_writer.h). The header is built twice: once to learn its length, once
 * into the output. */
#include <stdio.h>
#include <string.h>

#include "io/st_writer.h"

void vitq_i_stw_init(vitq_i_st_writer *w, const vitq_allocator *a) {
    memset(w, 0, sizeof *w);
    w->alloc = *a;
}

void vitq_i_stw_free(vitq_i_st_writer *w) {
    for (size_t i = 0; i < w->count; i++) {
        vitq_i_free(&w->alloc, w->entries[i].name);
        if (w->entries[i].owned) vitq_i_free(&w->alloc, (void *)w->entries[i].data);
    }
    for (size_t i = 0; i < w->meta_count; i++) vitq_i_free(&w->alloc, w->meta[i]);
    vitq_i_free(&w->alloc, w->entries);
    vitq_i_free(&w->alloc, w->meta);
    memset(w, 0, sizeof *w);
}

vitq_status vitq_i_stw_add(vitq_i_st_writer *w, const char *name, const char *dtype, int ndim, const uint64_t *shape,
                           const void *data, size_t nbytes) {
    vitq_status st = vitq_i_grow_array(&w->alloc, (void **)&w->entries, &w->capacity, w->count + 1,
                                       sizeof *w->entries, "safetensors writer");
    if (st) return st;
    vitq_i_st_entry *e = &w->entries[w->count];
    e->name = vitq_i_strdup(&w->alloc, name);
    if (!e->name) return vitq_i_oom("safetensors writer", strlen(name));
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim && d < 4; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = nbytes;
    e->owned = 0;
    w->count++;
    return VITQ_OK;
}

vitq_status vitq_i_stw_add_owned(vitq_i_st_writer *w, const char *name, const char *dtype, int ndim,
                                 const uint64_t *shape, void *data, size_t nbytes) {
    vitq_status st = vitq_i_stw_add(w, name, dtype, ndim, shape, data, nbytes);
    if (st) vitq_i_free(&w->alloc, data);
    else w->entries[w->count - 1].owned = 1;
    return st;
}

vitq_status vitq_i_stw_meta(vitq_i_st_writer *w, const char *key, const char *value) {
    vitq_status st = vitq_i_grow_array(&w->alloc, (void **)&w->meta, &w->meta_capacity, w->meta_count + 2,
                                       sizeof *w->meta, "safetensors writer");
    if (st) return st;
    w->meta[w->meta_count] = vitq_i_strdup(&w->alloc, key);
    w->meta[w->meta_count + 1] = vitq_i_strdup(&w->alloc, value);
    w->meta_count += 2;
    if (!w->meta[w->meta_count - 2] || !w->meta[w->meta_count - 1]) return vitq_i_oom("metadata", strlen(value));
    return VITQ_OK;
}

/* Appends to out (when not NULL) and counts bytes in *len. */
typedef struct sink {
    char *out;
    size_t len;
} sink;

static void put(sink *s, const char *text, size_t n) {
    if (s->out) memcpy(s->out + s->len, text, n);
    s->len += n;
}

static void put_str(sink *s, const char *text) { put(s, text, strlen(text)); }

static void put_json_string(sink *s, const char *text) {
    put(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(s, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            put(s, esc, 6);
        } else {
            put(s, (const char *)p, 1);
        }
    }
    put(s, "\"", 1);
}

static void header(const vitq_i_st_writer *w, sink *s) {
    char num[64];
    size_t offset = 0;
    put_str(s, "{");
    if (w->meta_count) {
        put_str(s, "\"__metadata__\":{");
        for (size_t i = 0; i < w->meta_count; i += 2) {
            if (i) put_str(s, ",");
            put_json_string(s, w->meta[i]);
            put_str(s, ":");
            put_json_string(s, w->meta[i + 1]);
        }
        put_str(s, "}");
    }
    for (size_t i = 0; i < w->count; i++) {
        const vitq_i_st_entry *e = &w->entries[i];
        if (i || w->meta_count) put_str(s, ",");
        put_json_string(s, e->name);
        put_str(s, ":{\"dtype\":\"");
        put_str(s, e->dtype);
        put_str(s, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%llu", d ? "," : "", (unsigned long long)e->shape[d]);
            put_str(s, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + e->nbytes);
        put_str(s, num);
        offset += e->nbytes;
    }
    put_str(s, "}");
}

vitq_status vitq_i_stw_finish(vitq_i_st_writer *w, uint8_t **out, size_t *size) {
    sink count = {NULL, 0};
    header(w, &count);
    size_t hlen = (count.len + 7) & ~(size_t)7, data = 0, total = 0;
    int fits = 1;
    for (size_t i = 0; fits && i < w->count; i++) fits = vitq_i_add_size(data, w->entries[i].nbytes, &data);
    if (!fits || !vitq_i_add_size(8 + hlen, data, &total)) return vitq_i_oom("safetensors file", SIZE_MAX);
    uint8_t *buf = vitq_i_alloc(&w->alloc, total);
    if (!buf) return vitq_i_oom("safetensors file", total);
    for (int b = 0; b < 8; b++) buf[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
    sink s = {(char *)buf + 8, 0};
    header(w, &s);
    memset(buf + 8 + s.len, ' ', hlen - s.len);
    uint8_t *p = buf + 8 + hlen;
    for (size_t i = 0; i < w->count; i++) {
        if (w->entries[i].nbytes) memcpy(p, w->entries[i].data, w->entries[i].nbytes);
        p += w->entries[i].nbytes;
    }
    *out = buf;
    *size = total;
    return VITQ_OK;
}
