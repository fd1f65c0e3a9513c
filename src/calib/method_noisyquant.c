/* NoisyQuant (CVPR 2023, docs/methods.md): a fixed noisy bias on the inputs of linear layers, over a
 * base quantizer the method is agnostic of. The noisy bias itself (mean shift and amplitude) is the
 * generic noisy component (noisy_search.c, run by the driver after this method's refine on every
 * point with noisy = 1, which configure sets); this file chooses the base (option `base`):
 *   0 linear  - the authors' official code: symmetric per-tensor uniform inputs whose clipping range is
 *               searched by the layer's output MSE, per-channel symmetric min-max weights, noise on
 *               every linear layer's input but the classifier's (the patch embedding, a convolution
 *               there, is not one of its linear layers);
 *   1 ptq4vit - the paper's headline base, as the author's PTQ4ViT fork: PTQ4ViT's quantizers and
 *               search (method ptq4vit, its options below), then noise on every linear input but the
 *               image (the classifier's included, as the fork);
 *   2 omse    - the reading vitq had before: input-MSE ranges (omse) everywhere, no output search. */
#include <string.h>

#include "calib/method.h"
#include "calib/noisy_search.h"
#include "quant/schemes.h"

enum { OPT_BASE, OPT_CLIP_GRID, OPT_PTQ4VIT }; /* the ptq4vit options follow, by name */
enum { BASE_LINEAR, BASE_PTQ4VIT, BASE_OMSE };
#define NUM_OPTIONS 7

static const vitq_scheme_option options[NUM_OPTIONS] = {
    {"base", "0: the authors' linear base (output-MSE clipping search); 1: ptq4vit (PTQ4ViT's quantizers "
             "and search); 2: omse ranges (input MSE)", 0, 2, 0, 1},
    {"clip_grid", "base 0: candidate clipping ranges, i / clip_grid of the input's range (the authors: 1000)", 10,
     1000, 100, 1},
    {"grid", "base 1: ptq4vit's grid", 2, 1000, 20, 1},
    {"alpha", "base 1: ptq4vit's alpha", 0.0, 1.0, 0.01, 0},
    {"beta", "base 1: ptq4vit's beta", 0.1, 4.0, 1.2, 0},
    {"rounds", "base 1: ptq4vit's rounds", 1, 10, 1, 1},
    {"search_images", "base 1: ptq4vit's search_images (0: all)", 0, 1 << 20, 0, 1},
};

/* ptq4vit's option values: ours where the names match, its defaults otherwise. */
static void ptq4vit_options(const double *opts, double *out) {
    const vitq_i_method *m = &vitq_i_method_ptq4vit;
    memset(out, 0, VITQ_I_MAX_METHOD_OPTIONS * sizeof *out);
    for (int32_t k = 0; k < m->num_options && k < VITQ_I_MAX_METHOD_OPTIONS; k++) {
        out[k] = m->options[k].default_value;
        for (int j = OPT_PTQ4VIT; j < NUM_OPTIONS; j++)
            if (!strcmp(options[j].name, m->options[k].name)) out[k] = opts[j];
    }
}

/* The linear layers the authors' code puts noise on (the classifier only over PTQ4ViT, as the fork). */
static int noise_target(const vitq_i_point_desc *d, int base) {
    if (d->kind != VITQ_POINT_ACTIVATION || !vitq_i_role_is_linear_input(d->role)) return 0;
    return base == BASE_PTQ4VIT ? d->role != VITQ_ROLE_IMAGE : !d->edge;
}

static vitq_status configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    int base = (int)opts[OPT_BASE];
    if (base == BASE_PTQ4VIT) {
        double po[VITQ_I_MAX_METHOD_OPTIONS];
        ptq4vit_options(opts, po);
        vitq_status st = vitq_i_method_ptq4vit.configure(d, cfg, po);
        if (st) return st;
    } else {
        cfg->scheme = &vitq_i_scheme_omse;
        /* the linear base: weights min-max per channel, symmetric; the targets' ranges are searched
         * (minmax is the placeholder the search replaces), symmetric per tensor as the authors' code */
        if (base == BASE_LINEAR && (d->kind == VITQ_POINT_WEIGHT || noise_target(d, base))) {
            cfg->scheme = &vitq_i_scheme_minmax;
            cfg->symmetric = 1;
            cfg->granularity = d->kind == VITQ_POINT_WEIGHT ? VITQ_GRAN_CHANNEL : VITQ_GRAN_TENSOR;
        }
        vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    }
    cfg->noisy = noise_target(d, base);
    return VITQ_OK;
}

static vitq_status refine(vitq_i_run *r) {
    int base = (int)r->method_options[OPT_BASE];
    if (base == BASE_PTQ4VIT) {
        double po[VITQ_I_MAX_METHOD_OPTIONS];
        ptq4vit_options(r->method_options, po);
        const double *own = r->method_options;
        r->method_options = po;
        vitq_status st = vitq_i_method_ptq4vit.refine(r);
        r->method_options = own;
        return st;
    }
    if (base != BASE_LINEAR) return VITQ_OK;
    /* the clipping search on the targets that kept the method's min-max placeholder (not on points
     * given a scheme of their own with --set) */
    unsigned char *targets = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    if (!targets) return vitq_i_oom("clip search", (size_t)r->list->count);
    for (int p = 0; p < r->list->count; p++) {
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
        targets[p] = qp && noise_target(&r->list->points[p], base) && !strcmp(qp->inst.scheme.name, "minmax");
    }
    vitq_status st = vitq_i_noisy_clip_refine(r, targets, (int)r->method_options[OPT_CLIP_GRID]);
    vitq_i_free(r->alloc, targets);
    return st;
}

/* copies the model: PTQ4ViT's search rewrites the packed weights of a private copy, and the passes
 * run on quantized weights there (noisy_search.c) */
const vitq_i_method vitq_i_method_noisyquant = {
    "noisyquant", "NoisyQuant: fixed noisy bias (mean and amplitude searched) on linear layers' inputs, over the "
                  "authors' output-MSE clipping search or over PTQ4ViT (base)",
    1, NUM_OPTIONS, options, configure, refine};
