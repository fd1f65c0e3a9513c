/* LSQ fake quantization with learned steps (src/train/lsq.h).
 *
 * Why the gradients are checked against finite differences of a surrogate: the fake quantizer is a step
 * function of x and of s, so its true derivative is 0 almost everywhere (and undefined on the rounding
 * boundaries); a finite difference of the real forward measures that 0, not LSQ's gradient. LSQ defines its
 * gradient by the straight-through estimator: round keeps its value but counts as the identity in the
 * chain rule. That is exactly the derivative of the surrogate, at a point (x0, s0, b0) with
 * c(x, s, b) = clamp((x - b)/s, qmin, qmax) and c0 = c(x0, s0, b0),
 *     F(x, s, b) = s (round(c0) + c(x, s, b) - c0) + b
 * (round replaced by its tangent of slope 1 through its value), which is smooth away from the clamp's
 * ends. So the backward is compared with central differences of F at points whose u = (x - b)/s is at
 * least 0.1 from a clamp end (and, to keep r0 unambiguous, from a rounding boundary). In the clamp branches
 * the real forward is smooth (y = s qmin or s qmax + b), so there the backward is checked against finite
 * differences of the real forward itself. */
#include "harness.h"
#include "quant/view.h"
#include "test_random.h"
#include "train/lsq.h"
#include "train/optim.h"

/* A point u = k + f, k a whole number in [lo - 3, hi + 3] (30 % of them outside [lo, hi]), f away from 0.5
 * and from 0 (so u is away from rounding boundaries and clamp ends). */
static double safe_u(int32_t lo, int32_t hi) {
    double r = urand(), k, f;
    if (r < 0.15) k = hi + 1 + floor(urand() * 3.0);      /* above the range */
    else if (r < 0.3) k = lo - 1 - floor(urand() * 3.0);  /* below */
    else k = lo + floor(urand() * (double)(hi - lo + 1)); /* inside */
    do f = urand() - 0.5; while (fabs(fabs(f) - 0.5) < 0.1 || fabs(f) < 0.1);
    return k + f;
}

