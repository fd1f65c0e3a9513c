/* Integer non-linear operators in a quantized model (issue 17): LayerNorm, softmax and GELU run by the
 * I-BERT, FQ-ViT and I-ViT kernels (quant/nonlinear.h), the mixed selection (calib/nonlinear_search.c),
 * the saved file (quant/nonlinear_file.c) and the public API (vitq_nonlinear, vitq_model_nonlinear_info). */
#include <math.h>
#include <string.h>

#include "calib_util.h"
#include "core/core.h"
#include "quant/intnl_params.h"
#include "quant/nonlinear.h"

#define FMNIST "models/fmnist-vit"
#define OPERATORS 25 /* 6 blocks x (2 LayerNorms, softmax, GELU) + the final norm */
#define BLOCKS 6

static vitq_model *fp_model;

/* fp quantized W8A8 min-max with the operators run as `nonlinear` (and one point's set to `one_method`
 * when `one_point` is not NULL), on the first 32 calibration images. */
static vitq_model *quantize_nl(int32_t nonlinear, const char *one_point, const char *one_method) {
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.nonlinear = nonlinear;
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp_model, &o, &c), VITQ_OK);
    if (one_point) CHECK_STATUS(vitq_calibrator_set(c, one_point, "nonlinear", one_method), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 32), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_free(c);
    return q;
}

static vitq_model_info info_of(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(m, &i);
    return i;
}

static vitq_nonlinear_info op_info(const vitq_model *m, int i) {
    vitq_nonlinear_info nl;
    vitq_nonlinear_info_init(&nl);
    CHECK_STATUS(vitq_model_nonlinear_info(m, i, &nl), VITQ_OK);
    return nl;
}

/* q saved and loaded again with every layer simulated (float products of the quantized values), as
 * the calibration measures: the same logits bit for bit as the calibration's passes. */
static vitq_model *simulated(const vitq_model *q) {
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    char *bytes = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.execution = VITQ_EXECUTION_SIMULATED;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "simulated.safetensors", &mo, &m), VITQ_OK);
    free(bytes);
    return m;
}

/* Logits of the first n calibration images. */
static float *calib_logits(const vitq_model *m, size_t n) {
    float *l = malloc(n * (size_t)classes_of(m) * sizeof(float));
    CHECK_STATUS(vitq_model_forward_dataset(m, calib_set, 0, n, l), VITQ_OK);
    return l;
}

static double sqnr(const float *ref, const float *x, size_t n) {
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) s += (double)ref[i] * ref[i], e += ((double)ref[i] - x[i]) * ((double)ref[i] - x[i]);
    return 10 * log10(s / e);
}

