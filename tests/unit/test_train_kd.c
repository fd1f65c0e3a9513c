/* Logit losses of quantization-aware training (src/train/kd_loss.h): the distillation loss against a
 * naive double formula and its gradient against central differences at several temperatures, its
 * equality with the hard cross-entropy for a one-hot teacher, its minimum at the teacher, the hard
 * cross-entropy the same way, the top-1 counts against hand-made rows, and the refusals. */
#include "harness.h"
#include "test_random.h"
#include "train/kd_loss.h"

#define N 3
#define K 7

static void fill(float *p, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * gauss());
}

/* -(1/n) sum_i sum_c p_ic log q_ic straight from the definition (no shift: the logits here are small). */
static double ref_kd(const float *s, const float *t, size_t n, size_t k, double temp) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double zs = 0.0, zt = 0.0;
        for (size_t c = 0; c < k; c++) zs += exp(s[i * k + c] / temp), zt += exp(t[i * k + c] / temp);
        for (size_t c = 0; c < k; c++)
            total -= exp(t[i * k + c] / temp) / zt * log(exp(s[i * k + c] / temp) / zs);
    }
    return total / (double)n;
}

static double kd(const float *s, const float *t, size_t n, size_t k, double temp, float *d) {
    double loss = NAN;
    CHECK_STATUS(vitq_i_loss_kd(s, t, n, k, temp, &loss, d), VITQ_OK);
    return loss;
}

static double ce(const float *z, const int32_t *y, size_t n, size_t k, float *d) {
    double loss = NAN;
    CHECK_STATUS(vitq_i_loss_ce(z, y, n, k, &loss, d), VITQ_OK);
    return loss;
}

/* Central differences of the loss through the function itself; the step is the float one actually
 * taken (x + h rounds), the loss is in double. */
static void check_fd(float *s, const float *t, const int32_t *labels, double temp, const float *grad) {
    const float h = 1e-3f;
    for (size_t e = 0; e < N * K; e++) {
        float keep = s[e], up = keep + h, down = keep - h;
        s[e] = up;
        double lu = labels ? ce(s, labels, N, K, NULL) : kd(s, t, N, K, temp, NULL);
        s[e] = down;
        double ld = labels ? ce(s, labels, N, K, NULL) : kd(s, t, N, K, temp, NULL);
        s[e] = keep;
        double fd = (lu - ld) / ((double)up - (double)down);
        CHECK_NEAR(grad[e], fd, 1e-6 + 1e-4 * fabs(fd));
    }
}

static void test_kd_matches_definition_and_differences(void) {
    const double temps[] = {0.5, 1.0, 2.0, 4.0};
    for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) {
        float s[N * K], t[N * K], d[N * K];
        fill(s, N * K, 2.0), fill(t, N * K, 2.0);
        double loss = kd(s, t, N, K, temps[k], d);
        double want = ref_kd(s, t, N, K, temps[k]);
        CHECK_NEAR(loss, want, 1e-12 * fabs(want));
        check_fd(s, t, NULL, temps[k], d);
        /* the gradient of each image sums to 0 (both distributions sum to 1), and it is not all 0 */
        double gmax = 0.0;
        for (size_t i = 0; i < N; i++) {
            double sum = 0.0;
            for (size_t c = 0; c < K; c++) sum += d[i * K + c], gmax = fmax(gmax, fabs(d[i * K + c]));
            CHECK_NEAR(sum, 0.0, 1e-7);
        }
        CHECK(gmax > 1e-3);
        /* d may be the student's own array */
        float alias[N * K];
        memcpy(alias, s, sizeof s);
        CHECK(kd(alias, t, N, K, temps[k], alias) == loss);
        CHECK(memcmp(alias, d, sizeof d) == 0);
    }
}

/* Teacher rows with a margin so wide that softmax(teacher / T) is exactly one-hot in double: the loss and
 * gradient are the hard cross-entropy of student / T (times 1 / T for the gradient). */
