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
 * resident + 2.8 MB, where the bound allows about 0.2 MB. A torch.save archive is still read whole
 * (io/pth.h): its bound adds the file's size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/model.h"
#include "calib_util.h"
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
 * `extra` is added to it (a torch archive's size). */
static void check_load(const char *label, const char *path, const uint8_t *bytes, size_t size, const char *config,
                       int32_t execution, size_t file_size, size_t header, size_t extra) {
    vitq_model_options o;
    vitq_model_options_init(&o);
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

static void float_pth_peak(void) {
    const char *path = "tests/fixtures/models/odd-vit-hf/model.pth";
    size_t size = 0;
    uint8_t *bytes = read_all(path, &size);
    CHECK(bytes != NULL);
    free(bytes);
    check_load("odd-vit-hf model.pth (file)", path, NULL, 0, NULL, VITQ_EXECUTION_AUTO, size, 0, size);
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
    if (calib_set) RUN(quantized_peak);
    vitq_dataset_free(calib_set);
    HARNESS_EXIT();
}
