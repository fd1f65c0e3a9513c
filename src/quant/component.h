/* Common base of the quantizer components: the schemes with a grid of their own (twin-softmax, twin-gelu, log2,
 * log-sqrt2, mpq), as opposed to the uniform grids over a clipping range of range_scheme.h.
 *
 * A component's state starts with a vitq_i_comp, and a vitq_i_comp_spec says what is the component's own: the
 * configurations it accepts (in the words of its messages), its parameters (named float arrays, one value per
 * group, each with a check), and callbacks for its math. The base does everything else the vitq_scheme
 * contract asks: create-time checks, host memory, the order of calls, view and finite checks, get_param and
 * set_param, the error messages of all of these.
 *
 * Order of calls: create -> observe(pass 0) ... [observe(pass 1) ...] -> finalize -> use, or create ->
 * set_param ... -> use. Once any parameter is known (finalize knows them all, set_param one) the state is
 * "fixed": its statistics are dropped, observe and finalize are refused. It can be used once every parameter
 * is known. */
#ifndef VITQ_QUANT_COMPONENT_H
#define VITQ_QUANT_COMPONENT_H

#include <string.h>

#include "core/core.h"

#define VITQ_I_COMP_BLOCKS 10 /* host blocks a state may hold at once, besides itself */

typedef struct vitq_i_comp vitq_i_comp;

/* VITQ_OK when `v` may be value `g` of parameter `param`, else an error through vitq_i_comp_fail. set_param
 * checks every value before it stores any, so a refused array changes nothing. */
typedef vitq_status (*vitq_i_comp_check_fn)(const vitq_i_comp *b, int32_t param, int64_t g, float v);

typedef struct vitq_i_comp_param {
    const char *name;           /* as get_param reports it (a saved model stores "<point>.<name>") */
    size_t offset;              /* offsetof the state's `float *` member that holds it, one value per group */
    vitq_i_comp_check_fn check;
} vitq_i_comp_param;

typedef struct vitq_i_comp_spec {
    const vitq_scheme *scheme; /* its table: name, passes, bits, options */
    size_t size;               /* of its state, whose first member is the vitq_i_comp */
    /* what create accepts, and the words its messages give for the reasons */
    const char *inputs;  /* what its activations are: "attention probabilities" */
    int32_t symmetric;   /* the one value of config.symmetric it accepts (its codes are signed or not) */
    const char *codes;   /* why: "unsigned codes for values >= 0" */
    int range_flag;      /* 1: one bit of the code is a range flag, which the bits message mentions */
    const char *holds;   /* what create allocates: "quantizer", "statistics" */
    int32_t num_params;
    const vitq_i_comp_param *params;
    /* its math: what these callbacks are given is already checked; those marked "or NULL" are optional */
    void (*init)(vitq_i_comp *b, const vitq_point_config *c); /* create: fields, vitq_i_comp_track, allocations */
    /* a batch, after the base has added pass 0 to the statistics it tracks (or NULL) */
    vitq_status (*observe)(vitq_i_comp *b, int32_t pass, const vitq_tensor_view *x);
    void (*choose)(vitq_i_comp *b); /* finalize: every parameter from the statistics */
    void (*derive)(vitq_i_comp *b); /* after finalize and set_param: what the parameters determine (or NULL) */
    void (*drop)(vitq_i_comp *b);   /* the parameters are known: free its own statistics (or NULL) */
} vitq_i_comp_spec;

struct vitq_i_comp {
    const vitq_i_comp_spec *spec;
    const vitq_scheme_host *host;
    char name[96];                 /* the point's, to start messages with */
    int64_t channels, groups, cpg; /* channel c belongs to group c / cpg */
    int32_t code_min, code_max;    /* codes dequantize accepts (init sets them) */
    int observed, pass1;           /* pass 0 saw data; pass 1 began */
    uint32_t known;                /* bit i: parameter i is known */
    int oom;                       /* an allocation failed: create reports it */
    void *block[VITQ_I_COMP_BLOCKS]; /* what vitq_i_comp_alloc gave and destroy frees */
    /* statistics of pass 0 that several components keep, those asked for with vitq_i_comp_track (else NULL) */
    float *max;     /* groups: the largest value, from 0 (values <= 0 leave it 0) */
    uint64_t *cnt;  /* groups x VITQ_I_OCT_BINS: octave histogram (below), until the parameters are known */
    double *sum;    /* groups x VITQ_I_OCT_BINS: sum of the values in each bin, as long as cnt */
};

/* Fail with "<point>: <message>" through the host. */
vitq_status vitq_i_comp_fail(const vitq_i_comp *b, vitq_status status, const char *fmt, ...) VITQ_I_PRINTF(3, 4);

/* Option `i` of the configuration (create has checked it), or its default. */
double vitq_i_comp_option(const vitq_i_comp *b, const vitq_point_config *c, int32_t i);

/* A zero-filled array of `per_group` bytes per group from the host, freed by destroy at the latest; NULL on
 * failure (or when the state holds VITQ_I_COMP_BLOCKS already), which create then reports. */
