/* The public trainer (vitq.h, "Quantization-aware training"): a calibrator's run with the QAT stage attached
 * (calib/qat.h). The trainer holds the options, the training images of a run and each epoch's report. */
#include <stdio.h>
#include <string.h>

#include "api/model.h"
#include "calib/calibrator.h"
#include "calib/qat.h"
#include "core/abi.h"
#include "data/dataset.h"

#define V1_TRAINER_OPTIONS VITQ_I_V1_SIZE(vitq_trainer_options, resume_path)
#define V1_TRAINER_EPOCH VITQ_I_V1_SIZE(vitq_trainer_epoch, seconds)

struct vitq_trainer {
    vitq_calibrator *cal;
    int own_cal;                /* vitq_trainer_create_from: the trainer made cal (over start) and frees it */
    const vitq_model *start;   /* NULL: cal calibrates the start */
    const vitq_i_net *teacher;
    vitq_trainer_options opts;
    vitq_i_qat_epoch *epochs; /* [opts.epochs] of the last run */
    int32_t done;              /* epochs reported by the last run */
};

void vitq_trainer_options_init(vitq_trainer_options *o) {
    if (!o) return;
    vitq_i_qat_options d = vitq_i_qat_defaults();
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->epochs = d.epochs, o->batch = d.batch, o->crops = d.crops, o->micro_batch = 32;
    o->learning_rate = d.lr, o->weight_decay = d.weight_decay, o->warmup_epochs = d.warmup;
    o->regularizer = d.obr_lambda, o->temperature = d.temperature;
}

void vitq_trainer_epoch_init(vitq_trainer_epoch *e) {
    if (!e) return;
    memset(e, 0, sizeof *e);
    e->struct_size = sizeof *e;
}

vitq_status vitq_trainer_create(vitq_calibrator *cal, const vitq_model *teacher, const vitq_trainer_options *options,
                                vitq_trainer **out) {
    if (!out || !cal) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_create: NULL argument");
    *out = NULL;
    vitq_trainer_options o;
    vitq_trainer_options_init(&o);
    if (options) {
        vitq_status st = vitq_i_check_struct_size(options->struct_size, V1_TRAINER_OPTIONS, "vitq_trainer_create",
                                                  "vitq_trainer_options");
        if (st) return st;
        vitq_i_struct_in(&o, sizeof o, options, options->struct_size);
    }
    if (teacher && teacher->quant)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_create: teacher %s is quantized; QAT distils "
                                                      "from a float model", teacher->net->name);
    if (o.epochs < 1 || o.epochs > 100000)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "vitq_trainer_create: epochs %d (1..100000)", o.epochs);
    vitq_trainer *t = vitq_i_calloc(&cal->alloc, 1, sizeof *t);
    if (!t) return vitq_i_oom("trainer", sizeof *t);
    t->epochs = vitq_i_calloc(&cal->alloc, (size_t)o.epochs, sizeof *t->epochs);
    if (!t->epochs) {
        vitq_i_free(&cal->alloc, t);
        return vitq_i_oom("trainer epochs", (size_t)o.epochs * sizeof *t->epochs);
    }
    t->cal = cal, t->teacher = teacher ? teacher->net : NULL, t->opts = o;
    *out = t;
    return VITQ_OK;
}

vitq_status vitq_trainer_create_from(const vitq_model *start, const vitq_model *teacher,
                                     const vitq_trainer_options *options, vitq_trainer **out) {
    if (!out || !start || !teacher)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_create_from: NULL argument%s",
                           out && start && !teacher ? " (the teacher is required: a quantized start keeps no float "
                                                      "weights)" : "");
    *out = NULL;
    if (!start->quant)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_create_from: start %s is not quantized; train "
                           "a float model with vitq_trainer_create over a calibrator", start->net->name);
    if (start->quant->nl_count)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "vitq_trainer_create_from: start %s has integer non-linear "
                           "operators, whose measurements training would leave stale; start from the model quantized "
                           "without them", start->net->name);
    vitq_calibrator_options co; /* the teacher's input and classes are checked by the run (calib/qat.c) */
    vitq_calibrator_options_init(&co);
    co.seed = options && options->struct_size >= VITQ_I_V1_SIZE(vitq_trainer_options, seed) ? options->seed : 0;
    vitq_calibrator *cal = NULL;
    vitq_status st = vitq_i_calibrator_create(start->net, &co, &cal);
    if (!st) st = vitq_trainer_create(cal, teacher, options, out);
    if (st) {
        vitq_calibrator_free(cal);
        return st;
    }
    (*out)->own_cal = 1, (*out)->start = start;
    return VITQ_OK;
}

