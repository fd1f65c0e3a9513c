/* LayerNorm parameter gradients (src/train/norm_grad.h) against a naive double reference, against the
 * forward's own normalised output, bit-identical for 1, 2 and 3 threads, with accumulation, NULL outputs
 * and no rows. */
#include "harness.h"
#include "kernels/kernels.h"
#include "test_random.h"
#include "train/norm_grad.h"

static vitq_allocator alloc;

typedef struct case_data {
    size_t rows, dim;
    float eps;
    float *x, *dy, *scratch;
} case_data;

static case_data make_case(size_t rows, size_t dim, float eps, double offset) {
    case_data c = {rows, dim, eps, malloc(rows * dim * sizeof(float) + 1), malloc(rows * dim * sizeof(float) + 1),
                   NULL};
    for (size_t e = 0; e < rows * dim; e++) c.x[e] = (float)(offset + 0.7 * gauss()), c.dy[e] = (float)gauss();
    size_t floats = vitq_i_layernorm_param_grad_floats(rows, dim);
    CHECK(floats != SIZE_MAX && floats <= 4 * 128 * dim);
    c.scratch = vitq_i_alloc(&alloc, floats * sizeof(float));
    return c;
}

static void free_case(case_data *c) {
    free(c->x), free(c->dy);
    vitq_i_free(&alloc, c->scratch);
}

static void run(const case_data *c, float *dg, float *db, int accumulate, int threads) {
    vitq_i_layernorm_param_grad(c->x, c->dy, c->rows, c->dim, c->eps, dg, db, accumulate, c->scratch, threads);
}

