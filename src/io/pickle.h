/* A pickle machine that never executes anything: it builds an inert graph of objects (None, bools,
 * ints, floats, strings, tuples, lists, dicts) from the opcodes torch.save's pickles use, and hands
 * every request for code or outside objects to its host through hooks (io/pth.c answers them with a
 * fixed allow-list). Nothing in the pickle can name a function that is then called.
 *
 * Opcodes understood (protocols 2 to 5 as Python's pickler writes them): PROTO FRAME STOP MARK
 * EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS NONE
 * NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 LONG4 BINFLOAT SHORT_BINUNICODE BINUNICODE
 * BINUNICODE8 SHORT_BINSTRING BINSTRING SHORT_BINBYTES BINBYTES BINBYTES8 BINPUT LONG_BINPUT MEMOIZE
 * BINGET LONG_BINGET; through the hooks GLOBAL STACK_GLOBAL REDUCE NEWOBJ BUILD BINPERSID. Opcodes
 * that build arbitrary objects by themselves (INST OBJ NEWOBJ_EX EXT1/2/4) are VITQ_ERR_UNSAFE; any
 * other opcode (the text forms of protocol 0, sets, POP, DUP, out-of-band buffers) VITQ_ERR_FORMAT.
 *
 * Bounds (each VITQ_ERR_FORMAT naming the opcode and its byte offset when exceeded): the pickle is at
 * most VITQ_I_PK_MAX_BYTES long; at most VITQ_I_PK_MAX_OBJECTS objects and VITQ_I_PK_MAX_ITEMS
 * container items in all; a stack of VITQ_I_PK_MAX_STACK values and VITQ_I_PK_MAX_MARKS open MARKs;
 * containers nested at most VITQ_I_PK_MAX_NEST deep; memo indices below 2 x the objects built so
 * far + 64 (Python's pickler numbers them 0, 1, 2, ..., one per object); a BINGET only of a set
 * entry. Integers must fit 64 bits. A pickle that ends before STOP is VITQ_ERR_TRUNCATED; bytes after
 * STOP, or a stack holding anything but the result at STOP, VITQ_ERR_FORMAT.
 *
 * Shared and recursive references: any object may be referenced from many places (one dict under two
 * keys), but a list or dict takes items only until it is placed in another container, and never
 * takes itself - as Python's pickler writes every non-recursive structure. A recursive reference
 * (which no state dict has) is VITQ_ERR_FORMAT, so the graph has no cycle and nothing that walks it
 * can loop; nothing walks it recursively anyway (every loop here is iterative and bounded). */
#ifndef VITQ_IO_PICKLE_H
#define VITQ_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

#define VITQ_I_PK_MAX_BYTES ((size_t)64 << 20)
#define VITQ_I_PK_MAX_OBJECTS ((size_t)1 << 22)
#define VITQ_I_PK_MAX_ITEMS ((size_t)1 << 24)
#define VITQ_I_PK_MAX_STACK ((size_t)1 << 20)
#define VITQ_I_PK_MAX_MARKS 256
#define VITQ_I_PK_MAX_NEST 64

typedef enum vitq_i_pk_type {
    VITQ_I_PK_NONE = 1,
    VITQ_I_PK_BOOL,
    VITQ_I_PK_INT,
    VITQ_I_PK_FLOAT,
    VITQ_I_PK_STR,   /* text (unicode or Python 2 str): bytes into the pickle, not NUL-terminated */
    VITQ_I_PK_BYTES,
    VITQ_I_PK_TUPLE,
    VITQ_I_PK_LIST,
    VITQ_I_PK_DICT,  /* items are key, value, key, value ... in insertion order */
    VITQ_I_PK_GLOBAL, /* a name the host allowed; tag = the host's kind for it */
    VITQ_I_PK_EXT     /* an object of the host (a storage, a tensor); tag and index are the host's */
} vitq_i_pk_type;

