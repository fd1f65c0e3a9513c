/* Integer-only execution (issue 17): a model quantized with integer non-linear operators, loaded with
 * VITQ_EXECUTION_INTEGER_ONLY, runs from uint8 pixels to int32 logits without floating point
 * (kernels/intvit.c, proved float-free by tests/build/check_float_free.sh). Its predictions against its
 * own simulation (the same quantized file run with simulated quantization), every instruction-set path
 * and thread count giving the same bits, and what it refuses. */
#include <math.h>
#include <string.h>

#include "calib_util.h"
#include "kernels/cpu.h"
#include "kernels/igemm.h"
#include "kernels/intvit.h"

#define FMNIST "models/fmnist-vit"
#define DISTILLED "models/fmnist-deit-distilled"
#define SWIN "models/fmnist-swin"

/* `path` quantized W8A8 min-max with the operators as `nonlinear`, saved into memory. */
static char *quantize_bytes(const char *path, int32_t nonlinear, size_t *size) {
    vitq_model *fp = load(path);
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.nonlinear = nonlinear;
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    char *bytes = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 32), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    if (q) {
        CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, size), VITQ_OK);
        bytes = malloc(*size);
        CHECK_STATUS(vitq_model_save_memory(q, bytes, *size, size), VITQ_OK);
    }
    vitq_calibrator_free(c);
    vitq_model_free(q);
    vitq_model_free(fp);
    return bytes;
}

/* quantize_bytes, each (model, method) once: the mixed selection is the slow part of this test. */
static struct {
    const char *path;
    int32_t nonlinear;
    char *bytes;
    size_t size;
} cache[8];

static char *quantized_bytes(const char *path, int32_t nonlinear, size_t *size) {
    for (int i = 0; i < 8; i++) {
        if (cache[i].path && !strcmp(cache[i].path, path) && cache[i].nonlinear == nonlinear) {
            *size = cache[i].size;
            char *copy = malloc(*size);
            memcpy(copy, cache[i].bytes, *size);
            return copy;
        }
        if (!cache[i].path) {
            char *bytes = quantize_bytes(path, nonlinear, size);
            if (!bytes) return NULL;
            cache[i].path = path, cache[i].nonlinear = nonlinear, cache[i].bytes = bytes, cache[i].size = *size;
            return quantized_bytes(path, nonlinear, size);
        }
    }
    return quantize_bytes(path, nonlinear, size);
}

static vitq_model *load_as(const char *bytes, size_t size, int32_t execution, vitq_status want) {
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.execution = execution;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "q.safetensors", &mo, &m), want);
    return m;
}

static int argmax(const float *x, int k) {
    int best = 0;
    for (int c = 1; c < k; c++)
        if (x[c] > x[best]) best = c;
    return best;
}

/* Top-1 agreement with the simulation and accuracy, for each method, on a ViT and a distilled DeiT. */
static void test_against_simulation(void) {
    static const char *const models[2] = {FMNIST, DISTILLED};
    size_t n = harness_quick() ? 200 : 500;
    for (int mi = 0; mi < 2; mi++)
        for (int32_t method = VITQ_NONLINEAR_IBERT; method <= VITQ_NONLINEAR_MIXED; method++) {
            if (mi == 1 && method != VITQ_NONLINEAR_IBERT && method != VITQ_NONLINEAR_MIXED) continue;
            if (harness_quick() && (mi == 1 || method == VITQ_NONLINEAR_FQVIT)) continue; /* sanitizer builds */
            size_t size = 0;
            char *bytes = quantized_bytes(models[mi], method, &size);
            vitq_model *sim = bytes ? load_as(bytes, size, VITQ_EXECUTION_SIMULATED, VITQ_OK) : NULL;
            vitq_model *io = bytes ? load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_OK) : NULL;
            if (!sim || !io) {
                free(bytes);
                vitq_model_free(sim);
                vitq_model_free(io);
                continue;
            }
            int k = classes_of(sim);
            float *ls = logits_of(sim, n), *li = logits_of(io, n);
            size_t agree = 0;
            double cos_ab = 0, aa = 0, bb = 0;
            for (size_t i = 0; i < n; i++) agree += argmax(ls + i * (size_t)k, k) == argmax(li + i * (size_t)k, k);
            for (size_t e = 0; e < n * (size_t)k; e++)
                cos_ab += (double)ls[e] * li[e], aa += (double)ls[e] * ls[e], bb += (double)li[e] * li[e];
            double cosine = cos_ab / sqrt(aa * bb), acc_sim = top1(sim, n), acc_io = top1(io, n);
            printf("    %s, %s: top-1 simulated %.4f, integer-only %.4f, agreement %.4f, logit cosine %.6f\n",
                   models[mi], method == 4 ? "mixed" : method == 1 ? "ibert" : method == 2 ? "fqvit" : "ivit", acc_sim,
                   acc_io, (double)agree / (double)n, cosine);
            /* the program rounds each requantization once (dyadic, half away from zero) where the
             * simulation rounds in float: a few predictions near a tie may flip, no more */
            CHECK((double)agree / (double)n >= 0.98);
            CHECK(cosine > 0.995);
            CHECK(fabs(acc_io - acc_sim) <= 0.015);
            free(ls);
            free(li);
            free(bytes);
            vitq_model_free(sim);
            vitq_model_free(io);
        }
}

