/* vitq train-qat MODEL --data TRAIN --wbits W --abits A --out QMODEL.safetensors: calibrate as quantize does
 * (the calibration images drawn from --calib, or from TRAIN), then quantization-aware training on TRAIN
 * (vitq_trainer_run), then save; a line per epoch with loss, agreement and weight oscillation. A quantized
 * MODEL is the start instead (vitq_trainer_create_from, --teacher required). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "cli.h"
#include "progress.h"

typedef struct train_ctx {
    const vitq_model *teacher;
    vitq_dataset *train;
} train_ctx;

static void trainer_options(const cli_args *args, vitq_trainer_options *o) {
    vitq_trainer_options_init(o);
    if (args->epochs) o->epochs = args->epochs;
    if (args->crops >= 0) o->crops = args->crops;
    if (args->micro_batch) o->micro_batch = args->micro_batch;
    if (args->lr > 0) o->learning_rate = args->lr;
    if (args->regularizer >= 0) o->regularizer = args->regularizer;
    if (args->warmup >= 0) o->warmup_epochs = args->warmup;
    o->batch = args->batch;
    o->log_path = args->log;
    o->checkpoint_path = args->checkpoint;
    o->resume_path = args->resume;
    o->seed = (uint64_t)args->seed;
}

/* Run trainer t (freed here) on the training images; a line per epoch. */
static int run_trainer(const cli_args *args, vitq_trainer *t, const train_ctx *c, vitq_model **q) {
    vitq_trainer_options o; /* the numbers the trainer was made with, for the lines below */
    trainer_options(args, &o);
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    vitq_dataset_get_info(c->train, &di);
    uint64_t n = args->limit > 0 && (uint64_t)args->limit < di.count ? (uint64_t)args->limit : di.count;
    fprintf(stderr, "training on %llu images: %d epochs, %d images per step, %d crops each\n",
            (unsigned long long)n, o.epochs, o.batch, o.crops);
    vitq_status st = vitq_trainer_run(t, c->train, 0, (size_t)n, q);
    cli_progress_break();
    int rc = st ? cli_fail("training", st) : 0;
    for (int32_t e = 0; !rc && e < o.epochs; e++) {
        vitq_trainer_epoch s;
        vitq_trainer_epoch_init(&s);
        if (vitq_trainer_epoch_stats(t, e, &s)) break;
        printf("epoch %d: loss %.4f, agreement with the teacher %.2f %%, regulariser %.4g, %.1f weight codes "
               "flipped and %.1f oscillating per step, %.1f s\n", e + 1, s.loss, 100.0 * s.agreement, s.regularizer,
               s.flips, s.oscillations, s.seconds);
    }
    vitq_trainer_free(t);
    return rc;
}

static int train(const cli_args *args, vitq_calibrator *cal, vitq_model **q, void *ctx) {
    const train_ctx *c = ctx;
    vitq_trainer_options o;
    trainer_options(args, &o);
    vitq_trainer *t = NULL;
    vitq_status st = vitq_trainer_create(cal, c->teacher, &o, &t);
    return st ? cli_fail("trainer", st) : run_trainer(args, t, c, q);
}

/* MODEL is a quantized file: it is the start (vitq_trainer_create_from), the teacher is required, and no option
 * may say how to calibrate. */
static int train_from(const cli_args *args, const vitq_model *start, vitq_model **q, const train_ctx *c) {
    if (!c->teacher) {
        fprintf(stderr, "vitq: train-qat: %s is quantized, so it is the start; --teacher FLOAT_MODEL is required\n",
                args->model);
        return 2;
    }
    if (args->calibration_option) {
        fprintf(stderr, "vitq: train-qat: %s is quantized, so it is the start and nothing is calibrated; %s does "
                "not apply\n", args->model, args->calibration_option);
        return 2;
    }
    vitq_trainer_options o;
    trainer_options(args, &o);
    o.progress = cli_progress_fn; /* no calibrator's to fall back on */
    vitq_trainer *t = NULL;
    vitq_status st = vitq_trainer_create_from(start, c->teacher, &o, &t);
    return st ? cli_fail("trainer", st) : run_trainer(args, t, c, q);
}

int cli_train_qat(const cli_args *in) {
    if (!in->data || !in->out) {
        fprintf(stderr, "vitq: train-qat: --data TRAIN and --out QMODEL.safetensors are required\n");
        return 2;
    }
    if (cli_check_output(in, "--out", in->out)) return 2;
    cli_args args = *in;
    if (!args.calib) args.calib = args.data; /* the starting point calibrates on training images */
    vitq_model *m = NULL, *q = NULL, *teacher = NULL;
    vitq_calibrator *cal = NULL;
    train_ctx ctx = {NULL, NULL};
    vitq_status st = vitq_dataset_load_file(args.data, args.labels, NULL, &ctx.train);
    int rc = st ? cli_fail(args.data, st) : cli_open(&args, 0, &m, NULL);
    if (!rc && args.teacher) {
        if ((st = vitq_model_load_file(args.teacher, &args.options, &teacher))) rc = cli_fail(args.teacher, st);
        ctx.teacher = teacher;
    }
    vitq_model_info info;
    vitq_model_info_init(&info);
    if (!rc && (st = vitq_model_get_info(m, &info))) rc = cli_fail(args.model, st);
    int from_file = info.num_quantized_points > 0;
    if (!rc) rc = from_file ? train_from(&args, m, &q, &ctx) : cli_calibrate_with(&args, m, &q, &cal, train, &ctx);
    if (!rc && (st = vitq_model_save(q, args.out))) rc = cli_fail(args.out, st);
    if (!rc) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        if (from_file)
            printf("trained from %s (its widths and quantizers); process peak RSS %.1f MB\nwrote %s\n", args.model,
                   (double)ru.ru_maxrss / 1e3, args.out);
        else
            printf("trained W%dA%d from %s; process peak RSS %.1f MB\nwrote %s\n", args.wbits, args.abits,
                   args.scheme, (double)ru.ru_maxrss / 1e3, args.out);
    }
    vitq_calibrator_free(cal);
    vitq_model_free(q);
    vitq_model_free(teacher);
    vitq_model_free(m);
    vitq_dataset_free(ctx.train);
    return rc;
}
