/* torch.save archives to a tensor table (rules in pth.h): the archive layout, the allow-list the
 * pickle machine consults, the choice of the state dict and the tensor views. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/pickle.h"
#include "io/pth.h"
#include "io/zip.h"

/* Tags of allowed globals (storage classes and dtypes carry their element type). */
enum {
    G_ODICT = 1,
    G_REBUILD_V2,
    G_REBUILD_V3,
    G_PARAM,
    G_PARAM_STATE,
    G_NAMESPACE,
    G_STORAGE = 100, /* + vitq_i_elem */
    G_DTYPE = 200    /* + vitq_i_elem */
};
/* Tags of the host's objects in the pickle graph. */
enum { X_STORAGE = 1, X_TENSOR, X_OBJECT };

#define MAX_METADATA 8
/* Tensors in a state dict: ample for any model, and a bound on the tables built for it. */
#define MAX_TENSORS ((size_t)1 << 20)

static const char *const state_dict_keys[] = {"state_dict", "model", "model_state_dict", "module", "model_ema", "ema"};

/* The first object of a legacy torch.save pickle: LONG1 of this 10-byte number (0x1950a86a20f9469cfc6c). */
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

#define LEGACY_MESSAGE                                                                                            \
    "torch.save legacy format (PyTorch < 1.6 or _use_new_zipfile_serialization=False): re-save it with a "     \
    "current torch.save, or convert to safetensors"

typedef struct {
    const char *name;
    vitq_i_elem elem; /* INVALID: a real torch type vitq has no element type for */
} type_name;

static const type_name storage_types[] = {
    {"FloatStorage", VITQ_I_ELEM_F32},     {"DoubleStorage", VITQ_I_ELEM_F64},  {"HalfStorage", VITQ_I_ELEM_F16},
    {"BFloat16Storage", VITQ_I_ELEM_BF16}, {"LongStorage", VITQ_I_ELEM_I64},    {"IntStorage", VITQ_I_ELEM_I32},
    {"ShortStorage", VITQ_I_ELEM_I16},     {"CharStorage", VITQ_I_ELEM_I8},     {"ByteStorage", VITQ_I_ELEM_U8},
    {"BoolStorage", VITQ_I_ELEM_BOOL},     {"UntypedStorage", VITQ_I_ELEM_U8},  {"ComplexFloatStorage", 0},
    {"ComplexDoubleStorage", 0},           {"QInt8Storage", 0},                 {"QUInt8Storage", 0},
    {"QInt32Storage", 0},                  {"QUInt4x2Storage", 0},              {"QUInt2x4Storage", 0},
};

static const type_name dtypes[] = {
    {"float32", VITQ_I_ELEM_F32},  {"float", VITQ_I_ELEM_F32},    {"float64", VITQ_I_ELEM_F64},
    {"double", VITQ_I_ELEM_F64},   {"float16", VITQ_I_ELEM_F16},  {"half", VITQ_I_ELEM_F16},
    {"bfloat16", VITQ_I_ELEM_BF16}, {"int64", VITQ_I_ELEM_I64},   {"long", VITQ_I_ELEM_I64},
    {"int32", VITQ_I_ELEM_I32},    {"int", VITQ_I_ELEM_I32},      {"int16", VITQ_I_ELEM_I16},
    {"short", VITQ_I_ELEM_I16},    {"int8", VITQ_I_ELEM_I8},      {"uint8", VITQ_I_ELEM_U8},
    {"bool", VITQ_I_ELEM_BOOL},    {"uint16", VITQ_I_ELEM_U16},   {"uint32", VITQ_I_ELEM_U32},
    {"uint64", VITQ_I_ELEM_U64},   {"complex32", 0},              {"complex64", 0},
    {"complex128", 0},             {"float8_e5m2", 0},            {"float8_e4m3fn", 0},
    {"float8_e5m2fnuz", 0},        {"float8_e4m3fnuz", 0},        {"float8_e8m0fnu", 0},
};

