/* Class names (vitq_model_class_name): Hugging Face id2label in any key order, timm label_names (a list
 * or an object, top level or in pretrained_cfg), lists that do not name every class once refused with
 * the counts, __metadata__ vitq.class_names, and the names kept through calibration, saving and loading. */
#include "harness.h"
#include "io/safetensors.h"
#include "io/st_writer.h"

#define HF_MODEL "tests/fixtures/models/odd-vit-hf"     /* 7 classes, config.json with id2label */
#define TIMM_MODEL "tests/fixtures/models/odd-vit-timm-tanh-bf16" /* 3 classes, no names */
#define META_MODEL "tests/fixtures/models/odd-deit-timm-meta"     /* 5 classes, hyper-parameters in __metadata__ */

/* odd-vit-hf's config.json without its labels; `labels` completes it ("" for none). */
static char *hf_config(const char *labels) {
    static char text[4096];
    snprintf(text, sizeof text,
             "{\"model_type\": \"vit\", \"hidden_act\": \"gelu\", \"hidden_size\": 48, \"image_size\": 32, "
             "\"intermediate_size\": 100, \"layer_norm_eps\": 1e-12, \"num_attention_heads\": 6, "
             "\"num_channels\": 3, \"num_hidden_layers\": 3, \"patch_size\": 8, \"qkv_bias\": true%s%s}",
             *labels ? ", " : "", labels);
    return text;
}

/* odd-vit-timm-tanh-bf16's config.json; `labels` is added at the top level, `in_cfg` inside pretrained_cfg. */
static char *timm_config(const char *labels, const char *in_cfg) {
    static char text[4096];
    snprintf(text, sizeof text,
             "{\"architecture\": \"vit_custom_fixture\", \"model_args\": {\"act_layer\": \"gelu_tanh\", \"depth\": 2, "
             "\"embed_dim\": 32, \"img_size\": 16, \"in_chans\": 1, \"mlp_ratio\": 2.5, \"num_heads\": 2, "
             "\"patch_size\": 4, \"qkv_bias\": false}, \"num_classes\": 3%s%s, \"pretrained_cfg\": {\"input_size\": "
             "[1, 16, 16], \"mean\": [0.5], \"std\": [0.25]%s%s}}",
             *labels ? ", " : "", labels, *in_cfg ? ", " : "", in_cfg);
    return text;
}

static vitq_model *load_with(const char *path, const char *config, vitq_status want, const char *needle) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = config;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(path, &o, &m), want);
    if (needle && !strstr(vitq_last_error(), needle)) {
        printf("    message '%s' does not name '%s'\n", vitq_last_error(), needle);
        harness_check_failures++;
    }
    CHECK((m != NULL) == (want == VITQ_OK));
    return m;
}

/* Every class of `m` has the name `want[c]` (NULL: the model has no names). */
static void expect_names(const vitq_model *m, const char *const *want, int count) {
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(m, &info), VITQ_OK);
    CHECK(info.num_classes == count);
    for (int c = 0; c < count; c++) {
        const char *name = "not set";
        CHECK_STATUS(vitq_model_class_name(m, c, &name), VITQ_OK);
        int same = want ? name && !strcmp(name, want[c]) : name == NULL;
        if (!same) printf("    class %d: '%s', expected '%s'\n", c, name ? name : "(null)", want ? want[c] : "(null)");
        CHECK(same);
    }
}

static const char *const hf_names[7] = {"tench, Tinca tinca", "goldfish", "say \"cheese\"", "back\\slash",
                                        "caf\xc3\xa9", "tab\there", "six"};

static void id2label_in_any_key_order(void) {
    /* keys shuffled, names with a comma, quotes, a backslash, UTF-8 and a control character */
    vitq_model *m = load_with(HF_MODEL "/model.safetensors",
                              hf_config("\"id2label\": {\"3\": \"back\\\\slash\", \"0\": \"tench, Tinca tinca\", "
                                        "\"6\": \"six\", \"1\": \"goldfish\", \"5\": \"tab\\there\", "
                                        "\"2\": \"say \\\"cheese\\\"\", \"4\": \"caf\\u00e9\"}"),
                              VITQ_OK, NULL);
    if (m) expect_names(m, hf_names, 7);
    vitq_model_free(m);
    /* the fixture's own config.json */
    m = load_with(HF_MODEL, NULL, VITQ_OK, NULL);
    const char *own[7] = {"odd-vit-hf-class-0", "odd-vit-hf-class-1", "odd-vit-hf-class-2", "odd-vit-hf-class-3",
                          "odd-vit-hf-class-4", "odd-vit-hf-class-5", "odd-vit-hf-class-6"};
    if (m) expect_names(m, own, 7);
    vitq_model_free(m);
}

