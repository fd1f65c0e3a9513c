/* Where a linear layer's weight lives, and how to read it in PyTorch layout.
 *
 * A loaded model keeps each weight once, in the form its kernel reads: float panels
 * (kernels.h, vitq_i_packed) for layers that run in float, integer panels (kernels/qlinear.h) for
 * layers of a quantized model that run in integers. The row-major [out][in] weight that PyTorch
 * stores is rebuilt from those panels, exactly, by whatever needs it: saving, reports, and
 * calibration, which attaches row-major copies to its private copy of the model
 * (vitq_i_model_attach_rows) because it reads and rewrites them many times. */
#ifndef VITQ_MODEL_WEIGHTS_H
#define VITQ_MODEL_WEIGHTS_H

#include "model/net.h"

/* Linear layer i of m, counting the patch embedding, the blocks' qkv, proj, fc1, fc2, Swin's patch
 * mergings, the representation layer (pre_logits) and the heads in that order; NULL once i is past
 * the last. */
vitq_i_linear *vitq_i_model_linear_at(const vitq_i_net *m, size_t i); /* (non-const as strchr's result) */

/* The layer's weight as w[out][in] into dst (out * in floats): from its row-major copy when it has
 * one, else from its float panels, else from its integer form (the dequantized codes, the values
 * the simulation multiplies). Scratch comes from `a`. */
vitq_status vitq_i_linear_rows(const vitq_allocator *a, const vitq_i_linear *l, float *dst);

/* Give every linear layer of m a row-major copy of its weight (l->weight, freed with the model):
 * for calibration, which reads and folds weights in place on its own copy of a model. */
vitq_status vitq_i_model_attach_rows(vitq_i_net *m);
/* VITQ_OK when every linear layer of m has its row-major weight attached, else VITQ_ERR_BAD_STATE
 * naming `who` (the backward pass reads weights in that layout). */
vitq_status vitq_i_model_require_rows(const vitq_i_net *m, const char *who);

#endif
