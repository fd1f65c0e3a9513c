/* safetensors reader: valid files (F32/F16/BF16 conversion, metadata, rank-0 and empty tensors),
 * every rejection with its exact status, allocation failures, and real checkpoints when present. */
#include <stdint.h>

#include "core/core.h"
#include "harness.h"
#include "io/safetensors.h"

/* Counting allocator, optionally failing its k-th call (see test_oom). */
typedef struct {
    long live, calls, fail_at;
} counting;

static void *count_alloc(void *user, size_t size, size_t align) {
    counting *c = user;
    if (c->calls++ == c->fail_at) return NULL;
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    c->live++;
    return p;
}

static void count_free(void *user, void *ptr) {
    counting *c = user;
    c->live--;
    free(ptr);
}

static counting counter = {0, 0, -1};
static vitq_allocator alloc = {sizeof(vitq_allocator), count_alloc, count_free, &counter};

/* A file in memory: 8-byte little-endian header length, the header (padded with `pad` spaces), then
 * `data_len` bytes of data. Caller frees. */
static uint8_t *make_file(const char *header, size_t pad, const void *data, size_t data_len, size_t *n) {
    size_t hlen = strlen(header) + pad;
    *n = 8 + hlen + data_len;
    uint8_t *buf = malloc(*n ? *n : 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, strlen(header));
    memset(buf + 8 + strlen(header), ' ', pad);
    if (data_len) memcpy(buf + 8 + hlen, data, data_len);
    return buf;
}

/* Parse header + `data_len` zero bytes and expect `want`, with `msg_part` in the message. */
static void expect(const char *header, size_t data_len, vitq_status want, const char *msg_part) {
    uint8_t *data = calloc(data_len ? data_len : 1, 1);
    size_t n;
    uint8_t *buf = make_file(header, 0, data, data_len, &n);
    vitq_i_safetensors st;
    vitq_status got = vitq_i_st_parse(&alloc, buf, n, "t.safetensors", &st);
    if (got != want) {
        printf("    header %.70s: got %s, expected %s (%s)\n", header, vitq_status_name(got),
               vitq_status_name(want), vitq_last_error());
        harness_check_failures++;
    }
    if (msg_part && !strstr(vitq_last_error(), msg_part)) {
        printf("    message '%s' lacks '%s'\n", vitq_last_error(), msg_part);
        harness_check_failures++;
    }
    if (want != VITQ_OK) CHECK(st.tensors == NULL && st.count == 0);
    vitq_i_st_free(&st);
    CHECK(counter.live == 0);
    free(buf);
    free(data);
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* The main valid file: F32 [2,2], F16 [10], BF16 [3], rank-0 F32, empty tensors, an I64 tensor. */
static const char *valid_header =
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"h\":{\"shape\":[10],\"dtype\":\"F16\",\"data_offsets\":[16,36]},"
    "\"__metadata__\":{\"format\":\"pt\",\"vitq.note\":\"caf\\u00e9\"},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[36,42]},"
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[42,46]},"
    "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[46,46]},"
    "\"e0\":{\"dtype\":\"F16\",\"shape\":[5,0],\"data_offsets\":[0,0]},"
    "\"idx\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[46,54]}}";

static const uint16_t f16_in[10] = {0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000,
                                    0x7C00, 0xFC00, 0x7E01, 0x8000, 0x7BFF};
static const uint32_t f16_want[10] = {
    0x33800000u, /* 2^-24, smallest subnormal */
    0x387FC000u, /* 1023 * 2^-24, largest subnormal */
    0x38800000u, /* 2^-14, smallest normal */
    0x3F800000u, /* 1 */
    0xC0000000u, /* -2 */
    0x7F800000u, /* inf */
    0xFF800000u, /* -inf */
    0x7FC02000u, /* NaN, payload kept */
    0x80000000u, /* -0 */
    0x477FE000u, /* 65504, largest finite */
};

static void fill_valid_data(uint8_t *d) {
    put_f32(d + 0, 1.0f);
    put_f32(d + 4, -2.5f);
    put_f32(d + 8, 1e-40f); /* float32 subnormal survives the copy */
    put_f32(d + 12, 3.0e38f);
    for (int i = 0; i < 10; i++) put_u16(d + 16 + 2 * i, f16_in[i]);
    put_u16(d + 36, 0x3F80); /* 1.0 */
    put_u16(d + 38, 0xC049); /* -3.140625 */
    put_u16(d + 40, 0xFF80); /* -inf */
    put_f32(d + 42, 42.0f);
    for (int i = 0; i < 8; i++) d[46 + i] = (uint8_t)(i == 0 ? 7 : 0);
}