typedef struct {
    const vitq_i_zip_entry *entry;
    vitq_i_elem elem; /* of the storage class (U8 for UntypedStorage) */
    size_t bytes;     /* == entry->size */
} storage;

typedef struct {
    uint32_t storage;
    vitq_i_elem elem; /* the tensor's (the storage's, or _rebuild_tensor_v3's dtype) */
    int ndim;
    int64_t offset;
    int64_t size[VITQ_I_MAX_DIMS], stride[VITQ_I_MAX_DIMS];
    size_t at; /* pickle offset of its REDUCE, for messages */
} tensor;

typedef struct {
    vitq_allocator alloc;
    const char *file;
    const uint8_t *buf;
    size_t n;
    vitq_i_zip zip;
    const char *prefix; /* the archive's folder ("archive", or the saved file's stem) */
    size_t prefix_len;
    char what[512]; /* "<file>: <prefix>/data.pkl" */
    storage *storages;
    size_t num_storages, cap_storages;
    uint32_t *storage_of_entry; /* per zip entry: 1 + index into storages, 0: not loaded yet */
    tensor *tensors;
    size_t num_tensors, cap_tensors;
    size_t pkl_size;
    uint8_t *holds; /* per pickle object: 0 not looked at, 1 a dict holding no tensor, 2 one holding tensors */
} pth;

static vitq_status at_fail(const vitq_i_pickle *vm, vitq_status status, const char *fmt, ...) VITQ_I_PRINTF(3, 4);

/* "<file>: <entry> offset <at>: <detail>" */
static vitq_status at_fail(const vitq_i_pickle *vm, vitq_status status, const char *fmt, ...) {
    char detail[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return vitq_i_fail(status, "%s offset %zu: %s", vm->what, vm->at, detail);
}

/* Grow a host array to hold one more element. */
static vitq_status grow_one(const vitq_allocator *a, void **array, size_t *cap, size_t used, size_t elem,
                            const char *what) {
    if (used < *cap) return VITQ_OK;
    size_t c = *cap ? *cap * 2 : 16, bytes;
    if (!vitq_i_mul_size(c, elem, &bytes)) return vitq_i_oom(what, SIZE_MAX);
    void *p = vitq_i_alloc(a, bytes);
    if (!p) return vitq_i_oom(what, bytes);
    if (used) memcpy(p, *array, used * elem);
    vitq_i_free(a, *array);
    *array = p;
    *cap = c;
    return VITQ_OK;
}

static int str_is(const vitq_i_pk_obj *o, const char *s) {
    return o->type == VITQ_I_PK_STR && o->u.s.n == strlen(s) && memcmp(o->u.s.p, s, o->u.s.n) == 0;
}

static int names_equal(const char *p, size_t n, const char *s) { return n == strlen(s) && memcmp(p, s, n) == 0; }

/* The bytes of entry e are its content only when it is stored: torch.save never compresses. */
static vitq_status need_stored(const pth *p, const vitq_i_zip_entry *e) {
    if (e->method == 0) return VITQ_OK;
    char name[160];
    return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                       "%s: zip entry '%s' is compressed (method %u%s): torch.save stores entries uncompressed "
                       "and vitq reads only stored entries; re-save it with torch.save",
                       p->file, vitq_i_zip_printable(e->name, e->name_len, name, sizeof name), e->method,
                       e->method == 8 ? ", deflate" : "");
}

/* ---- the allow-list ------------------------------------------------------------------------ */

