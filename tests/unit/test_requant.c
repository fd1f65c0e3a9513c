/* Dyadic requantization (kernels/requant.h, quant/dyadic.h) against independent references: the
 * rounding by integer division and remainder (not by shifts), and for products below 2^53 the exact
 * double value rounded by C's round() (half away from zero); the multipliers against the exact error
 * of the approximation. Every comparison is exact. */
#include <float.h>
#include <stdint.h>

#include "harness.h"
#include "kernels/cpu.h"
#include "kernels/requant.h"
#include "quant/dyadic.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t next_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t irand(int64_t lo, int64_t hi) { return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1)); }

/* round(x mult / 2^shift), half away from zero, by division and remainder on the magnitude. */
static int64_t ref_round(int32_t x, vitq_i_dyadic d) {
    int64_t p = (int64_t)x * d.mult, mag = p < 0 ? -p : p, den = (int64_t)1 << d.shift;
    int64_t q = mag / den, rem = mag % den;
    if (den > 1 && rem >= den - rem) q++; /* rem >= den / 2, without halving an odd den */
    return p < 0 ? -q : q;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Multipliers that probe the range ends and ties; shifts from 0 to 62. */
static vitq_i_dyadic some_dyadic(size_t i) {
    static const int32_t mults[] = {1 << 30, (1 << 30) + 1, 3 << 29, INT32_MAX, INT32_MAX - 1, 0x5A5A5A5A};
    vitq_i_dyadic d;
    d.mult = i % 8 < 6 ? mults[i % 8] : (int32_t)irand(1 << 30, INT32_MAX);
    d.shift = (int32_t)(i % 5 == 0 ? 0 : i % 5 == 1 ? 62 : i % 5 == 2 ? 31 : irand(0, 62));
    return d;
}

/* Inputs: ends of int32, small values, and values that make exact ties for these multipliers. */
static int32_t some_input(size_t i, vitq_i_dyadic d) {
    switch (i % 10) {
    case 0: return INT32_MIN;
    case 1: return INT32_MAX;
    case 2: return (int32_t)irand(-3, 3);
    case 3: /* exact ties: x mult / 2^shift = odd / 2 for x = odd 2^(shift-31) and mult = 2^30, or
             * x = odd 2^(shift-30) and mult = 3 2^29 (|odd| <= 2001: |x| < 2^31 up to the shifts below) */
        if (d.mult == (1 << 30) && d.shift >= 31 && d.shift <= 51)
            return (int32_t)((2 * irand(-1000, 1000) + 1) * ((int64_t)1 << (d.shift - 31)));
        if (d.mult == (3 << 29) && d.shift >= 30 && d.shift <= 50)
            return (int32_t)((2 * irand(-1000, 1000) + 1) * ((int64_t)1 << (d.shift - 30)));
        return (int32_t)irand(-1000, 1000);
    case 4: return (int32_t)irand(-(1 << 22), 1 << 22);
    default: return (int32_t)irand(INT32_MIN, INT32_MAX);
    }
}

static void test_apply_rounding(void) {
    /* hand-checked values: 2.5 -> 3, -2.5 -> -3, 1.5 -> 2, 0.5 -> 1, -0.5 -> -1, 0.49.. -> 0 */
    vitq_i_dyadic half = {1 << 30, 31}; /* 0.5 */
    CHECK(vitq_i_dyadic_apply(5, half) == 3 && vitq_i_dyadic_apply(-5, half) == -3);
    CHECK(vitq_i_dyadic_apply(3, half) == 2 && vitq_i_dyadic_apply(-3, half) == -2);
    CHECK(vitq_i_dyadic_apply(1, half) == 1 && vitq_i_dyadic_apply(-1, half) == -1);
    CHECK(vitq_i_dyadic_apply(0, half) == 0 && vitq_i_dyadic_apply(4, half) == 2);
    vitq_i_dyadic below_half = {INT32_MAX, 32}; /* (2^31 - 1) / 2^32, just below 0.5 */
    CHECK(vitq_i_dyadic_apply(1, below_half) == 0 && vitq_i_dyadic_apply(-1, below_half) == 0);
    /* shift 0: the product itself, up to |x| mult = 2^31 (2^31 - 1) */
    vitq_i_dyadic big = {INT32_MAX, 0};
    CHECK(vitq_i_dyadic_apply(INT32_MIN, big) == (int64_t)INT32_MIN * INT32_MAX);
    CHECK(vitq_i_dyadic_apply(INT32_MAX, big) == (int64_t)INT32_MAX * INT32_MAX);
    /* shift 62: (2^31 - 1)^2 / 2^62 ~ 1 - 2^-30 -> 1; 2^31 (2^31 - 1) / 2^62 -> 1; 2^30 2^30 / 2^62 = 1/4 -> 0 */
    vitq_i_dyadic tiny = {INT32_MAX, 62}, tiny2 = {1 << 30, 62};
    CHECK(vitq_i_dyadic_apply(INT32_MAX, tiny) == 1 && vitq_i_dyadic_apply(INT32_MIN, tiny) == -1);
    CHECK(vitq_i_dyadic_apply(1 << 30, tiny2) == 0 && vitq_i_dyadic_apply(INT32_MIN, tiny2) == -1);
    /* exactly 1/2 at shift 62: 2^31 2^30 / 2^62 = 1/2 -> 1 (away from zero) */
    CHECK(vitq_i_dyadic_apply(INT32_MIN, tiny2) == -1 && vitq_i_dyadic_apply(-(1 << 30), tiny2) == 0);

    size_t bad = 0, n = harness_quick() ? 20000 : 200000;
    for (size_t i = 0; i < n; i++) {
        vitq_i_dyadic d = some_dyadic(i / 10);
        int32_t x = some_input(i, d);
        int64_t got = vitq_i_dyadic_apply(x, d), want = ref_round(x, d);
        if (got != want && bad++ < 3)
            printf("    x %d mult %d shift %d: %lld, want %lld\n", (int)x, (int)d.mult, (int)d.shift, (long long)got,
                   (long long)want);
        /* below 2^53 the product is exact in double: C's round() is the same rounding */
        int64_t p = (int64_t)x * d.mult;
        if ((p < 0 ? -p : p) < ((int64_t)1 << 53)) {
            double v = round(ldexp((double)p, -d.shift));
            if ((double)got != v && bad++ < 3)
                printf("    x %d mult %d shift %d: %lld, round() gives %.17g\n", (int)x, (int)d.mult, (int)d.shift,
                       (long long)got, v);
        }
    }
    CHECK(bad == 0);
}

/* One requant_rows case against the reference, on the path `isa` (forced; clamped to the CPU),
 * nothing written past cols. */
static void check_rows_path(const vitq_i_requant_grid *g, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                            const vitq_i_dyadic *m, size_t nm, int isa) {
    size_t ldo = cols + 3, esize = g->type == VITQ_I_RQ_INT16 ? 2 : 1;
    unsigned char *out = malloc(rows * ldo * esize + 1);
    memset(out, 0xC3, rows * ldo * esize);
    vitq_i_isa_force(isa);
    CHECK_STATUS(vitq_i_requant_rows(x, ldx, rows, cols, m, nm, g, out, ldo), VITQ_OK);
    vitq_i_isa_force(-1);
    int32_t offset = g->type == VITQ_I_RQ_UINT8 && g->qmin < 0 ? 128 : 0;
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < ldo; c++) {
            int64_t got;
            if (g->type == VITQ_I_RQ_INT8) got = ((int8_t *)out)[r * ldo + c];
            else if (g->type == VITQ_I_RQ_UINT8) got = ((uint8_t *)out)[r * ldo + c];
            else got = ((int16_t *)out)[r * ldo + c];
            if (c >= cols) { /* untouched */
                bad += memcmp(out + (r * ldo + c) * esize, "\xC3\xC3", esize) != 0;
                continue;
            }
            int64_t want = clamp64(ref_round(x[r * ldx + c], m[nm == 1 ? 0 : c]) + g->zero, g->qmin, g->qmax) + offset;
            if (got != want && bad++ < 3)
                printf("    %s: type %d [%d, %d] zero %d: x %d -> %lld, want %lld\n", isa ? "avx2" : "generic",
                       (int)g->type, (int)g->qmin, (int)g->qmax, (int)g->zero, (int)x[r * ldx + c], (long long)got,
                       (long long)want);
        }
    CHECK(bad == 0);
    free(out);
}

