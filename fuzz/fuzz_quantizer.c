/* Fuzz target: the text options of the stand-alone quantizer (scheme name, "key=value" settings parsed
 * by quant/options.c and each scheme's option table) and the schemes themselves on adversarial data
 * (NaN, infinities, huge and tiny values, constant channels).
 * Input: text lines up to the first NUL byte: line 1 the scheme name, then "key=value" settings; after
 * the NUL, one byte of channels (1 + b % 8), one of inner size (1 + b % 8), then float32 values.
 * Checks: no crash or leak, a message for every failure, codes that fit the bits set, and
 * dequantize(quantize(x)) equal to fake_quant(x) bit for bit. */
#include "fuzz_common.h"

#define MAX_VALUES 1024

static vitq_quantizer *configure(char *text, int *bits) {
    char *line = text, *next = strchr(line, '\n');
    if (next) *next++ = '\0';
    vitq_quantizer *q = NULL;
    vitq_i_error_clear();
    vitq_status st = vitq_quantizer_create(NULL, line, NULL, &q);
    fuzz_check_status(st);
    FUZZ_ASSERT((st == VITQ_OK) == (q != NULL));
    if (!q) return NULL;
    for (line = next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        vitq_i_error_clear();
        st = vitq_quantizer_set(q, line, eq + 1);
        fuzz_check_status(st);
        FUZZ_ASSERT(st == VITQ_OK || st == VITQ_ERR_UNKNOWN_NAME || st == VITQ_ERR_OUT_OF_RANGE);
        if (st == VITQ_OK && strcmp(line, "bits") == 0) *bits = (int)strtod(eq + 1, NULL);
    }
    return q;
}

static void run(vitq_quantizer *q, float *x, int64_t channels, int64_t inner, int64_t outer, int bits) {
    size_t n = (size_t)(channels * inner * outer);
    vitq_tensor_view v = {sizeof(vitq_tensor_view), x, outer, channels, inner, channels * inner};
    int32_t passes = vitq_quantizer_num_passes(q);
    FUZZ_ASSERT(passes >= 1 && passes <= 8);
    for (int32_t p = 0; p < passes; p++) {
        vitq_i_error_clear();
        vitq_status st = vitq_quantizer_observe(q, p, &v);
        fuzz_check_status(st);
        if (st) return;
    }
    vitq_i_error_clear();
    vitq_status st = vitq_quantizer_finalize(q);
    fuzz_check_status(st);
    if (st) return;
    float *fq = malloc(n * sizeof *fq), *dq = malloc(n * sizeof *dq);
    int32_t *codes = malloc(n * sizeof *codes);
    FUZZ_ASSERT(fq && dq && codes);
    memcpy(fq, x, n * sizeof *fq);
    vitq_tensor_view vf = v, vd = v;
    vf.data = fq;
    vd.data = dq;
    vitq_i_error_clear();
    vitq_status s1 = vitq_quantizer_fake_quant(q, &vf);
    fuzz_check_status(s1);
    vitq_i_error_clear();
    vitq_status s2 = vitq_quantizer_quantize(q, &v, codes);
    fuzz_check_status(s2);
    FUZZ_ASSERT((s1 == VITQ_OK) == (s2 == VITQ_OK));
    if (s2 == VITQ_OK) {
        for (size_t i = 0; i < n; i++) FUZZ_ASSERT(codes[i] >= -(1 << (bits - 1)) && codes[i] < (1 << bits));
        vitq_i_error_clear();
        vitq_status s3 = vitq_quantizer_dequantize(q, codes, &vd);
        fuzz_check_status(s3);
        FUZZ_ASSERT(s3 == VITQ_OK);
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&fq[i], &dq[i], sizeof fq[i]) != 0 && !(isnan(fq[i]) && isnan(dq[i]))) {
                fprintf(stderr, "fuzz: element %zu: fake_quant %.9g, dequantize(quantize) %.9g (code %d)\n", i,
                        (double)fq[i], (double)dq[i], (int)codes[i]);
                abort();
            }
        }
    }
    const float *values = NULL;
    int64_t count = 0;
    vitq_i_error_clear();
    st = vitq_quantizer_param(q, "scale", &values, &count);
    fuzz_check_status(st);
    if (st == VITQ_OK) FUZZ_ASSERT(count >= 1 && count <= channels && values != NULL);
    free(fq);
    free(dq);
    free(codes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len + 1);
    FUZZ_ASSERT(text);
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    int bits = 8;
    vitq_quantizer *q = configure(text, &bits);
    free(text);
    if (!q) return 0;
    size_t rest = nul ? size - text_len - 1 : 0;
    const uint8_t *p = nul ? nul + 1 : NULL;
    if (rest >= 2 && bits >= 2 && bits <= 8) {
        int64_t channels = 1 + p[0] % 8, inner = 1 + p[1] % 8;
        size_t nv = (rest - 2) / sizeof(float);
        if (nv > MAX_VALUES) nv = MAX_VALUES;
        int64_t outer = (int64_t)nv / (channels * inner);
        if (outer > 0) {
            size_t n = (size_t)(outer * channels * inner);
            float *x = malloc(n * sizeof *x);
            FUZZ_ASSERT(x);
            memcpy(x, p + 2, n * sizeof *x);
            run(q, x, channels, inner, outer, bits);
            free(x);
        }
    }
    vitq_quantizer_free(q);
    return 0;
}