static const char *tag_name(int32_t tag, char *buf, size_t cap) {
    switch (tag) {
    case G_ODICT: return "collections.OrderedDict";
    case G_REBUILD_V2: return "torch._utils._rebuild_tensor_v2";
    case G_REBUILD_V3: return "torch._utils._rebuild_tensor_v3";
    case G_PARAM: return "torch._utils._rebuild_parameter";
    case G_PARAM_STATE: return "torch._utils._rebuild_parameter_with_state";
    case G_NAMESPACE: return "argparse.Namespace";
    default: { /* a storage class or dtype: the first name of its element type */
        const type_name *table = tag >= G_DTYPE ? dtypes : storage_types;
        size_t count =
            tag >= G_DTYPE ? sizeof dtypes / sizeof dtypes[0] : sizeof storage_types / sizeof storage_types[0];
        vitq_i_elem elem = (vitq_i_elem)(tag >= G_DTYPE ? tag - G_DTYPE : tag - G_STORAGE);
        snprintf(buf, cap, "torch.?");
        for (size_t i = 0; i < count; i++)
            if (table[i].elem == elem) {
                snprintf(buf, cap, "torch.%s", table[i].name);
                break;
            }
        return buf;
    }
    }
}

static vitq_status on_global(void *user, const vitq_i_pickle *vm, const char *m, size_t ml, const char *nm,
                             size_t nl, int32_t *tag) {
    (void)user;
    static const struct {
        const char *module, *name;
        int32_t tag;
    } fixed[] = {
        {"collections", "OrderedDict", G_ODICT},
        {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
        {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_V3},
        {"torch._utils", "_rebuild_parameter", G_PARAM},
        {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE},
        {"argparse", "Namespace", G_NAMESPACE},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (names_equal(m, ml, fixed[i].module) && names_equal(nm, nl, fixed[i].name)) {
            *tag = fixed[i].tag;
            return VITQ_OK;
        }
    char pm[160], pn[160];
    vitq_i_zip_printable(m, ml, pm, sizeof pm);
    vitq_i_zip_printable(nm, nl, pn, sizeof pn);
    if (names_equal(m, ml, "torch")) {
        const type_name *tables[2] = {storage_types, dtypes};
        size_t sizes[2] = {sizeof storage_types / sizeof storage_types[0], sizeof dtypes / sizeof dtypes[0]};
        for (int t = 0; t < 2; t++)
            for (size_t i = 0; i < sizes[t]; i++)
                if (names_equal(nm, nl, tables[t][i].name)) {
                    if (!tables[t][i].elem)
                        return at_fail(vm, VITQ_ERR_DTYPE, "torch.%s has no vitq element type", pn);
                    *tag = (t ? G_DTYPE : G_STORAGE) + (int32_t)tables[t][i].elem;
                    return VITQ_OK;
                }
    }
    return at_fail(vm, VITQ_ERR_UNSAFE,
                   "pickle global '%s.%s' is not allowed in a state dict: vitq never executes code from a file", pm,
                   pn);
}

/* ---- storages: BINPERSID ('storage', <X>Storage, key, location, numel) ------------------------ */

static vitq_status on_persistent(void *user, vitq_i_pickle *vm, uint32_t pid, uint32_t *result) {
    pth *p = user;
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, pid);
    if (t->type != VITQ_I_PK_TUPLE || t->count != 5)
        return at_fail(vm, VITQ_ERR_FORMAT, "persistent id is not a 5-tuple ('storage', type, key, location, numel)");
    const vitq_i_pk_obj *f[5];
    for (int i = 0; i < 5; i++) f[i] = vitq_i_pk_get(vm, vitq_i_pk_item(vm, pid, (size_t)i));
    if (!str_is(f[0], "storage"))
        return at_fail(vm, VITQ_ERR_FORMAT, "persistent id does not start with 'storage'");
    if (f[1]->type != VITQ_I_PK_GLOBAL || f[1]->u.ext.tag < G_STORAGE || f[1]->u.ext.tag >= G_DTYPE)
        return at_fail(vm, VITQ_ERR_FORMAT, "persistent id: the storage type is not a torch storage class");
    if (f[2]->type != VITQ_I_PK_STR || f[3]->type != VITQ_I_PK_STR || f[4]->type != VITQ_I_PK_INT || f[4]->u.i < 0)
        return at_fail(vm, VITQ_ERR_FORMAT, "persistent id: key and location must be strings, numel an int >= 0");
    char key[80];
    vitq_i_zip_printable(f[2]->u.s.p, f[2]->u.s.n, key, sizeof key);
    /* Keys are what torch writes (decimal numbers); nothing else may steer the entry lookup. */
    if (f[2]->u.s.n == 0 || f[2]->u.s.n > 40)
        return at_fail(vm, VITQ_ERR_FORMAT, "storage key '%s' is empty or too long", key);
    for (size_t i = 0; i < f[2]->u.s.n; i++) {
        char c = f[2]->u.s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return at_fail(vm, VITQ_ERR_FORMAT, "storage key '%s' has a character other than [A-Za-z0-9_-]", key);
    }
    char entry_name[160];
    int len = snprintf(entry_name, sizeof entry_name, "%.*s/data/%.*s", (int)p->prefix_len, p->prefix,
                       (int)f[2]->u.s.n, f[2]->u.s.p);
    const vitq_i_zip_entry *e = vitq_i_zip_find(&p->zip, entry_name, (size_t)len);
    if (!e) return at_fail(vm, VITQ_ERR_FORMAT, "storage '%s' has no zip entry %s", key, entry_name);
    vitq_status st = need_stored(p, e);
    if (st) return st;
    vitq_i_elem elem = (vitq_i_elem)(f[1]->u.ext.tag - G_STORAGE);
    size_t esize = vitq_i_elem_size(elem), bytes;
    if ((uint64_t)f[4]->u.i > SIZE_MAX || !vitq_i_mul_size((size_t)f[4]->u.i, esize, &bytes) || bytes != e->size)
        return at_fail(vm, VITQ_ERR_FORMAT,
                       "storage '%s' declares %lld elements of %s, its zip entry %s holds %zu bytes", key,
                       (long long)f[4]->u.i, vitq_i_elem_name(elem), entry_name, e->size);
    size_t ei = (size_t)(e - p->zip.entries);
    uint32_t si = p->storage_of_entry[ei];
    if (si) {
        if (p->storages[si - 1].elem != elem)
            return at_fail(vm, VITQ_ERR_FORMAT, "storage '%s' is referenced as %s and as %s", key,
                           vitq_i_elem_name(p->storages[si - 1].elem), vitq_i_elem_name(elem));
    } else {
        st = grow_one(&p->alloc, (void **)&p->storages, &p->cap_storages, p->num_storages, sizeof *p->storages,
                      "storage table");
        if (st) return st;
        p->storages[p->num_storages] = (storage){e, elem, bytes};
        si = (uint32_t)++p->num_storages; /* <= zip entries */
        p->storage_of_entry[ei] = si;
    }
    return vitq_i_pk_new(vm, VITQ_I_PK_EXT, X_STORAGE, si - 1, result);
}

/* ---- tensors and other calls ------------------------------------------------------------------ */

static int is_empty_dict(const vitq_i_pk_obj *o) { return o->type == VITQ_I_PK_DICT && o->count == 0; }

/* A tuple of at most VITQ_I_MAX_DIMS ints into out[]. */
static int read_dims(const vitq_i_pickle *vm, uint32_t ref, int64_t *out, int *ndim) {
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, ref);
    if (t->type != VITQ_I_PK_TUPLE || t->count > VITQ_I_MAX_DIMS) return 0;
    for (uint32_t i = 0; i < t->count; i++) {
        const vitq_i_pk_obj *d = vitq_i_pk_get(vm, vitq_i_pk_item(vm, ref, i));
        if (d->type != VITQ_I_PK_INT) return 0;
        out[i] = d->u.i;
    }
    *ndim = (int)t->count;
    return 1;
}

