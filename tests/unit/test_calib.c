/* The PTQ framework end to end through the public API: quantization points, configuration errors,
 * calibration on the bundled models, accuracy at W8A8, the staged attention path, saving and
 * loading quantized models bit for bit, third-party schemes, cancellation. */
#include <string.h>


#include "calib_util.h"

static int find_point(const vitq_calibrator *c, const char *name, vitq_point_info *out) {
    for (int32_t p = 0; p < vitq_calibrator_num_points(c); p++) {
        vitq_point_info_init(out);
        vitq_calibrator_point_info(c, p, out);
        if (strcmp(out->name, name) == 0) return 1;
    }
    return 0;
}

static void test_points_listed(void) {
    static const struct {
        const char *model, *name;
        int kind, role, bits;
        long long channels, heads;
    } expect[] = {
        {"models/fmnist-vit", "patch_embed.proj.weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, 8, 64, 0},
        {"models/fmnist-vit", "blocks.3.attn.qkv.weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, 4, 192, 12},
        {"models/fmnist-vit", "blocks.3.attn.qkv.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_LAYERNORM, 6, 64, 0},
        {"models/fmnist-vit", "blocks.3.attn.k", VITQ_POINT_ACTIVATION, VITQ_ROLE_KEY, 6, 64, 4},
        {"models/fmnist-vit", "blocks.3.attn.softmax.out", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_SOFTMAX, 6, 4, 4},
        {"models/fmnist-vit", "blocks.3.attn.softmax.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_SOFTMAX_INPUT, 0, 4, 4},
        {"models/fmnist-vit", "blocks.5.mlp.fc2.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_GELU, 6, 256, 0},
        {"models/fmnist-vit", "blocks.5.norm2.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT, 0, 64, 0},
        {"models/fmnist-vit", "head.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_LAYERNORM, 8, 64, 0},
        {"models/fmnist-deit-distilled", "head_dist.weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, 8, 10, 0},
        {"models/fmnist-swin-hf", "layers.1.downsample.reduction.weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, 4,
         96, 0},
        {"models/fmnist-swin-hf", "layers.1.blocks.1.attn.softmax.out", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_SOFTMAX, 6,
         6, 6},
        {"models/fmnist-swin-hf", "head.fc.weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, 8, 10, 0},
    };
    for (size_t e = 0; e < sizeof expect / sizeof expect[0]; e++) {
        vitq_model *m = load(expect[e].model);
        vitq_calibrator_options o;
        vitq_calibrator_options_init(&o);
        o.weight_bits = 4;
        o.activation_bits = 6;
        vitq_calibrator *c = NULL;
        vitq_point_info pi;
        CHECK_STATUS(vitq_calibrator_create(m, &o, &c), VITQ_OK);
        if (!c || !find_point(c, expect[e].name, &pi)) {
            printf("    %s: no point %s\n", expect[e].model, expect[e].name);
            CHECK(0);
        } else {
            CHECK(pi.kind == expect[e].kind && pi.role == expect[e].role && pi.bits == expect[e].bits);
            CHECK(pi.channels == expect[e].channels && pi.heads == expect[e].heads);
            CHECK(strcmp(pi.scheme, "minmax") == 0);
            CHECK(pi.granularity == (pi.kind == VITQ_POINT_WEIGHT ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR));
        }
        vitq_calibrator_free(c);
        vitq_model_free(m);
    }
}

static void test_bad_configuration(void) {
    vitq_model *m = load("models/fmnist-vit");
    vitq_calibrator *c = NULL;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "no-such-scheme";
    CHECK_STATUS(vitq_calibrator_create(m, &o, &c), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "no-such-scheme") && strstr(vitq_last_error(), "minmax"));
    o.scheme = "minmax";
    o.weight_bits = 9;
    CHECK_STATUS(vitq_calibrator_create(m, &o, &c), VITQ_ERR_OUT_OF_RANGE);
    o.weight_bits = 8;
    CHECK_STATUS(vitq_calibrator_create(m, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.*.nothing", "bits", "4"), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "blocks.*.nothing") != NULL);
    CHECK_STATUS(vitq_calibrator_set(c, "*.weight", "colour", "red"), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "colour") != NULL);
    CHECK_STATUS(vitq_calibrator_set(c, "*.weight", "bits", "1"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set(c, "*.weight", "bits", "4x"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.mlp.fc1.weight", "granularity", "head"), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "blocks.0.mlp.fc1.weight") != NULL);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.attn.q", "granularity", "head"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.*", "symmetric", "2"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set(c, "*.input", "scheme", "percentile"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "*.input", "percentile", "101"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set(c, "*.input", "percentile", "99.9"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "*.weight", "percentile", "99.9"), VITQ_ERR_UNKNOWN_NAME);
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_ERR_BAD_STATE);
    float nan_image[28 * 28];
    for (int i = 0; i < 28 * 28; i++) nan_image[i] = i == 5 ? NAN : 0.0f;
    CHECK_STATUS(vitq_calibrator_feed(c, nan_image, 1), VITQ_ERR_NON_FINITE);
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(m, NULL, 0, &size), VITQ_ERR_BAD_STATE);
    vitq_calibrator_free(c);
    vitq_model_free(m);
}

/* W8A8 min-max: within half a point of FP32 top-1 on the test images. */
static void check_w8a8(const char *path) {
    vitq_model *fp = load(path);
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    if (q) {
        double a = top1(fp, eval_count()), b = top1(q, eval_count());
        printf("    %s: FP32 %.4f, W8A8 min-max %.4f (%zu images)\n", path, a, b, eval_count());
        CHECK(b >= a - 0.005);
        vitq_model_info i;
        vitq_model_info_init(&i);
        vitq_model_get_info(q, &i);
        CHECK(i.num_quantized_points > 0);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_w8a8_vit(void) { check_w8a8("models/fmnist-vit"); }
static void test_w8a8_deit(void) { check_w8a8("models/fmnist-deit-distilled"); }
static void test_w8a8_swin(void) { check_w8a8("models/fmnist-swin"); }

/* A scheme that changes nothing: the quantized model must give the float logits bit for bit,
 * through the staged attention path and the unfused GELU. */
static int identity_state;
static vitq_status id_create(const vitq_point_config *cfg, const vitq_scheme_host *host, void **state) {
    (void)cfg, (void)host;
    *state = &identity_state; /* stateless */
    return VITQ_OK;
}
static void id_destroy(void *state) { (void)state; }
static vitq_status id_observe(void *s, int32_t pass, const vitq_tensor_view *x) {
    (void)s, (void)pass, (void)x;
    return VITQ_OK;
}
static vitq_status id_finalize(void *s) {
    (void)s;
    return VITQ_OK;
}
static vitq_status id_fake(void *s, const vitq_tensor_view *x) {
    (void)s, (void)x;
    return VITQ_OK;
}
static vitq_status id_quantize(void *s, const vitq_tensor_view *x, int32_t *codes) {
    (void)s, (void)x, (void)codes;
    return VITQ_ERR_UNSUPPORTED;
}
static vitq_status id_dequantize(void *s, const int32_t *codes, const vitq_tensor_view *x) {
    (void)s, (void)x, (void)codes;
    return VITQ_ERR_UNSUPPORTED;
}
static int32_t id_count(void *s) {
    (void)s;
    return 0;
}
static vitq_status id_get(void *s, int32_t i, const char **n, const float **v, int64_t *c) {
    (void)s, (void)i, (void)n, (void)v, (void)c;
    return VITQ_ERR_UNKNOWN_NAME;
}
static vitq_status id_set(void *s, const char *n, const float *v, int64_t c) {
    (void)s, (void)n, (void)v, (void)c;
    return VITQ_ERR_UNKNOWN_NAME;
}
static const vitq_scheme identity_scheme = {
    .struct_size = sizeof(vitq_scheme), .abi_version = VITQ_SCHEME_ABI_VERSION, .name = "identity",
    .description = "changes nothing", .num_passes = 1, .min_bits = 2, .max_bits = 8, .create = id_create,
    .destroy = id_destroy, .observe = id_observe, .finalize = id_finalize, .fake_quant = id_fake,
    .quantize = id_quantize, .dequantize = id_dequantize, .param_count = id_count, .get_param = id_get,
    .set_param = id_set};

static void check_identity(const char *path) {
    vitq_registry *reg = NULL;
    CHECK_STATUS(vitq_registry_create(NULL, &reg), VITQ_OK);
    CHECK_STATUS(vitq_registry_add(reg, &identity_scheme), VITQ_OK);
    vitq_model *fp = load(path);
    static const char *const sets[] = {"*", "bits", "0", "*.input", "bits", "8", "*.attn.?", "bits", "8",
                                       "*.softmax.out", "bits", "8"};
    vitq_model *q = quantize(fp, reg, "identity", 8, 8, sets, 4);
    if (q) {
        size_t n = 64;
        float *a = logits_of(fp, n), *b = logits_of(q, n);
        CHECK(memcmp(a, b, n * (size_t)classes_of(fp) * sizeof(float)) == 0);
        free(a);
        free(b);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
    vitq_registry_free(reg);
}

static void test_identity_scheme_is_exact(void) {
    check_identity("models/fmnist-deit-distilled");
    check_identity("models/fmnist-swin");
}

static void test_registry_errors(void) {
    vitq_registry *reg = NULL;
    CHECK_STATUS(vitq_registry_create(NULL, &reg), VITQ_OK);
    CHECK(vitq_registry_count(reg) == vitq_registry_count(NULL) && vitq_registry_count(NULL) >= 3);
    vitq_scheme s = identity_scheme;
    s.abi_version = 99;
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_ABI_MISMATCH);
    s = identity_scheme;
    s.struct_size = 8;
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_ABI_MISMATCH);
    s = identity_scheme;
    s.fake_quant = NULL;
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_INVALID_ARGUMENT);
    s = identity_scheme;
    s.name = "bad name";
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_INVALID_ARGUMENT);
    s = identity_scheme;
    s.name = "minmax";
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_CONFIG);
    s = identity_scheme;
    s.max_bits = 9;
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_registry_add(reg, &identity_scheme), VITQ_OK);
    CHECK(vitq_registry_count(reg) == vitq_registry_count(NULL) + 1);
    CHECK(strcmp(vitq_registry_get(reg, vitq_registry_count(reg) - 1)->name, "identity") == 0);
    CHECK(vitq_registry_get(reg, -1) == NULL && vitq_registry_get(NULL, 100) == NULL);
    vitq_registry_free(reg);
}

/* The configuration of every point, as the API shows it. */
typedef struct point_state {
    int32_t bits, granularity, symmetric;
    const char *scheme;
} point_state;

static point_state *point_states(const vitq_calibrator *c) {
    int32_t n = vitq_calibrator_num_points(c);
    point_state *s = calloc((size_t)n + 1, sizeof *s);
    for (int32_t p = 0; p < n; p++) {
        vitq_point_info pi;
        vitq_point_info_init(&pi);
        CHECK_STATUS(vitq_calibrator_point_info(c, p, &pi), VITQ_OK);
        s[p] = (point_state){pi.bits, pi.granularity, pi.symmetric, pi.scheme};
    }
    return s;
}

/* vitq_calibrator_set is all or nothing: when a later matching point refuses the value, the earlier
 * ones (which accepted it) are left as they were, and are not counted as set by hand either. */
static void test_set_all_or_nothing(void) {
    vitq_model *m = load("models/fmnist-vit");
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "repq-vit";
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, &o, &c), VITQ_OK);
    if (!c) return;
    int32_t n = vitq_calibrator_num_points(c);
    point_state *before = point_states(c);
    /* qkv.weight has heads and accepts 'head'; proj.weight, matched after it, has none */
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.attn.*.weight", "granularity", "head"), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "blocks.0.attn.proj.weight") != NULL);
    /* fc2.input is a linear input (noisy allowed), fc2.weight after it is not */
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.mlp.fc2.*", "noisy", "1"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.*", "bits", "9"), VITQ_ERR_OUT_OF_RANGE);
    point_state *after = point_states(c);
    int same = 1;
    for (int32_t p = 0; p < n; p++)
        same &= before[p].bits == after[p].bits && before[p].granularity == after[p].granularity &&
                before[p].symmetric == after[p].symmetric && strcmp(before[p].scheme, after[p].scheme) == 0;
    CHECK(same);
    /* fc2.input was not marked as set by hand: a method option that chooses its quantizer reaches it */
    CHECK_STATUS(vitq_calibrator_set_option(c, "post_gelu", "1"), VITQ_OK);
    vitq_point_info pi;
    for (int32_t p = 0; p < n; p++) {
        vitq_point_info_init(&pi);
        vitq_calibrator_point_info(c, p, &pi);
        if (strcmp(pi.name, "blocks.0.mlp.fc2.input") == 0) CHECK(strcmp(pi.scheme, "twin-gelu") == 0);
    }
    /* and a value every matching point accepts changes them all */
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.attn.qkv.weight", "granularity", "head"), VITQ_OK);
    point_state *last = point_states(c);
    for (int32_t p = 0; p < n; p++) {
        vitq_point_info_init(&pi);
        vitq_calibrator_point_info(c, p, &pi);
        if (strcmp(pi.name, "blocks.0.attn.qkv.weight") == 0) CHECK(last[p].granularity == VITQ_GRAN_HEAD);
    }
    free(before), free(after), free(last);
    vitq_calibrator_free(c);
    vitq_model_free(m);
}

/* Save, load, save again: same bytes, same logits bit for bit; for each bit width's packing. */
static void check_round_trip(const char *path, int wbits, int abits, const char *scheme) {
    vitq_model *fp = load(path);
    static const char *const sets[] = {"blocks.0.attn.q", "granularity", "head", "*.softmax.out", "granularity", "head"};
    vitq_model *q = quantize(fp, NULL, scheme, wbits, abits, sets, strstr(path, "swin") ? 0 : 2);
    size_t size = 0, size2 = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    uint8_t *bytes = malloc(size), *bytes2 = NULL;
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size - 1, &size2), VITQ_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    vitq_model *again = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "saved", NULL, &again), VITQ_OK);
    if (again) {
        size_t n = harness_quick() ? 24 : 100;
        float *a = logits_of(q, n), *b = logits_of(again, n), *f = logits_of(fp, n);
        CHECK(memcmp(a, b, n * (size_t)classes_of(q) * sizeof(float)) == 0);
        CHECK(memcmp(a, f, n * (size_t)classes_of(q) * sizeof(float)) != 0); /* it is quantized */
        CHECK_STATUS(vitq_model_save_memory(again, NULL, 0, &size2), VITQ_OK);
        bytes2 = malloc(size2);
        CHECK_STATUS(vitq_model_save_memory(again, bytes2, size2, &size2), VITQ_OK);
        CHECK(size2 == size && memcmp(bytes, bytes2, size) == 0);
        vitq_model_info i1, i2;
        vitq_model_info_init(&i1);
        vitq_model_info_init(&i2);
        vitq_model_get_info(q, &i1);
        vitq_model_get_info(again, &i2);
        CHECK(i1.num_quantized_points == i2.num_quantized_points && i1.num_quantized_points > 0);
        free(a);
        free(b);
        free(f);
    }
    printf("    %s %s W%dA%d: %zu bytes\n", path, scheme, wbits, abits, size);
    free(bytes);
    free(bytes2);
    vitq_model_free(again);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_save_load_bit_identical(void) {
    check_round_trip("models/fmnist-vit", 8, 8, "minmax");
    check_round_trip("models/fmnist-vit-hf", 4, 4, "percentile");
    check_round_trip("models/fmnist-deit-distilled", 3, 6, "omse");
    check_round_trip("models/fmnist-swin-timm-old", 2, 8, "minmax");
}

/* Damaged quantized files: a missing parameter tensor, a scheme the loader does not know. */
static void test_bad_quantized_files(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_registry *reg = NULL;
    CHECK_STATUS(vitq_registry_create(NULL, &reg), VITQ_OK);
    CHECK_STATUS(vitq_registry_add(reg, &identity_scheme), VITQ_OK);
    static const char *const sets[] = {"blocks.0.attn.proj.input", "scheme", "identity"};
    vitq_model *q = quantize(fp, reg, "minmax", 8, 8, sets, 1), *again = NULL;
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    uint8_t *bytes = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "q", NULL, &again), VITQ_ERR_UNKNOWN_NAME);
    CHECK(strstr(vitq_last_error(), "identity") && strstr(vitq_last_error(), "blocks.0.attn.proj.input"));
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.registry = reg;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "q", &mo, &again), VITQ_OK);
    vitq_model_free(again);
    again = NULL;
    /* rename one parameter tensor in the header: same length, so offsets stay valid */
    char *hit = NULL;
    for (size_t i = 0; i + 30 < size && !hit; i++)
        if (memcmp(bytes + i, "blocks.1.attn.q.scale\"", 22) == 0) hit = (char *)bytes + i;
    CHECK(hit != NULL);
    if (hit) {
        hit[7] = '9';
        CHECK_STATUS(vitq_model_load_memory(bytes, size, "q", &mo, &again), VITQ_ERR_MISSING_TENSOR);
        CHECK(strstr(vitq_last_error(), "blocks.1.attn.q.scale") != NULL);
    }
    vitq_model_free(again);
    free(bytes);
    vitq_model_free(q);
    vitq_model_free(fp);
    vitq_registry_free(reg);
}

