/* The search of one quantizer parameter on a grid of candidates (search_point.c): which parameter and which
 * candidates each scheme offers, the gradient-weighted metric that scores them with or without bottom
 * elimination, and the loop that tries them. What runs the layer or the block for a candidate is the
 * caller's (block_search.c, edge_search.c). */
#ifndef VITQ_CALIB_SEARCH_POINT_H
#define VITQ_CALIB_SEARCH_POINT_H

#include "calib/run.h"

/* How the searches run (block_search.c, edge_search.c and the loop here). */
typedef struct vitq_i_block_search {
    int bbc;          /* 0: Hessian-guided metric on each layer's output; 1: bottom-eliminated, on the block output */
    double eliminate; /* bbc: the fraction of the incumbent's error terms below the threshold (search_point.h) */
    int sequential;   /* 1: points searched earlier in the block stay quantized */
    int grid;         /* candidates per scale (search_point.c) */
    double alpha, beta;
    int rounds;       /* alternating rounds over each pair */
    size_t images;    /* calibration images the search uses (0: all) */
    int quantized_input; /* 1: each block (and edge layer) reads the output of the quantized ones before it,
                          * scored against the float network; 2: against the float block on that input */
    int ratios_only;  /* MPTQ-ViT's OPT-m: only the post-softmax and post-GELU points are searched, on the
                       * ratio of their twin scales (twin-gelu: positive step 2^m x the negative one,
                       * m = 0 .. 15; twin-softmax: its split 2^-m); every other point keeps its calibration */
} vitq_i_block_search_options;

/* The gradient-weighted (Hessian-guided) error of an output `out` against the float one `ref`: the terms
 * e_i = (grad_i (out_i - ref_i))^2 over n values, summed over those with e_i >= threshold (0: all of them,
 * PTQ4ViT's metric; > 0: bottom elimination, APQ-ViT's). `cols` > 0: the values are rows of `cols`
 * columns (a linear layer's output channels) and scores can be kept per column. */
typedef struct vitq_i_metric {
    const float *ref, *grad;
    size_t n, cols;
    float threshold;
} vitq_i_metric;

/* The sum of the kept terms of `out`. */
double vitq_i_metric_score(const vitq_i_metric *m, const float *out);

/* The kept terms of `out` summed per column into scores[cols] (m->cols > 0). */
void vitq_i_metric_columns(const vitq_i_metric *m, const float *out, double *scores);

/* Bottom elimination's threshold: the value below which the fraction `eliminate` of the terms of `out`
 * lies (the terms of the incumbent, the value the point enters its search with). `work` holds n floats.
 * 0 when eliminate is 0. */
float vitq_i_metric_threshold(const vitq_i_metric *m, const float *out, double eliminate, float *work);

/* Runs the layer or the block under the point's current parameter and gives the output the metric scores
 * (valid until the next call). */
typedef vitq_status (*vitq_i_search_run_fn)(void *ctx, const float **out);

/* Search point p of the run on its candidates (search_point.c lists them per scheme), keeping the one of
 * least score under metric `m` (its threshold is set here, from the incumbent, when options->bbc). When
 * `per_group` and the point is a weight with several groups scored on its own layer's output (m->cols its
 * output channels), each group keeps its own best candidate. A weight point's layer reads its fake-
 * quantized weight during and after the search. A point without a searched parameter is left as it is. */
vitq_status vitq_i_search_point(vitq_i_run *r, int p, const vitq_i_block_search_options *options, vitq_i_metric *m,
                                int per_group, vitq_i_search_run_fn run, void *ctx);

/* Before a pair is searched: a point whose candidates start from PTQ4ViT's reference scale (max|x| /
 * (2^(k-1) - 0.5), symmetric uniform and twin-gelu scales) is set to it, as the reference code starts
 * each layer's search from it. Nothing for other points. */
vitq_status vitq_i_search_start(vitq_i_run *r, int p);

#endif
