/* The quantizer components (twin-softmax, twin-gelu, log2, log-sqrt2, mpq): through the public stand-alone
 * vitq_quantizer API for calibration and use, through their vtables (vitq_registry_get) for parameters,
 * configurations and allocation failures. */
#include <float.h>
#include <stdint.h>

#include "quant/metrics.h"
#include "harness.h"
#include "scheme_host.h"

/* ---- data ------------------------------------------------------------------------------------ */

#include "test_random.h"

#define SENTINEL 12345.678f

static vitq_tensor_view view3(float *d, int64_t outer, int64_t channels, int64_t inner, int64_t stride) {
    vitq_tensor_view v = {sizeof(vitq_tensor_view), d, outer, channels, inner, stride};
    return v;
}

/* Attention probabilities, `outer` x `heads` x tokens x tokens (stride: + `gap` sentinels per slice): each
 * row the softmax of Gaussian logits of sd `sharp` (large sd: a few large values and a long tail of small
 * ones, the power law of real attention). */
static float *attention(int64_t outer, int64_t heads, int64_t tokens, double sharp, int64_t gap) {
    int64_t slice = heads * tokens * tokens, stride = slice + gap;
    float *p = malloc((size_t)(outer * stride) * sizeof(float));
    double *logit = malloc((size_t)tokens * sizeof(double));
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t r = 0; r < heads * tokens; r++) {
            double max = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < tokens; j++) logit[j] = gauss() * sharp, max = fmax(max, logit[j]);
            for (int64_t j = 0; j < tokens; j++) sum += exp(logit[j] - max);
            for (int64_t j = 0; j < tokens; j++) p[o * stride + r * tokens + j] = (float)(exp(logit[j] - max) / sum);
        }
        for (int64_t k = slice; k < stride; k++) p[o * stride + k] = SENTINEL;
    }
    free(logit);
    return p;
}

/* GELU outputs [tokens][features] (+ `gap` sentinels per token), features of different spreads. */
static float *gelu_acts(int64_t tokens, int64_t features, int64_t gap) {
    int64_t stride = features + gap;
    float *p = malloc((size_t)(tokens * stride) * sizeof(float));
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t k = 0; k < stride; k++) {
            double x = gauss() * (1.0 + (double)(k % 3)) - 0.5;
            p[t * stride + k] = k < features ? (float)(0.5 * x * (1.0 + erf(x / sqrt(2.0)))) : SENTINEL;
        }
    return p;
}

static float *copy_floats(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* ---- the schemes ------------------------------------------------------------------------------- */

typedef struct scheme_info {
    const char *name;
    int symmetric, passes, min_bits, softmax; /* softmax: values in [0, 1] */
} scheme_info;

static const scheme_info schemes[5] = {
    {"twin-softmax", 0, 1, 3, 1}, {"twin-gelu", 1, 2, 3, 0}, {"log2", 0, 1, 2, 1}, {"log-sqrt2", 0, 1, 2, 1},
    {"mpq", 0, 2, 2, 1},
};

static const vitq_scheme *table(const char *name) {
    for (int32_t i = 0; i < vitq_registry_count(NULL); i++)
        if (strcmp(vitq_registry_get(NULL, i)->name, name) == 0) return vitq_registry_get(NULL, i);
    return NULL;
}

static int last_error_has(const char *what) { return strstr(vitq_last_error(), what) != NULL; }

/* A public quantizer of `scheme` with the symmetry it needs; `key` = `value` sets one more option. */
static vitq_quantizer *make_q(const scheme_info *si, int bits, const char *gran, int heads, const char *key,
                              const char *value) {
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(NULL, si->name, NULL, &q), VITQ_OK);
    if (!q) return NULL;
    CHECK_STATUS(vitq_quantizer_set_int(q, "bits", bits), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set(q, "granularity", gran), VITQ_OK);
    if (heads) CHECK_STATUS(vitq_quantizer_set_int(q, "heads", heads), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set_int(q, "symmetric", si->symmetric), VITQ_OK);
    if (key) CHECK_STATUS(vitq_quantizer_set(q, key, value), VITQ_OK);
    return q;
}

static void calibrate_q(vitq_quantizer *q, const vitq_tensor_view *v) {
    for (int32_t p = 0; p < vitq_quantizer_num_passes(q); p++) CHECK_STATUS(vitq_quantizer_observe(q, p, v), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_finalize(q), VITQ_OK);
}

static const float *param(const vitq_quantizer *q, const char *name, int64_t want) {
    const float *v = NULL;
    int64_t n = -1;
    CHECK_STATUS(vitq_quantizer_param(q, name, &v, &n), VITQ_OK);
    CHECK(n == want);
    return n == want ? v : NULL;
}

/* Sum of (x - fake_quant(x))^2 over the dense part of the view. */
static double sq_error(vitq_quantizer *q, const vitq_tensor_view *v) {
    int64_t n = v->outer * v->outer_stride;
    float *y = copy_floats(v->data, (size_t)n);
    vitq_tensor_view vy = *v;
    vy.data = y;
    CHECK_STATUS(vitq_quantizer_fake_quant(q, &vy), VITQ_OK);
    double e = 0.0;
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t k = 0; k < v->channels * v->inner; k++) {
            double d = (double)v->data[o * v->outer_stride + k] - y[o * v->outer_stride + k];
            e += d * d;
        }
    free(y);
    return e;
}

/* ---- round trip: codes in range, dequantize(quantize(x)) == fake_quant(x), gaps untouched ------------ */