/* The surrogate F for element value x at (x0, s0, b0), in double. */
static double clampd(double v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static double surrogate(double x, double s, double b, double x0, double s0, double b0, int32_t qmin, int32_t qmax) {
    double c0 = clampd((x0 - b0) / s0, qmin, qmax), c = clampd((x - b) / s, qmin, qmax);
    return s * (nearbyint(c0) + c - c0) + b;
}

/* One quantizer over a [rows][cols] activation with channels as columns (per channel: a step per column). */
static void check_gradients(int bits, int is_signed, int per_channel, int with_offset) {
    enum { ROWS = 7, COLS = 5 };
    vitq_i_lsq q;
    int64_t groups = per_channel ? COLS : 1, cpg = per_channel ? 1 : COLS;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.act", bits, is_signed, groups, cpg, with_offset), VITQ_OK);
    q.gscale = VITQ_I_LSQ_GSCALE_OFF;
    for (int64_t g = 0; g < groups; g++) {
        q.step[g] = (float)(0.05 + 0.1 * urand());
        if (with_offset) q.offset[g] = (float)(0.3 * gauss());
    }
    float x[ROWS * COLS], dy[ROWS * COLS], dx[ROWS * COLS];
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            int64_t g = per_channel ? c : 0;
            double b = with_offset ? q.offset[g] : 0.0;
            /* a float x whose float u is also safe: retry until the rounding to float keeps it so */
            float v;
            double u;
            do {
                v = (float)(safe_u(q.grid.qmin, q.grid.qmax) * q.step[g] + b);
                u = (double)((v - (float)b) / q.step[g]);
            } while (fabs(u - nearbyint(u)) > 0.4 || fabs(u - nearbyint(u)) < 0.1 || fabs(u - q.grid.qmin) < 0.1 ||
                     fabs(u - q.grid.qmax) < 0.1);
            x[r * COLS + c] = v;
            dy[r * COLS + c] = (float)gauss();
        }
    vitq_tensor_view view = vitq_i_view_columns(x, ROWS, COLS, COLS);
    CHECK_STATUS(vitq_i_lsq_backward(&q, &view, dy, dx, 0), VITQ_OK);
    const double h = 1e-4;
    /* dx: per element, FD of F in x */
    int checked_in = 0, checked_out = 0;
    for (int i = 0; i < ROWS * COLS; i++) {
        int64_t g = per_channel ? i % COLS : 0;
        double s = q.step[g], b = with_offset ? q.offset[g] : 0.0, x0 = x[i];
        double fd = (surrogate(x0 + h, s, b, x0, s, b, q.grid.qmin, q.grid.qmax) -
                     surrogate(x0 - h, s, b, x0, s, b, q.grid.qmin, q.grid.qmax)) / (2 * h);
        CHECK_NEAR(dx[i], dy[i] * fd, 1e-6 * (1 + fabs(dy[i])));
        if (fd > 0.5) checked_in++;
        else checked_out++;
    }
    CHECK(checked_in > 5 && checked_out > 2); /* both branches were visited */
    /* ds and db: FD of sum dy F in the group's step and offset */
    for (int64_t g = 0; g < groups; g++) {
        double s0 = q.step[g], b0 = with_offset ? q.offset[g] : 0.0, fs = 0.0, fb = 0.0, mass = 0.0;
        double hs = 1e-6 * s0, qbig = fmax(-(double)q.grid.qmin, q.grid.qmax);
        for (int i = 0; i < ROWS * COLS; i++) {
            if ((per_channel ? i % COLS : 0) != g) continue;
            double x0 = x[i];
            mass += fabs(dy[i]) * qbig;
            fs += dy[i] * (surrogate(x0, s0 + hs, b0, x0, s0, b0, q.grid.qmin, q.grid.qmax) -
                           surrogate(x0, s0 - hs, b0, x0, s0, b0, q.grid.qmin, q.grid.qmax)) / (2 * hs);
            fb += dy[i] * (surrogate(x0, s0, b0 + h, x0, s0, b0, q.grid.qmin, q.grid.qmax) -
                           surrogate(x0, s0, b0 - h, x0, s0, b0, q.grid.qmin, q.grid.qmax)) / (2 * h);
        }
        /* the backward's u = (x - b) / s is a float: each term may be off by half an ulp of |u| <= qbig */
        CHECK_NEAR(q.step_grad[g], fs, 1e-5 + 2e-6 * mass);
        if (with_offset) CHECK_NEAR(q.offset_grad[g], fb, 1e-4 * (1 + fabs(fb)));
    }
    vitq_i_lsq_free(&q);
}

static void test_gradients_vs_surrogate_fd(void) {
    for (int bits = 2; bits <= 8; bits += 3)
        for (int sg = 0; sg <= 1; sg++)
            for (int pc = 0; pc <= 1; pc++)
                for (int off = 0; off <= 1; off++) check_gradients(bits, sg, pc, off);
}

/* In the clamp branches the real forward is smooth: its finite differences equal the backward exactly. */
static void test_clamp_branches_exact(void) {
    vitq_i_lsq q;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", 4, 1, 1, 1, 0), VITQ_OK);
    q.gscale = VITQ_I_LSQ_GSCALE_OFF;
    q.step[0] = 0.125f;                               /* qmin -8, qmax 7: range [-1, 0.875] */
    float x[4] = {2.0f, 1.3f, -1.7f, -5.0f}, dy[4] = {1.0f, 0.5f, -2.0f, 0.25f}, dx[4], y[4];
    vitq_tensor_view v = vitq_i_view_rows(x, 1, 4);
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_OK);
    for (int i = 0; i < 4; i++) CHECK(dx[i] == 0.0f);
    CHECK_NEAR(q.step_grad[0], 1.0 * 7 + 0.5 * 7 + (-2.0) * (-8) + 0.25 * (-8), 1e-6);
    /* FD of the real forward in s */
    double fd = 0.0, h = 1e-3;
    for (int sign = -1; sign <= 1; sign += 2) {
        q.step[0] = (float)(0.125 + sign * h);
        CHECK_STATUS(vitq_i_lsq_forward(&q, &v, y), VITQ_OK);
        for (int i = 0; i < 4; i++) fd += sign * dy[i] * y[i] / (2 * h);
    }
    CHECK_NEAR(fd, 1.0 * 7 + 0.5 * 7 + (-2.0) * (-8) + 0.25 * (-8), 1e-3);
    /* and in x: 0 */
    q.step[0] = 0.125f;
    float xp[4], yp[4];
    for (int i = 0; i < 4; i++) xp[i] = x[i] + 0.01f;
    vitq_tensor_view vp = vitq_i_view_rows(xp, 1, 4);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &v, y), VITQ_OK);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &vp, yp), VITQ_OK);
    for (int i = 0; i < 4; i++) CHECK(y[i] == yp[i]);
    /* inside, the real forward's FD in x is 0 (a step function) while the STE passes dy: the reason for
     * the surrogate above */
    float xi[1] = {0.3f}, xj[1] = {0.3001f}, yi[1], yj[1], dyi[1] = {1.0f}, dxi[1];
    vitq_tensor_view vi = vitq_i_view_rows(xi, 1, 1), vj = vitq_i_view_rows(xj, 1, 1);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &vi, yi), VITQ_OK);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &vj, yj), VITQ_OK);
    CHECK(yi[0] == yj[0]);
    CHECK_STATUS(vitq_i_lsq_backward(&q, &vi, dyi, dxi, 0), VITQ_OK);
    CHECK(dxi[0] == 1.0f);
    vitq_i_lsq_free(&q);
}

