/* torch.save archives to a tensor table (rules in pth.h): the archive layout, the choice of the state
 * dict and the tensor views. The allow-list the pickle machine consults is in pth_unpickle.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/pth.h"
#include "io/pth_reader.h"

static const char *const state_dict_keys[] = {"state_dict", "model", "model_state_dict", "module", "model_ema", "ema"};

/* The first object of a legacy torch.save pickle: LONG1 of this 10-byte number (0x1950a86a20f9469cfc6c). */
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

#define LEGACY_MESSAGE                                                                                            \
    "torch.save legacy format (PyTorch < 1.6 or _use_new_zipfile_serialization=False): re-save it with a "     \
    "current torch.save, or convert to safetensors"

/* ---- the archive -------------------------------------------------------------------------- */

static int legacy_pickle(const uint8_t *buf, size_t n) {
    if (n < 2 || buf[0] != 0x80 || buf[1] < 2 || buf[1] > 5) return 0;
    size_t p = 2;
    if (p < n && buf[p] == 0x95) p += 9; /* FRAME of protocol 4+ */
    return n > p && n - p >= 12 && buf[p] == 0x8a && buf[p + 1] == 10 && memcmp(buf + p + 2, legacy_magic, 10) == 0;
}

/* The tar format of PyTorch < 0.4: members sys_info, pickle, storages, tensors. */
static int legacy_tar(const uint8_t *buf, size_t n) {
    static const char *const members[] = {"sys_info", "pickle", "storages", "tensors"};
    if (n < 512 || memcmp(buf + 257, "ustar", 5) != 0) return 0;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (strncmp((const char *)buf, members[i], 100) == 0) return 1;
    return 0;
}

int vitq_i_pth_detect(const uint8_t *buf, size_t n) {
    if (!buf) return 0;
    if (vitq_i_zip_detect(buf, n)) return 1;
    return legacy_pickle(buf, n) || legacy_tar(buf, n) ? 2 : 0;
}

static const vitq_i_zip_entry *find_in_archive(const vitq_i_pth_reader *p, const char *rel) {
    char name[160];
    int len = snprintf(name, sizeof name, "%.*s/%s", (int)p->prefix_len, p->prefix, rel);
    return len > 0 && (size_t)len < sizeof name ? vitq_i_zip_find(&p->zip, name, (size_t)len) : NULL;
}

/* The archive folder is the one holding data.pkl (torch names it after the saved file, or "archive"). */
static vitq_status find_layout(vitq_i_pth_reader *p) {
    const vitq_i_zip_entry *pkl = NULL;
    for (size_t i = 0; i < p->zip.count; i++) {
        const vitq_i_zip_entry *e = &p->zip.entries[i];
        static const char tail[] = "/data.pkl";
        size_t t = sizeof tail - 1;
        if (e->name_len <= t || memcmp(e->name + e->name_len - t, tail, t) != 0) continue;
        if (memchr(e->name, '/', e->name_len - t)) continue; /* only <folder>/data.pkl */
        if (pkl)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: the zip holds more than one */data.pkl: not one torch.save "
                               "archive", p->file);
        pkl = e;
    }
    if (!pkl)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip archive without <folder>/data.pkl: not written by torch.save",
                           p->file);
    p->prefix = pkl->name;
    p->prefix_len = pkl->name_len - (sizeof "/data.pkl" - 1);
    if (p->prefix_len > 100) return vitq_i_fail(VITQ_ERR_FORMAT, "%s: archive folder name too long", p->file);
    snprintf(p->what, sizeof p->what, "%s: %.*s", p->file, (int)pkl->name_len, pkl->name);
    if (find_in_archive(p, "constants.pkl"))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                           "%s: a TorchScript archive (torch.jit.save), not a torch.save state dict: save the "
                           "model's state_dict() with torch.save, or convert to safetensors",
                           p->file);
    vitq_status st = vitq_i_pth_need_stored(p, pkl);
    if (st) return st;
    const vitq_i_zip_entry *order = find_in_archive(p, "byteorder");
    if (order && (st = vitq_i_pth_need_stored(p, order)) != VITQ_OK) return st;
    if (order) {
        char text[6] = {0};
        if ((order->size == 3 || order->size == 6) && (st = vitq_i_zip_read(&p->zip, order, 0, text, order->size)))
            return st;
        if (order->size == 3 && memcmp(text, "big", 3) == 0)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "%s: the storages are big-endian (byteorder entry 'big'): re-save it on a "
                               "little-endian machine or convert to safetensors",
                               p->file);
        if (order->size != 6 || memcmp(text, "little", 6) != 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: byteorder entry is neither 'little' nor 'big'", p->file);
    }
    return VITQ_OK;
}