static void round_trip(const scheme_info *si, int bits, const char *gran, int64_t heads, int64_t tokens) {
    const int64_t outer = 3, gap = 5;
    float *calib = si->softmax ? attention(outer, heads, tokens, 3.0, gap) : gelu_acts(outer * 7, heads, gap);
    float *x = si->softmax ? attention(outer, heads, tokens, 4.0, gap) : gelu_acts(outer * 7, heads, gap);
    int64_t o_n = si->softmax ? outer : outer * 7, inner = si->softmax ? tokens * tokens : 1;
    int64_t stride = heads * inner + gap, total = o_n * stride, dense = o_n * heads * inner;
    /* beyond the calibrated range, and (for the probabilities) below 0 and above 1 */
    x[0] = si->softmax ? 1.5f : 40.0f, x[1] = si->softmax ? -0.25f : -3.0f, x[2] = 0.0f;
    vitq_tensor_view vc = view3(calib, o_n, heads, inner, stride), vx = view3(x, o_n, heads, inner, stride);
    vitq_quantizer *q = make_q(si, bits, gran, strcmp(gran, "head") == 0 ? (int)heads : 0, NULL, NULL);
    int32_t *codes = malloc((size_t)dense * sizeof(int32_t));
    float *fq = copy_floats(x, (size_t)total), *dq = malloc((size_t)total * sizeof(float));
    for (int64_t k = 0; k < total; k++) dq[k] = SENTINEL;
    vitq_tensor_view vfq = view3(fq, o_n, heads, inner, stride), vdq = view3(dq, o_n, heads, inner, stride);
    if (q) {
        calibrate_q(q, &vc);
        CHECK_STATUS(vitq_quantizer_quantize(q, &vx, codes), VITQ_OK);
        CHECK_STATUS(vitq_quantizer_fake_quant(q, &vfq), VITQ_OK);
        CHECK_STATUS(vitq_quantizer_dequantize(q, codes, &vdq), VITQ_OK);
    }
    int32_t qmin = si->symmetric ? -(1 << (bits - 1)) : 0, qmax = si->symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    int codes_ok = 1, equal = 1, gap_ok = 1, moved = 0;
    int64_t d = 0; /* dense index of the codes */
    for (int64_t o = 0; o < o_n; o++)
        for (int64_t k = 0; k < stride; k++) {
            int64_t at = o * stride + k;
            if (k >= heads * inner) {
                gap_ok &= fq[at] == SENTINEL && dq[at] == SENTINEL;
                continue;
            }
            codes_ok &= codes[d] >= qmin && codes[d] <= qmax;
            equal &= memcmp(&fq[at], &dq[at], sizeof(float)) == 0;
            moved |= fq[at] != x[at];
            d++;
        }
    CHECK(codes_ok && equal && gap_ok && moved);
    if (q) {
        int32_t saved = codes[7];
        codes[7] = qmax + 1;
        CHECK_STATUS(vitq_quantizer_dequantize(q, codes, &vdq), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has("code"));
        codes[7] = qmin - 1;
        CHECK_STATUS(vitq_quantizer_dequantize(q, codes, &vdq), VITQ_ERR_OUT_OF_RANGE);
        codes[7] = saved;
    }
    if (!(codes_ok && equal && gap_ok && moved))
        printf("    %s bits %d granularity %s: codes %d equal %d gap %d moved %d\n", si->name, bits, gran, codes_ok,
               equal, gap_ok, moved);
    vitq_quantizer_free(q);
    free(calib), free(x), free(codes), free(fq), free(dq);
}

static void test_round_trip(void) {
    for (int s = 0; s < 5; s++)
        for (int bits = schemes[s].min_bits; bits <= 8; bits++) {
            round_trip(&schemes[s], bits, "tensor", 3, 6);
            round_trip(&schemes[s], bits, "channel", 3, 5);
            if (schemes[s].softmax) round_trip(&schemes[s], bits, "head", 4, 4);
        }
}

/* ---- error bounds ------------------------------------------------------------------------------ */

/* Values spread over [lo, hi] in log scale, as one tensor of n activations. */
static float *log_spread(int64_t n, double lo, double hi) {
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo * pow(hi / lo, urand()));
    return x;
}

/* fake_quant of a copy of x[0..n) seen as n tokens of one feature. */
static float *fq_of(vitq_quantizer *q, const float *x, int64_t n) {
    float *y = copy_floats(x, (size_t)n);
    vitq_tensor_view v = view3(y, n, 1, 1, 1);
    CHECK_STATUS(vitq_quantizer_fake_quant(q, &v), VITQ_OK);
    return y;
}

static void test_twin_bounds(void) {
    const int64_t n = 20000;
    for (int bits = 3; bits <= 8; bits++) {
        float *x = log_spread(n, 1e-7, 1.0);
        vitq_tensor_view v = view3(x, n, 1, 1, 1);
        vitq_quantizer *q = make_q(&schemes[0], bits, "tensor", 0, NULL, NULL);
        if (!q) continue;
        calibrate_q(q, &v);
        const float *split = param(q, "split", 1);
        float *y = fq_of(q, x, n);
        double levels = (double)(1 << (bits - 1)) - 1.0, s = split ? split[0] : 1.0, d1 = s / levels, d2 = 1.0 / levels;
        int ok = 1;
        for (int64_t i = 0; i < n; i++)
            ok &= fabs((double)x[i] - y[i]) <= (x[i] < s ? d1 : d2) * 0.5 * (1.0 + 1e-4);
        CHECK(ok);
        vitq_quantizer_free(q);
        free(x), free(y);
    }
    for (int bits = 3; bits <= 8; bits++)
        for (int pow2 = 0; pow2 <= 1; pow2++) {
            float *x = gelu_acts(5000, 1, 0);
            vitq_tensor_view v = view3(x, 5000, 1, 1, 1);
            vitq_quantizer *q = make_q(&schemes[1], bits, "tensor", 0, "pow2", pow2 ? "1" : "0");
            if (!q) continue;
            calibrate_q(q, &v);
            const float *scale = param(q, "scale", 1);
            float *y = fq_of(q, x, 5000);
            double n2 = (double)(1 << (bits - 1)), dpos = scale ? scale[0] : 1.0, dneg = (double)(0.16997124f / (float)n2);
            int ok = 1, signs = 1;
            for (int64_t i = 0; i < 5000; i++) {
                double lim = x[i] >= 0 ? dpos : dneg;
                if (x[i] <= (n2 - 1.0) * dpos && x[i] >= -n2 * dneg) ok &= fabs((double)x[i] - y[i]) <= 0.5 * lim * (1 + 1e-4);
                signs &= (x[i] < 0) == (y[i] < 0) || y[i] == 0.0f;
            }
            CHECK(ok && signs);
            if (pow2) { /* dpos / dneg a power of two */
                int e;
                CHECK(frexp(dpos / dneg, &e) == 0.5);
            }
            vitq_quantizer_free(q);
            free(x), free(y);
        }
}

