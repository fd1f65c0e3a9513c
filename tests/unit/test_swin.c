/* Swin: window geometry against its definitions, golden logits of unseen-shape fixtures in the three
 * checkpoint layouts (timm >= 0.9, timm < 0.9, Hugging Face), and bad checkpoints. */
#include "harness.h"
#include "model/swin_geometry.h"
#include "model_fixtures.h"

static const char *const swin_fixtures[] = {"odd-swin-timm-new", "odd-swin-timm-old", "odd-swin-hf"};

/* ---- geometry --------------------------------------------------------------------------------- */

static void test_relative_index(void) {
    for (int w = 1; w <= 7; w++) {
        size_t n = (size_t)w * (size_t)w;
        int64_t rows = (int64_t)(2 * w - 1) * (2 * w - 1), centre = (int64_t)(w - 1) * (2 * w - 1) + (w - 1);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                int64_t r = vitq_i_swin_rel_index(w, i, j);
                CHECK(r >= 0 && r < rows);
                CHECK(r + vitq_i_swin_rel_index(w, j, i) == 2 * centre); /* (dy,dx) and (-dy,-dx) */
                /* the same displacement gives the same row, wherever the pair sits */
                int dy = (int)(i / (size_t)w) - (int)(j / (size_t)w), dx = (int)(i % (size_t)w) - (int)(j % (size_t)w);
                CHECK(r == (int64_t)(dy + w - 1) * (2 * w - 1) + (dx + w - 1));
            }
        CHECK(vitq_i_swin_rel_index(w, 0, 0) == centre);
    }
}

static void test_shift(void) {
    CHECK(vitq_i_swin_shift(0, 7, 14) == 0);
    CHECK(vitq_i_swin_shift(1, 7, 14) == 3);
    CHECK(vitq_i_swin_shift(3, 4, 16) == 2);
    CHECK(vitq_i_swin_shift(1, 7, 7) == 0); /* window covers the grid: no shift */
}

static void test_mask(void) {
    const int grid = 8, w = 4, shift = 2;
    size_t n = 16, windows = 4;
    float *mask = malloc(windows * n * n * sizeof(float));
    vitq_i_swin_fill_mask(grid, w, shift, mask);
    size_t masked[4] = {0};
    for (size_t k = 0; k < windows; k++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                float v = mask[(k * n + i) * n + j];
                CHECK(v == 0.0f || v == -100.0f);
                CHECK(v == mask[(k * n + j) * n + i]);
                if (i == j) CHECK(v == 0.0f);
                masked[k] += v != 0.0f;
            }
    /* Top-left window: one region. Top-right and bottom-left: two halves of 8 tokens (2 x 64 pairs
     * kept). Bottom-right: four quarters of 4 tokens (4 x 16 kept). */
    CHECK(masked[0] == 0);
    CHECK(masked[1] == 256 - 128 && masked[2] == 256 - 128);
    CHECK(masked[3] == 256 - 64);
    free(mask);
}

static void test_partition_round_trip(void) {
    const int grid = 6, w = 3;
    const size_t images = 2, dim = 3, tokens = 36;
    float *x = malloc(images * tokens * dim * sizeof(float)), *win = malloc(images * tokens * dim * sizeof(float));
    float *back = calloc(images * tokens * dim, sizeof(float));
    for (size_t i = 0; i < images * tokens * dim; i++) x[i] = (float)i;
    for (int shift = 0; shift <= 1; shift++) {
        vitq_i_swin_partition(x, images, grid, w, shift, dim, win);
        /* window 0, token 0 comes from grid (shift, shift) of image 0 (torch.roll by -shift) */
        CHECK(win[0] == x[((size_t)shift * grid + (size_t)shift) * dim]);
        /* window 1 of image 0 starts at grid column 3 */
        CHECK(win[9 * dim] == x[((size_t)shift * grid + (size_t)(3 + shift) % grid) * dim]);
        memset(back, 0, images * tokens * dim * sizeof(float));
        vitq_i_swin_unpartition_add(win, images, grid, w, shift, dim, back);
        CHECK(memcmp(back, x, images * tokens * dim * sizeof(float)) == 0);
    }
    free(x), free(win), free(back);
}

