/* timm hub configs whose model_args override their architecture's defaults, as
 * timm.create_model(architecture, **model_args) reads them: a known name (deit_tiny_distilled_patch16_224,
 * vit_base_patch16_224, swin_tiny_patch4_window7_224) over weights of another size must load and give the
 * PyTorch golden logits of those weights; contradictions are refused naming the model_args. The configs
 * (tests/fixtures/models/timm-args/) describe the weights of existing fixture folders. */
#include "harness.h"
#include "model_fixtures.h"

#define ARGS FIXTURES "timm-args/"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (text) text[n] = '\0';
    return text;
}

/* Replace the first occurrence of `from` in text (in place; `to` no longer than `from` is not needed). */
static char *edited(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    if (!at) return NULL;
    size_t head = (size_t)(at - text), len = strlen(text) + strlen(to) + 1;
    char *out = malloc(len);
    memcpy(out, text, head);
    snprintf(out + head, len - head, "%s%s", to, at + strlen(from));
    return out;
}

static vitq_status load_with(const char *weights, const char *config_text, vitq_model **m) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = config_text;
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", weights);
    return vitq_model_load_file(path, &o, m);
}

static void check_golden(const char *weights, const char *config, int swin) {
    char path[256];
    snprintf(path, sizeof path, ARGS "%s", config);
    char *text = read_text(path);
    CHECK(text != NULL);
    if (!text) return;
    vitq_model *m = NULL;
    CHECK_STATUS(load_with(weights, text, &m), VITQ_OK);
    if (m) {
        check_model_golden(weights, m);
        /* The hyper-parameters the shapes cannot tell came from the config, not the name's defaults. */
        vitq_source heads = VITQ_SOURCE_NONE, size = VITQ_SOURCE_NONE;
        CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_NUM_HEADS, &heads), VITQ_OK);
        CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_IMAGE_SIZE, &size), VITQ_OK);
        CHECK(heads == (swin ? VITQ_SOURCE_SHAPES : VITQ_SOURCE_CONFIG_JSON));
        CHECK(size == VITQ_SOURCE_CONFIG_JSON);
        vitq_model_free(m);
    }
    free(text);
}

static void test_deit_distilled_model_args(void) { check_golden("odd-deit-timm-meta", "deit_tiny_distilled.json", 0); }
static void test_vit_model_args(void) { check_golden("odd-vit-timm-tanh-bf16", "vit_base_patch16_224.json", 0); }
static void test_swin_model_args(void) { check_golden("odd-swin-timm-new", "swin_tiny_patch4_window7_224.json", 1); }

/* Contradictions name what they are about. */
static void expect_refused(const char *weights, const char *config, const char *from, const char *to,
                           vitq_status want, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, ARGS "%s", config);
    char *text = read_text(path);
    char *bad = text ? edited(text, from, to) : NULL;
    CHECK(bad != NULL);
    if (bad) {
        vitq_model *m = NULL;
        CHECK_STATUS(load_with(weights, bad, &m), want);
        CHECK(m == NULL);
        if (!strstr(vitq_last_error(), needle)) {
            printf("    message '%s' lacks '%s'\n", vitq_last_error(), needle);
            harness_check_failures++;
        }
        vitq_model_free(m);
    }
    free(bad);
    free(text);
}

static void test_model_args_contradictions(void) {
    /* Without its depth override the name's 12 blocks meet 2 blocks of weights. */
    expect_refused("odd-deit-timm-meta", "deit_tiny_distilled.json", "\"depth\": 2,", "", VITQ_ERR_CONFIG,
                   "deit_tiny_distilled_patch16_224 with model_args (embed_dim, patch_size, img_size, num_heads)");
    expect_refused("odd-deit-timm-meta", "deit_tiny_distilled.json", "\"img_size\": 24", "\"img_size\": 32",
                   VITQ_ERR_CONFIG, "model_args.img_size = 32 but pretrained_cfg.input_size is 24");
    expect_refused("odd-vit-timm-tanh-bf16", "vit_base_patch16_224.json", "[16, 16]", "[16, 12]", VITQ_ERR_CONFIG,
                   "model_args.img_size must be one number or a square pair");
    expect_refused("odd-vit-timm-tanh-bf16", "vit_base_patch16_224.json", "\"embed_dim\": 32", "\"embed_dim\": -32",
                   VITQ_ERR_CONFIG, "model_args.embed_dim is not a positive integer");
    expect_refused("odd-swin-timm-new", "swin_tiny_patch4_window7_224.json", "\"depths\": [2, 2, 2]",
                   "\"depths\": [2, 2, 6]", VITQ_ERR_CONFIG, "model_args.depths");
    /* A Swin name over ViT weights. */
    expect_refused("odd-vit-timm-tanh-bf16", "vit_base_patch16_224.json", "vit_base_patch16_224.augreg_in21k_ft_in1k",
                   "swin_tiny_patch4_window7_224", VITQ_ERR_CONFIG, "is a Swin, but the weights are a ViT/DeiT");
}

int main(void) {
    RUN(test_deit_distilled_model_args);
    RUN(test_vit_model_args);
    RUN(test_swin_model_args);
    RUN(test_model_args_contradictions);
    HARNESS_EXIT();
}
