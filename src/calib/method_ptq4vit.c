/* PTQ4ViT (ECCV 2022) and APQ-ViT (ACM MM 2022) as methods over the block search (block_search.c).
 *
 * PTQ4ViT: symmetric per-tensor uniform quantizers everywhere (the patch embedding's weight per output
 * channel, as the reference code's convolution), twin uniform quantizers for the attention probabilities
 * and the GELU outputs, every parameter searched on the reference code's grid by the Hessian-guided
 * (gradient-weighted) error of the layer that reads it, the layers outside the blocks included, images in
 * parallel mode (each pair searched with the rest of the network in float). The gradient is that of the
 * cross-entropy against the float model's top-1 class, not the KL to the float model the reference code
 * uses, whose gradient vanishes at the float model (docs/methods.md).
 *
 * APQ-ViT: the same quantizers, except the Matthew-effect preserving quantizer ("mpq") for the attention
 * probabilities, whose lowest level is searched too; the blockwise bottom-eliminated metric (BBC) on the
 * block output, sequential inside the block, each block reading the output of the quantized ones before
 * it. The paper's text was not reachable: the elimination rule and the MPQ formula are our readings of its
 * abstract (docs/methods.md).
 *
 * Both take MPTQ-ViT's components (mptq_stages.h): options smooth (SQ-b or SmoothQuant before the search)
 * and opt_m (the twin-gelu ratio searched in its power-of-two format instead of its scale). */
#include <string.h>

#include "calib/block_search.h"
#include "calib/method.h"
#include "calib/mptq_stages.h"
#include "quant/schemes.h"

enum { OPT_GRID, OPT_ALPHA, OPT_BETA, OPT_ROUNDS, OPT_IMAGES, OPT_ELIMINATE, OPT_QUANTIZED_INPUT };

#define SEARCH_OPTIONS                                                                                          \
    {"grid", "candidate scales per search (the paper: 100; 20 is within its ablation's noise)", 2, 1000, 20, 1}, \
    {"alpha", "smallest candidate, times max|x| / (2^(k-1) - 0.5)", 0.0, 1.0, 0.01, 0},                          \
    {"beta", "end of the candidates, times max|x| / (2^(k-1) - 0.5) (the last one is one step short)", 0.1, 4.0,  \
     1.2, 0},                                                                                                     \
    {"rounds", "alternating rounds over each (weight, input) pair (the paper: 3)", 1, 10, 1, 1},                   \
    {"search_images", "calibration images the search uses (0: all)", 0, 1 << 20, 0, 1}

/* MPTQ-ViT's components follow each method's own options: smooth, smooth_alpha, smooth_alpha_search, opt_m */
#define PTQ4VIT_STAGES 5
#define APQ_STAGES 7

static const vitq_scheme_option ptq4vit_options[] = {SEARCH_OPTIONS, VITQ_I_SMOOTH_METHOD_OPTIONS,
                                                     VITQ_I_OPT_M_METHOD_OPTION};

static const vitq_scheme_option apq_options[] = {
    SEARCH_OPTIONS,
    {"eliminate", "apq-vit: fraction of the incumbent's error terms below the threshold (BBC)", 0.0, 0.99, 0.5, 0},
    {"quantized_input", "apq-vit: each block reads the float network's input (0) or the quantized blocks' output, "
     "scored against the float network (1) or the float block on that input (2)", 0, 2, 2, 1},
    VITQ_I_SMOOTH_METHOD_OPTIONS, VITQ_I_OPT_M_METHOD_OPTION};

#define COUNT(table) ((int32_t)(sizeof table / sizeof table[0]))

static vitq_status configure_common(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const vitq_scheme *softmax) {
    cfg->scheme = &vitq_i_scheme_minmax;
    cfg->symmetric = 1;
    cfg->granularity = VITQ_GRAN_TENSOR;
    if (d->role == VITQ_ROLE_POST_SOFTMAX) cfg->scheme = softmax, cfg->symmetric = 0;
    if (d->role == VITQ_ROLE_POST_GELU) cfg->scheme = &vitq_i_scheme_twin_gelu;
    /* the reference code quantizes the patch embedding (a convolution) per output channel */
    if (d->kind == VITQ_POINT_WEIGHT && strncmp(d->name, "patch_embed.", 12) == 0) cfg->granularity = VITQ_GRAN_CHANNEL;
    vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    return VITQ_OK;
}

static vitq_status configure_ptq4vit(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    vitq_status st = configure_common(d, cfg, &vitq_i_scheme_twin_softmax);
    vitq_i_opt_m_configure(d, cfg, opts[PTQ4VIT_STAGES + VITQ_I_SMOOTH_NUM_OPTIONS] != 0);
    return st;
}

static vitq_status configure_apq(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    vitq_status st = configure_common(d, cfg, &vitq_i_scheme_mpq);
    vitq_i_opt_m_configure(d, cfg, opts[APQ_STAGES + VITQ_I_SMOOTH_NUM_OPTIONS] != 0);
    return st;
}

static vitq_i_block_search_options search_options(const vitq_i_run *r, int apq) {
    const double *o = r->method_options;
    vitq_i_block_search_options s = {apq,       apq ? o[OPT_ELIMINATE] : 0, apq,
                                     (int)o[OPT_GRID], o[OPT_ALPHA], o[OPT_BETA],
                                     (int)o[OPT_ROUNDS], (size_t)o[OPT_IMAGES], apq ? (int)o[OPT_QUANTIZED_INPUT] : 0, 0};
    return s;
}

/* SQ-b first (the search then starts from the smoothed points' new ranges); under OPT-m the search itself
 * tries the twin-gelu ratios (search_point.c), as configure put those points in their power-of-two format. */
static vitq_status refine(vitq_i_run *r, int apq) {
    vitq_i_smooth_options so;
    vitq_status st = VITQ_OK;
    if (vitq_i_smooth_options_from(r->method_options + (apq ? APQ_STAGES : PTQ4VIT_STAGES), &so))
        st = vitq_i_smooth_stage(r, &so);
    vitq_i_block_search_options s = search_options(r, apq);
    return st ? st : vitq_i_block_search(r, &s);
}

static vitq_status refine_ptq4vit(vitq_i_run *r) { return refine(r, 0); }

static vitq_status refine_apq(vitq_i_run *r) { return refine(r, 1); }

/* Both change the packed weights of their private copy during the search. */
const vitq_i_method vitq_i_method_ptq4vit = {
    "ptq4vit", "PTQ4ViT: twin uniform softmax/GELU quantizers, Hessian-guided scale search per layer", 1,
    COUNT(ptq4vit_options), ptq4vit_options, configure_ptq4vit, refine_ptq4vit};

const vitq_i_method vitq_i_method_apq = {
    "apq-vit", "APQ-ViT: blockwise bottom-eliminated scale search (BBC), Matthew-effect preserving softmax quantizer",
    1, COUNT(apq_options), apq_options, configure_apq, refine_apq};
