/* "lsq": the step initialisation of LSQ as VVTQ's code makes it (docs/methods.md §5), as a uniform grid, so that
 * quantization-aware training can start where the paper starts (vitq train-qat --scheme lsq) and PTQ can
 * compare with it.
 *
 * Weights: the least-squares step of a fixed point iteration from max|w| / Q_P: with q = round(clamp(w / a)),
 * a <- <w, q> / <q, q>, until a changes by less than 1e-5 of itself (at most 100 rounds; a round that would
 * give no nonzero code keeps the last step). Activations: a = 2 mean|x| / sqrt(Q_P), the mean taken from the
 * pass-1 histogram (bin centres), where LSQ takes the first batch. Q_P is the grid's largest code: 2^(b-1) - 1
 * signed, 2^b - 1 unsigned. On an asymmetric grid the range starts at the observed minimum (0 if that is
 * positive) and the step is fitted to x - min, LSQ+'s unsigned grid with its offset at the minimum. */
#include <math.h>

#include "quant/range_scheme.h"
#include "quant/schemes.h"

enum { LS_ROUNDS = 100 };

/* The least-squares step of values[0..n) - base on codes [0 or -qmax - 1, qmax], from `start`. */
static double least_squares_step(const float *values, uint64_t n, double base, double qmin, double qmax,
                                 double start) {
    double a = start;
    for (int round = 0; round < LS_ROUNDS && a > 0.0; round++) {
        double wq = 0.0, qq = 0.0;
        for (uint64_t i = 0; i < n; i++) {
            double w = (double)values[i] - base, q = nearbyint(w / a);
            q = q < qmin ? qmin : q > qmax ? qmax : q;
            wq += w * q, qq += q * q;
        }
        if (!(qq > 0.0) || !(wq > 0.0)) break;
        double next = wq / qq;
        int done = fabs(next - a) < 1e-5 * a;
        a = next;
        if (done) break;
    }
    return a;
}

/* Mean of |x| (symmetric point) or of x - base over a group's histogram, at the bin centres. */
static double histogram_mean(const vitq_i_range_state *s, int64_t group, double base) {
    const uint64_t *h = s->hist + (size_t)group * VITQ_I_HIST_BINS;
    double sum = 0.0, count = 0.0;
    for (int i = 0; i < VITQ_I_HIST_BINS; i++) {
        double centre = s->hist_lo[group] + (i + 0.5) * s->hist_width[group];
        sum += (double)h[i] * (centre - base), count += (double)h[i];
    }
    return count > 0.0 ? sum / count : 0.0;
}

static vitq_status lsq_range(const vitq_i_range_state *s, int64_t group, double *lo, double *hi) {
    double lo0, hi0;
    vitq_i_range_observed(s, group, &lo0, &hi0);
    const int symmetric = s->config.symmetric;
    const double qmax = (double)s->grid.qmax, qmin = symmetric ? (double)s->grid.qmin : 0.0;
    const double base = symmetric ? 0.0 : fmin(lo0, 0.0);
    double a;
    if (s->config.kind == VITQ_POINT_WEIGHT) {
        const float *v = s->values + s->value_start[group];
        double extent = symmetric ? hi0 : hi0 - base;
        a = least_squares_step(v, s->value_count[group], base, qmin, qmax, extent / qmax);
    } else {
        a = 2.0 * histogram_mean(s, group, base) / sqrt(qmax);
    }
    if (!(a > 0.0) || !isfinite(a)) { /* all zeros: the observed range (vitq_i_uniform_params then gives 1) */
        *lo = lo0, *hi = hi0;
        return VITQ_OK;
    }
    *hi = symmetric ? a * qmax : base + a * qmax;
    *lo = symmetric ? -*hi : base;
    return VITQ_OK;
}

VITQ_I_RANGE_SCHEME(vitq_i_scheme_lsq, "lsq", "uniform grid with LSQ's initial step (VVTQ: least squares for weights, "
                    "2 mean|x| / sqrt(Q_P) for activations)", 2, 0, NULL, lsq_range);