/* Forward: with no offset the values are the uniform grid's (scale s, zero point 0) bit for bit; codes are
 * whole numbers in range; |y - x| <= s/2 inside the range, y is the clamp value outside. */
static void test_forward_grid_and_error_bound(void) {
    enum { N = 400 };
    float x[N], y[N];
    for (int bits = 2; bits <= 8; bits++)
        for (int sg = 0; sg <= 1; sg++) {
            vitq_i_lsq q;
            CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test", bits, sg, 4, 1, 0), VITQ_OK);
            for (int g = 0; g < 4; g++) q.step[g] = (float)(0.01 * (1 + g) * (1 + urand()));
            for (int i = 0; i < N; i++) {
                float s = q.step[(i / 25) % 4];
                x[i] = (float)((urand() * (q.grid.qmax - q.grid.qmin + 6) + q.grid.qmin - 3) * s);
            }
            /* [outer 4][channels 4][inner 25] */
            vitq_tensor_view v = {sizeof v, x, 4, 4, 25, 100};
            CHECK_STATUS(vitq_i_lsq_forward(&q, &v, y), VITQ_OK);
            int bad = 0;
            for (int i = 0; i < N; i++) {
                float s = q.step[(i / 25) % 4];
                if (y[i] != vitq_i_uniform_fq(&q.grid, x[i], s, 0.0f)) bad++;
                double code = (double)y[i] / s, u = (double)x[i] / s;
                if (fabs(code - nearbyint(code)) > 1e-4 || code < q.grid.qmin - 1e-4 || code > q.grid.qmax + 1e-4)
                    bad++;
                if (u >= q.grid.qmin && u <= q.grid.qmax && fabs((double)y[i] - x[i]) > 0.5 * s * (1 + 1e-5)) bad++;
                if (u > q.grid.qmax && y[i] != (float)q.grid.qmax * s) bad++;
                if (u < q.grid.qmin && y[i] != (float)q.grid.qmin * s) bad++;
            }
            CHECK(bad == 0);
            /* in place gives the same */
            float z[N];
            memcpy(z, x, sizeof z);
            vitq_tensor_view vz = v;
            vz.data = z;
            CHECK_STATUS(vitq_i_lsq_forward(&q, &vz, z), VITQ_OK);
            CHECK(memcmp(z, y, sizeof z) == 0);
            vitq_i_lsq_free(&q);
        }
}

/* An unsigned LSQ with offset b = -z s is the asymmetric uniform grid of scale s and zero point z. */
static void test_offset_is_asymmetric_grid(void) {
    vitq_i_lsq q;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test", 4, 0, 1, 1, 1), VITQ_OK);
    float s = 0.0625f, z = 5.0f, b = -z * s;
    CHECK_STATUS(vitq_i_lsq_init_steps(&q, &s, &b), VITQ_OK);
    vitq_i_uniform asym = vitq_i_uniform_grid(4, 0);
    float x[300], y[300];
    for (int i = 0; i < 300; i++) x[i] = (float)(urand() * 1.5 - 0.6);
    vitq_tensor_view v = vitq_i_view_rows(x, 1, 300);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &v, y), VITQ_OK);
    int bad = 0;
    for (int i = 0; i < 300; i++) bad += fabsf(y[i] - vitq_i_uniform_fq(&asym, x[i], s, z)) > 1e-6f;
    CHECK(bad == 0);
    vitq_i_lsq_free(&q);
}

