/* Hostile files: inputs crafted to make a reader overflow, allocate without bound or lie, each
 * rejected with a status and a message that says what is wrong, with every allocation bounded by
 * what the file itself holds. The crafted files are built here in memory: a quantized model made
 * with the public API and its vitq.points metadata edited, gzip bombs behind IDX and .npy headers,
 * headers with negative, huge or zero dimensions, labels beyond the model's classes, and .npy saves
 * onto paths that are not regular files. `test_hostile_files NAME` runs the tests whose name
 * contains NAME. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "core/core.h"
#include "harness.h"
#include "io/inflate.h"
#include "io/npy.h"

#define MODEL "tests/fixtures/models/odd-vit-hf"

/* ---- an allocator that refuses large blocks and remembers the largest request ---------------- */

typedef struct capped {
    size_t cap, largest;
} capped;

static void *capped_alloc(void *user, size_t size, size_t align) {
    capped *c = user;
    if (size > c->largest) c->largest = size;
    if (size > c->cap) return NULL;
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) == 0 ? p : NULL;
}

static void capped_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

static vitq_allocator capped_allocator(capped *c, size_t cap) {
    c->cap = cap;
    c->largest = 0;
    vitq_allocator a = {sizeof a, capped_alloc, capped_free, c};
    return a;
}

static int error_has(const char *text) {
    if (strstr(vitq_last_error(), text)) return 1;
    printf("    message lacks \"%s\": %s\n", text, vitq_last_error());
    return 0;
}

/* ---- a real quantized file, and edits of its vitq.points ------------------------------------- */

static uint8_t *qfile;
static size_t qfile_n;

/* W8A8 min-max of the odd-vit-hf fixture calibrated on two pseudo-random images. */
static int make_quantized(void) {
    if (qfile) return 1;
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.num_threads = 1;
    vitq_model *fp = NULL, *q = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, &mo, &fp), VITQ_OK);
    if (!fp) return 0;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "minmax";
    o.weight_bits = 8;
    o.activation_bits = 8;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    size_t per = 3 * 32 * 32;
    float *x = malloc(2 * per * sizeof(float));
    for (size_t i = 0; i < 2 * per; i++) x[i] = (float)((i * 2654435761u) % 1000u) / 500.0f - 1.0f;
    /* block 0's attention probabilities on mpq, a scheme with a revision (test_quant_revision) */
    if (c) CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.attn.softmax.out", "scheme", "mpq"), VITQ_OK);
    if (c) {
        CHECK_STATUS(vitq_calibrator_feed(c, x, 2), VITQ_OK);
        CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    }
    if (q) {
        CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &qfile_n), VITQ_OK);
        qfile = malloc(qfile_n);
        CHECK_STATUS(vitq_model_save_memory(q, qfile, qfile_n, &qfile_n), VITQ_OK);
    }
    free(x);
    vitq_model_free(q);
    vitq_calibrator_free(c);
    vitq_model_free(fp);
    return qfile != NULL;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Replace the value of member `key` of point `point` in the vitq.points text of `header` (a JSON
 * string inside the header, so its quotes are escaped) by the literal `value`. Returns the new
 * header (malloc'd; `header` is freed), or NULL when the point or key is not there. */
static char *edit_one(char *header, const char *point, const char *key, const char *value) {
    char anchor[256], field[64];
    snprintf(anchor, sizeof anchor, "\\\"name\\\":\\\"%s\\\"", point);
    snprintf(field, sizeof field, "\\\"%s\\\":", key);
    char *at = strstr(header, anchor);
    char *next = at ? strstr(at + strlen(anchor), "\\\"name\\\":") : NULL;
    char *f = at ? strstr(at, field) : NULL;
    if (!at || !f || (next && f > next)) {
        printf("    cannot find %s of %s in the header\n", key, point);
        free(header);
        return NULL;
    }
    char *v = f + strlen(field), *end = v;
    if (*v == '[') end = strchr(v, ']') + 1;
    else while (*end != ',' && *end != '}') end++;
    size_t before = (size_t)(v - header), vlen = strlen(value), after = strlen(end);
    char *out = malloc(before + vlen + after + 1);
    memcpy(out, header, before);
    memcpy(out + before, value, vlen);
    memcpy(out + before + vlen, end, after + 1);
    free(header);
    return out;
}

/* The quantized file with `count` edits (point, key, value triples) of its vitq.points; NULL when
 * one cannot be made. The header is padded again; tensor offsets are relative to the data section
 * and stay valid. */
static uint8_t *edit_points(const char *const *edits, int count, size_t *n) {
    size_t hlen = (size_t)le64(qfile);
    char *header = malloc(hlen + 1);
    memcpy(header, qfile + 8, hlen);
    header[hlen] = 0;
    for (size_t k = hlen; k > 0 && header[k - 1] == ' '; k--) header[k - 1] = 0; /* old padding */
    for (int i = 0; header && i < count; i++)
        header = edit_one(header, edits[3 * i], edits[3 * i + 1], edits[3 * i + 2]);
    if (!header) return NULL;
    size_t used = strlen(header), nh = (used + 7) / 8 * 8, data = qfile_n - 8 - hlen;
    *n = 8 + nh + data;
    uint8_t *out = malloc(*n);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)nh >> (8 * i));
    memcpy(out + 8, header, used);
    memset(out + 8 + used, ' ', nh - used);
    memcpy(out + 8 + nh, qfile + 8 + hlen, data);
    free(header);
    return out;
}