/* Objects are referred to by their index in the machine's table (uint32_t). */
typedef struct vitq_i_pk_obj {
    uint8_t type;     /* a vitq_i_pk_type */
    uint8_t sealed;   /* placed in a container: takes no more items */
    uint16_t height;  /* 0 for scalars, 1 + the deepest item's height for containers */
    uint32_t count;   /* tuple and list: items; dict: 2 x entries */
    uint32_t cap;     /* list and dict: allocated items */
    union {
        int64_t i;                                   /* BOOL (0 or 1), INT */
        double f;                                    /* FLOAT */
        struct { const char *p; size_t n; } s;        /* STR, BYTES */
        uint32_t *items;                             /* LIST, DICT (owned) */
        size_t first;                                /* TUPLE: first item's index in the pool */
        struct { int32_t tag; uint32_t index; } ext; /* GLOBAL, EXT */
    } u;
} vitq_i_pk_obj;

typedef struct vitq_i_pickle vitq_i_pickle;

/* What the host decides (all four hooks are required). Each returns VITQ_OK or fails with a whole
 * message naming vm->what and vm->at (the offset of the opcode being run). */
typedef struct vitq_i_pk_hooks {
    void *user;
    /* GLOBAL / STACK_GLOBAL module.name: set *tag for an allowed name, else refuse (VITQ_ERR_UNSAFE). */
    vitq_status (*global)(void *user, const vitq_i_pickle *vm, const char *module, size_t module_len,
                          const char *name, size_t name_len, int32_t *tag);
    /* REDUCE (newobj 0) or NEWOBJ (newobj 1) of the allowed global `tag` with the tuple `args`: the
     * result's index into *result (a new object from vitq_i_pk_new or an existing EXT). */
    vitq_status (*call)(void *user, vitq_i_pickle *vm, int32_t tag, int newobj, uint32_t args, uint32_t *result);
    /* BINPERSID with the persistent id `pid`. */
    vitq_status (*persistent)(void *user, vitq_i_pickle *vm, uint32_t pid, uint32_t *result);
    /* BUILD: `state` given to `target`; the host may ignore it (nothing links it to target). */
    vitq_status (*build)(void *user, vitq_i_pickle *vm, uint32_t target, uint32_t state);
} vitq_i_pk_hooks;

struct vitq_i_pickle {
    vitq_allocator alloc;
    const char *what; /* names the pickle in messages: "<file>: <entry>" */
    size_t at;        /* offset of the opcode being run */
    int op;           /* that opcode */
    vitq_i_pk_obj *objs;
    size_t num_objs, cap_objs;
    uint32_t *pool; /* tuple items */
    size_t pool_len, pool_cap;
    size_t items; /* tuple, list and dict items in all, against VITQ_I_PK_MAX_ITEMS */
    uint32_t *stack;
    size_t sp, stack_cap;
    size_t marks[VITQ_I_PK_MAX_MARKS];
    size_t num_marks;
    uint32_t *memo; /* 1 + object index; 0: unset */
    size_t memo_cap, memo_count;
};

/* Run the pickle data[0..n). On success *root is the object STOP returned and *vm holds the graph
 * until vitq_i_pk_free; on failure *vm is already freed (vitq_i_pk_free on it is harmless). `what`
 * must outlive *vm. */
vitq_status vitq_i_pk_run(const vitq_allocator *a, const uint8_t *data, size_t n, const char *what,
                          const vitq_i_pk_hooks *hooks, vitq_i_pickle *vm, uint32_t *root);
void vitq_i_pk_free(vitq_i_pickle *vm);

/* Object `ref` (valid for refs the machine handed out). */
const vitq_i_pk_obj *vitq_i_pk_get(const vitq_i_pickle *vm, uint32_t ref);
/* Item i < count of the tuple, list or dict `ref`. */
uint32_t vitq_i_pk_item(const vitq_i_pickle *vm, uint32_t ref, size_t i);
/* For hooks: a new EXT object (tag, index), or with type VITQ_I_PK_DICT a new empty dict. */
vitq_status vitq_i_pk_new(vitq_i_pickle *vm, vitq_i_pk_type type, int32_t tag, uint32_t index, uint32_t *ref);
/* "tuple", "dict", ... for messages (the host names its EXT objects itself). */
const char *vitq_i_pk_type_name(vitq_i_pk_type type);

#endif
