/* Models end to end: golden logits of every committed model and fixture, accuracy equal to
 * PyTorch's, invariance to batch and threads, bad checkpoints and configurations, allocators. */
#include "harness.h"
#include "io/safetensors.h"
#include "model_fixtures.h"
#include "util/json.h"

#define FMNIST_TEST "data/fashion-mnist/t10k-images-idx3-ubyte.gz"

static const char *const fixtures[] = {"odd-vit-hf", "odd-deit-timm-meta", "odd-vit-timm-tanh-bf16", "odd-deit-hf"};

/* ---- golden logits --------------------------------------------------------------------------- */

static void test_fixtures_golden(void) {
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_fixture(fixtures[i]);
}

typedef struct {
    const char *model;  /* folder under models/ */
    const char *golden; /* name under tests/golden/ */
} reference_model;

static const reference_model references[] = {
    {"models/fmnist-vit", "fmnist-vit"},
    {"models/fmnist-vit-hf", "fmnist-vit"},
    {"models/fmnist-deit-distilled", "fmnist-deit-distilled"},
    {"models/fmnist-swin", "fmnist-swin"},
    {"models/fmnist-swin-timm-old", "fmnist-swin"},
    {"models/fmnist-swin-hf", "fmnist-swin"},
};

static void test_reference_models_golden(void) {
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_file(FMNIST_TEST, NULL, NULL, &d), VITQ_OK);
    for (size_t r = 0; d && r < sizeof references / sizeof references[0]; r++) {
        char path[256];
        vitq_model *m = NULL;
        uint64_t rows = 0, cols = 0;
        CHECK_STATUS(vitq_model_load_file(references[r].model, NULL, &m), VITQ_OK);
        snprintf(path, sizeof path, "tests/golden/%s_logits.npy", references[r].golden);
        float *want = load_npy_f32(path, &rows, &cols);
        CHECK(want != NULL);
        if (m && want) {
            float *got = malloc(rows * cols * sizeof(float));
            CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, rows, got), VITQ_OK);
            logits_match(references[r].model, got, want, rows * cols);
            free(got);
        }
        free(want);
        vitq_model_free(m);
    }
    vitq_dataset_free(d);
}

static long json_int_of(const char *path, const char *key) {
    vitq_allocator a;
    uint8_t *buf;
    size_t n;
    vitq_i_json *root = NULL;
    long v = -1;
    vitq_i_allocator_resolve(NULL, &a);
    if (vitq_i_read_file(&a, path, &buf, &n)) return -1;
    if (vitq_i_json_parse(&a, (const char *)buf, n, path, &root) == VITQ_OK) {
        const vitq_i_json *node = vitq_i_json_get(root, key);
        if (node && node->type == VITQ_I_JSON_NUMBER) v = (long)node->number;
    }
    vitq_i_json_free(&a, root);
    vitq_i_free(&a, buf);
    return v;
}

/* Top-1 over the whole Fashion-MNIST test set equals PyTorch's, prediction by prediction. */
static void test_reference_models_accuracy(void) {
    if (harness_quick()) {
        SKIP("full test-set sweep not run in the quick (sanitizer) suite");
        return;
    }
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_file(FMNIST_TEST, "data/fashion-mnist/t10k-labels-idx1-ubyte.gz", NULL, &d),
                 VITQ_OK);
    for (size_t r = 0; d && r < sizeof references / sizeof references[0]; r++) {
        char path[256];
        vitq_model *m = NULL;
        uint64_t npred = 0, nmargin = 0, one;
        CHECK_STATUS(vitq_model_load_file(references[r].model, NULL, &m), VITQ_OK);
        snprintf(path, sizeof path, "tests/golden/%s_pred.npy", references[r].golden);
        int64_t *pred = load_npy_int(path, &npred);
        snprintf(path, sizeof path, "tests/golden/%s_margin.npy", references[r].golden);
        float *margin = load_npy_f32(path, &nmargin, &one);
        snprintf(path, sizeof path, "tests/golden/%s.json", references[r].golden);
        long torch_correct = json_int_of(path, "pytorch_correct");
        CHECK(pred && margin && npred == 10000 && torch_correct > 0);
        if (m && pred && margin && npred == 10000) {
            vitq_model_info mi;
            vitq_model_info_init(&mi);
            vitq_model_get_info(m, &mi);
            float *logits = malloc(10000 * (size_t)mi.num_classes * sizeof(float));
            CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, 10000, logits), VITQ_OK);
            long correct = 0, differ = 0;
            for (size_t i = 0; i < 10000; i++) {
                const float *row = logits + i * (size_t)mi.num_classes;
                int best = 0;
                int32_t label;
                for (int c = 1; c < mi.num_classes; c++) best = row[c] > row[best] ? c : best;
                vitq_dataset_label(d, i, &label);
                correct += best == label;
                if (best != pred[i]) {
                    differ++;
                    printf("    image %zu: vitq predicts %d, PyTorch %lld (PyTorch top-2 margin %.3g)\n", i, best,
                           (long long)pred[i], (double)margin[i]);
                }
            }
            printf("    %s: top-1 %ld/10000, PyTorch %ld/10000, %ld predictions differ\n", references[r].model,
                   correct, torch_correct, differ);
            CHECK(differ == 0);
            CHECK(correct == torch_correct);
            free(logits);
        }
        free(pred), free(margin);
        vitq_model_free(m);
    }
    vitq_dataset_free(d);
}