/* Load the quantized file with `count` edits through an allocator refusing blocks over 64 MiB;
 * expect `want` and, on failure, a message holding `text`. Returns the largest allocation asked. */
static size_t load_edits(const char *const *edits, int count, vitq_status want, const char *text) {
    size_t n = 0;
    uint8_t *bytes = edit_points(edits, count, &n);
    CHECK(bytes != NULL);
    if (!bytes) return 0;
    capped c;
    vitq_allocator a = capped_allocator(&c, (size_t)64 << 20);
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.allocator = &a;
    mo.num_threads = 1;
    vitq_model *m = NULL;
    vitq_status st = vitq_model_load_memory(bytes, n, "crafted.safetensors", &mo, &m);
    if (st != want)
        printf("    %s %s=%s...: got %s, expected %s (%s)\n", edits[0], edits[1], edits[2], vitq_status_name(st),
               vitq_status_name(want), vitq_last_error());
    CHECK(st == want);
    if (st && text) CHECK(error_has(text));
    vitq_model_free(m);
    free(bytes);
    return c.largest;
}

static size_t load_edited(const char *point, const char *key, const char *value, vitq_status want, const char *text) {
    const char *edit[3] = {point, key, value};
    return load_edits(edit, 1, want, text);
}

/* The editor itself: an unchanged value loads (so a failure below is the edit's doing). */
static void test_quant_edit_baseline(void) {
    if (!make_quantized()) return;
    size_t largest = load_edited("blocks.0.attn.qkv.weight", "shape", "[144,48]", VITQ_OK, NULL);
    CHECK(largest > 0 && largest < ((size_t)4 << 20));
}

/* A point saved under another meaning of its scheme's parameters (vitq_scheme.revision) is refused, not
 * misread: mpq's power grid (revision 1) reads the same "lower"/"upper" as vitq 0.4's uniform grid did. */
static void test_quant_revision(void) {
    if (!make_quantized()) return;
    const char *p = "blocks.0.attn.softmax.out";
    load_edited(p, "revision", "1", VITQ_OK, NULL);            /* what the save wrote */
    load_edited(p, "revision", "0", VITQ_ERR_UNSUPPORTED, p); /* a 0.4 file (no key means 0) */
    CHECK(error_has("revision 0 of scheme 'mpq'"));
    load_edited(p, "revision", "2", VITQ_ERR_UNSUPPORTED, "reads revision 1");
    /* a scheme of revision 0 refuses a file that claims another */
    load_edited("blocks.0.attn.qkv.input", "seed", "0,\\\"revision\\\":3", VITQ_ERR_UNSUPPORTED,
                "revision 3 of scheme 'minmax'");
}

/* Weight shapes whose product overflows int64, or whose packed row length wraps around to the
 * stored one: once a heap overflow in the code unpacker. */
