/* Embedded models (issue 19, docs/firmware.md): a quantized model's integer-only program written as a
 * blob (what `vitq export-c` puts in flash) and run in place through vitq_embedded_run gives the int32
 * logits of the program vitq runs itself (kernels/intvit.c), and, times the class scales, the logits of
 * vitq_model_forward_u8 with VITQ_EXECUTION_INTEGER_ONLY, bit for bit; for every non-linear method and a
 * distilled DeiT. Also: the arena query, what a damaged blob or a small arena gives, the C text, the
 * exact prediction, and the freestanding subset's message formatter. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/model.h"
#include "calib_util.h"
#include "core/format.h"
#include "kernels/embedded.h"
#include "quant/export_c.h"

#define FMNIST "models/fmnist-vit"
#define DISTILLED "models/fmnist-deit-distilled"
#define N 3 /* images per check: a batch of 3, and each alone */

/* `path` quantized (W8A8 min-max unless wbits says otherwise, operators as `nonlinear`) and loaded
 * integer-only. */
static vitq_model *integer_model(const char *path, int32_t nonlinear, int32_t wbits) {
    vitq_model *fp = load(path), *q = NULL, *io = NULL;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.nonlinear = nonlinear;
    o.weight_bits = wbits;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 16), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    size_t size = 0;
    char *bytes = NULL;
    if (q) {
        CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
        bytes = malloc(size);
        CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
        vitq_model_options mo;
        vitq_model_options_init(&mo);
        mo.execution = VITQ_EXECUTION_INTEGER_ONLY;
        CHECK_STATUS(vitq_model_load_memory(bytes, size, "q.safetensors", &mo, &io), VITQ_OK);
    }
    free(bytes);
    vitq_calibrator_free(c);
    vitq_model_free(q);
    vitq_model_free(fp);
    return io;
}

/* Pixels that are any bytes (every value of a uint8 pixel reachable). */
static uint8_t *pixels_of(size_t n, size_t per) {
    uint8_t *p = malloc(n * per);
    for (size_t k = 0; k < n * per; k++) p[k] = (uint8_t)(((k + 17) * 2654435761u) >> 24);
    return p;
}

static float f32_mul(float a, float b) { return a * b; }

/* One program: blob, then the embedded run against the library's own integer-only run. */
static void check_program(vitq_model *m, const char *what) {
    if (!m || !m->intonly) return;
    const vitq_i_intonly *p = m->intonly;
    uint64_t *blob = NULL;
    size_t words = 0;
    vitq_allocator a;
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &a), VITQ_OK);
    CHECK_STATUS(vitq_i_export_blob(p, &a, &blob, &words), VITQ_OK);
    if (!blob) return;
    vitq_embedded_model e;
    vitq_i_export_descriptor(p, blob, words, &e);
    size_t per = (size_t)e.channels * (size_t)e.image_size * (size_t)e.image_size, k = (size_t)e.classes;
    size_t outs = (size_t)e.outputs;
    uint8_t *pixels = pixels_of(N, per);
    /* the library's own program */
    size_t sb = vitq_i_intvit_scratch_bytes(&p->prog, N, 1);
    void *scratch = vitq_i_alloc(&a, sb);
    int32_t *want = calloc(2 * N * k, sizeof *want), *got = calloc(2 * N * k, sizeof *got);
    CHECK_STATUS(vitq_i_intvit_run(&p->prog, pixels, N, want, outs == 2 ? want + N * k : NULL, scratch, 1), VITQ_OK);
    /* the blob's, in a batch and one image at a time, in an arena at an odd address */
    size_t need = 0, need1 = 0;
    CHECK_STATUS(vitq_embedded_arena_size(&e, N, &need), VITQ_OK);
    CHECK_STATUS(vitq_embedded_arena_size(&e, 1, &need1), VITQ_OK);
    CHECK(need > need1 && need1 > vitq_i_intvit_scratch_bytes(&p->prog, 1, 1));
    /* the fixed part (the program's structures) is small: a few KB beside the activations */
    CHECK(need1 - vitq_i_intvit_scratch_bytes(&p->prog, 1, 1) < 16384);
    uint8_t *arena = malloc(need + 1);
    CHECK_STATUS(vitq_embedded_run(&e, arena + 1, need, pixels, N, got), VITQ_OK);
    CHECK(!memcmp(got, want, N * k * outs * sizeof *got));
    int same_alone = 1;
    for (size_t i = 0; i < N; i++) {
        int32_t one[64];
        CHECK_STATUS(vitq_embedded_run(&e, arena, need1, pixels + i * per, 1, one), VITQ_OK);
        for (size_t o = 0; o < outs; o++)
            same_alone &= !memcmp(one + o * k, want + (o * N + i) * k, k * sizeof *one);
    }
    CHECK(same_alone);
    /* the public float logits: the int32 times the scales vitq_embedded_logit_scales gives */
    float scales[128], *logits = malloc(N * k * sizeof(float));
    int32_t pred[N];
    CHECK_STATUS(vitq_embedded_logit_scales(&e, scales), VITQ_OK);
    CHECK_STATUS(vitq_model_forward_u8(m, pixels, N, VITQ_PIXELS_NCHW, logits), VITQ_OK);
    CHECK_STATUS(vitq_embedded_predict(&e, got, N, pred), VITQ_OK);
    int same_float = 1, same_pred = 1;
    for (size_t i = 0; i < N; i++) {
        size_t best = 0;
        for (size_t j = 0; j < k; j++) {
            float v = f32_mul((float)got[i * k + j], scales[j]);
            if (outs == 2) v = (v + f32_mul((float)got[(N + i) * k + j], scales[k + j])) / 2.0f;
            same_float &= memcmp(&v, &logits[i * k + j], sizeof v) == 0;
            if (logits[i * k + j] > logits[i * k + best]) best = j;
        }
        same_pred &= pred[i] == (int32_t)best;
    }
    CHECK(same_float);
    CHECK(same_pred);
    printf("    %s: %zu-byte blob, arena %zu bytes for one image (%zu for %d); logits equal\n", what, words * 8, need1,
           need, N);
    /* a small arena is refused, and nothing is written */
    int32_t untouched = 12345;
    got[0] = untouched;
    CHECK_STATUS(vitq_embedded_run(&e, arena, need - 1, pixels, N, got), VITQ_ERR_BUFFER_TOO_SMALL);
    CHECK(got[0] == untouched);
    free(arena), free(pixels), free(want), free(got), free(logits);
    vitq_i_free(&a, scratch);
    vitq_i_free(&a, blob);
}