/* ---- the state dict ------------------------------------------------------------------------ */

static int is_tensor(const vitq_i_pickle *vm, uint32_t ref) {
    const vitq_i_pk_obj *o = vitq_i_pk_get(vm, ref);
    return o->type == VITQ_I_PK_EXT && o->u.ext.tag == VITQ_I_PTH_X_TENSOR;
}

/* 1 when `ref` is a dict with a tensor among its values. Each dict is looked at once (p->holds), so
 * a dict shared under many keys costs its size once, not once per key. */
static int holds_tensors(const vitq_i_pth_reader *p, const vitq_i_pickle *vm, uint32_t ref) {
    const vitq_i_pk_obj *d = vitq_i_pk_get(vm, ref);
    if (d->type != VITQ_I_PK_DICT) return 0;
    if (!p->holds[ref]) {
        p->holds[ref] = 1;
        for (uint32_t i = 1; i < d->count && p->holds[ref] == 1; i += 2)
            if (is_tensor(vm, vitq_i_pk_item(vm, ref, i))) p->holds[ref] = 2;
    }
    return p->holds[ref] == 2;
}

/* "'a', 'b', 'c', ..." of a dict's string keys, bounded. */
static const char *key_list(const vitq_i_pickle *vm, uint32_t dict, char *buf, size_t cap) {
    const vitq_i_pk_obj *d = vitq_i_pk_get(vm, dict);
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < d->count && used + 80 < cap; i += 2) {
        const vitq_i_pk_obj *k = vitq_i_pk_get(vm, vitq_i_pk_item(vm, dict, i));
        char name[64];
        if (k->type == VITQ_I_PK_STR) vitq_i_zip_printable(k->u.s.p, k->u.s.n, name, sizeof name);
        else snprintf(name, sizeof name, "<%s>", vitq_i_pk_type_name((vitq_i_pk_type)k->type));
        used += (size_t)snprintf(buf + used, cap - used, "%s'%s'", i ? ", " : "", name);
    }
    if (d->count == 0) snprintf(buf, cap, "none");
    else if (used + 80 >= cap) snprintf(buf + used, cap - used, ", ...");
    return buf;
}

static vitq_status select_state_dict(const vitq_i_pth_reader *p, const vitq_i_pickle *vm, uint32_t root, uint32_t *out) {
    const vitq_i_pk_obj *r = vitq_i_pk_get(vm, root);
    if (r->type != VITQ_I_PK_DICT) {
        const char *type = r->type == VITQ_I_PK_EXT ? "tensor or object" : vitq_i_pk_type_name((vitq_i_pk_type)r->type);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: the saved object is a %s, not a dict of tensors (a state dict)",
                           p->what, type);
    }
    if (holds_tensors(p, vm, root)) {
        *out = root;
        return VITQ_OK;
    }
    for (size_t k = 0; k < sizeof state_dict_keys / sizeof state_dict_keys[0]; k++)
        for (uint32_t i = 0; i < r->count; i += 2)
            if (vitq_i_pth_str_is(vitq_i_pk_get(vm, vitq_i_pk_item(vm, root, i)), state_dict_keys[k]) &&
                holds_tensors(p, vm, vitq_i_pk_item(vm, root, i + 1))) {
                *out = vitq_i_pk_item(vm, root, i + 1);
                return VITQ_OK;
            }
    char keys[400];
    return vitq_i_fail(VITQ_ERR_FORMAT,
                       "%s: no state dict: the top-level dict holds no tensors and none of 'state_dict', 'model', "
                       "'model_state_dict', 'module', 'model_ema', 'ema' is a dict of tensors (top-level keys: %s)",
                       p->what, key_list(vm, root, keys, sizeof keys));
}

