/* The real ImageNet DeiT-Tiny of the shared data folder against PyTorch: golden logits of the
 * first 16 images and the top-1 prediction of every image. The images never enter the repository:
 * tests/run.sh converts them with tools/images_to_npy.py into build/ and passes the paths in
 * VITQ_IMAGENET_MODEL, VITQ_IMAGENET_IMAGES and VITQ_IMAGENET_LABELS. Skipped when absent. */
#include "harness.h"
#include "test_util.h"

static void test_deit_tiny_imagenet(void) {
    const char *model_dir = getenv("VITQ_IMAGENET_MODEL"), *images = getenv("VITQ_IMAGENET_IMAGES");
    const char *labels = getenv("VITQ_IMAGENET_LABELS");
    if (!model_dir || !images || !labels) {
        SKIP("the shared ImageNet folder (or python3 with PIL and numpy to convert it) is not available");
        return;
    }
    vitq_model *m = NULL;
    vitq_dataset *d = NULL;
    uint64_t rows = 0, cols = 0, npred = 0;
    float *want = NULL;
    int64_t *pred = NULL;
    CHECK_STATUS(vitq_model_load_file(model_dir, NULL, &m), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(images, labels, NULL, &d), VITQ_OK);
    if (!m || !d) goto done;
    want = load_npy_f32("tests/golden/imagenet-deit-tiny_logits.npy", &rows, &cols);
    pred = load_npy_int("tests/golden/imagenet-deit-tiny_pred.npy", &npred);
    long torch_correct = -1;
    CHECK(want && pred && cols == 1000 && npred == 500);
    if (!want || !pred) goto done;
    size_t n = harness_quick() ? 4 : 500, check = rows < n ? rows : n;
    float *logits = malloc(n * 1000 * sizeof(float));
    CHECK_STATUS(vitq_model_forward_dataset(m, d, 0, n, logits), VITQ_OK);
    logits_match("DeiT-Tiny, ImageNet images", logits, want, check * 1000);
    long correct = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        int32_t label;
        for (int c = 1; c < 1000; c++) best = logits[i * 1000 + c] > logits[i * 1000 + best] ? c : best;
        vitq_dataset_label(d, i, &label);
        correct += best == label;
        differ += best != pred[i];
    }
    torch_correct = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t label;
        vitq_dataset_label(d, i, &label);
        torch_correct += pred[i] == label;
    }
    printf("    DeiT-Tiny top-1 on %zu ImageNet images: vitq %ld, PyTorch %ld, %ld predictions differ\n", n, correct,
           torch_correct, differ);
    CHECK(differ == 0 && correct == torch_correct);
    free(logits);
done:
    free(want);
    free(pred);
    vitq_dataset_free(d);
    vitq_model_free(m);
}

int main(void) {
    RUN(test_deit_tiny_imagenet);
    HARNESS_EXIT();
}
