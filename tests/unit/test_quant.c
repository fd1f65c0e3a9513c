/* The uniform grid, the built-in range schemes (through their vtables) and the error metrics. */
#include <float.h>
#include <stdint.h>

#include "quant/metrics.h"
#include "kernels/cpu.h"
#include "harness.h"
#include "scheme_host.h"
#include "quant/range_scheme.h"
#include "quant/schemes.h"
#include "quant/uniform.h"

/* ---- data ------------------------------------------------------------------------------------ */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* xorshift64, uniform in [0, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float gauss(void) { /* Box-Muller */
    double u = urand(), v = urand();
    return (float)(sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v));
}
static float *gauss_floats(size_t n, float sd) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = gauss() * sd;
    return p;
}
static float *copy_floats(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static vitq_tensor_view view3(float *d, int64_t outer, int64_t channels, int64_t inner, int64_t stride) {
    vitq_tensor_view v = {sizeof(vitq_tensor_view), d, outer, channels, inner, stride};
    return v;
}
static vitq_tensor_view weight_view(float *d, int64_t rows, int64_t cols) {
    return view3(d, 1, rows, cols, rows * cols);
}
static vitq_tensor_view act_view(float *d, int64_t tokens, int64_t features) {
    return view3(d, tokens, features, 1, features);
}

static vitq_point_config make_cfg(int kind, int bits, int sym, int64_t channels, int64_t groups, const double *opts) {
    vitq_point_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.name = "blocks.0.test.point";
    c.kind = kind;
    c.role = kind == VITQ_POINT_WEIGHT ? VITQ_ROLE_LINEAR_WEIGHT : VITQ_ROLE_LINEAR_INPUT;
    c.bits = bits;
    c.granularity = groups == 1 ? VITQ_GRAN_TENSOR : groups == channels ? VITQ_GRAN_CHANNEL : VITQ_GRAN_HEAD;
    c.symmetric = sym;
    c.channels = channels;
    c.groups = groups;
    c.channels_per_group = channels / groups;
    c.options = opts;
    return c;
}

/* create, observe `v` in every pass, finalize; NULL (and a failed check) on error. */
static void *calibrate(const vitq_scheme *sc, const vitq_point_config *cfg, const vitq_tensor_view *v) {
    void *st = NULL;
    CHECK_STATUS(sc->create(cfg, &host.base, &st), VITQ_OK);
    if (!st) return NULL;
    for (int p = 0; p < sc->num_passes; p++) CHECK_STATUS(sc->observe(st, p, v), VITQ_OK);
    CHECK_STATUS(sc->finalize(st), VITQ_OK);
    return st;
}

static void get_params(const vitq_scheme *sc, void *st, const float **scale, const float **zero, int64_t *n) {
    const char *name = NULL;
    int64_t n2 = -1;
    *scale = *zero = NULL;
    CHECK_STATUS(sc->get_param(st, 0, &name, scale, n), VITQ_OK);
    CHECK(name && strcmp(name, "scale") == 0);
    CHECK_STATUS(sc->get_param(st, 1, &name, zero, &n2), VITQ_OK);
    CHECK(name && strcmp(name, "zero_point") == 0);
    CHECK(n2 == *n);
}

/* 1 when two finalized states hold bit-identical parameters. */
static int same_params(const vitq_scheme *sa, void *a, const vitq_scheme *sb, void *b) {
    const float *s1, *z1, *s2, *z2;
    int64_t n1 = 0, n2 = 0;
    get_params(sa, a, &s1, &z1, &n1);
    get_params(sb, b, &s2, &z2, &n2);
    return s1 && s2 && n1 == n2 && memcmp(s1, s2, (size_t)n1 * sizeof(float)) == 0 &&
           memcmp(z1, z2, (size_t)n1 * sizeof(float)) == 0;
}

/* Fake-quantized copy of n dense floats seen through `shape` (a view whose data is replaced). */
static float *fq_copy(const vitq_scheme *sc, void *st, const float *x, size_t n, vitq_tensor_view shape) {
    float *y = copy_floats(x, n);
    shape.data = y;
    CHECK_STATUS(sc->fake_quant(st, &shape), VITQ_OK);
    return y;
}

static double mse(const float *a, const float *b, size_t n) { return vitq_i_metric(VITQ_METRIC_MSE, a, b, n); }

static const vitq_scheme *const all_schemes[] = {&vitq_i_scheme_minmax, &vitq_i_scheme_percentile,
                                                 &vitq_i_scheme_omse, &vitq_i_scheme_lsq};
enum { NUM_SCHEMES = sizeof all_schemes / sizeof all_schemes[0] };

/* ---- uniform grid ---------------------------------------------------------------------------- */

static void test_uniform_params(void) {
    float s, z;
    vitq_i_uniform u = vitq_i_uniform_grid(2, 0);
    CHECK(u.qmin == 0 && u.qmax == 3);
    vitq_i_uniform_params(&u, -1.0, 3.0, &s, &z);
    CHECK(s == (float)(4.0 / 3.0) && z == 1.0f);
    vitq_i_uniform_params(&u, 2.0, 5.0, &s, &z); /* widened to [0, 5] */
    CHECK(s == (float)(5.0 / 3.0) && z == 0.0f);
    vitq_i_uniform_params(&u, -6.0, -3.0, &s, &z); /* widened to [-6, 0]: zero at the top code */
    CHECK(s == 2.0f && z == 3.0f);
    u = vitq_i_uniform_grid(4, 1);
    CHECK(u.qmin == -8 && u.qmax == 7);
    vitq_i_uniform_params(&u, -1.0, 3.0, &s, &z);
    CHECK(s == (float)(3.0 / 7.0) && z == 0.0f);
    u = vitq_i_uniform_grid(8, 1);
    CHECK(u.qmin == -128 && u.qmax == 127);
    vitq_i_uniform_params(&u, 0.0, 0.0, &s, &z);
    CHECK(s == 1.0f && z == 0.0f);
    vitq_i_uniform_params(&u, -INFINITY, 1.0, &s, &z);
    CHECK(s == 1.0f && z == 0.0f);
    /* Round half to even, clamping, NaN to the zero point. */
    u = vitq_i_uniform_grid(8, 0);
    CHECK(vitq_i_uniform_code(&u, 2.5f, 1.0f, 10.0f) == 12);
    CHECK(vitq_i_uniform_code(&u, 3.5f, 1.0f, 10.0f) == 14);
    CHECK(vitq_i_uniform_code(&u, -2.5f, 1.0f, 10.0f) == 8);
    CHECK(vitq_i_uniform_code(&u, 1e30f, 1.0f, 10.0f) == 255);
    CHECK(vitq_i_uniform_code(&u, -1e30f, 1.0f, 10.0f) == 0);
    CHECK(vitq_i_uniform_code(&u, NAN, 1.0f, 10.0f) == 10);
}

/* One shape, one grid: codes in range, dequantize(quantize) == fake_quant bit for bit, error within
 * scale/2, the stride gap untouched, grid values reproduced exactly. */
static void check_round_trip(int bits, int sym, int64_t outer, int64_t channels, int64_t inner, int64_t groups) {
    const int64_t gap = 4, stride = channels * inner + gap, total = outer * stride, dense = outer * channels * inner;
    const float sentinel = 12345.678f;
    float *x = malloc((size_t)total * sizeof(float));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < stride; k++)
            x[o * stride + k] = k < channels * inner ? gauss() * (1.0f + (float)((k / inner) % 3)) + 0.3f : sentinel;
    vitq_tensor_view v = view3(x, outer, channels, inner, stride);
    vitq_point_config cfg = make_cfg(VITQ_POINT_ACTIVATION, bits, sym, channels, groups, NULL);
    const vitq_scheme *sc = &vitq_i_scheme_minmax;
    void *st = calibrate(sc, &cfg, &v);
    if (!st) {
        free(x);
        return;
    }
    const float *scale, *zero;
    int64_t ng = 0;
    get_params(sc, st, &scale, &zero, &ng);
    CHECK(ng == groups);
    vitq_i_uniform u = vitq_i_uniform_grid(bits, sym);
    int32_t *codes = malloc((size_t)dense * sizeof(int32_t));
    float *fq = copy_floats(x, (size_t)total), *dq = malloc((size_t)total * sizeof(float));
    for (int64_t k = 0; k < total; k++) dq[k] = sentinel;
    vitq_tensor_view vfq = view3(fq, outer, channels, inner, stride), vdq = view3(dq, outer, channels, inner, stride);
    CHECK_STATUS(sc->quantize(st, &v, codes), VITQ_OK);
    CHECK_STATUS(sc->fake_quant(st, &vfq), VITQ_OK);
    CHECK_STATUS(sc->dequantize(st, codes, &vdq), VITQ_OK);
    int codes_ok = 1, bits_equal = 1, gap_ok = 1, err_ok = 1, zero_ok = 1;
    for (int64_t g = 0; g < groups; g++)
        zero_ok &= scale[g] > 0.0f && zero[g] >= (float)u.qmin && zero[g] <= (float)u.qmax && (!sym || zero[g] == 0.0f);
    for (int64_t o = 0, d = 0; o < outer; o++)
        for (int64_t k = 0; k < stride; k++) {
            int64_t at = o * stride + k;
            if (k >= channels * inner) {
                gap_ok &= fq[at] == sentinel && dq[at] == sentinel && x[at] == sentinel;
                continue;
            }
            int64_t g = (k / inner) / (channels / groups);
            codes_ok &= codes[d] >= u.qmin && codes[d] <= u.qmax;
            bits_equal &= memcmp(&fq[at], &dq[at], sizeof(float)) == 0;
            err_ok &= fabs((double)x[at] - fq[at]) <= 0.5 * scale[g] * (1.0 + 1e-5) + 1e-6 * fabs(x[at]);
            d++;
        }
    CHECK(codes_ok);
    CHECK(bits_equal);
    CHECK(gap_ok);
    CHECK(err_ok);
    CHECK(zero_ok);
    /* Every code of every group, as a value, comes back unchanged. */
    int64_t levels = (int64_t)u.qmax - u.qmin + 1;
    float *grid = malloc((size_t)(levels * channels) * sizeof(float));
    for (int64_t q = 0; q < levels; q++)
        for (int64_t c = 0; c < channels; c++) {
            int64_t g = c / (channels / groups);
            grid[q * channels + c] = ((float)(u.qmin + q) - zero[g]) * scale[g];
        }
    float *grid_fq = copy_floats(grid, (size_t)(levels * channels));
    vitq_tensor_view vg = act_view(grid_fq, levels, channels);
    CHECK_STATUS(sc->fake_quant(st, &vg), VITQ_OK);
    CHECK(memcmp(grid, grid_fq, (size_t)(levels * channels) * sizeof(float)) == 0);
    if (!codes_ok || !bits_equal || !gap_ok || !err_ok || !zero_ok)
        printf("    bits %d symmetric %d groups %lld\n", bits, sym, (long long)groups);
    sc->destroy(st);
    free(x), free(codes), free(fq), free(dq), free(grid), free(grid_fq);
}

