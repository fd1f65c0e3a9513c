/* The integer-only non-linear operators of a quantized model (issue 17, docs/quantization.md
 * "Integer non-linear operators"): a LayerNorm, a softmax or a GELU computed by one of the integer
 * kernels of I-BERT, FQ-ViT or I-ViT (kernels/intnl.h) instead of in float. Each replaces the
 * operator that reads one point of the model (a LAYERNORM_INPUT, SOFTMAX_INPUT or GELU_INPUT point):
 * its input is put on an integer grid (16-bit symmetric, or FQ-ViT's 8-bit Power-of-Two-Factor grid
 * for its LayerNorm), the kernel runs, and its integer output is read back at its scale.
 *
 * The grids and the kernels' parameters are chosen once from statistics of the operator's input seen
 * in calibration (vitq_i_qnl_prepare); a saved model stores the result (every integer parameter, so
 * another runtime can run the kernels from the file alone) and a loaded one runs it as it is. */
#ifndef VITQ_QUANT_NONLINEAR_H
#define VITQ_QUANT_NONLINEAR_H

#include "kernels/intnl.h"
#include "model/net.h"
#include "model/taps.h"

/* The kernels vitq_nonlinear names (vitq.h): I-BERT, FQ-ViT, I-ViT. */
#define VITQ_I_NL_METHODS 3

typedef enum vitq_i_nl_op { VITQ_I_NL_LAYERNORM = 0, VITQ_I_NL_SOFTMAX = 1, VITQ_I_NL_GELU = 2 } vitq_i_nl_op;

/* Bits of the integer input grid: 16 for every kernel but FQ-ViT's PTF LayerNorm (8, as FQ-ViT). */
#define VITQ_I_NL_INPUT_BITS 16
#define VITQ_I_NL_PTF_BITS 8
/* Output bits of the I-BERT and I-ViT softmaxes and of ShiftGELU's sigmoid, and the LIS codes'. The
 * simulation reads the softmax at 16 bits and lets the probabilities' own quantizer (when the point
 * is quantized) put it on its grid; FQ-ViT's 4-bit log2 map is itself the quantized attention. */
#define VITQ_I_NL_OUT_BITS 16
#define VITQ_I_NL_LIS_BITS 4

typedef struct vitq_i_qnl {
    int point;          /* index in the model's point list */
    int32_t op;         /* vitq_i_nl_op, from the point's role */
    int32_t method;     /* the kernel that runs: VITQ_NONLINEAR_IBERT, _FQVIT or _IVIT */
    int32_t in_bits;    /* of the input grid */
    int32_t in_zero;    /* PTF: the grid's zero point; else 0 */
    double in_scale;    /* step of the input grid (PTF: s_min, the step of alpha 0) */
    double out_scale;   /* value of one unit of the kernel's integer output (LIS: unused, codes 2^-q) */
    union {
        vitq_i_ibert_softmax_params ibert_softmax;
        vitq_i_shiftmax_params shiftmax;
        vitq_i_lis_params lis;
        vitq_i_ibert_gelu_params ibert_gelu;
        vitq_i_shiftgelu_params shiftgelu;
        vitq_i_int_layernorm_params int_layernorm;
        vitq_i_ptf_layernorm_params ptf_layernorm;
    } k;
    int32_t channels;          /* LayerNorm: channels of the per-channel arrays below */
    vitq_i_ln_channel *ln_ch;  /* I-BERT / I-ViT LayerNorm (owned) */
    vitq_i_ptf_channel *ptf_ch; /* FQ-ViT PTF LayerNorm (owned) */
    int32_t *alpha;            /* PTF: the input's power-of-two factor per channel (owned) */
    /* The mixed selection's measurement: dB of output SQNR lost when only this operator runs method
     * m + 1 (NaN: not a candidate or not measured). */
    double dsqnr[VITQ_I_NL_METHODS];
} vitq_i_qnl;

/* The operator a point's role names (-1: the role has none). */
int vitq_i_nl_op_of_role(vitq_point_role role);
/* 1 when the kernels of `method` (VITQ_NONLINEAR_IBERT..IVIT) include one for `op`. FQ-ViT has no
 * integer GELU: its GELU is I-BERT's (vitq_i_nl_kernel_of). */
int vitq_i_nl_has_kernel(int32_t method, int op);
/* The kernel a method runs for op (FQ-ViT's GELU: I-BERT's). */
int32_t vitq_i_nl_kernel_of(int32_t method, int op);
/* "ibert", "fqvit", "ivit" ("float" for 0, "mixed" for VITQ_NONLINEAR_MIXED); NULL otherwise. */
const char *vitq_i_nl_method_name(int32_t method);
/* The method named `name` (the names above, or their numbers), -1 when none. */
int32_t vitq_i_nl_method_parse(const char *name);
const char *vitq_i_nl_op_name(int op);

/* What calibration saw of an operator's input. */
typedef struct vitq_i_nl_stats {
    double lo, hi;     /* range of every value */
    int64_t row_max;   /* softmax: the longest row (its tokens) */
    int32_t channels;  /* LayerNorm: its channels */
    /* PTF LayerNorm: per channel, the squared error of each alpha 0..3 ([channels][4]), gathered by a
     * second pass once lo and hi are known (NULL: none) */
    double *ptf_err;
} vitq_i_nl_stats;

/* The PTF grid of the range [lo, hi] (vitq_i_ptf_alpha's s8 and zero point). */
void vitq_i_nl_ptf_grid(double lo, double hi, double *s8, int32_t *zero);
/* Add the squared errors of x (rows x channels, row stride `stride`) under each alpha to err. */
void vitq_i_nl_ptf_errors(const float *x, int64_t rows, int64_t channels, int64_t stride, double lo, double hi,
                          double *err);

/* The operator of point `point` (op, the model's LayerNorm `ln` for LayerNorms, else NULL) computed by
 * `method`'s kernel, from stats. VITQ_ERR_OUT_OF_RANGE (naming the point) when the kernel cannot take
 * this operator's inputs. `out` is zeroed first and freed by vitq_i_qnl_free. */
vitq_status vitq_i_qnl_prepare(const vitq_allocator *a, const char *name, int point, int op, int32_t method,
                               const vitq_i_nl_stats *stats, const vitq_i_layernorm_params *ln, vitq_i_qnl *out);
void vitq_i_qnl_free(const vitq_allocator *a, vitq_i_qnl *nl);

/* The operator on rows x channels inputs (row stride `stride`) into out (rows x channels, dense; may be
 * `in` when stride == channels). Scratch from `a`. */
vitq_status vitq_i_qnl_run(const vitq_allocator *a, const vitq_i_qnl *nl, const float *in, int64_t rows,
                           int64_t channels, int64_t stride, float *out);

/* The LayerNorm parameters of the LayerNorm reading LAYERNORM_INPUT point `point` of m (sites: the
 * model's full point sites), or NULL. */
const vitq_i_layernorm_params *vitq_i_nl_layernorm_of(const vitq_i_net *m, const vitq_i_sites *sites, int point);

#endif
