/* Linear-layer gradients for training (src/train/linear.h) against naive triple loops in double: dW = dY^T X,
 * db = sum dY, dX = dY W, on shapes that are not multiples of the GEMM's panels, with accumulation, and
 * bit-identical for 1 and 2 threads. And the losses (src/train/loss.h) against finite differences. */
#include "harness.h"
#include "test_random.h"
#include "train/linear.h"
#include "train/loss.h"

static vitq_allocator alloc;

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)gauss();
}

/* Tolerance of a float dot product of length k against the double one: k ulps of the sum of |terms|. */
static double dot_tol(size_t k, double abs_sum) { return 4.0 * (double)k * 6e-8 * abs_sum + 1e-6; }

static void check_shape(size_t rows, size_t in, size_t out) {
    float *x = malloc(rows * in * sizeof *x), *dy = malloc(rows * out * sizeof *dy), *w = malloc(out * in * sizeof *w);
    float *dw = malloc(out * in * sizeof *dw), *dw2 = malloc(out * in * sizeof *dw2), *db = malloc(out * sizeof *db);
    float *dx = malloc(rows * in * sizeof *dx), *dx2 = malloc(rows * in * sizeof *dx2);
    size_t nw = vitq_i_linear_weight_grad_floats(rows, in, out), ni = vitq_i_linear_input_grad_floats(in, out);
    CHECK(nw != SIZE_MAX);
    float *scratch = vitq_i_alloc(&alloc, (nw > ni ? nw : ni) * sizeof(float));
    fill(x, rows * in), fill(dy, rows * out), fill(w, out * in);
    vitq_i_linear_weight_grad(x, dy, rows, in, out, dw, db, 0, scratch, 1);
    vitq_i_linear_input_grad(w, dy, rows, in, out, dx, 0, scratch, 1);
    int bad = 0;
    for (size_t j = 0; j < out; j++) {
        double sb = 0.0, ab = 0.0;
        for (size_t r = 0; r < rows; r++) sb += dy[r * out + j], ab += fabs(dy[r * out + j]);
        if (fabs(sb - db[j]) > 1e-6 * (1 + ab)) bad++;
        for (size_t k = 0; k < in; k++) {
            double s = 0.0, a = 0.0;
            for (size_t r = 0; r < rows; r++) {
                double t = (double)dy[r * out + j] * x[r * in + k];
                s += t, a += fabs(t);
            }
            if (fabs(s - dw[j * in + k]) > dot_tol(rows, a)) bad++;
        }
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < in; k++) {
            double s = 0.0, a = 0.0;
            for (size_t j = 0; j < out; j++) {
                double t = (double)dy[r * out + j] * w[j * in + k];
                s += t, a += fabs(t);
            }
            if (fabs(s - dx[r * in + k]) > dot_tol(out, a)) bad++;
        }
    CHECK(bad == 0);
    /* accumulate: a second call adds the same again; with two threads the bits are those of one */
    memcpy(dw2, dw, out * in * sizeof *dw);
    memcpy(dx2, dx, rows * in * sizeof *dx);
    vitq_i_linear_weight_grad(x, dy, rows, in, out, dw2, NULL, 1, scratch, 2);
    vitq_i_linear_input_grad(w, dy, rows, in, out, dx2, 1, scratch, 2);
    bad = 0;
    for (size_t i = 0; i < out * in; i++) bad += fabsf(dw2[i] - 2.0f * dw[i]) > 1e-5f * (1.0f + fabsf(dw[i]));
    for (size_t i = 0; i < rows * in; i++) bad += fabsf(dx2[i] - 2.0f * dx[i]) > 1e-5f * (1.0f + fabsf(dx[i]));
    CHECK(bad == 0);
    vitq_i_linear_weight_grad(x, dy, rows, in, out, dw2, NULL, 0, scratch, 2);
    vitq_i_linear_input_grad(w, dy, rows, in, out, dx2, 0, scratch, 2);
    CHECK(memcmp(dw2, dw, out * in * sizeof *dw) == 0);
    CHECK(memcmp(dx2, dx, rows * in * sizeof *dx) == 0);
    vitq_i_free(&alloc, scratch);
    free(x), free(dy), free(w), free(dw), free(dw2), free(db), free(dx), free(dx2);
}

static void test_linear_grads_small(void) {
    check_shape(1, 1, 1);
    check_shape(3, 5, 2);
    check_shape(37, 45, 70);
}

