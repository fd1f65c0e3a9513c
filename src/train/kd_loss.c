/* Distillation and hard-label cross-entropy on the logits, and top-1 counts (kd_loss.h). */
#include <math.h>

#include "train/kd_loss.h"

/* log sum_c exp(z_c / t), shifted by the largest term so that no exp overflows. */
static double log_sum_exp(const float *z, size_t classes, double t) {
    double max = (double)z[vitq_i_argmax(z, classes)] / t, sum = 0.0;
    for (size_t c = 0; c < classes; c++) sum += exp((double)z[c] / t - max);
    return max + log(sum);
}

/* The first image of [n][classes] holding a NaN or infinity, n when none does. */
static size_t first_non_finite(const float *z, size_t n, size_t classes) {
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < classes; c++)
            if (!isfinite(z[i * classes + c])) return i;
    return n;
}

/* The checks both losses share: shape, overflow of n x classes, finite logits. */
static vitq_status check_logits(const char *loss, const char *which, const float *z, size_t n, size_t classes) {
    size_t total;
    if (n == 0 || classes == 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %zu images of %zu classes (both must be > 0)", loss, n,
                           classes);
    if (!vitq_i_mul_size(n, classes, &total))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %zu images x %zu classes overflows", loss, n, classes);
    size_t bad = first_non_finite(z, n, classes);
    if (bad < n)
        return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: NaN or infinity in the %s of image %zu", loss, which, bad);
    return VITQ_OK;
}

vitq_status vitq_i_loss_kd(const float *student, const float *teacher, size_t n, size_t classes,
                           double temperature, double *loss, float *d_student) {
    if (!student) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "kd loss: the student logits are NULL");
    if (!teacher) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "kd loss: the teacher logits are NULL");
    if (!loss) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "kd loss: the result pointer is NULL");
    if (!(temperature > 0.0) || !isfinite(temperature))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "kd loss: temperature %g must be finite and > 0", temperature);
    vitq_status st = check_logits("kd loss", "student logits", student, n, classes);
    if (!st) st = check_logits("kd loss", "teacher logits", teacher, n, classes);
    if (st) return st;
    const double t = temperature, k = 1.0 / (t * (double)n);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *s = student + i * classes, *p = teacher + i * classes;
        float *d = d_student ? d_student + i * classes : NULL;
        double lse_s = log_sum_exp(s, classes, t), lse_p = log_sum_exp(p, classes, t), li = 0.0;
        if (!isfinite(lse_s) || !isfinite(lse_p))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "kd loss: image %zu's logits overflow when divided by the "
                               "temperature %g", i, t);
        for (size_t c = 0; c < classes; c++) {
            /* read both before d[c] is written: d may be the student's row */
            double log_q = (double)s[c] / t - lse_s, p_c = exp((double)p[c] / t - lse_p);
            li -= p_c * log_q;
            if (d) d[c] = (float)((exp(log_q) - p_c) * k);
        }
        if (!isfinite(li))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "kd loss: image %zu's loss is %g at temperature %g", i, li, t);
        sum += li;
    }
    *loss = sum / (double)n;
    return VITQ_OK;
}

vitq_status vitq_i_loss_ce(const float *logits, const int32_t *labels, size_t n, size_t classes, double *loss,
                           float *d_logits) {
    if (!logits) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "cross-entropy: the logits are NULL");
    if (!labels) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "cross-entropy: the labels are NULL");
    if (!loss) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "cross-entropy: the result pointer is NULL");
    vitq_status st = check_logits("cross-entropy", "logits", logits, n, classes);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (uint64_t)labels[i] >= (uint64_t)classes)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "cross-entropy: image %zu's label %d is outside 0..%zu", i,
                               (int)labels[i], classes - 1);
    const double k = 1.0 / (double)n;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * classes;
        size_t y = (size_t)labels[i];
        double lse = log_sum_exp(z, classes, 1.0), li = lse - (double)z[y];
        if (d_logits) {
            float *d = d_logits + i * classes;
            for (size_t c = 0; c < classes; c++) d[c] = (float)((exp((double)z[c] - lse) - (c == y)) * k);
        }
        sum += li;
    }
    *loss = sum / (double)n;
    return VITQ_OK;
}

size_t vitq_i_argmax(const float *row, size_t classes) {
    size_t best = 0;
    for (size_t c = 1; c < classes; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

size_t vitq_i_top1_agreement(const float *a, const float *b, size_t n, size_t classes) {
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += vitq_i_argmax(a + i * classes, classes) == vitq_i_argmax(b + i * classes, classes);
    return same;
}

size_t vitq_i_top1_correct(const float *logits, const int32_t *labels, size_t n, size_t classes) {
    size_t right = 0;
    for (size_t i = 0; i < n; i++)
        right += labels[i] >= 0 && vitq_i_argmax(logits + i * classes, classes) == (size_t)labels[i];
    return right;
}
