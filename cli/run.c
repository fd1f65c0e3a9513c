/* Opening models and data, running batches with a progress bar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_fail(const char *what, vitq_status st) {
    fprintf(stderr, "vitq: %s: %s: %s\n", what, vitq_status_name(st), vitq_last_error());
    return 1;
}

/* Labels beside images: "...images-idx3..." -> "...labels-idx1...", "X-images.npy" -> "X-labels.npy",
 * "images.npy" -> "labels.npy". Returns 1 and fills `out` when such a file exists. */
static int find_labels(const char *images, char *out, size_t cap) {
    const char *base = strrchr(images, '/');
    base = base ? base + 1 : images;
    const char *pairs[][2] = {{"images-idx3", "labels-idx1"}, {"images", "labels"}};
    for (size_t i = 0; i < 2; i++) {
        const char *hit = strstr(base, pairs[i][0]);
        if (!hit) continue;
        size_t head = (size_t)(hit - images);
        int n = snprintf(out, cap, "%.*s%s%s", (int)head, images, pairs[i][1], hit + strlen(pairs[i][0]));
        if (n > 0 && (size_t)n < cap && access(out, R_OK) == 0) return 1;
    }
    return 0;
}

int cli_open(const cli_args *args, int want_labels, vitq_model **model, vitq_dataset **data) {
    vitq_status st = vitq_model_load_file(args->model, &args->options, model);
    if (st) return cli_fail(args->model, st);
    if (!data) return 0;
    if (!args->data) {
        fprintf(stderr, "vitq: --data IMAGES is required\n");
        return 2;
    }
    char found[4096];
    const char *labels = args->labels;
    if (!labels && want_labels && find_labels(args->data, found, sizeof found)) labels = found;
    st = vitq_dataset_load_file(args->data, labels, NULL, data);
    if (st) return cli_fail(args->data, st);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(size_t done, size_t total, double elapsed) {
    int width = 40, filled = (int)((double)width * (double)done / (double)total);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f img/s", filled, "########################################",
            width - filled, "", done, total, elapsed > 0 ? (double)done / elapsed : 0.0);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

int cli_run(const cli_args *args, vitq_model *model, vitq_dataset *data, size_t n, float *logits) {
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(model, &mi);
    int tty = isatty(fileno(stderr));
    double t0 = now_seconds();
    size_t batch = (size_t)args->batch;
    for (size_t first = 0; first < n; first += batch) {
        size_t count = n - first < batch ? n - first : batch;
        vitq_status st = vitq_model_forward_dataset(model, data, first, count, logits + first * (size_t)mi.num_classes);
        if (st) {
            if (tty) fputc('\n', stderr);
            return cli_fail("forward", st);
        }
        if (tty) progress(first + count, n, now_seconds() - t0);
    }
    double dt = now_seconds() - t0;
    fprintf(stderr, "%zu images in %.2f s (%.2f ms/image)\n", n, dt, 1000.0 * dt / (double)n);
    return 0;
}
