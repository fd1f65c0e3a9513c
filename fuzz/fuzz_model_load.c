/* Fuzz target: vitq_model_load_memory, the public path every checkpoint takes (safetensors, config.json
 * and preprocessor_config.json resolution, model building, quantized files, torch.save .pth files), then
 * a forward pass.
 *
 * Input layout (fuzz/make_corpus.py writes seeds in it):
 *   byte 0      flags: bits 0-1 override set (none, heads+gelu, image size+eps, mean/std),
 *               bit 2 simulated execution, bit 3 fail one allocation (number from byte 2),
 *               bit 4 no config text at all, bit 5 no name, bits 6-7 the weights: 0 the rest of
 *               the input, else a fixed test fixture (1 odd-vit-timm-tanh-bf16, 2 odd-swin-timm-old,
 *               3 odd-vit-hf), so that mutations go to the config files alone
 *   byte 1      override value
 *   byte 2      which allocation fails (with bit 3)
 *   bytes 3-4   L, little-endian: length of the config area that follows
 *   L bytes     config.json text, optionally '\0' and preprocessor_config.json text
 *   rest        the weights file (ignored with a fixture)
 * Checks: no crash, no leak (also through the counting allocator), a message for every failure, and a
 * loaded model runs: logits of two images equal, bit for bit, those of each image alone. */
#include "fuzz_common.h"

static const char *const fixtures[3] = {"tests/fixtures/models/odd-vit-timm-tanh-bf16/model.safetensors",
                                        "tests/fixtures/models/odd-swin-timm-old/model.safetensors",
                                        "tests/fixtures/models/odd-vit-hf/model.safetensors"};
static uint8_t *fixture_data[3];
static size_t fixture_size[3];

/* The fixtures are read once; fuzz/run.sh runs targets from the repository root. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(fixtures[i], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_model_load: %s missing: inputs naming it use their own bytes\n", fixtures[i]);
            continue;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        fixture_data[i] = n > 0 ? malloc((size_t)n) : NULL;
        if (fixture_data[i] && fread(fixture_data[i], 1, (size_t)n, f) == (size_t)n) fixture_size[i] = (size_t)n;
        fclose(f);
    }
    return 0;
}

static char *dup_text(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    FUZZ_ASSERT(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void set_overrides(vitq_model_options *o, unsigned which, unsigned v) {
    if (which == 1) {
        o->num_heads = (int32_t)(v & 15);
        o->gelu = (int32_t)((v >> 4) & 3);
    } else if (which == 2) {
        o->image_size = (int32_t)v;
        o->layer_norm_eps = (v & 1) ? 1e-6f : 1e-12f;
    } else if (which == 3) {
        o->num_mean = (int32_t)(v % 5);
        o->num_std = (int32_t)((v >> 3) % 5);
        for (int i = 0; i < VITQ_MAX_CHANNELS; i++) {
            o->mean[i] = 0.25f * (float)i;
            o->std[i] = (v & 0x80) ? 0.0f : 0.5f + (float)i;
        }
    }
}

/* Logits of [a, b] must equal logits of a then of b (vitq_model_forward: results do not depend on n). */
static void check_model(const vitq_model *model) {
    size_t classes = 0;
    float *two = fuzz_forward(model, 2, &classes);
    if (!two) return;
    float *one = fuzz_forward(model, 1, &classes);
    if (one) {
        if (memcmp(one, two, classes * sizeof *one) != 0) {
            fprintf(stderr, "fuzz: logits of image 0 differ between a batch of 1 and a batch of 2\n");
            abort();
        }
        free(one);
    }
    free(two);
    for (int h = 0; h < VITQ_HPARAM_COUNT; h++) {
        vitq_source src = VITQ_SOURCE_NONE;
        FUZZ_ASSERT(vitq_model_hparam_source(model, (vitq_hparam)h, &src) == VITQ_OK);
        FUZZ_ASSERT(vitq_source_string(src) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    unsigned flags = data[0], value = data[1], fail = data[2];
    size_t area = (size_t)data[3] | (size_t)data[4] << 8;
    data += 5;
    size -= 5;
    if (area > size) area = size;
    const uint8_t *nul = memchr(data, 0, area);
    size_t config_len = nul ? (size_t)(nul - data) : area;
    char *config = dup_text(data, config_len);
    char *preproc = nul ? dup_text(nul + 1, area - config_len - 1) : NULL;

    fuzz_alloc_state state;
    vitq_allocator alloc = fuzz_allocator(&state, (flags & 8) ? 1 + fail * 4u : 0);
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &alloc;
    o.execution = (flags & 4) ? VITQ_EXECUTION_SIMULATED : VITQ_EXECUTION_AUTO;
    o.config_json = (flags & 16) ? NULL : config;
    o.preprocessor_json = preproc;
    set_overrides(&o, flags & 3, value);

    const uint8_t *weights = data + area;
    size_t weights_size = size - area;
    unsigned fixed = flags >> 6;
    if (fixed && fixture_size[fixed - 1]) {
        weights = fixture_data[fixed - 1];
        weights_size = fixture_size[fixed - 1];
    }
    vitq_model *model = NULL;
    vitq_i_error_clear();
    vitq_status st = vitq_model_load_memory(weights, weights_size, (flags & 32) ? NULL : "fuzz.safetensors", &o,
                                            &model);
    fuzz_check_status(st);
    FUZZ_ASSERT((st == VITQ_OK) == (model != NULL));
    if (model) {
        check_model(model);
        vitq_model_free(model);
    }
    if (state.live != 0) fprintf(stderr, "fuzz: %ld blocks of the model's allocator not freed\n", state.live);
    FUZZ_ASSERT(state.live == 0);
    free(config);
    free(preproc);
    return 0;
}