static void check_valid(size_t pad) {
    uint8_t data[54];
    fill_valid_data(data);
    size_t n;
    uint8_t *buf = make_file(valid_header, pad, data, sizeof data, &n);
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_st_parse(&alloc, buf, n, "ok.safetensors", &st), VITQ_OK);
    CHECK(st.count == 7 && st.meta_count == 2 && st.data_size == 54);
    CHECK(st.header_size == strlen(valid_header) + pad);
    if (st.count != 7) {
        vitq_i_st_free(&st);
        free(buf);
        return;
    }
    /* Header order is kept; lookup by name works for every tensor. */
    CHECK(strcmp(st.tensors[0].name, "w") == 0 && strcmp(st.tensors[6].name, "idx") == 0);
    for (size_t i = 0; i < st.count; i++) CHECK(vitq_i_st_find(&st, st.tensors[i].name) == &st.tensors[i]);
    CHECK(vitq_i_st_find(&st, "x") == NULL && vitq_i_st_find(&st, "") == NULL);
    CHECK(vitq_i_st_find(&st, "__metadata__") == NULL);

    const vitq_i_st_tensor *w = vitq_i_st_find(&st, "w");
    CHECK(w->array.elem == VITQ_I_ELEM_F32 && w->array.ndim == 2 && w->array.shape[0] == 2 &&
          w->array.shape[1] == 2 && w->array.nbytes == 16 && w->begin == 0 && w->end == 16);
    CHECK(w->array.data == buf + 8 + st.header_size);
    float f[10];
    CHECK_STATUS(vitq_i_st_to_f32(&st, w, f), VITQ_OK);
    CHECK(f[0] == 1.0f && f[1] == -2.5f && bits(f[2]) == bits(1e-40f) && f[3] == 3.0e38f);

    const vitq_i_st_tensor *h = vitq_i_st_find(&st, "h");
    CHECK(h->array.elem == VITQ_I_ELEM_F16 && h->array.nbytes == 20);
    CHECK_STATUS(vitq_i_st_to_f32(&st, h, f), VITQ_OK);
    for (int i = 0; i < 10; i++)
        if (bits(f[i]) != f16_want[i]) {
            printf("    F16 0x%04x -> 0x%08x, expected 0x%08x\n", f16_in[i], (unsigned)bits(f[i]),
                   (unsigned)f16_want[i]);
            harness_check_failures++;
        }
    CHECK(f[0] == ldexpf(1.0f, -24) && f[1] == 1023.0f * ldexpf(1.0f, -24) && f[9] == 65504.0f);
    CHECK(isnan(f[7]) && isinf(f[5]) && f[5] > 0 && isinf(f[6]) && f[6] < 0 && signbit(f[8]));

    const vitq_i_st_tensor *b = vitq_i_st_find(&st, "b");
    CHECK(b->array.elem == VITQ_I_ELEM_BF16);
    CHECK_STATUS(vitq_i_st_to_f32(&st, b, f), VITQ_OK);
    CHECK(f[0] == 1.0f && f[1] == -3.140625f && isinf(f[2]) && f[2] < 0);

    const vitq_i_st_tensor *s = vitq_i_st_find(&st, "s");
    CHECK(s->array.ndim == 0 && vitq_i_array_count(&s->array) == 1 && s->array.nbytes == 4);
    CHECK_STATUS(vitq_i_st_to_f32(&st, s, f), VITQ_OK);
    CHECK(f[0] == 42.0f);

    const vitq_i_st_tensor *e = vitq_i_st_find(&st, "e"), *e0 = vitq_i_st_find(&st, "e0");
    CHECK(e->array.nbytes == 0 && vitq_i_array_count(&e->array) == 0 && e->begin == 46);
    CHECK(e0->array.nbytes == 0 && e0->array.ndim == 2 && e0->array.shape[0] == 5);
    f[0] = 9.0f;
    CHECK_STATUS(vitq_i_st_to_f32(&st, e, f), VITQ_OK);
    CHECK_STATUS(vitq_i_st_to_f32(&st, e0, NULL), VITQ_OK);
    CHECK(f[0] == 9.0f);

    const vitq_i_st_tensor *idx = vitq_i_st_find(&st, "idx");
    CHECK(idx->array.elem == VITQ_I_ELEM_I64 && idx->array.data[0] == 7);
    CHECK_STATUS(vitq_i_st_to_f32(&st, idx, f), VITQ_ERR_DTYPE);
    CHECK(strstr(vitq_last_error(), "ok.safetensors: tensor 'idx': dtype I64 cannot be read as float"));

    CHECK(vitq_i_st_meta(&st, "format") && strcmp(vitq_i_st_meta(&st, "format"), "pt") == 0);
    CHECK(vitq_i_st_meta(&st, "vitq.note") && strcmp(vitq_i_st_meta(&st, "vitq.note"), "caf\xC3\xA9") == 0);
    CHECK(vitq_i_st_meta(&st, "absent") == NULL && vitq_i_st_meta(NULL, "format") == NULL);
    CHECK(strcmp(st.name, "ok.safetensors") == 0);

    vitq_i_st_free(&st);
    CHECK(st.tensors == NULL && st.count == 0);
    vitq_i_st_free(&st); /* twice is harmless */
    vitq_i_st_free(NULL);
    CHECK(counter.live == 0);
    free(buf);
}