/* log2 (steps = 1 per octave) and log-sqrt2 (2): x in the representable range comes back within a factor
 * 2^(1 / (2 steps)), x below it as 0, x above s as s. */
static void test_log_bounds(void) {
    const int64_t n = 20000;
    for (int steps = 1; steps <= 2; steps++)
        for (int bits = 2; bits <= 8; bits++) {
            const scheme_info *si = &schemes[steps == 1 ? 2 : 3];
            float *x = log_spread(n, 1e-12, 0.9);
            x[0] = 0.9f, x[1] = 0.0f, x[2] = -0.1f;
            vitq_tensor_view v = view3(x, n, 1, 1, 1);
            vitq_quantizer *q = make_q(si, bits, "tensor", 0, NULL, NULL);
            if (!q) continue;
            calibrate_q(q, &v);
            const float *scale = param(q, "scale", 1);
            double s = scale ? scale[0] : 1.0, L = (double)(1 << bits);
            double floor_x = s * pow(2.0, -(L - 1.5) / steps), r = pow(2.0, 0.5 / steps);
            x[3] = (float)(2.0 * s);
            float *y = fq_of(q, x, n);
            int ok = 1, zero_ok = 1, top_ok = y[3] == (float)s && y[1] == 0.0f && y[2] == 0.0f;
            for (int64_t i = 4; i < n; i++) {
                if (x[i] > floor_x * (1 + 1e-6) && x[i] <= s) ok &= y[i] / x[i] >= 1 / r * (1 - 1e-6) && y[i] / x[i] <= r * (1 + 1e-6);
                if (x[i] < floor_x * (1 - 1e-6)) zero_ok &= y[i] == 0.0f;
            }
            CHECK(ok && zero_ok && top_ok);
            if (!(ok && zero_ok && top_ok)) printf("    %s bits %d: %d %d %d\n", si->name, bits, ok, zero_ok, top_ok);
            vitq_quantizer_free(q);
            free(x), free(y);
        }
}

static void test_mpq_bounds(void) {
    for (int bits = 2; bits <= 8; bits++) {
        float *x = attention(4, 2, 8, 3.0, 0);
        vitq_tensor_view v = view3(x, 4, 2, 64, 128);
        vitq_quantizer *q = make_q(&schemes[4], bits, "head", 2, NULL, NULL);
        if (!q) continue;
        calibrate_q(q, &v);
        const float *lo = param(q, "lower", 2), *hi = param(q, "upper", 2);
        float *y = copy_floats(x, 512);
        vitq_tensor_view vy = view3(y, 4, 2, 64, 128);
        CHECK_STATUS(vitq_quantizer_fake_quant(q, &vy), VITQ_OK);
        int ok = 1, max_ok = 1;
        for (int h = 0; lo && hi && h < 2; h++) {
            /* the power grid u (c / top)^p, p = ln(u / l) / ln(top) (docs/methods.md, APQ-ViT) */
            double l = lo[h], u = hi[h], top = (1 << bits) - 1, seen = 0.0;
            double p = l > 0 && u > l ? log(u / l) / log(top) : 0.0;
            for (int o = 0; o < 4; o++)
                for (int i = 0; i < 64; i++) {
                    double xi = x[o * 128 + h * 64 + i], yi = y[o * 128 + h * 64 + i];
                    seen = fmax(seen, xi);
                    if (xi < l / 2) ok &= yi == 0.0;
                    else if (xi < l) ok &= yi == (float)l;
                    else { /* within half the gap between the levels around xi */
                        double c = p > 0 ? fmin(floor(top * pow(xi / u, 1 / p)), top - 1) : 0;
                        double gap = p > 0 ? u * (pow((c + 1) / top, p) - pow(c / top, p)) : u;
                        ok &= fabs(xi - yi) <= gap / 2 * (1 + 1e-4) + 1e-7;
                    }
                }
            max_ok &= u == (float)seen; /* u pinned to the maximum */
        }
        CHECK(ok && max_ok);
        vitq_quantizer_free(q);
        free(x), free(y);
    }
}

/* ---- what finalize chooses ---------------------------------------------------------------------- */

/* Power-law values in (0, 1]: Pareto with P(x > t) = 1e-4 / t, clipped at 1. */
static float *power_law(int64_t n) {
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)fmin(1.0, 1e-4 / (1.0 - urand()));
    return x;
}

/* twin-softmax: the split of least squared error, exactly (the same argmin as a brute force through set_param);
 * a small split for power-law data, a large one for values spread evenly over [0, 1]. */
static void test_twin_split_choice(void) {
    const vitq_scheme *sc = table("twin-softmax");
    const int64_t n = 6000;
    for (int flat = 0; flat <= 1; flat++)
        for (int form = 0; form <= 1; form++)
            for (int bits = 4; bits <= 8; bits += 4) {
                float *x = power_law(n);
                for (int64_t i = 0; flat && i < n; i++) x[i] = (float)urand();
                vitq_tensor_view v = view3(x, n / 4, 2, 2, 4);
                vitq_quantizer *q = make_q(&schemes[0], bits, "tensor", 0, "form", form ? "1" : "0");
                if (!q || !sc) continue;
                calibrate_q(q, &v);
                const float *split = param(q, "split", 1);
                double opt = (double)form, best = INFINITY;
                vitq_point_config cfg = {sizeof cfg, "blocks.0.attn.softmax.out", VITQ_POINT_ACTIVATION, 0, bits,
                                         VITQ_GRAN_TENSOR, 0, 2, 1, 2, &opt, 0, NULL};
                int best_i = -1;
                for (int i = 0; i < 20; i++) { /* every candidate, through a state that only had its split set */
                    void *st = NULL;
                    CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
                    float sp = ldexpf(1.0f, -i);
                    CHECK_STATUS(sc->set_param(st, "split", &sp, 1), VITQ_OK);
                    float *y = copy_floats(x, (size_t)n);
                    vitq_tensor_view vy = v;
                    vy.data = y;
                    CHECK_STATUS(sc->fake_quant(st, &vy), VITQ_OK);
                    double e = 0.0;
                    for (int64_t k = 0; k < n; k++) e += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
                    if (e < best) best = e, best_i = i;
                    free(y);
                    sc->destroy(st);
                }
                CHECK(split && split[0] == ldexpf(1.0f, -best_i)); /* the sums are exact: the same argmin */
                if (split && !flat) CHECK(split[0] <= 0.125f); /* the low range is where the values are */
                if (split && flat && form == 0) CHECK(split[0] >= 0.5f);
                vitq_quantizer_free(q);
                free(x);
            }
    CHECK(host.live == 0);
}

