/* RepQ-ViT (ICCV 2023, docs/methods.md): calibrate post-LayerNorm activations per channel and the
 * attention probabilities with a log-sqrt2 quantizer, then reparameterise the per-channel scales into
 * the LayerNorm affine parameters and the next linear layer's weights and bias so that the deployed
 * quantizer is per tensor; the changed weights are calibrated again afterwards.
 *
 * Quantizers: every range is RepQ-ViT's: the best of three percentiles by squared error
 * ("percentile-mse"), per tensor, per channel for post-LayerNorm activations and weights (asymmetric).
 *
 * MPTQ-ViT's components (mptq_stages.h) compose with it: smooth (SQ-b before the reparameterisation) and,
 * with post_gelu = 1, opt_m. */
#include <string.h>

#include "calib/method.h"
#include "calib/mptq_stages.h"
#include "calib/sequential.h"
#include "quant/reparam.h"
#include "quant/schemes.h"

static const vitq_scheme_option options[] = {
    {"reparam", "1: fold the per-channel post-LayerNorm scales into LayerNorm and the next layer (deployable); "
                "0: keep per-channel activation quantizers (the model the reparameterisation must equal)",
     0, 1, 1, 1},
    {"post_gelu", "0: uniform per-tensor quantizer for the post-GELU activations (RepQ-ViT's own); 1: PTQ4ViT's "
                  "twin-uniform quantizer (twin-gelu) there instead, a composition of the two papers' components",
     0, 1, 0, 1},
    {"init", "1: calibrate the activation ranges in forward order with every earlier quantizer on (RepQ-ViT's "
             "code; measured 2.8 points worse on the ImageNet DeiT-Tiny at W4A4, docs/methods.md); 0: on the "
             "float network's activations (default)",
     0, 1, 0, 1},
    VITQ_I_SMOOTH_METHOD_OPTIONS,
    VITQ_I_OPT_M_METHOD_OPTION,
};
enum { OPT_REPARAM, OPT_POST_GELU, OPT_INIT, OPT_SMOOTH, OPT_M = OPT_SMOOTH + VITQ_I_SMOOTH_NUM_OPTIONS };

static vitq_status configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    cfg->scheme = &vitq_i_scheme_percentile_mse;
    cfg->symmetric = 0;
    cfg->granularity = d->kind == VITQ_POINT_WEIGHT ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
    if (d->role == VITQ_ROLE_POST_LAYERNORM && !d->edge) cfg->granularity = VITQ_GRAN_CHANNEL;
    if (d->role == VITQ_ROLE_POST_SOFTMAX) cfg->scheme = &vitq_i_scheme_log_sqrt2;
    int twin = d->role == VITQ_ROLE_POST_GELU && opts[OPT_POST_GELU] != 0;
    if (twin) cfg->scheme = &vitq_i_scheme_twin_gelu;
    vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    if (twin) cfg->symmetric = 1; /* its codes are signed: one bit tells the two ranges apart */
    if (opts[OPT_M] != 0 && opts[OPT_POST_GELU] == 0)
        return vitq_i_fail(VITQ_ERR_CONFIG, "repq-vit: opt_m searches the ratio of the twin-uniform post-GELU "
                                            "quantizer's two steps; set post_gelu=1 with it");
    vitq_i_opt_m_configure(d, cfg, opts[OPT_M] != 0);
    return VITQ_OK;
}

/* Fold the per-channel quantizer of point p (the output of `ln`, read by `next`) and make it per tensor. */
static vitq_status fold(vitq_i_run *r, int p, vitq_i_layernorm_params *ln, vitq_i_linear *next) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (!qp || qp->inst.config.granularity != VITQ_GRAN_CHANNEL) return VITQ_OK;
    const vitq_scheme *s = &qp->inst.scheme;
    const float *scale = NULL, *zero = NULL;
    for (int32_t k = 0; k < s->param_count(qp->inst.state); k++) {
        const char *name;
        const float *values;
        int64_t count;
        vitq_status st = s->get_param(qp->inst.state, k, &name, &values, &count);
        if (st) return st;
        if (count != (int64_t)next->in) continue;
        if (strcmp(name, "scale") == 0) scale = values;
        if (strcmp(name, "zero_point") == 0) zero = values;
    }
    if (!scale || !zero)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: repq-vit folds a per-channel uniform quantizer (scale, zero_point); "
                           "scheme '%s' is not one", qp->inst.name, s->name);
    float tensor_scale, tensor_zero;
    vitq_i_linear *const nexts[1] = {next};
    vitq_status st = vitq_i_repq_fold(r->alloc, ln, next->in, nexts, 1, scale, zero, &tensor_scale, &tensor_zero);
    if (st) return st;
    vitq_point_config cfg = qp->inst.config;
    cfg.granularity = VITQ_GRAN_TENSOR;
    if ((st = vitq_i_run_recreate(r, p, s, &cfg))) return st;
    const vitq_scheme *ns = &qp->inst.scheme;
    if ((st = ns->set_param(qp->inst.state, "scale", &tensor_scale, 1))) return st;
    if ((st = ns->set_param(qp->inst.state, "zero_point", &tensor_zero, 1))) return st;
    /* the weights changed: a fresh quantizer sees them (RepQ-ViT's second calibration) */
    vitq_i_qpoint *wp = vitq_i_run_qpoint(r, p + 1);
    if (!wp) return VITQ_OK;
    vitq_point_config wcfg = wp->inst.config;
    if ((st = vitq_i_run_recreate(r, p + 1, &wp->inst.scheme, &wcfg))) return st;
    return vitq_i_run_calibrate_weight(r, p + 1);
}

/* RepQ-ViT's reparameterisation of every post-LayerNorm point. */
static vitq_status reparam(vitq_i_run *r) {
    vitq_i_net *m = r->model;
    const vitq_i_sites *sites = &r->list->sites;
    vitq_status st = VITQ_OK;
    for (int b = 0; !st && b < m->info.depth; b++) {
        vitq_i_block *blk = &m->blocks[b];
        st = fold(r, sites->blocks[b].qkv_in, &blk->norm1, &blk->qkv);
        if (!st) st = fold(r, sites->blocks[b].fc1_in, &blk->norm2, &blk->fc1);
    }
    for (int s = 1; !st && s < m->info.num_stages; s++)
        st = fold(r, sites->stages[s].merge_in, &m->stages[s].merge_norm, &m->stages[s].merge);
    return st;
}

/* MPTQ-ViT's smoothing (option smooth) first, on the float network's statistics; RepQ-ViT's quantizers
 * then initialise (init: on the first forward pass with quantization on, each seeing what the quantized
 * layers before it produce) and its fold comes after; OPT-m (opt_m) last, on the deployed network. */
static vitq_status refine(vitq_i_run *r) {
    const double *o = r->method_options;
    vitq_i_smooth_options so;
    vitq_status st = vitq_i_smooth_options_from(o + OPT_SMOOTH, &so) ? vitq_i_smooth_stage(r, &so) : VITQ_OK;
    if (!st && o[OPT_INIT]) st = vitq_i_run_observe_sequential(r);
    if (!st && o[OPT_REPARAM]) st = reparam(r);
    if (!st && o[OPT_M]) st = vitq_i_opt_m_stage(r, 0);
    return st;
}

const vitq_i_method vitq_i_method_repq = {
    "repq-vit", "RepQ-ViT: per-channel post-LayerNorm scales folded into LayerNorm, log-sqrt2 attention", 1,
    (int32_t)(sizeof options / sizeof options[0]), options, configure, refine};