/* The portable code and the AVX2 path (when the CPU has it: test_requant_paths says when not). */
static void check_rows_case(const vitq_i_requant_grid *g, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                            const vitq_i_dyadic *m, size_t nm) {
    check_rows_path(g, x, ldx, rows, cols, m, nm, VITQ_I_ISA_GENERIC);
    check_rows_path(g, x, ldx, rows, cols, m, nm, VITQ_I_ISA_AVX2);
}

static void test_requant_paths(void) {
    if (!(vitq_i_cpu_features() & VITQ_I_CPU_AVX2_FMA)) {
        SKIP("requant avx2 path: this CPU has no AVX2 (only the portable code is tested)");
        return;
    }
    vitq_i_isa_force(VITQ_I_ISA_AVX2);
    CHECK(vitq_i_isa_active() == VITQ_I_ISA_AVX2);
    vitq_i_isa_force(-1);
}

static void test_requant_rows(void) {
    const vitq_i_requant_grid grids[] = {
        {VITQ_I_RQ_INT8, 0, -128, 127},    {VITQ_I_RQ_INT8, -3, -8, 7},       {VITQ_I_RQ_UINT8, 0, -128, 127},
        {VITQ_I_RQ_UINT8, 37, 0, 255},     {VITQ_I_RQ_UINT8, 9, 0, 15},       {VITQ_I_RQ_INT16, 0, -32768, 32767},
        {VITQ_I_RQ_INT16, 100, -512, 511}, {VITQ_I_RQ_INT8, 65536, -128, 127}, {VITQ_I_RQ_UINT8, -65536, 0, 255},
    };
    const size_t shapes[][2] = {{1, 1}, {3, 17}, {7, 64}, {2, 700}};
    size_t idx = 0;
    for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++)
        for (size_t s = 0; s < 4; s++)
            for (int per_col = 0; per_col <= 1; per_col++) {
                size_t rows = shapes[s][0], cols = shapes[s][1], ldx = cols + (idx % 3), nm = per_col ? cols : 1;
                vitq_i_dyadic *m = malloc(cols * sizeof *m);
                int32_t *x = malloc(rows * ldx * sizeof(int32_t));
                for (size_t c = 0; c < nm; c++) m[c] = some_dyadic(idx++);
                for (size_t i = 0; i < rows * ldx; i++) x[i] = some_input(i + idx, m[nm == 1 ? 0 : i % ldx % cols]);
                check_rows_case(&grids[gi], x, ldx, rows, cols, m, nm);
                /* a scale that makes codes land inside the grid, with ties: x / 2 */
                for (size_t c = 0; c < nm; c++) m[c].mult = 1 << 30, m[c].shift = 31;
                for (size_t i = 0; i < rows * ldx; i++) x[i] = (int32_t)irand(-300, 300);
                check_rows_case(&grids[gi], x, ldx, rows, cols, m, nm);
                free(m), free(x);
            }
}