/* twin-gelu: the chosen step is (close to) the best of PTQ4ViT's grid on the data. */
static void test_gelu_scale_choice(void) {
    for (int bits = 3; bits <= 8; bits += 1) {
        float *x = gelu_acts(3000, 1, 0);
        vitq_tensor_view v = view3(x, 3000, 1, 1, 1);
        vitq_quantizer *q = make_q(&schemes[1], bits, "tensor", 0, NULL, NULL);
        if (!q) continue;
        calibrate_q(q, &v);
        const float *scale = param(q, "scale", 1);
        double max = 0.0, best = INFINITY, chosen = sq_error(q, &v);
        for (int i = 0; i < 3000; i++) max = fmax(max, x[i]);
        /* brute force on the exact data through the vtable */
        const vitq_scheme *sc = table("twin-gelu");
        vitq_point_config cfg = {sizeof cfg, "blocks.0.mlp.fc2.input", VITQ_POINT_ACTIVATION, 0, bits,
                                 VITQ_GRAN_TENSOR, 1, 1, 1, 1, NULL, 0, NULL};
        void *st = NULL;
        CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
        for (int i = 0; st && i <= 100; i++) {
            float d = (float)((0.01 + i * 1.19 / 100) * max / ((1 << (bits - 1)) - 1));
            CHECK_STATUS(sc->set_param(st, "scale", &d, 1), VITQ_OK);
            float *y = copy_floats(x, 3000);
            vitq_tensor_view vy = view3(y, 3000, 1, 1, 1);
            CHECK_STATUS(sc->fake_quant(st, &vy), VITQ_OK);
            double e = 0.0;
            for (int k = 0; k < 3000; k++) e += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
            best = fmin(best, e);
            free(y);
        }
        if (st) sc->destroy(st);
        CHECK(scale && scale[0] > 0.0f);
        CHECK(chosen <= best * 1.02);
        if (!(chosen <= best * 1.02)) printf("    bits %d: chosen %g best %g\n", bits, chosen, best);
        vitq_quantizer_free(q);
        free(x);
    }
    /* no positive value: the positive step falls back to the negative one */
    float neg[6] = {-0.1f, -0.05f, 0.0f, -0.16f, -0.01f, 0.0f};
    vitq_tensor_view v = view3(neg, 6, 1, 1, 1);
    vitq_quantizer *q = make_q(&schemes[1], 4, "tensor", 0, NULL, NULL);
    if (q) {
        calibrate_q(q, &v);
        const float *scale = param(q, "scale", 1);
        CHECK(scale && scale[0] == 0.16997124f / 8.0f);
        vitq_quantizer_free(q);
    }
    CHECK(host.live == 0);
}

