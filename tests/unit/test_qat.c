/* Quantization-aware training (issue 21): the training block in QAT mode (src/train/block_train.h: latent
 * weights through LSQ, trained biases and LayerNorm affine parameters, the block input's gradient).
 *
 * Gradients are checked against central differences of the straight-through surrogate (every quantizer, the
 * weights' LSQ included, replaced by its clamp plus the rounding residual frozen at the base point) on block 0
 * of the bundled fmnist-vit at W4A4 min-max: the largest latent-weight, bias and LayerNorm gradients, every
 * layer's first weight steps, and the largest elements of the block input's gradient. */
#include "api/model.h"
#include "block_train_fd.h"
#include "block_train_vit.h"
#include "calib/qat_head.h"
#include "calib/qat_merge.h"
#include "calib_util.h"
#include "harness.h"
#include "model/block.h"
#include "model/weights.h"
#include "quant/points.h"
#include "quant/qmodel.h"
#include "test_random.h"
#include "train/block_train.h"
#include "train/block_train_qat.h"

#define MODEL "models/fmnist-vit"

static vitq_allocator alloc;

/* The index of the largest |g[i]| over n, then that entry zeroed in a copy's stead: callers pass a scratch copy. */
static size_t largest(float *g, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (fabsf(g[i]) > fabsf(g[best])) best = i;
    return best;
}

/* Central differences for the `count` largest gradients of the array p (gradient g, n elements). */
static void check_largest(vitq_i_block_train *bt, float *p, const float *g, size_t n, int count, const float *x,
                          const float *t, size_t images, float *out, fd_counts *c) {
    float *copy = malloc(n * sizeof(float));
    memcpy(copy, g, n * sizeof(float));
    for (int r = 0; r < count; r++) {
        size_t i = largest(copy, n);
        double scale = fabs((double)p[i]) > 1e-2 ? fabs((double)p[i]) : 1e-2;
        double h[3] = {1e-2 * scale, 3e-3 * scale, 1e-3 * scale};
        fd_check(bt, &p[i], g[i], h, 3, 0.05, x, t, images, out, &c->ok, &c->total);
        copy[i] = 0.0f;
    }
    free(copy);
}