static void test_quant_shape_overflow(void) {
    if (!make_quantized()) return;
    const char *w = "blocks.0.attn.qkv.weight";
    /* 2^61 + 48 columns: 8-bit rows of (2^61 + 48) * 8 bits wrap to 48 bytes, the stored width */
    load_edited(w, "shape", "[144,2305843009213694000]", VITQ_ERR_FORMAT, w);
    load_edited(w, "shape", "[144,2305843009213693999]", VITQ_ERR_FORMAT, w);
    load_edited(w, "shape", "[144,4294967296,4294967296]", VITQ_ERR_FORMAT, "dimension");
    load_edited(w, "shape", "[144,3,6148914691236517206]", VITQ_ERR_FORMAT, w);
    load_edited(w, "shape", "[144,9223372036854775807,9223372036854775807,2]", VITQ_ERR_FORMAT, w);
}

static void test_quant_shape_negative(void) {
    if (!make_quantized()) return;
    const char *w = "blocks.0.attn.qkv.weight";
    load_edited(w, "shape", "[144,-1,-48]", VITQ_ERR_FORMAT, "dimension 1 is -1");
    load_edited(w, "shape", "[144,-48]", VITQ_ERR_FORMAT, "dimension 1 is -48");
    load_edited(w, "shape", "[144,0]", VITQ_ERR_FORMAT, "dimension 1 is 0");
    load_edited(w, "shape", "[-144,48]", VITQ_ERR_FORMAT, "dimension 0 is -144");
    load_edited(w, "shape", "[144,-9223372036854775808]", VITQ_ERR_FORMAT, "dimension 1");
}

/* Channel counts no layer of the file has: refused before any quantizer state is allocated (once
 * 2^31 groups took 16.8 GB and 93 s). */
static void test_quant_huge_channels(void) {
    if (!make_quantized()) return;
    const char *in = "blocks.0.attn.qkv.input", *w = "blocks.0.attn.qkv.weight";
    size_t big = (size_t)4 << 20;
    /* a per-channel activation of 2^31 - 1 channels */
    const char *per_channel[] = {in, "granularity", "\\\"channel\\\"", in, "channels", "2147483647",
                                 in, "groups", "2147483647", in, "channels_per_group", "1"};
    CHECK(load_edits(per_channel, 4, VITQ_ERR_FORMAT, in) < big);
    CHECK(error_has("layer"));
    /* the same for a weight (whose file tensor has 144 rows) */
    const char *weight[] = {w, "channels", "2147483647", w, "groups", "2147483647"};
    CHECK(load_edits(weight, 2, VITQ_ERR_FORMAT, w) < big);
    /* a per-tensor activation claiming more channels than its layer */
    const char *per_tensor[] = {in, "channels", "1000000", in, "channels_per_group", "1000000"};
    CHECK(load_edits(per_tensor, 2, VITQ_ERR_FORMAT, "layer") < big);
    /* groups that do not divide the channels */
    CHECK(load_edited(w, "groups", "1000000", VITQ_ERR_FORMAT, w) < big);
}

/* Many entries, each within its layer, together asking for more quantizer state than the file's
 * layers hold values: refused before the first entry allocates. */
static void test_quant_channel_budget(void) {
    if (!make_quantized()) return;
    size_t hlen = (size_t)le64(qfile);
    char *header = malloc(hlen + 1);
    memcpy(header, qfile + 8, hlen);
    header[hlen] = 0;
    const char *key = "\\\"name\\\":\\\"blocks.0.attn.qkv.weight\\\"";
    char *entry = strstr(header, key), *list = strstr(header, "\"vitq.points\":\"[");
    CHECK(entry && list);
    if (!entry || !list) {
        free(header);
        return;
    }
    entry--; /* its '{' */
    char *end = strstr(entry, "]}") + 2; /* after its shape, the entry's last member */
    size_t elen = (size_t)(end - entry), copies = 3000, at = (size_t)(list - header) + strlen("\"vitq.points\":\"[");
    char *close = strstr(header + at, "]\"");
    size_t tail = strlen(close), nh = at + copies * (elen + 1) + tail;
    char *edited = malloc(nh + 1);
    memcpy(edited, header, at);
    size_t k = at;
    for (size_t i = 0; i < copies; i++, k += elen + 1) {
        memcpy(edited + k, entry, elen);
        edited[k + elen] = i + 1 < copies ? ',' : ' ';
    }
    memcpy(edited + k, close, tail + 1);
    size_t used = strlen(edited), padded = (used + 7) / 8 * 8, data = qfile_n - 8 - hlen, n = 8 + padded + data;
    uint8_t *bytes = malloc(n);
    for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(bytes + 8, edited, used);
    memset(bytes + 8 + used, ' ', padded - used);
    memcpy(bytes + 8 + padded, qfile + 8 + hlen, data);
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, n, "crafted.safetensors", NULL, &m), VITQ_ERR_FORMAT);
    CHECK(error_has("channels in all"));
    vitq_model_free(m);
    free(bytes);
    free(edited);
    free(header);
}