/* log2: scale = maximum by default; the search never does (much) worse than the maximum. */
static void test_log2_scale_choice(void) {
    for (int bits = 2; bits <= 4; bits++) {
        float *x = attention(2, 3, 16, 3.0, 0);
        vitq_tensor_view v = view3(x, 2, 3, 256, 768);
        double max = 0.0;
        for (int i = 0; i < 1536; i++) max = fmax(max, x[i]);
        vitq_quantizer *plain = make_q(&schemes[2], bits, "tensor", 0, NULL, NULL);
        vitq_quantizer *searched = make_q(&schemes[2], bits, "tensor", 0, "search", "1");
        if (plain && searched) {
            calibrate_q(plain, &v);
            calibrate_q(searched, &v);
            const float *s0 = param(plain, "scale", 1), *s1 = param(searched, "scale", 1);
            CHECK(s0 && s0[0] == (float)max);
            CHECK(s1 && s1[0] <= (float)max && s1[0] >= (float)max / 2);
            CHECK(sq_error(searched, &v) <= sq_error(plain, &v) * 1.02);
        }
        vitq_quantizer_free(plain);
        vitq_quantizer_free(searched);
        free(x);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* log-sqrt2: the scale is one of the quantiles 0.999, 0.9999, 0.99999, 1 (from a histogram: close to the
 * exact ones) and about the best of them. */
static void test_log_sqrt2_scale_choice(void) {
    const vitq_scheme *sc = table("log-sqrt2");
    for (int bits = 3; bits <= 4; bits++) {
        const int n = 40000;
        float *x = log_spread(n, 1e-6, 0.02);
        for (int i = 0; i < 12; i++) x[i * 3000] = (float)(0.2 + 0.05 * i); /* a few outliers */
        vitq_tensor_view v = view3(x, n, 1, 1, 1);
        vitq_quantizer *q = make_q(&schemes[3], bits, "tensor", 0, NULL, NULL);
        if (!q || !sc) continue;
        calibrate_q(q, &v);
        const float *scale = param(q, "scale", 1);
        float *sorted = copy_floats(x, n);
        qsort(sorted, n, sizeof(float), cmp_float);
        const double pct[4] = {0.999, 0.9999, 0.99999, 1.0};
        double near = INFINITY, best = INFINITY;
        vitq_point_config cfg = {sizeof cfg, "blocks.1.attn.softmax.out", VITQ_POINT_ACTIVATION, 0, bits,
                                 VITQ_GRAN_TENSOR, 0, 1, 1, 1, NULL, 0, NULL};
        for (int k = 0; k < 4; k++) {
            double r = pct[k] * (n - 1);
            int i = (int)r;
            float cand = (float)(sorted[i] + (r - i) * (i + 1 < n ? sorted[i + 1] - sorted[i] : 0.0));
            if (scale) near = fmin(near, fabs(scale[0] / cand - 1.0));
            void *st = NULL;
            CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
            CHECK_STATUS(sc->set_param(st, "scale", &cand, 1), VITQ_OK);
            float *y = copy_floats(x, n);
            vitq_tensor_view vy = view3(y, n, 1, 1, 1);
            CHECK_STATUS(sc->fake_quant(st, &vy), VITQ_OK);
            double e = 0.0;
            for (int j = 0; j < n; j++) e += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
            best = fmin(best, e);
            free(y);
            sc->destroy(st);
        }
        double chosen = sq_error(q, &v);
        /* a histogram's quantile of a sparse tail can be a bin off (12 outliers: 0.75 for the exact 0.73) */
        CHECK(near < 0.1);
        CHECK(chosen <= best * 1.1);
        if (!(near < 0.1) || !(chosen <= best * 1.1)) printf("    bits %d: near %g chosen %g best %g\n", bits, near, chosen, best);
        vitq_quantizer_free(q);
        free(x), free(sorted);
    }
    CHECK(host.live == 0);
}

/* Sum over rows of `tokens` values of (max fq(row) - max row)^2. */
static double row_max_error(const float *x, const float *y, int64_t n, int64_t tokens) {
    double e = 0.0;
    for (int64_t r = 0; r < n; r += tokens) {
        float mx = x[r], my = y[r];
        for (int64_t i = r; i < r + tokens; i++) mx = fmaxf(mx, x[i]), my = fmaxf(my, y[i]);
        e += ((double)my - mx) * ((double)my - mx);
    }
    return e;
}

/* mpq: u is the maximum; with a large lambda the rows' maxima move no more than with l = 0; with lambda 0,
 * the squared error is no more than with l = 0 (both exact: l = 0 is a candidate). Rows: `tokens` values
 * when inner = tokens^2; otherwise (the same data seen with inner = tokens) one outer slice of the group. */
static void test_mpq_choice(void) {
    const vitq_scheme *sc = table("mpq");
    const int64_t tokens = 12, heads = 2, outer = 6, n = outer * heads * tokens * tokens;
    for (int bits = 2; bits <= 5; bits++)
        for (int big = 0; big <= 1; big++)
            for (int square = 0; square <= 1; square++) {
                float *x = attention(outer, heads, tokens, 2.5, 0);
                vitq_tensor_view v = square ? view3(x, outer, heads, tokens * tokens, heads * tokens * tokens)
                                            : view3(x, outer * tokens, heads, tokens, heads * tokens);
                int64_t row = square ? tokens : heads * tokens;
                vitq_quantizer *q = make_q(&schemes[4], bits, "tensor", 0, "lambda", big ? "1e9" : "0");
                if (!q || !sc) continue;
                calibrate_q(q, &v);
                const float *lo = param(q, "lower", 1), *hi = param(q, "upper", 1);
                float max = 0.0f;
                for (int64_t i = 0; i < n; i++) max = fmaxf(max, x[i]);
                CHECK(hi && hi[0] == max && lo && lo[0] >= 0.0f && lo[0] < max);
                /* l = 0 through the vtable */
                vitq_point_config cfg = {sizeof cfg, "blocks.2.attn.softmax.out", VITQ_POINT_ACTIVATION, 0, bits,
                                         VITQ_GRAN_TENSOR, 0, heads, 1, heads, NULL, 0, NULL};
                void *st = NULL;
                CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
                float zero = 0.0f;
                CHECK_STATUS(sc->set_param(st, "upper", &max, 1), VITQ_OK);
                CHECK_STATUS(sc->set_param(st, "lower", &zero, 1), VITQ_OK);
                float *y0 = copy_floats(x, (size_t)n), *y1 = copy_floats(x, (size_t)n);
                vitq_tensor_view v0 = v, v1 = v;
                v0.data = y0, v1.data = y1;
                CHECK_STATUS(sc->fake_quant(st, &v0), VITQ_OK);
                CHECK_STATUS(vitq_quantizer_fake_quant(q, &v1), VITQ_OK);
                double r0 = row_max_error(x, y0, n, row), r1 = row_max_error(x, y1, n, row);
                double e0 = 0.0, e1 = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    e0 += ((double)x[i] - y0[i]) * ((double)x[i] - y0[i]);
                    e1 += ((double)x[i] - y1[i]) * ((double)x[i] - y1[i]);
                }
                /* the score e + lambda r is minimal: r can exceed r0 by (e0 - e) / lambda at most */
                int fine = big ? r1 <= r0 * (1 + 1e-9) + e0 * 1e-9 + 1e-15 : e1 <= e0 * (1 + 1e-9) + 1e-15;
                CHECK(fine);
                if (!fine)
                    printf("    bits %d lambda %s square %d: l %g rows %g vs %g, error %g vs %g\n", bits,
                           big ? "1e9" : "0", square, lo ? lo[0] : -1.0, r1, r0, e1, e0);
                sc->destroy(st);
                vitq_quantizer_free(q);
                free(x), free(y0), free(y1);
            }
    CHECK(host.live == 0);
}

/* Several batches give the same parameters as one (statistics summed in the same order). */
static void test_batches(void) {
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        float *x = si->softmax ? attention(4, 2, 8, 3.0, 0) : gelu_acts(4, 128, 0);
        int64_t channels = si->softmax ? 2 : 128, inner = si->softmax ? 64 : 1;
        vitq_tensor_view all = view3(x, 4, channels, inner, channels * inner);
        vitq_quantizer *one = make_q(si, 4, "channel", 0, NULL, NULL), *many = make_q(si, 4, "channel", 0, NULL, NULL);
        if (!one || !many) continue;
        calibrate_q(one, &all);
        for (int32_t p = 0; p < si->passes; p++)
            for (int o = 0; o < 4; o++) {
                vitq_tensor_view part = view3(x + o * channels * inner, 1, channels, inner, channels * inner);
                CHECK_STATUS(vitq_quantizer_observe(many, p, &part), VITQ_OK);
            }
        CHECK_STATUS(vitq_quantizer_finalize(many), VITQ_OK);
        const vitq_scheme *sc = table(si->name);
        for (int32_t i = 0; sc && i < (strcmp(si->name, "mpq") == 0 ? 2 : 1); i++) {
            const char *name = i == 0 ? (s == 0 ? "split" : s == 4 ? "lower" : "scale") : "upper";
            const float *a = param(one, name, channels), *b = param(many, name, channels);
            CHECK(a && b && memcmp(a, b, (size_t)channels * sizeof(float)) == 0);
        }
        vitq_quantizer_free(one);
        vitq_quantizer_free(many);
        free(x);
    }
}

