/* Fuzz target: the strict JSON reader (src/util/json.h). A parsed tree is written back as JSON (strings
 * escaped, numbers with 17 significant digits) and parsed again: both trees must be equal (same types,
 * keys, string bytes and number bits). The typed getters run on every member of the root object.
 * Checks also that a number flagged integer holds the same value as its double. */
#include "fuzz_common.h"
#include "util/json.h"

typedef struct {
    char *p;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        FUZZ_ASSERT(t->p);
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void put_string(text *t, const char *s, size_t n) {
    put(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(t, esc, 6);
        } else {
            put(t, s + i, 1);
        }
    }
    put(t, "\"", 1);
}

static void write_value(text *t, const vitq_i_json *v) {
    char num[40];
    switch (v->type) {
    case VITQ_I_JSON_NULL: put(t, "null", 4); break;
    case VITQ_I_JSON_BOOL: put(t, v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
    case VITQ_I_JSON_NUMBER:
        if (v->is_integer) snprintf(num, sizeof num, "%s%lld", signbit(v->number) && !v->integer ? "-" : "",
                                    (long long)v->integer); /* "-0" stays -0.0 */
        else snprintf(num, sizeof num, "%.17g", v->number);
        put(t, num, strlen(num));
        break;
    case VITQ_I_JSON_STRING: put_string(t, v->string, v->length); break;
    case VITQ_I_JSON_ARRAY:
    case VITQ_I_JSON_OBJECT:
        put(t, v->type == VITQ_I_JSON_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) put(t, ",", 1);
            if (v->type == VITQ_I_JSON_OBJECT) {
                put_string(t, v->keys[i], v->key_lengths[i]);
                put(t, ":", 1);
            }
            write_value(t, v->items[i]);
        }
        put(t, v->type == VITQ_I_JSON_ARRAY ? "]" : "}", 1);
        break;
    default: FUZZ_ASSERT(0);
    }
}

static void check_node(const vitq_i_json *v) {
    FUZZ_ASSERT(vitq_i_json_type_name(v->type) != NULL);
    if (v->type == VITQ_I_JSON_NUMBER) {
        FUZZ_ASSERT(isfinite(v->number));
        if (v->is_integer) FUZZ_ASSERT(v->number == (double)v->integer);
    }
    if (v->type == VITQ_I_JSON_STRING) FUZZ_ASSERT(v->string && v->string[v->length] == '\0');
    if (v->type == VITQ_I_JSON_ARRAY || v->type == VITQ_I_JSON_OBJECT)
        for (size_t i = 0; i < v->count; i++) check_node(v->items[i]);
}

static void check_equal(const vitq_i_json *a, const vitq_i_json *b) {
    FUZZ_ASSERT(a->type == b->type);
    switch (a->type) {
    case VITQ_I_JSON_BOOL: FUZZ_ASSERT(a->boolean == b->boolean); break;
    case VITQ_I_JSON_NUMBER: FUZZ_ASSERT(memcmp(&a->number, &b->number, sizeof a->number) == 0); break;
    case VITQ_I_JSON_STRING: FUZZ_ASSERT(a->length == b->length && memcmp(a->string, b->string, a->length) == 0); break;
    case VITQ_I_JSON_ARRAY:
    case VITQ_I_JSON_OBJECT:
        FUZZ_ASSERT(a->count == b->count);
        for (size_t i = 0; i < a->count; i++) {
            if (a->type == VITQ_I_JSON_OBJECT)
                FUZZ_ASSERT(a->key_lengths[i] == b->key_lengths[i] &&
                            memcmp(a->keys[i], b->keys[i], a->key_lengths[i]) == 0);
            check_equal(a->items[i], b->items[i]);
        }
        break;
    default: break;
    }
}

/* Every typed getter on every key of the root object: each either reads or fails with CONFIG. */
static void try_getters(const vitq_i_json *root) {
    if (root->type != VITQ_I_JSON_OBJECT) return;
    for (size_t i = 0; i < root->count; i++) {
        const char *k = root->keys[i];
        if (strlen(k) != root->key_lengths[i]) continue; /* a key holding \u0000 is not reachable by name */
        FUZZ_ASSERT(vitq_i_json_get(root, k) == root->items[i]);
        int64_t iv, ints[16];
        double d;
        int b, found;
        const char *s;
        float f[16];
        size_t n;
        vitq_status st[6];
        vitq_i_error_clear();
        st[0] = vitq_i_json_get_int(root, k, "fuzz.json", -1000, 1000, &iv, &found);
        st[1] = vitq_i_json_get_number(root, k, "fuzz.json", &d, &found);
        st[2] = vitq_i_json_get_bool(root, k, "fuzz.json", &b, &found);
        st[3] = vitq_i_json_get_string(root, k, "fuzz.json", &s, &found);
        st[4] = vitq_i_json_get_floats(root, k, "fuzz.json", 1, 16, f, &n, &found);
        st[5] = vitq_i_json_get_ints(root, k, "fuzz.json", 0, 16, ints, &n, NULL);
        for (int j = 0; j < 6; j++) {
            fuzz_check_status(st[j]);
            FUZZ_ASSERT(st[j] == VITQ_OK || st[j] == VITQ_ERR_CONFIG);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_alloc_state state;
    vitq_allocator a = fuzz_allocator(&state, 0);
    vitq_i_json *root = (vitq_i_json *)1;
    vitq_i_error_clear();
    vitq_status st = vitq_i_json_parse(&a, (const char *)data, size, "fuzz.json", &root);
    fuzz_check_status(st);
    FUZZ_ASSERT(st == VITQ_OK || st == VITQ_ERR_FORMAT);
    FUZZ_ASSERT((st == VITQ_OK) == (root != NULL));
    if (!root) {
        FUZZ_ASSERT(state.live == 0);
        return 0;
    }
    check_node(root);
    try_getters(root);
    text t = {NULL, 0, 0};
    write_value(&t, root);
    vitq_i_json *again = NULL;
    vitq_i_error_clear();
    st = vitq_i_json_parse(&a, t.p, t.len, "rewritten.json", &again);
    if (st != VITQ_OK) fprintf(stderr, "fuzz: rewritten JSON does not parse: %s\n%s\n", vitq_last_error(), t.p);
    FUZZ_ASSERT(st == VITQ_OK);
    check_equal(root, again);
    vitq_i_json_free(&a, again);
    vitq_i_json_free(&a, root);
    free(t.p);
    FUZZ_ASSERT(state.live == 0);
    return 0;
}
