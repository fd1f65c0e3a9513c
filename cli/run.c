/* Opening models and data, running batches with a progress bar, writing output files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "progress.h"

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
    cli_progress_setup(args->progress); /* checked when parsed */
    vitq_model_options options = args->options;
    options.progress = cli_progress_fn;
    vitq_status st = vitq_model_load_file(args->model, &options, model);
    if (st) return cli_fail(args->model, st);
    vitq_model_set_progress(*model, NULL, NULL); /* cli_run reports its own batches */
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

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_check_output(const cli_args *args, const char *flag, const char *out) {
    /* the model's folder: MODEL itself, or the folder of a MODEL file, where the config files are read */
    char dir[4096], weights[4096 + 32], config[4096 + 32], preproc[4096 + 32];
    struct stat s;
    int is_dir = stat(args->model, &s) == 0 && S_ISDIR(s.st_mode);
    snprintf(dir, sizeof dir, "%s", args->model);
    char *slash = strrchr(dir, '/');
    if (!is_dir && slash) *slash = '\0';
    else if (!is_dir) snprintf(dir, sizeof dir, ".");
    /* the weights a folder is loaded from: the first of these that exists (vitq_model_load_file's order) */
    static const char *const weight_names[] = {"model.safetensors", "pytorch_model.bin", "model.pth"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(weights, sizeof weights, "%s/%s", dir, weight_names[i]);
        if (stat(weights, &s) == 0) break;
    }
    snprintf(config, sizeof config, "%s/config.json", dir);
    snprintf(preproc, sizeof preproc, "%s/preprocessor_config.json", dir);
    const struct {
        const char *what, *path;
    } inputs[] = {{"model", is_dir ? weights : args->model}, {"model's config", config},
                  {"model's preprocessor config", preproc},  {"--data images", args->data},
                  {"--labels", args->labels},                 {"--calib images", args->calib},
                  {"--quantized model", args->quantized}};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        if (!same_file(out, inputs[i].path)) continue;
        fprintf(stderr, "vitq: %s %s is the %s (%s): writing there would replace an input; choose another file\n",
                flag, out, inputs[i].what, inputs[i].path);
        return 2;
    }
    return 0;
}

int cli_write_file(const char *flag, const char *path, const void *data, size_t size) {
    struct stat s;
    if (stat(path, &s) == 0 && !S_ISREG(s.st_mode) && !S_ISDIR(s.st_mode)) {
        /* a pipe or a device (/dev/stdout): nothing to replace, so written in place, every error checked */
        FILE *f = fopen(path, "w");
        int ok = f && fwrite(data, 1, size, f) == size;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) fprintf(stderr, "vitq: %s %s: write failed: %s\n", flag, path, strerror(errno));
        return !ok;
    }
    /* a regular file (or a link to one, which keeps pointing there): replaced atomically */
    vitq_status st = vitq_i_write_file_atomic(path, data, size);
    return st ? cli_fail(flag, st) : 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_run(const cli_args *args, vitq_model *model, vitq_dataset *data, size_t n, float *logits) {
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(model, &mi);
    double t0 = now_seconds();
    size_t batch = (size_t)args->batch;
    cli_progress_fn(NULL, "forward", 0, (int64_t)n);
    for (size_t first = 0; first < n; first += batch) {
        size_t count = n - first < batch ? n - first : batch;
        vitq_status st = vitq_model_forward_dataset(model, data, first, count, logits + first * (size_t)mi.num_classes);
        if (st) {
            cli_progress_break();
            return cli_fail("forward", st);
        }
        cli_progress_fn(NULL, "forward", (int64_t)(first + count), (int64_t)n);
    }
    double dt = now_seconds() - t0;
    fprintf(stderr, "%zu images in %.2f s (%.2f ms/image)\n", n, dt, 1000.0 * dt / (double)n);
    return 0;
}
