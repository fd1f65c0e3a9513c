/* Random resized crops and flips (data/augment.h): identities, a planted linear ramp resized exactly,
 * agreement with a naive bilinear reference, determinism per seed and per view, the drawn boxes'
 * statistics, and refused arguments. */
#include <stdint.h>

#include "core/core.h"
#include "data/augment.h"
#include "harness.h"

static void fill_random(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = (float)(4.0 * vitq_i_augment_uniform(&s) - 2.0);
}

static vitq_i_augment options(double s0, double s1, double r0, double r1, int flip) {
    vitq_i_augment a = {s0, s1, r0, r1, flip};
    return a;
}

/* Scale and ratio [1, 1] on a square image: the whole image, resized by 1, is the image bit for bit. */
static void test_identity(void) {
    enum { C = 3, S = 17 };
    float src[C * S * S], dst[C * S * S];
    fill_random(src, C * S * S, 1);
    vitq_i_augment a = options(1, 1, 1, 1, 0);
    for (uint64_t seed = 0; seed < 5; seed++) {
        uint64_t rng = seed;
        CHECK_STATUS(vitq_i_augment_image(&a, src, C, S, S, dst, &rng), VITQ_OK);
        CHECK(memcmp(src, dst, sizeof src) == 0);
        rng = seed;
        vitq_i_augment_view v;
        CHECK_STATUS(vitq_i_augment_draw(&a, S, S, &rng, &v), VITQ_OK);
        CHECK(v.top == 0 && v.left == 0 && v.height == S && v.width == S && !v.flip && !v.fallback);
    }
}

/* A flip reverses every row of a non-square image; flipping twice gives the image back. */
static void test_flip(void) {
    enum { C = 2, H = 5, W = 8 };
    float src[C * H * W], once[C * H * W], twice[C * H * W];
    fill_random(src, C * H * W, 2);
    vitq_i_augment_view v = {.top = 0, .left = 0, .height = H, .width = W, .flip = 1};
    vitq_i_augment_apply(&v, src, C, H, W, once);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) CHECK(once[(c * H + y) * W + x] == src[(c * H + y) * W + (W - 1 - x)]);
    vitq_i_augment_apply(&v, once, C, H, W, twice);
    CHECK(memcmp(src, twice, sizeof src) == 0);
}

/* Bilinear interpolation reproduces a linear function: where an output pixel's source point lies
 * inside the crop (no edge clamping) its value is the ramp at that point. */
static void test_linear_ramp(void) {
    enum { C = 2, H = 20, W = 24 };
    const double ca[C] = {0.37, -0.12}, cb[C] = {-0.21, 0.29}, cc[C] = {0.5, -1.25};
    float src[C * H * W], dst[C * H * W];
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) src[(c * H + y) * W + x] = (float)(ca[c] * x + cb[c] * y + cc[c]);
    vitq_i_augment a = vitq_i_augment_defaults();
    int checked = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        uint64_t rng = seed;
        vitq_i_augment_view v;
        CHECK_STATUS(vitq_i_augment_draw(&a, H, W, &rng, &v), VITQ_OK);
        vitq_i_augment_apply(&v, src, C, H, W, dst);
        for (int y = 0; y < H; y++) {
            double sy = (y + 0.5) * v.height / H - 0.5;
            if (sy < 0 || sy > v.height - 1) continue;
            for (int x = 0; x < W; x++) {
                double sx = (x + 0.5) * v.width / W - 0.5;
                if (sx < 0 || sx > v.width - 1) continue;
                int ox = v.flip ? W - 1 - x : x;
                for (int c = 0; c < C; c++) {
                    double want = ca[c] * (v.left + sx) + cb[c] * (v.top + sy) + cc[c];
                    CHECK_NEAR(dst[(c * H + y) * W + ox], want, 1e-5);
                    checked++;
                }
            }
        }
    }
    CHECK(checked > 20 * C * H * W / 2); /* most pixels are interior */
}

/* The naive reference: crop into its own buffer, then each output pixel as the four-weight sum of
 * its neighbours at torch's clamped half-pixel source index, then the flip. */