/* ---- invariance -------------------------------------------------------------------------------- */

static void test_batch_and_thread_invariance(void) {
    vitq_model *m = NULL;
    uint64_t rows = 0, cols = 0;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", NULL, &m), VITQ_OK);
    float *input = load_npy_f32(FIXTURES "odd-vit-hf/input.npy", &rows, &cols);
    if (!m || !input) {
        CHECK(0);
        return;
    }
    float all[3 * 7], one[7], threaded[3 * 7];
    CHECK_STATUS(vitq_model_forward(m, input, 3, all), VITQ_OK);
    for (size_t i = 0; i < 3; i++) {
        CHECK_STATUS(vitq_model_forward(m, input + i * cols, 1, one), VITQ_OK);
        CHECK(memcmp(one, all + i * 7, sizeof one) == 0);
    }
    for (int t = 1; t <= 3; t++) {
        CHECK_STATUS(vitq_model_set_num_threads(m, t), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(m, input, 3, threaded), VITQ_OK);
        CHECK(memcmp(threaded, all, sizeof all) == 0);
    }
    free(input);
    vitq_model_free(m);
}

static vitq_model_options timm_config(void) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = "{\"architecture\":\"vit_custom_fixture\",\"model_args\":{\"num_heads\":2,\"act_layer\":\"gelu_tanh\"}}";
    return o;
}

static void test_bad_checkpoints(void) {
    const char *fx = "odd-vit-timm-tanh-bf16";
    vitq_model_options o = timm_config();
    defect none = {0};
    expect_defect(fx, &none, &o, VITQ_OK, NULL); /* the rebuild itself is faithful */
    defect missing = {.drop = "blocks.1.mlp.fc2.weight"};
    expect_defect(fx, &missing, &o, VITQ_ERR_MISSING_TENSOR, "blocks.1.mlp.fc2.weight");
    defect no_head = {.drop = "head.weight"};
    expect_defect(fx, &no_head, &o, VITQ_ERR_MISSING_TENSOR, "head.weight");
    defect shape = {.reshape = "blocks.0.attn.proj.weight", .shape = "[16,64]"};
    expect_defect(fx, &shape, &o, VITQ_ERR_SHAPE, "blocks.0.attn.proj.weight");
    defect dtype = {.retype = "norm.weight", .dtype = "I32"};
    expect_defect(fx, &dtype, &o, VITQ_ERR_DTYPE, "norm.weight");
    defect layerscale = {.add = "blocks.0.ls1.gamma"};
    expect_defect(fx, &layerscale, &o, VITQ_ERR_UNSUPPORTED, "blocks.0.ls1.gamma");
    defect extra = {.add = "something.else"};
    expect_defect(fx, &extra, &o, VITQ_ERR_UNEXPECTED_TENSOR, "something.else");
    /* HF: a missing query of the fused qkv names the HF tensor */
    defect hf_missing = {.drop = "vit.encoder.layer.2.attention.attention.key.bias"};
    vitq_model_options hf;
    vitq_model_options_init(&hf);
    hf.config_json = "{\"model_type\":\"vit\",\"num_attention_heads\":6,\"layer_norm_eps\":1e-12}";
    expect_defect("odd-vit-hf", &hf_missing, &hf, VITQ_ERR_MISSING_TENSOR, "attention.attention.key.bias");
    /* hyper-parameters only in __metadata__: without them the heads are undecidable */
    defect stripped = {.no_metadata = 1};
    expect_defect("odd-deit-timm-meta", &stripped, NULL, VITQ_ERR_MISSING_CONFIG, "heads");
    vitq_model_options heads;
    vitq_model_options_init(&heads);
    heads.num_heads = 5;
    expect_defect("odd-deit-timm-meta", &stripped, &heads, VITQ_OK, NULL);
    /* HF weights with no eps anywhere: no guess between 1e-12 and 1e-6 */
    vitq_model_options hf_no_eps;
    vitq_model_options_init(&hf_no_eps);
    hf_no_eps.config_json = "{\"model_type\":\"vit\",\"num_attention_heads\":6}";
    expect_defect("odd-vit-hf", &none, &hf_no_eps, VITQ_ERR_MISSING_CONFIG, "eps");
}

