/* classify: the smallest complete use of vitq's public API.
 *   classify MODEL IMAGES [COUNT]
 * loads a model (folder or .safetensors) and an IDX/.npy image file, and prints the top class of
 * the first COUNT images. Build: cc classify.c $(pkg-config --cflags --libs vitq) */
#include <stdio.h>
#include <stdlib.h>

#include "vitq.h"

static int fail(const char *what, vitq_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, vitq_status_string(st), vitq_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IMAGES [COUNT]\n", argv[0]);
        return 2;
    }
    vitq_model *model = NULL;
    vitq_dataset *images = NULL;
    vitq_status st = vitq_model_load_file(argv[1], NULL, &model);
    if (st) return fail(argv[1], st);
    st = vitq_dataset_load_file(argv[2], NULL, NULL, &images);
    if (st) {
        vitq_model_free(model);
        return fail(argv[2], st);
    }
    vitq_model_info mi;
    vitq_dataset_info di;
    vitq_model_info_init(&mi);
    vitq_dataset_info_init(&di);
    vitq_model_get_info(model, &mi);
    vitq_dataset_get_info(images, &di);
    size_t count = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 8;
    if (count > di.count) count = (size_t)di.count;
    float *logits = malloc(count * (size_t)mi.num_classes * sizeof(float));
    int rc = 0;
    if (!logits) {
        rc = 1;
    } else if ((st = vitq_model_forward_dataset(model, images, 0, count, logits)) != VITQ_OK) {
        rc = fail("forward", st);
    } else {
        for (size_t i = 0; i < count; i++) {
            const float *row = logits + i * (size_t)mi.num_classes;
            int best = 0;
            for (int c = 1; c < mi.num_classes; c++)
                if (row[c] > row[best]) best = c;
            printf("image %zu: class %d (logit %.3f)\n", i, best, (double)row[best]);
        }
    }
    free(logits);
    vitq_dataset_free(images);
    vitq_model_free(model);
    return rc;
}
