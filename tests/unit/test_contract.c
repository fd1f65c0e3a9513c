/* The contract of every registered scheme and PTQ method, over the lists the library gives
 * (vitq_registry_count/get, vitq_method_count/get_info): a scheme or method added to the library is
 * tested by being registered, with no line here.
 *
 * Schemes, through a stand-alone vitq_quantizer on random data, for each configuration the scheme
 * accepts (a weight per channel, an activation per tensor, asymmetric or symmetric) at several bit
 * widths: fake_quant == dequantize(quantize(x)) bit for bit; codes fit in `bits` (signed when
 * symmetric); the error is within half a step inside the clipping range of a uniform grid (scale and
 * zero_point), and finite and no worse than the data's range for any other; the parameters, set into a
 * fresh state of the scheme's table, give the same fake_quant bits (what a saved model relies on); bad
 * options are refused. Methods, on the small fixture odd-vit-hf: a W4A4 calibration runs, saves,
 * reloads with bit-identical logits; unknown and out-of-range options are refused. */
#include <stdint.h>
#include <time.h>

#include "harness.h"
#include "quant/metrics.h"

#define MODEL "tests/fixtures/models/odd-vit-hf"

#include "test_random.h"

/* ---- a host for calling a scheme table directly (the same services as the library's) ---------- */

static void *h_alloc(const vitq_scheme_host *h, size_t size) {
    (void)h;
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 1) == 0 ? p : NULL;
}
static void h_free(const vitq_scheme_host *h, void *p) {
    (void)h;
    free(p);
}
static vitq_status h_fail(const vitq_scheme_host *h, vitq_status status, const char *message) {
    (void)h, (void)message;
    return status;
}
static const vitq_scheme_host host = {sizeof(vitq_scheme_host), h_alloc, h_free, h_fail, NULL, vitq_i_metric};

/* ---- schemes ----------------------------------------------------------------------------------- */

typedef struct shape {
    const char *kind; /* vitq_quantizer "kind" */
    const char *granularity;
    int symmetric;
    int64_t outer, channels, inner;
} shape;

/* The configurations tried on every scheme; a scheme must accept at least one. */
static const shape shapes[] = {
    {"weight", "channel", 1, 1, 8, 16},
    {"activation", "tensor", 0, 24, 12, 1},
    {"activation", "tensor", 1, 24, 12, 1},
};

/* Weights: Gaussian with a few outliers. Activations: GELU of a wide Gaussian (skewed, some negative). */
static void fill(float *x, size_t n, int weight) {
    for (size_t i = 0; i < n; i++) {
        double g = gauss();
        x[i] = weight ? (float)(0.5 * g * (i % 37 == 0 ? 4.0 : 1.0))
                      : (float)(2.0 * g * 0.5 * (1.0 + erf(2.0 * g / sqrt(2.0))));
    }
}

static vitq_tensor_view view_of(float *x, const shape *sh) {
    vitq_tensor_view v = {sizeof v, x, sh->outer, sh->channels, sh->inner, sh->channels * sh->inner};
    return v;
}

/* A quantizer of `s` for shape sh at `bits`, observed and finalized on x; NULL when the scheme refuses
 * the configuration (its status in *refused). */
static vitq_quantizer *calibrated(const vitq_scheme *s, const shape *sh, int bits, float *x, vitq_status *refused) {
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(NULL, s->name, NULL, &q), VITQ_OK);
    if (!q) return NULL;
    CHECK_STATUS(vitq_quantizer_set(q, "kind", sh->kind), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set(q, "granularity", sh->granularity), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set_int(q, "symmetric", sh->symmetric), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set_int(q, "bits", bits), VITQ_OK);
    vitq_tensor_view v = view_of(x, sh);
    vitq_status st = VITQ_OK;
    for (int32_t pass = 0; !st && pass < vitq_quantizer_num_passes(q); pass++) st = vitq_quantizer_observe(q, pass, &v);
    if (st) { /* refused at creation (the first observation): a configuration the scheme does not take */
        *refused = st;
        vitq_quantizer_free(q);
        return NULL;
    }
    CHECK_STATUS(vitq_quantizer_finalize(q), VITQ_OK);
    return q;
}