static void test_bad_configs(void) {
    vitq_model *m = NULL;
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = "{\"model_type\":\"vit\",\"hidden_size\":64,\"num_attention_heads\":6,\"layer_norm_eps\":1e-12}";
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "hidden_size") != NULL);
    vitq_model_options_init(&o);
    o.num_heads = 5; /* does not divide 48 */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_ERR_CONFIG);
    vitq_model_options_init(&o);
    o.image_size = 40; /* 25 patches, the weights have 16 */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_ERR_CONFIG);
    vitq_model_options_init(&o);
    /* An eps that is 0 as a float32 was once loaded as a zero eps. */
    o.config_json = "{\"model_type\":\"vit\",\"num_attention_heads\":6,\"layer_norm_eps\":1e-50}";
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "as a float32") != NULL);
    vitq_model_options_init(&o);
    o.config_json = "{\"model_type\": vit}";
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_ERR_FORMAT);
    vitq_model_options_init(&o);
    o.config_json = "{\"architecture\":\"deit_small_patch16_224\"}"; /* width 384, the weights have 32 */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-timm-tanh-bf16", &o, &m), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "deit_small_patch16_224") != NULL);
    CHECK_STATUS(vitq_model_load_file("tests/fixtures/does-not-exist", NULL, &m), VITQ_ERR_IO);
    CHECK(strstr(vitq_last_error(), "does-not-exist") != NULL);
    CHECK(m == NULL);
    /* overrides win over config.json */
    vitq_model_options_init(&o);
    o.layer_norm_eps = 1e-5f;
    o.num_mean = 1;
    o.mean[0] = 0.25f;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", &o, &m), VITQ_OK);
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_source s;
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    CHECK(i.layer_norm_eps == 1e-5f && i.mean[2] == 0.25f);
    CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_LAYER_NORM_EPS, &s), VITQ_OK);
    CHECK(s == VITQ_SOURCE_OVERRIDE);
    CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_STD, &s), VITQ_OK);
    CHECK(s == VITQ_SOURCE_PREPROCESSOR);
    vitq_model_free(m);
    /* no mean/std anywhere: loading works, preprocessing refuses */
    o = timm_config();
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-timm-tanh-bf16", &o, &m), VITQ_OK);
    uint8_t px[16 * 16] = {0};
    float out[16 * 16];
    CHECK_STATUS(vitq_model_preprocess_u8(m, px, 1, VITQ_PIXELS_NHWC, out), VITQ_ERR_MISSING_CONFIG);
    vitq_model_free(m);
}

static void test_bad_inputs(void) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", NULL, &m), VITQ_OK);
    if (!m) return;
    size_t per = 3 * 32 * 32;
    float *x = calloc(2 * per, sizeof(float)), logits[14];
    x[per + 17] = NAN;
    CHECK_STATUS(vitq_model_forward(m, x, 2, logits), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "image 1") != NULL);
    x[per + 17] = INFINITY;
    CHECK_STATUS(vitq_model_forward(m, x, 2, logits), VITQ_ERR_NON_FINITE);
    CHECK_STATUS(vitq_model_forward(m, NULL, 2, logits), VITQ_ERR_INVALID_ARGUMENT);
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_file(FMNIST_TEST, NULL, NULL, &d), VITQ_OK);
    CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, 1, logits), VITQ_ERR_SHAPE); /* 28x28x1 vs 32x32x3 */
    CHECK_STATUS(vitq_model_forward_dataset(m, d, 9999, 2, logits), VITQ_ERR_INVALID_ARGUMENT);
    int32_t label;
    CHECK_STATUS(vitq_dataset_label(d, 0, &label), VITQ_ERR_BAD_STATE);
    vitq_dataset_free(d);
    free(x);
    vitq_model_free(m);
}

/* ---- allocators -------------------------------------------------------------------------------- */