/* The glue around the kernels: input grid, kernel, output scale, against the float operators. */
static void test_operator_against_float(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    enum { ROWS = 8, T = 50, C = 64 };
    float x[ROWS * T], y[ROWS * T];
    uint64_t s = 12345;
    for (int i = 0; i < ROWS * T; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 16.0 - 8.0);
    }
    vitq_i_nl_stats st = {-8, 8, T, C, NULL};
    for (int32_t m = VITQ_NONLINEAR_IBERT; m <= VITQ_NONLINEAR_IVIT; m++) {
        vitq_i_qnl nl;
        CHECK_STATUS(vitq_i_qnl_prepare(&a, "softmax", 0, VITQ_I_NL_SOFTMAX, m, &st, NULL, &nl), VITQ_OK);
        CHECK_STATUS(vitq_i_qnl_run(&a, &nl, x, ROWS, T, T, y), VITQ_OK);
        double worst = 0, sum_err = 0;
        for (int r = 0; r < ROWS; r++) {
            double in[T], ref[T], total = 0;
            for (int j = 0; j < T; j++) in[j] = x[r * T + j];
            vitq_i_softmax_ref(in, T, ref);
            for (int j = 0; j < T; j++) {
                worst = fmax(worst, fabs(ref[j] - y[r * T + j]));
                total += y[r * T + j];
            }
            sum_err = fmax(sum_err, fabs(total - 1));
        }
        /* I-BERT: 16-bit probabilities; I-ViT: its shift-based exp (about 3 % of the largest); LIS:
         * 4-bit log2 codes, within half an octave */
        double bound = m == VITQ_NONLINEAR_FQVIT ? 0.21 : m == VITQ_NONLINEAR_IVIT ? 0.04 : 0.01;
        printf("    softmax %s: worst error %.4f, worst row sum error %.4f\n", vitq_i_nl_method_name(m), worst, sum_err);
        CHECK(worst < bound);
        CHECK(m == VITQ_NONLINEAR_FQVIT || sum_err < (m == VITQ_NONLINEAR_IVIT ? 0.02 : 0.002));
        vitq_i_qnl_free(&a, &nl);
    }
    /* GELU: the kernels against erf's GELU over [-4, 4]. ShiftGELU computes sigmoid(1.702 x) from
     * exps relative to the row's largest input, which it clamps 2^-23 below it: a row spanning more
     * than ~9.4 gives its smallest inputs a sigmoid near 1/2 instead of 0 (I-ViT's design, for 8-bit
     * inputs of narrow range); docs/quantization.md measures it on real rows. */
    float xg[ROWS * T];
    for (int i = 0; i < ROWS * T; i++) xg[i] = x[i] / 2;
    vitq_i_nl_stats gst = {-4, 4, T, C, NULL};
    for (int32_t m = VITQ_NONLINEAR_IBERT; m <= VITQ_NONLINEAR_IVIT; m++) {
        vitq_i_qnl nl;
        CHECK_STATUS(vitq_i_qnl_prepare(&a, "gelu", 0, VITQ_I_NL_GELU, m, &gst, NULL, &nl), VITQ_OK);
        CHECK_STATUS(vitq_i_qnl_run(&a, &nl, xg, ROWS, T, T, y), VITQ_OK);
        double worst = 0;
        for (int i = 0; i < ROWS * T; i++) worst = fmax(worst, fabs(vitq_i_gelu_ref(xg[i]) - y[i]));
        double bound = m == VITQ_NONLINEAR_IVIT ? 0.2 : 0.03; /* ShiftGELU's sigmoid form is coarse */
        printf("    gelu %s: worst error %.4f\n", vitq_i_nl_method_name(m), worst);
        CHECK(worst < bound);
        vitq_i_qnl_free(&a, &nl);
    }
    /* LayerNorm over C = 64 channels (8 x 50 values make 6 tokens), gamma and beta not trivial */
    float gamma[C], beta[C];
    for (int c = 0; c < C; c++) gamma[c] = 0.5f + (float)c / C, beta[c] = 0.25f * (float)(c % 5) - 0.5f;
    vitq_i_layernorm_params ln = {gamma, beta};
    int tokens = ROWS * T / C;
    double *err = calloc((size_t)C * 4, sizeof(double));
    vitq_i_nl_ptf_errors(x, tokens, C, C, -8, 8, err);
    vitq_i_nl_stats lst = {-8, 8, 0, C, err};
    for (int32_t m = VITQ_NONLINEAR_IBERT; m <= VITQ_NONLINEAR_IVIT; m++) {
        vitq_i_qnl nl;
        CHECK_STATUS(vitq_i_qnl_prepare(&a, "ln", 0, VITQ_I_NL_LAYERNORM, m, &lst, &ln, &nl), VITQ_OK);
        CHECK_STATUS(vitq_i_qnl_run(&a, &nl, x, tokens, C, C, y), VITQ_OK);
        double worst = 0;
        for (int t = 0; t < tokens; t++) {
            double in[C], ref[C];
            for (int c = 0; c < C; c++) in[c] = x[t * C + c];
            vitq_i_layernorm_ref(in, C, gamma, beta, 1e-6, ref);
            for (int c = 0; c < C; c++) worst = fmax(worst, fabs(ref[c] - y[t * C + c]));
        }
        /* 16-bit inputs: output-grid error only; PTF: 8-bit inputs with a factor per channel */
        double bound = m == VITQ_NONLINEAR_FQVIT ? 0.1 : 0.005;
        printf("    layernorm %s: worst error %.4f\n", vitq_i_nl_method_name(m), worst);
        CHECK(worst < bound);
        vitq_i_qnl_free(&a, &nl);
    }
    free(err);
}

/* Each single method: every operator runs it, the model keeps its accuracy, the operators really run
 * (logits differ from the float operators'), and a saved file loads back to the same logits. */