static void test_init_and_grad_scale(void) {
    vitq_i_lsq q;
    /* per channel over rows of a weight [3][4]: mean |w| of the rows is 1, 0.5 and 0 */
    float w[12] = {1, -1, 1, -1, 0.5f, -0.5f, 0.25f, -0.75f, 0, 0, 0, 0};
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", 4, 1, 3, 1, 0), VITQ_OK);
    vitq_tensor_view v = vitq_i_view_rows(w, 3, 4);
    CHECK_STATUS(vitq_i_lsq_init_data(&q, &v), VITQ_OK);
    CHECK_NEAR(q.step[0], 2.0 / sqrt(7.0), 1e-6);
    CHECK_NEAR(q.step[1], 1.0 / sqrt(7.0), 1e-6);
    CHECK(q.step[2] == 1.0f); /* all zero: any step is exact */
    /* AUTO scales the step gradient by 1 / sqrt(N qmax), N = 4 elements per channel; FIXED by grad_scale */
    float dy[12], dx[12];
    for (int i = 0; i < 12; i++) dy[i] = (float)gauss();
    q.gscale = VITQ_I_LSQ_GSCALE_OFF;
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_OK);
    float off[3];
    memcpy(off, q.step_grad, sizeof off);
    CHECK(off[0] != 0.0f);
    vitq_i_lsq_zero_grad(&q);
    q.gscale = VITQ_I_LSQ_GSCALE_AUTO;
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_OK);
    for (int g = 0; g < 3; g++) CHECK_NEAR(q.step_grad[g], off[g] / sqrt(4.0 * 7.0), 1e-6);
    vitq_i_lsq_zero_grad(&q);
    q.gscale = VITQ_I_LSQ_GSCALE_FIXED, q.grad_scale = 0.125;
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_OK);
    for (int g = 0; g < 3; g++) CHECK_NEAR(q.step_grad[g], off[g] * 0.125, 1e-6);
    /* accumulate adds to dx */
    float dx2[12];
    memcpy(dx2, dx, sizeof dx2);
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx2, 1), VITQ_OK);
    for (int i = 0; i < 12; i++) CHECK(dx2[i] == 2.0f * dx[i]);
    /* steps from a PTQ result; refused when not positive */
    float steps[3] = {0.1f, 0.2f, 0.3f}, bad[3] = {0.1f, 0.0f, 0.3f};
    CHECK_STATUS(vitq_i_lsq_init_steps(&q, steps, NULL), VITQ_OK);
    CHECK(q.step[1] == 0.2f);
    CHECK_STATUS(vitq_i_lsq_init_steps(&q, bad, NULL), VITQ_ERR_OUT_OF_RANGE);
    CHECK(q.step[1] == 0.2f);
    CHECK_STATUS(vitq_i_lsq_init_steps(&q, steps, steps), VITQ_ERR_INVALID_ARGUMENT); /* no offsets here */
    /* a step made invalid is reported, and project restores a positive one */
    q.step[2] = -1.0f;
    float y[12];
    CHECK_STATUS(vitq_i_lsq_forward(&q, &v, y), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "test.w") != NULL);
    vitq_i_lsq_project(&q);
    CHECK(q.step[2] == q.min_step);
    /* views of other channel counts, bits out of range */
    vitq_tensor_view v4 = vitq_i_view_rows(w, 4, 3);
    CHECK_STATUS(vitq_i_lsq_forward(&q, &v4, y), VITQ_ERR_SHAPE);
    float nanw[12];
    memcpy(nanw, w, sizeof nanw);
    nanw[5] = NAN;
    vitq_tensor_view vn = vitq_i_view_rows(nanw, 3, 4);
    CHECK_STATUS(vitq_i_lsq_init_data(&q, &vn), VITQ_ERR_NON_FINITE);
    vitq_i_lsq_free(&q);
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test", 9, 1, 1, 1, 0), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test", 4, 1, 0, 1, 0), VITQ_ERR_INVALID_ARGUMENT);
}