/* metadata of _rebuild_tensor_v2/v3: a dict of flags; a set conj or neg bit changes the values. */
static vitq_status check_metadata(const vitq_i_pickle *vm, uint32_t ref) {
    const vitq_i_pk_obj *m = vitq_i_pk_get(vm, ref);
    if (m->type != VITQ_I_PK_DICT) return at_fail(vm, VITQ_ERR_FORMAT, "tensor metadata is not a dict");
    /* A few flags at most; a bound also keeps a large dict shared by many tensors from costing N x K. */
    if (m->count > 2 * MAX_METADATA)
        return at_fail(vm, VITQ_ERR_FORMAT, "tensor metadata has %u entries (at most %d)", (unsigned)m->count / 2,
                       MAX_METADATA);
    for (uint32_t i = 1; i < m->count; i += 2) {
        const vitq_i_pk_obj *v = vitq_i_pk_get(vm, vitq_i_pk_item(vm, ref, i));
        if (v->type != VITQ_I_PK_BOOL || v->u.i)
            return at_fail(vm, VITQ_ERR_UNSUPPORTED,
                           "tensor metadata sets a flag (a conj or neg bit) vitq does not apply");
    }
    return VITQ_OK;
}

static vitq_status rebuild_tensor(pth *p, vitq_i_pickle *vm, int v3, uint32_t args, uint32_t *result) {
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, args);
    size_t base = v3 ? 7 : 6;
    if (t->count != base && t->count != base + 1)
        return at_fail(vm, VITQ_ERR_FORMAT, "_rebuild_tensor_%s takes %zu or %zu arguments, not %u", v3 ? "v3" : "v2",
                       base, base + 1, (unsigned)t->count);
    const vitq_i_pk_obj *a[8];
    for (uint32_t i = 0; i < t->count; i++) a[i] = vitq_i_pk_get(vm, vitq_i_pk_item(vm, args, i));
    tensor x;
    memset(&x, 0, sizeof x);
    int nstride = 0;
    if (a[0]->type != VITQ_I_PK_EXT || a[0]->u.ext.tag != X_STORAGE)
        return at_fail(vm, VITQ_ERR_FORMAT, "tensor argument 0 is not a storage");
    if (a[1]->type != VITQ_I_PK_INT) return at_fail(vm, VITQ_ERR_FORMAT, "tensor storage offset is not an int");
    if (!read_dims(vm, vitq_i_pk_item(vm, args, 2), x.size, &x.ndim) ||
        !read_dims(vm, vitq_i_pk_item(vm, args, 3), x.stride, &nstride) || nstride != x.ndim)
        return at_fail(vm, VITQ_ERR_FORMAT,
                       "tensor size and stride must be tuples of as many ints, at most %d (vitq's limit)",
                       VITQ_I_MAX_DIMS);
    if (a[4]->type != VITQ_I_PK_BOOL) return at_fail(vm, VITQ_ERR_FORMAT, "tensor requires_grad is not a bool");
    if (!is_empty_dict(a[5])) return at_fail(vm, VITQ_ERR_FORMAT, "tensor backward hooks are not an empty dict");
    x.storage = a[0]->u.ext.index;
    x.elem = p->storages[x.storage].elem;
    x.offset = a[1]->u.i;
    x.at = vm->at;
    if (v3) {
        if (a[6]->type != VITQ_I_PK_GLOBAL || a[6]->u.ext.tag < G_DTYPE)
            return at_fail(vm, VITQ_ERR_FORMAT, "_rebuild_tensor_v3's dtype is not a torch dtype");
        x.elem = (vitq_i_elem)(a[6]->u.ext.tag - G_DTYPE);
    }
    if (t->count == base + 1) {
        vitq_status st = check_metadata(vm, vitq_i_pk_item(vm, args, base));
        if (st) return st;
    }
    if (p->num_tensors >= UINT32_MAX) return at_fail(vm, VITQ_ERR_FORMAT, "too many tensors");
    vitq_status st =
        grow_one(&p->alloc, (void **)&p->tensors, &p->cap_tensors, p->num_tensors, sizeof *p->tensors, "tensor table");
    if (st) return st;
    p->tensors[p->num_tensors] = x;
    return vitq_i_pk_new(vm, VITQ_I_PK_EXT, X_TENSOR, (uint32_t)p->num_tensors++, result);
}