static void test_against_the_library(void) {
    const struct {
        const char *path;
        int32_t nonlinear, wbits;
        const char *what;
    } cases[] = {{FMNIST, VITQ_NONLINEAR_IBERT, 8, "ViT W8A8 I-BERT"},
                 {FMNIST, VITQ_NONLINEAR_FQVIT, 8, "ViT W8A8 FQ-ViT"},
                 {FMNIST, VITQ_NONLINEAR_IVIT, 4, "ViT W4A8 I-ViT"},
                 {DISTILLED, VITQ_NONLINEAR_IBERT, 8, "distilled DeiT W8A8 I-BERT"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vitq_model *m = integer_model(cases[c].path, cases[c].nonlinear, cases[c].wbits);
        CHECK(m && m->intonly);
        check_program(m, cases[c].what);
        vitq_model_free(m);
    }
}

/* A blob changed anywhere gives an error or a run, never an access outside it (ASan / UBSan check the
 * latter); changes to the header, the dimensions and the array offsets are errors. */
static void test_damaged_blobs(void) {
    vitq_model *m = integer_model(FMNIST, VITQ_NONLINEAR_IBERT, 8);
    if (!m) return;
    vitq_allocator a;
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &a), VITQ_OK);
    uint64_t *blob = NULL, *copy = NULL;
    size_t words = 0;
    CHECK_STATUS(vitq_i_export_blob(m->intonly, &a, &blob, &words), VITQ_OK);
    copy = vitq_i_alloc(&a, words * 8);
    vitq_embedded_model e;
    vitq_i_export_descriptor(m->intonly, copy, words, &e);
    size_t need = 0;
    memcpy(copy, blob, words * 8);
    CHECK_STATUS(vitq_embedded_arena_size(&e, 1, &need), VITQ_OK); /* of the undamaged blob */
    uint8_t *arena = malloc(need), *pixels = pixels_of(1, 28 * 28);
    int32_t logits[16];
    uint8_t *bytes = (uint8_t *)copy;
    uint32_t stream = 0;
    memcpy(&stream, bytes + 8, 4);
    /* the header and each dimension */
    const size_t fatal[] = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60};
    int refused = 0;
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        memcpy(copy, blob, words * 8);
        bytes[fatal[i]] ^= 0x40;
        vitq_status st = vitq_embedded_run(&e, arena, need, pixels, 1, logits);
        refused += st != VITQ_OK;
    }
    CHECK(refused == (int)(sizeof fatal / sizeof fatal[0]));
    /* every stream word in turn set to a large value: an error or a run (a multiplier still in its range),
     * nothing else */
    int runs = 0, errors = 0;
    for (uint32_t w = 0; w < stream; w += harness_quick() ? 7 : 1) {
        memcpy(copy, blob, words * 8);
        uint32_t v = 0x7ffffff0u;
        memcpy(bytes + VITQ_I_EMB_HEADER + 4 * w, &v, 4);
        size_t n2 = 0;
        vitq_status st = vitq_embedded_arena_size(&e, 1, &n2);
        if (!st && n2 <= need) st = vitq_embedded_run(&e, arena, need, pixels, 1, logits);
        if (st) errors++;
        else runs++;
    }
    printf("    %u stream words damaged: %d errors, %d runs\n", (unsigned)stream, errors, runs);
    CHECK(errors > 0);
    /* a descriptor of another version, a misaligned or short blob */
    memcpy(copy, blob, words * 8);
    vitq_embedded_model bad = e;
    bad.version = VITQ_EMBEDDED_VERSION + 1;
    CHECK_STATUS(vitq_embedded_run(&bad, arena, need, pixels, 1, logits), VITQ_ERR_ABI_MISMATCH);
    bad = e;
    bad.blob = copy + 1;
    CHECK_STATUS(vitq_embedded_arena_size(&bad, 1, &need), VITQ_ERR_INVALID_ARGUMENT);
    bad = e;
    bad.words = (uint32_t)words - 8;
    CHECK_STATUS(vitq_embedded_arena_size(&bad, 1, &need), VITQ_ERR_FORMAT);
    bad = e;
    bad.classes = 11;
    CHECK_STATUS(vitq_embedded_arena_size(&bad, 1, &need), VITQ_ERR_FORMAT);
    CHECK_STATUS(vitq_embedded_arena_size(&e, 0, &need), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_embedded_arena_size(NULL, 1, &need), VITQ_ERR_INVALID_ARGUMENT);
    free(arena), free(pixels);
    vitq_i_free(&a, blob);
    vitq_i_free(&a, copy);
    vitq_model_free(m);
}