static double fq_mse(vitq_i_lsq *q, const vitq_tensor_view *v, const float *x, float *y, size_t n) {
    CHECK_STATUS(vitq_i_lsq_forward(q, v, y), VITQ_OK);
    double e = 0.0;
    for (size_t i = 0; i < n; i++) e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    return e / (double)n;
}

/* Learning a step: Adam on the quantization MSE of Gaussian data, from a step 4 times too large, ends near
 * the best step of a fine grid search (the LSQ gradient is the STE's, so "near", not "at"). */
static void test_learns_step(void) {
    enum { N = 2000, STEPS = 400 };
    static float x[N], y[N], dy[N];
    for (int i = 0; i < N; i++) x[i] = (float)gauss();
    vitq_i_lsq q;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.act", 3, 1, 1, 1, 0), VITQ_OK);
    vitq_tensor_view v = vitq_i_view_rows(x, 1, N);
    CHECK_STATUS(vitq_i_lsq_init_data(&q, &v), VITQ_OK);
    q.step[0] *= 4.0f;
    double start = fq_mse(&q, &v, x, y, N);
    vitq_i_param p = {q.step, q.step_grad, 1, 0};
    vitq_i_param_group grp = {0.03, 0.0};
    vitq_i_adam_options opt = vitq_i_adam_defaults();
    opt.schedule = (vitq_i_schedule){VITQ_I_LR_COSINE, 0, STEPS, 0.0};
    vitq_i_adam o;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &p, 1, &grp, 1, &opt), VITQ_OK);
    for (int t = 0; t < STEPS; t++) {
        fq_mse(&q, &v, x, y, N);
        for (int i = 0; i < N; i++) dy[i] = (float)(2.0 * ((double)y[i] - x[i]) / N);
        vitq_i_lsq_zero_grad(&q);
        CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, NULL, 0), VITQ_OK);
        CHECK_STATUS(vitq_i_adam_step(&o), VITQ_OK);
        vitq_i_lsq_project(&q);
    }
    double learned = fq_mse(&q, &v, x, y, N), best = INFINITY, best_s = 0.0;
    float keep = q.step[0];
    for (int k = 100; k <= 2000; k++) {
        q.step[0] = (float)(k * 1e-3);
        double e = fq_mse(&q, &v, x, y, N);
        if (e < best) best = e, best_s = k * 1e-3;
    }
    printf("    MSE from %.4f to %.4f (step %.3f); grid optimum %.4f at step %.3f\n", start, learned, (double)keep,
           best, best_s);
    CHECK(learned < 0.2 * start);
    CHECK(learned < 1.1 * best);
    vitq_i_adam_free(&o);
    vitq_i_lsq_free(&q);
}

/* VVTQ's magnitude-aware scales: 1 / sqrt(qmax sum|w|) per group, against a naive sum over a
 * [outer 2][channels 6][inner 3] view in groups of 2 channels; the backward with them is, group by group,
 * the backward with the same value as a FIXED scale, bit for bit. */
