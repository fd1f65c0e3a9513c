/* NoisyQuant (CVPR 2023): a fixed noisy bias on the input of every linear layer but the classifier
 * nor the patch embedding (the authors' code), over MSE-optimal uniform quantizers (the "linear quantizer" base of the paper);
 * the noise search itself is the generic noisy component (noisy_search.c, run by the driver), which any scheme can use
 * through the point option noisy = 1. */
#include "calib/method.h"
#include "quant/schemes.h"

static vitq_status configure(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *opts) {
    (void)opts;
    cfg->scheme = &vitq_i_scheme_omse;
    vitq_i_scheme_option_defaults(cfg->scheme, cfg->options);
    /* not the patch embedding (a convolution) nor the classifier: the authors' code, every nn.Linear but head */
    cfg->noisy = d->kind == VITQ_POINT_ACTIVATION && vitq_i_role_is_linear_input(d->role) && !d->edge;
    return VITQ_OK;
}

const vitq_i_method vitq_i_method_noisyquant = {
    "noisyquant", "NoisyQuant: fixed noisy bias before every linear layer's input quantizer (MSE-searched range)",
    0, 0, NULL, configure, NULL};