static void timm_label_names(void) {
    const char *abc[3] = {"alpha", "beta", "gamma"};
    const char *configs[] = {timm_config("\"label_names\": [\"alpha\", \"beta\", \"gamma\"]", ""),
                             timm_config("", "\"label_names\": [\"alpha\", \"beta\", \"gamma\"]"),
                             timm_config("\"label_names\": {\"2\": \"gamma\", \"0\": \"alpha\", \"1\": \"beta\"}", "")};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", configs[k]); /* timm_config's buffer is reused */
        vitq_model *m = load_with(TIMM_MODEL "/model.safetensors", copy, VITQ_OK, NULL);
        if (m) expect_names(m, abc, 3);
        vitq_model_free(m);
    }
}

static void no_names_and_out_of_range(void) {
    vitq_model *m = load_with(TIMM_MODEL, NULL, VITQ_OK, NULL);
    if (!m) return;
    expect_names(m, NULL, 3);
    const char *name = "not set";
    CHECK_STATUS(vitq_model_class_name(m, 3, &name), VITQ_ERR_OUT_OF_RANGE);
    CHECK(name == NULL && strstr(vitq_last_error(), "[0, 3)"));
    name = "not set";
    CHECK_STATUS(vitq_model_class_name(m, -1, &name), VITQ_ERR_OUT_OF_RANGE);
    CHECK(name == NULL);
    CHECK_STATUS(vitq_model_class_name(m, 0, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_model_class_name(NULL, 0, &name), VITQ_ERR_INVALID_ARGUMENT);
    vitq_model_free(m);
}

static void lists_that_do_not_fit_are_refused(void) {
    /* six names for seven classes: the counts are named */
    vitq_model_free(load_with(HF_MODEL "/model.safetensors",
                              hf_config("\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\", \"3\": \"d\", "
                                        "\"4\": \"e\", \"5\": \"f\"}"),
                              VITQ_ERR_CONFIG, "'id2label' names 6 classes but the classifier has 7 outputs"));
    /* seven names, but "7" is no class of seven (so class 6 has none) */
    vitq_model_free(load_with(HF_MODEL "/model.safetensors",
                              hf_config("\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\", \"3\": \"d\", "
                                        "\"4\": \"e\", \"5\": \"f\", \"7\": \"h\"}"),
                              VITQ_ERR_CONFIG, "key '7' is not a class index in 0..6"));
    /* "01" would be a second name for class 1 */
    vitq_model_free(load_with(HF_MODEL "/model.safetensors",
                              hf_config("\"id2label\": {\"0\": \"a\", \"01\": \"b\", \"2\": \"c\", \"3\": \"d\", "
                                        "\"4\": \"e\", \"5\": \"f\", \"6\": \"g\"}"),
                              VITQ_ERR_CONFIG, "key '01'"));
    vitq_model_free(load_with(HF_MODEL "/model.safetensors",
                              hf_config("\"id2label\": {\"0\": \"a\", \"1\": 2, \"2\": \"c\", \"3\": \"d\", "
                                        "\"4\": \"e\", \"5\": \"f\", \"6\": \"g\"}"),
                              VITQ_ERR_CONFIG, "entry '1' is a number"));
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", timm_config("\"label_names\": [\"alpha\", \"beta\", \"gamma\", \"delta\"]", ""));
    vitq_model_free(load_with(TIMM_MODEL "/model.safetensors", copy, VITQ_ERR_CONFIG,
                              "'label_names' names 4 classes but the classifier has 3 outputs"));
    snprintf(copy, sizeof copy, "%s", timm_config("", "\"label_names\": \"alpha\""));
    vitq_model_free(load_with(TIMM_MODEL "/model.safetensors", copy, VITQ_ERR_CONFIG,
                              "'pretrained_cfg.label_names' is a string"));
    /* null means "not set", as for every other key */
    vitq_model *m = load_with(HF_MODEL "/model.safetensors", hf_config("\"id2label\": null"), VITQ_OK, NULL);
    if (m) expect_names(m, NULL, 7);
    vitq_model_free(m);
}

/* META_MODEL's safetensors again with __metadata__ vitq.class_names = `names` (NULL: none added). */
static uint8_t *with_metadata_names(const char *names, size_t *size) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    uint8_t *file = NULL, *out = NULL;
    size_t n = 0;
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_read_file(&a, META_MODEL "/model.safetensors", &file, &n), VITQ_OK);
    if (!file) return NULL;
    CHECK_STATUS(vitq_i_st_parse(&a, file, n, "meta", &st), VITQ_OK);
    vitq_i_st_writer w;
    vitq_i_stw_init(&w, &a);
    vitq_status s = VITQ_OK;
    for (size_t i = 0; !s && i < st.meta_count; i++) s = vitq_i_stw_meta(&w, st.meta_keys[i], st.meta_values[i]);
    if (!s && names) s = vitq_i_stw_meta(&w, "vitq.class_names", names);
    for (size_t i = 0; !s && i < st.count; i++) {
        const vitq_i_array *t = &st.tensors[i].array;
        s = vitq_i_stw_add(&w, st.tensors[i].name, vitq_i_elem_name(t->elem), t->ndim, t->shape, t->data, t->nbytes);
    }
    uint8_t *bytes = NULL;
    if (!s) s = vitq_i_stw_finish(&w, &bytes, size);
    CHECK_STATUS(s, VITQ_OK);
    if (bytes) { /* out of the library's allocator, so that the caller frees it with free() */
        out = malloc(*size);
        memcpy(out, bytes, *size);
        vitq_i_free(&a, bytes);
    }
    vitq_i_stw_free(&w);
    vitq_i_st_free(&st);
    vitq_i_free(&a, file);
    return out;
}

