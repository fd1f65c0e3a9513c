/* Model fixtures (tests/fixtures/models): golden checks of a fixture folder, and loading a fixture's
 * safetensors rebuilt with one defect (a dropped, retyped, reshaped or added tensor). */
#ifndef VITQ_TEST_MODEL_FIXTURES_H
#define VITQ_TEST_MODEL_FIXTURES_H

#include "io/safetensors.h"
#include "test_util.h"

#define FIXTURES "tests/fixtures/models/"

/* Index of the largest of x[0..k). */
static inline size_t top_class(const float *x, size_t k) {
    size_t best = 0;
    for (size_t c = 1; c < k; c++)
        if (x[c] > x[best]) best = c;
    return best;
}

/* The golden tolerance (logits_match) and the same top-1 class in every row. */
static inline void golden_match(const char *what, const float *got, const float *want, size_t rows, size_t cols) {
    logits_match(what, got, want, rows * cols);
    for (size_t r = 0; r < rows; r++) CHECK(top_class(got + r * cols, cols) == top_class(want + r * cols, cols));
}

/* Model m against the golden logits of fixture folder `name`: its float input and its uint8 pixels
 * (through the dataset API and the model's own mean/std). */
static inline void check_model_golden(const char *name, const vitq_model *m) {
    char path[512];
    uint64_t rows = 0, cols = 0, grows = 0, gcols = 0;
    snprintf(path, sizeof path, FIXTURES "%s/input.npy", name);
    float *input = load_npy_f32(path, &rows, &cols);
    snprintf(path, sizeof path, FIXTURES "%s/golden_logits.npy", name);
    float *want = load_npy_f32(path, &grows, &gcols);
    CHECK(input && want && rows == grows);
    if (input && want) {
        float *got = malloc(grows * gcols * sizeof(float));
        CHECK_STATUS(vitq_model_forward(m, input, rows, got), VITQ_OK);
        golden_match(name, got, want, grows, gcols);
        free(got);
    }
    free(input), free(want);
    vitq_dataset *d = NULL;
    snprintf(path, sizeof path, FIXTURES "%s/input_u8.npy", name);
    CHECK_STATUS(vitq_dataset_load_file(path, NULL, NULL, &d), VITQ_OK);
    snprintf(path, sizeof path, FIXTURES "%s/golden_logits_u8.npy", name);
    want = load_npy_f32(path, &grows, &gcols);
    CHECK(d && want);
    if (d && want) {
        float *got = malloc(grows * gcols * sizeof(float));
        CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, grows, got), VITQ_OK);
        golden_match("uint8 input", got, want, grows, gcols);
        free(got);
    }
    free(want);
    vitq_dataset_free(d);
}

/* A fixture folder under FIXTURES, loaded with its own files: golden logits from float input and from
 * uint8 pixels. */
static inline void check_fixture(const char *name) {
    char path[512];
    vitq_model *m = NULL;
    snprintf(path, sizeof path, FIXTURES "%s", name);
    CHECK_STATUS(vitq_model_load_file(path, NULL, &m), VITQ_OK);
    if (!m) return;
    check_model_golden(name, m);
    vitq_model_free(m);
}

/* ---- bad checkpoints: rebuild a fixture's safetensors with one defect ------------------------- */

typedef struct {
    const char *drop;        /* tensor to leave out */
    const char *retype;      /* tensor stored with dtype `dtype` instead */
    const char *dtype;
    const char *reshape;     /* tensor given shape `shape` (same bytes) */
    const char *shape;
    const char *add;         /* extra F32 tensor [4] */
    int no_metadata;
} defect;

static inline uint8_t *rebuild(const vitq_i_safetensors *st, const defect *d, size_t *size) {
    char *header = malloc(1 << 20);
    size_t hl = 0, offset = 0;
    hl += (size_t)sprintf(header + hl, "{");
    if (!d->no_metadata && st->meta_count) {
        hl += (size_t)sprintf(header + hl, "\"__metadata__\":{");
        for (size_t i = 0; i < st->meta_count; i++)
            hl += (size_t)sprintf(header + hl, "%s\"%s\":\"%s\"", i ? "," : "", st->meta_keys[i], st->meta_values[i]);
        hl += (size_t)sprintf(header + hl, "},");
    }
    for (size_t i = 0; i < st->count; i++) {
        const vitq_i_st_tensor *t = &st->tensors[i];
        if (d->drop && !strcmp(t->name, d->drop)) continue;
        char shape[128];
        if (d->reshape && !strcmp(t->name, d->reshape)) snprintf(shape, sizeof shape, "%s", d->shape);
        else vitq_i_shape_str(&t->array, shape, sizeof shape);
        const char *dtype = d->retype && !strcmp(t->name, d->retype) ? d->dtype : vitq_i_elem_name(t->array.elem);
        hl += (size_t)sprintf(header + hl, "\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]},",
                              t->name, dtype, shape, offset, offset + t->array.nbytes);
        offset += t->array.nbytes;
    }
    if (d->add) {
        hl += (size_t)sprintf(header + hl, "\"%s\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[%zu,%zu]},",
                              d->add, offset, offset + 16);
        offset += 16;
    }
    header[hl - 1] = '}';
    uint8_t *out = calloc(1, 8 + hl + offset);
    uint64_t n = hl;
    memcpy(out, &n, 8);
    memcpy(out + 8, header, hl);
    size_t pos = 8 + hl;
    for (size_t i = 0; i < st->count; i++) {
        const vitq_i_st_tensor *t = &st->tensors[i];
        if (d->drop && !strcmp(t->name, d->drop)) continue;
        memcpy(out + pos, t->array.data, t->array.nbytes);
        pos += t->array.nbytes;
    }
    free(header);
    *size = 8 + hl + offset;
    return out;
}