static void test_magnitude_grad_scale(void) {
    enum { OUTER = 2, CH = 6, INNER = 3, N = OUTER * CH * INNER, GROUPS = 3, CPG = 2 };
    float w[N], dy[N], dx[N];
    for (int i = 0; i < N; i++) w[i] = (float)(0.2 * gauss()), dy[i] = (float)gauss();
    for (int o = 0; o < OUTER; o++) /* group 2 all zero */
        for (int c = 4; c < CH; c++)
            for (int i = 0; i < INNER; i++) w[(o * CH + c) * INNER + i] = 0.0f;
    vitq_tensor_view v = {sizeof v, w, OUTER, CH, INNER, CH * INNER};
    vitq_i_lsq q;
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", 4, 1, GROUPS, CPG, 0), VITQ_OK);
    CHECK(q.group_scale == NULL); /* allocated only when used */
    q.gscale = VITQ_I_LSQ_GSCALE_PER_GROUP;     /* never set: refused */
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_ERR_BAD_STATE);
    q.gscale = VITQ_I_LSQ_GSCALE_AUTO;
    CHECK_STATUS(vitq_i_lsq_init_data(&q, &v), VITQ_OK);
    q.step[2] = 0.05f; /* init_data gave the zero group 1: give it a step that sees its gradient */
    CHECK_STATUS(vitq_i_lsq_set_magnitude_scale(&q, &v), VITQ_OK);
    CHECK(q.gscale == VITQ_I_LSQ_GSCALE_PER_GROUP);
    double sum[GROUPS] = {0};
    for (int i = 0; i < N; i++) sum[(i / INNER) % CH / CPG] += fabs((double)w[i]);
    for (int g = 0; g < 2; g++) CHECK_NEAR(q.group_scale[g], 1.0 / sqrt(7.0 * sum[g]), 1e-12 * q.group_scale[g]);
    CHECK(sum[2] == 0.0 && q.group_scale[2] == 1.0);
    CHECK_STATUS(vitq_i_lsq_backward(&q, &v, dy, dx, 0), VITQ_OK);
    float per_group[GROUPS];
    memcpy(per_group, q.step_grad, sizeof per_group);
    vitq_i_lsq fixed;
    CHECK_STATUS(vitq_i_lsq_create(&fixed, NULL, "test.w", 4, 1, GROUPS, CPG, 0), VITQ_OK);
    memcpy(fixed.step, q.step, sizeof per_group);
    fixed.gscale = VITQ_I_LSQ_GSCALE_FIXED;
    for (int g = 0; g < GROUPS; g++) {
        vitq_i_lsq_zero_grad(&fixed);
        fixed.grad_scale = q.group_scale[g];
        CHECK_STATUS(vitq_i_lsq_backward(&fixed, &v, dy, NULL, 0), VITQ_OK);
        CHECK(per_group[g] == fixed.step_grad[g]);
        CHECK(g == 2 || per_group[g] != 0.0f); /* the zero group's codes are exact: no gradient */
    }
    vitq_i_lsq_free(&fixed);
    /* per tensor: one scale over all elements; a small hand case */
    float h[4] = {1.0f, -2.0f, 0.5f, 0.5f};
    vitq_i_lsq t;
    CHECK_STATUS(vitq_i_lsq_create(&t, NULL, "test.t", 3, 1, 1, 2, 0), VITQ_OK);
    vitq_tensor_view vh = vitq_i_view_rows(h, 2, 2);
    CHECK_STATUS(vitq_i_lsq_set_magnitude_scale(&t, &vh), VITQ_OK);
    CHECK(t.group_scale[0] == 1.0 / sqrt(3.0 * 4.0)); /* qmax 3, sum 4 */
    vitq_i_lsq_free(&t);
    /* refusals leave the scales as they were */
    double keep[GROUPS];
    memcpy(keep, q.group_scale, sizeof keep);
    w[(1 * CH + 3) * INNER + 1] = INFINITY; /* group 1 */
    CHECK_STATUS(vitq_i_lsq_set_magnitude_scale(&q, &v), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "group 1") != NULL);
    CHECK(memcmp(keep, q.group_scale, sizeof keep) == 0);
    vitq_tensor_view wrong = vitq_i_view_rows(w, 4, 9);
    CHECK_STATUS(vitq_i_lsq_set_magnitude_scale(&q, &wrong), VITQ_ERR_SHAPE);
    vitq_i_lsq_free(&q);
    CHECK(q.group_scale == NULL);
}

/* Mean squared error of group g (its channels cpg * g .. of a rows view) fake quantized at step s,
 * naively with the uniform grid. */
static double group_mse(const vitq_i_uniform *grid, const float *w, int64_t n, float s) {
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)vitq_i_uniform_fq(grid, w[i], s, 0.0f) - w[i];
        e += d * d;
    }
    return e / (double)n;
}

/* One least-squares update of a step, naively: <w, c> / <c, c> with c the codes at s. */
static double ls_update(const vitq_i_uniform *grid, const float *w, int64_t n, float s) {
    double wc = 0.0, cc = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double c = vitq_i_uniform_code(grid, w[i], s, 0.0f);
        wc += w[i] * c, cc += c * c;
    }
    return wc / cc;
}

/* Rows r of w: Gaussian (r even) or Laplace (r odd) of scale 0.02 (1 + r). */
static void fill_rows(float *w, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++) {
            double e = r % 2 == 0 ? gauss() : -log(1.0 - urand()) * (urand() < 0.5 ? -1.0 : 1.0);
            w[r * cols + i] = (float)(0.02 * (double)(1 + r) * e);
        }
}

