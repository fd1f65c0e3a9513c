/* MPTQ-ViT (Tai & Wu, arXiv 2401.14895; docs/methods.md): SmoothQuant with bias (SQ-b) and the
 * scale-ratio search (OPT-m); its greedy mixed precision is the calibrator's, over any method
 * (calib/mixed_precision.h).
 *
 * Every post-LayerNorm activation that feeds a linear layer inside the network (qkv, fc1, Swin's
 * patch-merging reduction) is first observed per channel (min, max) on the float network. refine
 * turns each channel's range and the next layer's weight columns into a shift b and a smoothing
 * factor s (quant/smooth.h), folds them into the LayerNorm and the linear layer (an identity of the
 * float network), and the point is then quantized symmetrically per tensor, its range observed again
 * on the folded network; the folded layers' weights are calibrated again. Option shift 0 gives plain
 * SmoothQuant (no shift, symmetric per-tensor quantizer after smoothing).
 *
 * The other points follow the paper's base (PTQ4ViT): twin-uniform quantizers for the post-GELU and
 * post-softmax activations, symmetric per-tensor elsewhere, weights symmetric per output channel.
 *
 * OPT-m (option opt_m): the ratio between the two scales of each twin quantizer is searched per layer
 * instead of set by PTQ4ViT's rule: the post-GELU positive step 2^m times the negative one (m = 0..15,
 * the twin-gelu grid kept in that power-of-two format), the post-softmax split 2^-m, each scored by the
 * Hessian-guided (gradient-weighted) error of the output it feeds (the block search's metric,
 * block_search.h), after the folds, on the network the smoothed points now see.
 *
 * Both are stages other methods run too (mptq_stages.h: options smooth and opt_m of ptq4vit, apq-vit
 * and repq-vit); this file is the paper's composition of them. */
#include "calib/method.h"
#include "calib/mptq_stages.h"
#include "quant/schemes.h"

enum { OPT_SHIFT, OPT_ALPHA, OPT_M, OPT_IMAGES, OPT_ALPHA_SEARCH };

static const vitq_scheme_option options[] = {
    {"shift", "1: SQ-b, each post-LayerNorm channel centred on its observed (max + min) / 2 before smoothing; "
              "0: plain SmoothQuant (no shift)", 0, 1, 1, 1},
    {"alpha", "migration strength: s = max|X - b|^alpha / max|W|^(1 - alpha) per channel", 0.0, 1.0, 0.5, 0},
    {"opt_m", "1: OPT-m, the twin quantizers' scale ratios searched per layer by the Hessian-guided metric "
              "(post-GELU steps then a power of two apart); 0: PTQ4ViT's calibration of them", 0, 1, 1, 1},
    {"search_images", "calibration images the OPT-m search uses (0: all)", 0, 1 << 20, 0, 1},
    {"alpha_search", "1: alpha per layer, of 0, 0.1, .., 1 the one whose smoothed layer output has the least "
                     "quantization error on calibration rows; 0: option alpha everywhere", 0, 1, 1, 1},
};

static vitq_status configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    cfg->scheme = &vitq_i_scheme_minmax;
    cfg->symmetric = 1;
    /* the smoothed points too are symmetric per tensor: the grid they are deployed on after the fold */
    cfg->granularity = d->kind == VITQ_POINT_WEIGHT ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    if (d->role == VITQ_ROLE_POST_GELU) cfg->scheme = &vitq_i_scheme_twin_gelu;
    if (d->role == VITQ_ROLE_POST_SOFTMAX) cfg->scheme = &vitq_i_scheme_twin_softmax, cfg->symmetric = 0;
    vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    vitq_i_opt_m_configure(d, cfg, opts[OPT_M] != 0);
    return VITQ_OK;
}

static vitq_status refine(vitq_i_run *r) {
    const double *o = r->method_options;
    vitq_i_smooth_options s = {o[OPT_SHIFT] != 0, o[OPT_ALPHA], o[OPT_ALPHA_SEARCH] != 0};
    vitq_status st = vitq_i_smooth_stage(r, &s);
    if (!st && o[OPT_M] != 0) st = vitq_i_opt_m_stage(r, (size_t)o[OPT_IMAGES]);
    return st;
}

/* refine folds into the network: it works on a private copy. */
const vitq_i_method vitq_i_method_mptq = {
    "mptq-vit", "MPTQ-ViT: SmoothQuant with bias (SQ-b) folded into LayerNorm, symmetric per-tensor post-LayerNorm "
                "quantizers, twin-uniform GELU/softmax quantizers with their scale ratios searched (OPT-m)", 1,
    (int32_t)(sizeof options / sizeof options[0]), options, configure, refine};