/* Load fixture `name` rebuilt with defect `d`, expecting `want` and `needle` in the message. */
static inline void expect_defect(const char *name, const defect *d, const vitq_model_options *o, vitq_status want,
                          const char *needle) {
    char path[256];
    vitq_allocator a;
    uint8_t *file;
    size_t n, size;
    vitq_i_safetensors st;
    vitq_i_allocator_resolve(NULL, &a);
    snprintf(path, sizeof path, FIXTURES "%s/model.safetensors", name);
    vitq_status read = vitq_i_read_file(&a, path, &file, &n);
    CHECK_STATUS(read, VITQ_OK);
    if (read != VITQ_OK) return; /* no fixture to damage */
    CHECK_STATUS(vitq_i_st_parse(&a, file, n, path, &st), VITQ_OK);
    uint8_t *bad = rebuild(&st, d, &size);
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bad, size, name, o, &m), want);
    CHECK(m == NULL || want == VITQ_OK);
    if (needle && !strstr(vitq_last_error(), needle)) {
        printf("    message '%s' does not name '%s'\n", vitq_last_error(), needle);
        harness_check_failures++;
    }
    vitq_model_free(m);
    free(bad);
    vitq_i_st_free(&st);
    vitq_i_free(&a, file);
}

/* ---- allocators ------------------------------------------------------------------------------ */

typedef struct {
    long live, total, fail_at; /* fail_at: index of the allocation that fails (-1: none) */
    uint8_t *arena;
    size_t used, cap;
} counting;

static inline void *count_alloc(void *user, size_t size, size_t align) {
    counting *c = user;
    if (c->fail_at >= 0 && c->total == c->fail_at) return NULL;
    c->total++;
    void *p;
    if (c->arena) { /* bump allocator in a fixed buffer, as firmware would give */
        size_t at = (c->used + align - 1) & ~(align - 1);
        if (at + size > c->cap) return NULL;
        p = c->arena + at;
        c->used = at + size;
    } else if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size)) {
        return NULL;
    }
    c->live++;
    return p;
}

static inline void count_free(void *user, void *ptr) {
    counting *c = user;
    c->live--;
    if (!c->arena) free(ptr);
}

/* Load fixture `name` and run its input with allocation k failing, for every k < total: each must
 * give VITQ_ERR_OUT_OF_MEMORY and leak nothing. */
static inline void check_allocation_failures(const char *name, long total) {
    char path[256];
    uint64_t rows = 0, cols = 0;
    snprintf(path, sizeof path, FIXTURES "%s/input.npy", name);
    float *input = load_npy_f32(path, &rows, &cols);
    float *out = malloc(rows * 64 * sizeof(float));
    CHECK(input != NULL && total > 0);
    snprintf(path, sizeof path, FIXTURES "%s", name);
    for (long k = 0; input && k < total; k++) {
        counting f = {0, 0, k, NULL, 0, 0};
        vitq_allocator fa = {sizeof fa, count_alloc, count_free, &f};
        vitq_model_options o;
        vitq_model_options_init(&o);
        o.allocator = &fa;
        vitq_model *m = NULL;
        vitq_status st = vitq_model_load_file(path, &o, &m);
        if (st == VITQ_OK) st = vitq_model_forward(m, input, rows, out);
        if (st != VITQ_ERR_OUT_OF_MEMORY) {
            printf("    %s: allocation %ld failing gave %s\n", name, k, vitq_status_name(st));
            harness_check_failures++;
        }
        vitq_model_free(m);
        if (f.live != 0) {
            printf("    %s: allocation %ld failing leaked %ld blocks\n", name, k, f.live);
            harness_check_failures++;
        }
    }
    free(input), free(out);
}

/* Allocations a load plus forward of fixture `name` makes (with a counting allocator). */
static inline long count_allocations(const char *name) {
    char path[256];
    uint64_t rows = 0, cols = 0;
    snprintf(path, sizeof path, FIXTURES "%s/input.npy", name);
    float *input = load_npy_f32(path, &rows, &cols);
    float *out = malloc(rows * 64 * sizeof(float));
    counting c = {0, 0, -1, NULL, 0, 0};
    vitq_allocator a = {sizeof a, count_alloc, count_free, &c};
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &a;
    vitq_model *m = NULL;
    snprintf(path, sizeof path, FIXTURES "%s", name);
    CHECK_STATUS(vitq_model_load_file(path, &o, &m), VITQ_OK);
    if (m && input) CHECK_STATUS(vitq_model_forward(m, input, rows, out), VITQ_OK);
    vitq_model_free(m);
    CHECK(c.live == 0);
    free(input), free(out);
    return c.total;
}

#endif