static void test_linear_grads_block_sized(void) {
    /* one DeiT-Tiny fc1 on two images' tokens, over the GEMM's K blocks (rows > 384) */
    check_shape(394, 192, 96);
}

/* db alone (dw NULL) and rows = 0 (an empty batch) */
static void test_linear_edges(void) {
    float x[6] = {1, 2, 3, 4, 5, 6}, dy[4] = {1, -1, 0.5f, 2}, db[2] = {10, 20}, dw[6];
    float *scratch = vitq_i_alloc(&alloc, vitq_i_linear_weight_grad_floats(2, 3, 2) * sizeof(float));
    vitq_i_linear_weight_grad(x, dy, 2, 3, 2, NULL, db, 1, scratch, 1);
    CHECK(db[0] == 11.5f && db[1] == 21.0f);
    for (int i = 0; i < 6; i++) dw[i] = 7.0f;
    vitq_i_linear_weight_grad(x, dy, 0, 3, 2, dw, db, 0, scratch, 1);
    CHECK(dw[0] == 0.0f && dw[5] == 0.0f && db[0] == 0.0f);
    vitq_i_free(&alloc, scratch);
    CHECK(vitq_i_linear_weight_grad_floats((size_t)1 << 40, (size_t)1 << 40, 8) == SIZE_MAX);
}

/* ---- losses ------------------------------------------------------------------------------------- */

static void test_loss_gradients_fd(void) {
    enum { N = 50 };
    float y[N], t[N], f[N], dy[N];
    for (int i = 0; i < N; i++) y[i] = (float)gauss(), t[i] = (float)gauss(), f[i] = (float)(urand() * urand());
    for (int weighted = 0; weighted <= 1; weighted++) {
        const float *fw = weighted ? f : NULL;
        double loss, norm = 7.0;
        CHECK_STATUS(vitq_i_loss_mse(y, t, fw, N, norm, &loss, dy), VITQ_OK);
        double want = 0.0;
        for (int i = 0; i < N; i++) want += (fw ? f[i] : 1.0) * ((double)y[i] - t[i]) * ((double)y[i] - t[i]);
        CHECK_NEAR(loss, want / norm, 1e-12 * (1 + want));
        /* central differences in each output (the loss is quadratic: they are exact up to rounding) */
        for (int i = 0; i < N; i++) {
            float keep = y[i];
            double lp, lm, h = 1e-2;
            y[i] = (float)(keep + h);
            CHECK_STATUS(vitq_i_loss_mse(y, t, fw, N, norm, &lp, NULL), VITQ_OK);
            double hp = (double)y[i] - keep;
            y[i] = (float)(keep - h);
            CHECK_STATUS(vitq_i_loss_mse(y, t, fw, N, norm, &lm, NULL), VITQ_OK);
            double hm = keep - (double)y[i];
            y[i] = keep;
            CHECK_NEAR(dy[i], (lp - lm) / (hp + hm), 2e-5 * (1 + fabs(dy[i])));
        }
    }
    /* the weights matter: a zero weight removes its element from loss and gradient */
    for (int i = 0; i < N; i++) f[i] = i == 3 ? 1.0f : 0.0f;
    double loss;
    CHECK_STATUS(vitq_i_loss_mse(y, t, f, N, 1.0, &loss, dy), VITQ_OK);
    CHECK_NEAR(loss, ((double)y[3] - t[3]) * ((double)y[3] - t[3]), 1e-12);
    CHECK(dy[0] == 0.0f && dy[3] != 0.0f);
}

static void test_loss_refusals(void) {
    float y[2] = {1, NAN}, t[2] = {0, 0}, f[2] = {1, -1};
    double loss;
    CHECK_STATUS(vitq_i_loss_mse(y, t, NULL, 2, 2.0, &loss, NULL), VITQ_ERR_NON_FINITE);
    y[1] = 2;
    CHECK_STATUS(vitq_i_loss_mse(y, t, f, 2, 2.0, &loss, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_mse(y, t, NULL, 2, 0.0, &loss, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_mse(NULL, t, NULL, 2, 1.0, &loss, NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_mse(y, t, NULL, 2, 2.0, &loss, NULL), VITQ_OK);
    CHECK_NEAR(loss, 2.5, 1e-15);
}

int main(void) {
    if (vitq_i_allocator_resolve(NULL, &alloc) != VITQ_OK) return 1;
    RUN(test_linear_grads_small);
    RUN(test_linear_grads_block_sized);
    RUN(test_linear_edges);
    RUN(test_loss_gradients_fd);
    RUN(test_loss_refusals);
    HARNESS_EXIT();
}