static void test_qat_block_gradients(void) {
    vitq_i_bt_config cfg;
    size_t n = 2;
    vitq_model *handle = load_block0(MODEL, n, &cfg);
    if (!handle) return;
    vitq_i_net *m = handle->net;
    vitq_i_block_train bt0, bt;
    CHECK_STATUS(vitq_i_block_train_create(&bt0, &alloc, m, 0, &cfg), VITQ_OK);
    size_t rd = n * bt0.tokens * bt0.d;
    float *x = malloc(rd * sizeof(float)), *out = malloc(rd * sizeof(float)), *t = malloc(rd * sizeof(float));
    float *dy = malloc(rd * sizeof(float)), *ref = malloc(rd * sizeof(float));
    for (size_t i = 0; i < rd; i++) x[i] = (float)gauss();
    CHECK_STATUS(vitq_i_block_train_forward(&bt0, x, n, VITQ_I_BT_SOFT, 0, ref), VITQ_OK);
    quantizers q;
    observe(&alloc, &q, &bt0, n);
    /* fc1's weight on an asymmetric grid: LSQ keeps its whole-number zero points */
    vitq_i_instance_destroy(&q.w[VITQ_I_BT_FC1]);
    const vitq_i_linear *fc1 = &m->blocks[0].fc1;
    vitq_tensor_view wv = {sizeof wv, fc1->weight, 1, (int64_t)fc1->out, (int64_t)fc1->in, (int64_t)(fc1->out * fc1->in)};
    CHECK_STATUS(make_instance(&alloc, &q.w[VITQ_I_BT_FC1], "w", VITQ_POINT_WEIGHT, 4, VITQ_GRAN_CHANNEL, 0, wv.channels, 0),
                 VITQ_OK);
    CHECK_STATUS(q.w[VITQ_I_BT_FC1].scheme.observe(q.w[VITQ_I_BT_FC1].state, 0, &wv), VITQ_OK);
    CHECK_STATUS(q.w[VITQ_I_BT_FC1].scheme.finalize(q.w[VITQ_I_BT_FC1].state), VITQ_OK);
    for (int s = 0; s < VITQ_I_BT_SITES; s++) cfg.act[s] = &q.act[s];
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) cfg.wq[k] = &q.w[k];
    cfg.learn_steps = 1, cfg.qat = 1, cfg.weight_gscale = VITQ_I_LSQ_GSCALE_OFF, cfg.seed = 5;
    CHECK_STATUS(vitq_i_block_train_create(&bt, &alloc, m, 0, &cfg), VITQ_OK);
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) CHECK(bt.layer[k].mode == 3);
    CHECK(bt.layer[VITQ_I_BT_FC1].lsq.zero_point != NULL && bt.layer[VITQ_I_BT_QKV].lsq.zero_point == NULL);
    /* QAT's forward with the starting steps is the fixed quantizers' forward: LSQ at min-max's scales (and zero
     * points) rounds the weights to the same codes */
    vitq_i_bt_config fixed = cfg;
    fixed.qat = 0, fixed.learn_steps = 0;
    vitq_i_block_train btf;
    CHECK_STATUS(vitq_i_block_train_create(&btf, &alloc, m, 0, &fixed), VITQ_OK);
    CHECK_STATUS(vitq_i_block_train_forward(&btf, x, n, VITQ_I_BT_START, 0, ref), VITQ_OK);
    CHECK_STATUS(vitq_i_block_train_forward(&bt, x, n, VITQ_I_BT_SOFT, 0, out), VITQ_OK);
    CHECK(memcmp(ref, out, rd * sizeof(float)) == 0);
    vitq_i_block_train_free(&btf);

    for (size_t i = 0; i < rd; i++) t[i] = ref[i] + (float)(0.3 * gauss());
    /* min-max puts each channel's largest weight exactly on the clamp's edge, a kink of the loss in the step:
     * moved off it, every difference is a derivative */
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++)
        for (int64_t g = 0; g < bt.layer[k].lsq.groups; g++) bt.layer[k].lsq.step[g] *= 1.013f;
    float *frozen[VITQ_I_BT_SITES], *frozen_w[VITQ_I_BT_LAYERS];
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_tensor_view v = site_view(&bt, s, n);
        bt.frozen[s] = frozen[s] = malloc((size_t)(v.outer * v.outer_stride) * sizeof(float));
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++)
        bt.layer[k].frozen_w = frozen_w[k] = malloc(bt.layer[k].l->out * bt.layer[k].l->in * sizeof(float));
    bt.surrogate = 1;
    double l0 = surrogate_loss(&bt, x, t, n, out);
    bt.surrogate = 2;
    double l1 = surrogate_loss(&bt, x, t, n, out);
    CHECK_NEAR(l0, l1, 1e-4 * l0);
    sq_loss(out, t, rd, n, dy);
    vitq_i_block_train_zero_grad(&bt);
    CHECK_STATUS(vitq_i_block_train_backward(&bt, dy), VITQ_OK);
    const float *dx = vitq_i_block_train_input_grad(&bt);
    CHECK(dx != NULL);
    float *dx_copy = malloc(rd * sizeof(float));
    memcpy(dx_copy, dx, rd * sizeof(float)); /* the checks' forwards reuse the block's buffers */
    fd_counts c = {0, 0, 0};
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_i_bt_layer *L = &bt.layer[k];
        check_largest(&bt, L->w_latent, L->w_grad, L->l->out * L->l->in, 3, x, t, n, out, &c);
        check_largest(&bt, L->bias_copy, L->bias_grad, L->l->out, 2, x, t, n, out, &c);
        for (int64_t g = 0; g < 2 && g < L->lsq.groups; g++) {
            double s = L->lsq.step[g], h[3] = {1e-3 * s, 3e-3 * s, 1e-2 * s};
            fd_check(&bt, &L->lsq.step[g], L->lsq.step_grad[g], h, 3, 0.1, x, t, n, out, &c.ok, &c.total);
        }
    }
    for (int k = 0; k < 4; k++) /* gamma 1, beta 1, gamma 2, beta 2 */
        check_largest(&bt, bt.ln_params + (size_t)k * bt.d, bt.ln_grads + (size_t)k * bt.d, bt.d, 2, x, t, n, out, &c);
    int before = c.ok;
    check_largest(&bt, x, dx_copy, rd, 6, x, t, n, out, &c);
    printf("    QAT gradient checks: %d of %d agree (input: %d of 6)\n", c.ok, c.total, c.ok - before);
    CHECK(c.total == 4 * (3 + 2 + 2) + 8 + 6);
    CHECK(c.ok == c.total);
    bt.surrogate = 0;
    for (int s = 0; s < VITQ_I_BT_SITES; s++) free(frozen[s]), bt.frozen[s] = NULL;
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) free(frozen_w[k]), bt.layer[k].frozen_w = NULL;
    vitq_i_block_train_free(&bt);
    vitq_i_block_train_free(&bt0);
    quantizers_free(&q);
    free(x), free(out), free(t), free(dy), free(ref), free(dx_copy);
    vitq_model_free(handle);
}

