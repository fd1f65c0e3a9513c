/* DEFLATE / gzip decoder: the fixture manifest (valid and corrupt streams, each with its expected
 * status and output), a 300 KB multi-block stream checked against the generator that made it,
 * truncation and bit-flip sweeps, allocator accounting, and the real Fashion-MNIST file if present.
 * Fixtures come from tests/fixtures/io/make_io_fixtures.py. */
#include <stdint.h>

#include "core/core.h"
#include "harness.h"
#include "io/idx.h"
#include "io/inflate.h"

#define FIX "tests/fixtures/io/"

static vitq_allocator alloc_default(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    return a;
}

/* Read a fixture; NULL (and a failed check) when it is missing. */
static uint8_t *slurp(const char *path, size_t *n) {
    vitq_allocator a = alloc_default();
    uint8_t *d = NULL;
    if (vitq_i_read_file(&a, path, &d, n) != VITQ_OK) {
        printf("    cannot read %s: %s\n", path, vitq_last_error());
        return NULL;
    }
    return d;
}

static void release(uint8_t *p) {
    vitq_allocator a = alloc_default();
    vitq_i_free(&a, p);
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = UINT64_C(0xCBF29CE484222325);
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001B3);
    return h;
}

/* Same text as gen_text() in make_io_fixtures.py. */
static uint8_t *gen_text(size_t n) {
    static const char *const words[16] = {"vision", "transformer", "patch", "token", "attention", "head",
                                          "layer", "norm", "quantize", "calibrate", "scale", "zero",
                                          "point", "int8", "float", "tensor"};
    uint8_t *out = malloc(n + 16);
    size_t len = 0;
    uint32_t state = 12345;
    while (len < n) {
        state = state * 1103515245u + 12345u;
        const char *w = words[(state >> 16) % 16];
        size_t wl = strlen(w);
        for (size_t i = 0; i < wl && len < n + 16; i++) out[len++] = (uint8_t)w[i];
        state = state * 1103515245u + 12345u;
        if (len < n + 16) out[len++] = (state >> 16) % 13 == 0 ? '\n' : ' ';
    }
    return out;
}

static vitq_status status_from_name(const char *s) {
    for (int i = 0; i < 64; i++)
        if (strcmp(vitq_status_name((vitq_status)i), s) == 0) return (vitq_status)i;
    return (vitq_status)-1;
}

static vitq_status decode(int gz, const uint8_t *src, size_t n, const char *name, uint8_t **out, size_t *out_n) {
    vitq_allocator a = alloc_default();
    return gz ? vitq_i_gzip_decompress(&a, src, n, name, out, out_n)
              : vitq_i_inflate_raw(&a, src, n, name, out, out_n, NULL);
}

static void test_crc32(void) {
    const uint8_t *s = (const uint8_t *)"123456789";
    CHECK(vitq_i_crc32(0, s, 9) == 0xCBF43926u); /* the standard check value */
    CHECK(vitq_i_crc32(0, s, 0) == 0);
    CHECK(vitq_i_crc32(vitq_i_crc32(0, s, 4), s + 4, 5) == 0xCBF43926u);
    CHECK(vitq_i_is_gzip((const uint8_t *)"\x1f\x8b", 2) == 1);
    CHECK(vitq_i_is_gzip((const uint8_t *)"\x1f\x8c", 2) == 0);
    CHECK(vitq_i_is_gzip((const uint8_t *)"\x1f", 1) == 0);
    CHECK(vitq_i_is_gzip(NULL, 0) == 0);
}

/* Every line of deflate_cases.txt: decode, compare the status, and for valid streams the bytes. */
static void test_manifest(void) {
    FILE *f = fopen(FIX "deflate_cases.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[512], kind[16], file[200], status[64], expect[200];
    int lines = 0, cases = 0, ok_cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        lines++;
        if (sscanf(line, "%15s %199s %63s %199s", kind, file, status, expect) != 4) continue;
        char path[300], epath[300];
        snprintf(path, sizeof path, FIX "%s", file);
        size_t n, out_n = 0;
        uint8_t *src = slurp(path, &n), *out = NULL;
        CHECK(src != NULL);
        if (!src) continue;
        vitq_status want = status_from_name(status);
        vitq_status got = decode(strcmp(kind, "gzip") == 0, src, n, file, &out, &out_n);
        if (got != want)
            printf("    %s: got %s, expected %s (%s)\n", file, vitq_status_name(got), status, vitq_last_error());
        CHECK(got == want);
        if (got != VITQ_OK) {
            CHECK(out == NULL);
            /* The message names the file. */
            CHECK(strstr(vitq_last_error(), file) != NULL);
        }
        if (got == VITQ_OK && want == VITQ_OK) {
            size_t en;
            snprintf(epath, sizeof epath, FIX "%s", expect);
            uint8_t *e = slurp(epath, &en);
            CHECK(e != NULL && out_n == en && (en == 0 || memcmp(out, e, en) == 0));
            if (out_n != en) printf("    %s: %zu bytes, expected %zu\n", file, out_n, en);
            release(e);
            ok_cases++;
        }
        release(out);
        release(src);
        cases++;
    }
    fclose(f);
    CHECK(cases == lines && cases >= 40);
    CHECK(ok_cases >= 14);
}

