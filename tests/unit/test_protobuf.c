/* The protobuf encoder (src/io/protobuf.c) against wire bytes worked out by hand from the encoding
 * rules: varints (7 bits per byte, low group first), negative int64 as ten-byte two's complement,
 * fixed32 floats, length-delimited strings, packed repeated fields and nested messages. */
#include "harness.h"
#include "io/protobuf.h"

static vitq_allocator plain(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    return a;
}

/* Encode with `fill`, then compare with want[0..n). */
static void expect(void (*fill)(vitq_i_pb *), const uint8_t *want, size_t n) {
    vitq_allocator a = plain();
    vitq_i_pb pb;
    vitq_i_pb_init(&pb, &a);
    fill(&pb);
    uint8_t *out = NULL;
    size_t size = 0;
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_OK);
    CHECK(size == n);
    if (out && size == n) CHECK(memcmp(out, want, n) == 0);
    if (out && size == n && memcmp(out, want, n))
        for (size_t i = 0; i < n; i++) printf("    byte %zu: %02x, want %02x\n", i, out[i], want[i]);
    vitq_i_free(&a, out);
}

static void fill_small(vitq_i_pb *pb) {
    vitq_i_pb_uint(pb, 1, 150); /* the classic example: 08 96 01 */
    vitq_i_pb_uint(pb, 2, 0);
    vitq_i_pb_uint(pb, 15, 127);
    vitq_i_pb_uint(pb, 16, 128); /* field 16: key 0x80 needs two bytes */
}

static void test_varints(void) {
    const uint8_t want[] = {0x08, 0x96, 0x01, 0x10, 0x00, 0x78, 0x7f, 0x80, 0x01, 0x80, 0x01};
    expect(fill_small, want, sizeof want);
    CHECK(vitq_i_pb_varint_size(0) == 1);
    CHECK(vitq_i_pb_varint_size(127) == 1);
    CHECK(vitq_i_pb_varint_size(128) == 2);
    CHECK(vitq_i_pb_varint_size(UINT64_MAX) == 10);
}

static void fill_64(vitq_i_pb *pb) {
    vitq_i_pb_uint(pb, 1, UINT64_C(0x123456789abcdef0));
    vitq_i_pb_int(pb, 1, -1);
    vitq_i_pb_int(pb, 1, -2);
    vitq_i_pb_int(pb, 1, INT64_MIN);
}

static void test_varints_64_bit_and_negative(void) {
    /* 0x123456789abcdef0 in 7-bit groups, low first: 70 3d 5e 4d 78 56 34 12 ... */
    const uint8_t want[] = {
        0x08, 0xf0, 0xbd, 0xf3, 0xd5, 0x89, 0xcf, 0x95, 0x9a, 0x12,                   /* 0x123456789abcdef0 */
        0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,             /* -1 */
        0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,             /* -2 */
        0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};           /* INT64_MIN */
    expect(fill_64, want, sizeof want);
}

static void fill_floats(vitq_i_pb *pb) {
    vitq_i_pb_float(pb, 2, 1.0f);
    const float v[3] = {1.0f, -2.0f, 0.5f};
    vitq_i_pb_packed_floats(pb, 4, v, 3);
    const int64_t d[3] = {1, 300, -1};
    vitq_i_pb_packed_ints(pb, 1, d, 3);
}