/* ---- parameters --------------------------------------------------------------------------------- */

/* Parameters of a calibrated state set into a fresh one give the same bits; set after finalize replaces. */
static void test_param_round_trip(void) {
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        const vitq_scheme *sc = table(si->name);
        const int64_t heads = 3, inner = si->softmax ? 25 : 1, outer = si->softmax ? 4 : 40;
        const int64_t n = outer * heads * inner;
        float *x = si->softmax ? attention(outer, heads, 5, 3.0, 0) : gelu_acts(outer, heads, 0);
        float *fresh = si->softmax ? attention(outer, heads, 5, 5.0, 0) : gelu_acts(outer, heads, 0);
        vitq_tensor_view v = view3(x, outer, heads, inner, heads * inner);
        vitq_point_config cfg = {sizeof cfg, "blocks.3.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_CHANNEL,
                                 si->symmetric, heads, heads, 1, NULL, 0, NULL};
        void *a = NULL, *b = NULL;
        CHECK_STATUS(sc->create(&cfg, &host.base, &a), VITQ_OK);
        CHECK_STATUS(sc->create(&cfg, &host.base, &b), VITQ_OK);
        if (!a || !b) continue;
        const char *pname;
        const float *values;
        int64_t count;
        CHECK_STATUS(sc->get_param(a, 0, &pname, &values, &count), VITQ_ERR_BAD_STATE);
        for (int32_t p = 0; p < sc->num_passes; p++) CHECK_STATUS(sc->observe(a, p, &v), VITQ_OK);
        CHECK_STATUS(sc->finalize(a), VITQ_OK);
        CHECK(sc->param_count(a) == (s == 4 ? 2 : 1));
        for (int32_t i = 0; i < sc->param_count(a); i++) {
            CHECK_STATUS(sc->get_param(a, i, &pname, &values, &count), VITQ_OK);
            CHECK(count == heads);
            if (i == 1) CHECK_STATUS(sc->fake_quant(b, &v), VITQ_ERR_BAD_STATE); /* mpq half set */
            CHECK_STATUS(sc->set_param(b, pname, values, count), VITQ_OK);
        }
        CHECK_STATUS(sc->get_param(a, 2, &pname, &values, &count), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->observe(b, 0, &v), VITQ_ERR_BAD_STATE); /* parameters set: no more statistics */
        CHECK_STATUS(sc->finalize(b), VITQ_ERR_BAD_STATE);
        float *ya = copy_floats(fresh, (size_t)n), *yb = copy_floats(fresh, (size_t)n);
        int32_t *ca = malloc((size_t)n * sizeof(int32_t)), *cb = malloc((size_t)n * sizeof(int32_t));
        vitq_tensor_view va = view3(ya, outer, heads, inner, heads * inner), vb = va, vf = va;
        vb.data = yb, vf.data = fresh;
        CHECK_STATUS(sc->fake_quant(a, &va), VITQ_OK);
        CHECK_STATUS(sc->fake_quant(b, &vb), VITQ_OK);
        CHECK_STATUS(sc->quantize(a, &vf, ca), VITQ_OK);
        CHECK_STATUS(sc->quantize(b, &vf, cb), VITQ_OK);
        CHECK(memcmp(ya, yb, (size_t)n * sizeof(float)) == 0 && memcmp(ca, cb, (size_t)n * sizeof(int32_t)) == 0);
        /* set after finalize replaces the value: the first parameter, changed */
        const float good[5][3] = {{0.25f, 0.5f, 0.0625f}, {0.02f, 0.04f, 0.01f}, {0.5f, 1.0f, 0.75f},
                                  {0.5f, 1.0f, 0.75f}, {0.0f, 0.001f, 0.002f}};
        CHECK_STATUS(sc->set_param(a, s == 0 ? "split" : s == 4 ? "lower" : "scale", good[s], heads), VITQ_OK);
        CHECK_STATUS(sc->get_param(a, 0, &pname, &values, &count), VITQ_OK);
        CHECK(memcmp(values, good[s], sizeof good[s]) == 0);
        memcpy(ya, fresh, (size_t)n * sizeof(float));
        CHECK_STATUS(sc->fake_quant(a, &va), VITQ_OK);
        CHECK(memcmp(ya, yb, (size_t)n * sizeof(float)) != 0);
        sc->destroy(a);
        sc->destroy(b);
        free(x), free(fresh), free(ya), free(yb), free(ca), free(cb);
    }
    CHECK(host.live == 0);
}