/* _rebuild_parameter(tensor, requires_grad, hooks[, state]): the tensor itself. */
static vitq_status rebuild_parameter(vitq_i_pickle *vm, int with_state, uint32_t args, uint32_t *result) {
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, args);
    if (t->count != (with_state ? 4u : 3u))
        return at_fail(vm, VITQ_ERR_FORMAT, "a Parameter takes %d arguments, not %u", with_state ? 4 : 3,
                       (unsigned)t->count);
    uint32_t data = vitq_i_pk_item(vm, args, 0);
    const vitq_i_pk_obj *d = vitq_i_pk_get(vm, data);
    if (d->type != VITQ_I_PK_EXT || d->u.ext.tag != X_TENSOR)
        return at_fail(vm, VITQ_ERR_FORMAT, "a Parameter's data is not a tensor");
    if (vitq_i_pk_get(vm, vitq_i_pk_item(vm, args, 1))->type != VITQ_I_PK_BOOL ||
        !is_empty_dict(vitq_i_pk_get(vm, vitq_i_pk_item(vm, args, 2))))
        return at_fail(vm, VITQ_ERR_FORMAT, "a Parameter's requires_grad is not a bool or its hooks not empty");
    if (with_state) {
        const vitq_i_pk_obj *s = vitq_i_pk_get(vm, vitq_i_pk_item(vm, args, 3));
        if (!(s->type == VITQ_I_PK_NONE || is_empty_dict(s) || (s->type == VITQ_I_PK_TUPLE && s->count == 0)))
            return at_fail(vm, VITQ_ERR_UNSUPPORTED, "a Parameter with Python attributes (state)");
    }
    *result = data;
    return VITQ_OK;
}