/* ~300 KB of text in many dynamic blocks: bytes equal to the generator, CRC32 and FNV as recorded. */
static void test_big_text(void) {
    size_t n, out_n;
    uint8_t *src = slurp(FIX "big_text.gz", &n), *out = NULL;
    FILE *f = fopen(FIX "big_text.expect", "r");
    CHECK(src != NULL && f != NULL);
    if (!src || !f) {
        if (f) fclose(f);
        release(src);
        return;
    }
    size_t size = 0;
    unsigned crc = 0;
    unsigned long long fnv = 0;
    CHECK(fscanf(f, "%zu %x %llx", &size, &crc, &fnv) == 3);
    fclose(f);
    CHECK_STATUS(decode(1, src, n, "big_text.gz", &out, &out_n), VITQ_OK);
    CHECK(out_n == size && size == 300000);
    if (out && out_n == size) {
        uint8_t *want = gen_text(size);
        CHECK(memcmp(out, want, size) == 0);
        free(want);
        CHECK(vitq_i_crc32(0, out, out_n) == crc);
        CHECK(fnv1a64(out, out_n) == fnv);
    }
    release(out);
    release(src);
}

/* A raw stream followed by other bytes: those are left alone and *consumed says where it ended. */
static void test_raw_consumed(void) {
    size_t n, out_n, used = 0;
    uint8_t *src = slurp(FIX "dynamic.deflate", &n), *out = NULL;
    CHECK(src != NULL);
    if (!src) return;
    uint8_t *buf = malloc(n + 5);
    memcpy(buf, src, n);
    memcpy(buf + n, "tail!", 5);
    vitq_allocator a = alloc_default();
    CHECK_STATUS(vitq_i_inflate_raw(&a, buf, n + 5, "dyn+tail", &out, &out_n, &used), VITQ_OK);
    CHECK(used == n);
    CHECK(out_n == 8000);
    uint8_t *want = gen_text(8000);
    CHECK(out && memcmp(out, want, 8000) == 0);
    free(want);
    release(out);
    /* Arguments. */
    CHECK_STATUS(vitq_i_inflate_raw(NULL, buf, n, "x", &out, &out_n, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_gzip_decompress(&a, NULL, 3, "x", &out, &out_n), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_gzip_decompress(&a, buf, 0, "x", &out, &out_n), VITQ_ERR_TRUNCATED);
    CHECK_STATUS(vitq_i_inflate_raw(&a, buf, 0, "x", &out, &out_n, NULL), VITQ_ERR_TRUNCATED);
    free(buf);
    release(src);
}

/* Every proper prefix of a valid stream is TRUNCATED, never CORRUPT_DATA or a crash; except that
 * a gzip file cut between two members is a valid file holding the first members. */
static void sweep_prefixes(const char *file, int gz) {
    char path[200];
    snprintf(path, sizeof path, FIX "%s", file);
    size_t n, full_n = 0;
    uint8_t *src = slurp(path, &n), *full = NULL;
    CHECK(src != NULL);
    if (!src) return;
    CHECK_STATUS(decode(gz, src, n, file, &full, &full_n), VITQ_OK);
    size_t step = harness_quick() && n > 500 ? 7 : 1, bad = 0, boundaries = 0;
    for (size_t k = 0; k < n; k += step) {
        uint8_t *cut = malloc(k ? k : 1), *out = NULL; /* exact-size copy: ASan sees any overread */
        memcpy(cut, src, k);
        size_t out_n = 0;
        vitq_status st = decode(gz, cut, k, file, &out, &out_n);
        if (st == VITQ_OK && gz && k > 0 && out_n <= full_n && memcmp(out, full, out_n) == 0) {
            boundaries++;
        } else if (st != VITQ_ERR_TRUNCATED && bad++ < 3) {
            printf("    %s cut to %zu bytes: %s (%s)\n", file, k, vitq_status_name(st), vitq_last_error());
        }
        release(out);
        free(cut);
    }
    CHECK(bad == 0);
    if (strcmp(file, "multi.gz") == 0) CHECK(boundaries == 3 || (step > 1 && boundaries < 3)); /* 4 members */
    else CHECK(boundaries == 0);
    release(full);
    release(src);
}

static void test_truncation_sweep(void) {
    sweep_prefixes("small.gz", 1);
    sweep_prefixes("multi.gz", 1);
    sweep_prefixes("all_fields.gz", 1);
    sweep_prefixes("dynamic.deflate", 0);
    sweep_prefixes("fixed.deflate", 0);
    sweep_prefixes("mixed.deflate", 0);
    sweep_prefixes("single_dist.deflate", 0);
    sweep_prefixes("stored.deflate", 0);
}

/* Flipped bits: any documented status is fine, but an accepted gzip must still give the original
 * bytes (its CRC32 guarantees it), and nothing may crash or leak (checked under ASan). */
static void flip_sweep(const char *file, int gz, const char *expect_file) {
    char path[200];
    size_t n, en;
    snprintf(path, sizeof path, FIX "%s", file);
    uint8_t *src = slurp(path, &n);
    snprintf(path, sizeof path, FIX "%s", expect_file);
    uint8_t *e = slurp(path, &en);
    CHECK(src && e);
    if (!src || !e) {
        release(src);
        release(e);
        return;
    }
    uint32_t rng = 777;
    int rounds = harness_quick() ? 300 : 3000, odd = 0, rejected = 0;
    uint8_t *buf = malloc(n);
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, src, n);
        int flips = 1 + r % 3;
        for (int k = 0; k < flips; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t pos = (rng >> 8) % n;
            buf[pos] ^= (uint8_t)(1u << (rng >> 29));
        }
        uint8_t *out = NULL;
        size_t out_n = 0;
        vitq_status st = decode(gz, buf, n, file, &out, &out_n);
        if (st == VITQ_OK) {
            if (gz && (out_n != en || memcmp(out, e, en) != 0)) odd++;
        } else if (st == VITQ_ERR_CORRUPT_DATA || st == VITQ_ERR_TRUNCATED || st == VITQ_ERR_FORMAT) {
            rejected++;
        } else {
            odd++;
            printf("    %s: unexpected %s (%s)\n", file, vitq_status_name(st), vitq_last_error());
        }
        release(out);
    }
    CHECK(odd == 0);
    if (gz) CHECK(rejected > rounds / 2); /* raw literals often flip into other valid literals */
    free(buf);
    release(src);
    release(e);
}

