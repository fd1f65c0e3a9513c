/* VVTQ's oscillation-aware bin regulariser, its schedule and the code-flip tracker
 * (src/train/oscillation.h).
 *
 * The regulariser is checked against a naive reference (each bin gathered by scanning its group once per
 * code, two-pass variance), its gradient against central differences of that reference in double. With
 * the codes and clamp states frozen (the points lie at least 0.1 step from every rounding boundary and
 * clamp end, far beyond the perturbation), L is a quadratic of w, so a central difference is exact up to
 * rounding. */
#include "harness.h"
#include "quant/view.h"
#include "test_random.h"
#include "train/lsq.h"
#include "train/oscillation.h"

enum { MAXN = 4096 };

typedef struct coverage {
    int clipped, singletons, shared; /* clipped weights, bins of 1 member, bins of >= 2 */
} coverage;

/* Naive L: x_i = w_i where inside[i], else the clamp end times s; bins by code[] within each group. Codes
 * are relative to the group's zero point (zero: NULL or per group), so their range is [qmin - z, qmax - z]. */
static double ref_loss_z(const double *w, const int32_t *code, const int *inside, int64_t rows, int64_t in,
                         const float *step, const int32_t *zero, int64_t cpg, const vitq_i_uniform *grid,
                         coverage *cov) {
    int64_t n = rows * in, per = cpg * in;
    static double x[MAXN];
    double squares = 0.0, variances = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = step[i / per];
        int32_t z = zero ? zero[i / per] : 0, lo = grid->qmin - z, hi = grid->qmax - z;
        x[i] = inside[i] ? w[i] : (code[i] == lo ? lo : hi) * s;
        squares += (x[i] - code[i] * s) * (x[i] - code[i] * s);
        if (cov && !inside[i]) cov->clipped++;
    }
    for (int64_t g = 0; g < rows / cpg; g++)
        for (int32_t c = grid->qmin - (zero ? zero[g] : 0); c <= grid->qmax - (zero ? zero[g] : 0); c++) {
            double sum = 0.0, dev = 0.0;
            int members = 0;
            for (int64_t i = g * per; i < (g + 1) * per; i++)
                if (code[i] == c) sum += x[i], members++;
            if (cov && members == 1) cov->singletons++;
            if (members < 2) continue;
            if (cov) cov->shared++;
            double mean = sum / members;
            for (int64_t i = g * per; i < (g + 1) * per; i++)
                if (code[i] == c) dev += (x[i] - mean) * (x[i] - mean);
            variances += dev / (members - 1);
        }
    return squares / (double)n + variances;
}

static double ref_loss(const double *w, const int32_t *code, const int *inside, int64_t rows, int64_t in,
                       const float *step, int64_t cpg, const vitq_i_uniform *grid, coverage *cov) {
    return ref_loss_z(w, code, inside, rows, in, step, NULL, cpg, grid, cov);
}

/* Codes and clamp states as the float arithmetic of the library defines them: u = w / s in float,
 * rounded half to even, clamped. */
static void float_codes(const float *w, int64_t n, int64_t per, const float *step, const vitq_i_uniform *grid,
                        int32_t *code, int *inside) {
    for (int64_t i = 0; i < n; i++) {
        float u = w[i] / step[i / per];
        double r = nearbyint((double)u);
        code[i] = (int32_t)(r < grid->qmin ? grid->qmin : r > grid->qmax ? grid->qmax : r);
        inside[i] = u >= (float)grid->qmin && u <= (float)grid->qmax;
    }
}

typedef struct shape {
    int bits, is_signed;
    int64_t rows, in, groups, cpg;
} shape;

static const shape shapes[] = {
    {2, 1, 8, 16, 2, 4}, {3, 1, 12, 23, 3, 4}, {4, 1, 6, 10, 6, 1}, {8, 1, 4, 64, 1, 4}, {4, 0, 6, 20, 3, 2},
};

static void random_steps(float *step, int64_t groups) {
    for (int64_t g = 0; g < groups; g++) step[g] = (float)(0.02 + 0.08 * urand());
}

/* Weights of a signed grid spread so that about 10 % clip; of an unsigned grid, mostly inside [0, qmax]
 * with some below 0 and above. */