/* Residual adds: int32 saturation at both INT32 ends and at a given range, int16 streams. */
static void test_residual_add(void) {
    const int32_t ranges[][2] = {{INT32_MIN, INT32_MAX}, {-1000, 1000}, {-32768, 32767}, {5, 5}};
    size_t idx = 0;
    for (size_t ri = 0; ri < 4; ri++)
        for (int per_col = 0; per_col <= 1; per_col++)
            for (int wide = 0; wide <= 1; wide++) {
                int32_t lo = ranges[ri][0], hi = ranges[ri][1];
                if (!wide && (lo < -32768 || hi > 32767)) continue;
                size_t rows = 5, cols = 37, ldx = 40, ldr = 39, nm = per_col ? cols : 1;
                vitq_i_dyadic m[37];
                for (size_t c = 0; c < nm; c++) m[c] = some_dyadic(idx++);
                int32_t *x = malloc(rows * ldx * sizeof(int32_t)), *r32 = malloc(rows * ldr * sizeof(int32_t));
                int16_t *r16 = malloc(rows * ldr * sizeof(int16_t));
                int64_t *base = malloc(rows * ldr * sizeof(int64_t));
                for (size_t i = 0; i < rows * ldx; i++) x[i] = some_input(i, m[nm == 1 ? 0 : i % ldx % cols]);
                for (size_t i = 0; i < rows * ldr; i++) {
                    int64_t v = i % 4 == 0 ? (i % 8 ? INT32_MAX : INT32_MIN) : irand(-3000000000LL, 3000000000LL);
                    if (!wide) v = v % 32768;
                    base[i] = clamp64(v, INT32_MIN, INT32_MAX);
                    r32[i] = (int32_t)base[i];
                    r16[i] = (int16_t)(wide ? 0 : base[i]);
                }
                if (wide)
                    CHECK_STATUS(vitq_i_residual_add_i32(r32, ldr, x, ldx, rows, cols, m, nm, lo, hi), VITQ_OK);
                else
                    CHECK_STATUS(vitq_i_residual_add_i16(r16, ldr, x, ldx, rows, cols, m, nm, lo, hi), VITQ_OK);
                size_t bad = 0;
                for (size_t r = 0; r < rows; r++)
                    for (size_t c = 0; c < ldr; c++) {
                        size_t i = r * ldr + c;
                        int64_t got = wide ? r32[i] : r16[i];
                        int64_t add = c < cols ? ref_round(x[r * ldx + c], m[nm == 1 ? 0 : c]) : 0;
                        int64_t want = c >= cols ? base[i] : clamp64(base[i] + add, lo, hi);
                        if (got != want && bad++ < 3)
                            printf("    residual %s [%d, %d]: res %lld + x %d -> %lld, want %lld\n",
                                   wide ? "i32" : "i16", (int)lo, (int)hi, (long long)base[i], (int)x[r * ldx + c],
                                   (long long)got, (long long)want);
                    }
                CHECK(bad == 0);
                free(x), free(r32), free(r16), free(base);
            }
    /* saturation exactly at the int32 ends: 2^31 - 2 + 1 stops at 2^31 - 1, then stays */
    int32_t res[2] = {INT32_MAX - 1, INT32_MIN + 1}, x[2] = {3, -3};
    vitq_i_dyadic half = {1 << 30, 31}; /* 3 / 2 -> 2 */
    CHECK_STATUS(vitq_i_residual_add_i32(res, 2, x, 2, 1, 2, &half, 1, INT32_MIN, INT32_MAX), VITQ_OK);
    CHECK(res[0] == INT32_MAX && res[1] == INT32_MIN);
}

