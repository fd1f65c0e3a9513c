/* The calibrator handle (vitq.h): configuration and images (calibrator.c), the run (run.c). */
#ifndef VITQ_CALIB_CALIBRATOR_H
#define VITQ_CALIB_CALIBRATOR_H

#include "calib/method.h"

#define VITQ_I_FEED_BATCH 8 /* images per forward pass of a calibration pass: the unit of progress reports */

struct vitq_calibrator {
    vitq_allocator user_alloc; /* what the caller gave (or the model's) */
    vitq_allocator alloc;      /* the same, counting bytes for the stats */
    size_t live, peak;
    const vitq_model *model;
    vitq_calibrator_options opts;
    const vitq_i_method *method; /* NULL: the scheme of opts names every point's quantizer */
    const vitq_scheme *scheme;   /* that scheme (no method) */
    double method_options[VITQ_I_MAX_METHOD_OPTIONS];
    vitq_i_point_list list;
    vitq_i_point_cfg *cfg;
    unsigned char *user_set; /* [points]: changed by vitq_calibrator_set, kept when method options change */
    float *observed; /* [2 * points]: min, max of the last run */
    float *images;
    size_t num_images, capacity, per_image;
    vitq_calibrator_stats stats;
};

#endif