static vitq_status on_call(void *user, vitq_i_pickle *vm, int32_t tag, int newobj, uint32_t args, uint32_t *result) {
    pth *p = user;
    char buf[64];
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, args);
    int functions = tag == G_REBUILD_V2 || tag == G_REBUILD_V3 || tag == G_PARAM || tag == G_PARAM_STATE;
    if ((functions && newobj) || tag >= G_STORAGE)
        return at_fail(vm, VITQ_ERR_UNSAFE, "%s of '%s' is not allowed in a state dict: vitq never executes code "
                       "from a file", newobj ? "NEWOBJ" : "REDUCE", tag_name(tag, buf, sizeof buf));
    switch (tag) {
    case G_REBUILD_V2:
    case G_REBUILD_V3:
        return rebuild_tensor(p, vm, tag == G_REBUILD_V3, args, result);
    case G_PARAM:
    case G_PARAM_STATE:
        return rebuild_parameter(vm, tag == G_PARAM_STATE, args, result);
    default: /* OrderedDict, Namespace: only the empty constructor */
        if (t->count != 0)
            return at_fail(vm, VITQ_ERR_FORMAT, "%s called with %u arguments (none expected)",
                           tag_name(tag, buf, sizeof buf), (unsigned)t->count);
        return tag == G_ODICT ? vitq_i_pk_new(vm, VITQ_I_PK_DICT, 0, 0, result)
                              : vitq_i_pk_new(vm, VITQ_I_PK_EXT, X_OBJECT, 0, result);
    }
}