static int cancel_after_two(void *user, const char *stage, int64_t done, int64_t total) {
    (void)stage, (void)total;
    *(int *)user += 1;
    return done >= 2;
}

static void test_progress_and_cancel(void) {
    vitq_model *fp = load("models/fmnist-vit");
    int calls = 0;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.progress = cancel_after_two;
    o.progress_user = &calls;
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 32), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_ERR_CANCELLED);
    CHECK(q == NULL && calls == 2);
    vitq_calibrator_stats s;
    vitq_calibrator_stats_init(&s);
    CHECK_STATUS(vitq_calibrator_get_stats(c, &s), VITQ_OK);
    CHECK(s.images == 32);
    vitq_calibrator_free(c);
    vitq_model_free(fp);
}

static void test_stats_and_ranges(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, NULL, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 16), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_stats s;
    vitq_calibrator_stats_init(&s);
    CHECK_STATUS(vitq_calibrator_get_stats(c, &s), VITQ_OK);
    CHECK(s.images == 16 && s.seconds > 0 && s.peak_bytes > 16 * 28 * 28 * sizeof(float));
    vitq_point_info pi;
    CHECK(find_point(c, "blocks.0.attn.softmax.out", &pi));
    CHECK(pi.observed_min >= 0.0f && pi.observed_max <= 1.0f && pi.observed_max > 0.1f);
    CHECK(find_point(c, "blocks.0.mlp.fc2.input", &pi));
    CHECK(pi.observed_min >= -0.2f && pi.observed_min < 0.0f); /* GELU's minimum is about -0.17 */
    vitq_calibrator_free(c);
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* The report: one row per quantized point, worst first; the 2-bit point is the worst, the float
 * ones are absent; SQNR matches the quantizer's resolution roughly (8 bits: ~6 dB per bit). */