static void test_uniform_round_trip(void) {
    for (int bits = 2; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++) {
            check_round_trip(bits, sym, 7, 5, 3, 1); /* per tensor */
            check_round_trip(bits, sym, 7, 5, 3, 5); /* per channel */
            check_round_trip(bits, sym, 7, 6, 3, 3); /* per head: 3 heads of 2 channels */
            check_round_trip(bits, sym, 1, 5, 9, 5); /* weight-like, single slice */
        }
    CHECK(host.live == 0);
}

/* ---- minmax ---------------------------------------------------------------------------------- */

static void test_minmax_per_channel(void) {
    const int rows = 8, cols = 64;
    float *w = gauss_floats(rows * cols, 1.0f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) w[r * cols + c] *= powf(10.0f, (float)r / 2.0f);
    vitq_tensor_view v = weight_view(w, rows, cols);
    const vitq_scheme *sc = &vitq_i_scheme_minmax;
    vitq_point_config per_tensor = make_cfg(VITQ_POINT_WEIGHT, 4, 1, rows, 1, NULL);
    vitq_point_config per_channel = make_cfg(VITQ_POINT_WEIGHT, 4, 1, rows, rows, NULL);
    void *a = calibrate(sc, &per_tensor, &v), *b = calibrate(sc, &per_channel, &v);
    if (a && b) {
        float *fa = fq_copy(sc, a, w, rows * cols, v), *fb = fq_copy(sc, b, w, rows * cols, v);
        double ea = mse(w, fa, rows * cols), eb = mse(w, fb, rows * cols);
        CHECK(eb < 0.5 * ea);
        /* The small rows in particular: per tensor they all but vanish. */
        CHECK(mse(w, fb, cols) < 0.01 * mse(w, fa, cols));
        /* The per-channel scale of row r is its amax / 7. */
        const float *s, *z;
        int64_t n = 0;
        get_params(sc, b, &s, &z, &n);
        for (int r = 0; r < rows && n == rows; r++) {
            float amax = 0;
            for (int c = 0; c < cols; c++) amax = fmaxf(amax, fabsf(w[r * cols + c]));
            CHECK(s[r] == (float)((double)amax / 7.0));
        }
        free(fa), free(fb);
    }
    if (a) sc->destroy(a);
    if (b) sc->destroy(b);
    free(w);
}