static void test_kd_one_hot_teacher_is_cross_entropy(void) {
    const double temps[] = {1.0, 3.0};
    for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) {
        float s[N * K], t[N * K] = {0}, scaled[N * K], d_kd[N * K], d_ce[N * K];
        int32_t labels[N] = {4, 0, 6};
        fill(s, N * K, 3.0);
        for (size_t i = 0; i < N; i++) t[i * K + (size_t)labels[i]] = 1e4f;
        for (size_t e = 0; e < N * K; e++) scaled[e] = (float)(s[e] / temps[k]);
        double lk = kd(s, t, N, K, temps[k], d_kd), lc = ce(scaled, labels, N, K, d_ce);
        if (temps[k] == 1.0) {
            CHECK(lk == lc); /* the same arithmetic, term for term */
            CHECK(memcmp(d_kd, d_ce, sizeof d_kd) == 0);
        }
        CHECK_NEAR(lk, lc, 1e-6 * fabs(lc));
        for (size_t e = 0; e < N * K; e++) CHECK_NEAR(d_kd[e], d_ce[e] / temps[k], 1e-7);
    }
}

/* Student = teacher: the gradient is exactly zero, the loss is the teacher's entropy, and any step off
 * the teacher (other than adding a constant to a row, which changes nothing) raises it. */
static void test_kd_minimum_at_teacher(void) {
    float t[N * K], s[N * K], d[N * K];
    fill(t, N * K, 1.5);
    double at = kd(t, t, N, K, 2.0, d);
    for (size_t e = 0; e < N * K; e++) CHECK(d[e] == 0.0f);
    double entropy = 0.0;
    for (size_t i = 0; i < N; i++) {
        double z = 0.0;
        for (size_t c = 0; c < K; c++) z += exp(t[i * K + c] / 2.0);
        for (size_t c = 0; c < K; c++) {
            double p = exp(t[i * K + c] / 2.0) / z;
            entropy -= p * log(p);
        }
    }
    CHECK_NEAR(at, entropy / N, 1e-12);
    for (int trial = 0; trial < 10; trial++) {
        for (size_t e = 0; e < N * K; e++) s[e] = t[e] + (float)(0.05 * gauss());
        CHECK(kd(s, t, N, K, 2.0, NULL) > at);
    }
    /* a constant added to every logit of a row moves neither the loss nor the gradient (much) */
    for (size_t e = 0; e < N * K; e++) s[e] = t[e] + 1000.0f;
    CHECK_NEAR(kd(s, t, N, K, 2.0, d), at, 1e-4);
    for (size_t e = 0; e < N * K; e++) CHECK_NEAR(d[e], 0.0, 1e-5);
}

/* Huge logits: the log-sum-exp keeps everything finite where exp alone would overflow. */
static void test_large_logits_stay_finite(void) {
    float s[N * K], t[N * K], d[N * K];
    fill(s, N * K, 1.0), fill(t, N * K, 1.0);
    for (size_t e = 0; e < N * K; e++) s[e] *= 3000.0f, t[e] *= 3000.0f;
    double loss = kd(s, t, N, K, 1.0, d);
    CHECK(isfinite(loss) && loss >= 0.0);
    int32_t labels[N] = {0, 1, 2};
    loss = ce(s, labels, N, K, d);
    CHECK(isfinite(loss) && loss >= 0.0);
    for (size_t e = 0; e < N * K; e++) CHECK(isfinite(d[e]) && fabs(d[e]) <= 1.0f / N);
}

static void test_cross_entropy(void) {
    float z[N * K], d[N * K];
    int32_t labels[N] = {2, 6, 0};
    fill(z, N * K, 2.0);
    double loss = ce(z, labels, N, K, d), want = 0.0;
    for (size_t i = 0; i < N; i++) {
        double sum = 0.0;
        for (size_t c = 0; c < K; c++) sum += exp(z[i * K + c]);
        want -= log(exp(z[i * K + (size_t)labels[i]]) / sum);
    }
    CHECK_NEAR(loss, want / N, 1e-12 * want);
    check_fd(z, NULL, labels, 1.0, d);
    /* the label's gradient is negative, every other positive */
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < K; c++) CHECK((c == (size_t)labels[i]) == (d[i * K + c] < 0.0f));
}

