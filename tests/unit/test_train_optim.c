/* The training core's optimizers and schedules (src/train/optim.h): Adam, AdamW and Adam with L2 decay
 * against trajectories computed here in double from the papers' formulas, per-group learning rates,
 * the schedules' values, convergence to a planted optimum, and refusals. */
#include "harness.h"
#include "test_random.h"
#include "train/optim.h"

/* Reference Adam for one scalar parameter: the update of Kingma & Ba with bias correction, decay either
 * decoupled (AdamW: x -= lr wd x first) or L2 (g += wd x). */
typedef struct ref_adam {
    double x, m, v;
} ref_adam;

static void ref_step(ref_adam *r, double g, double lr, double wd, int decoupled, int t) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    if (!decoupled) g += wd * r->x;
    r->m = b1 * r->m + (1 - b1) * g;
    r->v = b2 * r->v + (1 - b2) * g * g;
    double mh = r->m / (1 - pow(b1, t)), vh = r->v / (1 - pow(b2, t));
    if (decoupled) r->x -= lr * wd * r->x;
    r->x -= lr * mh / (sqrt(vh) + eps);
}

/* f(x) = 1/2 a1 (x1 - c1)^2 + 1/2 a2 (x2 - c2)^2, each coordinate its own parameter and group. */
static const double qa[2] = {3.0, 0.5}, qc[2] = {1.0, -2.0};

static void trajectory(int decoupled, double wd, const vitq_i_schedule *sched) {
    float x[2] = {0.25f, 0.75f}, g[2];
    vitq_i_param params[2] = {{&x[0], &g[0], 1, 0}, {&x[1], &g[1], 1, 1}};
    vitq_i_param_group groups[2] = {{0.1, wd}, {0.03, wd}};
    vitq_i_adam_options opt = vitq_i_adam_defaults();
    opt.decoupled = decoupled;
    if (sched) opt.schedule = *sched;
    vitq_i_adam o;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, params, 2, groups, 2, &opt), VITQ_OK);
    ref_adam r[2] = {{0.25, 0, 0}, {0.75, 0, 0}};
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < 2; i++) g[i] = (float)(qa[i] * ((double)x[i] - qc[i]));
        double factor = vitq_i_schedule_factor(sched, t - 1);
        for (int i = 0; i < 2; i++) ref_step(&r[i], qa[i] * (r[i].x - qc[i]), groups[i].lr * factor, wd, decoupled, t);
        CHECK_STATUS(vitq_i_adam_step(&o), VITQ_OK);
        for (int i = 0; i < 2; i++) CHECK_NEAR(x[i], r[i].x, 2e-6);
    }
    CHECK(o.steps == 3);
    /* every step moved: the trajectory is not trivially the start */
    CHECK(fabs(x[0] - 0.25) > 0.05 && fabs(x[1] - 0.75) > 0.01);
    vitq_i_adam_free(&o);
}

static void test_adam_trajectory(void) { trajectory(1, 0.0, NULL); }
static void test_adamw_trajectory(void) { trajectory(1, 0.1, NULL); }
static void test_adam_l2_trajectory(void) { trajectory(0, 0.1, NULL); }

static void test_trajectory_with_schedule(void) {
    vitq_i_schedule s = {VITQ_I_LR_COSINE, 2, 5, 0.1};
    trajectory(1, 0.05, &s);
}

/* The first Adam step moves each coordinate by about lr in the direction against its gradient, whatever the
 * gradient's size (bias correction makes m / sqrt(v) = sign(g) at t = 1). */
static void test_first_step_is_lr(void) {
    float x[3] = {0.0f, 0.0f, 0.0f}, g[3] = {1e-3f, -50.0f, 7.0f};
    vitq_i_param p = {x, g, 3, 0};
    vitq_i_param_group grp = {0.01, 0.0};
    vitq_i_adam_options opt = vitq_i_adam_defaults();
    vitq_i_adam o;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &p, 1, &grp, 1, &opt), VITQ_OK);
    CHECK_STATUS(vitq_i_adam_step(&o), VITQ_OK);
    CHECK_NEAR(x[0], -0.01, 1e-7);
    CHECK_NEAR(x[1], 0.01, 1e-7);
    CHECK_NEAR(x[2], -0.01, 1e-7);
    vitq_i_adam_free(&o);
}