static void test_valid(void) {
    check_valid(0);
    check_valid(5); /* space padding after the JSON, as the reference writer aligns the header */
    check_valid(7);
}

static void test_minimal(void) {
    expect("{}", 0, VITQ_OK, NULL);
    expect("{\"__metadata__\":{}}", 0, VITQ_OK, NULL);
    expect("{\"__metadata__\":null}", 0, VITQ_OK, NULL); /* the reference reader takes null as none */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3, VITQ_OK, NULL);
    /* Every supported dtype with its element size. */
    expect("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]},"
           "\"b\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[2,3]},"
           "\"c\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[3,5]},"
           "\"d\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[5,7]},"
           "\"e\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[7,11]},"
           "\"f\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[11,15]},"
           "\"g\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[15,23]},"
           "\"h\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[23,31]}}",
           31, VITQ_OK, NULL);
    /* Tensors listed out of offset order are fine; empty ones may sit inside or at the end. */
    expect("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
           "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
           "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]},"
           "\"y\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}",
           4, VITQ_OK, NULL);
    /* A zero dimension makes the tensor empty even when the other dimensions are huge. */
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904,0],"
           "\"data_offsets\":[0,0]}}",
           0, VITQ_OK, NULL);
    /* A rank-8 shape is the maximum. */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2, VITQ_OK, NULL);
}

static void test_size_errors(void) {
    vitq_i_safetensors st;
    uint8_t small[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    CHECK_STATUS(vitq_i_st_parse(&alloc, small, 0, "t.safetensors", &st), VITQ_ERR_TRUNCATED);
    CHECK_STATUS(vitq_i_st_parse(&alloc, small, 7, "t.safetensors", &st), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "t.safetensors: file of 7 bytes") != NULL);
    CHECK_STATUS(vitq_i_st_parse(&alloc, NULL, 0, "t.safetensors", &st), VITQ_ERR_TRUNCATED);
    CHECK_STATUS(vitq_i_st_parse(&alloc, NULL, 8, "t.safetensors", &st), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_st_parse(&alloc, small, 8, "t.safetensors", NULL), VITQ_ERR_INVALID_ARGUMENT);
    /* Header length past the end of the file. */
    CHECK_STATUS(vitq_i_st_parse(&alloc, small, 8, "t.safetensors", &st), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "t.safetensors: header length 2 past end of file of size 8") != NULL);
    uint8_t huge[12] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{', '}', ' ', ' '};
    CHECK_STATUS(vitq_i_st_parse(&alloc, huge, 12, NULL, &st), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "safetensors: header length 18446744073709551615 past end") != NULL);
    /* Header length over the 100 MB limit in a file big enough to hold it. */
    size_t big = (size_t)VITQ_I_ST_MAX_HEADER + 9;
    uint8_t *buf = calloc(big, 1);
    if (buf) {
        uint64_t len = VITQ_I_ST_MAX_HEADER + 1;
        for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
        buf[8] = '{';
        CHECK_STATUS(vitq_i_st_parse(&alloc, buf, big, "t.safetensors", &st), VITQ_ERR_FORMAT);
        CHECK(strstr(vitq_last_error(), "header length 100000001 exceeds the limit") != NULL);
        free(buf);
    }
    CHECK(counter.live == 0);
}

