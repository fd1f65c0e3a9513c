/* MPTQ-ViT's components under other methods (calib/mptq_stages.h): SQ-b before PTQ4ViT's search centres
 * every smoothed point's range and keeps the float function (W8A8 accuracy); OPT-m under PTQ4ViT keeps
 * every post-GELU grid in its power-of-two format, and without it the search leaves that format; RepQ-ViT
 * takes both, and refuses opt_m without a twin-uniform post-GELU quantizer, naming the option. */
#include <math.h>

#include "api/model.h"
#include "calib_util.h"
#include "quant/qmodel.h"

#define GELU_MIN 0.16997124f /* -min GELU(x): twin-gelu's negative range (scheme_twin_gelu.c) */

/* Few images and a coarse search grid: what is checked (centred ranges, the pow2 format, a fold that keeps
 * the float function) does not depend on how well the scales are searched. */
static size_t calib_images(void) { return harness_quick() ? 4 : 16; }

/* Test images of the accuracy checks: enough to see a broken fold (which costs tens of points). */
static size_t test_images(void) { return harness_quick() ? 100 : 500; }

static int smoothed_name(const char *name) { return strstr(name, "qkv.input") || strstr(name, "fc1.input"); }

/* Of the qkv and fc1 inputs, how many have a range centred on 0 (|min + max| <= 1e-3 (max - min)). */
static int centred_points(const vitq_model *q, int *total) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(q, &i);
    int centred = 0;
    *total = 0;
    for (int32_t p = 0; p < i.num_quantized_points; p++) {
        vitq_point_info pi;
        vitq_point_info_init(&pi);
        CHECK_STATUS(vitq_model_point_info(q, p, &pi), VITQ_OK);
        if (pi.role != VITQ_ROLE_POST_LAYERNORM || !smoothed_name(pi.name)) continue;
        (*total)++;
        double lo = pi.observed_min, hi = pi.observed_max;
        centred += hi > lo && fabs(lo + hi) <= 1e-3 * (hi - lo);
    }
    return centred;
}

static void test_smooth_under_ptq4vit(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    static const char *const off[] = {"search_images", "4", "grid", "8"};
    /* alpha searched per layer in test_smooth.c: here the fixed alpha keeps the test short */
    static const char *const on[] = {"search_images", "4", "grid", "8", "smooth", "1", "smooth_alpha_search", "0"};
    vitq_model *plain = quantize_with(fp, NULL, "ptq4vit", 8, 8, NULL, 0, off, 2, calib_images());
    vitq_model *smooth = quantize_with(fp, NULL, "ptq4vit", 8, 8, NULL, 0, on, 4, calib_images());
    if (plain && smooth) {
        int total_plain, total_smooth;
        int c_plain = centred_points(plain, &total_plain), c_smooth = centred_points(smooth, &total_smooth);
        printf("    centred qkv/fc1 inputs: %d of %d with SQ-b, %d of %d without\n", c_smooth, total_smooth, c_plain,
               total_plain);
        CHECK(total_smooth == 12 && c_smooth == total_smooth);
        CHECK(c_plain < total_plain); /* LayerNorm outputs are not centred by themselves: the check can fail */
        /* the folds are an identity of the float network: W8A8 stays at FP32's accuracy */
        size_t n = test_images();
        double base = top1(fp, n), acc = top1(smooth, n), acc_plain = top1(plain, n);
        printf("    ptq4vit W8A8 with SQ-b %.4f, without %.4f, FP32 %.4f (%zu images)\n", acc, acc_plain, base, n);
        CHECK(fabs(acc - base) <= 0.01);
    }
    vitq_model_free(plain);
    vitq_model_free(smooth);
    vitq_model_free(fp);
}

/* Post-GELU twin-gelu quantizers whose positive step is an exact power of two times the negative one. */
static int pow2_gelu_points(const vitq_model *q, int bits, int *total) {
    const vitq_i_qmodel *qm = q->quant;
    float dneg = GELU_MIN / (float)(1 << (bits - 1));
    int pow2 = 0;
    *total = 0;
    for (int k = 0; k < qm->count; k++) {
        const vitq_i_qpoint *qp = &qm->qpoints[k];
        if (strcmp(qp->inst.scheme.name, "twin-gelu") != 0) continue;
        for (int32_t j = 0; j < qp->inst.scheme.param_count(qp->inst.state); j++) {
            const char *name;
            const float *values;
            int64_t count;
            if (qp->inst.scheme.get_param(qp->inst.state, j, &name, &values, &count) || strcmp(name, "scale")) continue;
            int e;
            (*total)++;
            pow2 += frexp((double)values[0] / (double)dneg, &e) == 0.5;
        }
    }
    return pow2;
}

static void test_opt_m_under_ptq4vit(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    static const char *const off[] = {"search_images", "4", "grid", "8"};
    static const char *const on[] = {"search_images", "4", "grid", "8", "opt_m", "1"};
    vitq_model *plain = quantize_with(fp, NULL, "ptq4vit", 4, 4, NULL, 0, off, 2, calib_images());
    vitq_model *optm = quantize_with(fp, NULL, "ptq4vit", 4, 4, NULL, 0, on, 3, calib_images());
    if (plain && optm) {
        int total_plain, total_optm;
        int p_plain = pow2_gelu_points(plain, 4, &total_plain), p_optm = pow2_gelu_points(optm, 4, &total_optm);
        printf("    post-GELU steps a power of two apart: %d of %d with OPT-m, %d of %d without\n", p_optm, total_optm,
               p_plain, total_plain);
        CHECK(total_optm == 6 && p_optm == total_optm);
        CHECK(p_plain < total_plain);
        size_t n = test_images();
        double base = top1(fp, n), acc = top1(optm, n);
        printf("    ptq4vit W4A4 with OPT-m: %.4f (FP32 %.4f)\n", acc, base);
        CHECK(acc > base - 0.05);
    }
    vitq_model_free(plain);
    vitq_model_free(optm);
    vitq_model_free(fp);
}

static void test_repq_components(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    static const char *const both[] = {"post_gelu", "1", "smooth", "1", "opt_m", "1", "smooth_alpha_search", "0"};
    vitq_model *q = quantize_with(fp, NULL, "repq-vit", 4, 4, NULL, 0, both, 4, calib_images());
    if (q) {
        int total, pow2 = pow2_gelu_points(q, 4, &total);
        size_t n = test_images();
        double base = top1(fp, n), acc = top1(q, n);
        printf("    repq-vit W4A4 with SQ-b and OPT-m: %.4f (FP32 %.4f), %d of %d GELU grids in pow2 format\n", acc,
               base, pow2, total);
        CHECK(total == 6 && pow2 == total);
        CHECK(acc > base - 0.05);
        vitq_model_free(q);
    }
    /* opt_m needs the twin-uniform post-GELU quantizer: refused, naming what to set */
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "repq-vit";
    o.weight_bits = o.activation_bits = 4;
    vitq_calibrator *c = NULL;
    vitq_model *bad = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    vitq_status st = c ? vitq_calibrator_set_option(c, "opt_m", "1") : VITQ_ERR_BAD_STATE;
    if (!st) st = vitq_calibrator_feed_dataset(c, calib_set, 0, 4);
    if (!st) st = vitq_calibrator_run(c, &bad);
    CHECK(st == VITQ_ERR_CONFIG && strstr(vitq_last_error(), "post_gelu"));
    vitq_model_free(bad);
    vitq_calibrator_free(c);
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_smooth_under_ptq4vit);
    RUN(test_opt_m_under_ptq4vit);
    RUN(test_repq_components);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