/* QAT through the public trainer on fmnist-vit at W4A4 from min-max, `threads` threads: the quantized model's
 * logits on the first 64 test images into logits (64 x 10), the epochs' losses into loss[2]. */
typedef struct run_files {
    const char *checkpoint, *resume; /* trainer options */
    int stop_after;                  /* cancel after this many optimizer steps (0: never) */
} run_files;

static int64_t steps_seen;
static int cancel_after(void *user, const char *stage, int64_t done, int64_t total) {
    (void)done, (void)total;
    const run_files *f = user;
    if (strncmp(stage, "QAT", 3)) return 0;
    return ++steps_seen >= f->stop_after && f->stop_after;
}

static vitq_status train_run(int threads, const run_files *f, float *logits, double *loss, double *agreement) {
    vitq_model *m = load(MODEL);
    if (!m) return VITQ_ERR_IO;
    vitq_model_set_num_threads(m, threads);
    vitq_dataset *calib = NULL, *test = NULL;
    CHECK_STATUS(vitq_dataset_load_file("data/fashion-mnist/calib1000-images-idx3-ubyte.gz", NULL, NULL, &calib),
                 VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file("data/fashion-mnist/t10k-images-idx3-ubyte.gz", NULL, NULL, &test), VITQ_OK);
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.weight_bits = co.activation_bits = 4;
    vitq_calibrator *cal = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, &co, &cal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(cal, calib, 0, 32), VITQ_OK);
    vitq_trainer_options to;
    vitq_trainer_options_init(&to);
    to.epochs = 2, to.batch = 32, to.crops = 2, to.micro_batch = 24, to.learning_rate = 1e-3;
    static const run_files none = {NULL, NULL, 0};
    if (!f) f = &none;
    to.checkpoint_path = f->checkpoint, to.resume_path = f->resume;
    const char *log = "build/test_qat_log.csv";
    if (f == &none && threads == 1) to.log_path = log;
    to.progress = cancel_after, to.progress_user = (void *)f;
    steps_seen = 0;
    vitq_trainer *tr = NULL;
    CHECK_STATUS(vitq_trainer_create(cal, NULL, &to, &tr), VITQ_OK);
    vitq_model *q = NULL;
    vitq_status result = vitq_trainer_run(tr, calib, 0, 256, &q);
    for (int e = 0; !result && e < 2; e++) {
        vitq_trainer_epoch s;
        vitq_trainer_epoch_init(&s);
        CHECK_STATUS(vitq_trainer_epoch_stats(tr, e, &s), VITQ_OK);
        loss[e] = s.loss, agreement[e] = s.agreement;
        CHECK(s.flips > 0.0 && s.seconds >= 0.0);
    }
    vitq_trainer_epoch s;
    vitq_trainer_epoch_init(&s);
    CHECK_STATUS(vitq_trainer_epoch_stats(tr, 2, &s), VITQ_ERR_OUT_OF_RANGE);
    if (to.log_path && !result) { /* a header naming every weight, and a line per step (8 per epoch) */
        FILE *in = fopen(log, "r");
        char line[8192];
        int lines = 0, named = 0;
        while (in && fgets(line, sizeof line, in))
            named += lines++ == 0 && strstr(line, "blocks.0.mlp.fc2.weight oscillations") != NULL;
        if (in) fclose(in);
        CHECK(named == 1 && lines == 1 + 16);
        remove(log);
    }
    if (q) CHECK_STATUS(vitq_model_forward_dataset(q, test, 0, 64, logits), VITQ_OK);
    vitq_trainer_free(tr);
    vitq_calibrator_free(cal);
    vitq_model_free(q);
    vitq_dataset_free(calib);
    vitq_dataset_free(test);
    vitq_model_free(m);
    return result;
}

