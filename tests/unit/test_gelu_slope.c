/* The GELUs' derivatives (src/kernels/gelu_slope.h): the scalar formulas against the exact derivatives in
 * double precision over a sweep of floats, the special values, and the row function on every instruction-set
 * path this CPU has against the scalar formula bit for bit (also in place, and on lengths that leave partial
 * vectors). */
#include <stdint.h>

#include "harness.h"
#include "kernels/cpu.h"
#include "kernels/gelu_slope.h"
#include "test_random.h"

#define PI 3.14159265358979323846

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The exact derivatives, and the size of their terms (the scale of an acceptable error where they cancel). */
static double erf_slope_exact(double x, double *scale) {
    double cdf = 0.5 * erfc(-x / sqrt(2.0)), term = x * exp(-0.5 * x * x) / sqrt(2.0 * PI);
    *scale = fabs(cdf) + fabs(term);
    return cdf + term;
}

static double tanh_slope_exact(double x, double *scale) {
    double k2 = 2.0 * sqrt(2.0 / PI), t = k2 * (x + 0.044715 * x * x * x);
    double sig = 1.0 / (1.0 + exp(-t)), term = x * sig * (1.0 - sig) * k2 * (1.0 + 3.0 * 0.044715 * x * x);
    *scale = fabs(sig) + fabs(term);
    return sig + term;
}

/* The largest error of `slope` over [-limit, limit] (every float there with a stride in its bits), in units
 * of 2^-24 times the terms' size. */
static double sweep_error(float (*slope)(float), double (*exact)(double, double *), float limit, float *worst_x) {
    double worst = 0.0;
    for (uint32_t u = 0; u < 0xff800000u; u += 4001u) {
        float x = float_of(u);
        if (!(fabs(x) <= limit)) continue;
        double scale, want = exact(x, &scale), err = fabs((double)slope(x) - want) / (scale * 0x1p-24 + 1e-300);
        if (err > worst) worst = err, *worst_x = x;
    }
    return worst;
}

static void test_slopes_against_double(void) {
    float wx = 0.0f;
    double e = sweep_error(vitq_i_gelu_erf_slope, erf_slope_exact, 12.0f, &wx);
    printf("    erf form: worst %.2f units of 2^-24 x terms at x = %g\n", e, (double)wx);
    CHECK(e <= 8.0);
    /* the tanh form's cubic in float limits its relative accuracy as the forward's (vmath.h) */
    e = sweep_error(vitq_i_gelu_tanh_slope, tanh_slope_exact, 6.0f, &wx);
    printf("    tanh form: worst %.2f units of 2^-24 x terms at x = %g\n", e, (double)wx);
    CHECK(e <= 64.0);
    /* far tails: exactly 0 below, 1 above; infinities too; NaN stays NaN */
    float (*fn[2])(float) = {vitq_i_gelu_erf_slope, vitq_i_gelu_tanh_slope};
    for (int f = 0; f < 2; f++) {
        CHECK(fn[f](-40.0f) == 0.0f && fn[f](-INFINITY) == 0.0f);
        CHECK(fn[f](40.0f) == 1.0f && fn[f](INFINITY) == 1.0f);
        CHECK(isnan(fn[f](NAN)));
        CHECK(fn[f](0.0f) == 0.5f && fn[f](-0.0f) == 0.5f);
    }
}

static int same_bits(float a, float b) { return bits_of(a) == bits_of(b) || (isnan(a) && isnan(b)); }

static void test_rows_match_scalar(void) {
    enum { N = 1037 };
    static float x[N], dy[N], dx[N], inplace[N];
    for (size_t i = 0; i < N; i++) x[i] = (float)(4.0 * gauss()), dy[i] = (float)gauss();
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 15.99f, -15.99f, 16.5f,
                             -16.5f, 3e38f, -3e38f, 0.5f, -0.5f, -0.7518f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[i * 61] = special[i];
    int paths = 0;
    for (int isa = VITQ_I_ISA_GENERIC; isa <= VITQ_I_ISA_AVX512; isa++) {
        vitq_i_isa_force(isa);
        if ((int)vitq_i_isa_active() != isa) continue;
        paths++;
        for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
            float (*slope)(float) = tanh_form ? vitq_i_gelu_tanh_slope : vitq_i_gelu_erf_slope;
            for (size_t n = 0; n <= N; n += n < 40 ? 1 : 333) {
                vitq_i_gelu_slope_mul(x, dy, n, tanh_form, dx);
                memcpy(inplace, dy, sizeof dy);
                vitq_i_gelu_slope_mul(x, inplace, n, tanh_form, inplace);
                int bad = 0;
                for (size_t i = 0; i < n; i++) bad += !same_bits(dx[i], dy[i] * slope(x[i])) || !same_bits(inplace[i], dx[i]);
                if (bad) printf("    %s, %s form, n %zu: %d elements differ\n", vitq_i_isa_name((vitq_i_isa)isa),
                                tanh_form ? "tanh" : "erf", n, bad);
                CHECK(bad == 0);
            }
        }
    }
    vitq_i_isa_force(-1);
    printf("    %d instruction-set paths\n", paths);
    CHECK(paths >= 1);
}

int main(void) {
    RUN(test_slopes_against_double);
    RUN(test_rows_match_scalar);
    HARNESS_EXIT();
}