/* The point configuration of `sh` at `bits`, as the library gives it to a scheme's create. */
static vitq_point_config config_of(const shape *sh, int bits) {
    int channel = strcmp(sh->granularity, "channel") == 0;
    vitq_point_config c = {.struct_size = sizeof c, .name = "quantizer", .bits = bits, .symmetric = sh->symmetric,
                           .channels = sh->channels, .groups = channel ? sh->channels : 1,
                           .channels_per_group = channel ? 1 : sh->channels};
    c.kind = strcmp(sh->kind, "weight") == 0 ? VITQ_POINT_WEIGHT : VITQ_POINT_ACTIVATION;
    c.granularity = channel ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    return c;
}

/* The same calibration through the scheme's table and `host`: a state to read the parameters from. */
static void *table_state(const vitq_scheme *s, const shape *sh, int bits, float *x) {
    vitq_point_config c = config_of(sh, bits);
    void *state = NULL;
    vitq_tensor_view v = view_of(x, sh);
    CHECK_STATUS(s->create(&c, &host, &state), VITQ_OK);
    if (!state) return NULL;
    vitq_status st = VITQ_OK;
    for (int32_t pass = 0; !st && pass < s->num_passes; pass++) st = s->observe(state, pass, &v);
    if (!st) st = s->finalize(state);
    CHECK_STATUS(st, VITQ_OK);
    return state;
}

/* Uniform grid: |x - fq(x)| <= scale / 2 inside [(qmin - zp) scale, (qmax - zp) scale], fq(x) within it. */
static int uniform_bound(const float *x, const float *fq, const shape *sh, int bits, const float *scale,
                         const float *zero, int64_t groups) {
    int64_t qmin = sh->symmetric ? -(1 << (bits - 1)) : 0, qmax = sh->symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    int ok = 1;
    for (int64_t o = 0; o < sh->outer; o++)
        for (int64_t c = 0; c < sh->channels; c++) {
            int64_t g = groups == 1 ? 0 : c;
            double s = scale[g], lo = ((double)qmin - zero[g]) * s, hi = ((double)qmax - zero[g]) * s;
            double tol = 1e-5 * s + 1e-6 * (fabs(lo) + fabs(hi));
            for (int64_t i = 0; i < sh->inner; i++) {
                size_t k = (size_t)((o * sh->channels + c) * sh->inner + i);
                if (fq[k] < lo - tol || fq[k] > hi + tol) ok = 0;
                if (x[k] >= lo && x[k] <= hi && fabs((double)x[k] - fq[k]) > 0.5 * s + tol) ok = 0;
            }
        }
    return ok;
}

/* Parameters of `state` into a fresh state of the table: the same fake_quant bits as `want`; and the
 * quantizer reports the same arrays by name. Returns 1 when the scheme's parameters are a uniform grid
 * (scale, zero_point), filling *scale, *zero, *groups for the error bound. */
static int check_params(const vitq_scheme *s, vitq_quantizer *q, void *state, const shape *sh, int bits,
                        const float *x, const float *want, const float **scale, const float **zero, int64_t *groups) {
    vitq_point_config c = config_of(sh, bits);
    void *fresh = NULL;
    CHECK_STATUS(s->create(&c, &host, &fresh), VITQ_OK);
    int32_t n = s->param_count(state);
    int uniform = n == 2;
    CHECK(n >= 1);
    for (int32_t k = 0; fresh && k < n; k++) {
        const char *name = NULL;
        const float *values = NULL, *from_q = NULL;
        int64_t count = 0, count_q = 0;
        CHECK_STATUS(s->get_param(state, k, &name, &values, &count), VITQ_OK);
        if (!name || !values) continue;
        CHECK_STATUS(vitq_quantizer_param(q, name, &from_q, &count_q), VITQ_OK);
        CHECK(from_q && count_q == count && memcmp(from_q, values, (size_t)count * sizeof(float)) == 0);
        CHECK_STATUS(s->set_param(fresh, name, values, count), VITQ_OK);
        if (strcmp(name, "scale") == 0) *scale = values, *groups = count;
        else if (strcmp(name, "zero_point") == 0) *zero = values;
        else uniform = 0;
    }
    size_t total = (size_t)(sh->outer * sh->channels * sh->inner);
    float *y = malloc(total * sizeof(float));
    memcpy(y, x, total * sizeof(float));
    vitq_tensor_view v = view_of(y, sh);
    if (fresh) {
        CHECK_STATUS(s->fake_quant(fresh, &v), VITQ_OK);
        CHECK(memcmp(y, want, total * sizeof(float)) == 0);
        s->destroy(fresh);
    }
    free(y);
    return uniform && *scale && *zero;
}