/* The loss falls from the first epoch to the second, and a run is the same bit for bit on 1 and 2 threads. */
static void test_trainer_trains_reproducibly(void) {
    float a[640], b[640];
    double la[2] = {0, 0}, lb[2] = {0, 0}, ga[2] = {0, 0}, gb[2] = {0, 0};
    CHECK_STATUS(train_run(1, NULL, a, la, ga), VITQ_OK);
    CHECK_STATUS(train_run(2, NULL, b, lb, gb), VITQ_OK);
    printf("    epochs' distillation loss %.4f -> %.4f, agreement %.3f -> %.3f\n", la[0], la[1], ga[0], ga[1]);
    CHECK(la[1] < la[0]);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(la[0] == lb[0] && la[1] == lb[1]);
}

/* A run cancelled in its second epoch and resumed from the checkpoint of its first ends with the uninterrupted
 * run's model, bit for bit; a checkpoint of another run is refused. */
static void test_trainer_resumes_exactly(void) {
    float a[640], b[640];
    double la[2] = {0, 0}, lb[2] = {0, 0}, ga[2], gb[2];
    const char *path = "build/test_qat_checkpoint.safetensors";
    remove(path);
    run_files cut = {path, NULL, 12}; /* 8 steps per epoch: stops in the second, after one checkpoint */
    CHECK_STATUS(train_run(1, &cut, a, la, ga), VITQ_ERR_CANCELLED);
    run_files go_on = {NULL, path, 0};
    CHECK_STATUS(train_run(1, &go_on, b, lb, gb), VITQ_OK);
    CHECK(steps_seen == 8); /* it trained the second epoch only */
    CHECK_STATUS(train_run(1, NULL, a, la, ga), VITQ_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(la[0] == lb[0] && la[1] == lb[1]); /* the first epoch's report comes from the checkpoint */
    /* another run: the same checkpoint with other options */
    vitq_model *m = load(MODEL);
    vitq_dataset *calib = NULL;
    CHECK_STATUS(vitq_dataset_load_file("data/fashion-mnist/calib1000-images-idx3-ubyte.gz", NULL, NULL, &calib),
                 VITQ_OK);
    vitq_calibrator *cal = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, NULL, &cal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(cal, calib, 0, 8), VITQ_OK);
    vitq_trainer_options to;
    vitq_trainer_options_init(&to);
    to.epochs = 2, to.batch = 32, to.crops = 2, to.resume_path = path;
    vitq_trainer *tr = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_trainer_create(cal, NULL, &to, &tr), VITQ_OK);
    CHECK_STATUS(vitq_trainer_run(tr, calib, 0, 128, &q), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "images") != NULL);
    vitq_trainer_free(tr);
    vitq_calibrator_free(cal);
    vitq_dataset_free(calib);
    vitq_model_free(m);
    remove(path);
}