/* Bad parameters are refused by name and nothing is written. */
static void test_errors(void) {
    int32_t x[6] = {1, 2, 3, 4, 5, 6};
    int8_t out[6] = {9, 9, 9, 9, 9, 9};
    int32_t res[6] = {7, 7, 7, 7, 7, 7};
    vitq_i_dyadic m[3] = {{1 << 30, 10}, {1 << 30, 10}, {(1 << 30) - 1, 10}};
    vitq_i_requant_grid g = {VITQ_I_RQ_INT8, 0, -128, 127};
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, &g, out, 3), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "mult[2]") != NULL);
    CHECK_STATUS(vitq_i_residual_add_i32(res, 3, x, 3, 2, 3, m, 3, INT32_MIN, INT32_MAX), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "mult[2]") != NULL);
    m[2].mult = INT32_MAX, m[2].shift = 63;
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, &g, out, 3), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "shift[2]") != NULL);
    m[2].shift = -1;
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, &g, out, 3), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "shift[2]") != NULL);
    m[2].shift = 62; /* every parameter now valid */
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 2, &g, out, 3), VITQ_ERR_INVALID_ARGUMENT); /* 2 for 3 cols */
    CHECK_STATUS(vitq_i_requant_rows(x, 2, 2, 3, m, 3, &g, out, 3), VITQ_ERR_INVALID_ARGUMENT); /* ldx < cols */
    CHECK_STATUS(vitq_i_requant_rows(NULL, 3, 2, 3, m, 3, &g, out, 3), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, NULL, out, 3), VITQ_ERR_INVALID_ARGUMENT);
    const vitq_i_requant_grid bad[] = {{VITQ_I_RQ_INT8, 0, -129, 127},  {VITQ_I_RQ_INT8, 0, 5, 4},
                                       {VITQ_I_RQ_UINT8, 0, -128, 128}, {VITQ_I_RQ_UINT8, 0, 0, 256},
                                       {VITQ_I_RQ_INT16, 0, 0, 32768},  {VITQ_I_RQ_INT8, 65537, -128, 127},
                                       {VITQ_I_RQ_INT8, -65537, -128, 127}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, &bad[i], out, 3), VITQ_ERR_OUT_OF_RANGE);
    vitq_i_requant_grid badtype = {(vitq_i_requant_type)7, 0, 0, 1};
    CHECK_STATUS(vitq_i_requant_rows(x, 3, 2, 3, m, 3, &badtype, out, 3), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_residual_add_i32(res, 3, x, 3, 2, 3, m, 3, 5, 4), VITQ_ERR_OUT_OF_RANGE);
    int16_t r16[6] = {7, 7, 7, 7, 7, 7};
    CHECK_STATUS(vitq_i_residual_add_i16(r16, 3, x, 3, 2, 3, m, 3, -40000, 0), VITQ_ERR_OUT_OF_RANGE);
    int untouched = 1;
    for (int i = 0; i < 6; i++) untouched &= out[i] == 9 && res[i] == 7 && r16[i] == 7;
    CHECK(untouched);
    /* empty inputs need no pointers */
    CHECK_STATUS(vitq_i_requant_rows(NULL, 0, 0, 3, NULL, 0, &g, NULL, 0), VITQ_OK);
    CHECK_STATUS(vitq_i_residual_add_i32(NULL, 0, NULL, 0, 4, 0, NULL, 0, 0, 0), VITQ_OK);
}

/* The exact error of d against factor: the two are within a factor 2 of each other, so the
 * subtraction is exact (Sterbenz) and |d - factor| / factor is computed with one rounding. */
static double rel_error(vitq_i_dyadic d, double factor) {
    return fabs(vitq_i_dyadic_value(d) - factor) / factor;
}

static void check_from_real(double factor) {
    vitq_i_dyadic d;
    CHECK_STATUS(vitq_i_dyadic_from_real(factor, &d), VITQ_OK);
    int ok = d.mult >= (1 << 30) && d.shift >= 0 && d.shift <= 62 && rel_error(d, factor) <= ldexp(1.0, -31);
    /* the nearest integer to factor 2^shift (exact in double: a power-of-two scaling) */
    double scaled = ldexp(factor, d.shift);
    ok &= fabs(scaled - (double)d.mult) <= 0.5;
    /* the largest shift: one more would need mult >= 2^31 */
    ok &= ldexp(factor, d.shift + 1) >= 2147483647.5 || d.shift == 62;
    if (!ok) {
        printf("    factor %.17g: mult %d shift %d, relative error %.3g\n", factor, (int)d.mult, (int)d.shift,
               rel_error(d, factor));
        harness_check_failures++;
    }
}

static void test_dyadic_from_real(void) {
    vitq_i_dyadic d;
    CHECK_STATUS(vitq_i_dyadic_from_real(1.0, &d), VITQ_OK);
    CHECK(d.mult == 1 << 30 && d.shift == 30);
    CHECK_STATUS(vitq_i_dyadic_from_real(0.75, &d), VITQ_OK);
    CHECK(d.mult == 3 << 29 && d.shift == 31);
    /* the ends: just below 2^31 - 1/2 gives 2^31 - 1 at shift 0; 2^31 - 1/2 itself rounds to 2^31 */
    CHECK_STATUS(vitq_i_dyadic_from_real(nextafter(2147483647.5, 0.0), &d), VITQ_OK);
    CHECK(d.mult == INT32_MAX && d.shift == 0);
    CHECK_STATUS(vitq_i_dyadic_from_real(2147483647.5, &d), VITQ_ERR_OUT_OF_RANGE);
    CHECK(d.mult == 0 && d.shift == 0);
    CHECK_STATUS(vitq_i_dyadic_from_real(ldexp(2147483647.5, -63), &d), VITQ_OK);
    CHECK(d.mult == 1 << 30 && d.shift == 62);
    CHECK_STATUS(vitq_i_dyadic_from_real(ldexp(1.0, -32), &d), VITQ_OK);
    CHECK(d.mult == 1 << 30 && d.shift == 62);
    CHECK_STATUS(vitq_i_dyadic_from_real(nextafter(ldexp(2147483647.5, -63), 0.0), &d), VITQ_ERR_OUT_OF_RANGE);
    /* ties of f 2^31 round up: (2^30 + 1/2) 2^-30 -> 2^30 + 1 */
    CHECK_STATUS(vitq_i_dyadic_from_real(ldexp(1073741824.5, -30), &d), VITQ_OK);
    CHECK(d.mult == (1 << 30) + 1 && d.shift == 30);
    const double refused[] = {0.0, -0.0, -1.0, NAN, INFINITY, -INFINITY, DBL_MIN, 4e-324, 1e10, DBL_MAX};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK_STATUS(vitq_i_dyadic_from_real(refused[i], &d), VITQ_ERR_OUT_OF_RANGE);
        CHECK(strstr(vitq_last_error(), "factor") != NULL);
    }
    CHECK_STATUS(vitq_i_dyadic_from_real(1.0, NULL), VITQ_ERR_INVALID_ARGUMENT);
    /* random factors over the whole range, and ratios of float scales as a GEMM's requant has them */
    for (int i = 0; i < 20000; i++) {
        double f = ldexp(1.0 + (double)(next_u64() >> 11) / 9007199254740992.0, (int)irand(-32, 30));
        check_from_real(f);
        float a_scale = (float)ldexp(1.0 + (double)(next_u64() >> 40) / 16777216.0, (int)irand(-12, -2));
        float w_scale = (float)ldexp(1.0 + (double)(next_u64() >> 40) / 16777216.0, (int)irand(-12, -2));
        float o_scale = (float)ldexp(1.0 + (double)(next_u64() >> 40) / 16777216.0, (int)irand(-8, 0));
        check_from_real((double)a_scale * w_scale / o_scale);
    }
    /* every prepared multiplier is accepted by the kernels */
    CHECK_STATUS(vitq_i_dyadic_from_real(0.0123, &d), VITQ_OK);
    CHECK_STATUS(vitq_i_dyadic_check(d, "test", 0), VITQ_OK);
}

