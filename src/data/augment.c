/* Random resized crops and horizontal flips of normalised float images (torchvision's
 * RandomResizedCrop.get_params, its tensor resize without antialiasing, RandomHorizontalFlip). */
#include <math.h>

#include "data/augment.h"
#include "kernels/parallel.h"

#define GOLDEN 0x9E3779B97F4A7C15ull
/* torchvision's number of tries before the central-crop fallback. */
#define ATTEMPTS 10

vitq_i_augment vitq_i_augment_defaults(void) {
    /* Ratio as torchvision. Scale from 0.35 rather than torchvision's 0.08: calibration images are few
     * and reconstruction matches the quantized block to the float one on them, so the views should
     * stay inside the distribution the model meets at inference (whole, centred objects); an 8% crop
     * blown up 12x is mostly blur and background, which trains the rounding on inputs it never sees. */
    vitq_i_augment a = {.scale_min = 0.35, .scale_max = 1.0, .ratio_min = 3.0 / 4.0, .ratio_max = 4.0 / 3.0, .flip = 1};
    return a;
}

vitq_status vitq_i_augment_check(const vitq_i_augment *a) {
    if (!a) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: options are NULL");
    /* written as negations so that NaN fails too */
    if (!(a->scale_min > 0.0) || !(a->scale_max <= 1.0) || !(a->scale_min <= a->scale_max))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "augmentation: scale_min %g, scale_max %g: need 0 < scale_min <= scale_max <= 1",
                           a->scale_min, a->scale_max);
    if (!(a->ratio_min > 0.0) || !(a->ratio_max < INFINITY) || !(a->ratio_min <= a->ratio_max))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "augmentation: ratio_min %g, ratio_max %g: need 0 < ratio_min <= ratio_max, finite",
                           a->ratio_min, a->ratio_max);
    if (a->flip != 0 && a->flip != 1)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "augmentation: flip %d: need 0 or 1", a->flip);
    return VITQ_OK;
}

/* splitmix64's finaliser: a bijective mixer with no weak bits. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t vitq_i_augment_next(uint64_t *rng) { return mix64(*rng += GOLDEN); }

double vitq_i_augment_uniform(uint64_t *rng) { return (double)(vitq_i_augment_next(rng) >> 11) * 0x1p-53; }

uint64_t vitq_i_augment_stream(uint64_t seed, uint64_t image, uint64_t view) {
    /* mixing after each input keeps (image, view) and (view, image) apart, and nearby seeds unrelated */
    return mix64(mix64(mix64(seed ^ GOLDEN) ^ image) + view);
}

/* An integer uniform in [0, n]. */
static int uniform_int(uint64_t *rng, int n) {
    int k = (int)floor(vitq_i_augment_uniform(rng) * ((double)n + 1.0));
    return k > n ? n : k;
}

/* The draw of a checked a on a checked size. Python's round() is half-to-even: rint in the default
 * rounding mode. Sizes are compared as doubles before any cast (a huge ratio gives a huge side). */
static void draw_view(const vitq_i_augment *a, int height, int width, uint64_t *rng, vitq_i_augment_view *v) {
    double area = (double)height * (double)width;
    double log_min = log(a->ratio_min), log_max = log(a->ratio_max);
    *v = (vitq_i_augment_view){0};
    int found = 0;
    for (int t = 0; t < ATTEMPTS && !found; t++) {
        double frac = a->scale_min + (a->scale_max - a->scale_min) * vitq_i_augment_uniform(rng);
        double log_ratio = log_min + (log_max - log_min) * vitq_i_augment_uniform(rng);
        double ratio = exp(log_ratio);
        double w = rint(sqrt(area * frac * ratio)), h = rint(sqrt(area * frac / ratio));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            v->width = (int)w;
            v->height = (int)h;
            v->area_fraction = frac;
            v->log_ratio = log_ratio;
            v->top = uniform_int(rng, height - v->height);
            v->left = uniform_int(rng, width - v->width);
            found = 1;
        }
    }
    if (!found) {
        /* the central crop of the image with its ratio clamped to the range; at least one pixel,
         * which torchvision does not guard for extreme ratios */
        double in_ratio = (double)width / (double)height, w = width, h = height;
        if (in_ratio < a->ratio_min)
            h = rint(w / a->ratio_min);
        else if (in_ratio > a->ratio_max)
            w = rint(h * a->ratio_max);
        v->width = w < 1 ? 1 : (int)w;
        v->height = h < 1 ? 1 : (int)h;
        v->top = (height - v->height) / 2;
        v->left = (width - v->width) / 2;
        v->fallback = 1;
    }
    v->flip = a->flip && (vitq_i_augment_next(rng) >> 63);
}

static vitq_status check_image(int channels, int height, int width) {
    size_t count;
    if (channels <= 0 || height <= 0 || width <= 0 ||
        !vitq_i_mul3_size((size_t)channels, (size_t)height, (size_t)width, &count))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "augmentation: image %d x %d x %d (channels x height x width): each must be positive "
                           "and their product fit in memory", channels, height, width);
    return VITQ_OK;
}

