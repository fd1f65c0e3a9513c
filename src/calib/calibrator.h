/* The calibrator handle (vitq.h): configuration and images (calibrator.c), the run (calibrate.c, the
 * driver above the methods, which calls them through method.h). */
#ifndef VITQ_CALIB_CALIBRATOR_H
#define VITQ_CALIB_CALIBRATOR_H

#include "calib/method.h"

struct vitq_calibrator {
    vitq_allocator user_alloc; /* what the caller gave (or the model's) */
    vitq_allocator alloc;      /* the same, counting bytes for the stats */
    size_t live, peak;
    const vitq_i_net *model;
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
    const struct vitq_i_qat_job *qat; /* set by vitq_trainer_run for its run: train after calibrating */
};

/* QAT after a run's calibration (trainer_api.c): the stage's options, its training images, the teacher, where
 * each epoch's report goes, and the quantized model it starts from instead of calibrating (NULL: calibrate). */
typedef struct vitq_i_qat_job {
    const struct vitq_i_qat_options *options;
    const float *images;
    size_t n;
    const vitq_i_net *teacher;
    struct vitq_i_qat_epoch *report;
    const vitq_i_net *start_net;
    const vitq_i_qmodel *start_q;
} vitq_i_qat_job;

/* vitq_calibrator_create for the float network `model` (which must outlive the calibrator). */
vitq_status vitq_i_calibrator_create(const vitq_i_net *model, const vitq_calibrator_options *options,
                                     vitq_calibrator **out);
/* Calibrate on the fed images: the quantized model's file bytes into *bytes (from c->alloc). */
vitq_status vitq_i_calibrator_run(vitq_calibrator *c, uint8_t **bytes, size_t *size);

#endif