static void test_header_errors(void) {
    expect("", 0, VITQ_ERR_FORMAT, "t.safetensors: header does not start with '{'");
    expect(" {}", 0, VITQ_ERR_FORMAT, "does not start with '{'");
    expect("[]", 0, VITQ_ERR_FORMAT, "does not start with '{'");
    expect("{\"a\":", 0, VITQ_ERR_FORMAT, "t.safetensors: header: line 1 col 6: unexpected end of input");
    expect("{abc}", 0, VITQ_ERR_FORMAT, "t.safetensors: header: line 1 col 2: expected a string key");
    expect("{}x", 0, VITQ_ERR_FORMAT, "after the JSON value");
    expect("{} {}", 0, VITQ_ERR_FORMAT, "after the JSON value");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
           "\"data_offsets\":[1,2]}}",
           2, VITQ_ERR_FORMAT, "duplicate key \"a\"");
    /* Names are C strings: one with an embedded NUL is refused. */
    expect("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT,
           "name contains a NUL");
}

static void test_entry_errors(void) {
    expect("{\"a\":1}", 0, VITQ_ERR_FORMAT, "t.safetensors: tensor 'a': expected an object, got number");
    expect("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT, "tensor 'a': missing \"dtype\"");
    expect("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT, "missing \"shape\"");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, VITQ_ERR_FORMAT, "missing \"data_offsets\"");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":0}}", 1, VITQ_ERR_FORMAT,
           "tensor 'a': unknown field \"extra\"");
    /* dtypes: unknown names and valid-but-unsupported safetensors types. */
    expect("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_DTYPE,
           "tensor 'a': unknown dtype 'Q4'");
    expect("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, VITQ_ERR_DTYPE, "unknown dtype");
    expect("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_DTYPE,
           "dtype F8_E4M3 is valid safetensors but not supported");
    expect("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, VITQ_ERR_DTYPE, "not supported");
    expect("{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_DTYPE, "not supported");
    expect("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT,
           "dtype: expected a string, got number");
    /* Shapes. */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT, "shape: expected an array, got number");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT,
           "shape entry 0 is not a non-negative integer");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1.0],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT,
           "shape entry 1 is not");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT, "shape entry 0");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, VITQ_ERR_FORMAT,
           "shape has 9 dimensions, at most 8");
    /* Offsets. */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, VITQ_ERR_FORMAT,
           "data_offsets must be two non-negative integers");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, VITQ_ERR_FORMAT, "data_offsets");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, VITQ_ERR_FORMAT, "data_offsets");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 1, VITQ_ERR_FORMAT, "data_offsets");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e0]}}", 1, VITQ_ERR_FORMAT, "data_offsets");
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, VITQ_ERR_FORMAT,
           "data_offsets [4, 0] end before they begin");
    /* Shape against bytes. */
    expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12, VITQ_ERR_SHAPE,
           "t.safetensors: tensor 'w': shape [2,2] of F32 needs 16 bytes, offsets give 12");
    expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, VITQ_ERR_SHAPE,
           "shape [] of F32 needs 4 bytes, offsets give 0");
    expect("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, VITQ_ERR_SHAPE, "needs 6 bytes");
    expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,0]}}",
           0, VITQ_ERR_SHAPE, "needs more bytes than memory holds");
    expect("{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0, VITQ_ERR_SHAPE,
           "more bytes than memory");
}