static void test_schedules(void) {
    CHECK_NEAR(vitq_i_schedule_factor(NULL, 17), 1.0, 0.0);
    vitq_i_schedule c = {VITQ_I_LR_CONSTANT, 0, 0, 0.0};
    CHECK_NEAR(vitq_i_schedule_factor(&c, 5), 1.0, 0.0);
    vitq_i_schedule w = {VITQ_I_LR_WARMUP, 4, 0, 0.0};
    CHECK_NEAR(vitq_i_schedule_factor(&w, 0), 0.25, 1e-15);
    CHECK_NEAR(vitq_i_schedule_factor(&w, 2), 0.75, 1e-15);
    CHECK_NEAR(vitq_i_schedule_factor(&w, 3), 1.0, 1e-15);
    CHECK_NEAR(vitq_i_schedule_factor(&w, 1000), 1.0, 1e-15);
    vitq_i_schedule k = {VITQ_I_LR_COSINE, 10, 110, 0.2};
    CHECK_NEAR(vitq_i_schedule_factor(&k, 4), 0.5, 1e-15);
    CHECK_NEAR(vitq_i_schedule_factor(&k, 10), 1.0, 1e-15);              /* cosine starts at the top */
    CHECK_NEAR(vitq_i_schedule_factor(&k, 60), 0.2 + 0.8 * 0.5, 1e-12);  /* halfway: the mean */
    CHECK_NEAR(vitq_i_schedule_factor(&k, 35), 0.2 + 0.8 * 0.5 * (1 + cos(acos(-1.0) / 4)), 1e-12);
    CHECK_NEAR(vitq_i_schedule_factor(&k, 110), 0.2, 1e-12);
    CHECK_NEAR(vitq_i_schedule_factor(&k, 500), 0.2, 1e-12);
    /* monotone after the warm-up */
    for (int64_t t = 10; t < 120; t++) CHECK(vitq_i_schedule_factor(&k, t + 1) <= vitq_i_schedule_factor(&k, t));
    CHECK_STATUS(vitq_i_schedule_check(&k, "test"), VITQ_OK);
    vitq_i_schedule bad = {VITQ_I_LR_COSINE, 10, 10, 0.0};
    CHECK_STATUS(vitq_i_schedule_check(&bad, "test"), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_schedule bad2 = {VITQ_I_LR_COSINE, 0, 10, 1.5};
    CHECK_STATUS(vitq_i_schedule_check(&bad2, "test"), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_schedule bad3 = {VITQ_I_LR_WARMUP, -1, 0, 0.0};
    CHECK_STATUS(vitq_i_schedule_check(&bad3, "test"), VITQ_ERR_INVALID_ARGUMENT);
}

/* A convex quadratic f(x) = 1/2 (x - c)^T A (x - c), A = B^T B + I/2 (condition number in the tens), from
 * a distant start: AdamW with a cosine schedule (no decay) reaches the planted optimum c. */
static void test_converges_to_optimum(void) {
    enum { N = 8 };
    double A[N][N], B[N][N], c[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) B[i][j] = gauss() * 0.7;
    for (int i = 0; i < N; i++) {
        c[i] = 2.0 * gauss();
        for (int j = 0; j < N; j++) {
            double s = i == j ? 0.5 : 0.0;
            for (int k = 0; k < N; k++) s += B[k][i] * B[k][j];
            A[i][j] = s;
        }
    }
    float x[N], g[N];
    for (int i = 0; i < N; i++) x[i] = (float)(c[i] + 3.0 * gauss());
    /* two groups, to check that per-group rates are used: the second half learns more slowly */
    vitq_i_param params[2] = {{x, g, N / 2, 0}, {x + N / 2, g + N / 2, N / 2, 1}};
    vitq_i_param_group groups[2] = {{0.05, 0.0}, {0.02, 0.0}};
    vitq_i_adam_options opt = vitq_i_adam_defaults();
    opt.schedule = (vitq_i_schedule){VITQ_I_LR_COSINE, 50, 3000, 0.0};
    vitq_i_adam o;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, params, 2, groups, 2, &opt), VITQ_OK);
    CHECK_NEAR(vitq_i_adam_lr(&o, 0), 0.05 / 50, 1e-15);
    CHECK_NEAR(vitq_i_adam_lr(&o, 1), 0.02 / 50, 1e-15);
    for (int t = 0; t < 3000; t++) {
        for (int i = 0; i < N; i++) {
            double s = 0.0;
            for (int j = 0; j < N; j++) s += A[i][j] * ((double)x[j] - c[j]);
            g[i] = (float)s;
        }
        CHECK_STATUS(vitq_i_adam_step(&o), VITQ_OK);
    }
    double err = 0.0;
    for (int i = 0; i < N; i++) err = fmax(err, fabs((double)x[i] - c[i]));
    printf("    max |x - c| after 3000 steps: %.2e\n", err);
    CHECK(err < 1e-3);
    vitq_i_adam_free(&o);
}

static void test_refusals(void) {
    float x[2] = {1.0f, 2.0f}, g[2] = {0.5f, NAN};
    vitq_i_param p = {x, g, 2, 0};
    vitq_i_param_group grp = {0.1, 0.0};
    vitq_i_adam_options opt = vitq_i_adam_defaults();
    vitq_i_adam o;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &p, 1, &grp, 1, &opt), VITQ_OK);
    CHECK_STATUS(vitq_i_adam_step(&o), VITQ_ERR_NON_FINITE);
    CHECK(x[0] == 1.0f && x[1] == 2.0f && o.steps == 0); /* nothing moved */
    CHECK(strstr(vitq_last_error(), "gradient 1") != NULL);
    g[1] = 0.25f;
    CHECK_STATUS(vitq_i_adam_step(&o), VITQ_OK);
    vitq_i_adam_zero_grad(&o);
    CHECK(g[0] == 0.0f && g[1] == 0.0f);
    vitq_i_adam_free(&o);

    vitq_i_param bad_group = {x, g, 2, 1};
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &bad_group, 1, &grp, 1, &opt), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_param empty = {x, g, 0, 0};
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &empty, 1, &grp, 1, &opt), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_adam_options bad = opt;
    bad.beta2 = 1.0;
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &p, 1, &grp, 1, &bad), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_param_group neg = {-0.1, 0.0};
    CHECK_STATUS(vitq_i_adam_init(&o, NULL, &p, 1, &neg, 1, &opt), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_adam_step(&o), VITQ_ERR_BAD_STATE);
}

int main(void) {
    RUN(test_adam_trajectory);
    RUN(test_adamw_trajectory);
    RUN(test_adam_l2_trajectory);
    RUN(test_trajectory_with_schedule);
    RUN(test_first_step_is_lr);
    RUN(test_schedules);
    RUN(test_converges_to_optimum);
    RUN(test_refusals);
    HARNESS_EXIT();
}