/* One scheme, one accepted configuration, one bit width. Returns 1 when its parameters are a uniform
 * grid (checked against the half-step bound). */
static int check_calibrated(const vitq_scheme *s, vitq_quantizer *q, const shape *sh, int bits, float *x) {
    int before = harness_check_failures;
    size_t total = (size_t)(sh->outer * sh->channels * sh->inner);
    float *fq = malloc(total * sizeof(float)), *dq = malloc(total * sizeof(float));
    int32_t *codes = malloc(total * sizeof(int32_t));
    memcpy(fq, x, total * sizeof(float));
    vitq_tensor_view vf = view_of(fq, sh), vx = view_of(x, sh), vd = view_of(dq, sh);
    CHECK_STATUS(vitq_quantizer_fake_quant(q, &vf), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_quantize(q, &vx, codes), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_dequantize(q, codes, &vd), VITQ_OK);
    CHECK(memcmp(fq, dq, total * sizeof(float)) == 0);
    int32_t lo = sh->symmetric ? -(1 << (bits - 1)) : 0, hi = sh->symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    size_t outside = 0;
    double xmin = INFINITY, xmax = -INFINITY, worst = 0.0;
    for (size_t i = 0; i < total; i++) {
        outside += codes[i] < lo || codes[i] > hi;
        if (x[i] < xmin) xmin = x[i];
        if (x[i] > xmax) xmax = x[i];
        double e = isfinite(fq[i]) ? fabs((double)x[i] - fq[i]) : INFINITY;
        if (e > worst) worst = e;
    }
    CHECK(outside == 0);
    CHECK(worst <= xmax - xmin); /* finite, and no worse than the range of the data */
    void *state = table_state(s, sh, bits, x);
    const float *scale = NULL, *zero = NULL;
    int64_t groups = 0;
    int uniform = state && check_params(s, q, state, sh, bits, x, fq, &scale, &zero, &groups);
    if (uniform) {
        CHECK(groups == 1 || groups == sh->channels);
        CHECK(uniform_bound(x, fq, sh, bits, scale, zero, groups));
    }
    if (state) s->destroy(state);
    if (harness_check_failures > before)
        printf("    (scheme %s, %s %s symmetric %d, %d bits: max error %.4g, data range %.4g)\n", s->name, sh->kind,
               sh->granularity, sh->symmetric, bits, worst, xmax - xmin);
    free(fq), free(dq), free(codes);
    return uniform;
}

