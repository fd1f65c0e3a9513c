/* The PTQ methods (every one vitq_method_get_info lists) end to end through the public API: they
 * run on ViT, DeiT and Swin, their results save and load bit for bit, RepQ-ViT's reparameterised
 * model equals the per-channel one it folds, the noisy bias composes with any scheme, and bad method
 * options are errors. */
#include "calib_util.h"

/* Logits of q and of q saved and loaded again agree bit for bit. */
static void check_reload(const vitq_model *q, size_t n) {
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    void *bytes = malloc(size);
    vitq_model *again = NULL;
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "reloaded", NULL, &again), VITQ_OK);
    if (again) {
        float *a = logits_of(q, n), *b = logits_of(again, n);
        CHECK(memcmp(a, b, n * (size_t)classes_of(q) * sizeof(float)) == 0);
        free(a);
        free(b);
    }
    vitq_model_free(again);
    free(bytes);
}

/* 1 when method m has an option called `name`. */
static int has_option(const vitq_method_info *m, const char *name) {
    for (int32_t k = 0; k < m->num_options; k++)
        if (!strcmp(((const vitq_scheme_option *)((const char *)m->options + (size_t)k * m->option_size))->name, name))
            return 1;
    return 0;
}

/* Every method the library lists, at W4A4 on model `path`: runs, keeps some accuracy, reloads bit for
 * bit. Methods with a search (a "grid" option) get a coarse one, and run only when `searches` is set. */
static void check_methods_on(const char *path, int searches) {
    static const char *const fast[] = {"grid", "4", "search_images", "4"}, *const fastest[] = {"grid", "2",
                                                                                                "search_images", "2"};
    vitq_model *fp = load(path);
    if (!fp) return;
    size_t n = harness_quick() ? 50 : 300;
    double base = top1(fp, n);
    for (int32_t k = 0; k < vitq_method_count(); k++) {
        vitq_method_info m;
        vitq_method_info_init(&m);
        CHECK_STATUS(vitq_method_get_info(k, &m), VITQ_OK);
        int searched = has_option(&m, "grid") && has_option(&m, "search_images");
        if (!m.name || (searched && !searches)) continue;
        vitq_model *q = quantize_with(fp, NULL, m.name, 4, 4, NULL, 0, harness_quick() ? fastest : fast,
                                      searched ? 2 : 0, harness_quick() ? 4 : 16);
        if (!q) continue;
        double acc = top1(q, n);
        printf("    %s %s W4A4: top-1 %.3f (FP32 %.3f) on %zu images\n", path, m.name, acc, base, n);
        CHECK(acc > 0.5 * base); /* 10 classes: a broken pipeline lands near 0.1 */
        check_reload(q, 8);
        vitq_model_free(q);
    }
    vitq_model_free(fp);
}

/* Under the sanitizers (quick mode) the block searches, a block forward per candidate, run on ViT only. */
static void test_methods_vit(void) { check_methods_on("models/fmnist-vit", 1); }
static void test_methods_deit(void) { check_methods_on("models/fmnist-deit-distilled", !harness_quick()); }
static void test_methods_swin(void) { check_methods_on("models/fmnist-swin", !harness_quick()); }

/* RepQ-ViT: folding the per-channel post-LayerNorm quantizers into LayerNorm and the next layer gives
 * the model that keeps them per channel (weights left in float, so nothing is re-calibrated). */
static void check_reparam_identity(const char *path) {
    static const char *const folded[] = {"reparam", "1"}, *const kept[] = {"reparam", "0"};
    /* only the folded points quantized: elsewhere a float rounding difference of the folded layers
     * could flip a code of a later quantizer and hide what is compared */
    static const char *const only_post_ln[] = {"*", "bits", "0", "*.qkv.input", "bits", "6", "*.fc1.input", "bits", "6",
                                               "*.reduction.input", "bits", "6"};
    int sets = strstr(path, "swin") ? 4 : 3;
    vitq_model *fp = load(path);
    if (!fp) return;
    vitq_model *a = quantize_with(fp, NULL, "repq-vit", 0, 6, only_post_ln, sets, folded, 1, 16);
    vitq_model *b = quantize_with(fp, NULL, "repq-vit", 0, 6, only_post_ln, sets, kept, 1, 16);
    size_t n = 64;
    if (a && b) {
        float *la = logits_of(a, n), *lb = logits_of(b, n);
        size_t k = (size_t)classes_of(fp);
        double worst = 0, scale = 0;
        size_t same = 0;
        for (size_t i = 0; i < n; i++) {
            size_t ta = 0, tb = 0;
            for (size_t c = 0; c < k; c++) {
                double d = fabs((double)la[i * k + c] - lb[i * k + c]);
                if (d > worst) worst = d;
                if (fabs(lb[i * k + c]) > scale) scale = fabs(lb[i * k + c]);
                if (la[i * k + c] > la[i * k + ta]) ta = c;
                if (lb[i * k + c] > lb[i * k + tb]) tb = c;
            }
            same += ta == tb;
        }
        printf("    %s: folded vs per-channel logits differ by at most %.3g (largest logit %.3g), %zu/%zu same top-1\n",
               path, worst, scale, same, n);
        CHECK(worst <= 1e-2 * scale); /* float rounding of the folded LayerNorm flips the odd code at a rounding tie */
        CHECK(same == n);
        free(la);
        free(lb);
    }
    vitq_model_free(a);
    vitq_model_free(b);
    vitq_model_free(fp);
}

