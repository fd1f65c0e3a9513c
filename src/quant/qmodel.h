/* Simulated quantization attached to a model: the finalized quantizer of every active point, the
 * integer codes of quantized weights, and the tap sites that reach the active activations.
 * A quantized vitq_i_net owns one (model->quant); the calibrator builds one for the float model
 * only long enough to serialise it (qsave.c), and every quantized model is loaded from such bytes
 * (qload.c), so that a model from vitq_calibrator_run and one from a saved file are the same thing. */
#ifndef VITQ_QUANT_QMODEL_H
#define VITQ_QUANT_QMODEL_H

#include "quant/nonlinear.h"
#include "quant/points.h"
#include "quant/registry.h"

typedef struct vitq_i_qpoint {
    int point;            /* index into the owner's point list */
    vitq_i_instance inst; /* finalized (or loaded) quantizer; stays at this address */
    uint8_t *codes;       /* weights: packed codes (codes.h), rows = channels, cols = inner */
    size_t codes_bytes;
    int ndim;             /* weights: tensor shape as stored (patch embedding: 4-D) */
    uint64_t shape[4];
    float observed_min, observed_max;
    float *noise;         /* NoisyQuant: fixed noisy bias per input channel (channels floats), or NULL */
} vitq_i_qpoint;

typedef struct vitq_i_qmodel {
    vitq_allocator alloc;
    vitq_i_point_list list; /* every point of the model */
    vitq_i_qpoint *qpoints; /* active points, in list order */
    int count;
    int *of_point;          /* [list.count]: index into qpoints, or -1 */
    /* Integer non-linear operators (nonlinear.h): the operators reading these points run integer
     * kernels. A point has a quantizer or an operator, never both. */
    vitq_i_qnl *nl;
    int nl_count;
    /* [list.count]: index into nl, -1, or VITQ_I_NL_BYPASSED for the probabilities an FQ-ViT softmax
     * gives itself (their quantizer is skipped); NULL when nl_count is 0 */
    int *nl_of_point;
    vitq_i_sites sites;     /* activation sites of the active points and of the non-linear operators */
    /* The sites q's forward taps reach: `sites` without those the network's integer kernels realise
     * (integer.h); not built (blocks NULL) when every active point is simulated. */
    vitq_i_sites run_sites;
} vitq_i_qmodel;

#define VITQ_I_NL_BYPASSED (-2)

/* The integer operator reading point p, or NULL. */
static inline const vitq_i_qnl *vitq_i_qmodel_nl(const vitq_i_qmodel *q, int p) {
    return q->nl_of_point && p >= 0 && q->nl_of_point[p] >= 0 ? &q->nl[q->nl_of_point[p]] : NULL;
}

/* The index of the quantizer a forward pass applies at point p, or -1: none, or the probabilities an
 * FQ-ViT softmax gives itself as codes (their quantizer is skipped). */
static inline int vitq_i_qmodel_quantizer(const vitq_i_qmodel *q, int p) {
    if (q->nl_of_point && q->nl_of_point[p] == VITQ_I_NL_BYPASSED) return -1;
    return q->of_point[p];
}

/* The replace function of q's taps (taps.h), for taps of other code that run q's operators: computes
 * the operator reading point p when q has one (1), else 0. */
int vitq_i_qmodel_replace(const vitq_i_qmodel *q, vitq_i_taps *t, int point, const float *in, int64_t rows,
                          int64_t channels, int64_t stride, float *out);

/* Index q->nl_of_point from q->nl (allocating it; list built). VITQ_ERR_FORMAT when a point has two
 * operators or an operator and a quantizer. */
vitq_status vitq_i_qmodel_index_nl(vitq_i_qmodel *q, const char *what);

/* active[p] = 1 for every point whose site q's taps must reach: active activation points and
 * operators. `active` holds list.count bytes, zeroed by the caller. */
void vitq_i_qmodel_mark_sites(const vitq_i_qmodel *q, unsigned char *active);

/* Storage of a model's parameters (vitq_model_info.size_bytes): q's quantized weights at their bits,
 * the rest of the num_params parameters at 32 bits; and the average bits of the quantized weights
 * (32 when there are none; q may be NULL: a float model). Scales and zero points are not counted. */
void vitq_i_qmodel_size(const vitq_i_qmodel *q, uint64_t num_params, uint64_t *bytes, double *average_bits);

/* Free everything (instances included); q itself too. NULL is a no-op. */
void vitq_i_qmodel_free(vitq_i_qmodel *q);

/* Taps of q for one forward pass: fake quantization of the active points its network's kernels do not
 * realise themselves. */
vitq_i_taps vitq_i_qmodel_taps(const vitq_i_qmodel *q);

/* Description of qpoint `index` (strings owned by q). */
void vitq_i_qmodel_point_info(const vitq_i_qmodel *q, int index, vitq_point_info *info);
/* Copy a full description into a caller's struct of any known version. */
vitq_status vitq_i_point_info_out(const vitq_point_info *full, vitq_point_info *info, const char *fn);

/* Serialise model m (float tensors) with q's codes and parameters as a quantized safetensors file
 * into a new buffer from `a` (docs/formats.md, "Quantized models"). */
vitq_status vitq_i_qsave(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_qmodel *q, uint8_t **out,
                         size_t *size);

/* Loading (qload.c). `prepare` reads the point table and the quantizer parameters of a quantized
 * file and makes its weight tensors of `st` F32 tensors whose values are their codes dequantized on
 * request (io/safetensors.h, fill and pack_later), so that the ordinary builders check the network;
 * `attach` then checks the points against the built network and hands the quantizers over in *out;
 * `finish` gives each quantized layer its kernel, one layer at a time (integer panels, else float
 * panels and the codes kept). */
typedef struct vitq_i_qload {
    vitq_allocator alloc;
    vitq_i_qmodel *q;   /* point list empty until attach */
    char **names;       /* names of the point-parameter tensors, for the checkpoint's unused check */
    size_t num_names;
    struct vitq_i_qload_weight *weights; /* where each weight point's codes are, [points] */
    int num_weights;
    vitq_i_qnl *nl;     /* integer operators read, until attach moves them into q */
    char (*nl_names)[VITQ_I_POINT_NAME];
    int nl_count;
} vitq_i_qload;

struct vitq_i_safetensors;
int vitq_i_qload_is_quantized(const struct vitq_i_safetensors *st);
vitq_status vitq_i_qload_prepare(const vitq_allocator *a, struct vitq_i_safetensors *st, const vitq_registry *registry,
                                 vitq_i_qload *prep);
vitq_status vitq_i_qload_attach(vitq_i_qload *prep, vitq_i_net *m, vitq_i_qmodel **out);
/* After attach: the kernels of the quantized layers of m (q the attached quantizers); integer ones
 * unless `simulated`. Counts of integer layers and attentions to *layers and *attentions. */
vitq_status vitq_i_qload_finish(vitq_i_qload *prep, vitq_i_net *m, vitq_i_qmodel *q, int simulated, int *layers,
                                int *attentions);
void vitq_i_qload_free(vitq_i_qload *prep);

#endif
