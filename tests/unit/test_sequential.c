/* RepQ-ViT's calibration order (repq-vit init=1, calib/sequential.c): each activation quantizer is
 * calibrated on what the already-quantized layers before it produce. Checked through what the
 * quantized model itself computes: run on the calibration images, the unquantized value at every
 * point then has the range that point's quantizer was calibrated on. */
#include <string.h>

#include "calib_util.h"

/* Largest gap, over the quantized activation points deeper than block 0, between the range a point was
 * calibrated on (vitq_model_point_info) and the range its input has in the quantized model's own run
 * over the same images (the report's min/max). */
static double range_gap(const vitq_model *fp, const vitq_model *q, size_t n, int *compared) {
    int32_t count = 0;
    double cosine = 0, worst = 0;
    CHECK_STATUS(vitq_model_report(fp, q, calib_set, 0, n, NULL, 0, &count, &cosine), VITQ_OK);
    vitq_report_row *rows = calloc((size_t)count + 1, sizeof *rows);
    rows[0].struct_size = sizeof *rows;
    CHECK_STATUS(vitq_model_report(fp, q, calib_set, 0, n, rows, count, &count, &cosine), VITQ_OK);
    *compared = 0;
    for (int32_t p = 0; p < count; p++) {
        vitq_point_info pi;
        vitq_point_info_init(&pi);
        CHECK_STATUS(vitq_model_point_info(q, p, &pi), VITQ_OK);
        if (pi.kind != VITQ_POINT_ACTIVATION || !strncmp(pi.name, "blocks.0.", 9) || !strncmp(pi.name, "patch", 5))
            continue;
        for (int32_t r = 0; r < count; r++) {
            if (strcmp(rows[r].point, pi.name)) continue;
            double span = fmax(1e-6, (double)pi.observed_max - pi.observed_min);
            double gap = fmax(fabs((double)rows[r].min - pi.observed_min), fabs((double)rows[r].max - pi.observed_max));
            worst = fmax(worst, gap / span);
            (*compared)++;
        }
    }
    free(rows);
    return worst;
}

static void test_calibrated_on_the_quantized_run(void) {
    vitq_model *fp = load("models/fmnist-vit");
    size_t n = 16;
    /* reparam 0: the fold would change the weights after the ranges were taken */
    static const char *const seq[] = {"reparam", "0", "init", "1"}, *const flt[] = {"reparam", "0", "init", "0"};
    vitq_model *q1 = quantize_with(fp, NULL, "repq-vit", 4, 4, NULL, 0, seq, 2, n);
    vitq_model *q0 = quantize_with(fp, NULL, "repq-vit", 4, 4, NULL, 0, flt, 2, n);
    int c1 = 0, c0 = 0;
    double g1 = range_gap(fp, q1, n, &c1), g0 = range_gap(fp, q0, n, &c0);
    printf("    largest range gap (fraction of the range) between calibration and the quantized run: init=1 %.2g, "
           "init=0 %.2g (%d points)\n", g1, g0, c1);
    CHECK(c1 > 40 && c1 == c0);
    CHECK(g1 < 1e-3); /* the same inputs, up to integer kernels against simulated float */
    CHECK(g0 > 0.01); /* the float statistics are not what the W4A4 network produces */
    double a1 = top1(q1, 300), a0 = top1(q0, 300), base = top1(fp, 300);
    printf("    repq-vit W4A4 (reparam 0) top-1 on 300 images: init=1 %.4f, init=0 %.4f, FP32 %.4f\n", a1, a0, base);
    CHECK(a1 > base - 0.05);
    vitq_model_free(q1);
    vitq_model_free(q0);
    vitq_model_free(fp);
}

/* Swin keeps the float statistics (documented): init=1 and init=0 give the same model. */
static void test_swin_unchanged(void) {
    vitq_model *fp = load("models/fmnist-swin");
    static const char *const seq[] = {"init", "1"}, *const flt[] = {"init", "0"};
    vitq_model *q1 = quantize_with(fp, NULL, "repq-vit", 8, 8, NULL, 0, seq, 1, 8);
    vitq_model *q0 = quantize_with(fp, NULL, "repq-vit", 8, 8, NULL, 0, flt, 1, 8);
    size_t s1 = 0, s0 = 0;
    CHECK_STATUS(vitq_model_save_memory(q1, NULL, 0, &s1), VITQ_OK);
    CHECK_STATUS(vitq_model_save_memory(q0, NULL, 0, &s0), VITQ_OK);
    unsigned char *b1 = malloc(s1), *b0 = malloc(s0);
    CHECK_STATUS(vitq_model_save_memory(q1, b1, s1, &s1), VITQ_OK);
    CHECK_STATUS(vitq_model_save_memory(q0, b0, s0, &s0), VITQ_OK);
    CHECK(s1 == s0 && memcmp(b1, b0, s1) == 0);
    free(b1);
    free(b0);
    vitq_model_free(q1);
    vitq_model_free(q0);
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_calibrated_on_the_quantized_run);
    RUN(test_swin_unchanged);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