/* From float scales to codes: requantizing with the prepared multiplier is within one code of the
 * float rounding of x * factor (the approximation moves x * factor by at most |x| factor 2^-31). */
static void test_end_to_end(void) {
    size_t bad = 0;
    for (int i = 0; i < 5000; i++) {
        double factor = ldexp(1.0 + (double)(next_u64() >> 11) / 9007199254740992.0, (int)irand(-20, 0));
        vitq_i_dyadic d;
        CHECK_STATUS(vitq_i_dyadic_from_real(factor, &d), VITQ_OK);
        int32_t x = (int32_t)irand(-(1 << 24), 1 << 24);
        double exact = (double)x * factor;
        int64_t got = vitq_i_dyadic_apply(x, d);
        bad += fabs((double)got - exact) > 0.5 + fabs(exact) * ldexp(1.0, -31) + 1e-9;
    }
    CHECK(bad == 0);
}

/* ---- every path of the requantization and the residual adds against the reference (issue 17) ----
 * Each path forced in turn (generic, AVX2, AVX-512: the last runs the AVX2 code, the features it allows
 * include AVX2) on shapes with a tail of 1..7 columns, crossing the vector code's 128-column blocks, with
 * row strides above the width; multipliers at 2^30 and 2^31 - 1, shifts 0, 31 and 62, exact ties, both
 * ends of int32, and ranges that clamp at both ends. A path the CPU lacks is skipped by name. */

static const char *path_name(int isa) { return vitq_i_isa_name((vitq_i_isa)isa); }

/* 1 when the CPU runs the path `isa`, else a SKIP naming it. */
static int path_available(int isa, const char *what) {
    unsigned f = vitq_i_cpu_features();
    if (isa == VITQ_I_ISA_AVX2 && !(f & VITQ_I_CPU_AVX2_FMA)) {
        SKIP("%s, avx2 path: this CPU has no AVX2", what);
        return 0;
    }
    if (isa == VITQ_I_ISA_AVX512 && !(f & VITQ_I_CPU_AVX512)) {
        SKIP("%s, avx512 path: this CPU has no AVX-512", what);
        return 0;
    }
    vitq_i_isa_force(isa);
    int ok = (int)vitq_i_isa_active() == isa;
    vitq_i_isa_force(-1);
    CHECK(ok);
    return ok;
}

/* Multipliers for column c of case k: the range ends and the tie makers first, then random ones. */
static vitq_i_dyadic edge_dyadic(size_t k, size_t c) {
    static const vitq_i_dyadic fixed[] = {{1 << 30, 0},      {1 << 30, 31},      {1 << 30, 62}, {INT32_MAX, 0},
                                          {INT32_MAX, 31},   {INT32_MAX, 62},    {3 << 29, 31}, {3 << 29, 40},
                                          {1 << 30, 35},     {INT32_MAX - 1, 33}};
    size_t n = sizeof fixed / sizeof fixed[0];
    return (k + c) % 3 != 2 ? fixed[(k + c) % n] : some_dyadic(k * 7 + c);
}

static const size_t path_widths[] = {1, 3, 7, 8, 9, 15, 16, 17, 37, 127, 128, 129, 300};
#define NWIDTHS (sizeof path_widths / sizeof path_widths[0])

/* Residual values: the int32 ends, values next to the clamp range's ends, random int32s. */
static int64_t some_residual(size_t i, int64_t lo, int64_t hi) {
    switch (i % 8) {
    case 0: return INT32_MIN;
    case 1: return INT32_MAX;
    case 2: return lo;
    case 3: return hi;
    case 4: return irand(lo, hi);
    default: return irand(INT32_MIN, INT32_MAX);
    }
}

/* One residual add (int32 when wide, else int16) on path isa against ref_round + clamp; the columns
 * past cols of each row stay as they were. */
