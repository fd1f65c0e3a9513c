/* A calibration run and its services: what the driver (calibrate.c), the PTQ methods (method.h) and
 * the searches (block_search.h, noisy_search.h) share, all calling down into run.c and never into
 * each other's files.
 *
 * A run: configure every point (generic defaults, then the method's, then the caller's
 * vitq_calibrator_set), create the quantizers, observe and finalize the weights and the activations
 * of the float network, let the method refine the parameters (searches, reparameterisation, noisy
 * bias), encode the weights, serialise. Methods that change the network (RepQ-ViT folds scales into
 * LayerNorm and linear layers) work on a private copy of the float model, never on the caller's. */
#ifndef VITQ_CALIB_RUN_H
#define VITQ_CALIB_RUN_H

#include "quant/qmodel.h"
#include "quant/registry.h"

/* Configuration of one point before its quantizer exists. */
typedef struct vitq_i_point_cfg {
    const vitq_scheme *scheme;
    int32_t bits, granularity, symmetric;
    int32_t noisy; /* NoisyQuant: a fixed noisy bias is added before the quantizer (linear inputs only) */
    int32_t nonlinear; /* a vitq_nonlinear: the integer operator reading this point (its inputs only) */
    double options[VITQ_I_MAX_SCHEME_OPTIONS];
} vitq_i_point_cfg;

#define VITQ_I_MAX_METHOD_OPTIONS 16
#define VITQ_I_FEED_BATCH 8 /* images per forward pass of a calibration pass: the unit of progress reports */

typedef struct vitq_i_method vitq_i_method;

typedef struct vitq_i_run {
    const vitq_allocator *alloc;       /* counted by the calibrator */
    const vitq_calibrator_options *opts;
    vitq_i_net *model;                 /* the float network being quantized (a private copy if the method changes it) */
    vitq_i_point_list *list;           /* points of `model` */
    vitq_i_point_cfg *cfg;             /* [list->count] */
    vitq_i_qmodel *q;                  /* quantizers of the active points (q->list is *list, borrowed) */
    const float *images;               /* calibration images, per_image floats each */
    size_t num_images, per_image;
    const vitq_i_method *method;       /* NULL: none */
    const double *method_options;      /* [method->num_options] */
    int64_t progress_done, progress_total;
    /* [list->count]: the row-major weight of each weight point (NULL for activations). A loaded model
     * keeps only packed weights (model/weights.h): a private copy has rows attached, which these
     * point to; for the caller's model the run makes (and frees) them. */
    float **weights;
} vitq_i_run;

/* Forward pass of images [first, first + n) of the run's calibration set with `taps` (NULL: none) on the
 * run's float network; logits (n x classes) may be NULL. */
vitq_status vitq_i_run_forward(vitq_i_run *r, size_t first, size_t n, vitq_i_taps *taps, float *logits);

/* Report one unit of progress under `stage`; VITQ_ERR_CANCELLED when the callback asks to stop. */
vitq_status vitq_i_run_progress(vitq_i_run *r, const char *stage);

/* The quantizer of point p (NULL when p is not quantized). */
static inline vitq_i_qpoint *vitq_i_run_qpoint(const vitq_i_run *r, int p) {
    return p >= 0 && r->q->of_point[p] >= 0 ? &r->q->qpoints[r->q->of_point[p]] : NULL;
}

/* Replace the quantizer of point p by a new one of `scheme` with config `cfg` (its name, options and
 * groups as given); the old one is destroyed. */
vitq_status vitq_i_run_recreate(vitq_i_run *r, int p, const vitq_scheme *scheme, vitq_point_config *cfg);

/* Observe (every pass the scheme asks for) and finalize the weight quantizer of point p from the
 * current weights of the run's network. */
vitq_status vitq_i_run_calibrate_weight(vitq_i_run *r, int p);

/* The panels the GEMM of weight point p reads: its fake-quantized weight (quantized 1) or the float
 * one again (0), packed from the row-major weight, which stays as it is. For runs on a private copy
 * (the method copies the model): the caller's model is never changed. */
vitq_status vitq_i_run_set_weight(vitq_i_run *r, int p, int quantized);

/* Passes that start at a block keep every block's input for a group of images (ViT / DeiT; Swin
 * keeps none): the floats of one image's stream into *per_stream (0 for Swin) and the images per
 * group, 1..n, so that the depth + 1 streams of a group fit `budget` bytes. */
size_t vitq_i_run_stream_group(const vitq_i_net *m, size_t n, size_t budget, size_t *per_stream);

/* vitq_i_run_set_weight for every quantized weight point of the run; the first failure is returned,
 * but every point is tried (restoring the float weights after a failed pass must not stop halfway). */
vitq_status vitq_i_run_set_weights(vitq_i_run *r, int quantized);

/* Fake-quantize the weight of point p (a copy of the layer's weight in `out`, channels x inner). */
vitq_status vitq_i_run_fake_weight(const vitq_i_run *r, int p, float *out);

/* Observe the activation quantizers of points[0..n) again, from fresh statistics, on forward passes of
 * every calibration image through the run's network as it is now (float, no other point applied),
 * as many passes as the schemes ask for, then finalize them; their observed ranges are reset too. For
 * a method that changed the network under some points (a fold): their quantizers must be new ones
 * (vitq_i_run_recreate), never observed yet. */
vitq_status vitq_i_run_observe_points(vitq_i_run *r, const int *points, int n);

/* Pass `pass` of point qp's quantizer on view v: its observed range widened (pass 0), then the scheme's
 * observe when it asks for that pass. The one observation step of every calibration pass. */
vitq_status vitq_i_run_observe_view(vitq_i_qpoint *qp, int pass, const vitq_tensor_view *v);

/* Widen [*lo, *hi] to the range of the values of v (a point's observed range). */
void vitq_i_run_view_range(const vitq_tensor_view *v, float *lo, float *hi);

#endif