static void test_report(void) {
    vitq_model *fp = load("models/fmnist-vit");
    static const char *const sets[] = {"blocks.2.mlp.fc1.weight", "bits", "2", "*.softmax.out", "bits", "0"};
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, sets, 2);
    int32_t count = 0;
    double cosine = 0;
    size_t n = harness_quick() ? 8 : 32; /* one forward pass per point: keep the sanitizer run short */
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, n, NULL, 0, &count, &cosine), VITQ_OK);
    vitq_model_info qi;
    vitq_model_info_init(&qi);
    vitq_model_get_info(q, &qi);
    CHECK(count == qi.num_quantized_points && count > 50);
    vitq_report_row *rows = calloc((size_t)count, sizeof *rows);
    rows[0].struct_size = sizeof *rows;
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, n, rows, count, &count, &cosine), VITQ_OK);
    CHECK(cosine > 0.99 && cosine < 1.0);
    CHECK(strcmp(rows[0].point, "blocks.2.mlp.fc1.weight") == 0 && rows[0].bits == 2);
    CHECK(rows[0].output_cosine < rows[count - 1].output_cosine);
    for (int32_t r = 1; r < count; r++) CHECK(rows[r - 1].output_cosine <= rows[r].output_cosine);
    int found_qkv = 0;
    for (int32_t r = 0; r < count; r++) {
        CHECK(strstr(rows[r].point, "softmax") == NULL && strstr(rows[r].point, "norm1") == NULL);
        if (strcmp(rows[r].point, "blocks.0.attn.qkv.weight") == 0) {
            found_qkv = 1;
            CHECK(rows[r].sqnr_db > 30 && rows[r].sqnr_db < 60); /* 8-bit per channel: ~40 dB */
            CHECK(rows[r].min < 0 && rows[r].max > 0);
        }
    }
    CHECK(found_qkv);
    printf("    worst %s (%d bits): SQNR %.1f dB, cosine alone %.5f; whole model cosine %.5f\n", rows[0].point,
           rows[0].bits, rows[0].sqnr_db, rows[0].output_cosine, cosine);
    CHECK_STATUS(vitq_model_report(q, fp, test_set, 0, 32, NULL, 0, &count, &cosine), VITQ_ERR_INVALID_ARGUMENT);
    free(rows);
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* The paper setting quantizes what the methods' reference code quantizes: the patch embedding's and the
 * classifier's weights and inputs at W/A bits (edge_bits ignored), and the image at 8 bits for
 * repq-vit only; the default keeps the edges at edge_bits and the image in float. */
