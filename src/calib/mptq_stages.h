/* MPTQ-ViT's two components as stages any method runs inside its refine (mptq_stages.c): SmoothQuant
 * with bias (SQ-b) or plain SmoothQuant folded at the post-LayerNorm points, and OPT-m, the search of
 * the twin quantizers' scale ratios. method_mptq.c is both under PTQ4ViT's quantizers; ptq4vit,
 * apq-vit and repq-vit offer them as options (docs/quantization.md, "Components"). */
#ifndef VITQ_CALIB_MPTQ_STAGES_H
#define VITQ_CALIB_MPTQ_STAGES_H

#include "calib/run.h"

typedef struct vitq_i_smooth_options {
    int shift;        /* 1: SQ-b, each channel centred on its observed (max + min) / 2; 0: SmoothQuant */
    double alpha;     /* migration strength when not searched */
    int alpha_search; /* 1: per layer, of 0, 0.1, .., 1 the alpha of least smoothed-output error */
} vitq_i_smooth_options;

/* The stage's three options under a method other than mptq-vit (whose own names are shift, alpha,
 * alpha_search), consecutive in the method's table; vitq_i_smooth_options_from reads them. */
#define VITQ_I_SMOOTH_METHOD_OPTIONS                                                                              \
    {"smooth", "MPTQ-ViT's smoothing of the post-LayerNorm activations folded into LayerNorm and the next layer "  \
               "before the method's own calibration of them: 0 none, 1 SQ-b (shift and smoothing), 2 plain "      \
               "SmoothQuant", 0, 2, 0, 1},                                                                         \
    {"smooth_alpha", "smooth: migration strength s = max|X - b|^alpha / max|W|^(1 - alpha) when not searched",     \
     0.0, 1.0, 0.5, 0},                                                                                            \
    {"smooth_alpha_search", "smooth: 1 alpha per layer by the smoothed layer's output error; 0 smooth_alpha", 0, 1,   \
     1, 1}
#define VITQ_I_SMOOTH_NUM_OPTIONS 3

/* OPT-m's option under a method other than mptq-vit (the same name as mptq-vit's). */
#define VITQ_I_OPT_M_METHOD_OPTION                                                                                \
    {"opt_m", "MPTQ-ViT's OPT-m: the twin quantizers' scale ratios searched by the Hessian-guided metric "         \
              "(post-GELU steps a power of two apart); 0: the method's own calibration of them", 0, 1, 0, 1}

/* 0 when opts[0] (smooth) is 0; else 1 and *out from opts[0..2]. */
int vitq_i_smooth_options_from(const double *opts, vitq_i_smooth_options *out);

/* Smooth every quantized post-LayerNorm point inside the network (qkv's and fc1's inputs, Swin's
 * reduction inputs): per-channel ranges from one float pass over the calibration images, the factors
 * (quant/smooth.h) folded into the LayerNorm and the linear that reads the point (an identity of the
 * float network), then each smoothed point gets a fresh quantizer of the configuration it had (the
 * method's: MPTQ-ViT's symmetric per tensor, PTQ4ViT's, RepQ-ViT's per channel before its own fold) and
 * is observed again on the folded network, and the folded layers' weights are calibrated again. The
 * network must be the run's private copy (the method copies the model). */
vitq_status vitq_i_smooth_stage(vitq_i_run *r, const vitq_i_smooth_options *o);

/* OPT-m's configuration of point d (under `on`): a twin-gelu post-GELU quantizer keeps its positive step
 * 2^m times the negative one (the scheme's option pow2), the format whose ratio the searches try. */
void vitq_i_opt_m_configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, int on);

/* OPT-m after a method's calibration: the block search's ratios-only pass over `images` calibration
 * images (0: all). */
vitq_status vitq_i_opt_m_stage(vitq_i_run *r, size_t images);

#endif