/* Several observe batches give the same parameters as one batch of all the data, for every scheme. */
static void test_batches_equal_one_batch(void) {
    const int tokens = 90, features = 12, parts = 3;
    float *x = gauss_floats(tokens * features, 2.0f);
    x[17] = 40.0f;
    for (int s = 0; s < NUM_SCHEMES; s++)
        for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++)
            for (int sym = 0; sym <= 1; sym++) {
                const vitq_scheme *sc = all_schemes[s];
                int64_t groups = kind == VITQ_POINT_WEIGHT ? features : 1;
                vitq_point_config cfg = make_cfg(kind, 6, sym, features, groups, NULL);
                vitq_tensor_view whole = act_view(x, tokens, features);
                void *one = calibrate(sc, &cfg, &whole), *many = NULL;
                CHECK_STATUS(sc->create(&cfg, &host.base, &many), VITQ_OK);
                for (int p = 0; many && p < sc->num_passes; p++)
                    for (int b = 0; b < parts; b++) {
                        vitq_tensor_view part = act_view(x + b * (tokens / parts) * features, tokens / parts, features);
                        CHECK_STATUS(sc->observe(many, p, &part), VITQ_OK);
                    }
                if (many) CHECK_STATUS(sc->finalize(many), VITQ_OK);
                if (one && many && !same_params(sc, one, sc, many))
                    printf("    %s kind %d symmetric %d: batches differ from one batch\n", sc->name, kind, sym),
                        harness_check_failures++;
                if (one) sc->destroy(one);
                if (many) sc->destroy(many);
            }
    free(x);
    CHECK(host.live == 0);
}

static void test_all_zero(void) {
    float x[4 * 6] = {0};
    int32_t codes[4 * 6];
    for (int s = 0; s < NUM_SCHEMES; s++)
        for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++)
            for (int sym = 0; sym <= 1; sym++) {
                const vitq_scheme *sc = all_schemes[s];
                vitq_tensor_view v = act_view(x, 4, 6);
                vitq_point_config cfg = make_cfg(kind, 3, sym, 6, 2, NULL);
                void *st = calibrate(sc, &cfg, &v);
                if (!st) continue;
                float y[4 * 6];
                for (int i = 0; i < 24; i++) y[i] = 0.0f;
                vitq_tensor_view vy = act_view(y, 4, 6);
                CHECK_STATUS(sc->fake_quant(st, &vy), VITQ_OK);
                CHECK_STATUS(sc->quantize(st, &v, codes), VITQ_OK);
                const float *scale, *zero;
                int64_t n = 0;
                get_params(sc, st, &scale, &zero, &n);
                int exact = 1;
                for (int i = 0; i < 24; i++) exact &= y[i] == 0.0f && (float)codes[i] == zero[(i % 6) / 3];
                CHECK(exact);
                CHECK(n == 2 && scale[0] > 0.0f && isfinite(scale[0]));
                sc->destroy(st);
            }
}

/* ---- percentile ------------------------------------------------------------------------------ */

static void test_percentile_100_is_minmax(void) {
    const int tokens = 200, features = 6;
    float *x = gauss_floats(tokens * features, 1.5f);
    x[33] = 25.0f, x[101] = -9.0f;
    double p100 = 100.0;
    for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++)
        for (int sym = 0; sym <= 1; sym++)
            for (int64_t groups = 1; groups <= features; groups *= features) {
                vitq_tensor_view v = act_view(x, tokens, features);
                vitq_point_config cp = make_cfg(kind, 5, sym, features, groups, &p100);
                vitq_point_config cm = make_cfg(kind, 5, sym, features, groups, NULL);
                void *a = calibrate(&vitq_i_scheme_percentile, &cp, &v), *b = calibrate(&vitq_i_scheme_minmax, &cm, &v);
                if (a && b) CHECK(same_params(&vitq_i_scheme_percentile, a, &vitq_i_scheme_minmax, b));
                if (a) vitq_i_scheme_percentile.destroy(a);
                if (b) vitq_i_scheme_minmax.destroy(b);
            }
    free(x);
}

