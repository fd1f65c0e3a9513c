/* Integer execution of quantized models (vitq_execution) through the public API: the same quantized
 * file run on the integer kernels and in simulation gives the same predictions and nearly the same
 * logits on ViT, DeiT and Swin, at 8- and 4-bit weights, for a method that mixes integer and simulated
 * layers; the counts of integer layers are what the quantizers allow; files reload bit for bit. */
#include "calib_util.h"

/* Load the bytes of quantized model q with `execution`. */
static vitq_model *reload(const vitq_model *q, int32_t execution) {
    size_t size = 0;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    void *bytes = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = execution;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "quantized", &o, &m), VITQ_OK);
    free(bytes);
    return m;
}

static int32_t integer_layers(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    return i.num_integer_layers;
}

/* Linear layers of the model but the patch embedding (whose image input stays float by default). */
static int32_t linear_layers(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    int32_t heads = i.num_prefix_tokens == 2 ? 2 : 1, merges = i.num_stages > 1 ? i.num_stages - 1 : 0;
    return 4 * i.depth + heads + merges;
}

/* Integer vs simulated logits of q on n test images. The integer GEMM sums exactly where the simulation
 * rounds float sums, so a value that sits on a rounding boundary of a later activation quantizer may
 * take the neighbouring code: differences are a few quantization steps on rare elements, never a
 * systematic drift. Bounds: mean |difference| below 0.1 % of the largest logit, top-1 agreement >= 98 %. */
static void check_agreement(const vitq_model *q, const char *what, int32_t want_layers) {
    vitq_model *integer = reload(q, VITQ_EXECUTION_AUTO), *simulated = reload(q, VITQ_EXECUTION_SIMULATED);
    if (!integer || !simulated) goto done;
    CHECK(integer_layers(simulated) == 0);
    int32_t got = integer_layers(integer);
    printf("    %s: %d integer layers (%d expected)\n", what, (int)got, (int)want_layers);
    CHECK(got == want_layers);
    size_t n = harness_quick() ? 100 : 500, k = (size_t)classes_of(q);
    float *a = logits_of(integer, n), *b = logits_of(simulated, n);
    double sum = 0, largest = 0;
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ta = 0, tb = 0;
        for (size_t c = 0; c < k; c++) {
            sum += fabs((double)a[i * k + c] - b[i * k + c]);
            if (fabs(b[i * k + c]) > largest) largest = fabs(b[i * k + c]);
            if (a[i * k + c] > a[i * k + ta]) ta = c;
            if (b[i * k + c] > b[i * k + tb]) tb = c;
        }
        same += ta == tb;
    }
    double mean = sum / (double)(n * k);
    printf("    %s: mean |integer - simulated| %.3g (largest logit %.3g), %zu/%zu same top-1\n", what, mean, largest,
           same, n);
    CHECK(mean < 1e-3 * largest);
    CHECK(same * 100 >= n * 98);
    free(a);
    free(b);
done:
    vitq_model_free(integer);
    vitq_model_free(simulated);
}

static void check_model(const char *path) {
    vitq_model *fp = load(path);
    if (!fp) return;
    int32_t all = linear_layers(fp);
    char what[160];
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    snprintf(what, sizeof what, "%s minmax W8A8", path);
    if (q) check_agreement(q, what, all);
    vitq_model_free(q);
    q = quantize(fp, NULL, "minmax", 4, 8, NULL, 0); /* int4 storage, two codes per byte */
    snprintf(what, sizeof what, "%s minmax W4A8", path);
    if (q) check_agreement(q, what, all);
    vitq_model_free(q);
    /* RepQ-ViT at W4A4: per-tensor uniform inputs after the fold run in integers; the log-sqrt2
     * probabilities are not a linear input, so every linear layer qualifies */
    q = quantize(fp, NULL, "repq-vit", 4, 4, NULL, 0);
    snprintf(what, sizeof what, "%s repq-vit W4A4", path);
    if (q) check_agreement(q, what, all);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_integer_vit(void) { check_model("models/fmnist-vit"); }
static void test_integer_deit(void) { check_model("models/fmnist-deit-distilled"); }
static void test_integer_swin(void) { check_model("models/fmnist-swin"); }

/* Layers whose input quantizer is not one uniform grid stay simulated: twin-gelu on every fc2 input
 * and noise on every proj input leave 2 layers per block to the simulation. */
static void test_other_quantizers_stay_simulated(void) {
    static const char *const sets[] = {"*.fc2.input", "scheme", "twin-gelu", "*.fc2.input", "symmetric", "1",
                                       "*.attn.proj.input", "noisy", "1"};
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, sets, 3);
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(fp, &i), VITQ_OK);
    if (q) check_agreement(q, "fmnist-vit twin-gelu fc2, noisy proj", linear_layers(fp) - 2 * i.depth);
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* An integer model saves the file it was loaded from: reloading gives the same logits bit for bit. */
static void test_integer_reload(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    vitq_model *a = q ? reload(q, VITQ_EXECUTION_AUTO) : NULL, *b = a ? reload(a, VITQ_EXECUTION_AUTO) : NULL;
    if (a && b) {
        size_t n = 32;
        float *la = logits_of(a, n), *lb = logits_of(b, n);
        CHECK(memcmp(la, lb, n * (size_t)classes_of(a) * sizeof(float)) == 0);
        free(la);
        free(lb);
    }
    vitq_model_free(a);
    vitq_model_free(b);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_bad_execution(void) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = 7;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file("models/fmnist-vit", &o, &m), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "execution") != NULL);
    CHECK(m == NULL);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    RUN(test_bad_execution);
    RUN(test_integer_reload);
    RUN(test_other_quantizers_stay_simulated);
    RUN(test_integer_vit);
    RUN(test_integer_deit);
    RUN(test_integer_swin);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