/* Refusals: bad options, old struct sizes; and Swin trains (its loss falls over two epochs). */
static void test_trainer_refusals(void) {
    vitq_model *m = load(MODEL), *swin = load("models/fmnist-swin");
    if (!m || !swin) return;
    vitq_dataset *calib = NULL;
    CHECK_STATUS(vitq_dataset_load_file("data/fashion-mnist/calib1000-images-idx3-ubyte.gz", NULL, NULL, &calib),
                 VITQ_OK);
    vitq_calibrator *cal = NULL, *scal = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, NULL, &cal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(cal, calib, 0, 8), VITQ_OK);
    vitq_trainer_options to;
    vitq_trainer_options_init(&to);
    to.epochs = 0;
    vitq_trainer *tr = NULL;
    CHECK_STATUS(vitq_trainer_create(cal, NULL, &to, &tr), VITQ_ERR_OUT_OF_RANGE);
    to.epochs = 1, to.learning_rate = -1.0;
    CHECK_STATUS(vitq_trainer_create(cal, NULL, &to, &tr), VITQ_OK);
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_trainer_run(tr, calib, 0, 8, &q), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "learning rate") != NULL);
    vitq_trainer_free(tr);
    to.struct_size = 8;
    CHECK_STATUS(vitq_trainer_create(cal, NULL, &to, &tr), VITQ_ERR_ABI_MISMATCH);
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.weight_bits = co.activation_bits = 4;
    CHECK_STATUS(vitq_calibrator_create(swin, &co, &scal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(scal, calib, 0, 16), VITQ_OK);
    vitq_trainer_options_init(&to);
    to.epochs = 2, to.batch = 32, to.crops = 1, to.learning_rate = 1e-3;
    CHECK_STATUS(vitq_trainer_create(scal, NULL, &to, &tr), VITQ_OK);
    CHECK_STATUS(vitq_trainer_run(tr, calib, 0, 128, &q), VITQ_OK);
    vitq_trainer_epoch e0, e1;
    vitq_trainer_epoch_init(&e0), vitq_trainer_epoch_init(&e1);
    CHECK_STATUS(vitq_trainer_epoch_stats(tr, 0, &e0), VITQ_OK);
    CHECK_STATUS(vitq_trainer_epoch_stats(tr, 1, &e1), VITQ_OK);
    printf("    Swin W4A4: distillation loss %.4f -> %.4f\n", e0.loss, e1.loss);
    CHECK(e1.loss < e0.loss);
    vitq_model_free(q);
    vitq_trainer_free(tr);
    vitq_calibrator_free(scal);
    vitq_calibrator_free(cal);
    vitq_dataset_free(calib);
    vitq_model_free(swin);
    vitq_model_free(m);
}

/* The quantized model of `scheme` at W4A4 calibrated on n images, saved to memory and loaded back as a file. */
static vitq_model *saved_start(vitq_model *m, const vitq_dataset *calib, const char *scheme, size_t n,
                               vitq_model **direct) {
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = scheme, co.weight_bits = co.activation_bits = 4;
    vitq_calibrator *cal = NULL;
    vitq_model *q0 = NULL, *start = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, &co, &cal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(cal, calib, 0, n), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(cal, &q0), VITQ_OK);
    vitq_calibrator_free(cal);
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q0, NULL, 0, &size), VITQ_OK);
    void *bytes = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(q0, bytes, size, &size), VITQ_OK);
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "start.safetensors", NULL, &start), VITQ_OK);
    free(bytes);
    if (direct) *direct = q0;
    else vitq_model_free(q0);
    return start;
}