/* ---- gzip bombs behind IDX and .npy headers -------------------------------------------------- */

typedef struct bits {
    uint8_t *p;
    size_t n, cap;
    uint64_t acc;
    unsigned cnt;
} bits;

static void put_bits(bits *b, uint32_t v, unsigned k) {
    b->acc |= (uint64_t)v << b->cnt;
    b->cnt += k;
    while (b->cnt >= 8) {
        if (b->n == b->cap) {
            b->cap = b->cap ? 2 * b->cap : 4096;
            b->p = realloc(b->p, b->cap);
        }
        b->p[b->n++] = (uint8_t)b->acc;
        b->acc >>= 8;
        b->cnt -= 8;
    }
}

/* A Huffman code is sent first bit first: reverse it into the LSB-first stream. */
static void put_code(bits *b, uint32_t code, unsigned len) {
    uint32_t r = 0;
    for (unsigned i = 0; i < len; i++) r |= ((code >> i) & 1u) << (len - 1 - i);
    put_bits(b, r, len);
}

static void put_literal(bits *b, unsigned v) {
    if (v < 144) put_code(b, 0x30 + v, 8);
    else put_code(b, 0x190 + (v - 144), 9);
}

/* gzip of `head` followed by `zeros` zero bytes (zeros = 1 + 258 k), with a correct CRC and size:
 * one fixed-Huffman block of literals and (258, distance 1) matches, about 1:1600. */
static uint8_t *gzip_bomb(const uint8_t *head, size_t head_n, size_t zeros, size_t *n) {
    bits b = {0};
    static const uint8_t gz[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 0; i < 10; i++) put_bits(&b, gz[i], 8);
    put_bits(&b, 1, 1); /* final block */
    put_bits(&b, 1, 2); /* fixed Huffman */
    for (size_t i = 0; i < head_n; i++) put_literal(&b, head[i]);
    put_literal(&b, 0);
    for (size_t left = zeros - 1; left >= 258; left -= 258) {
        put_code(&b, 0xC0 + 5, 8); /* length symbol 285: 258 */
        put_code(&b, 0, 5);        /* distance code 0: 1 */
    }
    put_code(&b, 0, 7); /* end of block */
    if (b.cnt) put_bits(&b, 0, 8 - b.cnt); /* to a byte boundary */
    uint32_t crc = vitq_i_crc32(0, head, head_n);
    static const uint8_t zero[4096];
    for (size_t left = zeros; left;) {
        size_t k = left < sizeof zero ? left : sizeof zero;
        crc = vitq_i_crc32(crc, zero, k);
        left -= k;
    }
    uint64_t total = head_n + zeros;
    for (int i = 0; i < 4; i++) put_bits(&b, (crc >> (8 * i)) & 0xFF, 8);
    for (int i = 0; i < 4; i++) put_bits(&b, (uint32_t)(total >> (8 * i)) & 0xFF, 8);
    *n = b.n;
    return b.p;
}

/* 1 x 28 x 28 uint8 images claimed, 16 MiB of zeros delivered. */
static void check_bomb(const uint8_t *head, size_t head_n, const char *what) {
    size_t n = 0, zeros = 1 + 258 * (size_t)65000;
    uint8_t *gz = gzip_bomb(head, head_n, zeros, &n);
    capped c;
    vitq_allocator a = capped_allocator(&c, (size_t)256 << 20);
    vitq_dataset *d = NULL;
    vitq_status st = vitq_dataset_load_memory(gz, n, NULL, 0, &a, &d);
    CHECK(st == VITQ_ERR_FORMAT || st == VITQ_ERR_CORRUPT_DATA);
    if (st == VITQ_ERR_FORMAT || st == VITQ_ERR_CORRUPT_DATA) CHECK(error_has("header"));
    if (c.largest >= ((size_t)1 << 20))
        printf("    %s: %zu-byte allocation for a file whose header promises 800 bytes\n", what, c.largest);
    CHECK(c.largest < ((size_t)1 << 20));
    vitq_dataset_free(d);
    /* the same bomb as labels of a valid image file */
    uint8_t img[16 + 784] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    st = vitq_dataset_load_memory(img, sizeof img, gz, n, &a, &d);
    CHECK(st != VITQ_OK);
    CHECK(c.largest < ((size_t)1 << 20));
    vitq_dataset_free(d);
    free(gz);
}