/* One huge outlier: the percentile grid is finer and serves the rest of the tensor better. */
static void test_percentile_clips_outlier(void) {
    const int n = 4000;
    float *x = gauss_floats(n, 1.0f);
    x[1234] = 500.0f;
    double p = 99.9;
    for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++)
        for (int sym = 0; sym <= 1; sym++) {
            vitq_tensor_view v = act_view(x, n, 1);
            vitq_point_config cp = make_cfg(kind, 8, sym, 1, 1, &p), cm = make_cfg(kind, 8, sym, 1, 1, NULL);
            void *a = calibrate(&vitq_i_scheme_percentile, &cp, &v), *b = calibrate(&vitq_i_scheme_minmax, &cm, &v);
            if (!a || !b) continue;
            const float *sa, *za, *sb, *zb;
            int64_t na, nb;
            get_params(&vitq_i_scheme_percentile, a, &sa, &za, &na);
            get_params(&vitq_i_scheme_minmax, b, &sb, &zb, &nb);
            CHECK(sa[0] < 0.05f * sb[0]);
            float *fa = fq_copy(&vitq_i_scheme_percentile, a, x, n, v);
            float *fb = fq_copy(&vitq_i_scheme_minmax, b, x, n, v);
            /* MSE over the bulk only (the outlier is the first 1234 + the rest after it). */
            double ea = mse(x, fa, 1234) + mse(x + 1235, fa + 1235, n - 1235);
            double eb = mse(x, fb, 1234) + mse(x + 1235, fb + 1235, n - 1235);
            CHECK(ea < 0.01 * eb);
            CHECK(fa[1234] < 10.0f); /* the outlier itself is clipped */
            free(fa), free(fb);
            vitq_i_scheme_percentile.destroy(a);
            vitq_i_scheme_minmax.destroy(b);
        }
    free(x);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile (linear) of n doubles, sorted in place. */
static double naive_percentile(double *v, size_t n, double q) {
    qsort(v, n, sizeof(double), cmp_double);
    double r = q / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(r);
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (r - (double)i) * (v[i + 1] - v[i]);
}

/* Weights: exact percentiles, equal to a sort-based reference. */
static void test_percentile_weights_reference(void) {
    const int rows = 4, cols = 101;
    float *w = gauss_floats(rows * cols, 1.0f);
    for (int c = 0; c < cols; c++) w[cols + c] += 2.0f; /* row 1 mostly positive */
    double p = 97.3, *tmp = malloc(cols * sizeof(double));
    for (int sym = 0; sym <= 1; sym++) {
        vitq_tensor_view v = weight_view(w, rows, cols);
        vitq_point_config cfg = make_cfg(VITQ_POINT_WEIGHT, 6, sym, rows, rows, &p);
        void *st = calibrate(&vitq_i_scheme_percentile, &cfg, &v);
        if (!st) continue;
        const float *s, *z;
        int64_t n = 0;
        get_params(&vitq_i_scheme_percentile, st, &s, &z, &n);
        vitq_i_uniform u = vitq_i_uniform_grid(6, sym);
        for (int r = 0; r < rows && n == rows; r++) {
            double lo, hi;
            for (int c = 0; c < cols; c++) tmp[c] = sym ? fabs(w[r * cols + c]) : w[r * cols + c];
            if (sym) {
                hi = naive_percentile(tmp, cols, p), lo = -hi;
            } else {
                lo = naive_percentile(tmp, cols, 100.0 - p), hi = naive_percentile(tmp, cols, p);
            }
            float rs, rz;
            vitq_i_uniform_params(&u, lo, hi, &rs, &rz);
            CHECK(s[r] == rs && z[r] == rz);
            /* and clipped: finer than minmax (tmp is sorted) */
            CHECK(s[r] < (sym ? tmp[cols - 1] / 31.0 : (tmp[cols - 1] - fmin(tmp[0], 0.0)) / 63.0));
        }
        vitq_i_scheme_percentile.destroy(st);
    }
    free(w), free(tmp);
}

/* Activations: the histogram percentile of evenly spread values is where it should be, to well within a bin. */
static void test_percentile_histogram(void) {
    const int n = 100000;
    float *x = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = (float)(2.0 * (i + 0.5) / n - 1.0); /* evenly over (-1, 1) */
    double p = 97.3;
    for (int sym = 0; sym <= 1; sym++) {
        vitq_tensor_view v = act_view(x, n, 1);
        vitq_point_config cfg = make_cfg(VITQ_POINT_ACTIVATION, 6, sym, 1, 1, &p);
        void *st = calibrate(&vitq_i_scheme_percentile, &cfg, &v);
        if (!st) continue;
        const float *s, *z;
        int64_t cnt = 0;
        get_params(&vitq_i_scheme_percentile, st, &s, &z, &cnt);
        /* asymmetric: [-0.946, 0.946] over 63 steps; symmetric: |x| up to 0.973 over 31 steps */
        double want = sym ? 0.973 / 31.0 : 2.0 * 0.946 / 63.0, bin = (sym ? 1.0 : 2.0) / VITQ_I_HIST_BINS;
        CHECK_NEAR(s[0], want, 0.05 * bin);
        CHECK(sym ? z[0] == 0.0f : z[0] == 31.0f || z[0] == 32.0f); /* -lo / scale is 31.5 */
        vitq_i_scheme_percentile.destroy(st);
    }
    free(x);
}

/* ---- omse ------------------------------------------------------------------------------------ */

/* Heavy-tailed data: omse does at least as well as minmax on the data it saw, and strictly better here. */
static void test_omse_not_worse(void) {
    const int tokens = 500, features = 16;
    float *x = gauss_floats(tokens * features, 1.0f);
    for (int i = 0; i < tokens * features; i += 97) x[i] *= 12.0f;
    for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++)
        for (int sym = 0; sym <= 1; sym++)
            for (int bits = 3; bits <= 8; bits += 5) {
                vitq_tensor_view v = act_view(x, tokens, features);
                int64_t groups = kind == VITQ_POINT_WEIGHT ? features : 1;
                vitq_point_config cfg = make_cfg(kind, bits, sym, features, groups, NULL);
                void *a = calibrate(&vitq_i_scheme_omse, &cfg, &v), *b = calibrate(&vitq_i_scheme_minmax, &cfg, &v);
                if (a && b) {
                    float *fa = fq_copy(&vitq_i_scheme_omse, a, x, tokens * features, v);
                    float *fb = fq_copy(&vitq_i_scheme_minmax, b, x, tokens * features, v);
                    double ea = mse(x, fa, tokens * features), eb = mse(x, fb, tokens * features);
                    CHECK(ea <= eb);
                    if (bits == 3) CHECK(ea < 0.8 * eb);
                    free(fa), free(fb);
                }
                if (a) vitq_i_scheme_omse.destroy(a);
                if (b) vitq_i_scheme_minmax.destroy(b);
            }
    free(x);
}

/* ---- lsq ------------------------------------------------------------------------------------- */