static vitq_status tensor_fail(const vitq_i_pth_reader *p, const char *name, const vitq_i_pth_tensor *x, vitq_status status, const char *fmt,
                               ...) VITQ_I_PRINTF(5, 6);

static vitq_status tensor_fail(const vitq_i_pth_reader *p, const char *name, const vitq_i_pth_tensor *x, vitq_status status, const char *fmt,
                               ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return vitq_i_fail(status, "%s: tensor '%s' (data.pkl offset %zu): %s", p->file, name, x->at, detail);
}

/* Check tensor x against its storage and describe it in *out (data NULL for a file); *copy = 1 when
 * its strides are not C-contiguous (its bytes must then be gathered). *at: the byte offset of its
 * first element in the storage entry, *span: the bytes from there to the end of its last. */
static vitq_status layout(const vitq_i_pth_reader *p, const char *name, vitq_i_pth_tensor *x, vitq_i_array *out,
                          int *copy, size_t *at, size_t *span) {
    const vitq_i_pth_storage *s = &p->storages[x->storage];
    size_t esize = vitq_i_elem_size(x->elem), numel;
    memset(out, 0, sizeof *out);
    out->elem = x->elem;
    out->ndim = x->ndim;
    if (x->offset < 0)
        return tensor_fail(p, name, x, VITQ_ERR_FORMAT, "negative storage offset %lld", (long long)x->offset);
    for (int d = 0; d < x->ndim; d++) {
        if (x->size[d] < 0 || x->stride[d] < 0)
            return tensor_fail(p, name, x, VITQ_ERR_FORMAT, "negative size or stride in dimension %d", d);
        out->shape[d] = (uint64_t)x->size[d];
        if (x->size[d] == 1) x->stride[d] = 0; /* never stepped: any stride is as good, 0 cannot overflow */
    }
    uint64_t limit = (uint64_t)INT64_MAX < SIZE_MAX ? (uint64_t)INT64_MAX : SIZE_MAX;
    if (!vitq_i_shape_count_i64(x->ndim, x->size, limit / esize, &numel))
        return tensor_fail(p, name, x, VITQ_ERR_FORMAT, "shape has more elements than memory holds");
    /* The storage holds `capacity` elements of the tensor's type (v3 reads typed data from bytes). */
    int64_t capacity = (int64_t)(s->bytes / esize), last = x->offset, step;
    if (numel == 0) {
        if (x->offset > capacity)
            return tensor_fail(p, name, x, VITQ_ERR_FORMAT, "storage offset %lld past the %lld elements of storage",
                               (long long)x->offset, (long long)capacity);
    } else {
        int ok = 1;
        for (int d = 0; d < x->ndim && ok; d++)
            ok = vitq_i_mul_i64(x->size[d] - 1, x->stride[d], &step) && vitq_i_add_i64(last, step, &last);
        if (!ok)
            return tensor_fail(p, name, x, VITQ_ERR_FORMAT, "size and stride overflow 64-bit offsets");
        if (last >= capacity)
            return tensor_fail(p, name, x, VITQ_ERR_FORMAT,
                               "size and stride at storage offset %lld reach element %lld of a storage of %lld "
                               "elements (%s): outside the storage",
                               (long long)x->offset, (long long)last, (long long)capacity, vitq_i_elem_name(x->elem));
    }
    int64_t expect = 1;
    *copy = 0;
    for (int d = x->ndim - 1; d >= 0; d--) {
        if (x->size[d] != 1 && x->stride[d] != expect) *copy = 1;
        expect *= x->size[d]; /* <= numel: no overflow */
    }
    out->nbytes = numel * esize;
    *at = (size_t)x->offset * esize; /* offset <= capacity */
    *span = numel ? (size_t)(last - x->offset + 1) * esize : 0; /* last < capacity */
    out->data = s->entry->data ? s->entry->data + *at : NULL;
    if (numel == 0) *copy = 0;
    return VITQ_OK;
}

/* Gather the elements of a strided tensor in row-major order (bounds checked by layout()). */
static void gather(uint8_t *dst, const uint8_t *src, size_t esize, const vitq_i_pth_tensor *x, size_t numel) {
    int64_t idx[VITQ_I_MAX_DIMS] = {0}, pos = 0;
    for (size_t e = 0; e < numel; e++) {
        memcpy(dst + e * esize, src + (size_t)pos * esize, esize);
        for (int d = x->ndim - 1; d >= 0; d--) {
            pos += x->stride[d];
            if (++idx[d] < x->size[d]) break;
            pos -= x->stride[d] * x->size[d];
            idx[d] = 0;
        }
    }
}