static size_t residual_case(int isa, int wide, size_t rows, size_t cols, size_t nm, const vitq_i_dyadic *m,
                            int32_t lo, int32_t hi, size_t k) {
    size_t ldx = cols + k % 3, ldr = cols + (k + 1) % 4;
    int32_t *x = malloc(rows * ldx * sizeof *x), *r32 = malloc(rows * ldr * sizeof *r32);
    int16_t *r16 = malloc(rows * ldr * sizeof *r16);
    int64_t *base = malloc(rows * ldr * sizeof *base);
    for (size_t i = 0; i < rows * ldx; i++) x[i] = some_input(i + k, m[nm == 1 ? 0 : i % ldx % cols]);
    for (size_t i = 0; i < rows * ldr; i++) {
        int64_t v = some_residual(i + k, lo, hi);
        base[i] = wide ? v : clamp64(v, -32768, 32767);
        r32[i] = (int32_t)base[i];
        r16[i] = (int16_t)(wide ? 0 : base[i]);
    }
    vitq_i_isa_force(isa);
    if (wide) CHECK_STATUS(vitq_i_residual_add_i32(r32, ldr, x, ldx, rows, cols, m, nm, lo, hi), VITQ_OK);
    else CHECK_STATUS(vitq_i_residual_add_i16(r16, ldr, x, ldx, rows, cols, m, nm, lo, hi), VITQ_OK);
    vitq_i_isa_force(-1);
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < ldr; c++) {
            size_t i = r * ldr + c;
            int64_t got = wide ? r32[i] : r16[i];
            int64_t want =
                c >= cols ? base[i] : clamp64(base[i] + ref_round(x[r * ldx + c], m[nm == 1 ? 0 : c]), lo, hi);
            if (got != want && bad++ < 3)
                printf("    %s residual %s %zu x %zu nm %zu [%d, %d]: res %lld + x %d (mult %d shift %d) -> %lld, "
                       "want %lld\n",
                       path_name(isa), wide ? "i32" : "i16", rows, cols, nm, (int)lo, (int)hi, (long long)base[i],
                       c < cols ? (int)x[r * ldx + c] : 0, (int)m[nm == 1 || c >= cols ? 0 : c].mult,
                       (int)m[nm == 1 || c >= cols ? 0 : c].shift, (long long)got, (long long)want);
        }
    free(x), free(r32), free(r16), free(base);
    return bad;
}

static void residual_path(int isa) {
    if (!path_available(isa, "residual add")) return;
    const int32_t ranges32[][2] = {{INT32_MIN, INT32_MAX}, {-1000, 1000}, {5, 5}, {INT32_MIN, INT32_MIN + 10},
                                   {INT32_MAX - 3, INT32_MAX}, {-40000, 70000}};
    const int32_t ranges16[][2] = {{-32768, 32767}, {-32767, 32767}, {-100, 50}, {0, 0}, {32760, 32767}};
    size_t bad = 0, k = 0;
    vitq_i_dyadic *m = malloc(300 * sizeof *m);
    for (size_t w = 0; w < NWIDTHS; w++)
        for (int per_col = 0; per_col <= 1; per_col++)
            for (int wide = 0; wide <= 1; wide++) {
                size_t cols = path_widths[w], nm = per_col ? cols : 1, rows = 1 + (w + k) % 4;
                size_t nr = wide ? sizeof ranges32 / sizeof ranges32[0] : sizeof ranges16 / sizeof ranges16[0];
                for (size_t ri = 0; ri < nr; ri++, k++) {
                    for (size_t c = 0; c < nm; c++) m[c] = edge_dyadic(k, c);
                    int32_t lo = wide ? ranges32[ri][0] : ranges16[ri][0],
                            hi = wide ? ranges32[ri][1] : ranges16[ri][1];
                    bad += residual_case(isa, wide, rows, cols, nm, m, lo, hi, k);
                }
            }
    /* exact ties of x / 2 at every column, both signs, added to residuals that sit at the clamp ends */
    for (int wide = 0; wide <= 1; wide++) {
        vitq_i_dyadic half = {1 << 30, 31};
        int32_t x[19], res32[19], want[19];
        int16_t res16[19];
        for (int i = 0; i < 19; i++) {
            x[i] = (i % 2 ? 1 : -1) * (2 * i + 1); /* +-(i + 1/2) -> +-(i + 1) */
            int32_t base = i % 3 == 0   ? (wide ? INT32_MAX - 5 : 32762)
                           : i % 3 == 1 ? (wide ? INT32_MIN + 5 : -32763)
                                        : 0;
            res32[i] = base, res16[i] = (int16_t)base;
            int64_t v = (int64_t)base + (i % 2 ? 1 : -1) * (i + 1);
            want[i] = (int32_t)clamp64(v, wide ? INT32_MIN : -32768, wide ? INT32_MAX : 32767);
        }
        vitq_i_isa_force(isa);
        if (wide)
            CHECK_STATUS(vitq_i_residual_add_i32(res32, 19, x, 19, 1, 19, &half, 1, INT32_MIN, INT32_MAX), VITQ_OK);
        else CHECK_STATUS(vitq_i_residual_add_i16(res16, 19, x, 19, 1, 19, &half, 1, -32768, 32767), VITQ_OK);
        vitq_i_isa_force(-1);
        for (int i = 0; i < 19; i++) bad += (wide ? res32[i] : res16[i]) != want[i];
    }
    free(m);
    CHECK(bad == 0);
}

static void test_residual_generic(void) { residual_path(VITQ_I_ISA_GENERIC); }
static void test_residual_avx2(void) { residual_path(VITQ_I_ISA_AVX2); }
static void test_residual_avx512(void) { residual_path(VITQ_I_ISA_AVX512); }

/* requant rows on path isa: every output type, per tensor and per column, the widths above, strides of
 * input and output above the width (check_rows_path: ldo = cols + 3, nothing written past cols). */
