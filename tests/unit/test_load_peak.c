/* Loading holds at most one layer's temporaries beside the model (issue 19): for every bundled float
 * model (safetensors, from a file and from the caller's memory), quantized files made here through the
 * API (W8A8, W4A4, and one with integer non-linear operators loaded for integer-only execution), the
 * high-water mark of what the library allocates during the load, through a counting allocator, is at
 * most
 *
 *     resident + layer + slack
 *
 * resident: what the loaded model holds afterwards; layer: the largest linear layer's weight as
 * float32 (out x in x 4), the biggest temporary one layer needs (the floats read from the file and
 * packed into panels, or a quantized layer's codes widened to int32 before its integer panels exist);
 * slack: the reader's bookkeeping while the file is open (the tensor table, name index and the copy
 * of the header's names and metadata strings, all bounded by the header: 2 x its size) plus 32 KiB of
 * small fixed tables (checkpoint flags, the quantizer list).
 *
 * Before the loading was restructured the file's bytes, every dequantized weight and every float
 * panel of a quantized model were held at once: fmnist-vit float peaked at resident + 1.3 MB, W8A8 at
 * resident + 2.8 MB, where the bound allows about 0.2 MB.
 *
 * torch.save archives (.pth) read from a file are held to the same bound (io/pth.h reads data.pkl and
 * the zip directory, then each storage when its tensor is built); their "header" is data.pkl plus
 * the zip's central directory and end records. When the archive was read whole first, every .pth case
 * failed it by about the file's size (odd-vit-hf: peak - resident 328136 bytes where 89528 are
 * allowed). The file-backed reader must also answer exactly as the in-memory one
 * (vitq_model_load_memory, fuzzed): same status, message and tensor bytes for every fixture, every
 * truncation of a small archive and every failing allocation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/model.h"
#include "calib_util.h"
#include "io/pth.h"
#include "io/zip.h"
#include "model/weights.h"

#define FMNIST "models/fmnist-vit"
#define SLACK_FIXED ((size_t)32 << 10)

/* ---- counting allocator (single-threaded loads: plain counters) --------------------------------- */

#define HEADER 64 /* keeps each block 64-byte aligned and holds its size */
static size_t live_bytes, peak_bytes;

static void *counting_alloc(void *user, size_t size, size_t align) {
    (void)user;
    (void)align;
    if (size > SIZE_MAX - HEADER) return NULL;
    void *base = NULL;
    if (posix_memalign(&base, HEADER, size + HEADER) != 0) return NULL;
    memcpy(base, &size, sizeof size);
    live_bytes += size;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    return (char *)base + HEADER;
}

static void counting_free(void *user, void *ptr) {
    (void)user;
    char *base = (char *)ptr - HEADER;
    size_t size;
    memcpy(&size, base, sizeof size);
    live_bytes -= size;
    free(base);
}

static const vitq_allocator counting = {sizeof(vitq_allocator), counting_alloc, counting_free, NULL};

/* ---- helpers ------------------------------------------------------------------------------------ */

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (f) fclose(f);
    *size = buf ? (size_t)n : 0;
    return buf;
}

/* The safetensors header length of the first 8 bytes (0 for anything else). */
static size_t header_bytes(const uint8_t *b, size_t n) {
    uint64_t v = 0;
    for (int i = 7; n >= 8 && i >= 0; i--) v = v << 8 | b[i];
    return n >= 8 && v < n ? (size_t)v : 0;
}

static size_t largest_layer(const vitq_model *m) {
    size_t best = 0;
    const vitq_i_linear *l;
    for (size_t i = 0; (l = vitq_i_model_linear_at(m->net, i)) != NULL; i++)
        if (l->out * l->in * sizeof(float) > best) best = l->out * l->in * sizeof(float);
    return best;
}

/* Load `path` (or its bytes when `bytes` is set) with the counting allocator and check the bound;
 * `extra` is added to it. `base`: options to start from (NULL: the defaults). */
