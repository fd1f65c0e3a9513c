/* The non-executing pickle machine (rules and bounds in pickle.h). One loop over the opcodes; every
 * argument is bounds-checked against the bytes left before it is read. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/pickle.h"

/* Opcodes by their byte (Python's pickle.py names). */
enum {
    OP_MARK = '(', OP_STOP = '.', OP_BINFLOAT = 'G', OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M',
    OP_NONE = 'N', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_SHORT_BINSTRING = 'U', OP_BINSTRING = 'T',
    OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_APPENDS = 'e', OP_BINGET = 'h',
    OP_LONG_BINGET = 'j', OP_EMPTY_LIST = ']', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's',
    OP_TUPLE = 't', OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_EMPTY_DICT = '}', OP_INST = 'i', OP_OBJ = 'o',
    OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C', OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82,
    OP_EXT2 = 0x83, OP_EXT4 = 0x84, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_LONG4 = 0x8b, OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e, OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94, OP_FRAME = 0x95
};

static const char *op_name(int op) {
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_BINPERSID: return "BINPERSID";
    case OP_REDUCE: return "REDUCE";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_BUILD: return "BUILD";
    case OP_GLOBAL: return "GLOBAL";
    case OP_APPENDS: return "APPENDS";
    case OP_BINGET: return "BINGET";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_INST: return "INST";
    case OP_OBJ: return "OBJ";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_PROTO: return "PROTO";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    default: return "unknown";
    }
}