void *vitq_i_comp_alloc(vitq_i_comp *b, size_t per_group);
/* Free a block of vitq_i_comp_alloc early (NULL: nothing). Returns NULL: `s->p = vitq_i_comp_free(b, s->p)`. */
void *vitq_i_comp_free(vitq_i_comp *b, void *p);

static inline int vitq_i_comp_known(const vitq_i_comp *b, int32_t param) { return (int)(b->known >> param) & 1; }
static inline int vitq_i_comp_complete(const vitq_i_comp *b) {
    return b->known == (1u << b->spec->num_params) - 1u;
}

/* Values of parameter `param` (one per group). */
static inline float *vitq_i_comp_values(const vitq_i_comp *b, int32_t param) {
    float *v;
    memcpy(&v, (const char *)b + b->spec->params[param].offset, sizeof v);
    return v;
}

/* ---- the vtable functions ----------------------------------------------------------------------------- */

vitq_status vitq_i_comp_create(const vitq_i_comp_spec *spec, const vitq_point_config *config,
                               const vitq_scheme_host *host, void **state);
void vitq_i_comp_destroy(void *state);
vitq_status vitq_i_comp_observe(void *state, int32_t pass, const vitq_tensor_view *x);
vitq_status vitq_i_comp_finalize(void *state);
vitq_status vitq_i_comp_get_param(void *state, int32_t index, const char **name, const float **values,
                                  int64_t *count);
vitq_status vitq_i_comp_set_param(void *state, const char *name, const float *values, int64_t count);

/* The checks fake_quant, quantize and dequantize start with (dequantize: every code in [code_min, code_max]). */
vitq_status vitq_i_comp_check_fake_quant(const vitq_i_comp *b, const vitq_tensor_view *x);
vitq_status vitq_i_comp_check_quantize(const vitq_i_comp *b, const vitq_tensor_view *x, const int32_t *codes);
vitq_status vitq_i_comp_check_dequantize(const vitq_i_comp *b, const int32_t *codes, const vitq_tensor_view *out);

/* A component's grid, element by element: the code of x in group g, the value of a code in group g. */
typedef int32_t (*vitq_i_comp_code_fn)(const vitq_i_comp *b, int64_t g, float x);
typedef float (*vitq_i_comp_value_fn)(const vitq_i_comp *b, int64_t g, int32_t code);

/* The elements of group g in slice o of a checked view: a group's channels are consecutive, so they are
 * cpg * inner contiguous floats, in the order of dense codes. */
static inline float *vitq_i_comp_span(const vitq_i_comp *b, const vitq_tensor_view *x, int64_t o, int64_t g) {
    return x->data + o * x->outer_stride + g * b->cpg * x->inner;
}

/* The kernels over a checked view. Inline, and called with constant code and value functions, so that the
 * compiler inlines those too: the loops are the hot path of a quantized forward pass. */
static inline void vitq_i_comp_fake_quant_with(const vitq_i_comp *b, const vitq_tensor_view *x,
                                               vitq_i_comp_code_fn code, vitq_i_comp_value_fn value) {
    int64_t n = b->cpg * x->inner;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) {
            float *p = vitq_i_comp_span(b, x, o, g);
            for (int64_t i = 0; i < n; i++) p[i] = value(b, g, code(b, g, p[i]));
        }
}

static inline void vitq_i_comp_quantize_with(const vitq_i_comp *b, const vitq_tensor_view *x, int32_t *codes,
                                             vitq_i_comp_code_fn code) {
    int64_t n = b->cpg * x->inner;
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) {
            const float *p = vitq_i_comp_span(b, x, o, g);
            for (int64_t i = 0; i < n; i++) *codes++ = code(b, g, p[i]);
        }
}

static inline void vitq_i_comp_dequantize_with(const vitq_i_comp *b, const int32_t *codes,
                                               const vitq_tensor_view *out, vitq_i_comp_value_fn value) {
    int64_t n = b->cpg * out->inner;
    for (int64_t o = 0; o < out->outer; o++)
        for (int64_t g = 0; g < b->groups; g++) {
            float *p = vitq_i_comp_span(b, out, o, g);
            for (int64_t i = 0; i < n; i++) p[i] = value(b, g, *codes++);
        }
}

/* Define the scheme table `table` (declared in quant/schemes.h) of the component `spec` (a static
 * vitq_i_comp_spec): the base's functions, a create bound to `spec`, and the kernels built from `code_fn` and
 * `value_fn`. param_count does not look at its state (the number is the component's, not the state's). */
#define VITQ_I_COMPONENT(table, spec, key, desc, passes, min_bits, num_options, options, code_fn, value_fn)        \
    VITQ_I_COMPONENT_REVISION(table, spec, key, desc, passes, min_bits, num_options, options, code_fn, value_fn, 0)