/* The C text holds the blob's words; a symbol that is no identifier and a model that is not integer-only
 * are refused. */
static void test_export_c(void) {
    vitq_model *m = integer_model(FMNIST, VITQ_NONLINEAR_IVIT, 8);
    if (!m) return;
    const char *c_path = "build/test_embedded_model.c", *h_path = "build/test_embedded_model.h";
    CHECK_STATUS(vitq_model_export_c(m, "my_model", c_path, h_path), VITQ_OK);
    CHECK_STATUS(vitq_model_export_c(m, "9lives", c_path, h_path), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_model_export_c(m, "a-b", c_path, h_path), VITQ_ERR_INVALID_ARGUMENT);
    vitq_model *fp = load(FMNIST);
    CHECK_STATUS(vitq_model_export_c(fp, "m", c_path, h_path), VITQ_ERR_BAD_STATE);
    vitq_model_free(fp);
    vitq_allocator a;
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &a), VITQ_OK);
    uint64_t *blob = NULL;
    size_t words = 0;
    CHECK_STATUS(vitq_i_export_blob(m->intonly, &a, &blob, &words), VITQ_OK);
    uint8_t *text = NULL, *header = NULL;
    size_t len = 0, hlen = 0;
    CHECK_STATUS(vitq_i_read_file(&a, c_path, &text, &len), VITQ_OK);
    CHECK_STATUS(vitq_i_read_file(&a, h_path, &header, &hlen), VITQ_OK);
    if (text && header && blob) {
        char *s = vitq_i_alloc(&a, len + 1), *h = vitq_i_alloc(&a, hlen + 1);
        memcpy(s, text, len), memcpy(h, header, hlen);
        s[len] = h[hlen] = '\0';
        CHECK(strstr(h, "extern const vitq_embedded_model my_model;") != NULL);
        CHECK(strstr(h, "#define MY_MODEL_CLASSES 10") != NULL);
        CHECK(strstr(s, "#include \"test_embedded_model.h\"") != NULL);
        CHECK(strstr(s, "static const _Alignas(64) uint64_t my_model_blob[") != NULL);
        /* the words, parsed back */
        char *at = strstr(s, "] = {");
        size_t n = 0;
        int same = at != NULL;
        for (char *q = at ? at + 5 : s; same && n < words; n++) {
            char *end;
            unsigned long long v = strtoull(q, &end, 16);
            same = end != q && *end == 'u' && v == blob[n];
            q = end + 2;
        }
        CHECK(same && n == words);
        CHECK(strstr(s, "const vitq_embedded_model my_model = {VITQ_EMBEDDED_VERSION,") != NULL);
        vitq_i_free(&a, s);
        vitq_i_free(&a, h);
    }
    vitq_i_free(&a, text);
    vitq_i_free(&a, header);
    vitq_i_free(&a, blob);
    remove(c_path);
    remove(h_path);
    vitq_model_free(m);
}