/* BUILD: OrderedDict's attributes (_metadata) and a Namespace's fields are not needed: dropped. */
static vitq_status on_build(void *user, vitq_i_pickle *vm, uint32_t target, uint32_t state) {
    (void)user;
    (void)state;
    const vitq_i_pk_obj *o = vitq_i_pk_get(vm, target);
    if (o->type == VITQ_I_PK_DICT || (o->type == VITQ_I_PK_EXT && o->u.ext.tag == X_OBJECT)) return VITQ_OK;
    return at_fail(vm, VITQ_ERR_FORMAT, "BUILD on a %s",
                   o->type == VITQ_I_PK_EXT ? "tensor or storage" : vitq_i_pk_type_name((vitq_i_pk_type)o->type));
}

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

static const vitq_i_zip_entry *find_in_archive(const pth *p, const char *rel) {
    char name[160];
    int len = snprintf(name, sizeof name, "%.*s/%s", (int)p->prefix_len, p->prefix, rel);
    return len > 0 && (size_t)len < sizeof name ? vitq_i_zip_find(&p->zip, name, (size_t)len) : NULL;
}

/* The archive folder is the one holding data.pkl (torch names it after the saved file, or "archive"). */
static vitq_status find_layout(pth *p) {
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
    vitq_status st = need_stored(p, pkl);
    if (st) return st;
    const vitq_i_zip_entry *order = find_in_archive(p, "byteorder");
    if (order && (st = need_stored(p, order)) != VITQ_OK) return st;
    if (order) {
        if (order->size == 3 && memcmp(order->data, "big", 3) == 0)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "%s: the storages are big-endian (byteorder entry 'big'): re-save it on a "
                               "little-endian machine or convert to safetensors",
                               p->file);
        if (order->size != 6 || memcmp(order->data, "little", 6) != 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: byteorder entry is neither 'little' nor 'big'", p->file);
    }
    return VITQ_OK;
}

/* ---- the state dict ------------------------------------------------------------------------ */

static int is_tensor(const vitq_i_pickle *vm, uint32_t ref) {
    const vitq_i_pk_obj *o = vitq_i_pk_get(vm, ref);
    return o->type == VITQ_I_PK_EXT && o->u.ext.tag == X_TENSOR;
}

/* 1 when `ref` is a dict with a tensor among its values. Each dict is looked at once (p->holds), so
 * a dict shared under many keys costs its size once, not once per key. */
