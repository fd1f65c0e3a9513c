/* The public functions of the calibrator and the report that take or give model handles: the float
 * network goes down to calib/, the result comes back as file bytes and is loaded like any model. */
#include "api/model.h"
#include "calib/calibrator.h"
#include "calib/report.h"

vitq_status vitq_calibrator_create(const vitq_model *model, const vitq_calibrator_options *options,
                                   vitq_calibrator **out) {
    if (!out || !model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_create: NULL argument");
    *out = NULL;
    if (model->quant)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: the model is already quantized; calibrate its float model",
                           model->net->name);
    return vitq_i_calibrator_create(model->net, options, out);
}

vitq_status vitq_calibrator_run(vitq_calibrator *c, vitq_model **quantized) {
    if (!c || !quantized) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_calibrator_run: NULL argument");
    *quantized = NULL;
    double t0 = vitq_i_now_seconds();
    uint8_t *bytes = NULL;
    size_t size = 0;
    vitq_status st = vitq_i_calibrator_run(c, &bytes, &size);
    if (!st) {
        vitq_model_options mo;
        vitq_model_options_init(&mo);
        mo.allocator = &c->user_alloc;
        mo.registry = c->opts.registry;
        mo.num_threads = c->model->num_threads;
        st = vitq_i_model_load_bytes(&c->user_alloc, bytes, size, c->model->name, &mo, quantized);
    }
    vitq_i_free(&c->alloc, bytes);
    c->stats.images = c->num_images;
    c->stats.seconds = vitq_i_now_seconds() - t0;
    c->stats.peak_bytes = c->peak;
    return st;
}

vitq_status vitq_model_report(const vitq_model *ref, const vitq_model *qm, const vitq_dataset *ds, uint64_t first,
                              size_t n, vitq_report_row *rows, int32_t capacity, int32_t *count,
                              double *output_cosine) {
    if (!ref || !qm || !ds || !count || !output_cosine || (capacity > 0 && !rows) || capacity < 0 || n == 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_report: NULL argument or no images");
    if (ref->quant)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_report: reference %s is quantized", ref->net->name);
    if (!qm->quant)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_report: %s is not quantized", qm->net->name);
    return vitq_i_report(ref->net, qm->net, qm->quant, ds, first, n, rows, capacity, count, output_cosine,
                         &qm->progress);
}