static void test_merge_order(void) {
    const int grid = 4;
    const size_t dim = 1;
    float in[16], out[16];
    for (int i = 0; i < 16; i++) in[i] = (float)i; /* value = y * 4 + x */
    vitq_i_swin_merge_gather(in, 1, grid, dim, out);
    /* merged token (0,1) = concat(in[0][2], in[1][2], in[0][3], in[1][3]) */
    CHECK(out[4] == 2 && out[5] == 6 && out[6] == 3 && out[7] == 7);
    /* merged token (1,0) = concat(in[2][0], in[3][0], in[2][1], in[3][1]) */
    CHECK(out[8] == 8 && out[9] == 12 && out[10] == 9 && out[11] == 13);
}

/* ---- fixtures --------------------------------------------------------------------------------- */

static void test_fixtures_golden(void) {
    for (size_t i = 0; i < sizeof swin_fixtures / sizeof swin_fixtures[0]; i++) check_fixture(swin_fixtures[i]);
}

static void test_info(void) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-timm-old", NULL, &m), VITQ_OK);
    if (!m) return;
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    CHECK(i.arch == VITQ_ARCH_SWIN && i.layout == VITQ_LAYOUT_TIMM_PRE09);
    CHECK(i.num_stages >= 2 && i.num_prefix_tokens == 0);
    int blocks = 0;
    for (int s = 0; s < i.num_stages; s++) blocks += i.stage_depth[s];
    CHECK(blocks == i.depth);
    CHECK(i.stage_grid[0] * i.patch_size == i.image_size);
    vitq_source src;
    CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_NUM_HEADS, &src), VITQ_OK);
    CHECK(src == VITQ_SOURCE_SHAPES);
    vitq_model_free(m);
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-hf", NULL, &m), VITQ_OK);
    if (m) {
        CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
        CHECK(i.layout == VITQ_LAYOUT_HF);
    }
    vitq_model_free(m);
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-timm-new", NULL, &m), VITQ_OK);
    if (m) {
        CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
        CHECK(i.layout == VITQ_LAYOUT_TIMM);
    }
    vitq_model_free(m);
}

/* Invariance to the batch an image is in and to the thread count (windows are per image). */
static void test_batch_invariance(void) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-timm-new", NULL, &m), VITQ_OK);
    uint64_t rows = 0, cols = 0;
    float *input = load_npy_f32(FIXTURES "odd-swin-timm-new/input.npy", &rows, &cols);
    CHECK(m && input);
    if (m && input) {
        vitq_model_info i;
        vitq_model_info_init(&i);
        vitq_model_get_info(m, &i);
        size_t k = (size_t)i.num_classes;
        float *all = malloc(rows * k * sizeof(float)), *one = malloc(k * sizeof(float));
        vitq_model_set_num_threads(m, 2);
        CHECK_STATUS(vitq_model_forward(m, input, rows, all), VITQ_OK);
        vitq_model_set_num_threads(m, 1);
        for (uint64_t r = 0; r < rows; r++) {
            CHECK_STATUS(vitq_model_forward(m, input + r * cols, 1, one), VITQ_OK);
            CHECK(memcmp(one, all + r * k, k * sizeof(float)) == 0);
        }
        free(all), free(one);
    }
    free(input);
    vitq_model_free(m);
}

/* ---- bad checkpoints -------------------------------------------------------------------------- */

