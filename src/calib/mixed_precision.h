/* Greedy mixed precision (MPTQ-ViT's Greedy MP, docs/methods.md), over any scheme or method.
 *
 * A unit is one linear layer of the blocks (Swin: also each patch merging) with the points that must
 * share its width: its weight and its input, and for a block's qkv layer the attention's Q, K, V,
 * scores and probabilities too (the products they feed run at the width of the layer making Q, K, V).
 * The patch embedding and the classifiers are not units: they keep the calibrator's edge bits.
 *
 * The driver (calibrate.c) calibrates the whole network once per candidate width, the method's full
 * pipeline each time; mixed_precision.c measures, for every unit and width, the output KL divergence
 * of the widest network with only that unit taken from the narrower run; mp_greedy.c lowers units one
 * step at a time, the smallest loss increase per byte saved first, until the targets hold; the driver
 * then moves the chosen units' quantizers (and, for methods that fold, their layers) into the widest
 * run and finishes it as an ordinary quantized model. */
#ifndef VITQ_CALIB_MIXED_PRECISION_H
#define VITQ_CALIB_MIXED_PRECISION_H

#include "calib/run.h"

#define VITQ_I_MP_MAX_POINTS 8
#define VITQ_I_MP_MAX_WIDTHS 7 /* 2..8 */

typedef enum vitq_i_mp_layer { VITQ_I_MP_QKV, VITQ_I_MP_PROJ, VITQ_I_MP_FC1, VITQ_I_MP_FC2, VITQ_I_MP_MERGE } vitq_i_mp_layer;

typedef struct vitq_i_mp_unit {
    int points[VITQ_I_MP_MAX_POINTS]; /* active points of the unit (the weight among them) */
    int count;
    int weight;                       /* its weight point */
    int block;                        /* the block (or the stage, for a merge) */
    vitq_i_mp_layer layer;
    uint64_t params;                  /* weight parameters */
} vitq_i_mp_unit;

/* The units of a run's network whose points are all configured to be quantized and none of them set by
 * the caller (user_set[p], may be NULL). *units from r->alloc. */
vitq_status vitq_i_mp_units(const vitq_i_run *r, const unsigned char *user_set, vitq_i_mp_unit **units, int *count);

/* Of the weight points outside the units: their parameters and bits (quantized, not units: the edges);
 * and the parameters of the network kept at 32 bits. */
void vitq_i_mp_fixed(const vitq_i_run *r, const vitq_i_mp_unit *units, int count, uint64_t *params, uint64_t *bits,
                     uint64_t *float_params);

/* The allocation problem: units x widths (descending, width[0] the widest) with loss[u * widths + w]
 * the loss with unit u alone at width[w] (loss[u * widths] the loss of the widest network, the same
 * for every unit). */
typedef struct vitq_i_mp_problem {
    int units, widths;
    const int32_t *width;
    const uint64_t *params;      /* [units] */
    const double *loss;          /* [units][widths] */
    uint64_t fixed_params, fixed_bits, float_params;
    double target_bits;          /* 0: none */
    uint64_t target_bytes;       /* 0: none */
} vitq_i_mp_problem;

/* Average bits per quantized weight parameter and bytes of all parameters under choice[u] (an index
 * into width). */
void vitq_i_mp_cost(const vitq_i_mp_problem *p, const int *choice, double *average_bits, uint64_t *bytes);

/* Greedy allocation into choice[units]: all at width[0], then while a target does not hold, lower by
 * one step the unit whose step costs the least loss increase per byte saved (ties: the first unit).
 * VITQ_ERR_OUT_OF_RANGE when even the narrowest widths miss a target (checked first). */
vitq_status vitq_i_mp_greedy(const vitq_i_mp_problem *p, int *choice);

/* loss[u][w] of the problem: the mean KL divergence of the float network's output distribution to the
 * quantized one on the calibration images, with `base` (the widest run, on a private copy) quantized
 * and unit u's points (and layers, when `layers` is set: the method folded into them) taken from
 * runs[w]. runs[0] is base. */
vitq_status vitq_i_mp_measure(vitq_i_run *const *runs, int widths, const vitq_i_mp_unit *units, int count, int layers,
                              double *loss);

/* Move unit u from `from` into `to`: its quantizers (copied) and, when `layers` is set, its layers
 * (exchanged with `from`'s: LayerNorm before a qkv / fc1 / merge, and the linear layer). */
vitq_status vitq_i_mp_take(vitq_i_run *to, vitq_i_run *from, const vitq_i_mp_unit *u, int layers);

#endif