static void test_repq_reparam_equals_per_channel(void) {
    check_reparam_identity("models/fmnist-vit");
    check_reparam_identity("models/fmnist-swin");
}

/* repq-vit post_gelu 1: the post-GELU points take PTQ4ViT's twin-uniform quantizer, the rest stays RepQ-ViT's,
 * and the result reloads bit for bit. */
static void test_repq_twin_post_gelu(void) {
    static const char *const twin[] = {"post_gelu", "1"};
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model *q = quantize_with(fp, NULL, "repq-vit", 4, 4, NULL, 0, twin, 1, 16);
    if (q) {
        vitq_model_info info;
        vitq_model_info_init(&info);
        CHECK_STATUS(vitq_model_get_info(q, &info), VITQ_OK);
        int twins = 0, fc2 = 0, others = 0;
        for (int32_t i = 0; i < info.num_quantized_points; i++) {
            vitq_point_info p;
            vitq_point_info_init(&p);
            CHECK_STATUS(vitq_model_point_info(q, i, &p), VITQ_OK);
            int is_fc2 = strstr(p.name, ".fc2.input") != NULL;
            fc2 += is_fc2;
            twins += is_fc2 && strcmp(p.scheme, "twin-gelu") == 0 && p.symmetric;
            others += !is_fc2 && strcmp(p.scheme, "twin-gelu") == 0;
        }
        printf("    %d fc2 inputs, %d twin-gelu symmetric, %d other twin-gelu points, depth %d\n", fc2, twins, others, (int)info.depth);
        CHECK(fc2 == info.depth && twins == fc2);
        CHECK(others == 0);
        check_reload(q, 8);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* noisy = 1 on another scheme's points: calibrates, saves the noise, reloads bit for bit. */
static void test_noisy_wraps_any_scheme(void) {
    static const char *const sets[] = {"*.fc2.input", "noisy", "1", "*.attn.proj.input", "noisy", "1"};
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model *q = quantize_with(fp, NULL, "percentile", 6, 6, sets, 2, NULL, 0, 16);
    if (q) check_reload(q, 8);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_method_option_errors(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK); /* minmax: no method */
    CHECK_STATUS(vitq_calibrator_set_option(c, "grid", "10"), VITQ_ERR_UNKNOWN_NAME);
    CHECK_STATUS(vitq_calibrator_set(c, "*.attn.q", "noisy", "1"), VITQ_ERR_OUT_OF_RANGE); /* not a linear input */
    CHECK_STATUS(vitq_calibrator_set(c, "*.fc1.input", "noisy", "2"), VITQ_ERR_OUT_OF_RANGE);
    vitq_calibrator_free(c);
    o.scheme = "ptq4vit";
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set_option(c, "grid", "10"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set_option(c, "grid", "1"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set_option(c, "grid", "ten"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set_option(c, "grid", "2.5"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set_option(c, "no_such_option", "1"), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "grid") != NULL); /* the message lists the known options */
    CHECK_STATUS(vitq_calibrator_set_option(c, NULL, "1"), VITQ_ERR_INVALID_ARGUMENT);
    vitq_calibrator_free(c);
    o.scheme = "no-such-method";
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "repq-vit") != NULL);
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_method_option_errors);
    RUN(test_noisy_wraps_any_scheme);
    RUN(test_repq_reparam_equals_per_channel);
    RUN(test_repq_twin_post_gelu);
    RUN(test_methods_vit);
    RUN(test_methods_deit);
    RUN(test_methods_swin);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