/* The same int32 arithmetic on every path: the portable C and each SIMD kernel give the same logits,
 * whatever the thread count. */
static void test_paths_and_threads_agree(void) {
    size_t size = 0, n = 16;
    char *bytes = quantized_bytes(FMNIST, VITQ_NONLINEAR_MIXED, &size);
    vitq_model *io = bytes ? load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_OK) : NULL;
    if (!io) {
        free(bytes);
        return;
    }
    size_t k = (size_t)classes_of(io);
    vitq_model_set_num_threads(io, 1);
    vitq_i_qkernel_force(VITQ_I_QK_GENERIC);
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    float *ref = logits_of(io, n);
    vitq_i_isa_force(-1);
    int paths = 0;
    for (int kernel = 0; kernel < VITQ_I_QK_COUNT; kernel++) {
        if (!vitq_i_qkernel_available((vitq_i_qkernel)kernel)) continue;
        vitq_i_qkernel_force(kernel);
        for (int threads = 1; threads <= 2; threads++) {
            vitq_model_set_num_threads(io, threads);
            float *l = logits_of(io, n);
            if (memcmp(l, ref, n * k * sizeof(float)))
                printf("    kernel %s, %d threads: logits differ from the portable path\n",
                       vitq_i_qkernel_name((vitq_i_qkernel)kernel), threads);
            CHECK(!memcmp(l, ref, n * k * sizeof(float)));
            free(l);
        }
        paths++;
    }
    vitq_i_qkernel_force(-1);
    printf("    %d GEMM kernels x 1, 2 threads: identical logits\n", paths);
    CHECK(paths >= 1);
    free(ref);
    free(bytes);
    vitq_model_free(io);
}

/* The attention heads run a few query rows at a time (kernels/intvit.c): steps of 7 and 8 rows (several
 * steps, a partial last one, partial GEMM row tiles) give the bits of one step over all tokens, for the
 * softmaxes whose P.V is a GEMM (I-BERT, I-ViT) and FQ-ViT's shifts, on a ViT and a distilled DeiT. */
static void test_query_row_steps(void) {
    static const struct {
        const char *path;
        int32_t nonlinear;
    } cases[] = {{FMNIST, VITQ_NONLINEAR_IBERT}, {FMNIST, VITQ_NONLINEAR_FQVIT}, {DISTILLED, VITQ_NONLINEAR_IVIT}};
    size_t n = 8;
    int compared = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t size = 0;
        char *bytes = quantized_bytes(cases[c].path, cases[c].nonlinear, &size);
        vitq_model *io = bytes ? load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_OK) : NULL;
        if (!io) {
            free(bytes);
            continue;
        }
        size_t k = (size_t)classes_of(io);
        vitq_i_intvit_force_query_rows(0);
        float *ref = logits_of(io, n);
        for (int rows = 7; rows <= 8; rows++) {
            vitq_i_intvit_force_query_rows(rows);
            float *l = logits_of(io, n);
            if (memcmp(l, ref, n * k * sizeof(float)))
                printf("    %s, method %d, %d query rows per step: logits differ\n", cases[c].path,
                       (int)cases[c].nonlinear, rows);
            CHECK(!memcmp(l, ref, n * k * sizeof(float)));
            free(l);
            compared++;
        }
        vitq_i_intvit_force_query_rows(0);
        free(ref);
        free(bytes);
        vitq_model_free(io);
    }
    printf("    %d step sizes x models: identical logits\n", compared);
    CHECK(compared == 6);
}

