/* Concurrent forward passes on one model, built with -fsanitize=thread (tests/tsan/check_concurrent_forward.sh).
 *
 * include/vitq.h promises that "a loaded model is never modified by inference, so several threads may run
 * vitq_model_forward() on one model", and that vitq_last_error() is per thread. Four threads run forward
 * passes at once on three models loaded once: the float odd-vit-hf fixture, its calibrated W8A8 model
 * (simulated quantization) and that model saved and loaded again (integer kernels). Each thread feeds its
 * own images and must get, bit for bit, the logits a single-threaded run gave before the threads started.
 * Between rounds every thread makes a failing call whose message names the thread, waits until all
 * threads have made theirs, and checks that vitq_last_error() still shows its own.
 * ThreadSanitizer reports any data race (the script makes that a failure). The library is built with
 * its own thread pool (OPENMP=0), whose synchronisation TSan sees: the models run at the default thread
 * count, so one thread's forward pass runs its loops on the pool while the others, finding it taken,
 * run theirs inline; both paths are under test. (TSan does not see libgomp's synchronisation and would
 * report races inside its barriers.) */
#include <pthread.h>
#include <stdint.h>

#include "harness.h"

#define THREADS 4
#define ROUNDS 3
#define BATCH 2
#define MODELS 3
#define FIXTURE "tests/fixtures/models/odd-vit-hf"

typedef struct {
    const vitq_model *model[MODELS];
    size_t per_image, classes;
    pthread_barrier_t barrier;
} shared_state;

typedef struct {
    shared_state *s;
    int index;
    float *input;           /* BATCH images of this thread */
    float *want[MODELS];    /* single-threaded logits of input on each model */
    int forward_failures, mismatches, message_failures;
} job;

static const char *const model_names[MODELS] = {"float", "quantized (simulated)", "quantized (integer kernels)"};

static void *worker(void *arg) {
    job *j = arg;
    shared_state *s = j->s;
    float *got = malloc(BATCH * s->classes * sizeof *got);
    if (!got) {
        j->forward_failures++;
        return NULL;
    }
    char path[96];
    snprintf(path, sizeof path, "no-such-model-of-thread-%d.safetensors", j->index);
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < MODELS; k++) {
            int m = (k + j->index) % MODELS; /* threads start on different models */
            if (vitq_model_forward(s->model[m], j->input, BATCH, got) != VITQ_OK)
                j->forward_failures++;
            else if (memcmp(got, j->want[m], BATCH * s->classes * sizeof *got) != 0)
                j->mismatches++;
        }
        vitq_model *none = NULL;
        vitq_status st = vitq_model_load_file(path, NULL, &none);
        pthread_barrier_wait(&s->barrier); /* every thread has now written its own message */
        if (st == VITQ_OK || !strstr(vitq_last_error(), path)) j->message_failures++;
        pthread_barrier_wait(&s->barrier);
    }
    free(got);
    return NULL;
}

/* A calibrated W8A8 model of `fp` on the fixture's images, and the same saved and loaded again with the
 * integer kernels. */
static int quantize(const vitq_model *fp, vitq_model **simulated, vitq_model **integer) {
    vitq_dataset *images = NULL;
    vitq_calibrator *cal = NULL;
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = "minmax";
    vitq_status st = vitq_dataset_load_file(FIXTURE "/input.npy", NULL, NULL, &images);
    if (!st) st = vitq_calibrator_create(fp, &co, &cal);
    if (!st) st = vitq_calibrator_feed_dataset(cal, images, 0, 3);
    if (!st) st = vitq_calibrator_run(cal, simulated);
    vitq_calibrator_free(cal);
    vitq_dataset_free(images);
    size_t size = 0;
    uint8_t *buf = NULL;
    if (!st) st = vitq_model_save_memory(*simulated, NULL, 0, &size);
    if (st == VITQ_ERR_BUFFER_TOO_SMALL) st = VITQ_OK;
    if (!st && !(buf = malloc(size))) st = VITQ_ERR_OUT_OF_MEMORY;
    if (!st) st = vitq_model_save_memory(*simulated, buf, size, &size);
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = VITQ_EXECUTION_AUTO;
    if (!st) st = vitq_model_load_memory(buf, size, "w8a8.safetensors", &o, integer);
    free(buf);
    if (st) printf("    quantizing " FIXTURE ": %s (%s)\n", vitq_status_name(st), vitq_last_error());
    return st == VITQ_OK;
}

static shared_state state;
static job jobs[THREADS];

static void test_concurrent_forward(void) {
    vitq_model *fp = NULL, *qs = NULL, *qi = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURE, NULL, &fp), VITQ_OK);
    if (!fp || !quantize(fp, &qs, &qi)) {
        CHECK(0);
        vitq_model_free(fp);
        return;
    }
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(qi, &info), VITQ_OK);
    CHECK(info.num_integer_layers > 0); /* the third model really runs the integer kernels */
    state.model[0] = fp;
    state.model[1] = qs;
    state.model[2] = qi;
    state.per_image = (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size;
    state.classes = (size_t)info.num_classes;
    pthread_barrier_init(&state.barrier, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        job *j = &jobs[t];
        j->s = &state;
        j->index = t;
        j->input = malloc(BATCH * state.per_image * sizeof(float));
        CHECK(j->input != NULL);
        for (size_t i = 0; i < BATCH * state.per_image; i++) j->input[i] = (float)sin(0.05 * (double)i + 1.3 * t) * 1.2f;
        for (int m = 0; m < MODELS; m++) {
            j->want[m] = malloc(BATCH * state.classes * sizeof(float));
            CHECK(j->want[m] != NULL);
            CHECK_STATUS(vitq_model_forward(state.model[m], j->input, BATCH, j->want[m]), VITQ_OK);
        }
    }
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, worker, &jobs[t]) == 0);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        job *j = &jobs[t];
        if (j->forward_failures || j->mismatches)
            printf("    thread %d: %d failed forward passes, %d with logits unlike the single-threaded run (%s, %s, "
                   "%s, %d rounds)\n",
                   t, j->forward_failures, j->mismatches, model_names[0], model_names[1], model_names[2], ROUNDS);
        CHECK(j->forward_failures == 0 && j->mismatches == 0);
        if (j->message_failures) printf("    thread %d: vitq_last_error() showed another thread's message\n", t);
        if (vitq_build_features() & VITQ_FEATURE_THREAD_LOCAL) CHECK(j->message_failures == 0);
        for (int m = 0; m < MODELS; m++) free(j->want[m]);
        free(j->input);
    }
    pthread_barrier_destroy(&state.barrier);
    vitq_model_free(qi);
    vitq_model_free(qs);
    vitq_model_free(fp);
}

int main(void) {
    if (vitq_build_features() & VITQ_FEATURE_OPENMP)
        printf("    note: this library uses OpenMP; ThreadSanitizer may report races inside libgomp\n");
    if (!(vitq_build_features() & VITQ_FEATURE_THREAD_LOCAL))
        printf("    note: vitq_last_error() is one shared buffer in this build: its per-thread check is skipped\n");
    RUN(test_concurrent_forward);
    HARNESS_EXIT();
}