static int holds_tensors(const pth *p, const vitq_i_pickle *vm, uint32_t ref) {
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

static vitq_status select_state_dict(const pth *p, const vitq_i_pickle *vm, uint32_t root, uint32_t *out) {
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
            if (str_is(vitq_i_pk_get(vm, vitq_i_pk_item(vm, root, i)), state_dict_keys[k]) &&
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

static vitq_status tensor_fail(const pth *p, const char *name, const tensor *x, vitq_status status, const char *fmt,
                               ...) VITQ_I_PRINTF(5, 6);

static vitq_status tensor_fail(const pth *p, const char *name, const tensor *x, vitq_status status, const char *fmt,
                               ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return vitq_i_fail(status, "%s: tensor '%s' (data.pkl offset %zu): %s", p->file, name, x->at, detail);
}

/* Check tensor x against its storage and describe it in *out; *copy = 1 when its strides are not
 * C-contiguous (its bytes must then be gathered). */
static vitq_status layout(const pth *p, const char *name, tensor *x, vitq_i_array *out, int *copy) {
    const storage *s = &p->storages[x->storage];
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
    out->data = s->entry->data + (size_t)x->offset * esize; /* offset <= capacity */
    if (numel == 0) *copy = 0;
    return VITQ_OK;
}

/* Gather the elements of a strided tensor in row-major order (bounds checked by layout()). */
static void gather(uint8_t *dst, const uint8_t *src, size_t esize, const tensor *x, size_t numel) {
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
static vitq_status build(pth *p, const vitq_i_pickle *vm, uint32_t dict, vitq_i_safetensors *s) {
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
        if (++s->count > MAX_TENSORS)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: the state dict holds more than %zu tensors", p->what, MAX_TENSORS);
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
        tensor x = p->tensors[vitq_i_pk_get(vm, v)->u.ext.index];
        int copy;
        vitq_status st = layout(p, t->name, &x, &t->array, &copy);
        if (st) return st;
        if (copy) {
            size_t at = (copy_bytes + 63) & ~(size_t)63;
            if (at < copy_bytes || !vitq_i_add_size(at, t->array.nbytes, &copy_bytes) || copy_bytes > p->n)
                return tensor_fail(p, t->name, &x, VITQ_ERR_FORMAT,
                                   "its strided layout would be copied into more bytes than the file holds (%zu)",
                                   p->n);
            t->array.data = NULL;
            t->begin = at; /* offset in the owned block until it exists */
            t->end = at + t->array.nbytes;
        } else {
            t->begin = (size_t)(t->array.data - p->buf);
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
        if (t->array.data) continue;
        tensor x = p->tensors[vitq_i_pk_get(vm, v)->u.ext.index];
        vitq_i_array view;
        int copy;
        (void)layout(p, t->name, &x, &view, &copy); /* passed above; normalises x's strides again */
        size_t esize = vitq_i_elem_size(x.elem);
        gather(s->owned + t->begin, view.data, esize, &x, t->array.nbytes / esize);
        t->array.data = s->owned + t->begin;
    }
    return VITQ_OK;
}

vitq_status vitq_i_pth_parse(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *name,
                             vitq_i_safetensors *out) {
    if (!name) name = "pth";
    if (!out || (!buf && n))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: torch checkpoint parser given a NULL argument", name);
    memset(out, 0, sizeof *out);
    pth p;
    memset(&p, 0, sizeof p);
    vitq_status st = vitq_i_allocator_resolve(a, &p.alloc);
    if (st) return st;
    p.file = name;
    p.buf = buf;
    p.n = n;
    int kind = vitq_i_pth_detect(buf, n);
    if (kind == 2) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: " LEGACY_MESSAGE, name);
    if (kind != 1) return vitq_i_fail(VITQ_ERR_FORMAT, "%s: not a torch.save zip archive (no zip signature)", name);
    st = vitq_i_zip_open(&p.alloc, buf, n, name, &p.zip);
    if (!st) st = find_layout(&p);
    if (!st) {
        p.storage_of_entry = vitq_i_calloc(&p.alloc, p.zip.count, sizeof *p.storage_of_entry);
        if (!p.storage_of_entry) st = vitq_i_oom("storage index", p.zip.count * sizeof *p.storage_of_entry);
    }
    vitq_i_pickle vm;
    memset(&vm, 0, sizeof vm);
    uint32_t root = 0, dict = 0;
    if (!st) {
        const vitq_i_zip_entry *pkl = find_in_archive(&p, "data.pkl");
        vitq_i_pk_hooks hooks = {&p, on_global, on_call, on_persistent, on_build};
        p.pkl_size = pkl->size;
        st = vitq_i_pk_run(&p.alloc, pkl->data, pkl->size, p.what, &hooks, &vm, &root);
    }
    if (!st) {
        p.holds = vitq_i_calloc(&p.alloc, vm.num_objs, 1);
        if (!p.holds) st = vitq_i_oom("state dict search", vm.num_objs);
    }
    if (!st) st = select_state_dict(&p, &vm, root, &dict);
    vitq_i_safetensors s;
    memset(&s, 0, sizeof s);
    s.alloc = p.alloc;
    s.data = buf;
    s.data_size = n;
    if (!st) st = build(&p, &vm, dict, &s);
    vitq_i_pk_free(&vm);
    vitq_i_free(&p.alloc, p.holds);
    vitq_i_free(&p.alloc, p.storage_of_entry);
    vitq_i_free(&p.alloc, p.storages);
    vitq_i_free(&p.alloc, p.tensors);
    vitq_i_zip_close(&p.zip);
    if (st) {
        vitq_i_st_free(&s);
        return st;
    }
    *out = s;
    return VITQ_OK;
}