static void test_bad_checkpoints(void) {
    /* from memory there is no config.json beside the weights: state what the shapes cannot say */
    vitq_model_options timm;
    vitq_model_options_init(&timm);
    timm.image_size = 32;
    const char *fx = "odd-swin-timm-new";
    defect none = {0};
    expect_defect(fx, &none, &timm, VITQ_OK, NULL);
    defect missing = {.drop = "layers.1.blocks.0.attn.relative_position_bias_table"};
    expect_defect(fx, &missing, &timm, VITQ_ERR_MISSING_TENSOR, "layers.1.blocks.0.attn.relative_position_bias_table");
    defect merge = {.drop = "layers.1.downsample.reduction.weight"};
    expect_defect(fx, &merge, &timm, VITQ_ERR_MISSING_TENSOR, "layers.1.downsample.reduction.weight");
    defect table = {.reshape = "layers.0.blocks.1.attn.relative_position_bias_table", .shape = "[2,49]"};
    expect_defect(fx, &table, &timm, VITQ_ERR_SHAPE, "relative_position_bias_table");
    defect extra = {.add = "layers.0.blocks.0.attn.something"};
    expect_defect(fx, &extra, &timm, VITQ_ERR_UNEXPECTED_TENSOR, "layers.0.blocks.0.attn.something");
    defect v2 = {.add = "layers.0.blocks.0.attn.logit_scale"};
    expect_defect(fx, &v2, &timm, VITQ_ERR_UNSUPPORTED, "logit_scale");
    defect no_head = {.drop = "head.fc.weight"};
    expect_defect(fx, &no_head, &timm, VITQ_ERR_MISSING_TENSOR, "head.fc.weight");
    /* without any source of the input size: refused, not guessed */
    expect_defect(fx, &none, NULL, VITQ_ERR_MISSING_CONFIG, "input size");
    /* timm < 0.9: the patch merging that feeds stage 1 is named at the end of stage 0; the stored
     * attn_mask tells the image size, so nothing else is needed */
    defect old_merge = {.drop = "layers.0.downsample.norm.weight"};
    expect_defect("odd-swin-timm-old", &none, NULL, VITQ_OK, NULL);
    expect_defect("odd-swin-timm-old", &old_merge, NULL, VITQ_ERR_MISSING_TENSOR, "layers.0.downsample.norm.weight");
    /* HF: a missing part of the fused qkv is named by its HF name */
    vitq_model_options hf;
    vitq_model_options_init(&hf);
    hf.config_json = "{\"model_type\":\"swin\",\"image_size\":40,\"layer_norm_eps\":1e-5}";
    defect hf_key = {.drop = "swin.encoder.layers.0.blocks.1.attention.self.key.weight"};
    expect_defect("odd-swin-hf", &hf_key, &hf, VITQ_ERR_MISSING_TENSOR, "attention.self.key.weight");
    defect hf_head = {.drop = "classifier.weight"};
    expect_defect("odd-swin-hf", &hf_head, &hf, VITQ_ERR_MISSING_TENSOR, "classifier.weight");
}

/* A stored relative position index that is not Swin's, and an image size the stored mask contradicts. */
static void test_stored_buffers_checked(void) {
    vitq_model *m = NULL;
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.image_size = 48; /* twice the fixture's: grid and windows change, the stored attn_mask does not */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-timm-old", &o, &m), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "attn_mask") != NULL);
    vitq_model_options_init(&o);
    o.image_size = 26; /* not a multiple of the patch grid the windows need */
    vitq_status st = vitq_model_load_file(FIXTURES "odd-swin-timm-new", &o, &m);
    CHECK(st == VITQ_ERR_CONFIG || st == VITQ_ERR_UNSUPPORTED);
    CHECK(strstr(vitq_last_error(), "26") != NULL);
    vitq_model_options_init(&o);
    o.num_heads = 7; /* the tables say otherwise */
    CHECK_STATUS(vitq_model_load_file(FIXTURES "odd-swin-timm-new", &o, &m), VITQ_ERR_CONFIG);
    CHECK(m == NULL);
}

/* Every allocation of loading and running a Swin failing in turn: OUT_OF_MEMORY, no leak. */
static void test_allocation_failures(void) {
    check_allocation_failures("odd-swin-timm-old", count_allocations("odd-swin-timm-old"));
    check_allocation_failures("odd-swin-hf", count_allocations("odd-swin-hf"));
}

int main(void) {
    RUN(test_relative_index);
    RUN(test_shift);
    RUN(test_mask);
    RUN(test_partition_round_trip);
    RUN(test_merge_order);
    RUN(test_fixtures_golden);
    RUN(test_info);
    RUN(test_batch_invariance);
    RUN(test_bad_checkpoints);
    RUN(test_stored_buffers_checked);
    RUN(test_allocation_failures);
    HARNESS_EXIT();
}
