/* Optimizers and learning-rate schedules of the training core (docs/training.md): Adam and AdamW over a
 * list of float parameter arrays, each with its gradient array and a parameter group (its own learning
 * rate and weight decay). Block reconstruction (rounding variables, step sizes) and QAT (weights, step
 * sizes) both drive it. Deterministic: every element is updated by the same float sequence, in order,
 * whatever else runs. */
#ifndef VITQ_TRAIN_OPTIM_H
#define VITQ_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---- learning-rate schedules ------------------------------------------------------------------ */

typedef enum vitq_i_lr_kind {
    VITQ_I_LR_CONSTANT = 0, /* factor 1 */
    VITQ_I_LR_WARMUP = 1,   /* linear warm-up over `warmup` steps, then 1 */
    VITQ_I_LR_COSINE = 2    /* linear warm-up, then cosine decay from 1 to min_factor at step `total` */
} vitq_i_lr_kind;

typedef struct vitq_i_schedule {
    vitq_i_lr_kind kind;
    int64_t warmup;    /* warm-up steps (0: none) */
    int64_t total;     /* cosine: steps of the whole run, warm-up included */
    double min_factor; /* cosine: the factor it decays to (0: to zero) */
} vitq_i_schedule;

/* Factor of the base learning rate for update number `step` (0-based: the first update is step 0):
 *   warm-up, step < warmup:  (step + 1) / warmup   (the first update already moves; the last is 1)
 *   cosine, after warm-up:   min + (1 - min) (1 + cos(pi p)) / 2,  p = (step - warmup) / (total - warmup),
 *                            p clamped to [0, 1] (so steps past `total` stay at min).
 * A NULL schedule is constant. */
double vitq_i_schedule_factor(const vitq_i_schedule *s, int64_t step);

/* VITQ_OK, or VITQ_ERR_INVALID_ARGUMENT naming `what` for negative counts, a cosine total <= warmup or a
 * min_factor outside [0, 1]. */
vitq_status vitq_i_schedule_check(const vitq_i_schedule *s, const char *what);

/* ---- Adam / AdamW ----------------------------------------------------------------------------- */

/* One parameter array: value[0..n) is updated in place from grad[0..n), which the caller fills (or
 * accumulates over several batches) before each step. */
typedef struct vitq_i_param {
    float *value;
    float *grad;
    size_t n;
    int group; /* index into the optimizer's groups */
} vitq_i_param;

/* A parameter group: base learning rate (scaled by the schedule) and weight decay. */
typedef struct vitq_i_param_group {
    double lr;
    double weight_decay;
} vitq_i_param_group;

typedef struct vitq_i_adam_options {
    double beta1, beta2, eps; /* 0.9, 0.999, 1e-8 are Adam's (Kingma & Ba) */
    /* 1: AdamW, decoupled decay (Loshchilov & Hutter): value *= 1 - lr * wd before the Adam update;
     * 0: Adam with L2 decay: grad += wd * value before the moments. */
    int decoupled;
    vitq_i_schedule schedule;
} vitq_i_adam_options;

/* Adam's defaults: betas 0.9 / 0.999, eps 1e-8, decoupled (AdamW), constant schedule. */
vitq_i_adam_options vitq_i_adam_defaults(void);

typedef struct vitq_i_adam {
    vitq_allocator alloc;
    vitq_i_adam_options opt;
    vitq_i_param *params; /* copy of the caller's list */
    int count;
    vitq_i_param_group *groups; /* copy */
    int num_groups;
    float *m, *v;  /* first and second moments, one per element of every parameter, in list order */
    int64_t steps; /* updates done: the schedule's step and the bias corrections' t - 1 */
} vitq_i_adam;

/* Set up `o` for `count` parameters in `num_groups` groups (both copied; the arrays they point to must
 * outlive `o`). Moments start at 0, steps at 0. VITQ_ERR_INVALID_ARGUMENT for NULL arrays, an empty
 * parameter, a group out of range, betas outside [0, 1), eps <= 0, a negative or non-finite rate or
 * decay, or a bad schedule; VITQ_ERR_OUT_OF_MEMORY. */
vitq_status vitq_i_adam_init(vitq_i_adam *o, const vitq_allocator *a, const vitq_i_param *params, int count,
                             const vitq_i_param_group *groups, int num_groups, const vitq_i_adam_options *opt);
void vitq_i_adam_free(vitq_i_adam *o);

/* Learning rate group g uses at the next step (base rate times the schedule's factor). */
double vitq_i_adam_lr(const vitq_i_adam *o, int g);

/* One update of every parameter from its gradient, t = steps + 1, lr = vitq_i_adam_lr(o, group):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   value -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * (with the decay of opt.decoupled before). Gradients are left as they are (vitq_i_adam_zero_grad).
 * VITQ_ERR_NON_FINITE naming the parameter and element when a gradient is NaN or infinite: nothing is
 * updated then (all gradients are checked first), so a caller may skip the batch. */
vitq_status vitq_i_adam_step(vitq_i_adam *o);

/* Set every gradient to 0. */
void vitq_i_adam_zero_grad(vitq_i_adam *o);

#endif