static void reference(const vitq_i_augment_view *v, const float *src, int C, int H, int W, float *dst) {
    static float crop[4096];
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < v->height; y++)
            for (int x = 0; x < v->width; x++)
                crop[y * v->width + x] = src[(c * H + v->top + y) * W + v->left + x];
        for (int oy = 0; oy < H; oy++)
            for (int ox = 0; ox < W; ox++) {
                double sy = fmax(0.0, (oy + 0.5) * ((double)v->height / H) - 0.5);
                double sx = fmax(0.0, (ox + 0.5) * ((double)v->width / W) - 0.5);
                int y0 = (int)sy, x0 = (int)sx;
                int y1 = y0 + 1 < v->height ? y0 + 1 : v->height - 1, x1 = x0 + 1 < v->width ? x0 + 1 : v->width - 1;
                if (y0 > v->height - 1) y0 = v->height - 1;
                if (x0 > v->width - 1) x0 = v->width - 1;
                double wy = sy - (int)sy, wx = sx - (int)sx;
                double val = (1 - wy) * (1 - wx) * crop[y0 * v->width + x0] + (1 - wy) * wx * crop[y0 * v->width + x1] +
                             wy * (1 - wx) * crop[y1 * v->width + x0] + wy * wx * crop[y1 * v->width + x1];
                dst[(c * H + oy) * W + (v->flip ? W - 1 - ox : ox)] = (float)val;
            }
    }
}

static void test_matches_reference(void) {
    enum { C = 3, H = 13, W = 19 };
    float src[C * H * W], got[C * H * W], want[C * H * W];
    fill_random(src, C * H * W, 3);
    vitq_i_augment a = options(0.1, 1.0, 0.5, 2.0, 1);
    int flips = 0, fallbacks = 0;
    for (uint64_t seed = 100; seed < 140; seed++) {
        uint64_t rng = seed, rng2 = seed;
        vitq_i_augment_view v;
        CHECK_STATUS(vitq_i_augment_image(&a, src, C, H, W, got, &rng), VITQ_OK);
        CHECK_STATUS(vitq_i_augment_draw(&a, H, W, &rng2, &v), VITQ_OK);
        CHECK(rng == rng2); /* the image call draws exactly the view */
        reference(&v, src, C, H, W, want);
        double worst = 0;
        for (int i = 0; i < C * H * W; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
        CHECK_NEAR(worst, 0.0, 1e-6);
        flips += v.flip;
        fallbacks += v.fallback;
    }
    CHECK(flips > 5 && flips < 35); /* both ways were exercised */
    CHECK(fallbacks < 40);
}

static void test_determinism(void) {
    enum { C = 3, H = 16, W = 16, N = 5, K = 3 };
    static float src[N * C * H * W], a1[K * N * C * H * W], a2[K * N * C * H * W], one[C * H * W];
    fill_random(src, N * C * H * W, 4);
    vitq_i_augment a = vitq_i_augment_defaults();
    size_t img = (size_t)C * H * W;
    /* same seed, same output; different seeds, different views */
    int differ = 0;
    for (uint64_t seed = 0; seed < 10; seed++) {
        uint64_t r1 = seed, r2 = seed, r3 = seed + 1000;
        CHECK_STATUS(vitq_i_augment_image(&a, src, C, H, W, a1, &r1), VITQ_OK);
        CHECK_STATUS(vitq_i_augment_image(&a, src, C, H, W, a2, &r2), VITQ_OK);
        CHECK(memcmp(a1, a2, img * sizeof(float)) == 0);
        CHECK_STATUS(vitq_i_augment_image(&a, src, C, H, W, a2, &r3), VITQ_OK);
        differ += memcmp(a1, a2, img * sizeof(float)) != 0;
    }
    CHECK(differ == 10);
    /* the batch: any thread count, the same views, each that of its own stream */
    CHECK_STATUS(vitq_i_augment_batch(&a, src, N, C, H, W, 7, K, 42, 1, a1), VITQ_OK);
    CHECK_STATUS(vitq_i_augment_batch(&a, src, N, C, H, W, 7, K, 42, 2, a2), VITQ_OK);
    CHECK(memcmp(a1, a2, sizeof a1) == 0);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) {
            uint64_t rng = vitq_i_augment_stream(42, 7 + (uint64_t)i, (uint64_t)k);
            CHECK_STATUS(vitq_i_augment_image(&a, src + i * img, C, H, W, one, &rng), VITQ_OK);
            CHECK(memcmp(one, a1 + ((size_t)k * N + i) * img, sizeof one) == 0);
        }
    /* views of distinct (image, copy) pairs differ; a different seed changes them */
    CHECK(memcmp(a1, a1 + N * img, img * sizeof(float)) != 0);
    CHECK_STATUS(vitq_i_augment_batch(&a, src, N, C, H, W, 7, K, 43, 2, a2), VITQ_OK);
    CHECK(memcmp(a1, a2, img * sizeof(float)) != 0);
    /* a chunk of the set starting at image 2 (first = 9) gives the whole batch's views of those images */
    CHECK_STATUS(vitq_i_augment_batch(&a, src + 2 * img, 3, C, H, W, 9, 1, 42, 2, a2), VITQ_OK);
    CHECK(memcmp(a2, a1 + 2 * img, 3 * img * sizeof(float)) == 0);
}

