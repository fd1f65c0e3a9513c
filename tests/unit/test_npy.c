/* .npy parser and writer: files numpy wrote (every supported dtype, versions 1.0 to 3.0, scalars),
 * the error manifest (fortran order, big-endian, malformed headers, truncation), every prefix of a
 * valid file, and write_header / save round trips. Fixtures come from
 * tests/fixtures/io/make_io_fixtures.py. */
#include <math.h>
#include <stdint.h>

#include "core/core.h"
#include "harness.h"
#include "io/npy.h"

#define FIX "tests/fixtures/io/"

static vitq_allocator al;

static uint8_t *slurp(const char *path, size_t *n) {
    uint8_t *d = NULL;
    if (vitq_i_read_file(&al, path, &d, n) != VITQ_OK) {
        printf("    cannot read %s: %s\n", path, vitq_last_error());
        return NULL;
    }
    return d;
}

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h >> 15) ? -v : v;
}

/* Element i of a little-endian array as a double (the test host is little-endian, as the CI). */
static double value_at(const vitq_i_array *a, size_t i) {
    const uint8_t *p = a->data + i * vitq_i_elem_size(a->elem);
    union {
        uint8_t u8;
        int8_t i8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        float f32;
        int64_t i64;
        uint64_t u64;
        double f64;
    } v;
    memcpy(&v, p, vitq_i_elem_size(a->elem));
    switch (a->elem) {
    case VITQ_I_ELEM_U8:
    case VITQ_I_ELEM_BOOL: return v.u8;
    case VITQ_I_ELEM_I8: return v.i8;
    case VITQ_I_ELEM_I16: return v.i16;
    case VITQ_I_ELEM_U16: return v.u16;
    case VITQ_I_ELEM_F16: return half_to_double(v.u16);
    case VITQ_I_ELEM_I32: return v.i32;
    case VITQ_I_ELEM_U32: return v.u32;
    case VITQ_I_ELEM_F32: return v.f32;
    case VITQ_I_ELEM_I64: return (double)v.i64;
    case VITQ_I_ELEM_U64: return (double)v.u64;
    case VITQ_I_ELEM_F64: return v.f64;
    default: return NAN;
    }
}

/* Parse a fixture; returns the buffer (free with vitq_i_free) and fills *a. */
static uint8_t *load(const char *file, vitq_i_array *a, vitq_status want) {
    char path[200];
    size_t n;
    snprintf(path, sizeof path, FIX "%s", file);
    uint8_t *buf = slurp(path, &n);
    CHECK(buf != NULL);
    if (!buf) return NULL;
    CHECK_STATUS(vitq_i_npy_parse(buf, n, file, a), want);
    return buf;
}

