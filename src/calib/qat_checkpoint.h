/* QAT checkpoints (qat.h): everything a run needs to go on exactly as if it had not stopped, written at the end
 * of an epoch as a safetensors file. The network's starting quantization is not in it: the calibration that
 * precedes QAT is deterministic, so a resumed run recomputes it and then replaces every trained parameter.
 *
 * Tensors: "param.<i>" (F32, the i-th trained parameter array of the optimizer's list, in its order),
 * "adam.m" and "adam.v" (F32, Adam's moments over all of them), "osc.<k>.prev" and "osc.<k>.prev2" (U8, the
 * oscillation trackers' last two codes). Metadata: "format" = "vitq-qat-checkpoint-1", the run's shape
 * ("epochs", "batch", "crops", "images", "seed", which a resume must match), "next_epoch", "adam_steps",
 * "osc_updates", and "epoch.<e>" per finished epoch (its report, seventeen digits each). Everything else of a
 * run derives from these: the image order and the crops come from counter-based streams of (seed, epoch). */
#ifndef VITQ_CALIB_QAT_CHECKPOINT_H
#define VITQ_CALIB_QAT_CHECKPOINT_H

#include "train/optim.h"
#include "train/oscillation.h"

/* What an epoch did: mean distillation loss, the student's top-1 agreement with the teacher (over every
 * view), the bin regulariser's value at the end, weight codes flipped and oscillating (a -> b -> a) per
 * optimizer step, summed over layers, and the epoch's seconds. */
typedef struct vitq_i_qat_epoch {
    double loss, agreement, obr, flips, oscillations, seconds;
} vitq_i_qat_epoch;

/* The shape of a run: a checkpoint resumes only a run of the same shape. */
typedef struct vitq_i_qat_shape {
    int32_t epochs, batch, crops;
    uint64_t images, seed;
} vitq_i_qat_shape;

/* Write the state after `next_epoch` epochs (report holds their entries) to `path`, atomically. Trackers with
 * no weights (count 0) are skipped. */
vitq_status vitq_i_qat_checkpoint_save(const char *path, const vitq_allocator *a, const vitq_i_qat_shape *shape,
                                       int next_epoch, const vitq_i_adam *adam, const vitq_i_osc *osc, int num_osc,
                                       const vitq_i_qat_epoch *report);

/* Restore adam's parameters and moments, the trackers and the finished epochs' reports from `path`; *next_epoch
 * gets the epoch to go on with. VITQ_ERR_CONFIG naming the file and what differs when the checkpoint is of
 * another run (shape, parameter count or sizes); VITQ_ERR_FORMAT for a file that is not a QAT checkpoint;
 * VITQ_ERR_IO. Nothing is changed on failure before the first parameter is read (shape and sizes are checked
 * first). */
vitq_status vitq_i_qat_checkpoint_load(const char *path, const vitq_allocator *a, const vitq_i_qat_shape *shape,
                                       vitq_i_adam *adam, vitq_i_osc *osc, int num_osc, vitq_i_qat_epoch *report,
                                       int *next_epoch);

#endif