static void test_setting(void) {
    vitq_model *fp = load("models/fmnist-vit");
    static const struct {
        const char *method;
        int setting, edge_w, edge_in, image;
    } cases[] = {{"repq-vit", VITQ_SETTING_PAPER, 4, 4, 8}, {"ptq4vit", VITQ_SETTING_PAPER, 4, 4, 0},
                 {"minmax", VITQ_SETTING_PAPER, 4, 4, 0},   {"repq-vit", VITQ_SETTING_DEFAULT, 8, 8, 0},
                 {"apq-vit", VITQ_SETTING_DEFAULT, 8, 8, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        vitq_calibrator_options o;
        vitq_calibrator_options_init(&o);
        CHECK(o.setting == VITQ_SETTING_DEFAULT);
        o.scheme = cases[k].method;
        o.weight_bits = o.activation_bits = 4;
        o.setting = cases[k].setting;
        vitq_calibrator *c = NULL;
        CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
        if (!c) continue;
        vitq_point_info pi;
        int got_w = find_point(c, "patch_embed.proj.weight", &pi) ? pi.bits : -1;
        int got_head = find_point(c, "head.weight", &pi) ? pi.bits : -1;
        int got_in = find_point(c, "head.input", &pi) ? pi.bits : -1;
        int got_image = find_point(c, "patch_embed.proj.input", &pi) ? pi.bits : -1;
        int inner = find_point(c, "blocks.2.attn.qkv.weight", &pi) ? pi.bits : -1;
        if (got_w != cases[k].edge_w || got_head != cases[k].edge_w || got_in != cases[k].edge_in ||
            got_image != cases[k].image || inner != 4)
            printf("    %s setting %d: patch %d head %d head.input %d image %d qkv %d\n", cases[k].method,
                   cases[k].setting, got_w, got_head, got_in, got_image, inner);
        CHECK(got_w == cases[k].edge_w && got_head == cases[k].edge_w && got_in == cases[k].edge_in);
        CHECK(got_image == cases[k].image && inner == 4);
        vitq_calibrator_free(c);
    }
    /* NoisyQuant's code quantizes the blocks' linear layers only; over PTQ4ViT (base 1), what PTQ4ViT does */
    for (int base = 0; base < 3; base++) {
        vitq_calibrator_options o;
        vitq_calibrator_options_init(&o);
        o.scheme = "noisyquant";
        o.weight_bits = o.activation_bits = 4;
        o.setting = VITQ_SETTING_PAPER;
        vitq_calibrator *c = NULL;
        CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
        if (!c) continue;
        char value[16];
        snprintf(value, sizeof value, "%d", base);
        CHECK_STATUS(vitq_calibrator_set_option(c, "base", value), VITQ_OK);
        static const char *const outside[] = {"patch_embed.proj.weight", "head.weight", "head.input",
                                              "blocks.1.attn.q", "blocks.1.attn.k", "blocks.1.attn.v",
                                              "blocks.1.attn.softmax.out"};
        vitq_point_info pi;
        for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
            int bits = find_point(c, outside[i], &pi) ? pi.bits : -1;
            if (bits != (base == 1 ? 4 : 0)) printf("    noisyquant base %d: %s at %d bits\n", base, outside[i], bits);
            CHECK(bits == (base == 1 ? 4 : 0));
        }
        CHECK(find_point(c, "blocks.1.attn.qkv.input", &pi) && pi.bits == 4);
        CHECK(find_point(c, "blocks.1.mlp.fc2.weight", &pi) && pi.bits == 4);
        vitq_calibrator_free(c);
    }
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.setting = 2;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_ERR_OUT_OF_RANGE);
    CHECK(c == NULL && strstr(vitq_last_error(), "setting"));
    /* the image on an 8-bit grid runs (and the quantized model saves and reloads the same) */
    vitq_calibrator_options_init(&o);
    o.scheme = "repq-vit";
    o.setting = VITQ_SETTING_PAPER;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 16), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    if (q) {
        double acc = top1(q, 300), base = top1(fp, 300);
        printf("    repq-vit W8A8 paper setting: %.4f (FP32 %.4f, 300 images)\n", acc, base);
        CHECK(acc > base - 0.03);
    }
    vitq_model_free(q);
    vitq_calibrator_free(c);
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_points_listed);
    RUN(test_bad_configuration);
    RUN(test_set_all_or_nothing);
    RUN(test_registry_errors);
    RUN(test_identity_scheme_is_exact);
    RUN(test_w8a8_vit);
    RUN(test_w8a8_deit);
    RUN(test_w8a8_swin);
    RUN(test_save_load_bit_identical);
    RUN(test_bad_quantized_files);
    RUN(test_progress_and_cancel);
    RUN(test_stats_and_ranges);
    RUN(test_report);
    RUN(test_setting);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