/* Drawn fractions and log ratios lie in their ranges, the box's area is the fraction up to the rounding
 * of its sides, and with a square image and ratio 1 (nothing rejected) the fraction is uniform. */
static void test_box_statistics(void) {
    const int S = 224, draws = 4000;
    vitq_i_augment a = options(0.2, 0.9, 1, 1, 1);
    uint64_t rng = 5;
    double sum = 0, top_pos = 0, left_pos = 0;
    int below = 0, flips = 0, slack = 0;
    for (int t = 0; t < draws; t++) {
        vitq_i_augment_view v;
        CHECK_STATUS(vitq_i_augment_draw(&a, S, S, &rng, &v), VITQ_OK);
        CHECK(!v.fallback && v.area_fraction >= 0.2 && v.area_fraction <= 0.9 && v.log_ratio == 0.0);
        double side = sqrt(v.area_fraction) * S;
        CHECK(fabs(v.width - side) <= 0.5 && v.height == v.width);
        CHECK(v.top >= 0 && v.left >= 0 && v.top + v.height <= S && v.left + v.width <= S);
        sum += v.area_fraction;
        below += v.area_fraction < 0.375; /* the lower quarter of the range */
        flips += v.flip;
        if (v.height < S) { /* where the box sits in the room it has: uniform, so 1/2 on average */
            top_pos += (double)v.top / (S - v.height);
            left_pos += (double)v.left / (S - v.width);
            slack++;
        }
    }
    CHECK_NEAR(sum / draws, 0.55, 0.015);   /* sd of the mean 0.0032 */
    CHECK(slack > draws / 2);
    CHECK_NEAR(top_pos / slack, 0.5, 0.03); /* sd 0.005 */
    CHECK_NEAR(left_pos / slack, 0.5, 0.03);
    CHECK_NEAR((double)below / draws, 0.25, 0.03);
    CHECK_NEAR((double)flips / draws, 0.5, 0.04);

    /* the defaults on a non-square image: every box inside, its area the drawn fraction's up to rounding */
    a = vitq_i_augment_defaults();
    const int H = 96, W = 128;
    int accepted = 0;
    for (int t = 0; t < draws; t++) {
        vitq_i_augment_view v;
        CHECK_STATUS(vitq_i_augment_draw(&a, H, W, &rng, &v), VITQ_OK);
        CHECK(v.top >= 0 && v.left >= 0 && v.height > 0 && v.width > 0 && v.top + v.height <= H &&
              v.left + v.width <= W);
        if (v.fallback) continue;
        accepted++;
        CHECK(v.area_fraction >= 0.35 && v.area_fraction <= 1.0);
        CHECK(v.log_ratio >= log(0.75) && v.log_ratio <= log(4.0 / 3.0));
        double sw = sqrt(v.area_fraction * H * W * exp(v.log_ratio)), sh = sqrt(v.area_fraction * H * W / exp(v.log_ratio));
        double area = (double)v.width * v.height;
        CHECK(area >= (sw - 0.5) * (sh - 0.5) - 1e-9 && area <= (sw + 0.5) * (sh + 0.5) + 1e-9);
    }
    CHECK(accepted > draws * 9 / 10);

    /* nothing fits (ratio 2 at full area of a square): torchvision's central crop with the ratio clamped */
    a = options(1, 1, 2, 2, 0);
    vitq_i_augment_view v;
    CHECK_STATUS(vitq_i_augment_draw(&a, 10, 10, &rng, &v), VITQ_OK);
    CHECK(v.fallback && v.width == 10 && v.height == 5 && v.top == 2 && v.left == 0);
    a = options(1, 1, 0.25, 0.5, 0);
    CHECK_STATUS(vitq_i_augment_draw(&a, 8, 12, &rng, &v), VITQ_OK);
    CHECK(v.fallback && v.height == 8 && v.width == 4 && v.top == 0 && v.left == 4);
}