const char *vitq_i_pk_type_name(vitq_i_pk_type type) {
    static const char *const names[] = {"?",     "None", "bool", "int",    "float",  "str",
                                        "bytes", "tuple", "list", "dict", "global", "object"};
    return (size_t)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

/* The running machine: vm plus the bytes and the read position. */
typedef struct {
    vitq_i_pickle *vm;
    const uint8_t *data;
    size_t n, pos;
} run;

static vitq_status fail(const run *r, vitq_status status, const char *fmt, ...) VITQ_I_PRINTF(3, 4);

/* "<what> offset <at>: opcode NAME: <detail>" */
static vitq_status fail(const run *r, vitq_status status, const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return vitq_i_fail(status, "%s offset %zu: opcode %s (0x%02x): %s", r->vm->what, r->vm->at, op_name(r->vm->op),
                       (unsigned)r->vm->op, detail);
}

/* Grow one of the machine's arrays (vitq_i_grow_array with the machine's allocator). */
static vitq_status grow(const run *r, void **array, size_t *cap, size_t need, size_t elem, const char *what) {
    return vitq_i_grow_array(&r->vm->alloc, array, cap, need, elem, what);
}

static vitq_status new_obj(const run *r, vitq_i_pk_type type, uint32_t *ref) {
    vitq_i_pickle *vm = r->vm;
    if (vm->num_objs >= VITQ_I_PK_MAX_OBJECTS)
        return fail(r, VITQ_ERR_FORMAT, "more than %zu objects", VITQ_I_PK_MAX_OBJECTS);
    vitq_status st = grow(r, (void **)&vm->objs, &vm->cap_objs, vm->num_objs + 1, sizeof *vm->objs, "pickle objects");
    if (st) return st;
    vitq_i_pk_obj *o = &vm->objs[vm->num_objs];
    memset(o, 0, sizeof *o);
    o->type = (uint8_t)type;
    if (type == VITQ_I_PK_TUPLE || type == VITQ_I_PK_LIST || type == VITQ_I_PK_DICT) o->height = 1;
    *ref = (uint32_t)vm->num_objs++;
    return VITQ_OK;
}

static vitq_status push(const run *r, uint32_t ref) {
    vitq_i_pickle *vm = r->vm;
    if (vm->sp >= VITQ_I_PK_MAX_STACK) return fail(r, VITQ_ERR_FORMAT, "stack deeper than %zu", VITQ_I_PK_MAX_STACK);
    vitq_status st = grow(r, (void **)&vm->stack, &vm->stack_cap, vm->sp + 1, sizeof *vm->stack, "pickle stack");
    if (st) return st;
    vm->stack[vm->sp++] = ref;
    return VITQ_OK;
}

/* The values above the innermost MARK only, as Python's unpickler: a MARK is a floor. */
static size_t floor_of(const vitq_i_pickle *vm) { return vm->num_marks ? vm->marks[vm->num_marks - 1] : 0; }

static vitq_status pop(const run *r, uint32_t *ref) {
    if (r->vm->sp <= floor_of(r->vm)) return fail(r, VITQ_ERR_FORMAT, "stack underflow");
    *ref = r->vm->stack[--r->vm->sp];
    return VITQ_OK;
}

static vitq_status top(const run *r, uint32_t *ref) {
    if (r->vm->sp <= floor_of(r->vm)) return fail(r, VITQ_ERR_FORMAT, "stack underflow");
    *ref = r->vm->stack[r->vm->sp - 1];
    return VITQ_OK;
}

static vitq_status pop_mark(const run *r, size_t *start) {
    if (!r->vm->num_marks) return fail(r, VITQ_ERR_FORMAT, "no MARK to pop to");
    *start = r->vm->marks[--r->vm->num_marks];
    return VITQ_OK;
}

static vitq_status count_items(const run *r, size_t k) {
    if (k > VITQ_I_PK_MAX_ITEMS - r->vm->items)
        return fail(r, VITQ_ERR_FORMAT, "more than %zu container items", VITQ_I_PK_MAX_ITEMS);
    r->vm->items += k;
    return VITQ_OK;
}

/* Record that container p holds c. A container takes items only until it is itself placed in
 * another (Python's pickler fills each list or dict right after creating it, and a state dict never
 * refers to itself): then no link can close a cycle, since a path from c back to p would end with p
 * already placed, hence sealed. Sharing (one dict under two keys) stays possible. Heights are final
 * once sealed, so p - never placed yet, without parents - is the only height to update. */
static vitq_status link(const run *r, uint32_t p, uint32_t c) {
    vitq_i_pk_obj *objs = r->vm->objs;
    const char *type = vitq_i_pk_type_name((vitq_i_pk_type)objs[p].type);
    if (p == c) return fail(r, VITQ_ERR_FORMAT, "recursive reference: a %s would contain itself", type);
    if (objs[p].sealed)
        return fail(r, VITQ_ERR_FORMAT,
                    "recursive reference: a %s already placed in another container receives items (no state "
                    "dict does that)",
                    type);
    objs[c].sealed = 1;
    unsigned h = objs[c].height + 1u;
    if (h > VITQ_I_PK_MAX_NEST) return fail(r, VITQ_ERR_FORMAT, "containers nested deeper than %d", VITQ_I_PK_MAX_NEST);
    if (objs[p].height < h) objs[p].height = (uint16_t)h;
    return VITQ_OK;
}

/* A tuple of the k values on top of the stack (above the floor). */
static vitq_status make_tuple(const run *r, size_t start) {
    vitq_i_pickle *vm = r->vm;
    size_t k = vm->sp - start;
    uint32_t t = 0;
    vitq_status st = count_items(r, k);
    if (!st) st = grow(r, (void **)&vm->pool, &vm->pool_cap, vm->pool_len + k, sizeof *vm->pool, "pickle tuples");
    if (!st) st = new_obj(r, VITQ_I_PK_TUPLE, &t);
    if (st) return st;
    vm->objs[t].u.first = vm->pool_len;
    vm->objs[t].count = (uint32_t)k;
    for (size_t i = 0; i < k && !st; i++) {
        vm->pool[vm->pool_len + i] = vm->stack[start + i];
        st = link(r, t, vm->stack[start + i]);
    }
    if (st) return st;
    vm->pool_len += k;
    vm->sp = start;
    return push(r, t);
}

/* Append items[0..k) to the list or dict `target` (for a dict, k is even: key, value, ...). */
static vitq_status add_items(const run *r, uint32_t target, const uint32_t *items, size_t k) {
    vitq_i_pickle *vm = r->vm;
    vitq_i_pk_obj *o = &vm->objs[target];
    vitq_i_pk_type want = (r->vm->op == OP_APPEND || r->vm->op == OP_APPENDS) ? VITQ_I_PK_LIST : VITQ_I_PK_DICT;
    if (o->type != want)
        return fail(r, VITQ_ERR_FORMAT, "target is a %s, not a %s", vitq_i_pk_type_name((vitq_i_pk_type)o->type),
                    vitq_i_pk_type_name(want));
    if (want == VITQ_I_PK_DICT)
        for (size_t i = 0; i < k; i += 2) {
            const vitq_i_pk_obj *key = &vm->objs[items[i]];
            if (key->type == VITQ_I_PK_LIST || key->type == VITQ_I_PK_DICT)
                return fail(r, VITQ_ERR_FORMAT, "dict key is a %s (unhashable)",
                            vitq_i_pk_type_name((vitq_i_pk_type)key->type));
        }
    vitq_status st = count_items(r, k);
    if (st) return st;
    size_t cap = o->cap;
    st = grow(r, (void **)&o->u.items, &cap, (size_t)o->count + k, sizeof *o->u.items, "pickle container");
    if (st) return st;
    o->cap = (uint32_t)cap; /* <= 2 x VITQ_I_PK_MAX_ITEMS */
    for (size_t i = 0; i < k; i++) {
        st = link(r, target, items[i]);
        if (st) return st;
        vm->objs[target].u.items[vm->objs[target].count++] = items[i];
    }
    return VITQ_OK;
}

/* APPENDS / SETITEMS: the values above the mark go into the container just below it. */
static vitq_status add_marked(const run *r) {
    vitq_i_pickle *vm = r->vm;
    size_t start = 0;
    vitq_status st = pop_mark(r, &start);
    if (st) return st;
    if (start <= floor_of(vm)) return fail(r, VITQ_ERR_FORMAT, "no container below the MARK");
    size_t k = vm->sp - start;
    if (r->vm->op == OP_SETITEMS && k % 2)
        return fail(r, VITQ_ERR_FORMAT, "odd number of values (%zu) for key/value pairs", k);
    st = add_items(r, vm->stack[start - 1], vm->stack + start, k);
    vm->sp = start;
    return st;
}

static vitq_status memo_put(const run *r, uint64_t index) {
    vitq_i_pickle *vm = r->vm;
    uint32_t ref = 0;
    vitq_status st = top(r, &ref);
    if (st) return st;
    /* Python's pickler numbers memo entries 0, 1, 2, ..., one per object it wrote, so a valid index
     * stays below the objects built so far (with room for results that are not new objects, such as
     * a Parameter's tensor): this bounds the memo by the objects, not by the file. */
    if (index >= 2 * (uint64_t)vm->num_objs + 64)
        return fail(r, VITQ_ERR_FORMAT, "memo index %llu is out of range (%zu objects built so far)",
                    (unsigned long long)index, vm->num_objs);
    st = grow(r, (void **)&vm->memo, &vm->memo_cap, (size_t)index + 1, sizeof *vm->memo, "pickle memo");
    if (st) return st;
    if (index >= vm->memo_count) { /* entries between the old count and index stay unset (0) */
        for (size_t i = vm->memo_count; i < index; i++) vm->memo[i] = 0;
        vm->memo_count = (size_t)index + 1;
    }
    vm->memo[index] = ref + 1;
    return VITQ_OK;
}

static vitq_status memo_get(const run *r, uint64_t index) {
    const vitq_i_pickle *vm = r->vm;
    if (index >= vm->memo_count || !vm->memo[index])
        return fail(r, VITQ_ERR_FORMAT, "memo entry %llu is not set", (unsigned long long)index);
    return push(r, vm->memo[index] - 1);
}

/* n argument bytes at the current position, or TRUNCATED. */
static vitq_status need(const run *r, uint64_t n) {
    if (n > r->n - r->pos)
        return fail(r, VITQ_ERR_TRUNCATED, "needs %llu argument bytes, the pickle ends after %zu",
                    (unsigned long long)n, r->n - r->pos);
    return VITQ_OK;
}

static uint64_t rd_le(const uint8_t *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Read a k-byte little-endian length or index argument. */
static vitq_status arg(run *r, int k, uint64_t *v) {
    vitq_status st = need(r, (uint64_t)k);
    if (st) return st;
    *v = rd_le(r->data + r->pos, k);
    r->pos += (size_t)k;
    return VITQ_OK;
}

static vitq_status push_int(const run *r, vitq_i_pk_type type, int64_t v) {
    uint32_t ref = 0;
    vitq_status st = new_obj(r, type, &ref);
    if (st) return st;
    r->vm->objs[ref].u.i = v;
    return push(r, ref);
}

/* LONG1 / LONG4: two's complement little-endian of n bytes, which must fit int64. */
static vitq_status push_long(run *r, int len_bytes) {
    uint64_t n;
    vitq_status st = arg(r, len_bytes, &n);
    if (st) return st;
    if (len_bytes == 4 && n > INT32_MAX) return fail(r, VITQ_ERR_FORMAT, "negative byte count");
    if (n > 8) return fail(r, VITQ_ERR_FORMAT, "integer of %llu bytes does not fit 64 bits", (unsigned long long)n);
    st = need(r, n);
    if (st) return st;
    uint64_t v = n ? rd_le(r->data + r->pos, (int)n) : 0;
    if (n && n < 8 && (r->data[r->pos + n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    r->pos += (size_t)n;
    int64_t s;
    memcpy(&s, &v, sizeof s); /* two's complement reinterpretation, no implementation-defined cast */
    return push_int(r, VITQ_I_PK_INT, s);
}

/* A string or bytes value of an n-byte length argument. */
static vitq_status push_string(run *r, vitq_i_pk_type type, int len_bytes, int is_signed) {
    uint64_t n;
    vitq_status st = arg(r, len_bytes, &n);
    if (st) return st;
    if (is_signed && n > INT32_MAX) return fail(r, VITQ_ERR_FORMAT, "negative length");
    st = need(r, n);
    uint32_t ref = 0;
    if (!st) st = new_obj(r, type, &ref);
    if (st) return st;
    r->vm->objs[ref].u.s.p = (const char *)r->data + r->pos;
    r->vm->objs[ref].u.s.n = (size_t)n;
    r->pos += (size_t)n;
    return push(r, ref);
}

/* A newline-terminated line of at most 256 bytes (GLOBAL's module and name). */
static vitq_status read_line(run *r, const char **s, size_t *len) {
    size_t max = r->n - r->pos < 257 ? r->n - r->pos : 257;
    const uint8_t *nl = memchr(r->data + r->pos, '\n', max);
    if (!nl) {
        if (max < 257) return fail(r, VITQ_ERR_TRUNCATED, "the pickle ends inside a name");
        return fail(r, VITQ_ERR_FORMAT, "name longer than 256 bytes");
    }
    *s = (const char *)r->data + r->pos;
    *len = (size_t)(nl - (r->data + r->pos));
    r->pos += *len + 1;
    return VITQ_OK;
}

static vitq_status do_global(run *r, const vitq_i_pk_hooks *h, const char *m, size_t ml, const char *nm, size_t nl) {
    int32_t tag = 0;
    vitq_status st = h->global(h->user, r->vm, m, ml, nm, nl, &tag);
    uint32_t ref = 0;
    if (!st) st = new_obj(r, VITQ_I_PK_GLOBAL, &ref);
    if (st) return st;
    r->vm->objs[ref].u.ext.tag = tag;
    return push(r, ref);
}

static vitq_status expect(const run *r, uint32_t ref, vitq_i_pk_type type, const char *what) {
    vitq_i_pk_type t = (vitq_i_pk_type)r->vm->objs[ref].type;
    if (t != type)
        return fail(r, VITQ_ERR_FORMAT, "%s is a %s, not a %s", what, vitq_i_pk_type_name(t),
                    vitq_i_pk_type_name(type));
    return VITQ_OK;
}

/* One opcode at r->pos (already past the opcode byte). *stop set at STOP. */
static vitq_status step(run *r, const vitq_i_pk_hooks *h, int *stop) {
    vitq_i_pickle *vm = r->vm;
    uint64_t v;
    uint32_t a = 0, b = 0, res = 0;
    size_t start = 0;
    vitq_status st = VITQ_OK;
    switch (r->vm->op) {
    case OP_PROTO:
        st = arg(r, 1, &v);
        if (!st && v > 5)
            st = fail(r, VITQ_ERR_FORMAT, "pickle protocol %llu is not one Python writes", (unsigned long long)v);
        return st;
    case OP_FRAME: /* frames only announce lengths: checked, then read through */
        st = arg(r, 8, &v);
        return st ? st : need(r, v);
    case OP_STOP:
        *stop = 1;
        return VITQ_OK;
    case OP_MARK:
        if (vm->num_marks >= VITQ_I_PK_MAX_MARKS)
            return fail(r, VITQ_ERR_FORMAT, "MARKs nested deeper than %d", VITQ_I_PK_MAX_MARKS);
        vm->marks[vm->num_marks++] = vm->sp;
        return VITQ_OK;
    case OP_EMPTY_TUPLE:
        return make_tuple(r, vm->sp);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
        size_t k = (size_t)(r->vm->op - OP_TUPLE1 + 1);
        if (vm->sp - floor_of(vm) < k) return fail(r, VITQ_ERR_FORMAT, "stack underflow");
        return make_tuple(r, vm->sp - k);
    }
    case OP_TUPLE:
        st = pop_mark(r, &start);
        return st ? st : make_tuple(r, start);
    case OP_EMPTY_LIST:
    case OP_EMPTY_DICT:
        st = new_obj(r, r->vm->op == OP_EMPTY_LIST ? VITQ_I_PK_LIST : VITQ_I_PK_DICT, &a);
        return st ? st : push(r, a);
    case OP_APPEND:
        st = pop(r, &b);
        if (!st) st = top(r, &a);
        return st ? st : add_items(r, a, &b, 1);
    case OP_SETITEM: {
        uint32_t kv[2] = {0, 0};
        st = pop(r, &kv[1]);
        if (!st) st = pop(r, &kv[0]);
        if (!st) st = top(r, &a);
        return st ? st : add_items(r, a, kv, 2);
    }
    case OP_APPENDS:
    case OP_SETITEMS:
        return add_marked(r);
    case OP_NONE:
        st = new_obj(r, VITQ_I_PK_NONE, &a);
        return st ? st : push(r, a);
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        return push_int(r, VITQ_I_PK_BOOL, r->vm->op == OP_NEWTRUE);
    case OP_BININT1:
    case OP_BININT2:
        st = arg(r, r->vm->op == OP_BININT1 ? 1 : 2, &v);
        return st ? st : push_int(r, VITQ_I_PK_INT, (int64_t)v);
    case OP_BININT:
        st = arg(r, 4, &v);
        return st ? st : push_int(r, VITQ_I_PK_INT, v >= 0x80000000u ? (int64_t)v - ((int64_t)1 << 32) : (int64_t)v);
    case OP_LONG1:
    case OP_LONG4:
        return push_long(r, r->vm->op == OP_LONG1 ? 1 : 4);
    case OP_BINFLOAT: { /* big-endian IEEE double */
        st = need(r, 8);
        if (st) return st;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = (bits << 8) | r->data[r->pos + (size_t)i];
        r->pos += 8;
        st = new_obj(r, VITQ_I_PK_FLOAT, &a);
        if (st) return st;
        memcpy(&vm->objs[a].u.f, &bits, sizeof bits);
        return push(r, a);
    }
    case OP_SHORT_BINUNICODE:
    case OP_SHORT_BINSTRING:
        return push_string(r, VITQ_I_PK_STR, 1, 0);
    case OP_BINUNICODE:
        return push_string(r, VITQ_I_PK_STR, 4, 0);
    case OP_BINSTRING:
        return push_string(r, VITQ_I_PK_STR, 4, 1);
    case OP_BINUNICODE8:
        return push_string(r, VITQ_I_PK_STR, 8, 0);
    case OP_SHORT_BINBYTES:
        return push_string(r, VITQ_I_PK_BYTES, 1, 0);
    case OP_BINBYTES:
        return push_string(r, VITQ_I_PK_BYTES, 4, 0);
    case OP_BINBYTES8:
        return push_string(r, VITQ_I_PK_BYTES, 8, 0);
    case OP_BINPUT:
    case OP_LONG_BINPUT:
        st = arg(r, r->vm->op == OP_BINPUT ? 1 : 4, &v);
        return st ? st : memo_put(r, v);
    case OP_MEMOIZE:
        return memo_put(r, vm->memo_count);
    case OP_BINGET:
    case OP_LONG_BINGET:
        st = arg(r, r->vm->op == OP_BINGET ? 1 : 4, &v);
        return st ? st : memo_get(r, v);
    case OP_GLOBAL: {
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        st = read_line(r, &m, &ml);
        if (!st) st = read_line(r, &nm, &nl);
        return st ? st : do_global(r, h, m, ml, nm, nl);
    }
    case OP_STACK_GLOBAL:
        st = pop(r, &b);
        if (!st) st = pop(r, &a);
        if (!st) st = expect(r, a, VITQ_I_PK_STR, "module");
        if (!st) st = expect(r, b, VITQ_I_PK_STR, "name");
        return st ? st : do_global(r, h, vm->objs[a].u.s.p, vm->objs[a].u.s.n, vm->objs[b].u.s.p, vm->objs[b].u.s.n);
    case OP_REDUCE:
    case OP_NEWOBJ:
        st = pop(r, &b);
        if (!st) st = pop(r, &a);
        if (!st) st = expect(r, a, VITQ_I_PK_GLOBAL, r->vm->op == OP_REDUCE ? "the callable" : "the class");
        if (!st) st = expect(r, b, VITQ_I_PK_TUPLE, "the arguments");
        if (!st) st = h->call(h->user, vm, vm->objs[a].u.ext.tag, vm->op == OP_NEWOBJ, b, &res);
        return st ? st : push(r, res);
    case OP_BINPERSID:
        st = pop(r, &a);
        if (!st) st = h->persistent(h->user, vm, a, &res);
        return st ? st : push(r, res);
    case OP_BUILD:
        st = pop(r, &b);
        if (!st) st = top(r, &a);
        return st ? st : h->build(h->user, vm, a, b);
    case OP_INST:
    case OP_OBJ:
    case OP_NEWOBJ_EX:
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
        return fail(r, VITQ_ERR_UNSAFE,
                    "builds an arbitrary object, which no state dict needs: vitq never executes code from a file");
    default:
        return fail(r, VITQ_ERR_FORMAT, "not an opcode a torch.save state dict uses");
    }
}

vitq_status vitq_i_pk_run(const vitq_allocator *a, const uint8_t *data, size_t n, const char *what,
                          const vitq_i_pk_hooks *hooks, vitq_i_pickle *vm, uint32_t *root) {
    if (!what) what = "pickle";
    if (!vm || !root || !hooks || !hooks->global || !hooks->call || !hooks->persistent || !hooks->build ||
        (!data && n))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: pickle machine given a NULL argument", what);
    memset(vm, 0, sizeof *vm);
    vitq_status st = vitq_i_allocator_resolve(a, &vm->alloc);
    if (st) return st;
    vm->what = what;
    if (n > VITQ_I_PK_MAX_BYTES)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: pickle of %zu bytes exceeds the limit of %zu", what, n,
                           VITQ_I_PK_MAX_BYTES);
    run r = {vm, data, n, 0};
    int stop = 0;
    while (!st && !stop) {
        if (r.pos >= n) {
            st = vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: the pickle ends at offset %zu without STOP", what, n);
            break;
        }
        vm->at = r.pos;
        vm->op = data[r.pos++];
        st = step(&r, hooks, &stop);
    }
    if (!st && r.pos != n) st = fail(&r, VITQ_ERR_FORMAT, "%zu bytes follow STOP", n - r.pos);
    if (!st && (vm->sp != 1 || vm->num_marks))
        st = fail(&r, VITQ_ERR_FORMAT, "%zu values and %zu MARKs on the stack at STOP (1 value expected)", vm->sp,
                  vm->num_marks);
    if (st) {
        vitq_i_pk_free(vm);
        return st;
    }
    *root = vm->stack[0];
    return VITQ_OK;
}

void vitq_i_pk_free(vitq_i_pickle *vm) {
    if (!vm || !vm->alloc.free) return;
    for (size_t i = 0; i < vm->num_objs; i++)
        if (vm->objs[i].type == VITQ_I_PK_LIST || vm->objs[i].type == VITQ_I_PK_DICT)
            vitq_i_free(&vm->alloc, vm->objs[i].u.items);
    vitq_i_free(&vm->alloc, vm->objs);
    vitq_i_free(&vm->alloc, vm->pool);
    vitq_i_free(&vm->alloc, vm->stack);
    vitq_i_free(&vm->alloc, vm->memo);
    memset(vm, 0, sizeof *vm);
}

const vitq_i_pk_obj *vitq_i_pk_get(const vitq_i_pickle *vm, uint32_t ref) { return &vm->objs[ref]; }

uint32_t vitq_i_pk_item(const vitq_i_pickle *vm, uint32_t ref, size_t i) {
    const vitq_i_pk_obj *o = &vm->objs[ref];
    return o->type == VITQ_I_PK_TUPLE ? vm->pool[o->u.first + i] : o->u.items[i];
}

vitq_status vitq_i_pk_new(vitq_i_pickle *vm, vitq_i_pk_type type, int32_t tag, uint32_t index, uint32_t *ref) {
    run r = {vm, NULL, 0, 0};
    vitq_status st = new_obj(&r, type == VITQ_I_PK_DICT ? VITQ_I_PK_DICT : VITQ_I_PK_EXT, ref);
    if (st) return st;
    if (type != VITQ_I_PK_DICT) {
        vm->objs[*ref].u.ext.tag = tag;
        vm->objs[*ref].u.ext.index = index;
    }
    return VITQ_OK;
}