static void test_single_methods(void) {
    vitq_model *base = quantize_nl(VITQ_NONLINEAR_FLOAT, NULL, NULL);
    size_t n = harness_quick() ? 200 : 1000;
    double acc_base = top1(base, n);
    float *lb = logits_of(base, n);
    int32_t base_points = info_of(base).num_quantized_points;
    CHECK(info_of(base).num_integer_nonlinear == 0);
    for (int32_t m = VITQ_NONLINEAR_IBERT; m <= VITQ_NONLINEAR_IVIT; m++) {
        vitq_model *q = quantize_nl(m, NULL, NULL);
        vitq_model_info i = info_of(q);
        CHECK(i.num_integer_nonlinear == OPERATORS);
        /* FQ-ViT's 4-bit log2 softmax gives the probabilities: their quantizers are gone */
        CHECK(i.num_quantized_points == base_points - (m == VITQ_NONLINEAR_FQVIT ? BLOCKS : 0));
        int softmaxes = 0;
        for (int k = 0; k < i.num_integer_nonlinear; k++) {
            vitq_nonlinear_info nl = op_info(q, k);
            int gelu = !strcmp(nl.op, "gelu");
            softmaxes += !strcmp(nl.op, "softmax");
            CHECK(nl.method == (gelu && m == VITQ_NONLINEAR_FQVIT ? VITQ_NONLINEAR_IBERT : m));
            CHECK(nl.input_bits == (m == VITQ_NONLINEAR_FQVIT && !strcmp(nl.op, "layernorm") ? 8 : 16));
            CHECK(isnan(nl.dsqnr[0]) && isnan(nl.dsqnr[1]) && isnan(nl.dsqnr[2])); /* nothing measured */
        }
        CHECK(softmaxes == BLOCKS);
        double acc = top1(q, n);
        float *l = logits_of(q, n);
        double diff = 0;
        for (size_t e = 0; e < n * (size_t)classes_of(q); e++) diff = fmax(diff, fabs(l[e] - lb[e]));
        printf("    method %d: top-1 %.4f (float operators %.4f), largest logit change %.3g\n", (int)m, acc,
               acc_base, diff);
        CHECK(diff > 0);
        CHECK(acc >= acc_base - 0.02);
        /* the file round trip: version 2, the operators, bit-identical logits */
        size_t size = 0;
        CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
        char *bytes = malloc(size);
        CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
        vitq_model *back = NULL;
        CHECK_STATUS(vitq_model_load_memory(bytes, size, "nl.safetensors", NULL, &back), VITQ_OK);
        if (back) {
            CHECK(info_of(back).num_integer_nonlinear == OPERATORS);
            float *l2 = logits_of(back, 64);
            CHECK(!memcmp(l2, l, 64 * (size_t)classes_of(q) * sizeof(float)));
            free(l2);
            vitq_model_free(back);
        }
        free(bytes);
        free(l);
        vitq_model_free(q);
    }
    free(lb);
    vitq_model_free(base);
}

/* The mixed selection keeps the argmin of its measurements, and a measurement is what switching that
 * one operator alone does to the logits' SQNR (reproduced through the public API). */
static void test_mixed(void) {
    vitq_model *q = quantize_nl(VITQ_NONLINEAR_MIXED, NULL, NULL);
    CHECK(info_of(q).num_integer_nonlinear == OPERATORS);
    int checked = 0;
    for (int k = 0; k < OPERATORS; k++) {
        vitq_nonlinear_info nl = op_info(q, k);
        int best = -1;
        for (int m = 0; m < 3; m++)
            if (!isnan(nl.dsqnr[m]) && (best < 0 || nl.dsqnr[m] < nl.dsqnr[best])) best = m;
        CHECK(best >= 0 && nl.method == best + 1);
        if (!strcmp(nl.op, "gelu")) CHECK(isnan(nl.dsqnr[1]) && !isnan(nl.dsqnr[0]) && !isnan(nl.dsqnr[2]));
        else CHECK(!isnan(nl.dsqnr[0]) && !isnan(nl.dsqnr[1]) && !isnan(nl.dsqnr[2]));
    }
    /* reproduce: blocks.1's softmax alone as I-ViT, and its final norm alone as FQ-ViT */
    static const char *const points[2] = {"blocks.1.attn.softmax.input", "norm.input"};
    static const char *const methods[2] = {"ivit", "fqvit"};
    static const int index[2] = {5, OPERATORS - 1}, method[2] = {2, 1};
    vitq_model *base_q = quantize_nl(VITQ_NONLINEAR_FLOAT, NULL, NULL), *base = simulated(base_q);
    size_t n = 32, k = (size_t)classes_of(q);
    float *fp = calib_logits(fp_model, n), *lb = calib_logits(base, n);
    for (int t = 0; t < 2; t++) {
        vitq_nonlinear_info want = op_info(q, index[t]);
        CHECK(!strcmp(want.point, points[t]));
        vitq_model *one_q = quantize_nl(VITQ_NONLINEAR_FLOAT, points[t], methods[t]), *one = simulated(one_q);
        CHECK(info_of(one).num_integer_nonlinear == 1);
        vitq_nonlinear_info got = op_info(one, 0);
        float *lo = calib_logits(one, n);
        double loss = sqnr(fp, lb, n * k) - sqnr(fp, lo, n * k);
        printf("    %s as %s: loss %.6f dB, measured in calibration %.6f dB\n", points[t], methods[t], loss,
               want.dsqnr[method[t]]);
        /* the same statistics of the same quantized upstream give the same grid (when the mixed model
         * kept this method), and the simulated model's passes are the calibration's: the same loss */
        CHECK(want.method != got.method || got.input_scale == want.input_scale);
        CHECK(fabs(loss - want.dsqnr[method[t]]) < 1e-6 * (1 + fabs(loss)));
        checked++;
        free(lo);
        vitq_model_free(one);
        vitq_model_free(one_q);
    }
    CHECK(checked == 2);
    free(fp);
    free(lb);
    vitq_model_free(base);
    vitq_model_free(base_q);
    vitq_model_free(q);
}