static void test_gzip_bomb_idx(void) {
    const uint8_t idx[16] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    check_bomb(idx, sizeof idx, "IDX");
}

static void test_gzip_bomb_npy(void) {
    char head[VITQ_I_NPY_HEADER_MAX];
    size_t len = 0;
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_U8, 3, (const uint64_t[]){1, 28, 28}, head, sizeof head, &len),
                 VITQ_OK);
    check_bomb((const uint8_t *)head, len, ".npy");
}

/* The bound itself: an honest file decompresses, one byte more than its header says does not. */
static void test_gzip_exact_bound(void) {
    uint8_t head[16] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0, 16}; /* 256 pixels: 1 + 255 */
    size_t n = 0;
    uint8_t *gz = gzip_bomb(head, sizeof head, 1 + 258, &n); /* 259 zeros: 3 too many */
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_memory(gz, n, NULL, 0, NULL, &d), VITQ_ERR_FORMAT);
    CHECK(error_has("runs past the 272 bytes")); /* 16 header bytes + 256 pixels */
    vitq_dataset_free(d);
    free(gz);
    head[15] = 1; /* 16 x 1 = 16 pixels, 259 delivered */
    gz = gzip_bomb(head, sizeof head, 1 + 258, &n);
    CHECK_STATUS(vitq_dataset_load_memory(gz, n, NULL, 0, NULL, &d), VITQ_ERR_FORMAT);
    vitq_dataset_free(d);
    free(gz);
    /* the inflater's own bounds: a peek returns the first bytes only, a limit one byte short fails */
    vitq_allocator al;
    vitq_i_allocator_resolve(NULL, &al);
    uint8_t *out = NULL;
    size_t out_n = 0;
    gz = gzip_bomb(head, sizeof head, 1 + 258, &n);
    CHECK_STATUS(vitq_i_gzip_peek(&al, gz, n, "peek", 12, &out, &out_n), VITQ_OK);
    CHECK(out_n == 12 && out && memcmp(out, head, 12) == 0);
    vitq_i_free(&al, out);
    CHECK_STATUS(vitq_i_gzip_peek(&al, gz, n, "peek", 100000, &out, &out_n), VITQ_OK); /* all of it */
    CHECK(out_n == 16 + 259);
    vitq_i_free(&al, out);
    CHECK_STATUS(vitq_i_gzip_decompress_limit(&al, gz, n, "limit", 16 + 259, "here", &out, &out_n), VITQ_OK);
    CHECK(out_n == 16 + 259);
    vitq_i_free(&al, out);
    CHECK_STATUS(vitq_i_gzip_decompress_limit(&al, gz, n, "limit", 16 + 258, "here", &out, &out_n), VITQ_ERR_FORMAT);
    CHECK(out == NULL && error_has("limit: decompressed data runs past the 274 bytes here"));
    free(gz);
    /* 1 x 259 x 1: exactly what is delivered */
    uint8_t exact[16] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 0, 1};
    gz = gzip_bomb(exact, sizeof exact, 1 + 258, &n);
    CHECK_STATUS(vitq_dataset_load_memory(gz, n, NULL, 0, NULL, &d), VITQ_OK);
    vitq_dataset_free(d);
    free(gz);
}