/* LSQ's initial steps against their definitions written out here: per weight row the fixed point of
 * a = <w, q> / <q, q> reached from max|w| / Q_P (symmetric), or of w - min (asymmetric, codes from 0); per
 * activation tensor 2 mean|x| / sqrt(Q_P), or 2 mean(x - min) / sqrt(Q_P) asymmetric (the histogram's bin
 * centres: within half a bin). At 3 bits on Gaussian weights the fitted step also beats min-max's error. */
static void test_lsq_initial_steps(void) {
    const int rows = 6, cols = 300, tokens = 400, features = 8;
    float *w = gauss_floats((size_t)rows * cols, 0.05f), *x = gauss_floats((size_t)tokens * features, 1.0f);
    for (int i = 0; i < tokens * features; i++) x[i] = x[i] > 0.0f ? x[i] : 0.1f * x[i]; /* GELU-like skew */
    for (int sym = 0; sym <= 1; sym++)
        for (int bits = 3; bits <= 8; bits += 5) {
            vitq_i_uniform u = vitq_i_uniform_grid(bits, sym);
            const double qmax = u.qmax, qmin = sym ? u.qmin : 0.0;
            vitq_tensor_view v = weight_view(w, rows, cols);
            vitq_point_config cfg = make_cfg(VITQ_POINT_WEIGHT, bits, sym, rows, rows, NULL);
            void *st = calibrate(&vitq_i_scheme_lsq, &cfg, &v), *mm = calibrate(&vitq_i_scheme_minmax, &cfg, &v);
            const float *s, *z;
            int64_t n = 0;
            if (st) get_params(&vitq_i_scheme_lsq, st, &s, &z, &n);
            for (int r = 0; st && r < rows && n == rows; r++) {
                const float *row = w + (size_t)r * cols;
                double lo = 0.0, amax = 0.0, hi = 0.0;
                for (int c = 0; c < cols; c++) lo = fmin(lo, row[c]), hi = fmax(hi, row[c]), amax = fmax(amax, fabs(row[c]));
                double base = sym ? 0.0 : lo, a = (sym ? amax : hi - lo) / qmax;
                for (int round = 0; round < 100; round++) {
                    double wq = 0.0, qq = 0.0;
                    for (int c = 0; c < cols; c++) {
                        double q = fmin(fmax(nearbyint((row[c] - base) / a), qmin), qmax);
                        wq += (row[c] - base) * q, qq += q * q;
                    }
                    double next = wq / qq, moved = fabs(next - a);
                    a = next;
                    if (moved < 1e-5 * a) break;
                }
                CHECK_NEAR(s[r], a, 2e-5 * a);
            }
            if (st && mm && sym && bits == 3) {
                float *fa = fq_copy(&vitq_i_scheme_lsq, st, w, (size_t)rows * cols, v);
                float *fb = fq_copy(&vitq_i_scheme_minmax, mm, w, (size_t)rows * cols, v);
                CHECK(mse(w, fa, (size_t)rows * cols) < 0.9 * mse(w, fb, (size_t)rows * cols));
                free(fa), free(fb);
            }
            if (st) vitq_i_scheme_lsq.destroy(st);
            if (mm) vitq_i_scheme_minmax.destroy(mm);
            vitq_tensor_view va = act_view(x, tokens, features);
            cfg = make_cfg(VITQ_POINT_ACTIVATION, bits, sym, features, 1, NULL);
            st = calibrate(&vitq_i_scheme_lsq, &cfg, &va);
            if (!st) continue;
            get_params(&vitq_i_scheme_lsq, st, &s, &z, &n);
            double lo = 0.0, hi = 0.0, amax = 0.0, sum = 0.0;
            for (int i = 0; i < tokens * features; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]), amax = fmax(amax, fabs(x[i]));
            for (int i = 0; i < tokens * features; i++) sum += sym ? fabs(x[i]) : x[i] - lo;
            double want = 2.0 * (sum / (tokens * features)) / sqrt(qmax);
            double half_bin = 0.5 * (sym ? amax : hi - lo) / VITQ_I_HIST_BINS;
            CHECK(n == 1);
            CHECK_NEAR(s[0], want, 2.0 * half_bin / sqrt(qmax) + 1e-6 * want);
            if (!sym) CHECK(z[0] == (float)nearbyint(-lo / s[0]));
            vitq_i_scheme_lsq.destroy(st);
        }
    free(w), free(x);
    CHECK(host.live == 0);
}

/* Squared error of quantizing x[0..n) with [lo, hi] under grid u, written out independently. */
static double ref_sq_error(const vitq_i_uniform *u, const float *x, int n, float s, float z) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        float q = nearbyintf(x[i] / s) + z;
        q = q < (float)u->qmin ? (float)u->qmin : q > (float)u->qmax ? (float)u->qmax : q;
        double d = (double)x[i] - (double)((q - z) * s);
        e += d * d;
    }
    return e;
}