static void random_weights(float *w, int64_t n, int64_t per, const float *step, const vitq_i_uniform *grid) {
    for (int64_t i = 0; i < n; i++) {
        double s = step[i / per];
        if (grid->qmin < 0) w[i] = (float)(gauss() * s * (grid->qmax + 1) * 0.6);
        else w[i] = (float)((urand() * 1.3 - 0.1) * grid->qmax * s);
    }
}

static void test_value_matches_naive(void) {
    static float w[MAXN], dw[MAXN];
    static double wd[MAXN];
    static int32_t code[MAXN];
    static int inside[MAXN];
    coverage cov = {0, 0, 0};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const shape *sh = &shapes[t];
        vitq_i_uniform grid = vitq_i_uniform_grid(sh->bits, sh->is_signed);
        float step[16];
        int64_t n = sh->rows * sh->in, per = sh->cpg * sh->in;
        random_steps(step, sh->groups);
        random_weights(w, n, per, step, &grid);
        for (int64_t i = 0; i < n; i++) wd[i] = w[i], dw[i] = 0.0f;
        float_codes(w, n, per, step, &grid, code, inside);
        double want = ref_loss(wd, code, inside, sh->rows, sh->in, step, sh->cpg, &grid, &cov);
        double got = -1.0, got_dw = -1.0;
        CHECK_STATUS(vitq_i_obr("test.w", w, sh->rows, sh->in, step, NULL, sh->groups, sh->cpg, &grid, 0.7, NULL, &got),
                     VITQ_OK);
        CHECK_NEAR(got, 0.7 * want, 1e-12 * want);
        /* the value does not depend on whether the gradient is wanted */
        CHECK_STATUS(vitq_i_obr("test.w", w, sh->rows, sh->in, step, NULL, sh->groups, sh->cpg, &grid, 0.7, dw, &got_dw),
                     VITQ_OK);
        CHECK(got == got_dw);
        CHECK(want > 0.0);
    }
    /* the shapes cover clipped weights, single-member bins (left out of the variance) and shared bins */
    CHECK(cov.clipped > 20);
    CHECK(cov.singletons > 5);
    CHECK(cov.shared > 20);
}

/* u = k + f, k whole in [lo - 3, hi + 3] (about 25 % outside [lo, hi]), 0.1 <= |f| <= 0.4. */
static double safe_u(int32_t lo, int32_t hi) {
    double r = urand(), k, f;
    if (r < 0.12) k = hi + 1 + floor(urand() * 3.0);
    else if (r < 0.25) k = lo - 1 - floor(urand() * 3.0);
    else k = lo + floor(urand() * (double)(hi - lo + 1));
    do f = urand() - 0.5; while (fabs(f) < 0.1 || fabs(f) > 0.4);
    return k + f;
}

static void test_gradient_matches_fd(void) {
    static float w[MAXN], dw[MAXN];
    static double wd[MAXN];
    static int32_t code[MAXN];
    static int inside[MAXN];
    int outside_checked = 0, inside_checked = 0;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const shape *sh = &shapes[t];
        vitq_i_uniform grid = vitq_i_uniform_grid(sh->bits, sh->is_signed);
        float step[16];
        int64_t n = sh->rows * sh->in, per = sh->cpg * sh->in;
        random_steps(step, sh->groups);
        for (int64_t i = 0; i < n; i++) {
            double s = step[i / per], u;
            do {
                w[i] = (float)(safe_u(grid.qmin, grid.qmax) * s);
                u = (double)(w[i] / step[i / per]);
            } while (fabs(u - nearbyint(u)) < 0.1 || fabs(u - nearbyint(u)) > 0.4);
            wd[i] = w[i];
            dw[i] = 0.5f; /* the gradient is accumulated onto what is there */
        }
        float_codes(w, n, per, step, &grid, code, inside);
        const double lambda = 0.3;
        CHECK_STATUS(vitq_i_obr("test.w", w, sh->rows, sh->in, step, NULL, sh->groups, sh->cpg, &grid, lambda, dw, NULL),
                     VITQ_OK);
        for (int64_t i = 0; i < n; i++) {
            double s = step[i / per], h = 1e-3 * s, keep = wd[i];
            wd[i] = keep + h;
            double up = ref_loss(wd, code, inside, sh->rows, sh->in, step, sh->cpg, &grid, NULL);
            wd[i] = keep - h;
            double down = ref_loss(wd, code, inside, sh->rows, sh->in, step, sh->cpg, &grid, NULL);
            wd[i] = keep;
            double fd = (up - down) / (2 * h), got = ((double)dw[i] - 0.5) / lambda;
            /* float accumulation onto 0.5: about 3e-8 absolute, divided by lambda */
            CHECK_NEAR(got, fd, 2e-7 + 1e-6 * fabs(fd));
            if (!inside[i]) {
                CHECK(dw[i] == 0.5f); /* clipped: nothing at all passes */
                outside_checked++;
            } else if (fabs(fd) > 1e-3) {
                inside_checked++;
            }
        }
    }
    CHECK(outside_checked > 20);
    CHECK(inside_checked > 200);
}