static void check_load_with(const vitq_model_options *base, const char *label, const char *path,
                            const uint8_t *bytes, size_t size, const char *config, int32_t execution,
                            size_t file_size, size_t header, size_t extra) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    if (base) o = *base;
    o.allocator = &counting;
    o.num_threads = 1;
    o.execution = execution;
    o.config_json = config;
    vitq_model *m = NULL;
    live_bytes = peak_bytes = 0;
    if (bytes)
        CHECK_STATUS(vitq_model_load_memory(bytes, size, path, &o, &m), VITQ_OK);
    else
        CHECK_STATUS(vitq_model_load_file(path, &o, &m), VITQ_OK);
    if (!m) return;
    size_t resident = live_bytes, layer = largest_layer(m), slack = 2 * header + SLACK_FIXED;
    size_t bound = resident + layer + slack + extra;
    printf("    %-34s file %8zu  resident %8zu  peak %8zu  (peak - resident %7zu; layer %7zu + slack %6zu%s)\n",
           label, file_size, resident, peak_bytes, peak_bytes - resident, layer, slack,
           extra ? " + file" : "");
    CHECK(peak_bytes <= bound);
    vitq_model_free(m);
    CHECK(live_bytes == 0);
}

static void check_load(const char *label, const char *path, const uint8_t *bytes, size_t size, const char *config,
                       int32_t execution, size_t file_size, size_t header, size_t extra) {
    check_load_with(NULL, label, path, bytes, size, config, execution, file_size, header, extra);
}

/* From the file and from memory. */
static void check_both(const char *label, const char *path, const char *config, int32_t execution) {
    size_t size = 0;
    uint8_t *bytes = read_all(path, &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    char text[160];
    size_t header = header_bytes(bytes, size);
    snprintf(text, sizeof text, "%s (file)", label);
    check_load(text, path, NULL, 0, NULL, execution, size, header, 0);
    snprintf(text, sizeof text, "%s (memory)", label);
    check_load(text, path, bytes, size, config, execution, size, header, 0);
    free(bytes);
}

/* ---- tests -------------------------------------------------------------------------------------- */

static void float_safetensors_peak(void) {
    static const char *const models[] = {"fmnist-vit", "fmnist-vit-hf", "fmnist-deit-distilled", "fmnist-swin",
                                         "fmnist-swin-hf", "fmnist-swin-timm-old"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char weights[256], cfg[256];
        snprintf(weights, sizeof weights, "models/%s/model.safetensors", models[i]);
        snprintf(cfg, sizeof cfg, "models/%s/config.json", models[i]);
        size_t n = 0;
        char *config = (char *)read_all(cfg, &n);
        if (config) config[n] = '\0';
        check_both(models[i], weights, config, VITQ_EXECUTION_AUTO);
        free(config);
    }
}

/* What the torch reader holds while the archive is open, its "header": data.pkl plus the central
 * directory and end records (the bytes after the last entry); 0 if no zip. */
static size_t pth_header_bytes(const uint8_t *b, size_t n) {
    vitq_i_zip z;
    if (vitq_i_zip_open(NULL, b, n, "peak.pth", &z) != VITQ_OK) return 0;
    size_t pkl = 0, end = 0;
    for (size_t i = 0; i < z.count; i++) {
        const vitq_i_zip_entry *e = &z.entries[i];
        static const char tail[] = "/data.pkl";
        if (e->name_len >= sizeof tail - 1 && !memcmp(e->name + e->name_len - (sizeof tail - 1), tail, sizeof tail - 1))
            pkl = e->size;
        if (e->offset + e->size > end) end = e->offset + e->size;
    }
    vitq_i_zip_close(&z);
    return pkl + (n - end);
}

static const char *const pth_models[] = {"odd-vit-hf",          "odd-deit-hf",       "odd-deit-timm-meta",
                                         "odd-vit-timm-tanh-bf16", "odd-swin-hf",     "odd-swin-timm-new",
                                         "odd-swin-timm-old",   "tv-vit",            "tv-vit-prelogits",
                                         "tv-swin"};

/* Every model fixture's model.pth (and the two training-style archives holding a state dict),
 * loaded from its file: the safetensors bound, nothing for the file. What a state dict does not state
 * comes from the options (as in test_pth and test_torchvision). */
static void float_pth_peak(void) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    size_t cn = 0;
    char *config = (char *)read_all("tests/fixtures/models/odd-vit-timm-tanh-bf16/config.json", &cn);
    CHECK(config != NULL);
    if (config) config[cn] = '\0';
    for (size_t i = 0; i < sizeof pth_models / sizeof pth_models[0] + 2; i++) {
        char path[256], label[96];
        vitq_model_options o;
        vitq_model_options_init(&o);
        const char *cfg = NULL;
        if (i < sizeof pth_models / sizeof pth_models[0]) {
            snprintf(path, sizeof path, "tests/fixtures/models/%s/model.pth", pth_models[i]);
            snprintf(label, sizeof label, "%s model.pth (file)", pth_models[i]);
            if (!strncmp(pth_models[i], "tv-", 3)) { /* a torchvision state dict states neither */
                o.num_heads = strstr(pth_models[i], "swin") ? 0 : 3;
                o.image_size = strstr(pth_models[i], "swin") ? 32 : 0;
                o.num_mean = o.num_std = 3;
                memcpy(o.mean, mean, sizeof mean);
                memcpy(o.std, std, sizeof std);
            }
            if (!strcmp(pth_models[i], "odd-deit-timm-meta")) { /* its safetensors __metadata__ */
                o.num_heads = 5;
                o.layer_norm_eps = 1e-6f;
                o.gelu = VITQ_GELU_ERF;
                o.num_mean = o.num_std = 3;
                memcpy(o.mean, mean, sizeof mean);
                memcpy(o.std, std, sizeof std);
            }
        } else { /* odd-vit-timm-tanh-bf16's tensors in a training checkpoint, no config beside */
            cfg = config;
            const char *f = i == sizeof pth_models / sizeof pth_models[0] ? "nested_model" : "train_state_dict";
            snprintf(path, sizeof path, "tests/fixtures/pth/%s.pth", f);
            snprintf(label, sizeof label, "pth/%s.pth (file)", f);
        }
        size_t size = 0;
        uint8_t *bytes = read_all(path, &size);
        CHECK(bytes != NULL);
        if (!bytes) continue;
        size_t header = pth_header_bytes(bytes, size);
        CHECK(header > 0 && header < size);
        free(bytes);
        check_load_with(&o, label, path, NULL, 0, cfg, VITQ_EXECUTION_AUTO, size, header, 0);
    }
    free(config);
}

