/* Helpers of the calibration tests (test_calib.c, test_methods.c): the bundled Fashion-MNIST data,
 * loading, top-1, calibration through the public API. */
#ifndef VITQ_TEST_CALIB_UTIL_H
#define VITQ_TEST_CALIB_UTIL_H

#include "harness.h"

#define CALIB "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
#define TEST_IMAGES "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define TEST_LABELS "data/fashion-mnist/t10k-labels-idx1-ubyte.gz"

static vitq_dataset *calib_set, *test_set;

static inline size_t eval_count(void) { return harness_quick() ? 300 : 2000; }

static inline vitq_model *load(const char *path) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(path, NULL, &m), VITQ_OK);
    return m;
}

static inline int classes_of(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(m, &i);
    return i.num_classes;
}

static inline double top1(const vitq_model *m, size_t n) {
    int k = classes_of(m);
    float *logits = malloc(n * (size_t)k * sizeof(float));
    CHECK_STATUS(vitq_model_forward_dataset(m, test_set, 0, n, logits), VITQ_OK);
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        int32_t label = -1;
        for (int c = 1; c < k; c++)
            if (logits[i * (size_t)k + (size_t)c] > logits[i * (size_t)k + (size_t)best]) best = c;
        vitq_dataset_label(test_set, i, &label);
        correct += best == label;
    }
    free(logits);
    return (double)correct / (double)n;
}

static inline float *logits_of(const vitq_model *m, size_t n) {
    float *logits = malloc(n * (size_t)classes_of(m) * sizeof(float));
    CHECK_STATUS(vitq_model_forward_dataset(m, test_set, 0, n, logits), VITQ_OK);
    return logits;
}

/* Calibrate `fp` with `scheme` (a scheme or a method) at WxA on `images` images; `sets` are (pattern,
 * key, value) triples, `opts` (key, value) pairs of method options. */
static inline vitq_model *quantize_with(const vitq_model *fp, const vitq_registry *reg, const char *scheme, int wbits,
                                 int abits, const char *const *sets, int num_sets, const char *const *opts,
                                 int num_opts, size_t images) {
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.registry = reg;
    o.scheme = scheme;
    o.weight_bits = wbits;
    o.activation_bits = abits;
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    for (int s = 0; s < num_sets; s++) CHECK_STATUS(vitq_calibrator_set(c, sets[3 * s], sets[3 * s + 1], sets[3 * s + 2]), VITQ_OK);
    for (int k = 0; k < num_opts; k++) CHECK_STATUS(vitq_calibrator_set_option(c, opts[2 * k], opts[2 * k + 1]), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, images), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_free(c);
    return q;
}

/* Calibrate `fp` with `scheme` at WxA on 32 images; `sets` are pattern, key, value triples. */
static inline vitq_model *quantize(const vitq_model *fp, const vitq_registry *reg, const char *scheme, int wbits,
                                   int abits, const char *const *sets, int num_sets) {
    return quantize_with(fp, reg, scheme, wbits, abits, sets, num_sets, NULL, 0, 32);
}

#endif