/* Out-of-range and unknown options of `s` (and of the generic key bits) are refused before any data. */
static void check_bad_options(const vitq_scheme *s) {
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(NULL, s->name, NULL, &q), VITQ_OK);
    if (!q) return;
    CHECK_STATUS(vitq_quantizer_set_int(q, "bits", s->max_bits + 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_quantizer_set_int(q, "bits", s->min_bits - 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_quantizer_set(q, "no_such_option", "1"), VITQ_ERR_UNKNOWN_NAME);
    for (int32_t k = 0; k < s->num_options; k++) {
        const vitq_scheme_option *o = &s->options[k];
        double above = o->max_value + fmax(1.0, fabs(o->max_value)), below = o->min_value - fmax(1.0, fabs(o->min_value));
        CHECK(o->min_value <= o->default_value && o->default_value <= o->max_value);
        CHECK_STATUS(vitq_quantizer_set_float(q, o->name, above), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(vitq_quantizer_set_float(q, o->name, below), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(vitq_quantizer_set(q, o->name, "not-a-number"), VITQ_ERR_OUT_OF_RANGE);
        if (o->is_integer && o->min_value + 0.5 < o->max_value)
            CHECK_STATUS(vitq_quantizer_set_float(q, o->name, o->min_value + 0.5), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(vitq_quantizer_set_float(q, o->name, o->default_value), VITQ_OK);
    }
    vitq_quantizer_free(q);
}

static void test_every_scheme(void) {
    int32_t n = vitq_registry_count(NULL);
    CHECK(n >= 1);
    for (int32_t i = 0; i < n; i++) {
        const vitq_scheme *s = vitq_registry_get(NULL, i);
        int before = harness_check_failures, accepted = 0, uniform = 0;
        for (int32_t j = 0; j < i; j++) CHECK(strcmp(vitq_registry_get(NULL, j)->name, s->name) != 0);
        check_bad_options(s);
        int widths[3] = {s->min_bits, 4, s->max_bits};
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            const shape *sh = &shapes[k];
            size_t total = (size_t)(sh->outer * sh->channels * sh->inner);
            float *x = malloc(total * sizeof(float));
            fill(x, total, strcmp(sh->kind, "weight") == 0);
            for (int w = 0; w < 3; w++) {
                int bits = widths[w];
                if (bits < s->min_bits || bits > s->max_bits || (w > 0 && bits == widths[w - 1])) continue;
                vitq_status refused = VITQ_OK;
                vitq_quantizer *q = calibrated(s, sh, bits, x, &refused);
                if (!q) { /* refusing a configuration is allowed, with a status that says it is out of range */
                    CHECK(refused == VITQ_ERR_OUT_OF_RANGE);
                    continue;
                }
                accepted++;
                uniform += check_calibrated(s, q, sh, bits, x);
                vitq_quantizer_free(q);
            }
            free(x);
        }
        CHECK(accepted > 0);
        printf("    %-15s %d configurations (%s)%s\n", s->name, accepted,
               uniform == accepted ? "uniform grid: half-step bound" : uniform ? "partly uniform" : "own grid: range bound",
               harness_check_failures > before ? ": FAILED" : "");
    }
}

/* ---- methods ----------------------------------------------------------------------------------- */

static const vitq_scheme_option *option_at(const vitq_method_info *m, int32_t k) {
    return (const vitq_scheme_option *)((const char *)m->options + (size_t)k * m->option_size);
}

static void test_method_info_api(void) {
    int32_t n = vitq_method_count();
    CHECK(n >= 1);
    vitq_method_info m;
    vitq_method_info_init(&m);
    CHECK(m.struct_size == sizeof m);
    CHECK_STATUS(vitq_method_get_info(-1, &m), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_method_get_info(n, &m), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_method_get_info(0, NULL), VITQ_ERR_INVALID_ARGUMENT);
    m.struct_size = 4;
    CHECK_STATUS(vitq_method_get_info(0, &m), VITQ_ERR_ABI_MISMATCH);
    /* a caller built against a later header: the members it knows beyond ours are left alone */
    struct {
        vitq_method_info info;
        uint32_t later;
    } big;
    memset(&big, 0, sizeof big);
    big.info.struct_size = sizeof big;
    big.later = 0xC0FFEEu;
    CHECK_STATUS(vitq_method_get_info(0, &big.info), VITQ_OK);
    CHECK(big.info.struct_size == sizeof big && big.later == 0xC0FFEEu && big.info.name != NULL);
    for (int32_t i = 0; i < n; i++) {
        vitq_method_info_init(&m);
        CHECK_STATUS(vitq_method_get_info(i, &m), VITQ_OK);
        CHECK(m.name && *m.name && m.description && *m.description);
        CHECK(m.option_size >= sizeof(vitq_scheme_option) && (m.num_options == 0 || m.options));
        /* a method name hides a scheme of the same name in vitq_calibrator_options.scheme */
        for (int32_t s = 0; s < vitq_registry_count(NULL); s++) CHECK(strcmp(vitq_registry_get(NULL, s)->name, m.name) != 0);
        for (int32_t j = 0; j < i; j++) {
            vitq_method_info other;
            vitq_method_info_init(&other);
            CHECK_STATUS(vitq_method_get_info(j, &other), VITQ_OK);
            CHECK(strcmp(other.name, m.name) != 0);
        }
        for (int32_t k = 0; k < m.num_options; k++) {
            const vitq_scheme_option *o = option_at(&m, k);
            CHECK(o->name && o->min_value <= o->default_value && o->default_value <= o->max_value);
        }
    }
}

/* Calibration images: random normalised pixels, the same every run. */
static float *random_images(size_t n, size_t per_image) {
    float *x = malloc(n * per_image * sizeof(float));
    for (size_t i = 0; i < n * per_image; i++) x[i] = (float)gauss();
    return x;
}

static void check_method(const vitq_model *fp, const vitq_model_options *mo, const vitq_method_info *m,
                         const float *images, size_t n, int classes) {
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = m->name;
    o.weight_bits = 4;
    o.activation_bits = 4;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    if (!c) return;
    CHECK_STATUS(vitq_calibrator_set_option(c, "no_such_option", "1"), VITQ_ERR_UNKNOWN_NAME);
    for (int32_t k = 0; k < m->num_options; k++) {
        const vitq_scheme_option *opt = option_at(m, k);
        char text[64];
        snprintf(text, sizeof text, "%.17g", opt->max_value + fmax(1.0, fabs(opt->max_value)));
        CHECK_STATUS(vitq_calibrator_set_option(c, opt->name, text), VITQ_ERR_OUT_OF_RANGE);
        snprintf(text, sizeof text, "%.17g", opt->default_value);
        CHECK_STATUS(vitq_calibrator_set_option(c, opt->name, text), VITQ_OK);
    }
    vitq_model *q = NULL, *again = NULL;
    CHECK_STATUS(vitq_calibrator_feed(c, images, n), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_free(c);
    if (!q) return;
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(q, NULL, 0, &size), VITQ_OK);
    void *bytes = malloc(size ? size : 1);
    CHECK_STATUS(vitq_model_save_memory(q, bytes, size, &size), VITQ_OK);
    CHECK_STATUS(vitq_model_load_memory(bytes, size, "reloaded", mo, &again), VITQ_OK);
    if (again) {
        float *a = malloc(n * (size_t)classes * sizeof(float)), *b = malloc(n * (size_t)classes * sizeof(float));
        CHECK_STATUS(vitq_model_forward(q, images, n, a), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(again, images, n, b), VITQ_OK);
        CHECK(memcmp(a, b, n * (size_t)classes * sizeof(float)) == 0);
        int finite = 1;
        for (size_t i = 0; i < n * (size_t)classes; i++) finite &= isfinite(a[i]) != 0;
        CHECK(finite);
        free(a), free(b);
    }
    vitq_model_free(again);
    vitq_model_free(q);
    free(bytes);
}

static void test_every_method(void) {
    /* one thread: the model is tiny, and OpenMP's spinning threads make a busy machine crawl */
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.num_threads = 1;
    vitq_model *fp = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, &mo, &fp), VITQ_OK);
    if (!fp) return;
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(fp, &info), VITQ_OK);
    size_t per_image = (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size;
    size_t n = harness_quick() ? 4 : 8;
    float *images = random_images(n, per_image);
    for (int32_t i = 0; i < vitq_method_count(); i++) {
        vitq_method_info m;
        vitq_method_info_init(&m);
        CHECK_STATUS(vitq_method_get_info(i, &m), VITQ_OK);
        if (!m.name) continue;
        int before = harness_check_failures;
        clock_t t0 = clock();
        check_method(fp, &mo, &m, images, n, info.num_classes);
        printf("    %-15s W4A4 on %zu images: %s (%.2f s CPU)\n", m.name, n,
               harness_check_failures > before ? "FAILED" : "runs, saves, reloads bit for bit",
               (double)(clock() - t0) / CLOCKS_PER_SEC);
    }
    free(images);
    vitq_model_free(fp);
}

int main(void) {
    RUN(test_every_scheme);
    RUN(test_method_info_api);
    RUN(test_every_method);
    HARNESS_EXIT();
}