static int by_name_cmp(const void *a, const void *b) {
    return strcmp((*(const vitq_i_st_tensor *const *)a)->name, (*(const vitq_i_st_tensor *const *)b)->name);
}

/* Fill *s from the state dict `dict`. */
static vitq_status build(vitq_i_pth_reader *p, const vitq_i_pickle *vm, uint32_t dict, vitq_i_safetensors *s) {
    const vitq_i_pk_obj *d = vitq_i_pk_get(vm, dict);
    size_t file_len = strlen(p->file), bytes = file_len + 1, names = 0;
    for (uint32_t i = 0; i < d->count; i += 2) {
        uint32_t v = vitq_i_pk_item(vm, dict, i + 1);
        const vitq_i_pk_obj *k = vitq_i_pk_get(vm, vitq_i_pk_item(vm, dict, i));
        char name[128];
        if (k->type != VITQ_I_PK_STR)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: state dict key %u is not a string (%s)", p->what, i / 2,
                               vitq_i_pk_type_name((vitq_i_pk_type)k->type));
        vitq_i_zip_printable(k->u.s.p, k->u.s.n, name, sizeof name);
        if (holds_tensors(p, vm, v))
            return vitq_i_fail(VITQ_ERR_FORMAT,
                               "%s: state dict key '%s' holds a dict of tensors: nested state dicts are not flattened",
                               p->what, name);
        if (!is_tensor(vm, v)) continue;
        if (memchr(k->u.s.p, '\0', k->u.s.n))
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: state dict key '%s' contains a NUL character", p->what, name);
        if (++s->count > VITQ_I_PTH_MAX_TENSORS)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: the state dict holds more than %zu tensors", p->what, VITQ_I_PTH_MAX_TENSORS);
        /* Distinct keys are distinct strings of the pickle and fit in it together: more bytes mean one
         * string object serves as several keys (and this bounds the name block by the pickle). */
        names += k->u.s.n + 1;
        if (names > p->pkl_size + s->count)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: state dict keys repeat: one key string ('%s') serves as "
                               "several keys", p->what, name);
    }
    bytes += names;
    s->tensors = vitq_i_calloc(&s->alloc, s->count, sizeof *s->tensors);
    s->by_name = vitq_i_alloc_array(&s->alloc, s->count, sizeof *s->by_name);
    s->strings = vitq_i_alloc(&s->alloc, bytes);
    if (!s->tensors || !s->by_name || !s->strings) return vitq_i_oom("state dict tensor table", bytes);
    memcpy(s->strings, p->file, file_len + 1);
    s->name = s->strings;
    char *cursor = s->strings + file_len + 1;
    size_t k = 0, copy_bytes = 0;
    for (uint32_t i = 0; i < d->count; i += 2) {
        uint32_t v = vitq_i_pk_item(vm, dict, i + 1);
        if (!is_tensor(vm, v)) continue;
        const vitq_i_pk_obj *key = vitq_i_pk_get(vm, vitq_i_pk_item(vm, dict, i));
        vitq_i_st_tensor *t = &s->tensors[k++];
        memcpy(cursor, key->u.s.p, key->u.s.n);
        cursor[key->u.s.n] = '\0';
        t->name = cursor;
        cursor += key->u.s.n + 1;
        /* A tensor object can appear under several keys (tied weights): work on a copy. */
        vitq_i_pth_tensor x = p->tensors[vitq_i_pk_get(vm, v)->u.ext.index];
        int copy;
        size_t at, span;
        vitq_status st = layout(p, t->name, &x, &t->array, &copy, &at, &span);
        if (st) return st;
        if (copy) {
            size_t place = (copy_bytes + 63) & ~(size_t)63;
            if (place < copy_bytes || !vitq_i_add_size(place, t->array.nbytes, &copy_bytes) || copy_bytes > p->n)
                return tensor_fail(p, t->name, &x, VITQ_ERR_FORMAT,
                                   "its strided layout would be copied into more bytes than the file holds (%zu)",
                                   p->n);
            t->array.data = NULL;
            t->begin = place; /* offset in the owned block until it exists */
            t->end = place + t->array.nbytes;
        } else { /* where the bytes lie in the archive (a file's are read from there on request) */
            t->begin = p->storages[x.storage].entry->offset + at;
            t->end = t->begin + t->array.nbytes;
        }
    }
    for (size_t i = 0; i < s->count; i++) s->by_name[i] = &s->tensors[i];
    qsort(s->by_name, s->count, sizeof *s->by_name, by_name_cmp);
    for (size_t i = 1; i < s->count; i++)
        if (strcmp(s->by_name[i - 1]->name, s->by_name[i]->name) == 0) {
            char name[128];
            const char *dup = s->by_name[i]->name;
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: state dict key '%s' appears twice", p->what,
                               vitq_i_zip_printable(dup, strlen(dup), name, sizeof name));
        }
    if (copy_bytes) {
        s->owned = vitq_i_alloc(&s->alloc, copy_bytes);
        if (!s->owned) return vitq_i_oom("copies of strided tensors", copy_bytes);
    }
    /* Second pass over the same keys, in the same order, to gather the strided tensors. */
    k = 0;
    for (uint32_t i = 0; i < d->count; i += 2) {
        uint32_t v = vitq_i_pk_item(vm, dict, i + 1);
        if (!is_tensor(vm, v)) continue;
        vitq_i_st_tensor *t = &s->tensors[k++];
        vitq_i_pth_tensor x = p->tensors[vitq_i_pk_get(vm, v)->u.ext.index];
        vitq_i_array view;
        int copy;
        size_t at, span;
        (void)layout(p, t->name, &x, &view, &copy, &at, &span); /* passed above; normalises x's strides again */
        if (!copy) continue; /* (a file's views have no data pointer either) */
        size_t esize = vitq_i_elem_size(x.elem);
        const uint8_t *src = view.data;
        uint8_t *tmp = NULL;
        if (!src) { /* a file: the part of the storage the tensor reaches, for the time of the gather */
            tmp = vitq_i_alloc(&p->alloc, span);
            if (!tmp) return vitq_i_oom("storage of a strided tensor", span);
            vitq_status st = vitq_i_zip_read(&p->zip, p->storages[x.storage].entry, at, tmp, span);
            if (st) {
                vitq_i_free(&p->alloc, tmp);
                return st;
            }
            src = tmp;
        }
        gather(s->owned + t->begin, src, esize, &x, t->array.nbytes / esize);
        vitq_i_free(&p->alloc, tmp);
        t->array.data = s->owned + t->begin;
    }
    return VITQ_OK;
}

