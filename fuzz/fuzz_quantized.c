/* Fuzz target: quantized model files (integer codes, quantizer parameters, vitq.* __metadata__) through
 * vitq_model_load_memory, then forward passes so that bad codes or parameters that pass the loader
 * reach the kernels under ASan/UBSan. The input is the whole file. A model that loads must:
 *  - run, with the integer kernels (execution auto) and simulated, on a fixed input;
 *  - save (vitq_model_save_memory) and load again into a model with bit-identical logits (include/vitq.h:
 *    "vitq_model_load_file() of the result gives a model whose outputs are bit-identical"). */
#include "fuzz_common.h"

static vitq_model *load(const uint8_t *data, size_t size, int32_t execution) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = execution;
    vitq_model *model = NULL;
    vitq_i_error_clear();
    vitq_status st = vitq_model_load_memory(data, size, "fuzz.safetensors", &o, &model);
    fuzz_check_status(st);
    FUZZ_ASSERT((st == VITQ_OK) == (model != NULL));
    return model;
}

/* Save `model`, load the bytes back with the same execution and compare logits bit for bit. */
static void check_round_trip(const vitq_model *model, int32_t execution, const float *logits, size_t classes) {
    size_t need = 0;
    vitq_i_error_clear();
    vitq_status st = vitq_model_save_memory(model, NULL, 0, &need);
    fuzz_check_status(st);
    if (st == VITQ_ERR_BAD_STATE) return; /* a float model: nothing to save */
    FUZZ_ASSERT(st == VITQ_OK || st == VITQ_ERR_BUFFER_TOO_SMALL);
    FUZZ_ASSERT(need > 8);
    uint8_t *buf = malloc(need);
    FUZZ_ASSERT(buf);
    size_t got = 0;
    vitq_i_error_clear();
    st = vitq_model_save_memory(model, buf, need, &got);
    fuzz_check_status(st);
    FUZZ_ASSERT(st == VITQ_OK && got == need);
    vitq_model *again = load(buf, got, execution);
    if (!again) fprintf(stderr, "fuzz: a saved quantized model does not load: %s\n", vitq_last_error());
    FUZZ_ASSERT(again != NULL);
    if (logits) {
        size_t c2 = 0;
        float *y = fuzz_forward(again, 1, &c2);
        FUZZ_ASSERT(y != NULL && c2 == classes);
        if (memcmp(y, logits, classes * sizeof *y) != 0) {
            fprintf(stderr, "fuzz: logits change after saving and loading the quantized model\n");
            abort();
        }
        free(y);
    }
    vitq_model_free(again);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int32_t modes[2] = {VITQ_EXECUTION_AUTO, VITQ_EXECUTION_SIMULATED};
    for (int m = 0; m < 2; m++) {
        vitq_model *model = load(data, size, modes[m]);
        if (!model) return 0; /* the second mode fails the same way */
        size_t classes = 0;
        float *y = fuzz_forward(model, 1, &classes);
        check_round_trip(model, modes[m], y, classes);
        free(y);
        vitq_model_free(model);
    }
    return 0;
}