void vitq_trainer_free(vitq_trainer *t) {
    if (!t) return;
    vitq_calibrator *cal = t->cal;
    vitq_i_free(&cal->alloc, t->epochs);
    int own = t->own_cal;
    vitq_i_free(&cal->alloc, t);
    if (own) vitq_calibrator_free(cal);
}

/* The run of the calibrator with QAT attached; its progress callback the trainer's when it has one. */
static vitq_status run(vitq_trainer *t, const float *images, size_t n, FILE *log, vitq_model **quantized) {
    const vitq_trainer_options *o = &t->opts;
    vitq_i_qat_options q = vitq_i_qat_defaults();
    q.epochs = o->epochs, q.batch = o->batch, q.crops = o->crops, q.micro = o->micro_batch;
    q.lr = o->learning_rate, q.weight_decay = o->weight_decay, q.warmup = o->warmup_epochs;
    q.obr_lambda = o->regularizer, q.temperature = o->temperature, q.seed = t->cal->opts.seed, q.log = log;
    q.checkpoint = o->checkpoint_path, q.resume = o->resume_path;
    vitq_i_qat_job job = {&q, images, n, t->teacher, t->epochs, t->start ? t->start->net : NULL,
                          t->start ? t->start->quant : NULL};
    vitq_calibrator *c = t->cal;
    vitq_progress_fn keep = c->opts.progress;
    void *keep_user = c->opts.progress_user;
    if (o->progress) c->opts.progress = o->progress, c->opts.progress_user = o->progress_user;
    c->qat = &job;
    vitq_status st = vitq_calibrator_run(c, quantized);
    c->qat = NULL;
    c->opts.progress = keep, c->opts.progress_user = keep_user;
    return st;
}

vitq_status vitq_trainer_run(vitq_trainer *t, const vitq_dataset *train, uint64_t first, size_t n,
                             vitq_model **quantized) {
    if (!t || !train || !quantized) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_run: NULL argument");
    *quantized = NULL;
    if (n == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_run: no training images");
    vitq_calibrator *c = t->cal;
    vitq_status st = vitq_i_dataset_images(c->model, train, first, n, NULL); /* range and shape first */
    if (st) return st;
    size_t floats = n * c->per_image;
    if (floats / c->per_image != n) return vitq_i_oom("training images", SIZE_MAX);
    float *images = vitq_i_alloc_array(&c->alloc, floats, sizeof(float));
    if (!images) return vitq_i_oom("training images", floats * sizeof(float));
    st = vitq_i_dataset_images(c->model, train, first, n, images);
    FILE *log = NULL;
    /* a resumed run appends to its log */
    if (!st && t->opts.log_path && !(log = fopen(t->opts.log_path, t->opts.resume_path ? "a" : "w")))
        st = vitq_i_fail(VITQ_ERR_IO, "%s: cannot open the training log for writing", t->opts.log_path);
    t->done = 0;
    if (!st) st = run(t, images, n, log, quantized);
    if (!st) t->done = t->opts.epochs;
    if (log && fclose(log) && !st) st = vitq_i_fail(VITQ_ERR_IO, "%s: writing the training log failed", t->opts.log_path);
    vitq_i_free(&c->alloc, images);
    return st;
}

vitq_status vitq_trainer_epoch_stats(const vitq_trainer *t, int32_t epoch, vitq_trainer_epoch *out) {
    if (!t || !out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_trainer_epoch_stats: NULL argument");
    vitq_status st = vitq_i_check_struct_size(out->struct_size, V1_TRAINER_EPOCH, "vitq_trainer_epoch_stats",
                                              "vitq_trainer_epoch");
    if (st) return st;
    if (epoch < 0 || epoch >= t->done)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "vitq_trainer_epoch_stats: epoch %d of %d run", epoch, t->done);
    const vitq_i_qat_epoch *e = &t->epochs[epoch];
    vitq_trainer_epoch full = {sizeof full, e->loss, e->agreement, e->obr, e->flips, e->oscillations, e->seconds};
    vitq_i_struct_out(out, out->struct_size, &full, sizeof full);
    return VITQ_OK;
}