static void test_bit_flips(void) {
    flip_sweep("small.gz", 1, "small.out");
    flip_sweep("multi.gz", 1, "multi.out");
    flip_sweep("dynamic.deflate", 0, "text8k.out");
    flip_sweep("fixed.deflate", 0, "text8k.out");
}

/* Counting allocator that can be told to fail: nothing leaks, on success or on any failure. */
typedef struct {
    long live, calls, fail_at;
} counting;

static void *count_alloc(void *user, size_t size, size_t align) {
    counting *c = user;
    if (++c->calls == c->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size)) return NULL;
    c->live++;
    return p;
}

static void count_free(void *user, void *p) {
    counting *c = user;
    c->live--;
    free(p);
}

static void test_allocator(void) {
    size_t n;
    uint8_t *src = slurp(FIX "big_text.gz", &n);
    CHECK(src != NULL);
    if (!src) return;
    counting c = {0, 0, 0};
    vitq_allocator a = {sizeof a, count_alloc, count_free, &c};
    uint8_t *out = NULL;
    size_t out_n = 0;
    CHECK_STATUS(vitq_i_gzip_decompress(&a, src, n, "big_text.gz", &out, &out_n), VITQ_OK);
    CHECK(out_n == 300000 && c.live == 1);
    vitq_i_free(&a, out);
    CHECK(c.live == 0);
    long total = c.calls;
    CHECK(total >= 2);
    for (long k = 1; k <= total; k++) {
        c.calls = 0;
        c.fail_at = k;
        out = NULL;
        CHECK_STATUS(vitq_i_gzip_decompress(&a, src, n, "big_text.gz", &out, &out_n), VITQ_ERR_OUT_OF_MEMORY);
        CHECK(out == NULL && c.live == 0);
    }
    /* A lying ISIZE (4 GB claimed by a tiny file) must not be believed. */
    uint8_t lie[20];
    size_t sn;
    uint8_t *small = slurp(FIX "empty.gz", &sn);
    CHECK(small && sn == 20);
    if (small && sn == 20) {
        memcpy(lie, small, 20);
        lie[16] = lie[17] = lie[18] = lie[19] = 0xFF;
        c.calls = 0;
        c.fail_at = 0;
        CHECK_STATUS(vitq_i_gzip_decompress(&a, lie, 20, "lie.gz", &out, &out_n), VITQ_ERR_CORRUPT_DATA);
        CHECK(c.live == 0);
    }
    release(small);
    release(src);
}