static void test_metadata_errors(void) {
    expect("{\"__metadata__\":{\"a\":1}}", 0, VITQ_ERR_FORMAT,
           "t.safetensors: __metadata__ key 'a': expected a string, got number");
    expect("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, VITQ_ERR_FORMAT, "key 'a': expected a string, got object");
    expect("{\"__metadata__\":[\"a\"]}", 0, VITQ_ERR_FORMAT, "__metadata__: expected an object of strings, got array");
    expect("{\"__metadata__\":\"pt\"}", 0, VITQ_ERR_FORMAT, "got string");
    expect("{\"__metadata__\":{\"a\":\"x\\u0000y\"}}", 0, VITQ_ERR_FORMAT, "contains a NUL");
    expect("{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", 0, VITQ_ERR_FORMAT, "duplicate key");
}

static void test_layout_errors(void) {
    const char *two = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[%d,%d]}}";
    char h[256];
    /* A hole between two tensors. */
    snprintf(h, sizeof h, two, 8, 12);
    expect(h, 12, VITQ_ERR_FORMAT, "t.safetensors: bytes [4,8) belong to no tensor");
    /* A hole at the start. */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, VITQ_ERR_FORMAT,
           "bytes [0,2) belong to no tensor");
    /* Overlap: the message names both tensors. */
    snprintf(h, sizeof h, two, 2, 6);
    expect(h, 6, VITQ_ERR_FORMAT, "tensors 'a' [0,4) and 'b' [2,6) overlap");
    snprintf(h, sizeof h, two, 0, 4);
    expect(h, 4, VITQ_ERR_FORMAT, "overlap");
    /* Offsets out of bounds of the data: the ranges tile, but the file is too short. */
    snprintf(h, sizeof h, two, 4, 8);
    expect(h, 6, VITQ_ERR_TRUNCATED, "t.safetensors: tensors need 8 bytes of data, file has 6: truncated");
    expect(h, 0, VITQ_ERR_TRUNCATED, "tensors need 8 bytes");
    /* Trailing bytes after the last tensor. */
    expect(h, 9, VITQ_ERR_FORMAT, "1 trailing bytes after the 8 bytes of tensor data");
    expect("{}", 3, VITQ_ERR_FORMAT, "3 trailing bytes");
    /* An empty tensor past the end of the tensor data. */
    expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
           "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,9]}}",
           4, VITQ_ERR_FORMAT, "tensor 'e': empty tensor at offset 9 lies past the 4 bytes");
}

static void test_truncated_file(void) {
    /* The valid file cut inside its data section, one byte short at a time. */
    uint8_t data[54];
    fill_valid_data(data);
    size_t n;
    uint8_t *buf = make_file(valid_header, 0, data, sizeof data, &n);
    for (size_t cut = 1; cut <= sizeof data; cut++) {
        vitq_i_safetensors st;
        vitq_status got = vitq_i_st_parse(&alloc, buf, n - cut, "cut.safetensors", &st);
        CHECK(got == VITQ_ERR_TRUNCATED);
        if (cut == 10) CHECK(strstr(vitq_last_error(), "tensors need 54 bytes of data, file has 44"));
    }
    /* Cut inside the header: the header length now points past the end. */
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_st_parse(&alloc, buf, 8 + 20, "cut.safetensors", &st), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "past end of file of size 28") != NULL);
    CHECK(counter.live == 0);
    free(buf);
}

static void test_oom(void) {
    uint8_t data[54];
    fill_valid_data(data);
    size_t n;
    uint8_t *buf = make_file(valid_header, 0, data, sizeof data, &n);
    vitq_i_safetensors st;
    counter.calls = 0;
    CHECK_STATUS(vitq_i_st_parse(&alloc, buf, n, "oom.safetensors", &st), VITQ_OK);
    long total = counter.calls;
    vitq_i_st_free(&st);
    CHECK(total >= 3);
    for (long k = 0; k < total; k++) {
        counter.fail_at = k;
        counter.calls = 0;
        vitq_status got = vitq_i_st_parse(&alloc, buf, n, "oom.safetensors", &st);
        CHECK(got == VITQ_ERR_OUT_OF_MEMORY && st.count == 0 && counter.live == 0);
    }
    counter.fail_at = -1;
    free(buf);
}