/* The textbook formulas in plain sequential double loops; also the sums of |terms| for the tolerance. */
static void reference(const case_data *c, double *dg, double *db, double *abs_g, double *abs_b) {
    size_t d = c->dim;
    for (size_t j = 0; j < d; j++) dg[j] = db[j] = abs_g[j] = abs_b[j] = 0.0;
    for (size_t r = 0; r < c->rows; r++) {
        const float *x = c->x + r * d, *g = c->dy + r * d;
        double mean = 0.0, var = 0.0;
        for (size_t j = 0; j < d; j++) mean += x[j];
        mean /= (double)d;
        for (size_t j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
        var /= (double)d;
        for (size_t j = 0; j < d; j++) {
            double xhat = (x[j] - mean) / sqrt(var + c->eps);
            dg[j] += g[j] * xhat, abs_g[j] += fabs(g[j] * xhat);
            db[j] += g[j], abs_b[j] += fabs(g[j]);
        }
    }
}

static void check_shape(size_t rows, size_t dim, float eps) {
    case_data c = make_case(rows, dim, eps, 0.3);
    float *dg = malloc(dim * sizeof(float)), *db = malloc(dim * sizeof(float));
    float *dg2 = malloc(dim * sizeof(float)), *db2 = malloc(dim * sizeof(float));
    double *rg = malloc(dim * sizeof(double)), *rb = malloc(dim * sizeof(double));
    double *ag = malloc(dim * sizeof(double)), *ab = malloc(dim * sizeof(double));
    run(&c, dg, db, 0, 1);
    reference(&c, rg, rb, ag, ab);
    int bad = 0;
    for (size_t j = 0; j < dim; j++) {
        /* double sums in another order, then one float rounding: a few float ulps of the result */
        bad += !(fabs(dg[j] - rg[j]) <= 1e-12 * ag[j] + 1.2e-7 * fabs(rg[j]));
        bad += !(fabs(db[j] - rb[j]) <= 1e-12 * ab[j] + 1.2e-7 * fabs(rb[j]));
    }
    CHECK(bad == 0);
    if (bad) printf("    rows %zu dim %zu: %d values off the reference\n", rows, dim, bad);
    /* the same bits on 2 and 3 threads */
    for (int threads = 2; threads <= 3; threads++) {
        run(&c, dg2, db2, 0, threads);
        CHECK(memcmp(dg, dg2, dim * sizeof(float)) == 0 && memcmp(db, db2, dim * sizeof(float)) == 0);
    }
    /* accumulate: adds to what is there with one rounding; onto zeros it gives the plain result */
    for (size_t j = 0; j < dim; j++) dg2[j] = (float)j - 3.0f, db2[j] = 0.5f * (float)j;
    run(&c, dg2, db2, 1, 2);
    bad = 0;
    for (size_t j = 0; j < dim; j++) {
        double wg = (float)j - 3.0 + rg[j], wb = 0.5 * (double)j + rb[j];
        bad += !(fabs(dg2[j] - wg) <= 1e-12 * ag[j] + 1.2e-7 * fabs(wg) + 1e-30);
        bad += !(fabs(db2[j] - wb) <= 1e-12 * ab[j] + 1.2e-7 * fabs(wb) + 1e-30);
    }
    CHECK(bad == 0);
    memset(dg2, 0, dim * sizeof(float)), memset(db2, 0, dim * sizeof(float));
    run(&c, dg2, db2, 1, 3);
    CHECK(memcmp(dg, dg2, dim * sizeof(float)) == 0 && memcmp(db, db2, dim * sizeof(float)) == 0);
    /* one output alone */
    for (size_t j = 0; j < dim; j++) dg2[j] = db2[j] = -7.0f;
    run(&c, NULL, db2, 0, 2);
    CHECK(memcmp(db, db2, dim * sizeof(float)) == 0);
    run(&c, dg2, NULL, 0, 1);
    CHECK(memcmp(dg, dg2, dim * sizeof(float)) == 0);
    free(dg), free(db), free(dg2), free(db2), free(rg), free(rb), free(ag), free(ab);
    free_case(&c);
}

static void test_against_reference(void) {
    check_shape(1, 5, 1e-6f);
    check_shape(3, 1, 1e-5f); /* dim 1: xhat is 0, dgamma is 0 */
    check_shape(130, 37, 1e-6f);
    check_shape(harness_quick() ? 2000 : 9000, 24, 1e-5f); /* the 128-task cap: 71 rows a task */
    check_shape(300, 192, 1e-6f);
}

/* xhat is the forward's: with gamma = 1 and beta = 0 vitq_i_layernorm outputs (float)xhat, so dgamma is
 * sum dy * that. A large eps on rows of small spread makes a wrong eps (or variance) visible. */
static void test_matches_forward(void) {
    const size_t rows = 50, dim = 20;
    const float eps = 0.05f;
    case_data c = make_case(rows, dim, eps, 4.0);
    for (size_t e = 0; e < rows * dim; e++) c.x[e] = 4.0f + 0.1f * (c.x[e] - 4.0f);
    float gamma[20], beta[20] = {0}, y[50 * 20], dg[20], db[20];
    for (size_t j = 0; j < dim; j++) gamma[j] = 1.0f;
    vitq_i_layernorm(c.x, rows, dim, gamma, beta, eps, y, 1);
    run(&c, dg, db, 0, 2);
    for (size_t j = 0; j < dim; j++) {
        double want = 0.0, abs_sum = 0.0;
        for (size_t r = 0; r < rows; r++) {
            double term = (double)c.dy[r * dim + j] * y[r * dim + j];
            want += term, abs_sum += fabs(term);
        }
        /* the forward rounds xhat to float: half an ulp per term */
        CHECK_NEAR(dg[j], want, 1e-7 * abs_sum + 1.2e-7 * fabs(want));
    }
    /* the same computation with eps 0 (a wrong eps) must differ well beyond that tolerance */
    c.eps = 0.0f;
    float dg0[20];
    run(&c, dg0, NULL, 0, 1);
    double diff = 0.0;
    for (size_t j = 0; j < dim; j++) diff = fmax(diff, fabs(dg0[j] - dg[j]) / (fabs(dg[j]) + 1e-3));
    CHECK(diff > 0.1);
    free_case(&c);
}

static void test_no_rows(void) {
    float dg[4] = {1, 2, 3, 4}, db[4] = {5, 6, 7, 8};
    CHECK(vitq_i_layernorm_param_grad_floats(0, 4) == 0);
    vitq_i_layernorm_param_grad(NULL, NULL, 0, 4, 1e-6f, dg, db, 1, NULL, 2);
    CHECK(dg[0] == 1 && dg[3] == 4 && db[0] == 5 && db[3] == 8);
    vitq_i_layernorm_param_grad(NULL, NULL, 0, 4, 1e-6f, dg, db, 0, NULL, 2);
    for (int j = 0; j < 4; j++) CHECK(dg[j] == 0.0f && db[j] == 0.0f);
    CHECK(vitq_i_layernorm_param_grad_floats(SIZE_MAX / 2, SIZE_MAX / 4) == SIZE_MAX);
}

int main(void) {
    if (vitq_i_allocator_resolve(NULL, &alloc) != VITQ_OK) return 1;
    RUN(test_against_reference);
    RUN(test_matches_forward);
    RUN(test_no_rows);
    HARNESS_EXIT();
}