/* Everything after the archive's directory (p->zip) is read: its layout, the pickle, the state dict
 * and the tensor table *s (whose alloc, data and file the caller set). Frees what only this needs. */
static vitq_status read_archive(vitq_i_pth_reader *p, vitq_i_safetensors *s) {
    vitq_status st = find_layout(p);
    if (!st) {
        p->storage_of_entry = vitq_i_calloc(&p->alloc, p->zip.count, sizeof *p->storage_of_entry);
        if (!p->storage_of_entry) st = vitq_i_oom("storage index", p->zip.count * sizeof *p->storage_of_entry);
    }
    vitq_i_pickle vm;
    memset(&vm, 0, sizeof vm);
    uint32_t root = 0, dict = 0;
    const vitq_i_zip_entry *pkl = st ? NULL : find_in_archive(p, "data.pkl");
    const uint8_t *pkl_bytes = pkl ? pkl->data : NULL;
    if (pkl && !pkl_bytes) { /* a file: the pickle is read whole (it is small: names and shapes) */
        p->pkl_copy = vitq_i_alloc(&p->alloc, pkl->size ? pkl->size : 1);
        if (!p->pkl_copy) st = vitq_i_oom("data.pkl", pkl->size);
        else st = vitq_i_zip_read(&p->zip, pkl, 0, p->pkl_copy, pkl->size);
        pkl_bytes = p->pkl_copy;
    }
    if (!st) {
        vitq_i_pk_hooks hooks;
        vitq_i_pth_hooks(p, &hooks);
        p->pkl_size = pkl->size;
        st = vitq_i_pk_run(&p->alloc, pkl_bytes, pkl->size, p->what, &hooks, &vm, &root);
    }
    if (!st) {
        p->holds = vitq_i_calloc(&p->alloc, vm.num_objs, 1);
        if (!p->holds) st = vitq_i_oom("state dict search", vm.num_objs);
    }
    if (!st) st = select_state_dict(p, &vm, root, &dict);
    if (!st) st = build(p, &vm, dict, s);
    vitq_i_pk_free(&vm);
    vitq_i_free(&p->alloc, p->holds);
    vitq_i_free(&p->alloc, p->storage_of_entry);
    vitq_i_free(&p->alloc, p->storages);
    vitq_i_free(&p->alloc, p->tensors);
    vitq_i_free(&p->alloc, p->pkl_copy);
    vitq_i_zip_close(&p->zip);
    return st;
}