/* Parse a real checkpoint and convert every float tensor; returns 0 when the file is absent. */
static int load_real(const char *path, vitq_i_safetensors *st, uint8_t **data) {
    size_t size;
    if (!vitq_i_path_exists(path)) return 0;
    CHECK_STATUS(vitq_i_read_file(&alloc, path, data, &size), VITQ_OK);
    if (!*data) return 0;
    CHECK_STATUS(vitq_i_st_parse(&alloc, *data, size, path, st), VITQ_OK);
    size_t bad = 0;
    for (size_t i = 0; i < st->count; i++) {
        const vitq_i_st_tensor *t = &st->tensors[i];
        CHECK(vitq_i_st_find(st, t->name) == t);
        vitq_i_elem e = t->array.elem;
        if (e != VITQ_I_ELEM_F32 && e != VITQ_I_ELEM_F16 && e != VITQ_I_ELEM_BF16) continue;
        size_t count = (size_t)vitq_i_array_count(&t->array);
        float *f = malloc(count ? count * sizeof *f : 1);
        CHECK_STATUS(vitq_i_st_to_f32(st, t, f), VITQ_OK);
        for (size_t k = 0; k < count; k++) bad += !isfinite(f[k]); /* trained weights are finite */
        free(f);
    }
    CHECK(bad == 0);
    return 1;
}

static void test_real_fmnist(void) {
    const char *path = "models/fmnist-vit/model.safetensors";
    vitq_i_safetensors st;
    uint8_t *data = NULL;
    memset(&st, 0, sizeof st);
    if (!load_real(path, &st, &data)) {
        SKIP("%s not present", path);
        return;
    }
    CHECK(st.count > 0);
    vitq_i_st_free(&st);
    vitq_i_free(&alloc, data);
    CHECK(counter.live == 0);
}

static void test_real_deit(void) {
    char path[1024];
    const char *dir = getenv("VITQ_IMAGENET_DIR");
    path[0] = '\0';
    if (dir && *dir) {
        /* The variable may name the ImageNet folder or the model folder itself. */
        snprintf(path, sizeof path, "%s/deit_tiny_patch16_224/model.safetensors", dir);
        if (!vitq_i_path_exists(path)) snprintf(path, sizeof path, "%s/model.safetensors", dir);
    }
    if (!path[0] || !vitq_i_path_exists(path))
        snprintf(path, sizeof path, "../shared/imagenet/deit_tiny_patch16_224/model.safetensors");
    vitq_i_safetensors st;
    uint8_t *data = NULL;
    memset(&st, 0, sizeof st);
    if (!load_real(path, &st, &data)) {
        SKIP("DeiT-tiny checkpoint not found (set VITQ_IMAGENET_DIR)");
        return;
    }
    CHECK(st.count == 152);
    const vitq_i_st_tensor *qkv = vitq_i_st_find(&st, "blocks.0.attn.qkv.weight");
    CHECK(qkv && qkv->array.elem == VITQ_I_ELEM_F32 && qkv->array.ndim == 2 && qkv->array.shape[0] == 576 &&
          qkv->array.shape[1] == 192);
    const vitq_i_st_tensor *pos = vitq_i_st_find(&st, "pos_embed");
    CHECK(pos && pos->array.ndim == 3 && pos->array.shape[1] == 197 && pos->array.shape[2] == 192);
    const vitq_i_st_tensor *cls = vitq_i_st_find(&st, "cls_token");
    CHECK(cls && vitq_i_array_count(&cls->array) == 192);
    CHECK(vitq_i_st_meta(&st, "format") && strcmp(vitq_i_st_meta(&st, "format"), "pt") == 0);
    /* First values, read independently with Python's struct module. */
    if (qkv && cls) {
        float *f = malloc(576 * 192 * sizeof *f);
        CHECK_STATUS(vitq_i_st_to_f32(&st, qkv, f), VITQ_OK);
        CHECK(bits(f[0]) == 0x3b8b6953u && bits(f[3]) == 0xbc1e88e4u);
        CHECK_STATUS(vitq_i_st_to_f32(&st, cls, f), VITQ_OK);
        CHECK(bits(f[0]) == 0x3cb4127fu && bits(f[2]) == 0xbf32238fu);
        free(f);
    }
    vitq_i_st_free(&st);
    vitq_i_free(&alloc, data);
    CHECK(counter.live == 0);
}

int main(void) {
    RUN(test_valid);
    RUN(test_minimal);
    RUN(test_size_errors);
    RUN(test_header_errors);
    RUN(test_entry_errors);
    RUN(test_metadata_errors);
    RUN(test_layout_errors);
    RUN(test_truncated_file);
    RUN(test_oom);
    RUN(test_real_fmnist);
    RUN(test_real_deit);
    HARNESS_EXIT();
}