/* ---- the file-backed torch reader answers as the in-memory one ---------------------------------- */

/* Same status and message; on success the same tensors (names, types, shapes, bytes). */
static int same_answer(const char *path, const uint8_t *buf, size_t n, const vitq_allocator *a) {
    vitq_i_safetensors mem, file;
    char mem_msg[1024];
    vitq_status sm = vitq_i_pth_parse(a, buf, n, path, &mem);
    snprintf(mem_msg, sizeof mem_msg, "%s", sm ? vitq_last_error() : "");
    vitq_status sf = vitq_i_pth_open(a, path, path, &file);
    int same = sm == sf && (sf == VITQ_OK || strcmp(mem_msg, vitq_last_error()) == 0);
    if (!same)
        printf("    %s: memory %s '%s', file %s '%s'\n", path, vitq_status_name(sm), mem_msg, vitq_status_name(sf),
               sf ? vitq_last_error() : "");
    if (same && sm == VITQ_OK) {
        same = mem.count == file.count && file.file != NULL;
        for (size_t i = 0; same && i < mem.count; i++) {
            const vitq_i_st_tensor *a_t = &mem.tensors[i], *b_t = &file.tensors[i];
            same = strcmp(a_t->name, b_t->name) == 0 && a_t->array.elem == b_t->array.elem &&
                   a_t->array.ndim == b_t->array.ndim && a_t->array.nbytes == b_t->array.nbytes &&
                   memcmp(a_t->array.shape, b_t->array.shape, sizeof(uint64_t) * (size_t)a_t->array.ndim) == 0;
            uint8_t *x = malloc(a_t->array.nbytes + 1), *y = malloc(a_t->array.nbytes + 1);
            same = same && x && y && vitq_i_st_read(&mem, a_t, x) == VITQ_OK &&
                   vitq_i_st_read(&file, b_t, y) == VITQ_OK && memcmp(x, y, a_t->array.nbytes) == 0;
            if (!same) printf("    %s: tensor '%s' differs\n", path, a_t->name);
            free(x), free(y);
        }
    }
    vitq_i_st_free(&mem);
    vitq_i_st_free(&file);
    CHECK(file.tensors == NULL && file.file == NULL);
    return same;
}