/* The kind of archive from its first bytes: VITQ_OK for a zip, else the refusal. */
static vitq_status check_kind(const uint8_t *head, size_t n, const char *name) {
    int kind = vitq_i_pth_detect(head, n);
    if (kind == 2) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: " LEGACY_MESSAGE, name);
    if (kind != 1) return vitq_i_fail(VITQ_ERR_FORMAT, "%s: not a torch.save zip archive (no zip signature)", name);
    return VITQ_OK;
}

vitq_status vitq_i_pth_parse(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *name,
                             vitq_i_safetensors *out) {
    if (!name) name = "pth";
    if (!out || (!buf && n))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: torch checkpoint parser given a NULL argument", name);
    memset(out, 0, sizeof *out);
    vitq_i_pth_reader p;
    memset(&p, 0, sizeof p);
    vitq_status st = vitq_i_allocator_resolve(a, &p.alloc);
    if (st) return st;
    p.file = name;
    p.n = n;
    if ((st = check_kind(buf, n, name))) return st;
    if ((st = vitq_i_zip_open(&p.alloc, buf, n, name, &p.zip))) return st;
    vitq_i_safetensors s;
    memset(&s, 0, sizeof s);
    s.alloc = p.alloc;
    s.data = buf;
    s.data_size = n;
    st = read_archive(&p, &s);
    if (st) {
        vitq_i_st_free(&s);
        return st;
    }
    *out = s;
    return VITQ_OK;
}

vitq_status vitq_i_pth_open(const vitq_allocator *a, const char *path, const char *name, vitq_i_safetensors *out) {
    if (!name) name = path ? path : "pth";
    if (!out || !path)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: torch checkpoint reader given a NULL argument", name);
    memset(out, 0, sizeof *out);
    vitq_i_pth_reader p;
    memset(&p, 0, sizeof p);
    vitq_status st = vitq_i_allocator_resolve(a, &p.alloc);
    if (st) return st;
    vitq_i_file *f;
    uint64_t size;
    if ((st = vitq_i_file_open(path, name, &f, &size))) return st;
    /* The first bytes as the in-memory reader sees them (512 cover the legacy tar header). */
    uint8_t head[512];
    size_t got = size < sizeof head ? (size_t)size : sizeof head;
    if (got && !vitq_i_file_read_at(f, 0, head, got)) st = vitq_i_fail(VITQ_ERR_IO, "%s: read error", name);
    if (!st) st = check_kind(head, got, name);
    if (!st) st = vitq_i_zip_open_file(&p.alloc, f, size, name, &p.zip);
    vitq_i_safetensors s;
    memset(&s, 0, sizeof s);
    s.alloc = p.alloc;
    s.data_size = (size_t)size; /* <= SIZE_MAX: vitq_i_zip_open_file checked */
    p.file = name;
    p.n = (size_t)size;
    if (!st) st = read_archive(&p, &s);
    /* vitq_i_st_pin keeps its copies here, as for a safetensors file */
    if (!st) s.pinned = vitq_i_calloc(&s.alloc, s.count ? s.count : 1, sizeof *s.pinned);
    if (!st && !s.pinned) st = vitq_i_oom("torch checkpoint tensor copies", s.count * sizeof *s.pinned);
    if (st) {
        vitq_i_st_free(&s);
        vitq_i_file_close(f);
        return st;
    }
    s.file = f; /* tensors are read at file offset file_data (0) + begin */
    *out = s;
    return VITQ_OK;
}
