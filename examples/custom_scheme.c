/* custom_scheme: a quantization scheme written outside vitq, registered and used end to end.
 *   custom_scheme MODEL CALIB_IMAGES TEST_IMAGES TEST_LABELS [COUNT]
 * The scheme "pow2" is min-max with the scale rounded up to a power of two (shift-only rescaling,
 * popular on integer hardware), per tensor or per channel, symmetric or not. The program registers
 * it, quantizes MODEL at W8A8 with it on 32 calibration images, saves the quantized model to memory,
 * loads it back with the registry, and prints the top-1 of the float, quantized and reloaded models
 * on the first COUNT labelled test images. Only the public header is used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vitq.h"

/* ---- the scheme ---------------------------------------------------------------------------------- */

/* The application's context for the scheme, registered with the table (vitq_scheme.user) and handed
 * to every create() as cfg->scheme_user: what the scheme shares across quantizers, without globals. */
typedef struct pow2_context {
    int created; /* quantizers created so far */
} pow2_context;

typedef struct pow2_state {
    vitq_point_config cfg;
    const vitq_scheme_host *host;
    float *lo, *hi;       /* observed range per group */
    float *scale, *zero;  /* parameters per group */
    int finalized;
} pow2_state;

static int64_t group_of(const pow2_state *s, int64_t channel) { return channel / s->cfg.channels_per_group; }

static void pow2_destroy(void *state) {
    pow2_state *s = state;
    if (!s) return;
    const vitq_scheme_host *h = s->host;
    h->free(h, s->lo);
    h->free(h, s->hi);
    h->free(h, s->scale);
    h->free(h, s->zero);
    h->free(h, s);
}

static vitq_status pow2_create(const vitq_point_config *cfg, const vitq_scheme_host *host, void **out) {
    pow2_context *ctx = cfg->scheme_user;
    if (!ctx) return host->fail(host, VITQ_ERR_INVALID_ARGUMENT, "pow2: registered without its context");
    pow2_state *s = host->alloc(host, sizeof *s);
    if (!s) return host->fail(host, VITQ_ERR_OUT_OF_MEMORY, "pow2 state");
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->host = host;
    size_t bytes = (size_t)cfg->groups * sizeof(float);
    s->lo = host->alloc(host, bytes);
    s->hi = host->alloc(host, bytes);
    s->scale = host->alloc(host, bytes);
    s->zero = host->alloc(host, bytes);
    if (!s->lo || !s->hi || !s->scale || !s->zero) {
        pow2_destroy(s);
        return host->fail(host, VITQ_ERR_OUT_OF_MEMORY, "pow2 parameters");
    }
    for (int64_t g = 0; g < cfg->groups; g++) s->lo[g] = s->hi[g] = 0.0f; /* the range always holds 0 */
    ctx->created++; /* quantizers are created on the calling thread (calibration, loading): no lock */
    *out = s;
    return VITQ_OK;
}

static vitq_status pow2_observe(void *state, int32_t pass, const vitq_tensor_view *x) {
    pow2_state *s = state;
    (void)pass;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            const float *v = x->data + o * x->outer_stride + c * x->inner;
            int64_t g = group_of(s, c);
            for (int64_t i = 0; i < x->inner; i++) {
                if (!isfinite(v[i])) return s->host->fail(s->host, VITQ_ERR_NON_FINITE, "non-finite value");
                if (v[i] < s->lo[g]) s->lo[g] = v[i];
                if (v[i] > s->hi[g]) s->hi[g] = v[i];
            }
        }
    return VITQ_OK;
}

static void code_range(const pow2_state *s, int32_t *qmin, int32_t *qmax) {
    int b = s->cfg.bits;
    *qmin = s->cfg.symmetric ? -(1 << (b - 1)) : 0;
    *qmax = s->cfg.symmetric ? (1 << (b - 1)) - 1 : (1 << b) - 1;
}

static vitq_status pow2_finalize(void *state) {
    pow2_state *s = state;
    int32_t qmin, qmax;
    code_range(s, &qmin, &qmax);
    for (int64_t g = 0; g < s->cfg.groups; g++) {
        float amax = fmaxf(-s->lo[g], s->hi[g]);
        float span = s->cfg.symmetric ? amax / (float)qmax : (s->hi[g] - s->lo[g]) / (float)(qmax - qmin);
        s->scale[g] = span > 0 ? exp2f(ceilf(log2f(span))) : 1.0f; /* round the step up to 2^k */
        s->zero[g] = s->cfg.symmetric ? 0.0f : fminf(fmaxf(nearbyintf(-s->lo[g] / s->scale[g]), 0), (float)qmax);
    }
    s->finalized = 1;
    return VITQ_OK;
}

static int32_t encode(const pow2_state *s, int64_t g, float x) {
    int32_t qmin, qmax;
    code_range(s, &qmin, &qmax);
    float q = nearbyintf(x / s->scale[g]) + s->zero[g];
    return (int32_t)fminf(fmaxf(q, (float)qmin), (float)qmax);
}

static float decode(const pow2_state *s, int64_t g, int32_t q) { return ((float)q - s->zero[g]) * s->scale[g]; }

static vitq_status pow2_fake_quant(void *state, const vitq_tensor_view *x) {
    const pow2_state *s = state;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *v = x->data + o * x->outer_stride + c * x->inner;
            for (int64_t i = 0; i < x->inner; i++) v[i] = decode(s, group_of(s, c), encode(s, group_of(s, c), v[i]));
        }
    return VITQ_OK;
}