/* Codes agree with LSQ's bit for bit, ties included: weights at exact midpoints (k + 1/2) s with s a power
 * of two round half to even in both. The reference takes its codes from LSQ's output (VVTQ's bins:
 * w_hat / s == n), and rounding half away from zero would give another value (the ties matter). */
static void test_codes_match_lsq(void) {
    enum { ROWS = 6, IN = 24, GROUPS = 3, CPG = 2, N = ROWS * IN };
    static float w[N], y[N];
    static double wd[N];
    static int32_t code[N], away[N];
    static int inside[N];
    const float steps[GROUPS] = {0.125f, 0.0625f, 0.25f};
    vitq_i_lsq q;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", 3, 1, GROUPS, CPG, 0), VITQ_OK);
    CHECK_STATUS(vitq_i_lsq_init_steps(&q, steps, NULL), VITQ_OK);
    int ties = 0;
    for (int i = 0; i < N; i++) {
        float s = steps[i / (CPG * IN)];
        if (i % 3 == 0) w[i] = ((float)((i / 3) % 9) - 4.5f) * s, ties++; /* -4.5 .. 3.5: every midpoint */
        else w[i] = (float)(gauss() * 2.0) * s;
        wd[i] = w[i];
    }
    vitq_tensor_view view = vitq_i_view_rows(w, ROWS, IN);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &view, y), VITQ_OK);
    for (int i = 0; i < N; i++) {
        float s = steps[i / (CPG * IN)], u = w[i] / s;
        code[i] = (int32_t)(y[i] / s);
        CHECK((float)code[i] * s == y[i]);
        inside[i] = u >= (float)q.grid.qmin && u <= (float)q.grid.qmax;
        double r = round((double)u);
        away[i] = (int32_t)(r < q.grid.qmin ? q.grid.qmin : r > q.grid.qmax ? q.grid.qmax : r);
    }
    double want = ref_loss(wd, code, inside, ROWS, IN, steps, CPG, &q.grid, NULL);
    double other = ref_loss(wd, away, inside, ROWS, IN, steps, CPG, &q.grid, NULL);
    double got = -1.0;
    CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, steps, NULL, GROUPS, CPG, &q.grid, 1.0, NULL, &got), VITQ_OK);
    CHECK_NEAR(got, want, 1e-12 * want);
    CHECK(fabs(other - want) > 1e-3 * want);
    CHECK(ties == N / 3);
    vitq_i_lsq_free(&q);
}

/* A grid with zero points (RepQ-ViT's asymmetric weights): value and gradient against the reference with each
 * group's range moved by its zero point, the tracker's flips against the relative codes, and zero points that
 * are not whole numbers in the grid refused. */