static void test_dtypes(void) {
    static const struct {
        const char *file;
        vitq_i_elem elem;
        double v[6];
    } cases[] = {
        {"npy/u1.npy", VITQ_I_ELEM_U8, {0, 1, 2, 3, 200, 255}},
        {"npy/i1.npy", VITQ_I_ELEM_I8, {-3, -2, -1, 0, 1, 2}},
        {"npy/b1.npy", VITQ_I_ELEM_BOOL, {0, 1, 1, 0, 1, 0}},
        {"npy/i2.npy", VITQ_I_ELEM_I16, {-3, -2, -1, 0, 1, 2}},
        {"npy/u2.npy", VITQ_I_ELEM_U16, {0, 1, 2, 3, 200, 255}},
        {"npy/f2.npy", VITQ_I_ELEM_F16, {-1.5, -0.25, 0, 0.5, 2, 1000}},
        {"npy/i4.npy", VITQ_I_ELEM_I32, {-3, -2, -1, 0, 1, 2}},
        {"npy/u4.npy", VITQ_I_ELEM_U32, {0, 1, 2, 3, 200, 255}},
        {"npy/f4.npy", VITQ_I_ELEM_F32, {-1.5, -0.25, 0, 0.5, 2, 1000}},
        {"npy/i8.npy", VITQ_I_ELEM_I64, {-3, -2, -1, 0, 1, 2}},
        {"npy/u8.npy", VITQ_I_ELEM_U64, {0, 1, 2, 3, 200, 255}},
        {"npy/f8.npy", VITQ_I_ELEM_F64, {-1.5, -0.25, 0, 0.5, 2, 1000}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vitq_i_array a;
        uint8_t *buf = load(cases[c].file, &a, VITQ_OK);
        if (!buf) continue;
        int ok = a.elem == cases[c].elem && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 &&
                 a.nbytes == 6 * vitq_i_elem_size(cases[c].elem);
        for (size_t i = 0; ok && i < 6; i++) ok = value_at(&a, i) == cases[c].v[i];
        if (!ok) printf("    %s: wrong element type, shape or values\n", cases[c].file);
        CHECK(ok);
        vitq_i_free(&al, buf);
    }
}

static void test_versions_and_shapes(void) {
    vitq_i_array a;
    const char *files[2] = {"npy/v2.npy", "npy/v3.npy"};
    for (int f = 0; f < 2; f++) {
        uint8_t *buf = load(files[f], &a, VITQ_OK);
        if (!buf) continue;
        CHECK(buf[6] == f + 2);
        CHECK(a.elem == VITQ_I_ELEM_F32 && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4);
        CHECK(a.nbytes == 96 && a.data == buf + 128); /* 12-byte preamble, 64-aligned data */
        for (size_t i = 0; i < 24; i++) CHECK(value_at(&a, i) == (double)i / 4);
        vitq_i_free(&al, buf);
    }
    uint8_t *buf = load("npy/scalar.npy", &a, VITQ_OK);
    CHECK(a.ndim == 0 && a.elem == VITQ_I_ELEM_F64 && a.nbytes == 8 && value_at(&a, 0) == 2.5);
    vitq_i_free(&al, buf);
    buf = load("npy/onedim.npy", &a, VITQ_OK);
    CHECK(a.ndim == 1 && a.shape[0] == 5 && a.elem == VITQ_I_ELEM_I32 && a.nbytes == 20);
    for (size_t i = 0; i < 5 && a.data; i++) CHECK(value_at(&a, i) == (double)i);
    vitq_i_free(&al, buf);
    buf = load("npy/empty.npy", &a, VITQ_OK);
    CHECK(a.ndim == 2 && a.shape[0] == 0 && a.shape[1] == 3 && a.nbytes == 0);
    vitq_i_free(&al, buf);
    /* Double quotes, keys in another order, no spaces, trailing commas; descr without byte order. */
    const char *alt[2] = {"npy/reordered.npy", "npy/native.npy"};
    for (int f = 0; f < 2; f++) {
        buf = load(alt[f], &a, VITQ_OK);
        CHECK(a.elem == VITQ_I_ELEM_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
        for (size_t i = 0; i < 6 && a.data; i++) CHECK(value_at(&a, i) == (double)i);
        vitq_i_free(&al, buf);
    }
}

/* npy_cases.txt: each file with its expected status; failures name the file. */
static void test_manifest(void) {
    FILE *f = fopen(FIX "npy_cases.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[256], file[200], status[64];
    int lines = 0, cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        lines++;
        if (sscanf(line, "%199s %63s", file, status) != 2) continue;
        vitq_status want = (vitq_status)-1;
        for (int i = 0; i < 64; i++)
            if (strcmp(vitq_status_name((vitq_status)i), status) == 0) want = (vitq_status)i;
        vitq_i_array a;
        uint8_t *buf = load(file, &a, want);
        if (want != VITQ_OK) CHECK(strstr(vitq_last_error(), file) != NULL);
        vitq_i_free(&al, buf);
        cases++;
    }
    fclose(f);
    CHECK(cases == lines && cases >= 20);
}

/* Messages say what is wrong. */
static void test_messages(void) {
    vitq_i_array a;
    uint8_t *buf = load("npy/big_endian.npy", &a, VITQ_ERR_DTYPE);
    CHECK(strstr(vitq_last_error(), "'>i4'") != NULL);
    vitq_i_free(&al, buf);
    buf = load("npy/missing_key.npy", &a, VITQ_ERR_FORMAT);
    CHECK(strstr(vitq_last_error(), "shape") != NULL);
    vitq_i_free(&al, buf);
    buf = load("npy/fortran.npy", &a, VITQ_ERR_UNSUPPORTED);
    CHECK(strstr(vitq_last_error(), "Fortran") != NULL);
    vitq_i_free(&al, buf);
    CHECK_STATUS(vitq_i_npy_parse(NULL, 0, "none.npy", &a), VITQ_ERR_TRUNCATED);
    CHECK_STATUS(vitq_i_npy_parse((const uint8_t *)"x", 1, "none.npy", NULL), VITQ_ERR_INVALID_ARGUMENT);
}

/* Every prefix of a valid file is TRUNCATED (exact-size copies, so ASan sees any overread). */
static void test_prefixes(void) {
    size_t n;
    uint8_t *buf = slurp(FIX "npy/v2.npy", &n);
    CHECK(buf != NULL);
    if (!buf) return;
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, buf, k);
        vitq_i_array a;
        vitq_status st = vitq_i_npy_parse(cut, k, "v2.npy", &a);
        if (st != VITQ_ERR_TRUNCATED && bad++ < 3) printf("    cut to %zu: %s\n", k, vitq_status_name(st));
        free(cut);
    }
    CHECK(bad == 0);
    vitq_i_free(&al, buf);
}