/* The same for a scheme whose saved parameters changed meaning (vitq_scheme.revision). */
#define VITQ_I_COMPONENT_REVISION(table, spec, key, desc, passes, min_bits, num_options, options, code_fn,         \
                                  value_fn, revision)                                                            \
    static vitq_status table##_create(const vitq_point_config *c, const vitq_scheme_host *h, void **out) {        \
        return vitq_i_comp_create(&spec, c, h, out);                                                             \
    }                                                                                                            \
    static vitq_status table##_fake_quant(void *state, const vitq_tensor_view *x) {                               \
        vitq_status st = vitq_i_comp_check_fake_quant(state, x);                                                 \
        if (st == VITQ_OK) vitq_i_comp_fake_quant_with(state, x, code_fn, value_fn);                             \
        return st;                                                                                               \
    }                                                                                                            \
    static vitq_status table##_quantize(void *state, const vitq_tensor_view *x, int32_t *codes) {                 \
        vitq_status st = vitq_i_comp_check_quantize(state, x, codes);                                            \
        if (st == VITQ_OK) vitq_i_comp_quantize_with(state, x, codes, code_fn);                                  \
        return st;                                                                                               \
    }                                                                                                            \
    static vitq_status table##_dequantize(void *state, const int32_t *codes, const vitq_tensor_view *out) {       \
        vitq_status st = vitq_i_comp_check_dequantize(state, codes, out);                                        \
        if (st == VITQ_OK) vitq_i_comp_dequantize_with(state, codes, out, value_fn);                             \
        return st;                                                                                               \
    }                                                                                                            \
    static int32_t table##_param_count(void *state) {                                                            \
        (void)state;                                                                                             \
        return spec.num_params;                                                                                  \
    }                                                                                                            \
    const vitq_scheme table = {sizeof(vitq_scheme), VITQ_SCHEME_ABI_VERSION, key, desc, passes, min_bits, 8,      \
                               num_options, options, table##_create, vitq_i_comp_destroy, vitq_i_comp_observe,   \
                               vitq_i_comp_finalize, table##_fake_quant, table##_quantize, table##_dequantize,   \
                               table##_param_count, vitq_i_comp_get_param, vitq_i_comp_set_param, NULL,         \
                               sizeof(vitq_scheme_option), revision}

/* ---- statistics and helpers several components share ----------------------------------------------- */

/* Octave histograms suit values spread over many orders of magnitude (attention probabilities):
 * VITQ_I_OCT_SUB bins per octave from 2^-64 (biased float exponent VITQ_I_OCT_LOW) up to 2^32; bin 0 holds
 * everything below (zeros and negatives too), the last bin everything above. */
#define VITQ_I_OCT_SUB 16
#define VITQ_I_OCT_LOW 63
#define VITQ_I_OCT_BINS (96 * VITQ_I_OCT_SUB + 2)

/* What vitq_i_comp_track asks the base to keep in pass 0 (b->max, b->cnt, b->sum). */
#define VITQ_I_COMP_MAX 1u
#define VITQ_I_COMP_COUNTS 2u /* the octave histogram */
#define VITQ_I_COMP_SUMS 4u   /* and the sums of its bins */

/* From init: allocate the statistics `what` (VITQ_I_COMP_* bits), which observe then keeps for pass 0. */
void vitq_i_comp_track(vitq_i_comp *b, unsigned what);
/* Free the histogram (it is no longer needed); the maxima stay. Done anyway once the parameters are known. */
void vitq_i_comp_drop_hist(vitq_i_comp *b);

/* The value below which a fraction t of group g's values lies (at most its maximum), from the histogram: the
 * bin where the cumulative count reaches t * total, interpolated linearly inside it (bin 0 counts as 0). */
double vitq_i_comp_quantile(const vitq_i_comp *b, int64_t g, double t);

/* Squared error of group g's histogram under the fake quantization `fq` with `scale` and `top`, each bin's
 * values standing at their mean (the spread inside a bin adds the same to every scale whose levels do not
 * cut the bin). Needs the sums. Calibration only: fq is called through its pointer. */
double vitq_i_comp_hist_error(const vitq_i_comp *b, int64_t g, float (*fq)(float x, float scale, int32_t top),
                              float scale, int32_t top);

/* A check of a parameter that must be a finite positive scale. */
vitq_status vitq_i_comp_check_scale(const vitq_i_comp *b, int32_t param, int64_t g, float v);

/* t rounded to the nearest integer, ties to even, for 0 <= t <= 2^22: adding 1.5 * 2^23 leaves no fraction
 * bits (callers clamp first, which also keeps the codes in range). */
static inline float vitq_i_round_even(float t) { return (t + 12582912.0f) - 12582912.0f; }

/* The bits of a double: r = (1 + frac / 2^52) 2^(exp - 1023) for a normal r, so that a log grid reads the
 * exponent and mantissa of x / s off them, without frexp. */
static inline uint64_t vitq_i_bits_of(double r) {
    uint64_t b;
    memcpy(&b, &r, sizeof b);
    return b;
}
#define VITQ_I_FRAC(b) ((b) & 0xFFFFFFFFFFFFFull)

#endif