static void pth_file_equals_memory(void) {
    static const char *const files[] = {
        "ok_handmade", "zip64", "strided", "strided_p4", "shared_dict", "torch2_layout", "nested_model",
        "train_state_dict", "os_system", "builtins_eval", "torch_load", "reduce_storage", "inst", "self_append",
        "tuple_cycle", "late_append", "unset_memo", "huge_memo", "deep_marks", "deep_tuples", "stack_underflow",
        "no_stop", "bad_opcode", "storage_offset", "stride_oob", "storage_size", "missing_storage", "expand_bomb",
        "dup_key", "int_key", "nested_sd", "not_dict", "no_state_dict", "legacy", "truncated", "deflate_pkl",
        "zip_bomb", "zip64_bomb", "big_endian", "neg_bit", "many_flags", "repeated_key", "torchscript"};
    size_t total = sizeof files / sizeof files[0] + sizeof pth_models / sizeof pth_models[0];
    for (size_t i = 0; i < total; i++) {
        char path[256];
        if (i < sizeof files / sizeof files[0]) snprintf(path, sizeof path, "tests/fixtures/pth/%s.pth", files[i]);
        else
            snprintf(path, sizeof path, "tests/fixtures/models/%s/model.pth",
                     pth_models[i - sizeof files / sizeof files[0]]);
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf != NULL);
        if (buf) CHECK(same_answer(path, buf, n, NULL));
        free(buf);
    }
    /* A file that cannot be opened, or that is no archive at all. */
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_pth_open(NULL, "tests/fixtures/pth/no_such.pth", NULL, &st), VITQ_ERR_IO);
    CHECK_STATUS(vitq_i_pth_open(NULL, "tests/fixtures/pth/README.md", NULL, &st), VITQ_ERR_FORMAT);
}

/* Every proper prefix of a small archive, written to a file: refused, as from memory. */
static void pth_file_truncations(void) {
    size_t n = 0;
    uint8_t *buf = read_all("tests/fixtures/pth/ok_handmade.pth", &n);
    char dir[] = "/tmp/vitq_pth_cut_XXXXXX", path[64];
    CHECK(buf != NULL && mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/cut.pth", dir);
    int accepted = 0;
    for (size_t k = 0; buf && k < n; k++) {
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(buf, 1, k, f) == k);
        if (f) fclose(f);
        vitq_i_safetensors st;
        accepted += vitq_i_pth_open(NULL, path, NULL, &st) == VITQ_OK;
        vitq_i_st_free(&st);
        if (!same_answer(path, buf, k, NULL)) harness_check_failures++;
    }
    CHECK(accepted == 0);
    remove(path);
    rmdir(dir);
    free(buf);
}

/* ---- allocation failures on the file path ------------------------------------------------------- */

typedef struct {
    long seen, fail_at, live;
} failing;

static void *failing_alloc(void *user, size_t size, size_t align) {
    failing *f = user;
    (void)align;
    if (f->seen++ == f->fail_at) return NULL;
    void *p = malloc(size ? size : 1);
    if (p) f->live++;
    return p;
}

static void failing_free(void *user, void *ptr) {
    failing *f = user;
    if (ptr) f->live--;
    free(ptr);
}

/* With the k-th allocation failing, for every k: VITQ_ERR_OUT_OF_MEMORY and nothing leaked (the
 * strided fixture gathers from the file through a temporary). */