static void test_floats_and_packed(void) {
    const uint8_t want[] = {
        0x15, 0x00, 0x00, 0x80, 0x3f,                                           /* field 2 fixed32 1.0 */
        0x22, 0x0c, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f, /* packed */
        0x0a, 0x0d, 0x01, 0xac, 0x02,                                           /* 1, 300 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};            /* -1 */
    expect(fill_floats, want, sizeof want);
}

static void fill_nested(vitq_i_pb *pb) {
    vitq_i_pb_string(pb, 4, "Add");
    vitq_i_pb_begin(pb, 5); /* attribute { name "axis", i 1, type INT } */
    vitq_i_pb_string(pb, 1, "axis");
    vitq_i_pb_int(pb, 3, 1);
    vitq_i_pb_uint(pb, 20, 2);
    vitq_i_pb_begin(pb, 6); /* an empty message inside */
    vitq_i_pb_end(pb);
    vitq_i_pb_end(pb);
    vitq_i_pb_bytes(pb, 9, "", 0);
}

static void test_nested_messages(void) {
    const uint8_t want[] = {0x22, 0x03, 'A',  'd',  'd',  0x2a, 0x0d, 0x0a, 0x04, 'a',  'x',
                            'i',  's',  0x18, 0x01, 0xa0, 0x01, 0x02, 0x32, 0x00, 0x4a, 0x00};
    expect(fill_nested, want, sizeof want);
}

/* A message longer than 127 bytes: its length prefix takes two bytes, so the content moves. */
static void test_long_nested_message(void) {
    vitq_allocator a = plain();
    vitq_i_pb pb;
    vitq_i_pb_init(&pb, &a);
    vitq_i_pb_begin(&pb, 1);
    uint8_t blob[300];
    for (int i = 0; i < 300; i++) blob[i] = (uint8_t)i;
    vitq_i_pb_bytes(&pb, 2, blob, sizeof blob); /* 1 + 2 + 300 = 303 bytes of content */
    vitq_i_pb_end(&pb);
    uint8_t *out = NULL;
    size_t size = 0;
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_OK);
    CHECK(size == 1 + 2 + 303);
    if (out && size == 306) {
        CHECK(out[0] == 0x0a && out[1] == 0xaf && out[2] == 0x02); /* 303 = 0x12f */
        CHECK(out[3] == 0x12 && out[4] == 0xac && out[5] == 0x02); /* 300 */
        CHECK(memcmp(out + 6, blob, 300) == 0);
    }
    vitq_i_free(&a, out);
}

static void test_unbalanced_messages_fail(void) {
    vitq_allocator a = plain();
    vitq_i_pb pb;
    uint8_t *out = NULL;
    size_t size = 0;
    vitq_i_pb_init(&pb, &a);
    vitq_i_pb_begin(&pb, 1);
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_ERR_GENERIC);
    CHECK(out == NULL);
    vitq_i_pb_init(&pb, &a);
    vitq_i_pb_end(&pb);
    vitq_i_pb_uint(&pb, 1, 1); /* ignored after the failure */
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_ERR_GENERIC);
    vitq_i_pb_init(&pb, &a);
    for (int i = 0; i <= VITQ_I_PB_MAX_DEPTH; i++) vitq_i_pb_begin(&pb, 1);
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_ERR_GENERIC);
    CHECK(strstr(vitq_last_error(), "nested") != NULL);
}

/* An allocator that fails after a budget: the failure is sticky and reported as out of memory. */
static size_t budget;
static void *tight_alloc(void *user, size_t size, size_t align) {
    (void)user;
    if (size > budget) return NULL;
    budget -= size;
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) ? NULL : p;
}
static void tight_free(void *user, void *p) {
    (void)user;
    free(p);
}

static void test_out_of_memory(void) {
    vitq_allocator tight = {sizeof tight, tight_alloc, tight_free, NULL}, a;
    vitq_i_allocator_resolve(&tight, &a);
    budget = 4096;
    vitq_i_pb pb;
    vitq_i_pb_init(&pb, &a);
    static uint8_t big[8192];
    vitq_i_pb_bytes(&pb, 1, big, sizeof big);
    uint8_t *out = NULL;
    size_t size = 0;
    CHECK_STATUS(vitq_i_pb_finish(&pb, &out, &size), VITQ_ERR_OUT_OF_MEMORY);
    CHECK(out == NULL);
}

int main(void) {
    RUN(test_varints);
    RUN(test_varints_64_bit_and_negative);
    RUN(test_floats_and_packed);
    RUN(test_nested_messages);
    RUN(test_long_nested_message);
    RUN(test_unbalanced_messages_fail);
    RUN(test_out_of_memory);
    HARNESS_EXIT();
}
