/* Common machinery of the range-based schemes (minmax, percentile, omse): statistics, parameters, the
 * vtable functions. A scheme file only supplies the callback that picks each group's clipping range,
 * its options and its table (VITQ_I_RANGE_SCHEME below).
 *
 * Pass 0 records each group's min, max and element count. Pass 1 (two-pass schemes) records, per group,
 * for activations a histogram of VITQ_I_HIST_BINS bins over the pass-0 range (of |x| over [0, amax] for a
 * symmetric point, of x over [min, max] otherwise; values outside fall into the edge bins), and for
 * weights a copy of every value so that percentiles and errors are exact. Pass 1 must see the data of
 * pass 0 again (a weight may not see more values than in pass 0). finalize() sorts the weight copies
 * (by value, or by |value| for a symmetric point), asks the callback for each group's [lo, hi], turns it
 * into scale and zero point (vitq_i_uniform_params) and frees the pass-1 statistics. One state is used
 * by one thread at a time. */
#ifndef VITQ_QUANT_RANGE_SCHEME_H
#define VITQ_QUANT_RANGE_SCHEME_H

#include "quant/uniform.h"

#define VITQ_I_HIST_BINS 2048

typedef struct vitq_i_range_state vitq_i_range_state;

/* Clipping range [*lo, *hi] of `group` from the statistics of `s` (called by finalize only). Returns
 * VITQ_OK or an error through vitq_i_range_fail. */
typedef vitq_status (*vitq_i_range_fn)(const vitq_i_range_state *s, int64_t group, double *lo, double *hi);

struct vitq_i_range_state {
    const vitq_scheme *scheme;    /* the table (name, passes, options) */
    vitq_i_range_fn range;
    const vitq_scheme_host *host;
    vitq_point_config config;     /* copy: config.name and config.options point into this state */
    vitq_i_uniform grid;
    /* pass 0, per group */
    float *min, *max;
    uint64_t *seen;               /* elements observed in pass 0 */
    int pass1_started;
    /* pass 1, activations: groups x VITQ_I_HIST_BINS counts; bin i of group g spans
     * [hist_lo[g] + i * hist_width[g], + hist_width[g]) */
    uint64_t *hist;
    double *hist_lo, *hist_width;
    /* pass 1, weights: group g holds value_count[g] values at values + value_start[g] (sorted once
     * finalize calls the range callback) */
    float *values;
    uint64_t *value_start, *value_count;
    /* result, per group */
    float *scale, *zero_point;
    int scale_set, zero_set, finalized;
};

/* Option `i` of the scheme (validated at create). */
static inline double vitq_i_range_option(const vitq_i_range_state *s, int i) { return s->config.options[i]; }

/* Fail with "<point>: <message>" through the host. */
vitq_status vitq_i_range_fail(const vitq_i_range_state *s, vitq_status status, const char *fmt, ...)
    VITQ_I_PRINTF(3, 4);

/* Value at percentile q in [0, 100] of a group's pass-1 statistics: of x (asymmetric point) or |x|
 * (symmetric point). Weights: linear interpolation between order statistics of the sorted copy (rank
 * q/100 * (n - 1), as numpy's default). Activations: the value where the cumulative count reaches
 * q/100 * total, assuming values spread evenly within their bin. q = 0 and q = 100 give exactly the
 * pass-0 minimum and maximum (amax for |x|). */
double vitq_i_range_percentile(const vitq_i_range_state *s, int64_t group, double q);

/* Pass-0 range of a group: [min, max], or [-amax, amax] for a symmetric point. */
void vitq_i_range_observed(const vitq_i_range_state *s, int64_t group, double *lo, double *hi);

/* Squared quantization error of a group's pass-1 statistics under the range [lo, hi]: exact over the
 * values of a weight, over the bin centres weighted by counts for an activation (mirrored for |x|). */
double vitq_i_range_sq_error(const vitq_i_range_state *s, int64_t group, double lo, double hi);

/* The vtable functions shared by every range-based scheme. */
vitq_status vitq_i_range_create(const vitq_scheme *scheme, vitq_i_range_fn range, const vitq_point_config *config,
                                const vitq_scheme_host *host, void **state);
void vitq_i_range_destroy(void *state);
vitq_status vitq_i_range_observe(void *state, int32_t pass, const vitq_tensor_view *x);
vitq_status vitq_i_range_finalize(void *state);
vitq_status vitq_i_range_fake_quant(void *state, const vitq_tensor_view *x);
vitq_status vitq_i_range_quantize(void *state, const vitq_tensor_view *x, int32_t *codes);
vitq_status vitq_i_range_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out);
int32_t vitq_i_range_param_count(void *state);
vitq_status vitq_i_range_get_param(void *state, int32_t index, const char **name, const float **values,
                                   int64_t *count);
vitq_status vitq_i_range_set_param(void *state, const char *name, const float *values, int64_t count);

/* Define the scheme table `table` (declared in quant/schemes.h) for bits 2..8: a create that binds
 * `range_fn`, and the shared functions. `options` is an array of `num_options` entries (or NULL, 0). */
#define VITQ_I_RANGE_SCHEME(table, key, desc, passes, num_options, options, range_fn)                         \
    static vitq_status table##_create(const vitq_point_config *config, const vitq_scheme_host *host,          \
                                      void **state) {                                                        \
        return vitq_i_range_create(&table, range_fn, config, host, state);                                   \
    }                                                                                                        \
    const vitq_scheme table = {sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, key, desc, passes, 2, 8,        \
                               num_options, options, table##_create, vitq_i_range_destroy,                    \
                               vitq_i_range_observe, vitq_i_range_finalize, vitq_i_range_fake_quant,          \
                               vitq_i_range_quantize, vitq_i_range_dequantize, vitq_i_range_param_count,      \
                               vitq_i_range_get_param, vitq_i_range_set_param, NULL,                          \
                               sizeof(vitq_scheme_option), 0}

#endif
