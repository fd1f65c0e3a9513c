/* The greedy bit allocation of mixed precision (mixed_precision.h): a pure function of the measured
 * losses and the layer sizes, tested against brute force where greedy is provably optimal. */
#include "calib/mixed_precision.h"

#include <math.h>

void vitq_i_mp_cost(const vitq_i_mp_problem *p, const int *choice, double *average_bits, uint64_t *bytes) {
    uint64_t params = p->fixed_params, bits = p->fixed_bits;
    for (int u = 0; u < p->units; u++) {
        params += p->params[u];
        bits += p->params[u] * (uint64_t)p->width[choice[u]];
    }
    *average_bits = params ? (double)bits / (double)params : 32.0;
    *bytes = (bits + 32 * p->float_params + 7) / 8;
}

static int meets(const vitq_i_mp_problem *p, const int *choice) {
    double avg;
    uint64_t bytes;
    vitq_i_mp_cost(p, choice, &avg, &bytes);
    /* the average is a ratio of integers: a tolerance keeps 5.0 reachable when it is exactly 5 */
    return (p->target_bits <= 0 || avg <= p->target_bits + 1e-9) && (!p->target_bytes || bytes <= p->target_bytes);
}

vitq_status vitq_i_mp_greedy(const vitq_i_mp_problem *p, int *choice) {
    int last = p->widths - 1;
    for (int u = 0; u < p->units; u++) choice[u] = last;
    if (!meets(p, choice)) {
        double avg;
        uint64_t bytes;
        vitq_i_mp_cost(p, choice, &avg, &bytes);
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                           "mixed precision: target %g bits / %llu bytes below what the narrowest candidate (%d bits) "
                           "gives: %.3f bits per weight, %llu bytes (the edge layers keep their bits)",
                           p->target_bits, (unsigned long long)p->target_bytes, (int)p->width[last], avg,
                           (unsigned long long)bytes);
    }
    for (int u = 0; u < p->units; u++) choice[u] = 0;
    while (!meets(p, choice)) {
        int best = -1;
        double best_ratio = 0;
        for (int u = 0; u < p->units; u++) {
            int w = choice[u];
            if (w == last || !p->params[u]) continue;
            double dloss = p->loss[(size_t)u * (size_t)p->widths + (size_t)w + 1] -
                           p->loss[(size_t)u * (size_t)p->widths + (size_t)w];
            double saved = (double)p->params[u] * (double)(p->width[w] - p->width[w + 1]);
            double ratio = dloss / saved;
            if (isnan(ratio)) ratio = INFINITY; /* a loss that could not be measured is no bargain */
            if (best < 0 || ratio < best_ratio) best = u, best_ratio = ratio;
        }
        if (best < 0) break; /* cannot happen: the narrowest widths meet the targets */
        choice[best]++;
    }
    return VITQ_OK;
}