static vitq_status pow2_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {
    const pow2_state *s = state;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++)
            for (int64_t i = 0; i < x->inner; i++)
                *codes++ = encode(s, group_of(s, c), x->data[o * x->outer_stride + c * x->inner + i]);
    return VITQ_OK;
}

static vitq_status pow2_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {
    const pow2_state *s = state;
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t c = 0; c < out->channels; c++)
            for (int64_t i = 0; i < out->inner; i++)
                out->data[o * out->outer_stride + c * out->inner + i] = decode(s, group_of(s, c), *codes++);
    return VITQ_OK;
}

static int32_t pow2_param_count(void *state) {
    (void)state;
    return 2;
}

static vitq_status pow2_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count) {
    const pow2_state *s = state;
    *name = index == 0 ? "scale" : "zero_point";
    *values = index == 0 ? s->scale : s->zero;
    *count = s->cfg.groups;
    return VITQ_OK;
}

static vitq_status pow2_set_param(void *state, const char *name, const float *values, int64_t count) {
    pow2_state *s = state;
    if (count != s->cfg.groups) return s->host->fail(s->host, VITQ_ERR_SHAPE, "parameter count");
    float *dst = strcmp(name, "scale") == 0 ? s->scale : strcmp(name, "zero_point") == 0 ? s->zero : NULL;
    if (!dst) return s->host->fail(s->host, VITQ_ERR_UNKNOWN_NAME, "unknown parameter");
    memcpy(dst, values, (size_t)count * sizeof(float));
    s->finalized = 1;
    return VITQ_OK;
}

static const vitq_scheme pow2_scheme = {
    .struct_size = sizeof(vitq_scheme),
    .abi_version = VITQ_SCHEME_ABI_VERSION,
    .name = "pow2",
    .description = "min-max with power-of-two scales (example of a third-party scheme)",
    .num_passes = 1,
    .min_bits = 2,
    .max_bits = 8,
    .create = pow2_create,
    .destroy = pow2_destroy,
    .observe = pow2_observe,
    .finalize = pow2_finalize,
    .fake_quant = pow2_fake_quant,
    .quantize = pow2_quantize,
    .dequantize = pow2_dequantize,
    .param_count = pow2_param_count,
    .get_param = pow2_get_param,
    .set_param = pow2_set_param,
};

/* ---- using it ------------------------------------------------------------------------------------ */

static int fail(const char *what, vitq_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, vitq_status_string(st), vitq_last_error());
    return 1;
}

static double top1(const vitq_model *m, const vitq_dataset *d, size_t n, int classes, float *logits) {
    if (vitq_model_forward_dataset(m, d, 0, n, logits) != VITQ_OK) return -1.0;
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        int32_t label = -1;
        for (int c = 1; c < classes; c++)
            if (logits[i * (size_t)classes + (size_t)c] > logits[i * (size_t)classes + (size_t)best]) best = c;
        if (vitq_dataset_label(d, i, &label) != VITQ_OK) return -1.0; /* no label: no accuracy to give */
        correct += best == label;
    }
    return (double)correct / (double)n;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL CALIB_IMAGES TEST_IMAGES TEST_LABELS [COUNT]\n", argv[0]);
        return 2;
    }
    size_t count = argc > 5 ? (size_t)strtoul(argv[5], NULL, 10) : 1000;
    vitq_registry *reg = NULL;
    vitq_model *fp = NULL, *q = NULL, *again = NULL;
    vitq_dataset *calib = NULL, *test = NULL;
    vitq_calibrator *cal = NULL;
    vitq_status st;
    pow2_context ctx = {0};
    vitq_scheme table = pow2_scheme;
    table.user = &ctx;
    if ((st = vitq_registry_create(NULL, &reg)) || (st = vitq_registry_add(reg, &table))) return fail("registry", st);
    if ((st = vitq_model_load_file(argv[1], NULL, &fp))) return fail(argv[1], st);
    if ((st = vitq_dataset_load_file(argv[2], NULL, NULL, &calib))) return fail(argv[2], st);
    if ((st = vitq_dataset_load_file(argv[3], argv[4], NULL, &test))) return fail(argv[3], st);
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.registry = reg;
    co.scheme = "pow2";
    if ((st = vitq_calibrator_create(fp, &co, &cal)) || (st = vitq_calibrator_feed_dataset(cal, calib, 0, 32)) ||
        (st = vitq_calibrator_run(cal, &q)))
        return fail("calibration", st);
    size_t size = 0;
    if ((st = vitq_model_save_memory(q, NULL, 0, &size))) return fail("save size", st);
    void *bytes = malloc(size);
    if (!bytes || (st = vitq_model_save_memory(q, bytes, size, &size))) return fail("save", st);
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.registry = reg;
    if ((st = vitq_model_load_memory(bytes, size, "pow2 model", &mo, &again))) return fail("reload", st);
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(q, &mi);
    float *logits = malloc(count * (size_t)mi.num_classes * sizeof(float));
    if (!logits) return 1;
    printf("scheme pow2: %d quantized points, %d quantizers created\n", (int)mi.num_quantized_points, ctx.created);
    printf("fp32 top1 = %.4f\n", top1(fp, test, count, mi.num_classes, logits));
    printf("pow2 W8A8 top1 = %.4f\n", top1(q, test, count, mi.num_classes, logits));
    printf("reloaded top1 = %.4f\n", top1(again, test, count, mi.num_classes, logits));
    free(logits);
    free(bytes);
    vitq_model_free(again);
    vitq_model_free(q);
    vitq_model_free(fp);
    vitq_calibrator_free(cal);
    vitq_dataset_free(calib);
    vitq_dataset_free(test);
    vitq_registry_free(reg);
    return 0;
}