static void test_write_header(void) {
    static const vitq_i_elem elems[] = {VITQ_I_ELEM_U8,  VITQ_I_ELEM_I8,  VITQ_I_ELEM_BOOL, VITQ_I_ELEM_I16,
                                        VITQ_I_ELEM_U16, VITQ_I_ELEM_F16, VITQ_I_ELEM_I32,  VITQ_I_ELEM_U32,
                                        VITQ_I_ELEM_F32, VITQ_I_ELEM_I64, VITQ_I_ELEM_U64,  VITQ_I_ELEM_F64};
    const uint64_t shape[VITQ_I_MAX_DIMS] = {3, 1, 2, 1, 1, 2, 1, 1};
    char buf[VITQ_I_NPY_HEADER_MAX + 64];
    for (size_t e = 0; e < sizeof elems / sizeof elems[0]; e++) {
        for (int nd = 0; nd <= VITQ_I_MAX_DIMS; nd++) {
            size_t len = 0, es = vitq_i_elem_size(elems[e]), count = 1;
            for (int i = 0; i < nd; i++) count *= shape[i];
            CHECK_STATUS(vitq_i_npy_write_header(elems[e], nd, shape, buf, sizeof buf, &len), VITQ_OK);
            CHECK(len % 64 == 0 && len <= VITQ_I_NPY_HEADER_MAX && buf[len - 1] == '\n');
            CHECK(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0);
            CHECK((size_t)((uint8_t)buf[8] | (uint8_t)buf[9] << 8) == len - 10);
            for (size_t i = 0; i < count * es; i++) buf[len + i] = (char)(i * 13 + 1);
            vitq_i_array a;
            CHECK_STATUS(vitq_i_npy_parse((const uint8_t *)buf, len + count * es, "hdr", &a), VITQ_OK);
            CHECK(a.elem == elems[e] && a.ndim == nd && a.nbytes == count * es);
            CHECK(a.data == (const uint8_t *)buf + len);
            for (int i = 0; i < nd; i++) CHECK(a.shape[i] == shape[i]);
        }
    }
    size_t len = 0;
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }";
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_F32, 1, (const uint64_t[]){7}, buf, sizeof buf, &len), VITQ_OK);
    CHECK(len == 128 && memcmp(buf + 10, want, strlen(want)) == 0); /* 10 + 57 + 1 rounded up */
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_F32, 1, shape, buf, 127, &len), VITQ_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 128);
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_BF16, 1, shape, buf, sizeof buf, &len), VITQ_ERR_DTYPE);
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_F32, 9, shape, buf, sizeof buf, &len),
                 VITQ_ERR_INVALID_ARGUMENT);
    /* Large dimensions still fit the documented maximum. */
    const uint64_t big[VITQ_I_MAX_DIMS] = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
                                           UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_F64, 8, big, buf, VITQ_I_NPY_HEADER_MAX, &len), VITQ_OK);
}

/* Save to a file and read it back. */
static void test_save_round_trip(void) {
    const char *path = "build/test_npy_roundtrip.npy";
    float data[2][5];
    for (int i = 0; i < 10; i++) data[i / 5][i % 5] = (float)i * 0.75f - 2.0f;
    const uint64_t shape[2] = {2, 5};
    CHECK_STATUS(vitq_i_npy_save(path, VITQ_I_ELEM_F32, 2, shape, data), VITQ_OK);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    CHECK(buf != NULL);
    if (buf) {
        vitq_i_array a;
        CHECK_STATUS(vitq_i_npy_parse(buf, n, path, &a), VITQ_OK);
        CHECK(n == 128 + 40 && a.elem == VITQ_I_ELEM_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 5);
        CHECK(a.data && memcmp(a.data, data, sizeof data) == 0);
        vitq_i_free(&al, buf);
    }
    remove(path);
    CHECK_STATUS(vitq_i_npy_save("build/no/such/dir/x.npy", VITQ_I_ELEM_F32, 2, shape, data), VITQ_ERR_IO);
    CHECK(strstr(vitq_last_error(), "build/no/such/dir/x.npy") != NULL);
    CHECK_STATUS(vitq_i_npy_save(path, VITQ_I_ELEM_BF16, 2, shape, data), VITQ_ERR_DTYPE);
    CHECK(!vitq_i_path_exists(path));
}

int main(void) {
    vitq_i_allocator_resolve(NULL, &al);
    RUN(test_dtypes);
    RUN(test_versions_and_shapes);
    RUN(test_manifest);
    RUN(test_messages);
    RUN(test_prefixes);
    RUN(test_write_header);
    RUN(test_save_round_trip);
    HARNESS_EXIT();
}