static vitq_model *load_bytes(const uint8_t *bytes, size_t size, vitq_status want, const char *needle) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "meta.safetensors", NULL, &m), want);
    if (needle && !strstr(vitq_last_error(), needle)) {
        printf("    message '%s' does not name '%s'\n", vitq_last_error(), needle);
        harness_check_failures++;
    }
    return m;
}

static void metadata_names(void) {
    static const struct {
        const char *value, *needle; /* needle NULL: loads */
    } cases[] = {{"[\"a\",\"b, c\",\"\\\"d\\\"\",\"e\",\"f\"]", NULL},
                 {"[\"a\",\"b\"]", "names 2 classes but the classifier has 5 outputs"},
                 {"{\"0\":\"a\"}", "not a JSON array"},
                 {"[\"a\",", "__metadata__ vitq.class_names"}};
    const char *want[5] = {"a", "b, c", "\"d\"", "e", "f"};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t size = 0;
        uint8_t *bytes = with_metadata_names(cases[k].value, &size);
        if (!bytes) continue;
        vitq_model *m = load_bytes(bytes, size, cases[k].needle ? VITQ_ERR_CONFIG : VITQ_OK, cases[k].needle);
        if (m) expect_names(m, want, 5);
        vitq_model_free(m);
        free(bytes);
    }
}

/* Calibrate `fp` on the fixture's own images (W8A8 minmax). */
static vitq_model *quantize(const vitq_model *fp, const char *images) {
    vitq_dataset *d = NULL;
    CHECK_STATUS(vitq_dataset_load_file(images, NULL, NULL, &d), VITQ_OK);
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    if (c && d) CHECK_STATUS(vitq_calibrator_feed_dataset(c, d, 0, 2), VITQ_OK); /* the fixtures hold 2 */
    if (c && d) CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_free(c);
    vitq_dataset_free(d);
    return q;
}

/* 1 when `text` occurs in bytes[0..size). */
static int contains(const uint8_t *bytes, size_t size, const char *text) {
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= size; i++)
        if (!memcmp(bytes + i, text, n)) return 1;
    return 0;
}

static uint8_t *save(const vitq_model *q, size_t *size) {
    *size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, size), VITQ_OK); /* the size query */
    uint8_t *bytes = malloc(*size ? *size : 1);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, *size, size), VITQ_OK);
    return bytes;
}

static void kept_through_quantization_save_and_load(void) {
    vitq_model *fp = load_with(HF_MODEL "/model.safetensors",
                               hf_config("\"id2label\": {\"3\": \"back\\\\slash\", \"0\": \"tench, Tinca tinca\", "
                                         "\"6\": \"six\", \"1\": \"goldfish\", \"5\": \"tab\\there\", "
                                         "\"2\": \"say \\\"cheese\\\"\", \"4\": \"caf\\u00e9\"}"),
                               VITQ_OK, NULL);
    vitq_model *q = fp ? quantize(fp, HF_MODEL "/input_u8.npy") : NULL;
    if (!q) {
        vitq_model_free(fp);
        return;
    }
    expect_names(q, hf_names, 7);
    size_t size = 0, size2 = 0;
    uint8_t *bytes = save(q, &size);
    /* loaded from the bytes alone: no config.json, the names come from the file */
    vitq_model *back = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "q.safetensors", NULL, &back), VITQ_OK);
    if (back) {
        expect_names(back, hf_names, 7);
        uint8_t *again = save(back, &size2);
        CHECK(size2 == size && !memcmp(again, bytes, size)); /* saving a loaded model gives the same bytes */
        free(again);
    }
    /* the metadata holds a JSON array, class 0 first */
    CHECK(contains(bytes, size, "\"vitq.class_names\":\"[\\\"tench, Tinca tinca\\\",\\\"goldfish\\\","));
    vitq_model_free(back);
    free(bytes);
    vitq_model_free(q);
    /* a model without names saves none */
    vitq_model_free(fp);
    fp = load_with(TIMM_MODEL, NULL, VITQ_OK, NULL);
    q = fp ? quantize(fp, TIMM_MODEL "/input_u8.npy") : NULL;
    if (q) {
        bytes = save(q, &size);
        CHECK(!contains(bytes, size, "vitq.class_names"));
        expect_names(q, NULL, 3);
        free(bytes);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
}

int main(void) {
    RUN(id2label_in_any_key_order);
    RUN(timm_label_names);
    RUN(no_names_and_out_of_range);
    RUN(lists_that_do_not_fit_are_refused);
    RUN(metadata_names);
    RUN(kept_through_quantization_save_and_load);
    HARNESS_EXIT();
}