/* uint8 pixels straight in (vitq_model_forward_u8) give the logits of the normalised floats, in both
 * layouts, for the integer-only model and a float one. */
static void test_forward_u8(void) {
    size_t size = 0, n = 4;
    char *bytes = quantized_bytes(FMNIST, VITQ_NONLINEAR_IBERT, &size);
    vitq_model *io = bytes ? load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_OK) : NULL;
    vitq_model *fp = load(FMNIST);
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    CHECK_STATUS(vitq_dataset_get_info(test_set, &di), VITQ_OK);
    size_t hw = (size_t)di.height * (size_t)di.width;
    uint8_t *pixels = malloc(n * hw), *nhwc = malloc(n * hw);
    for (size_t k = 0; k < n * hw; k++) pixels[k] = (uint8_t)((k * 2654435761u) >> 24); /* any bytes */
    memcpy(nhwc, pixels, n * hw); /* one channel: both layouts are the same bytes */
    vitq_model *models[2] = {io, fp};
    for (int m = 0; m < 2; m++) {
        if (!models[m]) continue;
        size_t k = (size_t)classes_of(models[m]);
        float *input = malloc(n * hw * sizeof(float)), *a = malloc(n * k * sizeof(float)), *b = malloc(n * k * sizeof(float));
        CHECK_STATUS(vitq_model_preprocess_u8(models[m], pixels, n, VITQ_PIXELS_NCHW, input), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(models[m], input, n, a), VITQ_OK);
        CHECK_STATUS(vitq_model_forward_u8(models[m], pixels, n, VITQ_PIXELS_NCHW, b), VITQ_OK);
        CHECK(!memcmp(a, b, n * k * sizeof(float)));
        CHECK_STATUS(vitq_model_forward_u8(models[m], nhwc, n, VITQ_PIXELS_NHWC, b), VITQ_OK);
        CHECK(!memcmp(a, b, n * k * sizeof(float)));
        CHECK_STATUS(vitq_model_forward_u8(models[m], pixels, n, (vitq_pixel_layout)7, b), VITQ_ERR_INVALID_ARGUMENT);
        free(input), free(a), free(b);
    }
    free(pixels), free(nhwc), free(bytes);
    vitq_model_free(io);
    vitq_model_free(fp);
}

static void test_refusals(void) {
    size_t size = 0;
    char *bytes = quantized_bytes(FMNIST, VITQ_NONLINEAR_FLOAT, &size);
    if (bytes) {
        CHECK(load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_ERR_UNSUPPORTED) == NULL);
        CHECK(strstr(vitq_last_error(), "--nonlinear") != NULL);
    }
    free(bytes);
    bytes = quantized_bytes(SWIN, VITQ_NONLINEAR_IBERT, &size);
    if (bytes) {
        CHECK(load_as(bytes, size, VITQ_EXECUTION_INTEGER_ONLY, VITQ_ERR_UNSUPPORTED) == NULL);
        CHECK(strstr(vitq_last_error(), "Swin") != NULL);
    }
    free(bytes);
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.execution = VITQ_EXECUTION_INTEGER_ONLY;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FMNIST, &mo, &m), VITQ_ERR_UNSUPPORTED);
    CHECK(m == NULL);
    CHECK(strstr(vitq_last_error(), "quantized") != NULL);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_refusals);
    RUN(test_forward_u8);
    RUN(test_paths_and_threads_agree);
    RUN(test_query_row_steps);
    RUN(test_against_simulation);
    for (int i = 0; i < 8; i++) free(cache[i].bytes);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