vitq_status vitq_i_augment_draw(const vitq_i_augment *a, int height, int width, uint64_t *rng,
                                vitq_i_augment_view *view) {
    vitq_status st = vitq_i_augment_check(a);
    if (st) return st;
    if ((st = check_image(1, height, width))) return st;
    if (!rng) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: rng is NULL");
    if (!view) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: view is NULL");
    draw_view(a, height, width, rng, view);
    return VITQ_OK;
}

/* Where output index o of `out` samples a crop side of `in` pixels: the two neighbours and the weight
 * of the second. torch's half-pixel source index, clamped to [0, in - 1]; the crop is never larger
 * than the output, so resizing only enlarges and antialiasing would change nothing. */
static void sample_at(int o, int in, int out, int *lo, int *hi, double *t) {
    double s = ((double)o + 0.5) * ((double)in / (double)out) - 0.5;
    if (s < 0) s = 0;
    if (s > in - 1) s = in - 1;
    *lo = (int)s;
    *hi = *lo + (*lo < in - 1);
    *t = s - *lo;
}

void vitq_i_augment_apply(const vitq_i_augment_view *v, const float *src, int channels, int height, int width,
                          float *dst) {
    size_t plane = (size_t)height * (size_t)width;
    for (int c = 0; c < channels; c++) {
        const float *crop = src + (size_t)c * plane + (size_t)v->top * width + v->left;
        for (int y = 0; y < height; y++) {
            int y0, y1;
            double ty;
            sample_at(y, v->height, height, &y0, &y1, &ty);
            const float *r0 = crop + (size_t)y0 * width, *r1 = crop + (size_t)y1 * width;
            float *out = dst + (size_t)c * plane + (size_t)y * width;
            for (int x = 0; x < width; x++) {
                int x0, x1;
                double tx;
                sample_at(x, v->width, width, &x0, &x1, &tx);
                /* lerps of the form a + t (b - a): a weight of 0 gives a exactly (an identity crop) */
                double top = r0[x0] + tx * ((double)r0[x1] - r0[x0]);
                double bottom = r1[x0] + tx * ((double)r1[x1] - r1[x0]);
                out[v->flip ? width - 1 - x : x] = (float)(top + ty * (bottom - top));
            }
        }
    }
}

vitq_status vitq_i_augment_image(const vitq_i_augment *a, const float *src, int channels, int height, int width,
                                 float *dst, uint64_t *rng) {
    vitq_status st = vitq_i_augment_check(a);
    if (st) return st;
    if ((st = check_image(channels, height, width))) return st;
    if (!src || !dst || !rng)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: %s is NULL", !src ? "src" : !dst ? "dst" : "rng");
    if (src == dst) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: dst is src (cannot work in place)");
    vitq_i_augment_view v;
    draw_view(a, height, width, rng, &v);
    vitq_i_augment_apply(&v, src, channels, height, width, dst);
    return VITQ_OK;
}

typedef struct batch_ctx {
    const vitq_i_augment *a;
    const float *src;
    float *dst;
    size_t n, image;
    int channels, height, width;
    uint64_t first, seed;
} batch_ctx;

static void batch_task(void *ctx, int64_t item, int worker) {
    (void)worker;
    const batch_ctx *b = ctx;
    size_t k = (size_t)item / b->n, i = (size_t)item % b->n;
    uint64_t rng = vitq_i_augment_stream(b->seed, b->first + i, k);
    vitq_i_augment_view v;
    draw_view(b->a, b->height, b->width, &rng, &v);
    vitq_i_augment_apply(&v, b->src + i * b->image, b->channels, b->height, b->width, b->dst + (size_t)item * b->image);
}

vitq_status vitq_i_augment_batch(const vitq_i_augment *a, const float *src, size_t n, int channels, int height,
                                 int width, uint64_t first, int copies, uint64_t seed, int threads, float *dst) {
    vitq_status st = vitq_i_augment_check(a);
    if (st) return st;
    if ((st = check_image(channels, height, width))) return st;
    if (!src || !dst) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: %s is NULL", !src ? "src" : "dst");
    size_t image = (size_t)channels * (size_t)height * (size_t)width, views, total;
    if (n == 0 || copies <= 0 || !vitq_i_mul_size(n, (size_t)copies, &views) || views > (size_t)INT64_MAX ||
        !vitq_i_mul_size(views, image, &total))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "augmentation: %zu images x %d copies: both must be positive and the output fit in "
                           "memory", n, copies);
    if (src == dst) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "augmentation: dst is src (cannot work in place)");
    batch_ctx b = {a, src, dst, n, image, channels, height, width, first, seed};
    vitq_i_parallel_for(vitq_i_resolve_threads(threads), (int64_t)views, batch_task, &b);
    return VITQ_OK;
}