static void requant_path(int isa) {
    if (!path_available(isa, "requant rows")) return;
    const vitq_i_requant_grid grids[] = {
        {VITQ_I_RQ_INT8, 0, -128, 127},     {VITQ_I_RQ_INT8, -3, -8, 7},         {VITQ_I_RQ_UINT8, 0, -128, 127},
        {VITQ_I_RQ_UINT8, 37, 0, 255},      {VITQ_I_RQ_UINT8, 9, 0, 15},         {VITQ_I_RQ_INT16, 0, -32768, 32767},
        {VITQ_I_RQ_INT16, 0, -32767, 32767}, {VITQ_I_RQ_INT16, 100, -512, 511},   {VITQ_I_RQ_INT16, 65536, 0, 255},
        {VITQ_I_RQ_INT16, -65536, -32768, 32767}, {VITQ_I_RQ_UINT8, -65536, 0, 255}, {VITQ_I_RQ_INT8, 65536, -128, 127},
    };
    int before = harness_check_failures;
    vitq_i_dyadic *m = malloc(300 * sizeof *m);
    size_t k = 0;
    for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++)
        for (size_t w = 0; w < NWIDTHS; w++)
            for (int per_col = 0; per_col <= 1; per_col++, k++) {
                size_t cols = path_widths[w], nm = per_col ? cols : 1, rows = 1 + k % 3, ldx = cols + k % 4;
                int32_t *x = malloc(rows * ldx * sizeof *x);
                for (size_t c = 0; c < nm; c++) m[c] = edge_dyadic(k, c);
                for (size_t i = 0; i < rows * ldx; i++) x[i] = some_input(i + k, m[nm == 1 ? 0 : i % ldx % cols]);
                check_rows_path(&grids[gi], x, ldx, rows, cols, m, nm, isa);
                /* codes inside the grid, with ties: x / 2 and x 3/4 */
                for (size_t c = 0; c < nm; c++)
                    m[c] = c % 2 ? (vitq_i_dyadic){3 << 29, 31} : (vitq_i_dyadic){1 << 30, 31};
                for (size_t i = 0; i < rows * ldx; i++) x[i] = (int32_t)irand(-700, 700);
                check_rows_path(&grids[gi], x, ldx, rows, cols, m, nm, isa);
                free(x);
                if (harness_check_failures > before + 3) { /* one broken case fails them all: stop early */
                    free(m);
                    return;
                }
            }
    free(m);
}

static void test_requant_generic(void) { requant_path(VITQ_I_ISA_GENERIC); }
static void test_requant_avx2(void) { requant_path(VITQ_I_ISA_AVX2); }
static void test_requant_avx512(void) { requant_path(VITQ_I_ISA_AVX512); }

#ifdef VITQ_I_REQUANT_AVX2
/* The one-row AVX2 entry (int32 codes) against the reference, odd widths and per-column multipliers. */
static void test_requant_row_avx2(void) {
    if (!path_available(VITQ_I_ISA_AVX2, "requant row (int32 codes)")) return;
    size_t bad = 0;
    vitq_i_dyadic m[37];
    int32_t x[37], codes[38];
    for (size_t k = 0; k < 200; k++) {
        size_t cols = 1 + k % 37, nm = k % 2 ? cols : 1;
        for (size_t c = 0; c < nm; c++) m[c] = edge_dyadic(k, c);
        for (size_t c = 0; c < cols; c++) x[c] = some_input(c + k, m[nm == 1 ? 0 : c]);
        int32_t zero = (int32_t)irand(-65536, 65536), qmin = (int32_t)irand(-32768, 100),
                qmax = (int32_t)irand(qmin, 32767);
        codes[cols] = 12345;
        vitq_i_requant_row_avx2(x, cols, m, nm, zero, qmin, qmax, 7, codes);
        for (size_t c = 0; c < cols; c++)
            bad += codes[c] != clamp64(ref_round(x[c], m[nm == 1 ? 0 : c]) + zero, qmin, qmax) + 7;
        bad += codes[cols] != 12345;
    }
    CHECK(bad == 0);
}
#endif

/* The vector paths cap |x| at 2^clamp(shift - 9, 0, 31) before multiplying (requant_avx2.c,
 * requant_avx512.c): inputs next to that cap, at the int32 ends and near 0, for every shift and the
 * multipliers' range ends, per tensor and per column, on grids whose clamp ends the capped values reach
 * (int16 at the zero point's limits, uint8, int8), against the reference on every available path. */
