/* Data augmentation of normalised float images (C x H x W planes, as the calibration images are held):
 * random resized crops and horizontal flips with torchvision's RandomResizedCrop and
 * RandomHorizontalFlip semantics, for block reconstruction and quantization-aware training. Everything
 * random comes from a seeded splitmix64 stream, so a seed fixes every view. */
#ifndef VITQ_DATA_AUGMENT_H
#define VITQ_DATA_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct vitq_i_augment {
    double scale_min, scale_max; /* area of the crop as a fraction of the image's, in (0, 1] */
    double ratio_min, ratio_max; /* aspect ratio w / h of the crop, drawn log-uniformly; > 0 */
    int flip;                    /* 1: flip horizontally with probability 1/2; 0: never */
} vitq_i_augment;

/* One drawn view of an image: the crop box (rows [top, top + height), columns [left, left + width)),
 * whether the resized crop is flipped, and what was drawn for the accepted box (for tests and logs). */
typedef struct vitq_i_augment_view {
    int top, left, height, width;
    int flip;
    int fallback;         /* 1: all 10 attempts failed, the box is the central crop */
    double area_fraction; /* the accepted attempt's drawn fraction (0 for the fallback) */
    double log_ratio;     /* the accepted attempt's drawn log aspect ratio (0 for the fallback) */
} vitq_i_augment_view;

/* Crops of 35% to 100% of the area, ratios 3/4 to 4/3, flips on. */
vitq_i_augment vitq_i_augment_defaults(void);

/* VITQ_ERR_INVALID_ARGUMENT for a NULL a, VITQ_ERR_OUT_OF_RANGE for a scale range not inside (0, 1],
 * a ratio range not positive and finite, either range empty (min > max), or flip not 0 or 1; the
 * message names the member. */
vitq_status vitq_i_augment_check(const vitq_i_augment *a);

/* The next 64 bits of a splitmix64 stream, and a double uniform in [0, 1) from its top 53 bits. */
uint64_t vitq_i_augment_next(uint64_t *rng);
double vitq_i_augment_uniform(uint64_t *rng);

/* The stream state of view `view` of image `image` under `seed`: a hash of the three, so each view's
 * draws are independent of every other view's and of the order views are made in. */
uint64_t vitq_i_augment_stream(uint64_t seed, uint64_t image, uint64_t view);

/* Draw a view of a height x width image from *rng (RandomResizedCrop.get_params, then one draw for
 * the flip when a->flip). Checks a, the sizes and rng. */
vitq_status vitq_i_augment_draw(const vitq_i_augment *a, int height, int width, uint64_t *rng,
                                vitq_i_augment_view *view);

/* dst = the crop of `src` given by v, resized back to height x width bilinearly (half-pixel centres,
 * align_corners false, samples clamped to the crop's edge), flipped when v->flip. v must be a box
 * inside the image (as vitq_i_augment_draw makes); dst must not overlap src. Cannot fail. */
void vitq_i_augment_apply(const vitq_i_augment_view *v, const float *src, int channels, int height, int width,
                          float *dst);

/* Draw a view from *rng and apply it: dst (channels x height x width) is an augmented src. */
vitq_status vitq_i_augment_image(const vitq_i_augment *a, const float *src, int channels, int height, int width,
                                 float *dst, uint64_t *rng);

/* `copies` augmented views of each of the n images src[i] (channels x height x width each): view k of
 * image i goes to dst image k * n + i (so dst's first n images are one view of the whole set) and is
 * drawn from vitq_i_augment_stream(seed, first + i, k). `first` is the index of src[0] in the caller's
 * whole set, so splitting a set into chunks gives the same views. The result does not depend on
 * `threads` (0: all). dst holds n * copies images and must not overlap src. */
vitq_status vitq_i_augment_batch(const vitq_i_augment *a, const float *src, size_t n, int channels, int height,
                                 int width, uint64_t first, int copies, uint64_t seed, int threads, float *dst);

#endif
