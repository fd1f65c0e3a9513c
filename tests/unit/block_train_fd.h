/* Finite-difference checks of the quantized training block's gradients (train/block_train.h), shared by
 * test_reconstruct.c (ViT) and test_block_train_swin.c (Swin): the loss of the straight-through surrogate
 * (bt->surrogate = 2, every quantizer its clamp plus the frozen rounding residual) and central differences
 * of it against an analytic gradient. */
#ifndef VITQ_TEST_BLOCK_TRAIN_FD_H
#define VITQ_TEST_BLOCK_TRAIN_FD_H

#include <math.h>
#include <stdio.h>

#include "harness.h"
#include "train/block_train.h"

/* Sum of squared errors over count elements divided by n (the images); its gradient into dy (may be NULL). */
static double sq_loss(const float *y, const float *t, size_t count, size_t n, float *dy) {
    double l = 0.0;
    for (size_t i = 0; i < count; i++) {
        double e = (double)y[i] - t[i];
        l += e * e / (double)n;
        if (dy) dy[i] = (float)(2.0 * e / (double)n);
    }
    return l;
}

/* Loss of the surrogate at the current parameters (the same QDrop mask: step fixed). */
static double surrogate_loss(vitq_i_block_train *bt, const float *x, const float *t, size_t n, float *out) {
    bt->step = 4;
    CHECK_STATUS(vitq_i_block_train_forward(bt, x, n, VITQ_I_BT_SOFT, 1, out), VITQ_OK);
    return sq_loss(out, t, n * bt->tokens * bt->d, n, NULL);
}

/* Central differences of the loss in *p at the step sizes h[0..nh) against the analytic gradient g: agreement
 * within `tol` at one of them counts (a step's difference is noisy at small h, from the float forward's
 * rounding against a tiny change of the loss, and bent at large h, by the clamps' kinks nearby). */
static void fd_check(vitq_i_block_train *bt, float *p, double g, const double *h, int nh, double tol, const float *x,
                     const float *t, size_t n, float *out, int *ok, int *total) {
    float keep = *p;
    int good = 0;
    double fd = 0.0;
    for (int k = 0; k < nh && !good; k++) {
        *p = keep + (float)h[k];
        double lp = surrogate_loss(bt, x, t, n, out);
        *p = keep - (float)h[k];
        double lm = surrogate_loss(bt, x, t, n, out);
        *p = keep;
        fd = (lp - lm) / (2.0 * h[k]);
        good = fabs(fd - g) <= tol * fabs(g) + 1e-4 * (fabs(g) + 1.0);
    }
    if (!good) printf("    check %d: fd %.6g analytic %.6g\n", *total, fd, g);
    *ok += good;
    (*total)++;
}

#endif