/* ---- .npy saving never removes what it did not create ---------------------------------------- */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_npy_save_targets(void) {
    char dir[] = "build/hostile-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], sub[128], link_path[128];
    snprintf(path, sizeof path, "%s/ok.npy", dir);
    snprintf(sub, sizeof sub, "%s/folder.npy", dir);
    snprintf(link_path, sizeof link_path, "%s/full.npy", dir);
    const float data[3] = {1, 2, 3};
    const uint64_t shape[1] = {3};
    /* an ordinary save, then a save over it: the target is replaced, nothing else is left behind */
    CHECK_STATUS(vitq_i_npy_save(path, VITQ_I_ELEM_F32, 1, shape, data), VITQ_OK);
    CHECK_STATUS(vitq_i_npy_save(path, VITQ_I_ELEM_F32, 1, shape, data), VITQ_OK);
    CHECK(count_entries(dir) == 1);
    /* a folder: refused, still there */
    CHECK(mkdir(sub, 0700) == 0);
    CHECK_STATUS(vitq_i_npy_save(sub, VITQ_I_ELEM_F32, 1, shape, data), VITQ_ERR_IO);
    CHECK(error_has(sub));
    struct stat s;
    CHECK(stat(sub, &s) == 0 && S_ISDIR(s.st_mode));
    /* a device that fails every write (a link to /dev/full, so the device itself is never at risk) */
    if (symlink("/dev/full", link_path) == 0 && vitq_i_path_exists("/dev/full")) {
        CHECK_STATUS(vitq_i_npy_save(link_path, VITQ_I_ELEM_F32, 1, shape, data), VITQ_ERR_IO);
        CHECK(error_has(link_path));
        CHECK(lstat(link_path, &s) == 0 && S_ISLNK(s.st_mode));
    } else {
        printf("    (no /dev/full: device case not run)\n");
    }
    CHECK(count_entries(dir) == 3); /* ok.npy, folder.npy, full.npy: no temporary left */
    unlink(link_path);
    rmdir(sub);
    unlink(path);
    rmdir(dir);
}

/* ---- headers: magic, dimensions, labels ------------------------------------------------------ */

static void test_npy_bad_magic(void) {
    uint8_t buf[192];
    size_t len = 0;
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_U8, 1, (const uint64_t[]){4}, (char *)buf, sizeof buf, &len),
                 VITQ_OK);
    memset(buf + len, 7, 4);
    buf[5] = 'X'; /* \x93NUMPX */
    vitq_i_array a;
    CHECK_STATUS(vitq_i_npy_parse(buf, len + 4, "magic.npy", &a), VITQ_ERR_FORMAT);
    CHECK(error_has("magic.npy: not a .npy file (magic 93 4e 55 4d 50 58"));
    /* a dataset file named .npy gets the .npy message, not the IDX reader's */
    char dir[] = "build/hostile-XXXXXX", path[96];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/images.npy", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len + 4, f);
        fclose(f);
    }
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_file(path, NULL, NULL, &d), VITQ_ERR_FORMAT);
    CHECK(error_has("not a .npy file (magic"));
    /* neither magic: both readers named */
    memcpy(buf, "GIF89a", 6);
    CHECK_STATUS(vitq_dataset_load_memory(buf, len + 4, NULL, 0, NULL, &d), VITQ_ERR_FORMAT);
    CHECK(error_has("neither"));
    vitq_dataset_free(d);
    remove(path);
    rmdir(dir);
}

/* IDX images 1 x d1 x 28 with d1 as stored (big-endian 32 bits) and 784 pixels. */
static vitq_status load_idx_images(uint32_t d1) {
    uint8_t img[16 + 784] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 28};
    for (int i = 0; i < 4; i++) img[8 + i] = (uint8_t)(d1 >> (24 - 8 * i));
    vitq_dataset *d = NULL;
    vitq_status st = vitq_dataset_load_memory(img, sizeof img, NULL, 0, NULL, &d);
    vitq_dataset_free(d);
    return st;
}

/* .npy uint8 images with the shape text `shape` and `pixels` bytes of data. */
static vitq_status load_npy_images(const char *shape, size_t pixels) {
    char text[256];
    int k = snprintf(text, sizeof text, "{'descr': '|u1', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = (10 + (size_t)k + 1 + 63) / 64 * 64;
    uint8_t *buf = calloc(1, total + pixels);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)((total - 10) & 0xFF);
    buf[9] = (uint8_t)((total - 10) >> 8);
    memcpy(buf + 10, text, (size_t)k);
    memset(buf + 10 + k, ' ', total - 10 - (size_t)k - 1);
    buf[total - 1] = '\n';
    vitq_dataset *d = NULL;
    vitq_status st = vitq_dataset_load_memory(buf, total + pixels, NULL, 0, NULL, &d);
    vitq_dataset_free(d);
    free(buf);
    return st;
}