static void test_requant_cap_edges(void) {
    static const int32_t mults[] = {1 << 30, (1 << 30) + 1, 3 << 29, INT32_MAX};
    static const vitq_i_requant_grid grids[] = {
        {VITQ_I_RQ_INT16, 0, -32768, 32767}, {VITQ_I_RQ_INT16, 65536, -32768, 32767},
        {VITQ_I_RQ_INT16, -65536, -32768, 32767}, {VITQ_I_RQ_UINT8, 3, 0, 255}, {VITQ_I_RQ_INT8, -7, -128, 127}};
    static const int isas[] = {VITQ_I_ISA_GENERIC, VITQ_I_ISA_AVX2, VITQ_I_ISA_AVX512};
    enum { COLS = 40 };
    vitq_i_dyadic m[COLS];
    int32_t x[COLS];
    for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
        if (!path_available(isas[ii], "requant cap edges")) continue;
        int before = harness_check_failures;
        for (int32_t shift = 0; shift <= 62; shift++)
            for (size_t mi = 0; mi < sizeof mults / sizeof mults[0]; mi++) {
                vitq_i_dyadic d = {mults[mi], shift};
                int32_t e = shift - 9 < 0 ? 0 : shift - 9 > 31 ? 31 : shift - 9;
                int64_t cap = (int64_t)1 << e;
                static const int64_t around[] = {-2, -1, 0, 1, 2};
                size_t n = 0;
                for (size_t a = 0; a < 5; a++) {
                    int64_t v = cap + around[a];
                    if (v > INT32_MAX) v = INT32_MAX;
                    x[n++] = (int32_t)v;
                    x[n++] = (int32_t)(v > INT32_MAX ? INT32_MIN : -v);
                }
                x[n++] = INT32_MIN, x[n++] = INT32_MAX, x[n++] = 0, x[n++] = 1, x[n++] = -1;
                while (n < COLS) x[n] = (int32_t)irand(-2 * cap, 2 * cap), n++;
                /* per column: this multiplier and its neighbours' shifts */
                for (size_t c = 0; c < COLS; c++)
                    m[c] = (vitq_i_dyadic){mults[(mi + c) % 4], (shift + (int32_t)c) % 63};
                for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) {
                    check_rows_path(&grids[g], x, COLS, 1, COLS, &d, 1, isas[ii]);
                    check_rows_path(&grids[g], x, COLS, 1, COLS, m, COLS, isas[ii]);
                }
                if (harness_check_failures > before + 3) return;
            }
    }
}

/* vitq_i_requant_check refuses what vitq_i_requant_rows refuses (nothing about the matrices), and
 * vitq_i_requant_block then writes vitq_i_requant_rows's codes; the residual check and block likewise. */
static void test_requant_check_and_block(void) {
    vitq_i_dyadic ok = {1 << 30, 33}, bad_mult = {5, 3}, bad_shift = {1 << 30, 63}, two[2] = {{1 << 30, 33}, {5, 3}};
    vitq_i_requant_grid g = {VITQ_I_RQ_UINT8, 5, 0, 255}, wide = {VITQ_I_RQ_INT8, 0, -200, 127};
    vitq_i_requant_grid far = {VITQ_I_RQ_INT16, 70000, 0, 10}, kind = {(vitq_i_requant_type)7, 0, 0, 1};
    CHECK_STATUS(vitq_i_requant_check(&ok, 1, 9, &g), VITQ_OK);
    CHECK_STATUS(vitq_i_requant_check(&bad_mult, 1, 9, &g), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_requant_check(&bad_shift, 1, 9, &g), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_requant_check(two, 2, 2, &g), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_requant_check(two, 2, 3, &g), VITQ_ERR_INVALID_ARGUMENT); /* 2 multipliers, 3 columns */
    CHECK_STATUS(vitq_i_requant_check(&ok, 1, 9, &wide), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_requant_check(&ok, 1, 9, &far), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_requant_check(&ok, 1, 9, &kind), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_requant_check(&ok, 1, 9, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_residual_check(&ok, 1, 9), VITQ_OK);
    CHECK_STATUS(vitq_i_residual_check(&bad_shift, 1, 9), VITQ_ERR_OUT_OF_RANGE);
    int32_t x[3 * 21], res_a[3 * 21], res_b[3 * 21];
    vitq_i_dyadic m[21];
    for (size_t i = 0; i < 21; i++) m[i] = (vitq_i_dyadic){(int32_t)irand(1 << 30, INT32_MAX), (int32_t)irand(20, 40)};
    for (size_t i = 0; i < 3 * 21; i++) {
        x[i] = (int32_t)irand(INT32_MIN, INT32_MAX);
        res_a[i] = res_b[i] = (int32_t)irand(-1000, 1000);
    }
    uint8_t a[3 * 21], b[3 * 21];
    CHECK_STATUS(vitq_i_requant_rows(x, 21, 3, 21, m, 21, &g, a, 21), VITQ_OK);
    vitq_i_requant_block(x, 21, 3, 21, m, 21, &g, b, 21);
    CHECK(!memcmp(a, b, sizeof a));
    /* a block of columns [5, 18) with its own multipliers m + 5 */
    memset(b, 0, sizeof b);
    vitq_i_requant_block(x + 5, 21, 3, 13, m + 5, 13, &g, b + 5, 21);
    size_t diff = 0;
    for (size_t r = 0; r < 3; r++) diff += memcmp(a + r * 21 + 5, b + r * 21 + 5, 13) != 0;
    CHECK(diff == 0);
    CHECK_STATUS(vitq_i_residual_add_i32(res_a, 21, x, 21, 3, 21, m, 21, -50000, 50000), VITQ_OK);
    vitq_i_residual_add_i32_block(res_b, 21, x, 21, 3, 21, m, 21, -50000, 50000);
    CHECK(!memcmp(res_a, res_b, sizeof res_a));
}

int main(void) {
    RUN(test_apply_rounding);
    RUN(test_requant_paths);
    RUN(test_requant_rows);
    RUN(test_residual_add);
    RUN(test_errors);
    RUN(test_dyadic_from_real);
    RUN(test_end_to_end);
    RUN(test_residual_generic);
    RUN(test_residual_avx2);
    RUN(test_residual_avx512);
    RUN(test_requant_generic);
    RUN(test_requant_avx2);
    RUN(test_requant_avx512);
    RUN(test_requant_cap_edges);
    RUN(test_requant_check_and_block);
#ifdef VITQ_I_REQUANT_AVX2
    RUN(test_requant_row_avx2);
#endif
    HARNESS_EXIT();
}