/* One run of a trainer from `start` on calibration images [first, first + n); its result and epochs' reports. */
static vitq_model *train_from(const vitq_model *start, const vitq_model *teacher, const vitq_dataset *calib,
                              const vitq_trainer_options *to, size_t first, size_t n, vitq_trainer_epoch *e) {
    vitq_trainer *tr = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_trainer_create_from(start, teacher, to, &tr), VITQ_OK);
    CHECK_STATUS(vitq_trainer_run(tr, calib, first, n, &q), VITQ_OK);
    for (int k = 0; k < to->epochs; k++) {
        vitq_trainer_epoch_init(&e[k]);
        CHECK_STATUS(vitq_trainer_epoch_stats(tr, k, &e[k]), VITQ_OK);
    }
    vitq_trainer_free(tr);
    return q;
}

/* QAT from a saved quantized model (vitq_trainer_create_from). From repq-vit W4A4 (asymmetric weights with zero
 * points) at a rate of 1e-12, no parameter can move by a float ulp, so the result must be the start again: what
 * shows that loading, training's start and write-back keep every code, step, zero point and folded parameter (to
 * float rounding: a parameter of exactly 0 could become 1e-12); at 1e-3 its zero-point weights flip and are
 * counted. From min-max W4A4, two epochs lower the loss. */
static void test_trainer_from_quantized_model(void) {
    vitq_model *m = load(MODEL);
    if (!m) return;
    vitq_dataset *calib = NULL;
    CHECK_STATUS(vitq_dataset_load_file("data/fashion-mnist/calib1000-images-idx3-ubyte.gz", NULL, NULL, &calib),
                 VITQ_OK);
    vitq_model *q0 = NULL, *start = saved_start(m, calib, "repq-vit", 16, &q0), *q;
    vitq_trainer_options to;
    vitq_trainer_options_init(&to);
    to.epochs = 1, to.batch = 32, to.crops = 1, to.learning_rate = 1e-12, to.weight_decay = 0.0, to.regularizer = 0.0;
    vitq_trainer_epoch e[2];
    q = train_from(start, m, calib, &to, 16, 64, e);
    static float want[64 * 10], got[64 * 10];
    CHECK_STATUS(vitq_model_forward_dataset(start, calib, 100, 64, want), VITQ_OK);
    if (q) CHECK_STATUS(vitq_model_forward_dataset(q, calib, 100, 64, got), VITQ_OK);
    double worst = 0.0, scale = 0.0;
    for (int i = 0; i < 64 * 10; i++) {
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    printf("    rate 1e-12 from the saved repq-vit W4A4: logits differ by at most %.3g (largest %.3g)\n", worst, scale);
    CHECK(worst <= 1e-5 * scale);
    vitq_model_free(q);
    to.learning_rate = 1e-3, to.weight_decay = 0.05, to.regularizer = 0.01;
    q = train_from(start, m, calib, &to, 16, 64, e);
    printf("    at 1e-3: %.1f weight codes flipped per step\n", e[0].flips);
    CHECK(e[0].flips > 0.0);
    vitq_model_free(q);
    /* refusals: a float start, no teacher, a quantized teacher */
    vitq_trainer *tr = NULL;
    CHECK_STATUS(vitq_trainer_create_from(m, m, &to, &tr), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "not quantized") != NULL);
    CHECK_STATUS(vitq_trainer_create_from(start, NULL, &to, &tr), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "teacher is required") != NULL);
    CHECK_STATUS(vitq_trainer_create_from(start, q0, &to, &tr), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(tr == NULL);
    vitq_model_free(start);
    vitq_model_free(q0);
    /* two epochs from a saved min-max W4A4, as train_run's from its calibrator */
    start = saved_start(m, calib, "minmax", 32, NULL);
    to.epochs = 2, to.crops = 2, to.micro_batch = 24;
    q = train_from(start, m, calib, &to, 0, 256, e);
    printf("    from the saved min-max W4A4: distillation loss %.4f -> %.4f\n", e[0].loss, e[1].loss);
    CHECK(e[1].loss < e[0].loss);
    vitq_model_free(q);
    vitq_model_free(start);
    vitq_dataset_free(calib);
    vitq_model_free(m);
}