static void pth_file_oom(void) {
    static const char *const files[] = {"tests/fixtures/pth/strided.pth", "tests/fixtures/pth/zip64.pth",
                                        "tests/fixtures/models/odd-vit-timm-tanh-bf16/model.pth"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        failing c = {0, -1, 0};
        vitq_allocator a = {sizeof a, failing_alloc, failing_free, &c};
        vitq_i_safetensors st;
        CHECK_STATUS(vitq_i_pth_open(&a, files[i], NULL, &st), VITQ_OK);
        vitq_i_st_free(&st);
        long total = c.seen;
        CHECK(total > 3 && c.live == 0);
        for (long k = 0; k < total; k++) {
            failing f = {0, k, 0};
            vitq_allocator fa = {sizeof fa, failing_alloc, failing_free, &f};
            vitq_status got = vitq_i_pth_open(&fa, files[i], NULL, &st);
            if (got != VITQ_ERR_OUT_OF_MEMORY || f.live != 0) {
                printf("    %s: allocation %ld failing gave %s, %ld blocks live\n", files[i], k, vitq_status_name(got),
                       f.live);
                harness_check_failures++;
            }
            vitq_i_st_free(&st);
        }
    }
    /* A whole model load from a .pth file (the tensors read while the network is built). */
    const char *model = "tests/fixtures/models/odd-vit-timm-tanh-bf16/model.pth";
    failing c = {0, -1, 0};
    vitq_allocator a = {sizeof a, failing_alloc, failing_free, &c};
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &a;
    o.num_threads = 1;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(model, &o, &m), VITQ_OK);
    vitq_model_free(m);
    long total = c.seen;
    CHECK(total > 10 && c.live == 0);
    for (long k = 0; k < total; k++) {
        failing f = {0, k, 0};
        vitq_allocator fa = {sizeof fa, failing_alloc, failing_free, &f};
        o.allocator = &fa;
        m = NULL;
        vitq_status got = vitq_model_load_file(model, &o, &m);
        if (got != VITQ_ERR_OUT_OF_MEMORY || m || f.live != 0) {
            printf("    %s: allocation %ld of %ld failing gave %s, %ld blocks live\n", model, k, total,
                   vitq_status_name(got), f.live);
            harness_check_failures++;
        }
        vitq_model_free(m);
    }
}

/* fmnist-vit quantized at `wbits` x `abits` with `nonlinear` operators, saved to `path`. */
static int save_quantized(const char *path, int wbits, int abits, int32_t nonlinear) {
    vitq_model *fp = load(FMNIST), *q = NULL;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.weight_bits = wbits;
    o.activation_bits = abits;
    o.nonlinear = nonlinear;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 8), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    int ok = q && vitq_model_save(q, path) == VITQ_OK;
    vitq_calibrator_free(c);
    vitq_model_free(q);
    vitq_model_free(fp);
    return ok;
}

static void quantized_peak(void) {
    static const struct {
        const char *label;
        int wbits, abits;
        int32_t nonlinear, execution;
    } cases[] = {{"fmnist-vit W8A8", 8, 8, VITQ_NONLINEAR_FLOAT, VITQ_EXECUTION_AUTO},
                 {"fmnist-vit W8A8 simulated", 8, 8, VITQ_NONLINEAR_FLOAT, VITQ_EXECUTION_SIMULATED},
                 {"fmnist-vit W4A4", 4, 4, VITQ_NONLINEAR_FLOAT, VITQ_EXECUTION_AUTO},
                 {"fmnist-vit W8A8 ibert integer-only", 8, 8, VITQ_NONLINEAR_IBERT, VITQ_EXECUTION_INTEGER_ONLY}};
    char dir[] = "/tmp/vitq_load_peak_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/q%zu.safetensors", dir, i);
        if (!save_quantized(path, cases[i].wbits, cases[i].abits, cases[i].nonlinear)) {
            CHECK(0);
            continue;
        }
        check_both(cases[i].label, path, NULL, cases[i].execution);
        remove(path);
    }
    rmdir(dir);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    RUN(float_safetensors_peak);
    RUN(float_pth_peak);
    RUN(pth_file_equals_memory);
    RUN(pth_file_truncations);
    RUN(pth_file_oom);
    if (calib_set) RUN(quantized_peak);
    vitq_dataset_free(calib_set);
    HARNESS_EXIT();
}