static void test_param_errors(void) {
    const float nan = NAN, inf = INFINITY, neg = -0.5f, zero = 0.0f;
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        const vitq_scheme *sc = table(si->name);
        vitq_point_config cfg = {sizeof cfg, "blocks.4.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_TENSOR,
                                 si->symmetric, 2, 1, 2, NULL, 0, NULL};
        void *st = NULL;
        CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
        if (!st) continue;
        const char *main_name = s == 0 ? "split" : s == 4 ? "upper" : "scale";
        float ok = s == 0 ? 0.125f : 0.5f, two[2] = {ok, ok};
        CHECK_STATUS(sc->set_param(st, "bogus", &ok, 1), VITQ_ERR_UNKNOWN_NAME);
        CHECK(last_error_has("bogus") && last_error_has("blocks.4.point"));
        CHECK_STATUS(sc->set_param(st, NULL, &ok, 1), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->set_param(st, main_name, NULL, 1), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->set_param(st, main_name, two, 2), VITQ_ERR_SHAPE);
        CHECK_STATUS(sc->set_param(st, main_name, &nan, 1), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(sc->set_param(st, main_name, &inf, 1), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(sc->set_param(st, main_name, &neg, 1), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has(main_name));
        if (s != 4) CHECK_STATUS(sc->set_param(st, main_name, &zero, 1), VITQ_ERR_OUT_OF_RANGE);
        const char *pname;
        const float *values;
        int64_t count;
        CHECK_STATUS(sc->get_param(st, 0, &pname, &values, &count), VITQ_ERR_BAD_STATE); /* refused: nothing set */
        CHECK_STATUS(sc->set_param(st, main_name, &ok, 1), VITQ_OK);
        if (s == 0) { /* only 2^-i, i in 0..19 */
            const float bad[4] = {0.3f, 2.0f, ldexpf(1.0f, -20), 0.75f};
            for (int k = 0; k < 4; k++) CHECK_STATUS(sc->set_param(st, "split", &bad[k], 1), VITQ_ERR_OUT_OF_RANGE);
            float lowest = ldexpf(1.0f, -19), one = 1.0f;
            CHECK_STATUS(sc->set_param(st, "split", &lowest, 1), VITQ_OK);
            CHECK_STATUS(sc->set_param(st, "split", &one, 1), VITQ_OK);
        }
        if (s == 4) { /* 0 <= lower <= upper */
            float above = 0.75f, below = 0.25f, tiny = 0.1f;
            CHECK_STATUS(sc->set_param(st, "lower", &above, 1), VITQ_ERR_OUT_OF_RANGE);
            CHECK(last_error_has("upper"));
            CHECK_STATUS(sc->set_param(st, "lower", &neg, 1), VITQ_ERR_OUT_OF_RANGE);
            CHECK_STATUS(sc->set_param(st, "lower", &below, 1), VITQ_OK);
            CHECK_STATUS(sc->set_param(st, "upper", &tiny, 1), VITQ_ERR_OUT_OF_RANGE);
            CHECK_STATUS(sc->set_param(st, "upper", &zero, 1), VITQ_ERR_OUT_OF_RANGE);
        }
        CHECK_STATUS(sc->get_param(st, 0, &pname, &values, &count), VITQ_OK);
        CHECK(count == 1 && values[0] == (s == 0 ? 1.0f : s == 4 ? 0.25f : ok)); /* refusals changed nothing */
        sc->destroy(st);
    }
    /* twin-gelu with pow2: only power-of-two multiples of the negative step */
    const vitq_scheme *sc = table("twin-gelu");
    double pow2 = 1.0;
    vitq_point_config cfg = {sizeof cfg, "blocks.5.mlp.fc2.input", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_TENSOR,
                             1, 1, 1, 1, &pow2, 0, NULL};
    void *st = NULL;
    CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
    if (st) {
        float dneg = 0.16997124f / 8.0f, good = dneg * 4.0f, bad = dneg * 3.0f;
        CHECK_STATUS(sc->set_param(st, "scale", &bad, 1), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has("pow2"));
        CHECK_STATUS(sc->set_param(st, "scale", &good, 1), VITQ_OK);
        sc->destroy(st);
    }
    CHECK(host.live == 0);
}

/* ---- configurations, input, order of calls ------------------------------------------------------ */

static void test_bad_configs(void) {
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        const vitq_scheme *sc = table(si->name);
        CHECK(sc && sc->min_bits == si->min_bits && sc->max_bits == 8 && sc->num_passes == si->passes);
        if (!sc) continue;
        vitq_point_config good = {sizeof good, "blocks.6.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_TENSOR,
                                  si->symmetric, 4, 1, 4, NULL, 0, NULL};
        vitq_point_config c = good;
        void *st = NULL;
        c.bits = si->min_bits - 1;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has("blocks.6.point") && last_error_has("bits"));
        c.bits = 9;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
        c = good, c.symmetric = !si->symmetric;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has("blocks.6.point") && last_error_has("symmetric"));
        c.symmetric = 2;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_INVALID_ARGUMENT);
        c = good, c.kind = VITQ_POINT_WEIGHT;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
        CHECK(last_error_has("activations"));
        c = good, c.groups = 3;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_SHAPE);
        c = good, c.struct_size = 8;
        CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_ABI_MISMATCH);
        if (sc->num_options) {
            double bad = sc->options[0].max_value + 1.0;
            c = good, c.options = &bad;
            CHECK_STATUS(sc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
            CHECK(last_error_has(sc->options[0].name));
        }
        CHECK_STATUS(sc->create(&good, &host.base, NULL), VITQ_ERR_INVALID_ARGUMENT);
        CHECK(st == NULL);
        /* the public path refuses the same */
        vitq_quantizer *q = NULL;
        CHECK_STATUS(vitq_quantizer_create(NULL, si->name, NULL, &q), VITQ_OK);
        if (q) {
            CHECK_STATUS(vitq_quantizer_set_int(q, "bits", si->min_bits - 1), VITQ_ERR_OUT_OF_RANGE);
            if (sc->num_options) CHECK_STATUS(vitq_quantizer_set(q, sc->options[0].name, "1.5e9"), VITQ_ERR_OUT_OF_RANGE);
            CHECK_STATUS(vitq_quantizer_set_int(q, "symmetric", !si->symmetric), VITQ_OK);
            float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
            vitq_tensor_view v = view3(x, 1, 4, 1, 4);
            CHECK_STATUS(vitq_quantizer_observe(q, 0, &v), VITQ_ERR_OUT_OF_RANGE); /* created at the first batch */
            CHECK(last_error_has("symmetric"));
            vitq_quantizer_free(q);
        }
    }
    const double fractional = 0.5;
    vitq_point_config c = {sizeof c, "blocks.7.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_TENSOR, 0, 1, 1, 1,
                           &fractional, 0, NULL};
    void *st = NULL;
    CHECK_STATUS(table("twin-softmax")->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
    CHECK(last_error_has("form"));
    CHECK(host.live == 0);
}