static float max_abs(const float *w, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(w[i]));
    return m;
}

/* The least error of steps k max|w| / (points qmax), k = 1..points (above max/qmax a signed grid only
 * adds rounding error). */
static double grid_best(const vitq_i_uniform *grid, const float *w, int64_t n, int points) {
    double best = INFINITY, top = max_abs(w, n) / (double)grid->qmax;
    for (int k = 1; k <= points; k++) best = fmin(best, group_mse(grid, w, n, (float)(k * top / points)));
    return best;
}

/* VVTQ's least-squares step fit: planted steps are found exactly; a hand case; on Gaussian and
 * heavy-tailed rows a local optimum, and near the global one for large groups at low bit widths. */
static void test_init_fit(void) {
    enum { ROWS = 6, COLS = 256 };
    static float w[ROWS * COLS];
    vitq_i_lsq q;
    /* planted: w = c s0 with codes over the whole symmetric range [-qmax, qmax] (qmax attained), s0 with
     * few mantissa bits so c s0 is exact; unsigned: codes [0, qmax] */
    for (int bits = 2; bits <= 8; bits++)
        for (int sg = 0; sg <= 1; sg++) {
            CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", bits, sg, ROWS, 1, 0), VITQ_OK);
            int32_t qmax = q.grid.qmax, lo = sg ? -qmax : 0;
            float s0[ROWS];
            for (int r = 0; r < ROWS; r++) {
                s0[r] = (float)(1 + floor(urand() * 4096.0)) / 8192.0f;
                for (int i = 0; i < COLS; i++)
                    w[r * COLS + i] = (float)(lo + (int32_t)floor(urand() * (qmax - lo + 1))) * s0[r];
                w[r * COLS + r] = (float)qmax * s0[r]; /* the range is attained */
            }
            vitq_tensor_view v = vitq_i_view_rows(w, ROWS, COLS);
            CHECK_STATUS(vitq_i_lsq_init_fit(&q, &v), VITQ_OK);
            for (int r = 0; r < ROWS; r++) CHECK(q.step[r] == s0[r]);
            vitq_i_lsq_free(&q);
        }
    /* Rows of 256, Gaussian of different widths and Laplace (heavy tails: max/qmax is poor there), every
     * width: the step is a fixed point of the update (to the stopping rule's 1e-5; so a local minimum of
     * the error: its codes are nearest for it and it is least squares for its codes), no worse than
     * max/qmax. Not the global minimum: a brute-force search over s finds errors mostly up to 1.5x lower
     * on rows this small (over 40 seeds; once 3.8x, a 2-bit Laplace row): small groups have many fixed
     * points. Printed, not checked. */
    double worst_gap = 0.0;
    int exact_fixed = 0, fits = 0;
    for (int bits = 2; bits <= 8; bits += harness_quick() ? 3 : 1)
        for (int sg = 0; sg <= 1; sg++) {
            CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", bits, sg, ROWS, 1, 0), VITQ_OK);
            fill_rows(w, ROWS, COLS);
            vitq_tensor_view v = vitq_i_view_rows(w, ROWS, COLS);
            CHECK_STATUS(vitq_i_lsq_init_fit(&q, &v), VITQ_OK);
            for (int r = 0; r < ROWS; r++) {
                const float *row = w + r * COLS;
                float s = q.step[r];
                double next = ls_update(&q.grid, row, COLS, s);
                CHECK(fabs(next - s) < 1e-5 * s);
                exact_fixed += (float)next == s;
                double fit = group_mse(&q.grid, row, COLS, s);
                CHECK(fit <= group_mse(&q.grid, row, COLS, max_abs(row, COLS) / (float)q.grid.qmax));
                worst_gap = fmax(worst_gap, fit / grid_best(&q.grid, row, COLS, 1000));
                fits++;
            }
            vitq_i_lsq_free(&q);
        }
    printf("    %d rows of %d: %d exact fixed points; MSE up to %.3f x a grid search's\n", fits, (int)COLS,
           exact_fixed, worst_gap);
    /* Per-tensor groups of 4096 at 2..4 bits (VVTQ's use): the fit is within 1 % of the grid search's best
     * (measured over 12 seeds: within 0.4 %; at 5 bits and more up to 10 %, the 1e-5 rule stopping the slow
     * rounds early). */
    enum { BIG = 4096, BIG_GROUPS = 2 };
    static float big[BIG_GROUPS * BIG];
    double big_gap = 0.0;
    for (int bits = 2; bits <= 4; bits++) {
        CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", bits, 1, BIG_GROUPS, 1, 0), VITQ_OK);
        fill_rows(big, BIG_GROUPS, BIG);
        vitq_tensor_view v = vitq_i_view_rows(big, BIG_GROUPS, BIG);
        CHECK_STATUS(vitq_i_lsq_init_fit(&q, &v), VITQ_OK);
        for (int g = 0; g < BIG_GROUPS; g++) {
            const float *row = big + g * BIG;
            double best = grid_best(&q.grid, row, BIG, harness_quick() ? 500 : 2000);
            double gap = group_mse(&q.grid, row, BIG, q.step[g]) / best;
            CHECK(gap <= 1.01);
            big_gap = fmax(big_gap, gap);
        }
        vitq_i_lsq_free(&q);
    }
    printf("    groups of %d at 2..4 bits: MSE up to %.4f x a grid search's\n", (int)BIG, big_gap);
    /* a row of zeros gets step 1; NaN names its group and changes no step; other channel counts */
    CHECK_STATUS(vitq_i_lsq_create(&q, NULL, "test.w", 4, 1, 2, 1, 0), VITQ_OK);
    float z[8] = {0, 0, 0, 0, 1.0f, 0.6f, 0, 0};
    vitq_tensor_view vz = vitq_i_view_rows(z, 2, 4);
    CHECK_STATUS(vitq_i_lsq_init_fit(&q, &vz), VITQ_OK);
    CHECK(q.step[0] == 1.0f);
    /* row 1 by hand: s = 1/7 gives codes 7, 4 (0.6 * 7 = 4.2); s = (7 + 4 * 0.6) / (49 + 16) = 0.1446 keeps
     * them (6.92 and 4.15 round to 7 and 4): a fixed point after one update */
    CHECK(q.step[1] == (float)((7.0 + 4.0 * (double)0.6f) / 65.0));
    /* unsigned codes start from the largest value above b (here 0): max|w| / qmax would code every w 0 */
    vitq_i_lsq u;
    CHECK_STATUS(vitq_i_lsq_create(&u, NULL, "test.u", 4, 0, 2, 1, 0), VITQ_OK);
    float uw[8] = {-10.0f, 0.1f, 0.2f, 0.3f, -1.0f, -2.0f, 0.0f, -0.5f};
    vitq_tensor_view vu = vitq_i_view_rows(uw, 2, 4);
    CHECK_STATUS(vitq_i_lsq_init_fit(&u, &vu), VITQ_OK);
    CHECK_NEAR(u.step[0], 0.02, 1e-8); /* 0.3 / 15: codes 0, 5, 10, 15, and (0.5 + 2 + 4.5) / 350 = 0.02 */
    CHECK(u.step[1] == 1.0f);          /* nothing above 0: every code is 0 for any step */
    vitq_i_lsq_free(&u);
    float keep[2] = {q.step[0], q.step[1]};
    z[1] = NAN;
    z[6] = NAN;
    CHECK_STATUS(vitq_i_lsq_init_fit(&q, &vz), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "group 0") != NULL);
    CHECK(q.step[0] == keep[0] && q.step[1] == keep[1]);
    vitq_tensor_view v3 = vitq_i_view_rows(z, 1, 8);
    CHECK_STATUS(vitq_i_lsq_init_fit(&q, &v3), VITQ_ERR_SHAPE);
    vitq_i_lsq_free(&q);
}

int main(void) {
    RUN(test_gradients_vs_surrogate_fd);
    RUN(test_clamp_branches_exact);
    RUN(test_forward_grid_and_error_bound);
    RUN(test_offset_is_asymmetric_grid);
    RUN(test_init_and_grad_scale);
    RUN(test_learns_step);
    RUN(test_magnitude_grad_scale);
    RUN(test_init_fit);
    HARNESS_EXIT();
}
