/* Finite-difference checks of the quantized training block's gradients (train/block_train.h), shared by
 * test_reconstruct.c (ViT) and test_block_train_swin.c (Swin): the loss of the straight-through surrogate
 * (bt->surrogate = 2, every quantizer its clamp plus the frozen rounding residual) and central differences
 * of it against an analytic gradient. */
#ifndef VITQ_TEST_BLOCK_TRAIN_FD_H
#define VITQ_TEST_BLOCK_TRAIN_FD_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "train/block_train.h"

/* Sum of squared errors over count elements divided by n (the images); its gradient into dy (may be NULL). */
static inline double sq_loss(const float *y, const float *t, size_t count, size_t n, float *dy) {
    double l = 0.0;
    for (size_t i = 0; i < count; i++) {
        double e = (double)y[i] - t[i];
        l += e * e / (double)n;
        if (dy) dy[i] = (float)(2.0 * e / (double)n);
    }
    return l;
}

/* Loss of the surrogate at the current parameters (the same QDrop mask: step fixed). */
static inline double surrogate_loss(vitq_i_block_train *bt, const float *x, const float *t, size_t n, float *out) {
    bt->step = 4;
    CHECK_STATUS(vitq_i_block_train_forward(bt, x, n, VITQ_I_BT_SOFT, 1, out), VITQ_OK);
    return sq_loss(out, t, n * bt->tokens * bt->d, n, NULL);
}

/* Central differences of the loss in *p at the step sizes h[0..nh) against the analytic gradient g: agreement
 * within `tol` at one of them counts (a step's difference is noisy at small h, from the float forward's
 * rounding against a tiny change of the loss, and bent at large h, by the clamps' kinks nearby). */
static inline void fd_check(vitq_i_block_train *bt, float *p, double g, const double *h, int nh, double tol, const float *x,
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

/* The layout of site s's buffer for n images (each test knows its model's: ViT rows, Swin windows). */
typedef vitq_tensor_view (*fd_site_view_fn)(const vitq_i_block_train *bt, int s, size_t n);

typedef struct fd_counts {
    int ok, total, steps; /* checks that agree, checks, learned steps checked */
} fd_counts;

/* The gradients of bt (created with AdaRound and learned steps) on x against target t for n images: the
 * surrogate's residuals frozen at the base point (its loss must equal the quantized block's there), the
 * backward, then central differences for the `per_layer` largest V gradients of every layer and the first
 * `groups` groups of every learned step. out and dy hold the block output's floats (rd). */
static inline fd_counts fd_check_block(vitq_i_block_train *bt, const float *x, const float *t, size_t n, float *out,
                                float *dy, size_t rd, int per_layer, int groups, fd_site_view_fn site_view) {
    fd_counts c = {0, 0, 0};
    float *frozen[VITQ_I_BT_SITES];
    for (int s = 0; s < VITQ_I_BT_SITES; s++) { /* the site's whole buffer, offsets as the view's */
        vitq_tensor_view v = site_view(bt, s, n);
        bt->frozen[s] = frozen[s] = malloc((size_t)(v.outer * v.outer_stride) * sizeof(float));
    }
    bt->surrogate = 1;
    double l0 = surrogate_loss(bt, x, t, n, out);
    bt->surrogate = 2;
    double l1 = surrogate_loss(bt, x, t, n, out);
    CHECK_NEAR(l0, l1, 1e-4 * l0); /* the surrogate agrees with the quantized block at the base point */
    sq_loss(out, t, rd, n, dy);
    vitq_i_block_train_zero_grad(bt);
    CHECK_STATUS(vitq_i_block_train_backward(bt, dy), VITQ_OK);
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) { /* the largest V gradients of each layer */
        vitq_i_adaround *ar = &bt->layer[k].ar;
        for (int r = 0; r < per_layer && ar->count; r++) {
            size_t best = 0;
            for (size_t i = 1; i < ar->count; i++)
                if (fabsf(ar->v_grad[i]) > fabsf(ar->v_grad[best])) best = i;
            double g = ar->v_grad[best];
            double hv[2] = {1e-2, 3e-3};
            fd_check(bt, &ar->v[best], g, hv, 2, 0.05, x, t, n, out, &c.ok, &c.total);
            ar->v_grad[best] = 0.0f; /* the next largest next */
        }
    }
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_i_bt_point *pt = &bt->pt[s];
        if (!pt->learned) continue;
        c.steps++;
        /* the analytic gradient carries LSQ's scale 1/sqrt(N qmax): undo it for the comparison */
        vitq_tensor_view sv = site_view(bt, s, n);
        double scale = sqrt((double)sv.outer * (double)pt->cpg * (double)sv.inner * pt->grid.qmax);
        for (int64_t g = 0; g < pt->groups && g < groups; g++) {
            double hs[3] = {1e-3 * pt->step[g], 2e-3 * pt->step[g], 5e-3 * pt->step[g]};
            fd_check(bt, &pt->step[g], pt->step_grad[g] * scale, hs, 3, 0.15, x, t, n, out, &c.ok, &c.total);
        }
    }
    bt->surrogate = 0;
    for (int s = 0; s < VITQ_I_BT_SITES; s++) free(frozen[s]), bt->frozen[s] = NULL;
    return c;
}

#endif