static void test_refusals(void) {
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    vitq_calibrator *c = NULL;
    o.nonlinear = 7;
    CHECK_STATUS(vitq_calibrator_create(fp_model, &o, &c), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "nonlinear") != NULL);
    o.nonlinear = VITQ_NONLINEAR_FLOAT;
    CHECK_STATUS(vitq_calibrator_create(fp_model, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "blocks.0.attn.qkv.input", "nonlinear", "ibert"), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "blocks.0.attn.qkv") != NULL);
    CHECK_STATUS(vitq_calibrator_set(c, "norm.input", "nonlinear", "fast"), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "fast") != NULL);
    /* a point with a quantizer and an operator both */
    CHECK_STATUS(vitq_calibrator_set(c, "norm.input", "nonlinear", "ivit"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_set(c, "norm.input", "bits", "8"), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, calib_set, 0, 8), VITQ_OK);
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "norm.input") != NULL);
    vitq_calibrator_free(c);
    vitq_nonlinear_info nl;
    vitq_nonlinear_info_init(&nl);
    CHECK_STATUS(vitq_model_nonlinear_info(fp_model, 0, &nl), VITQ_ERR_INVALID_ARGUMENT);
}

/* A file whose integer parameters were changed is refused with the operator named, never run. */
static void test_hostile_file(void) {
    vitq_model *q = quantize_nl(VITQ_NONLINEAR_IBERT, NULL, NULL);
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    char *good = malloc(size), *bad = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(q, good, size, &size), VITQ_OK);
    static const struct {
        const char *from, *to;
        vitq_status want;
        const char *named;
    } edits[] = {
        /* the metadata values are JSON strings in the header: their quotes are escaped there */
        {"\\\"out_bits\\\":16", "\\\"out_bits\\\":99", VITQ_ERR_OUT_OF_RANGE, "softmax"},
        {"\\\"variant\\\":0", "\\\"variant\\\":1", VITQ_ERR_FORMAT, "norm"},
        {"blocks.0.norm1.input.nl_mult", "blocks.0.norm1.input.nl_mulx", VITQ_ERR_MISSING_TENSOR, "nl_mult"},
        {"\\\"method\\\":\\\"ibert\\\"", "\\\"method\\\":\\\"iberx\\\"", VITQ_ERR_FORMAT, "iberx"},
        {"\"vitq.format_version\":\"2\"", "\"vitq.format_version\":\"3\"", VITQ_ERR_UNSUPPORTED, "'3'"},
        {"\"vitq.format_version\":\"2\"", "\"vitq.format_version\":\"1\"", VITQ_ERR_FORMAT, "version 1"},
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(bad, good, size);
        size_t header = 0;
        memcpy(&header, bad, 8);
        char *hit = NULL;
        for (size_t i = 8; i + strlen(edits[e].from) <= 8 + header && !hit; i++)
            if (!memcmp(bad + i, edits[e].from, strlen(edits[e].from))) hit = bad + i;
        CHECK(hit != NULL);
        if (!hit) continue;
        memcpy(hit, edits[e].to, strlen(edits[e].to));
        vitq_model *m = NULL;
        vitq_status st = vitq_model_load_memory(bad, size, "edited.safetensors", NULL, &m);
        if (st != edits[e].want || !strstr(vitq_last_error(), edits[e].named))
            printf("    edit %zu: %s\n", e, vitq_last_error());
        CHECK(st == edits[e].want);
        CHECK(strstr(vitq_last_error(), edits[e].named) != NULL);
        CHECK(m == NULL);
    }
    free(good);
    free(bad);
    vitq_model_free(q);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    fp_model = load(FMNIST);
    if (!calib_set || !test_set || !fp_model) return 1;
    RUN(test_operator_against_float);
    RUN(test_refusals);
    RUN(test_single_methods);
    RUN(test_mixed);
    RUN(test_hostile_file);
    vitq_model_free(fp_model);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