static void test_top1_counts(void) {
    /* rows of 3 classes; the second row ties classes 0 and 2 (the first wins) */
    const float a[4 * 3] = {0, 5, 1, 2, -1, 2, 7, 7, 7, -3, -2, -1};
    const float b[4 * 3] = {0, 9, 1, 3, 0, 1, 1, 0, 2, -1, -2, -3};
    const int32_t labels[4] = {1, 2, 0, -1};
    CHECK(vitq_i_argmax(a + 3, 3) == 0);
    CHECK(vitq_i_argmax(a + 6, 3) == 0);
    CHECK(vitq_i_argmax(a + 9, 3) == 2);
    CHECK(vitq_i_top1_agreement(a, b, 4, 3) == 2); /* rows 0 and 1 */
    CHECK(vitq_i_top1_agreement(a, a, 4, 3) == 4);
    CHECK(vitq_i_top1_correct(a, labels, 4, 3) == 2); /* rows 0 and 2; -1 never matches */
    CHECK(vitq_i_top1_correct(b, labels, 4, 3) == 1);
}

static void test_refusals(void) {
    float s[N * K], t[N * K], d[N * K], keep[N * K];
    int32_t labels[N] = {0, 1, 2};
    double loss = 0.0;
    fill(s, N * K, 1.0), fill(t, N * K, 1.0);
    for (size_t e = 0; e < N * K; e++) d[e] = 42.0f;
    memcpy(keep, d, sizeof d);
    CHECK_STATUS(vitq_i_loss_kd(NULL, t, N, K, 1.0, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "student") != NULL);
    CHECK_STATUS(vitq_i_loss_kd(s, NULL, N, K, 1.0, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "teacher") != NULL);
    CHECK_STATUS(vitq_i_loss_kd(s, t, N, K, 1.0, NULL, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_kd(s, t, 0, K, 1.0, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_kd(s, t, N, 0, 1.0, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    const double bad_t[] = {0.0, -1.0, NAN, INFINITY};
    for (size_t k = 0; k < 4; k++) {
        CHECK_STATUS(vitq_i_loss_kd(s, t, N, K, bad_t[k], &loss, d), VITQ_ERR_INVALID_ARGUMENT);
        CHECK(strstr(vitq_last_error(), "temperature") != NULL);
    }
    s[2 * K + 3] = NAN;
    CHECK_STATUS(vitq_i_loss_kd(s, t, N, K, 1.0, &loss, d), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "student logits of image 2") != NULL);
    CHECK_STATUS(vitq_i_loss_ce(s, labels, N, K, &loss, d), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "image 2") != NULL);
    s[2 * K + 3] = 0.0f;
    t[1 * K] = -INFINITY;
    CHECK_STATUS(vitq_i_loss_kd(s, t, N, K, 1.0, &loss, d), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "teacher logits of image 1") != NULL);
    t[1 * K] = 0.0f;
    /* finite logits that a subnormal temperature blows up */
    CHECK_STATUS(vitq_i_loss_kd(s, t, N, K, 1e-310, &loss, d), VITQ_ERR_NON_FINITE);
    CHECK(strstr(vitq_last_error(), "image 0") != NULL);
    CHECK(memcmp(d, keep, sizeof d) == 0); /* every refusal above came before any write */

    CHECK_STATUS(vitq_i_loss_ce(NULL, labels, N, K, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_ce(s, NULL, N, K, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_ce(s, labels, N, K, NULL, d), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_loss_ce(s, labels, 0, K, &loss, d), VITQ_ERR_INVALID_ARGUMENT);
    labels[1] = K;
    CHECK_STATUS(vitq_i_loss_ce(s, labels, N, K, &loss, d), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "image 1") != NULL);
    labels[1] = -1;
    CHECK_STATUS(vitq_i_loss_ce(s, labels, N, K, &loss, d), VITQ_ERR_OUT_OF_RANGE);
    CHECK(memcmp(d, keep, sizeof d) == 0);
    labels[1] = K - 1;
    CHECK_STATUS(vitq_i_loss_ce(s, labels, N, K, &loss, d), VITQ_OK);
}

int main(void) {
    RUN(test_kd_matches_definition_and_differences);
    RUN(test_kd_one_hot_teacher_is_cross_entropy);
    RUN(test_kd_minimum_at_teacher);
    RUN(test_large_logits_stay_finite);
    RUN(test_cross_entropy);
    RUN(test_top1_counts);
    RUN(test_refusals);
    HARNESS_EXIT();
}