static void test_zero_points(void) {
    enum { ROWS = 6, IN = 20, GROUPS = 3, CPG = 2, N = ROWS * IN, PER = CPG * IN };
    static float w[N], dw[N], w2[N];
    static double wd[N];
    static int32_t code[N];
    static int inside[N];
    const int32_t zero[GROUPS] = {3, 8, 12};
    const float zf[GROUPS] = {3.0f, 8.0f, 12.0f};
    vitq_i_uniform grid = vitq_i_uniform_grid(4, 0); /* codes 0..15 */
    float step[GROUPS];
    random_steps(step, GROUPS);
    int clipped = 0;
    for (int i = 0; i < N; i++) {
        int g = i / PER;
        double s = step[g], u;
        do {
            w[i] = (float)(safe_u(grid.qmin - zero[g], grid.qmax - zero[g]) * s);
            u = (double)(w[i] / step[g]);
        } while (fabs(u - nearbyint(u)) < 0.1 || fabs(u - nearbyint(u)) > 0.4);
        wd[i] = w[i], dw[i] = 0.0f;
        float fu = w[i] / step[g];
        double r = nearbyint((double)fu);
        int32_t lo = grid.qmin - zero[g], hi = grid.qmax - zero[g];
        code[i] = (int32_t)(r < lo ? lo : r > hi ? hi : r);
        inside[i] = fu >= (float)lo && fu <= (float)hi;
        clipped += !inside[i];
        /* the relative code is the library's code minus the zero point */
        CHECK(vitq_i_uniform_code(&grid, w[i], step[g], zf[g]) - zero[g] == code[i]);
    }
    CHECK(clipped > 5);
    const double lambda = 0.4;
    double got = -1.0, want = ref_loss_z(wd, code, inside, ROWS, IN, step, zero, CPG, &grid, NULL);
    CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, step, zf, GROUPS, CPG, &grid, lambda, dw, &got), VITQ_OK);
    CHECK_NEAR(got, lambda * want, 1e-12 * want);
    /* without the zero points the same weights give another value: the ranges differ */
    double plain = -1.0;
    CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, step, NULL, GROUPS, CPG, &grid, lambda, NULL, &plain), VITQ_OK);
    CHECK(fabs(plain - got) > 1e-3 * got);
    for (int i = 0; i < N; i++) {
        double h = 1e-3 * step[i / PER], keep = wd[i];
        wd[i] = keep + h;
        double up = ref_loss_z(wd, code, inside, ROWS, IN, step, zero, CPG, &grid, NULL);
        wd[i] = keep - h;
        double down = ref_loss_z(wd, code, inside, ROWS, IN, step, zero, CPG, &grid, NULL);
        wd[i] = keep;
        CHECK_NEAR((double)dw[i] / lambda, (up - down) / (2 * h), 2e-7 + 1e-6 * fabs((up - down) / (2 * h)));
    }
    /* the tracker: move every third weight by one step; a weight flips unless it stays clipped */
    vitq_i_osc o;
    CHECK_STATUS(vitq_i_osc_create(&o, NULL, N), VITQ_OK);
    int64_t flips = -1, want_flips = 0;
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, ROWS, IN, step, zf, GROUPS, CPG, &grid, &flips, NULL), VITQ_OK);
    for (int i = 0; i < N; i++) {
        int g = i / PER;
        w2[i] = i % 3 ? w[i] : w[i] + step[g];
        want_flips += vitq_i_uniform_code(&grid, w2[i], step[g], zf[g]) != vitq_i_uniform_code(&grid, w[i], step[g], zf[g]);
    }
    CHECK(want_flips > 20);
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w2, ROWS, IN, step, zf, GROUPS, CPG, &grid, &flips, NULL), VITQ_OK);
    CHECK(flips == want_flips);
    vitq_i_osc_free(&o);
    const float half[GROUPS] = {3.0f, 2.5f, 12.0f}, outside[GROUPS] = {3.0f, 8.0f, 16.0f};
    CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, step, half, GROUPS, CPG, &grid, lambda, NULL, &got),
                 VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, step, outside, GROUPS, CPG, &grid, lambda, NULL, &got),
                 VITQ_ERR_INVALID_ARGUMENT);
}

static void test_schedule(void) {
    const double max = 0.01;
    CHECK(vitq_i_obr_lambda(0.0, max) == 0.0);
    CHECK(vitq_i_obr_lambda(0.2, max) == 0.0);
    CHECK_NEAR(vitq_i_obr_lambda(0.25, max), 0.0, 1e-18);
    CHECK_NEAR(vitq_i_obr_lambda(0.625, max), 0.005, 1e-15); /* cos(pi / 2) = 0: half way */
    CHECK_NEAR(vitq_i_obr_lambda(1.0, max), 0.01, 1e-15);
    CHECK_NEAR(vitq_i_obr_lambda(0.4, max), 0.005 * (1.0 - cos(3.14159265358979323846 * 0.2)), 1e-15);
    CHECK_NEAR(vitq_i_obr_lambda(1.5, max), 0.01, 1e-15);
    CHECK(vitq_i_obr_lambda(-1.0, max) == 0.0);
    CHECK(vitq_i_obr_lambda(NAN, max) == 0.0);
    double last = 0.0;
    for (int e = 0; e <= 150; e++) { /* non-decreasing over VVTQ's 150 epochs */
        double l = vitq_i_obr_lambda(e / 150.0, max);
        CHECK(l >= last && l <= max);
        last = l;
    }
}