/* omse on a small weight equals an exhaustive search over the same candidates. */
static void test_omse_brute_force(void) {
    const int rows = 3, cols = 17, grid = 10;
    const double min_ratio = 0.3, opts[2] = {grid, min_ratio};
    float *w = gauss_floats(rows * cols, 1.0f);
    w[5] = 6.0f, w[cols + 3] = -5.0f;
    for (int sym = 0; sym <= 1; sym++)
        for (int bits = 2; bits <= 4; bits++) {
            vitq_tensor_view v = weight_view(w, rows, cols);
            vitq_point_config cfg = make_cfg(VITQ_POINT_WEIGHT, bits, sym, rows, rows, opts);
            void *st = calibrate(&vitq_i_scheme_omse, &cfg, &v);
            if (!st) continue;
            const float *s, *z;
            int64_t n = 0;
            get_params(&vitq_i_scheme_omse, st, &s, &z, &n);
            vitq_i_uniform u = vitq_i_uniform_grid(bits, sym);
            for (int r = 0; r < rows && n == rows; r++) {
                const float *x = w + r * cols;
                double lo0 = x[0], hi0 = x[0];
                for (int c = 1; c < cols; c++) lo0 = fmin(lo0, x[c]), hi0 = fmax(hi0, x[c]);
                if (sym) hi0 = fmax(fabs(lo0), fabs(hi0)), lo0 = -hi0;
                double best = INFINITY, second = INFINITY;
                float bs = 0, bz = 0;
                for (int k = 0; k < grid; k++) { /* ascending, ties to the later (larger) range */
                    double alpha = k == grid - 1 ? 1.0 : min_ratio + (1.0 - min_ratio) * k / (grid - 1.0);
                    float cs, cz;
                    vitq_i_uniform_params(&u, alpha * lo0, alpha * hi0, &cs, &cz);
                    double e = ref_sq_error(&u, x, cols, cs, cz);
                    if (e <= best) {
                        if (cs != bs || cz != bz) second = best;
                        best = e, bs = cs, bz = cz;
                    } else if (e < second) {
                        second = e;
                    }
                }
                double got = ref_sq_error(&u, x, cols, s[r], z[r]);
                CHECK(got <= best * (1.0 + 1e-12));
                if (second > best * (1.0 + 1e-9)) CHECK(s[r] == bs && z[r] == bz); /* a clear winner */
            }
            vitq_i_scheme_omse.destroy(st);
        }
    free(w);
}

/* ---- state machine, errors, parameters --------------------------------------------------------- */

static int last_error_has(const char *what) { return strstr(vitq_last_error(), what) != NULL; }