static void test_caller_allocator(void) {
    uint64_t rows = 0, cols = 0, gr = 0, gc = 0;
    float *input = load_npy_f32(FIXTURES "odd-deit-hf/input.npy", &rows, &cols);
    float *want = load_npy_f32(FIXTURES "odd-deit-hf/golden_logits.npy", &gr, &gc);
    CHECK(input && want);
    counting c = {0, 0, -1, NULL, 0, 0};
    c.cap = 4u << 20;
    c.arena = malloc(c.cap);
    vitq_allocator a = {sizeof a, count_alloc, count_free, &c};
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &a;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-deit-hf", &o, &m), VITQ_OK);
    float got[3 * 4];
    if (m && input && want) {
        CHECK_STATUS(vitq_model_forward(m, input, 3, got), VITQ_OK);
        logits_match("arena allocator", got, want, gr * gc);
    }
    vitq_model_free(m);
    CHECK(c.total > 0 && c.live == 0);
    printf("    arena: %ld allocations, %zu bytes high-water\n", c.total, c.used);
    free(c.arena);
    check_allocation_failures("odd-deit-hf", c.total);
    vitq_allocator broken = {sizeof broken, NULL, count_free, &c};
    o.allocator = &broken;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-deit-hf", &o, &m), VITQ_ERR_INVALID_ARGUMENT);
    free(input), free(want);
}

static void test_load_memory_matches_file(void) {
    vitq_allocator a;
    uint8_t *buf;
    size_t n;
    vitq_i_allocator_resolve(NULL, &a);
    CHECK_STATUS(vitq_i_read_file(&a, FIXTURES "odd-vit-hf/model.safetensors", &buf, &n), VITQ_OK);
    uint8_t *config, *pre;
    size_t cn, pn;
    CHECK_STATUS(vitq_i_read_file(&a, FIXTURES "odd-vit-hf/config.json", &config, &cn), VITQ_OK);
    CHECK_STATUS(vitq_i_read_file(&a, FIXTURES "odd-vit-hf/preprocessor_config.json", &pre, &pn), VITQ_OK);
    char *ctext = calloc(1, cn + 1), *ptext = calloc(1, pn + 1);
    memcpy(ctext, config, cn);
    memcpy(ptext, pre, pn);
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = ctext;
    o.preprocessor_json = ptext;
    vitq_model *mm = NULL, *mf = NULL;
    CHECK_STATUS(vitq_model_load_memory(buf, n, "odd-vit-hf", &o, &mm), VITQ_OK);
    memset(buf, 0xAB, n); /* the model must not keep pointers into the caller's buffer */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-vit-hf", NULL, &mf), VITQ_OK);
    uint64_t rows = 0, cols = 0;
    float *input = load_npy_f32(FIXTURES "odd-vit-hf/input.npy", &rows, &cols);
    float a1[21], a2[21];
    if (mm && mf && input) {
        CHECK_STATUS(vitq_model_forward(mm, input, 3, a1), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(mf, input, 3, a2), VITQ_OK);
        CHECK(memcmp(a1, a2, sizeof a1) == 0);
    }
    vitq_model_free(mm);
    vitq_model_free(mf);
    /* truncated buffers and a header length past the end */
    CHECK_STATUS(vitq_model_load_memory(buf, 5, "tiny", NULL, &mm), VITQ_ERR_TRUNCATED);
    CHECK(mm == NULL);
    free(input), free(ctext), free(ptext);
    vitq_i_free(&a, buf), vitq_i_free(&a, config), vitq_i_free(&a, pre);
}

static void test_truncated_file(void) {
    vitq_allocator a;
    uint8_t *buf;
    size_t n;
    vitq_i_allocator_resolve(NULL, &a);
    CHECK_STATUS(vitq_i_read_file(&a, FIXTURES "odd-deit-hf/model.safetensors", &buf, &n), VITQ_OK);
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(buf, n - 100, "cut", NULL, &m), VITQ_ERR_TRUNCATED);
    CHECK(strstr(vitq_last_error(), "cut") != NULL);
    uint64_t huge = (uint64_t)n * 4;
    memcpy(buf, &huge, 8);
    CHECK_STATUS(vitq_model_load_memory(buf, n, "header", NULL, &m), VITQ_ERR_TRUNCATED);
    vitq_i_free(&a, buf);
}

int main(void) {
    RUN(test_fixtures_golden);
    RUN(test_reference_models_golden);
    RUN(test_reference_models_accuracy);
    RUN(test_batch_and_thread_invariance);
    RUN(test_bad_checkpoints);
    RUN(test_bad_configs);
    RUN(test_bad_inputs);
    RUN(test_caller_allocator);
    RUN(test_load_memory_matches_file);
    RUN(test_truncated_file);
    HARNESS_EXIT();
}