/* NaN and infinity are refused with the point and position; a refused batch leaves no trace. */
static void test_non_finite(void) {
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        float *x = si->softmax ? attention(2, 3, 4, 3.0, 0) : gelu_acts(32, 3, 0);
        int64_t outer = si->softmax ? 2 : 32, inner = si->softmax ? 16 : 1, n = outer * 3 * inner;
        vitq_tensor_view v = view3(x, outer, 3, inner, 3 * inner);
        float *bad = copy_floats(x, (size_t)n);
        int64_t at = 3 * inner + 2 * inner + (inner > 1); /* outer 1, channel 2, inner 1 (or 0) */
        char where[64];
        snprintf(where, sizeof where, "outer 1, channel 2, inner %d", inner > 1);
        bad[0] = 100.0f;
        bad[at] = NAN;
        vitq_tensor_view vb = v;
        vb.data = bad;
        vitq_quantizer *clean = make_q(si, 4, "channel", 0, NULL, NULL), *q = make_q(si, 4, "channel", 0, NULL, NULL);
        if (!clean || !q) continue;
        calibrate_q(clean, &v);
        for (int32_t p = 0; p < si->passes; p++) {
            CHECK_STATUS(vitq_quantizer_observe(q, p, &vb), VITQ_ERR_NON_FINITE);
            CHECK(last_error_has("quantizer") && last_error_has(where));
            CHECK_STATUS(vitq_quantizer_observe(q, p, &v), VITQ_OK);
        }
        CHECK_STATUS(vitq_quantizer_finalize(q), VITQ_OK);
        const char *name = s == 0 ? "split" : s == 4 ? "lower" : "scale";
        const float *a = param(clean, name, 3), *b = param(q, name, 3);
        CHECK(a && b && memcmp(a, b, 3 * sizeof(float)) == 0);
        bad[at] = -INFINITY;
        int32_t *codes = malloc((size_t)n * sizeof(int32_t));
        CHECK_STATUS(vitq_quantizer_fake_quant(q, &vb), VITQ_ERR_NON_FINITE);
        CHECK(bad[0] == 100.0f); /* untouched */
        CHECK_STATUS(vitq_quantizer_quantize(q, &vb, codes), VITQ_ERR_NON_FINITE);
        CHECK(last_error_has(where));
        vitq_quantizer_free(clean);
        vitq_quantizer_free(q);
        free(x), free(bad), free(codes);
    }
}

static void test_call_order(void) {
    float x[2 * 3 * 4];
    for (int i = 0; i < 24; i++) x[i] = (float)(i + 1) / 40.0f;
    vitq_tensor_view v = view3(x, 2, 2, 4, 8), v3 = view3(x, 2, 3, 4, 12);
    int32_t codes[16] = {0};
    for (int s = 0; s < 5; s++) {
        const scheme_info *si = &schemes[s];
        const vitq_scheme *sc = table(si->name);
        vitq_point_config cfg = {sizeof cfg, "blocks.8.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_TENSOR,
                                 si->symmetric, 2, 1, 2, NULL, 0, NULL};
        void *st = NULL;
        CHECK_STATUS(sc->create(&cfg, &host.base, &st), VITQ_OK);
        if (!st) continue;
        CHECK_STATUS(sc->fake_quant(st, &v), VITQ_ERR_BAD_STATE);
        CHECK(last_error_has("blocks.8.point"));
        CHECK_STATUS(sc->quantize(st, &v, codes), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->dequantize(st, codes, &v), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->finalize(st), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->observe(st, si->passes, &v), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->observe(st, -1, &v), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->observe(st, 0, &v3), VITQ_ERR_SHAPE);
        if (si->passes == 2) CHECK_STATUS(sc->observe(st, 1, &v), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->observe(st, 0, &v), VITQ_OK);
        if (si->passes == 2) {
            CHECK_STATUS(sc->finalize(st), VITQ_ERR_BAD_STATE);
            CHECK_STATUS(sc->observe(st, 1, &v), VITQ_OK);
            CHECK_STATUS(sc->observe(st, 0, &v), VITQ_ERR_BAD_STATE);
        }
        CHECK_STATUS(sc->finalize(st), VITQ_OK);
        CHECK_STATUS(sc->finalize(st), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->observe(st, 0, &v), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(sc->fake_quant(st, &v3), VITQ_ERR_SHAPE);
        CHECK_STATUS(sc->quantize(st, &v, NULL), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(sc->dequantize(st, NULL, &v), VITQ_ERR_INVALID_ARGUMENT);
        sc->destroy(st);
    }
    CHECK(host.live == 0);
}

/* Every allocation failure is reported as out of memory and leaks nothing. */
static void test_out_of_memory(void) {
    float x[4 * 2 * 9];
    for (int i = 0; i < 72; i++) x[i] = (float)((i * 7) % 13) / 13.0f;
    vitq_tensor_view v = view3(x, 4, 2, 9, 18);
    for (int s = 0; s < 5; s++) {
        const vitq_scheme *sc = table(schemes[s].name);
        vitq_point_config cfg = {sizeof cfg, "blocks.9.point", VITQ_POINT_ACTIVATION, 0, 4, VITQ_GRAN_CHANNEL,
                                 schemes[s].symmetric, 2, 2, 1, NULL, 0, NULL};
        int calibrated = 0;
        for (long k = 0; k < 40 && !calibrated; k++) {
            void *st = NULL;
            host.allocs = 0, host.fail_at = k;
            vitq_status r = sc->create(&cfg, &host.base, &st);
            for (int32_t p = 0; r == VITQ_OK && p < sc->num_passes; p++) r = sc->observe(st, p, &v);
            if (r == VITQ_OK) r = sc->finalize(st);
            if (r == VITQ_OK) calibrated = 1;
            else CHECK(r == VITQ_ERR_OUT_OF_MEMORY);
            if (st) sc->destroy(st);
            CHECK(host.live == 0);
        }
        CHECK(calibrated);
    }
    host.fail_at = -1;
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_twin_bounds);
    RUN(test_log_bounds);
    RUN(test_mpq_bounds);
    RUN(test_twin_split_choice);
    RUN(test_gelu_scale_choice);
    RUN(test_log2_scale_choice);
    RUN(test_log_sqrt2_scale_choice);
    RUN(test_mpq_choice);
    RUN(test_batches);
    RUN(test_param_round_trip);
    RUN(test_param_errors);
    RUN(test_bad_configs);
    RUN(test_non_finite);
    RUN(test_call_order);
    RUN(test_out_of_memory);
    HARNESS_EXIT();
}
