/* The allow-list of the torch.save reader (rules in pth.h): the pickle machine (io/pickle.h) asks, for
 * each GLOBAL, REDUCE, BINPERSID and BUILD, what to do; this file answers from a fixed list of torch
 * names and builds storages and tensors, and refuses everything else by name. Nothing is executed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/pth_reader.h"

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

#define MAX_METADATA 8

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

int vitq_i_pth_str_is(const vitq_i_pk_obj *o, const char *s) {
    return o->type == VITQ_I_PK_STR && o->u.s.n == strlen(s) && memcmp(o->u.s.p, s, o->u.s.n) == 0;
}

static int names_equal(const char *p, size_t n, const char *s) { return n == strlen(s) && memcmp(p, s, n) == 0; }

/* The bytes of entry e are its content only when it is stored: torch.save never compresses. */
vitq_status vitq_i_pth_need_stored(const vitq_i_pth_reader *p, const vitq_i_zip_entry *e) {
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
    vitq_i_pth_reader *p = user;
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, pid);
    if (t->type != VITQ_I_PK_TUPLE || t->count != 5)
        return at_fail(vm, VITQ_ERR_FORMAT, "persistent id is not a 5-tuple ('storage', type, key, location, numel)");
    const vitq_i_pk_obj *f[5];
    for (int i = 0; i < 5; i++) f[i] = vitq_i_pk_get(vm, vitq_i_pk_item(vm, pid, (size_t)i));
    if (!vitq_i_pth_str_is(f[0], "storage"))
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
    vitq_status st = vitq_i_pth_need_stored(p, e);
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
        st = vitq_i_grow_array(&p->alloc, (void **)&p->storages, &p->cap_storages, p->num_storages + 1,
                               sizeof *p->storages, "storage table");
        if (st) return st;
        p->storages[p->num_storages] = (vitq_i_pth_storage){e, elem, bytes};
        si = (uint32_t)++p->num_storages; /* <= zip entries */
        p->storage_of_entry[ei] = si;
    }
    return vitq_i_pk_new(vm, VITQ_I_PK_EXT, VITQ_I_PTH_X_STORAGE, si - 1, result);
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

static vitq_status rebuild_tensor(vitq_i_pth_reader *p, vitq_i_pickle *vm, int v3, uint32_t args, uint32_t *result) {
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, args);
    size_t base = v3 ? 7 : 6;
    if (t->count != base && t->count != base + 1)
        return at_fail(vm, VITQ_ERR_FORMAT, "_rebuild_tensor_%s takes %zu or %zu arguments, not %u", v3 ? "v3" : "v2",
                       base, base + 1, (unsigned)t->count);
    const vitq_i_pk_obj *a[8];
    for (uint32_t i = 0; i < t->count; i++) a[i] = vitq_i_pk_get(vm, vitq_i_pk_item(vm, args, i));
    vitq_i_pth_tensor x;
    memset(&x, 0, sizeof x);
    int nstride = 0;
    if (a[0]->type != VITQ_I_PK_EXT || a[0]->u.ext.tag != VITQ_I_PTH_X_STORAGE)
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
        vitq_i_grow_array(&p->alloc, (void **)&p->tensors, &p->cap_tensors, p->num_tensors + 1, sizeof *p->tensors,
                          "tensor table");
    if (st) return st;
    p->tensors[p->num_tensors] = x;
    return vitq_i_pk_new(vm, VITQ_I_PK_EXT, VITQ_I_PTH_X_TENSOR, (uint32_t)p->num_tensors++, result);
}

/* _rebuild_parameter(tensor, requires_grad, hooks[, state]): the tensor itself. */
static vitq_status rebuild_parameter(vitq_i_pickle *vm, int with_state, uint32_t args, uint32_t *result) {
    const vitq_i_pk_obj *t = vitq_i_pk_get(vm, args);
    if (t->count != (with_state ? 4u : 3u))
        return at_fail(vm, VITQ_ERR_FORMAT, "a Parameter takes %d arguments, not %u", with_state ? 4 : 3,
                       (unsigned)t->count);
    uint32_t data = vitq_i_pk_item(vm, args, 0);
    const vitq_i_pk_obj *d = vitq_i_pk_get(vm, data);
    if (d->type != VITQ_I_PK_EXT || d->u.ext.tag != VITQ_I_PTH_X_TENSOR)
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
    vitq_i_pth_reader *p = user;
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
                              : vitq_i_pk_new(vm, VITQ_I_PK_EXT, VITQ_I_PTH_X_OBJECT, 0, result);
    }
}

/* BUILD: OrderedDict's attributes (_metadata) and a Namespace's fields are not needed: dropped. */
static vitq_status on_build(void *user, vitq_i_pickle *vm, uint32_t target, uint32_t state) {
    (void)user;
    (void)state;
    const vitq_i_pk_obj *o = vitq_i_pk_get(vm, target);
    if (o->type == VITQ_I_PK_DICT || (o->type == VITQ_I_PK_EXT && o->u.ext.tag == VITQ_I_PTH_X_OBJECT)) return VITQ_OK;
    return at_fail(vm, VITQ_ERR_FORMAT, "BUILD on a %s",
                   o->type == VITQ_I_PK_EXT ? "tensor or storage" : vitq_i_pk_type_name((vitq_i_pk_type)o->type));
}

void vitq_i_pth_hooks(vitq_i_pth_reader *p, vitq_i_pk_hooks *hooks) {
    vitq_i_pk_hooks h = {p, on_global, on_call, on_persistent, on_build};
    *hooks = h;
}
