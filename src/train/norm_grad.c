/* LayerNorm's gamma and beta gradients on a fixed task grid (norm_grad.h). */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "kernels/isa.h"
#include "kernels/parallel.h"
#include "train/norm_grad.h"

#define MIN_ROWS_PER_TASK 64 /* below this a task's zeroing and reduction outweigh its rows */
#define MAX_TASKS 128        /* bounds the scratch: 2 * 128 * dim doubles */

static size_t rows_per_task(size_t rows) {
    size_t per = rows / MAX_TASKS + (rows % MAX_TASKS != 0);
    return per < MIN_ROWS_PER_TASK ? MIN_ROWS_PER_TASK : per;
}

static size_t task_count(size_t rows) {
    size_t per = rows_per_task(rows);
    return rows / per + (rows % per != 0);
}

size_t vitq_i_layernorm_param_grad_floats(size_t rows, size_t dim) {
    size_t t;
    if (!vitq_i_mul_size(task_count(rows), dim, &t) || !vitq_i_mul_size(t, 4, &t)) return SIZE_MAX;
    return t; /* 2 doubles = 4 floats per task and column */
}

/* Lane sums folded in halves: the order of isa.h that every path's LayerNorm uses. */
static double fold(double *lane) {
    for (size_t half = VITQ_I_NORM_LANES / 2; half > 0; half /= 2)
        for (size_t l = 0; l < half; l++) lane[l] += lane[l + half];
    return lane[0];
}

/* The forward's mean and 1/sqrt(var + eps) of one row. */
static void row_stats(const float *x, size_t dim, float eps, double *mean, double *rstd) {
    double lane[VITQ_I_NORM_LANES] = {0};
    for (size_t i = 0; i < dim; i++) lane[i % VITQ_I_NORM_LANES] += x[i];
    double m = fold(lane) / (double)dim;
    memset(lane, 0, sizeof lane);
    for (size_t i = 0; i < dim; i++) {
        double d = x[i] - m;
        lane[i % VITQ_I_NORM_LANES] += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(fold(lane) / (double)dim + (double)eps);
}

typedef struct param_job {
    const float *x, *dy;
    size_t rows, dim, per_task;
    float eps;
    double *partial; /* [tasks][2][dim]: the task's gamma sums, then its beta sums */
} param_job;

static void param_task(void *ctx, int64_t task, int worker) {
    const param_job *j = ctx;
    (void)worker;
    size_t dim = j->dim, r0 = (size_t)task * j->per_task, r1 = r0 + j->per_task < j->rows ? r0 + j->per_task : j->rows;
    double *sg = j->partial + (size_t)task * 2 * dim, *sb = sg + dim;
    memset(sg, 0, 2 * dim * sizeof(double));
    for (size_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * dim, *gr = j->dy + r * dim;
        double mean, rstd;
        row_stats(xr, dim, j->eps, &mean, &rstd);
        for (size_t i = 0; i < dim; i++) {
            sg[i] += (double)gr[i] * ((xr[i] - mean) * rstd);
            sb[i] += gr[i];
        }
    }
}

/* out[i] = the sum over tasks (in task order) of part[task][i], stored or added with one rounding. */
static void reduce(const double *part, size_t tasks, size_t dim, float *out, int accumulate) {
    for (size_t i = 0; i < dim; i++) {
        double s = accumulate ? (double)out[i] : 0.0;
        double sum = 0.0;
        for (size_t t = 0; t < tasks; t++) sum += part[t * 2 * dim + i];
        out[i] = (float)(s + sum);
    }
}

void vitq_i_layernorm_param_grad(const float *x, const float *dy, size_t rows, size_t dim, float eps, float *dgamma,
                                 float *dbeta, int accumulate, float *scratch, int nthreads) {
    if (dim == 0 || (!dgamma && !dbeta)) return;
    size_t tasks = task_count(rows);
    param_job j = {x, dy, rows, dim, rows_per_task(rows), eps, (double *)(void *)scratch};
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)tasks, param_task, &j);
    if (dgamma) reduce(j.partial, tasks, dim, dgamma, accumulate);
    if (dbeta) reduce(j.partial + dim, tasks, dim, dbeta, accumulate);
}