static void test_error_paths(void) {
    float x[10 * 4], y[10 * 4];
    for (int i = 0; i < 40; i++) x[i] = y[i] = (float)(i % 7) - 3.0f;
    vitq_tensor_view v = act_view(x, 10, 4), vy = act_view(y, 10, 4), v3 = act_view(x, 10, 3);
    int32_t codes[40];
    const vitq_scheme *mm = &vitq_i_scheme_minmax, *pc = &vitq_i_scheme_percentile;
    vitq_point_config cfg = make_cfg(VITQ_POINT_ACTIVATION, 8, 0, 4, 1, NULL);
    void *st = NULL;
    CHECK_STATUS(mm->create(&cfg, &host.base, &st), VITQ_OK);
    if (!st) return;
    CHECK_STATUS(mm->fake_quant(st, &vy), VITQ_ERR_BAD_STATE);
    CHECK(last_error_has("blocks.0.test.point"));
    CHECK_STATUS(mm->quantize(st, &v, codes), VITQ_ERR_BAD_STATE);
    CHECK_STATUS(mm->finalize(st), VITQ_ERR_BAD_STATE);
    CHECK_STATUS(mm->observe(st, 1, &v), VITQ_ERR_INVALID_ARGUMENT); /* minmax has one pass */
    CHECK_STATUS(mm->observe(st, 0, &v3), VITQ_ERR_SHAPE);
    CHECK(last_error_has("blocks.0.test.point"));
    y[0] = 100.0f, y[13] = NAN; /* a refused batch must leave no trace, not even its first value */
    CHECK_STATUS(mm->observe(st, 0, &vy), VITQ_ERR_NON_FINITE);
    CHECK(last_error_has("blocks.0.test.point"));
    y[13] = INFINITY;
    CHECK_STATUS(mm->observe(st, 0, &vy), VITQ_ERR_NON_FINITE);
    CHECK_STATUS(mm->observe(st, 0, &v), VITQ_OK);
    CHECK_STATUS(mm->finalize(st), VITQ_OK);
    CHECK_STATUS(mm->finalize(st), VITQ_ERR_BAD_STATE);
    CHECK_STATUS(mm->observe(st, 0, &v), VITQ_ERR_BAD_STATE);
    const float *s, *z;
    int64_t n = 0;
    get_params(mm, st, &s, &z, &n);
    CHECK(n == 1 && s[0] == (float)(6.0 / 255.0) && (z[0] == 127.0f || z[0] == 128.0f));
    float z0 = n == 1 ? z[0] : 0.0f;
    CHECK_STATUS(mm->fake_quant(st, &v3), VITQ_ERR_SHAPE);
    codes[5] = 256;
    CHECK_STATUS(mm->dequantize(st, codes, &vy), VITQ_ERR_OUT_OF_RANGE);
    /* set_param: name, count, values. */
    float bad[2] = {1.0f, 1.0f}, neg = -0.5f, nan = NAN, half = 3.5f, big = 256.0f, ok = 0.25f;
    CHECK_STATUS(mm->set_param(st, "scales", bad, 1), VITQ_ERR_UNKNOWN_NAME);
    CHECK(last_error_has("scales"));
    CHECK_STATUS(mm->set_param(st, "scale", bad, 2), VITQ_ERR_SHAPE);
    CHECK_STATUS(mm->set_param(st, "scale", &neg, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(mm->set_param(st, "scale", &nan, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(mm->set_param(st, "zero_point", &half, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(mm->set_param(st, "zero_point", &big, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(mm->set_param(st, "zero_point", &neg, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK(s[0] == (float)(6.0 / 255.0) && z[0] == z0); /* refused values changed nothing */
    CHECK_STATUS(mm->set_param(st, "scale", &ok, 1), VITQ_OK);
    CHECK(s[0] == 0.25f);
    const char *name;
    CHECK_STATUS(mm->get_param(st, 2, &name, &s, &n), VITQ_ERR_INVALID_ARGUMENT);
    mm->destroy(st);

    /* A symmetric grid only has zero point 0. */
    vitq_point_config sym = make_cfg(VITQ_POINT_WEIGHT, 4, 1, 4, 4, NULL);
    float zeros[4] = {0, 0, 1, 0};
    st = NULL;
    CHECK_STATUS(mm->create(&sym, &host.base, &st), VITQ_OK);
    if (st) CHECK_STATUS(mm->set_param(st, "zero_point", zeros, 4), VITQ_ERR_OUT_OF_RANGE);
    if (st) mm->destroy(st);

    /* Two-pass order: pass 1 needs pass 0, finalize needs pass 1, weights may not grow in pass 1. */
    for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++) {
        vitq_point_config c2 = make_cfg(kind, 8, 0, 4, 4, NULL);
        st = NULL;
        CHECK_STATUS(pc->create(&c2, &host.base, &st), VITQ_OK);
        if (!st) continue;
        CHECK_STATUS(pc->observe(st, 1, &v), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(pc->observe(st, 2, &v), VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(pc->observe(st, 0, &v), VITQ_OK);
        CHECK_STATUS(pc->finalize(st), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(pc->observe(st, 1, &v), VITQ_OK);
        CHECK_STATUS(pc->observe(st, 0, &v), VITQ_ERR_BAD_STATE);
        CHECK_STATUS(pc->observe(st, 1, &v), kind == VITQ_POINT_WEIGHT ? VITQ_ERR_BAD_STATE : VITQ_OK);
        CHECK_STATUS(pc->finalize(st), VITQ_OK);
        pc->destroy(st);
    }

    /* create: configuration and options. */
    vitq_point_config c = make_cfg(VITQ_POINT_WEIGHT, 9, 0, 4, 4, NULL);
    st = NULL;
    CHECK_STATUS(mm->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
    c = make_cfg(VITQ_POINT_WEIGHT, 8, 0, 4, 3, NULL);
    CHECK_STATUS(mm->create(&c, &host.base, &st), VITQ_ERR_SHAPE);
    c = make_cfg(VITQ_POINT_WEIGHT, 8, 2, 4, 4, NULL);
    CHECK_STATUS(mm->create(&c, &host.base, &st), VITQ_ERR_INVALID_ARGUMENT);
    c = make_cfg(VITQ_POINT_WEIGHT, 8, 0, 4, 4, NULL);
    c.struct_size = 8;
    CHECK_STATUS(mm->create(&c, &host.base, &st), VITQ_ERR_ABI_MISMATCH);
    double p40 = 40.0, fractional[2] = {10.5, 0.3}, ratio0[2] = {10, 0.0};
    c = make_cfg(VITQ_POINT_WEIGHT, 8, 0, 4, 4, &p40);
    CHECK_STATUS(pc->create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
    CHECK(last_error_has("percentile"));
    c.options = fractional;
    CHECK_STATUS(vitq_i_scheme_omse.create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
    CHECK(last_error_has("grid"));
    c.options = ratio0;
    CHECK_STATUS(vitq_i_scheme_omse.create(&c, &host.base, &st), VITQ_ERR_OUT_OF_RANGE);
    CHECK(st == NULL);
    CHECK(host.live == 0);
}

/* Parameters of one instance set into another give the same outputs (what saving a model relies on). */
static void test_param_round_trip(void) {
    const int tokens = 40, features = 6;
    float *x = gauss_floats(tokens * features, 3.0f), *fresh = gauss_floats(tokens * features, 3.5f);
    for (int sym = 0; sym <= 1; sym++) {
        vitq_tensor_view v = act_view(x, tokens, features);
        vitq_point_config cfg = make_cfg(VITQ_POINT_ACTIVATION, 4, sym, features, 3, NULL);
        void *a = calibrate(&vitq_i_scheme_omse, &cfg, &v), *b = NULL;
        CHECK_STATUS(vitq_i_scheme_minmax.create(&cfg, &host.base, &b), VITQ_OK);
        if (!a || !b) continue;
        CHECK(vitq_i_scheme_omse.param_count(a) == 2);
        for (int32_t i = 0; i < vitq_i_scheme_omse.param_count(a); i++) {
            const char *name;
            const float *values;
            int64_t count;
            CHECK_STATUS(vitq_i_scheme_omse.get_param(a, i, &name, &values, &count), VITQ_OK);
            CHECK(count == 3);
            if (i == 1) CHECK_STATUS(vitq_i_scheme_minmax.fake_quant(b, &v), VITQ_ERR_BAD_STATE); /* half set */
            CHECK_STATUS(vitq_i_scheme_minmax.set_param(b, name, values, count), VITQ_OK);
        }
        float *fa = fq_copy(&vitq_i_scheme_omse, a, fresh, tokens * features, v);
        float *fb = fq_copy(&vitq_i_scheme_minmax, b, fresh, tokens * features, v);
        CHECK(memcmp(fa, fb, tokens * features * sizeof(float)) == 0);
        CHECK(mse(fresh, fa, tokens * features) > 0.0); /* it did quantize */
        int32_t *ca = malloc(tokens * features * sizeof(int32_t)), *cb = malloc(tokens * features * sizeof(int32_t));
        vitq_tensor_view vf = act_view(fresh, tokens, features);
        CHECK_STATUS(vitq_i_scheme_omse.quantize(a, &vf, ca), VITQ_OK);
        CHECK_STATUS(vitq_i_scheme_minmax.quantize(b, &vf, cb), VITQ_OK);
        CHECK(memcmp(ca, cb, tokens * features * sizeof(int32_t)) == 0);
        free(fa), free(fb), free(ca), free(cb);
        vitq_i_scheme_omse.destroy(a);
        vitq_i_scheme_minmax.destroy(b);
    }
    free(x), free(fresh);
}

/* Every allocation failure is reported as out of memory and leaks nothing. */
static void test_out_of_memory(void) {
    float x[8 * 4];
    for (int i = 0; i < 32; i++) x[i] = (float)i - 10.0f;
    vitq_tensor_view v = act_view(x, 8, 4);
    for (int kind = VITQ_POINT_WEIGHT; kind <= VITQ_POINT_ACTIVATION; kind++) {
        vitq_point_config cfg = make_cfg(kind, 8, 1, 4, 2, NULL);
        int created = 0, calibrated = 0;
        for (long k = 0; k < 40 && !calibrated; k++) {
            void *st = NULL;
            host.allocs = 0, host.fail_at = k;
            vitq_status s = vitq_i_scheme_percentile.create(&cfg, &host.base, &st);
            if (s == VITQ_OK && (s = vitq_i_scheme_percentile.observe(st, 0, &v)) == VITQ_OK &&
                (s = vitq_i_scheme_percentile.observe(st, 1, &v)) == VITQ_OK)
                s = vitq_i_scheme_percentile.finalize(st);
            if (s == VITQ_OK) calibrated = 1;
            else CHECK(s == VITQ_ERR_OUT_OF_MEMORY);
            if (st) created = 1;
            else CHECK(s == VITQ_ERR_OUT_OF_MEMORY && host.live == 0);
            if (st) vitq_i_scheme_percentile.destroy(st);
            CHECK(host.live == 0);
        }
        CHECK(created && calibrated);
    }
    host.fail_at = -1;
}

/* ---- metrics --------------------------------------------------------------------------------- */

static void test_metrics(void) {
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 6}, twice[4] = {2, 4, 6, 8}, neg[4] = {-1, -2, -3, -4};
    const float z[4] = {0}, e1[2] = {1, 0}, e2[2] = {0, 1};
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_MSE, a, b, 4), 1.0, 1e-12);
    CHECK(vitq_i_metric(VITQ_METRIC_MSE, a, a, 4) == 0.0);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_COSINE, a, twice, 4), 1.0, 1e-12);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_COSINE, a, neg, 4), -1.0, 1e-12);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_COSINE, e1, e2, 2), 0.0, 1e-12);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_COSINE, a, b, 4), 38.0 / (sqrt(30.0) * sqrt(50.0)), 1e-12);
    CHECK(vitq_i_metric(VITQ_METRIC_COSINE, z, z, 4) == 1.0);
    CHECK(vitq_i_metric(VITQ_METRIC_COSINE, z, a, 4) == 0.0);
    CHECK(vitq_i_metric(VITQ_METRIC_COSINE, a, z, 4) == 0.0);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_SQNR, a, b, 4), 10.0 * log10(30.0 / 4.0), 1e-12);
    CHECK(vitq_i_metric(VITQ_METRIC_SQNR, a, a, 4) == INFINITY);
    CHECK(vitq_i_metric(VITQ_METRIC_SQNR, z, z, 4) == INFINITY);
    CHECK(vitq_i_metric(VITQ_METRIC_SQNR, z, a, 4) == -INFINITY);
    CHECK(vitq_i_metric(VITQ_METRIC_SQNR, a, z, 4) == 0.0); /* all noise, as much as signal */
    /* A longer vector, against a direct double computation. */
    float *r = gauss_floats(1001, 1.0f), *q = gauss_floats(1001, 0.1f);
    double ss = 0, dd = 0;
    for (int i = 0; i < 1001; i++) {
        q[i] += r[i];
        ss += (double)r[i] * r[i];
        dd += ((double)r[i] - q[i]) * ((double)r[i] - q[i]);
    }
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_MSE, r, q, 1001), dd / 1001.0, 1e-12);
    CHECK_NEAR(vitq_i_metric(VITQ_METRIC_SQNR, r, q, 1001), 10.0 * log10(ss / dd), 1e-9);
    CHECK(vitq_i_metric(VITQ_METRIC_SQNR, r, q, 1001) > 15.0); /* noise sd 0.1: about 20 dB */

    double out = -7.0;
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_MSE, a, b, 4, &out), VITQ_OK);
    CHECK(out == 1.0);
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_SQNR, a, a, 4, &out), VITQ_OK);
    CHECK(out == INFINITY);
    out = -7.0;
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_MSE, NULL, b, 4, &out), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("reference"));
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_MSE, a, NULL, 4, &out), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("approx"));
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_MSE, a, b, 4, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("out"));
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_MSE, a, b, 0, &out), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("n is 0"));
    CHECK_STATUS(vitq_metric_compute((vitq_metric)99, a, b, 4, &out), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("metric"));
    const float bad[2] = {1.0f, NAN};
    CHECK_STATUS(vitq_metric_compute(VITQ_METRIC_COSINE, a, bad, 2, &out), VITQ_ERR_NON_FINITE);
    CHECK(out == -7.0); /* untouched on failure */
    free(r), free(q);
}