static const char *fashion_path(const char *file, char *buf, size_t cap) {
    snprintf(buf, cap, "data/fashion-mnist/%s", file);
    if (vitq_i_path_exists(buf)) return buf;
    snprintf(buf, cap, "/usr/share/datasets/fashion-mnist/%s", file);
    if (vitq_i_path_exists(buf)) return buf;
    return NULL;
}

/* The real bundled data: shape, size, CRC32 and FNV-1a of the pixels as the fixture script saw them. */
static void test_fashion_mnist(void) {
    char pbuf[200];
    const char *path = fashion_path("t10k-images-idx3-ubyte.gz", pbuf, sizeof pbuf);
    if (!path) {
        SKIP("Fashion-MNIST t10k-images-idx3-ubyte.gz not found");
        return;
    }
    FILE *f = fopen(FIX "fashion_t10k_images.expect", "r");
    CHECK(f != NULL);
    if (!f) return;
    unsigned long rows = 0, h = 0, w = 0, crc = 0;
    size_t size = 0;
    unsigned long long fnv = 0;
    CHECK(fscanf(f, "%lu %lu %lu %zu %lx %llx", &rows, &h, &w, &size, &crc, &fnv) == 6);
    fclose(f);
    size_t n, out_n = 0;
    uint8_t *src = slurp(path, &n), *out = NULL;
    CHECK(src != NULL);
    if (!src) return;
    CHECK_STATUS(decode(1, src, n, path, &out, &out_n), VITQ_OK);
    CHECK(out_n == size);
    vitq_i_array arr;
    if (out) {
        CHECK(vitq_i_crc32(0, out, out_n) == crc);
        CHECK_STATUS(vitq_i_idx_parse(out, out_n, path, &arr), VITQ_OK);
        CHECK(arr.ndim == 3 && arr.shape[0] == 10000 && arr.shape[1] == 28 && arr.shape[2] == 28);
        CHECK(arr.shape[0] == rows && arr.shape[1] == h && arr.shape[2] == w);
        CHECK(arr.nbytes == 7840000 && fnv1a64(arr.data, arr.nbytes) == fnv);
    }
    release(out);
    release(src);
}

/* The 26 MB training set, when present: decodes to the exact IDX size and shape (speed is for bench/). */
static void test_fashion_train(void) {
    char pbuf[200];
    const char *path = fashion_path("train-images-idx3-ubyte.gz", pbuf, sizeof pbuf);
    if (!path || harness_quick()) {
        SKIP("Fashion-MNIST training images not found, or quick mode");
        return;
    }
    size_t n, out_n = 0;
    uint8_t *src = slurp(path, &n), *out = NULL;
    CHECK(src != NULL);
    if (!src) return;
    CHECK_STATUS(decode(1, src, n, path, &out, &out_n), VITQ_OK);
    CHECK(out_n == 47040016);
    vitq_i_array arr;
    if (out) {
        CHECK_STATUS(vitq_i_idx_parse(out, out_n, path, &arr), VITQ_OK);
        CHECK(arr.shape[0] == 60000 && arr.shape[1] == 28 && arr.shape[2] == 28);
    }
    release(out);
    release(src);
}

int main(void) {
    RUN(test_crc32);
    RUN(test_manifest);
    RUN(test_big_text);
    RUN(test_raw_consumed);
    RUN(test_truncation_sweep);
    RUN(test_bit_flips);
    RUN(test_allocator);
    RUN(test_fashion_mnist);
    RUN(test_fashion_train);
    HARNESS_EXIT();
}