/* Planted sequences of 5 updates over 8 weights ([2][4], one step per row, 4-bit signed): u = w / s per
 * update, and the codes they must give. Weight 7 stays at 0.5 while its row's step changes. */
static void test_tracker_planted(void) {
    enum { UPDATES = 5, N = 8 };
    static const double u[UPDATES][N] = {
        {0.2, 2.3, 0.3, -3.2, 9.2, -8.4, 3.1, 0},  {1.1, 1.7, 0.7, -2.7, 7.6, -9.0, 3.8, 0},
        {-0.3, 2.1, 2.2, -2.3, 12.0, -7.4, 4.2, 0}, {0.8, 1.9, 1.3, -3.4, 6.9, -8.6, 2.9, 0},
        {0.1, 2.4, -0.2, -2.9, 6.4, -7.2, 4.4, 0},
    };
    static const int32_t codes[UPDATES][N] = {
        {0, 2, 0, -3, 7, -8, 3, 2}, {1, 2, 1, -3, 7, -8, 4, 2}, {0, 2, 2, -2, 7, -7, 4, 3},
        {1, 2, 1, -3, 7, -8, 3, 2}, {0, 2, 0, -3, 6, -7, 4, 2},
    };
    static const float row1_step[UPDATES] = {0.25f, 0.25f, 0.18f, 0.25f, 0.24f};
    vitq_i_uniform grid = vitq_i_uniform_grid(4, 1);
    vitq_i_osc o;
    CHECK_STATUS(vitq_i_osc_create(&o, NULL, N), VITQ_OK);
    int64_t total_flips = 0, total_osc = 0;
    for (int t = 0; t < UPDATES; t++) {
        float step[2] = {0.1f, row1_step[t]}, w[N];
        int64_t want_flips = 0, want_osc = 0, flips = -1, osc = -1;
        for (int i = 0; i < N; i++) {
            w[i] = i == 7 ? 0.5f : (float)(u[t][i] * step[i / 4]);
            CHECK(vitq_i_uniform_code(&grid, w[i], step[i / 4], 0.0f) == codes[t][i]); /* the plant is right */
            if (t >= 1 && codes[t][i] != codes[t - 1][i]) {
                want_flips++;
                if (t >= 2 && codes[t][i] == codes[t - 2][i]) want_osc++;
            }
        }
        CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 2, 4, step, NULL, 2, 1, &grid, &flips, &osc), VITQ_OK);
        CHECK(flips == want_flips);
        CHECK(osc == want_osc);
        total_flips += flips, total_osc += osc;
    }
    /* by hand: weights flip 4, 0, 4, 2, 1, 3, 3, 2 times and come back 3, 0, 1, 1, 0, 2, 1, 1 times */
    CHECK(total_flips == 19 && o.flips == 19);
    CHECK(total_osc == 9 && o.oscillations == 9);
    CHECK(o.updates == UPDATES);
    vitq_i_osc_free(&o);
}

/* Gradient descent on L alone tightens the bins: L falls at every step, the weights' distance to their
 * levels (the quantization error w - w_hat) falls, and no weight leaves its bin. */