/* A run of `m` with no quantized point (every point float), enough for the QAT pieces outside the blocks. */
typedef struct float_run {
    vitq_i_point_list list;
    vitq_i_qmodel q;
    int *of_point;
    float **weights;
    vitq_i_run r;
} float_run;

static void float_run_init(float_run *f, vitq_i_net *m) {
    memset(f, 0, sizeof *f);
    CHECK_STATUS(vitq_i_model_attach_rows(m), VITQ_OK);
    CHECK_STATUS(vitq_i_points_build(&alloc, m, &f->list), VITQ_OK);
    f->of_point = malloc((size_t)f->list.count * sizeof(int));
    f->weights = calloc((size_t)f->list.count, sizeof(float *));
    for (int p = 0; p < f->list.count; p++) {
        f->of_point[p] = -1;
        if (f->list.points[p].weight) f->weights[p] = f->list.points[p].weight->weight;
    }
    f->q.of_point = f->of_point;
    f->r.alloc = &alloc, f->r.model = m, f->r.list = &f->list, f->r.q = &f->q, f->r.weights = f->weights;
}

static void float_run_free(float_run *f) {
    vitq_i_points_free(&alloc, &f->list);
    free(f->of_point);
    free(f->weights);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Directional derivatives of L(x) = c . f(x) along random u against u . backward(c), for f Swin's patch
 * merging into stage 1 and Swin's classifier, every point float (both are then smooth). */
static void test_swin_merge_and_head_adjoints(void) {
    vitq_model *handle = load("models/fmnist-swin");
    if (!handle) return;
    vitq_i_net *m = handle->net;
    const vitq_model_info *i = &m->info;
    float_run f;
    float_run_init(&f, m);
    size_t n = 2;
    for (int piece = 0; piece < 2; piece++) {
        int last = i->num_stages - 1, s = piece ? last : 1;
        size_t in_floats = n * (size_t)i->stage_grid[s - (piece ? 0 : 1)] * (size_t)i->stage_grid[s - (piece ? 0 : 1)] *
                           (size_t)i->stage_dim[s - (piece ? 0 : 1)];
        size_t out_floats = piece ? n * (size_t)i->num_classes
                                  : n * (size_t)i->stage_grid[1] * (size_t)i->stage_grid[1] * (size_t)i->stage_dim[1];
        float *x = malloc(in_floats * sizeof(float)), *u = malloc(in_floats * sizeof(float));
        float *xp = malloc(in_floats * sizeof(float)), *dx = malloc(in_floats * sizeof(float));
        float *y = malloc(out_floats * sizeof(float)), *c = malloc(out_floats * sizeof(float));
        for (size_t k = 0; k < in_floats; k++) x[k] = (float)gauss(), u[k] = (float)gauss();
        for (size_t k = 0; k < out_floats; k++) c[k] = (float)gauss();
        vitq_i_qat_merge g;
        vitq_i_qat_head h;
        if (piece) CHECK_STATUS(vitq_i_qat_head_create(&h, &f.r, n), VITQ_OK);
        else CHECK_STATUS(vitq_i_qat_merge_create(&g, &f.r, 1, n), VITQ_OK);
        double lp = 0, lm = 0, eps = 1e-2;
        for (int sign = -1; sign <= 1; sign += 2) {
            for (size_t k = 0; k < in_floats; k++) xp[k] = x[k] + (float)(sign * eps) * u[k];
            if (piece) CHECK_STATUS(vitq_i_qat_head_forward(&h, xp, n, y), VITQ_OK);
            else CHECK_STATUS(vitq_i_qat_merge_forward(&g, xp, n, y), VITQ_OK);
            *(sign < 0 ? &lm : &lp) = dot(c, y, out_floats);
        }
        if (piece) {
            CHECK_STATUS(vitq_i_qat_head_forward(&h, x, n, y), VITQ_OK);
            vitq_i_qat_head_backward(&h, c, n, dx);
        } else {
            CHECK_STATUS(vitq_i_qat_merge_forward(&g, x, n, y), VITQ_OK);
            vitq_i_qat_merge_backward(&g, c, n, dx);
        }
        double fd = (lp - lm) / (2 * eps), an = dot(u, dx, in_floats);
        printf("    %s: directional derivative %.6g, backward %.6g\n", piece ? "classifier" : "merging", fd, an);
        CHECK(fabs(fd - an) <= 2e-3 * fabs(an) + 1e-3);
        if (piece) vitq_i_qat_head_free(&h);
        else vitq_i_qat_merge_free(&g);
        free(x), free(u), free(xp), free(dx), free(y), free(c);
    }
    float_run_free(&f);
    vitq_model_free(handle);
}

/* The same for the classifier of a distilled DeiT (two heads on two prefix tokens, their mean). */
static void test_deit_head_adjoint(void) {
    vitq_model *handle = load("models/fmnist-deit-distilled");
    if (!handle) return;
    vitq_i_net *m = handle->net;
    float_run f;
    float_run_init(&f, m);
    size_t n = 3, in = n * (size_t)m->info.num_tokens * (size_t)m->info.embed_dim, out = n * (size_t)m->info.num_classes;
    float *x = malloc(in * sizeof(float)), *u = malloc(in * sizeof(float)), *xp = malloc(in * sizeof(float));
    float *dx = malloc(in * sizeof(float)), *y = malloc(out * sizeof(float)), *c = malloc(out * sizeof(float));
    for (size_t k = 0; k < in; k++) x[k] = (float)gauss(), u[k] = (float)gauss();
    for (size_t k = 0; k < out; k++) c[k] = (float)gauss();
    vitq_i_qat_head h;
    CHECK_STATUS(vitq_i_qat_head_create(&h, &f.r, n), VITQ_OK);
    CHECK(h.prefix == 2);
    double l[2], eps = 1e-2;
    for (int k = 0; k < 2; k++) {
        for (size_t j = 0; j < in; j++) xp[j] = x[j] + (float)((k ? 1 : -1) * eps) * u[j];
        CHECK_STATUS(vitq_i_qat_head_forward(&h, xp, n, y), VITQ_OK);
        l[k] = dot(c, y, out);
    }
    CHECK_STATUS(vitq_i_qat_head_forward(&h, x, n, y), VITQ_OK);
    vitq_i_qat_head_backward(&h, c, n, dx);
    double fd = (l[1] - l[0]) / (2 * eps), an = dot(u, dx, in);
    printf("    distilled classifier: directional derivative %.6g, backward %.6g\n", fd, an);
    CHECK(fabs(fd - an) <= 2e-3 * fabs(an) + 1e-3);
    vitq_i_qat_head_free(&h);
    float_run_free(&f);
    free(x), free(u), free(xp), free(dx), free(y), free(c);
    vitq_model_free(handle);
}

int main(void) {
    if (vitq_i_allocator_resolve(NULL, &alloc) != VITQ_OK) return 1;
    RUN(test_qat_block_gradients);
    RUN(test_swin_merge_and_head_adjoints);
    RUN(test_deit_head_adjoint);
    RUN(test_trainer_refusals);
    RUN(test_trainer_trains_reproducibly);
    RUN(test_trainer_resumes_exactly);
    RUN(test_trainer_from_quantized_model);
    HARNESS_EXIT();
}