static void test_image_dimension_messages(void) {
    CHECK_STATUS(load_idx_images((uint32_t)-28), VITQ_ERR_FORMAT);
    CHECK(error_has("dimension 1") && error_has("-28"));
    CHECK_STATUS(load_idx_images(0x80000000u), VITQ_ERR_FORMAT);
    CHECK(error_has("dimension 1") && error_has("-2147483648"));
    CHECK_STATUS(load_idx_images(0), VITQ_ERR_SHAPE);
    CHECK(error_has("height (dimension 1") && error_has("is 0"));
    CHECK_STATUS(load_npy_images("(1, -28, 28)", 784), VITQ_ERR_FORMAT);
    CHECK(error_has("dimension 1") && error_has("-28"));
    CHECK_STATUS(load_npy_images("(1, 2147483648, 28)", 784), VITQ_ERR_SHAPE);
    CHECK(error_has("height (dimension 1") && error_has("2147483648"));
    CHECK_STATUS(load_npy_images("(1, 28, 0)", 0), VITQ_ERR_SHAPE);
    CHECK(error_has("width (dimension 2") && error_has("is 0"));
    CHECK_STATUS(load_npy_images("(0, 28, 28)", 0), VITQ_ERR_SHAPE);
    CHECK(error_has("no images"));
    CHECK_STATUS(load_npy_images("(1, 28, 28)", 784), VITQ_OK);
}

/* Labels of the wrong range: negative ones at load, ones beyond the model's classes at evaluation,
 * naming the first bad one. */
static void test_labels_out_of_range(void) {
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.num_threads = 1;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, &mo, &m), VITQ_OK); /* 32 x 32 x 3, 7 classes */
    if (!m) return;
    uint8_t imgs[20 + 3 * 32 * 32 * 3] = {0, 0, 8, 4, 0, 0, 0, 3, 0, 0, 0, 32, 0, 0, 0, 32, 0, 0, 0, 3};
    const uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 6, 7, 200};
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_memory(imgs, sizeof imgs, lab, sizeof lab, NULL, &d), VITQ_OK);
    float logits[3 * 7];
    if (d) {
        CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, 3, logits), VITQ_ERR_OUT_OF_RANGE);
        CHECK(error_has("image 1") && error_has("7"));
        CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, 1, logits), VITQ_OK); /* label 6 is fine */
    }
    vitq_dataset_free(d);
    d = NULL;
    /* int32 .npy labels with a negative one */
    char head[VITQ_I_NPY_HEADER_MAX];
    size_t len = 0;
    CHECK_STATUS(vitq_i_npy_write_header(VITQ_I_ELEM_I32, 1, (const uint64_t[]){3}, head, sizeof head, &len), VITQ_OK);
    uint8_t *npy = malloc(len + 12);
    memcpy(npy, head, len);
    const int32_t values[3] = {0, 1, -1};
    memcpy(npy + len, values, sizeof values);
    CHECK_STATUS(vitq_dataset_load_memory(imgs, sizeof imgs, npy, len + 12, NULL, &d), VITQ_ERR_FORMAT);
    CHECK(error_has("label 2") && error_has("-1"));
    vitq_dataset_free(d);
    free(npy);
    vitq_model_free(m);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : "";
#define RUN_IF(fn) \
    if (strstr(#fn, only)) RUN(fn)
    RUN_IF(test_quant_edit_baseline);
    RUN_IF(test_quant_revision);
    RUN_IF(test_quant_shape_negative);
    RUN_IF(test_quant_huge_channels);
    RUN_IF(test_quant_channel_budget);
    RUN_IF(test_gzip_bomb_idx);
    RUN_IF(test_gzip_bomb_npy);
    RUN_IF(test_gzip_exact_bound);
    RUN_IF(test_npy_save_targets);
    RUN_IF(test_npy_bad_magic);
    RUN_IF(test_image_dimension_messages);
    RUN_IF(test_labels_out_of_range);
    RUN_IF(test_quant_shape_overflow); /* last: it crashed the reader before the fix */
    free(qfile);
    HARNESS_EXIT();
}