static void test_bad_arguments(void) {
    float src[12] = {0}, dst[12];
    uint64_t rng = 1;
    vitq_i_augment ok = vitq_i_augment_defaults(), a;
    vitq_i_augment_view v;
    CHECK_STATUS(vitq_i_augment_check(NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_image(NULL, src, 1, 3, 4, dst, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_image(&ok, NULL, 1, 3, 4, dst, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "src") != NULL);
    CHECK_STATUS(vitq_i_augment_image(&ok, src, 1, 3, 4, NULL, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_image(&ok, src, 1, 3, 4, dst, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "rng") != NULL);
    CHECK_STATUS(vitq_i_augment_image(&ok, src, 1, 3, 4, src, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_image(&ok, src, 0, 3, 4, dst, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_image(&ok, src, 1, -3, 4, dst, &rng), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_draw(&ok, 3, 0, &rng, &v), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_draw(&ok, 3, 4, &rng, NULL), VITQ_ERR_INVALID_ARGUMENT);
    const double bad_scale[][2] = {{0, 1}, {-0.1, 0.5}, {0.5, 1.01}, {0.8, 0.6}, {NAN, 1}};
    for (size_t i = 0; i < sizeof bad_scale / sizeof bad_scale[0]; i++) {
        a = options(bad_scale[i][0], bad_scale[i][1], 0.75, 4.0 / 3.0, 1);
        CHECK_STATUS(vitq_i_augment_image(&a, src, 1, 3, 4, dst, &rng), VITQ_ERR_OUT_OF_RANGE);
        CHECK(strstr(vitq_last_error(), "scale_min") != NULL);
    }
    const double bad_ratio[][2] = {{0, 1}, {1.5, 1.2}, {0.5, INFINITY}, {-1, 2}, {0.5, NAN}};
    for (size_t i = 0; i < sizeof bad_ratio / sizeof bad_ratio[0]; i++) {
        a = options(0.5, 1, bad_ratio[i][0], bad_ratio[i][1], 1);
        CHECK_STATUS(vitq_i_augment_draw(&a, 3, 4, &rng, &v), VITQ_ERR_OUT_OF_RANGE);
        CHECK(strstr(vitq_last_error(), "ratio_min") != NULL);
    }
    a = options(0.5, 1, 1, 1, 2);
    CHECK_STATUS(vitq_i_augment_check(&a), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "flip") != NULL);
    CHECK_STATUS(vitq_i_augment_batch(&ok, src, 0, 1, 3, 4, 0, 1, 1, 1, dst), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_batch(&ok, src, 1, 1, 3, 4, 0, 0, 1, 1, dst), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_batch(&ok, src, SIZE_MAX / 2, 1, 3, 4, 0, 4, 1, 1, dst), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_batch(&ok, NULL, 1, 1, 3, 4, 0, 1, 1, 1, dst), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_augment_batch(&ok, src, 1, 1, 3, 4, 0, 1, 1, 1, dst), VITQ_OK);
    /* a valid 1 x 1 image survives any options */
    a = options(0.01, 0.02, 0.1, 10, 1);
    float px = 3.5f, out = 0;
    CHECK_STATUS(vitq_i_augment_image(&a, &px, 1, 1, 1, &out, &rng), VITQ_OK);
    CHECK(out == 3.5f);
}

int main(void) {
    RUN(test_identity);
    RUN(test_flip);
    RUN(test_linear_ramp);
    RUN(test_matches_reference);
    RUN(test_determinism);
    RUN(test_box_statistics);
    RUN(test_bad_arguments);
    HARNESS_EXIT();
}