/* The predicted class: the exact largest int32 x scale, ties to the lower class. */
static void test_predict_exact(void) {
    vitq_model *m = integer_model(FMNIST, VITQ_NONLINEAR_IBERT, 8);
    if (!m) return;
    vitq_allocator a;
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &a), VITQ_OK);
    uint64_t *blob = NULL;
    size_t words = 0;
    CHECK_STATUS(vitq_i_export_blob(m->intonly, &a, &blob, &words), VITQ_OK);
    vitq_embedded_model e;
    vitq_i_export_descriptor(m->intonly, blob, words, &e);
    float s[10];
    CHECK_STATUS(vitq_embedded_logit_scales(&e, s), VITQ_OK);
    int32_t logits[10 * 200], pred[200];
    uint32_t r = 12345;
    for (int i = 0; i < 200; i++)
        for (int j = 0; j < 10; j++) { /* near values: the classes' scales decide */
            r = r * 1103515245u + 12345u;
            logits[i * 10 + j] = i < 2 ? 0 : (int32_t)(1000000 + (r >> 20)) * (i % 3 == 0 ? -1 : 1);
        }
    CHECK_STATUS(vitq_embedded_predict(&e, logits, 200, pred), VITQ_OK);
    int same = pred[0] == 0 && pred[1] == 0; /* all zero: a tie, the lower class */
    for (int i = 2; i < 200; i++) {
        int best = 0; /* long double holds the 55-bit products exactly (x86's 64-bit mantissa) */
        for (int j = 1; j < 10; j++)
            if ((long double)logits[i * 10 + j] * s[j] > (long double)logits[i * 10 + best] * s[best]) best = j;
        same &= pred[i] == best;
    }
    CHECK(same);
    vitq_i_free(&a, blob);
    vitq_model_free(m);
}

static int vformat(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vitq_i_vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* The freestanding subset's formatter writes what snprintf writes for the conversions it has. */
static void test_formatter(void) {
    char a[200], b[200];
    int na = vformat(a, sizeof a, "%d|%5d|%-5d|%05d|%u|%x|%X|%zu|%lld|%s|%c|%%|%hhd|%ld|%-8s|%i", -42, 7, 7, -7, 4000000000u,
                     0xbeefu, 0xbeefu, (size_t)123456789, -9000000000000LL, "str", 'z', (signed char)-3, -5L, "ab", 0);
    int nb = snprintf(b, sizeof b, "%d|%5d|%-5d|%05d|%u|%x|%X|%zu|%lld|%s|%c|%%|%hhd|%ld|%-8s|%i", -42, 7, 7, -7, 4000000000u,
                      0xbeefu, 0xbeefu, (size_t)123456789, -9000000000000LL, "str", 'z', (signed char)-3, -5L, "ab", 0);
    CHECK(na == nb && !strcmp(a, b));
    na = vformat(a, 6, "%s=%d", "abcdef", 1); /* truncated, NUL-terminated, full length returned */
    CHECK(na == 8 && !strcmp(a, "abcde"));
    CHECK(vformat(NULL, 0, "%d", 12345) == 5);
    vformat(a, sizeof a, "%g then %d and %s", 2.5, 17, "x"); /* no floating point: '?', the rest intact */
    CHECK(!strcmp(a, "? then 17 and x"));
    vformat(a, sizeof a, "%lld %d", (long long)INT64_MIN, INT32_MIN);
    snprintf(b, sizeof b, "%lld %d", (long long)INT64_MIN, INT32_MIN);
    CHECK(!strcmp(a, b));
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    if (!calib_set) return 1;
    RUN(test_formatter);
    RUN(test_against_the_library);
    RUN(test_damaged_blobs);
    RUN(test_export_c);
    RUN(test_predict_exact);
    vitq_dataset_free(calib_set);
    HARNESS_EXIT();
}