/* The vectorized run (vitq_i_uniform_fq_run) equals the scalar fake quantization bit for bit, on every
 * instruction-set path, for odd lengths, rounding ties, clamped and huge values, infinities and NaN. */
static void test_uniform_fq_run_paths(void) {
    const size_t n = 1031;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    uint32_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 12.0f;
    }
    const float specials[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 1e30f, -1e30f, 3e38f, INFINITY, -INFINITY,
                              NAN, 1e-40f, 0.25f, 0.75f, 127.5f, -128.5f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) x[i * 7] = specials[i];
    for (int sym = 0; sym < 2; sym++)
        for (int bits = 2; bits <= 8; bits += 2) {
            vitq_i_uniform u = vitq_i_uniform_grid(bits, sym);
            float scale = 0.05f * (float)bits, zero = sym ? 0.0f : (float)(1 << (bits - 1));
            float *want = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) want[i] = vitq_i_uniform_fq(&u, x[i], scale, zero);
            for (int isa = 0; isa <= VITQ_I_ISA_AVX512; isa++) {
                vitq_i_isa_force(isa);
                for (size_t len = 0; len <= n; len += len < 40 ? 1 : 97) {
                    memcpy(y, x, n * sizeof(float));
                    vitq_i_uniform_fq_run(&u, y, (int64_t)len, scale, zero);
                    CHECK(memcmp(y, want, len * sizeof(float)) == 0);
                    CHECK(memcmp(y + len, x + len, (n - len) * sizeof(float)) == 0); /* nothing past n */
                }
            }
            vitq_i_isa_force(-1);
            free(want);
        }
    free(x);
    free(y);
}

int main(void) {
    RUN(test_uniform_fq_run_paths);
    RUN(test_uniform_params);
    RUN(test_uniform_round_trip);
    RUN(test_minmax_per_channel);
    RUN(test_batches_equal_one_batch);
    RUN(test_all_zero);
    RUN(test_percentile_100_is_minmax);
    RUN(test_percentile_clips_outlier);
    RUN(test_percentile_weights_reference);
    RUN(test_percentile_histogram);
    RUN(test_omse_not_worse);
    RUN(test_omse_brute_force);
    RUN(test_lsq_initial_steps);
    RUN(test_error_paths);
    RUN(test_param_round_trip);
    RUN(test_out_of_memory);
    RUN(test_metrics);
    HARNESS_EXIT();
}