static void test_descent_tightens_bins(void) {
    enum { ROWS = 16, IN = 32, GROUPS = 8, CPG = 2, N = ROWS * IN };
    static float w[N], dw[N], step[GROUPS];
    static int32_t code0[N], code[N];
    static int inside[N];
    vitq_i_uniform grid = vitq_i_uniform_grid(3, 1);
    random_steps(step, GROUPS);
    for (int i = 0; i < N; i++) w[i] = (float)(gauss() * 1.5 * step[i / (CPG * IN)]);
    float_codes(w, N, CPG * IN, step, &grid, code0, inside);
    double err0 = 0.0, near0 = 0.0, err = 0.0, near = 0.0, first = 0.0, last = 0.0;
    for (int i = 0; i < N; i++) {
        double s = step[i / (CPG * IN)], d = (w[i] - code0[i] * s) / s;
        if (inside[i]) err0 += d * d, near0 += fabs(d) < 0.1;
    }
    const int steps = 20;
    for (int k = 0; k <= steps; k++) {
        double loss;
        memset(dw, 0, sizeof dw);
        CHECK_STATUS(vitq_i_obr("test.w", w, ROWS, IN, step, NULL, GROUPS, CPG, &grid, 1.0, dw, &loss), VITQ_OK);
        if (k == 0) first = loss;
        else CHECK(loss < last);
        last = loss;
        if (k < steps)
            for (int i = 0; i < N; i++) w[i] -= 0.5f * dw[i]; /* 0.5: the largest curvature is 1 (bins of 2) */
    }
    float_codes(w, N, CPG * IN, step, &grid, code, inside);
    int moved = 0;
    for (int i = 0; i < N; i++) {
        double s = step[i / (CPG * IN)], d = (w[i] - code[i] * s) / s;
        moved += code[i] != code0[i];
        if (inside[i]) err += d * d, near += fabs(d) < 0.1;
    }
    printf("    L %.4g -> %.4g; inside: sum ((w - w_hat)/s)^2 %.4g -> %.4g, within 0.1 s of the level %.0f -> %.0f\n",
           first, last, err0, err, near0, near);
    CHECK(moved == 0);
    CHECK(last < 0.3 * first);
    CHECK(err < 0.5 * err0);
    CHECK(near > 2.0 * near0);
}

static void test_errors(void) {
    float w[8] = {0.1f, -0.2f, 0.3f, 0.05f, 0.7f, -0.4f, 0.2f, 0.0f}, dw[8] = {0}, step[2] = {0.1f, 0.2f};
    vitq_i_uniform grid = vitq_i_uniform_grid(4, 1), wide = vitq_i_uniform_grid(9, 1);
    double loss = 42.0;
    CHECK_STATUS(vitq_i_obr("test.w", w, 2, 4, step, NULL, 2, 2, &grid, 1.0, dw, &loss), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "test.w") != NULL);
    CHECK_STATUS(vitq_i_obr("test.w", w, 2, 4, step, NULL, 2, 1, &wide, 1.0, dw, &loss), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_obr("test.w", w, 2, 4, step, NULL, 2, 1, &grid, -1.0, dw, &loss), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_obr("test.w", NULL, 2, 4, step, NULL, 2, 1, &grid, 1.0, dw, &loss), VITQ_ERR_INVALID_ARGUMENT);
    step[1] = 0.0f;
    CHECK_STATUS(vitq_i_obr("test.w", w, 2, 4, step, NULL, 2, 1, &grid, 1.0, dw, &loss), VITQ_ERR_NON_FINITE);
    step[1] = 0.2f;
    w[6] = NAN;
    CHECK_STATUS(vitq_i_obr("test.w", w, 2, 4, step, NULL, 2, 1, &grid, 1.0, dw, &loss), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "[1][2]") != NULL);
    for (int i = 0; i < 8; i++) CHECK(dw[i] == 0.0f); /* nothing written on failure */
    CHECK(loss == 42.0);
    w[6] = 0.2f;

    vitq_i_osc o;
    int64_t flips = -1;
    CHECK_STATUS(vitq_i_osc_create(&o, NULL, 0), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 2, 4, step, NULL, 2, 1, &grid, &flips, NULL), VITQ_ERR_BAD_STATE);
    CHECK_STATUS(vitq_i_osc_create(&o, NULL, 8), VITQ_OK);
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 1, 4, step, NULL, 1, 1, &grid, &flips, NULL), VITQ_ERR_SHAPE);
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 2, 4, step, NULL, 2, 1, &grid, &flips, NULL), VITQ_OK);
    CHECK(flips == 0);
    vitq_i_uniform other = vitq_i_uniform_grid(3, 1);
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 2, 4, step, NULL, 2, 1, &other, &flips, NULL),
                 VITQ_ERR_INVALID_ARGUMENT);
    w[0] = NAN;
    CHECK_STATUS(vitq_i_osc_update(&o, "test.w", w, 2, 4, step, NULL, 2, 1, &grid, &flips, NULL), VITQ_ERR_NON_FINITE);
    CHECK(o.updates == 1);
    vitq_i_osc_free(&o);
}

int main(void) {
    RUN(test_value_matches_naive);
    RUN(test_gradient_matches_fd);
    RUN(test_codes_match_lsq);
    RUN(test_zero_points);
    RUN(test_schedule);
    RUN(test_tracker_planted);
    RUN(test_descent_tightens_bins);
    RUN(test_errors);
    HARNESS_EXIT();
}
