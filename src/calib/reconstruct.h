/* Block reconstruction (issue 20; AdaRound, BRECQ, QDrop: docs/training.md, "Block reconstruction"): a
 * calibration stage after any method's refinement and before the weights are encoded. Blocks in order; each
 * block's input is the output of the already reconstructed quantized network on the calibration images, its
 * target the float block's output on the float network's input. The rounding of every uniform weight of the
 * block is learned (AdaRound), optionally the steps of its uniform activation points (LSQ), with Adam on the
 * block's output MSE (summed over features, averaged over images) while QDrop leaves each activation element
 * in float with probability `drop`. At the end the rounding is hardened: the weight rows of the run's
 * private model become the dequantized codes s (code - z), which the ordinary encoding turns back into
 * exactly those codes; learned steps become the points' scales. A block whose loss on the calibration
 * images (every quantizer on, hard rounding) is not lower than its starting loss keeps its starting
 * quantization. ViT, DeiT and Swin: before the first block of a later stage both streams pass through the
 * patch merging (the float one without quantization, the quantized one with its points), whose reduction
 * layer learns its rounding the same way on its own (recon_layer.h).
 *
 * Options beyond BRECQ: QDrop's mixing of the block input (each element from the float stream with
 * probability `drop`), the diagonal-Fisher loss (BRECQ's, weights scaled to mean 1 per block), and
 * augmented views of the calibration images (data/augment.h) trained on as further images. */
#ifndef VITQ_CALIB_RECONSTRUCT_H
#define VITQ_CALIB_RECONSTRUCT_H

#include "calib/recon_options.h"
#include "calib/run.h"

/* Defaults (docs/training.md) for `iters` (0: the default count) and `batch` (0: the default). */
vitq_i_recon_options vitq_i_recon_defaults(int32_t iters, int32_t batch, double drop, int32_t learn_steps,
                                           uint64_t seed);

/* Reconstruct every block of r's network (a private copy with row-major weights). `report` (may be NULL)
 * takes one entry per block. VITQ_ERR_BAD_STATE without a private copy. */
vitq_status vitq_i_reconstruct(vitq_i_run *r, const vitq_i_recon_options *o, vitq_i_recon_block *report);

#endif
